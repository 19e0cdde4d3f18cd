#!/usr/bin/env bash
# test.sh — install what is missing, build (with AddressSanitizer and UBSan)
# and run the whole test suite: C unit tests, then integration tests against
# real PostgreSQL, Apache, pierd pools (two nodes) and real clients.
# Ends with the line "N passed, N failed"; exit status 0 only when none failed.
#
#   ./test.sh [pattern]      pattern filters integration tests by name
#
# Every runner's exit status counts, and so does the number of results each
# suite reports: fewer than tests/expected_counts names is a failure (for the
# integration and browser suites only in a run without a pattern). A pattern
# that matches no integration test fails the run.
# Environment: PIER_TEST_DIR (default /tmp/pier-test) holds every state
# directory the run creates; PIER_TEST_PORT (default 5100) is the first of the
# ports used (node A, node B = +1, upstreams = +10...).
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$SRC"
T=${PIER_TEST_DIR:-/tmp/pier-test}
BASE_PORT=${PIER_TEST_PORT:-5100}
PORT_A=$BASE_PORT
PORT_B=$((BASE_PORT + 1))
BUILD=${PIER_TEST_BUILD_DIR:-$SRC/build-san}
PATTERN=${1:-}

passed=0
failed=0
# count SUITE: reads TAP-ish lines, echoes them, and records each result as
# "p SUITE" or "f SUITE" in a temp file (the pipeline runs in a subshell).
count() {
    local line suite=${1:-run}
    while IFS= read -r line; do
        printf '%s\n' "$line"
        case $line in
        "ok - "*) echo "p $suite" >>"$T/.counts" ;;
        "not ok - "*) echo "f $suite" >>"$T/.counts" ;;
        esac
    done
}

# A runner that exits non-zero without having reported a failure (a crash
# after k checks, "no tests matched", a suite that could not start) is a
# failure of its own: name rc failures-counted-before.
failures_so_far() { grep -c '^f ' "$T/.counts"; }
check_exit() {
    if [ "$2" -ne 0 ] && [ "$(failures_so_far)" -eq "$3" ]; then
        echo "not ok - $1 exited with status $2 without reporting a failure" | count
    fi
}

# A suite that ran fewer tests than tests/expected_counts names has lost some
# (a runner that stopped early, a test file that no longer imports, a binary the
# build forgot): that is a failure of its own. More than expected is fine, and
# says so, so that the minimum can be raised with the tests that raised it.
check_count() { # suite
    local suite=$1 want got
    want=$(awk -v s="$suite" '$1 == s { print $2 }' "$SRC/tests/expected_counts" 2>/dev/null)
    got=$(grep -c " $suite\$" "$T/.counts")
    if [ -z "$want" ]; then
        echo "not ok - expected_count_$suite: tests/expected_counts names no minimum for it" | count
    elif [ "$got" -lt "$want" ]; then
        echo "not ok - expected_count_$suite: $got results, tests/expected_counts expects at least $want" | count
    else
        echo "ok - expected_count_$suite: $got results (at least $want expected)" | count
        [ "$got" -gt "$want" ] && echo "# $suite: $got results, more than the $want in tests/expected_counts: raise it"
    fi
}

./quickstart.sh deps test || exit 1
PIER_BUILD_DIR=$BUILD PIER_CONFIGURE_FLAGS=--enable-sanitizers ./quickstart.sh build || exit 1
make -s -C "$BUILD" -j"$(nproc)" check TESTS= >/dev/null || { echo "building the unit tests failed"; exit 1; }

node() { # name port [extra env...]
    local name=$1 port=$2
    shift 2
    env PIER_STATE_DIR="$T/$name" PIER_PORT="$port" PIER_BUILD_DIR="$BUILD" PIER_WORKERS=4 "$@" \
        "$SRC/quickstart.sh" "${ACTION:-start}"
}
stop_all() {
    # Tests stop the nodes and clusters they start; these loops only matter when a
    # run was killed before its tests could (tests/integration/halib.py, ExtraNode).
    local d
    for d in "$T"/extra-*/; do
        [ -d "$d" ] && PIER_STATE_DIR="$d" PIER_DATABASE=none "$SRC/quickstart.sh" stop >/dev/null 2>&1
    done
    for d in "$T"/ha/*/data; do
        [ -f "$d/postmaster.pid" ] || continue
        if [ "$(id -u)" = 0 ]; then
            runuser -u postgres -- "$(pg_ctl_bin)" -D "$d" -m immediate stop >/dev/null 2>&1
        else
            "$(pg_ctl_bin)" -D "$d" -m immediate stop >/dev/null 2>&1
        fi
    done
    ACTION=stop node b "$PORT_B" PIER_DATABASE="$DB_A" PIER_BLOB_ROOT="$T/a/blobs" >/dev/null 2>&1
    ACTION=stop node a "$PORT_A" >/dev/null 2>&1
}
pg_ctl_bin() { ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1; }

DB_A="host=$T/a/pgrun port=5432 user=pier dbname=pier"
# A clean slate every run: stop whatever a previous run left, then wipe.
[ -d "$T" ] && stop_all
rm -rf "$T"
mkdir -p "$T/san"
chmod 755 "$T"
: >"$T/.counts"
# Sanitizer reports from pierd go to files, so that a report fails the run.
export ASAN_OPTIONS="log_path=$T/san/asan:detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="log_path=$T/san/ubsan:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$SRC/tests/lsan.supp"
# Short fetch leases so that tests of crashed downloads do not wait 30 s.
export PIER_LEASE_TTL=5
# Upstreams run on 127.0.0.1; every other internal address stays refused, so
# the address-policy tests can aim at 127.0.0.2, ::1, 10.x, 169.254.169.254.
export PIER_UPSTREAM_ALLOW_NETWORKS=127.0.0.1/32

echo "# unit tests"
# One binary per tests/unit/test_*.c: one the build did not make is a failure.
for src in "$SRC"/tests/unit/test_*.c; do
    t=$BUILD/tests/unit/$(basename "$src" .c)
    if [ ! -x "$t" ]; then
        echo "not ok - ${t##*/}: the build made no such binary" | count unit
        continue
    fi
    before=$(failures_so_far)
    "$t" 2>&1 | count unit
    check_exit "${t##*/}" "${PIPESTATUS[0]}" "$before"
done

# Fuzz targets: each seed corpus (tests/fuzz/corpus/<target>/) replayed once,
# seconds in all; bench/fuzz.sh is what fuzzes for real.
echo "# fuzz corpus replay"
for corpus in "$SRC"/tests/fuzz/corpus/*/; do
    name=$(basename "$corpus")
    t=$BUILD/tests/fuzz/replay_$name
    if [ ! -x "$t" ]; then
        echo "not ok - fuzz_replay_$name: the build made no such binary" | count fuzz
        continue
    fi
    rc=0
    out=$(timeout 120 "$t" "$SRC/tests/fuzz/corpus/$name" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] && [[ $out != *"not ok - "* ]]; then
        out="${out//ok - /# ok - }"$'\n'"not ok - fuzz_replay_$name (exit status $rc)"
    fi
    printf '%s\n' "$out" | count fuzz
done
check_count unit
check_count fuzz

echo "# starting node a (127.0.0.1:$PORT_A) and node b (127.0.0.1:$PORT_B, same database and blob root)"
trap stop_all EXIT
if ! node a "$PORT_A" >"$T/node-a.out" 2>&1; then
    cat "$T/node-a.out"
    echo "not ok - start_node_a" | count
elif ! node b "$PORT_B" PIER_DATABASE="$DB_A" PIER_BLOB_ROOT="$T/a/blobs" \
    PIER_SERVER_KEY_FILE="$T/a/server.key" >"$T/node-b.out" 2>&1; then
    cat "$T/node-b.out"
    echo "not ok - start_node_b" | count
else
    echo "# integration tests"
    before=$(failures_so_far)
    PIER_URL="http://127.0.0.1:$PORT_A" PIER_URL_B="http://127.0.0.1:$PORT_B" \
        PIER_BLOB_ROOT="$T/a/blobs" PIER_DB="$DB_A" PIER_STATE_DIR="$T/a" \
        PIER_STATE_DIR_B="$T/b" PIER_BUILD_DIR="$BUILD" PIER_TEST_DIR="$T" PIER_SRC="$SRC" \
        PIER_ADMIN_ENV="$T/a/admin.env" \
        python3 "$SRC/tests/integration/harness.py" $PATTERN 2>&1 | count integration
    check_exit integration_tests "${PIPESTATUS[0]}" "$before"
    # The admin console in a real browser (headless Chromium, playwright-core);
    # skipped only when a pattern selects some integration tests.
    if [ -z "$PATTERN" ] || [[ "console" == *"$PATTERN"* ]]; then
        echo "# browser tests"
        before=$(failures_so_far)
        PIER_URL="http://127.0.0.1:$PORT_A" PIER_ADMIN_ENV="$T/a/admin.env" PIER_STATE_DIR="$T/a" \
            PIER_BUILD_DIR="$BUILD" PIER_TEST_DIR="$T" "$SRC/tests/browser/run.sh" 2>&1 |
            grep -v ' passed, .* failed$' | count browser
        check_exit browser_tests "${PIPESTATUS[0]}" "$before"
    else
        echo "# browser tests not run: the pattern '$PATTERN' selects integration tests only"
    fi
fi
stop_all
trap - EXIT
# A run without a pattern runs every suite: each must have run all it expects.
if [ -z "$PATTERN" ]; then
    check_count integration
    check_count browser
fi

# Any sanitizer report from the servers is a failure of its own. UBSan
# sometimes writes to the process's stderr, which pierd sends to its log.
ubsan_in_logs=$(grep -l "runtime error:" "$T"/*/log/pier.log 2>/dev/null || true)
if compgen -G "$T/san/*" >/dev/null || [ -n "$ubsan_in_logs" ]; then
    echo "not ok - sanitizers_report_nothing"
    echo "f run" >>"$T/.counts"
    compgen -G "$T/san/*" >/dev/null && head -n 60 "$T"/san/* | sed 's/^/# /'
    for f in $ubsan_in_logs; do grep -B2 -A8 "runtime error:" "$f" | head -n 40 | sed 's/^/# /'; done
else
    echo "ok - sanitizers_report_nothing"
    echo "p run" >>"$T/.counts"
fi

passed=$(grep -c '^p ' "$T/.counts")
failed=$(grep -c '^f ' "$T/.counts")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
