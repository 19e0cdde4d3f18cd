/* rules: pull-through cache rules — a local namespace (ecrRepositoryPrefix)
 * mapped to an upstream registry, with the fields of ECR's
 * CreatePullThroughCacheRule. Validation, storage, longest-prefix lookup and
 * the mapping of local repository names to upstream names. The only module
 * with SQL on the cache_rules table. */
#ifndef PIER_RULES_H
#define PIER_RULES_H

#include <stdbool.h>
#include <jansson.h>
#include "lib/contract.h"
#include "lib/err.h"
#include "lib/grammar.h"
#include "lib/ctx.h"

#define RULE_PREFIX_MAX 30
#define RULE_URL_MAX 512
#define RULE_ARN_MAX 512
#define RULE_CA_MAX (256 * 1024)
/* A rule's byte budget, when it has one: at least 1 MiB, at most 1 EiB. */
#define RULE_BUDGET_MIN (1LL << 20)
#define RULE_BUDGET_MAX (1LL << 60)
/* Mirror mode: how many registries one rule may mirror, and the longest
 * host[:port] one of them may be. */
#define RULE_MIRRORS_MAX 16
#define RULE_MIRROR_LEN 253

struct cache_rule {
    long long id;
    char prefix[RULE_PREFIX_MAX + 1];       /* "ROOT" or a name prefix */
    char upstream_url[RULE_URL_MAX];        /* scheme://host[:port][/path], no trailing '/' */
    char upstream_url_given[RULE_URL_MAX];  /* upstreamRegistryUrl as written ("": take
                                                upstream_url as written when validating) */
    char upstream_registry[40];             /* ecr-public, docker-hub, quay, ..., oci */
    char upstream_prefix[NAME_MAX_LEN + 1]; /* "ROOT" or a name prefix */
    char credential_arn[RULE_ARN_MAX];
    char custom_role_arn[RULE_ARN_MAX];
    bool has_credentials;
    int refresh_seconds;              /* 0: ask the upstream on every tag pull */
    int negative_seconds;             /* how long "not found upstream" is remembered */
    long long max_bytes;              /* byte budget of its cache repositories, 0: none */
    const char *ca_bundle;            /* PEM in the request arena, or NULL */
    long long created_at, updated_at; /* epoch seconds */
    long long created_ms, updated_ms; /* the same in milliseconds */
    const char *last_error;           /* arena, or NULL */
    long long last_error_at;
    /* Credentials of a rule being tried before it is saved (a connection
     * test): used instead of the stored ones when check_user is set; never
     * written anywhere. */
    const char *check_user, *check_secret;
    /* Mirror mode: the registries (host[:port], lower case) whose images the
     * rule serves to /v2/<name>/...?ns=<registry>, and whether it answers
     * unprefixed requests without ns (one rule registry-wide). */
    char mirrors[RULE_MIRRORS_MAX][RULE_MIRROR_LEN + 1];
    int n_mirrors;
    bool default_mirror;
};

/* Defaults for a new rule (refresh 24 h, negative 5 min, upstream prefix ROOT). */
void rule_defaults(struct cache_rule *r);

/* ecrRepositoryPrefix: "ROOT", or 2-30 characters of [a-z0-9._/-] that form a
 * valid repository name (no leading, trailing or double '/'). */
PIER_MUST_USE
pier_err rule_check_prefix(const char *prefix, struct perr *e);
/* upstreamRepositoryPrefix: "ROOT" or a valid repository name. */
PIER_MUST_USE
pier_err rule_check_upstream_prefix(const char *prefix, struct perr *e);
/* Normalize an upstream URL: https:// is implied, http:// only when written;
 * host[:port] and an optional path; no credentials, query or fragment.
 * docker.io and index.docker.io become registry-1.docker.io. */
PIER_MUST_USE
pier_err rule_normalize_url(const char *in, char out[RULE_URL_MAX], struct perr *e);
/* A byte budget: 0 (none) or RULE_BUDGET_MIN..RULE_BUDGET_MAX. */
PIER_MUST_USE
pier_err rule_check_budget(long long max_bytes, struct perr *e);
/* upstreamRegistry: one of the known kinds, or inferred from the URL's host
 * when empty ("oci" for any other registry). */
PIER_MUST_USE
pier_err rule_check_registry(const char *kind, const char *url, char out[40], struct perr *e);
/* One mirrored registry: host[:port] with DNS labels of [a-z0-9-] (upper
 * case is lowered) or "localhost"; index.docker.io and registry-1.docker.io
 * become docker.io, the name containerd sends in ns. out gets the form. */
PIER_MUST_USE
pier_err rule_check_mirror(const char *host, char out[RULE_MIRROR_LEN + 1], struct perr *e);
/* Replace r's mirrors with a comma-separated list (spaces around names are
 * ignored, duplicates dropped, "" clears): each checked by
 * rule_check_mirror, at most RULE_MIRRORS_MAX. r is unchanged on failure. */
PIER_MUST_USE
pier_err rule_set_mirrors(struct cache_rule *r, const char *list, struct perr *e);
/* r's mirrors as a comma-separated list in arena memory ("" when none). */
const char *rule_mirrors_text(struct arena *a, const struct cache_rule *r);

/* Is kind one of the values of ECR's UpstreamRegistry (every kind but Pier's
 * own "oci", which stands for a registry none of them describes)? */
bool rule_registry_is_ecr(const char *kind);

/* Upstream repository for a local name under rule r, e.g. prefix
 * "docker-hub", upstream prefix ROOT: "docker-hub/nginx" -> "library/nginx". */
PIER_MUST_USE
pier_err rule_upstream_name(const struct cache_rule *r, const char *local,
                            char out[NAME_MAX_LEN + 1], struct perr *e);

/* The rule whose prefix is the longest one containing name, if any. */
PIER_MUST_USE
pier_err rules_match(struct ctx *c, const char *name, struct cache_rule *out, bool *found,
                     struct perr *e);
/* The rule with this id. */
PIER_MUST_USE
pier_err rules_get_id(struct ctx *c, long long id, struct cache_rule *out, struct perr *e);
/* The rule governing repository name: its own rule when the repository
 * exists (rule_id > 0; 0: pushed, no rule), else the longest matching
 * prefix. *found says whether there is one. */
PIER_MUST_USE
pier_err rules_for_repository(struct ctx *c, const char *name, long long rule_id,
                              struct cache_rule *rule, bool *found, struct perr *e);
/* Mirror mode: the rule that mirrors registry (as rule_check_mirror writes
 * it), if any. */
PIER_MUST_USE
pier_err rules_for_mirror(struct ctx *c, const char *registry, struct cache_rule *out, bool *found,
                          struct perr *e);
/* Mirror mode without ns: the default mirror rule, when there is one and
 * name is neither an existing repository nor under any rule's prefix. */
PIER_MUST_USE
pier_err rules_default_mirror_for(struct ctx *c, const char *name, struct cache_rule *out,
                                  bool *found, struct perr *e);
/* Is any rule the default mirror? */
PIER_MUST_USE
pier_err rules_default_mirror_exists(struct ctx *c, bool *exists, struct perr *e);
/* The rule with this prefix; PIER_E_NAME_UNKNOWN when none. */
PIER_MUST_USE
pier_err rules_get(struct ctx *c, const char *prefix, struct cache_rule *out, struct perr *e);

/* Create a rule (fields already validated by the functions above are
 * re-checked here; upstream_url is normalized, upstream_url_given keeps what
 * was written). username/secret may be NULL; they are sealed with the
 * server key. Refuses a prefix that exists (PIER_E_CONFLICT, no detail) or
 * that holds pushed repositories (PIER_E_CONFLICT, the detail names one of
 * them) or that would mirror a registry another rule mirrors, or be a
 * second default mirror (PIER_E_CONFLICT, the detail names the other rule).
 * Cache repositories under the new, longer prefix move to it. */
PIER_MUST_USE
pier_err rules_create(struct ctx *c, struct cache_rule *r, const char *username, const char *secret,
                      struct perr *e);
/* Update the rule with r->prefix: every field of r is written, mirrors
 * included (refused as rules_create refuses them) (a URL that
 * normalizes to another upstream than upstream_url_given replaces it); credentials
 * change only when set_credentials (NULL username clears them). *id (may be
 * NULL) receives the rule's id. Joins the caller's transaction when one is
 * open: cache_rule_update() (cache/rulechange.h) is the operation callers
 * want, since a changed upstream invalidates what the cache kept of the old. */
PIER_MUST_USE
pier_err rules_update(struct ctx *c, const struct cache_rule *r, bool set_credentials,
                      const char *username, const char *secret, long long *id, struct perr *e);
/* Delete the rule; its repositories stay and are served from the cache only. */
PIER_MUST_USE
pier_err rules_delete(struct ctx *c, const char *prefix, struct perr *e);
/* All rules as JSON objects (never with credentials) appended to out. */
PIER_MUST_USE
pier_err rules_list(struct ctx *c, json_t *out, struct perr *e);
/* Every rule's id and prefix, for labelling the node's metrics: ids[i] and
 * prefixes[i] (arena memory), *n of them, ordered by id. */
PIER_MUST_USE
pier_err rules_prefixes(struct ctx *c, long long **ids, const char ***prefixes, int *n,
                        struct perr *e);
/* A rule as JSON, ECR field names plus Pier's (never credentials). */
json_t *rule_to_json(const struct cache_rule *r);

/* The rule's decrypted credentials, for the upstream client only. Both
 * buffers are cleared when the rule has none. */
PIER_MUST_USE
pier_err rules_credentials(struct ctx *c, const struct cache_rule *r, char *user, size_t usersz,
                           char *secret, size_t secretsz, struct perr *e);
/* Remember the last upstream error of a rule (shown by list/console). */
void rules_note_error(struct ctx *c, long long rule_id, const char *message);
/* A download of the rule failed here, not upstream (blob root full or
 * unwritable): kept apart from last_error, which is about the upstream. */
void rules_note_storage_error(struct ctx *c, long long rule_id, const char *message);
/* The upstream answered properly again (a successful validation). */
void rules_clear_error(struct ctx *c, long long rule_id);

/* A rule with its counters (cache_stats) and what its repositories hold,
 * for the console's overview. Strings are "" when unset. */
struct rule_overview {
    long long id;
    long long negative_seconds;
    bool has_ca_bundle;
    const char *prefix, *upstream_url, *upstream_registry, *upstream_prefix;
    long long refresh_seconds;
    bool has_credentials;
    const char *credential_arn;
    const char *last_error;
    long long last_error_at; /* epoch seconds, 0: never */
    long long hits, misses, stale, upstream_bytes, served_bytes, upstream_errors;
    long long storage_errors;
    const char *last_storage_error;
    long long last_storage_error_at;  /* epoch seconds, 0: never */
    long long repositories;           /* cache repositories of the rule */
    long long bytes_cached;           /* bytes of the distinct blobs they hold */
    long long created_at;             /* epoch seconds */
    long long max_bytes;              /* the rule's byte budget, 0: none */
    long long budget_expired;         /* images the budget expired */
    long long budget_reclaimed;       /* bytes that removed from the blob root */
    long long budget_last_expired_at; /* epoch seconds, 0: never */
    long long oldest_last_pull;       /* the least recent last pull (else push) of
                                                the images they hold, epoch seconds; 0: none */
    const char *mirrors;              /* the registries it mirrors, comma-separated */
    bool default_mirror;              /* the registry-wide default mirror */
};

/* The rules that have a byte budget, by prefix: *out (arena), *n. */
PIER_MUST_USE
pier_err rules_with_budget(struct ctx *c, struct cache_rule **out, int *n, struct perr *e);

/* Every rule by prefix with its overview: *out (arena), *n. */
PIER_MUST_USE
pier_err rules_overview(struct ctx *c, struct rule_overview **out, int *n, struct perr *e);

#endif
