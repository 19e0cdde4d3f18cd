"""`pierctl fsck`: the blob root against the database. Inconsistencies are planted by
hand in the shared store (a file deleted, a stray file added, a file truncated, a
byte changed, a name that is no blob's); the report must name each, change nothing
without --repair, and --repair must fix what it says it fixed, after which a cached
image pulls again (the cache fetches what fsck forgot) and fsck is clean. A clean
store reports nothing and is left as it was, and uploads and publications in flight
while fsck runs are never reported.

Earlier tests may have left debris in the shared store (a dead upload's file, a
killed sweep's work): the tests that need a clean store repair once first
(`--grace 0`; nothing else runs then)."""

from __future__ import annotations

import json
import os
import re
import threading
import time

from pierlib import (
    Client, OciLayout, TempDir, add_query, blob_path, blob_root, blob_row_count, client_a,
    client_b, db_counts, expect_status, location_path, make_config, oci_manifest, psql,
    push_blob_monolithic, push_manifest, random_layer, sha256_digest, unique_repo,
)
from upstreams import CacheRule, FakeRegistry, pierctl, read_blob

SUMMARY = re.compile(
    r"fsck: rows=(\d+) files=(\d+) bytes=(\d+) verified=(\d+) pending=(\d+) problems=(\d+)"
    r" missing-file=(\d+) orphan-file=(\d+) size-mismatch=(\d+) digest-mismatch=(\d+)"
    r" unreadable=(\d+) stray-path=(\d+) missing-blob-row=(\d+) missing-child-manifest=(\d+)"
    r" repaired=(\d+) kept=(\d+)")


def fsck(*args: str, expect: int | None = None, timeout: float = 120) -> tuple[int, dict]:
    """`pierctl fsck --json ARGS`: (exit status, report)."""
    p = pierctl("fsck", "--json", *args, timeout=timeout)
    assert p.returncode in (0, 1, 4), f"pierctl fsck {' '.join(args)} failed ({p.returncode}): {p.stderr!r}"
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"pierctl fsck --json printed no JSON: {p.stdout[:500]!r}") from None
    if expect is not None:
        assert p.returncode == expect, \
            f"pierctl fsck {' '.join(args)} exited {p.returncode}, expected {expect}: {lines(doc)}"
    return p.returncode, doc


def lines(doc: dict) -> str:
    return "; ".join(f"{f['kind']} {f.get('digest') or f.get('path')}: {f['detail']}"
                     f"{' [' + f['action'] + ': ' + f['outcome'] + ']' if f.get('outcome') else ''}"
                     for f in doc["findings"])


def by_subject(doc: dict) -> dict[str, dict]:
    return {f.get("digest") or f.get("path"): f for f in doc["findings"]}


OCTET = {"Content-Type": "application/octet-stream"}


def send(c: Client, method: str, path: str, **kw):
    """A request, again after Retry-After while the node answers 429 (a node takes only so
    many request bodies at once)."""
    for _ in range(120):
        r = c.request(method, path, **kw)
        if r.status != 429:
            return r
        time.sleep(min(1.0, float(r.header("Retry-After") or 1)))
    raise AssertionError(f"{method} {path}: 429 for two minutes: {r.summary()}")


def make_clean() -> None:
    """Repair what earlier tests left, and require the store clean afterwards."""
    fsck("--repair", "--grace", "0")
    _, doc = fsck()
    assert doc["problems"] == 0, f"the store is not clean after a repair: {lines(doc)}"


def snapshot() -> tuple[dict, dict, list]:
    """Every file under blobs/ and quarantine/ (what fsck looks at and writes; a node's
    maintenance may expire files in tmp/ meanwhile) with its size, mtime and inode, the
    row counts, the blobs rows."""
    files = {}
    for top, _dirs, names in [*os.walk(os.path.join(blob_root(), "blobs")),
                              *os.walk(os.path.join(blob_root(), "quarantine"))]:
        for n in names:
            p = os.path.join(top, n)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            files[p] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return files, db_counts(("blobs", "repository_blobs", "manifests", "tags", "blob_tombstones")), \
        psql("SELECT digest, size FROM blobs ORDER BY digest")


# ---------------------------------------------------------------------------


def test_fsck_on_a_clean_store_reports_nothing_and_changes_nothing():
    c = client_a()
    repo = unique_repo("fsck-clean")
    layers = [random_layer(3000), random_layer(2000)]
    config = make_config(layers)
    for blob in (config, *layers):
        push_blob_monolithic(c, repo, blob.data)
    expect_status(push_manifest(c, repo, "v1", oci_manifest(config, layers)), 201, "push")
    make_clean()
    before = snapshot()
    status, doc = fsck("--verify-digests", expect=0)
    assert doc["problems"] == 0 and doc["findings"] == [], lines(doc)
    assert doc["rows"] >= 3 and doc["files"] == doc["rows"] and doc["verified"] == doc["files"], doc
    # The same in text: one summary line and nothing else.
    p = pierctl("fsck", "--verify-digests")
    assert p.returncode == 0, f"fsck exited {p.returncode}: {p.stdout!r} {p.stderr!r}"
    out = p.stdout.strip().splitlines()
    assert len(out) == 1 and SUMMARY.fullmatch(out[0]), f"unexpected output {p.stdout!r}"
    m = SUMMARY.fullmatch(out[0])
    assert int(m.group(6)) == 0 and int(m.group(1)) == doc["rows"], out[0]
    # --repair on a clean store repairs nothing either.
    fsck("--repair", "--verify-digests", expect=0)
    after = snapshot()
    assert after[0] == before[0], "fsck changed files: " + repr(
        set(after[0].items()) ^ set(before[0].items()))
    assert after[1:] == before[1:], f"fsck changed rows: {before[1]} -> {after[1]}"


def test_fsck_names_each_planted_inconsistency_repairs_what_is_safe_and_the_cached_image_pulls_again():
    with FakeRegistry() as up, TempDir() as tmp:
        layout = OciLayout(tmp.sub("img"))
        image = layout.add_image([random_layer(40_000), random_layer(30_000), random_layer(20_000)])
        layout.tag(image.manifest, "1.0")
        up.add_layout("library/fsck", layout.path, "1.0")
        with CacheRule(up.url) as rule:
            repo = rule.repo("library/fsck")

            def pull(base: str) -> list[str]:
                c = Client(base)
                r = c.get(f"/v2/{repo}/manifests/1.0", headers={"Accept": image.manifest.media_type})
                expect_status(r, 200, f"GET {repo}:1.0 from {base}")
                assert sha256_digest(r.body) == image.digest
                bad = []
                for blob in (image.config, *image.layers):
                    b = read_blob(base, f"/v2/{repo}/blobs/{blob.digest}")
                    if b.status != 200 or b.digest != blob.digest:
                        bad.append(f"{blob.digest} from {base}: {b.summary()[:200]}")
                return bad

            assert pull(client_a().base_url) == []
            make_clean()

            gone, short, flipped = image.layers
            # A blob pushed and never used by a manifest: its file goes too.
            pushed = push_blob_monolithic(client_a(), unique_repo("fsck-push"), os.urandom(5000))
            os.unlink(blob_path(gone.digest))
            os.unlink(blob_path(pushed))
            with open(blob_path(short.digest), "r+b") as f:
                f.truncate(len(short.data) - 100)
            with open(blob_path(flipped.digest), "r+b") as f:
                f.seek(1234)
                byte = f.read(1)
                f.seek(1234)
                f.write(bytes([byte[0] ^ 0xFF]))
            # Files no row names: one old (a dead publisher's), one young (maybe in flight).
            old_data, young_data = os.urandom(7000), os.urandom(6000)
            old, young = sha256_digest(old_data), sha256_digest(young_data)
            for d, data in ((old, old_data), (young, young_data)):
                os.makedirs(os.path.dirname(blob_path(d)), exist_ok=True)
                with open(blob_path(d), "wb") as f:
                    f.write(data)
            # 20 minutes: older than the --grace used below, younger than the hour after
            # which a node's maintenance would remove it first.
            os.utime(blob_path(old), (time.time() - 1200, time.time() - 1200))
            stray = os.path.join(os.path.dirname(blob_path(old)), "notes.txt")
            with open(stray, "w") as f:
                f.write("not a blob\n")
            planted = snapshot()
            try:
                # Without --verify-digests: everything but the changed byte.
                _, doc = fsck(expect=4)
                found = by_subject(doc)
                want = {gone.digest: "missing-file", pushed: "missing-file", short.digest: "size-mismatch",
                        old: "orphan-file", young: "orphan-file", stray: "stray-path"}
                assert {k: found[k]["kind"] for k in want if k in found} == want, lines(doc)
                assert flipped.digest not in found, lines(doc)
                assert doc["problems"] == len(want) == len(doc["findings"]), lines(doc)
                assert all(f["action"] == "found" and "outcome" not in f for f in doc["findings"]), lines(doc)
                assert f"the row says {len(short.data)} bytes, the file has {len(short.data) - 100}" \
                    in found[short.digest]["detail"], found[short.digest]
                # With them: the changed byte too, with what the bytes hash to.
                _, doc = fsck("--verify-digests", expect=4)
                found = by_subject(doc)
                assert found.get(flipped.digest, {}).get("kind") == "digest-mismatch", lines(doc)
                assert doc["problems"] == len(want) + 1, lines(doc)
                assert snapshot() == planted, "fsck without --repair changed the store"

                # Text: a summary line, then one line per finding.
                p = pierctl("fsck", "--verify-digests")
                assert p.returncode == 4, p
                out = p.stdout.strip().splitlines()
                m = SUMMARY.fullmatch(out[0])
                assert m and int(m.group(6)) == len(want) + 1 and int(m.group(7)) == 2 \
                    and int(m.group(10)) == 1, out[0]
                assert len(out) == 1 + len(want) + 1, p.stdout
                assert any(line.startswith(f"digest-mismatch {flipped.digest}: ") for line in out), p.stdout

                # Repair.
                status, doc = fsck("--verify-digests", "--repair", "--grace", "600", expect=4)
                found = by_subject(doc)
                repaired = {k for k, f in found.items() if f["action"] == "repaired"}
                assert repaired == {gone.digest, pushed, short.digest, flipped.digest, old}, lines(doc)
                assert found[young]["action"] == "kept" and "younger than the grace" in found[young]["outcome"]
                assert found[stray]["action"] == "kept", lines(doc)
                assert doc["repaired"] == 5 and doc["kept"] == 2, lines(doc)
                # What it says it did, it did.
                assert not os.path.exists(blob_path(old)), "the old orphan file is still there"
                assert os.path.exists(blob_path(young)), "the young orphan file was removed"
                assert os.path.exists(stray), "the stray file was removed"
                for d in (gone.digest, pushed, short.digest, flipped.digest):
                    assert blob_row_count(d) == 0, f"the row of {d} is still there"
                    assert not os.path.exists(blob_path(d)), f"a file for {d} is still in blobs/"
                for blob, size in ((short, len(short.data) - 100), (flipped, len(flipped.data))):
                    where = re.search(r"file moved to (\S+),", found[blob.digest]["outcome"])
                    assert where and os.path.isfile(where.group(1)), found[blob.digest]
                    assert where.group(1).startswith(os.path.join(blob_root(), "quarantine") + "/")
                    assert os.path.getsize(where.group(1)) == size
                    os.unlink(where.group(1))
            finally:
                for path in (blob_path(young), blob_path(old), stray):
                    if os.path.exists(path):
                        os.unlink(path)

            # Clean again, and the cached image pulls, whole, from both nodes (refetched).
            _, doc = fsck("--verify-digests", expect=0)
            assert doc["findings"] == [], lines(doc)
            fetched_before = len(up.entries())
            assert pull(client_a().base_url) == []
            assert pull(client_b().base_url) == []
            refetched = [path for method, path, _ in up.entries()[fetched_before:] if "/blobs/" in path]
            for blob in (gone, short, flipped):
                assert any(blob.digest in path for path in refetched), f"{blob.digest} was not fetched again"
            _, doc = fsck("--verify-digests", expect=0)
            assert doc["findings"] == [], lines(doc)


def test_fsck_while_pushes_run_reports_no_upload_or_publication_in_flight():
    make_clean()
    stop = time.monotonic() + 12
    problems: list[str] = []
    pushed: list[str] = []
    in_flight = {"seen": 0}
    lock = threading.Lock()

    def pusher(i: int):
        clients = [client_a(), client_b()]
        repo = unique_repo(f"fsck-race{i}")
        k = 0
        try:
            while time.monotonic() < stop:
                layers = []
                for _ in range(2):
                    layer = random_layer(96 * 1024)
                    data = layer.data
                    c = clients[k % 2]
                    r = expect_status(send(c, "POST", f"/v2/{repo}/blobs/uploads/"), 202, "POST")
                    loc = location_path(r.header("Location"))
                    for n, off in enumerate(range(0, len(data), 32 * 1024)):
                        piece = data[off:off + 32 * 1024]
                        r = send(clients[(k + n) % 2], "PATCH", loc, body=piece, headers={
                            **OCTET, "Content-Range": f"{off}-{off + len(piece) - 1}"})
                        expect_status(r, 202, "PATCH")
                        loc = location_path(r.header("Location"))
                        time.sleep(0.05)  # a session stays open while fsck walks
                    expect_status(send(c, "PUT", add_query(loc, digest=layer.digest)), 201, "PUT")
                    layers.append(layer)
                config = make_config(layers)
                expect_status(send(c, "POST", f"/v2/{repo}/blobs/uploads/?digest={config.digest}",
                                   body=config.data, headers=OCTET), 201, "config")
                m = oci_manifest(config, layers)
                expect_status(send(c, "PUT", f"/v2/{repo}/manifests/t{k}", body=m.data,
                                   headers={"Content-Type": m.media_type}), 201, "manifest")
                with lock:
                    pushed.extend(x.digest for x in (config, *layers))
                k += 1
        except Exception as e:  # noqa: BLE001 - reported by the test, not lost in a thread
            with lock:
                problems.append(f"pusher {i}: {e}")

    threads = [threading.Thread(target=pusher, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    runs = 0
    try:
        while time.monotonic() < stop:
            uploads = int(psql("SELECT count(*) FROM uploads")[0][0])
            p = pierctl("fsck", "--json", timeout=120)
            runs += 1
            if uploads:
                in_flight["seen"] += 1
            if p.returncode != 0:
                problems.append(f"fsck run {runs} exited {p.returncode}: {p.stdout[:2000]} {p.stderr[:500]}")
    finally:
        for t in threads:
            t.join(timeout=120)
    assert not problems, "\n".join(problems[:10])
    assert runs >= 3 and in_flight["seen"] >= 1, f"{runs} fsck runs, {in_flight['seen']} with uploads open"
    assert len(pushed) >= 6, f"only {len(pushed)} blobs pushed"
    # Everything pushed is there, and a final check agrees.
    for d in pushed:
        assert blob_row_count(d) == 1 and os.path.isfile(blob_path(d)), d
    fsck("--verify-digests", expect=0)
