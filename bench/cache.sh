#!/usr/bin/env bash
# bench/cache.sh — Pier's pull-through cache against docker-registry's proxy
# mode (distribution 2.8) and against pulling straight from the upstream, side
# by side on this machine, in one run:
#
#   1. cold pull (skopeo) of a 3-layer image and of a 768 MiB 2-layer image,
#      fresh random layers for every pull: Pier, proxy, upstream directly
#   2. warm pull (the same pull again right after): Pier, proxy, upstream
#   3. manifest GET by tag within the refresh interval under wrk load: Pier,
#      proxy (which asks the upstream on every tag request)
#   4. upstream GETs per blob when 20 clients pull a cold image at once
#      through Pier, and through the proxy (with another fresh image)
#   5. cold pulls again with the upstream behind a network link of
#      PIER_BENCH_LINK_MBIT (tc htb on loopback, the upstream port's traffic
#      only): the upstream across a network, as it is in production
#
# The upstream is a plain docker-registry whose access log counts what the
# two caches ask of it. Pier's clients log in the ECR way (user AWS, a login
# password of the bootstrap administrator); the docker-registries are open.
# Starts its own Pier node (quickstart.sh) and its own two docker-registry
# processes, stops all of them at exit, prints a markdown table and writes it
# to bench/results/cache-latest.md. See bench/README.md.
#
# Environment (all optional):
#   PIER_BENCH_CACHE_DIR        scratch directory, wiped at start (default /tmp/pier-bench-cache)
#   PIER_BENCH_CACHE_PORT       Pier's Apache port (default 5500)
#   PIER_BENCH_UPSTREAM_PORT    the upstream docker-registry (default Pier's port + 1)
#   PIER_BENCH_PROXY_PORT       the docker-registry in proxy mode (default Pier's port + 2)
#   PIER_BENCH_CACHE_PREFIX     Pier's cache rule prefix (default mirror)
#   PIER_BENCH_CACHE_ROUNDS     cold/warm pulls per image and registry (default 3)
#   PIER_BENCH_SMALL_MIB        layer sizes of the small image (default "1 8 32")
#   PIER_BENCH_BIG_MIB          layer sizes of the big image (default "512 256")
#   PIER_BENCH_HERD_MIB         layer sizes of the image the clients pull at once (default "16 16 16")
#   PIER_BENCH_CLIENTS          concurrent clients in step 4 (default 20)
#   PIER_BENCH_WRK_SECONDS      wrk duration per registry (default 10)
#   PIER_BENCH_LINK_MBIT        step 5's link to the upstream in Mbit/s (default 1000; 0 skips step 5)
#   PIER_BENCH_KEEP=1           keep the scratch directory (logs, storage) after the run
#   PIER_WORKERS, PIER_BUILD_DIR  passed to quickstart.sh (pool size, build directory)
set -Eeuo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
BENCH=$SRC/bench
BDIR=${PIER_BENCH_CACHE_DIR:-/tmp/pier-bench-cache}
PORT=${PIER_BENCH_CACHE_PORT:-5500}
UP_PORT=${PIER_BENCH_UPSTREAM_PORT:-$((PORT + 1))}
PROXY_PORT=${PIER_BENCH_PROXY_PORT:-$((PORT + 2))}
PREFIX=${PIER_BENCH_CACHE_PREFIX:-mirror}
ROUNDS=${PIER_BENCH_CACHE_ROUNDS:-3}
SMALL_MIB=${PIER_BENCH_SMALL_MIB:-"1 8 32"}
BIG_MIB=${PIER_BENCH_BIG_MIB:-"512 256"}
HERD_MIB=${PIER_BENCH_HERD_MIB:-"16 16 16"}
CLIENTS=${PIER_BENCH_CLIENTS:-20}
WRK_SECONDS=${PIER_BENCH_WRK_SECONDS:-10}
KEEP=${PIER_BENCH_KEEP:-0}
LINK_MBIT=${PIER_BENCH_LINK_MBIT:-1000}
WORKERS=${PIER_WORKERS:-4}
PYTHON=${PYTHON:-python3}
BUILD=${PIER_BUILD_DIR:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
REFRESH=86400

PIER_STATE=$BDIR/pier
UP_DIR=$BDIR/upstream
PROXY_DIR=$BDIR/proxy
WORK=$BDIR/scratch
MARKER=$BDIR/.pier-bench-cache
RESULTS_DIR=$BENCH/results
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
CLK_TCK=$(getconf CLK_TCK)
# Pushes keep the uncompressed layers as they are (else skopeo gzips them on
# the way to a registry). Pulls into an OCI layout likewise: without
# --dest-oci-accept-uncompressed-layers skopeo gzips every pulled layer, and
# the pull time would mostly be gzip's, the same for all three sources.
PUSH=(skopeo copy -q --preserve-digests --dest-tls-verify=false)
PULL=(skopeo copy -q --src-tls-verify=false --dest-oci-accept-uncompressed-layers)

log() { printf '[cache-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'cache-bench: %s\n' "$*" >&2; exit 1; }

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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "" || b == "") print "n/a"; else printf "%.2f", a/b }'; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
json_get() { # file, python expression on j
    "$PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
sum_words() { awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s + 0 }' <<<"$*"; }

quickstart() { # action
    env -u PIER_DATABASE -u PIER_BLOB_ROOT PIER_STATE_DIR="$PIER_STATE" PIER_PORT="$PORT" \
        PIER_WORKERS="$WORKERS" PIER_BUILD_DIR="$BUILD" "$SRC/quickstart.sh" "$1"
}
pierctl() { "$BUILD/pierctl" -c "$PIER_STATE/pier.conf" "$@"; }

# Pier authenticates every request: log in the ECR way, user AWS with a login
# password (12 h) of the administrator quickstart.sh bootstrapped. Sets
# PIER_CREDS ("user:password"), or leaves it empty for a build that has no
# authentication (no admin.env).
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
pier_skopeo_auth() { [ -z "$PIER_CREDS" ] || printf '%s\n' --src-creds "$PIER_CREDS"; }
pier_basic_header() { printf 'Authorization: Basic %s' "$(printf '%s' "$PIER_CREDS" | base64 -w0)"; }

# ---- CPU per process tree ---------------------------------------------------
# One line "group=ticks ..." (user + system, including reaped children) for the
# process trees of Pier's Apache, the pierd pool, PostgreSQL, the upstream, the
# proxy, and this script (its children: skopeo, curl, the herd), each process
# counted under its nearest ancestor that is one of those roots.
cpu_snapshot() {
    local roots="" pid
    pid=$(cat "$PIER_STATE/run/httpd.pid" 2>/dev/null) && roots+=" apache=$pid"
    pid=$(cat "$PIER_STATE/run/pierd.pid" 2>/dev/null) && roots+=" pierd=$pid"
    pid=$(head -n 1 "$PIER_STATE/pg/postmaster.pid" 2>/dev/null) && roots+=" postgres=$pid"
    [ -n "$UP_PID" ] && roots+=" upstream=$UP_PID"
    [ -n "$PROXY_PID" ] && roots+=" proxy=$PROXY_PID"
    roots+=" client=$$"
    # Processes come and go while cat reads: a vanished one is not an error.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v roots="$roots" '
        {
            # pid (comm) state ppid ... utime stime cutime cstime: fields 14-17
            p = match($0, /\) [A-Za-z] /)
            if (!p) next
            n = split(substr($0, p + 2), f, " ")
            ppid[$1] = f[2]
            ticks[$1] = f[12] + f[13] + f[14] + f[15]
        }
        END {
            n = split(roots, r, " ")
            for (i = 1; i <= n; i++) {
                split(r[i], kv, "=")
                if (kv[2] == "" || kv[2] == 0) continue
                root[kv[2]] = kv[1]
                sum[kv[1]] = 0
                order[++k] = kv[1]
            }
            for (pid in ticks) {
                q = pid
                for (hops = 0; hops < 64 && !(q in root) && (q in ppid); hops++) q = ppid[q]
                if (q in root) sum[root[q]] += ticks[pid]
            }
            for (i = 1; i <= k; i++) printf "%s=%d%s", order[i], sum[order[i]], (i < k ? " " : "\n")
        }'
}
cpu_diff() { # before after -> "group=seconds ..."
    awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN {
        n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); before[kv[1]] = kv[2] }
        n = split(b, y, " ")
        for (i = 1; i <= n; i++) {
            split(y[i], kv, "=")
            printf "%s=%.2f%s", kv[1], (kv[2] - before[kv[1]]) / hz, (i < n ? " " : "\n")
        }
    }'
}
cpu_field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }

# ---- start / stop -------------------------------------------------------------
UP_PID=""
PROXY_PID=""
STATUS=failed
# ---- a network link to the upstream (step 5) ---------------------------------
# An htb qdisc on lo whose one class, at LINK_MBIT, takes the packets the
# upstream sends (source port UP_PORT); everything else on lo (the client
# talking to Pier or to the proxy, the proxy's own client side) passes
# unshaped. Only when lo has no qdisc of its own and tc can do it.
SHAPED=0
SHAPE_SKIP=""
shape_on() {
    SHAPE_SKIP=""
    if [ "$LINK_MBIT" = 0 ]; then SHAPE_SKIP="PIER_BENCH_LINK_MBIT=0"; return 1; fi
    if [ "$(id -u)" != 0 ]; then SHAPE_SKIP="not root (tc needs CAP_NET_ADMIN)"; return 1; fi
    command -v tc >/dev/null 2>&1 || { SHAPE_SKIP="no tc (apt-get install iproute2)"; return 1; }
    if tc qdisc show dev lo | grep -qv 'noqueue'; then SHAPE_SKIP="lo already has a qdisc: $(tc qdisc show dev lo | head -1)"; return 1; fi
    if ! { tc qdisc add dev lo root handle 1: htb &&
        tc class add dev lo parent 1: classid 1:20 htb rate "${LINK_MBIT}mbit" burst 1m &&
        tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport "$UP_PORT" 0xffff flowid 1:20; } 2>"$WORK/tc.err"; then
        SHAPE_SKIP="tc failed: $(head -1 "$WORK/tc.err")"
        tc qdisc del dev lo root 2>/dev/null
        return 1
    fi
    SHAPED=1
}
shape_off() {
    [ "$SHAPED" = 1 ] || return 0
    tc qdisc del dev lo root 2>/dev/null || log "WARNING: could not remove the htb qdisc from lo (tc qdisc del dev lo root)"
    SHAPED=0
}

cleanup() {
    set +e
    trap - EXIT INT TERM ERR
    local pid
    shape_off
    for pid in "$PROXY_PID" "$UP_PID"; do
        [ -n "$pid" ] || continue
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -d "$PIER_STATE" ]; then
        quickstart stop >/dev/null 2>&1 || log "quickstart.sh stop failed"
    fi
    if [ "$KEEP" = 1 ]; then
        log "kept $BDIR"
    elif [ "$STATUS" = ok ]; then
        rm -rf "$BDIR"
    else
        # Keep the logs for a post-mortem, drop the gigabytes.
        rm -rf "$WORK" "$UP_DIR/storage" "$PROXY_DIR/storage" "$PIER_STATE/blobs"
        log "logs kept in $PIER_STATE/log, $UP_DIR and $PROXY_DIR"
    fi
}

prepare_dir() {
    if [ -e "$BDIR" ] && [ ! -e "$MARKER" ] && [ -n "$(ls -A "$BDIR" 2>/dev/null)" ]; then
        die "$BDIR exists and was not made by this benchmark; set PIER_BENCH_CACHE_DIR"
    fi
    if [ -e "$MARKER" ]; then # leftovers of an interrupted run
        local f
        for f in "$PROXY_DIR/pid" "$UP_DIR/pid"; do
            if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
        done
        [ -d "$PIER_STATE" ] && { quickstart stop >/dev/null 2>&1 || true; }
        rm -rf "$BDIR"
    fi
    mkdir -p "$BDIR" "$UP_DIR/storage" "$PROXY_DIR/storage" "$WORK"
    chmod 755 "$BDIR"
    touch "$MARKER"
}

start_pier() {
    log "starting Pier on 127.0.0.1:$PORT (state $PIER_STATE, $WORKERS workers; builds if needed)"
    quickstart start >"$BDIR/quickstart.log" 2>&1 || { cat "$BDIR/quickstart.log" >&2; die "Pier did not start"; }
}

# start_registry DIR PORT [REMOTEURL]: a docker-registry with filesystem
# storage under DIR/storage, its access log (stdout) and messages in
# DIR/registry.log; in proxy mode when REMOTEURL is given. Sets REG_STARTED.
start_registry() {
    local dir=$1 port=$2 remote=${3:-}
    port_busy "$port" && die "port $port is in use; set PIER_BENCH_CACHE_PORT or the registry ports"
    cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: pier-bench-cache-$port
YML
    if [ -n "$remote" ]; then
        printf 'proxy:\n  remoteurl: %s\n' "$remote" >>"$dir/config.yml"
    fi
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    REG_STARTED=$!
    echo "$REG_STARTED" >"$dir/pid"
    local _
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && return 0
        kill -0 "$REG_STARTED" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/registry.log" >&2
    die "docker-registry on 127.0.0.1:$port did not start"
}

# ---- the upstream's access log ----------------------------------------------
UP_LOG=$UP_DIR/registry.log
up_mark() { wc -l <"$UP_LOG"; }
# up_lines MARK: access log lines written since MARK as "METHOD PATH STATUS".
up_lines() {
    tail -n +"$(($1 + 1))" "$UP_LOG" |
        sed -nE 's/.*"(GET|HEAD|PUT|POST|PATCH|DELETE) ([^ ]+) HTTP\/[0-9.]+" ([0-9]{3}) .*/\1 \2 \3/p'
}
# up_blob_gets MARK: successful blob GETs since MARK, one "COUNT DIGEST" line per digest.
up_blob_gets() { up_lines "$1" | awk '$1 == "GET" && $3 == 200 && $2 ~ /\/blobs\/sha256:/ {
    sub(/.*\/blobs\//, "", $2); sub(/\?.*/, "", $2); n[$2]++ } END { for (d in n) print n[d], d }'; }
up_blob_get_total() { up_blob_gets "$1" | awk '{ s += $1 } END { print s + 0 }'; }
# up_manifest_requests MARK: GET and HEAD of manifests since MARK.
up_manifest_requests() { up_lines "$1" | awk '($1 == "GET" || $1 == "HEAD") && $2 ~ /\/manifests\// { n++ } END { print n + 0 }'; }
# Wait until the log stops growing (the proxy copies blobs into its own
# storage in the background; its upstream GETs are logged when they end).
up_settle() {
    local last=-1 cur stable=0 _
    for _ in $(seq 1 100); do
        cur=$(up_mark)
        if [ "$cur" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
        [ "$stable" -ge 4 ] && return 0
        last=$cur
        sleep 0.25
    done
}

# ---- images -----------------------------------------------------------------
# new_image REPO MIB...: a fresh OCI layout with random layers, pushed to the
# upstream as REPO:bench. Sets IMG_DIGEST, IMG_BLOBS (config and layers).
new_image() {
    local repo=$1
    shift
    rm -rf "$WORK/img"
    "$PYTHON" "$BENCH/mkimage.py" "$WORK/img" --layer-mib "$@" >"$WORK/img.json"
    IMG_DIGEST=$(json_get "$WORK/img.json" 'j["manifest"]["digest"]')
    IMG_BLOBS=$(json_get "$WORK/img.json" '" ".join([j["config"]["digest"]] + [l["digest"] for l in j["layers"]])')
    "${PUSH[@]}" "oci:$WORK/img:bench" "docker://127.0.0.1:$UP_PORT/$repo:bench" ||
        die "skopeo push of $repo to the upstream failed"
    rm -rf "$WORK/img"
}

# The reference each source pulls REPO:bench of the upstream by.
ref_of() { # target repo
    case $1 in
    pier) echo "127.0.0.1:$PORT/$PREFIX/$2:bench" ;;
    proxy) echo "127.0.0.1:$PROXY_PORT/$2:bench" ;;
    direct) echo "127.0.0.1:$UP_PORT/$2:bench" ;;
    esac
}

# timed_pull TARGET REF: skopeo pull into a fresh OCI layout, verified against
# IMG_DIGEST. Sets PULL_S (seconds), PULL_UP_GETS (upstream blob GETs during
# the pull, counted once the log settled) and PULL_CPU (CPU seconds per
# process tree).
timed_pull() {
    local target=$1 ref=$2 dest=$WORK/pull mark c0 c1 t0 t1 got auth=()
    [ "$target" = pier ] && mapfile -t auth < <(pier_skopeo_auth)
    rm -rf "$dest"
    sync # no writeback of the pushed image while timing
    mark=$(up_mark)
    c0=$(cpu_snapshot)
    t0=$(now)
    "${PULL[@]}" "${auth[@]}" "docker://$ref" "oci:$dest:x" >"$WORK/pull.log" 2>&1 ||
        { cat "$WORK/pull.log" >&2; die "skopeo pull of $ref failed"; }
    t1=$(now)
    c1=$(cpu_snapshot)
    PULL_S=$(elapsed "$t0" "$t1")
    PULL_CPU=$(cpu_diff "$c0" "$c1")
    got=$(json_get "$dest/index.json" 'j["manifests"][0]["digest"]')
    [ "$got" = "$IMG_DIGEST" ] || die "pull of $ref gave manifest $got, expected $IMG_DIGEST"
    rm -rf "$dest"
    up_settle
    PULL_UP_GETS=$(up_blob_get_total "$mark")
}

# check_manifest BASE NAME TAG EXPECTED_DIGEST [USER:PASSWORD]: GET answers 200
# with the right Docker-Content-Digest and body. Sets CACHE_STATE (X-Pier-Cache,
# or "-").
check_manifest() {
    local base=$1 name=$2 tag=$3 want=$4 creds=${5:-} code hdr body auth=()
    [ -n "$creds" ] && auth=(-u "$creds")
    code=$(curl -sS "${auth[@]}" -H "Accept: $OCI_MANIFEST" -D "$WORK/m.hdr" -o "$WORK/m.body" \
        -w '%{http_code}' "$base/v2/$name/manifests/$tag")
    [ "$code" = 200 ] || die "manifest GET $base/v2/$name/manifests/$tag answered $code"
    hdr=$(tr -d '\r' <"$WORK/m.hdr" | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
    body=sha256:$(sha256sum "$WORK/m.body" | cut -d' ' -f1)
    { [ "$hdr" = "$want" ] && [ "$body" = "$want" ]; } ||
        die "manifest GET on $base: header $hdr, body $body, expected $want"
    CACHE_STATE=$(tr -d '\r' <"$WORK/m.hdr" | awk 'tolower($1) == "x-pier-cache:" { v = $2 } END { print (v == "" ? "-" : v) }')
}

# =============================================================================
ensure_tools
if [ "$PORT" = "$UP_PORT" ] || [ "$PORT" = "$PROXY_PORT" ] || [ "$UP_PORT" = "$PROXY_PORT" ]; then
    die "Pier, upstream and proxy need three different ports"
fi
prepare_dir # also stops what an interrupted run left behind
port_busy "$PORT" && die "port $PORT is in use; set PIER_BENCH_CACHE_PORT"
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
T_START=$(now)
LOAD_START=$(loadavg)
start_pier
log "starting the upstream docker-registry on 127.0.0.1:$UP_PORT"
start_registry "$UP_DIR" "$UP_PORT"
UP_PID=$REG_STARTED
log "starting docker-registry in proxy mode on 127.0.0.1:$PROXY_PORT (remote http://127.0.0.1:$UP_PORT)"
start_registry "$PROXY_DIR" "$PROXY_PORT" "http://127.0.0.1:$UP_PORT"
PROXY_PID=$REG_STARTED
log "Pier rule: $PREFIX/ -> http://127.0.0.1:$UP_PORT, refresh ${REFRESH}s"
pierctl rule create "$PREFIX" "http://127.0.0.1:$UP_PORT" --refresh "$REFRESH" >"$WORK/rule.out" 2>&1 ||
    { cat "$WORK/rule.out" >&2; die "pierctl rule create failed"; }
pier_login

PIER=http://127.0.0.1:$PORT
PROXY=http://127.0.0.1:$PROXY_PORT
TARGETS=(pier proxy direct)
declare -A LOADS

# ---- warm-up ------------------------------------------------------------------
# One untimed pull of a tiny image through each source: first connections,
# the proxy's first challenge, skopeo itself in the page cache.
log "warm-up: one pull of a tiny image through each source"
for t in "${TARGETS[@]}"; do
    new_image "bench/warmup-$t" 1
    timed_pull "$t" "$(ref_of "$t" "bench/warmup-$t")"
done

# ---- 1 + 2. cold and warm pulls -------------------------------------------------
LOADS[pulls]=$(loadavg)
declare -A COLD WARM COLD_GETS WARM_GETS COLD_CPU WARM_CPU
declare -A MIBS=([small]="$SMALL_MIB" [big]="$BIG_MIB")
for kind in small big; do
    for t in "${TARGETS[@]}"; do
        COLD[$kind:$t]="" WARM[$kind:$t]="" COLD_GETS[$kind:$t]="" WARM_GETS[$kind:$t]=""
        COLD_CPU[$kind:$t]="" WARM_CPU[$kind:$t]=""
    done
done
for ((r = 1; r <= ROUNDS; r++)); do
    for kind in small big; do
        for ((k = 0; k < 3; k++)); do
            t=${TARGETS[$(((r - 1 + k) % 3))]}
            repo=bench/$kind-r$r-$t
            # shellcheck disable=SC2086
            new_image "$repo" ${MIBS[$kind]}
            ref=$(ref_of "$t" "$repo")
            timed_pull "$t" "$ref"
            COLD[$kind:$t]+="$PULL_S "
            COLD_GETS[$kind:$t]+="$PULL_UP_GETS "
            COLD_CPU[$kind:$t]+="$PULL_CPU;"
            cold_s=$PULL_S cold_gets=$PULL_UP_GETS
            timed_pull "$t" "$ref"
            WARM[$kind:$t]+="$PULL_S "
            WARM_GETS[$kind:$t]+="$PULL_UP_GETS "
            WARM_CPU[$kind:$t]+="$PULL_CPU;"
            log "round $r, $kind image, $t: cold $cold_s s ($cold_gets upstream blob GETs), warm $PULL_S s ($PULL_UP_GETS)"
        done
    done
done
declare -A COLD_MED WARM_MED
for kind in small big; do
    for t in "${TARGETS[@]}"; do
        # shellcheck disable=SC2086
        COLD_MED[$kind:$t]=$(median ${COLD[$kind:$t]})
        # shellcheck disable=SC2086,SC2034 # WARM_MED is read by name in pull_row
        WARM_MED[$kind:$t]=$(median ${WARM[$kind:$t]})
    done
done
# CPU seconds per process tree, median over the rounds, of one kind of pull.
cpu_median() { # "cpu line;cpu line;..." group
    local line vals=()
    IFS=';' read -ra lines <<<"$1"
    for line in "${lines[@]}"; do
        [ -n "$line" ] && vals+=("$(cpu_field "$line" "$2")")
    done
    median "${vals[@]}"
}

# ---- 3. manifest GET by tag ---------------------------------------------------
LOADS[manifest]=$(loadavg)
log "3/4 manifest GET: a small image, first pulled through both"
new_image bench/tags 1
M_DIGEST=$IMG_DIGEST
check_manifest "$PIER" "$PREFIX/bench/tags" bench "$M_DIGEST" "$PIER_CREDS"
FIRST_STATE=$CACHE_STATE
check_manifest "$PIER" "$PREFIX/bench/tags" bench "$M_DIGEST" "$PIER_CREDS"
[ "$CACHE_STATE" = hit ] || die "second manifest GET through Pier: X-Pier-Cache $CACHE_STATE, expected hit"
log "Pier: 200, $M_DIGEST, X-Pier-Cache $FIRST_STATE then $CACHE_STATE"
check_manifest "$PROXY" bench/tags bench "$M_DIGEST"
check_manifest "$PROXY" bench/tags bench "$M_DIGEST"
log "proxy: 200, $M_DIGEST"
declare -A WRK_OUT WRK_UP
for s in pier proxy; do
    auth=()
    if [ "$s" = pier ]; then
        url=$PIER/v2/$PREFIX/bench/tags/manifests/bench
        [ -n "$PIER_CREDS" ] && auth=(-H "$(pier_basic_header)")
    else
        url=$PROXY/v2/bench/tags/manifests/bench
    fi
    log "wrk -t2 -c32 -d${WRK_SECONDS}s on $s (after a 2 s warm-up)"
    wrk -t2 -c32 -d2s "${auth[@]}" -H "Accept: $OCI_MANIFEST" "$url" >/dev/null
    up_settle
    mark=$(up_mark)
    out=$(wrk -t2 -c32 -d"${WRK_SECONDS}s" -s "$BENCH/wrk-report.lua" "${auth[@]}" -H "Accept: $OCI_MANIFEST" "$url")
    line=$(printf '%s\n' "$out" | grep '^RESULT ') || { printf '%s\n' "$out" >&2; die "wrk printed no result"; }
    WRK_OUT[$s]=$line
    up_settle
    WRK_UP[$s]=$(up_manifest_requests "$mark")
done
wrk_field() { printf '%s\n' "${WRK_OUT[$1]}" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
for s in pier proxy; do
    bad=$(($(wrk_field $s non2xx) + $(wrk_field $s errors)))
    [ "$bad" = 0 ] || log "WARNING: $s answered $bad requests with errors or non-2xx: ${WRK_OUT[$s]}"
done
# Still the same manifest after the load, and still served from Pier's cache.
check_manifest "$PIER" "$PREFIX/bench/tags" bench "$M_DIGEST" "$PIER_CREDS"
[ "$CACHE_STATE" = hit ] || die "after wrk, X-Pier-Cache is $CACHE_STATE, expected hit"
check_manifest "$PROXY" bench/tags bench "$M_DIGEST"

# ---- 4. many clients, one cold image --------------------------------------------
LOADS[herd]=$(loadavg)
declare -A HERD_PER_BLOB HERD_GETS HERD_AVG HERD_MAN HERD_OK HERD_S HERD_CACHE
for s in pier proxy; do
    repo=bench/herd-$s
    # shellcheck disable=SC2086
    new_image "$repo" $HERD_MIB
    if [ "$s" = pier ]; then base=$PIER name=$PREFIX/$repo creds=$PIER_CREDS; else base=$PROXY name=$repo creds=""; fi
    log "4/4 $CLIENTS clients at once pull $name:bench (${HERD_MIB// /+} MiB, cold) from $s"
    sync
    up_settle
    mark=$(up_mark)
    rc=0
    PIER_BENCH_BASIC=$creds "$PYTHON" "$BENCH/herd.py" "$base" "$name" bench --digest "$IMG_DIGEST" \
        --clients "$CLIENTS" >"$WORK/herd-$s.json" || rc=$?
    [ -s "$WORK/herd-$s.json" ] || die "herd.py printed nothing (exit $rc)"
    up_settle
    per_blob="" total=0
    for d in $IMG_BLOBS; do
        n=$(up_blob_gets "$mark" | awk -v d="$d" '$2 == d { print $1 }')
        n=${n:-0}
        per_blob+="${d:7:12}=$n "
        total=$((total + n))
    done
    nb=$(wc -w <<<"$IMG_BLOBS")
    HERD_PER_BLOB[$s]=${per_blob% }
    HERD_GETS[$s]=$total
    HERD_AVG[$s]=$(awk -v t="$total" -v n="$nb" 'BEGIN { printf "%.2f", t / n }')
    HERD_MAN[$s]=$(up_manifest_requests "$mark")
    HERD_OK[$s]=$(json_get "$WORK/herd-$s.json" 'str(j["ok"]) + "/" + str(j["requests"])')
    HERD_S[$s]=$(json_get "$WORK/herd-$s.json" 'j["seconds"]')
    HERD_CACHE[$s]=$(json_get "$WORK/herd-$s.json" '" ".join(f"{k}={v}" for k, v in sorted(j["cache"].items()))')
    want=$((CLIENTS * (nb + 1)))
    log "$s: ${HERD_OK[$s]} requests correct (of $want), ${HERD_S[$s]} s; upstream blob GETs ${HERD_PER_BLOB[$s]} (${HERD_AVG[$s]} per blob), ${HERD_MAN[$s]} manifest requests"
    if [ "$rc" != 0 ] || [ "${HERD_OK[$s]}" != "$want/$want" ]; then
        log "WARNING: $s: some clients got wrong answers: $(json_get "$WORK/herd-$s.json" '"; ".join(j["bad"][:5])')"
    fi
done
HERD_NB=$(wc -w <<<"$IMG_BLOBS")

# ---- 5. cold pulls over a network link ------------------------------------------
declare -A LCOLD LCOLD_MED LCOLD_CPU
for kind in small big; do for t in "${TARGETS[@]}"; do LCOLD[$kind:$t]="" LCOLD_CPU[$kind:$t]=""; done; done
LINK_RATE=""
if shape_on; then
    LOADS[link]=$(loadavg)
    # What the link gives one client: a direct blob GET of a fresh 64 MiB layer.
    new_image bench/link-probe 64
    probe=$(json_get "$WORK/img.json" 'j["layers"][0]["digest"]')
    LINK_RATE=$(curl -sS -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$UP_PORT/v2/bench/link-probe/blobs/$probe" |
        awk '{ printf "%.0f", $1 / 1e6 }')
    log "5/5 cold pulls with the upstream behind a ${LINK_MBIT} Mbit/s link (a direct GET gets $LINK_RATE MB/s)"
    for ((r = 1; r <= ROUNDS; r++)); do
        for kind in small big; do
            for ((k = 0; k < 3; k++)); do
                t=${TARGETS[$(((r - 1 + k) % 3))]}
                repo=bench/link-$kind-r$r-$t
                # shellcheck disable=SC2086
                new_image "$repo" ${MIBS[$kind]}
                timed_pull "$t" "$(ref_of "$t" "$repo")"
                LCOLD[$kind:$t]+="$PULL_S "
                LCOLD_CPU[$kind:$t]+="$PULL_CPU;"
                log "link, round $r, $kind image, $t: cold $PULL_S s ($PULL_UP_GETS upstream blob GETs)"
            done
        done
    done
    shape_off
    for kind in small big; do
        for t in "${TARGETS[@]}"; do
            # shellcheck disable=SC2086
            LCOLD_MED[$kind:$t]=$(median ${LCOLD[$kind:$t]})
        done
    done
else
    log "5/5 skipped: $SHAPE_SKIP"
fi
T_END=$(now)
LOAD_END=$(loadavg)

# ---- report -------------------------------------------------------------------
commit=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (modified)"
mib_label() { local m=$1 total; total=$(sum_words "$m"); echo "${m// /+} MiB = $total MiB"; }
verdict_le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r <= t ? "met" : "MISSED") }'; }
verdict_ge() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "n/a" && r >= t ? "met" : "MISSED") }'; }
R_COLD_SMALL=$(ratio "${COLD_MED[small:pier]}" "${COLD_MED[small:direct]}")
R_COLD_BIG=$(ratio "${COLD_MED[big:pier]}" "${COLD_MED[big:direct]}")
R_WRK=$(ratio "$(wrk_field pier rps)" "$(wrk_field proxy rps)")
R_LCOLD_SMALL=$(ratio "${LCOLD_MED[small:pier]:-}" "${LCOLD_MED[small:direct]:-}")
R_LCOLD_BIG=$(ratio "${LCOLD_MED[big:pier]:-}" "${LCOLD_MED[big:direct]:-}")
link_rows() {
    if [ -z "$LINK_RATE" ]; then
        echo "| Cold pulls over a network link to the upstream | skipped: $SHAPE_SKIP | | | | |"
        return
    fi
    pull_row "Cold pull, small image, upstream behind a ${LINK_MBIT} Mbit/s link, median of $ROUNDS (s)" LCOLD_MED small
    pull_row "Cold pull, big image, upstream behind a ${LINK_MBIT} Mbit/s link, median of $ROUNDS (s)" LCOLD_MED big
}
link_target() {
    [ -n "$LINK_RATE" ] || return 0
    echo "- the same over a ${LINK_MBIT} Mbit/s link to the upstream ($LINK_RATE MB/s for one direct GET): small image **$(verdict_le "$R_LCOLD_SMALL" 1.1)** ($R_LCOLD_SMALL), big image **$(verdict_le "$R_LCOLD_BIG" 1.1)** ($R_LCOLD_BIG)"
}
raw_link() {
    [ -n "$LINK_RATE" ] || return 0
    local kind t
    for kind in small big; do
        for t in "${TARGETS[@]}"; do
            echo "- ${LINK_MBIT} Mbit/s link, $kind image, $t — cold s: ${LCOLD[$kind:$t]% }"
        done
    done
    echo "- CPU s per cold big pull over the link — $(for t in "${TARGETS[@]}"; do printf '%s: %s ' "$t" "${LCOLD_CPU[big:$t]%;}"; done)"
}
pull_row() { # label table kind
    local -n tab=$2
    local k=$3
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(fmt "${tab[$k:pier]}" 2)" "$(fmt "${tab[$k:proxy]}" 2)" \
        "$(fmt "${tab[$k:direct]}" 2)" "$(ratio "${tab[$k:pier]}" "${tab[$k:direct]}")" \
        "$(ratio "${tab[$k:pier]}" "${tab[$k:proxy]}")"
}
cpu_table() { # kind cold|warm
    local g t row
    if [ "$2" = cold ]; then local -n cpu=COLD_CPU; else local -n cpu=WARM_CPU; fi
    echo "| CPU s, $2 $1 pull (median of $ROUNDS) | Pier | proxy | direct |"
    echo "| --- | ---: | ---: | ---: |"
    for g in apache pierd postgres proxy upstream client; do
        row="| $g"
        for t in "${TARGETS[@]}"; do row+=" | $(fmt "$(cpu_median "${cpu[$1:$t]}" "$g")" 2)"; done
        echo "$row |"
    done
}
raw_pulls() { # kind
    local t
    for t in "${TARGETS[@]}"; do
        echo "- $1 image, $t — cold s: ${COLD[$1:$t]% }; warm s: ${WARM[$1:$t]% }; upstream blob GETs cold: ${COLD_GETS[$1:$t]% }; warm: ${WARM_GETS[$1:$t]% }"
    done
}
report() {
    cat <<MD
# Pier pull-through cache benchmark

- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, run time $(elapsed "$T_START" "$T_END") s
- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); load average $LOAD_START before, ${LOADS[pulls]} at the pulls, ${LOADS[manifest]} at the manifest GETs, ${LOADS[herd]} at the herd, ${LOADS[link]:-–} over the link, $LOAD_END after (anything else running skews the numbers)
- Pier: $WORKERS pierd workers, $(apache2 -v | sed -n 's/^Server version: //p') (event MPM), PostgreSQL $(psql --version | awk '{ print $3 }'); rule \`$PREFIX\` → the upstream, refresh ${REFRESH} s; $(if [ -n "$PIER_CREDS" ]; then echo "clients log in as user AWS with a login password of the bootstrap administrator (skopeo: Bearer token from /token; curl, wrk, herd.py: Basic on every request)"; else echo "no authentication in this build"; fi)
- upstream: docker-registry $(docker-registry --version | awk '{ print $2, $3 }'), filesystem storage, access log counted
- proxy: the same docker-registry in proxy mode (\`proxy: remoteurl:\` the upstream), its own filesystem storage
- clients: $(skopeo --version), pulling into an OCI layout with \`--dest-oci-accept-uncompressed-layers\`; wrk $({ wrk -v 2>&1 || true; } | awk 'NR == 1 { print $2 }'); herd.py ($CLIENTS threads, Python $("$PYTHON" -c 'import platform; print(platform.python_version())'))
- images: uncompressed tar layers of fresh random bytes, a new image for every cold pull; small $(mib_label "$SMALL_MIB"), big $(mib_label "$BIG_MIB"), herd $(mib_label "$HERD_MIB")

| Measurement | Pier | docker-registry proxy | direct from upstream | Pier / direct | Pier / proxy |
| --- | ---: | ---: | ---: | ---: | ---: |
$(pull_row "Cold pull, small image, median of $ROUNDS (s, lower is better)" COLD_MED small)
$(pull_row "Cold pull, big image, median of $ROUNDS (s, lower is better)" COLD_MED big)
$(pull_row "Warm pull, small image, median of $ROUNDS (s, lower is better)" WARM_MED small)
$(pull_row "Warm pull, big image, median of $ROUNDS (s, lower is better)" WARM_MED big)
$(link_rows)
| Manifest GET by tag within the refresh interval, wrk -t2 -c32 -d${WRK_SECONDS}s (requests/s, higher is better) | $(fmt "$(wrk_field pier rps)" 0) | $(fmt "$(wrk_field proxy rps)" 0) | – | – | $R_WRK |
| Manifest GET latency p50 (ms) | $(fmt "$(wrk_field pier p50_ms)" 2) | $(fmt "$(wrk_field proxy p50_ms)" 2) | – | – | $(ratio "$(wrk_field pier p50_ms)" "$(wrk_field proxy p50_ms)") |
| Manifest GET latency p99 (ms) | $(fmt "$(wrk_field pier p99_ms)" 2) | $(fmt "$(wrk_field proxy p99_ms)" 2) | – | – | $(ratio "$(wrk_field pier p99_ms)" "$(wrk_field proxy p99_ms)") |
| Upstream manifest requests during the wrk run | ${WRK_UP[pier]} | ${WRK_UP[proxy]} | – | – | – |
| $CLIENTS clients pull one cold image at once: upstream GETs per blob ($HERD_NB blobs) | ${HERD_AVG[pier]} | ${HERD_AVG[proxy]} | – | – | – |
| $CLIENTS clients: upstream manifest requests | ${HERD_MAN[pier]} | ${HERD_MAN[proxy]} | – | – | – |
| $CLIENTS clients: requests with the right status, size and digest | ${HERD_OK[pier]} | ${HERD_OK[proxy]} | – | – | – |
| $CLIENTS clients: wall time (s) | ${HERD_S[pier]} | ${HERD_S[proxy]} | – | – | – |

Targets:
- cold pull, Pier / direct ≤ 1.1, everything on loopback: small image **$(verdict_le "$R_COLD_SMALL" 1.1)** ($R_COLD_SMALL), big image **$(verdict_le "$R_COLD_BIG" 1.1)** ($R_COLD_BIG)
$(link_target)
- manifest GET by tag, Pier / proxy ≥ 20: **$(verdict_ge "$R_WRK" 20)** ($R_WRK)
- upstream GETs per blob through Pier with $CLIENTS clients = 1.0: **$(awk -v v="${HERD_AVG[pier]}" -v b="${HERD_PER_BLOB[pier]}" 'BEGIN { n = split(b, x, " "); ok = 1; for (i = 1; i <= n; i++) { split(x[i], kv, "="); if (kv[2] != 1) ok = 0 } print (ok ? "met" : "MISSED") }')** (${HERD_AVG[pier]}; the proxy is expected to read $((CLIENTS + 1)))

For times a ratio below 1 favours Pier, for requests/s one above 1. "Direct"
pulls straight from the upstream: no cache, nothing written but the client's
copy; the warm direct pull is just a second direct pull.

On loopback the whole pull is CPU work on this machine's cores: the client,
the upstream, Apache, pierd and PostgreSQL share them, and Pier's cold pull
does work the direct pull does not (receive, hash and store every byte, hand
it to Apache). The "link" rows put the upstream behind a network link (tc
htb on lo, only the upstream's packets) as it is in production; there the
link, not the CPU, sets the pace for all three.

CPU seconds per process tree during the pulls (user + system; "client" is
skopeo; "upstream" also serves the pull in the direct case):

$(cpu_table big cold)

$(cpu_table big warm)

$(cpu_table small cold)

Raw samples:
$(raw_pulls small)
$(raw_pulls big)
$(raw_link)
- wrk — Pier: ${WRK_OUT[pier]#RESULT }; proxy: ${WRK_OUT[proxy]#RESULT }
- $CLIENTS clients, upstream GETs per blob (config first) — Pier: ${HERD_PER_BLOB[pier]} (total ${HERD_GETS[pier]}); proxy: ${HERD_PER_BLOB[proxy]} (total ${HERD_GETS[proxy]})
- $CLIENTS clients, X-Pier-Cache of the answers — Pier: ${HERD_CACHE[pier]}; proxy: ${HERD_CACHE[proxy]}
- $CLIENTS clients, seconds per client — Pier: $(json_get "$WORK/herd-pier.json" '" ".join(str(x) for x in j["client_seconds"])'); proxy: $(json_get "$WORK/herd-proxy.json" '" ".join(str(x) for x in j["client_seconds"])')
- CPU s per cold big pull — $(for t in "${TARGETS[@]}"; do printf '%s: %s ' "$t" "${COLD_CPU[big:$t]%;}"; done)
MD
}
mkdir -p "$RESULTS_DIR"
report >"$RESULTS_DIR/cache-latest.md"
echo
cat "$RESULTS_DIR/cache-latest.md"
STATUS=ok
