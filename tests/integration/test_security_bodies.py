"""Slow request bodies do not starve the registry (security review, finding 2).

A refused request is answered without reading its body, and at most
`body_workers` workers of a node (by default all but a quarter: 3 of the test
nodes' 4) receive request bodies at once: slow uploads, slow unauthenticated
API calls, a client trickling a manifest - the rest of the workers stay free
for pulls. The test nodes run PIER_WORKERS=4."""

from __future__ import annotations

import base64
import socket
import time
import urllib.parse

from pierlib import admin_creds, client_a, push_blob_monolithic, start_upload, unique_repo, url_a

WORKERS = 4


def _open(method: str, path: str, headers: dict, length: int) -> socket.socket:
    host, port = urllib.parse.urlsplit(url_a()).hostname, urllib.parse.urlsplit(url_a()).port
    s = socket.create_connection((host, port), timeout=5)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return s


def _answer(s: socket.socket, wait: float) -> bytes:
    s.settimeout(wait)
    try:
        return s.recv(4096)
    except (socket.timeout, OSError):
        return b""


def _trickle(socks, seconds: float):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            try:
                s.sendall(b"x" * 16)
            except OSError:
                pass
        time.sleep(0.2)


def test_slow_bodies_leave_workers_free_for_everything_else():
    admin = client_a()
    key, secret = admin_creds()
    auth = {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode(),
            "Content-Type": "application/octet-stream"}
    repo = unique_repo("slow")
    digest = push_blob_monolithic(admin, repo, b"pullable" * 100)
    socks, answers = [], []
    try:
        # One slow authenticated upload per worker: a legitimate client on a bad link.
        for _ in range(WORKERS):
            _, loc = start_upload(admin, repo)
            socks.append(_open("PATCH", loc, auth, 1 << 20))
        _trickle(socks, 1.0)
        answers = [_answer(s, 0.5) for s in socks]
        busy = [a for a in answers if a.startswith(b"HTTP/1.1 429")]
        assert len(busy) >= 1, f"every worker took a slow body: {[a[:60] for a in answers]}"
        assert b"Retry-After" in busy[0] and b"TOOMANYREQUESTS" in busy[0], busy[0][:400]
        # Pulls, logins and the API still answer at once.
        t0 = time.monotonic()
        r = admin.get("/v2/")
        assert r.status == 200 and time.monotonic() - t0 < 1.5, f"GET /v2/ took {time.monotonic() - t0:.1f}s"
        r = admin.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status == 200 and time.monotonic() - t0 < 3, r.summary()
        # An unauthenticated slow body (the API reads it before it can check the signature)
        # is no way around the limit either.
        extra = _open("POST", "/", {"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRegistry",
                                    "Content-Type": "application/x-amz-json-1.1"}, 100000)
        socks.append(extra)
        _trickle([extra], 1.0)
        got = _answer(extra, 1.0)
        # Throttled before a byte of its body was read; Apache passes the answer on once it
        # stops waiting for the body (or, the connection being closed, answers 503 itself).
        assert got.startswith(b"HTTP/1.1 503") or (got.startswith(b"HTTP/1.1 400") and b"ThrottlingException" in got), \
            got[:300]
        t0 = time.monotonic()
        assert admin.get("/v2/").status == 200 and time.monotonic() - t0 < 1.5
    finally:
        for s in socks:
            s.close()
    # Once the slow clients are gone, uploads work again.
    time.sleep(1.0)
    assert push_blob_monolithic(admin, repo, b"after" * 10).startswith("sha256:")


def test_a_refused_body_is_not_read():
    """A refused request with a large body is answered and the connection closed, without
    a worker reading the body: 4 refused trickling uploads leave GET /v2/ immediate."""
    socks = []
    try:
        for _ in range(WORKERS):
            socks.append(_open("PATCH", f"/v2/{unique_repo('refused')}/blobs/uploads/"
                                        "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
                               {"Content-Type": "application/octet-stream"}, 1 << 20))
        _trickle(socks, 1.0)
        t0 = time.monotonic()
        r = client_a().get("/v2/")
        took = time.monotonic() - t0
        assert r.status == 200 and took < 1.0, f"GET /v2/ waited {took:.1f}s behind refused bodies"
    finally:
        for s in socks:
            s.close()
