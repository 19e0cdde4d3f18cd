/* db: libpq wrapper with lazy preparation, arena-owned results and bounded
 * waits. Every round trip waits at most the handle's timeout; a connection
 * that went away while idle (a restarted or failed-over server) is replaced
 * and the statement retried once; inside a transaction a lost connection
 * fails every statement until the caller rolls back. */
#include "db/db.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"

struct db {
    PGconn *conn;
    char *conninfo;
    const struct db_stmt **prepared;  /* prepared on this connection */
    int nprepared, capprepared;
    char sqlstate[6];
    int timeout_ms;       /* per round trip and server statement_timeout; 0: none */
    bool tx_lost;         /* the connection died inside a transaction */
    int tx_depth;         /* open db_tx_begin()s */
    bool tx_doomed;       /* a joined db_tx_end() failed: the outermost rolls back */
    bool connected_once;  /* a later connection is a reconnect (metrics) */
};

enum outcome { RT_DONE, RT_LOST, RT_TIMEOUT };

static void clear_result(void *p)
{
    PQclear(p);
}

static void notice_sink(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs (e.g. "relation exists, skipping") are not errors */
}

static void drop(struct db *db)
{
    if (db->conn)
        PQfinish(db->conn);
    db->conn = NULL;
    db->nprepared = 0;
}

static pier_err unavailable(struct perr *e)
{
    return perr_set(e, PIER_E_UNAVAILABLE, "the registry database is unavailable");
}

/* Wait for the complete answer to what was just sent; *res gets the last
 * result (or the first error). */
static enum outcome collect(struct db *db, PGresult **res)
{
    *res = NULL;
    int64_t deadline = db->timeout_ms ? now_ms() + db->timeout_ms + 1000 : 0;
    for (;;) {
        while (PQisBusy(db->conn)) {
            int wait = -1;
            if (deadline) {
                int64_t left = deadline - now_ms();
                if (left <= 0)
                    goto timeout;
                wait = (int)left;
            }
            struct pollfd p = {.fd = PQsocket(db->conn), .events = POLLIN};
            int n = poll(&p, 1, wait);
            if (n < 0 && errno != EINTR)
                goto lost;
            if (n > 0 && !PQconsumeInput(db->conn))
                goto lost;
        }
        PGresult *r = PQgetResult(db->conn);
        if (!r)
            break;
        /* Keep the first error, else the last result. */
        ExecStatusType kept = *res ? PQresultStatus(*res) : PGRES_COMMAND_OK;
        if (*res && kept != PGRES_COMMAND_OK && kept != PGRES_TUPLES_OK) {
            PQclear(r);
            continue;
        }
        PQclear(*res);
        *res = r;
    }
    if (PQstatus(db->conn) != CONNECTION_OK)
        goto lost;
    return RT_DONE;
timeout:
    PQclear(*res);
    *res = NULL;
    return RT_TIMEOUT;
lost:
    PQclear(*res);
    *res = NULL;
    return RT_LOST;
}

/* One command on a fresh connection, bounded like every other. */
static bool setup_command(struct db *db, const char *sql)
{
    if (!PQsendQuery(db->conn, sql))
        return false;
    PGresult *res;
    enum outcome o = collect(db, &res);
    bool ok = o == RT_DONE && res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (o == RT_DONE && !ok)
        log_error("database session setup (%s) failed: %s", sql,
                  res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
    PQclear(res);
    return ok;
}

static pier_err connect_now(struct db *db, struct perr *e)
{
    drop(db);
    /* Defaults first: the configured conninfo (expanded in place of dbname)
     * overrides any of them. Keepalives find a peer that vanished (a network
     * partition, a failed-over host); connect_timeout bounds each host. */
    const char *kw[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "tcp_user_timeout", "application_name", "dbname",
                        NULL};
    const char *val[] = {"3", "1", "10", "3", "3", "10000", "pier", db->conninfo, NULL};
    db->conn = PQconnectdbParams(kw, val, 1);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        log_error("database connection failed: %s", PQerrorMessage(db->conn));
        metrics_db(MDB_CONNECT_FAILED);
        drop(db);
        return unavailable(e);
    }
    PQsetNoticeProcessor(db->conn, notice_sink, NULL);
    if (db->connected_once)
        metrics_db(MDB_RECONNECT);
    db->connected_once = true;
    if (db->timeout_ms) {
        /* The server gives up on a statement when the client would. */
        char sql[64];
        snprintf(sql, sizeof sql, "SET statement_timeout = %d", db->timeout_ms);
        if (!setup_command(db, sql)) {
            drop(db);
            return unavailable(e);
        }
    }
    return PIER_OK;
}

struct db *db_new(const char *conninfo)
{
    struct db *db = xcalloc(1, sizeof *db);
    db->conninfo = xstrdup(conninfo);
    return db;
}

struct db *db_open(const char *conninfo, struct perr *e)
{
    struct db *db = db_new(conninfo);
    if (connect_now(db, e) != PIER_OK) {
        db_close(db);
        return NULL;
    }
    return db;
}

void db_set_timeout(struct db *db, int ms)
{
    db->timeout_ms = ms > 0 ? ms : 0;
    drop(db); /* the next use connects with the new statement_timeout */
}

void db_close(struct db *db)
{
    if (!db)
        return;
    drop(db);
    free(db->prepared);
    free(db->conninfo);
    free(db);
}

/* An idle connection whose server went away (restart, failover, a killed
 * backend) has usually said so already: the socket is readable. Look
 * without blocking, so that such a connection is replaced before use. */
static bool still_alive(struct db *db)
{
    if (PQstatus(db->conn) != CONNECTION_OK)
        return false;
    if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
        return true;
    struct pollfd p = {.fd = PQsocket(db->conn), .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) > 0) {
        /* The server hung up (its last words, e.g. "terminating connection
         * due to administrator command", may still be unread). */
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
            return false;
        if (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK)
            return false;
        PGresult *r;
        while (!PQisBusy(db->conn) && (r = PQgetResult(db->conn)))
            PQclear(r); /* an asynchronous error (e.g. admin shutdown) */
    }
    return PQstatus(db->conn) == CONNECTION_OK;
}

/* Before a statement: connected (the liveness check is db_ensure's, once
 * per request; a connection that died since is caught by the retry). */
static pier_err usable(struct db *db, bool check_alive, struct perr *e)
{
    if (db->tx_lost)
        return perr_set(e, PIER_E_UNAVAILABLE,
                        "the connection to the registry database was lost during a transaction");
    if (db->conn && (check_alive ? still_alive(db) : PQstatus(db->conn) == CONNECTION_OK))
        return PIER_OK;
    if (db->conn)
        log_warn("the database connection went away; reconnecting");
    return connect_now(db, e);
}

pier_err db_ensure(struct db *db, struct perr *e)
{
    db->tx_lost = false;
    db->tx_depth = 0;
    db->tx_doomed = false;
    if (db->conn && PQstatus(db->conn) == CONNECTION_OK &&
        PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        /* A previous request left a transaction open (a bug); do not inherit it. */
        log_warn("rolling back a transaction left open by a previous request");
        db_rollback(db);
    }
    return usable(db, true, e);
}

static bool is_prepared(struct db *db, const struct db_stmt *st)
{
    for (int i = 0; i < db->nprepared; i++)
        if (db->prepared[i] == st)
            return true;
    return false;
}

static void remember_prepared(struct db *db, const struct db_stmt *st)
{
    if (db->nprepared == db->capprepared) {
        db->capprepared = db->capprepared ? db->capprepared * 2 : 64;
        db->prepared = xrealloc(db->prepared, (size_t)db->capprepared * sizeof *db->prepared);
    }
    db->prepared[db->nprepared++] = st;
}

/* SQLSTATEs that say "not now" rather than "wrong": the server is going
 * away or starting, read-only (a demoted primary), out of resources, or a
 * statement ran out of time. Clients should retry; the first two kinds also
 * mean this connection is of no further use. */
static bool transient_state(const char *s, bool *drop_conn)
{
    *drop_conn = !strncmp(s, "08", 2) || !strcmp(s, "57P01") || !strcmp(s, "57P02") ||
                 !strcmp(s, "57P03") || !strcmp(s, "25006");
    return *drop_conn || !strncmp(s, "53", 2) || !strcmp(s, "57014") || !strcmp(s, "55P03") ||
           !strcmp(s, "40001") || !strcmp(s, "40P01");
}

/* A statement's error result: record it and say what kind of error it is. */
static pier_err failed(struct db *db, PGresult *res, const char *what, struct perr *e)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    bool drop_conn = false;
    if (transient_state(db->sqlstate, &drop_conn)) {
        metrics_db(!strcmp(db->sqlstate, "57014") ? MDB_TIMEOUT : MDB_UNAVAILABLE);
        log_error("database unavailable in %s (%s): %s", what, db->sqlstate,
                  PQresultErrorMessage(res));
        PQclear(res);
        if (drop_conn) {
            if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
                db->tx_lost = true;
            drop(db);
        }
        if (!strcmp(db->sqlstate, "57014"))
            return perr_set(e, PIER_E_UNAVAILABLE, "the registry database did not answer in time");
        return unavailable(e);
    }
    metrics_db(MDB_ERROR);
    log_error("database error in %s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return perr_set(e, PIER_E_INTERNAL, "database error");
}

enum rt_kind { RT_PREPARE, RT_EXEC, RT_COMMAND };

struct rt {
    enum rt_kind kind;
    const struct db_stmt *st;
    const char *sql;
    const char *const *values;
    const int *lengths, *formats;
    bool binary;
};

static enum outcome send_and_collect(struct db *db, const struct rt *q, PGresult **res)
{
    int ok;
    switch (q->kind) {
    case RT_PREPARE:
        ok = PQsendPrepare(db->conn, q->st->name, q->st->sql, q->st->nparams, NULL);
        break;
    case RT_EXEC:
        ok = PQsendQueryPrepared(db->conn, q->st->name, q->st->nparams, q->values, q->lengths,
                                 q->formats, q->binary ? 1 : 0);
        break;
    default:
        ok = PQsendQuery(db->conn, q->sql);
        break;
    }
    if (!ok) {
        *res = NULL;
        return PQstatus(db->conn) == CONNECTION_OK ? RT_DONE : RT_LOST;
    }
    return collect(db, res);
}

/* One round trip: on a connection lost while no transaction was open,
 * reconnect and try once more (the statement cannot have half-happened
 * inside a transaction that no longer exists). A timeout is not retried. */
static PGresult *round_trip(struct db *db, const struct rt *q, struct perr *e)
{
    const char *what = q->st ? q->st->name : "command";
    for (int attempt = 0;; attempt++) {
        if (usable(db, false, e) != PIER_OK)
            return NULL;
        if (q->kind == RT_EXEC && !is_prepared(db, q->st)) {
            struct rt p = {.kind = RT_PREPARE, .st = q->st};
            PGresult *pres = round_trip(db, &p, e);
            if (!pres)
                return NULL;
            PQclear(pres);
            remember_prepared(db, q->st);
        }
        bool idle = PQtransactionStatus(db->conn) == PQTRANS_IDLE;
        PGresult *res = NULL;
        enum outcome o = send_and_collect(db, q, &res);
        if (o == RT_DONE) {
            if (!res) {
                metrics_db(MDB_ERROR);
                log_error("database error in %s: %s", what, PQerrorMessage(db->conn));
                perr_set(e, PIER_E_INTERNAL, "database error");
                return NULL;
            }
            ExecStatusType s = PQresultStatus(res);
            if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
                /* The server ended this session before the statement ran
                 * (shutdown, a terminated backend): same as a lost one. */
                const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                if (idle && attempt == 0 && state &&
                    (!strncmp(state, "57P0", 4) || !strncmp(state, "08", 2))) {
                    log_warn("database session ended before %s (%s); reconnecting and retrying "
                             "once", what, state);
                    PQclear(res);
                    drop(db);
                    continue;
                }
                failed(db, res, what, e);
                return NULL;
            }
            return res;
        }
        if (o == RT_LOST && idle && attempt == 0) {
            log_warn("database connection lost before %s: %s; reconnecting and retrying once",
                     what, PQerrorMessage(db->conn));
            drop(db);
            continue;
        }
        metrics_db(o == RT_TIMEOUT ? MDB_TIMEOUT : MDB_LOST);
        if (o == RT_TIMEOUT)
            log_error("database did not answer %s within %d ms; dropping the connection", what,
                      db->timeout_ms + 1000);
        else
            log_error("database connection lost during %s: %s", what, PQerrorMessage(db->conn));
        if (!idle)
            db->tx_lost = true;
        drop(db);
        if (o == RT_TIMEOUT)
            return perr_set(e, PIER_E_UNAVAILABLE, "the registry database did not answer in time"),
                   NULL;
        unavailable(e);
        return NULL;
    }
}

PGresult *db_execp(struct db *db, struct arena *a, const struct db_stmt *st,
                   const struct db_param *params, bool binary_result, struct perr *e)
{
    PIER_ASSERT(db != NULL && a != NULL && st != NULL && (params != NULL || st->nparams == 0));
    db->sqlstate[0] = '\0';
    if (st->nparams > DB_MAX_PARAMS) {
        perr_set(e, PIER_E_INTERNAL, "statement %s has too many parameters", st->name);
        return NULL;
    }
    const char *values[DB_MAX_PARAMS];
    int lengths[DB_MAX_PARAMS], formats[DB_MAX_PARAMS];
    char numbers[DB_MAX_PARAMS][24];
    for (int i = 0; i < st->nparams; i++) {
        const struct db_param *p = &params[i];
        lengths[i] = p->length;
        formats[i] = p->binary ? 1 : 0;
        switch (p->kind) {
        case DB_INT:
            snprintf(numbers[i], sizeof numbers[i], "%lld", p->num);
            values[i] = numbers[i];
            break;
        case DB_UINT:
            snprintf(numbers[i], sizeof numbers[i], "%llu", (unsigned long long)p->num);
            values[i] = numbers[i];
            break;
        case DB_BOOL:
            values[i] = p->num ? "true" : "false";
            break;
        default:
            values[i] = p->value;
            break;
        }
    }
    struct rt q = {.kind = RT_EXEC, .st = st, .values = values, .lengths = lengths,
                   .formats = formats, .binary = binary_result};
    PGresult *res = round_trip(db, &q, e);
    if (res)
        arena_defer(a, clear_result, res);
    return res;
}

PGresult *db_exec_args(struct db *db, struct arena *a, const struct db_stmt *st, struct perr *e,
                       const struct db_param *params, int n)
{
    if (n != st->nparams) {
        /* A call site that does not match its statement: a bug, caught
         * before anything reaches the server. */
        log_error("statement %s takes %d parameters, %d given", st->name, st->nparams, n);
        perr_set(e, PIER_E_INTERNAL, "database error");
        return NULL;
    }
    return db_execp(db, a, st, params, false, e);
}

pier_err db_command(struct db *db, const char *sql, struct perr *e)
{
    PIER_ASSERT(db != NULL && sql != NULL);
    db->sqlstate[0] = '\0';
    struct rt q = {.kind = RT_COMMAND, .sql = sql};
    PGresult *res = round_trip(db, &q, e);
    if (!res)
        return e->code;
    PQclear(res);
    return PIER_OK;
}

static pier_err db_commit(struct db *db, struct perr *e);

/* BEGIN: the outermost db_tx_begin(). */
static pier_err db_begin(struct db *db, struct perr *e)
{
    pier_err rc = db_command(db, "BEGIN", e);
    if (rc == PIER_OK) {
        db->tx_depth = 1;
        db->tx_doomed = false;
    }
    return rc;
}

pier_err db_tx_begin(struct db *db, struct perr *e)
{
    if (db->tx_depth > 0) {
        db->tx_depth++;
        return PIER_OK;
    }
    return db_begin(db, e);
}

pier_err db_tx_end(struct db *db, pier_err rc, struct perr *e)
{
    if (db->tx_depth > 1) {
        db->tx_depth--;
        if (rc != PIER_OK)
            db->tx_doomed = true;
        return rc;
    }
    if (db->tx_depth == 0) {
        /* An end without a begin (or after a db_rollback()): a bug. */
        log_error("db_tx_end() without an open db_tx_begin()");
        db_rollback(db);
        return rc != PIER_OK ? rc : perr_set(e, PIER_E_INTERNAL, "database error");
    }
    if (rc == PIER_OK && db->tx_doomed)
        rc = perr_set(e, PIER_E_INTERNAL, "a step of the transaction failed; nothing was changed");
    if (rc == PIER_OK && (rc = db_commit(db, e)) == PIER_OK)
        return PIER_OK;
    db_rollback(db);
    return rc;
}

bool db_in_tx(struct db *db)
{
    return db->tx_lost || (db->conn && PQtransactionStatus(db->conn) != PQTRANS_IDLE);
}

/* COMMIT: the outermost db_tx_end() of a transaction that went well. */
static pier_err db_commit(struct db *db, struct perr *e)
{
    db->tx_depth = 0;
    db->tx_doomed = false;
    db->sqlstate[0] = '\0';
    struct rt q = {.kind = RT_COMMAND, .sql = "COMMIT"};
    PGresult *res = round_trip(db, &q, e);
    if (!res)
        return e->code;
    /* COMMIT of a transaction that an error aborted succeeds and says
     * ROLLBACK: nothing was written, and the caller must not think so. */
    bool rolled_back = strcmp(PQcmdStatus(res), "ROLLBACK") == 0;
    PQclear(res);
    if (rolled_back) {
        log_error("a transaction aborted by an earlier error was committed; it was rolled back");
        return perr_set(e, PIER_E_INTERNAL, "database error");
    }
    return PIER_OK;
}

void db_rollback(struct db *db)
{
    db->tx_depth = 0;
    db->tx_doomed = false;
    db->tx_lost = false;
    if (db->conn && PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        struct perr ignore;
        struct rt q = {.kind = RT_COMMAND, .sql = "ROLLBACK"};
        PGresult *res = round_trip(db, &q, &ignore);
        PQclear(res);
    }
    db->tx_lost = false;
}

const char *db_sqlstate(const struct db *db)
{
    return db->sqlstate;
}

const char *db_value(const PGresult *res, int row, int col)
{
    if (!res || row >= PQntuples(res) || PQgetisnull(res, row, col))
        return NULL;
    return PQgetvalue(res, row, col);
}

bool db_isnull(const PGresult *res, int row, int col)
{
    return !res || row >= PQntuples(res) || PQgetisnull(res, row, col);
}

long long db_int(const PGresult *res, int row, int col)
{
    const char *v = db_value(res, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}
