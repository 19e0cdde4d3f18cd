"""Control plane: answers that tools compare with ECR's (issue 14, "answers that differ
from ECR"). Each test is one of them, with boto3, raw signed requests or the aws CLI v1;
every raw answer is checked against the installed botocore model (assert_model_shape),
errors by exception name.

  * upstreamRegistryUrl comes back exactly as it was written;
  * upstreamRegistry takes and gives only the model's values;
  * IMMUTABLE_WITH_EXCLUSION / MUTABLE_WITH_EXCLUSION with their filters, on repositories
    and templates, enforced on push;
  * tag immutability on a cache repository keeps the cached tag (the cache stops updating it);
  * a conflict is no AccessDeniedException;
  * ListImages / DescribeImages take a filter with only imageStatus;
  * BatchGetImage's failure codes are the model's, and it pulls through a cache repository;
  * imageSizeInBytes of an index is the largest image it lists;
  * DescribeRepositoryCreationTemplates fails only as the model says;
  * timestamps carry their milliseconds;
  * the aws CLI v1 and http:// parameter values (docs/control-plane.md)."""

import datetime
import json
import os
import re
import subprocess
import tempfile

from pierlib import (
    OCI_INDEX, OCI_MANIFEST, TempDir, admin_creds, api_call, api_error, assert_model_shape, assert_oci_error,
    aws_cli, aws_cli_error, aws_cli_path, aws_json, build_image_layout, client_a, ecr_client, expect_api_error,
    expect_status, oci_index, psql_value, push_image, push_manifest, put_manifest, service_model,
    signed_api_request, sql_str, unique_repo, url_a,
)
from upstreams import CacheRule, FakeRegistry, cache_state, get_manifest, pierctl, unique_prefix

WILDCARD = "WILDCARD"


def drop(*names):
    for n in names:
        try:
            ecr_client().delete_repository(repositoryName=n, force=True)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def forget_rule(*prefixes):
    for p in prefixes:
        try:
            ecr_client().delete_pull_through_cache_rule(ecrRepositoryPrefix=p)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def forget_template(*prefixes):
    for p in prefixes:
        signed_api_request("DeleteRepositoryCreationTemplate", {"prefix": p})


def filters(*values):
    return [{"filterType": WILDCARD, "filter": v} for v in values]


def enum(shape: str) -> list[str]:
    return service_model().shape_for(shape).enum


# ---------------------------------------------------------------------------
# pull-through cache rules


def test_upstream_registry_url_is_echoed_exactly_as_written():
    """Terraform's aws_ecr_pull_through_cache_rule replaces a rule whose upstreamRegistryUrl reads
    back differently from its configuration: every answer carries the URL as it was written."""
    written = {unique_prefix("ue"): "public.ecr.aws", unique_prefix("ud"): "docker.io",
               unique_prefix("uq"): "Quay.io", unique_prefix("uh"): "https://ghcr.io/"}
    try:
        for prefix, url in written.items():
            out = api_call("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": url})
            assert out["upstreamRegistryUrl"] == url, f"CreatePullThroughCacheRule: {out}"
        got = api_call("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": list(written)})
        assert {r["ecrRepositoryPrefix"]: r["upstreamRegistryUrl"] for r in got["pullThroughCacheRules"]} == written, got
        # Kinds are still inferred from the host, and Pier still connects to the normalized URL.
        kinds = {r["ecrRepositoryPrefix"]: r.get("upstreamRegistry") for r in got["pullThroughCacheRules"]}
        assert list(kinds.values()) == ["ecr-public", "docker-hub", "quay", "github-container-registry"], kinds
        stored = psql_value("SELECT upstream_url FROM cache_rules WHERE prefix = "
                            + sql_str(list(written)[1]))
        assert stored == "https://registry-1.docker.io", stored
        # An update that does not touch the URL keeps it as written; pierctl reads the same rule.
        prefix, url = next(iter(written.items()))
        api_call("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix, "upstreamRepositoryPrefix": "docker"})
        p = pierctl("rule", "update", prefix, "--refresh", "600")
        assert p.returncode == 0, p.stderr
        v = api_call("ValidatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix})
        assert v["upstreamRegistryUrl"] == url, v
        # pierctl --url with another upstream replaces what was written.
        p = pierctl("rule", "update", prefix, "--url", "registry.k8s.io")
        assert p.returncode == 0, p.stderr
        d = api_call("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [prefix]})["pullThroughCacheRules"][0]
        assert d["upstreamRegistryUrl"] == "registry.k8s.io", d
        gone = api_call("DeletePullThroughCacheRule", {"ecrRepositoryPrefix": prefix})
        assert gone["upstreamRegistryUrl"] == "registry.k8s.io", gone
        # boto3 reads the same.
        other = list(written)[1]
        got = ecr_client().describe_pull_through_cache_rules(ecrRepositoryPrefixes=[other])
        assert got["pullThroughCacheRules"][0]["upstreamRegistryUrl"] == "docker.io", got
    finally:
        forget_rule(*written)


def test_upstream_registry_takes_and_gives_only_the_models_values():
    """upstreamRegistry is one of the model's UpstreamRegistry values; an upstream none of them
    describes (Pier's "any OCI registry") is created without the field and described without it."""
    assert "oci" not in enum("UpstreamRegistry")
    ecr = ecr_client(validate=False)
    plain, named, bad = unique_prefix("uo"), unique_prefix("un"), unique_prefix("ub")
    url = "http://127.0.0.1:9"
    try:
        for kind in ("oci", "OCI", "docker", ""):
            code, msg, status = api_error(ecr.create_pull_through_cache_rule, ecrRepositoryPrefix=bad,
                                          upstreamRegistryUrl=url, upstreamRegistry=kind)
            assert (code, status) == ("UnsupportedUpstreamRegistryException", 400) or \
                (kind == "" and code == "InvalidParameterException"), f"{kind!r}: {code} {status} {msg}"
        assert psql_value(f"SELECT count(*) FROM cache_rules WHERE prefix = {sql_str(bad)}") == "0"
        out = api_call("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": plain, "upstreamRegistryUrl": url})
        assert "upstreamRegistry" not in out, out
        out = api_call("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": named, "upstreamRegistryUrl": url,
                                                      "upstreamRegistry": "quay"})
        assert out["upstreamRegistry"] == "quay", out
        for op, body in (("DescribePullThroughCacheRules", {}),
                         ("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [plain, named]}),
                         ("ValidatePullThroughCacheRule", {"ecrRepositoryPrefix": plain})):
            api_call(op, body)  # every upstreamRegistry in the model's enum
        # pierctl keeps Pier's own name for it.
        p = pierctl("rule", "show", plain)
        assert p.returncode == 0 and json.loads(p.stdout)["upstreamRegistry"] == "oci", p.stdout + p.stderr
        gone = api_call("DeletePullThroughCacheRule", {"ecrRepositoryPrefix": plain})
        assert "upstreamRegistry" not in gone, gone
    finally:
        forget_rule(plain, named, bad)


def test_rule_over_pushed_repositories_is_a_conflict_not_access_denied():
    """An administrator allowed everything gets no AccessDeniedException for a rule that would take
    over pushed repositories: the request is refused as a parameter that cannot be, and says why."""
    ns = unique_prefix("cf")
    repo = f"{ns}/app"
    push_image(client_a(), repo, "v1")
    try:
        code, msg, status = api_error(ecr_client().create_pull_through_cache_rule, ecrRepositoryPrefix=ns,
                                      upstreamRegistryUrl="quay.io", upstreamRegistry="quay")
        assert (code, status) == ("InvalidParameterException", 400), f"{code} {status}: {msg}"
        assert repo in msg and "pushed" in msg, msg
        p = aws_cli("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", ns,
                    "--upstream-registry-url", "quay.io", check=False)
        assert aws_cli_error(p)[0] == "InvalidParameterException", p.stderr
        assert psql_value(f"SELECT count(*) FROM cache_rules WHERE prefix = {sql_str(ns)}") == "0"
    finally:
        forget_rule(ns)
        drop(repo)


# ---------------------------------------------------------------------------
# tag mutability with exclusions


def test_tag_mutability_with_exclusions_is_stored_described_and_enforced_on_push():
    ecr = ecr_client()
    c = client_a()
    imm, mut = unique_repo("immx"), unique_repo("mutx")
    try:
        out = api_call("CreateRepository", {"repositoryName": imm, "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                                            "imageTagMutabilityExclusionFilters": filters("latest", "dev-*")})
        assert out["repository"]["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION", out
        assert out["repository"]["imageTagMutabilityExclusionFilters"] == filters("latest", "dev-*"), out
        got = ecr.describe_repositories(repositoryNames=[imm])["repositories"][0]
        assert (got["imageTagMutability"], got["imageTagMutabilityExclusionFilters"]) == \
            ("IMMUTABLE_WITH_EXCLUSION", filters("latest", "dev-*")), got

        a = push_image(c, imm, "v1")
        b = push_image(c, imm, None)
        for tag in ("latest", "dev-1"):
            push_manifest(c, imm, tag, a.manifest)
            push_manifest(c, imm, tag, b.manifest)  # excluded: it moves
        r = put_manifest(c, imm, "v1", b.manifest)
        assert_oci_error(r, 403, "DENIED", ("immutable", "v1"))
        push_manifest(c, imm, "v1", a.manifest)  # the same image again is no move
        push_manifest(c, imm, "v2", b.manifest)  # a new tag

        # MUTABLE_WITH_EXCLUSION: only the tags the filters match stay.
        api_call("CreateRepository", {"repositoryName": mut, "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
                                      "imageTagMutabilityExclusionFilters": filters("release-*")})
        a = push_image(c, mut, "release-1")
        b = push_image(c, mut, "latest")
        assert_oci_error(put_manifest(c, mut, "release-1", b.manifest), 403, "DENIED", ("release-1",))
        push_manifest(c, mut, "latest", a.manifest)

        # PutImageTagMutability changes mode and filters; the answer carries both (aws CLI v1).
        out = aws_json("ecr", "put-image-tag-mutability", "--repository-name", mut, "--image-tag-mutability",
                       "MUTABLE_WITH_EXCLUSION", "--image-tag-mutability-exclusion-filters",
                       "filterType=WILDCARD,filter=latest")
        assert (out["imageTagMutability"], out["imageTagMutabilityExclusionFilters"]) == \
            ("MUTABLE_WITH_EXCLUSION", filters("latest")), out
        push_manifest(c, mut, "release-1", b.manifest)  # no longer matched: it moves
        assert_oci_error(put_manifest(c, mut, "latest", b.manifest), 403, "DENIED", ("latest",))
        out = api_call("PutImageTagMutability", {"repositoryName": mut, "imageTagMutability": "MUTABLE"})
        assert "imageTagMutabilityExclusionFilters" not in out, out
        got = ecr.describe_repositories(repositoryNames=[mut])["repositories"][0]
        assert got["imageTagMutability"] == "MUTABLE" and "imageTagMutabilityExclusionFilters" not in got, got
        push_manifest(c, mut, "latest", b.manifest)
        api_call("DescribeRepositories", {"repositoryNames": [imm, mut]})
    finally:
        drop(imm, mut)


def test_tag_mutability_settings_that_cannot_be_are_refused_not_dropped():
    ecr = ecr_client(validate=False)
    repo = unique_repo("mutbad")
    ecr.create_repository(repositoryName=repo)
    try:
        bad = [
            {"imageTagMutability": "IMMUTABLE", "imageTagMutabilityExclusionFilters": filters("latest")},
            {"imageTagMutability": "MUTABLE", "imageTagMutabilityExclusionFilters": filters("x")},
            {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"},
            {"imageTagMutability": "MUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters": []},
            {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters":
                filters(*"abcdef")},
            {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters":
                [{"filterType": "REGEX", "filter": "x"}]},
            {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters":
                filters("a/b")},
            {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION", "imageTagMutabilityExclusionFilters":
                filters("x" * 129)},
            {"imageTagMutability": "FROZEN"},
        ]
        problems = []
        for body in bad:
            for call, kw in ((ecr.put_image_tag_mutability, {"repositoryName": repo}),
                             (ecr.create_repository, {"repositoryName": unique_repo("never")})):
                code, msg, status = api_error(call, **kw, **body)
                if (code, status) != ("InvalidParameterException", 400) or "imageTagMutability" not in msg:
                    problems.append(f"{call.__name__} {body}: {code} {status} {msg!r}")
        assert not problems, "\n".join(problems)
        got = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
        assert got["imageTagMutability"] == "MUTABLE" and "imageTagMutabilityExclusionFilters" not in got, got
    finally:
        drop(repo)


def test_templates_carry_tag_mutability_exclusions_to_the_repositories_they_create():
    prefix = unique_prefix("tx")
    repo = f"{prefix}/app"
    c = client_a()
    try:
        out = api_call("CreateRepositoryCreationTemplate", {
            "prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"], "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": filters("latest")})
        t = out["repositoryCreationTemplate"]
        assert (t["imageTagMutability"], t["imageTagMutabilityExclusionFilters"]) == \
            ("IMMUTABLE_WITH_EXCLUSION", filters("latest")), t
        got = api_call("DescribeRepositoryCreationTemplates", {"prefixes": [prefix]})["repositoryCreationTemplates"]
        assert got[0]["imageTagMutabilityExclusionFilters"] == filters("latest"), got
        expect_api_error("InvalidParameterException", ecr_client(validate=False).update_repository_creation_template,
                         prefix=prefix, imageTagMutability="IMMUTABLE", imageTagMutabilityExclusionFilters=filters("x"))

        a = push_image(c, repo, "v1")  # creates the repository from the template
        b = push_image(c, repo, "latest")
        d = ecr_client().describe_repositories(repositoryNames=[repo])["repositories"][0]
        assert (d["imageTagMutability"], d["imageTagMutabilityExclusionFilters"]) == \
            ("IMMUTABLE_WITH_EXCLUSION", filters("latest")), d
        assert_oci_error(put_manifest(c, repo, "v1", b.manifest), 403, "DENIED", ("v1",))
        push_manifest(c, repo, "latest", a.manifest)

        # An update that sets the mode alone drops the old filters with it.
        out = api_call("UpdateRepositoryCreationTemplate", {"prefix": prefix, "imageTagMutability": "MUTABLE"})
        t = out["repositoryCreationTemplate"]
        assert t["imageTagMutability"] == "MUTABLE" and "imageTagMutabilityExclusionFilters" not in t, t
    finally:
        forget_template(prefix)
        drop(repo)


def test_immutable_tags_of_a_cache_repository_stay_where_they_were_cached():
    """In ECR tag immutability stops the cache from updating a cached tag; Pier does the same, and
    describe-repositories says so: the tag is served as cached without asking the upstream, a tag
    the setting leaves mutable follows the upstream, and made MUTABLE the cache updates it again."""
    with FakeRegistry() as up, TempDir() as tmp:
        v1 = build_image_layout(tmp.sub("v1"), "1.0", layer_sizes=(512,))
        v2 = build_image_layout(tmp.sub("v2"), "2.0", layer_sizes=(700,))
        up.add_layout("team/app", tmp.sub("v1"), "1.0")
        up.add_layout("team/app", tmp.sub("v2"), "2.0")
        up.manifests[("team/app", "latest")] = up.manifests[("team/app", "1.0")]
        with CacheRule(up.url, refresh=0) as rule:
            repo = rule.repo("team/app")
            c = client_a()
            for tag in ("1.0", "latest"):
                r = expect_status(get_manifest(c, repo, tag), 200, f"first pull of {tag}")
                assert r.header("Docker-Content-Digest") == v1.digest, r.summary()
            out = api_call("PutImageTagMutability", {
                "repositoryName": repo, "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                "imageTagMutabilityExclusionFilters": filters("latest")})
            assert out["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION", out
            d = api_call("DescribeRepositories", {"repositoryNames": [repo]})["repositories"][0]
            assert d["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION", d

            # Both tags move upstream (refresh 0: every pull would ask).
            for tag in ("1.0", "latest"):
                up.manifests[("team/app", tag)] = up.manifests[("team/app", "2.0")]
            mark = up.mark()
            r = expect_status(get_manifest(c, repo, "1.0"), 200, "pull of the immutable tag")
            assert r.header("Docker-Content-Digest") == v1.digest and cache_state(r) == "hit", r.summary()
            assert up.count(None, up.manifest_pattern("team/app", "1.0"), status=None, since=mark) == 0, \
                f"the upstream was asked about an immutable tag: {up.summary(mark)}"
            r = expect_status(get_manifest(c, repo, "latest"), 200, "pull of the excluded tag")
            assert r.header("Docker-Content-Digest") == v2.digest, r.summary()
            # BatchGetImage sees what pulls see.
            got = api_call("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": "1.0"}]})
            assert got["images"][0]["imageId"]["imageDigest"] == v1.digest, got

            api_call("PutImageTagMutability", {"repositoryName": repo, "imageTagMutability": "MUTABLE"})
            r = expect_status(get_manifest(c, repo, "1.0"), 200, "pull after MUTABLE")
            assert r.header("Docker-Content-Digest") == v2.digest, r.summary()
            drop(repo)


# ---------------------------------------------------------------------------
# images


def test_list_and_describe_images_take_a_filter_with_only_image_status():
    ecr = ecr_client()
    repo = unique_repo("imgstatus")
    a = push_image(client_a(), repo, "v1")
    b = push_image(client_a(), repo, None)
    try:
        every = sorted([a.digest, b.digest])
        for status, want in (("ACTIVE", every), ("ANY", every), ("ARCHIVED", []), ("ACTIVATING", [])):
            ids = ecr.list_images(repositoryName=repo, filter={"imageStatus": status})["imageIds"]
            assert sorted(i["imageDigest"] for i in ids) == want, f"ListImages imageStatus={status}: {ids}"
            details = ecr.describe_images(repositoryName=repo, filter={"imageStatus": status})["imageDetails"]
            assert sorted(d["imageDigest"] for d in details) == want, f"DescribeImages imageStatus={status}"
        doc = api_call("DescribeImages", {"repositoryName": repo, "filter": {"imageStatus": "ACTIVE"}})
        assert {d["imageStatus"] for d in doc["imageDetails"]} == {"ACTIVE"}, doc
        api_call("ListImages", {"repositoryName": repo, "filter": {"imageStatus": "ANY", "tagStatus": "TAGGED"}})
        tagged = ecr.list_images(repositoryName=repo, filter={"imageStatus": "ACTIVE", "tagStatus": "TAGGED"})
        assert [i["imageDigest"] for i in tagged["imageIds"]] == [a.digest], tagged
        out = aws_json("ecr", "list-images", "--repository-name", repo, "--filter", "imageStatus=ACTIVE")
        assert sorted(i["imageDigest"] for i in out["imageIds"]) == every, out
        expect_api_error("InvalidParameterException", ecr_client(validate=False).list_images, repositoryName=repo,
                         filter={"imageStatus": "GONE"})
    finally:
        drop(repo)


def test_batch_get_image_failure_codes_are_the_models():
    repo = unique_repo("codes")
    a = push_image(client_a(), repo, "v1")
    codes = set(enum("ImageFailureCode"))
    try:
        out = api_call("BatchGetImage", {"repositoryName": repo, "imageIds": [
            {"imageTag": "v1"}, {"imageTag": "missing"}, {"imageDigest": "sha256:" + "2" * 64},
            {"imageDigest": "md5:zz"}, {"imageTag": "bad tag!"}, {},
            {"imageDigest": "sha256:" + "3" * 64, "imageTag": "v1"}],
            "acceptedMediaTypes": ["application/vnd.docker.distribution.manifest.v2+json"]})
        got = [f["failureCode"] for f in out["failures"]]
        assert set(got) <= codes, f"failure codes outside the model's enum: {set(got) - codes}"
        assert got == ["ImageNotFound", "ImageNotFound", "ImageNotFound", "InvalidImageDigest", "InvalidImageTag",
                       "MissingDigestAndTag", "ImageTagDoesNotMatchDigest"], out["failures"]
        reason = out["failures"][0]["failureReason"]
        assert OCI_MANIFEST in reason, f"the media type the image has is not named: {reason!r}"
        assert out["images"] == [], out
        ok = api_call("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageDigest": a.digest}]})
        assert ok["images"][0]["imageId"] == {"imageDigest": a.digest} and ok["failures"] == [], ok
    finally:
        drop(repo)


def test_batch_get_image_pulls_through_a_cache_repository():
    """As a pull: a repository that does not exist yet under a rule is created, an image not
    cached is imported, and the upstream's failures come back with the model's Upstream* codes."""
    with FakeRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("app"), "1.0", layer_sizes=(600,))
        up.add_layout("team/app", tmp.sub("app"), "1.0")
        with CacheRule(up.url) as rule:
            repo = rule.repo("team/app")
            try:
                out = api_call("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": "1.0"}]})
                assert [i["imageId"] for i in out["images"]] == [{"imageDigest": img.digest, "imageTag": "1.0"}], out
                assert out["images"][0]["imageManifest"].encode() == img.manifest.data, out
                assert out["failures"] == [], out
                d = ecr_client().describe_repositories(repositoryNames=[repo])["repositories"][0]
                assert d["repositoryName"] == repo, d
                r = expect_status(get_manifest(client_a(), repo, img.digest), 200, "pull of what BatchGetImage imported")
                assert cache_state(r) == "hit", r.summary()

                ids = [{"imageTag": "nothere"}, {"imageTag": "1.0"}]
                out = api_call("BatchGetImage", {"repositoryName": repo, "imageIds": ids})
                assert [f["failureCode"] for f in out["failures"]] == ["ImageNotFound"], out
                for status, code in ((503, "UpstreamUnavailable"), (429, "UpstreamTooManyRequests"),
                                     (403, "UpstreamAccessDenied")):
                    up.fail_status = status
                    tag = f"t{status}"
                    out = api_call("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": tag}]})
                    assert [(f["imageId"], f["failureCode"]) for f in out["failures"]] == [({"imageTag": tag}, code)], \
                        f"upstream {status}: {out}"
                    assert out["failures"][0]["failureReason"], out
                up.fail_status = None
                # A name under no rule is still unknown.
                expect_api_error("RepositoryNotFoundException", ecr_client().batch_get_image,
                                 repositoryName=unique_repo("norule"), imageIds=[{"imageTag": "1.0"}])
                # The aws CLI v1, for a repository the cache creates.
                other = rule.repo("team/other")
                up.add_layout("team/other", tmp.sub("app"), "1.0")
                out = aws_json("ecr", "batch-get-image", "--repository-name", other, "--image-ids", "imageTag=1.0")
                assert out["images"][0]["imageId"]["imageDigest"] == img.digest, out
            finally:
                drop(repo, rule.repo("team/other"))


def test_image_size_of_an_index_is_its_largest_image():
    """ImageDetail.imageSizeInBytes: 'If the image is a manifest list, this will be the max size of
    all manifests in the list.'"""
    repo = unique_repo("idxsize")
    c = client_a()
    small = push_image(c, repo, None, layer_size=300)
    large = push_image(c, repo, None, nlayers=2, layer_size=4000)
    index = oci_index([(small.manifest, {"os": "linux", "architecture": "amd64"}),
                       (large.manifest, {"os": "linux", "architecture": "arm64"})])
    push_manifest(c, repo, "multi", index)
    try:
        doc = api_call("DescribeImages", {"repositoryName": repo})
        sizes = {d["imageDigest"]: d["imageSizeInBytes"] for d in doc["imageDetails"]}

        def size(img):
            return img.config.size + sum(layer.size for layer in img.layers)
        assert sizes[small.digest] == size(small) and sizes[large.digest] == size(large), sizes
        assert sizes[index.digest] == max(size(small), size(large)), \
            f"index {sizes[index.digest]}, images {size(small)} and {size(large)}"
        one = ecr_client().describe_images(repositoryName=repo, imageIds=[{"imageTag": "multi"}])["imageDetails"]
        assert one[0]["imageSizeInBytes"] == size(large) and one[0]["imageManifestMediaType"] == OCI_INDEX, one
    finally:
        drop(repo)


# ---------------------------------------------------------------------------
# templates and timestamps


def test_describe_templates_fails_only_as_the_model_lists():
    assert "TemplateNotFoundException" not in \
        [s.name for s in service_model().operation_model("DescribeRepositoryCreationTemplates").error_shapes]
    prefix = unique_prefix("dt")
    api_call("CreateRepositoryCreationTemplate", {"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"]})
    try:
        out = api_call("DescribeRepositoryCreationTemplates", {"prefixes": [prefix + "x", prefix]})
        assert [t["prefix"] for t in out["repositoryCreationTemplates"]] == [prefix], out
        out = api_call("DescribeRepositoryCreationTemplates", {"prefixes": [prefix + "/"]})
        assert [t["prefix"] for t in out["repositoryCreationTemplates"]] == [prefix], out
        out = api_call("DescribeRepositoryCreationTemplates", {"prefixes": [unique_prefix("none")]})
        assert out["repositoryCreationTemplates"] == [], out
        raw = ecr_client(validate=False)
        for bad in (["Upper"], ["a//b"], [""], [7]):
            expect_api_error("InvalidParameterException", raw.describe_repository_creation_templates, prefixes=bad)
        p = aws_cli("ecr", "describe-repository-creation-templates", "--prefixes", prefix + "-none", check=True)
        assert json.loads(p.stdout)["repositoryCreationTemplates"] == [], p.stdout
    finally:
        forget_template(prefix)


TIME_FIELDS = re.compile(r'"(createdAt|updatedAt|imagePushedAt|lastRecordedPullTime|expiresAt)":([-+0-9.eE]+)')


def test_timestamps_carry_their_milliseconds():
    """ECR writes epoch seconds with milliseconds (1.700000000123E9); so does Pier, and they are the
    stored times to the millisecond."""
    repo = unique_repo("ms")
    prefix, tpl = unique_prefix("ms"), unique_prefix("mt")
    img = push_image(client_a(), repo, "v1")
    problems = []
    try:
        answers = [
            ("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": "quay.io"}),
            ("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [prefix]}),
            ("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix, "upstreamRepositoryPrefix": "x"}),
            ("CreateRepositoryCreationTemplate", {"prefix": tpl, "appliedFor": ["CREATE_ON_PUSH"]}),
            ("DescribeRepositoryCreationTemplates", {"prefixes": [tpl]}),
            ("DescribeRepositories", {"repositoryNames": [repo]}),
            ("DescribeImages", {"repositoryName": repo}),
            ("GetAuthorizationToken", {}),
        ]
        seen = {}
        for op, body in answers:
            r = signed_api_request(op, body)
            assert r.status == 200, r.summary()
            times = assert_model_shape(op, r.json())
            assert times, f"{op}: no timestamp in {r.text[:300]}"
            for path, v in times:
                if not isinstance(v, float):
                    problems.append(f"{path}: {v!r} has no fraction")
                seen[path] = v
            # Written with its milliseconds, as ECR does, not as 1700000000.1229999.
            raw = TIME_FIELDS.findall(r.text)
            assert len(raw) == len(times), (raw, times)
            for field, text in raw:
                if not re.fullmatch(r"\d+\.\d{1,3}", text):
                    problems.append(f"{op} {field}: {text}")
        assert not problems, "\n".join(problems)
        created = float(psql_value("SELECT extract(epoch FROM date_trunc('milliseconds', created_at))"
                                   f" FROM repositories WHERE name = {sql_str(repo)}"))
        assert abs(seen["DescribeRepositories.repositories[0].createdAt"] - created) < 0.0015, (seen, created)
        pushed = float(psql_value("SELECT extract(epoch FROM date_trunc('milliseconds', m.created_at))"
                                  " FROM manifests m JOIN repositories r ON r.id = m.repository_id"
                                  f" WHERE r.name = {sql_str(repo)} AND m.digest = {sql_str(img.digest)}"))
        assert abs(seen["DescribeImages.imageDetails[0].imagePushedAt"] - pushed) < 0.0015, (seen, pushed)
        # boto3 turns them into datetimes with the milliseconds.
        d = ecr_client().describe_repositories(repositoryNames=[repo])["repositories"][0]["createdAt"]
        want = datetime.datetime.fromtimestamp(created, datetime.timezone.utc)
        assert abs((d - want).total_seconds()) < 0.0015, (d, want)
    finally:
        forget_rule(prefix)
        forget_template(tpl)
        drop(repo)


# ---------------------------------------------------------------------------
# the aws CLI v1 and http:// values


def test_aws_cli_v1_http_url_parameters_need_cli_input_json():
    """docs/control-plane.md: the aws CLI v1 fetches any parameter value that starts with http://
    or https:// (cli_follow_urlparam); --cli-input-json passes the URL through, and Pier gives it
    back exactly as written."""
    prefix = unique_prefix("cli")
    url = "http://127.0.0.1:9/mirror/"
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "config")
        with open(config, "w") as f:
            f.write("[default]\n")  # the CLI's default: cli_follow_urlparam = true
        key, secret = admin_creds()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_CONFIG_FILE=config, AWS_SHARED_CREDENTIALS_FILE=config + ".none", AWS_DEFAULT_REGION="us-east-1",
                   AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_PAGER="", AWS_MAX_ATTEMPTS="1")
        base = [aws_cli_path(1), "ecr", "create-pull-through-cache-rule", "--endpoint-url", url_a(), "--output", "json"]
        try:
            p = subprocess.run(base + ["--ecr-repository-prefix", prefix, "--upstream-registry-url", url],
                               capture_output=True, text=True, timeout=120, env=env)
            assert p.returncode != 0 and "upstream-registry-url" in p.stderr, p.stdout + p.stderr
            assert psql_value(f"SELECT count(*) FROM cache_rules WHERE prefix = {sql_str(prefix)}") == "0"
            doc = json.dumps({"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": url})
            p = subprocess.run(base + ["--cli-input-json", doc], capture_output=True, text=True, timeout=120, env=env)
            assert p.returncode == 0, p.stderr
            assert json.loads(p.stdout)["upstreamRegistryUrl"] == url, p.stdout
        finally:
            forget_rule(prefix)
