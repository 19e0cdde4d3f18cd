"""Pull-through cache: tags are re-checked with a HEAD after the rule's
refresh interval, bodies fetched only when the upstream digest moved;
manifests by digest are never re-checked."""

import threading
import time

from pierlib import (
    TempDir, build_image_layout, client_a, client_b, expect_status, read_layout,
)
from upstreams import CacheRule, DockerRegistry, cache_state, get_manifest, image_blobs, read_blob

REFRESH = 3


def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def test_tag_revalidated_with_head_after_interval_and_follows_the_upstream():
    with DockerRegistry() as up, TempDir() as tmp:
        v1 = build_image_layout(tmp.sub("v1"), "1.0", layer_sizes=(1024, 50 * 1024))
        v2 = build_image_layout(tmp.sub("v2"), "next", layer_sizes=(1500, 60 * 1024))
        up.push_layout(tmp.sub("v1"), "1.0", "library/app")
        up.push_layout(tmp.sub("v2"), "next", "library/app")
        v2_raw, v2_desc = read_layout(tmp.sub("v2"), "next")
        with CacheRule(up.url, refresh=REFRESH) as rule:
            repo = rule.repo("library/app")
            tag_path = up.manifest_pattern("library/app", "1.0")
            a, b = client_a(), client_b()
            mark = up.settle()

            imported = time.monotonic()
            r = expect_status(get_manifest(a, repo, "1.0"), 200, "first pull")
            assert cache_state(r) == "miss" and r.header("Docker-Content-Digest") == v1.digest, r.summary()
            assert up.wait_for_count(1, "GET", tag_path, since=mark) == 1, up.summary(mark)

            # Within the interval: served from the cache, the upstream is not asked.
            r = expect_status(get_manifest(b, repo, "1.0"), 200, "pull within the interval")
            assert cache_state(r) == "hit" and r.header("Docker-Content-Digest") == v1.digest, r.summary()
            up.settle()
            assert up.count("HEAD", tag_path, status=None, since=mark) == 0, up.summary(mark)

            # After the interval, unchanged upstream: one HEAD, no GET, same digest.
            sleep_until(imported + REFRESH + 0.5)
            r = expect_status(get_manifest(a, repo, "1.0"), 200, "pull after the interval")
            checked = time.monotonic()
            assert cache_state(r) == "revalidated", r.summary()
            assert r.header("Docker-Content-Digest") == v1.digest and r.body == v1.manifest.data, r.summary()
            up.wait_for_count(1, "HEAD", tag_path, since=mark)
            up.settle()
            assert up.count("HEAD", tag_path, since=mark) == 1, up.summary(mark)
            assert up.count("GET", tag_path, since=mark) == 1, up.summary(mark)

            # The tag moves upstream; within the (renewed) interval Pier still serves the old digest.
            assert up.put_manifest("library/app", "1.0", v2_raw, v2_desc["mediaType"]) == 201
            r = expect_status(get_manifest(b, repo, "1.0"), 200, "pull right after the tag moved")
            assert time.monotonic() - checked < REFRESH, "the test was too slow to check the interval"
            assert cache_state(r) == "hit" and r.header("Docker-Content-Digest") == v1.digest, r.summary()
            up.settle()
            assert up.count("HEAD", tag_path, status=None, since=mark) == 1, up.summary(mark)

            # After the interval: HEAD sees the new digest, GET fetches it, Pier serves it.
            sleep_until(checked + REFRESH + 0.5)
            r = expect_status(get_manifest(a, repo, "1.0"), 200, "pull after the tag moved")
            assert r.header("Docker-Content-Digest") == v2.digest and r.body == v2.manifest.data, r.summary()
            assert cache_state(r) in ("miss", "revalidated"), r.summary()
            up.wait_for_count(2, "GET", tag_path, since=mark)
            up.settle()
            assert up.count("HEAD", tag_path, since=mark) == 2, up.summary(mark)
            assert up.count("GET", tag_path, since=mark) == 2, up.summary(mark)
            for blob in image_blobs(v2):
                got = read_blob(client_b().base_url, f"/v2/{repo}/blobs/{blob.digest}")
                assert got.complete and got.digest == blob.digest, got.summary()
            r = expect_status(get_manifest(b, repo, "1.0"), 200)
            assert cache_state(r) == "hit" and r.header("Docker-Content-Digest") == v2.digest, r.summary()
            # The old manifest stays reachable by digest.
            r = expect_status(get_manifest(a, repo, v1.digest), 200)
            assert r.body == v1.manifest.data, r.summary()


def test_refresh_zero_checks_every_tag_pull_but_never_a_digest():
    with DockerRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("src"), "latest", layer_sizes=(1024,))
        up.push_layout(tmp.sub("src"), "latest", "tools/jq")
        with CacheRule(up.url, refresh=0) as rule:
            assert rule.created["refreshIntervalSeconds"] == 0, rule.created
            repo = rule.repo("tools/jq")
            tag_path = up.manifest_pattern("tools/jq", "latest")
            mark = up.settle()
            states = []
            for client in (client_a(), client_b(), client_a(), client_b()):
                r = expect_status(get_manifest(client, repo, "latest"), 200)
                assert r.header("Docker-Content-Digest") == img.digest, r.summary()
                states.append(cache_state(r))
            assert states == ["miss", "revalidated", "revalidated", "revalidated"], states
            up.wait_for_count(3, "HEAD", tag_path, since=mark)
            up.settle()
            assert up.count("HEAD", tag_path, since=mark) == 3, up.summary(mark)
            assert up.count("GET", tag_path, since=mark) == 1, up.summary(mark)
            mark = up.mark()
            for client in (client_a(), client_b()):
                r = expect_status(get_manifest(client, repo, img.digest), 200)
                assert cache_state(r) == "hit" and r.body == img.manifest.data, r.summary()
            up.settle()
            assert up.mark() == mark, f"a pull by digest reached the upstream: {up.summary(mark)}"


def test_concurrent_pulls_of_a_tag_due_for_revalidation_send_one_head():
    with DockerRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("src"), "1.0", layer_sizes=(1024,))
        up.push_layout(tmp.sub("src"), "1.0", "library/busy")
        with CacheRule(up.url, refresh=2) as rule:
            repo = rule.repo("library/busy")
            tag_path = up.manifest_pattern("library/busy", "1.0")
            r = expect_status(get_manifest(client_a(), repo, "1.0"), 200)
            imported = time.monotonic()
            assert cache_state(r) == "miss", r.summary()
            mark = up.settle()
            sleep_until(imported + 2.5)
            n = 12
            barrier = threading.Barrier(n)
            results = [None] * n

            def pull(i):
                client = client_a() if i % 2 == 0 else client_b()
                barrier.wait(20)
                results[i] = get_manifest(client, repo, "1.0")
            threads = [threading.Thread(target=pull, args=(i,), daemon=True) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            states = []
            for r in results:
                assert r is not None and r.status == 200 and r.header("Docker-Content-Digest") == img.digest, \
                    (r.summary() if r is not None else "no answer")
                states.append(cache_state(r))
            assert set(states) <= {"revalidated", "hit"}, states
            up.settle()
            heads = up.count("HEAD", tag_path, since=mark)
            assert heads == 1 and up.count("GET", tag_path, since=mark) == 0, (
                f"{heads} HEADs upstream for {n} concurrent pulls of one tag due for revalidation "
                f"(states {states}): {up.summary(mark)}")
