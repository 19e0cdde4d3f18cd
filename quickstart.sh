#!/usr/bin/env bash
# quickstart.sh — bring up one Pier node on loopback, from a fresh Debian 12.
#
#   ./quickstart.sh [start]   install what is missing, build, start PostgreSQL,
#                             the pierd pool and Apache; print the URLs
#   ./quickstart.sh stop      stop what start started
#   ./quickstart.sh status    show what is running
#   ./quickstart.sh deps [test]   only install packages (test: also the test tools)
#   ./quickstart.sh build     only build
#
# Environment (all optional):
#   PIER_STATE_DIR  state directory (default ./var): PostgreSQL cluster, blob
#                   root, logs, sockets, generated configuration
#   PIER_PORT       loopback port of Apache (default 5000)
#   PIER_WORKERS    FastCGI workers (default 4)
#   PIER_DATABASE   libpq conninfo of an existing database: no local cluster
#   PIER_BLOB_ROOT  an existing shared blob root (default $PIER_STATE_DIR/blobs)
#   PIER_SERVER_KEY_FILE  the registry's server key (default $PIER_STATE_DIR/server.key,
#                   created when missing); all nodes of one registry share it
#   PIER_BUILD_DIR  build directory (default ./build)
#   PIER_CONFIGURE_FLAGS  extra ./configure flags (e.g. --enable-sanitizers)
# Running start twice changes nothing; two instances with different state
# directories and ports run side by side (a second node of the same registry
# shares PIER_DATABASE and PIER_BLOB_ROOT with the first).
# pierd and Apache run under supervisors that start them again when they die
# abnormally (pierd -s; a shell loop for Apache). start and stop also clear
# away what a killed process left behind (workers of a killed pierd master,
# Apache children of a killed parent still holding the port), finding them by
# this node's configuration file on their command line.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${PIER_STATE_DIR:-$SRC/var}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
PORT=${PIER_PORT:-5000}
WORKERS=${PIER_WORKERS:-4}
BUILD=${PIER_BUILD_DIR:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
RUN=$STATE/run
PGRUN=$STATE/pgrun
LOG=$STATE/log
PGDATA=$STATE/pg
BLOB_ROOT=${PIER_BLOB_ROOT:-$STATE/blobs}
OWN_DB=1
[ -n "${PIER_DATABASE:-}" ] && OWN_DB=0
DATABASE=${PIER_DATABASE:-"host=$PGRUN port=5432 user=pier dbname=pier"}

RUNTIME_PKGS=(build-essential autoconf automake pkg-config libfcgi-dev libjansson-dev
    libcurl4-openssl-dev libssl-dev libpq-dev postgresql apache2
    libapache2-mod-xsendfile curl acl ca-certificates)
TEST_PKGS=(skopeo podman docker-registry apache2-utils python3 uidmap awscli chromium
    pgbouncer haproxy cppcheck openssl prometheus
    containerd docker.io # the mirror-mode tests run their own daemons (own roots and sockets)
    debhelper dpkg-dev lintian systemd logrotate) # the Debian package: build, lint, its unit and logrotate

say() { printf '%s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# ---- packages ---------------------------------------------------------------
missing_pkgs() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

deps() {
    local want=("${RUNTIME_PKGS[@]}")
    [ "${1:-}" = test ] && want+=("${TEST_PKGS[@]}")
    local missing
    missing=$(missing_pkgs "${want[@]}")
    # Node.js for the browser test: keep whatever node/npm the machine has
    # (Debian's npm package would fight a newer nodejs from elsewhere).
    if [ "${1:-}" = test ] && ! command -v npm >/dev/null 2>&1; then
        missing="$missing nodejs npm"
    fi
    [ -z "$missing" ] && return 0
    # shellcheck disable=SC2086
    if ! is_root; then
        die "missing packages: $(echo $missing). Run: sudo apt-get install -y $(echo $missing)"
    fi
    say "installing: $(echo $missing)"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y --no-install-recommends $missing >/dev/null; then
        apt-get update >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y --no-install-recommends $missing >/dev/null
    fi
    # The Debian packages start their own services; Pier (and its tests) run
    # their own instances. Only a service this run installed is stopped and
    # disabled: an Apache (or registry, pgbouncer, haproxy, containerd,
    # dockerd) the administrator already had keeps running as it was.
    local svc installed=()
    for svc in $missing; do
        case $svc in
        apache2 | docker-registry | pgbouncer | haproxy | prometheus | containerd) installed+=("$svc") ;;
        docker.io) installed+=(docker.socket docker) ;; # the package's units are named docker
        esac
    done
    [ ${#installed[@]} -eq 0 ] && return 0
    if [ -d /run/systemd/system ]; then
        systemctl disable --now "${installed[@]}" 2>/dev/null || true
    else
        for svc in "${installed[@]}"; do
            service "$svc" stop >/dev/null 2>&1 || true
        done
    fi
}

# ---- build ------------------------------------------------------------------
build() {
    if [ ! -x "$SRC/configure" ] || [ "$SRC/configure.ac" -nt "$SRC/configure" ]; then
        (cd "$SRC" && ./autogen.sh >/dev/null 2>&1) || die "autogen.sh failed"
    fi
    mkdir -p "$BUILD"
    if [ ! -f "$BUILD/Makefile" ]; then
        # shellcheck disable=SC2086
        (cd "$BUILD" && "$SRC/configure" -q ${PIER_CONFIGURE_FLAGS:-}) || die "configure failed"
    fi
    make -s -C "$BUILD" -j"$(nproc)" all >/dev/null || die "build failed (run make -C $BUILD)"
}

# ---- helpers ----------------------------------------------------------------
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }
apache_user() { if is_root; then echo www-data; else id -un; fi; }

# ---- processes of this node -------------------------------------------------
# Every long-running process quickstart starts names this node's configuration
# file on its command line, and keeps it in every child it forks:
#   pierd -c $STATE/pier.conf             supervisor, master, workers, housekeeping
#   apache2 -f $STATE/apache/httpd.conf   parent and children
#   quickstart.sh apache-supervisor $STATE/apache/httpd.conf
# That finds them when pid files are stale or gone (Apache children whose parent
# was killed still hold the port; workers of a killed master finish their
# requests), and never finds another node's processes: those name other files.
PIERD_CONF=$STATE/pier.conf
HTTPD_CONF=$STATE/apache/httpd.conf

alive() { # pid: the process exists and has not finished exiting
    local stat tasks
    { IFS= read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) } # after "pid (comm) ", comm may contain spaces
    [ "${stat%% *}" != Z ] && return 0
    # A zombie main thread while other threads still exit: they hold its files
    # (Apache's listening socket) until the last one is gone.
    tasks=(/proc/"$1"/task/*)
    [ ${#tasks[@]} -gt 1 ]
}

is_ours() { # pid program config: pid runs <program> with <config> as one of its arguments
    local arg prog=0 conf=0
    alive "$1" || return 1
    {
        while IFS= read -r -d '' arg; do
            [ "${arg##*/}" = "$2" ] && prog=1
            [ "$arg" = "$3" ] && conf=1
        done
    } 2>/dev/null <"/proc/$1/cmdline" || true
    [ $prog = 1 ] && [ $conf = 1 ]
}

node_pids() { # program config: every live process of this node running <program>
    local f pid
    # grep -z reads a command line as NUL-separated arguments, -x matches one whole argument.
    { grep -lzxF -- "$2" /proc/[0-9]*/cmdline 2>/dev/null || true; } | while IFS= read -r f; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        if [ "$pid" != $$ ] && is_ours "$pid" "$1" "$2"; then echo "$pid"; fi
    done
    return 0
}

pid_of() { # pidfile program config: the pid in the file, if that process is ours and alive
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid" "$2" "$3" && echo "$pid"
}

terminate() { # seconds pid...: SIGTERM, then SIGKILL to whatever is left after <seconds>
    local secs=$1 i pid left
    shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    for i in $(seq 1 $((secs * 10 + 1))); do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} = 0 ] && return 0
        [ "$i" -gt $((secs * 10)) ] && break
        sleep 0.1
    done
    say "killing what did not stop within ${secs}s: ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null || true
    for i in $(seq 1 50); do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        [ ${#left[@]} = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# pierd writes blobs 0640 in 0750 directories: Apache reads them through its
# group, which the setgid blob root passes on to everything created below it.
# Existing roots (shared with another node, or from an older version) are
# converted once.
share_blob_root() {
    is_root || return 0
    if [ "$(stat -c %G "$BLOB_ROOT")" != www-data ] || [ ! -g "$BLOB_ROOT" ]; then
        chgrp -R www-data "$BLOB_ROOT" || die "cannot give $BLOB_ROOT to group www-data"
        find "$BLOB_ROOT" -type d -exec chmod 2750 {} + || die "cannot chmod the directories of $BLOB_ROOT"
    fi
}

# Let an unprivileged service user traverse (not list) the directories above
# a path it must reach, e.g. when the checkout lives under /root.
grant_traverse() {
    local user=$1 dir=$2
    is_root || return 0
    while [ "$dir" != / ]; do
        if ! runuser -u "$user" -- test -x "$dir" 2>/dev/null; then
            setfacl -m "u:$user:x" "$dir" || die "cannot give $user access to $dir"
        fi
        dir=$(dirname "$dir")
    done
}

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

start_postgres() {
    local bin
    bin=$(pgbin)
    [ -n "$bin" ] || die "PostgreSQL server binaries not found"
    # The cluster trusts local connections: only its owner (and root) may
    # reach the socket, through a 0700 directory and unix_socket_permissions.
    mkdir -p "$PGRUN"
    chmod 700 "$PGRUN"
    if is_root; then
        chown postgres: "$PGRUN"
        grant_traverse postgres "$STATE"
    fi
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
        mkdir -p "$PGDATA"
        is_root && chown postgres: "$PGDATA"
        chmod 700 "$PGDATA"
        as_pg "$bin/initdb" -D "$PGDATA" -U pier --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$LOG/initdb.log" 2>&1 || die "initdb failed, see $LOG/initdb.log"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        touch "$LOG/postgresql.log"
        is_root && chown postgres: "$LOG/postgresql.log"
        as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$LOG/postgresql.log" -w -t 60 \
            -o "-c listen_addresses='' -k $PGRUN -c unix_socket_permissions=0700 -p 5432" start >/dev/null ||
            die "PostgreSQL did not start, see $LOG/postgresql.log"
    fi
    if ! psql "host=$PGRUN port=5432 user=pier dbname=postgres" -XAtqc \
        "SELECT 1 FROM pg_database WHERE datname = 'pier'" | grep -q 1; then
        psql "host=$PGRUN port=5432 user=pier dbname=postgres" -Xqc "CREATE DATABASE pier" >/dev/null
    fi
}

write_if_changed() { # file, content on stdin; returns 0 if it changed
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat >"$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
    mv "$tmp" "$1"
    return 0
}

# The server key seals stored secrets (upstream credentials, tokens). Every
# node of one registry needs the same key: PIER_SERVER_KEY_FILE shares it.
server_key() {
    local key=${PIER_SERVER_KEY_FILE:-$STATE/server.key}
    if [ ! -f "$key" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$key")
    fi
    echo "$key"
}

# Whoever can connect to the FastCGI socket can claim any REMOTE_ADDR: only
# Apache may (its group as root; as a user, Apache runs as that user).
socket_access() {
    if is_root; then
        printf 'socket_mode = 0660\nsocket_group = www-data\n'
    else
        printf 'socket_mode = 0600\n'
    fi
}

pier_conf() {
    cat <<CONF
# Generated by quickstart.sh for this node. See README.md, "Configuration".
database = $DATABASE
blob_root = $BLOB_ROOT
socket = $RUN/pier.sock
$(socket_access)
workers = $WORKERS
pid_file = $RUN/pierd.pid
supervisor_pid_file = $RUN/pierd-supervisor.pid
log_file = $LOG/pier.log
audit_log = $LOG/audit.log
registry_host = 127.0.0.1:$PORT
server_key_file = $(server_key)
bootstrap_file = $STATE/admin.env
# Loopback development only: upstream registries on this machine may be
# cached (Pier refuses loopback, private and link-local addresses unless
# listed here), and rule credentials may go to them over plain http.
# Production configurations keep both unset.
upstream_allow_networks = 127.0.0.0/8, ::1/128
upstream_allow_http_credentials = true
CONF
}

render() { # template → stdout
    local user_lines=""
    if is_root; then user_lines="User www-data
Group www-data"; fi
    sed -e "s|@PIER_STATE_DIR@|$STATE|g" -e "s|@PIER_RUN@|$RUN|g" -e "s|@PIER_LOG@|$LOG|g" \
        -e "s|@PIER_LISTEN@|127.0.0.1:$PORT|g" -e "s|@PIER_SOCKET@|$RUN/pier.sock|g" \
        -e "s|@PIER_BLOB_ROOT@|$BLOB_ROOT|g" -e "s|@PIER_HTDOCS@|$SRC/htdocs|g" \
        "$1" | awk -v ul="$user_lines" '{ if ($0 == "@PIER_USER_LINES@") print ul; else print }'
}

# pierd runs under its own supervisor (pierd -s), which starts the master
# again when it dies abnormally. A service manager with Restart=on-failure does
# the same job in production (docs/operations.md).
start_pierd() {
    local changed=0 master sup i
    pier_conf | write_if_changed "$PIERD_CONF" && changed=1
    master=$(pid_of "$RUN/pierd.pid" pierd "$PIERD_CONF") || master=
    sup=$(pid_of "$RUN/pierd-supervisor.pid" pierd "$PIERD_CONF") || sup=
    if [ -n "$master" ] && [ -n "$sup" ]; then
        if [ "$BUILD/pierd" -nt "$RUN/pierd-supervisor.pid" ]; then
            # A new build: SIGHUP (or a restart by the supervisor) would fork
            # the old binary again, so restart.
            say "pierd was rebuilt; restarting it"
            stop_pierd
        else
            [ $changed = 1 ] && kill -HUP "$master"
            return 0
        fi
    elif [ -n "$master" ]; then
        say "pierd runs without its supervisor; restarting it under one"
        stop_pierd
    elif [ -n "$sup" ]; then
        say "pierd's master is down and its supervisor waits to restart it; starting it afresh"
        stop_pierd
    else
        stop_pierd # whatever a killed master left behind
    fi
    rm -f "$RUN/pier.sock"
    "$BUILD/pierd" -c "$PIERD_CONF" -d -s || die "pierd did not start, see $LOG/pier.log"
    for i in $(seq 1 100); do
        [ -S "$RUN/pier.sock" ] && pid_of "$RUN/pierd.pid" pierd "$PIERD_CONF" >/dev/null && return 0
        sleep 0.1
    done
    stop_pierd
    die "pierd did not open its socket, see $LOG/pier.log"
}

# Stop the supervisor and the master (which finishes the requests in flight,
# up to shutdown_timeout), then anything of this node's pierd still alive:
# workers of a master that was killed, a supervisor that was killed.
stop_pierd() {
    local pids=()
    mapfile -t pids < <(pid_of "$RUN/pierd-supervisor.pid" pierd "$PIERD_CONF" || true
        pid_of "$RUN/pierd.pid" pierd "$PIERD_CONF" || true)
    terminate 40 "${pids[@]}" || say "pierd did not stop"
    mapfile -t pids < <(node_pids pierd "$PIERD_CONF")
    if [ ${#pids[@]} -gt 0 ]; then
        say "stopping leftover pierd processes of this node: ${pids[*]}"
        terminate 5 "${pids[@]}" || say "leftover pierd processes did not stop: ${pids[*]}"
    fi
    rm -f "$RUN/pierd-supervisor.pid" "$RUN/pierd.pid"
}

# Apache runs in the foreground under a small supervisor (this script's
# "apache-supervisor" command), which starts it again when its parent dies
# abnormally, after clearing away the children the dead parent left holding
# the port. In production the service manager does this (Debian's
# apache2.service, KillMode and Restart).
apache_supervisor() {
    local delay=1 started rc leftovers=()
    stopping=0
    child=
    trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
    echo $$ >"$RUN/apache-supervisor.pid"
    while [ $stopping = 0 ]; do
        started=$SECONDS
        apache2 -f "$HTTPD_CONF" -DFOREGROUND &
        child=$!
        # wait returns early when a signal is trapped: wait until the parent is gone.
        while :; do
            wait "$child" && rc=0 || rc=$?
            alive "$child" || break
        done
        child=
        [ $stopping = 1 ] && break
        if [ $rc = 0 ]; then
            say "$(date -u +%FT%TZ) Apache stopped"
            break
        fi
        say "$(date -u +%FT%TZ) Apache's parent process ended with status $rc; starting it again in ${delay}s"
        mapfile -t leftovers < <(node_pids apache2 "$HTTPD_CONF")
        terminate 2 "${leftovers[@]}" >/dev/null || say "leftover Apache processes did not stop: ${leftovers[*]}"
        [ $((SECONDS - started)) -ge 60 ] && delay=1
        sleep "$delay" &
        wait $! || true
        delay=$((delay * 2 > 30 ? 30 : delay * 2))
    done
    rm -f "$RUN/apache-supervisor.pid"
}

start_apache() {
    local changed=0 httpd sup i
    mkdir -p "$STATE/apache"
    render "$SRC/apache/pier.conf.in" | write_if_changed "$STATE/apache/pier.conf" && changed=1
    render "$SRC/apache/httpd-standalone.conf.in" | write_if_changed "$HTTPD_CONF" && changed=1
    httpd=$(pid_of "$RUN/httpd.pid" apache2 "$HTTPD_CONF") || httpd=
    sup=$(pid_of "$RUN/apache-supervisor.pid" quickstart.sh "$HTTPD_CONF") || sup=
    if [ -n "$httpd" ] && [ -n "$sup" ]; then
        [ $changed = 1 ] && apache2 -f "$HTTPD_CONF" -k graceful
        return 0
    fi
    # Anything else (an Apache without its supervisor, a supervisor between
    # two starts, children of a killed parent holding the port) is cleared
    # away and started afresh.
    stop_apache
    for i in $(seq 1 31); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
        [ "$i" = 31 ] && die "port $PORT is already in use; set PIER_PORT"
        sleep 0.1
    done
    apache2 -f "$HTTPD_CONF" -t >/dev/null 2>"$LOG/apache-configtest.log" ||
        die "Apache rejected the configuration, see $LOG/apache-configtest.log"
    PIER_STATE_DIR=$STATE PIER_PORT=$PORT setsid "$SRC/quickstart.sh" apache-supervisor "$HTTPD_CONF" \
        </dev/null >>"$LOG/apache-supervisor.log" 2>&1 &
    for i in $(seq 1 100); do
        if pid_of "$RUN/httpd.pid" apache2 "$HTTPD_CONF" >/dev/null; then
            case $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/" 2>/dev/null) in
            200 | 401) return 0 ;;
            esac
        fi
        sleep 0.1
    done
    stop_apache
    die "Apache does not answer on 127.0.0.1:$PORT, see $LOG/apache-error.log"
}

# Stop the supervisor and Apache's parent (which stops its children), then
# any process of this node's Apache still alive, e.g. children whose parent
# was killed: they hold the port and ignore SIGTERM.
stop_apache() {
    local pids=()
    mapfile -t pids < <(pid_of "$RUN/apache-supervisor.pid" quickstart.sh "$HTTPD_CONF" || true
        pid_of "$RUN/httpd.pid" apache2 "$HTTPD_CONF" || true)
    terminate 30 "${pids[@]}" || say "Apache did not stop"
    mapfile -t pids < <(node_pids quickstart.sh "$HTTPD_CONF"; node_pids apache2 "$HTTPD_CONF")
    if [ ${#pids[@]} -gt 0 ]; then
        say "stopping leftover Apache processes of this node: ${pids[*]}"
        terminate 2 "${pids[@]}" || say "leftover Apache processes did not stop: ${pids[*]}"
    fi
    rm -f "$RUN/apache-supervisor.pid" "$RUN/httpd.pid"
}

start() {
    deps
    build
    mkdir -p "$RUN" "$LOG" "$BLOB_ROOT"
    [ $OWN_DB = 1 ] && start_postgres
    share_blob_root
    grant_traverse "$(apache_user)" "$BLOB_ROOT"
    start_pierd
    start_apache
    cat <<MSG
Pier is running.
  registry:  http://127.0.0.1:$PORT/v2/
  console:   http://127.0.0.1:$PORT/console/
  state:     $STATE   (logs in $LOG)
  database:  $DATABASE
Log in (the first start created the administrator; its key is in $STATE/admin.env):
  . $STATE/admin.env
  aws ecr get-login-password --endpoint-url "\$PIER_ENDPOINT" | podman login --tls-verify=false -u AWS --password-stdin 127.0.0.1:$PORT
  (or: $BUILD/pierctl -c $STATE/pier.conf login-password admin | podman login ...)
  console: sign in at http://127.0.0.1:$PORT/console/ with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
Try it:
  skopeo copy --dest-tls-verify=false --dest-creds "\$AWS_ACCESS_KEY_ID:\$AWS_SECRET_ACCESS_KEY" docker-archive:image.tar docker://127.0.0.1:$PORT/demo/app:1
  podman pull --tls-verify=false 127.0.0.1:$PORT/demo/app:1
  aws ecr describe-repositories --endpoint-url "\$PIER_ENDPOINT"
  $BUILD/pierctl -c $STATE/pier.conf status
Stop with: ${PIER_STATE_DIR:+PIER_STATE_DIR=$STATE }./quickstart.sh stop
MSG
}

stop() {
    stop_apache
    stop_pierd
    if [ $OWN_DB = 1 ] && [ -f "$PGDATA/PG_VERSION" ]; then
        local bin
        bin=$(pgbin)
        if as_pg "$bin/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
            as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
        fi
    fi
    say "Pier stopped ($STATE)."
}

supervision() { # supervisor pid (may be empty)
    if [ -n "$1" ]; then echo "supervised by $1"; else echo "not supervised"; fi
}

status() {
    local pid sup n
    pid=$(pid_of "$RUN/httpd.pid" apache2 "$HTTPD_CONF") || pid=
    sup=$(pid_of "$RUN/apache-supervisor.pid" quickstart.sh "$HTTPD_CONF") || sup=
    n=$(node_pids apache2 "$HTTPD_CONF" | wc -l)
    if [ -n "$pid" ]; then
        say "apache:     running on 127.0.0.1:$PORT (pid $pid, $(supervision "$sup"))"
    elif [ -n "$sup" ]; then
        say "apache:     restarting (supervisor $sup)"
    elif [ "$n" -gt 0 ]; then
        say "apache:     parent gone, $n leftover processes (start or stop clears them)"
    else
        say "apache:     stopped"
    fi
    pid=$(pid_of "$RUN/pierd.pid" pierd "$PIERD_CONF") || pid=
    sup=$(pid_of "$RUN/pierd-supervisor.pid" pierd "$PIERD_CONF") || sup=
    n=$(node_pids pierd "$PIERD_CONF" | wc -l)
    if [ -n "$pid" ]; then
        say "pierd:      running (pid $pid, $(supervision "$sup"))"
    elif [ -n "$sup" ]; then
        say "pierd:      restarting (supervisor $sup)"
    elif [ "$n" -gt 0 ]; then
        say "pierd:      master gone, $n leftover processes (start or stop clears them)"
    else
        say "pierd:      stopped"
    fi
    if [ $OWN_DB = 1 ]; then
        if [ -f "$PGDATA/PG_VERSION" ] && as_pg "$(pgbin)/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
            say "postgresql: running ($PGDATA)"
        else
            say "postgresql: stopped"
        fi
    fi
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
apache-supervisor) # started by start_apache; the argument only marks whose it is
    [ "${2:-}" = "$HTTPD_CONF" ] || die "usage: $0 apache-supervisor $HTTPD_CONF"
    apache_supervisor
    # Exit from here: bash reads a script as it goes, and this file may have
    # changed during the days this loop ran.
    exit 0 ;;
deps) deps "${2:-}" ;;
build) deps; build ;;
*) die "usage: $0 [start|stop|status|deps [test]|build]" ;;
esac
