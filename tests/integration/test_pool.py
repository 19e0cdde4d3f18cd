"""The pierd master: graceful reload, graceful stop, migrations run by many nodes at once."""

import os
import signal
import socket
import struct
import subprocess
import threading
import time

from pierlib import (
    Client, add_query, child_pids, client_a, env, expect_status, master_pid, psql, psql_value, push_image,
    sha256_digest, start_upload, state_dir, unique_repo, wait_until,
)


def _pierctl(*args, database=None, timeout=60):
    build = env("PIER_BUILD_DIR")
    conf = os.path.join(env("PIER_STATE_DIR"), "pier.conf")
    e = dict(os.environ)
    if database:
        e["PIER_DATABASE"] = database
    return subprocess.run([os.path.join(build, "pierctl"), "-c", conf, *args], env=e,
                          capture_output=True, text=True, timeout=timeout)


def test_sighup_replaces_every_worker_without_failing_requests():
    """Clients keep asking while the pool reloads, and an upload whose body is still
    streaming when SIGHUP arrives (it goes on until a new worker exists) is served to
    the end by its old worker: 202 with the whole range, and the blob it makes holds
    exactly the bytes sent."""
    master = master_pid()
    before = set(child_pids(master))
    assert len(before) >= 2, f"precondition missing: expected workers under master {master}, got {before}"
    c = client_a()
    failures, done = [], threading.Event()
    deadline = time.monotonic() + 60

    def hammer():
        while not done.is_set() and time.monotonic() < deadline:
            try:
                r = c.get("/v2/")
                if r.status != 200:
                    failures.append(r.status)
            except Exception as e:  # noqa: BLE001
                failures.append(repr(e))

    repo = unique_repo("reload")
    _, loc = start_upload(c, repo)
    chunks = [os.urandom(64 * 1024) for _ in range(12)]
    data = b"".join(chunks)
    streaming, hup_sent = threading.Event(), threading.Event()
    seen = {}

    def body():
        for i, chunk in enumerate(chunks):
            if i == 4:
                streaming.set()
                # Hold the rest back until the reload is under way: a new worker runs
                # while this request still sits in an old one.
                hup_sent.wait(20)
                seen["new_worker"] = wait_until(lambda: set(child_pids(master)) - before, 15)
                seen["old_alive"] = bool(set(child_pids(master)) & before)
            yield chunk
            time.sleep(0.05)

    result = {}

    def upload():
        try:
            result["r"] = c.patch(loc, body=body(), headers={"Content-Type": "application/octet-stream"},
                                  timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = repr(e)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(3)]
    uploader = threading.Thread(target=upload, daemon=True)
    for t in threads:
        t.start()
    uploader.start()
    try:
        assert streaming.wait(20), "the upload did not start streaming"
        assert "r" not in result and "error" not in result, f"the upload ended early: {result}"
        os.kill(master, signal.SIGHUP)
    finally:
        hup_sent.set()
    uploader.join(60)
    replaced = wait_until(lambda: len(set(child_pids(master))) == len(before)
                          and not (set(child_pids(master)) & before), 30)
    done.set()
    for t in threads:
        t.join(10)
    assert not uploader.is_alive(), "the upload in flight across the reload never finished"
    assert not any(t.is_alive() for t in threads), "a client thread is still waiting for an answer"
    assert seen.get("new_worker") and seen.get("old_alive"), \
        f"the upload was not in flight while new workers ran beside the old ones: {seen}"
    r = result.get("r")
    assert r is not None, f"the PATCH in flight across the reload got no answer: {result}"
    expect_status(r, 202, "PATCH in flight across the reload")
    assert r.headers.get("Range") == f"0-{len(data) - 1}", r.summary()
    digest = sha256_digest(data)
    expect_status(c.put(add_query(loc, digest=digest)), 201, "finishing the upload after the reload")
    got = c.get(f"/v2/{repo}/blobs/{digest}")
    expect_status(got, 200, "the blob uploaded across the reload")
    assert got.body == data, "the blob uploaded across the reload holds other bytes"
    assert replaced, f"old workers still running after SIGHUP: {set(child_pids(master)) & before}"
    assert master_pid() == master, "the master itself must survive a reload"
    assert not failures, f"requests failed during the reload: {failures[:5]}"


def _fcgi_record(rtype: int, content: bytes, request_id: int = 1) -> bytes:
    pad = (8 - len(content) % 8) % 8
    return struct.pack(">BBHHBx", 1, rtype, request_id, len(content), pad) + content + b"\0" * pad


def _fcgi_params(pairs: dict[str, str]) -> bytes:
    out = b""
    for k, v in pairs.items():
        kb, vb = k.encode(), v.encode()
        for n in (len(kb), len(vb)):
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += kb + vb
    return out


def test_a_reload_never_drops_a_connection_a_worker_just_accepted():
    """Talk FastCGI to the pool's socket as Apache does, but wait a moment between
    connecting and sending the request: a worker has accepted the connection and waits
    for its first bytes when the reload's SIGTERM arrives. libfcgi used to give up on
    such a connection when a signal interrupted that wait (Apache then answered 503)."""
    master = master_pid()
    sock_path = os.path.join(state_dir(), "run", "pier.sock")
    begin = _fcgi_record(1, struct.pack(">HB5x", 1, 0))
    params = _fcgi_params({"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/v2/",
                           "REQUEST_URI": "/v2/", "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1",
                           "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
                           "CONTENT_LENGTH": "0"})
    request = begin + _fcgi_record(4, params) + _fcgi_record(4, b"") + _fcgi_record(5, b"")
    answers = []
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(sock_path)
        time.sleep(0.3)            # a worker has taken the connection and waits for bytes
        before = set(child_pids(master))
        os.kill(master, signal.SIGHUP)
        time.sleep(0.5)            # ... and has been told to stop meanwhile
        got = b""
        try:
            s.sendall(request)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError as e:
            got += repr(e).encode()
        finally:
            s.close()
        answers.append(got)
        assert wait_until(lambda: not (set(child_pids(master)) & before), 20), "a reload did not finish"
    for got in answers:
        assert b"Status: 401" in got or b"Status: 200" in got, \
            f"the pool dropped an accepted connection during a reload: {got[:200]!r}"


def test_sigterm_lets_the_upload_in_flight_finish():
    """A third node (same database and blob root) is stopped while a chunk streams in."""
    src, state = env("PIER_SRC"), os.path.join(env("PIER_TEST_DIR"), "c")
    port = int(env("PIER_URL").rsplit(":", 1)[1]) + 2
    # Every node of a registry shares the server key (access keys are hashed under it).
    node_env = dict(os.environ, PIER_STATE_DIR=state, PIER_PORT=str(port),
                    PIER_DATABASE=env("PIER_DB"), PIER_BLOB_ROOT=env("PIER_BLOB_ROOT"),
                    PIER_SERVER_KEY_FILE=os.path.join(env("PIER_STATE_DIR"), "server.key"))
    p = subprocess.run([os.path.join(src, "quickstart.sh"), "start"], env=node_env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"node c did not start: {p.stdout}\n{p.stderr}"
    try:
        c = Client(f"http://127.0.0.1:{port}")
        repo = unique_repo("sigterm")
        _, loc = start_upload(c, repo)
        with open(os.path.join(state, "run", "pierd.pid")) as f:
            master = int(f.read())
        chunk, nchunks = os.urandom(64 * 1024), 40
        streaming = threading.Event()

        def body():
            for i in range(nchunks):
                if i == 3:
                    streaming.set()
                yield chunk
                time.sleep(0.05)

        result = {}

        def upload():
            result["r"] = c.patch(loc, body=body(), headers={"Content-Type": "application/octet-stream"},
                                  timeout=60)

        t = threading.Thread(target=upload, daemon=True)
        t.start()
        assert streaming.wait(10), "the upload did not start streaming"
        os.kill(master, signal.SIGTERM)
        t.join(30)
        r = result.get("r")
        assert r is not None, "the PATCH in flight got no answer"
        expect_status(r, 202, "PATCH in flight during SIGTERM")
        assert r.headers.get("Range") == f"0-{nchunks * len(chunk) - 1}", r.headers.get("Range")
        assert wait_until(lambda: not os.path.exists(f"/proc/{master}"), 15), "master did not exit"
        assert not os.path.exists(os.path.join(state, "run", "pier.sock")), "socket left behind"
        # The session it wrote is intact and another node can continue it.
        r = client_a().get(loc)
        expect_status(r, 204, "upload status on node a")
        assert r.headers.get("Range") == f"0-{nchunks * len(chunk) - 1}"
    finally:
        subprocess.run([os.path.join(src, "quickstart.sh"), "stop"], env=node_env,
                       capture_output=True, timeout=120)


def test_many_nodes_migrating_one_database_at_once():
    name = "pier_migr_" + os.urandom(4).hex()
    psql(f"CREATE DATABASE {name}")
    try:
        base = env("PIER_DB").replace("dbname=pier", f"dbname={name}")
        assert base != env("PIER_DB"), "precondition missing: PIER_DB has no dbname=pier"
        procs = [subprocess.Popen([os.path.join(env("PIER_BUILD_DIR"), "pierctl"), "migrate"],
                                  env=dict(os.environ, PIER_DATABASE=base,
                                           PIER_CONFIG=os.path.join(env("PIER_STATE_DIR"), "pier.conf")),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(5)]
        outs = [p.communicate(timeout=60) for p in procs]
        codes = [p.returncode for p in procs]
        assert codes == [0] * 5, f"exit codes {codes}: {outs}"
        applied = [o[0] for o in outs if "(0 migrations applied)" not in o[0]]
        assert len(applied) == 1, f"exactly one node should apply the migrations: {outs}"
        versions = subprocess.run(["psql", base, "-XAtc",
                                   "SELECT version, count(*) FROM schema_migrations GROUP BY 1 ORDER BY 1"],
                                  capture_output=True, text=True, timeout=30).stdout.split()
        assert versions and all(v.endswith("|1") for v in versions), versions
        tables = subprocess.run(["psql", base, "-XAtc", "SELECT count(*) FROM pg_tables WHERE tablename IN "
                                 "('repositories','blobs','manifests','tags','uploads')"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
        assert tables == "5", f"schema incomplete: {tables} of 5 tables"
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_pierctl_status_counts_what_was_pushed():
    c = client_a()
    push_image(c, unique_repo("status"), "v1")
    p = _pierctl("status")
    assert p.returncode == 0, p.stderr
    repos = int(psql_value("SELECT count(*) FROM repositories"))
    assert f"repositories     {repos}" in p.stdout, p.stdout
    assert "pool             running" in p.stdout, p.stdout


def test_pierctl_rejects_a_bad_configuration_with_the_line():
    bad = os.path.join(env("PIER_TEST_DIR"), "bad.conf")
    with open(bad, "w") as f:
        f.write("workers = 4\nworkerz = 5\n")
    p = subprocess.run([os.path.join(env("PIER_BUILD_DIR"), "pierctl"), "-c", bad, "status"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "bad.conf:2" in p.stderr and "workerz" in p.stderr, p.stderr


def test_pierctl_cleanup_removes_expired_sessions_and_their_files():
    c = client_a()
    repo = unique_repo("cleanup")
    _, old = start_upload(c, repo)
    _, fresh = start_upload(c, repo)
    old_id, fresh_id = old.rsplit("/", 1)[1], fresh.rsplit("/", 1)[1]
    tmp = os.path.join(env("PIER_BLOB_ROOT"), "tmp", "uploads")
    assert os.path.exists(os.path.join(tmp, old_id)), "precondition missing: upload file not created"
    psql(f"UPDATE uploads SET updated_at = now() - interval '2 days' WHERE id = '{old_id}'")
    p = _pierctl("cleanup")
    assert p.returncode == 0, p.stderr
    assert "removed 1 expired upload session" in p.stdout or "expired upload sessions" in p.stdout, p.stdout
    assert not os.path.exists(os.path.join(tmp, old_id)), "expired upload file still there"
    assert os.path.exists(os.path.join(tmp, fresh_id)), "a live upload lost its file"
    expect_status(c.get(old), 404, "expired session")
    expect_status(c.get(fresh), 204, "live session")
