/* audit: the audit trail — who did what to which resource, from where, with
 * what result. Control-plane calls, sign-ins, denials, pull-through imports,
 * deletes and policy changes are recorded; plain pulls are not. Each event
 * goes to two sinks: a JSON line appended to the node's audit_log file (one
 * write() per line, O_APPEND, so workers never interleave) and a row of
 * audit_events, which this module owns. Callers never pass secrets: names,
 * ARNs, access key ids and error codes only. */
#ifndef PIER_AUDIT_H
#define PIER_AUDIT_H

#include <jansson.h>
#include "http/request.h"
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

#define AUDIT_SUCCESS "success"
/* The principal of what housekeeping and pierctl do on their own. */
#define AUDIT_SYSTEM "system"
/* Longest value stored for any field (longer ones are cut at a character). */
#define AUDIT_FIELD_MAX 1024
#define AUDIT_QUERY_MAX 1000

struct audit_event {
    const char *action;     /* required: "ecr:BatchDeleteImage", "registry:DeleteManifest" */
    const char *repository; /* the repository's name, or NULL */
    const char *resource;   /* ARN or name acted on; NULL: the repository's ARN, or "" */
    const char *target;     /* tags or digests inside the resource, or NULL */
    const char *result;     /* NULL or AUDIT_SUCCESS, else the error code */
    const char *principal;  /* NULL: the caller's ARN (c->who), "anonymous" when it has
                                none, AUDIT_SYSTEM outside a request (c->who NULL) */
    const char *key_id;     /* NULL: the caller's access key id, if any */
};

/* At the start of a request: this request's id — Apache's UNIQUE_ID
 * (mod_unique_id) when it passes one, else 16 random bytes in hex — added to
 * the response as X-Request-Id. Returns it (in r's arena; never NULL). */
const char *audit_begin(struct req *r);

/* Record ev now: the JSON line is written at once (a file that cannot be
 * opened or written is logged); the row is inserted at audit_end() when c is
 * a request's (c->request_id set), otherwise right away, so call it outside
 * any transaction there. Never fails its caller. */
void audit_record(struct ctx *c, const struct audit_event *ev);

/* Whether this process may create audit_log when it does not exist (default
 * true). pierctl appends only to an existing file: one it created, as root,
 * could shut pierd out of it. */
void audit_file_create(bool create);

/* At the end of a request, after its transaction was closed: insert the rows
 * of the events it recorded. A database failure is logged; the request's
 * answer does not change. */
void audit_end(struct ctx *c);

/* Housekeeping: delete rows older than audit_retention_days (0: keep all). */
PIER_MUST_USE
pier_err audit_expire(struct ctx *c, long long *removed, struct perr *e);

struct audit_filter {
    const char *principal;  /* ARN, or a user or role name; NULL: any */
    const char *repository; /* NULL: any */
    const char *action;     /* exact, or a prefix ending in '*' ("ecr:*"); NULL: any */
    long long since;        /* unix seconds; 0: from the start */
    int limit;              /* 1..AUDIT_QUERY_MAX */
    long long before_ms;    /* paging: only events older than the one whose "cursor" */
    long long before_id;    /*   was "<before_ms>.<before_id>"; 0: from the newest */
};

/* Events matching f, newest first, as a new JSON array of objects shaped like
 * the JSON lines plus a "cursor" (the next page's before_ms.before_id)
 * (caller decrefs). */
PIER_MUST_USE
pier_err audit_query(struct ctx *c, const struct audit_filter *f, json_t **out, struct perr *e);

/* Parse a --since value: unix seconds, an age ("90m", "24h", "7d", "30s")
 * before now, or a UTC date "YYYY-MM-DD" / "YYYY-MM-DDTHH:MM:SSZ". false when
 * s is none of these. */
bool audit_parse_since(const char *s, long long now, long long *out);

#endif
