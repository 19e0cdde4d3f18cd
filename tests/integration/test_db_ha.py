"""Beyond one database server: a streaming standby promoted while clients push and pull,
PgBouncer in front of the database (session pooling works, transaction pooling does not),
and HAProxy in front of two nodes, one of which stops during a pull storm.

Each test starts its own PostgreSQL clusters (never node A's), PgBouncer, HAProxy and Pier
nodes (halib, pierlib.ExtraNode) and stops all of them whatever happens. What these tests
show is written up in docs/operations.md, "Beyond one database server"."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from collections import Counter
from contextlib import ExitStack

from halib import (
    HAProxy, Log, PgBouncer, PgCluster, Pusher, attempt, base_port, blob_dir, fresh_node, push_one,
    verify_image,
)
from pierlib import Client, admin_creds, client_a, push_image, sha256_digest, unique_repo, wait_until

# Clusters and PgBouncer listen only on unix sockets in their own directories under
# $PIER_TEST_DIR, so these numbers name sockets and cannot collide with another run.
PRIMARY_PORT, STANDBY_PORT, BOUNCER_PORT = 5432, 5433, 6432
# Pier nodes and HAProxy: node A's port plus these (upstreams use + 20 and above).
NODE_FAILOVER, NODE_CRASH, NODE_SESSION, NODE_TRANSACTION = 15, 18, 16, 17
NODE_LB_1, NODE_LB_2, HAPROXY = 12, 13, 14

# Once the standby is promoted, how long clients may still see 503 before every request
# works again (a worker notices its dead connection on its next query, reconnects, and
# libpq skips the old primary: connection refused, then the standby is read-write).
AFTER_PROMOTION = 3.0
# How long the primary stays down before promotion (what a failover manager takes to decide).
DECISION = 1.0


def _failover(label: str, offset: int, stop_mode: str, synchronous: bool = False) -> None:
    with ExitStack() as stack:
        primary = stack.enter_context(PgCluster(f"{label}-primary", PRIMARY_PORT))
        primary.initdb().start()
        primary.create_database()
        standby = stack.enter_context(primary.standby(f"{label}-standby", STANDBY_PORT))
        standby.start()
        if synchronous:
            # Only now: with it, the primary waits for a standby on every commit, and the
            # standby must not inherit it (once promoted it has no standby to wait for).
            primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'")
            primary.sql("SELECT pg_reload_conf()")
        sync = "sync" if synchronous else "async"
        streaming = wait_until(lambda: primary.sql("SELECT state, sync_state FROM pg_stat_replication",
                                                   "postgres") == [["streaming", sync]], 30, 0.2)
        assert streaming, ("precondition missing: the standby does not stream "
                           f"({sync}): {primary.sql('SELECT * FROM pg_stat_replication', 'postgres')}")
        # Both servers, in order; libpq takes the first that accepts writes.
        database = (f"host={primary.run},{standby.run} port={primary.port},{standby.port} "
                    "user=pier dbname=pier target_session_attrs=read-write")
        node = stack.enter_context(fresh_node(label, offset, PIER_DATABASE=database, PIER_WORKERS="6",
                                              PIER_BLOB_ROOT=blob_dir(f"{label}-blobs")))
        client = Client(node.url, auth=node.creds(), timeout=30)
        log = Log()
        pushers = [Pusher(client, f"failover/app{i}", log, f"c{i}") for i in range(3)]
        stack.callback(lambda: [p.stop.set() for p in pushers])  # threads end even if we fail

        def acked() -> int:
            return sum(len(p.acked) for p in pushers)

        for p in pushers:
            p.start()
        assert wait_until(lambda: acked() >= 6, 30), f"clients pushed nothing before the failover: {log.snapshot()[-5:]}"
        t_stop = time.monotonic()
        primary.stop(stop_mode)
        # A load balancer's health check (GET /v2/ without credentials) gets a prompt
        # answer without a primary: 401 from a worker that has not noticed yet, 503 from
        # one that has (docs/operations.md says what HAProxy then does).
        t_check = time.monotonic()
        check = Client(node.url, auth=None, timeout=10).get("/v2/")
        assert check.status in (401, 503) and time.monotonic() - t_check < 2.0, \
            f"the health check request without a primary: {check.summary()}"
        time.sleep(max(0.0, DECISION - (time.monotonic() - t_stop)))
        t_promote = time.monotonic()
        standby.promote()
        t_promoted = time.monotonic()
        before = acked()
        assert wait_until(lambda: acked() >= before + 6, 30), \
            f"pushes did not resume after the promotion: {log.snapshot()[-5:]}"
        time.sleep(1.0)
        for p in pushers:
            p.join()

        attempts = log.snapshot()
        wrong = [o for o in attempts if o.status not in (200, 201, 429, 503)]
        assert not wrong, f"clients saw more than 503 during the failover: {wrong[:8]}"
        unavailable = [o for o in attempts if o.status == 503]
        assert unavailable, "no request failed while no primary existed: did the test stop the primary?"
        bare = [o for o in unavailable if not o.retry_after]
        assert not bare, f"503 without Retry-After: {bare[:5]}"
        first, last = unavailable[0].t - t_stop, unavailable[-1].t - t_promoted
        assert first > -1.0, f"503 {-first:.2f}s before the primary stopped: {unavailable[:3]}"
        assert last <= AFTER_PROMOTION, (
            f"clients still saw 503 {last:.2f}s after the promotion (allowed {AFTER_PROMOTION}s): "
            f"{[o for o in unavailable if o.t > t_promoted][-5:]}")
        resumed = [o for o in attempts if o.t >= t_promoted and o.status in (200, 201)]
        assert resumed and resumed[0].t - t_promoted <= AFTER_PROMOTION, \
            f"no success within {AFTER_PROMOTION}s of the promotion: {attempts[-5:]}"
        gave_up = [f for p in pushers for f in p.failures]
        assert not gave_up, f"clients gave up: {gave_up[:3]}"

        # Nothing acknowledged is lost: every image whose manifest PUT answered 201 comes
        # back from the new primary, blobs verified.
        images = [(p.repo, tag, img) for p in pushers for tag, img in p.acked]
        for repo, tag, img in images:
            verify_image(client, repo, tag, img)
        assert standby.sql("SELECT pg_is_in_recovery()") == [["f"]], "the standby was not promoted"
        tags = int(standby.sql("SELECT count(*) FROM tags")[0][0])
        assert tags >= len(images), f"the new primary holds {tags} tags, {len(images)} pushes were acknowledged"
        print(f"# {label}: primary stopped ({stop_mode}), standby promoted {t_promote - t_stop:.2f}s later "
              f"(took {t_promoted - t_promote:.2f}s); {len(unavailable)} of {len(attempts)} requests got 503, "
              f"from {first:+.2f}s after the stop to {last:+.2f}s after the promotion; "
              f"{len(images)} acknowledged images verified on the new primary")


def test_standby_promoted_after_the_primary_stops_loses_no_acknowledged_push():
    """Planned switchover or a clean stop: asynchronous streaming replication, fast
    shutdown (the primary sends all its WAL to the standby before it exits)."""
    _failover("failover", NODE_FAILOVER, "fast")


def test_standby_promoted_after_the_primary_crashes_loses_nothing_with_synchronous_commit():
    """A crash (immediate shutdown: no last WAL is sent). Only synchronous replication
    guarantees that every commit Pier acknowledged is on the standby."""
    _failover("crash", NODE_CRASH, "immediate", synchronous=True)


WORKERS = 4


def _bounced_requests(client: Client, repo: str, images, threads: int = 4, rounds: int = 6) -> Log:
    """Several clients at once pull every image, so that every worker of the node serves
    some; returns what they saw (each request retried on 503 like a registry client)."""
    log = Log()
    errors = []

    def one():
        for _ in range(rounds):
            for tag, img in images:
                r = attempt(client, log, "GET", f"/v2/{repo}/manifests/{tag}", "pull-manifest", 20,
                            headers={"Accept": img.manifest.media_type})
                if r is None or r.status != 200 or r.body != img.manifest.data:
                    errors.append(r.summary() if r else "no answer")

    ts = [threading.Thread(target=one, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts), "requests through PgBouncer hang"
    assert not errors, f"pulls failed through PgBouncer: {errors[:3]}"
    return log


def _all_answered(log: Log, what: str) -> None:
    """Not one attempt failed: a worker whose connection PgBouncer cut replaces it before
    use (or retries the statement once on a new one), so clients never see it."""
    failed = [o for o in log.snapshot() if o.status != 200]
    assert not failed, f"{what}: {len(failed)} requests failed: {failed[:8]}"


def test_pgbouncer_session_pooling_serves_pushes_and_pulls_and_survives_a_restart():
    with ExitStack() as stack:
        db = stack.enter_context(PgCluster("session-db", PRIMARY_PORT))
        db.initdb().start()
        db.create_database()
        # Session pooling gives each client connection (one per pierd worker, for its whole
        # life) a server connection of its own: the pool must hold every worker.
        bouncer = stack.enter_context(PgBouncer("session-bouncer", db, BOUNCER_PORT, "session",
                                                pool_size=WORKERS + 2))
        node = stack.enter_context(fresh_node("session", NODE_SESSION, PIER_DATABASE=bouncer.conninfo(),
                                              PIER_WORKERS=str(WORKERS),
                                              PIER_BLOB_ROOT=blob_dir("session-blobs")))
        client = Client(node.url, auth=node.creds(), timeout=30)
        repo = "bouncer/app"
        images = [(f"v{i}", push_one(client, repo, f"v{i}", layer_size=64 * 1024)) for i in range(3)]
        for tag, img in images:
            verify_image(client, repo, tag, img)
        _bounced_requests(client, repo, images)
        clients = [row for row in bouncer.admin("SHOW CLIENTS").splitlines() if row.split("|")[2:3] == ["pier"]]
        assert len(clients) >= WORKERS, f"the workers do not go through PgBouncer: {clients}"
        for what, action in (("RECONNECT while idle", lambda: bouncer.admin("RECONNECT pier")),
                             ("restart while idle", bouncer.restart)):
            action()
            _all_answered(_bounced_requests(client, repo, images), f"after PgBouncer {what}")
            tag = f"after-{len(images)}"
            images.append((tag, push_one(client, repo, tag, layer_size=64 * 1024)))
        for tag, img in images:
            verify_image(client, repo, tag, img)
        assert int(db.sql("SELECT count(*) FROM tags")[0][0]) == len(images)


def test_pgbouncer_transaction_pooling_breaks_named_prepared_statements():
    """Pier prepares named statements once per connection. In transaction pooling the next
    transaction of a worker may run on another server connection, where the statement is
    missing or was already prepared by another worker: requests fail with 500. (PgBouncer
    1.18, Debian 12's, has no prepared statement support in this mode.) Should this test
    ever fail because everything works, update docs/operations.md."""
    with ExitStack() as stack:
        db = stack.enter_context(PgCluster("transaction-db", PRIMARY_PORT))
        db.initdb().start()
        db.create_database()
        bouncer = stack.enter_context(PgBouncer("transaction-bouncer", db, BOUNCER_PORT, "transaction",
                                                pool_size=2))
        node = stack.enter_context(fresh_node("transaction", NODE_TRANSACTION, PIER_DATABASE=bouncer.conninfo(),
                                              PIER_WORKERS=str(WORKERS),
                                              PIER_BLOB_ROOT=blob_dir("transaction-blobs")))
        client = Client(node.url, auth=node.creds(), timeout=30)
        statuses = Counter()
        # Concurrent, so that several workers (several PgBouncer clients) share the two
        # server connections: one worker alone tends to keep getting the same one back.
        paths = [p for i in range(10) for p in ("/v2/", "/v2/_catalog", f"/v2/bouncer/tx{i}/tags/list")]
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            for status in pool.map(lambda path: client.get(path).status, paths):
                statuses[status] += 1
        assert statuses[500] > 0, f"every request worked in transaction pooling: {dict(statuses)}"
        log = node.log()
        assert 'prepared statement "' in log and ("already exists" in log or "does not exist" in log), \
            f"the 500s are not the prepared statements' failures: {log[-1500:]}"
        print(f"# PgBouncer transaction pooling: answers {dict(sorted(statuses.items()))}")


def test_haproxy_sends_a_pull_storm_to_the_other_node_when_one_stops():
    c = client_a()
    repo = unique_repo("lb")
    image = push_image(c, repo, "v1", nlayers=3, layer_size=1024 * 1024)
    targets = [(f"/v2/{repo}/manifests/v1", image.manifest.data, {"Accept": image.manifest.media_type}),
               (f"/v2/{repo}/manifests/{image.digest}", image.manifest.data, {"Accept": image.manifest.media_type})]
    targets += [(f"/v2/{repo}/blobs/{b.digest}", b.data, {}) for b in (image.config, *image.layers)]
    with ExitStack() as stack:
        n1 = stack.enter_context(fresh_node("lb-1", NODE_LB_1))
        n2 = stack.enter_context(fresh_node("lb-2", NODE_LB_2))
        lb = stack.enter_context(HAProxy("haproxy", base_port() + HAPROXY, [("node1", n1.port), ("node2", n2.port)]))
        assert wait_until(lambda: all(s["status"] == "UP" for s in lb.servers().values()), 15), \
            f"precondition missing: HAProxy does not see both nodes up: {lb.servers()}"
        client = Client(lb.url, auth=admin_creds(), timeout=30)
        log = Log()
        done = threading.Event()
        stack.callback(done.set)
        failures, pulls = [], Counter()

        def storm(seed: int):
            rnd = random.Random(seed)
            while not done.is_set():
                path, want, headers = rnd.choice(targets)
                # containerd's way: retry a refused or cut connection and 5xx from the proxy.
                r = attempt(client, log, "GET", path, "pull", 10, retry_on=(502, 503, 504), headers=headers)
                if r is None or r.status != 200:
                    failures.append(r.summary() if r else f"GET {path}: no complete answer after 10 retries")
                elif sha256_digest(r.body) != sha256_digest(want):
                    failures.append(f"GET {path}: {len(r.body)} bytes that do not verify")
                else:
                    pulls["after" if stopped.is_set() else "before"] += 1

        stopped = threading.Event()
        threads = [threading.Thread(target=storm, args=(i,), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(3)
        at_stop = lb.servers()
        t_stop = time.monotonic()
        n1.stop()  # quickstart.sh stop: Apache stops at once (transfers in flight are cut), then pierd
        stopped.set()
        t_stopped = time.monotonic()
        time.sleep(7)
        done.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "pulls through HAProxy hang"
        end = lb.servers()

        assert not failures, f"{len(failures)} pulls failed for good: {failures[:3]}"
        assert all(int(at_stop[s]["stot"]) > 0 for s in ("node1", "node2")), \
            f"precondition missing: both nodes should serve before the stop: {at_stop}"
        assert end["node1"]["status"].startswith("DOWN"), f"HAProxy did not mark the stopped node down: {end['node1']}"
        assert end["node2"]["status"] == "UP", end["node2"]
        assert int(end["node2"]["stot"]) > int(at_stop["node2"]["stot"]), "node2 took nothing over"
        assert pulls["before"] >= 20 and pulls["after"] >= 50, f"too few pulls to show anything: {dict(pulls)}"
        attempts = log.snapshot()
        retried = [o for o in attempts if o.status != 200]
        cut = Counter(o.status or o.error for o in retried)
        print(f"# HAProxy: {pulls['before']} pulls before and {pulls['after']} after node1 stopped "
              f"(stop took {t_stopped - t_stop:.2f}s); client retries {dict(cut)}; "
              f"HAProxy retries {end['node1'].get('wretr')}/{end['node2'].get('wretr')}, "
              f"redispatches {end['node1'].get('wredis')}/{end['node2'].get('wredis')}")
