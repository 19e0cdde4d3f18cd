/* config: parsing of pier.conf and PIER_* overrides, table-driven. */
#include "lib/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "lib/log.h"
#include "lib/netpolicy.h"

enum kind { K_STR, K_INT, K_SIZE, K_OCTAL, K_BOOL };

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    size_t len;      /* for strings: buffer size */
    long long min, max;
};

#define S(f) K_STR, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0
#define I(f, lo, hi) K_INT, offsetof(struct config, f), 0, lo, hi
#define Z(f, lo, hi) K_SIZE, offsetof(struct config, f), 0, lo, hi
#define O(f) K_OCTAL, offsetof(struct config, f), 0, 0, 0777
#define B(f) K_BOOL, offsetof(struct config, f), 0, 0, 1

static const struct key keys[] = {
    {"database", S(database)},
    {"blob_root", S(blob_root)},
    {"socket", S(socket)},
    {"socket_mode", O(socket_mode)},
    {"socket_group", S(socket_group)},
    {"workers", I(workers, 1, 1024)},
    {"max_requests", I(max_requests, 0, 100000000)},
    {"shutdown_timeout", I(shutdown_timeout, 1, 3600)},
    {"max_manifest_size", Z(max_manifest_size, 1024, 64LL << 20)},
    {"max_blob_size", Z(max_blob_size, 1024, 1LL << 50)},
    {"max_chunk_size", Z(max_chunk_size, 1024, 1LL << 50)},
    {"max_page", I(max_page, 1, 100000)},
    {"upload_ttl", I(upload_ttl, 60, 30 * 86400)},
    {"download_url_ttl", I(download_url_ttl, 1, 7 * 86400)},
    {"registry_host", S(registry_host)},
    {"log_file", S(log_file)},
    {"log_level", S(log_level)},
    {"pid_file", S(pid_file)},
    {"supervisor_pid_file", S(supervisor_pid_file)},
    {"allow_delete", B(allow_delete)},
    {"server_key_file", S(server_key_file)},
    {"upstream_connect_timeout", I(upstream_connect_timeout, 1, 300)},
    {"upstream_idle_timeout", I(upstream_idle_timeout, 1, 3600)},
    {"upstream_timeout", I(upstream_timeout, 1, 3600)},
    {"lease_ttl", I(lease_ttl, 2, 3600)},
    {"maintenance_interval", I(maintenance_interval, 0, 86400)},
    {"gc_grace", I(gc_grace, 0, 30 * 86400)},
    {"gc_interval", I(gc_interval, 0, 30 * 86400)},
    {"gc_duty", I(gc_duty, 1, 100)},
    {"account_id", S(account_id)},
    {"region", S(region)},
    {"auth_scheme", S(auth_scheme)},
    {"public_url", S(public_url)},
    {"policy_cache_ms", I(policy_cache_ms, 0, 600000)},
    {"bootstrap_file", S(bootstrap_file)},
    {"upstream_allow_networks", S(upstream_allow_networks)},
    {"upstream_allow_http_credentials", B(upstream_allow_http_credentials)},
    {"upstream_min_rate", Z(upstream_min_rate, 1, 1LL << 40)},
    {"body_workers", I(body_workers, 0, 1024)},
    {"db_timeout_ms", I(db_timeout_ms, 0, 3600000)},
    {"min_free_space", Z(min_free_space, 0, 1LL << 50)},
    {"cache_max_bytes", Z(cache_max_bytes, 0, 1LL << 60)},
    {"audit_log", S(audit_log)},
    {"audit_retention_days", I(audit_retention_days, 0, 36500)},
    {"metrics_allow", S(metrics_allow)},
    {"auto_migrate", B(auto_migrate)},
};

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->database, sizeof c->database, "dbname=pier");
    snprintf(c->blob_root, sizeof c->blob_root, "/var/lib/pier");
    snprintf(c->socket, sizeof c->socket, "/run/pier/pier.sock");
    c->socket_mode = 0660;
    c->workers = 8;
    c->max_requests = 0;
    c->shutdown_timeout = 30;
    c->max_manifest_size = 4LL << 20;
    c->max_blob_size = 64LL << 30;
    c->max_chunk_size = 64LL << 30;
    c->max_page = 1000;
    c->upload_ttl = 86400;
    c->download_url_ttl = 3600;
    snprintf(c->log_level, sizeof c->log_level, "info");
    c->allow_delete = true;
    c->upstream_connect_timeout = 10;
    c->upstream_idle_timeout = 30;
    c->upstream_timeout = 60;
    c->lease_ttl = 10;
    c->maintenance_interval = 300;
    c->gc_grace = 3600;
    c->gc_interval = 3600;
    c->gc_duty = 10;
    snprintf(c->account_id, sizeof c->account_id, "111122223333");
    snprintf(c->region, sizeof c->region, "us-east-1");
    snprintf(c->auth_scheme, sizeof c->auth_scheme, "bearer");
    c->policy_cache_ms = 1000;
    c->upstream_min_rate = 16 << 10;
    c->db_timeout_ms = 5000;
    c->min_free_space = 64LL << 20;
    c->audit_retention_days = 90;
    c->auto_migrate = true;
}

pier_err config_metrics_allow(const struct config *c, struct netpolicy *out, struct perr *e)
{
    return netpolicy_parse_key(c->metrics_allow, "metrics_allow", out, e);
}

bool config_parse_size(const char *s, long long *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno || v < 0)
        return false;
    while (*end == ' ')
        end++;
    long long mul = 1;
    if (*end) {
        const char *rest = end + 1;
        switch (tolower((unsigned char)*end)) {
        case 'k': mul = 1LL << 10; break;
        case 'm': mul = 1LL << 20; break;
        case 'g': mul = 1LL << 30; break;
        case 't': mul = 1LL << 40; break;
        case 'b': return !*rest && (*out = v, true);
        default: return false;
        }
        if (*rest && strcasecmp(rest, "ib") != 0 && strcasecmp(rest, "b") != 0)
            return false;
    }
    if (v > LLONG_MAX / mul)
        return false;
    *out = v * mul;
    return true;
}

pier_err config_set(struct config *c, const char *key, const char *value, struct perr *e)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const struct key *k = &keys[i];
        if (strcmp(k->name, key) != 0)
            continue;
        char *field = (char *)c + k->off;
        long long v = 0;
        char *end;
        switch (k->kind) {
        case K_STR:
            if (strlen(value) >= k->len)
                return perr_set(e, PIER_E_BAD_REQUEST, "%s: value is longer than %zu characters",
                                key, k->len - 1);
            snprintf(field, k->len, "%s", value);
            return PIER_OK;
        case K_INT:
            errno = 0;
            v = strtoll(value, &end, 10);
            if (end == value || *end || errno)
                return perr_set(e, PIER_E_BAD_REQUEST, "%s: '%s' is not an integer", key, value);
            break;
        case K_SIZE:
            if (!config_parse_size(value, &v))
                return perr_set(e, PIER_E_BAD_REQUEST,
                                "%s: '%s' is not a size (e.g. 4194304, 4MiB, 2GiB)", key, value);
            break;
        case K_OCTAL:
            errno = 0;
            v = strtoll(value, &end, 8);
            if (end == value || *end || errno)
                return perr_set(e, PIER_E_BAD_REQUEST, "%s: '%s' is not an octal mode", key, value);
            break;
        case K_BOOL:
            if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") ||
                !strcmp(value, "1"))
                v = 1;
            else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") ||
                     !strcmp(value, "0"))
                v = 0;
            else
                return perr_set(e, PIER_E_BAD_REQUEST, "%s: '%s' is not true or false", key, value);
            *(bool *)field = v != 0;
            return PIER_OK;
        }
        if (v < k->min || v > k->max)
            return perr_set(e, PIER_E_BAD_REQUEST, "%s: %lld is outside %lld..%lld", key, v, k->min,
                            k->max);
        if (k->kind == K_SIZE)
            *(long long *)field = v;
        else
            *(int *)field = (int)v;
        return PIER_OK;
    }
    return perr_set(e, PIER_E_BAD_REQUEST, "unknown configuration key '%s'", key);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

pier_err config_read(struct config *c, FILE *f, const char *name, struct perr *e)
{
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f))
            return perr_set(e, PIER_E_BAD_REQUEST, "%s:%d: line too long", name, lineno);
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return perr_set(e, PIER_E_BAD_REQUEST, "%s:%d: expected 'key = value'", name, lineno);
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = '\0';
            v++;
        }
        struct perr sub;
        if (config_set(c, k, v, &sub) != PIER_OK)
            return perr_set(e, PIER_E_BAD_REQUEST, "%s:%d: %s", name, lineno, sub.msg);
    }
    return PIER_OK;
}

pier_err config_load(struct config *c, const char *path, struct perr *e)
{
    if (path) {
        FILE *f = fopen(path, "r");
        if (!f)
            return perr_set(e, PIER_E_BAD_REQUEST, "cannot open configuration file %s: %s", path,
                            strerror(errno));
        pier_err rc = config_read(c, f, path, e);
        fclose(f);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char env[64] = "PIER_";
        size_t j = 5;
        for (const char *p = keys[i].name; *p && j < sizeof env - 1; p++)
            env[j++] = (char)toupper((unsigned char)*p);
        env[j] = '\0';
        const char *v = getenv(env);
        if (!v)
            continue;
        struct perr sub;
        if (config_set(c, keys[i].name, v, &sub) != PIER_OK)
            return perr_set(e, PIER_E_BAD_REQUEST, "environment %s: %s", env, sub.msg);
    }
    return config_validate(c, e);
}

pier_err config_validate(const struct config *c, struct perr *e)
{
    if (c->blob_root[0] != '/')
        return perr_set(e, PIER_E_BAD_REQUEST, "blob_root must be an absolute path");
    if (c->socket[0] != '/')
        return perr_set(e, PIER_E_BAD_REQUEST, "socket must be an absolute path");
    if (strlen(c->account_id) != 12 || strspn(c->account_id, "0123456789") != 12)
        return perr_set(e, PIER_E_BAD_REQUEST, "account_id must be 12 digits");
    if (!c->region[0] || strspn(c->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(c->region))
        return perr_set(e, PIER_E_BAD_REQUEST, "region must be like us-east-1");
    if (strcmp(c->auth_scheme, "bearer") != 0 && strcmp(c->auth_scheme, "basic") != 0)
        return perr_set(e, PIER_E_BAD_REQUEST, "auth_scheme must be bearer or basic");
    if (log_level_parse(c->log_level) < 0)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "log_level must be one of error, warn, info, debug (got '%s')",
                        c->log_level);
    struct netpolicy np;
    pier_err rc = netpolicy_parse(c->upstream_allow_networks, &np, e);
    if (rc)
        return rc;
    return config_metrics_allow(c, &np, e);
}
