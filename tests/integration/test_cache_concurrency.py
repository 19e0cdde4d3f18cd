"""Pull-through cache under concurrency: many cold clients on two nodes share
one upstream download per blob; a worker killed mid-download leaves a lease
that expires, the next request takes over, and pierctl cleanup removes the
orphaned temporary file."""

import json
import os
import signal
import threading
import time
import uuid

from pierlib import (
    TempDir, blob_row_count, build_image_layout, child_pids, files_for_digest, master_pid, psql, sha256_digest,
    sql_str, url_a, url_b, wait_until,
)
from upstreams import (
    CacheRule, DockerRegistry, SlowUpstream, cache_state, fetch_dir, fetch_tmp_files, get_manifest, image_blobs,
    lease_rows, pierctl, read_blob,
)

CLIENTS = 20
LEASE_TTL = 5  # PIER_LEASE_TTL exported by test.sh


def test_twenty_cold_clients_on_two_nodes_cause_one_upstream_get_per_blob():
    with DockerRegistry() as up, TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "1.0", layer_sizes=(2048, 256 * 1024, 6 * 1024 * 1024))
        up.push_layout(src, "1.0", "library/hot")
        with CacheRule(up.url) as rule:
            repo = rule.repo("library/hot")
            mark = up.settle()
            tmp_before = fetch_tmp_files()
            barrier = threading.Barrier(CLIENTS)
            results: list[dict] = [{} for _ in range(CLIENTS)]

            def client(i: int):
                from pierlib import Client
                base = url_a() if i % 2 == 0 else url_b()
                out = results[i]
                out["node"] = base
                try:
                    barrier.wait(30)
                    r = get_manifest(Client(base, timeout=60), repo, "1.0")
                    out["manifest"] = (r.status, r.header("Docker-Content-Digest"),
                                       sha256_digest(r.body),
                                       cache_state(r))
                    out["blobs"] = []
                    if r.status != 200:
                        return
                    doc = json.loads(r.body)
                    for desc in [doc["config"], *doc["layers"]]:
                        b = read_blob(base, f"/v2/{repo}/blobs/{desc['digest']}", timeout=60)
                        out["blobs"].append((desc["digest"], b.status, b.complete, b.digest,
                                             b.header("X-Pier-Cache"), len(b.body), repr(b.error)))
                except BaseException as e:  # noqa: BLE001 - reported below
                    out["error"] = repr(e)

            threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
            assert not any(t.is_alive() for t in threads), "clients still running after 90s"
            problems = []
            want = [b.digest for b in image_blobs(image)]
            for i, out in enumerate(results):
                if "error" in out:
                    problems.append(f"client {i}: {out['error']}")
                    continue
                status, header, body_digest, state = out["manifest"]
                if (status, header, body_digest) != (200, image.digest, image.digest) or state not in ("miss", "hit"):
                    problems.append(f"client {i} manifest: {out['manifest']}")
                if [b[0] for b in out["blobs"]] != want:
                    problems.append(f"client {i} got blobs {[b[0] for b in out['blobs']]}")
                for digest, st, complete, got, bstate, n, err in out["blobs"]:
                    if st != 200 or not complete or got != digest or bstate not in ("miss", "hit"):
                        problems.append(f"client {i} ({out['node']}) blob {digest}: status {st}, complete "
                                        f"{complete}, digest {got}, X-Pier-Cache {bstate}, {n} bytes, {err}")
            assert not problems, f"{len(problems)} problems: " + "; ".join(problems[:8])

            up.settle(quiet=0.5)
            gets = up.blob_gets("library/hot", since=mark)
            assert gets == {d: 1 for d in want}, f"upstream blob GETs {gets}, expected one each of {want}"
            assert up.count("GET", up.blob_pattern("library/hot"), status=None, since=mark) == len(want), \
                up.summary(mark)
            for d in want:
                assert files_for_digest(d) and blob_row_count(d) == 1, f"blob {d} not published once"
            assert lease_rows(want) == 0, "fetch leases left behind"
            assert fetch_tmp_files() - tmp_before == set(), "temporary files left in tmp/fetch"
            misses = sum(1 for out in results if out["manifest"][3] == "miss")
            manifest_gets = up.count("GET", up.manifest_pattern("library/hot"), since=mark)
            assert manifest_gets == 1, (
                f"{manifest_gets} manifest GETs upstream for one tag pulled by {CLIENTS} clients "
                f"({misses} answers said X-Pier-Cache: miss): {up.summary(mark)}")


def _cleanup():
    """pierctl cleanup, again if another node's housekeeping held the lock at that moment."""
    for _ in range(5):
        p = pierctl("cleanup")
        assert p.returncode == 0, f"pierctl cleanup failed ({p.returncode}): {p.stderr}"
        if "another node" not in p.stdout:
            return p
        time.sleep(0.5)
    raise AssertionError(f"pierctl cleanup never got to run: {p.stdout!r}")


def _kill_workers(master: int) -> list[int]:
    victims = child_pids(master)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return victims


def test_worker_killed_mid_download_lease_expires_next_get_completes_cleanup_removes_tmp():
    master = master_pid()
    workers_before = child_pids(master)
    assert workers_before, f"precondition missing: master {master} has no workers"
    data = os.urandom(8 * 1024 * 1024)
    guard_path = None
    guard_key = "b:sha256:" + uuid.uuid4().hex * 2
    with SlowUpstream(chunk=64 * 1024, delay=0.05) as up:
        digest = up.add_blob("library/big", data)
        up.slow.add(digest)
        with CacheRule(up.url) as rule:
            path = f"/v2/{rule.repo('library/big')}/blobs/{digest}"
            tmp_before = fetch_tmp_files()
            received = [0]
            first: dict = {}

            def reader():
                first["r"] = read_blob(url_a(), path, timeout=40,
                                       progress=lambda n: received.__setitem__(0, n))
                first["ended"] = time.monotonic()

            t = threading.Thread(target=reader, daemon=True)
            t.start()
            flowing = wait_until(lambda: up.sent.get(digest, 0) >= 1024 * 1024 and received[0] > 0, 20)
            assert flowing, (f"the download did not start: upstream sent {up.sent.get(digest, 0)} bytes, "
                             f"client received {received[0]}")
            victims = _kill_workers(master)
            killed_at = time.monotonic()

            def replaced():
                now = child_pids(master)
                return now if len(now) >= len(workers_before) and not set(now) & set(victims) else None
            assert wait_until(replaced, 10, 0.2), f"workers not replaced: {child_pids(master)}"

            # At once a new GET: it finds the dead worker's lease, which expires after
            # PIER_LEASE_TTL without renewal, takes the download over and completes.
            r2 = read_blob(url_a(), path, timeout=60)
            after_kill = time.monotonic() - killed_at
            assert r2.complete and r2.digest == digest, f"GET after the kill: {r2.summary()}"
            assert after_kill < LEASE_TTL + 8, \
                f"the download completed only {after_kill:.1f}s after the kill (lease TTL {LEASE_TTL}s)"
            t.join(40)
            assert not t.is_alive(), "the GET in flight never ended after its worker was killed"
            r1 = first["r"]
            first_ended = first["ended"] - killed_at
            assert not r1.complete, f"the interrupted GET claims success: {r1.summary()}"
            assert r1.digest != digest
            assert files_for_digest(digest) and blob_row_count(digest) == 1
            assert up.count("GET", up.blob_pattern("library/big", digest)) == 2, up.summary()
            assert lease_rows([digest]) == 0, "the lease was not released after the takeover"
            r3 = read_blob(url_b(), path)
            assert r3.complete and r3.digest == digest and r3.header("X-Pier-Cache") == "hit", r3.summary()

            # The killed worker's temporary file is left behind ...
            leftovers = sorted(fetch_tmp_files() - tmp_before)
            assert len(leftovers) == 1, f"expected the killed download's file in tmp/fetch, found {leftovers}"
            leftover = os.path.join(fetch_dir(), leftovers[0])
            # ... cleanup keeps it while it is young ...
            p = _cleanup()
            assert os.path.exists(leftover), f"pierctl cleanup removed a fresh tmp/fetch file: {p.stdout}"
            # ... and keeps an old file that a running lease still writes to ...
            guard_path = os.path.join(fetch_dir(), str(uuid.uuid4()))
            with open(guard_path, "wb") as f:
                f.write(b"x" * 1000)
            old = time.time() - 11 * 60
            os.utime(guard_path, (old, old))
            psql("INSERT INTO fetch_leases(key, holder, tmp_path, state, expires_at) VALUES "
                 f"({sql_str(guard_key)}, 'pier-test', {sql_str(guard_path)}, 'running',"
                 " now() + interval '10 minutes')")
            try:
                # ... but removes the orphan once it is older than 10 minutes.
                os.utime(leftover, (old, old))
                p = _cleanup()
                assert not os.path.exists(leftover), \
                    f"pierctl cleanup left an orphaned tmp/fetch file older than 10 minutes: {p.stdout.strip()!r}"
                assert os.path.exists(guard_path), "pierctl cleanup removed the file of a running lease"
            finally:
                psql(f"DELETE FROM fetch_leases WHERE key = {sql_str(guard_key)}")
                if guard_path and os.path.exists(guard_path):
                    os.unlink(guard_path)
    # The client of the killed worker learns it at once, not after a keep-alive timeout.
    assert first_ended < 5, (f"the client of the killed worker saw its connection end only {first_ended:.1f}s "
                             f"after the kill ({len(r1.body)} of {r1.content_length} bytes, {r1.error!r})")
