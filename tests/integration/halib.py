"""Parts for the tests that go beyond one database server, each started by the test that
needs it and stopped, whatever happens, when its `with` block ends:

  PgCluster  a PostgreSQL cluster of its own (initdb, like quickstart.sh's), listening only
             on a unix socket in its directory; standby() makes a streaming standby of it
             with pg_basebackup
  PgBouncer  PgBouncer in front of a cluster, in session or transaction pooling mode
  HAProxy    HAProxy in front of Pier nodes, with health checks and retries
  Traffic    client threads that push and pull through a registry and record every answer

Everything lives under $PIER_TEST_DIR/ha/<name>. PostgreSQL and PgBouncer refuse to run as
root: as root they run as the user postgres (quickstart.sh runs its cluster the same way).
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time

from pierlib import (
    Client, ExtraNode, PreconditionError, build_image, env, expect_status, push_manifest, push_blob_monolithic,
    sha256_digest, wait_until,
)

SERVICE_USER = "postgres"


def _is_root() -> bool:
    return os.geteuid() == 0


def _need(cmd: str) -> str:
    path = shutil.which(cmd)
    if not path:
        raise PreconditionError(f"precondition missing: {cmd} is not installed (./quickstart.sh deps test)")
    return path


def pg_bin(tool: str) -> str:
    """The newest installed PostgreSQL server binary `tool` (initdb, pg_ctl, pg_basebackup)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs or not os.access(os.path.join(dirs[-1], tool), os.X_OK):
        raise PreconditionError(f"precondition missing: PostgreSQL's {tool} not found under /usr/lib/postgresql")
    return os.path.join(dirs[-1], tool)


def base_port() -> int:
    return int(env("PIER_URL").rsplit(":", 1)[1])


def ha_dir(name: str) -> str:
    """A fresh directory $PIER_TEST_DIR/ha/<name>, owned by the service user when root."""
    top = os.path.join(env("PIER_TEST_DIR"), "ha")
    os.makedirs(top, exist_ok=True)
    os.chmod(top, 0o755)
    d = os.path.join(top, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    _give(d)
    return d


def _give(path: str) -> None:
    if _is_root():
        pw = pwd.getpwnam(SERVICE_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _service_kw() -> dict:
    """subprocess arguments that run a command as the service user when we are root."""
    if not _is_root():
        return {}
    pw = pwd.getpwnam(SERVICE_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
            "env": dict(os.environ, HOME=pw.pw_dir, USER=SERVICE_USER, LOGNAME=SERVICE_USER)}


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the daemon gets SIGTERM when the test process dies, even by SIGKILL
    (set after the change of user, which would clear it)."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _run(cmd: list[str], timeout: float = 60, check: bool = True, cwd: str | None = None,
         as_service: bool = False) -> subprocess.CompletedProcess:
    kw = _service_kw() if as_service else {}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or "/", **kw)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stdout + p.stderr).strip()[-1500:]}")
    return p


def _tail(path: str, n: int = 1500) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


def fresh_node(label: str, offset: int, **settings: str) -> ExtraNode:
    """An ExtraNode whose state directory starts empty (a node with a database of its own
    bootstraps its administrator into it), after stopping whatever a previous run left."""
    node = ExtraNode(label, offset, **settings)
    if os.path.isdir(node.state):
        node.stop()
        shutil.rmtree(node.state, ignore_errors=True)
    return node


def blob_dir(label: str) -> str:
    """A path for a fresh blob root $PIER_TEST_DIR/ha/<label> (quickstart.sh creates it)."""
    d = os.path.join(env("PIER_TEST_DIR"), "ha", label)
    shutil.rmtree(d, ignore_errors=True)
    return d


def _terminate(p) -> None:
    """SIGTERM a child process, SIGKILL it after 10 s; nothing when it is gone already."""
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


# ---------------------------------------------------------------------------
# PostgreSQL


class PgCluster:
    """A PostgreSQL cluster under $PIER_TEST_DIR/ha/<name>: data/, run/ (its socket, the only
    way in: listen_addresses is empty), postgresql.log. User `pier` is its superuser and may
    connect without a password, for replication too (initdb --auth=trust)."""

    def __init__(self, name: str, port: int, settings: dict[str, str] | None = None):
        self.name = name
        self.dir = ha_dir(name)
        self.data = os.path.join(self.dir, "data")
        self.run = os.path.join(self.dir, "run")
        self.logfile = os.path.join(self.dir, "postgresql.log")
        self.port = port
        self.settings = dict(settings or {})
        os.makedirs(self.run, mode=0o700)
        _give(self.run)

    def conninfo(self, dbname: str = "pier") -> str:
        return f"host={self.run} port={self.port} user=pier dbname={dbname}"

    def initdb(self) -> "PgCluster":
        os.makedirs(self.data, mode=0o700)
        _give(self.data)
        _run([pg_bin("initdb"), "-D", self.data, "-U", "pier", "--auth=trust", "-E", "UTF8",
              "--locale=C.UTF-8"], timeout=120, cwd=self.dir, as_service=True)
        return self

    def start(self) -> "PgCluster":
        opts = f"-c listen_addresses='' -k {self.run} -p {self.port} -c unix_socket_permissions=0700"
        for k, v in self.settings.items():
            opts += f" -c {k}={v}"
        _run([pg_bin("pg_ctl"), "-D", self.data, "-l", self.logfile, "-w", "-t", "60", "-o", opts, "start"],
             timeout=90, cwd=self.dir, as_service=True, check=False)
        if not self.running():
            raise AssertionError(f"PostgreSQL {self.name} did not start: {_tail(self.logfile)}")
        return self

    def create_database(self, name: str = "pier") -> None:
        self.sql(f"CREATE DATABASE {name}", dbname="postgres")

    def running(self) -> bool:
        return _run([pg_bin("pg_ctl"), "-D", self.data, "status"], check=False, cwd=self.dir,
                    as_service=True).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        _run([pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"], timeout=90,
             cwd=self.dir, as_service=True)

    def promote(self) -> None:
        _run([pg_bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "promote"], timeout=90, cwd=self.dir,
             as_service=True)

    def sql(self, statement: str, dbname: str = "pier") -> list[list[str]]:
        p = _run(["psql", self.conninfo(dbname), "-v", "ON_ERROR_STOP=1", "-XAtc", statement], timeout=60)
        return [line.split("|") for line in p.stdout.splitlines() if line]

    def standby(self, name: str, port: int) -> "PgCluster":
        """A streaming standby of this cluster: pg_basebackup -R (standby.signal and
        primary_conninfo) into a new directory; start() it."""
        sb = PgCluster(name, port)
        os.makedirs(sb.data, mode=0o700)
        _give(sb.data)
        _run([pg_bin("pg_basebackup"), "-D", sb.data, "-R", "-X", "stream", "-c", "fast",
              "-d", f"host={self.run} port={self.port} user=pier"], timeout=120, cwd=sb.dir, as_service=True)
        return sb

    def close(self) -> None:
        """Stop it whatever its state: immediate shutdown, then SIGKILL of the postmaster."""
        pidfile = os.path.join(self.data, "postmaster.pid")
        if not os.path.exists(pidfile):
            return
        _run([pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "-t", "20", "stop"], timeout=40,
             check=False, cwd=self.dir, as_service=True)
        try:
            with open(pidfile) as f:
                pid = int(f.readline())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# PgBouncer


class PgBouncer:
    """PgBouncer on a unix socket in $PIER_TEST_DIR/ha/<name>/run (no TCP), serving database
    `pier` of `backend` to user pier without a password; user pier is also its admin
    (SHOW, RECONNECT, PAUSE... on database `pgbouncer`). Runs in the foreground as a child
    of the test, so that close() can always stop it."""

    def __init__(self, name: str, backend: PgCluster, port: int, pool_mode: str, pool_size: int = 4):
        self.bin = _need("pgbouncer")
        self.dir = ha_dir(name)
        self.run = os.path.join(self.dir, "run")
        os.makedirs(self.run)
        _give(self.run)
        self.port = port
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.logfile = os.path.join(self.dir, "pgbouncer.log")
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"pier" ""\n')
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
pier = host={backend.run} port={backend.port} dbname=pier user=pier

[pgbouncer]
listen_addr =
listen_port = {port}
unix_socket_dir = {self.run}
auth_type = trust
auth_file = {self.dir}/userlist.txt
admin_users = pier
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 200
server_reset_query = DISCARD ALL
logfile = {self.logfile}
""")
        self.proc: subprocess.Popen | None = None

    def conninfo(self, dbname: str = "pier") -> str:
        return f"host={self.run} port={self.port} user=pier dbname={dbname}"

    def start(self) -> "PgBouncer":
        self.proc = subprocess.Popen([self.bin, self.ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.dir, preexec_fn=_die_with_parent, **_service_kw())
        sock = os.path.join(self.run, f".s.PGSQL.{self.port}")
        if not wait_until(lambda: self.proc.poll() is not None or self._answers(), 15, 0.1) or self.proc.poll() is not None:
            self.close()
            raise AssertionError(f"pgbouncer did not start ({sock}): {_tail(self.logfile)}")
        return self

    def _answers(self) -> bool:
        return _run(["psql", self.conninfo("pgbouncer"), "-XAtc", "SHOW VERSION"], check=False,
                    timeout=10).returncode == 0

    def admin(self, command: str) -> str:
        """One command on the admin console (e.g. SHOW POOLS, RECONNECT pier)."""
        return _run(["psql", self.conninfo("pgbouncer"), "-XAtc", command], timeout=30).stdout

    def close(self) -> None:
        """SIGTERM (immediate shutdown: every client and server connection is dropped)."""
        p, self.proc = self.proc, None
        _terminate(p)

    def restart(self) -> None:
        self.close()
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# HAProxy


def haproxy_config(listen_port: int, servers: list[tuple[str, int]], admin_socket: str) -> str:
    """The configuration docs/operations.md shows, on loopback, with an admin socket."""
    lines = "\n".join(f"    server {name} 127.0.0.1:{port}" for name, port in servers)
    host = f"127.0.0.1:{listen_port}"
    return f"""global
    log stderr format raw local0 info
    stats socket {admin_socket} mode 600 level admin
    maxconn 1000

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 20s

frontend registry
    bind 127.0.0.1:{listen_port}
    default_backend pier

backend pier
    balance roundrobin
    # Up means Apache and pierd answer: GET /v2/ without credentials is 401
    # (or 200 when anonymous pulls are allowed); it does not need the database.
    option httpchk
    http-check send meth GET uri /v2/ ver HTTP/1.1 hdr Host {host}
    http-check expect rstatus ^(200|401)$
    default-server check inter 1s fall 2 rise 2
    # A request that could not reach a node goes to another one. Only GET and HEAD
    # are also retried after they were sent (a PATCH or PUT must not be replayed).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503
    http-request disable-l7-retry if !METH_GET
{lines}
"""


class HAProxy:
    """HAProxy on 127.0.0.1:<port> in front of Pier nodes, logging to <dir>/haproxy.log."""

    def __init__(self, name: str, port: int, servers: list[tuple[str, int]]):
        self.bin = _need("haproxy")
        self.dir = ha_dir(name)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        self.logfile = os.path.join(self.dir, "haproxy.log")
        self.admin_socket = os.path.join(self.dir, "admin.sock")
        with open(self.cfg, "w") as f:
            f.write(haproxy_config(port, servers, self.admin_socket))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "HAProxy":
        _run([self.bin, "-c", "-q", "-f", self.cfg])
        log = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen([self.bin, "-db", "-f", self.cfg], stdout=log, stderr=log, cwd=self.dir,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        if not wait_until(lambda: self.proc.poll() is not None or _port_open(self.port), 10) \
                or self.proc.poll() is not None:
            self.close()
            raise AssertionError(f"haproxy did not start: {_tail(self.logfile)}")
        return self

    def command(self, cmd: str) -> str:
        """One command on the admin socket (show stat, show servers state...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.admin_socket)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")

    def servers(self) -> dict[str, dict[str, str]]:
        """Per server of backend pier: its `show stat` row (status, stot, ...) by column name."""
        text = self.command("show stat")
        lines = [l for l in text.splitlines() if l]
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "pier" and row.get("svname") not in ("BACKEND", "FRONTEND"):
                out[row["svname"]] = row
        return out

    def log(self) -> str:
        return _tail(self.logfile, 1 << 20)

    def close(self) -> None:
        p, self.proc = self.proc, None
        _terminate(p)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# clients that keep going through an outage


class Outcome:
    """One attempt: when (monotonic), what, and the status (0: no HTTP answer)."""

    __slots__ = ("t", "what", "status", "retry_after", "error")

    def __init__(self, t: float, what: str, status: int, retry_after: str | None = None, error: str = ""):
        self.t, self.what, self.status, self.retry_after, self.error = t, what, status, retry_after, error

    def __repr__(self):
        extra = f" Retry-After={self.retry_after}" if self.retry_after else ""
        return f"<{self.t:.2f} {self.what} -> {self.status or self.error}{extra}>"


class Log:
    """Attempts recorded by many threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: list[Outcome] = []

    def add(self, o: Outcome) -> None:
        with self.lock:
            self.items.append(o)

    def snapshot(self) -> list[Outcome]:
        with self.lock:
            return sorted(self.items, key=lambda o: o.t)


def attempt(client: Client, log: Log, method: str, path: str, what: str, retries: int,
            retry_on=(429, 503), **kw):
    """Send a request and retry it, like a registry client: after a connection error, a
    truncated body, or a status in retry_on (waiting min(Retry-After, 0.25 s), so that a test
    stays short), up to `retries` times. Every attempt goes to `log`. Returns the last response, or None when
    no attempt got a complete answer."""
    last = None
    for i in range(retries + 1):
        t = time.monotonic()
        try:
            r = client.request(method, path, **kw)
        except Exception as e:  # noqa: BLE001 - a refused or cut connection is what we measure
            log.add(Outcome(t, what, 0, error=type(e).__name__))
            last = None
            time.sleep(0.1)
            continue
        log.add(Outcome(t, what, r.status, r.header("Retry-After")))
        last = r
        if r.status not in retry_on:
            return r
        time.sleep(min(float(r.header("Retry-After") or 1), 0.25))
    return last


class Pusher:
    """A thread that pushes small images (two blobs and a manifest, each in one request) to
    `repo` and pulls back the one it pushed before, until stopped. An image counts as
    acknowledged when its manifest PUT answered 201."""

    def __init__(self, client: Client, repo: str, log: Log, label: str, retries: int = 200):
        self.client, self.repo, self.log, self.label, self.retries = client, repo, log, label, retries
        self.acked: list[tuple[str, object]] = []  # (tag, Image)
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            img = build_image("oci", layer_size=2048)
            tag = f"{self.label}-{n}"
            ok = True
            for blob in (img.config, *img.layers):
                r = attempt(self.client, self.log, "POST", f"/v2/{self.repo}/blobs/uploads/?digest={blob.digest}",
                            "push-blob", self.retries, body=blob.data,
                            headers={"Content-Type": "application/octet-stream"})
                if r is None or r.status != 201:
                    ok = False
                    self.failures.append(f"blob {blob.digest}: {r.summary() if r else 'no answer'}")
                    break
            if ok:
                r = attempt(self.client, self.log, "PUT", f"/v2/{self.repo}/manifests/{tag}", "push-manifest",
                            self.retries, body=img.manifest.data, headers={"Content-Type": img.manifest.media_type})
                if r is not None and r.status == 201:
                    self.acked.append((tag, img))
                else:
                    self.failures.append(f"manifest {tag}: {r.summary() if r else 'no answer'}")
            if len(self.acked) >= 2:
                old_tag, old = self.acked[-2]
                r = attempt(self.client, self.log, "GET", f"/v2/{self.repo}/manifests/{old_tag}", "pull-manifest",
                            self.retries, headers={"Accept": old.manifest.media_type})
                if r is None or r.status != 200 or r.body != old.manifest.data:
                    self.failures.append(f"pull {old_tag}: {r.summary() if r else 'no answer'}")
                layer = old.layers[0]
                r = attempt(self.client, self.log, "GET", f"/v2/{self.repo}/blobs/{layer.digest}", "pull-blob",
                            self.retries)
                if r is None or r.status != 200 or sha256_digest(r.body) != layer.digest:
                    self.failures.append(f"pull {layer.digest}: {r.summary() if r else 'no answer'}")

    def start(self) -> "Pusher":
        self.thread.start()
        return self

    def join(self, timeout: float = 60) -> None:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"client {self.label} is still running {timeout}s after it was stopped"


def verify_image(client: Client, repo: str, tag: str, img) -> None:
    """The manifest under `tag` and every blob it names come back byte for byte."""
    r = expect_status(client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": img.manifest.media_type}),
                      200, f"{repo}:{tag}")
    assert r.body == img.manifest.data, f"{repo}:{tag}: manifest bytes differ"
    for blob in (img.config, *img.layers):
        r = expect_status(client.get(f"/v2/{repo}/blobs/{blob.digest}"), 200, f"{repo}:{tag} blob {blob.digest}")
        assert sha256_digest(r.body) == blob.digest, f"{repo}:{tag}: blob {blob.digest} does not verify"


def push_one(client: Client, repo: str, tag: str, layer_size: int = 2048):
    img = build_image("oci", layer_size=layer_size)
    for blob in (img.config, *img.layers):
        push_blob_monolithic(client, repo, blob.data)
    push_manifest(client, repo, tag, img.manifest)
    return img
