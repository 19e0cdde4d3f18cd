#!/usr/bin/env bash
# bench/run.sh — Pier against a static-file baseline and docker-registry
# (distribution 2.8), side by side on this machine, in one run:
#
#   1. warm download of one 512 MiB blob: Pier /v2/<repo>/blobs/<digest>,
#      the same file as a static file from Pier's own Apache, docker-registry
#   2. manifest GET by tag under wrk load: Pier, docker-registry
#   3. skopeo push of an image with one fresh 512 MiB uncompressed layer:
#      Pier, docker-registry
#
# Starts its own Pier node (quickstart.sh) and its own docker-registry, stops
# both at exit, prints a markdown table and writes it to bench/results/latest.md.
# Requests to Pier carry the bootstrap administrator's login (user AWS, a
# password from `pierctl login-password admin`); docker-registry and the
# static baseline get none.
# See bench/README.md.
#
# Environment (all optional):
#   PIER_BENCH_DIR            scratch directory, wiped at start (default /tmp/pier-bench)
#   PIER_BENCH_PORT           Pier's Apache port (default 5300)
#   PIER_BENCH_REGISTRY_PORT  docker-registry port (default 5301)
#   PIER_BENCH_BLOB_MIB       size of the download blob and the pushed layer (default 512)
#   PIER_BENCH_DOWNLOADS      timed downloads per source, after one warm-up (default 7)
#   PIER_BENCH_WRK_SECONDS    wrk duration per registry (default 10)
#   PIER_BENCH_PUSHES         timed skopeo pushes per registry (default 3)
#   PIER_BENCH_KEEP=1         keep the scratch directory (logs, blobs) after the run
#   PIER_WORKERS, PIER_BUILD_DIR  passed to quickstart.sh (pool size, build directory)
set -Eeuo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
BENCH=$SRC/bench
BDIR=${PIER_BENCH_DIR:-/tmp/pier-bench}
PORT=${PIER_BENCH_PORT:-5300}
REG_PORT=${PIER_BENCH_REGISTRY_PORT:-5301}
MIB=${PIER_BENCH_BLOB_MIB:-512}
DOWNLOADS=${PIER_BENCH_DOWNLOADS:-7}
WRK_SECONDS=${PIER_BENCH_WRK_SECONDS:-10}
PUSHES=${PIER_BENCH_PUSHES:-3}
KEEP=${PIER_BENCH_KEEP:-0}
WORKERS=${PIER_WORKERS:-4}
BUILD=${PIER_BUILD_DIR:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
PYTHON=${PYTHON:-python3}

PIER_STATE=$BDIR/pier
REG_DIR=$BDIR/registry
WORK=$BDIR/scratch
MARKER=$BDIR/.pier-bench
RESULTS_DIR=$BENCH/results
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---- tools ------------------------------------------------------------------
ensure_tools() {
    local -A pkg=([curl]=curl [wrk]=wrk [skopeo]=skopeo [docker-registry]=docker-registry
        [python3]=python3)
    local missing=() c
    for c in "${!pkg[@]}"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("${pkg[$c]}")
    done
    [ ${#missing[@]} = 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (apt-get install ${missing[*]})"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
    # Debian starts a docker-registry service on :5000; this benchmark runs its own.
    if [ -d /run/systemd/system ]; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    else
        service docker-registry stop >/dev/null 2>&1 || true
    fi
}

# ---- small helpers ----------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a/b }'; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
json_get() { # file, python expression on j
    "$PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

quickstart() { # action
    env -u PIER_DATABASE -u PIER_BLOB_ROOT PIER_STATE_DIR="$PIER_STATE" PIER_PORT="$PORT" \
        PIER_WORKERS="$WORKERS" PIER_BUILD_DIR="$BUILD" "$SRC/quickstart.sh" "$1"
}
pierctl() { "$BUILD/pierctl" -c "$PIER_STATE/pier.conf" "$@"; }

# Pier authenticates every request: log in the ECR way, user AWS with a login
# password (12 h) of the administrator quickstart.sh bootstrapped (as
# bench/cache.sh does). Sets PIER_CREDS ("user:password"), or leaves it empty
# for a build that has no authentication (no admin.env).
# docker-registry and the static baseline are open.
PIER_CREDS=""
pier_login() {
    if [ ! -f "$PIER_STATE/admin.env" ]; then
        log "no $PIER_STATE/admin.env: this build takes anonymous requests"
        return 0
    fi
    local pw
    pw=$(pierctl login-password admin) || die "pierctl login-password admin failed"
    [ -n "$pw" ] || die "pierctl login-password admin printed nothing"
    PIER_CREDS=AWS:$pw
}
# What makes skopeo and wrk send the credentials to Pier.
pier_skopeo_auth() { [ -z "$PIER_CREDS" ] || printf '%s\n' --dest-creds "$PIER_CREDS"; }
pier_basic_header() { printf 'Authorization: Basic %s' "$(printf '%s' "$PIER_CREDS" | base64 -w0)"; }
# curl arguments for a request to the registry on PORT: Pier's credentials on
# Pier's port, nothing on docker-registry's. Usage: mapfile -t a < <(curl_auth PORT)
curl_auth() { [ "$1" != "$PORT" ] || [ -z "$PIER_CREDS" ] || printf '%s\n' -u "$PIER_CREDS"; }

# ---- start / stop -------------------------------------------------------------
REG_PID=""
STATUS=failed
cleanup() {
    set +e
    trap - EXIT INT TERM
    if [ -n "$REG_PID" ]; then
        kill "$REG_PID" 2>/dev/null
        wait "$REG_PID" 2>/dev/null
    fi
    if [ -d "$PIER_STATE" ]; then
        quickstart stop >/dev/null 2>&1 || log "quickstart.sh stop failed"
    fi
    if [ "$KEEP" = 1 ]; then
        log "kept $BDIR"
    elif [ "$STATUS" = ok ]; then
        rm -rf "$BDIR"
    else
        # Keep the logs for a post-mortem, drop the gigabytes.
        rm -rf "$WORK" "$REG_DIR/storage" "$PIER_STATE/blobs"
        log "logs kept in $PIER_STATE/log and $REG_DIR"
    fi
}

prepare_dir() {
    if [ -e "$BDIR" ] && [ ! -e "$MARKER" ] && [ -n "$(ls -A "$BDIR" 2>/dev/null)" ]; then
        die "$BDIR exists and was not made by this benchmark; set PIER_BENCH_DIR"
    fi
    if [ -e "$MARKER" ]; then # leftovers of an interrupted run
        if [ -f "$REG_DIR/pid" ]; then kill "$(cat "$REG_DIR/pid")" 2>/dev/null || true; fi
        [ -d "$PIER_STATE" ] && { quickstart stop >/dev/null 2>&1 || true; }
        rm -rf "$BDIR"
    fi
    mkdir -p "$BDIR" "$REG_DIR/storage" "$WORK"
    chmod 755 "$BDIR"
    touch "$MARKER"
}

start_pier() {
    log "starting Pier on 127.0.0.1:$PORT (state $PIER_STATE, $WORKERS workers; builds if needed)"
    quickstart start >"$BDIR/quickstart.log" 2>&1 || { cat "$BDIR/quickstart.log" >&2; die "Pier did not start"; }
}

add_static_alias() {
    mkdir -p "$PIER_STATE/apache/extra"
    cat >"$PIER_STATE/apache/extra/bench-static.conf" <<CONF
# Written by bench/run.sh: the blob root as plain static files, the baseline
# for Pier's X-Sendfile blob downloads (same Apache, same files).
Alias "/static-baseline" "$PIER_STATE/blobs/blobs"
<Directory "$PIER_STATE/blobs/blobs">
    Require all granted
    Options None
    AllowOverride None
</Directory>
CONF
    apache2 -f "$PIER_STATE/apache/httpd.conf" -t >/dev/null 2>&1 || die "Apache rejected the static alias"
    apache2 -f "$PIER_STATE/apache/httpd.conf" -k graceful
}

start_registry() {
    log "starting docker-registry on 127.0.0.1:$REG_PORT"
    port_busy "$REG_PORT" && die "port $REG_PORT is in use; set PIER_BENCH_REGISTRY_PORT"
    cat >"$REG_DIR/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG_DIR/storage
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REG_PORT
YML
    docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/registry.log" 2>&1 &
    REG_PID=$!
    echo "$REG_PID" >"$REG_DIR/pid"
    local i
    for i in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$REG_PORT/v2/" 2>/dev/null && return 0
        kill -0 "$REG_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$REG_DIR/registry.log" >&2
    die "docker-registry did not start"
}

# ---- registry client (curl) -------------------------------------------------
# push_blob PORT REPO FILE DIGEST: POST an upload session, PUT the whole body
# with ?digest= (both registries accept this; distribution 2.8 has no
# single-request POST upload).
push_blob() {
    local port=$1 repo=$2 file=$3 digest=$4 loc url code auth=()
    mapfile -t auth < <(curl_auth "$port")
    loc=$(curl -fsS "${auth[@]}" -X POST -D - -o /dev/null "http://127.0.0.1:$port/v2/$repo/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [ -n "$loc" ] || die "no upload Location from 127.0.0.1:$port"
    case $loc in http*) url=$loc ;; *) url=http://127.0.0.1:$port$loc ;; esac
    case $url in *\?*) url="$url&digest=$digest" ;; *) url="$url?digest=$digest" ;; esac
    code=$(curl -sS "${auth[@]}" -X PUT -H 'Content-Type: application/octet-stream' -T "$file" \
        -o "$WORK/put.out" -w '%{http_code}' "$url")
    [ "$code" = 201 ] || { cat "$WORK/put.out" >&2; die "blob PUT to 127.0.0.1:$port answered $code"; }
}

push_manifest() { # PORT REPO TAG FILE EXPECTED_DIGEST
    local port=$1 repo=$2 tag=$3 file=$4 want=$5 got auth=()
    mapfile -t auth < <(curl_auth "$port")
    got=$(curl -fsS "${auth[@]}" -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary "@$file" -D - -o /dev/null \
        "http://127.0.0.1:$port/v2/$repo/manifests/$tag" |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
    [ "$got" = "$want" ] || die "manifest PUT to 127.0.0.1:$port gave digest '$got', expected $want"
}

# Verify a GET answers 200, the right Docker-Content-Digest and the right bytes.
check_manifest() { # PORT REPO TAG EXPECTED_DIGEST
    local port=$1 repo=$2 tag=$3 want=$4 code hdr body auth=()
    mapfile -t auth < <(curl_auth "$port")
    code=$(curl -sS "${auth[@]}" -H "Accept: $OCI_MANIFEST" -D "$WORK/m.hdr" -o "$WORK/m.body" -w '%{http_code}' \
        "http://127.0.0.1:$port/v2/$repo/manifests/$tag")
    [ "$code" = 200 ] || die "manifest GET on 127.0.0.1:$port answered $code"
    hdr=$(tr -d '\r' <"$WORK/m.hdr" | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
    body=sha256:$(sha256sum "$WORK/m.body" | cut -d' ' -f1)
    { [ "$hdr" = "$want" ] && [ "$body" = "$want" ]; } ||
        die "manifest GET on 127.0.0.1:$port: header $hdr, body $body, expected $want"
}

# =============================================================================
ensure_tools
[ "$PORT" != "$REG_PORT" ] || die "PIER_BENCH_PORT and PIER_BENCH_REGISTRY_PORT must differ"
prepare_dir # also stops what an interrupted run left behind
port_busy "$PORT" && die "port $PORT is in use; set PIER_BENCH_PORT"
trap cleanup EXIT
trap 'exit 130' INT TERM
T_START=$(now)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
start_pier
pier_login
start_registry

PIER=http://127.0.0.1:$PORT
REG=http://127.0.0.1:$REG_PORT
BYTES=$((MIB * 1024 * 1024))

# ---- 1. warm blob download ----------------------------------------------------
log "1/3 blob download: writing a ${MIB} MiB random blob"
DL_DIGEST=sha256:$("$PYTHON" - "$WORK/blob.bin" "$MIB" <<'PY'
import hashlib, os, random, sys
rng = random.Random(int.from_bytes(os.urandom(8), "big"))
h = hashlib.sha256()
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        b = rng.randbytes(1 << 20)
        h.update(b)
        f.write(b)
print(h.hexdigest())
PY
)
DL_HEX=${DL_DIGEST#sha256:}
log "pushing it to both registries ($DL_DIGEST)"
push_blob "$PORT" bench/blob "$WORK/blob.bin" "$DL_DIGEST"
push_blob "$REG_PORT" bench/blob "$WORK/blob.bin" "$DL_DIGEST"
rm -f "$WORK/blob.bin"
PIER_BLOB_FILE=$PIER_STATE/blobs/blobs/sha256/${DL_HEX:0:2}/$DL_HEX
[ "$(stat -c %s "$PIER_BLOB_FILE" 2>/dev/null)" = "$BYTES" ] ||
    die "the blob is not where expected in Pier's blob root: $PIER_BLOB_FILE"
add_static_alias

# Only Pier's own URL needs credentials; the static alias is a plain file.
src_auth() { # SOURCE: curl arguments for it, one a line
    [ "$1" = pier ] && [ -n "$PIER_CREDS" ] && printf '%s\n' -u "$PIER_CREDS"
    return 0
}
declare -A URL=(
    [pier]="$PIER/v2/bench/blob/blobs/$DL_DIGEST"
    [static]="$PIER/static-baseline/sha256/${DL_HEX:0:2}/$DL_HEX"
    [registry]="$REG/v2/bench/blob/blobs/$DL_DIGEST"
)
# Wait for the graceful restart to bring in the alias.
for i in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -r 0-0 "${URL[static]}")" = 206 ] && break
    [ "$i" = 100 ] && die "the static baseline ${URL[static]} does not answer"
    sleep 0.1
done
# Warm-up: one full download from each source, checked against the digest.
for s in pier static registry; do
    mapfile -t auth < <(src_auth "$s")
    got=sha256:$(curl -fsS "${auth[@]}" "${URL[$s]}" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$DL_DIGEST" ] || die "warm-up download from $s has digest $got, expected $DL_DIGEST"
done
log "timing $DOWNLOADS downloads per source (interleaved)"
sync # no writeback of the freshly pushed blobs while timing
declare -A DL=([pier]="" [static]="" [registry]="")
order=(pier static registry)
for ((r = 0; r < DOWNLOADS; r++)); do
    for ((k = 0; k < 3; k++)); do
        s=${order[$(((r + k) % 3))]}
        mapfile -t auth < <(src_auth "$s")
        read -r code size speed < <(curl -s "${auth[@]}" -o /dev/null -w '%{http_code} %{size_download} %{speed_download}\n' "${URL[$s]}")
        { [ "$code" = 200 ] && [ "$size" = "$BYTES" ]; } || die "download from $s: HTTP $code, $size bytes"
        DL[$s]+="$(awk -v b="$speed" 'BEGIN { printf "%.1f", b / 1e6 }') "
    done
done
# shellcheck disable=SC2086
{
    DL_PIER=$(median ${DL[pier]})
    DL_STATIC=$(median ${DL[static]})
    DL_REG=$(median ${DL[registry]})
}

# ---- 2. manifest GET by tag ---------------------------------------------------
log "2/3 manifest GET: building and pushing a small image"
"$PYTHON" "$BENCH/mkimage.py" "$WORK/small" --layer-mib 1 >"$WORK/small.json"
M_DIGEST=$(json_get "$WORK/small.json" 'j["manifest"]["digest"]')
for port in "$PORT" "$REG_PORT"; do
    for part in config layer; do
        d=$(json_get "$WORK/small.json" "j[\"$part\"][\"digest\"]")
        push_blob "$port" bench/small "$WORK/small/blobs/sha256/${d#sha256:}" "$d"
    done
    push_manifest "$port" bench/small bench "$WORK/small/blobs/sha256/${M_DIGEST#sha256:}" "$M_DIGEST"
    check_manifest "$port" bench/small bench "$M_DIGEST"
done
declare -A WRK_OUT
for s in pier registry; do
    auth=()
    if [ "$s" = pier ]; then
        base=$PIER
        [ -n "$PIER_CREDS" ] && auth=(-H "$(pier_basic_header)")
    else
        base=$REG
    fi
    url=$base/v2/bench/small/manifests/bench
    log "wrk -t2 -c32 -d${WRK_SECONDS}s on $s (after a 2 s warm-up)"
    wrk -t2 -c32 -d2s "${auth[@]}" -H "Accept: $OCI_MANIFEST" "$url" >/dev/null
    out=$(wrk -t2 -c32 -d"${WRK_SECONDS}s" -s "$BENCH/wrk-report.lua" "${auth[@]}" -H "Accept: $OCI_MANIFEST" "$url")
    line=$(printf '%s\n' "$out" | grep '^RESULT ') || { printf '%s\n' "$out" >&2; die "wrk printed no result"; }
    WRK_OUT[$s]=$line
done
wrk_field() { printf '%s\n' "${WRK_OUT[$1]}" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
for s in pier registry; do
    bad=$(($(wrk_field $s non2xx) + $(wrk_field $s errors)))
    [ "$bad" = 0 ] || log "WARNING: $s answered $bad requests with errors or non-2xx: ${WRK_OUT[$s]}"
done
# Still the same manifest after the load.
check_manifest "$PORT" bench/small bench "$M_DIGEST"
check_manifest "$REG_PORT" bench/small bench "$M_DIGEST"

# ---- 3. skopeo push -----------------------------------------------------------
SKOPEO=(skopeo copy -q --preserve-digests --dest-tls-verify=false)
mapfile -t PIER_SKOPEO_AUTH < <(pier_skopeo_auth)
log "3/3 skopeo push: warm-up push of the small image to both"
"${SKOPEO[@]}" "${PIER_SKOPEO_AUTH[@]}" "oci:$WORK/small:bench" "docker://127.0.0.1:$PORT/bench/warmup:bench"
"${SKOPEO[@]}" "oci:$WORK/small:bench" "docker://127.0.0.1:$REG_PORT/bench/warmup:bench"
declare -A PUSH=([pier]="" [registry]="") PUSHSYNC=([pier]="" [registry]="")
for ((r = 1; r <= PUSHES; r++)); do
    if ((r % 2)); then targets=(pier registry); else targets=(registry pier); fi
    for s in "${targets[@]}"; do
        if [ "$s" = pier ]; then port=$PORT auth=("${PIER_SKOPEO_AUTH[@]}"); else port=$REG_PORT auth=(); fi
        rm -rf "$WORK/push"
        "$PYTHON" "$BENCH/mkimage.py" "$WORK/push" --layer-mib "$MIB" >"$WORK/push.json"
        layer=$(json_get "$WORK/push.json" 'j["layer"]["digest"]')
        lsize=$(json_get "$WORK/push.json" 'j["layer"]["size"]')
        mdig=$(json_get "$WORK/push.json" 'j["manifest"]["digest"]')
        repo=bench/push-$r-$s
        sync # nothing left to write back from earlier steps
        t0=$(now)
        "${SKOPEO[@]}" "${auth[@]}" "oci:$WORK/push:bench" "docker://127.0.0.1:$port/$repo:bench"
        t1=$(now)
        sync # what the registry left unwritten
        t2=$(now)
        PUSH[$s]+="$(elapsed "$t0" "$t1") "
        PUSHSYNC[$s]+="$(elapsed "$t0" "$t2") "
        log "push $r to $s: $(elapsed "$t0" "$t1") s (+ sync: $(elapsed "$t0" "$t2") s)"
        # The layer really arrived, whole, under the pushed manifest.
        mapfile -t auth < <(curl_auth "$port")
        got=$(curl -sS "${auth[@]}" -I "http://127.0.0.1:$port/v2/$repo/blobs/$layer" | tr -d '\r' |
            awk 'NR == 1 { c = $2 } tolower($1) == "content-length:" { l = $2 } END { print c, l }')
        [ "$got" = "200 $lsize" ] || die "after the push, HEAD of the layer on $s gives '$got'"
        check_manifest "$port" "$repo" bench "$mdig"
    done
done
rm -rf "$WORK/push"
# shellcheck disable=SC2086
{
    PUSH_PIER=$(median ${PUSH[pier]})
    PUSH_REG=$(median ${PUSH[registry]})
    PUSHSYNC_PIER=$(median ${PUSHSYNC[pier]})
    PUSHSYNC_REG=$(median ${PUSHSYNC[registry]})
}
T_END=$(now)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -------------------------------------------------------------------
commit=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (modified)"
R_STATIC=$(ratio "$DL_PIER" "$DL_STATIC")
verdict=$(awk -v r="$R_STATIC" 'BEGIN { print (r >= 0.9 ? "met" : "MISSED") }')
report() {
    cat <<MD
# Pier benchmark

- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, run time $(elapsed "$T_START" "$T_END") s
- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); load average $LOAD_START before, $LOAD_END after (anything else running skews the numbers)
- Pier: $WORKERS pierd workers, $(apache2 -v | sed -n 's/^Server version: //p') (event MPM), PostgreSQL $(psql --version | awk '{ print $3 }'); $(if [ -n "$PIER_CREDS" ]; then echo "clients log in as user AWS with a login password of the bootstrap administrator (curl, wrk: Basic on every request; skopeo: \`--dest-creds\`)"; else echo "no authentication in this build"; fi)
- docker-registry: $(docker-registry --version | awk '{ print $2, $3 }'), filesystem storage, in-memory blob descriptor cache
- clients: $(curl --version | awk 'NR == 1 { print $1, $2 }'), wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), $(skopeo --version)

| Measurement | Pier | Static file (Pier's Apache) | docker-registry | Pier / static | Pier / docker-registry |
| --- | ---: | ---: | ---: | ---: | ---: |
| Warm blob GET, ${MIB} MiB, median of $DOWNLOADS (MB/s, higher is better) | $(fmt "$DL_PIER" 0) | $(fmt "$DL_STATIC" 0) | $(fmt "$DL_REG" 0) | $R_STATIC | $(ratio "$DL_PIER" "$DL_REG") |
| Manifest GET by tag, wrk -t2 -c32 -d${WRK_SECONDS}s (requests/s, higher is better) | $(fmt "$(wrk_field pier rps)" 0) | – | $(fmt "$(wrk_field registry rps)" 0) | – | $(ratio "$(wrk_field pier rps)" "$(wrk_field registry rps)") |
| Manifest GET latency p50 (ms, lower is better) | $(fmt "$(wrk_field pier p50_ms)" 2) | – | $(fmt "$(wrk_field registry p50_ms)" 2) | – | $(ratio "$(wrk_field pier p50_ms)" "$(wrk_field registry p50_ms)") |
| Manifest GET latency p99 (ms, lower is better) | $(fmt "$(wrk_field pier p99_ms)" 2) | – | $(fmt "$(wrk_field registry p99_ms)" 2) | – | $(ratio "$(wrk_field pier p99_ms)" "$(wrk_field registry p99_ms)") |
| skopeo push, ${MIB} MiB layer, median of $PUSHES (s, lower is better) | $(fmt "$PUSH_PIER" 2) | – | $(fmt "$PUSH_REG" 2) | – | $(ratio "$PUSH_PIER" "$PUSH_REG") |
| skopeo push + sync, same runs (s, lower is better) | $(fmt "$PUSHSYNC_PIER" 2) | – | $(fmt "$PUSHSYNC_REG" 2) | – | $(ratio "$PUSHSYNC_PIER" "$PUSHSYNC_REG") |

Target: Pier / static ≥ 0.9 for blob downloads: **$verdict** ($R_STATIC).
For the rows in MB/s and requests/s a ratio above 1 favours Pier; for the
rows in ms and s a ratio below 1 does.

Raw samples:
- blob GET MB/s — Pier: ${DL[pier]% }; static: ${DL[static]% }; docker-registry: ${DL[registry]% }
- wrk — Pier: ${WRK_OUT[pier]#RESULT }; docker-registry: ${WRK_OUT[registry]#RESULT }
- push s — Pier: ${PUSH[pier]% }; docker-registry: ${PUSH[registry]% }
- push + sync s — Pier: ${PUSHSYNC[pier]% }; docker-registry: ${PUSHSYNC[registry]% }
MD
}
mkdir -p "$RESULTS_DIR"
report >"$RESULTS_DIR/latest.md"
echo
cat "$RESULTS_DIR/latest.md"
STATUS=ok
