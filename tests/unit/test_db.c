/* Unit tests for the database API that need no server: typed parameters,
 * the parameter count check, and transaction pairs that do not match. */
#include <stddef.h>
#include "db/db.h"
#include "tap.h"

static const struct db_stmt st_two = {"test_two", "SELECT $1::int, $2", 2};

int main(void)
{
    int i = -7;
    long long ll = 1LL << 40;
    size_t z = 42;
    unsigned u = 3;
    bool b = true;
    const char *s = "text";
    char buf[8] = "buf";

    struct db_param p = DB_ARG(i);
    CHECK("int is a number", p.kind == DB_INT && p.num == -7 && !p.value && !p.binary);
    p = DB_ARG(ll);
    CHECK("long long is a number", p.kind == DB_INT && p.num == 1LL << 40);
    p = DB_ARG(z);
    CHECK("size_t is an unsigned number", p.kind == DB_UINT && p.num == 42);
    p = DB_ARG(u);
    CHECK("unsigned is an unsigned number", p.kind == DB_UINT && p.num == 3);
    p = DB_ARG(b);
    CHECK("bool is a boolean", p.kind == DB_BOOL && p.num == 1);
    p = DB_ARG(s);
    CHECK("const char * is text", p.kind == DB_TEXT && p.value == s);
    p = DB_ARG(buf);
    CHECK("char array is text", p.kind == DB_TEXT && p.value == buf);
    p = DB_ARG("literal");
    CHECK("string literal is text", p.kind == DB_TEXT && !strcmp(p.value, "literal"));
    p = DB_ARG(DB_NULL);
    CHECK("DB_NULL is SQL NULL", p.kind == DB_TEXT && p.value == NULL);
    unsigned char bytes[3] = {0, 1, 2};
    p = DB_BYTES(bytes, sizeof bytes);
    CHECK("bytes are binary", p.binary && p.length == 3 && p.value == (const char *)bytes);

    /* No server listens at this path: a statement that gets as far as the
     * connection fails with UNAVAILABLE, one with the wrong number of
     * parameters fails before that, as a bug. */
    struct db *db = db_new("host=/nonexistent/pier-unit-test connect_timeout=1");
    struct arena *a = arena_new();
    struct perr e;
    perr_clear(&e);
    CHECK("too few parameters refused", !db_exec(db, a, &st_two, &e, 1) &&
                                            e.code == PIER_E_INTERNAL);
    perr_clear(&e);
    CHECK("too many parameters refused", !db_exec(db, a, &st_two, &e, 1, "x", 2) &&
                                             e.code == PIER_E_INTERNAL);
    perr_clear(&e);
    CHECK("matching parameters reach the connection", !db_exec(db, a, &st_two, &e, 1, "x") &&
                                                          e.code == PIER_E_UNAVAILABLE);

    perr_clear(&e);
    CHECK("a failed begin opens nothing", db_tx_begin(db, &e) == PIER_E_UNAVAILABLE &&
                                              !db_in_tx(db));
    perr_clear(&e);
    CHECK("an end without a begin is a bug", db_tx_end(db, PIER_OK, &e) == PIER_E_INTERNAL);
    perr_clear(&e);
    CHECK("an end without a begin keeps the caller's error",
          db_tx_end(db, PIER_E_DENIED, &e) == PIER_E_DENIED);

    arena_free(a);
    db_close(db);
    return TAP_DONE();
}
