"""Processes that die: a node heals, or is healed by one quickstart.sh command, and what
clients see in between is an error in the format they speak.

Every test kills processes of its own extra node (node A's database, blob root and server
key; quickstart.sh start/stop), never of the shared nodes A and B.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

from pierlib import (
    AMZ_JSON, OCI_MANIFEST, Client, ExtraNode, admin_creds, assert_oci_error, aws_cli, aws_cli_error,
    child_pids, env, expect_status, psql, push_image, signed_api_request, start_upload, unique_repo,
    wait_until,
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _answers(client: Client, status: int = 200):
    """A probe for wait_until: the response to GET /v2/ if it has this status."""
    def probe():
        try:
            r = client.get("/v2/", timeout=5)
        except OSError:
            return None
        return r if r.status == status else None
    return probe


def _retry_after(r) -> int:
    value = r.header("Retry-After")
    assert value is not None and value.isdigit() and int(value) > 0, \
        f"503 without a usable Retry-After: {r.summary()}"
    return int(value)


def test_a_killed_pierd_master_is_restarted_and_serves_again():
    with ExtraNode("master-killed", 5) as node:
        c = Client(node.url, auth=admin_creds())
        expect_status(c.get("/v2/"), 200, "before the kill")
        master = node.pid("pierd")
        assert master, f"precondition missing: no pierd master for {node.state}"
        workers = child_pids(master)
        assert workers, f"precondition missing: master {master} has no workers"

        os.kill(master, signal.SIGKILL)
        killed = time.monotonic()

        def restarted():
            # (the old master's workers may answer for a moment after it died)
            new = node.pid("pierd")
            return new if new not in (None, master) and _answers(c)() else None

        new = wait_until(restarted, 10, 0.1)
        assert new, (f"no new master answers GET /v2/ within 10 s of killing master {master}; "
                     f"now {c.get('/v2/').summary()}\npier.log:\n{node.log()[-1500:]}")
        took = time.monotonic() - killed
        assert wait_until(lambda: not [w for w in workers if _alive(w)], 10), \
            f"workers of the killed master still run: {[w for w in workers if _alive(w)]}"
        assert len(child_pids(new)) >= 4, f"the new master has workers {child_pids(new)}"
        assert "was killed by signal 9" in node.log(), node.log()[-1500:]

        # The restarted pool does real work: a push and a pull.
        repo = unique_repo("after-master-kill")
        img = push_image(c, repo, "v1")
        r = expect_status(c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
        assert r.body == img.manifest.data
        assert took < 10, took


def test_without_its_pool_a_node_answers_503_in_each_endpoints_own_format():
    """pierd's own 503 passes through Apache untouched; when pierd is not there at all,
    Apache answers for it: OCI on /v2 and /token, ECR on the API, the console's shape on
    /console/api/, each with Retry-After."""
    dbname = "pier_down_" + uuid.uuid4().hex[:8]
    psql(f"CREATE DATABASE {dbname}")
    db = env("PIER_DB").replace("dbname=pier", f"dbname={dbname}")
    assert db != env("PIER_DB"), "precondition missing: PIER_DB has no dbname=pier"
    try:
        with ExtraNode("pool-down", 6, PIER_DATABASE=db) as node:
            anon = Client(node.url, auth=None)
            with open(os.path.join(node.state, "admin.env")) as f:
                keys = dict(line.strip().split("=", 1) for line in f if "=" in line)
            admin = Client(node.url, auth=(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"]))
            expect_status(anon.get("/v2/"), 401, "before")

            # pierd itself answers 503 when its database is gone; that body is its own.
            psql(f"DROP DATABASE {dbname} WITH (FORCE)")
            r = admin.get("/v2/")
            e = assert_oci_error(r, 503, "UNAVAILABLE", keywords=["database"])
            assert r.header("Docker-Distribution-API-Version"), f"not pierd's answer: {r.summary()}"
            _retry_after(r)

            # Now the pool goes away: a clean stop of the master ends its supervisor too.
            master, sup = node.pid("pierd"), node.pid("pierd-supervisor")
            assert master, "precondition missing: no pierd master"
            os.kill(master, signal.SIGTERM)
            sock = os.path.join(node.state, "run", "pier.sock")
            assert wait_until(lambda: not _alive(master) and not (sup and _alive(sup))
                              and not os.path.exists(sock), 30), "pierd did not stop"

            for method, path in (("GET", "/v2/"), ("GET", "/v2/team/app/manifests/latest"),
                                 ("POST", "/v2/team/app/blobs/uploads/"), ("GET", "/token?service=pier"),
                                 ("GET", "/v2/../x")):
                r = anon.request(method, path)
                e = assert_oci_error(r, 503, "UNAVAILABLE", keywords=["not running"])
                assert r.header("Content-Type", "").startswith("application/json"), r.summary()
                assert "detail" in e, e
                assert r.header("Docker-Distribution-API-Version") is None, \
                    f"this 503 should come from Apache, not pierd: {r.summary()}"
                _retry_after(r)
            r = anon.head("/v2/team/app/manifests/latest")
            expect_status(r, 503, "HEAD without the pool")
            _retry_after(r)

            # The ECR API: what a client library and the aws CLI make of it.
            r = signed_api_request("DescribeRepositories", {}, base_url=node.url)
            expect_status(r, 503, "ECR API without the pool")
            assert r.header("Content-Type") == AMZ_JSON, r.summary()
            doc = r.json()
            assert doc.get("__type") == "ServerException" and "not running" in doc.get("message", ""), doc
            _retry_after(r)
            p = aws_cli("ecr", "describe-repositories", base_url=node.url, check=False, timeout=60)
            code, message = aws_cli_error(p)
            assert code == "ServerException" and "not running" in message, p.stderr[-800:]

            # The console's JSON endpoints in the console's error shape; its page is static.
            r = anon.get("/console/api/session")
            expect_status(r, 503, "console API without the pool")
            err = r.json().get("error", {})
            assert err.get("type") == "ServerException" and err.get("message"), r.summary()
            _retry_after(r)
            expect_status(anon.get("/console/"), 200, "the console page without the pool")

            # The error documents are not a page of their own.
            expect_status(anon.get("/_pier/unavailable/registry.json"), 403, "error document fetched directly")
    finally:
        psql(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


def test_a_killed_apache_parent_is_replaced_on_the_same_port():
    with ExtraNode("apache-killed", 7) as node:
        c = Client(node.url, auth=admin_creds())
        expect_status(c.get("/v2/"), 200, "before the kill")
        parent = node.pid("httpd")
        assert parent, f"precondition missing: no Apache parent for {node.state}"
        children = child_pids(parent)
        assert children, f"precondition missing: Apache {parent} has no children"

        os.kill(parent, signal.SIGKILL)

        def replaced():
            new = node.pid("httpd")
            return new if new and new != parent and _answers(c)() else None

        new = wait_until(replaced, 15, 0.2)
        assert new, (f"no new Apache parent serves {node.url} within 15 s of killing {parent}; "
                     f"processes: {node.processes()}")
        # The children of the dead parent held the port; they are gone, not serving beside the new ones.
        assert not [p for p in children if _alive(p)], f"old children still run: {children}"
        assert set(child_pids(new)) & set(node.processes()), "the new parent has no children"


def test_start_and_stop_clear_away_what_killed_parents_left_behind():
    """Every supervisor and parent SIGKILLed at once: Apache's children keep the port, a
    worker busy with an upload outlives its master. start brings the node back on its port,
    stop leaves nothing of it."""
    node = ExtraNode("orphans", 8)
    node.__enter__()
    done = threading.Event()
    try:
        c = Client(node.url, auth=admin_creds())
        _, loc = start_upload(c, unique_repo("orphan-upload"))
        streaming = threading.Event()

        def body():
            deadline = time.monotonic() + 60
            while not done.is_set() and time.monotonic() < deadline:
                streaming.set()
                yield os.urandom(4096)
                time.sleep(0.05)

        def upload():
            try:
                c.patch(loc, body=body(), headers={"Content-Type": "application/octet-stream"}, timeout=90)
            except Exception:  # noqa: BLE001 - the connection is cut when the node is cleared
                pass

        t = threading.Thread(target=upload, daemon=True)
        t.start()
        assert streaming.wait(10), "the upload did not start"
        time.sleep(0.3)

        pids = {name: node.pid(name) for name in ("apache-supervisor", "pierd-supervisor", "httpd", "pierd")}
        assert pids["httpd"] and pids["pierd"], f"precondition missing: {pids}"
        for pid in pids.values():
            if pid:
                os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        left = node.processes()
        assert any("apache2" in cmd for cmd in left.values()), f"no Apache child outlived its parent: {left}"
        assert any("pierd" in cmd for cmd in left.values()), f"no worker outlived its master: {left}"

        p = node.quickstart("status", timeout=60)
        assert "leftover" in p.stdout, f"status does not report what is left:\n{p.stdout}{p.stderr}"

        p = node.quickstart("start")
        assert p.returncode == 0, f"start after the kills failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
        expect_status(c.get("/v2/"), 200, "after start")
        assert not set(left) & set(node.processes()), \
            f"leftovers still run after start: {set(left) & set(node.processes())}"

        p = node.quickstart("stop", timeout=120)
        assert p.returncode == 0, f"stop failed:\n{p.stdout}\n{p.stderr}"
        remaining = node.processes()
        assert not remaining, f"processes of {node.state} alive after stop: {remaining}"
    finally:
        done.set()
        node.__exit__(None, None, None)
