"""Upstream registries and rule helpers for the pull-through cache tests.

Python 3.11 standard library, plus the Debian packages the suite installs
(docker-registry, skopeo, openssl, apache2-utils for htpasswd).

  DockerRegistry  a real registry (/usr/bin/docker-registry) on a loopback
                  port, filesystem storage in a temp dir, access log in a
                  file; anonymous, htpasswd (Basic) or token (Bearer) auth
  TokenService    the token service of a DockerRegistry with auth="token":
                  JWTs signed RS256 with the openssl CLI; anonymous pull for
                  repositories under public/, push and pull for pier/t0ken
  FakeRegistry    a minimal registry on http.server serving fixed manifests
                  and blobs, whose blob answers can misbehave:
                  LyingUpstream (bytes that do not match the digest),
                  DyingUpstream (half the bytes, then the connection closes),
                  SlowUpstream (a slow first download);
                  fail_status makes it answer 5xx/429
  CacheRule       a pull-through cache rule made with pierctl, deleted on exit
  read_blob       a GET that reports a broken transfer instead of raising

Upstream ports come from PIER_URL's port + 20 .. + 99 (5420-5499 when the
suite runs on 5400), so parallel runs on other port ranges do not collide.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

from pierlib import (
    ALL_MANIFEST_TYPES, Client, Headers, PreconditionError, admin_creds, basic_auth, blob_root, env, is_pier,
    layout_blob, psql, psql_value,
    read_layout, run, skopeo, sql_str, url_a, wait_until,
)

# ---------------------------------------------------------------------------
# ports

_port_lock = threading.Lock()
_port_next: list[int] = []


def _port_range() -> tuple[int, int]:
    port = urllib.parse.urlsplit(url_a()).port or 80
    return port + 20, port + 99


def _port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def upstream_port() -> int:
    """A free loopback port for an upstream, cycling through this run's range."""
    lo, hi = _port_range()
    with _port_lock:
        if not _port_next:
            _port_next.append(lo)
        for _ in range(hi - lo + 1):
            port = _port_next[0]
            _port_next[0] = lo if port >= hi else port + 1
            if _port_free(port):
                return port
    raise PreconditionError(f"precondition missing: no free port in {lo}-{hi} for an upstream")


# ---------------------------------------------------------------------------
# access log counting (shared by the real and the fake registries)

ACCESS_RE = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE|OPTIONS) (\S+) HTTP/[0-9.]+" (\d{3})')


class RequestLog:
    """(method, path, status) of every request an upstream answered."""

    def entries(self) -> list[tuple[str, str, int]]:
        raise NotImplementedError

    def mark(self) -> int:
        """Position to count from later (count(..., since=mark))."""
        return len(self.entries())

    def matching(self, method: str | None, pattern: str, status=200, since: int = 0):
        """Requests whose path (without query) fully matches the regular expression pattern.

        status: an int, a tuple of ints, or None for any status.
        """
        rx = re.compile(pattern)
        out = []
        for m, path, st in self.entries()[since:]:
            if method is not None and m != method:
                continue
            if status is not None and st not in (status if isinstance(status, tuple) else (status,)):
                continue
            if rx.fullmatch(path.split("?", 1)[0]):
                out.append((m, path, st))
        return out

    def count(self, method: str | None, pattern: str, status=200, since: int = 0) -> int:
        return len(self.matching(method, pattern, status, since))

    def manifest_pattern(self, repo: str, ref: str | None = None) -> str:
        return f"/v2/{re.escape(repo)}/manifests/" + (re.escape(ref) if ref else r"[^/]+")

    def blob_pattern(self, repo: str, digest: str | None = None) -> str:
        return f"/v2/{re.escape(repo)}/blobs/" + (re.escape(digest) if digest else r"sha256:[0-9a-f]{64}")

    def blob_gets(self, repo: str, since: int = 0) -> dict[str, int]:
        """{digest: number of successful GETs} of blobs of repo."""
        out: dict[str, int] = {}
        for _, path, _ in self.matching("GET", self.blob_pattern(repo), 200, since):
            d = path.split("?", 1)[0].rsplit("/", 1)[1]
            out[d] = out.get(d, 0) + 1
        return out

    def summary(self, since: int = 0, limit: int = 60) -> str:
        lines = [f"{m} {p} {s}" for m, p, s in self.entries()[since:]]
        more = f" ... ({len(lines) - limit} more)" if len(lines) > limit else ""
        return "; ".join(lines[:limit]) + more


# ---------------------------------------------------------------------------
# openssl: one signing key and self-signed certificate per test process

_keys_lock = threading.Lock()
_keys: dict[str, str] = {}


def token_keypair() -> dict[str, str]:
    """{'dir', 'key', 'cert', 'x5c'}: an RSA key and a self-signed certificate for it."""
    with _keys_lock:
        if _keys and os.path.exists(_keys["key"]):
            return dict(_keys)
        if shutil.which("openssl") is None:
            raise PreconditionError("precondition missing: openssl is not installed")
        d = tempfile.mkdtemp(prefix="pier-token-keys-")
        atexit.register(shutil.rmtree, d, True)
        key, cert = os.path.join(d, "token.key"), os.path.join(d, "token.crt")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3",
             "-subj", "/CN=pier-test-token-issuer", "-keyout", key, "-out", cert], timeout=60)
        der = run(["openssl", "x509", "-in", cert, "-outform", "DER"], timeout=30).stdout
        _keys.update(dir=d, key=key, cert=cert, x5c=base64.b64encode(der).decode())
        return dict(_keys)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(claims: dict, keys: dict[str, str]) -> str:
    """A JWT (RS256, certificate in x5c) signed with `openssl dgst -sha256 -sign`."""
    header = {"typ": "JWT", "alg": "RS256", "x5c": [keys["x5c"]]}
    signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    p = subprocess.run(["openssl", "dgst", "-sha256", "-sign", keys["key"]], input=signing_input.encode(),
                       capture_output=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"openssl dgst -sign failed: {p.stderr.decode(errors='replace')}")
    return signing_input + "." + _b64url(p.stdout)


def self_signed_cert(directory: str, name: str = "cert") -> tuple[str, str]:
    """A new self-signed certificate for 127.0.0.1 (and localhost) and its key:
    (<directory>/<name>.pem, <directory>/<name>.key)."""
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", key, "-out", cert], capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl req failed: {p.stderr.decode(errors='replace')}")
    return cert, key


# ---------------------------------------------------------------------------
# small HTTP servers in a thread


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner = None  # set per server class

    def log_message(self, fmt, *args):  # keep the test output clean
        pass

    def send_json(self, status: int, doc, extra=()):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _ThreadedServer:
    """Start/stop an http.server on 127.0.0.1:port in a daemon thread."""

    handler_class: type = _QuietHandler
    bind = "127.0.0.1"  # the loopback address it listens on

    def __init__(self, port: int | None = None):
        self.port = port or upstream_port()
        self.server: _Server | None = None
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    def start(self):
        handler = type(self.handler_class.__name__, (self.handler_class,), {"owner": self})
        self.stopping.clear()
        self.server = _Server((self.bind, self.port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(5)
            self.thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------
# the token service


class _TokenHandler(_QuietHandler):
    def do_GET(self):
        svc: TokenService = self.owner
        parts = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        user, bad = None, False
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                name, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", None
            if svc.users.get(name) == password:
                user = name
            else:
                bad = True
        elif auth:
            bad = True
        scopes = []
        for s in query.get("scope", []):
            scopes.extend(s.split(" "))
        record = {"path": parts.path, "user": user, "bad_credentials": bad, "scopes": scopes,
                  "service": query.get("service", [""])[0], "granted": []}
        if parts.path != "/token":
            record["status"] = 404
            svc._record(record)
            self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
            return
        if bad:
            record["status"] = 401
            svc._record(record)
            self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                           extra=[("WWW-Authenticate", 'Basic realm="pier-test-token"')])
            return
        access = []
        for scope in scopes:
            fields = scope.split(":")
            if len(fields) < 3 or fields[0] != "repository":
                continue
            name, actions = ":".join(fields[1:-1]), fields[-1].split(",")
            allowed = svc.allowed_actions(user, name)
            granted = sorted({a for a in actions if a in allowed} | ({"*"} & set(actions) & allowed))
            access.append({"type": "repository", "name": name, "actions": granted})
        record["granted"] = access
        now = int(time.time())
        claims = {"iss": svc.issuer, "sub": user or "", "aud": record["service"] or svc.service,
                  "exp": now + svc.lifetime, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        try:
            token = sign_jwt(claims, svc.keys)
        except Exception as e:  # noqa: BLE001 - answer 500 and remember why
            record["status"] = 500
            record["error"] = repr(e)
            svc._record(record)
            self.send_json(500, {"errors": [{"code": "UNKNOWN", "message": str(e)}]})
            return
        record["status"] = 200
        record["token"] = token
        svc._record(record)
        self.send_json(200, {"token": token, "access_token": token, "expires_in": svc.lifetime,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})


class TokenService(_ThreadedServer):
    """Issues registry tokens (docker token auth) for a DockerRegistry.

    Anonymous requests get pull on repositories under public/ only; the user
    pier with password t0ken gets pull and push everywhere; wrong credentials
    get 401. Every request is recorded in .requests (dicts with user,
    scopes, granted, status).
    """

    handler_class = _TokenHandler
    issuer = "pier-test-issuer"
    service = "pier-test-upstream"
    USERNAME = "pier"
    PASSWORD = "t0ken"

    def __init__(self, port: int | None = None, lifetime: int = 300):
        super().__init__(port)
        self.keys = token_keypair()
        self.users = {self.USERNAME: self.PASSWORD}
        self.lifetime = lifetime
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def allowed_actions(self, user: str | None, name: str) -> set[str]:
        if user == self.USERNAME:
            return {"pull", "push"}
        return {"pull"} if name.startswith("public/") else set()

    def _record(self, rec: dict) -> None:
        with self._lock:
            self.requests.append(rec)

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return [r["token"] for r in self.requests if r.get("token")]

    def count(self, user="any", scope_contains: str | None = None, status: int | None = 200) -> int:
        """Requests by user ('any', None for anonymous, or a name) whose scopes mention scope_contains."""
        with self._lock:
            recs = list(self.requests)
        n = 0
        for r in recs:
            if user != "any" and r["user"] != user:
                continue
            if status is not None and r.get("status") != status:
                continue
            if scope_contains is not None and not any(scope_contains in s for s in r["scopes"]):
                continue
            n += 1
        return n


# ---------------------------------------------------------------------------
# docker-registry


class DockerRegistry(RequestLog):
    """A real Debian docker-registry on 127.0.0.1:port.

    auth: None (anonymous), "htpasswd" (Basic; a random password for
    .username) or "token" (Bearer, through a TokenService; pier/t0ken).
    stop() keeps the storage, so start() brings the same content back on the
    same port; close() removes everything.
    """

    BINARY = "/usr/bin/docker-registry"

    def __init__(self, auth: str | None = None, port: int | None = None, realm_host: str | None = None,
                 tls: tuple[str, str] | None = None):
        if not os.path.exists(self.BINARY):
            raise PreconditionError(f"precondition missing: {self.BINARY} is not installed")
        assert auth in (None, "htpasswd", "token"), auth
        self.auth = auth
        self.port = port or upstream_port()
        self.dir = tempfile.mkdtemp(prefix="pier-upstream-")
        self.storage = os.path.join(self.dir, "storage")
        self.config_path = os.path.join(self.dir, "config.yml")
        self.log_path = os.path.join(self.dir, "registry.log")
        os.makedirs(self.storage)
        self.proc: subprocess.Popen | None = None
        self.token_service: TokenService | None = None
        self.username = self.password = None
        if auth == "htpasswd":
            if shutil.which("htpasswd") is None:
                raise PreconditionError("precondition missing: htpasswd (apache2-utils) is not installed")
            self.username = "pier-basic"
            self.password = "pw-" + uuid.uuid4().hex
            line = run(["htpasswd", "-Bbn", self.username, self.password], timeout=30).stdout.decode().strip()
            with open(os.path.join(self.dir, "htpasswd"), "w") as f:
                f.write(line + "\n")
        elif auth == "token":
            self.token_service = TokenService()
            self.username, self.password = TokenService.USERNAME, TokenService.PASSWORD
        # The host name the token realm is announced with (another host than the
        # registry's own, for the tests of where credentials may go).
        self.realm_host = realm_host
        # (certificate, key) PEM files: the registry serves https only.
        self.tls = tls
        self._write_config()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  fields:",
            "    service: pier-test-upstream",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            "  secret: pier-test-upstream-secret",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls[0]}", f"    key: {self.tls[1]}"]
        if self.auth == "htpasswd":
            lines += ["auth:", "  htpasswd:", "    realm: pier-test-basic",
                      f"    path: {os.path.join(self.dir, 'htpasswd')}"]
        elif self.auth == "token":
            ts = self.token_service
            realm = ts.realm if not self.realm_host else ts.realm.replace("127.0.0.1", self.realm_host, 1)
            lines += ["auth:", "  token:", f"    realm: {realm}", f"    service: {ts.service}",
                      f"    issuer: {ts.issuer}", f"    rootcertbundle: {ts.keys['cert']}"]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout: float = 20):
        if self.proc is not None and self.proc.poll() is None:
            return self
        if self.token_service is not None and self.token_service.server is None:
            self.token_service.start()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([self.BINARY, "serve", self.config_path], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                if self.tls:
                    conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=1,
                                                       context=ssl._create_unverified_context())
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                conn.close()
                return "up" if status in (200, 401) else None
            except OSError:
                return None
        state = wait_until(ready, timeout, 0.05)
        if state != "up":
            self.stop()
            raise AssertionError(f"docker-registry on port {self.port} did not start ({state}): {self.log_tail()}")
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None
        # Wait for the port to be closed, so a test of "upstream down" sees it down.
        wait_until(lambda: _port_free(self.port), 5, 0.05)

    def close(self):
        self.stop()
        if self.token_service is not None:
            self.token_service.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, n: int = 4000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def entries(self) -> list[tuple[str, str, int]]:
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return [(m.group(1), m.group(2), int(m.group(3))) for m in ACCESS_RE.finditer(text)]

    def wait_for_count(self, n: int, method: str | None, pattern: str, status=200, since: int = 0,
                       timeout: float = 5) -> int:
        """The access log is written after each answer: poll until at least n lines match."""
        wait_until(lambda: self.count(method, pattern, status, since) >= n, timeout, 0.05)
        return self.count(method, pattern, status, since)

    def settle(self, quiet: float = 0.3, timeout: float = 5) -> int:
        """Wait until no new access-log line appeared for `quiet` seconds; return the mark."""
        deadline = time.monotonic() + timeout
        last = self.mark()
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.mark()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return last

    def creds_args(self, flag: str) -> list[str]:
        return [flag, f"{self.username}:{self.password}"] if self.username else []

    def push_layout(self, layout: str, tag: str, repo: str, dest_ref: str | None = None,
                    all_images: bool = False) -> None:
        """skopeo copy oci:<layout>:<tag> docker://<this>/<repo>:<dest_ref or tag>."""
        args = ["copy", "--dest-tls-verify=false", *self.creds_args("--dest-creds")]
        if all_images:
            args.append("--all")
        ref = dest_ref or tag
        sep = "@" if ":" in ref else ":"
        skopeo(*args, f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}{sep}{ref}", timeout=120)

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> int:
        """PUT a manifest straight to the registry (anonymous registries only)."""
        assert self.auth is None, "put_manifest needs an anonymous registry"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("PUT", f"/v2/{repo}/manifests/{ref}", body=data, headers={"Content-Type": media_type})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()


# ---------------------------------------------------------------------------
# fake registries for behaviour no real registry shows


class _FakeHandler(_QuietHandler):
    def _route(self):
        fake: FakeRegistry = self.owner
        path = urllib.parse.urlsplit(self.path).path
        fake._record(self.command, self.path)
        if self.headers.get("Authorization"):
            fake.auth_seen.append(self.headers.get("Authorization"))
        if path in ("/v2", "/v2/"):
            self.send_json(200, {})
            return
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        if not m:
            self.send_json(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "no such repository"}]})
            return
        repo, kind, ref = m.groups()
        if fake.fail_status is not None:
            extra = [("Retry-After", "30")] if fake.fail_status == 429 else []
            self.send_json(fake.fail_status,
                           {"errors": [{"code": "UNAVAILABLE", "message": f"fake {fake.fail_status}"}]}, extra=extra)
            return
        if kind == "manifests":
            found = fake.manifests.get((repo, ref))
            if found is None:
                self.send_json(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": f"{repo}:{ref}"}]})
                return
            media_type, data = found
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(data).hexdigest())
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)
            return
        data = fake.blobs.get(ref)
        if data is None or (fake.repos and repo not in fake.repos):
            self.send_json(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": ref}]})
            return
        fake.send_blob(self, ref, data)

    do_GET = _route
    do_HEAD = _route


class FakeRegistry(_ThreadedServer, RequestLog):
    """A registry that serves fixed content: add_layout() copies an OCI layout in.

    Subclasses change send_blob() to misbehave; fail_status (e.g. 503 or 429),
    when set, answers every manifest and blob request with that error.
    Requests are recorded as (method, path, 200) entries (the status is not
    tracked).
    """

    handler_class = _FakeHandler

    def __init__(self, port: int | None = None):
        super().__init__(port)
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.repos: set[str] = set()
        self.fail_status: int | None = None
        self.auth_seen: list[str] = []   # every Authorization header received
        self._requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path, 200))

    def entries(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self._requests)

    def add_layout(self, repo: str, layout: str, tag: str) -> None:
        """Serve the image tagged `tag` in the OCI layout as repo:tag (and by digest),
        with every blob of the layout."""
        raw, desc = read_layout(layout, tag)
        self.repos.add(repo)
        self.manifests[(repo, tag)] = (desc["mediaType"], raw)
        blobdir = os.path.join(layout, "blobs", "sha256")
        for name in os.listdir(blobdir):
            data = layout_blob(layout, "sha256:" + name)
            self.blobs["sha256:" + name] = data
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("mediaType") in ALL_MANIFEST_TYPES:
                self.manifests[(repo, "sha256:" + name)] = (doc["mediaType"], data)

    def add_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.repos.add(repo)
        self.blobs[digest] = data
        return digest

    def send_blob(self, h: _FakeHandler, digest: str, data: bytes) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Docker-Content-Digest", digest)
        h.end_headers()
        if h.command == "GET":
            h.wfile.write(data)


class LyingUpstream(FakeRegistry):
    """Serves manifests correctly, but every blob in .corrupt with other bytes of the same length."""

    def __init__(self, port: int | None = None):
        super().__init__(port)
        self.corrupt: set[str] = set()

    def send_blob(self, h, digest, data):
        if digest in self.corrupt:
            data = bytes(b ^ 0x5A for b in data[:64]) + data[64:]
        super().send_blob(h, digest, data)


class DyingUpstream(FakeRegistry):
    """Sends the full Content-Length of every blob in .dying, half the bytes, then closes the connection."""

    def __init__(self, port: int | None = None):
        super().__init__(port)
        self.dying: set[str] = set()

    def send_blob(self, h, digest, data):
        if digest not in self.dying or h.command != "GET":
            super().send_blob(h, digest, data)
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Docker-Content-Digest", digest)
        h.end_headers()
        try:
            h.wfile.write(data[:len(data) // 2])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        h.close_connection = True


class SlowUpstream(FakeRegistry):
    """The first `slow_requests` GETs of a blob in .slow trickle out (chunk bytes every delay seconds);
    later ones are served at once. .sent[digest] counts bytes written by the slow answers."""

    def __init__(self, port: int | None = None, chunk: int = 64 * 1024, delay: float = 0.05,
                 slow_requests: int = 1):
        super().__init__(port)
        self.slow: set[str] = set()
        self.chunk, self.delay, self.slow_requests = chunk, delay, slow_requests
        self.sent: dict[str, int] = {}
        self.slow_done: dict[str, int] = {}

    def send_blob(self, h, digest, data):
        with self._lock:
            slow = (digest in self.slow and h.command == "GET"
                    and self.slow_done.get(digest, 0) < self.slow_requests)
            if slow:
                self.slow_done[digest] = self.slow_done.get(digest, 0) + 1
        if not slow:
            super().send_blob(h, digest, data)
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Docker-Content-Digest", digest)
        h.end_headers()
        try:
            for off in range(0, len(data), self.chunk):
                if self.stopping.is_set():
                    break
                h.wfile.write(data[off:off + self.chunk])
                h.wfile.flush()
                with self._lock:
                    self.sent[digest] = self.sent.get(digest, 0) + len(data[off:off + self.chunk])
                time.sleep(self.delay)
        except OSError:
            pass  # the reader went away
        h.close_connection = True


# ---------------------------------------------------------------------------
# pierctl and rules


def pierctl(*args: str, input: str | None = None, timeout: float = 60, state: str | None = None):
    """Run pierctl -c <state>/pier.conf ARGS (text mode); returns the CompletedProcess."""
    build = env("PIER_BUILD_DIR")
    conf = os.path.join(state or env("PIER_STATE_DIR"), "pier.conf")
    exe = os.path.join(build, "pierctl")
    if not os.path.exists(exe):
        raise PreconditionError(f"precondition missing: {exe} does not exist")
    return subprocess.run([exe, "-c", conf, *args], input=input, capture_output=True, text=True,
                          timeout=timeout)


def unique_prefix(label: str = "c") -> str:
    """A rule prefix nobody else uses: <label><10 hex>."""
    return f"{label}{uuid.uuid4().hex[:10]}"


def _rule_options(registry=None, upstream_prefix=None, refresh=None, negative=None, username=None,
                  ca_bundle=None, url=None, no_credentials=False, mirrors=None, default_mirror=None) -> list[str]:
    args = []
    if mirrors is not None:  # a list of registries, [] clears them (mirror mode)
        args += ["--mirrors", ",".join(mirrors)]
    if default_mirror is not None:
        args.append("--default-mirror" if default_mirror else "--no-default-mirror")
    if url is not None:
        args += ["--url", url]
    if registry is not None:
        args += ["--registry", registry]
    if upstream_prefix is not None:
        args += ["--upstream-prefix", upstream_prefix]
    if refresh is not None:
        args += ["--refresh", str(refresh)]
    if negative is not None:
        args += ["--negative", str(negative)]
    if ca_bundle is not None:
        args += ["--ca-bundle", ca_bundle]
    if username is not None:
        args += ["--username", username]
    if no_credentials:
        args.append("--no-credentials")
    return args


class CacheRule:
    """A pull-through cache rule created with `pierctl rule create`, deleted on exit.

        with CacheRule(upstream.url, refresh=3) as rule:
            repo = rule.repo("library/demo")   # "<prefix>/library/demo"
    """

    def __init__(self, url: str, prefix: str | None = None, secret: str | None = None, **options):
        self.prefix = prefix or unique_prefix()
        self.url = url
        self.secret = secret
        self.options = options
        self.created: dict | None = None

    def repo(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def create(self) -> dict:
        p = pierctl("rule", "create", self.prefix, self.url, *_rule_options(**self.options),
                    input=(self.secret + "\n") if self.secret is not None else None)
        assert p.returncode == 0, f"rule create {self.prefix} {self.url} failed ({p.returncode}): {p.stderr.strip()}"
        try:
            self.created = json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"rule create printed no JSON: {p.stdout!r}") from None
        return self.created

    def update(self, secret: str | None = None, **options) -> dict:
        p = pierctl("rule", "update", self.prefix, *_rule_options(**options),
                    input=(secret + "\n") if secret is not None else None)
        assert p.returncode == 0, f"rule update {self.prefix} {options} failed ({p.returncode}): {p.stderr.strip()}"
        return json.loads(p.stdout)

    def show(self) -> dict:
        p = pierctl("rule", "show", self.prefix)
        assert p.returncode == 0, f"rule show {self.prefix} failed ({p.returncode}): {p.stderr.strip()}"
        return json.loads(p.stdout)

    def show_raw(self) -> str:
        return pierctl("rule", "show", self.prefix).stdout

    def delete(self) -> None:
        pierctl("rule", "delete", self.prefix)

    def __enter__(self):
        self.create()
        return self

    def __exit__(self, *exc):
        self.delete()


def rule_count(prefix: str) -> int:
    return int(psql_value(f"SELECT count(*) FROM cache_rules WHERE prefix = {sql_str(prefix)}"))


def pier_logs() -> dict[str, str]:
    """The text of node A's and node B's pier.log and Apache error logs (missing files are empty)."""
    out = {}
    for var in ("PIER_STATE_DIR", "PIER_STATE_DIR_B"):
        d = os.environ.get(var, "").strip()
        if not d:
            continue
        for name in ("pier.log", "apache-error.log", "apache-access.log"):
            p = os.path.join(d, "log", name)
            try:
                with open(p, "rb") as f:
                    out[p] = f.read().decode(errors="replace")
            except OSError:
                pass
    return out


# ---------------------------------------------------------------------------
# reading blobs through Pier without hiding broken transfers


class BlobRead:
    def __init__(self, method: str, path: str):
        self.method, self.path = method, path
        self.status: int | None = None
        self.headers = Headers([])
        self.body = b""
        self.error: BaseException | None = None
        self.content_length: int | None = None

    @property
    def complete(self) -> bool:
        """200, no transport error, and all of Content-Length (when sent) arrived."""
        if self.status != 200 or self.error is not None:
            return False
        return self.content_length is None or len(self.body) == self.content_length

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.body).hexdigest()

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def summary(self) -> str:
        return (f"GET {self.path} -> status {self.status}, {len(self.body)} of "
                f"{self.content_length} bytes, error {self.error!r}, headers {self.headers!r}, "
                f"body {self.body[:200]!r}")


def read_blob(base_url: str, path: str, headers=None, timeout: float = 60, progress=None) -> BlobRead:
    """GET path and read the whole answer; a broken connection is recorded, not raised.

    progress: optional callable(bytes received so far), called after each piece.
    """
    parts = urllib.parse.urlsplit(base_url)
    out = BlobRead("GET", path)
    headers = dict(headers or {})
    if is_pier(parts.netloc) and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = basic_auth(*admin_creds())
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        out.status = r.status
        out.headers = Headers(r.getheaders())
        cl = r.getheader("Content-Length")
        out.content_length = int(cl) if cl is not None and cl.isdigit() else None
        chunks, got = [], 0
        while True:
            piece = r.read1(256 * 1024)
            if not piece:
                break
            chunks.append(piece)
            got += len(piece)
            if progress is not None:
                progress(got)
        out.body = b"".join(chunks)
    except (http.client.HTTPException, OSError) as e:
        out.error = e
        if "chunks" in locals():
            out.body = b"".join(chunks)
    finally:
        conn.close()
    return out


# ---------------------------------------------------------------------------
# pulling through the cache


MANIFEST_ACCEPT = ", ".join(ALL_MANIFEST_TYPES)


def get_manifest(client, repo: str, ref: str, method: str = "GET"):
    """GET (or HEAD) /v2/<repo>/manifests/<ref> accepting every manifest type."""
    return client.request(method, f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT})


def cache_state(resp) -> str | None:
    return resp.header("X-Pier-Cache")


def image_blobs(image) -> list:
    """Config and layers of a pierlib Image (Content objects)."""
    return [image.config, *image.layers]


def assert_layout_holds(path: str, tag: str, image) -> None:
    """The OCI layout at path (copied from the registry) holds exactly `image` under `tag`."""
    raw, desc = read_layout(path, tag)
    assert desc["digest"] == image.digest, f"copied manifest digest {desc['digest']} != {image.digest}"
    assert raw == image.manifest.data, "copied manifest bytes differ from the source"
    for blob in image_blobs(image):
        data = layout_blob(path, blob.digest)
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        assert got == blob.digest, f"copied blob {blob.digest} has digest {got}"


def rule_id(prefix: str) -> int:
    v = psql_value(f"SELECT id FROM cache_rules WHERE prefix = {sql_str(prefix)}")
    assert v is not None, f"no cache_rules row for prefix {prefix}"
    return int(v)


STAT_COLUMNS = ("hits", "misses", "stale", "upstream_bytes", "served_bytes", "upstream_errors")


def cache_stats(prefix: str) -> dict[str, int]:
    rows = psql(f"SELECT {', '.join(STAT_COLUMNS)} FROM cache_stats WHERE rule_id = {rule_id(prefix)}")
    if not rows:
        return {k: 0 for k in STAT_COLUMNS}
    return {k: int(v) for k, v in zip(STAT_COLUMNS, rows[0])}


def wait_for_stats(prefix: str, predicate, timeout: float = 12) -> dict[str, int]:
    """Poll cache_stats until predicate(stats) holds.

    Workers flush their counters after a request once ~2 s passed since the
    last flush, so this keeps sending cheap requests (GET /v2/) to both nodes
    to give every worker a chance to flush.
    """
    urls = [url_a()] + ([os.environ["PIER_URL_B"]] if os.environ.get("PIER_URL_B") else [])
    deadline = time.monotonic() + timeout
    stats = cache_stats(prefix)
    while not predicate(stats) and time.monotonic() < deadline:
        for u in urls:
            for _ in range(12):
                try:
                    Client(u, timeout=5).get("/v2/")
                except OSError:
                    pass
        time.sleep(0.3)
        stats = cache_stats(prefix)
    return stats


def fetch_dir() -> str:
    return os.path.join(blob_root(), "tmp", "fetch")


def fetch_tmp_files() -> set[str]:
    """Names of the files in <blob root>/tmp/fetch."""
    d = fetch_dir()
    try:
        return {n for n in os.listdir(d) if os.path.isfile(os.path.join(d, n))}
    except FileNotFoundError:
        return set()


def lease_rows(digests) -> int:
    keys = ", ".join(sql_str("b:" + d) for d in digests) or "''"
    return int(psql_value(f"SELECT count(*) FROM fetch_leases WHERE key IN ({keys})"))


def secret_leaks(secrets, texts: dict[str, str]) -> list[str]:
    """'<where>: <secret>' for every secret found in any text."""
    found = []
    for where, text in texts.items():
        for s in secrets:
            if s and s in text:
                found.append(f"{where}: {s[:12]}...")
    return found
