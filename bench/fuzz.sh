#!/usr/bin/env bash
# bench/fuzz.sh — run the libFuzzer targets of tests/fuzz/ for a while each.
#
#   bench/fuzz.sh [target...]     all targets (tests/fuzz/fuzz_<target>.c) or the named ones
#
# Builds a separate clang build (./configure --enable-fuzzing: libFuzzer with
# AddressSanitizer and UBSan; installs Debian's clang when missing), then runs
# the targets one after the other, each for PIER_FUZZ_SECONDS on a fresh
# scratch copy of its seed corpus tests/fuzz/corpus/<target>/ (with the
# dictionary tests/fuzz/dict/<target>.dict when there is one). A target stops
# at its first finding; crash, leak, timeout and out-of-memory reproducers are
# kept in the findings directory. Prints a markdown table (also written to
# $PIER_FUZZ_DIR/summary.md) and exits nonzero when anything was found.
# See bench/README.md.
#
# Environment (all optional):
#   PIER_FUZZ_SECONDS    seconds per target (default 600)
#   PIER_FUZZ_BUILD_DIR  clang build directory (default ./build-fuzz)
#   PIER_FUZZ_DIR        scratch corpora, findings and logs (default $PIER_FUZZ_BUILD_DIR/fuzz-run;
#                        corpus/ and logs/ are replaced at each run of a target,
#                        findings/<target>/ accumulates)
#   PIER_FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10)
#   PIER_FUZZ_RSS_MB     memory limit of a target in MiB (default 2048)
set -Eeuo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=${PIER_FUZZ_SECONDS:-600}
BUILD=${PIER_FUZZ_BUILD_DIR:-$SRC/build-fuzz}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
DIR=${PIER_FUZZ_DIR:-$BUILD/fuzz-run}
case $DIR in /*) ;; *) DIR=$SRC/$DIR ;; esac
TIMEOUT=${PIER_FUZZ_TIMEOUT:-10}
RSS_MB=${PIER_FUZZ_RSS_MB:-2048}

log() { printf '[fuzz %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'fuzz: %s\n' "$*" >&2; exit 1; }

# ---- targets ----------------------------------------------------------------
all_targets() {
    local f
    for f in "$SRC"/tests/fuzz/fuzz_*.c; do
        f=${f##*/fuzz_}
        echo "${f%.c}"
    done
}
if [ $# -gt 0 ]; then
    TARGETS=("$@")
    for t in "${TARGETS[@]}"; do
        [ -f "$SRC/tests/fuzz/fuzz_$t.c" ] || die "no target '$t' (have: $(all_targets | tr '\n' ' '))"
    done
else
    mapfile -t TARGETS < <(all_targets)
fi
case $SECONDS_EACH in '' | *[!0-9]*) die "PIER_FUZZ_SECONDS must be a number of seconds" ;; esac

# ---- build ------------------------------------------------------------------
if ! command -v clang >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "clang is missing. Run: sudo apt-get install -y clang"
    log "installing clang"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends clang >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends clang >/dev/null; } ||
        die "cannot install clang"
fi
if [ ! -x "$SRC/configure" ] || [ "$SRC/configure.ac" -nt "$SRC/configure" ]; then
    (cd "$SRC" && ./autogen.sh >/dev/null 2>&1) || die "autogen.sh failed"
fi
mkdir -p "$BUILD"
if [ ! -f "$BUILD/Makefile" ]; then
    log "configuring $BUILD (CC=clang --enable-fuzzing)"
    (cd "$BUILD" && CC=clang "$SRC/configure" -q --enable-fuzzing) || die "configure failed"
fi
log "building the fuzz targets"
make -s -C "$BUILD" -j"$(nproc)" all >/dev/null || die "build failed (run make -C $BUILD)"

# ---- run --------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/tests/lsan.supp}
mkdir -p "$DIR/corpus" "$DIR/findings" "$DIR/logs"
ROWS=()
TOTAL_FINDINGS=0
for t in "${TARGETS[@]}"; do
    bin=$BUILD/tests/fuzz/fuzz_$t
    [ -x "$bin" ] || die "$bin was not built"
    corpus=$DIR/corpus/$t
    findings=$DIR/findings/$t
    out=$DIR/logs/$t.log
    rm -rf "$corpus"
    mkdir -p "$corpus" "$findings"
    cp "$SRC/tests/fuzz/corpus/$t/"* "$corpus/" 2>/dev/null || true
    before=$(find "$findings" -type f | wc -l)
    args=(-max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB"
        -print_final_stats=1 -artifact_prefix="$findings/")
    [ -f "$SRC/tests/fuzz/dict/$t.dict" ] && args+=(-dict="$SRC/tests/fuzz/dict/$t.dict")
    log "$t: ${SECONDS_EACH} s on $(find "$corpus" -type f | wc -l) seed inputs"
    start=$(date +%s)
    rc=0
    "$bin" "${args[@]}" "$corpus" >"$out" 2>&1 || rc=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$out" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$out" | tail -n 1 | cut -d' ' -f2)
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    found=$(($(find "$findings" -type f | wc -l) - before))
    [ "$rc" -ne 0 ] && [ "$found" -eq 0 ] && found=1 # died without an artifact: see the log
    TOTAL_FINDINGS=$((TOTAL_FINDINGS + found))
    what=$found
    if [ "$found" -gt 0 ]; then
        what="$found ($(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+[a-zA-Z -]*|fuzz invariant failed.*|runtime error: .*' "$out" || echo "exit $rc; see $out"))"
        log "$t: FOUND something, see $out and $findings/"
    fi
    ROWS+=("| $t | $took | ${execs:-?} | ${cov:-?} | ${ft:-?} | $files / $bytes B | $what |")
done

{
    echo "| target | seconds | executions | cov | ft | corpus (files / bytes) | findings |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Findings (reproducers): $DIR/findings/<target>/; logs: $DIR/logs/."
} | tee "$DIR/summary.md"
[ "$TOTAL_FINDINGS" -eq 0 ]
