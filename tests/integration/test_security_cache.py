"""Security of the pull-through cache: the findings of the security review, each
reproduced against a live node and shown closed.

  - a private layer never becomes readable through a cache namespace, neither by
    naming its digest (route A) nor through a manifest an upstream publishes
    (route B); a caller who may read it elsewhere still gets it without upstream traffic
  - one rule's upstream never feeds its unverified bytes to another rule's clients
  - downloads are bounded by the size a manifest declares, by max_blob_size and by a
    minimum transfer rate
  - referrers in a cache namespace need the import permissions and leave no rows
    for repositories that do not exist
  - the address policy: no rules for internal addresses, no redirects to them, no
    https -> http downgrade; upstream URLs and bodies stay out of client errors
  - a rule's secret only goes where its creator may send it; credentials never
    travel over plain http unless the operator allows it, nor to a token realm on
    another site
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import subprocess
import threading
import time

from pierlib import (
    OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Client, ExtraNode, TempDir, admin_creds, assert_oci_error, blob_row_count,
    client_a,
    ecr_client, expect_api_error, files_for_digest, iam_policy, iam_statement, psql, psql_value,
    push_blob_monolithic, secrets_client, sql_str, url_a, wait_until,
)
from upstreams import (
    CacheRule, DockerRegistry, FakeRegistry, SlowUpstream, _FakeHandler, _QuietHandler, _ThreadedServer,
    fetch_tmp_files, get_manifest, pierctl, read_blob, self_signed_cert, unique_prefix, upstream_port,
)
from authlib import IMPORT_ACTIONS, PULL_ACTIONS, User, allow, policy, policy_settle, unique_ns


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(config: bytes, layers: list[tuple[str, int]]) -> bytes:
    """An OCI image manifest whose layers are (digest, size) descriptors."""
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": n} for d, n in layers],
    }).encode()


def publish(up: FakeRegistry, repo: str, tag: str, layers: list[tuple[str, int]]) -> bytes:
    """Make the fake upstream serve repo:tag, an image whose config it holds and whose
    layers are whatever descriptors the caller names (the blobs may be missing)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "nonce": os.urandom(8).hex()}).encode()
    up.repos.add(repo)
    up.blobs[sha(config)] = config
    manifest = image_manifest(config, layers)
    up.manifests[(repo, tag)] = (OCI_MANIFEST, manifest)
    up.manifests[(repo, sha(manifest))] = (OCI_MANIFEST, manifest)
    return manifest


def links_under(prefix: str, digest: str) -> list[list[str]]:
    return psql("SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id"
                f" WHERE rb.digest = {sql_str(digest)} AND r.name LIKE {sql_str(prefix + '/%')}")


# ---------------------------------------------------------------------------
# 1. private layers


def test_private_layers_are_not_readable_through_a_cache_namespace():
    ns = unique_ns("priv")
    private_repo = f"{ns}/secret"
    data = os.urandom(5000)
    digest = push_blob_monolithic(client_a(), private_repo, data)
    with FakeRegistry() as up, CacheRule(up.url) as rule:
        # Route B material: anyone may publish a manifest naming somebody else's digest.
        publish(up, "evil/app", "1", [(digest, len(data))])
        importer = policy(allow(PULL_ACTIONS + IMPORT_ACTIONS, f"{rule.prefix}/*"))
        reader = policy(allow(PULL_ACTIONS + IMPORT_ACTIONS, f"{rule.prefix}/*"),
                        allow(PULL_ACTIONS, private_repo))
        with User("ptc", policies={"ptc": importer}) as u, User("rdr", policies={"r": reader}) as v:
            c = u.client()
            r = c.get(f"/v2/{private_repo}/blobs/{digest}")
            assert r.status == 403, f"the private repository itself: {r.summary()}"

            # Route A: any name under the cache prefix.
            for name in ("anything", "x/y/z"):
                path = f"/v2/{rule.prefix}/{name}/blobs/{digest}"
                mark = up.mark()
                r = c.get(path)
                assert r.status == 404 and data not in r.body, f"GET {path}: {r.summary()}"
                assert "BLOB_UNKNOWN" in r.text, r.summary()
                r = c.head(path)
                assert r.status == 404, f"HEAD {path}: {r.summary()}"
                # Pier asked the upstream (which does not have it) instead of linking its copy.
                assert up.count("GET", f"/v2/{name}/blobs/{digest}", since=mark) == 1, up.summary(mark)

            # Route B: the imported manifest lists the digest; that is no grant either.
            evil = rule.repo("evil/app")
            r = get_manifest(c, evil, "1")
            assert r.status == 200, r.summary()
            r = c.get(f"/v2/{evil}/blobs/{digest}")
            assert r.status == 404 and data not in r.body, f"route B: {r.summary()}"
            assert links_under(rule.prefix, digest) == [], "the private blob was linked into the cache namespace"

            # Whoever may read the private repository gets the stored copy, no upstream traffic.
            mark = up.mark()
            r = v.client().get(f"/v2/{evil}/blobs/{digest}")
            assert r.status == 200 and r.body == data, f"reader: {r.summary()}"
            assert up.count("GET", ".*/blobs/.*", since=mark) == 0, up.summary(mark)
            assert links_under(rule.prefix, digest) == [[evil]]


# ---------------------------------------------------------------------------
# 7. one download per blob and rule


class SlowLyingUpstream(SlowUpstream):
    """Trickles its blobs out, with the first bytes changed: an attacker's upstream."""

    def send_blob(self, h, digest, data):
        super().send_blob(h, digest, bytes(b ^ 0xFF for b in data[:16]) + data[16:])


def test_another_rules_download_never_feeds_this_rule():
    data = os.urandom(2 * 1024 * 1024)
    with SlowLyingUpstream(chunk=64 * 1024, delay=0.25) as evil, FakeRegistry() as good, \
            CacheRule(evil.url) as rule_e, CacheRule(good.url) as rule_g:
        digest = evil.add_blob("app", data)
        good.add_blob("app", data)
        evil.slow.add(digest)
        results = {}

        def first():
            results["e"] = read_blob(url_a(), f"/v2/{rule_e.repo('app')}/blobs/{digest}",
                                     headers={"Authorization": client_a().authorization}, timeout=60)

        t = threading.Thread(target=first, daemon=True)
        t.start()
        assert wait_until(lambda: evil.sent.get(digest, 0) >= 256 * 1024, 20), "the slow download did not start"
        mark = good.mark()
        t0 = time.monotonic()
        r = read_blob(url_a(), f"/v2/{rule_g.repo('app')}/blobs/{digest}",
                      headers={"Authorization": client_a().authorization}, timeout=60)
        took = time.monotonic() - t0
        assert r.complete and r.digest == digest, f"rule G's client: {r.summary()}"
        assert good.count("GET", f"/v2/app/blobs/{digest}", since=mark) == 1, good.summary(mark)
        assert took < 6, f"rule G's client waited {took:.1f}s for rule E's download"
        t.join(60)
        e = results.get("e")
        assert e is not None and not (e.complete and e.digest == digest and e.status == 200), \
            f"rule E's client got verified bytes from a lying upstream: {e and e.summary()}"


# ---------------------------------------------------------------------------
# 8. bounded downloads


class FloodingUpstream(FakeRegistry):
    """For digests in .flood: streams zeros (announcing .announce bytes, or no length at
    all) until the reader goes away; .sent counts what it managed to write."""

    def __init__(self, port: int | None = None):
        super().__init__(port)
        self.flood: set[str] = set()
        self.announce: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.limit = 256 * 1024 * 1024

    def send_blob(self, h, digest, data):
        if digest not in self.flood or h.command != "GET":
            super().send_blob(h, digest, data)
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        if digest in self.announce:
            h.send_header("Content-Length", str(self.announce[digest]))
        h.send_header("Connection", "close")
        h.end_headers()
        chunk = b"\0" * (256 * 1024)
        sent = 0
        try:
            while sent < self.limit and not self.stopping.is_set():
                h.wfile.write(chunk)
                sent += len(chunk)
                with self._lock:
                    self.sent[digest] = sent
        except OSError:
            pass
        h.close_connection = True


def test_downloads_are_bounded_by_the_declared_size():
    small = os.urandom(1024)
    with FloodingUpstream() as up, CacheRule(up.url) as rule:
        d = up.add_blob("app", small)
        up.flood.add(d)
        publish(up, "app", "1", [(d, len(small))])
        c = client_a()
        repo = rule.repo("app")
        assert get_manifest(c, repo, "1").status == 200
        tmp_before = fetch_tmp_files()
        t0 = time.monotonic()
        r = read_blob(url_a(), f"/v2/{repo}/blobs/{d}", headers={"Authorization": c.authorization}, timeout=120)
        assert not (r.status == 200 and r.complete), f"a flood was served: {r.summary()}"
        assert up.sent.get(d, 0) < 16 * 1024 * 1024, \
            f"Pier read {up.sent.get(d, 0)} bytes of a blob its manifest declares as {len(small)} bytes"
        assert time.monotonic() - t0 < 30
        assert blob_row_count(d) == 0 and not files_for_digest(d), "something was stored"
        assert wait_until(lambda: fetch_tmp_files() <= tmp_before, 10), "a temporary file was left behind"
        # A Content-Length that differs from the descriptor stops it before any body byte.
        up.announce[d] = 64 * 1024 * 1024
        up.sent.pop(d, None)
        r = c.get(f"/v2/{repo}/blobs/{d}")
        assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("declares",))
        assert blob_row_count(d) == 0


def test_downloads_are_bounded_by_max_blob_size_and_a_minimum_rate():
    big = os.urandom(4 * 1024 * 1024)
    with ExtraNode("bounds", 3, PIER_MAX_BLOB_SIZE="2MiB", PIER_UPSTREAM_IDLE_TIMEOUT="2",
                   PIER_UPSTREAM_MIN_RATE="512k") as node, \
            FloodingUpstream() as flood, SlowUpstream(chunk=16 * 1024, delay=0.2) as slow, \
            CacheRule(flood.url) as rule_f, CacheRule(slow.url) as rule_s:
        auth = {"Authorization": client_a().authorization}
        # No manifest declares a size: max_blob_size bounds it.
        d = flood.add_blob("app", os.urandom(1024))
        flood.flood.add(d)
        r = read_blob(node.url, f"/v2/{rule_f.repo('app')}/blobs/{d}", headers=auth, timeout=60)
        assert not (r.status == 200 and r.complete), r.summary()
        assert flood.sent.get(d, 0) < 12 * 1024 * 1024, f"read {flood.sent.get(d, 0)} bytes past max_blob_size 2MiB"
        # 80 KiB/s is below the minimum rate: given up after about the idle timeout.
        d = slow.add_blob("app", big)
        slow.slow.add(d)
        t0 = time.monotonic()
        r = read_blob(node.url, f"/v2/{rule_s.repo('app')}/blobs/{d}", headers=auth, timeout=120)
        took = time.monotonic() - t0
        assert not (r.status == 200 and r.complete), r.summary()
        assert took < 15, f"a trickling upstream held the request {took:.1f}s (it would need ~50s)"
        assert slow.sent.get(d, 0) < len(big)
        assert blob_row_count(d) == 0


# ---------------------------------------------------------------------------
# 4. referrers


def test_referrers_need_the_import_permissions_and_belong_to_their_repository():
    with FakeRegistry() as up, CacheRule(up.url) as rule:
        layer = os.urandom(2048)
        up.add_blob("app", layer)
        manifest = publish(up, "app", "1", [(sha(layer), len(layer))])
        subject = sha(manifest)
        puller = policy(allow(PULL_ACTIONS, f"{rule.prefix}/*"))
        importer = policy(allow(PULL_ACTIONS + IMPORT_ACTIONS, f"{rule.prefix}/*"))
        with User("refp", policies={"p": puller}) as p, User("refi", policies={"i": importer}) as i:
            ghost = rule.repo("ghost")
            mark = up.mark()
            r = p.client().get(f"/v2/{ghost}/referrers/{subject}")
            assert r.status == 403 and ("ecr:CreateRepository" in r.text or "ecr:BatchImportUpstreamImage" in r.text), \
                r.summary()
            assert up.mark() == mark, f"a pull-only caller made Pier call the upstream: {up.summary(mark)}"
            # An importer gets the upstream's answer, but a repository that does not exist gets no row.
            r = i.client().get(f"/v2/{ghost}/referrers/{subject}")
            assert r.status == 200 and r.json()["manifests"] == [], r.summary()
            assert psql_value("SELECT count(*) FROM cache_referrers cr JOIN repositories r ON r.id = cr.repository_id"
                              f" WHERE r.name = {sql_str(ghost)}") == "0"
            assert psql_value(f"SELECT count(*) FROM repositories WHERE name = {sql_str(ghost)}") == "0"
            # An existing cache repository keeps the list; a pull-only caller then gets it, no upstream call.
            repo = rule.repo("app")
            assert get_manifest(i.client(), repo, "1").status == 200
            assert i.client().get(f"/v2/{repo}/referrers/{subject}").status == 200
            rows = lambda: psql_value(  # noqa: E731
                "SELECT count(*) FROM cache_referrers cr JOIN repositories r ON r.id = cr.repository_id"
                f" WHERE r.name = {sql_str(repo)}")
            assert rows() == "1"
            mark = up.mark()
            r = p.client().get(f"/v2/{repo}/referrers/{subject}")
            assert r.status == 200, r.summary()
            assert up.mark() == mark
            # The rows go with their repository.
            ecr_client().delete_repository(repositoryName=repo, force=True)
            assert psql_value(f"SELECT count(*) FROM cache_referrers WHERE subject = {sql_str(subject)}") == "0"


# ---------------------------------------------------------------------------
# 5. the address policy


class Internal(_ThreadedServer):
    """An internal service on 127.0.0.2 (not in the tests' allow-list) holding a secret."""

    class handler_class(_QuietHandler):
        def do_GET(self):
            self.owner.hits += 1
            body = b"INTERNAL-SECRET-" + self.owner.marker
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

    bind = "127.0.0.2"

    def __init__(self):
        super().__init__()
        self.hits = 0
        self.marker = os.urandom(6).hex().encode()


class RedirectingUpstream(FakeRegistry):
    """Answers /v2/ and every blob and manifest with a redirect to .target."""

    target = ""

    class handler_class(_FakeHandler):
        def _route(self):
            self.owner._record(self.command, self.path)
            self.send_response(307)
            self.send_header("Location", self.owner.target + "/v2/x")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = _route
        do_HEAD = _route


def test_rules_cannot_name_internal_addresses():
    ecr = ecr_client()
    port = upstream_port()
    for url, cls in ((f"http://127.0.0.2:{port}", "loopback"), (f"http://[::1]:{port}", "loopback"),
                     ("http://169.254.169.254", "link-local"), ("http://10.20.30.40:5000", "private"),
                     ("https://192.168.1.10", "private"), (f"http://2130706434:{port}", "loopback"),
                     (f"http://0x7f000002:{port}", "loopback"), ("http://[fd00::1]", "unique-local"),
                     ("http://[::ffff:10.0.0.1]", "private")):
        prefix = unique_prefix("ssrf")
        msg = expect_api_error("InvalidParameterException", ecr.create_pull_through_cache_rule,
                               ecrRepositoryPrefix=prefix, upstreamRegistryUrl=url)
        assert cls in msg and "upstream_allow_networks" in msg, f"{url}: {msg}"
        assert psql_value(f"SELECT count(*) FROM cache_rules WHERE prefix = {sql_str(prefix)}") == "0"
    # pierctl enforces the same policy.
    p = pierctl("rule", "create", unique_prefix("ssrf"), "http://169.254.169.254")
    assert p.returncode != 0 and "link-local" in p.stderr, p.stderr


def test_redirects_to_internal_addresses_are_refused():
    with Internal() as internal, RedirectingUpstream() as up, CacheRule(up.url) as rule:
        up.target = internal.url
        c = client_a()
        d = sha(b"whatever")
        r = c.get(f"/v2/{rule.repo('app')}/blobs/{d}")
        assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("does not connect",))
        assert b"INTERNAL-SECRET" not in r.body, r.summary()
        r = get_manifest(c, rule.repo("app"), "1")
        assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("does not connect",))
        assert b"INTERNAL-SECRET" not in r.body, r.summary()
        # Validate is no port scanner either.
        v = ecr_client().validate_pull_through_cache_rule(ecrRepositoryPrefix=rule.prefix)
        assert v["isValid"] is False and "does not connect" in v.get("failure", ""), v
        assert internal.hits == 0, f"the internal service was reached {internal.hits} times"
        assert up.count("GET", ".*", since=0) >= 3


class LeakyUpstream(FakeRegistry):
    """Answers manifests with an error or an invalid manifest whose body holds a marker."""

    marker = "LEAK-" + os.urandom(6).hex()
    mode = "500"

    class handler_class(_FakeHandler):
        def _route(self):
            o = self.owner
            o._record(self.command, self.path)
            if self.path.rstrip("/") == "/v2":
                self.send_json(200, {})
                return
            if o.mode == "500":
                self.send_json(500, {"errors": [{"code": "UNKNOWN", "message": o.marker}]})
            else:
                self.send_json(200, {"schemaVersion": 2, "mediaType": o.marker, "layers": o.marker})

        do_GET = _route
        do_HEAD = _route


def test_upstream_urls_and_bodies_stay_out_of_client_errors():
    with LeakyUpstream() as up, CacheRule(up.url) as rule:
        c = client_a()
        for mode in ("500", "invalid"):
            up.mode = mode
            r = get_manifest(c, rule.repo(f"app{mode}"), "1")
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", (rule.prefix,))
            assert up.marker not in r.text and f":{up.port}" not in r.text, f"{mode}: {r.text}"
            r = c.get(f"/v2/{rule.repo('app' + mode)}/blobs/{sha(mode.encode())}")
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", (rule.prefix,))
            assert up.marker not in r.text and f":{up.port}" not in r.text, r.text


def self_signed(tmp: TempDir) -> tuple[str, str]:
    return self_signed_cert(tmp.path)


class TlsRedirectingUpstream(RedirectingUpstream):
    """The same over TLS (a downgrade when .target is http)."""

    cert = key = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self):
        super().start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        return self


def test_https_upstreams_never_downgrade_to_http():
    with TempDir() as tmp, FakeRegistry() as plain:
        cert, key = self_signed(tmp)
        data = os.urandom(1000)
        d = plain.add_blob("x", data)
        TlsRedirectingUpstream.cert, TlsRedirectingUpstream.key = cert, key
        with TlsRedirectingUpstream() as up, CacheRule(up.url, ca_bundle=cert) as rule:
            up.target = plain.url
            r = client_a().get(f"/v2/{rule.repo('app')}/blobs/{d}")
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("downgrade",))
            assert data not in r.body, r.summary()
            assert plain.mark() == 0, f"Pier followed an https -> http redirect: {plain.summary(0)}"


# ---------------------------------------------------------------------------
# 6. secrets and credentials


def test_attaching_a_secret_needs_permission_to_read_it():
    name = f"ecr-pullthroughcache/{unique_prefix('victim')}"
    arn = secrets_client().create_secret(Name=name, SecretString='{"username":"u","accessToken":"t"}')["ARN"]
    rules_only = iam_policy(iam_statement(["ecr:CreatePullThroughCacheRule", "ecr:ValidatePullThroughCacheRule",
                                           "ecr:UpdatePullThroughCacheRule"], "*"))
    try:
        with FakeRegistry() as attacker, User("att", {"rules": rules_only}) as u:
            ecr = ecr_client(u.creds)
            prefix = unique_prefix("att")
            msg = expect_api_error("AccessDeniedException", ecr.create_pull_through_cache_rule,
                                   ecrRepositoryPrefix=prefix, upstreamRegistryUrl=attacker.url, credentialArn=arn)
            assert "secretsmanager:GetSecretValue" in msg, msg
            assert psql_value(f"SELECT count(*) FROM cache_rules WHERE prefix = {sql_str(prefix)}") == "0"
            # Nor can it be attached to a rule of its own afterwards.
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=attacker.url)
            try:
                expect_api_error("AccessDeniedException", ecr.update_pull_through_cache_rule,
                                 ecrRepositoryPrefix=prefix, credentialArn=arn)
                ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
            finally:
                ecr_client().delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
            assert attacker.mark() >= 1
            assert attacker.auth_seen == [], attacker.auth_seen
    finally:
        secrets_client().delete_secret(SecretId=name)


def test_credentials_never_travel_over_plain_http_unless_allowed():
    with DockerRegistry(auth="htpasswd") as up, ExtraNode("strict", 4, PIER_UPSTREAM_ALLOW_HTTP_CREDENTIALS="false") as node:
        # The API of a node that does not allow it refuses such a rule ...
        prefix = unique_prefix("plain")
        msg = expect_api_error("InvalidParameterException", ecr_client(base_url=node.url).create_pull_through_cache_rule,
                               ecrRepositoryPrefix=prefix, upstreamRegistryUrl=up.url,
                               credentialArn=_secret_for(up))
        assert "plain http" in msg, msg
        # ... pierctl with that setting too ...
        p = subprocess.run([os.path.join(os.environ["PIER_BUILD_DIR"], "pierctl"), "-c",
                            os.path.join(os.environ["PIER_STATE_DIR"], "pier.conf"), "rule", "create", prefix, up.url,
                            "--username", up.username], input=up.password + "\n", capture_output=True, text=True,
                           env=dict(os.environ, PIER_UPSTREAM_ALLOW_HTTP_CREDENTIALS="false"), timeout=60)
        assert p.returncode != 0 and "plain http" in p.stderr, p.stderr
        # ... and a rule made where it is allowed does not send them from this node.
        with CacheRule(up.url, secret=up.password, username=up.username) as rule:
            mark = up.settle()
            r = get_manifest(Client(node.url, auth=admin_creds()), rule.repo("app"), "1")
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("plain http",))
            up.settle()
            assert up.count(None, "/v2/.*", status=200, since=mark) == 0, up.summary(mark)


def _secret_for(up) -> str:
    name = f"ecr-pullthroughcache/{unique_prefix('s')}"
    return secrets_client().create_secret(
        Name=name, SecretString=json.dumps({"username": up.username, "accessToken": up.password}))["ARN"]


def test_rule_credentials_do_not_go_to_a_token_realm_on_another_site():
    with DockerRegistry(auth="token", realm_host="localhost") as up, TempDir() as tmp:
        from pierlib import build_image_layout
        build_image_layout(tmp.sub("l"), "1", layer_sizes=(1024,))
        up.push_layout(tmp.sub("l"), "1", "pier/t0ken")
        with CacheRule(up.url, secret=up.password, username=up.username) as rule:
            before = up.token_service.count(user=up.username)
            r = get_manifest(client_a(), rule.repo("pier/t0ken"), "1")
            # The realm is on another host than the upstream: Pier asks anonymously, and the
            # token service only gives anonymous callers public/ repositories.
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", ("withheld",))
            assert up.token_service.count(user=up.username) == before, "credentials reached the foreign realm"
            assert up.token_service.count(user=None, status=None) >= 1
