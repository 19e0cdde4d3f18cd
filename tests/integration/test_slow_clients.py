"""Slow and half-open clients must not stop the registry.

A connection that has not sent its whole request head holds one of Apache's
worker threads (event MPM); mod_reqtimeout closes it after the header timeout,
and the MPM is sized so that 300 of them plus normal traffic fit. A request
body that trickles in holds a pierd worker for as long as pierd reads it; a
request pierd refuses must not be read to its end.
"""

import os
import select
import socket
import threading
import time
import uuid

from pierlib import (
    Client, client_a, expect_status, push_blob_monolithic, state_dir, unique_repo, url_a, wait_until,
)

HALF_OPEN = 300
# RequestReadTimeout header=10-20,MinRate=500 in both Apache templates.
HEADER_TIMEOUT_MAX = 20


def _addr():
    host, _, port = url_a().rpartition("//")[2].partition(":")
    return host, int(port)


def _open_half_open(n: int, silent: int = 0) -> list[socket.socket]:
    """n connections to node A that send part of a request line, and `silent` more that
    send nothing at all. (Linux holds a connection that sent nothing back from Apache
    until it sends data or TCP_DEFER_ACCEPT gives up, 30 s later: the partial request
    lines are the ones that occupy Apache's threads at once.)"""
    socks = []
    try:
        for i in range(n + silent):
            s = socket.create_connection(_addr(), timeout=5)
            if i < n:
                s.sendall(b"GET /v2/ HTTP/1." if i % 2 else b"P")
            socks.append(s)
    except BaseException:
        _close_all(socks)
        raise
    return socks


def _close_all(socks) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def _readable(socks, timeout: float) -> list[socket.socket]:
    """The sockets with data, an EOF or an error to read (poll: no FD_SETSIZE limit)."""
    p = select.poll()
    by_fd = {}
    for s in socks:
        p.register(s, select.POLLIN)
        by_fd[s.fileno()] = s
    return [by_fd[fd] for fd, _ in p.poll(timeout * 1000)]


def _timed(call):
    t0 = time.monotonic()
    try:
        r = call()
    except OSError as e:  # a client timeout is the failure this test looks for
        return e, time.monotonic() - t0
    return r, time.monotonic() - t0


def _registry_answers(within: float, what: str) -> None:
    anon = Client(url_a(), auth=None, timeout=within + 3)
    r, took = _timed(lambda: anon.get("/v2/"))
    assert not isinstance(r, Exception), f"{what}: GET /v2/ got no answer after {took:.1f}s: {r!r}"
    expect_status(r, 401, f"{what}: anonymous GET /v2/")
    assert took <= within, f"{what}: GET /v2/ took {took:.2f}s (limit {within}s)"


def _recover() -> None:
    """Leave node A answering for the tests that follow."""
    anon = Client(url_a(), auth=None, timeout=5)

    def answers():
        try:
            return anon.get("/v2/").status == 401
        except OSError:
            return False
    assert wait_until(answers, 60, 0.5), "node A does not answer GET /v2/ after the slow clients left"


def test_300_half_open_connections_do_not_stop_the_registry():
    c = client_a()
    repo = unique_repo("half-open")
    data = os.urandom(2048)
    digest = push_blob_monolithic(c, repo, data)
    socks = _open_half_open(HALF_OPEN, silent=50)
    try:
        # Give Apache a moment to hand all of them to worker threads.
        time.sleep(0.5)
        _registry_answers(2.0, f"{HALF_OPEN} half-open connections")
        r, took = _timed(lambda: Client(url_a(), timeout=6).get(f"/v2/{repo}/blobs/{digest}"))
        assert not isinstance(r, Exception), f"blob GET got no answer after {took:.1f}s: {r!r}"
        expect_status(r, 200, "authenticated blob GET next to half-open connections")
        assert r.body == data, "blob GET returned other bytes"
        assert took <= 3.0, f"blob GET took {took:.2f}s"
        # They are still open: the server had no reason to give up on them yet.
        readable = _readable(socks, 0)
        assert len(readable) < HALF_OPEN // 10, \
            f"{len(readable)} of {len(socks)} half-open connections were closed within a second"
    finally:
        _close_all(socks)
    _recover()


def test_half_open_connections_are_closed_after_the_header_timeout():
    """mod_reqtimeout: a client that never finishes its request head is dropped after
    at most 20 s (not after Apache's Timeout)."""
    opened = time.monotonic()
    socks = _open_half_open(HALF_OPEN)
    try:
        open_ = set(socks)
        deadline = opened + HEADER_TIMEOUT_MAX + 5
        while open_ and time.monotonic() < deadline:
            readable = _readable(open_, 0.5)
            for s in readable:
                try:
                    if s.recv(4096) == b"":
                        open_.discard(s)
                except OSError:  # reset by the server: closed as well
                    open_.discard(s)
            # Data without EOF (a 408 page) is followed by the close: keep waiting.
        took = time.monotonic() - opened
        assert not open_, (f"{len(open_)} of {HALF_OPEN} half-open connections were still open "
                           f"{took:.0f}s after they were opened")
    finally:
        _close_all(socks)
    _recover()


def _pool_workers() -> int:
    with open(os.path.join(state_dir(), "pier.conf")) as f:
        for line in f:
            k, _, v = line.partition("=")
            if k.strip() == "workers":
                return int(v.strip())
    raise AssertionError("node A's pier.conf has no workers line")


def test_trickling_refused_bodies_do_not_hold_every_worker():
    """One unauthenticated PATCH per pierd worker, each announcing 1 MiB and sending
    10 bytes every 0.5 s: pierd refuses them (401) and must not read their bodies to
    the end, so the registry keeps answering."""
    n = _pool_workers()
    host, port = _addr()
    socks = []
    stop = threading.Event()
    errors = []

    def trickle():
        while not stop.wait(0.5):
            for s in socks:
                try:
                    s.sendall(b"0123456789")
                except OSError as e:  # the server answered and closed: fine
                    errors.append(e)
    t = threading.Thread(target=trickle, daemon=True)
    try:
        for _ in range(n):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall((f"PATCH /v2/it-slow/trickle/blobs/uploads/{uuid.uuid4()} HTTP/1.1\r\n"
                       f"Host: {host}:{port}\r\n"
                       "Content-Type: application/octet-stream\r\n"
                       f"Content-Length: {1024 * 1024}\r\n\r\n").encode() + b"0123456789")
            socks.append(s)
        t.start()
        # Let every request reach a worker and a few pieces trickle in.
        time.sleep(1.5)
        _registry_answers(1.0, f"{n} trickling unauthenticated PATCH requests")
        time.sleep(1.0)
        _registry_answers(1.0, f"{n} trickling unauthenticated PATCH requests, 1 s later")
    finally:
        stop.set()
        if t.is_alive():
            t.join(5)
        _close_all(socks)
    _recover()
