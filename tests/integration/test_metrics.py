"""Health checks and metrics: /healthz and /readyz for load balancers, /metrics for
Prometheus (counters shared by all workers of a node, scraped by a real Prometheus,
checked with promtool), and who may read /metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from authlib import User, allow, policy
from halib import _die_with_parent
from pierlib import (
    Client, ExtraNode, PreconditionError, admin_creds, child_pids, env, expect_status,
    master_pid, push_image, state_dir, unique_repo, url_a, wait_until,
)
from test_reliability import _DatabaseDown
from upstreams import CacheRule, FakeRegistry, get_manifest, image_blobs
from pierlib import TempDir, build_image_layout

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Samples of the text format as {(name, frozenset of (label, value)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sample(samples, name: str, **labels) -> float:
    """The value of one series (0 when it is absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: Client | None = None) -> str:
    r = expect_status((client or Client()).get("/metrics"), 200, "/metrics with the administrator's key")
    ctype = r.header("Content-Type") or ""
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, r.summary()
    return r.text


def tag_count(samples) -> float:
    return sample(samples, "pier_http_requests_total", route="tags", code="200")


# ---------------------------------------------------------------------------
# /healthz and /readyz


def test_healthz_and_readyz_answer_without_credentials_and_readyz_names_a_stopped_database():
    anon = Client(auth=None)
    r = expect_status(anon.get("/healthz"), 200, "healthz")
    assert r.text == "ok\n", r.summary()
    r = expect_status(anon.get("/readyz"), 200, "readyz with everything up")
    doc = r.json()
    assert doc == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "blob_root": "ok"}}, doc
    assert expect_status(anon.head("/healthz"), 200).body == b""
    r = anon.post("/readyz", body=b"x")
    assert r.status == 405, r.summary()
    with _DatabaseDown("stop"):
        r = expect_status(anon.get("/healthz"), 200, "healthz does not ask the database")
        r = anon.get("/readyz")
        assert r.status == 503, r.summary()
        doc = r.json()
        assert doc["status"] == "not ready" and doc["checks"]["database"] == "unreachable", doc
        assert doc["checks"]["blob_root"] == "ok", doc
        assert r.header("Retry-After"), r.summary()
        # No secrets, no connection string, no path in the answer.
        body = r.text
        for secret in (env("PIER_DB"), admin_creds()[1], state_dir()):
            assert secret not in body, f"/readyz leaks {secret!r}: {body}"
    # Ready again once the database is back (workers reconnect).
    ok = wait_until(lambda: anon.get("/readyz").status == 200, timeout=30, interval=0.5)
    assert ok, anon.get("/readyz").summary()


def test_readyz_fails_while_the_blob_root_cannot_take_a_file():
    """A node of its own blob root; its tmp/ replaced by a plain file makes every
    new file under it fail, for root too."""
    root = os.path.join(env("PIER_TEST_DIR"), "metrics-blobs")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    os.chmod(root, 0o777)
    with ExtraNode("readyz-blobs", 12, PIER_BLOB_ROOT=root) as n:
        anon = Client(n.url, auth=None)
        assert wait_until(lambda: anon.get("/readyz").status == 200, timeout=20, interval=0.3), \
            anon.get("/readyz").summary()
        tmp = os.path.join(root, "tmp")
        moved = os.path.join(root, "tmp.away")
        os.rename(tmp, moved)
        try:
            with open(tmp, "w") as f:
                f.write("not a directory\n")
            r = anon.get("/readyz")
            assert r.status == 503, r.summary()
            doc = r.json()
            assert doc["checks"] == {"database": "ok", "migrations": "ok", "blob_root": "not writable"}, doc
            assert root not in r.text, r.text
            expect_status(anon.get("/healthz"), 200, "healthz only says the node answers")
        finally:
            os.unlink(tmp)
            os.rename(moved, tmp)
        expect_status(anon.get("/readyz"), 200, "blob root writable again")


# ---------------------------------------------------------------------------
# who may read /metrics


def test_metrics_needs_an_administrator_or_an_allowed_address():
    anon = Client(auth=None)
    r = anon.get("/metrics")
    assert r.status == 401, r.summary()
    assert (r.header("WWW-Authenticate") or "").startswith("Basic "), r.summary()
    assert "pier_" not in r.text, r.text
    # The administrator's access key, as Basic credentials (as the registry takes them).
    text = scrape(Client())
    assert "# TYPE pier_http_requests_total counter" in text, text[:500]
    # A wrong secret: 401, never the metrics.
    key_id, secret = admin_creds()
    r = Client(auth=(key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))).get("/metrics")
    assert r.status == 401 and "pier_" not in r.text, r.summary()
    # A user who may pull but not read metrics: 403; given ecr:GetMetrics alone: 200.
    with User("metrics", policies={"pull": policy(allow(["ecr:BatchGetImage"]))}) as u:
        r = u.client().get("/metrics")
        assert r.status == 403, r.summary()
        assert "ecr:GetMetrics" in r.text and "pier_" not in r.text, r.text
        u.put_policy("metrics", policy(allow(["ecr:GetMetrics"])))
        ok = wait_until(lambda: u.client().get("/metrics").status == 200, timeout=10, interval=0.3)
        assert ok, u.client().get("/metrics").summary()
    # metrics_allow: a node that lets 127.0.0.1 in answers without credentials ...
    with ExtraNode("metrics-allow", 12, PIER_METRICS_ALLOW="10.0.0.0/8, 127.0.0.1/32, ::1/128") as n:
        text = scrape(Client(n.url, auth=None))
        assert "pier_pool_workers" in text, text[:500]
    # ... and one whose list does not name it still asks for credentials.
    with ExtraNode("metrics-deny", 12, PIER_METRICS_ALLOW="10.0.0.0/8 fd00::/8") as n:
        r = Client(n.url, auth=None).get("/metrics")
        assert r.status == 401, r.summary()
        scrape(Client(n.url))
    # A list that does not parse keeps pierd from starting, naming the key.
    bad = ExtraNode("metrics-bad", 12, PIER_METRICS_ALLOW="127.0.0.1/40")
    try:
        p = bad.quickstart("start")
        assert p.returncode != 0, "pierd started with metrics_allow = 127.0.0.1/40"
        assert "metrics_allow" in p.stdout + p.stderr + bad.log(), (p.stdout + p.stderr)[-2000:]
    finally:
        bad.stop()


# ---------------------------------------------------------------------------
# counters shared by the workers of a node


def test_request_counters_are_the_nodes_whichever_worker_answers_and_survive_a_dead_worker():
    c = Client()
    repo = unique_repo("metrics")
    push_image(c, repo, "v1")
    master = master_pid()
    workers = child_pids(master)
    assert len(workers) >= 2, f"precondition missing: node A should have several workers, has {workers}"
    before = tag_count(parse_metrics(scrape(c)))
    n, threads = 240, 8
    failures = []

    def hammer(k: int):
        cl = Client()
        for _ in range(k):
            r = cl.get(f"/v2/{repo}/tags/list")
            if r.status != 200:
                failures.append(r.summary())

    ts = [threading.Thread(target=hammer, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not failures, failures[:3]
    # Every scrape, whichever worker answers it, sees every request of every worker.
    seen = {tag_count(parse_metrics(scrape(c))) - before for _ in range(12)}
    assert seen == {n}, f"tag list requests counted {seen}, sent {n}"
    # A worker killed now takes nothing with it.
    victim = child_pids(master)[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: victim not in child_pids(master) and len(child_pids(master)) >= len(workers),
                      timeout=15, interval=0.2), "the master did not replace the killed worker"
    seen = {tag_count(parse_metrics(scrape(c))) - before for _ in range(12)}
    assert seen == {n}, f"after a worker died: tag list requests counted {seen}, sent {n}"
    # The pool gauges describe this node: the scraping worker is busy, the rest idle.
    s = parse_metrics(scrape(c))
    busy = sample(s, "pier_pool_workers", state="busy")
    idle = sample(s, "pier_pool_workers", state="idle")
    assert busy >= 1 and busy + idle >= len(workers), (busy, idle, workers)


# ---------------------------------------------------------------------------
# a real Prometheus


def _promtool_check(text: str) -> None:
    tool = shutil.which("promtool")
    if not tool:
        raise PreconditionError("precondition missing: promtool (Debian package prometheus)")
    p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"promtool check metrics failed ({p.returncode}): {(p.stdout + p.stderr)[-2000:]}"


class Prometheus:
    """A Prometheus server with its own configuration and data directory, scraping
    node A's /metrics every second with the administrator's credentials."""

    def __init__(self, port: int, target: str):
        self.port = port
        self.dir = os.path.join(env("PIER_TEST_DIR"), "prometheus")
        self.target = target
        self.proc = None

    def __enter__(self):
        exe = shutil.which("prometheus")
        if not exe:
            raise PreconditionError("precondition missing: prometheus (Debian package prometheus)")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "data"))
        key_id, secret = admin_creds()
        pw = os.path.join(self.dir, "password")
        with open(pw, "w") as f:
            f.write(secret)
        os.chmod(pw, 0o600)
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pier
    metrics_path: /metrics
    basic_auth:
      username: {key_id}
      password_file: {pw}
    static_configs:
      - targets: ['{self.target}']
""")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [exe, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, cwd=self.dir)
        ok = wait_until(lambda: self.query_value('up{job="pier"}') == 1.0, timeout=60, interval=0.5)
        assert ok, f"Prometheus never scraped {self.target} successfully: {self.targets()} {self.tail()}"
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())
        except OSError:
            return {}

    def query_value(self, q: str) -> float | None:
        doc = self.api("/api/v1/query", query=q)
        result = doc.get("data", {}).get("result", [])
        if doc.get("status") != "success" or len(result) != 1:
            return None
        return float(result[0]["value"][1])

    def targets(self) -> str:
        return json.dumps(self.api("/api/v1/targets").get("data", {}).get("activeTargets", []))[:1500]

    def tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "prometheus.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""


def test_prometheus_scrapes_a_node_and_answers_with_the_pulls_the_test_made():
    c = Client()
    text = scrape(c)
    _promtool_check(text)
    port = int(urllib.parse.urlsplit(url_a()).port) + 18
    target = urllib.parse.urlsplit(url_a()).netloc
    repo = unique_repo("prom")
    push_image(c, repo, "v1")
    with Prometheus(port, target) as prom:
        q = 'sum(pier_http_requests_total{route="manifest",code="200"})'
        # Counters only change with requests: wait for Prometheus to have scraped the
        # current value, then pull N manifests and wait for exactly N more. (One pull
        # first, so that the series exists however the run began.)
        expect_status(get_manifest(c, repo, "v1"), 200)
        base = sample(parse_metrics(scrape(c)), "pier_http_requests_total", route="manifest", code="200")
        ok = wait_until(lambda: prom.query_value(q) == base, timeout=30, interval=0.5)
        assert ok, f"Prometheus has {prom.query_value(q)} manifest GETs, node says {base}"
        pulls = 7
        for _ in range(pulls):
            expect_status(get_manifest(c, repo, "v1"), 200)
        ok = wait_until(lambda: prom.query_value(q) == base + pulls, timeout=30, interval=0.5)
        assert ok, f"Prometheus has {prom.query_value(q)} manifest GETs, expected {base + pulls}"

        # A pull through a new cache rule: the bytes Prometheus reports for the rule are
        # the bytes the upstream sent, manifest and blobs.
        with FakeRegistry() as up, TempDir() as tmp:
            image = build_image_layout(tmp.sub("src"), "1.0", layer_sizes=(3000, 70 * 1024))
            up.add_layout("library/prom", tmp.sub("src"), "1.0")
            with CacheRule(up.url) as rule:
                crepo = rule.repo("library/prom")
                r = expect_status(get_manifest(c, crepo, "1.0"), 200)
                assert r.body == image.manifest.data
                for blob in image_blobs(image):
                    r = expect_status(c.get(f"/v2/{crepo}/blobs/{blob.digest}"), 200)
                    assert r.body == blob.data
                want = len(image.manifest.data) + sum(b.size for b in image_blobs(image))
                qb = f'pier_cache_fetched_bytes_total{{rule="{rule.prefix}"}}'
                ok = wait_until(lambda: prom.query_value(qb) == want, timeout=30, interval=0.5)
                assert ok, f"Prometheus: {qb} = {prom.query_value(qb)}, the upstream sent {want}"
                qm = f'pier_cache_misses_total{{rule="{rule.prefix}"}}'
                ok = wait_until(lambda: prom.query_value(qm) == 1 + len(image_blobs(image)), timeout=30,
                                interval=0.5)
                assert ok, f"Prometheus: {qm} = {prom.query_value(qm)}"
                qh = f'pier_cache_upstream_request_duration_seconds_count{{rule="{rule.prefix}"}}'
                ok = wait_until(lambda: (prom.query_value(qh) or 0) >= 1 + len(image_blobs(image)),
                                timeout=30, interval=0.5)
                assert ok, f"Prometheus: {qh} = {prom.query_value(qh)}"
                # The exposition with these series in it still passes promtool.
                _promtool_check(scrape(c))


# ---------------------------------------------------------------------------
# housekeeping: lifecycle policies and maintenance runs

def test_lifecycle_expiries_and_maintenance_runs_are_counted():
    """A node whose maintenance runs every second expires an image by a lifecycle policy:
    its /metrics counts the runs (done, with the time of the last), the repositories run
    and the image expired; the registry-wide gauges count the policy and when the oldest
    ran."""
    from test_lifecycle import drop, policy as lc_policy, remaining, rule as lc_rule, set_times
    from pierlib import ecr_client
    repo = unique_repo("metrics-lc")
    try:
        old = push_image(Client(), repo, None)
        young = push_image(Client(), repo, None)
        set_times(repo, old.digest, 10)
        with ExtraNode("metrics-maint", 12, PIER_MAINTENANCE_INTERVAL="1") as n:
            before = parse_metrics(scrape(Client(n.url)))
            assert sample(before, "pier_lifecycle_expired_images_total") == 0, before
            ecr_client().put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=lc_policy(
                lc_rule(1, "untagged", "sinceImagePushed", 7)))
            gone = wait_until(lambda: old.digest not in remaining(repo), 60, interval=0.5)
            assert gone, f"maintenance did not expire {old.digest} within 60 s: {n.log()[-2000:]}"
            # Nodes A and B run maintenance too (rarely): the sum of the three is the
            # registry's, and this node, every second, did at least the runs.
            def counted():
                total = 0.0
                for url in (n.url, url_a(), env("PIER_URL_B")):
                    total += sample(parse_metrics(scrape(Client(url))), "pier_lifecycle_expired_images_total")
                return total >= 1
            assert wait_until(counted, 15, interval=0.5), scrape(Client(n.url))
            text = scrape(Client(n.url))
            _promtool_check(text)
            s = parse_metrics(text)
            assert sample(s, "pier_maintenance_runs_total", result="done") >= 1, text
            last = sample(s, "pier_maintenance_last_run_timestamp_seconds")
            assert abs(time.time() - last) < 30, f"last run at {last}, now {time.time()}"
            assert sample(s, "pier_lifecycle_repositories_total") >= 1, text
            assert sample(s, "pier_lifecycle_policies") >= 1, text
            oldest = sample(s, "pier_lifecycle_oldest_evaluation_timestamp_seconds")
            assert 0 < oldest <= time.time() + 1, f"oldest evaluation {oldest}"
            for fam in ("pier_lifecycle_kept_images_total", "pier_lifecycle_failed_repositories_total",
                        "pier_budget_expired_images_total", "pier_budget_reclaimed_bytes_total"):
                assert f"# TYPE {fam} counter" in text, f"{fam} missing"
        assert remaining(repo) == {young.digest}
    finally:
        drop(repo)
