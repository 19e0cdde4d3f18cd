"""Pull-through cache: pulls through anonymous, Basic-auth and token upstreams
with skopeo, podman and plain HTTP; single- and multi-arch; by tag and by
digest; second pulls are hits; credentials never show."""

import base64
import os

from pierlib import (
    admin_creds, assert_oci_error,
    OCI_INDEX, Podman, TempDir, build_image_layout, build_large_layout, build_multiarch_layout, child_pids,
    client_a, client_b, docker_ref, expect_status, files_for_digest, image_ref, layout_blob, master_pid,
    psql, psql_value, read_layout, repository_row_count, sha256_digest, skopeo_copy, sql_str, url_a,
    url_b,
)
from upstreams import (
    CacheRule, DockerRegistry, TokenService, assert_layout_holds, cache_state, get_manifest, image_blobs,
    pier_logs, pierctl, read_blob, rule_id, secret_leaks, wait_for_stats,
)


def pull_http(client, repo, ref, image, expect_state=None):
    """GET the manifest and every blob of image through Pier; returns the cache states seen."""
    r = expect_status(get_manifest(client, repo, ref), 200, f"manifest {repo}:{ref}")
    assert r.body == image.manifest.data, f"manifest bytes of {repo}:{ref} differ"
    assert r.header("Docker-Content-Digest") == image.digest, r.summary()
    states = [cache_state(r)]
    for blob in image_blobs(image):
        b = read_blob(client.base_url, f"/v2/{repo}/blobs/{blob.digest}")
        assert b.complete and b.digest == blob.digest, f"blob {blob.digest}: {b.summary()}"
        states.append(b.header("X-Pier-Cache"))
    if expect_state is not None:
        assert states == [expect_state] * len(states), f"X-Pier-Cache of {repo}:{ref}: {states}"
    return states


def assert_no_secret_anywhere(secrets, rule):
    """Not in rule show / rule list / rule list --json, not in the logs, not in the database in clear."""
    outputs = {
        "rule show": rule.show_raw(),
        "rule list": pierctl("rule", "list").stdout,
        "rule list --json": pierctl("rule", "list", "--json").stdout,
    }
    shown = rule.show()
    assert shown["hasCredentials"] is True, shown
    assert rule.prefix in outputs["rule list"] and rule.prefix in outputs["rule list --json"], outputs
    leaks = secret_leaks(secrets, outputs) + secret_leaks(secrets, pier_logs())
    assert not leaks, f"credentials leaked: {leaks}"
    for s in secrets:
        hexed = s.encode().hex()
        n = psql_value("SELECT count(*) FROM cache_rules WHERE position(decode("
                       f"{sql_str(hexed)}, 'hex') IN coalesce(secret_enc, ''::bytea) || "
                       "coalesce(username_enc, ''::bytea)) > 0")
        assert n == "0", "a credential is stored in clear in cache_rules"


def test_anonymous_upstream_skopeo_pull_then_second_pull_hits():
    with DockerRegistry() as up, TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "1.0", layer_sizes=(2048, 64 * 1024, 700 * 1024))
        up.push_layout(src, "1.0", "library/demo")
        with CacheRule(up.url) as rule:
            repo = rule.repo("library/demo")
            mark = up.settle()
            back = tmp.sub("back")
            skopeo_copy(docker_ref(repo, "1.0"), f"oci:{back}:1.0")
            assert_layout_holds(back, "1.0", image)
            up.wait_for_count(1, "GET", up.manifest_pattern("library/demo", "1.0"), since=mark)
            mark2 = up.settle()
            assert up.count("GET", up.manifest_pattern("library/demo", "1.0"), since=mark) == 1, up.summary(mark)
            assert up.count("GET", up.manifest_pattern("library/demo"), since=mark) == 1, up.summary(mark)
            gets = up.blob_gets("library/demo", since=mark)
            assert gets == {b.digest: 1 for b in image_blobs(image)}, f"upstream blob GETs {gets}"
            # What was imported is a cache repository of the rule, with published blobs.
            rows = psql(f"SELECT kind, rule_id FROM repositories WHERE name = {sql_str(repo)}")
            assert rows == [["cache", str(rule_id(rule.prefix))]], rows
            for blob in image_blobs(image):
                assert files_for_digest(blob.digest), f"blob {blob.digest} not published under blobs/"
            # Second pulls, on both nodes: hits, and the upstream hears nothing.
            pull_http(client_a(), repo, "1.0", image, expect_state="hit")
            pull_http(client_b(), repo, "1.0", image, expect_state="hit")
            back2 = tmp.sub("back2")
            skopeo_copy(docker_ref(repo, "1.0", url_b()), f"oci:{back2}:1.0")
            assert_layout_holds(back2, "1.0", image)
            # By digest: the stored manifest, no upstream request either.
            back3 = tmp.sub("back3")
            skopeo_copy(docker_ref(repo, image.digest), f"oci:{back3}:d")
            assert_layout_holds(back3, "d", image)
            r = expect_status(get_manifest(client_a(), repo, image.digest), 200)
            assert cache_state(r) == "hit" and r.body == image.manifest.data, r.summary()
            up.settle()
            assert up.mark() == mark2, f"second pulls reached the upstream: {up.summary(mark2)}"
            # Counters: a miss for the manifest and each blob, hits for the second pulls, and at
            # least every blob's bytes from the upstream.
            blob_bytes = sum(b.size for b in image_blobs(image))

            def counted(s):
                return s["misses"] >= 5 and s["hits"] >= 10 and s["upstream_bytes"] >= blob_bytes
            stats = wait_for_stats(rule.prefix, counted)
            assert counted(stats), f"cache_stats {stats}, blob bytes {blob_bytes}"
            assert stats["stale"] == 0 and stats["upstream_errors"] == 0, stats


def test_podman_pull_by_digest_then_by_tag():
    with DockerRegistry() as up, TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "2.1", layer_sizes=(4096, 300 * 1024))
        up.push_layout(src, "2.1", "team/app")
        with CacheRule(up.url) as rule, Podman() as podman:
            repo = rule.repo("team/app")
            mark = up.settle()
            by_digest = image_ref(repo, image.digest)
            podman.pull(by_digest)
            info = podman.inspect(by_digest)
            assert info["Digest"] == image.digest, f"podman digest {info['Digest']} != {image.digest}"
            up.settle()
            assert up.count("GET", up.manifest_pattern("team/app", image.digest), since=mark) == 1, up.summary(mark)
            assert up.count("GET", up.manifest_pattern("team/app", "2.1"), since=mark) == 0, up.summary(mark)
            assert up.blob_gets("team/app", since=mark) == {b.digest: 1 for b in image_blobs(image)}, \
                up.summary(mark)
            # The tag is imported on its own (one manifest GET), its blobs are already here.
            mark = up.mark()
            podman("rmi", "--all", "--force")
            podman.pull(image_ref(repo, "2.1"))
            info = podman.inspect(image_ref(repo, "2.1"))
            assert info["Digest"] == image.digest, f"podman digest {info['Digest']} != {image.digest}"
            assert info.get("Architecture") == "amd64" and info.get("Os") == "linux", info
            up.settle()
            assert up.count("GET", up.manifest_pattern("team/app", "2.1"), since=mark) == 1, up.summary(mark)
            assert up.blob_gets("team/app", since=mark) == {}, f"blobs fetched again: {up.summary(mark)}"
            r = expect_status(get_manifest(client_b(), repo, "2.1"), 200)
            assert cache_state(r) == "hit" and r.header("Docker-Content-Digest") == image.digest, r.summary()


def test_multiarch_podman_fetches_one_platform_and_skopeo_all_the_rest():
    with DockerRegistry() as up, TempDir() as tmp:
        src = tmp.sub("src")
        index, images = build_multiarch_layout(src, "multi")
        amd64, arm64 = images
        up.push_layout(src, "multi", "library/multi", all_images=True)
        with CacheRule(up.url) as rule, Podman() as podman:
            repo = rule.repo("library/multi")
            mark = up.settle()
            podman("pull", "--tls-verify=false", "--creds=" + ":".join(admin_creds()), "--platform", "linux/arm64",
                   image_ref(repo, "multi"))
            info = podman.inspect(image_ref(repo, "multi"))
            assert info.get("Architecture") == "arm64", f"podman pulled {info.get('Architecture')}"
            assert info["Digest"] in (index.digest, arm64.digest), f"podman digest {info['Digest']}"
            up.settle()
            pattern = up.manifest_pattern("library/multi", "multi")
            assert up.count("GET", pattern, since=mark) == 1, up.summary(mark)
            assert up.count("GET", up.manifest_pattern("library/multi", arm64.digest), since=mark) == 1, \
                up.summary(mark)
            assert up.count(None, up.manifest_pattern("library/multi", amd64.digest), status=None, since=mark) == 0, \
                f"the amd64 manifest was fetched: {up.summary(mark)}"
            gets = up.blob_gets("library/multi", since=mark)
            assert gets == {b.digest: 1 for b in image_blobs(arm64)}, \
                f"upstream blob GETs {gets}, expected only arm64's {[b.digest for b in image_blobs(arm64)]}"
            # skopeo --all: the index, both children and every blob; only the amd64 part is new upstream.
            mark = up.mark()
            back = tmp.sub("back")
            skopeo_copy(docker_ref(repo, "multi"), f"oci:{back}:multi", all_images=True)
            raw, desc = read_layout(back, "multi")
            assert desc["digest"] == index.digest and raw == index.data, "copied index differs"
            for img in images:
                assert layout_blob(back, img.digest) == img.manifest.data, f"child {img.digest} differs"
                for blob in image_blobs(img):
                    assert sha256_digest(layout_blob(back, blob.digest)) == blob.digest
            up.settle()
            assert up.blob_gets("library/multi", since=mark) == {b.digest: 1 for b in image_blobs(amd64)}, \
                up.summary(mark)
            r = expect_status(get_manifest(client_a(), repo, "multi"), 200)
            assert r.header("Content-Type") == OCI_INDEX and cache_state(r) == "hit", r.summary()


def test_basic_auth_upstream_with_credentials_from_stdin():
    with DockerRegistry(auth="htpasswd") as up, TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "1.0", layer_sizes=(1024, 200 * 1024))
        up.push_layout(src, "1.0", "private/tool")
        other = build_image_layout(tmp.sub("other"), "2.0", layer_sizes=(1500,))
        up.push_layout(tmp.sub("other"), "2.0", "private/tool")
        secrets = [up.password, base64.b64encode(f"{up.username}:{up.password}".encode()).decode()]
        with CacheRule(up.url, username=up.username, secret=up.password) as rule:
            assert rule.created["hasCredentials"] is True, rule.created
            repo = rule.repo("private/tool")
            back = tmp.sub("back")
            skopeo_copy(docker_ref(repo, "1.0"), f"oci:{back}:1.0")
            assert_layout_holds(back, "1.0", image)
            assert up.count("GET", up.manifest_pattern("private/tool", "1.0"), status=200) == 1, up.summary()
            assert_no_secret_anywhere(secrets + [up.username], rule)
            # Without credentials the upstream refuses, and nothing new is cached.
            shown = rule.update(no_credentials=True)
            assert shown["hasCredentials"] is False, shown
            r = get_manifest(client_a(), repo, "2.0")
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", (rule.prefix,))
            r = client_a().get(f"/v2/{repo}/blobs/{other.layers[0].digest}")
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", (rule.prefix,))
            # Credentials back (update, token on stdin): the same pull works.
            shown = rule.update(username=up.username, secret=up.password)
            assert shown["hasCredentials"] is True, shown
            pull_http(client_b(), repo, "2.0", other)
            assert_no_secret_anywhere(secrets + [up.username], rule)


def test_token_upstream_anonymous_for_public_credentials_for_private():
    with DockerRegistry(auth="token") as up, TempDir() as tmp:
        pub = build_image_layout(tmp.sub("pub"), "1.0", layer_sizes=(1024, 100 * 1024))
        priv = build_image_layout(tmp.sub("priv"), "1.0", layer_sizes=(2048, 150 * 1024))
        up.push_layout(tmp.sub("pub"), "1.0", "public/demo")
        up.push_layout(tmp.sub("priv"), "1.0", "private/demo")
        ts: TokenService = up.token_service
        with CacheRule(up.url) as anon:
            before = len(ts.requests)
            back = tmp.sub("back")
            skopeo_copy(docker_ref(anon.repo("public/demo"), "1.0"), f"oci:{back}:1.0")
            assert_layout_holds(back, "1.0", pub)
            new = ts.requests[before:]
            assert new and all(r["user"] is None for r in new), f"token requests: {new}"
            assert any(r["granted"] and "pull" in r["granted"][0]["actions"] for r in new), new
            # Private needs credentials: a clear refusal, nothing cached.
            r = get_manifest(client_a(), anon.repo("private/demo"), "1.0")
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", (anon.prefix,))
            assert repository_row_count(anon.repo("private/demo")) == 0
        with CacheRule(up.url, username=TokenService.USERNAME, secret=TokenService.PASSWORD) as rule, \
                Podman() as podman:
            before = len(ts.requests)
            ref = image_ref(rule.repo("private/demo"), "1.0")
            podman.pull(ref)
            assert podman.inspect(ref)["Digest"] == priv.digest
            new = ts.requests[before:]
            assert new and all(r["user"] == TokenService.USERNAME for r in new), f"token requests: {new}"
            # Tokens are shared between requests: not one token per blob.
            assert len(new) <= 2, f"{len(new)} token requests for one image pull: {new}"
            pull_http(client_b(), rule.repo("private/demo"), "1.0", priv, expect_state="hit")
            secrets = [TokenService.PASSWORD, *ts.issued_tokens(),
                       base64.b64encode(f"{TokenService.USERNAME}:{TokenService.PASSWORD}".encode()).decode()]
            assert_no_secret_anywhere(secrets, rule)
        # Wrong credentials: the token service refuses them, Pier says so, nothing is cached.
        wrong = "wr0ng-" + os.urandom(6).hex()
        with CacheRule(up.url, username=TokenService.USERNAME, secret=wrong) as bad:
            before = len(ts.requests)
            repo = bad.repo("private/demo")
            r = get_manifest(client_a(), repo, "1.0")
            msg = assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", (bad.prefix,))["message"]
            assert "token" in msg.lower() or "credential" in msg.lower() or "auth" in msg.lower(), msg
            assert any(rec["bad_credentials"] for rec in ts.requests[before:]), ts.requests[before:]
            assert repository_row_count(repo) == 0
            assert_no_secret_anywhere([wrong, base64.b64encode(f"{TokenService.USERNAME}:{wrong}".encode()).decode()],
                                      bad)


def test_name_mapping_docker_hub_library_and_upstream_prefix():
    with DockerRegistry() as up, TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "3", layer_sizes=(1024,))
        up.push_layout(src, "3", "library/alpine")
        up.push_layout(src, "3", "mirror/team/alpine")
        with CacheRule(up.url, registry="docker-hub") as hub, \
                CacheRule(up.url, upstream_prefix="mirror/team") as mirror:
            assert hub.created["upstreamRegistry"] == "docker-hub", hub.created
            assert mirror.created["upstreamRepositoryPrefix"] == "mirror/team", mirror.created
            mark = up.settle()
            pull_http(client_a(), hub.repo("alpine"), "3", image)
            pull_http(client_a(), mirror.repo("alpine"), "3", image)
            up.settle()
            assert up.count("GET", up.manifest_pattern("library/alpine", "3"), since=mark) == 1, up.summary(mark)
            assert up.count("GET", up.manifest_pattern("mirror/team/alpine", "3"), since=mark) == 1, \
                up.summary(mark)
            assert up.count("GET", up.manifest_pattern("alpine", "3"), status=None, since=mark) == 0, up.summary(mark)


def _pool_io(master: int) -> dict[int, int]:
    """Bytes each process under the master has read and written through read()/write()
    and friends (files and sockets alike): pid -> rchar + wchar."""
    out = {}
    for pid in child_pids(master):
        try:
            with open(f"/proc/{pid}/io") as f:
                fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        out[pid] = int(fields["rchar"]) + int(fields["wchar"])
    return out


def _io_moved(before: dict[int, int], after: dict[int, int]) -> int:
    assert set(before) == set(after), f"the pool changed while it was measured: {before} -> {after}"
    return sum(after[pid] - before[pid] for pid in after)


def test_cached_blobs_are_sent_by_apache_not_by_a_worker():
    """docs/pull-through-cache.md: a blob linked in the repository is served by Apache
    (X-Sendfile). The first GET goes through a worker, which downloads the blob and
    streams it: the pool's I/O grows by more than its size. Once cached, whole and
    ranged GETs (206, Apache's Range support) leave the pool's I/O about where it was."""
    with DockerRegistry() as up, TempDir() as tmp:
        img = build_large_layout(tmp.sub("src"), "1.0", mib=4)
        up.push_layout(tmp.sub("src"), "1.0", "library/big")
        with CacheRule(up.url) as rule:
            repo = rule.repo("library/big")
            expect_status(get_manifest(client_a(), repo, "1.0"), 200, "manifest")
            big = max(img.layers, key=lambda layer: layer.size)
            path = f"/v2/{repo}/blobs/{big.digest}"
            master = master_pid()
            before = _pool_io(master)
            cold = read_blob(url_a(), path)
            assert cold.complete and cold.digest == big.digest and cold.header("X-Pier-Cache") == "miss", \
                cold.summary()
            after_cold = _pool_io(master)
            through_worker = _io_moved(before, after_cold)
            assert through_worker >= big.size, \
                f"precondition missing: a streamed miss moved only {through_worker} bytes in the pool"

            warm = read_blob(url_a(), path)
            assert warm.complete and warm.digest == big.digest and warm.header("X-Pier-Cache") == "hit", \
                warm.summary()
            assert warm.header("X-Sendfile") is None, f"Apache passed X-Sendfile on: {warm.summary()}"
            after_warm = _pool_io(master)
            moved = _io_moved(after_cold, after_warm)
            assert moved < big.size // 4, \
                f"the pool moved {moved} bytes serving a cached {big.size}-byte blob: a worker sent it"
            start, end = 1_000_000, 1_999_999
            ranged = client_a().get(path, headers={"Range": f"bytes={start}-{end}"})
            expect_status(ranged, 206, "ranged GET of a cached blob")
            assert ranged.header("Content-Range") == f"bytes {start}-{end}/{big.size}", ranged.summary()
            assert ranged.body == big.data[start:end + 1], "the ranged GET returned other bytes"
            moved = _io_moved(after_warm, _pool_io(master))
            assert moved < (end - start + 1) // 4, f"the pool moved {moved} bytes serving a 1 MB range"
