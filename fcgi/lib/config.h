/* config: the one configuration file (key = value lines), each key overridable
 * by an environment variable PIER_<KEY> (upper case), for tests and containers. */
#ifndef PIER_CONFIG_H
#define PIER_CONFIG_H

#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include "lib/err.h"
#include "lib/netpolicy.h"

struct config {
    char database[1024];        /* libpq conninfo */
    char blob_root[PATH_MAX];   /* shared blob root: blobs/, tmp/ */
    char socket[108];           /* FastCGI unix socket path (sun_path limit) */
    int socket_mode;            /* octal permission bits of the socket */
    char socket_group[64];      /* group (name or number) the socket is given; empty: keep */
    int workers;                /* preforked FastCGI workers */
    int max_requests;           /* a worker exits after this many requests (0: never) */
    int shutdown_timeout;       /* seconds to finish in-flight requests on stop */
    long long max_manifest_size;/* bytes; larger manifests get 413 */
    long long max_blob_size;    /* bytes; larger uploads get 413 */
    long long max_chunk_size;   /* bytes in one PATCH/PUT request body */
    int max_page;               /* upper bound and default for n= in lists */
    int upload_ttl;             /* seconds an idle upload session lives */
    int download_url_ttl;       /* seconds a GetDownloadUrlForLayer URL works */
    char registry_host[256];    /* public host[:port] of the registry, for absolute URLs */
    char log_file[PATH_MAX];    /* empty: stderr */
    char log_level[16];
    char pid_file[PATH_MAX];    /* the master's pid */
    char supervisor_pid_file[PATH_MAX]; /* the pid of pierd -s, the master's supervisor */
    bool allow_delete;          /* manifest and blob DELETE */
    char server_key_file[PATH_MAX]; /* 32 random bytes, base64: seals stored secrets */
    int upstream_connect_timeout;   /* seconds to connect to an upstream */
    int upstream_idle_timeout;      /* seconds an upstream transfer may stall */
    int upstream_timeout;           /* seconds for a whole manifest or token request */
    int lease_ttl;                  /* seconds a fetch lease outlives its holder's last renewal */
    int maintenance_interval;       /* seconds between cleanups by the master (0: never) */
    int gc_grace;                   /* seconds an unreferenced blob or link is kept */
    int gc_interval;                /* seconds between garbage-collection sweeps (0: never) */
    int gc_duty;                    /* percent of a sweep's time spent working (100: no pauses) */
    char account_id[16];            /* the registry's 12-digit account id (ARNs) */
    char region[32];                /* the registry's region (ARNs, SigV4) */
    char auth_scheme[16];           /* "bearer" or "basic": the challenge on GET /v2/ */
    char public_url[256];           /* how clients reach this registry (token realm) */
    int policy_cache_ms;            /* how long a worker keeps a policy it read */
    char bootstrap_file[PATH_MAX];  /* where the first administrator's key is written */
    char upstream_allow_networks[1024]; /* CIDRs upstream connections may reach although they
                                           are loopback, private, link-local, ... (empty: none) */
    bool upstream_allow_http_credentials; /* send rule credentials over plain http */
    long long upstream_min_rate;    /* bytes/s a blob download must average over
                                       upstream_idle_timeout seconds */
    int body_workers;               /* workers that may be receiving request bodies at once
                                       (0: all but a quarter of workers, at least one free) */
    int db_timeout_ms;              /* the longest a request waits for one database round trip
                                       (also the server's statement_timeout; 0: no bound) */
    long long min_free_space;       /* bytes a download of known size leaves free on the
                                       blob root, or it is refused before its body starts */
    char metrics_allow[1024];       /* CIDRs whose clients may read /metrics without
                                       credentials (empty: none; administrators always may) */
    long long cache_max_bytes;      /* bytes all pull-through cache rules together may
                                       keep on the blob root (0: no registry-wide budget) */
    char audit_log[PATH_MAX];       /* file the audit trail is appended to as JSON lines
                                       (empty: the database table only) */
    int audit_retention_days;       /* days audit_events rows are kept (0: forever) */
    bool auto_migrate;              /* pierd applies pending migrations when it starts
                                       (false: it refuses to start on an older schema) */
};

/* Fill c with defaults. */
void config_defaults(struct config *c);
/* Read path (NULL: skip the file), then apply PIER_* environment overrides.
 * Unknown keys, malformed numbers and out-of-range values are errors that name
 * the file, the line and the key. */
PIER_MUST_USE
pier_err config_load(struct config *c, const char *path, struct perr *e);
/* Apply the key = value lines of an open file (name: for messages), without
 * environment overrides or validation; used by config_load and the fuzzer. */
PIER_MUST_USE
pier_err config_read(struct config *c, FILE *f, const char *name, struct perr *e);
/* Apply one key=value; used by config_load and tests. */
PIER_MUST_USE
pier_err config_set(struct config *c, const char *key, const char *value, struct perr *e);
/* Parse a size: "123", "4MiB", "2 GiB", "512k", "10G" (binary units,
 * case-insensitive, at most LLONG_MAX). false when s is not one. */
bool config_parse_size(const char *s, long long *out);
/* The networks of metrics_allow ("127.0.0.1/32, 10.0.0.0/8, ::1"): CIDRs
 * or single addresses, IPv4 and IPv6, separated by commas or spaces.
 * PIER_E_BAD_REQUEST naming the entry that does not parse (config_validate
 * refuses such a file). */
PIER_MUST_USE
pier_err config_metrics_allow(const struct config *c, struct netpolicy *out, struct perr *e);
/* Check cross-field constraints (required keys present). */
PIER_MUST_USE
pier_err config_validate(const struct config *c, struct perr *e);

#endif
