"""The Debian package: built from this tree, installed on the machine, served by
the system Apache, removed and purged.

The tests run in order and share what they set up: the first builds the
package (tests/package/build-deb.sh, reused when no file changed), the next
install it with apt-get, start pierd as its systemd unit would (systemd is not
PID 1 here: the unit's ExecStart runs under its User, groups, UMask and
Environment, in its RuntimeDirectory), point it at a database of the suite's
PostgreSQL, push and pull with skopeo through the system Apache on a test
port, and finally remove and purge the package. Whatever they started or
changed on the machine (the system Apache, its enabled modules, the pier user
and /var/lib/pier when they did not exist before) is put back at the end.
Needs root (apt-get, the system Apache, a second user).
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.request

from pierlib import (PreconditionError, TempDir, build_image_layout, env, layout_blob, read_admin_env, read_layout,
                     skopeo, wait_until)

# Node A's port + this: the system Apache's test port (Listen 127.0.0.1:<port>).
PORT_OFFSET = 17
DATABASE = "pier_package"
UNIT = "/lib/systemd/system/pierd.service"
CONF = "/etc/pier/pier.conf"
APACHE_CONF = "/etc/apache2/conf-available/pier.conf"
APACHE_PID = "/var/run/apache2/apache2.pid"
MODULES = ["proxy", "proxy_fcgi", "xsendfile", "headers", "rewrite", "setenvif", "reqtimeout", "alias", "mime"]
BLOB_ROOT = "/var/lib/pier/blobs"
LOG = "/var/log/pier/pier.log"

# What the tests learned and set up, for the ones after them and the cleanup.
S: dict = {}


def port() -> int:
    return int(env("PIER_URL").rsplit(":", 1)[1]) + PORT_OFFSET


def host() -> str:
    return f"127.0.0.1:{port()}"


def sh(cmd: list[str], timeout: float = 600, check: bool = True, env_extra=None) -> subprocess.CompletedProcess:
    e = dict(os.environ, DEBIAN_FRONTEND="noninteractive", **(env_extra or {}))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)
    if check and p.returncode != 0:
        out = (p.stdout + p.stderr).strip().replace("\n", " | ")
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {out[-1500:]}")
    return p


def apt(*args: str) -> subprocess.CompletedProcess:
    # Other runs on the machine may hold the dpkg lock for a while.
    return sh(["apt-get", "-y", "-o", "DPkg::Lock::Timeout=300", *args])


def installed_status() -> str:
    p = sh(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "pier"], check=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# ---------------------------------------------------------------------------
# the suite's PostgreSQL, reached by the pier user


def pg_host() -> str:
    for part in shlex.split(env("PIER_DB")):
        if part.startswith("host="):
            return part[len("host="):]
    raise PreconditionError("precondition missing: PIER_DB names no host (socket directory)")


def conninfo(dbname: str) -> str:
    return " ".join(p for p in shlex.split(env("PIER_DB")) if not p.startswith("dbname=")) + f" dbname={dbname}"


def psql(dbname: str, sql: str) -> list[str]:
    p = sh(["psql", conninfo(dbname), "-v", "ON_ERROR_STOP=1", "-XAtc", sql], timeout=60)
    return [line for line in p.stdout.splitlines() if line]


def grant_database_access() -> None:
    """The cluster's socket is for its owner (and root): let the pier user
    traverse to it and connect, with ACL entries taken away at the end."""
    d = pg_host()
    socket = os.path.join(d, ".s.PGSQL.5432")
    S["acl"] = []
    path = d
    while path != "/":
        if sh(["runuser", "-u", "pier", "--", "test", "-x", path], check=False).returncode != 0:
            sh(["setfacl", "-m", "u:pier:x", path])
            S["acl"].append(path)
        path = os.path.dirname(path)
    sh(["setfacl", "-m", "u:pier:rw", socket])
    S["acl"].append(socket)


def revoke_database_access() -> None:
    for path in S.pop("acl", []):
        sh(["setfacl", "-x", "u:pier", path], check=False)


# ---------------------------------------------------------------------------
# the unit, run as systemd would


def unit_service() -> dict[str, list[str]]:
    """The [Service] section of the installed unit: key -> values in order."""
    section, out = None, {}
    with open(UNIT) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def one(svc: dict, key: str) -> str:
    vals = svc.get(key)
    assert vals, f"{UNIT} has no {key}="
    return vals[-1]


def start_unit() -> subprocess.Popen:
    """Start ExecStart under the unit's User, Group, SupplementaryGroups, UMask
    and Environment, after creating its RuntimeDirectory. Returns the process."""
    svc = unit_service()
    user, group = one(svc, "User"), one(svc, "Group")
    pw = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid
    groups = set(os.getgrouplist(user, gid))
    for name in " ".join(svc.get("SupplementaryGroups", [])).split():
        groups.add(grp.getgrnam(name).gr_gid)
    umask = int(one(svc, "UMask"), 8) if "UMask" in svc else 0o022
    rundir_mode = int(one(svc, "RuntimeDirectoryMode"), 8) if "RuntimeDirectoryMode" in svc else 0o755
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": pw.pw_dir,
                   "USER": user, "LOGNAME": user, "SHELL": pw.pw_shell}
    for name in " ".join(svc.get("RuntimeDirectory", [])).split():
        path = os.path.join("/run", name)
        os.makedirs(path, exist_ok=True)
        os.chown(path, pw.pw_uid, gid)
        os.chmod(path, rundir_mode)
        environment["RUNTIME_DIRECTORY"] = path
    for value in svc.get("Environment", []):
        for assignment in shlex.split(value):
            k, v = assignment.split("=", 1)
            environment[k] = v
    argv = shlex.split(one(svc, "ExecStart"))
    assert argv[0].startswith("/"), f"ExecStart is not an absolute path: {argv}"

    def demote():
        os.setgroups(sorted(groups))
        os.setgid(gid)
        os.setuid(pw.pw_uid)
        os.umask(umask)
        os.chdir("/")

    out = open(os.path.join(env("PIER_TEST_DIR"), "pierd-package.out"), "ab")
    try:
        return subprocess.Popen(argv, env=environment, preexec_fn=demote, stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL)
    finally:
        out.close()


def stop_unit(proc: subprocess.Popen) -> int:
    """SIGTERM, as systemd stops it; the RuntimeDirectory goes with the unit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError("pierd did not stop within TimeoutStopSec after SIGTERM")
    for name in " ".join(unit_service().get("RuntimeDirectory", [])).split():
        sh(["rm", "-rf", os.path.join("/run", name)])
    return proc.returncode


def log_size() -> int:
    try:
        return os.path.getsize(LOG)
    except OSError:
        return 0


def log_since(offset: int) -> str:
    try:
        with open(LOG, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def set_conf(key: str, value: str) -> None:
    """Set key = value in /etc/pier/pier.conf, as an administrator edits it."""
    with open(CONF) as f:
        lines = f.read().splitlines()
    out, done = [], False
    for line in lines:
        if line.split("=", 1)[0].strip().lstrip("#").strip() == key and "=" in line and not done:
            out.append(f"{key} = {value}")
            done = True
        else:
            out.append(line)
    if not done:
        out.append(f"{key} = {value}")
    with open(CONF, "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------------------
# the system Apache


def apache_pid() -> int | None:
    try:
        with open(APACHE_PID) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    # The system Apache, not a standalone one started with -f <config>.
    return pid if args and args[0].endswith(b"apache2") and b"-f" not in args else None


def answers(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def enable_apache() -> None:
    S["mods_before"] = {m for m in MODULES if os.path.exists(f"/etc/apache2/mods-enabled/{m}.load")}
    sh(["a2enmod", "-q", *MODULES])
    listen = f"/etc/apache2/conf-available/pier-test-{port()}.conf"
    with open(listen, "w") as f:
        f.write(f"# The package test's port (removed at its end).\nListen 127.0.0.1:{port()}\n")
    S["listen_conf"] = listen
    sh(["a2enconf", "-q", "pier", f"pier-test-{port()}"])
    sh(["apache2ctl", "configtest"])
    S["apache_was_running"] = apache_pid() is not None
    if S["apache_was_running"]:
        sh(["apache2ctl", "graceful"])
    else:
        sh(["apache2ctl", "start"])
    wait_until(lambda: answers(f"http://{host()}/v2/") == 401, 30)


def stop_apache_if_started() -> None:
    if "apache_was_running" not in S:
        return
    if S.pop("apache_was_running"):
        sh(["apache2ctl", "graceful"], check=False)
        return
    pid = apache_pid()
    sh(["apache2ctl", "stop"], check=False)
    if pid:
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 30)


def restore_apache_config() -> None:
    listen = S.pop("listen_conf", None)
    if listen:
        name = os.path.basename(listen)[:-len(".conf")]
        sh(["a2disconf", "-q", name], check=False)
        if os.path.exists(listen):
            os.unlink(listen)
    before = S.pop("mods_before", None)
    if before is not None:
        for m in reversed(MODULES):
            if m not in before:
                sh(["a2dismod", "-q", "-f", m], check=False)


# ---------------------------------------------------------------------------
# the tests


def test_package_builds_from_the_tree_without_lintian_errors():
    if os.geteuid() != 0:
        raise PreconditionError("precondition missing: the package tests install a package (run as root)")
    p = sh([os.path.join(env("PIER_SRC"), "tests", "package", "build-deb.sh")], timeout=1500)
    deb = p.stdout.strip().splitlines()[-1]
    name = os.path.basename(deb)
    assert name.startswith("pier_") and name.endswith(".deb") and os.path.isfile(deb), f"no package: {deb}"
    arch = sh(["dpkg", "--print-architecture"]).stdout.strip()
    assert name.endswith(f"_{arch}.deb"), f"{name} is not for {arch}"
    lint = open(os.path.join(os.path.dirname(deb), "lintian.txt")).read()
    errors = [line for line in lint.splitlines() if line.startswith("E: ")]
    assert not errors, f"lintian errors: {errors}"
    fields = sh(["dpkg-deb", "-f", deb, "Package", "Version", "Depends"]).stdout
    for want in ("apache2", "libapache2-mod-xsendfile", "adduser", "libpq5"):
        assert want in fields, f"the package does not depend on {want}: {fields}"
    S["deb"] = deb


test_package_builds_from_the_tree_without_lintian_errors.timeout = 1500


def test_package_installs_pierd_the_console_the_unit_and_the_pier_user():
    deb = S.get("deb")
    if not deb:
        raise PreconditionError("precondition missing: the package was not built")
    if installed_status():  # a run that was killed before its purge
        apt("purge", "pier")
    S.setdefault("user_existed", user_exists("pier"))
    S.setdefault("state_existed", os.path.exists("/var/lib/pier"))
    S["installed"] = True
    apt("install", "--no-install-recommends", deb)
    assert installed_status() == "ii", f"pier is not installed: {installed_status()!r}"
    for path in ("/usr/sbin/pierd", "/usr/bin/pierctl"):
        assert os.access(path, os.X_OK), f"{path} is not installed"
    for path in ("/usr/share/pier/htdocs/console/index.html", "/usr/share/pier/htdocs/unavailable/registry.json",
                 "/etc/logrotate.d/pier", UNIT, APACHE_CONF, CONF):
        assert os.path.isfile(path), f"{path} is not installed"
    conffiles = sh(["dpkg-query", "-W", "-f=${Conffiles}", "pier"]).stdout
    for path in (CONF, APACHE_CONF, "/etc/logrotate.d/pier"):
        assert path in conffiles, f"{path} is not a conffile: {conffiles}"
    # The Apache configuration has the packaged paths, and names its modules.
    text = open(APACHE_CONF).read()
    assert "@PIER_" not in text, "a placeholder is left in the Apache configuration"
    assert "unix:/run/pier/pier.sock|fcgi://pier" in text and 'XSendFilePath "/var/lib/pier/blobs/blobs"' in text
    assert 'Alias "/console" "/usr/share/pier/htdocs/console"' in text
    for m in ("proxy_fcgi", "xsendfile", "rewrite", "headers"):
        assert f"<IfModule !{m}_module>" in text, f"the Apache configuration does not check for mod_{m}"
    conf = open(CONF).read()
    for line in ("blob_root = /var/lib/pier/blobs", "socket = /run/pier/pier.sock", "auto_migrate = false",
                 "server_key_file = /var/lib/pier/server.key", "log_file = /var/log/pier/pier.log"):
        assert line in conf, f"{CONF} lacks {line!r}"
    sh(["pierd", "-t", "-c", CONF])
    # The unit: what the issue asks of it, and systemd's own check.
    svc = unit_service()
    assert one(svc, "User") == "pier" and one(svc, "Restart") == "on-failure", svc
    assert "-HUP" in one(svc, "ExecReload") and one(svc, "RuntimeDirectory") == "pier", svc
    assert one(svc, "ProtectSystem") == "strict" and one(svc, "NoNewPrivileges") == "yes", svc
    rw = " ".join(svc.get("ReadWritePaths", []))
    assert "/var/lib/pier" in rw and "/var/log/pier" in rw, f"ReadWritePaths={rw}"
    p = sh(["systemd-analyze", "verify", UNIT], check=False)
    assert p.returncode == 0, f"systemd-analyze verify: {(p.stdout + p.stderr).strip()}"
    # logrotate accepts its file (the user and group it names exist).
    state = os.path.join(env("PIER_TEST_DIR"), "logrotate.state")
    p = sh(["logrotate", "-d", "-s", state, "/etc/logrotate.d/pier"], check=False)
    assert p.returncode == 0 and "error" not in (p.stdout + p.stderr).lower(), \
        f"logrotate -d: {(p.stdout + p.stderr).strip()[-800:]}"
    # The user, in Apache's group; the directories and the server key.
    pw = pwd.getpwnam("pier")
    assert pw.pw_uid < 1000, f"pier is not a system user (uid {pw.pw_uid})"
    assert "pier" in grp.getgrnam("www-data").gr_mem, "pier is not in the group www-data"
    st = os.stat(BLOB_ROOT)
    assert st.st_uid == pw.pw_uid and grp.getgrgid(st.st_gid).gr_name == "www-data", "blob root owner"
    assert stat.S_IMODE(st.st_mode) == 0o2750, f"blob root mode {oct(st.st_mode)}"
    st = os.stat("/var/lib/pier/server.key")
    assert st.st_uid == pw.pw_uid and stat.S_IMODE(st.st_mode) == 0o600, "server key owner or mode"
    assert sh(["runuser", "-u", "www-data", "--", "test", "-x", BLOB_ROOT], check=False).returncode == 0, \
        "Apache (www-data) cannot reach the blob root"
    assert sh(["runuser", "-u", "www-data", "--", "cat", "/var/lib/pier/server.key"],
              check=False).returncode != 0, "Apache (www-data) can read the server key"
    assert os.path.isdir("/var/log/pier") and os.stat("/var/log/pier").st_uid == pw.pw_uid


def test_packaged_pierd_refuses_an_old_schema_until_pierctl_migrate():
    if installed_status() != "ii":
        raise PreconditionError("precondition missing: the package is not installed")
    psql("postgres", f"DROP DATABASE IF EXISTS {DATABASE}")
    psql("postgres", f"CREATE DATABASE {DATABASE}")
    S["database"] = True
    grant_database_access()
    set_conf("database", conninfo(DATABASE))
    set_conf("registry_host", host())
    # An empty database is the oldest schema there is.
    offset = log_size()
    proc = start_unit()
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop_unit(proc)
        raise AssertionError("pierd started on a database without its schema (auto_migrate = false)")
    stop_unit(proc)
    log = log_since(offset)
    assert rc != 0, "pierd exited 0 on an old schema"
    assert f'run "pierctl -c {CONF} migrate" first' in log, f"pierd did not say what to run: {log[-800:]}"
    assert psql(DATABASE, "SELECT count(*) FROM schema_migrations") == ["0"], "pierd migrated anyway"
    # The documented upgrade step, by the administrator.
    out = sh(["pierctl", "-c", CONF, "migrate"]).stdout
    assert "schema at version" in out, out
    newest = psql(DATABASE, "SELECT max(version) FROM schema_migrations")[0]
    assert int(newest) > 0
    # A schema newer than this pierd knows: refused whatever auto_migrate says.
    psql(DATABASE, "INSERT INTO schema_migrations(version, name) VALUES (99999, '99999_future.sql')")
    try:
        offset = log_size()
        proc = start_unit()
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_unit(proc)
            raise AssertionError("pierd started on a schema newer than it knows")
        stop_unit(proc)
        log = log_since(offset)
        assert rc != 0 and "upgrade this node" in log, f"pierd on a newer schema: {log[-800:]}"
    finally:
        psql(DATABASE, "DELETE FROM schema_migrations WHERE version = 99999")


def test_packaged_pier_serves_skopeo_through_the_system_apache():
    if not S.get("database"):
        raise PreconditionError("precondition missing: the packaged pierd has no database")
    proc = start_unit()
    S["pierd"] = proc
    try:
        wait_until(lambda: os.path.exists("/run/pier/pier.sock") or proc.poll() is not None, 60)
        assert proc.poll() is None, f"pierd exited ({proc.returncode}): {log_since(0)[-800:]}"
        st = os.stat("/run/pier/pier.sock")
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        assert pwd.getpwuid(st.st_uid).pw_name == "pier" and grp.getgrgid(st.st_gid).gr_name == "www-data"
        creds = ":".join(read_admin_env("/var/lib/pier/admin.env"))
        enable_apache()
        with TempDir() as tmp:
            src = tmp.sub("src")
            image = build_image_layout(src, "v1", layer_sizes=(1500, 300 * 1024))
            ref = f"docker://{host()}/packaged/app:v1"
            skopeo("copy", f"--dest-creds={creds}", f"oci:{src}:v1", ref)
            back = tmp.sub("back")
            skopeo("copy", f"--src-creds={creds}", ref, f"oci:{back}:v1")
            raw, _ = read_layout(back, "v1")
            assert raw == image.manifest.data, "the pulled manifest differs from the pushed one"
            for layer in image.layers:
                assert layout_blob(back, layer.digest) == layer.data, f"layer {layer.digest} differs"
            # Blobs are group www-data, readable by it (X-Sendfile), not by others.
            for layer in image.layers:
                hexd = layer.digest.split(":", 1)[1]
                path = os.path.join(BLOB_ROOT, "blobs", "sha256", hexd[:2], hexd)
                st = os.stat(path)
                assert grp.getgrgid(st.st_gid).gr_name == "www-data", f"{path} group"
                assert stat.S_IMODE(st.st_mode) & 0o047 == 0o040, f"{path} mode {oct(st.st_mode)}"
            S["blobs"] = [layer.digest for layer in image.layers]
            # ExecReload (SIGHUP): every worker replaced, the registry keeps answering.
            reload = one(unit_service(), "ExecReload").replace("$MAINPID", str(proc.pid))
            offset = log_size()
            sh(shlex.split(reload))
            wait_until(lambda: "reloading" in log_since(offset), 20)
            again = tmp.sub("again")
            skopeo("copy", f"--src-creds={creds}", ref, f"oci:{again}:v1")
            assert read_layout(again, "v1")[0] == image.manifest.data
        assert proc.poll() is None, "pierd died"
    finally:
        stop_apache_if_started()
        rc = stop_unit(S.pop("pierd"))
    assert rc == 0, f"pierd exited {rc} on SIGTERM"


def test_package_remove_keeps_conffiles_and_purge_keeps_blobs_and_database():
    try:
        if installed_status() != "ii":
            raise PreconditionError("precondition missing: the package is not installed")
        blobs_before = sorted(os.listdir(os.path.join(BLOB_ROOT, "blobs", "sha256")))
        apt("remove", "pier")
        assert installed_status().startswith("rc"), f"after remove: {installed_status()!r}"
        assert not os.path.exists("/usr/sbin/pierd") and not os.path.exists("/usr/share/pier/htdocs")
        for path in (CONF, APACHE_CONF, "/etc/logrotate.d/pier"):
            assert os.path.isfile(path), f"remove took the conffile {path}"
        assert f"dbname={DATABASE}" in open(CONF).read(), "remove lost the administrator's change to pier.conf"
        assert not os.path.lexists("/etc/apache2/conf-enabled/pier.conf"), \
            "Apache still includes pier.conf after the package was removed"
        apt("purge", "pier")
        assert installed_status() == "", f"after purge: {installed_status()!r}"
        for path in ("/etc/pier", APACHE_CONF, "/etc/logrotate.d/pier", "/var/log/pier", "/run/pier", UNIT):
            assert not os.path.exists(path), f"purge left {path}"
        # Never the blob root's content, nor the database (nor the key that
        # unseals the database's secrets, nor the user owning them).
        assert sorted(os.listdir(os.path.join(BLOB_ROOT, "blobs", "sha256"))) == blobs_before, "blobs changed"
        for digest in S.get("blobs", []):
            hexd = digest.split(":", 1)[1]
            assert os.path.isfile(os.path.join(BLOB_ROOT, "blobs", "sha256", hexd[:2], hexd)), f"purge took {digest}"
        assert S.get("blobs"), "no blobs were pushed before the purge"
        assert os.path.isfile("/var/lib/pier/server.key"), "purge took the server key"
        assert user_exists("pier"), "purge deleted the user owning the blob root"
        assert psql(DATABASE, "SELECT count(*) > 0 FROM repositories WHERE name = 'packaged/app'") == ["t"], \
            "the database lost the repository"
    finally:
        cleanup()


def cleanup() -> None:
    """Leave the machine as the tests found it: every step is tried, and the
    first failure is raised at the end."""
    failures = []

    def step(fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - the next steps must run anyway
            failures.append(e)

    if "pierd" in S:
        step(stop_unit, S.pop("pierd"))
    step(stop_apache_if_started)
    if S.get("installed") and installed_status():
        step(apt, "purge", "pier")
    step(restore_apache_config)
    if S.pop("database", False):
        step(sh, ["psql", conninfo("postgres"), "-XAtqc", f"DROP DATABASE IF EXISTS {DATABASE}"])
    if user_exists("pier"):
        step(revoke_database_access)
    if S.pop("installed", False):
        if not S.get("state_existed"):
            step(sh, ["rm", "-rf", "/var/lib/pier"])
        if not S.get("user_existed"):
            step(sh, ["deluser", "--system", "--quiet", "pier"], 60, False)
            step(sh, ["delgroup", "--system", "--quiet", "pier"], 60, False)
    if failures:
        raise failures[0]
