/* ctx: what a request handler may use — configuration, this worker's database
 * connection, the blob root and the request's arena. What outlives the
 * request belongs to the worker (the connection, the upstream client, the
 * policy cache, the cache counters, the token keys) and holds no request
 * state; who, remote_addr and request_id are the request's own. */
#ifndef PIER_CTX_H
#define PIER_CTX_H

#include "lib/arena.h"
#include "lib/config.h"

struct db;
struct blobstore;
struct secretbox;
struct upstream;
struct cache_stats;
struct identity;
struct authz_cache;
struct token_keys;

struct ctx {
    const struct config *cfg;
    struct db *db;
    const struct blobstore *bs;
    struct arena *a;
    const struct secretbox *sb;   /* server key for sealed secrets */
    struct upstream *up;          /* this worker's upstream HTTP client */
    struct cache_stats *stats;    /* this worker's unflushed cache counters */
    const struct identity *who;   /* the caller of this request (authn) */
    struct authz_cache *acache;   /* this worker's recently read policies */
    const struct token_keys *tk;  /* keys of login passwords and bearer tokens */
    const char *remote_addr;      /* the client's address, for policy conditions */
    const char *request_id;       /* X-Request-Id of this request (audit); NULL outside one */
};

#endif
