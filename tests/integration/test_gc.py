"""Garbage collection of blobs (`pierctl gc`): what a sweep removes and keeps, the
grace period, a dry run that tells exactly what the sweep then does; sweeps racing
pushes, mounts and pull-through imports on both nodes; a sweep killed half-way and
the next one finishing its work.

Each test starts from a store some earlier test may have left garbage in, so the
tests that count exactly sweep once first (`--grace 0`). A node's maintenance may
hold the cluster-wide sweep at any moment: `pierctl gc` then exits 3 and the helpers
try again."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

from pierlib import (
    OCI_LAYER, Client, Content, Image, OciLayout, TempDir, add_query, blob_row_count, ecr_client, env,
    expect_status, files_for_digest, location_path, make_config, oci_manifest, psql,
    push_blob_monolithic, push_manifest, random_layer, sha256_digest, sql_str, unique_repo, url_a, url_b,
    wait_until,
)
from upstreams import CacheRule, DockerRegistry, pierctl, read_blob

# ---------------------------------------------------------------------------
# pierctl gc

GC_LINE = re.compile(r"gc: removed (\d+) blobs \((\d+) bytes\) and (\d+) links; (\d+) busy digests skipped; "
                     r"(\d+) interrupted deletions finished; (\d+) ms \((?:\d+) ms paused\)")
DRY_LINE = re.compile(r"gc \(dry run\): would remove (\d+) blobs \((\d+) bytes\) and (\d+) links; "
                      r"(\d+) busy digests skipped; (\d+) ms \((?:\d+) ms paused\)")
BUSY_EXIT = 3
BUSY_TEXT = "gc: another sweep is running"


@dataclass
class Sweep:
    blobs: int
    bytes: int
    links: int
    busy: int
    finished: int
    ms: int
    dry_run: bool

    def removed(self) -> tuple[int, int, int]:
        return self.blobs, self.bytes, self.links


def gc_try(*args: str, state: str | None = None, timeout: float = 120) -> Sweep | None:
    """One `pierctl gc ARGS`: its summary, or None when another sweep held the lock (exit 3)."""
    p = pierctl("gc", *args, state=state, timeout=timeout)
    if p.returncode == BUSY_EXIT:
        assert BUSY_TEXT in p.stdout + p.stderr, \
            f"pierctl gc exited 3 without saying {BUSY_TEXT!r}: {p.stdout!r} {p.stderr!r}"
        return None
    assert p.returncode == 0, f"pierctl gc {' '.join(args)} failed ({p.returncode}): {p.stdout!r} {p.stderr!r}"
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"pierctl gc printed {len(lines)} lines, expected one summary: {p.stdout!r}"
    dry = "--dry-run" in args
    m = (DRY_LINE if dry else GC_LINE).fullmatch(lines[0].strip())
    assert m, f"pierctl gc {' '.join(args)}: unexpected summary {lines[0]!r}"
    n = [int(x) for x in m.groups()]
    if dry:
        return Sweep(n[0], n[1], n[2], n[3], 0, n[4], True)
    return Sweep(n[0], n[1], n[2], n[3], n[4], n[5], False)


def gc(*args: str, state: str | None = None, timeout: float = 120) -> Sweep:
    """`pierctl gc ARGS`, again while another sweep (a node's maintenance) holds the lock."""
    deadline = time.monotonic() + 60
    while True:
        out = gc_try(*args, state=state, timeout=timeout)
        if out is not None:
            return out
        assert time.monotonic() < deadline, "pierctl gc: another sweep was running for a minute"
        time.sleep(0.3)


class GcLoop:
    """`pierctl gc --grace 0` over and over in a thread, with one node's configuration,
    until stopped. Counts the sweeps, the refusals (another sweep ran) and what went."""

    def __init__(self, state: str):
        self.state = state
        self.stop = threading.Event()
        self.sweeps = self.refused = 0
        self.blobs = self.links = self.busy = 0
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                s = gc_try("--grace", "0", state=self.state, timeout=60)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{self.state}: {str(e)[:300]}")
                time.sleep(0.2)
                continue
            if s is None:
                self.refused += 1
                time.sleep(0.05)
                continue
            self.sweeps += 1
            self.blobs += s.blobs
            self.links += s.links
            self.busy += s.busy

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(90)

    def summary(self) -> str:
        return (f"{os.path.basename(self.state.rstrip('/'))}: {self.sweeps} sweeps, {self.refused} refused, "
                f"{self.blobs} blobs and {self.links} links removed, {self.busy} busy skips")


def state_b() -> str:
    return env("PIER_STATE_DIR_B")


# ---------------------------------------------------------------------------
# the store, read directly


def psql_script(sql: str) -> list[list[str]]:
    """Run a script (any length, COPY ... FROM STDIN allowed) with psql -f -."""
    p = subprocess.run(["psql", env("PIER_DB"), "-v", "ON_ERROR_STOP=1", "-XAtq", "-f", "-"], input=sql,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"psql failed ({p.returncode}): {p.stderr.strip()[-1500:]}"
    return [line.split("|") for line in p.stdout.splitlines() if line != ""]


def blob_file_digests() -> set[str]:
    """Digests of every file under <blob root>/blobs (blobs/<alg>/<2 hex>/<hex>)."""
    top = os.path.join(env("PIER_BLOB_ROOT"), "blobs")
    found = set()
    for alg in os.listdir(top):
        for fan in os.listdir(os.path.join(top, alg)):
            for name in os.listdir(os.path.join(top, alg, fan)):
                found.add(f"{alg}:{name}")
    return found


def blob_row_digests() -> set[str]:
    return {row[0] for row in psql("SELECT digest FROM blobs")}


def tombstones() -> set[str]:
    return {row[0] for row in psql("SELECT digest FROM blob_tombstones")}


def rows_without_file() -> set[str]:
    """Blob rows whose file is missing (rows first: a sweep removes a row before its file)."""
    rows = blob_row_digests()
    return rows - blob_file_digests()


def unreferenced_blob_rows() -> list[str]:
    return [r[0] for r in psql(
        "SELECT b.digest FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM manifest_references mr"
        " WHERE mr.child = b.digest AND mr.child_kind = 'blob') ORDER BY 1 LIMIT 20")]


def unreferenced_links() -> list[str]:
    return ["|".join(r) for r in psql(
        "SELECT r.name, rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id"
        " WHERE NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.repository_id = rb.repository_id"
        " AND mr.child = rb.digest AND mr.child_kind = 'blob') ORDER BY 1, 2 LIMIT 20")]


def link_count(repo: str, digest: str) -> int:
    return int(psql(f"SELECT count(*) FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id"
                    f" WHERE r.name = {sql_str(repo)} AND rb.digest = {sql_str(digest)}")[0][0])


def assert_store_collected(what: str) -> None:
    """After a sweep with grace 0 that nothing raced: nothing unreferenced, no tombstone, and
    rows and files name the same blobs."""
    rows, files = blob_row_digests(), blob_file_digests()
    problems = []
    if rows - files:
        problems.append(f"{len(rows - files)} blob rows without a file, e.g. {sorted(rows - files)[:3]}")
    if files - rows:
        problems.append(f"{len(files - rows)} blob files without a row, e.g. {sorted(files - rows)[:3]}")
    left = unreferenced_blob_rows()
    if left:
        problems.append(f"unreferenced blob rows left: {left[:5]}")
    links = unreferenced_links()
    if links:
        problems.append(f"links no manifest of their repository references: {links[:5]}")
    t = tombstones()
    if t:
        problems.append(f"{len(t)} tombstones left, e.g. {sorted(t)[:3]}")
    assert not problems, f"{what}: " + "; ".join(problems)


# ---------------------------------------------------------------------------
# clients


def send(c: Client, method: str, path: str, **kw):
    """A request, again after Retry-After (at most 1 s here) while the node answers 429: a
    node takes only so many request bodies at once, and clients are told to come back."""
    for _ in range(120):
        r = c.request(method, path, **kw)
        if r.status != 429:
            return r
        time.sleep(min(1.0, float(r.header("Retry-After") or 1)))
    raise AssertionError(f"{method} {path}: 429 for two minutes: {r.summary()}")


OCTET = {"Content-Type": "application/octet-stream"}


def upload(c: Client, repo: str, data: bytes, chunk_clients=None) -> None:
    """Upload a blob: one POST ?digest= with the body, or (chunk_clients) POST, then a PATCH
    of 1 KiB from each client in turn (another node each time), then the closing PUT."""
    digest = sha256_digest(data)
    if not chunk_clients:
        expect_status(send(c, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data, headers=OCTET),
                      201, f"monolithic upload of {digest} to {repo}")
        return
    r = expect_status(send(c, "POST", f"/v2/{repo}/blobs/uploads/"), 202, f"upload session in {repo}")
    loc = location_path(r.header("Location"))
    for k, off in enumerate(range(0, len(data), 1024)):
        chunk = data[off:off + 1024]
        r = send(chunk_clients[k % len(chunk_clients)], "PATCH", loc, body=chunk,
                 headers={**OCTET, "Content-Range": f"{off}-{off + len(chunk) - 1}"})
        expect_status(r, 202, f"PATCH {off}-{off + len(chunk) - 1} of {digest} in {repo}")
        loc = location_path(r.header("Location"))
    expect_status(send(c, "PUT", add_query(loc, digest=digest)), 201, f"closing PUT of {digest} in {repo}")


def blob_present(c: Client, repo: str, digest: str) -> bool:
    r = send(c, "HEAD", f"/v2/{repo}/blobs/{digest}")
    expect_status(r, (200, 404), f"HEAD blob {digest} in {repo}")
    return r.status == 200


def get_blob(base: str, repo: str, digest: str):
    """GET a blob whole (read_blob), again after Retry-After while the node answers 429."""
    for _ in range(120):
        b = read_blob(base, f"/v2/{repo}/blobs/{digest}", timeout=60)
        if b.status != 429:
            return b
        time.sleep(min(1.0, float(b.header("Retry-After") or 1)))
    raise AssertionError(f"GET blob {digest} in {repo}: 429 for two minutes")


def pull_problems(base: str, repo: str, ref: str, image: Image) -> list[str]:
    """GET the manifest and every blob of image from repo on a node; what did not verify."""
    out = []
    c = Client(base, timeout=60)
    r = send(c, "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": image.manifest.media_type})
    if r.status != 200 or sha256_digest(r.body) != image.digest:
        return [f"{base} {repo}@{ref}: manifest {r.status}, digest {sha256_digest(r.body)} "
                f"(expected {image.digest}): {r.body[:200]!r}"]
    for blob in (image.config, *image.layers):
        b = get_blob(base, repo, blob.digest)
        if not b.complete or b.digest != blob.digest:
            out.append(f"{base} {repo}@{ref}: blob {blob.digest}: {b.summary()[:300]}")
    return out


def image_with(layers) -> Image:
    config = make_config(layers)
    return Image(oci_manifest(config, layers), config, list(layers))


# ---------------------------------------------------------------------------
# what a sweep removes and what it keeps


def test_gc_removes_a_deleted_images_own_blobs_keeps_shared_ones_and_a_dry_run_tells_the_same():
    a, b = Client(url_a()), Client(url_b())
    x, y = unique_repo("gc-x"), unique_repo("gc-y")
    shared_y, shared_x = random_layer(3000), random_layer(2000)   # with y's image, with x's other image
    own = random_layer(5000)
    gone = image_with([shared_y, shared_x, own])
    kept_x = image_with([shared_x])
    kept_y = image_with([shared_y])
    for c, repo, img, tag in ((a, x, gone, "gone"), (a, x, kept_x, "kept"), (b, y, kept_y, "kept")):
        for blob in (img.config, *img.layers):
            push_blob_monolithic(c, repo, blob.data)
        push_manifest(c, repo, tag, img.manifest)
    gc("--grace", "0")  # whatever earlier tests left
    expect_status(a.delete(f"/v2/{x}/manifests/{gone.digest}"), 202, "DELETE the manifest")

    freed = [gone.config, own]
    want = (len(freed), sum(blob.size for blob in freed), 3)  # + shared_y's link in x
    dry = gc("--grace", "0", "--dry-run")
    assert dry.removed() == want and dry.busy == 0, \
        f"dry run: {dry}, expected blobs/bytes/links {want}"
    for blob in (gone.config, own, shared_y, shared_x):
        assert blob_row_count(blob.digest) == 1 and files_for_digest(blob.digest), \
            f"the dry run removed {blob.digest}"
        assert link_count(x, blob.digest) == 1, f"the dry run removed the link of {blob.digest} in {x}"

    real = gc("--grace", "0")
    assert real.removed() == dry.removed() and real.busy == 0 and real.finished == 0, \
        f"the sweep reported {real}, its dry run {dry}"
    for blob in freed:
        assert blob_row_count(blob.digest) == 0, f"{blob.digest}: its row is still there"
        assert not files_for_digest(blob.digest), f"{blob.digest}: its file is still there"
        expect_status(a.get(f"/v2/{x}/blobs/{blob.digest}"), 404, "GET of a collected blob")
    # A layer another repository's image uses stays; only this repository's link goes.
    assert blob_row_count(shared_y.digest) == 1 and files_for_digest(shared_y.digest)
    assert link_count(x, shared_y.digest) == 0, f"{x} still links {shared_y.digest}, which nothing there uses"
    expect_status(a.get(f"/v2/{x}/blobs/{shared_y.digest}"), 404, "GET of the shared layer where it is unused")
    # The images left pull whole, from both nodes.
    problems = (pull_problems(url_a(), x, "kept", kept_x) + pull_problems(url_b(), x, kept_x.digest, kept_x)
                + pull_problems(url_a(), y, "kept", kept_y) + pull_problems(url_b(), y, "kept", kept_y))
    assert not problems, problems
    again = gc("--grace", "0")
    assert again.removed() == (0, 0, 0), f"a second sweep found more: {again}"


def test_gc_keeps_a_blob_younger_than_the_grace_and_removes_it_once_older():
    c = Client(url_a())
    repo = unique_repo("gc-young")
    data = os.urandom(4000)
    digest = push_blob_monolithic(c, repo, data)   # uploaded, never referenced
    t0 = time.monotonic()
    for args in ((), ("--grace", "3600"), ("--grace", "3600", "--dry-run")):
        gc(*args)
        assert blob_row_count(digest) == 1 and files_for_digest(digest), \
            f"pierctl gc {' '.join(args)} removed a blob uploaded seconds ago"
        assert blob_present(c, repo, digest), f"after pierctl gc {' '.join(args)} the upload is gone from {repo}"
    # Older than a short grace: it goes.
    time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
    s = gc("--grace", "2")
    assert s.blobs >= 1 and s.bytes >= len(data) and s.links >= 1, s
    assert blob_row_count(digest) == 0 and not files_for_digest(digest), "a blob older than the grace stayed"
    assert not blob_present(c, repo, digest)
    # The default grace (gc_grace, an hour): a blob uploaded two hours ago goes.
    old = push_blob_monolithic(c, repo, os.urandom(4000))
    psql(f"UPDATE blobs SET created_at = now() - interval '2 hours' WHERE digest = {sql_str(old)}")
    psql(f"UPDATE repository_blobs SET created_at = now() - interval '2 hours' WHERE digest = {sql_str(old)}")
    gc()
    assert blob_row_count(old) == 0 and not files_for_digest(old), \
        "pierctl gc with the default grace kept an unreferenced blob two hours old"


# ---------------------------------------------------------------------------
# a sweep killed half-way

CRASH_BLOBS = 20000   # a sweep takes them in rounds of 500, a few thousand a second


def _plant_blobs(n: int, repo_id: int, age: str) -> list[str]:
    """n small blob files and their rows, made directly (half of them linked in repo_id),
    all created `age` ago: garbage for a sweep to collect."""
    root = os.path.join(env("PIER_BLOB_ROOT"), "blobs", "sha256")
    digests = []
    for i in range(n):
        data = f"pier gc test {uuid.uuid4().hex} {i}\n".encode()
        digest = sha256_digest(data)
        hexd = digest.split(":")[1]
        # The modes Pier gives its own (the group, www-data, comes from the setgid root).
        os.makedirs(os.path.join(root, hexd[:2]), mode=0o750, exist_ok=True)
        fd = os.open(os.path.join(root, hexd[:2], hexd), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        digests.append((digest, len(data)))
    lines = [f"COPY blobs(digest, size, created_at) FROM STDIN;"]
    lines += [f"{d}\t{size}\t{age}" for d, size in digests]
    lines += ["\\.", "COPY repository_blobs(repository_id, digest, created_at) FROM STDIN;"]
    lines += [f"{repo_id}\t{d}\t{age}" for d, _ in digests[::2]]
    lines += ["\\."]
    psql_script("\n".join(lines) + "\n")
    return [d for d, _ in digests]


def _repo_id(repo: str) -> int:
    return int(psql(f"SELECT id FROM repositories WHERE name = {sql_str(repo)}")[0][0])


def _count_rows(digests: list[str]) -> int:
    arr = "{" + ",".join(digests) + "}"
    return int(psql_script(f"SELECT count(*) FROM blobs WHERE digest = ANY('{arr}'::text[]);")[0][0])


def test_gc_killed_mid_sweep_leaves_no_row_without_its_file_and_the_next_sweep_finishes():
    repo = unique_repo("gc-crash")
    push_blob_monolithic(Client(url_a()), repo, os.urandom(100))   # makes the repository
    gc("--grace", "0")
    age = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(time.time() - 600))
    planted = _plant_blobs(CRASH_BLOBS, _repo_id(repo), age)
    total_before = int(psql("SELECT count(*) FROM blobs")[0][0])
    assert _count_rows(planted) == CRASH_BLOBS
    conf = os.path.join(env("PIER_STATE_DIR"), "pier.conf")
    exe = os.path.join(env("PIER_BUILD_DIR"), "pierctl")
    kills = []   # (blob rows before, after, tombstones after) of each killed sweep
    ended = None  # the summary of a sweep that ended before it could be killed
    for _ in range(3):   # several kills, each at another point of a sweep
        left_before = int(psql("SELECT count(*) FROM blobs")[0][0])
        dead_before = len(tombstones())
        proc = subprocess.Popen([exe, "-c", conf, "gc", "--grace", "0", "--duty", "100"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            dropped = wait_until(lambda: proc.poll() is not None or
                                 int(psql("SELECT count(*) FROM blobs")[0][0]) < left_before, 60, 0.01)
            assert dropped, "the sweep removed nothing for a minute"
            if proc.poll() is None:
                time.sleep(random.uniform(0, 0.15))
                proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            out, err = proc.communicate(timeout=30)
        if proc.returncode != -signal.SIGKILL:
            assert kills and proc.returncode == 0, (f"the sweep ended ({proc.returncode}) before it could be "
                                                    f"killed: {out!r} {err!r}; plant more blobs")
            m = GC_LINE.fullmatch(out.strip())
            assert m, f"unexpected summary {out!r}"
            ended = Sweep(*[int(x) for x in m.groups()], False)
            assert ended.finished == dead_before, \
                f"{ended}: the sweep after the kills {kills} left {dead_before} tombstones to finish"
            break
        missing = rows_without_file()
        assert not missing, (f"after a SIGKILL mid-sweep {len(missing)} blob rows name a missing file, "
                             f"e.g. {sorted(missing)[:3]}")
        kills.append((left_before, int(psql("SELECT count(*) FROM blobs")[0][0]), len(tombstones())))
    left = _count_rows(planted)
    assert left < CRASH_BLOBS, f"kills {kills}: the killed sweeps removed none of the planted blobs"
    dead = tombstones()
    s = gc("--grace", "0", "--duty", "100")
    assert s.blobs == left and s.finished == len(dead), \
        f"the next sweep: {s}; {left} planted blobs were left and {len(dead)} tombstones (kills {kills})"
    assert _count_rows(planted) == 0
    files = blob_file_digests()
    assert not files & set(planted), f"{len(files & set(planted))} planted files left"
    assert_store_collected(f"after the sweep that followed {len(kills)} killed ones")
    assert int(psql("SELECT count(*) FROM blobs")[0][0]) == total_before - CRASH_BLOBS
    print(f"# kills (blob rows before, after, tombstones): {kills}; a sweep that ended: {ended}; "
          f"the next sweep: {s}")


PAUSED = re.compile(r".*; (\d+) ms \((\d+) ms paused\)")


def test_gc_pauses_between_rounds_as_its_duty_says_and_not_at_duty_100():
    """A sweep works --duty percent of the time (maintenance: gc_duty): after each full round
    of 500 it sleeps (100 - duty) / duty times as long as the round took."""
    repo = unique_repo("gc-pace")
    push_blob_monolithic(Client(url_a()), repo, os.urandom(100))
    gc("--grace", "0", "--duty", "100")
    age = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(time.time() - 600))
    for duty in (25, 100):
        planted = _plant_blobs(1600, _repo_id(repo), age)   # three full rounds and a part
        deadline = time.monotonic() + 60
        while (p := pierctl("gc", "--grace", "0", "--duty", str(duty))).returncode == BUSY_EXIT \
                and time.monotonic() < deadline:
            time.sleep(0.2)   # a node's maintenance sweeps
        assert p.returncode == 0, p.stderr
        m = PAUSED.fullmatch(p.stdout.strip())
        assert m, f"no pause in the summary: {p.stdout!r}"
        total, paused = int(m.group(1)), int(m.group(2))
        work = total - paused
        assert _count_rows(planted) == 0, f"--duty {duty}: planted blobs left"
        if duty == 100:
            assert paused == 0, f"--duty 100 paused {paused} ms"
        else:
            # Three full rounds, each followed by three times its own length asleep; the
            # last round, the run's bookkeeping and the sleeps' overshoot make up the rest.
            assert work <= paused <= 3 * work + 100, f"--duty 25: {work} ms working, {paused} ms paused"
    p = pierctl("gc", "--duty", "0")
    assert p.returncode == 2 and "--duty takes a percentage from 1 to 100" in p.stderr, (p.returncode, p.stderr)


def test_gc_finishes_a_dead_sweeps_deletions_and_keeps_a_blob_pushed_again_meanwhile():
    """What a sweep killed between its commit and the files leaves: tombstones whose rows are
    gone and whose files are not. The next sweep removes those files and tombstones; a
    tombstoned digest whose blob was pushed again meanwhile keeps its new row and file."""
    c = Client(url_a())
    repo = unique_repo("gc-dead")
    gc("--grace", "0")
    dead_digests = [push_blob_monolithic(c, repo, os.urandom(700)) for _ in range(5)]
    data = os.urandom(900)
    again = Content(data, OCI_LAYER, diff_id=sha256_digest(data))
    push_blob_monolithic(c, repo, again.data)
    arr = "{" + ",".join(dead_digests) + "}"
    # The dead sweep's committed transactions: rows gone and tombstones written for the
    # five, and for `again`, whose row is back because it was pushed again since.
    psql_script(f"BEGIN; DELETE FROM repository_blobs WHERE digest = ANY('{arr}'::text[]);"
                f" DELETE FROM blobs WHERE digest = ANY('{arr}'::text[]);"
                f" INSERT INTO blob_tombstones(digest, size) SELECT unnest('{arr}'::text[]), 700;"
                f" INSERT INTO blob_tombstones(digest, size) VALUES ({sql_str(again.digest)}, {again.size});"
                " COMMIT;")
    img = image_with([again])   # referenced now: not garbage
    push_blob_monolithic(c, repo, img.config.data)
    push_manifest(c, repo, "again", img.manifest)
    assert all(files_for_digest(d) for d in dead_digests), "precondition: the dead sweep's files are there"
    s = gc("--grace", "0")
    assert s.finished == len(dead_digests), f"{s}: expected {len(dead_digests)} interrupted deletions finished"
    assert s.removed() == (0, 0, 0), f"{s}: nothing else was garbage"
    for d in dead_digests:
        assert not files_for_digest(d), f"{d}: the dead sweep's file is still there"
    assert blob_row_count(again.digest) == 1 and files_for_digest(again.digest), \
        "a blob pushed again after a dead sweep tombstoned it lost its file or row"
    assert not tombstones(), f"tombstones left: {tombstones()}"
    problems = pull_problems(url_a(), repo, "again", img) + pull_problems(url_b(), repo, img.digest, img)
    assert not problems, problems


# ---------------------------------------------------------------------------
# sweeps racing pushes and pull-through imports on both nodes

CLIENTS = 20
RACE_SECONDS = 30
SHARED_LAYERS = 4
RACE_REPOS = 5


def test_gc_racing_pushes_mounts_and_deletes_on_two_nodes_never_takes_what_a_pushed_image_needs():
    """20 clients on both nodes push images that share layers (HEAD first, uploads monolithic
    or in chunks across the nodes, mounts from another repository), delete older ones and
    push them again, while two loops (one per node) sweep with grace 0. Every image whose
    manifest PUT succeeded and that was not deleted pulls afterwards, and a final sweep
    leaves nothing unreferenced. A manifest PUT may be refused with MANIFEST_BLOB_UNKNOWN:
    with a zero grace, a blob uploaded a moment ago and not yet referenced is garbage (the
    grace period is what protects that moment, and a 429 that makes the client wait a
    second between two uploads widens it); the client then mounts or uploads them again in
    one request each and tries again, up to 20 times."""
    repos = [unique_repo(f"gc-race{i}") for i in range(RACE_REPOS)]
    shared = [random_layer(2048) for _ in range(SHARED_LAYERS)]
    seed = Client(url_a())
    for repo in repos:   # the repositories exist (what is in them now is garbage)
        upload(seed, repo, os.urandom(100))
    nodes = [url_a(), url_b()]
    deadline = time.monotonic() + RACE_SECONDS
    live: dict[tuple[str, str], Image] = {}
    tags: dict[tuple[str, str], Image] = {}
    lock = threading.Lock()
    stats = {"pushes": 0, "repushes": 0, "deletes": 0, "retries": 0, "most attempts": 0, "mounts": 0,
             "failed mounts": 0, "uploads": 0, "present": 0}
    problems: list[str] = []

    def bump(key: str, n: int = 1):
        with lock:
            stats[key] += n

    def send_blob(c: Client, other: Client, repo: str, blob, again: bool):
        """HEAD, then a mount (shared layers) or an upload; again: no HEAD, no chunks."""
        if not again and blob_present(c, repo, blob.digest):
            bump("present")
            return
        r = random.random()
        if any(blob is x for x in shared) and (again or r < 0.6):
            src = random.choice([x for x in repos if x != repo])
            m = send(c, "POST", f"/v2/{repo}/blobs/uploads/?mount={blob.digest}&from={src}")
            expect_status(m, (201, 202), f"mount {blob.digest} from {src}")
            if m.status == 201:
                bump("mounts")
                return
            bump("failed mounts")   # not there (any more): upload into the session it opened
            put = send(c, "PUT", add_query(location_path(m.header("Location")), digest=blob.digest),
                       body=blob.data, headers=OCTET)
            expect_status(put, 201, f"upload into the session a failed mount opened ({repo})")
        elif r < 0.8 and not again:
            upload(c, repo, blob.data, chunk_clients=[c, other])
        else:
            upload(c, repo, blob.data)
        bump("uploads")

    def push(c: Client, other: Client, repo: str, ref: str, img: Image):
        for attempt in range(1, 21):
            for blob in (img.config, *img.layers):
                # Again the quickest way (a mount or one POST): the window before the PUT
                # is what a sweep hits.
                send_blob(c, other, repo, blob, attempt > 1)
            r = send(c, "PUT", f"/v2/{repo}/manifests/{ref}", body=img.manifest.data,
                     headers={"Content-Type": img.manifest.media_type})
            if r.status == 201:
                assert r.header("Docker-Content-Digest") == img.digest, r.summary()
                with lock:
                    stats["most attempts"] = max(stats["most attempts"], attempt)
                return
            assert r.status == 400 and b"MANIFEST_BLOB_UNKNOWN" in r.body, \
                f"manifest PUT {repo}:{ref}: {r.summary()}"
            bump("retries")
        raise AssertionError(f"manifest PUT {repo}:{ref}: blobs collected under it 20 times running")

    def client(i: int):
        repo = repos[i % RACE_REPOS]
        tag = f"c{i}"
        mine: list[Image] = []
        it = 0
        try:
            while time.monotonic() < deadline:
                c = Client(nodes[(i + it) % 2], timeout=60)
                other = Client(nodes[(i + it + 1) % 2], timeout=60)
                a, b = random.sample(shared, 2)
                img = image_with([a, b, random_layer(1024)])
                push(c, other, repo, tag, img)
                with lock:
                    live[(repo, img.digest)] = img
                    tags[(repo, tag)] = img
                bump("pushes")
                mine.append(img)
                if len(mine) > 2:
                    old = mine.pop(0)
                    with lock:
                        del live[(repo, old.digest)]
                    expect_status(send(other, "DELETE", f"/v2/{repo}/manifests/{old.digest}"), 202,
                                  f"DELETE {repo}@{old.digest}")
                    bump("deletes")
                    if it % 2:
                        push(other, c, repo, old.digest, old)   # the same image again
                        with lock:
                            live[(repo, old.digest)] = old
                        mine.append(old)
                        bump("repushes")
                it += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            with lock:
                problems.append(f"client {i}: {type(e).__name__}: {e}")

    with GcLoop(env("PIER_STATE_DIR")) as loop_a, GcLoop(state_b()) as loop_b:
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(RACE_SECONDS + 60)
        assert not any(t.is_alive() for t in threads), "clients still running a minute after the race"
    report = f"{stats}; {loop_a.summary()}; {loop_b.summary()}"
    print(f"# race: {report}")
    assert not problems, f"{len(problems)} clients failed ({report}): " + " | ".join(problems[:5])
    assert not loop_a.errors and not loop_b.errors, (loop_a.errors + loop_b.errors)[:5]
    assert loop_a.sweeps + loop_b.sweeps >= 2 and loop_a.blobs + loop_b.blobs > 0, \
        f"the sweeps did not race the clients: {report}"
    assert stats["deletes"] > 0 and stats["repushes"] > 0, report

    def verify(when: str):
        found = []
        for k, ((repo, digest), img) in enumerate(sorted(live.items())):
            found += pull_problems(nodes[k % 2], repo, digest, img)
        for k, ((repo, tag), img) in enumerate(sorted(tags.items())):
            if (repo, img.digest) in live:
                found += pull_problems(nodes[(k + 1) % 2], repo, tag, img)
        assert not found, f"{when}: {len(found)} problems ({report}): " + " | ".join(found[:5])

    verify("right after the race")
    final = gc("--grace", "0")
    assert final.busy == 0, final
    verify("after a final sweep")
    assert_store_collected("after the race and a final sweep")


PULL_IMAGES = 12


def test_gc_racing_pull_through_imports_and_batch_deletes_serves_no_wrong_bytes_and_every_image_pulls_after():
    """20 clients on both nodes pull images that share layers through a cache rule (manifest
    by tag, then every blob, each checked against its digest; a quarter of them blobs alone)
    while a client deletes cached images with BatchDeleteImage and two loops sweep with
    grace 0: a pull of a deleted image imports it again. Afterwards every image pulls from
    both nodes and a final sweep leaves nothing unreferenced.

    While the race runs, a pull may also miss what was deleted under it, and that is
    counted, not failed (every count is printed): a tag GET that imports the image while
    BatchDeleteImage deletes it may answer 404 MANIFEST_UNKNOWN (the import stores the
    manifest, the delete removes it, the import reads it back to serve it and finds
    nothing); a blob GET may answer 404 when nothing references the blob any more (its
    image was deleted, or it was fetched alone) and the sweep, with grace 0, removes it
    meanwhile, even after the worker answered with X-Sendfile (Apache's own 404 then).
    What fails the test: a manifest or blob with other bytes than its digest, any other
    status, and any image that does not pull, whole, from both nodes once the race is over.
    """
    with DockerRegistry() as up, TempDir() as tmp:
        base = [random_layer(4096), random_layer(2048)]
        images = []
        for j in range(PULL_IMAGES):
            path = tmp.sub(f"img{j}")
            layout = OciLayout(path)
            img = layout.add_image([base[j % 2], random_layer(1024), random_layer(3000)])
            layout.tag(img.manifest, "1.0")
            up.push_layout(path, "1.0", f"library/app{j}")
            images.append(img)
        with CacheRule(up.url) as rule:
            names = [rule.repo(f"library/app{j}") for j in range(PULL_IMAGES)]
            nodes = [url_a(), url_b()]
            ecr = ecr_client()
            deadline = time.monotonic() + RACE_SECONDS
            lock = threading.Lock()
            problems: list[str] = []
            stats = {"pulls": 0, "deleted": 0, "manifest 404": 0, "blob 404 (OCI)": 0,
                     "blob 404 (Apache, after X-Sendfile)": 0}
            seen_404: list[str] = []

            def race_pull(node: str, j: int, blobs_only: bool) -> list[str]:
                repo, image = names[j], images[j]
                if not blobs_only:
                    r = send(Client(node, timeout=60), "GET", f"/v2/{repo}/manifests/1.0",
                             headers={"Accept": image.manifest.media_type})
                    if r.status == 404 and b"MANIFEST_UNKNOWN" in r.body:
                        with lock:
                            stats["manifest 404"] += 1
                            seen_404.append(f"manifest {repo}:1.0: {r.text[:160]}")
                        return []
                    if r.status != 200 or sha256_digest(r.body) != image.digest:
                        return [f"{node} {repo}:1.0: manifest {r.status}, digest {sha256_digest(r.body)} "
                                f"(expected {image.digest}): {r.body[:200]!r}"]
                out = []
                for blob in (image.config, *image.layers):
                    b = get_blob(node, repo, blob.digest)
                    if b.status == 404:
                        oci = "json" in (b.header("Content-Type") or "")
                        with lock:
                            stats["blob 404 (OCI)" if oci else "blob 404 (Apache, after X-Sendfile)"] += 1
                            seen_404.append(f"blob {repo}@{blob.digest} on {node}: {b.body[:120]!r}")
                    elif not b.complete or b.digest != blob.digest:
                        out.append(f"{node} {repo}: blob {blob.digest}: {b.summary()[:400]}")
                return out

            def puller(i: int):
                k = 0
                while time.monotonic() < deadline:
                    j = random.randrange(PULL_IMAGES)
                    # A quarter of the clients GET blobs alone: imports no manifest references.
                    found = race_pull(nodes[(i + k) % 2], j, blobs_only=(i % 4 == 3))
                    with lock:
                        stats["pulls"] += 1
                        problems.extend(f"client {i}: {p}" for p in found)
                    k += 1

            def deleter():
                while time.monotonic() < deadline:
                    js = random.sample(range(PULL_IMAGES), 3)
                    for j in js:
                        try:
                            out = ecr.batch_delete_image(repositoryName=names[j],
                                                         imageIds=[{"imageDigest": images[j].digest}])
                        except Exception as e:  # noqa: BLE001 - not pulled yet, or the API failed
                            if "RepositoryNotFoundException" not in str(e):
                                with lock:
                                    problems.append(f"BatchDeleteImage {names[j]}: {e}")
                            continue
                        bad = [f for f in out.get("failures", []) if f.get("failureCode") != "ImageNotFound"]
                        with lock:
                            stats["deleted"] += len(out.get("imageIds", []))
                            problems.extend(f"BatchDeleteImage {names[j]}: {f}" for f in bad)
                    time.sleep(0.05)

            with GcLoop(env("PIER_STATE_DIR")) as loop_a, GcLoop(state_b()) as loop_b:
                threads = [threading.Thread(target=puller, args=(i,), daemon=True) for i in range(CLIENTS)]
                threads.append(threading.Thread(target=deleter, daemon=True))
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(RACE_SECONDS + 60)
                assert not any(t.is_alive() for t in threads), "clients still running a minute after the race"
            report = f"{stats}; {loop_a.summary()}; {loop_b.summary()}"
            print(f"# pull-through race: {report}")
            if seen_404:
                print(f"# 404s while deletes and sweeps raced the pulls, e.g.: {seen_404[:3]}")
            assert not problems, f"{len(problems)} problems ({report}): " + " | ".join(problems[:5])
            assert not loop_a.errors and not loop_b.errors, (loop_a.errors + loop_b.errors)[:5]
            assert stats["deleted"] > 0 and loop_a.blobs + loop_b.blobs > 0, \
                f"nothing was deleted and collected during the race: {report}"
            for when in ("right after the race", "after a final sweep"):
                if when != "right after the race":
                    final = gc("--grace", "0")
                    assert final.busy == 0, final
                found = []
                for j in range(PULL_IMAGES):
                    for node in nodes:
                        found += pull_problems(node, names[j], "1.0", images[j])
                assert not found, f"{when}: " + " | ".join(found[:5])
            # The pulls just made imported again what the final sweep may take; sweep once
            # more and look at the store as a whole.
            gc("--grace", "0")
            assert_store_collected("after the pull-through race and a final sweep")
