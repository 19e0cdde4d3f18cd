"""Pull-through cache when the upstream fails: stale serving, clear errors,
"not found upstream" remembered, and upstreams that send wrong or truncated
blobs (nothing published, the client's transfer is broken off, a healthy
upstream fixes it)."""

import time

from pierlib import (
    TempDir, assert_oci_error, blob_files, blob_row_count, build_image_layout, client_a, client_b, docker_ref,
    expect_status, files_for_digest, skopeo_copy, url_a, url_b,
)
from upstreams import (
    CacheRule, DockerRegistry, DyingUpstream, FakeRegistry, LyingUpstream, assert_layout_holds, cache_state,
    fetch_tmp_files, get_manifest, image_blobs, read_blob, wait_for_stats,
)

UPSTREAM_WORDS = ("upstream",)
BROKEN_READ_TIMEOUT = 6


def test_upstream_down_serves_cache_stale_and_fails_clearly_for_the_rest():
    with DockerRegistry() as up, TempDir() as tmp:
        one = build_image_layout(tmp.sub("one"), "1.0", layer_sizes=(1024, 80 * 1024))
        two = build_image_layout(tmp.sub("two"), "2.0", layer_sizes=(2048, 90 * 1024))
        up.push_layout(tmp.sub("one"), "1.0", "library/web")
        up.push_layout(tmp.sub("two"), "2.0", "library/web")
        with CacheRule(up.url, refresh=2) as rule:
            repo = rule.repo("library/web")
            back = tmp.sub("back")
            skopeo_copy(docker_ref(repo, "1.0"), f"oci:{back}:1.0")
            imported = time.monotonic()
            assert_layout_holds(back, "1.0", one)

            up.stop()
            time.sleep(max(0.0, imported + 2.5 - time.monotonic()))
            a, b = client_a(), client_b()
            # The cached tag, past its interval: served, marked stale.
            r = expect_status(get_manifest(a, repo, "1.0"), 200, "cached tag, upstream down")
            assert r.header("Docker-Content-Digest") == one.digest and r.body == one.manifest.data, r.summary()
            assert cache_state(r) == "stale", r.summary()
            warning = r.header("Warning")
            assert warning and warning.startswith("110") and "stale" in warning.lower(), r.summary()
            # By digest: never re-checked, a plain hit.
            r = expect_status(get_manifest(b, repo, one.digest), 200, "cached digest, upstream down")
            assert cache_state(r) == "hit" and r.header("Warning") is None, r.summary()
            for blob in image_blobs(one):
                got = read_blob(url_b(), f"/v2/{repo}/blobs/{blob.digest}")
                assert got.complete and got.digest == blob.digest and got.header("X-Pier-Cache") == "hit", \
                    got.summary()
            back2 = tmp.sub("back2")
            skopeo_copy(docker_ref(repo, "1.0", url_b()), f"oci:{back2}:1.0")
            assert_layout_holds(back2, "1.0", one)

            # Not cached: 502 UPSTREAM_UNAVAILABLE naming the upstream failure.
            for client in (a, b):
                r = get_manifest(client, repo, "2.0")
                err = assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", UPSTREAM_WORDS)
                # The rule, not the upstream's address: URLs stay in the log (security review).
                assert rule.prefix in err["message"] and up.host not in err["message"], \
                    f"message should name the rule, not the upstream's URL: {err['message']!r}"
            r = client_a().get(f"/v2/{repo}/blobs/{two.layers[1].digest}")
            err = assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", UPSTREAM_WORDS)
            assert rule.prefix in err["message"] and up.host not in err["message"], \
                f"a blob's error should name the rule too: {err['message']!r}"
            assert not files_for_digest(two.layers[1].digest)
            shown = rule.show()
            assert "connect" in shown.get("lastError", "").lower() and shown["upstreamRegistryUrl"] == up.url, \
                f"rule show lastError: {shown}"
            stats = wait_for_stats(rule.prefix, lambda s: s["stale"] >= 1 and s["upstream_errors"] >= 3)
            assert stats["stale"] >= 1 and stats["upstream_errors"] >= 3, f"cache_stats {stats}"

            # The upstream comes back: the uncached image imports, the cached tag revalidates
            # (once the blob download's failure is no longer shared: 3 s).
            up.start()
            time.sleep(3.2)
            r = expect_status(get_manifest(b, repo, "2.0"), 200, "after the upstream came back")
            assert r.header("Docker-Content-Digest") == two.digest and cache_state(r) == "miss", r.summary()
            for blob in image_blobs(two):
                got = read_blob(url_a(), f"/v2/{repo}/blobs/{blob.digest}")
                assert got.complete and got.digest == blob.digest, got.summary()
            r = expect_status(get_manifest(a, repo, "1.0"), 200)
            assert cache_state(r) == "revalidated" and r.header("Warning") is None, r.summary()


def test_upstream_5xx_and_429_stale_for_cached_errors_for_uncached():
    with FakeRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("src"), "1.0", layer_sizes=(1024,))
        up.add_layout("library/api", tmp.sub("src"), "1.0")
        up.manifests[("library/api", "1.1")] = up.manifests[("library/api", "1.0")]
        with CacheRule(up.url, refresh=1) as rule:
            repo = rule.repo("library/api")
            r = expect_status(get_manifest(client_a(), repo, "1.0"), 200)
            assert cache_state(r) == "miss", r.summary()
            time.sleep(1.3)
            for status, want_status, codes in ((503, 502, ("UPSTREAM_UNAVAILABLE",)),
                                               (429, 429, ("TOOMANYREQUESTS", "UPSTREAM_UNAVAILABLE"))):
                up.fail_status = status
                r = expect_status(get_manifest(client_b(), repo, "1.0"), 200, f"cached tag, upstream {status}")
                assert cache_state(r) == "stale" and r.header("Warning"), r.summary()
                assert r.header("Docker-Content-Digest") == img.digest, r.summary()
                r = get_manifest(client_a(), repo, "1.1")
                err = assert_oci_error(r, want_status, codes, UPSTREAM_WORDS)
                assert str(status) in err["message"], f"message does not name HTTP {status}: {err['message']!r}"
            up.fail_status = None
            r = expect_status(get_manifest(client_a(), repo, "1.1"), 200, "after the upstream recovered")
            assert r.header("Docker-Content-Digest") == img.digest, r.summary()


def test_not_found_upstream_is_404_and_remembered_for_negative_seconds():
    with DockerRegistry() as up, TempDir() as tmp:
        build_image_layout(tmp.sub("src"), "1.0", layer_sizes=(1024,))
        up.push_layout(tmp.sub("src"), "1.0", "library/late")
        with CacheRule(up.url, negative=3) as rule:
            repo = rule.repo("library/late")
            tag_path = up.manifest_pattern("library/late", "2.0")
            mark = up.settle()
            r = get_manifest(client_a(), repo, "2.0")
            assert_oci_error(r, 404, "MANIFEST_UNKNOWN", ("not found upstream",))
            asked = time.monotonic()
            r = get_manifest(client_b(), repo, "2.0")
            assert_oci_error(r, 404, "MANIFEST_UNKNOWN", ("not found upstream",))
            up.settle()
            assert up.count("GET", tag_path, status=404, since=mark) == 1, up.summary(mark)
            # The tag appears upstream: still remembered as missing until negativeCacheSeconds pass.
            up.push_layout(tmp.sub("src"), "1.0", "library/late", dest_ref="2.0")
            if time.monotonic() - asked < 2.5:
                assert_oci_error(get_manifest(client_a(), repo, "2.0"), 404, "MANIFEST_UNKNOWN")
            time.sleep(max(0.0, asked + 3.5 - time.monotonic()))
            r = expect_status(get_manifest(client_a(), repo, "2.0"), 200, "after negativeCacheSeconds")
            assert cache_state(r) == "miss", r.summary()
            up.settle()
            assert up.count("GET", tag_path, status=404, since=mark) == 1, up.summary(mark)
            assert up.count("GET", tag_path, status=200, since=mark) == 1, up.summary(mark)


def _bad_blob_then_healthy_upstream(fake, bad_attr: str, tmp, bases):
    """Shared by the lying and the dying upstream: the bad blob is never published,
    the client's transfer fails (promptly), and a healthy upstream (rule update --url) fixes it."""
    src = tmp.sub("src")
    image = build_image_layout(src, "1.0", layer_sizes=(1024, 40 * 1024, 1536 * 1024))
    big = image.layers[-1]
    fake.add_layout("library/bad", src, "1.0")
    getattr(fake, bad_attr).add(big.digest)
    hung = []
    with CacheRule(fake.url) as rule:
        repo = rule.repo("library/bad")
        files_before, tmp_before = blob_files(), fetch_tmp_files()
        r = expect_status(get_manifest(client_a(), repo, "1.0"), 200, "manifest from the bad upstream")
        assert r.body == image.manifest.data
        # A good blob from the same upstream works ...
        good = read_blob(url_a(), f"/v2/{repo}/blobs/{image.config.digest}")
        assert good.complete and good.digest == image.config.digest, good.summary()
        # ... the bad one never completes and is never published. The read gives up
        # after BROKEN_READ_TIMEOUT s of silence; a connection left open that long is
        # reported at the end of the test.
        for base in bases:
            got = read_blob(base, f"/v2/{repo}/blobs/{big.digest}", timeout=BROKEN_READ_TIMEOUT)
            assert not got.complete, f"a bad blob was delivered completely: {got.summary()}"
            assert got.status != 200 or len(got.body) < big.size, got.summary()
            assert got.digest != big.digest
            if isinstance(got.error, TimeoutError):
                hung.append(f"via {base}: status {got.status}, {len(got.body)} of {got.content_length} bytes, "
                            f"then no close for {BROKEN_READ_TIMEOUT}s")
        # A failed download is shared: a lying upstream's wrong bytes are remembered
        # (negative cache) and not downloaded again per client; a broken transfer is
        # shared with requests that come within a few seconds.
        assert fake.count("GET", fake.blob_pattern("library/bad", big.digest)) == 1, \
            f"a failed download was repeated for each client: {fake.summary()}"
        assert not files_for_digest(big.digest), f"bad blob published: {files_for_digest(big.digest)}"
        assert blob_row_count(big.digest) == 0, "a blobs row exists for the bad blob"
        new_files = sorted(blob_files() - files_before)
        assert all(image.config.digest.split(":")[1] in f for f in new_files), new_files
        leftovers = sorted(fetch_tmp_files() - tmp_before)
        assert not leftovers, f"temporary files left in tmp/fetch: {leftovers}"
        r = client_a().head(f"/v2/{repo}/blobs/{big.digest}")
        assert r.header("X-Pier-Cache") != "hit", r.summary()

        # A healthy upstream with the same image: the pull succeeds.
        with DockerRegistry() as healthy:
            healthy.push_layout(src, "1.0", "library/bad")
            shown = rule.update(url=healthy.url)
            assert shown["upstreamRegistryUrl"] == healthy.url, shown
            back = tmp.sub("back")
            skopeo_copy(docker_ref(repo, "1.0", url_b()), f"oci:{back}:1.0")
            assert_layout_holds(back, "1.0", image)
            assert files_for_digest(big.digest) and blob_row_count(big.digest) == 1
            got = read_blob(url_a(), f"/v2/{repo}/blobs/{big.digest}")
            assert got.complete and got.digest == big.digest and got.header("X-Pier-Cache") == "hit", got.summary()
            assert healthy.count("GET", healthy.blob_pattern("library/bad", big.digest)) == 1, healthy.summary()
    assert not hung, ("the client's connection stayed open after Pier broke the transfer off "
                      "(it should be closed at once): " + "; ".join(hung))


def test_lying_upstream_blob_is_not_published_and_a_healthy_upstream_fixes_it():
    with LyingUpstream() as fake, TempDir() as tmp:
        _bad_blob_then_healthy_upstream(fake, "corrupt", tmp, (url_a(), url_b()))


def test_upstream_dying_mid_blob_publishes_nothing_and_a_healthy_upstream_fixes_it():
    with DyingUpstream() as fake, TempDir() as tmp:
        _bad_blob_then_healthy_upstream(fake, "dying", tmp, (url_b(),))
