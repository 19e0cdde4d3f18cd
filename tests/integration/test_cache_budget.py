"""A pull-through cache within a byte budget: the least recently pulled images go
first, a base layer another kept image needs stays, what is on disk ends below the
budget, an expired image is fetched again; images pulled within the last minute and
images with a blob being downloaded stay; the budget round-trips through pierctl and
the ECR rule calls (pierMaxBytes); the registry-wide budget is kept by housekeeping
on a registry of its own, whose whole blob root is measured."""

import json
import os
import re
import threading
import time
from contextlib import ExitStack

from halib import PgCluster, blob_dir, fresh_node
from pierlib import (
    Client, OciLayout, TempDir, api_error_body, blob_root, client_a, ecr_client, expect_status, files_for_digest,
    psql, psql_value, random_layer, signed_api_request, sql_str, url_a, url_b, wait_until,
)
from upstreams import (
    CacheRule, FakeRegistry, SlowUpstream, cache_state, get_manifest, image_blobs, pier_logs, pierctl, read_blob,
    rule_id, unique_prefix,
)

KIB = 1 << 10
MIB = 1 << 20
BASE_SIZE = 300 * KIB     # the base layer every image of a family shares
UNIQUE_SIZE = 400 * KIB   # each image's own layer
# Node A's port + this: the node of the registry that has a budget of its own.
NODE_OWN_REGISTRY = 19


# ---------------------------------------------------------------------------
# helpers


def build_family(path, names, base_size=BASE_SIZE, unique_size=UNIQUE_SIZE):
    """An OCI layout with one image per name, tagged with that name: a base layer they all
    share and a layer of its own each (random bytes: gzip cannot shrink them).
    Returns (base layer, {name: Image})."""
    layout = OciLayout(path)
    base = random_layer(base_size)
    images = {}
    for name in names:
        image = layout.add_image([base, random_layer(unique_size)])
        layout.tag(image.manifest, name)
        images[name] = image
    return base, images


def own_bytes(image, base):
    """What expiring image alone gives back: its config and its layers but the base."""
    return sum(b.size for b in image_blobs(image) if b.digest != base.digest)


def pull(client, repo, tag, image, expect=None):
    """GET the manifest and every blob of image through Pier; the manifest's X-Pier-Cache."""
    r = expect_status(get_manifest(client, repo, tag), 200, f"manifest {repo}:{tag}")
    assert r.body == image.manifest.data and r.header("Docker-Content-Digest") == image.digest, r.summary()
    for blob in image_blobs(image):
        b = read_blob(client.base_url, f"/v2/{repo}/blobs/{blob.digest}")
        assert b.complete and b.digest == blob.digest, f"blob {blob.digest} of {repo}:{tag}: {b.summary()}"
    if expect is not None:
        assert cache_state(r) == expect, f"X-Pier-Cache of {repo}:{tag}: {r.summary()}"
    return cache_state(r)


def poke(urls):
    """Cheap requests to every node: idle workers write the pull times they hold."""
    for u in urls:
        for _ in range(12):
            try:
                Client(u, timeout=5).get("/v2/")
            except OSError:
                pass


def wait_pulls_recorded(sql_value, digests, urls, what):
    """Until every manifest in digests has a last pull time in the database."""
    keys = ", ".join(sql_str(d) for d in digests)
    query = f"SELECT count(DISTINCT digest) FROM manifests WHERE digest IN ({keys}) AND last_pulled_at IS NOT NULL"

    def done():
        poke(urls)
        return int(sql_value(query)) == len(set(digests))
    assert wait_until(done, 20, 0.3), f"{what}: the pull times of {digests} never reached the database"


def set_times(sql_run, repo, digest, pulled, cached=None):
    """Set an image's last pull (SQL interval text before now, or None: never pulled) and
    the time it was cached."""
    pulled_sql = "NULL" if pulled is None else f"now() - interval '{pulled}'"
    cached_sql = "" if cached is None else f", created_at = now() - interval '{cached}'"
    sql_run(f"UPDATE manifests m SET last_pulled_at = {pulled_sql}{cached_sql} FROM repositories r"
            f" WHERE r.id = m.repository_id AND r.name = {sql_str(repo)} AND m.digest = {sql_str(digest)}")


def manifest_present(repo, digest) -> bool:
    return psql_value(f"SELECT count(*) FROM manifests m JOIN repositories r ON r.id = m.repository_id"
                      f" WHERE r.name = {sql_str(repo)} AND m.digest = {sql_str(digest)}") == "1"


def blob_row(digest) -> bool:
    return psql_value(f"SELECT count(*) FROM blobs WHERE digest = {sql_str(digest)}") == "1"


def disk_bytes(digests, root=None) -> int:
    """Bytes of the files under <blob root>/blobs named for these digests, found by walking
    the directory (not from the rows)."""
    hexes = {d.split(":", 1)[1] for d in digests}
    total = 0
    for dirpath, _dirs, files in os.walk(os.path.join(root or blob_root(), "blobs")):
        for name in files:
            if name in hexes:
                total += os.path.getsize(os.path.join(dirpath, name))
    return total


def tree_bytes(top) -> int:
    """Bytes of every regular file under top (what du would count, without blocks)."""
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def budget_run(state=None):
    """pierctl budget run, again while another enforcement (a node's housekeeping) runs."""
    for _ in range(60):
        p = pierctl("budget", "run", state=state, timeout=120)
        if p.returncode == 0:
            return p
        assert "another node is enforcing" in p.stderr, \
            f"pierctl budget run failed ({p.returncode}): {p.stdout} {p.stderr}"
        time.sleep(0.5)
    raise AssertionError("another enforcement of the cache budgets never ended")


def budget_status(prefix):
    p = pierctl("budget", "status", "--json")
    assert p.returncode == 0, f"pierctl budget status --json: {p.stderr}"
    doc = json.loads(p.stdout)
    rows = [r for r in doc["rules"] if r["ecrRepositoryPrefix"] == prefix]
    assert len(rows) == 1, f"budget status has no row for {prefix}: {doc}"
    return rows[0]


def expiry_line(repo, digest, prefix):
    return re.compile(re.escape(f"budget: expired {repo}@{digest} (rule {prefix}, last pulled ")
                      + r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|never, cached \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\): \d+ bytes")


def logs_text(extra=""):
    return extra + "\n".join(pier_logs().values())


def assert_expiry_order(texts, keys):
    """In each text (pierctl's standard error, a node's log), the expiry lines it holds
    come in the order of keys: whoever enforced, the least recently pulled went first."""
    for text in texts:
        found = [text.find(f"budget: expired {k}") for k in keys]
        found = [f for f in found if f >= 0]
        assert found == sorted(found), f"expiries out of order ({keys}): {text[-3000:]}"


# ---------------------------------------------------------------------------
# tests


def test_budget_expires_least_recently_pulled_first_and_keeps_shared_layers():
    with TempDir() as tmp, FakeRegistry() as up:
        names = ["a", "b", "c", "d", "e"]
        base, img = build_family(tmp.sub("family"), names)
        # a and b in one upstream repository, c, d and e in another: the base layer is one
        # file in Pier, linked in both cache repositories.
        where = {"a": "lib/one", "b": "lib/one", "c": "lib/two", "d": "lib/two", "e": "lib/two"}
        for n in names:
            up.add_layout(where[n], tmp.sub("family"), n)
        with CacheRule(up.url) as rule:
            repo = {n: rule.repo(where[n]) for n in names}
            for n in names:
                pull(client_a(), repo[n], n, img[n], expect="miss")
            wait_pulls_recorded(psql_value, [img[n].digest for n in names], [url_a(), url_b()], "first pulls")
            # Known ages: a was pulled 4 h ago, b never (cached 3.5 h ago), c 2 h and d 1 h
            # ago; e was really pulled just now.
            set_times(psql, repo["a"], img["a"].digest, "4 hours", "5 hours")
            set_times(psql, repo["b"], img["b"].digest, None, "210 minutes")
            set_times(psql, repo["c"], img["c"].digest, "2 hours", "5 hours")
            set_times(psql, repo["d"], img["d"].digest, "1 hour", "5 hours")
            set_times(psql, repo["e"], img["e"].digest, "1 second")
            everything = {b.digest for n in names for b in image_blobs(img[n])}
            on_disk = disk_bytes(everything)
            assert on_disk == base.size + sum(own_bytes(img[n], base) for n in names), \
                f"what the pulls left on disk: {on_disk}"
            # Room for the base and two images: a, b and c must go, d and e stay.
            budget = base.size + own_bytes(img["d"], base) + own_bytes(img["e"], base) + 40 * KIB
            assert budget < base.size + sum(own_bytes(img[n], base) for n in "cde"), "sizes of the test"
            p = pierctl("rule", "update", rule.prefix, "--max-bytes", str(budget))
            assert p.returncode == 0, p.stderr
            run = budget_run()
            text = logs_text(run.stderr)
            for n in "abc":
                assert not manifest_present(repo[n], img[n].digest), f"{n} was not expired: {run.stdout} {text[-2000:]}"
                assert expiry_line(repo[n], img[n].digest, rule.prefix).search(text), \
                    f"no expiry line for {n}: {text[-3000:]}"
                for blob in image_blobs(img[n]):
                    if blob.digest != base.digest:
                        assert not files_for_digest(blob.digest), f"{n}'s {blob.digest} is still on disk"
                        assert not blob_row(blob.digest), f"{n}'s {blob.digest} still has a row"
            # The audit trail has each expiry, by the system, with the bytes it freed.
            for n in "abc":
                ev = psql(f"SELECT principal, target, result FROM audit_events WHERE action = "
                          f"'budget:ExpireImage' AND repository = '{repo[n]}' AND target LIKE '{img[n].digest}%'")
                want = f"{img[n].digest} (rule {rule.prefix}, {own_bytes(img[n], base)} bytes)"
                assert ev == [["system", want, "success"]], f"audit events of {n}'s expiry: {ev}, want {want}"
            # Least recently pulled first: a (4 h), then b (never pulled, cached 3.5 h ago), then c.
            assert_expiry_order([run.stderr, *pier_logs().values()],
                                [f"{repo[n]}@{img[n].digest}" for n in "abc"])
            assert "never, cached" in text[text.find(f"{repo['b']}@{img['b'].digest}"):][:300], \
                "b's expiry line does not say it was never pulled"
            for n in "de":
                assert manifest_present(repo[n], img[n].digest), f"{n} was expired: {text[-2000:]}"
            # The base layer stays: d and e (in lib/two) still reference it.
            assert files_for_digest(base.digest) and blob_row(base.digest), "the shared base layer was deleted"
            left = disk_bytes(everything)
            assert left <= budget, f"{left} bytes of the rule's blobs on disk, budget {budget}"
            assert left == base.size + own_bytes(img["d"], base) + own_bytes(img["e"], base), left
            # Counted per rule: three images, exactly the bytes that left the disk.
            st = budget_status(rule.prefix)
            assert st["imagesExpired"] == 3 and st["maxBytes"] == budget, st
            assert st["bytesReclaimed"] == sum(own_bytes(img[n], base) for n in "abc"), st
            assert st["bytesCached"] == left, st
            assert abs(st["oldestLastPull"] - (time.time() - 3600)) < 120, f"oldest last pull {st}"

            # Pulled within the last minute: d and e stay, although the rule is over a
            # smaller budget now.
            set_times(psql, repo["d"], img["d"].digest, "5 seconds")
            set_times(psql, repo["e"], img["e"].digest, "1 second")
            p = pierctl("rule", "update", rule.prefix, "--max-bytes", "1MiB")
            assert p.returncode == 0, p.stderr
            assert left > MIB, "sizes of the test"
            run = budget_run()
            assert "1 budget still exceeded" in run.stdout or "budgets still exceeded" in run.stdout, run.stdout
            for n in "de":
                assert manifest_present(repo[n], img[n].digest), f"{n}, pulled within a minute, was expired"
            assert re.search(rf"budget: rule {re.escape(rule.prefix)} holds \d+ bytes, over its budget",
                             logs_text(run.stderr)), run.stderr
            # Two minutes ago: d goes, e (just pulled) stays, and so does the base it needs.
            set_times(psql, repo["d"], img["d"].digest, "2 minutes")
            set_times(psql, repo["e"], img["e"].digest, "1 second")
            budget_run()
            assert not manifest_present(repo["d"], img["d"].digest), "d was not expired"
            assert manifest_present(repo["e"], img["e"].digest), "e was expired"
            assert files_for_digest(base.digest), "the base layer e needs was deleted"
            left = disk_bytes(everything)
            assert left == base.size + own_bytes(img["e"], base) and left <= MIB, left

            # An expired image is fetched again, from the upstream, on its next pull; its base
            # layer comes from the store (lib/two still holds it).
            mark = up.mark()
            pull(client_a(), repo["a"], "a", img["a"], expect="miss")
            unique = [b for b in image_blobs(img["a"]) if b.digest != base.digest]
            gets = up.blob_gets("lib/one", since=mark)
            assert gets == {b.digest: 1 for b in unique}, f"upstream blob GETs after the expiry: {gets}"
            assert up.count("GET", up.manifest_pattern("lib/one", "a"), since=mark) == 1, up.summary(mark)
            for b in image_blobs(img["a"]):
                assert files_for_digest(b.digest), f"{b.digest} of the pulled again image is not on disk"


def test_budget_keeps_an_image_whose_blob_is_being_downloaded():
    with TempDir() as tmp, SlowUpstream(chunk=64 * KIB, delay=0.1) as up:
        layout = OciLayout(tmp.sub("slow"))
        fast = random_layer(int(1.5 * MIB))
        slow = random_layer(4 * MIB)
        image = layout.add_image([fast, slow])
        layout.tag(image.manifest, "v1")
        up.add_layout("team/slow", tmp.sub("slow"), "v1")
        up.slow.add(slow.digest)
        with CacheRule(up.url) as rule:
            repo = rule.repo("team/slow")
            expect_status(get_manifest(client_a(), repo, "v1"), 200)
            for b in (image.config, fast):
                got = read_blob(url_a(), f"/v2/{repo}/blobs/{b.digest}")
                assert got.complete and got.digest == b.digest, got.summary()
            wait_pulls_recorded(psql_value, [image.digest], [url_a(), url_b()], "the manifest pull")
            set_times(psql, repo, image.digest, "3 hours", "3 hours")
            result = {}

            def download():
                result["read"] = read_blob(url_a(), f"/v2/{repo}/blobs/{slow.digest}", timeout=120)
            t = threading.Thread(target=download, daemon=True)
            t.start()
            try:
                key = f"b:{rule_id(rule.prefix)}:{slow.digest}"
                assert wait_until(lambda: psql_value(
                    f"SELECT count(*) FROM fetch_leases WHERE key = {sql_str(key)} AND state = 'running'"
                    " AND expires_at > now()") == "1", 20, 0.05), "the slow download never took its lease"
                # 1.5 MiB are cached: over a budget of 1 MiB, and the image is the only one.
                p = pierctl("rule", "update", rule.prefix, "--max-bytes", "1MiB")
                assert p.returncode == 0, p.stderr
                run = budget_run()
                assert up.sent.get(slow.digest, 0) < slow.size, "the download ended before the enforcement"
                assert manifest_present(repo, image.digest), f"the image being downloaded was expired: {run.stderr}"
                assert re.search(r"\b1 image kept\b", run.stdout), run.stdout
            finally:
                t.join(120)
            got = result.get("read")
            assert got is not None and got.complete and got.digest == slow.digest, \
                f"the download during the enforcement: {got.summary() if got else 'none'}"
            # Downloaded: now nothing keeps it.
            run = budget_run()
            assert not manifest_present(repo, image.digest), f"not expired after its download: {run.stdout}"
            for b in image_blobs(image):
                assert not files_for_digest(b.digest), f"{b.digest} is still on disk"


def test_budget_round_trips_through_pierctl_and_the_ecr_extension():
    with FakeRegistry() as up:
        prefix = unique_prefix("bud")
        try:
            p = pierctl("rule", "create", prefix, up.url, "--max-bytes", "10G")
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout)["maxBytes"] == 10 << 30, p.stdout
            listed = pierctl("rule", "list").stdout
            assert re.search(rf"^{re.escape(prefix)} .*\b10\.0 GiB\s*$", listed, re.M), listed
            shown = json.loads(pierctl("rule", "show", prefix).stdout)
            assert shown["maxBytes"] == 10 << 30, shown
            # Read by the ECR calls: echoed by Describe, which the SDKs still parse.
            d = signed_api_request("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [prefix]})
            rules = expect_status(d, 200).json()["pullThroughCacheRules"]
            assert rules[0]["pierMaxBytes"] == 10 << 30, rules
            sdk = ecr_client().describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])
            assert sdk["pullThroughCacheRules"][0]["ecrRepositoryPrefix"] == prefix, sdk
            for arg in ("512MiB", "512M", "536870912"):
                p = pierctl("rule", "update", prefix, "--max-bytes", arg)
                assert p.returncode == 0 and json.loads(p.stdout)["maxBytes"] == 512 << 20, (arg, p.stdout, p.stderr)
            for bad in ("10", "1023KiB", "5X", "-1", "2EiB"):
                p = pierctl("rule", "update", prefix, "--max-bytes", bad)
                assert p.returncode == 1 and "--max-bytes" in p.stderr, (bad, p.returncode, p.stderr)
            assert json.loads(pierctl("rule", "show", prefix).stdout)["maxBytes"] == 512 << 20
            # Update: absent keeps it, a number sets it, 0 removes it.
            r = signed_api_request("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix,
                                                                  "upstreamRepositoryPrefix": "ROOT"})
            assert expect_status(r, 200).json()["pierMaxBytes"] == 512 << 20, r.summary()
            r = signed_api_request("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix,
                                                                  "pierMaxBytes": 3 << 30})
            assert expect_status(r, 200).json()["pierMaxBytes"] == 3 << 30, r.summary()
            assert json.loads(pierctl("rule", "show", prefix).stdout)["maxBytes"] == 3 << 30
            for bad in (100, -1, "1G", 1 << 61, 1.5e9):
                r = signed_api_request("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix,
                                                                      "pierMaxBytes": bad})
                msg = api_error_body(r, "InvalidParameterException")
                assert "pierMaxBytes" in msg or "budget" in msg, (bad, msg)
            r = signed_api_request("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix, "pierMaxBytes": 0})
            assert "pierMaxBytes" not in expect_status(r, 200).json(), r.summary()
            d = signed_api_request("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [prefix]})
            assert "pierMaxBytes" not in expect_status(d, 200).json()["pullThroughCacheRules"][0], d.summary()
            assert "maxBytes" not in json.loads(pierctl("rule", "show", prefix).stdout)
            p = pierctl("rule", "update", prefix, "--max-bytes", "2G")
            assert p.returncode == 0, p.stderr
            p = pierctl("rule", "update", prefix, "--max-bytes", "none")
            assert p.returncode == 0 and "maxBytes" not in json.loads(p.stdout), p.stdout
            assert re.search(rf"^{re.escape(prefix)} .*\bnone\s*$", pierctl("rule", "list").stdout, re.M)
        finally:
            pierctl("rule", "delete", prefix)
        # Create with the extension: set from the start, and returned.
        prefix2 = unique_prefix("bud")
        try:
            r = signed_api_request("CreatePullThroughCacheRule", {
                "ecrRepositoryPrefix": prefix2, "upstreamRegistryUrl": up.url, "pierMaxBytes": 1 << 30})
            assert expect_status(r, 200).json()["pierMaxBytes"] == 1 << 30, r.summary()
            assert psql_value(f"SELECT max_bytes FROM cache_rules WHERE prefix = {sql_str(prefix2)}") == str(1 << 30)
            assert budget_status(prefix2)["maxBytes"] == 1 << 30
        finally:
            pierctl("rule", "delete", prefix2)


def test_registry_wide_budget_keeps_its_whole_blob_root_below_it():
    """A registry of its own (database and blob root), whose housekeeping runs every two
    seconds: cache_max_bytes holds for two rules together, and the whole blob root is
    measured."""
    with ExitStack() as stack:
        tmp = stack.enter_context(TempDir())
        up = stack.enter_context(FakeRegistry())
        base, img = build_family(tmp.sub("family"), ["a", "b", "c", "d"])
        for n in img:
            up.add_layout("lib/app", tmp.sub("family"), n)
        budget = base.size + own_bytes(img["c"], base) + own_bytes(img["d"], base) + 40 * KIB
        db = stack.enter_context(PgCluster("budget-db", 5432))
        db.initdb().start()
        db.create_database()
        root = blob_dir("budget-blobs")
        node = stack.enter_context(fresh_node("budget", NODE_OWN_REGISTRY, PIER_DATABASE=db.conninfo(),
                                              PIER_BLOB_ROOT=root, PIER_WORKERS="3",
                                              PIER_MAINTENANCE_INTERVAL="2", PIER_CACHE_MAX_BYTES=str(budget)))
        client = Client(node.url, auth=node.creds(), timeout=30)
        # Two rules on the same upstream: the base layer is one file for both.
        prefixes = [unique_prefix("rw"), unique_prefix("rw")]
        for p in prefixes:
            r = pierctl("rule", "create", p, up.url, state=node.state)
            assert r.returncode == 0, r.stderr
        repo = {"a": f"{prefixes[0]}/lib/app", "b": f"{prefixes[1]}/lib/app",
                "c": f"{prefixes[0]}/lib/app", "d": f"{prefixes[1]}/lib/app"}
        for n in "abcd":
            r = expect_status(client.get(f"/v2/{repo[n]}/manifests/{n}",
                                         headers={"Accept": img[n].manifest.media_type}), 200)
            assert r.body == img[n].manifest.data
            for b in image_blobs(img[n]):
                got = expect_status(client.get(f"/v2/{repo[n]}/blobs/{b.digest}"), 200)
                assert got.body == b.data, f"blob {b.digest}"
        blobs_dir = os.path.join(root, "blobs")
        assert tree_bytes(blobs_dir) == base.size + sum(own_bytes(img[n], base) for n in "abcd")
        wait_pulls_recorded(lambda q: db.sql(q)[0][0], [img[n].digest for n in "abcd"], [node.url],
                            "pulls on the registry of its own")
        # Until now everything was pulled within the last minute: nothing went.
        assert int(db.sql("SELECT count(*) FROM manifests")[0][0]) == 4
        for n, ago in (("a", "4 hours"), ("b", "3 hours"), ("c", "2 hours"), ("d", "1 hour")):
            set_times(lambda q: db.sql(q), repo[n], img[n].digest, ago, "5 hours")
        # Housekeeping enforces it by itself within a few seconds.
        assert wait_until(lambda: int(db.sql("SELECT count(*) FROM manifests")[0][0]) == 2, 30, 0.5), \
            f"housekeeping did not expire a and b: {node.log()[-3000:]}"
        left = {r[0] for r in db.sql("SELECT digest FROM manifests")}
        assert left == {img["c"].digest, img["d"].digest}, left
        whole = tree_bytes(root)
        assert whole <= budget, f"the blob root holds {whole} bytes, the registry-wide budget is {budget}"
        assert tree_bytes(blobs_dir) == base.size + own_bytes(img["c"], base) + own_bytes(img["d"], base)
        log = node.log()
        for n in "ab":
            prefix = repo[n].split("/", 1)[0]
            assert expiry_line(repo[n], img[n].digest, prefix).search(log), f"no expiry line for {n}: {log[-3000:]}"
        reclaimed = {row[0]: int(row[1]) for row in db.sql(
            "SELECT cr.prefix, s.budget_reclaimed_bytes FROM cache_stats s JOIN cache_rules cr ON cr.id = s.rule_id")}
        assert reclaimed.get(prefixes[0]) == own_bytes(img["a"], base), reclaimed
        assert reclaimed.get(prefixes[1]) == own_bytes(img["b"], base), reclaimed
