#!/usr/bin/env bash
# bench/roundtrips.sh — database statements per request on the pull paths:
# PostgreSQL logs every statement of the node's workers, and each request's
# share is counted. A statement is a round trip (libpq sends one at a time;
# the once-per-connection PREPARE of a statement is not counted).
#
#   cold manifest GET by tag, then each of its blobs (config + 3 layers),
#   through a pull-through cache rule, from a docker-registry upstream;
#   the same requests again (warm: hits); a tag GET and a blob GET of a
#   pushed repository.
#
# Starts its own Pier node (quickstart.sh) and upstream docker-registry,
# stops both at exit, prints a markdown table. Compare two builds by running
# it from each tree (the numbers are counts, not timings: load does not
# change them).
#
# Environment: PIER_BENCH_RT_DIR (default /tmp/pier-bench-rt), PIER_BENCH_RT_PORT
# (default 5700; the upstream is port + 1), PIER_BUILD_DIR.
set -Eeuo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BDIR=${PIER_BENCH_RT_DIR:-/tmp/pier-bench-rt}
PORT=${PIER_BENCH_RT_PORT:-5700}
UP_PORT=$((PORT + 1))
BUILD=${PIER_BUILD_DIR:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
STATE=$BDIR/pier
WORK=$BDIR/work
PGLOG=$STATE/log/postgresql.log
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

log() { printf '[roundtrips %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'roundtrips: %s\n' "$*" >&2; exit 1; }
quickstart() {
    env -u PIER_DATABASE -u PIER_BLOB_ROOT PIER_STATE_DIR="$STATE" PIER_PORT="$PORT" \
        PIER_WORKERS=2 PIER_MAINTENANCE_INTERVAL=0 PIER_BUILD_DIR="$BUILD" "$SRC/quickstart.sh" "$1"
}
pierctl() { "$BUILD/pierctl" -c "$STATE/pier.conf" "$@"; }
psql_pier() { psql "host=$STATE/pgrun port=5432 user=pier dbname=pier" -XAtq "$@"; }

UP_PID=""
cleanup() {
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null || true
    quickstart stop >/dev/null 2>&1 || true
}

rm -rf "$BDIR"
mkdir -p "$WORK" "$BDIR/upstream"
trap cleanup EXIT
log "starting Pier on 127.0.0.1:$PORT (state $STATE)"
quickstart start >"$BDIR/quickstart.log" 2>&1 || { cat "$BDIR/quickstart.log" >&2; die "Pier did not start"; }
cat >"$BDIR/upstream/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $BDIR/upstream/storage
http:
  addr: 127.0.0.1:$UP_PORT
YML
docker-registry serve "$BDIR/upstream/config.yml" >"$BDIR/upstream/registry.log" 2>&1 &
UP_PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$UP_PORT/v2/" >/dev/null && break; sleep 0.1; done

python3 "$SRC/bench/mkimage.py" "$WORK/img" --layer-mib 1 1 1 >"$WORK/img.json"
read -r DIGEST BLOBS < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
print(j["manifest"]["digest"], " ".join([j["config"]["digest"]] + [l["digest"] for l in j["layers"]]))' "$WORK/img.json")
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$WORK/img:bench" \
    "docker://127.0.0.1:$UP_PORT/rt/img:bench"
pierctl rule create mirror "http://127.0.0.1:$UP_PORT" --refresh 86400 >/dev/null
CREDS=AWS:$(pierctl login-password admin)
# Other bytes for the pushed repository: the cache must not find its blobs
# in the store already (it would link them instead of downloading).
python3 "$SRC/bench/mkimage.py" "$WORK/img2" --layer-mib 1 --seed 2 >"$WORK/img2.json"
PUSHED_BLOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$WORK/img2.json")
skopeo copy -q --preserve-digests --dest-tls-verify=false --dest-creds "$CREDS" \
    "oci:$WORK/img2:bench" "docker://127.0.0.1:$PORT/pushed/img:bench"

# Every statement of the workers from now on, one per line, tagged by the
# application name the workers connect with.
psql_pier -c "ALTER SYSTEM SET log_statement = 'all'" \
    -c "ALTER SYSTEM SET log_line_prefix = '[%a] '" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1

# count METHOD URL: statements the workers ran for one request.
count() {
    local before after
    sleep 0.3
    before=$(stat -c %s "$PGLOG")
    curl -s -o /dev/null -u "$CREDS" -X "$1" -H "Accept: $OCI_MANIFEST" "$2"
    sleep 0.5
    after=$(stat -c %s "$PGLOG")
    tail -c +"$((before + 1))" "$PGLOG" | head -c "$((after - before))" |
        grep -E '^\[pier\] LOG:  (execute|statement)' >"$WORK/last.log" || true
    wc -l <"$WORK/last.log"
}

B=http://127.0.0.1:$PORT/v2
rows=()
row() { rows+=("| $1 | $2 |"); }
row "cold manifest GET by tag (cache miss)" "$(count GET "$B/mirror/rt/img/manifests/bench")"
cp "$WORK/last.log" "$BDIR/cold-manifest.log"
i=0
for b in $BLOBS; do
    row "cold blob GET $i (cache miss)" "$(count GET "$B/mirror/rt/img/blobs/$b")"
    cp "$WORK/last.log" "$BDIR/cold-blob-$i.log"
    i=$((i + 1))
done
row "warm manifest GET by tag (hit)" "$(count GET "$B/mirror/rt/img/manifests/bench")"
row "warm blob GET (hit)" "$(count GET "$B/mirror/rt/img/blobs/${BLOBS%% *}")"
row "pushed repository: tag GET" "$(count GET "$B/pushed/img/manifests/bench")"
row "pushed repository: blob GET" "$(count GET "$B/pushed/img/blobs/$PUSHED_BLOB")"

printf '| request | database statements |\n|---|---|\n'
printf '%s\n' "${rows[@]}"
log "statement logs of the cold requests are in $BDIR/cold-*.log until the next run"
trap - EXIT
cleanup
