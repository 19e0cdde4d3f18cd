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
#include "lib/contract.h"
#include "lib/err.h"

/* A statement is declared once, static const, next to the code that owns its
 * table; db_exec prepares it on first use on each connection. Parameters are
 * always passed separately from the SQL text. */
struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

/* One parameter of one execution. Values travel as text unless binary is
 * set; a number is kept as a number and formatted by db_exec* itself, so that
 * no caller formats integers by hand. Build them with DB_ARG(x) (typed, see
 * below) or DB_BYTES(p, n); a plain {.value = s} is text. */
enum db_kind {
    DB_TEXT = 0, /* value: NUL-terminated text, NULL = SQL NULL */
    DB_INT,      /* num */
    DB_UINT,     /* num, read back as unsigned long long */
    DB_BOOL,     /* num != 0: true */
};

struct db_param {
    const char *value;  /* DB_TEXT: text; binary: the bytes; NULL = SQL NULL */
    int length;         /* only for binary */
    bool binary;
    enum db_kind kind;
    long long num;
};

static inline struct db_param db_param_text(const char *s)
{
    return (struct db_param){.kind = DB_TEXT, .value = s};
}
static inline struct db_param db_param_int(long long n)
{
    return (struct db_param){.kind = DB_INT, .num = n};
}
static inline struct db_param db_param_uint(unsigned long long n)
{
    return (struct db_param){.kind = DB_UINT, .num = (long long)n};
}
static inline struct db_param db_param_bool(bool b)
{
    return (struct db_param){.kind = DB_BOOL, .num = b};
}

/* SQL NULL as an explicit parameter: a bare NULL (void *) does not compile. */
#define DB_NULL ((const char *)0)
/* n bytes at p as a binary (bytea) parameter; p == NULL is SQL NULL. */
#define DB_BYTES(p, n) ((struct db_param){.value = (const char *)(p), .length = (int)(n), \
                                          .binary = true})
/* The typed parameter for x: text for char * and const char *, a number for
 * the signed and unsigned integer types (int, long, long long, short, their
 * unsigned forms, enums), a boolean for bool. Any other type (a double, a
 * char, a pointer to int, a struct, a bare NULL) does not compile. */
#ifdef __CPPCHECK__
/* cppcheck 2.10 (make lint defines __CPPCHECK__) cannot parse _Generic with
 * multi-word types: its AST breaks and the whole file goes unchecked. It
 * sees x used; the compiler checks the type. */
#define DB_ARG(x) ((void)(x), db_param_text(DB_NULL))
#else
#define DB_ARG(x) _Generic((x), \
    char *: db_param_text, const char *: db_param_text, \
    short: db_param_int, int: db_param_int, long: db_param_int, long long: db_param_int, \
    unsigned short: db_param_uint, unsigned int: db_param_uint, \
    unsigned long: db_param_uint, unsigned long long: db_param_uint, \
    bool: db_param_bool)(x)
#endif

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

/* Execute st: db_exec(db, a, st, e, p1, p2, ...) with up to DB_MAX_PARAMS
 * parameters, each converted by DB_ARG (a number is passed as a number, never
 * formatted by the caller). The number of parameters must be st->nparams,
 * else PIER_E_INTERNAL without a round trip. The result is owned by arena a.
 * Returns NULL with e set (PIER_E_UNAVAILABLE when the connection failed,
 * PIER_E_INTERNAL otherwise). */
#define db_exec(db, a, st, ...) db_exec_args((db), (a), (st), DB_ARGS_(__VA_ARGS__))
#define DB_MAX_PARAMS 16
PGresult *db_exec_args(struct db *db, struct arena *a, const struct db_stmt *st, struct perr *e,
                       const struct db_param *params, int n);
/* Same with an array of st->nparams parameters (for binary ones, e.g.
 * DB_BYTES); binary_result asks for binary columns. */
PGresult *db_execp(struct db *db, struct arena *a, const struct db_stmt *st,
                   const struct db_param *params, bool binary_result, struct perr *e);
/* Run a parameterless command (BEGIN, COMMIT, ROLLBACK, migration text). */
PIER_MUST_USE
pier_err db_command(struct db *db, const char *sql, struct perr *e);

/* Transactions are a pair: every db_tx_begin() that returned PIER_OK is
 * followed by exactly one db_tx_end(), on every path:
 *
 *     if ((rc = db_tx_begin(c->db, e)))
 *         return rc;
 *     rc = step_one(c, e);
 *     if (!rc)
 *         rc = step_two(c, e);
 *     return db_tx_end(c->db, rc, e);
 *
 * A db_tx_begin() while a transaction is open joins it: its db_tx_end() only
 * passes rc on, and the outermost pair commits or rolls back everything (a
 * joined pair that ended with an error makes the outermost roll back too).
 * So a store function can be a transaction of its own or a step of a larger
 * one. */
PIER_MUST_USE
pier_err db_tx_begin(struct db *db, struct perr *e);
/* End the innermost db_tx_begin(). Outermost: commit when rc is PIER_OK and
 * return the commit's result; otherwise (or when the commit fails, or a
 * joined pair failed) roll back and return the error, with e describing it.
 * rc != PIER_OK is returned unchanged, e untouched. */
PIER_MUST_USE
pier_err db_tx_end(struct db *db, pier_err rc, struct perr *e);
/* True while a transaction is open on this connection. */
bool db_in_tx(struct db *db);
/* Roll back whatever transaction is open, however deeply joined (after a
 * request, or when a connection is reused); never fails the caller. */
void db_rollback(struct db *db);

/* SQLSTATE of the last failed statement ("" if none), e.g. "23505". */
const char *db_sqlstate(const struct db *db);

/* Value helpers: column of row 0, NULL when the result has no rows. */
const char *db_value(const PGresult *res, int row, int col);
bool db_isnull(const PGresult *res, int row, int col);
long long db_int(const PGresult *res, int row, int col);

/* The machinery behind db_exec: e followed by 0..16 parameters becomes
 * "e, (const struct db_param[]){DB_ARG(p1), ...}, n" (or "e, NULL, 0"). */
#define DB_CAT_(x, y) DB_CAT2_(x, y)
#define DB_CAT2_(x, y) x##y
#define DB_COUNT_(...) DB_COUNT_N_(__VA_ARGS__, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, \
                                   3, 2, 1, 0, ~)
#define DB_COUNT_N_(e, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16, n, \
                    ...) n
#define DB_ARGS_(...) DB_CAT_(DB_ARGS_, DB_COUNT_(__VA_ARGS__))(__VA_ARGS__)
#define DB_ARGS_0(e) (e), NULL, 0
#define DB_ARGS_N_(e, n, ...) (e), (const struct db_param[]){__VA_ARGS__}, n
#define DB_ARGS_1(e, a) DB_ARGS_N_(e, 1, DB_ARG(a))
#define DB_ARGS_2(e, a, ...) DB_ARGS_N_(e, 2, DB_ARG(a), DB_MAP_1(__VA_ARGS__))
#define DB_ARGS_3(e, a, ...) DB_ARGS_N_(e, 3, DB_ARG(a), DB_MAP_2(__VA_ARGS__))
#define DB_ARGS_4(e, a, ...) DB_ARGS_N_(e, 4, DB_ARG(a), DB_MAP_3(__VA_ARGS__))
#define DB_ARGS_5(e, a, ...) DB_ARGS_N_(e, 5, DB_ARG(a), DB_MAP_4(__VA_ARGS__))
#define DB_ARGS_6(e, a, ...) DB_ARGS_N_(e, 6, DB_ARG(a), DB_MAP_5(__VA_ARGS__))
#define DB_ARGS_7(e, a, ...) DB_ARGS_N_(e, 7, DB_ARG(a), DB_MAP_6(__VA_ARGS__))
#define DB_ARGS_8(e, a, ...) DB_ARGS_N_(e, 8, DB_ARG(a), DB_MAP_7(__VA_ARGS__))
#define DB_ARGS_9(e, a, ...) DB_ARGS_N_(e, 9, DB_ARG(a), DB_MAP_8(__VA_ARGS__))
#define DB_ARGS_10(e, a, ...) DB_ARGS_N_(e, 10, DB_ARG(a), DB_MAP_9(__VA_ARGS__))
#define DB_ARGS_11(e, a, ...) DB_ARGS_N_(e, 11, DB_ARG(a), DB_MAP_10(__VA_ARGS__))
#define DB_ARGS_12(e, a, ...) DB_ARGS_N_(e, 12, DB_ARG(a), DB_MAP_11(__VA_ARGS__))
#define DB_ARGS_13(e, a, ...) DB_ARGS_N_(e, 13, DB_ARG(a), DB_MAP_12(__VA_ARGS__))
#define DB_ARGS_14(e, a, ...) DB_ARGS_N_(e, 14, DB_ARG(a), DB_MAP_13(__VA_ARGS__))
#define DB_ARGS_15(e, a, ...) DB_ARGS_N_(e, 15, DB_ARG(a), DB_MAP_14(__VA_ARGS__))
#define DB_ARGS_16(e, a, ...) DB_ARGS_N_(e, 16, DB_ARG(a), DB_MAP_15(__VA_ARGS__))
#define DB_MAP_1(a) DB_ARG(a)
#define DB_MAP_2(a, ...) DB_ARG(a), DB_MAP_1(__VA_ARGS__)
#define DB_MAP_3(a, ...) DB_ARG(a), DB_MAP_2(__VA_ARGS__)
#define DB_MAP_4(a, ...) DB_ARG(a), DB_MAP_3(__VA_ARGS__)
#define DB_MAP_5(a, ...) DB_ARG(a), DB_MAP_4(__VA_ARGS__)
#define DB_MAP_6(a, ...) DB_ARG(a), DB_MAP_5(__VA_ARGS__)
#define DB_MAP_7(a, ...) DB_ARG(a), DB_MAP_6(__VA_ARGS__)
#define DB_MAP_8(a, ...) DB_ARG(a), DB_MAP_7(__VA_ARGS__)
#define DB_MAP_9(a, ...) DB_ARG(a), DB_MAP_8(__VA_ARGS__)
#define DB_MAP_10(a, ...) DB_ARG(a), DB_MAP_9(__VA_ARGS__)
#define DB_MAP_11(a, ...) DB_ARG(a), DB_MAP_10(__VA_ARGS__)
#define DB_MAP_12(a, ...) DB_ARG(a), DB_MAP_11(__VA_ARGS__)
#define DB_MAP_13(a, ...) DB_ARG(a), DB_MAP_12(__VA_ARGS__)
#define DB_MAP_14(a, ...) DB_ARG(a), DB_MAP_13(__VA_ARGS__)
#define DB_MAP_15(a, ...) DB_ARG(a), DB_MAP_14(__VA_ARGS__)

#endif
