#!/usr/bin/env bash
# bench/gc.sh — garbage collection at scale, and what a running sweep costs
# the hot path:
#
#   1. a store of PIER_BENCH_GC_BLOBS blobs (default 100,000) under
#      PIER_BENCH_GC_MANIFESTS manifests (default 20,000): 80 % of the blobs
#      referenced, 20 % garbage, rows and small files made by bench/gcdata.py;
#      `pierctl gc --grace 0 --dry-run`, then `pierctl gc --grace 0`, then a
#      sweep with nothing left to remove, each at full speed (--duty 100) under
#      /usr/bin/time -v: wall time, peak memory (maxrss), rows removed per
#      second;
#   2. warm manifest GET by tag (wrk, as bench/run.sh) without and with a
#      sweep running at the pace maintenance runs it (gc_duty, default 10 %):
#      fresh garbage big enough to keep the sweep busy longer than the wrk
#      run, PIER_BENCH_GC_ROUNDS rounds; the drop in requests/s.
#
# Starts its own Pier node (quickstart.sh, maintenance off so that no sweep
# of its own interferes), stops it at exit, prints a markdown table and
# writes it to bench/results/gc-latest.md. See bench/README.md.
#
# Environment (all optional):
#   PIER_BENCH_GC_DIR        scratch directory, wiped at start (default /tmp/pier-bench-gc)
#   PIER_BENCH_GC_PORT       Pier's Apache port (default 5850)
#   PIER_BENCH_GC_MANIFESTS  manifests of step 1 (default 20000; blobs = 5 x manifests)
#   PIER_BENCH_GC_ROUNDS     rounds of step 2 (default 3)
#   PIER_BENCH_GC_DUTY       --duty of the sweeps of step 2 (default 10, gc_duty's default)
#   PIER_BENCH_GC_SWEEP_GARBAGE  garbage blobs per round of step 2 (default: what
#                            step 1's rate removes at that duty in 1.5 x the wrk
#                            run, at least 5000)
#   PIER_BENCH_WRK_SECONDS   wrk duration (default 10)
#   PIER_BENCH_KEEP=1        keep the scratch directory
#   PIER_WORKERS, PIER_BUILD_DIR  passed to quickstart.sh (default 4, ./build)
set -Eeuo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
BENCH=$SRC/bench
BDIR=${PIER_BENCH_GC_DIR:-/tmp/pier-bench-gc}
PORT=${PIER_BENCH_GC_PORT:-5850}
MANIFESTS=${PIER_BENCH_GC_MANIFESTS:-20000}
ROUNDS=${PIER_BENCH_GC_ROUNDS:-3}
SWEEP_GARBAGE=${PIER_BENCH_GC_SWEEP_GARBAGE:-}
DUTY=${PIER_BENCH_GC_DUTY:-10}
WRK_SECONDS=${PIER_BENCH_WRK_SECONDS:-10}
KEEP=${PIER_BENCH_KEEP:-0}
WORKERS=${PIER_WORKERS:-4}
BUILD=${PIER_BUILD_DIR:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
STATE=$BDIR/pier
WORK=$BDIR/work
MARKER=$BDIR/.pier-bench-gc
RESULTS_DIR=$BENCH/results
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
GARBAGE=$((MANIFESTS))       # 20 % of 5 x manifests
BLOBS=$((5 * MANIFESTS))

log() { printf '[gc %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'gc: %s\n' "$*" >&2; exit 1; }

ensure_tools() {
    local -A pkg=([curl]=curl [wrk]=wrk [skopeo]=skopeo [python3]=python3 [psql]=postgresql-client)
    local missing=() c
    for c in "${!pkg[@]}"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("${pkg[$c]}")
    done
    [ -x /usr/bin/time ] || missing+=(time)
    [ ${#missing[@]} = 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (apt-get install ${missing[*]})"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

quickstart() {
    env -u PIER_DATABASE -u PIER_BLOB_ROOT PIER_STATE_DIR="$STATE" PIER_PORT="$PORT" \
        PIER_WORKERS="$WORKERS" PIER_MAINTENANCE_INTERVAL=0 PIER_BUILD_DIR="$BUILD" "$SRC/quickstart.sh" "$1"
}
pierctl() { "$BUILD/pierctl" -c "$STATE/pier.conf" "$@"; }
psql_pier() { psql "host=$STATE/pgrun port=5432 user=pier dbname=pier" -XAtq "$@"; }
blob_rows() { psql_pier -c "SELECT count(*) FROM blobs"; }
CLK_TCK=$(getconf CLK_TCK)
# Clock ticks (user + system, reaped children included) of PostgreSQL: the
# postmaster and its children, the backends. Nothing but the sweep uses the
# database in step 1, so the difference over a sweep is its backend's work.
pg_ticks() {
    local pm
    pm=$(head -n 1 "$STATE/pg/postmaster.pid")
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$pm" '
        { p = match($0, /\) [A-Za-z] /); if (!p) next
          split(substr($0, p + 2), f, " ")
          if ($1 == pm || f[2] == pm) s += f[12] + f[13] + f[14] + f[15] }
        END { print s + 0 }'
}
secs() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz }'; }

STATUS=failed
SWEEP_PID=""
cleanup() {
    set +e
    trap - EXIT INT TERM
    [ -n "$SWEEP_PID" ] && kill "$SWEEP_PID" 2>/dev/null && wait "$SWEEP_PID" 2>/dev/null
    [ -d "$STATE" ] && { quickstart stop >/dev/null 2>&1 || log "quickstart.sh stop failed"; }
    if [ "$KEEP" = 1 ]; then
        log "kept $BDIR"
    elif [ "$STATUS" = ok ]; then
        rm -rf "$BDIR"
    else
        rm -rf "$STATE/blobs" "$WORK"
        log "logs kept in $STATE/log"
    fi
}

prepare_dir() {
    if [ -e "$BDIR" ] && [ ! -e "$MARKER" ] && [ -n "$(ls -A "$BDIR" 2>/dev/null)" ]; then
        die "$BDIR exists and was not made by this benchmark; set PIER_BENCH_GC_DIR"
    fi
    if [ -e "$MARKER" ]; then # leftovers of an interrupted run
        [ -d "$STATE" ] && { quickstart stop >/dev/null 2>&1 || true; }
        rm -rf "$BDIR"
    fi
    mkdir -p "$WORK"
    chmod 755 "$BDIR"
    touch "$MARKER"
}

# gendata MANIFESTS GARBAGE LABEL: files into the blob root, rows into the database.
gendata() {
    local out
    out=$(python3 "$BENCH/gcdata.py" --blob-root "$STATE/blobs" --sql "$WORK/data.sql" \
        --manifests "$1" --garbage "$2" --label "$3") || die "gcdata.py failed"
    psql_pier -f "$WORK/data.sql" >/dev/null || die "loading the generated rows failed"
    rm -f "$WORK/data.sql"
    printf '%s\n' "$out"
}

# timed NAME ARGS...: pierctl gc ARGS under /usr/bin/time -v; sets
# T_WALL (s), T_RSS (KiB), T_LINE (pierctl's summary line), T_CPU (pierctl's
# user + system s), T_PG (PostgreSQL's CPU s meanwhile).
timed() {
    local name=$1 pg0
    shift
    pg0=$(pg_ticks)
    /usr/bin/time -v -o "$WORK/$name.time" "$BUILD/pierctl" -c "$STATE/pier.conf" gc "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" || { cat "$WORK/$name.err" >&2; die "pierctl gc $* failed"; }
    T_PG=$(secs "$(($(pg_ticks) - pg0))")
    T_LINE=$(cat "$WORK/$name.out")
    T_CPU=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.1f", s }' "$WORK/$name.time")
    T_RSS=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$WORK/$name.time")
    T_WALL=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$WORK/$name.time")
}
# field LINE WORD: the number before WORD in a summary line ("removed 5 blobs" -> field LINE blobs).
field() { printf '%s\n' "$1" | grep -oE "[0-9]+ $2" | head -n 1 | grep -oE '^[0-9]+'; }

wrk_run() { # -> RESULT line
    wrk -t2 -c32 -d"${WRK_SECONDS}s" -s "$BENCH/wrk-report.lua" -H "Authorization: $AUTH" \
        -H "Accept: $OCI_MANIFEST" "$TAG_URL" | grep '^RESULT ' || die "wrk printed no result"
}
wrk_field() { printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
check_wrk() { # LINE WHAT
    local bad=$(($(wrk_field "$1" non2xx) + $(wrk_field "$1" errors)))
    [ "$bad" = 0 ] || die "$2: $bad errors or non-2xx answers: $1"
}

# =============================================================================
ensure_tools
prepare_dir
port_busy "$PORT" && die "port $PORT is in use; set PIER_BENCH_GC_PORT"
trap cleanup EXIT
trap 'exit 130' INT TERM
T_START=$EPOCHREALTIME
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "starting Pier on 127.0.0.1:$PORT (state $STATE, $WORKERS workers, no maintenance; builds if needed)"
quickstart start >"$BDIR/quickstart.log" 2>&1 || { cat "$BDIR/quickstart.log" >&2; die "Pier did not start"; }
CREDS=AWS:$(pierctl login-password admin)
AUTH="Basic $(printf '%s' "$CREDS" | base64 -w0)"

# The image the wrk runs GET by tag: pushed for real.
python3 "$BENCH/mkimage.py" "$WORK/img" --layer-mib 1 >"$WORK/img.json"
M_DIGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifest"]["digest"])' "$WORK/img.json")
skopeo copy -q --preserve-digests --dest-tls-verify=false --dest-creds "$CREDS" \
    "oci:$WORK/img:bench" "docker://127.0.0.1:$PORT/bench/gc:bench"
TAG_URL=http://127.0.0.1:$PORT/v2/bench/gc/manifests/bench
got=$(curl -fsS -H "Authorization: $AUTH" -H "Accept: $OCI_MANIFEST" "$TAG_URL" | sha256sum | cut -d' ' -f1)
[ "sha256:$got" = "$M_DIGEST" ] || die "tag GET gave a manifest of digest sha256:$got, expected $M_DIGEST"

# ---- 1. one sweep over the big store -----------------------------------------
log "1/2 writing $BLOBS blobs (files and rows) under $MANIFESTS manifests, $GARBAGE of them garbage"
t0=$EPOCHREALTIME
GEN=$(gendata "$MANIFESTS" "$GARBAGE" big)
log "generated in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s: $GEN"
sync
ROWS_BEFORE=$(blob_rows)
log "dry run"
timed dry --grace 0 --dry-run --duty 100
DRY_WALL=$T_WALL DRY_RSS=$T_RSS DRY_LINE=$T_LINE DRY_CPU="$T_CPU / $T_PG"
[ "$(field "$DRY_LINE" blobs)" = "$GARBAGE" ] || die "the dry run would remove other than $GARBAGE blobs: $DRY_LINE"
log "sweep"
timed sweep --grace 0 --duty 100
SWEEP_WALL=$T_WALL SWEEP_RSS=$T_RSS SWEEP_LINE=$T_LINE SWEEP_CPU="$T_CPU / $T_PG"
SW_BLOBS=$(field "$SWEEP_LINE" blobs)
SW_LINKS=$(field "$SWEEP_LINE" links)
[ "$SW_BLOBS" = "$GARBAGE" ] || die "the sweep removed other than $GARBAGE blobs: $SWEEP_LINE"
[ "$(blob_rows)" = "$((ROWS_BEFORE - GARBAGE))" ] || die "blob rows: $(blob_rows), expected $((ROWS_BEFORE - GARBAGE))"
SW_RATE=$(awk -v n="$SW_BLOBS" -v t="$SWEEP_WALL" 'BEGIN { printf "%.0f", n / t }')
SW_ROWRATE=$(awk -v n="$((SW_BLOBS + SW_LINKS))" -v t="$SWEEP_WALL" 'BEGIN { printf "%.0f", n / t }')
log "sweep: $SWEEP_LINE; ${SWEEP_WALL} s, maxrss ${SWEEP_RSS} KiB"
log "a sweep with nothing to remove"
timed idle --grace 0 --duty 100
IDLE_WALL=$T_WALL IDLE_RSS=$T_RSS IDLE_LINE=$T_LINE IDLE_CPU="$T_CPU / $T_PG"
[ "$(field "$IDLE_LINE" blobs)" = 0 ] || die "a second sweep removed more: $IDLE_LINE"

# ---- 2. tag GETs with and without a sweep ---------------------------------------
if [ -z "$SWEEP_GARBAGE" ]; then
    SWEEP_GARBAGE=$(awk -v r="$SW_RATE" -v s="$WRK_SECONDS" -v d="$DUTY" 'BEGIN { n = int(r * d / 100 * (s + 2) * 1.5); print (n < 5000 ? 5000 : n) }')
fi
log "2/2 tag GET, wrk -t2 -c32 -d${WRK_SECONDS}s, without and with a sweep of $SWEEP_GARBAGE garbage blobs at --duty $DUTY; $ROUNDS rounds"
wrk -t2 -c32 -d2s -H "Authorization: $AUTH" -H "Accept: $OCI_MANIFEST" "$TAG_URL" >/dev/null
RPS_OFF=() RPS_ON=() P99_OFF=() P99_ON=() DROPS=() SWEEPS_R=()
for ((r = 1; r <= ROUNDS; r++)); do
    gendata 0 "$SWEEP_GARBAGE" "round$r" >/dev/null
    sync
    off=$(wrk_run)
    check_wrk "$off" "round $r without a sweep"
    before=$(blob_rows)
    /usr/bin/time -v -o "$WORK/bg.time" "$BUILD/pierctl" -c "$STATE/pier.conf" gc --grace 0 --duty "$DUTY" \
        >"$WORK/bg.out" 2>"$WORK/bg.err" &
    SWEEP_PID=$!
    # Under way: the first blobs went.
    for _ in $(seq 1 300); do
        [ "$(blob_rows)" -lt "$before" ] && break
        kill -0 "$SWEEP_PID" 2>/dev/null || break
        sleep 0.05
    done
    on=$(wrk_run)
    if ! kill -0 "$SWEEP_PID" 2>/dev/null; then
        wait "$SWEEP_PID" || true
        SWEEP_PID=""
        die "round $r: the sweep ended before the wrk run did; set PIER_BENCH_GC_SWEEP_GARBAGE above $SWEEP_GARBAGE"
    fi
    wait "$SWEEP_PID" || { cat "$WORK/bg.err" >&2; die "round $r: the background sweep failed"; }
    SWEEP_PID=""
    check_wrk "$on" "round $r with a sweep"
    a=$(wrk_field "$off" rps) b=$(wrk_field "$on" rps)
    RPS_OFF+=("$a") RPS_ON+=("$b")
    P99_OFF+=("$(wrk_field "$off" p99_ms)") P99_ON+=("$(wrk_field "$on" p99_ms)")
    DROPS+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", (1 - b / a) * 100 }')")
    SWEEPS_R+=("$(cat "$WORK/bg.out")")
    log "round $r: $(fmt "$a" 0) req/s without, $(fmt "$b" 0) with a sweep (${DROPS[-1]} % drop); $(cat "$WORK/bg.out")"
done
DROP=$(median "${DROPS[@]}")
verdict=$(awk -v d="$DROP" 'BEGIN { print (d <= 5 ? "met" : "MISSED") }')
T_END=$EPOCHREALTIME
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -------------------------------------------------------------------
commit=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (modified)"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
report() {
    cat <<MD
# Pier garbage collection benchmark

- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, run time $(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.0f", b - a }') s
- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); load average $LOAD_START before, $LOAD_END after
- Pier: $WORKERS pierd workers, maintenance off, PostgreSQL $(psql --version | awk '{ print $3 }'); store of step 1: $GEN

| Measurement | Value |
| --- | ---: |
| Step 1 runs at full speed (--duty 100); step 2's sweeps at --duty $DUTY (maintenance's gc_duty) | |
| Dry run over $BLOBS blobs / $MANIFESTS manifests: wall time (s) | $(fmt "$DRY_WALL" 2) |
| Dry run: pierctl peak RSS (MiB) | $(mib "$DRY_RSS") |
| Dry run: CPU s, pierctl / PostgreSQL | $DRY_CPU |
| Sweep removing $SW_BLOBS blobs and $SW_LINKS links: wall time (s) | $(fmt "$SWEEP_WALL" 2) |
| Sweep: pierctl peak RSS (MiB) | $(mib "$SWEEP_RSS") |
| Sweep: CPU s, pierctl / PostgreSQL | $SWEEP_CPU |
| Sweep: blobs removed per second | $SW_RATE |
| Sweep: rows removed per second (blobs + links) | $SW_ROWRATE |
| Sweep with nothing to remove over $((BLOBS - GARBAGE)) blobs: wall time (s) | $(fmt "$IDLE_WALL" 2) |
| Sweep with nothing to remove: CPU s, pierctl / PostgreSQL | $IDLE_CPU |
| Tag GET without a sweep, wrk -t2 -c32 -d${WRK_SECONDS}s (requests/s, median of $ROUNDS) | $(fmt "$(median "${RPS_OFF[@]}")" 0) |
| Tag GET while a sweep of $SWEEP_GARBAGE garbage blobs runs at --duty $DUTY (requests/s, median) | $(fmt "$(median "${RPS_ON[@]}")" 0) |
| Tag GET p99 without / with a sweep (ms, median) | $(fmt "$(median "${P99_OFF[@]}")" 2) / $(fmt "$(median "${P99_ON[@]}")" 2) |
| Drop in requests/s while a sweep runs (%, median of the rounds) | $DROP |

Target: drop ≤ 5 %: **$verdict**.

Raw:
- dry run: $DRY_LINE
- sweep: $SWEEP_LINE
- sweep with nothing to remove: $IDLE_LINE (peak RSS $(mib "$IDLE_RSS") MiB)
- requests/s without a sweep: ${RPS_OFF[*]}; with: ${RPS_ON[*]}; drop %: ${DROPS[*]}
- the sweeps of step 2: $(printf '%s; ' "${SWEEPS_R[@]}")
MD
}
mkdir -p "$RESULTS_DIR"
report >"$RESULTS_DIR/gc-latest.md"
echo
cat "$RESULTS_DIR/gc-latest.md"
STATUS=ok
