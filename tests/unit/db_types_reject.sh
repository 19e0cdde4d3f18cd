#!/bin/sh
# db_exec's parameters are typed: each snippet below must fail to compile.
# Run by `make check` with CC and the project's CFLAGS in the environment.
set -u
: "${CC:=cc}"
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
fails=0
n=0
reject() {
    n=$((n + 1))
    cat >"$dir/t.c" <<SNIP
#include "db/db.h"
static const struct db_stmt st = {"t", "SELECT \$1", 1};
void t(struct db *db, struct arena *a, struct perr *e);
void t(struct db *db, struct arena *a, struct perr *e)
{
    $2
}
SNIP
    # shellcheck disable=SC2086
    if $CC $PIER_TEST_CFLAGS -c -o "$dir/t.o" "$dir/t.c" 2>/dev/null; then
        echo "not ok - $1 compiles"
        fails=$((fails + 1))
    else
        echo "ok - $1 does not compile"
    fi
}
# The control: a correct call must compile, or every check below is void.
cat >"$dir/ok.c" <<'SNIP'
#include "db/db.h"
static const struct db_stmt st = {"t", "SELECT $1", 1};
void t(struct db *db, struct arena *a, struct perr *e);
void t(struct db *db, struct arena *a, struct perr *e)
{
    long long n = 1;
    db_exec(db, a, &st, e, n);
    db_exec(db, a, &st, e, "text");
    db_exec(db, a, &st, e, DB_NULL);
}
SNIP
# shellcheck disable=SC2086
if $CC $PIER_TEST_CFLAGS -c -o "$dir/ok.o" "$dir/ok.c"; then
    echo "ok - typed parameters compile"
else
    echo "not ok - typed parameters compile"
    exit 1
fi
reject "a double" 'db_exec(db, a, &st, e, 1.5);'
reject "a pointer to int" 'int n = 0; db_exec(db, a, &st, e, &n);'
reject "a bare NULL" 'db_exec(db, a, &st, e, NULL);'
reject "a char" 'char ch = 0x41; db_exec(db, a, &st, e, ch);'
reject "a struct" 'struct perr x = {0}; db_exec(db, a, &st, e, x);'
reject "unsigned bytes as text" 'unsigned char h[4] = {0}; db_exec(db, a, &st, e, h);'
reject "17 parameters" 'db_exec(db, a, &st, e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17);'
[ "$fails" -eq 0 ]
