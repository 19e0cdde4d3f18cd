"""Reliability: database restarts, outages and freezes, failing and stalling
downloads and a full blob root heal by themselves, and clients are told what
happened in the format of the endpoint they used.

The database tests restart, stop and freeze node A's PostgreSQL, which nodes A
and B share; every test leaves it running again."""

import glob
import json
import os
import signal
import subprocess
import threading
import time
import uuid

from pierlib import (
    Client, ExtraNode, PreconditionError, TempDir, admin_creds, assert_oci_error, basic_auth, blob_row_count,
    env, files_for_digest, psql, psql_value, push_blob_monolithic, sha256_digest, signed_api_request,
    sql_str, state_dir, unique_repo, url_a, url_b, wait_until,
)
from upstreams import CacheRule, FakeRegistry, LyingUpstream, SlowUpstream, fetch_tmp_files, read_blob

LEASE_TTL = 5  # PIER_LEASE_TTL exported by test.sh


# ---------------------------------------------------------------------------
# node A's PostgreSQL


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise PreconditionError(f"precondition missing: no PostgreSQL {name}")
    return found[-1]


def _pgdata() -> str:
    path = os.path.join(state_dir(), "pg")
    if not os.path.exists(os.path.join(path, "PG_VERSION")):
        raise PreconditionError(f"precondition missing: node A's database is not at {path}")
    return path


def _pg_ctl(*args: str, timeout: float = 60) -> None:
    cmd = [_pg_bin("pg_ctl"), "-D", _pgdata(), *args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"pg_ctl {' '.join(args)} failed: {p.stdout} {p.stderr}")


def _pg_start() -> None:
    """Start it as quickstart.sh does (socket in the state directory, no TCP)."""
    log = os.path.join(state_dir(), "log", "postgresql.log")
    sock = os.path.join(state_dir(), "pgrun")
    _pg_ctl("-l", log, "-w", "-t", "60", "-o",
            f"-c listen_addresses='' -k {sock} -c unix_socket_permissions=0700 -p 5432", "start")


def _pg_running() -> bool:
    cmd = [_pg_bin("pg_ctl"), "-D", _pgdata(), "status"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def _pg_processes() -> list[int]:
    with open(os.path.join(_pgdata(), "postmaster.pid")) as f:
        master = int(f.readline().strip())
    p = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, timeout=10)
    return [master, *(int(x) for x in p.stdout.split())]


class _DatabaseDown:
    """Within the block node A's PostgreSQL is stopped ("stop"), or frozen with
    SIGSTOP ("freeze"); afterwards it runs again whatever happened."""

    def __init__(self, how: str):
        self.how = how
        self.frozen: list[int] = []

    def __enter__(self):
        if self.how == "stop":
            _pg_ctl("-m", "fast", "-w", "-t", "60", "stop")
        else:
            self.frozen = _pg_processes()
            for pid in self.frozen:
                os.kill(pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if not _pg_running():
            _pg_start()
        wait_until(lambda: psql_value("SELECT 1") == "1", 30, 0.5)


def _key_client(base: str) -> Client:
    key_id, secret = admin_creds()
    return Client(base, auth=None), {"Authorization": basic_auth(key_id, secret)}


def _burst(base: str, n: int, path: str = "/v2/") -> list[tuple[int, str]]:
    """n concurrent GETs with an access key (Basic), so that every worker of the node serves one."""
    out: list[tuple[int, str]] = [(0, "")] * n
    barrier = threading.Barrier(n)

    def one(i: int):
        client, hdrs = _key_client(base)
        try:
            barrier.wait(20)
            r = client.get(path, headers=hdrs, timeout=60)
            out[i] = (r.status, r.body[:300].decode(errors="replace"))
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out[i] = (-1, repr(e))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return out


def test_after_a_database_restart_no_worker_fails_a_request():
    # Every worker of both nodes holds a connection ...
    for base in (url_a(), url_b()):
        assert all(s == 200 for s, _ in _burst(base, 8)), "precondition: the nodes answer"
    # ... the server restarts (every connection is closed by it) ...
    _pg_ctl("-m", "fast", "-w", "-t", "60", "restart", "-l", os.path.join(state_dir(), "log", "postgresql.log"))
    assert wait_until(lambda: psql_value("SELECT 1") == "1", 30, 0.5)
    # ... and no request fails: no 503, no false 401 for a valid access key.
    failures = []
    for base in (url_a(), url_b()):
        for rnd in range(3):
            for status, body in _burst(base, 8):
                if status != 200:
                    failures.append(f"{base} round {rnd}: {status} {body}")
        tok = Client(base, auth=None).get("/token?service=pier&scope=repository:x/y:pull",
                                          headers=_key_client(base)[1])
        if tok.status != 200:
            failures.append(f"{base} /token: {tok.summary()}")
        api = signed_api_request("DescribeRepositories", {"maxResults": 1}, base_url=base)
        if api.status != 200:
            failures.append(f"{base} DescribeRepositories: {api.summary()}")
    assert not failures, "requests failed after a database restart:\n" + "\n".join(failures[:20])


def test_database_down_is_503_with_retry_after_in_each_endpoints_format_never_401():
    with _DatabaseDown("stop"):
        client, hdrs = _key_client(url_a())
        r = client.get("/v2/", headers=hdrs)
        assert_oci_error(r, 503, "UNAVAILABLE")
        assert r.header("Retry-After"), r.summary()
        r = client.get(f"/v2/{unique_repo('down')}/manifests/latest", headers=hdrs)
        assert_oci_error(r, 503, "UNAVAILABLE")
        r = client.get("/token?service=pier&scope=repository:x/y:pull", headers=hdrs)
        assert_oci_error(r, 503, "UNAVAILABLE")
        # The control plane answers as AWS SDKs expect, with a message the aws CLI prints.
        r = signed_api_request("DescribeRepositories", {})
        assert r.status == 503 and r.header("Retry-After"), r.summary()
        doc = r.json()
        assert doc.get("__type") == "ServerException" and "database" in doc.get("message", ""), r.summary()
        assert r.header("Content-Type", "").startswith("application/x-amz-json-1.1"), r.summary()
        r = Client(url_b(), auth=None).get("/console/api/overview")
        assert r.status == 503, r.summary()
        assert r.json()["error"]["type"] == "ServerException", r.summary()
    # Back at once, on every worker.
    for base in (url_a(), url_b()):
        got = _burst(base, 8)
        assert all(s == 200 for s, _ in got), f"after the database came back: {got}"


def test_frozen_database_answers_503_within_seconds_and_heals():
    client, hdrs = _key_client(url_a())
    assert client.get("/v2/", headers=hdrs).status == 200
    with _DatabaseDown("freeze"):
        for attempt in range(2):
            t0 = time.monotonic()
            r = client.get(f"/v2/{unique_repo('frozen')}/tags/list", headers=hdrs, timeout=60)
            took = time.monotonic() - t0
            assert_oci_error(r, 503, "UNAVAILABLE")
            assert r.header("Retry-After"), r.summary()
            assert took < 10, f"attempt {attempt}: a frozen database held the request {took:.1f}s"
    got = _burst(url_a(), 8)
    assert all(s == 200 for s, _ in got), f"after the database thawed: {got}"


def test_a_download_in_progress_survives_a_database_restart():
    data = os.urandom(6 * 1024 * 1024)
    with SlowUpstream(chunk=64 * 1024, delay=0.05) as up:
        digest = up.add_blob("library/through", data)
        up.slow.add(digest)
        with CacheRule(up.url) as rule:
            path = f"/v2/{rule.repo('library/through')}/blobs/{digest}"
            received = [0]
            out: dict = {}
            t = threading.Thread(target=lambda: out.setdefault("r", read_blob(
                url_a(), path, timeout=90, progress=lambda n: received.__setitem__(0, n))), daemon=True)
            t.start()
            assert wait_until(lambda: received[0] >= 1024 * 1024, 30), "the download did not start"
            _pg_ctl("-m", "fast", "-w", "-t", "60", "restart", "-l",
                    os.path.join(state_dir(), "log", "postgresql.log"))
            t.join(90)
            r = out.get("r")
            assert r is not None and r.complete and r.digest == digest, \
                f"the client's transfer broke: {r.summary() if r else 'no answer'}"
            assert blob_row_count(digest) == 1 and files_for_digest(digest), "the verified blob was not recorded"
            again = read_blob(url_b(), path)
            assert again.complete and again.header("X-Pier-Cache") == "hit", again.summary()
            assert up.count("GET", up.blob_pattern("library/through", digest)) == 1, up.summary()


def test_a_bad_blob_is_downloaded_once_for_all_its_clients():
    data = os.urandom(3 * 1024 * 1024)
    with LyingUpstream() as up:
        digest = up.add_blob("library/lies", data)
        up.corrupt.add(digest)
        with CacheRule(up.url) as rule:
            path = f"/v2/{rule.repo('library/lies')}/blobs/{digest}"
            results: list = [None] * 5
            barrier = threading.Barrier(5)

            def client(i: int):
                barrier.wait(20)
                results[i] = read_blob(url_a() if i % 2 else url_b(), path, timeout=60)

            threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
            later = [read_blob(url_a(), path, timeout=60), read_blob(url_b(), path, timeout=60)]
            for r in results + later:
                assert r is not None and not r.complete and r.digest != digest, r and r.summary()
            # The ones that came after the failure were told why, in OCI format.
            for r in later:
                assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", [digest])
            gets = up.count("GET", up.blob_pattern("library/lies", digest))
            assert gets == 1, f"the bad blob was downloaded {gets} times for 7 clients: {up.summary()}"
            assert not files_for_digest(digest) and blob_row_count(digest) == 0


class _StallingUpstream(FakeRegistry):
    """Sends the first half of each blob in .stall, stops for `pause` seconds (connection open), then
    the rest."""

    def __init__(self, pause: float):
        super().__init__()
        self.pause = pause
        self.stall: set[str] = set()
        self.half_sent = threading.Event()

    def send_blob(self, h, digest, data):
        if digest not in self.stall or h.command != "GET":
            super().send_blob(h, digest, data)
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            h.wfile.write(data[:len(data) // 2])
            h.wfile.flush()
            self.half_sent.set()
            self.stopping.wait(self.pause)
            h.wfile.write(data[len(data) // 2:])
            h.wfile.flush()
        except OSError:
            pass
        h.close_connection = True


def test_a_live_holder_on_a_silent_upstream_keeps_its_lease():
    data = os.urandom(4 * 1024 * 1024)
    with _StallingUpstream(pause=LEASE_TTL + 4) as up:
        digest = up.add_blob("library/silent", data)
        up.stall.add(digest)
        with CacheRule(up.url) as rule:
            path = f"/v2/{rule.repo('library/silent')}/blobs/{digest}"
            out: dict = {}
            first = threading.Thread(target=lambda: out.setdefault("a", read_blob(url_a(), path, timeout=60)),
                                     daemon=True)
            first.start()
            assert up.half_sent.wait(20), "the download did not start"
            # Longer than the lease lives without renewal: the holder is alive, only its
            # upstream is silent, so a second request must follow it, not download again.
            time.sleep(LEASE_TTL + 1)
            second = read_blob(url_b(), path, timeout=60)
            first.join(60)
            assert second.complete and second.digest == digest, second.summary()
            assert out["a"].complete and out["a"].digest == digest, out["a"].summary()
            gets = up.count("GET", up.blob_pattern("library/silent", digest))
            assert gets == 1, f"a second download started while the holder lived: {up.summary()}"


def test_a_swept_download_file_is_replaced_by_the_blob_published_meanwhile():
    """A holder whose temporary file vanished (swept while it stalled) finishes from the blob
    another request published meanwhile instead of breaking its client."""
    data = os.urandom(2 * 1024 * 1024)
    digest = sha256_digest(data)
    with _StallingUpstream(pause=4) as up:
        up.add_blob("library/swept", data)
        up.stall.add(digest)
        with CacheRule(up.url) as rule:
            path = f"/v2/{rule.repo('library/swept')}/blobs/{digest}"
            before = fetch_tmp_files()
            out: dict = {}
            t = threading.Thread(target=lambda: out.setdefault("r", read_blob(url_a(), path, timeout=60)),
                                 daemon=True)
            t.start()
            assert up.half_sent.wait(20), "the download did not start"
            assert wait_until(lambda: fetch_tmp_files() - before, 10), "no temporary file appeared"
            for name in fetch_tmp_files() - before:
                os.unlink(os.path.join(env("PIER_BLOB_ROOT"), "tmp", "fetch", name))
            # The same bytes arrive another way meanwhile (a push to another repository).
            push_blob_monolithic(Client(url_b()), unique_repo("swept"), data)
            t.join(60)
            r = out["r"]
            assert r.complete and r.digest == digest, f"the client's transfer broke: {r.summary()}"
            assert blob_row_count(digest) == 1 and files_for_digest(digest)
            again = read_blob(url_b(), path)
            assert again.complete and again.header("X-Pier-Cache") == "hit", again.summary()


def _cleanup() -> subprocess.CompletedProcess:
    """pierctl cleanup: the housekeeping every master runs, over the whole blob root."""
    p = subprocess.run([os.path.join(env("PIER_BUILD_DIR"), "pierctl"), "-c",
                        os.path.join(state_dir(), "pier.conf"), "cleanup"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p


def test_a_killed_monolithic_upload_leaves_no_file_for_a_day():
    """A temporary file under tmp/uploads without an upload session is a dead monolithic
    upload's: maintenance removes it after minutes (it kept it for upload_ttl, a day)."""
    updir = os.path.join(env("PIER_BLOB_ROOT"), "tmp", "uploads")
    orphan = os.path.join(updir, str(uuid.uuid4()))
    session_file = None
    with open(orphan, "wb") as f:
        f.write(b"x" * 4096)
    old = time.time() - 11 * 60
    os.utime(orphan, (old, old))
    # A chunked upload session's file of the same age is kept while its session lives.
    r = Client(url_a()).post(f"/v2/{unique_repo('sess')}/blobs/uploads/")
    assert r.status == 202, r.summary()
    upload_id = r.header("Docker-Upload-UUID")
    session_file = os.path.join(updir, upload_id)
    if not os.path.exists(session_file):
        with open(session_file, "wb"):
            pass
    os.utime(session_file, (old, old))
    try:
        p = _cleanup()
        assert not os.path.exists(orphan), f"cleanup kept a dead upload's file: {p.stdout}"
        assert os.path.exists(session_file), "cleanup removed the file of a live upload session"
    finally:
        for path in (orphan,):
            if os.path.exists(path):
                os.unlink(path)


# ---------------------------------------------------------------------------
# a full blob root


class _Tmpfs:
    def __init__(self, size_mib: int):
        self.path = os.path.join(env("PIER_TEST_DIR"), f"tmpfs-{uuid.uuid4().hex[:8]}")
        self.size = size_mib

    """A small file system of its own (tmpfs, as root). Where mounting is not allowed (a
    container without CAP_SYS_ADMIN) it is a plain directory, and a full disk is played by
    min_free_space: the node must keep all but `leave` bytes of the real disk free."""

    def __enter__(self):
        os.makedirs(self.path)
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={self.size}m", "tmpfs", self.path]
        if os.environ.get("PIER_TEST_NO_MOUNT"):  # to try the other way here
            cmd = ["false"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        self.mounted = p.returncode == 0
        if not self.mounted:
            print(f"# cannot mount a tmpfs ({p.stderr.strip()}): a full disk is played by min_free_space")
        return self

    def __exit__(self, *exc):
        if self.mounted:
            subprocess.run(["umount", "-l", self.path], capture_output=True, timeout=30)

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def min_free_space(self, leave: int) -> str:
        """The node's min_free_space: 1 MiB on the tmpfs, else all the disk has but `leave`."""
        return "1MiB" if self.mounted else str(max(0, self.free() - leave))

    def fill(self, leave: int) -> None:
        if self.mounted:
            with open(os.path.join(self.path, "filler"), "wb") as f:
                f.write(b"\0" * max(0, self.free() - leave))


def test_a_full_blob_root_is_507_before_the_body_and_not_an_upstream_error():
    data = os.urandom(20 * 1024 * 1024)
    with _Tmpfs(64) as fs, FakeRegistry() as up:
        digest = up.add_blob("library/big", data)
        with ExtraNode("full", 7, PIER_BLOB_ROOT=fs.path,
                       PIER_MIN_FREE_SPACE=fs.min_free_space(8 * 1024 * 1024)) as node, \
                CacheRule(up.url) as rule:
            fs.fill(leave=8 * 1024 * 1024)
            path = f"/v2/{rule.repo('library/big')}/blobs/{digest}"
            r = Client(node.url).get(path)
            assert_oci_error(r, 507, "UNAVAILABLE", ["free"])
            assert not r.header("Retry-After"), f"a full disk does not clear by itself: {r.summary()}"
            assert not glob.glob(os.path.join(fs.path, "blobs", "sha256", "*", digest.split(":")[1])), \
                "a blob was published on a full store"
            assert not os.listdir(os.path.join(fs.path, "tmp", "fetch")), "a temporary file was left"
            # A push into the full store is refused the same way.
            r = Client(node.url).post(f"/v2/{unique_repo('full')}/blobs/uploads/?digest={digest}", body=data,
                                      headers={"Content-Type": "application/octet-stream"})
            assert r.status == 507, r.summary()
            # Counted and shown as a local storage failure, not as the upstream's.
            rid = psql_value(f"SELECT id FROM cache_rules WHERE prefix = {sql_str(rule.prefix)}")

            def counted():
                row = psql(f"SELECT storage_errors, upstream_errors FROM cache_stats WHERE rule_id = {rid}")
                return row and int(row[0][0]) >= 1 and row
            row = wait_until(counted, 15, 0.5)
            assert row and int(row[0][1]) == 0, f"cache_stats for the rule: {row}"
            last = psql(f"SELECT coalesce(last_storage_error, ''), coalesce(last_error, '') FROM cache_rules"
                        f" WHERE id = {rid}")[0]
            assert "free" in last[0] and last[1] == "", f"rule errors: {last}"
            if not fs.mounted:
                return  # space cannot come back without a file system of our own
            # Space comes back: the same pull works (once the failure is no longer shared).
            os.unlink(os.path.join(fs.path, "filler"))
            time.sleep(3.5)
            got = read_blob(node.url, path, timeout=60)
            assert got.complete and got.digest == digest, got.summary()
            assert up.count("GET", up.blob_pattern("library/big", digest)) == 2, up.summary()


def test_a_blob_file_without_a_row_is_removed_after_an_hour():
    """A publisher that died between the file and its row left a file nobody can reach;
    maintenance removes it once it is old. Files with a row, and young files, stay."""
    root = env("PIER_BLOB_ROOT")
    orphan_data = os.urandom(4096)
    orphan_digest = sha256_digest(orphan_data)
    hexd = orphan_digest.split(":")[1]
    orphan = os.path.join(root, "blobs", "sha256", hexd[:2], hexd)
    young_data = os.urandom(4096)
    young_hex = sha256_digest(young_data).split(":")[1]
    young = os.path.join(root, "blobs", "sha256", young_hex[:2], young_hex)
    kept_data = os.urandom(4096)
    kept_digest = push_blob_monolithic(Client(url_a()), unique_repo("kept"), kept_data)
    kept_hex = kept_digest.split(":")[1]
    kept = [os.path.join(root, "blobs", "sha256", kept_hex[:2], kept_hex)]
    assert os.path.exists(kept[0]), "precondition: the pushed blob has a file"
    for path, data in ((orphan, orphan_data), (young, young_data)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    old = time.time() - 2 * 3600
    os.utime(orphan, (old, old))
    for path in kept:
        os.utime(path, (old, old))
    try:
        p = _cleanup()
        assert not os.path.exists(orphan), f"a blob file without a row was kept: {p.stdout}"
        assert "1 blob file without a row" in p.stdout or " blob files without a row" in p.stdout, p.stdout
        assert os.path.exists(young), "a young blob file without a row was removed (it may be being published)"
        assert all(os.path.exists(path) for path in kept), "a blob file with a row was removed"
        r = read_blob(url_a(), f"/v2/{unique_repo('kept')}/blobs/{kept_digest}")
        assert r.status in (401, 404), r.summary()
    finally:
        for path in (orphan, young):
            if os.path.exists(path):
                os.unlink(path)
