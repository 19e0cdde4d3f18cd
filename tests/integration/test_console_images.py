"""The console's image views and actions (/console/api/image, image/check,
image/evict, storage): a pushed image in detail (manifest, layers, config,
referrers), an index's platforms, a cache tag's upstream history as the
upstream moves it, "check upstream now" and "evict this tag" against a real
upstream registry, storage usage per repository and rule, and the refusals
for principals without the permission. The pages are tested in Chromium by
tests/browser/images.test.js."""

import json

from pierlib import (
    Content, EMPTY_CONFIG, TempDir, admin_creds, artifact_manifest, build_image_layout, build_multiarch_layout, client_a,
    docker_ref, psql_value, push_blob_monolithic, push_manifest, read_layout, skopeo_copy, sql_str,
    tag_row_count, unique_repo, url_a, url_b,
)
from authlib import User, allow, policy, policy_settle
from upstreams import CacheRule, DockerRegistry
from test_console_api import Console, error_type

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def admin_console(base=None) -> Console:
    c = Console(base or url_a())
    r = c.login(*admin_creds())
    assert r.status == 200, r.summary()
    return c


def image(c: Console, name: str, ref: str):
    return c.call("GET", f"image?name={name}&ref={ref}")


def audit_count(action: str, repo: str, target_like: str = "%") -> int:
    return int(psql_value(
        f"SELECT count(*) FROM audit_events WHERE action = {sql_str(action)}"
        f" AND repository = {sql_str(repo)} AND target LIKE {sql_str(target_like)}"))


def test_console_image_detail_shows_manifest_layers_config_and_referrers():
    repo = unique_repo("con-img")
    c = admin_console()
    with TempDir() as tmp:
        img = build_image_layout(tmp.sub("one"), "1.0", layer_sizes=(1500, 40 * 1024))
        skopeo_copy(f"oci:{tmp.sub('one')}:1.0", docker_ref(repo, "1.0"))
        index, children = build_multiarch_layout(tmp.sub("multi"), "multi")
        skopeo_copy(f"oci:{tmp.sub('multi')}:multi", docker_ref(repo, "multi"), all_images=True)

    # A signature that refers to the image (a referrer with an artifactType).
    a = client_a()
    sig_blob = b'{"critical":{"image":{"docker-manifest-digest":"%s"}}}' % img.digest.encode()
    push_blob_monolithic(a, repo, sig_blob)
    push_blob_monolithic(a, repo, EMPTY_CONFIG.data)
    sig = artifact_manifest(img.manifest, SIGNATURE,
                            blobs=[Content(sig_blob, "application/vnd.dev.cosign.simplesigning.v1+json")])
    push_manifest(a, repo, sig.digest, sig)

    r = image(c, repo, "1.0")
    assert r.status == 200, r.summary()
    d = r.json()
    assert d["digest"] == img.digest and d["tags"] == ["1.0"], d
    assert json.loads(d["manifest"]) == json.loads(img.manifest.data), "the manifest text differs"
    assert [(l["digest"], l["size"]) for l in d["layers"]] == [(l.digest, len(l.data)) for l in img.layers], d["layers"]
    assert d["layerBytes"] == sum(len(l.data) for l in img.layers), d
    cfg = d["config"]
    assert cfg["digest"] == img.config.digest and "unavailable" not in cfg, cfg
    assert (cfg["os"], cfg["architecture"], cfg["created"]) == ("linux", "amd64", "2024-01-01T00:00:00Z"), cfg
    assert cfg["cmd"] == ["/bin/sh"] and cfg["env"][0].startswith("PATH="), cfg
    assert "org.example.pier-test" in cfg["labels"], cfg
    assert [h["createdBy"] for h in cfg["history"]] == ["pier test layer 0", "pier test layer 1"], cfg
    refs = d["referrers"]
    assert [(x["digest"], x.get("artifactType"), x["size"]) for x in refs] == \
        [(sig.digest, SIGNATURE, len(sig.data))], refs
    assert not d["cache"] and "tagHistory" not in d, d

    # The same image by digest; the signature itself names its subject.
    r = image(c, repo, img.digest)
    assert r.status == 200 and r.json()["digest"] == img.digest, r.summary()
    r = image(c, repo, sig.digest)
    assert r.status == 200 and r.json()["subject"]["digest"] == img.digest, r.summary()
    assert r.json()["artifactType"] == SIGNATURE, r.json()

    # An index: each platform's manifest, with its digest, stored here.
    r = image(c, repo, "multi")
    assert r.status == 200, r.summary()
    d = r.json()
    assert d["digest"] == index.digest and "layers" not in d, d
    got = [(p["platform"], p["digest"], p["stored"]) for p in d["platforms"]]
    assert got == [("linux/amd64", children[0].digest, True), ("linux/arm64", children[1].digest, True)], got
    r = image(c, repo, children[1].digest)
    assert r.status == 200 and r.json()["config"]["architecture"] == "arm64", r.summary()

    # What is not there is said so; bad input is refused.
    r = image(c, repo, "nope")
    assert r.status == 400 and error_type(r) == "ImageNotFoundException", r.summary()
    r = image(c, repo + "-none", "1.0")
    assert r.status == 400 and error_type(r) == "RepositoryNotFoundException", r.summary()
    r = image(c, repo, "bad%20tag")
    assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()

    # A principal that may list the repository but not read images is refused.
    with User("con-img-ro", policies={"p": policy(allow(["ecr:DescribeRepositories", "ecr:DescribeImages"]))}) as u:
        policy_settle()
        uc = Console(url_b())
        assert uc.login(*u.creds).status == 200
        r = image(uc, repo, "1.0")
        assert r.status == 403 and error_type(r) == "AccessDeniedException", r.summary()
        assert "ecr:BatchGetImage" in r.json()["error"]["message"], r.json()
        # Checking upstream and evicting need their own permissions too.
        r = uc.call("POST", "image/check", {"repositoryName": repo, "imageTag": "1.0"})
        assert r.status == 403 and "ecr:BatchImportUpstreamImage" in r.json()["error"]["message"], r.summary()
        r = uc.call("POST", "image/evict", {"repositoryName": repo, "imageTag": "1.0"})
        assert r.status == 403 and "ecr:BatchDeleteImage" in r.json()["error"]["message"], r.summary()

    # A pushed repository has no upstream to check or cache to evict.
    r = c.call("POST", "image/check", {"repositoryName": repo, "imageTag": "1.0"})
    assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()
    r = c.call("POST", "image/evict", {"repositoryName": repo, "imageTag": "1.0"})
    assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()
    assert tag_row_count(repo, "1.0") == 1
    c.call("POST", "ecr/DeleteRepository", {"repositoryName": repo, "force": True})


def test_console_cache_tag_history_check_upstream_now_and_evict():
    with DockerRegistry() as up, TempDir() as tmp:
        v1 = build_image_layout(tmp.sub("v1"), "1.0", layer_sizes=(1024, 30 * 1024))
        v2 = build_image_layout(tmp.sub("v2"), "next", layer_sizes=(1300, 20 * 1024))
        up.push_layout(tmp.sub("v1"), "1.0", "library/app")
        up.push_layout(tmp.sub("v2"), "next", "library/app")
        v2_raw, v2_desc = read_layout(tmp.sub("v2"), "next")
        # The default refresh interval (a day): only "check upstream now" asks the upstream.
        with CacheRule(up.url) as rule:
            repo = rule.repo("library/app")
            tag_path = up.manifest_pattern("library/app", "1.0")
            c = admin_console()
            skopeo_copy(docker_ref(repo, "1.0"), f"oci:{tmp.sub('back1')}:1.0")

            r = image(c, repo, "1.0")
            assert r.status == 200, r.summary()
            d = r.json()
            assert d["cache"] and d["digest"] == v1.digest and d["lastUpstreamCheck"] > 0, d
            assert [(h.get("digest"), h.get("previous")) for h in d["tagHistory"]] == [(v1.digest, None)], d
            assert d["config"]["os"] == "linux", d["config"]

            # Nothing moved: the upstream is asked (a HEAD), the answer is "unchanged".
            mark = up.settle()
            r = c.call("POST", "image/check", {"repositoryName": repo, "imageTag": "1.0"})
            assert r.status == 200, r.summary()
            assert r.json()["result"] == "unchanged" and r.json()["imageDigest"] == v1.digest, r.json()
            up.settle()
            assert up.count("HEAD", tag_path, since=mark) == 1, up.summary(mark)
            assert up.count("GET", tag_path, since=mark) == 0, up.summary(mark)

            # The tag moves upstream. A pull within the interval still gets v1 ...
            assert up.put_manifest("library/app", "1.0", v2_raw, v2_desc["mediaType"]) == 201
            mark = up.settle()
            r = c.call("POST", "image/check", {"repositoryName": repo, "imageTag": "1.0"})
            assert r.status == 200, r.summary()
            got = r.json()
            assert (got["result"], got["previousDigest"], got["imageDigest"]) == ("moved", v1.digest, v2.digest), got
            up.settle()
            assert up.count("GET", tag_path, since=mark) == 1, up.summary(mark)

            # ... and the history says when latest moved, newest first.
            d = image(c, repo, "1.0").json()
            assert d["digest"] == v2.digest, d
            assert [(h.get("digest"), h.get("previous")) for h in d["tagHistory"]] == \
                [(v2.digest, v1.digest), (v1.digest, None)], d["tagHistory"]
            assert d["tagHistory"][0]["at"] >= d["tagHistory"][1]["at"], d["tagHistory"]
            assert audit_count("console:CheckUpstream", repo, f"1.0@{v2.digest}") == 1

            # Evict: the tag goes, and its image (no other tag names it).
            r = c.call("POST", "image/evict", {"repositoryName": repo, "imageTag": "1.0"})
            assert r.status == 200, r.summary()
            assert r.json()["imageDigest"] == v2.digest and r.json()["imageDeleted"] is True, r.json()
            assert tag_row_count(repo, "1.0") == 0
            r = image(c, repo, "1.0")
            assert r.status == 400 and error_type(r) == "ImageNotFoundException", r.summary()
            assert audit_count("console:EvictTag", repo, f"1.0@{v2.digest}") == 1
            r = c.call("POST", "image/evict", {"repositoryName": repo, "imageTag": "1.0"})
            assert r.status == 400 and error_type(r) == "ImageNotFoundException", r.summary()

            # The next pull fetches the manifest from the upstream again.
            mark = up.settle()
            skopeo_copy(docker_ref(repo, "1.0"), f"oci:{tmp.sub('back2')}:1.0")
            up.settle()
            assert up.count("GET", tag_path, since=mark) == 1, up.summary(mark)
            d = image(c, repo, "1.0").json()
            assert d["digest"] == v2.digest, d
            hist = [(h.get("digest"), h.get("previous"), h.get("evicted")) for h in d["tagHistory"]]
            assert hist[:2] == [(v2.digest, None, None), (None, v2.digest, True)], hist

            # Upstream down: the answer says so and the cached image stays.
            up.stop()
            r = c.call("POST", "image/check", {"repositoryName": repo, "imageTag": "1.0"})
            assert r.status == 200, r.summary()
            got = r.json()
            assert got["result"] == "upstreamError" and got["message"], got
            assert got["imageDigest"] == v2.digest, got
            assert image(c, repo, "1.0").json()["digest"] == v2.digest
            c.call("POST", "ecr/DeleteRepository", {"repositoryName": repo, "force": True})


def test_console_storage_shows_bytes_per_repository_and_rule():
    repo = unique_repo("con-store")
    with DockerRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("p"), "1.0", layer_sizes=(2048, 50 * 1024))
        skopeo_copy(f"oci:{tmp.sub('p')}:1.0", docker_ref(repo, "1.0"))
        cimg = build_image_layout(tmp.sub("c"), "2.0", layer_sizes=(3000,))
        up.push_layout(tmp.sub("c"), "2.0", "library/st")
        with CacheRule(up.url) as rule:
            crepo = rule.repo("library/st")
            skopeo_copy(docker_ref(crepo, "2.0"), f"oci:{tmp.sub('back')}:2.0")
            c = admin_console()
            r = c.call("GET", "storage")
            assert r.status == 200, r.summary()
            d = r.json()
            sizes = [x["bytes"] for x in d["repositories"]]
            assert sizes == sorted(sizes, reverse=True) and len(sizes) <= 50, sizes
            # The ranking is searchable by name (many repositories may hold more).
            d = c.call("GET", f"storage?q={repo}").json()
            want = sum(len(l.data) for l in img.layers) + len(img.config.data)
            mine = [x for x in d["repositories"] if x["name"] == repo]
            assert mine and mine[0]["bytes"] == want and mine[0]["images"] == 1 and not mine[0]["cache"], \
                (want, mine)
            cwant = sum(len(l.data) for l in cimg.layers) + len(cimg.config.data)
            assert all(repo in x["name"] for x in d["repositories"]), d["repositories"]
            cached = [x for x in c.call("GET", f"storage?q={crepo}").json()["repositories"] if x["name"] == crepo]
            assert cached and cached[0]["cache"] and cached[0]["rule"] == rule.prefix, cached
            assert cached[0]["bytes"] == cwant, (cwant, cached)
            rules = [x for x in d["rules"] if x["prefix"] == rule.prefix]
            assert rules and rules[0]["bytesCached"] == cwant and rules[0]["repositories"] == 1, rules
            assert d["pushedBytes"] >= want and d["cacheBytes"] >= cwant, d
            assert d["diskBytes"] >= d["diskFreeBytes"] > 0, d

            # A principal that may describe the registry but not these repositories
            # sees the totals without their names.
            with User("con-store-ro", policies={"p": policy(allow(["ecr:DescribeRegistry"]))}) as u:
                policy_settle()
                uc = Console(url_b())
                assert uc.login(*u.creds).status == 200
                for q in (repo, crepo):
                    r = uc.call("GET", f"storage?q={q}")
                    assert r.status == 200, r.summary()
                    assert r.json()["repositories"] == [], r.json()["repositories"]
                    # The same search as the administrator finds it.
                    assert [x["name"] for x in c.call("GET", f"storage?q={q}").json()["repositories"]] == [q]
            with User("con-store-none", policies={"p": policy(allow(["ecr:DescribeRepositories"]))}) as u:
                policy_settle()
                uc = Console(url_b())
                assert uc.login(*u.creds).status == 200
                r = uc.call("GET", "storage")
                assert r.status == 403 and error_type(r) == "AccessDeniedException", r.summary()
            c.call("POST", "ecr/DeleteRepository", {"repositoryName": crepo, "force": True})
        c.call("POST", "ecr/DeleteRepository", {"repositoryName": repo, "force": True})
