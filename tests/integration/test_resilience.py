"""A worker killed mid-upload leaves nothing behind and is replaced by the master."""

import hashlib
import os
import signal
import threading
import time

from pierlib import (
    OCI_MANIFEST, blob_files, child_pids, client_a, expect_status, master_pid, push_image, unique_repo,
    start_upload, wait_until,
)

CHUNK = 64 * 1024
MAX_CHUNKS = 400  # ~25 MiB if never interrupted


def test_worker_killed_during_upload_leaves_no_blob_and_is_replaced():
    master = master_pid()
    workers_before = child_pids(master)
    assert workers_before, f"precondition missing: master {master} has no worker processes"
    c = client_a()
    repo = unique_repo("killed")
    push_image(c, repo, "before")  # the repository exists and the node works
    files_before = blob_files()
    _, loc = start_upload(c, repo)

    sent = hashlib.sha256()
    sent_bytes = [0]
    started = threading.Event()
    killed = threading.Event()
    outcome = {}
    full = hashlib.sha256()
    chunks = [os.urandom(CHUNK) for _ in range(8)]
    for i in range(MAX_CHUNKS):
        full.update(chunks[i % len(chunks)])

    killed_at = [0.0]

    def slow_body():
        for i in range(MAX_CHUNKS):
            if killed.is_set() and time.monotonic() - killed_at[0] > 1.0:
                return  # keep streaming ~1s past the kill, then end the body
            chunk = chunks[i % len(chunks)]
            sent.update(chunk)
            sent_bytes[0] += len(chunk)
            yield chunk
            if i == 4:
                started.set()
            time.sleep(0.02)

    def upload():
        try:
            outcome["response"] = c.patch(loc, body=slow_body(),
                                          headers={"Content-Type": "application/octet-stream"}, timeout=30)
        except BaseException as e:  # noqa: BLE001 - a broken connection is an expected outcome
            outcome["error"] = e

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    assert started.wait(10), "the streamed PATCH did not start sending"
    time.sleep(0.3)
    victims = child_pids(master)
    assert victims, "no workers to kill"
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed_at[0] = time.monotonic()
    killed.set()
    t.join(40)
    assert not t.is_alive(), "the interrupted PATCH never returned"

    # The master survives and replaces every worker.
    os.kill(master, 0)

    def replaced():
        now = child_pids(master)
        return now if len(now) == len(workers_before) and not set(now) & set(victims) else None

    now = wait_until(replaced, timeout=10, interval=0.2)
    assert now, (f"workers not replaced within 10s: before {workers_before}, killed {victims}, "
                 f"now {child_pids(master)}")

    # Nothing from the interrupted upload became a blob.
    sent_digest = "sha256:" + sent.hexdigest()
    full_digest = "sha256:" + full.hexdigest()
    for d in (sent_digest, full_digest):
        expect_status(c.head(f"/v2/{repo}/blobs/{d}"), 404, f"blob {d} of the interrupted upload")
    new_files = sorted(blob_files() - files_before)
    assert not new_files, f"new files under blobs/ after the killed upload: {new_files}"

    # The session is either gone or reports a consistent offset, never a server error.
    s = c.get(loc)
    assert s.status in (204, 404), f"upload status after the kill: {s.summary()}"
    if s.status == 204:
        end = int((s.header("Range") or "0-0").split("-")[1])
        assert end < sent_bytes[0], f"upload claims {end + 1} bytes, only {sent_bytes[0]} were sent"

    # A fresh push works.
    img = push_image(c, repo, "after", nlayers=2)
    r = expect_status(c.get(f"/v2/{repo}/manifests/after", headers={"Accept": OCI_MANIFEST}), 200)
    assert r.body == img.manifest.data
    for blob in img.layers:
        assert expect_status(c.get(f"/v2/{repo}/blobs/{blob.digest}"), 200).body == blob.data
