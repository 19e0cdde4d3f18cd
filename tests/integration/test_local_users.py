"""Other local users: what a process running as `nobody` on a registry node can reach.

The quickstart database trusts local connections, so its socket is its owner's
alone; whoever talks FastCGI to pierd can claim any REMOTE_ADDR, so the socket
is Apache's group's alone; blob files are readable by Apache's group only.
(The suite runs as root, which file permissions do not stop: the checks run as
`nobody`.)
"""

import grp
import os
import stat
import shutil
import subprocess

from pierlib import (
    PreconditionError, blob_path, client_a, client_b, env, expect_status, push_blob_monolithic, state_dir,
    unique_repo,
)

_TRY = r"""
import errno, socket, sys
what, path = sys.argv[1], sys.argv[2]
try:
    if what == "connect":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
    elif what == "read":
        open(path, "rb").read(1)
    else:
        import os
        os.stat(path)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
"""


def _as_nobody(what: str, path: str) -> str:
    """'OK', or the errno name ('EACCES', 'ENOENT', ...) of connect/read/stat as nobody."""
    if os.geteuid() != 0:
        raise PreconditionError("precondition missing: these checks act as `nobody` and need root")
    # The system's python3: the one running the tests may live where nobody cannot go.
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if not python:
        raise PreconditionError("precondition missing: no python3 in /usr/local/bin:/usr/bin:/bin")
    p = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", _TRY, what, path],
                       capture_output=True, text=True, timeout=30, cwd="/")
    out = p.stdout.strip()
    assert p.returncode == 0 and out, f"runuser -u nobody failed: {p.stderr.strip()}"
    return out


def _reachable_by_nobody(directory: str) -> None:
    """The check below must fail because of the permissions under test, not
    because nobody cannot reach the directory around it."""
    got = _as_nobody("stat", directory)
    assert got == "OK", f"precondition missing: nobody cannot even reach {directory} ({got})"


def test_nobody_cannot_connect_to_the_quickstart_database():
    pgrun = os.path.join(state_dir(), "pgrun")
    sock = os.path.join(pgrun, ".s.PGSQL.5432")
    assert os.path.exists(sock), f"precondition missing: no PostgreSQL socket at {sock}"
    _reachable_by_nobody(os.path.dirname(pgrun))
    got = _as_nobody("connect", sock)
    assert got == "EACCES", f"nobody connecting to {sock}: {got} (expected EACCES)"
    p = subprocess.run(["runuser", "-u", "nobody", "--", "psql", env("PIER_DB"), "-XAtqc", "SELECT 1"],
                       capture_output=True, text=True, timeout=30, cwd="/")
    assert p.returncode != 0, f"psql as nobody worked: {p.stdout!r}"
    assert "permission denied" in p.stderr.lower(), f"psql as nobody: {p.stderr.strip()}"
    # The socket itself is its owner's alone (unix_socket_permissions = 0700).
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) & 0o077 == 0, f"{sock} has mode {stat.S_IMODE(st.st_mode):o}"


def test_nobody_cannot_talk_fastcgi_to_pierd():
    run = os.path.join(state_dir(), "run")
    sock = os.path.join(run, "pier.sock")
    assert os.path.exists(sock), f"precondition missing: no FastCGI socket at {sock}"
    _reachable_by_nobody(run)
    got = _as_nobody("connect", sock)
    assert got == "EACCES", f"nobody connecting to {sock}: {got} (expected EACCES)"
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660, f"{sock} has mode {stat.S_IMODE(st.st_mode):o}, expected 660"
    assert grp.getgrgid(st.st_gid).gr_name == "www-data", f"{sock} belongs to group {st.st_gid}"
    # Apache (www-data) still reaches it.
    expect_status(client_a().get("/v2/"), 200, "GET /v2/ through Apache")


def test_pierd_refuses_to_start_with_an_unknown_socket_group():
    build, state = env("PIER_BUILD_DIR"), state_dir()
    sock = os.path.join(env("PIER_TEST_DIR"), "no-group.sock")
    e = dict(os.environ, PIER_SOCKET=sock, PIER_SOCKET_GROUP="pier-no-such-group",
             PIER_LOG_FILE="", PIER_PID_FILE="", PIER_MAINTENANCE_INTERVAL="0")
    left = False
    try:
        p = subprocess.run([os.path.join(build, "pierd"), "-c", os.path.join(state, "pier.conf")], env=e,
                           capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("pierd started (and ran for 20 s) with an unknown socket_group") from None
    finally:
        left = os.path.exists(sock)
        if left:
            os.unlink(sock)
    assert p.returncode != 0, f"pierd started with an unknown socket_group: {p.stderr}"
    assert "socket_group" in p.stderr and "pier-no-such-group" in p.stderr, \
        f"pierd's message does not name the key and the group: {p.stderr.strip()}"
    assert not left, "pierd left a socket behind"


def test_blob_files_are_for_apaches_group_only():
    c = client_a()
    repo = unique_repo("modes")
    data = os.urandom(3000)
    digest = push_blob_monolithic(c, repo, data)
    path = blob_path(digest)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640, f"{path} has mode {stat.S_IMODE(st.st_mode):o}, expected 640"
    fanout = os.path.dirname(path)
    for d in (fanout, os.path.dirname(fanout)):
        mode = stat.S_IMODE(os.stat(d).st_mode)
        assert mode & 0o777 == 0o750, f"{d} has mode {mode:o}, expected 750 (setgid allowed)"
    root = env("PIER_BLOB_ROOT")
    if os.geteuid() == 0:
        assert grp.getgrgid(st.st_gid).gr_name == "www-data", \
            f"{path} belongs to group {grp.getgrgid(st.st_gid).gr_name}, expected www-data"
        rst = os.stat(root)
        assert rst.st_mode & stat.S_ISGID and grp.getgrgid(rst.st_gid).gr_name == "www-data", \
            f"the blob root {root} is not setgid www-data"
    _reachable_by_nobody(os.path.dirname(root))
    got = _as_nobody("read", path)
    assert got == "EACCES", f"nobody reading {path}: {got} (expected EACCES)"
    # Apache (www-data) serves it, on both nodes (node B shares the blob root).
    for name, node in (("A", c), ("B", client_b())):
        got = expect_status(node.get(f"/v2/{repo}/blobs/{digest}"), 200, f"blob GET on node {name}")
        assert got.body == data, f"node {name} served other bytes"
