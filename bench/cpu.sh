#!/usr/bin/env bash
# bench/cpu.sh — CPU the pierd workers spend per request on the two hot
# paths: a manifest GET by tag and a warm blob GET (headers + X-Sendfile; the
# blob is 1 KiB so that Apache's copy does not hide the worker's share).
# Throughput under wrk on a shared 2-core machine moves by ±10 % between runs;
# the workers' CPU time per request (utime + stime from /proc, summed over
# the pool, divided by the requests wrk completed) moves far less, so two
# trees can be compared within a few percent. Run it from each tree.
#
# Starts its own Pier node (quickstart.sh), stops it at exit, prints a
# markdown table. Environment: PIER_BENCH_CPU_DIR (default /tmp/pier-bench-cpu),
# PIER_BENCH_CPU_PORT (default 5750), PIER_BENCH_CPU_ROUNDS (default 3, each
# wrk -t2 -c16 for PIER_BENCH_CPU_SECONDS, default 8), PIER_BUILD_DIR.
set -Eeuo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
BDIR=${PIER_BENCH_CPU_DIR:-/tmp/pier-bench-cpu}
PORT=${PIER_BENCH_CPU_PORT:-5750}
ROUNDS=${PIER_BENCH_CPU_ROUNDS:-3}
SECONDS_PER=${PIER_BENCH_CPU_SECONDS:-8}
BUILD=${PIER_BUILD_DIR:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
STATE=$BDIR/pier
WORK=$BDIR/work
CLK_TCK=$(getconf CLK_TCK)
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

log() { printf '[cpu %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'cpu: %s\n' "$*" >&2; exit 1; }
quickstart() {
    env -u PIER_DATABASE -u PIER_BLOB_ROOT PIER_STATE_DIR="$STATE" PIER_PORT="$PORT" \
        PIER_WORKERS=4 PIER_MAINTENANCE_INTERVAL=0 PIER_BUILD_DIR="$BUILD" "$SRC/quickstart.sh" "$1"
}
pierctl() { "$BUILD/pierctl" -c "$STATE/pier.conf" "$@"; }
cleanup() { quickstart stop >/dev/null 2>&1 || true; }

# Clock ticks (user + system) of the pierd workers: the children of the
# master named in the pid file.
worker_ticks() {
    local master
    master=$(cat "$STATE/run/pierd.pid")
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v m="$master" '
        { p = match($0, /\) [A-Za-z] /); if (!p) next
          split(substr($0, p + 2), f, " ")
          if (f[2] == m) s += f[12] + f[13] }
        END { print s + 0 }'
}

# measure URL: µs of worker CPU per request, one value per round.
measure() {
    local url=$1 out=() t0 t1 n
    wrk -t2 -c16 -d2s -H "Authorization: $AUTH" -H "Accept: $OCI_MANIFEST" "$url" >/dev/null
    for ((i = 0; i < ROUNDS; i++)); do
        t0=$(worker_ticks)
        n=$(wrk -t2 -c16 -d"${SECONDS_PER}s" -H "Authorization: $AUTH" -H "Accept: $OCI_MANIFEST" \
            -s "$SRC/bench/wrk-report.lua" "$url" | sed -n 's/^RESULT .*requests=\([0-9]*\) non2xx=\([0-9]*\).*/\1 \2/p')
        t1=$(worker_ticks)
        set -- $n
        [ "${2:-1}" = 0 ] || die "$url: $2 non-2xx answers"
        out+=("$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$1" 'BEGIN { printf "%.1f", d / hz * 1e6 / n }')")
    done
    echo "${out[*]}"
}

rm -rf "$BDIR"
mkdir -p "$WORK"
trap cleanup EXIT
log "starting Pier on 127.0.0.1:$PORT (state $STATE)"
quickstart start >"$BDIR/quickstart.log" 2>&1 || { cat "$BDIR/quickstart.log" >&2; die "Pier did not start"; }
CREDS=AWS:$(pierctl login-password admin)
AUTH="Basic $(printf '%s' "$CREDS" | base64 -w0)"
python3 "$SRC/bench/mkimage.py" "$WORK/img" --layer-mib 0 >"$WORK/img.json" 2>/dev/null ||
    python3 "$SRC/bench/mkimage.py" "$WORK/img" --layer-mib 1 >"$WORK/img.json"
CONFIG=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$WORK/img.json")
skopeo copy -q --preserve-digests --dest-tls-verify=false --dest-creds "$CREDS" \
    "oci:$WORK/img:bench" "docker://127.0.0.1:$PORT/bench/cpu:bench"
B=http://127.0.0.1:$PORT/v2/bench/cpu
log "manifest GET by tag: $ROUNDS x ${SECONDS_PER}s"
TAG=$(measure "$B/manifests/bench")
log "blob GET (the config blob): $ROUNDS x ${SECONDS_PER}s"
BLOB=$(measure "$B/blobs/$CONFIG")
printf '| request | worker CPU per request, µs (median) | rounds |\n|---|---:|---|\n'
# shellcheck disable=SC2086
printf '| manifest GET by tag | %s | %s |\n' "$(median $TAG)" "$TAG"
# shellcheck disable=SC2086
printf '| blob GET (X-Sendfile) | %s | %s |\n' "$(median $BLOB)" "$BLOB"
