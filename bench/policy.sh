#!/usr/bin/env bash
# bench/policy.sh — the cost of policy evaluation on the hot path.
#
# Two configurations of one Pier node, measured alternately (A B A B ...):
#
#   A  "one statement": user bench-one, whose identity policy is a single
#      statement allowing the pull actions on bench/*; no registry policy.
#   B  "50 statements": user bench-fifty, whose identity policy has 50
#      statements — 49 that do not match the request (other actions, other
#      repositories, conditions on other users) and, last, the one that allows
#      it — plus a 50-statement registry policy of Deny statements
#      (Principal "*") for other repositories, none of which matches.
#
# For each configuration: a warm manifest GET by tag and a warm GET of a small
# blob (the image config), each under `wrk -t2 -c16 -d10s` with the user's
# Basic credentials (access key id and secret) in an Authorization header.
# Target: B within 10 % of A (requests/s, and p50 latency).
#
# Starts its own Pier node (quickstart.sh), stops it at exit, prints a
# markdown report and writes it to bench/results/policy-latest.md.
# See bench/README.md.
#
# Environment (all optional):
#   PIER_BENCH_POLICY_DIR     scratch directory, wiped at start (default /tmp/pier-bench-policy)
#   PIER_BENCH_POLICY_PORT    Pier's Apache port (default 5700)
#   PIER_BENCH_POLICY_ROUNDS  rounds; each runs A then B, both requests (default 5)
#   PIER_BENCH_WRK_SECONDS    duration of each timed wrk run (default 10)
#   PIER_BENCH_CONNECTIONS    wrk connections (default 16; threads are 2)
#   PIER_BENCH_KEEP=1         keep the scratch directory (logs) after the run
#   PIER_WORKERS, PIER_BUILD_DIR  passed to quickstart.sh (pool size, build directory)
set -Eeuo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
BENCH=$SRC/bench
BDIR=${PIER_BENCH_POLICY_DIR:-/tmp/pier-bench-policy}
PORT=${PIER_BENCH_POLICY_PORT:-5700}
ROUNDS=${PIER_BENCH_POLICY_ROUNDS:-5}
WRK_SECONDS=${PIER_BENCH_WRK_SECONDS:-10}
CONNS=${PIER_BENCH_CONNECTIONS:-16}
KEEP=${PIER_BENCH_KEEP:-0}
WORKERS=${PIER_WORKERS:-4}
BUILD=${PIER_BUILD_DIR:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
PYTHON=${PYTHON:-python3}

PIER_STATE=$BDIR/pier
WORK=$BDIR/scratch
MARKER=$BDIR/.pier-bench-policy
RESULTS_DIR=$BENCH/results
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
ACCOUNT=111122223333
REGION=us-east-1
REPO=bench/small
SETTLE=1.5 # policies are cached by each worker for up to 1 s

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---- tools ------------------------------------------------------------------
ensure_tools() {
    local -A pkg=([curl]=curl [wrk]=wrk [python3]=python3)
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
}

# ---- small helpers ----------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a/b }'; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
json_get() { # file, python expression on j
    "$PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
b64() { printf '%s' "$1" | base64 -w0; }
CLK_TCK=$(getconf CLK_TCK)
# CPU time (clock ticks) of the pierd master and its workers, reaped ones included.
pierd_ticks() {
    local master p
    master=$(cat "$PIER_STATE/run/pierd.pid")
    for p in "$master" $(pgrep -P "$master"); do
        awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null || true
    done | awk '{ s += $1 } END { print s + 0 }'
}
repo_arn() { echo "arn:aws:ecr:$REGION:$ACCOUNT:repository/$1"; }

quickstart() { # action
    env -u PIER_DATABASE -u PIER_BLOB_ROOT -u PIER_SERVER_KEY_FILE PIER_STATE_DIR="$PIER_STATE" PIER_PORT="$PORT" \
        PIER_WORKERS="$WORKERS" PIER_BUILD_DIR="$BUILD" "$SRC/quickstart.sh" "$1"
}
pierctl() { "$BUILD/pierctl" -c "$PIER_STATE/pier.conf" "$@"; }

# ---- start / stop -------------------------------------------------------------
STATUS=failed
cleanup() {
    set +e
    trap - EXIT INT TERM
    if [ -d "$PIER_STATE" ]; then
        quickstart stop >/dev/null 2>&1 || log "quickstart.sh stop failed"
    fi
    if [ "$KEEP" = 1 ]; then
        log "kept $BDIR"
    elif [ "$STATUS" = ok ]; then
        rm -rf "$BDIR"
    else
        rm -rf "$WORK" "$PIER_STATE/blobs"
        log "logs kept in $PIER_STATE/log"
    fi
}

prepare_dir() {
    if [ -e "$BDIR" ] && [ ! -e "$MARKER" ] && [ -n "$(ls -A "$BDIR" 2>/dev/null)" ]; then
        die "$BDIR exists and was not made by this benchmark; set PIER_BENCH_POLICY_DIR"
    fi
    if [ -e "$MARKER" ]; then # leftovers of an interrupted run
        [ -d "$PIER_STATE" ] && { quickstart stop >/dev/null 2>&1 || true; }
        rm -rf "$BDIR"
    fi
    mkdir -p "$BDIR" "$WORK"
    chmod 755 "$BDIR"
    touch "$MARKER"
}

# ---- policies -----------------------------------------------------------------
# The single statement of configuration A.
policy_one() {
    cat <<JSON
{"Version": "2012-10-17", "Statement": [
 {"Sid": "Pull", "Effect": "Allow",
  "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
  "Resource": "$(repo_arn 'bench/*')"}]}
JSON
}

# 49 statements that do not match a pull of bench/small by bench-fifty, then the one that does.
policy_fifty() {
    "$PYTHON" - "$(repo_arn '')" <<'PY'
import json, sys
arn = sys.argv[1]
pull = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
st = []
for i in range(49):
    kind = i % 4
    if kind == 0:    # the right actions, another repository
        st.append({"Sid": f"Team{i}", "Effect": "Allow", "Action": pull, "Resource": f"{arn}team-{i:02d}/*"})
    elif kind == 1:  # the right repository, other actions
        st.append({"Sid": f"Push{i}", "Effect": "Allow", "Action": ["ecr:PutImage", "ecr:UploadLayerPart"],
                   "Resource": f"{arn}bench/*"})
    elif kind == 2:  # the right actions and repository, for another user only
        st.append({"Sid": f"Other{i}", "Effect": "Allow", "Action": pull, "Resource": f"{arn}bench/*",
                   "Condition": {"StringEquals": {"aws:username": f"someone-else-{i}"}}})
    else:            # wildcards that do not match
        st.append({"Sid": f"Wild{i}", "Effect": "Allow", "Action": ["ecr:Describe*", "ecr:List*"],
                   "Resource": [f"{arn}project-{i:02d}/*", f"{arn}bench-{i:02d}?/*"]})
st.append({"Sid": "Pull", "Effect": "Allow", "Action": pull, "Resource": f"{arn}bench/*"})
print(json.dumps({"Version": "2012-10-17", "Statement": st}, separators=(",", ":")))
PY
}

# 50 Deny statements for other repositories (Principal "*"): none matches bench/small.
registry_fifty() {
    "$PYTHON" - "$(repo_arn '')" <<'PY'
import json, sys
arn = sys.argv[1]
st = [{"Sid": f"Lock{i}", "Effect": "Deny", "Principal": "*", "Action": "ecr:*",
       "Resource": f"{arn}locked-{i:02d}/*"} for i in range(50)]
print(json.dumps({"Version": "2012-10-17", "Statement": st}, separators=(",", ":")))
PY
}

create_user() { # name policy-json -> "id:secret"
    local name=$1 doc=$2 out id secret
    out=$(pierctl user create "$name") || die "pierctl user create $name failed"
    id=$(printf '%s\n' "$out" | sed -n 's/^AWS_ACCESS_KEY_ID=//p')
    secret=$(printf '%s\n' "$out" | sed -n 's/^AWS_SECRET_ACCESS_KEY=//p')
    [ -n "$id" ] && [ -n "$secret" ] || die "no access key for $name"
    printf '%s\n' "$doc" | pierctl policy identity put "$name" pull - >/dev/null ||
        die "pierctl policy identity put $name failed"
    echo "$id:$secret"
}

# Configuration a: no registry policy; b: the 50 Deny statements.
use_config() {
    if [ "$1" = b ]; then
        registry_fifty | pierctl policy registry put - >/dev/null || die "registry policy put failed"
    else
        pierctl policy registry delete >/dev/null 2>&1 || true
    fi
    sleep "$SETTLE"
}

# ---- registry client (curl, as the administrator) ---------------------------
push_blob() { # FILE DIGEST
    local code
    code=$(curl -sS -u "$ADMIN" -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$1" \
        -o "$WORK/put.out" -w '%{http_code}' "$PIER/v2/$REPO/blobs/uploads/?digest=$2")
    [ "$code" = 201 ] || { cat "$WORK/put.out" >&2; die "blob POST answered $code"; }
}

push_manifest() { # FILE EXPECTED_DIGEST
    local got
    got=$(curl -fsS -u "$ADMIN" -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary "@$1" -D - -o /dev/null \
        "$PIER/v2/$REPO/manifests/bench" |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
    [ "$got" = "$2" ] || die "manifest PUT gave digest '$got', expected $2"
}

# A GET with a user's credentials answers 200 and the expected bytes.
check_get() { # CREDS URL EXPECTED_DIGEST
    local code body
    code=$(curl -sS -H "Authorization: Basic $(b64 "$1")" -H "Accept: $OCI_MANIFEST" -o "$WORK/get.body" \
        -w '%{http_code}' "$2")
    [ "$code" = 200 ] || { cat "$WORK/get.body" >&2; die "GET $2 answered $code"; }
    body=sha256:$(sha256sum "$WORK/get.body" | cut -d' ' -f1)
    [ "$body" = "$3" ] || die "GET $2: body digest $body, expected $3"
}

# A GET elsewhere is refused in the way the configuration says (so the policies are live).
check_refused() { # CREDS REPO EXPECTED_TEXT
    local code
    code=$(curl -sS -H "Authorization: Basic $(b64 "$1")" -o "$WORK/deny.body" -w '%{http_code}' \
        "$PIER/v2/$2/manifests/bench")
    [ "$code" = 403 ] && grep -q "$3" "$WORK/deny.body" ||
        { cat "$WORK/deny.body" >&2; die "GET of $2 answered $code, expected 403 with '$3'"; }
}

# =============================================================================
ensure_tools
prepare_dir
port_busy "$PORT" && die "port $PORT is in use; set PIER_BENCH_POLICY_PORT"
trap cleanup EXIT
trap 'exit 130' INT TERM
T_START=$(now)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "starting Pier on 127.0.0.1:$PORT (state $PIER_STATE, $WORKERS workers; builds if needed)"
quickstart start >"$BDIR/quickstart.log" 2>&1 || { cat "$BDIR/quickstart.log" >&2; die "Pier did not start"; }
PIER=http://127.0.0.1:$PORT
# shellcheck disable=SC1091
ADMIN=$(. "$PIER_STATE/admin.env" && echo "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY")
[ "$ADMIN" != ":" ] || die "no administrator key in $PIER_STATE/admin.env"

log "pushing a small image to $REPO"
"$PYTHON" "$BENCH/mkimage.py" "$WORK/small" --layer-mib 1 >"$WORK/small.json"
M_DIGEST=$(json_get "$WORK/small.json" 'j["manifest"]["digest"]')
C_DIGEST=$(json_get "$WORK/small.json" 'j["config"]["digest"]')
C_SIZE=$(json_get "$WORK/small.json" 'j["config"]["size"]')
for part in config layer; do
    d=$(json_get "$WORK/small.json" "j[\"$part\"][\"digest\"]")
    push_blob "$WORK/small/blobs/sha256/${d#sha256:}" "$d"
done
push_manifest "$WORK/small/blobs/sha256/${M_DIGEST#sha256:}" "$M_DIGEST"

log "creating the users and policies"
POLICY_ONE=$(policy_one)
POLICY_FIFTY=$(policy_fifty)
declare -A CREDS USER_NAME=([a]=bench-one [b]=bench-fifty) NSTMT
CREDS[a]=$(create_user bench-one "$POLICY_ONE")
CREDS[b]=$(create_user bench-fifty "$POLICY_FIFTY")
NSTMT[a]=$(printf '%s' "$POLICY_ONE" | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["Statement"]))')
NSTMT[b]=$(printf '%s' "$POLICY_FIFTY" | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["Statement"]))')
REG_STMTS=$(registry_fifty | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["Statement"]))')
[ "${NSTMT[a]}" = 1 ] && [ "${NSTMT[b]}" = 50 ] && [ "$REG_STMTS" = 50 ] ||
    die "policy sizes ${NSTMT[a]} / ${NSTMT[b]} / $REG_STMTS, expected 1 / 50 / 50"

declare -A URL=([manifest]="$PIER/v2/$REPO/manifests/bench" [blob]="$PIER/v2/$REPO/blobs/$C_DIGEST")
declare -A WANT=([manifest]="$M_DIGEST" [blob]="$C_DIGEST")
declare -A RPS P50 P99 CPU
for cfg in a b; do for req in manifest blob; do
    RPS[$cfg$req]=""; P50[$cfg$req]=""; P99[$cfg$req]=""; CPU[$cfg$req]=""
done; done

run_config() { # a|b round
    local cfg=$1 round=$2 req out line hdr t0 t1 us
    use_config "$cfg"
    hdr="Authorization: Basic $(b64 "${CREDS[$cfg]}")"
    for req in manifest blob; do
        check_get "${CREDS[$cfg]}" "${URL[$req]}" "${WANT[$req]}"
    done
    if [ "$cfg" = b ]; then
        check_refused "${CREDS[b]}" locked-07/x 'explicitly denied by statement \\"Lock7\\" of the registry policy'
    else
        check_refused "${CREDS[a]}" locked-07/x "no statement"
    fi
    for req in manifest blob; do
        # Warm-up: every worker has the key and the policies cached, Apache's children are up.
        wrk -t2 -c"$CONNS" -d2s -H "$hdr" -H "Accept: $OCI_MANIFEST" "${URL[$req]}" >/dev/null
        t0=$(pierd_ticks)
        out=$(wrk -t2 -c"$CONNS" -d"${WRK_SECONDS}s" -s "$BENCH/wrk-report.lua" -H "$hdr" \
            -H "Accept: $OCI_MANIFEST" "${URL[$req]}")
        t1=$(pierd_ticks)
        line=$(printf '%s\n' "$out" | grep '^RESULT ') || { printf '%s\n' "$out" >&2; die "wrk printed no result"; }
        field() { printf '%s\n' "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
        [ "$(field non2xx)" = 0 ] && [ "$(field errors)" = 0 ] ||
            die "round $round, ${USER_NAME[$cfg]}, $req: errors or non-2xx answers: $line"
        RPS[$cfg$req]+="$(field rps) "
        us=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$(field requests)" 'BEGIN { printf "%.1f", d / hz / n * 1e6 }')
        CPU[$cfg$req]+="$us "
        P50[$cfg$req]+="$(field p50_ms) "
        P99[$cfg$req]+="$(field p99_ms) "
        log "round $round, ${USER_NAME[$cfg]} (${NSTMT[$cfg]} statements), $req GET: $(fmt "$(field rps)" 0) req/s, p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, pierd CPU $us µs/request"
    done
}

for ((r = 1; r <= ROUNDS; r++)); do
    run_config a "$r"
    run_config b "$r"
done
use_config a
T_END=$(now)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report -------------------------------------------------------------------
commit=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (modified)"
declare -A M
for key in amanifest ablob bmanifest bblob; do
    # shellcheck disable=SC2086
    {
        M[rps$key]=$(median ${RPS[$key]})
        M[p50$key]=$(median ${P50[$key]})
        M[p99$key]=$(median ${P99[$key]})
        M[cpu$key]=$(median ${CPU[$key]})
    }
done
verdict() { # rps ratio b/a, p50 ratio b/a
    awk -v r="$1" -v l="$2" 'BEGIN { print ((r >= 0.9 && l <= 1.1) ? "met" : "MISSED") }'
}
row() { # label key
    local k=$2 rr lr
    rr=$(ratio "${M[rpsb$k]}" "${M[rpsa$k]}")
    lr=$(ratio "${M[p50b$k]}" "${M[p50a$k]}")
    printf '| %s | %s | %s | %s | %s / %s | %s | %s / %s | %s / %s | %s | **%s** |\n' "$1" \
        "$(fmt "${M[rpsa$k]}" 0)" "$(fmt "${M[rpsb$k]}" 0)" "$rr" \
        "$(fmt "${M[p50a$k]}" 3)" "$(fmt "${M[p50b$k]}" 3)" "$lr" "$(fmt "${M[p99a$k]}" 2)" "$(fmt "${M[p99b$k]}" 2)" \
        "$(fmt "${M[cpua$k]}" 0)" "$(fmt "${M[cpub$k]}" 0)" "$(ratio "${M[cpub$k]}" "${M[cpua$k]}")" \
        "$(verdict "$rr" "$lr")"
}
report() {
    cat <<MD
# Pier policy-evaluation benchmark

- date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, run time $(elapsed "$T_START" "$T_END") s
- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); load average $LOAD_START before, $LOAD_END after
- Pier: $WORKERS pierd workers, build $(basename "$BUILD"), $(apache2 -v | sed -n 's/^Server version: //p'), PostgreSQL $(psql --version | awk '{ print $3 }')
- load: wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }') -t2 -c$CONNS -d${WRK_SECONDS}s (after a 2 s warm-up) per run, Basic credentials (access key) on every request; $ROUNDS rounds, each A then B
- A: \`bench-one\`, identity policy of ${NSTMT[a]} statement, no registry policy
- B: \`bench-fifty\`, identity policy of ${NSTMT[b]} statements (the allowing one last), registry policy of $REG_STMTS Deny statements for other repositories
- requests: manifest GET by tag (\`/v2/$REPO/manifests/bench\`), blob GET of the image config (\`/v2/$REPO/blobs/$C_DIGEST\`, $C_SIZE bytes)

| Request | A req/s | B req/s | B / A | p50 ms A / B | p50 B / A | p99 ms A / B | pierd CPU µs/request A / B | B / A | Target: B ≥ 0.9 × A req/s and p50 ≤ 1.1 × A |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
$(row "Manifest GET by tag" manifest)
$(row "Small blob GET" blob)

Medians of $ROUNDS runs each. On $(nproc) cores wrk shares the CPU with Apache,
pierd and PostgreSQL; compare A and B of this run, not across machines. The
pierd CPU column (user + system time of the pool during the run, divided by
the requests served) is where policy evaluation shows; it moves much less than
requests/s when other programs load the machine.

Raw samples (req/s, in run order):
- manifest, A: ${RPS[amanifest]% }; B: ${RPS[bmanifest]% }
- blob, A: ${RPS[ablob]% }; B: ${RPS[bblob]% }

pierd CPU (µs/request, in run order):
- manifest, A: ${CPU[amanifest]% }; B: ${CPU[bmanifest]% }
- blob, A: ${CPU[ablob]% }; B: ${CPU[bblob]% }
MD
}
mkdir -p "$RESULTS_DIR"
report >"$RESULTS_DIR/policy-latest.md"
echo
cat "$RESULTS_DIR/policy-latest.md"
STATUS=ok
