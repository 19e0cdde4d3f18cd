"""Pier as the registry mirror of real container runtimes.

containerd (Debian's 1.6) runs as a daemon started here with its own root,
state and socket, and `ctr images pull --hosts-dir` pulls images named as
their nodes name them (docker.io/library/<image>, quay.io/<org>/<image>).
The "Docker Hub" and "Quay" upstreams are local docker-registry instances:
each hosts.toml names the local registry as `server` and Pier as its mirror
host, exactly as a node operator writes it, so that where every byte came
from is read in the access logs: Pier's (containerd's requests carry the
user agent containerd/<version>) and the upstream's (Pier's own requests
carry no ns parameter; containerd's always do).

Every pull after the first runs in a new containerd namespace with the
"isolated" content sharing policy: containerd fetches everything again, as
a freshly started node would.

dockerd (Debian's docker.io 20.10) runs the same way (vfs storage, no
iptables, no bridge, its own roots and socket) with Pier in daemon.json's
registry-mirrors. Nodes pull anonymously under the mirror policy of
docs/mirror.md, or with credentials: containerd then posts the OAuth2
password form to the token realm, which the token endpoint takes.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import uuid

from authlib import IMPORT_ACTIONS, PULL_ACTIONS, allow, bearer, policy, policy_settle, remember
from pierlib import (
    Client, ExtraNode, PreconditionError, SavedRegistryPolicy, TempDir, admin_creds, basic_auth, blob_row_count,
    build_image_layout, client_a, expect_status, files_for_digest, psql, push_image, registry_host,
    repository_row_count, sql_str, state_dir, unique_repo, url_a, wait_until,
)
from upstreams import CacheRule, DockerRegistry, pierctl

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"

# Plugins this daemon does without: the CRI plugin (no kubelet here), the
# snapshotters that need kernel features a container may lack (overlayfs,
# btrfs, zfs, devmapper, aufs: pulls unpack with the native snapshotter), the
# task runtimes (nothing is run), and "opt", which would write to /opt.
DISABLED_PLUGINS = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.overlayfs",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.restart",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.runtime.v1.linux",
    "io.containerd.runtime.v2.task",
    "io.containerd.monitor.v1.cgroups",
    "io.containerd.service.v1.tasks-service",
    "io.containerd.grpc.v1.tasks",
]


class _Daemon:
    """A daemon of the test's own in a temp directory (self.dir, its log at self.log_path):
    started by start(), stopped and its directory removed by close() or on exit. A subclass
    names itself (NAME), says how it is started (argv()) and when it answers (up())."""

    NAME = "daemon"
    STOP_SECONDS = 10.0
    POLL_SECONDS = 0.1
    proc: subprocess.Popen | None = None

    def __init__(self, exes: tuple[str, ...], package: str, prefix: str, log_name: str):
        for exe in exes:
            if not os.path.exists(exe):
                raise PreconditionError(f"precondition missing: {exe} is not installed (Debian package {package})")
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.log_path = os.path.join(self.dir, log_name)

    def argv(self) -> list[str]:
        raise NotImplementedError

    def up(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 20):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        atexit.register(self.close)

        def ready():
            if self.proc.poll() is not None:
                return "exited"
            return "up" if self.up() else None
        state = wait_until(ready, timeout, self.POLL_SECONDS)
        if state != "up":
            tail = self.log_tail()
            self.close()
            raise AssertionError(f"{self.NAME} did not start ({state}): {tail}")
        return self

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(self.STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None
        if os.path.isdir(self.dir):
            # Snapshotters and vfs leave read-only directories: make them writable first.
            subprocess.run(["chmod", "-R", "u+rwX", self.dir], capture_output=True)
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return "(no log)"


class Containerd(_Daemon):
    """A containerd daemon of its own: root, state, socket and configuration in a temp
    directory (short: the socket path must fit a sockaddr_un); it never touches a system
    containerd. Stopped and removed on exit (and at interpreter exit, if a test was cut)."""

    NAME = "containerd"

    def __init__(self):
        super().__init__((CONTAINERD, CTR), "containerd", "pier-ctrd-", "containerd.log")
        self.sock = os.path.join(self.dir, "ctrd.sock")
        self.config = os.path.join(self.dir, "config.toml")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "version = 2",
                f'root = "{self.dir}/root"',
                f'state = "{self.dir}/state"',
                "disabled_plugins = [" + ", ".join(f'"{p}"' for p in DISABLED_PLUGINS) + "]",
                "[grpc]",
                f'  address = "{self.sock}"',
                "[ttrpc]",
                f'  address = "{self.sock}.ttrpc"',
                "[debug]",
                '  address = ""',
                '  level = "info"',
                "[metrics]",
                '  address = ""',
                '[plugins."io.containerd.metadata.v1.bolt"]',
                '  content_sharing_policy = "isolated"',
                "",
            ]))

    def argv(self) -> list[str]:
        return [CONTAINERD, "--config", self.config]

    def up(self) -> bool:
        return subprocess.run([CTR, "--address", self.sock, "version"], capture_output=True,
                              timeout=10).returncode == 0

    def ctr(self, namespace: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([CTR, "--address", self.sock, "--namespace", namespace, *args],
                              capture_output=True, text=True, timeout=timeout)

    def pull(self, ref: str, hosts_dir: str, namespace: str | None = None, user: str | None = None,
             check: bool = True) -> tuple[str, subprocess.CompletedProcess]:
        """`ctr images pull --hosts-dir` into a new namespace (a fresh node's view of the
        content store); returns (namespace, the completed ctr process)."""
        namespace = namespace or "pull-" + uuid.uuid4().hex[:8]
        args = ["images", "pull", "--hosts-dir", hosts_dir, "--snapshotter", "native"]
        if user:
            args += ["--user", user]
        p = self.ctr(namespace, *args, ref, timeout=90)
        if check and p.returncode != 0:
            raise AssertionError(f"ctr images pull {ref} failed ({p.returncode}): {p.stderr[-2500:]}")
        return namespace, p

    def image_digest(self, namespace: str, ref: str) -> str:
        """The manifest digest containerd recorded for ref."""
        p = self.ctr(namespace, "images", "ls")
        assert p.returncode == 0, p.stderr
        for line in p.stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == ref:
                return fields[2]
        raise AssertionError(f"containerd namespace {namespace} has no image {ref}: {p.stdout}")

    def content(self, namespace: str) -> set[str]:
        """Digests in the namespace's content store."""
        p = self.ctr(namespace, "content", "ls", "-q")
        assert p.returncode == 0, p.stderr
        return set(p.stdout.split())


DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"


class Dockerd(_Daemon):
    """A dockerd of its own (Debian's docker.io 20.10): vfs storage, no iptables, no bridge,
    its data root, exec root (where it starts its own containerd), pid file, socket and trust
    key in a temp directory; `registry-mirrors` from daemon.json. The docker CLI runs with a
    DOCKER_CONFIG of its own. Stopped and removed on exit."""

    NAME = "dockerd"
    STOP_SECONDS = 20.0
    POLL_SECONDS = 0.2

    def __init__(self, mirrors: list[str], insecure: list[str]):
        super().__init__((DOCKERD, DOCKER), "docker.io", "pier-dockerd-", "dockerd.log")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.config = os.path.join(self.dir, "daemon.json")
        with open(self.config, "w") as f:
            # deprecated-key-path: the trust key, else written to /etc/docker/key.json.
            json.dump({"registry-mirrors": mirrors, "insecure-registries": insecure,
                       "deprecated-key-path": os.path.join(self.dir, "key.json")}, f)

    def argv(self) -> list[str]:
        d = self.dir
        return [DOCKERD, "--config-file", self.config, "--data-root", f"{d}/data", "--exec-root", f"{d}/exec",
                "--pidfile", f"{d}/dockerd.pid", "--host", f"unix://{self.sock}", "--storage-driver", "vfs",
                "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none"]

    def up(self) -> bool:
        return self.docker("version", check=False).returncode == 0

    def start(self, timeout: float = 60):
        return super().start(timeout)

    def docker(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
        env = dict(os.environ, DOCKER_CONFIG=os.path.join(self.dir, "cli"))
        p = subprocess.run([DOCKER, "--host", f"unix://{self.sock}", *args], capture_output=True, text=True,
                           timeout=timeout, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}"
                                 f"\ndockerd: {self.log_tail(1500)}")
        return p

    def repo_digests(self, ref: str) -> list[str]:
        out = self.docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref).stdout
        return json.loads(out) or []


def write_hosts(hosts_dir: str, registry: str, server: str, mirrors: list[tuple[str, bool]],
                authorization: str | None = None) -> str:
    """<hosts_dir>/<registry>/hosts.toml: `server` and mirror hosts (url, override_path) tried in
    order, each for pull and resolve, as docs/mirror.md tells node operators to write it;
    authorization: an Authorization header the mirror hosts get on every request."""
    d = os.path.join(hosts_dir, registry)
    os.makedirs(d, exist_ok=True)
    lines = [f'server = "{server}"', ""]
    for url, override in mirrors:
        lines += [f'[host."{url}"]', '  capabilities = ["pull", "resolve"]']
        if override:
            lines.append("  override_path = true")
        if authorization:
            lines += [f'  [host."{url}".header]', f'    Authorization = ["{authorization}"]']
        lines.append("")
    path = os.path.join(d, "hosts.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


# ---------------------------------------------------------------------------
# access logs: (method, path with query, status, user agent)

UPSTREAM_LINE = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"')
PIER_LINE = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3}) \S+ \S+ "([^"]*)"')


class AccessLog:
    """Lines of an access log written after mark()."""

    def __init__(self, path: str, rx: re.Pattern):
        self.path, self.rx = path, rx
        self.offset = 0

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def mark(self) -> "AccessLog":
        self.offset = self._size()
        return self

    def entries(self) -> list[tuple[str, str, int, str]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return []
        return [(m.group(1), m.group(2), int(m.group(3)), m.group(4)) for m in self.rx.finditer(text)]

    def settle(self, quiet: float = 0.4, timeout: float = 5) -> list[tuple[str, str, int, str]]:
        """The entries once no new line came for `quiet` seconds (logs are written after the answer)."""
        deadline = time.monotonic() + timeout
        last, since = self._size(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self._size()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return self.entries()


def pier_access_log() -> AccessLog:
    return AccessLog(os.path.join(state_dir(), "log", "apache-access.log"), PIER_LINE)


def upstream_log(up: DockerRegistry) -> AccessLog:
    return AccessLog(up.log_path, UPSTREAM_LINE)


def is_containerd(ua: str) -> bool:
    return ua.startswith("containerd/")


def summary(entries, limit: int = 40) -> str:
    return "; ".join(f"{m} {p} {s} [{ua}]" for m, p, s, ua in entries[:limit]) or "(nothing)"


def by_path(entries, repo: str, kind: str) -> list[tuple[str, str, int, str]]:
    """Entries for /v2/<repo>/<kind>/... (kind: manifests or blobs)."""
    prefix = f"/v2/{repo}/{kind}/"
    return [e for e in entries if e[1].startswith(prefix)]


def served(entries, repo: str, digest: str, method: str = "GET") -> bool:
    """Did some entry answer 200 to METHOD /v2/<repo>/blobs/<digest> (any query)?"""
    return any(m == method and p.split("?", 1)[0] == f"/v2/{repo}/blobs/{digest}" and s == 200
               for m, p, s, _ in entries)


# ---------------------------------------------------------------------------
# fixtures


def hub_with_image(repo: str, tag: str, tmp: TempDir, label: str = "hub"):
    """A started anonymous docker-registry holding a new image (3 layers) as repo:tag."""
    layout = tmp.sub(f"layout-{label}")
    image = build_image_layout(layout, tag)
    up = DockerRegistry().start()
    try:
        up.push_layout(layout, tag, repo)
    except BaseException:
        up.close()
        raise
    return up, image


class AnonymousPulls(SavedRegistryPolicy):
    """The registry policy a node operator puts for nodes that pull anonymously: anyone may
    pull (and, on a first pull, import) under the given rule prefixes, and nothing else.
    The previous registry policy comes back on exit."""

    def __init__(self, *prefixes: str):
        self.doc = policy(allow(PULL_ACTIONS + IMPORT_ACTIONS, [f"{p}/*" for p in prefixes],
                                sid="NodesPullThroughTheMirror", principal="*"))

    def __enter__(self):
        super().__enter__()
        p = pierctl("policy", "registry", "put", "-", input=self.doc)
        assert p.returncode == 0, f"policy registry put failed ({p.returncode}): {p.stderr.strip()}"
        policy_settle()
        return self


def blobs_of(image) -> list[str]:
    return [image.config.digest, *[l.digest for l in image.layers]]


def assert_pulled(ctrd: Containerd, ns: str, ref: str, image) -> None:
    """containerd holds the image's manifest, config and every layer, with the upstream's digests."""
    got = ctrd.image_digest(ns, ref)
    assert got == image.digest, f"containerd recorded {ref} as {got}, the upstream's digest is {image.digest}"
    have = ctrd.content(ns)
    want = {image.digest, *blobs_of(image)}
    assert want <= have, f"containerd's content store lacks {sorted(want - have)} (has {sorted(have)})"


def assert_through_pier(pier_entries, up_entries, pier_repo: str, up_repo: str, image, what: str) -> None:
    """containerd fetched the manifest and every blob from Pier (as pier_repo, 200) and sent
    nothing to the upstream itself; the upstream served Pier every blob once."""
    mine = [e for e in pier_entries if is_containerd(e[3])]
    manifests = [e for e in by_path(mine, pier_repo, "manifests") if e[2] == 200]
    assert manifests, f"{what}: Pier's access log has no manifest answer 200 to containerd for {pier_repo}: {summary(mine)}"
    for d in blobs_of(image):
        assert served(mine, pier_repo, d), f"{what}: Pier's access log has no GET 200 of blob {d} by containerd: {summary(mine)}"
    direct = [e for e in up_entries if is_containerd(e[3])]
    assert not direct, f"{what}: containerd went to the upstream itself: {summary(direct)}"
    for d in blobs_of(image):
        n = sum(1 for e in up_entries if e[0] == "GET" and e[1] == f"/v2/{up_repo}/blobs/{d}" and e[2] == 200)
        assert n == 1, f"{what}: the upstream served blob {d} {n} times, expected once: {summary(up_entries)}"


def assert_nothing_upstream(pier_entries, up_entries, pier_repo: str, image, what: str) -> None:
    """A pull served entirely from Pier's cache: containerd got everything from Pier and the
    upstream saw no request at all."""
    mine = [e for e in pier_entries if is_containerd(e[3])]
    for d in blobs_of(image):
        assert served(mine, pier_repo, d), f"{what}: Pier's access log has no GET 200 of blob {d} by containerd: {summary(mine)}"
    assert not up_entries, f"{what}: the upstream was asked: {summary(up_entries)}"


# ---------------------------------------------------------------------------
# tests


def test_containerd_pulls_through_prefix_path_with_override_path():
    """A hosts.toml host with override_path = true and Pier's prefix path: the way to point
    containerd at a Pier cache rule without mirror mode. The content comes through Pier,
    digests match, and a second (fresh) pull sends nothing upstream."""
    name = "library/ovr-" + uuid.uuid4().hex[:8]
    with TempDir("pier-mirror-") as tmp:
        hub, image = hub_with_image(name, "1.0", tmp)
        try:
            with CacheRule(hub.url, refresh=3600) as rule, AnonymousPulls(rule.prefix), Containerd() as ctrd:
                hosts = tmp.sub("hosts")
                write_hosts(hosts, "docker.io", hub.url, [(f"{url_a()}/v2/{rule.prefix}", True)])
                ref = f"docker.io/{name}:1.0"
                pier, up = pier_access_log().mark(), upstream_log(hub).mark()
                ns, _ = ctrd.pull(ref, hosts)
                assert_pulled(ctrd, ns, ref, image)
                assert_through_pier(pier.settle(), up.settle(), rule.repo(name), name, image, "first pull")
                pier.mark(), up.mark()
                ns2, _ = ctrd.pull(ref, hosts)
                assert ns2 != ns
                assert_pulled(ctrd, ns2, ref, image)
                assert_nothing_upstream(pier.settle(), up.settle(), rule.repo(name), image, "second pull")
        finally:
            hub.close()


def assert_stored_once(local_repo: str, asked_name: str, image) -> None:
    """One repository (the rule's prefixed one, none under the asked name), one blob row and
    one file per blob."""
    assert repository_row_count(local_repo) == 1, f"no single repository row {local_repo}"
    assert repository_row_count(asked_name) == 0, f"a repository {asked_name} was created for a mirror pull"
    for d in blobs_of(image):
        assert blob_row_count(d) == 1, f"blob {d} has {blob_row_count(d)} rows"
        assert len(files_for_digest(d)) == 1, f"blob {d}: files {files_for_digest(d)}"


def assert_ns(entries, repo: str, registry: str, what: str) -> None:
    """containerd asked Pier for the unprefixed name with ?ns=<registry> (mirror mode's request)."""
    mine = [e for e in by_path(entries, repo, "manifests") if is_containerd(e[3])]
    assert mine and all(e[1].endswith(f"?ns={registry}") for e in mine), \
        f"{what}: containerd's manifest requests to Pier are not /v2/{repo}/...?ns={registry}: {summary(mine)}"


def test_containerd_pulls_docker_io_and_quay_io_through_pier_as_mirror():
    """Mirror mode as nodes use it: hosts.toml for docker.io and quay.io name Pier as the
    mirror host (no path); containerd asks for library/<image>?ns=docker.io and
    <org>/<image>?ns=quay.io, Pier serves them through the rules that mirror those
    registries, digests match, and a second (fresh) pull sends nothing upstream."""
    hub_name = "library/mir-" + uuid.uuid4().hex[:8]
    quay_name = "prom-" + uuid.uuid4().hex[:6] + "/node-exporter"
    with TempDir("pier-mirror-") as tmp:
        hub, hub_image = hub_with_image(hub_name, "1.0", tmp, "hub")
        try:
            quay, quay_image = hub_with_image(quay_name, "v2", tmp, "quay")
        except BaseException:
            hub.close()
            raise
        try:
            with CacheRule(hub.url, refresh=3600, mirrors=["docker.io"]) as hub_rule, \
                    CacheRule(quay.url, refresh=3600, mirrors=["quay.io"]) as quay_rule, \
                    AnonymousPulls(hub_rule.prefix, quay_rule.prefix), Containerd() as ctrd:
                hosts = tmp.sub("hosts")
                write_hosts(hosts, "docker.io", hub.url, [(url_a(), False)])
                write_hosts(hosts, "quay.io", quay.url, [(url_a(), False)])
                cases = [(f"docker.io/{hub_name}:1.0", hub, hub_name, hub_image, hub_rule, "docker.io"),
                         (f"quay.io/{quay_name}:v2", quay, quay_name, quay_image, quay_rule, "quay.io")]
                for ref, up, name, image, rule, registry in cases:
                    pier, log = pier_access_log().mark(), upstream_log(up).mark()
                    ns, _ = ctrd.pull(ref, hosts)
                    assert_pulled(ctrd, ns, ref, image)
                    first = pier.settle()
                    assert_ns(first, name, registry, f"first pull of {ref}")
                    assert_through_pier(first, log.settle(), name, name, image, f"first pull of {ref}")
                    assert_stored_once(rule.repo(name), name, image)
                    pier.mark(), log.mark()
                    ns2, _ = ctrd.pull(ref, hosts)
                    assert_pulled(ctrd, ns2, ref, image)
                    assert_nothing_upstream(pier.settle(), log.settle(), name, image, f"second pull of {ref}")
        finally:
            hub.close()
            quay.close()


def test_containerd_prefixed_pull_then_mirror_pull_store_the_image_once():
    """The same image pulled as <pier>/<prefix>/library/x (its name under the rule) and as
    docker.io/library/x through the mirror is one cache: the second way is served from what
    the first stored, sends nothing upstream, and stores nothing twice."""
    name = "library/once-" + uuid.uuid4().hex[:8]
    with TempDir("pier-mirror-") as tmp:
        hub, image = hub_with_image(name, "1.0", tmp)
        try:
            with CacheRule(hub.url, refresh=3600, mirrors=["docker.io"]) as rule, AnonymousPulls(rule.prefix), \
                    Containerd() as ctrd:
                hosts = tmp.sub("hosts")
                pier_host = registry_host(url_a())
                write_hosts(hosts, pier_host, url_a(), [])  # Pier itself, over plain http
                write_hosts(hosts, "docker.io", hub.url, [(url_a(), False)])
                prefixed = f"{pier_host}/{rule.repo(name)}:1.0"
                pier, log = pier_access_log().mark(), upstream_log(hub).mark()
                ns, _ = ctrd.pull(prefixed, hosts)
                assert_pulled(ctrd, ns, prefixed, image)
                assert_through_pier(pier.settle(), log.settle(), rule.repo(name), name, image, "prefixed pull")
                assert_stored_once(rule.repo(name), name, image)
                pier.mark(), log.mark()
                mirrored = f"docker.io/{name}:1.0"
                ns2, _ = ctrd.pull(mirrored, hosts)
                assert_pulled(ctrd, ns2, mirrored, image)
                second = pier.settle()
                assert_ns(second, name, "docker.io", "mirror pull")
                assert_nothing_upstream(second, log.settle(), name, image, "mirror pull after the prefixed one")
                assert_stored_once(rule.repo(name), name, image)
        finally:
            hub.close()


def test_containerd_falls_back_to_the_upstream_when_pier_is_down_or_mirrors_nothing():
    """What a node does when Pier cannot serve: with a Pier node stopped (connection refused),
    and with Pier up but no rule mirroring the image's registry (404 NAME_UNKNOWN),
    containerd goes on to the hosts.toml `server`, the upstream itself, and the pull works."""
    name = "library/down-" + uuid.uuid4().hex[:8]
    other = "ghorg-" + uuid.uuid4().hex[:6] + "/tool"
    with TempDir("pier-mirror-") as tmp:
        hub, image = hub_with_image(name, "1.0", tmp)
        try:
            layout = tmp.sub("layout-other")
            other_image = build_image_layout(layout, "3")
            hub.push_layout(layout, "3", other)
            with CacheRule(hub.url, refresh=3600, mirrors=["docker.io"]) as rule, AnonymousPulls(rule.prefix), \
                    Containerd() as ctrd:
                hosts = tmp.sub("hosts")
                ref = f"docker.io/{name}:1.0"
                with ExtraNode("mirror-runtimes", 14) as node:
                    write_hosts(hosts, "docker.io", hub.url, [(node.url, False)])
                    node_log = AccessLog(os.path.join(node.state, "log", "apache-access.log"), PIER_LINE).mark()
                    log = upstream_log(hub).mark()
                    ns, _ = ctrd.pull(ref, hosts)
                    assert_pulled(ctrd, ns, ref, image)
                    assert_through_pier(node_log.settle(), log.settle(), name, name, image, "pull while the node is up")
                # The node is stopped: nothing listens on its port any more.
                log.mark()
                ns2, p = ctrd.pull(ref, hosts)
                assert_pulled(ctrd, ns2, ref, image)
                assert "trying next host" in p.stderr and "connection refused" in p.stderr, \
                    f"ctr did not report falling back from the stopped node: {p.stderr[-1500:]}"
                direct = [e for e in log.settle() if is_containerd(e[3])]
                for d in [image.digest, *blobs_of(image)]:
                    assert any(d in e[1] and e[1].endswith("?ns=docker.io") and e[2] == 200 for e in direct), \
                        f"the upstream's log shows no request of containerd's own for {d}: {summary(direct)}"

                # Pier up, but no rule mirrors ghcr.io: 404 NAME_UNKNOWN, and containerd moves on.
                write_hosts(hosts, "ghcr.io", hub.url, [(url_a(), False)])
                pier, log = pier_access_log().mark(), upstream_log(hub).mark()
                ref = f"ghcr.io/{other}:3"
                ns3, p = ctrd.pull(ref, hosts)
                assert_pulled(ctrd, ns3, ref, other_image)
                refused = [e for e in by_path(pier.settle(), other, "manifests") if is_containerd(e[3])]
                assert refused and all(e[2] == 404 for e in refused), \
                    f"Pier did not answer 404 to containerd's request for an unmirrored registry: {summary(refused)}"
                direct = [e for e in log.settle() if is_containerd(e[3])]
                assert any(e[1].startswith(f"/v2/{other}/manifests/") and e[2] == 200 for e in direct), \
                    f"containerd did not fall back to the upstream: {summary(direct)}"
                assert repository_row_count(other) == 0 and repository_row_count(rule.repo(other)) == 0
        finally:
            hub.close()


def test_containerd_pulls_through_the_mirror_with_credentials():
    """Nodes that authenticate to Pier (no anonymous policy): with a Basic Authorization
    header in hosts.toml, and with credentials given to containerd itself (`ctr --user`, what
    the CRI plugin's registry auth does: an OAuth2 POST to the token realm; in mirror mode and
    with override_path), the pull comes through Pier; none falls back to the upstream."""
    name = "library/cred-" + uuid.uuid4().hex[:8]
    with TempDir("pier-mirror-") as tmp:
        hub, image = hub_with_image(name, "1.0", tmp)
        try:
            with CacheRule(hub.url, refresh=3600, mirrors=["docker.io"]) as rule, SavedRegistryPolicy(), \
                    Containerd() as ctrd:
                pierctl("policy", "registry", "delete")
                policy_settle()
                ref = f"docker.io/{name}:1.0"
                header_hosts, user_hosts = tmp.sub("hosts-header"), tmp.sub("hosts-user")
                write_hosts(header_hosts, "docker.io", hub.url, [(url_a(), False)],
                            authorization=basic_auth(*admin_creds()))
                write_hosts(user_hosts, "docker.io", hub.url, [(url_a(), False)])
                pier, log = pier_access_log().mark(), upstream_log(hub).mark()
                ns, _ = ctrd.pull(ref, header_hosts)
                assert_pulled(ctrd, ns, ref, image)
                assert_through_pier(pier.settle(), log.settle(), name, name, image, "pull with a Basic header")
                pier.mark(), log.mark()
                ns2, _ = ctrd.pull(ref, user_hosts, user=":".join(admin_creds()))
                assert_pulled(ctrd, ns2, ref, image)
                entries = pier.settle()
                tokens = [e for e in entries if e[1].startswith("/token") and is_containerd(e[3])]
                assert tokens, f"containerd asked Pier for no token: {summary(entries)}"
                assert_nothing_upstream(entries, log.settle(), name, image, "pull with ctr --user")
                # The same credentials with override_path at the rule's prefix (no mirror mode).
                override_hosts = tmp.sub("hosts-override")
                write_hosts(override_hosts, "docker.io", hub.url, [(f"{url_a()}/v2/{rule.prefix}", True)])
                pier.mark(), log.mark()
                ns3, _ = ctrd.pull(ref, override_hosts, user=":".join(admin_creds()))
                assert_pulled(ctrd, ns3, ref, image)
                assert_nothing_upstream(pier.settle(), log.settle(), rule.repo(name), image,
                                        "pull with ctr --user and override_path")
        finally:
            hub.close()


def test_token_endpoint_takes_the_oauth2_password_form_containerd_posts():
    """What containerd posts to the token realm when it holds credentials: a form with
    grant_type=password, username, password, scope, service and client_id. The token it
    gets opens the scope's repository; wrong credentials get 401; another grant type gets
    400, on which containerd falls back to GET with Basic credentials."""
    repo = unique_repo("oauth-form")
    push_image(client_a(), repo, "1")
    anon = Client(url_a(), auth=None)
    key, secret = admin_creds()
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}

    def post(**fields):
        return anon.post("/token", body=urllib.parse.urlencode(fields).encode(), headers=form_type)

    fields = dict(grant_type="password", username=key, password=secret, service="pier",
                  client_id="containerd-client", scope=f"repository:{repo}:pull")
    r = expect_status(post(**fields), 200)
    accepted = r.header("X-Request-Id")
    token = r.json().get("access_token")
    assert isinstance(token, str) and token.startswith("PIER1."), r.summary()
    remember(token)
    expect_status(anon.get(f"/v2/{repo}/manifests/1", headers=bearer(token)), 200)
    # The scope is the form's: a token for one repository opens no other.
    other = unique_repo("oauth-other")
    push_image(client_a(), other, "1")
    expect_status(anon.get(f"/v2/{other}/manifests/1", headers=bearer(token)), 401)
    r = post(**dict(fields, password=secret + "x"))
    expect_status(r, 401)
    assert "basic" in (r.header("WWW-Authenticate") or "").lower(), r.summary()
    expect_status(post(**dict(fields, grant_type="refresh_token", refresh_token="x")), 400)
    # Both sign-ins are in the audit trail, the refused one too.
    refused = r.header("X-Request-Id")
    assert refused, r.summary()
    rid = sql_str(refused)
    got = wait_until(lambda: psql(f"SELECT action, result FROM audit_events WHERE request_id = {rid}"), 5)
    assert got == [["registry:GetToken", "UNAUTHORIZED"]], f"the refused sign-in's audit rows: {got}"
    got = psql(f"SELECT action, principal FROM audit_events WHERE request_id = {sql_str(accepted)}")
    assert [row[0] for row in got] == ["registry:GetToken"] and got[0][1].endswith(":user/admin"), \
        f"the accepted sign-in's audit rows: {got}"


def is_dockerd(ua: str) -> bool:
    return ua.startswith("docker/")


def test_dockerd_pulls_docker_hub_images_through_pier_as_registry_mirror():
    """dockerd with Pier in daemon.json's registry-mirrors: `docker pull library/x` asks Pier
    for /v2/library/x/... with no ns, the default mirror rule serves it, the digest is the
    upstream's; after `docker rmi`, pulling again sends nothing upstream."""
    name = "library/dkr-" + uuid.uuid4().hex[:8]
    with TempDir("pier-mirror-") as tmp:
        hub, image = hub_with_image(name, "1.0", tmp)
        try:
            with CacheRule(hub.url, refresh=3600, mirrors=["docker.io"], default_mirror=True) as rule, \
                    AnonymousPulls(rule.prefix), Dockerd([url_a()], [registry_host(url_a())]) as dockerd:
                short = name.split("/", 1)[1]
                pier, log = pier_access_log().mark(), upstream_log(hub).mark()
                dockerd.docker("pull", f"{short}:1.0")
                digests = dockerd.repo_digests(f"{short}:1.0")
                assert digests == [f"{short}@{image.digest}"], f"docker recorded {digests}, upstream digest {image.digest}"
                first, up_first = pier.settle(), log.settle()
                mine = [e for e in first if is_dockerd(e[3])]
                manifests = [e for e in by_path(mine, name, "manifests") if e[2] == 200]
                assert manifests and all("?" not in e[1] for e in manifests), \
                    f"dockerd's manifest requests to Pier are not /v2/{name}/manifests/... without a query: {summary(mine)}"
                for d in blobs_of(image):
                    assert served(mine, name, d), f"Pier served dockerd no blob {d}: {summary(mine)}"
                # Anonymous, as nodes pull: a token asked for the name dockerd knows.
                assert any(e[1].startswith("/token?") and e[2] == 200 and
                           f"repository:{name}:pull" in urllib.parse.unquote(e[1]) for e in mine), \
                    f"dockerd asked no token for repository:{name}:pull: {summary(mine)}"
                for d in blobs_of(image):
                    n = sum(1 for e in up_first if e[0] == "GET" and e[1] == f"/v2/{name}/blobs/{d}" and e[2] == 200)
                    assert n == 1, f"the upstream served blob {d} {n} times: {summary(up_first)}"
                assert_stored_once(rule.repo(name), name, image)
                dockerd.docker("rmi", f"{short}:1.0")
                pier.mark(), log.mark()
                dockerd.docker("pull", f"{short}:1.0")
                assert dockerd.repo_digests(f"{short}:1.0") == [f"{short}@{image.digest}"]
                again = [e for e in pier.settle() if is_dockerd(e[3])]
                assert [e for e in by_path(again, name, "manifests") if e[2] == 200], summary(again)
                assert not log.settle(), f"the second pull went upstream: {summary(log.entries())}"
        finally:
            hub.close()
