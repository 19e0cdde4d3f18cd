/* audit: the audit trail's two sinks (JSON lines, audit_events) and its
 * queries. */
#include "store/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>
#include "auth/authz.h"
#include "db/db.h"
#include "lib/arena.h"
#include "lib/config.h"
#include "lib/log.h"
#include "lib/util.h"

static const struct db_stmt st_insert = {
    "audit_insert",
    "INSERT INTO audit_events(created_at, request_id, principal, access_key_id, source_address,"
    " action, repository, resource, target, result)"
    " VALUES (to_timestamp($1::bigint / 1000.0), $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    10};
static const struct db_stmt st_expire = {
    "audit_expire",
    "DELETE FROM audit_events WHERE created_at < now() - make_interval(days => $1::int)", 1};
/* A principal given as a bare user or role name matches the end of its ARN. */
static const struct db_stmt st_query = {
    "audit_query",
    "SELECT (extract(epoch FROM created_at) * 1000)::bigint, request_id, principal,"
    " access_key_id, source_address, action, repository, resource, target, result, id"
    " FROM audit_events"
    " WHERE ($1 = '' OR principal = $1 OR (length(principal) > length($1)"
    "        AND right(principal, length($1) + 1) = '/' || $1))"
    "   AND ($2 = '' OR repository = $2)"
    "   AND ($3 = '' OR action = $3"
    "        OR (right($3, 1) = '*' AND starts_with(action, left($3, -1))))"
    "   AND created_at >= to_timestamp($4::bigint)"
    "   AND ($6::bigint = 0 OR (created_at, id) < (to_timestamp($6::bigint / 1000.0), $7::bigint))"
    " ORDER BY created_at DESC, id DESC LIMIT $5::int",
    7};

/* One event as recorded: its strings live in the request's arena. */
struct pending {
    struct pending *next;
    long long ms;
    const char *f[9]; /* request id, principal, key, source, action, repository, resource,
                         target, result */
};

static const char *const FIELD_NAMES[9] = {"requestId",     "principal", "accessKeyId",
                                           "sourceAddress", "action",    "repository",
                                           "resource",      "target",    "result"};

/* This request's events, waiting for audit_end(). */
static struct pending *queue;
static struct pending **queue_tail = &queue;

/* The JSON-lines file of this process: opened on first use, so each
 * generation of workers (a reload, SIGHUP) opens the file anew, after
 * logrotate moved the old one away. */
static int sink_fd = -1;
static char sink_path[PATH_MAX];
static bool sink_warned;
static bool sink_create = true;

void audit_file_create(bool create)
{
    sink_create = create;
}

const char *audit_begin(struct req *r)
{
    queue = NULL;
    queue_tail = &queue;
    const char *u = req_env(r, "UNIQUE_ID");
    bool ok = u && *u && strlen(u) <= 64;
    for (const char *p = u; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
             *p == '@' || *p == '-' || *p == '_';
    const char *id;
    if (ok) {
        id = arena_strdup(r->a, u);
    } else {
        unsigned char rnd[16];
        char *hex = arena_alloc(r->a, sizeof rnd * 2 + 1);
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            memset(rnd, 0, sizeof rnd); /* an id that says nothing, not a failed request */
        hex_encode(rnd, sizeof rnd, hex);
        id = hex;
    }
    resp_header(r, "X-Request-Id", "%s", id);
    return id;
}

/* s cut to AUDIT_FIELD_MAX bytes at a UTF-8 character boundary. */
static const char *bounded(struct arena *a, const char *s)
{
    if (!s)
        return "";
    size_t n = strlen(s);
    if (n <= AUDIT_FIELD_MAX)
        return arena_strdup(a, s);
    n = AUDIT_FIELD_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    char *out = arena_alloc(a, n + 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static void utc_ms(long long ms, char out[80])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static json_t *event_json(long long ms, const char *const f[9])
{
    char when[80];
    utc_ms(ms, when);
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(when));
    for (int i = 0; i < 9; i++)
        json_object_set_new(o, FIELD_NAMES[i], json_string(f[i]));
    return o;
}

static void write_line(const struct config *cfg, const struct pending *p)
{
    if (!cfg->audit_log[0])
        return;
    if (sink_fd >= 0 && strcmp(sink_path, cfg->audit_log) != 0) {
        close(sink_fd);
        sink_fd = -1;
    }
    if (sink_fd < 0) {
        sink_fd = open(cfg->audit_log,
                       O_WRONLY | O_APPEND | O_CLOEXEC | (sink_create ? O_CREAT : 0), 0640);
        if (sink_fd < 0) {
            if (!sink_warned && (sink_create || errno != ENOENT))
                log_error("audit: cannot open audit_log %s: %s", cfg->audit_log, strerror(errno));
            sink_warned = true;
            return;
        }
        snprintf(sink_path, sizeof sink_path, "%s", cfg->audit_log);
        sink_warned = false;
    }
    json_t *o = event_json(p->ms, p->f);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) {
        log_error("audit: the event %s could not be encoded", p->f[4]);
        return;
    }
    size_t n = strlen(text);
    char *line = realloc(text, n + 2);
    if (!line) {
        free(text);
        return;
    }
    line[n++] = '\n';
    /* One write() per line: with O_APPEND every line lands whole at the end. */
    ssize_t w = write(sink_fd, line, n);
    if (w != (ssize_t)n)
        log_error("audit: writing to %s failed: %s", cfg->audit_log,
                  w < 0 ? strerror(errno) : "short write");
    free(line);
}

static void insert(struct ctx *c, const struct pending *p)
{
    struct perr e;
    if (!db_exec(c->db, c->a, &st_insert, &e, p->ms, p->f[0], p->f[1], p->f[2], p->f[3], p->f[4],
                 p->f[5], p->f[6], p->f[7], p->f[8]))
        log_warn("audit: the event %s %s by %s (request %s) was not stored: %s", p->f[4], p->f[6],
                 p->f[1], p->f[0], e.msg);
}

void audit_record(struct ctx *c, const struct audit_event *ev)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct pending *p = arena_alloc(c->a, sizeof *p);
    memset(p, 0, sizeof *p);
    p->ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    const char *principal = ev->principal, *key = ev->key_id;
    if (!principal) {
        if (!c->who)
            principal = AUDIT_SYSTEM;
        else if (c->who->authenticated)
            principal = c->who->p.arn;
        else
            principal = "anonymous";
    }
    if (!key)
        key = c->who && c->who->authenticated ? c->who->key_id : "";
    const char *resource = ev->resource;
    if (!resource)
        resource = ev->repository && ev->repository[0] ? authz_repo_arn(c, ev->repository) : "";
    const char *raw[9] = {
        c->request_id,  principal,  key,
        c->remote_addr, ev->action, ev->repository,
        resource,       ev->target, ev->result && ev->result[0] ? ev->result : AUDIT_SUCCESS};
    for (int i = 0; i < 9; i++)
        p->f[i] = bounded(c->a, raw[i]);
    write_line(c->cfg, p);
    if (c->request_id) {
        *queue_tail = p;
        queue_tail = &p->next;
    } else {
        insert(c, p);
    }
}

void audit_end(struct ctx *c)
{
    for (struct pending *p = queue; p; p = p->next)
        insert(c, p);
    queue = NULL;
    queue_tail = &queue;
}

pier_err audit_expire(struct ctx *c, long long *removed, struct perr *e)
{
    *removed = 0;
    if (c->cfg->audit_retention_days <= 0)
        return PIER_OK;
    PGresult *res = db_exec(c->db, c->a, &st_expire, e, c->cfg->audit_retention_days);
    if (!res)
        return e->code;
    *removed = atoll(PQcmdTuples(res));
    return PIER_OK;
}

pier_err audit_query(struct ctx *c, const struct audit_filter *f, json_t **out, struct perr *e)
{
    *out = NULL;
    int limit = f->limit < 1 ? 1 : f->limit > AUDIT_QUERY_MAX ? AUDIT_QUERY_MAX : f->limit;
    PGresult *res = db_exec(c->db, c->a, &st_query, e, f->principal ? f->principal : "",
                            f->repository ? f->repository : "", f->action ? f->action : "",
                            f->since, limit, f->before_ms, f->before_id);
    if (!res)
        return e->code;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *fields[9];
        for (int j = 0; j < 9; j++)
            fields[j] = db_value(res, i, j + 1);
        json_t *o = event_json(db_int(res, i, 0), fields);
        /* Where the next page starts: events older than this one. */
        json_object_set_new(o, "cursor", json_sprintf("%lld.%lld", db_int(res, i, 0),
                                                      db_int(res, i, 10)));
        json_array_append_new(arr, o);
    }
    *out = arr;
    return PIER_OK;
}

bool audit_parse_since(const char *s, long long now, long long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end != s && !errno && v >= 0) {
        if (!*end) {
            *out = v;
            return true;
        }
        if (!end[1] && v <= 100LL * 365 * 86400) {
            long long unit = *end == 's'   ? 1
                             : *end == 'm' ? 60
                             : *end == 'h' ? 3600
                             : *end == 'd' ? 86400
                                           : 0;
            if (unit && v <= 100LL * 365 * 86400 / unit) {
                *out = now - v * unit;
                return true;
            }
        }
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%d", &tm);
    if (!rest)
        return false;
    if (*rest) {
        rest = strptime(rest, "T%H:%M:%S", &tm);
        if (!rest)
            return false;
        if (*rest == 'Z')
            rest++;
        if (*rest)
            return false;
    }
    time_t t = timegm(&tm);
    if (t < 0)
        return false;
    *out = (long long)t;
    return true;
}
