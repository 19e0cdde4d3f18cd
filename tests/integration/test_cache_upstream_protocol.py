"""What docs/pull-through-cache.md promises about talking to an upstream:

  - https upstreams are verified: against the system store, or against the rule's
    CA bundle when it has one ("PEM certificates trusted for this upstream instead
    of the system store"); a certificate nobody vouches for fails the pull
  - redirects (object storage, CDNs) are followed without the Authorization header
  - an upstream that accepts and never answers is given up after the configured
    timeouts: 504 UPSTREAM_UNAVAILABLE, not a hanging client
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
import urllib.parse

from pierlib import (
    Client, ExtraNode, TempDir, admin_creds, assert_oci_error, build_image_layout, client_a, docker_ref, expect_status,
    sha256_digest, skopeo_copy, url_a,
)
from upstreams import (
    CacheRule, DockerRegistry, _QuietHandler, _ThreadedServer, assert_layout_holds, cache_state, get_manifest,
    read_blob, self_signed_cert, upstream_port,
)


def test_https_upstreams_are_verified_against_the_rules_ca_bundle():
    with TempDir() as tmp:
        cert, key = self_signed_cert(tmp.path, "upstream")
        stranger, _ = self_signed_cert(tmp.path, "stranger")
        img = build_image_layout(tmp.sub("src"), "1.0", layer_sizes=(1024, 40 * 1024))
        with DockerRegistry(tls=(cert, key)) as up:
            assert up.url.startswith("https://"), up.url
            up.push_layout(tmp.sub("src"), "1.0", "library/tls")
            mark = up.settle()
            # No bundle: the system store does not know a self-signed certificate.
            # Another certificate as the bundle: it does not vouch for this one either.
            for label, options in (("no bundle", {}), ("another CA", {"ca_bundle": stranger})):
                with CacheRule(up.url, **options) as rule:
                    r = get_manifest(client_a(), rule.repo("library/tls"), "1.0")
                    err = assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("certificate",))
                    assert rule.prefix in err["message"], f"{label}: the error does not name the rule: {err}"
                    r = client_a().get(f"/v2/{rule.repo('library/tls')}/blobs/{img.layers[0].digest}")
                    assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("certificate",))
            # Not one request got through a connection Pier could not verify.
            up.settle()
            assert up.mark() == mark, f"requests reached an unverified upstream: {up.summary(mark)}"

            # The upstream's own certificate as the bundle: the pull works end to end.
            with CacheRule(up.url, ca_bundle=cert) as rule:
                assert rule.show().get("hasCaBundle") is True, rule.show()
                repo = rule.repo("library/tls")
                r = expect_status(get_manifest(client_a(), repo, "1.0"), 200, "with the CA bundle")
                assert r.header("Docker-Content-Digest") == img.digest and cache_state(r) == "miss", r.summary()
                back = tmp.sub("back")
                skopeo_copy(docker_ref(repo, "1.0"), f"oci:{back}:1.0")
                assert_layout_holds(back, "1.0", img)
                up.settle()
                assert up.count("GET", up.manifest_pattern("library/tls", "1.0"), since=mark) >= 1, up.summary(mark)


class _Cdn(_ThreadedServer):
    """Another host (reached as localhost:<port>) that serves blob bytes under /cdn/<digest>
    and records the headers of every request it gets."""

    class handler_class(_QuietHandler):
        def do_GET(self):
            cdn: _Cdn = self.owner
            with cdn.lock:
                cdn.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            data = cdn.blobs.get(self.path.rsplit("/", 1)[-1])
            if data is None:
                self.send_json(404, {"errors": [{"code": "BLOB_UNKNOWN", "message": self.path}]})
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        do_HEAD = do_GET

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []


class _RedirectingOrigin(_ThreadedServer):
    """A registry that wants Basic credentials for everything and answers a blob request
    with a redirect to .cdn on another host (localhost instead of 127.0.0.1)."""

    USER, PASSWORD = "origin-user", "origin-secret-" + base64.b16encode(os.urandom(6)).decode()

    class handler_class(_QuietHandler):
        def _route(self):
            o: _RedirectingOrigin = self.owner
            auth = self.headers.get("Authorization")
            with o.lock:
                o.requests.append((self.command, self.path, auth))
            if auth != o.basic:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="origin"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path = urllib.parse.urlsplit(self.path).path
            if path.rstrip("/") == "/v2":
                self.send_json(200, {})
                return
            if "/blobs/" in path:
                digest = path.rsplit("/", 1)[-1]
                self.send_response(307)
                self.send_header("Location", f"http://localhost:{o.cdn.port}/cdn/{digest}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_json(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": path}]})

        do_GET = _route
        do_HEAD = _route

    def __init__(self, cdn: _Cdn):
        super().__init__()
        self.cdn = cdn
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, str | None]] = []
        self.basic = "Basic " + base64.b64encode(f"{self.USER}:{self.PASSWORD}".encode()).decode()


def test_authorization_is_not_sent_along_a_redirect_to_another_host():
    with _Cdn() as cdn, _RedirectingOrigin(cdn) as origin:
        data = os.urandom(100 * 1024)
        digest = sha256_digest(data)
        cdn.blobs[digest] = data
        with CacheRule(origin.url, secret=origin.PASSWORD, username=origin.USER) as rule:
            path = f"/v2/{rule.repo('app')}/blobs/{digest}"
            got = read_blob(url_a(), path, headers={"Authorization": client_a().authorization})
            assert got.status == 200 and got.complete and got.digest == digest, got.summary()
        # The origin got the rule's credentials for the blob it redirected ...
        blob_asks = [a for m, p, a in origin.requests if "/blobs/" in p]
        assert origin.basic in blob_asks, f"the origin never got the rule's credentials: {origin.requests}"
        # ... and the other host got the request, without them.
        assert cdn.requests, "the redirect was not followed"
        leaked = [(m, p) for m, p, h in cdn.requests if "authorization" in h]
        assert not leaked, f"Authorization went along a redirect to another host: {leaked}"


class _SilentUpstream:
    """A port that accepts connections (the kernel does, into the backlog) and never
    answers a byte."""

    def __init__(self):
        self.port = upstream_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_a_silent_upstream_times_out_with_504_instead_of_hanging():
    """upstream_timeout bounds a manifest request, upstream_idle_timeout a blob download
    that receives nothing: both end in 504 UPSTREAM_UNAVAILABLE after about that long."""
    settings = {"PIER_UPSTREAM_TIMEOUT": "2", "PIER_UPSTREAM_IDLE_TIMEOUT": "2",
                "PIER_UPSTREAM_CONNECT_TIMEOUT": "2"}
    with _SilentUpstream() as up, CacheRule(up.url) as rule, ExtraNode("timeouts", 9, **settings) as node:
        c = Client(node.url, auth=admin_creds(), timeout=60)
        t0 = time.monotonic()
        r = get_manifest(c, rule.repo("library/quiet"), "1.0")
        took = time.monotonic() - t0
        err = assert_oci_error(r, 504, "UPSTREAM_UNAVAILABLE", ("timed out",))
        assert rule.prefix in err["message"] and f":{up.port}" not in err["message"], err
        assert took < 20, f"the manifest request took {took:.1f} s with upstream_timeout = 2"
        digest = sha256_digest(b"never sent")
        t0 = time.monotonic()
        r = c.get(f"/v2/{rule.repo('library/quiet')}/blobs/{digest}")
        took = time.monotonic() - t0
        assert_oci_error(r, 504, "UPSTREAM_UNAVAILABLE", ("timed out",))
        assert took < 20, f"the blob request took {took:.1f} s with upstream_idle_timeout = 2"
        shown = rule.show()
        assert "timed out" in shown.get("lastError", "").lower(), f"rule show lastError: {shown}"
