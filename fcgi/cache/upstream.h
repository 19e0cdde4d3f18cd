/* upstream: the client side of the pull-through cache. One libcurl handle per
 * worker (connections are reused), the registry token dance (anonymous and
 * with credentials, tokens shared through the database until they expire),
 * Basic auth, redirects to other hosts without the Authorization header,
 * timeouts, and a classification of every failure. HTTPS_PROXY/NO_PROXY in the
 * environment of pierd route egress through a proxy. */
#ifndef PIER_UPSTREAM_H
#define PIER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include "store/rules.h"
#include "lib/contract.h"
#include "lib/ctx.h"
#include "store/digest.h"

enum up_failure {
    UPF_NONE = 0,
    UPF_UNREACHABLE,  /* DNS, refused or broken connection */
    UPF_TIMEOUT,      /* connect or idle timeout */
    UPF_SERVER,       /* HTTP 5xx */
    UPF_RATE_LIMITED, /* HTTP 429 */
    UPF_AUTH,         /* HTTP 401/403 even after authenticating */
    UPF_NOT_FOUND,    /* HTTP 404 */
    UPF_PROTOCOL,     /* an answer that makes no sense (bad token response, oversize, ...) */
    UPF_ABORTED,      /* our own callback stopped the transfer */
    UPF_FORBIDDEN,    /* Pier refused to connect or to send credentials (address policy,
                         https -> http downgrade, credentials over plain http) */
    UPF_TLS,          /* TLS handshake failed or the certificate is not trusted */
    UPF_NOT_REGISTRY, /* GET /v2/ answered, but not as a registry does (404, 200 elsewhere) */
};

struct upstream_resp {
    long status;
    char digest[DIGEST_STR_MAX];   /* Docker-Content-Digest, if sent and well-formed */
    char content_type[256];
    long long content_length;      /* -1 when unknown */
    char *body;                    /* buffered body (arena), when no on_data */
    size_t body_len;
    long long bytes;               /* body bytes received */
    enum up_failure failure;
    long retry_after;              /* seconds from a 429's Retry-After, 0 when none */
    char message[512];             /* for clients: "manifest request: HTTP 503" (no URL,
                                      no body); the URL goes to the log */
};

struct upstream_req {
    const struct cache_rule *rule;
    const char *repo;           /* upstream repository name (grammar-checked) */
    bool head;                  /* HEAD instead of GET */
    const char *path;           /* after /v2/<repo>/: "manifests/<ref>", "blobs/<digest>" */
    const char *accept;         /* Accept header value, or NULL */
    size_t max_body;            /* buffered bodies larger than this fail (UPF_PROTOCOL) */
    long deadline_ms;           /* streaming: the whole transfer must end within this (0: none) */
    /* Streaming: called once the final 2xx response's headers are known, then
     * for every piece of the body. Returning nonzero aborts (UPF_ABORTED). */
    int (*on_headers)(void *arg, const struct upstream_resp *resp);
    int (*on_data)(void *arg, const char *data, size_t n);
    /* Optional: called about once a second while the request runs (also
     * while connecting, asking for a token or waiting for bytes). */
    void (*on_tick)(void *arg);
    void *arg;
};

struct upstream;

/* A worker's client; cfg supplies the address policy (upstream_allow_networks). */
struct upstream *upstream_new(const struct config *cfg);
void upstream_free(struct upstream *u);

/* Perform the request, authenticating as the upstream demands. Returns
 * PIER_OK when a 2xx answer was received completely; otherwise resp->failure
 * and resp->message say what happened (e only for our own errors). */
PIER_MUST_USE
pier_err upstream_do(struct ctx *c, const struct upstream_req *q, struct upstream_resp *resp,
                     struct perr *e);

/* Does the upstream accept us? GET /v2/ with the rule's credentials (and the
 * token dance if challenged). PIER_OK when it answers 200; otherwise
 * resp->failure and resp->message say why. For ValidatePullThroughCacheRule. */
PIER_MUST_USE
pier_err upstream_check(struct ctx *c, const struct cache_rule *rule, struct upstream_resp *resp,
                        struct perr *e);

/* Does the rule send credentials (stored, in a secret, or being tried)? */
bool upstream_rule_has_credentials(const struct cache_rule *r);

/* The Accept value that asks for every manifest type Pier stores. */
extern const char UPSTREAM_MANIFEST_ACCEPT[];

/* A parsed WWW-Authenticate challenge (exposed for unit tests). */
struct challenge {
    char scheme[16];   /* "Bearer" or "Basic" */
    char realm[512];
    char service[256];
    char scope[512];
};
/* Parse the first challenge of a WWW-Authenticate value; false if malformed,
 * or when a realm, service or scope does not fit its field. */
bool upstream_parse_challenge(const char *value, struct challenge *out);
/* A token service's answer ({"token": ...} or {"access_token": ...}, optional
 * "expires_in") as "Bearer <token>" in arena memory, or NULL when it holds no
 * usable token. *lifetime receives the lifetime in seconds (default 60, at
 * most 86400). */
const char *upstream_parse_token(struct arena *a, const char *body, size_t len, int *lifetime);
/* Human-readable name of a failure class. */
const char *upstream_failure_name(enum up_failure f);
/* The class of a failure as the control plane names it: "ok", "unreachable"
 * (DNS, connection, timeout), "tls", "auth-refused", "not-a-registry",
 * "rate-limited", "server-error", "protocol-error", "refused-by-pier". NULL
 * for failures that say nothing about the upstream (aborted by Pier, 404). */
const char *upstream_failure_class(enum up_failure f);

/* ---- shared tokens (the upstream_tokens table, which no other module queries) ---- */
/* Forget the tokens obtained for rule rule_id (its URL or credentials changed). */
PIER_MUST_USE
pier_err upstream_tokens_forget(struct ctx *c, long long rule_id, struct perr *e);
/* Forget the tokens of every rule whose credentialArn is arn or name (the
 * secret's value changed). */
PIER_MUST_USE
pier_err upstream_tokens_forget_credential(struct ctx *c, const char *arn, const char *name,
                                           struct perr *e);
/* Remove expired tokens; *removed counts them. */
PIER_MUST_USE
pier_err upstream_tokens_expire(struct ctx *c, long long *removed, struct perr *e);

#endif
