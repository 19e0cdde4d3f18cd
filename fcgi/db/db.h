/* db: one PostgreSQL connection per process, prepared statements declared by
 * the module that owns each table, results freed with the request arena.
 *
 * Failures: every round trip waits at most the handle's timeout (then the
 * connection is dropped: PIER_E_UNAVAILABLE); a connection that went away
 * while no transaction was open is replaced and the statement retried once;
 * one lost inside a transaction fails every further statement with
 * PIER_E_UNAVAILABLE until db_rollback() or db_ensure(), so that the rest of
 * a transaction can never commit on a new connection. Server states that mean
 * "not now" (shutting down, starting, read-only, out of resources, statement
 * timeout, deadlock) are PIER_E_UNAVAILABLE too; PIER_E_INTERNAL is left for
 * errors a retry would not fix. */
#ifndef PIER_DB_H
#define PIER_DB_H

#include <stdbool.h>
#include <libpq-fe.h>
#include "lib/arena.h"
#include "lib/err.h"

/* A statement is declared once, static const, next to the code that owns its
 * table; db_exec prepares it on first use on each connection. Parameters are
 * always passed separately from the SQL text. */
struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

/* Parameters of one execution: text values (NULL = SQL NULL), optional
 * lengths and binary flags for bytea. */
struct db_param {
    const char *value;
    int length;   /* only for binary */
    bool binary;
};

struct db;

/* Connect now. Returns NULL and sets e if the connection fails (for tools
 * that cannot do anything without the database). */
struct db *db_open(const char *conninfo, struct perr *e);
/* A handle that connects on the first db_ensure() (for long-running workers,
 * which must start even while the database is down). */
struct db *db_new(const char *conninfo);
void db_close(struct db *db);
/* Bound every round trip to ms (+1 s for the network) and make the server
 * cancel statements after ms; 0 (the default): wait as long as it takes. */
void db_set_timeout(struct db *db, int ms);
/* At the start of a request: forget a transaction lost by the previous one,
 * make sure the connection is usable, reconnect if the server went away. */
PIER_MUST_USE
pier_err db_ensure(struct db *db, struct perr *e);

/* Execute st with n text parameters given as varargs (const char *, NULL for
 * SQL NULL). The result is owned by arena a. Returns NULL with e set
 * (PIER_E_UNAVAILABLE when the connection failed, PIER_E_INTERNAL otherwise). */
PGresult *db_exec(struct db *db, struct arena *a, const struct db_stmt *st, struct perr *e, ...);
/* Same with explicit parameters; binary_result asks for binary columns. */
PGresult *db_execp(struct db *db, struct arena *a, const struct db_stmt *st,
                   const struct db_param *params, bool binary_result, struct perr *e);
/* Run a parameterless command (BEGIN, COMMIT, ROLLBACK, migration text). */
PIER_MUST_USE
pier_err db_command(struct db *db, const char *sql, struct perr *e);

PIER_MUST_USE
pier_err db_begin(struct db *db, struct perr *e);
/* True while a transaction is open on this connection. */
bool db_in_tx(struct db *db);
PIER_MUST_USE
pier_err db_commit(struct db *db, struct perr *e);
/* Roll back if a transaction is open; never fails the caller. */
void db_rollback(struct db *db);

/* SQLSTATE of the last failed statement ("" if none), e.g. "23505". */
const char *db_sqlstate(const struct db *db);

/* Value helpers: column of row 0, NULL when the result has no rows. */
const char *db_value(const PGresult *res, int row, int col);
bool db_isnull(const PGresult *res, int row, int col);
long long db_int(const PGresult *res, int row, int col);

#endif
