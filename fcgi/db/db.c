/* db: libpq wrapper with lazy preparation and arena-owned results. */
#include "db/db.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib/log.h"

#define DB_MAX_PARAMS 16
#define DB_MAX_PREPARED 256

struct db {
    PGconn *conn;
    char *conninfo;
    const struct db_stmt *prepared[DB_MAX_PREPARED];
    int nprepared;
    char sqlstate[6];
};

static void clear_result(void *p)
{
    PQclear(p);
}

static void notice_sink(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs (e.g. "relation exists, skipping") are not errors */
}

static pier_err connect_now(struct db *db, struct perr *e)
{
    if (db->conn)
        PQfinish(db->conn);
    db->nprepared = 0;
    db->conn = PQconnectdb(db->conninfo);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(db->conn);
        log_error("database connection failed: %s", msg);
        return perr_set(e, PIER_E_UNAVAILABLE, "the registry database is unavailable");
    }
    PQsetNoticeProcessor(db->conn, notice_sink, NULL);
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

void db_close(struct db *db)
{
    if (!db)
        return;
    if (db->conn)
        PQfinish(db->conn);
    free(db->conninfo);
    free(db);
}

PGconn *db_conn(struct db *db)
{
    return db->conn;
}

pier_err db_ensure(struct db *db, struct perr *e)
{
    if (db->conn && PQstatus(db->conn) == CONNECTION_OK &&
        PQtransactionStatus(db->conn) == PQTRANS_IDLE)
        return PIER_OK;
    if (db->conn && PQstatus(db->conn) == CONNECTION_OK) {
        /* A previous request left a transaction open (a bug); do not inherit it. */
        log_warn("rolling back a transaction left open by a previous request");
        PGresult *r = PQexec(db->conn, "ROLLBACK");
        PQclear(r);
        if (PQtransactionStatus(db->conn) == PQTRANS_IDLE)
            return PIER_OK;
    }
    if (db->conn)
        log_warn("reconnecting to the database");
    return connect_now(db, e);
}

static bool is_prepared(struct db *db, const struct db_stmt *st)
{
    for (int i = 0; i < db->nprepared; i++)
        if (db->prepared[i] == st)
            return true;
    return false;
}

static pier_err fail(struct db *db, PGresult *res, const char *what, struct perr *e)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(db->sqlstate, sizeof db->sqlstate, "%s", state ? state : "");
    if (PQstatus(db->conn) != CONNECTION_OK) {
        log_error("database connection lost during %s: %s", what, PQerrorMessage(db->conn));
        if (res)
            PQclear(res);
        return perr_set(e, PIER_E_UNAVAILABLE, "the registry database is unavailable");
    }
    log_error("database error in %s: %s", what,
              res ? PQresultErrorMessage(res) : PQerrorMessage(db->conn));
    if (res)
        PQclear(res);
    return perr_set(e, PIER_E_INTERNAL, "database error");
}

static bool prepare(struct db *db, const struct db_stmt *st, struct perr *e)
{
    if (is_prepared(db, st))
        return true;
    PGresult *res = PQprepare(db->conn, st->name, st->sql, st->nparams, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fail(db, res, st->name, e);
        return false;
    }
    PQclear(res);
    if (db->nprepared < DB_MAX_PREPARED)
        db->prepared[db->nprepared++] = st;
    return true;
}

PGresult *db_execp(struct db *db, struct arena *a, const struct db_stmt *st,
                   const struct db_param *params, bool binary_result, struct perr *e)
{
    db->sqlstate[0] = '\0';
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK) {
        perr_set(e, PIER_E_UNAVAILABLE, "the registry database is unavailable");
        return NULL;
    }
    if (st->nparams > DB_MAX_PARAMS) {
        perr_set(e, PIER_E_INTERNAL, "statement %s has too many parameters", st->name);
        return NULL;
    }
    if (!prepare(db, st, e))
        return NULL;
    const char *values[DB_MAX_PARAMS];
    int lengths[DB_MAX_PARAMS], formats[DB_MAX_PARAMS];
    for (int i = 0; i < st->nparams; i++) {
        values[i] = params[i].value;
        lengths[i] = params[i].length;
        formats[i] = params[i].binary ? 1 : 0;
    }
    PGresult *res = PQexecPrepared(db->conn, st->name, st->nparams, values, lengths, formats,
                                   binary_result ? 1 : 0);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        fail(db, res, st->name, e);
        return NULL;
    }
    arena_defer(a, clear_result, res);
    return res;
}

PGresult *db_exec(struct db *db, struct arena *a, const struct db_stmt *st, struct perr *e, ...)
{
    struct db_param params[DB_MAX_PARAMS];
    memset(params, 0, sizeof params);
    va_list ap;
    va_start(ap, e);
    for (int i = 0; i < st->nparams && i < DB_MAX_PARAMS; i++)
        params[i].value = va_arg(ap, const char *);
    va_end(ap);
    return db_execp(db, a, st, params, false, e);
}

pier_err db_command(struct db *db, const char *sql, struct perr *e)
{
    db->sqlstate[0] = '\0';
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
        return perr_set(e, PIER_E_UNAVAILABLE, "the registry database is unavailable");
    PGresult *res = PQexec(db->conn, sql);
    ExecStatusType s = PQresultStatus(res);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        return fail(db, res, "command", e);
    PQclear(res);
    return PIER_OK;
}

pier_err db_begin(struct db *db, struct perr *e)
{
    return db_command(db, "BEGIN", e);
}

bool db_in_tx(struct db *db)
{
    return db->conn && PQtransactionStatus(db->conn) != PQTRANS_IDLE;
}

pier_err db_commit(struct db *db, struct perr *e)
{
    return db_command(db, "COMMIT", e);
}

void db_rollback(struct db *db)
{
    if (db->conn && PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(db->conn, "ROLLBACK");
        PQclear(res);
    }
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
