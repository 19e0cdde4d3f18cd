"""The Debian package upgrade: an older Pier's package installed, configured and
given an image, then this tree's package installed over it.

The older Pier is commit OLD_COMMIT, the last one on main before migration 016
(sql/016_audit.sql): its schema is older than this tree's. tests/package/
build-deb.sh builds its package from that commit's files (git archive) with
the version OLD_VERSION, once per machine, and this tree's package (reused
when no file changed). The tests run in order and share what they set up, as
those of test_package.py do, whose helpers (the unit run as systemd would, the
system Apache on a test port, the suite's PostgreSQL reached by the pier user,
the cleanup) they use: install the old package, migrate, start it, push with
skopeo; edit /etc/pier/pier.conf as an administrator does; install the new
package over it non-interactively and check what dpkg and the maintainer
scripts kept; start the new pierd on the old schema (refused, naming pierctl
migrate), migrate, pull the old image and push a new one; purge.
Needs root (apt-get, the system Apache, a second user).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import stat
import subprocess

import test_package as pkg
from pierlib import (PreconditionError, TempDir, build_image_layout, env, layout_blob, read_admin_env, read_layout,
                     sha256_digest, skopeo, wait_until)

# The last commit of main before sql/016_audit.sql: migrations 001-015.
OLD_COMMIT = "c61c0f1b8d0a56015751e9477ae1db1a12155969"
OLD_SCHEMA = 15
# Older than this tree's version (0.1.0 and later): "~" sorts before anything.
OLD_VERSION = "0.1.0~git.c61c0f1"
CONF = pkg.CONF
REPO = "upgrade/app"
# What an administrator adds to pier.conf: it must survive the upgrade.
ADMIN_LINE = "# Edited by the administrator before the upgrade: keep this line."
# An administrator's hardening of the blob root (Apache needs only to pass
# through it to XSendFilePath): a postinst that resets modes would undo it.
ADMIN_BLOB_ROOT_MODE = 0o2710

U: dict = {}


def build(*args: str) -> str:
    p = pkg.sh([os.path.join(env("PIER_SRC"), "tests", "package", "build-deb.sh"), *args], timeout=2400)
    deb = p.stdout.strip().splitlines()[-1]
    assert deb.endswith(".deb") and os.path.isfile(deb), f"build-deb.sh {' '.join(args)} made no package: {deb}"
    return deb


def packaged_file(deb: str, path: str) -> bytes:
    """The content of `path` (absolute) in the package `deb`."""
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True, check=True, timeout=120).stdout
    p = subprocess.run(["tar", "-xOf", "-", "." + path], input=tar, capture_output=True, timeout=120)
    assert p.returncode == 0, f"{deb} has no {path}: {p.stderr.decode(errors='replace')}"
    return p.stdout


def installed_version() -> str:
    return pkg.sh(["dpkg-query", "-W", "-f=${Version}", "pier"]).stdout.strip()


def newest_migration() -> int:
    names = os.listdir(os.path.join(env("PIER_SRC"), "sql"))
    return max(int(n.split("_", 1)[0]) for n in names if n.endswith(".sql") and n[:3].isdigit())


def schema_version() -> int:
    return int(pkg.psql(pkg.DATABASE, "SELECT coalesce(max(version), 0) FROM schema_migrations")[0])


def state_snapshot() -> dict:
    """Owner, group and mode of everything under /var/lib/pier and /var/log/pier,
    and the content of every file under /var/lib/pier (blobs, keys)."""
    snap = {}
    for top in ("/var/lib/pier", "/var/log/pier"):
        for d, dirs, files in os.walk(top):
            for name in [""] + dirs + files:
                path = os.path.join(d, name) if name else d
                st = os.lstat(path)
                entry = (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, oct(st.st_mode))
                if stat.S_ISREG(st.st_mode) and top == "/var/lib/pier":
                    with open(path, "rb") as f:
                        entry += (hashlib.sha256(f.read()).hexdigest(),)
                snap[path] = entry
    return snap


def pier_account() -> tuple:
    pw = pwd.getpwnam("pier")
    groups = sorted(g.gr_name for g in grp.getgrall() if "pier" in g.gr_mem)
    return pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell, groups


def start_serving():
    assert "pierd" not in pkg.S, "a pierd of these tests is still running"
    proc = pkg.start_unit()
    pkg.S["pierd"] = proc
    wait_until(lambda: os.path.exists("/run/pier/pier.sock") or proc.poll() is not None, 60)
    assert proc.poll() is None, f"pierd exited ({proc.returncode}): {pkg.log_since(0)[-800:]}"
    wait_until(lambda: pkg.answers(f"http://{pkg.host()}/v2/") == 401, 30)
    return proc


def stop_serving() -> None:
    rc = pkg.stop_unit(pkg.S.pop("pierd"))
    assert rc == 0, f"pierd exited {rc} on SIGTERM"


def stop_if_serving() -> None:
    """After a failure: the node stops, so that the next tests find it stopped."""
    if "pierd" in pkg.S:
        pkg.stop_unit(pkg.S.pop("pierd"))


def creds() -> str:
    return ":".join(read_admin_env("/var/lib/pier/admin.env"))


def push(tmp: TempDir, tag: str):
    src = tmp.sub(f"src-{tag}")
    image = build_image_layout(src, tag, layer_sizes=(1200, 200 * 1024))
    skopeo("copy", f"--dest-creds={creds()}", f"oci:{src}:{tag}", f"docker://{pkg.host()}/{REPO}:{tag}")
    return image


def pull_equals(tmp: TempDir, tag: str, manifest: bytes, digest: str, layers: dict[str, bytes]) -> None:
    ref = f"docker://{pkg.host()}/{REPO}:{tag}"
    back = tmp.sub(f"back-{tag}")
    skopeo("copy", f"--src-creds={creds()}", ref, f"oci:{back}:{tag}")
    raw, desc = read_layout(back, tag)
    assert raw == manifest, f"the pulled manifest of {tag} differs from the pushed one"
    assert sha256_digest(raw) == digest and desc["digest"] == digest, f"{tag}: {desc['digest']} != {digest}"
    served = skopeo("inspect", f"--creds={creds()}", "--format", "{{.Digest}}", ref).stdout.decode().strip()
    assert served == digest, f"the registry names {tag} {served}, pushed as {digest}"
    for d, data in layers.items():
        assert layout_blob(back, d) == data, f"layer {d} of {tag} differs"


# ---------------------------------------------------------------------------
# the tests


def test_package_upgrade_builds_the_old_release_and_this_tree():
    if os.geteuid() != 0:
        raise PreconditionError("precondition missing: the package tests install a package (run as root)")
    U.clear()
    new = build()
    old = build("--commit", OLD_COMMIT, "--version", OLD_VERSION)
    assert os.path.basename(old).startswith(f"pier_{OLD_VERSION}_"), old
    new_version = pkg.sh(["dpkg-deb", "-f", new, "Version"]).stdout.strip()
    assert pkg.sh(["dpkg-deb", "-f", old, "Version"]).stdout.strip() == OLD_VERSION
    assert pkg.sh(["dpkg", "--compare-versions", OLD_VERSION, "lt", new_version], check=False).returncode == 0, \
        f"{OLD_VERSION} is not older than this tree's {new_version}: the upgrade would be a downgrade"
    assert newest_migration() > OLD_SCHEMA, "this tree has no migration the old release lacks"
    U.update(old=old, new=new, new_version=new_version)


test_package_upgrade_builds_the_old_release_and_this_tree.timeout = 2700


def test_old_package_installs_migrates_and_takes_a_push():
    if "old" not in U:
        raise PreconditionError("precondition missing: the packages were not built")
    if pkg.installed_status():  # a run that was killed before its purge
        pkg.apt("purge", "pier")
    pkg.S.clear()
    pkg.S["user_existed"] = pkg.user_exists("pier")
    pkg.S["state_existed"] = os.path.exists("/var/lib/pier")
    pkg.S["installed"] = True
    pkg.apt("install", "--no-install-recommends", U["old"])
    assert pkg.installed_status() == "ii" and installed_version() == OLD_VERSION, \
        f"the old package is not installed: {pkg.installed_status()!r} {installed_version()!r}"
    pkg.psql("postgres", f"DROP DATABASE IF EXISTS {pkg.DATABASE}")
    pkg.psql("postgres", f"CREATE DATABASE {pkg.DATABASE}")
    pkg.S["database"] = True
    pkg.grant_database_access()
    # The administrator's configuration: the database, the registry's name.
    pkg.set_conf("database", pkg.conninfo(pkg.DATABASE))
    pkg.set_conf("registry_host", pkg.host())
    pkg.sh(["pierctl", "-c", CONF, "migrate"])
    assert schema_version() == OLD_SCHEMA, f"the old release migrated to {schema_version()}, not {OLD_SCHEMA}"
    try:
        start_serving()
        pkg.enable_apache()
        with TempDir() as tmp:
            image = push(tmp, "v1")
            v1 = (image.manifest.data, image.digest, {layer.digest: layer.data for layer in image.layers})
            pull_equals(tmp, "v1", *v1)
        # Step one of the upgrade: stop the node.
        stop_serving()
    finally:
        stop_if_serving()
    U["v1"] = v1


def test_package_upgrade_keeps_the_admins_conffile_the_user_and_the_blob_root():
    if "v1" not in U or pkg.installed_status() != "ii":
        raise PreconditionError("precondition missing: the old package did not take a push")
    with open(CONF, "a") as f:
        f.write(ADMIN_LINE + "\n")
    os.chmod(pkg.BLOB_ROOT, ADMIN_BLOB_ROOT_MODE)
    with open(CONF, "rb") as f:
        conf_before = f.read()
    state_before, account_before = state_snapshot(), pier_account()
    # Non-interactively, as docs/operations.md says: an edited conffile is kept.
    pkg.apt("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
            "install", "--no-install-recommends", U["new"])
    assert pkg.installed_status() == "ii" and installed_version() == U["new_version"], \
        f"after the upgrade: {pkg.installed_status()!r} {installed_version()!r}"
    with open(CONF, "rb") as f:
        assert f.read() == conf_before, "the upgrade changed the administrator's pier.conf"
    # dpkg's conffile rule: a conffile the administrator changed is kept; when
    # the package's version of it changed too, that lands next to it as
    # .dpkg-dist; when it did not, there is nothing to offer.
    old_conf, new_conf = packaged_file(U["old"], CONF), packaged_file(U["new"], CONF)
    dist = CONF + ".dpkg-dist"
    if old_conf != new_conf:
        assert os.path.isfile(dist), f"the new packaged pier.conf is not offered as {dist}"
        with open(dist, "rb") as f:
            assert f.read() == new_conf, f"{dist} is not the new packaged pier.conf"
    else:
        assert not os.path.exists(dist), f"{dist} offered though the packaged pier.conf did not change"
    assert not os.path.exists(CONF + ".dpkg-old") and not os.path.exists(CONF + ".dpkg-new")
    # The conffiles the administrator did not touch are simply the new ones.
    for path in (pkg.APACHE_CONF, "/etc/logrotate.d/pier"):
        with open(path, "rb") as f:
            assert f.read() == packaged_file(U["new"], path), f"{path} is not the new package's"
        assert not os.path.exists(path + ".dpkg-dist"), f"{path}.dpkg-dist offered for an unedited conffile"
    # Every installed file is the new package's; only the edited conffile differs.
    verify = pkg.sh(["dpkg", "--verify", "pier"], check=False).stdout.splitlines()
    assert [line.split()[-1] for line in verify] == [CONF], f"dpkg --verify pier: {verify}"
    # The maintainer scripts kept the user, its groups, the blob root, the keys.
    assert pier_account() == account_before, f"the pier user changed: {account_before} -> {pier_account()}"
    after = state_snapshot()
    changed = {p: (state_before.get(p), after.get(p)) for p in set(state_before) | set(after)
               if state_before.get(p) != after.get(p)}
    assert not changed, f"the upgrade changed /var/lib/pier or /var/log/pier: {changed}"
    assert stat.S_IMODE(os.stat(pkg.BLOB_ROOT).st_mode) == ADMIN_BLOB_ROOT_MODE
    U["upgraded"] = True


def test_upgraded_pierd_refuses_the_old_schema_until_migrate_then_serves_old_and_new_images():
    if not U.get("upgraded"):
        raise PreconditionError("precondition missing: the package was not upgraded")
    offset = pkg.log_size()
    proc = pkg.start_unit()
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pkg.stop_unit(proc)
        raise AssertionError("the new pierd started on the old release's schema (auto_migrate = false)")
    pkg.stop_unit(proc)
    log = pkg.log_since(offset)
    assert rc != 0, "the new pierd exited 0 on the old schema"
    want = f'run "pierctl -c {CONF} migrate" first'
    assert want in log and "lacks" in log, f"the new pierd did not say what to run: {log[-800:]}"
    assert schema_version() == OLD_SCHEMA, "the new pierd changed the schema itself"
    # The documented step, then the node starts again.
    out = pkg.sh(["pierctl", "-c", CONF, "migrate"]).stdout
    assert "schema at version" in out, out
    assert schema_version() == newest_migration(), f"schema {schema_version()} after pierctl migrate"
    try:
        start_serving()
        with TempDir() as tmp:
            pull_equals(tmp, "v1", *U["v1"])
            image = push(tmp, "v2")
            v2 = (image.manifest.data, image.digest, {layer.digest: layer.data for layer in image.layers})
            pull_equals(tmp, "v2", *v2)
        stop_serving()
    finally:
        stop_if_serving()
    U["v2"] = v2


def test_upgraded_package_purges_and_keeps_the_blobs_and_the_database():
    try:
        if "v2" not in U or pkg.installed_status() != "ii":
            raise PreconditionError("precondition missing: the upgraded package did not serve")
        pkg.stop_apache_if_started()
        pkg.apt("purge", "pier")
        assert pkg.installed_status() == "", f"after purge: {pkg.installed_status()!r}"
        for path in ("/etc/pier", pkg.APACHE_CONF, "/etc/logrotate.d/pier", "/var/log/pier", pkg.UNIT):
            assert not os.path.exists(path), f"purge left {path}"
        for tag in ("v1", "v2"):
            for digest in U[tag][2]:
                hexd = digest.split(":", 1)[1]
                assert os.path.isfile(os.path.join(pkg.BLOB_ROOT, "blobs", "sha256", hexd[:2], hexd)), \
                    f"purge took {digest} of {tag}"
        assert os.path.isfile("/var/lib/pier/server.key") and pkg.user_exists("pier")
        tags = pkg.psql(pkg.DATABASE, "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id "
                                      f"WHERE r.name = '{REPO}' ORDER BY 1")
        assert tags == ["v1", "v2"], f"the database's tags of {REPO}: {tags}"
    finally:
        pkg.cleanup()
