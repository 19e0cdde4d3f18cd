"""Control plane, repositories and images: Create/Describe/DeleteRepository,
repository policies, resource tags, PutImageTagMutability, ListImages,
DescribeImages, BatchGetImage and BatchDeleteImage, with the shapes boto3
parses and the errors the SDKs expect."""

import datetime
import time
import uuid

from pierlib import (
    ACCOUNT_ID, OCI_INDEX, OCI_MANIFEST, Client, api_error, api_error_body, assert_oci_error, client_a,
    ecr_client, ecr_repo_arn, expect_api_error, expect_status, iam_policy, iam_statement, push_image,
    push_index, push_manifest, put_manifest, registry_host, signed_api_request, unique_repo, url_a, url_b,
    wait_until,
)
from authlib import User
from pierlib import drop_repositories as drop

POLICY_SETTLE = 1.5


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def recent(ts, what: str, slack: float = 120) -> None:
    assert isinstance(ts, datetime.datetime), f"{what} is not a datetime: {ts!r}"
    age = (now() - ts).total_seconds()
    assert -slack <= age <= slack, f"{what} {ts.isoformat()} is {age:.0f} s from now"


def check_repository(repo: dict, name: str, mutability="MUTABLE", encryption=None, scan=False) -> None:
    assert repo["repositoryName"] == name, repo
    assert repo["repositoryArn"] == ecr_repo_arn(name), repo
    assert repo["registryId"] == ACCOUNT_ID, repo
    assert repo["repositoryUri"] == f"{registry_host()}/{name}", repo
    recent(repo["createdAt"], "createdAt")
    assert repo["imageTagMutability"] == mutability, repo
    assert repo["imageScanningConfiguration"] == {"scanOnPush": scan}, repo
    assert repo["encryptionConfiguration"] == (encryption or {"encryptionType": "AES256"}), repo


def test_create_describe_delete_repository():
    ecr = ecr_client()
    plain, full = unique_repo("plain"), unique_repo("full")
    try:
        check_repository(ecr.create_repository(repositoryName=plain)["repository"], plain)
        kms = {"encryptionType": "KMS", "kmsKey": f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/{uuid.uuid4()}"}
        out = ecr.create_repository(repositoryName=full, imageTagMutability="IMMUTABLE", encryptionConfiguration=kms,
                                    imageScanningConfiguration={"scanOnPush": True},
                                    tags=[{"Key": "team", "Value": "pier"}, {"Key": "env", "Value": ""}])
        check_repository(out["repository"], full, "IMMUTABLE", kms, True)
        got = ecr.describe_repositories(repositoryNames=[full, plain])["repositories"]
        assert [r["repositoryName"] for r in got] == [full, plain], got
        check_repository(got[0], full, "IMMUTABLE", kms, True)
        check_repository(got[1], plain)
        assert got[0]["createdAt"] == out["repository"]["createdAt"], got
        tags = ecr.list_tags_for_resource(resourceArn=ecr_repo_arn(full))["tags"]
        assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", ""), ("team", "pier")], tags
        # Node B sees the same.
        got_b = ecr_client(base_url=url_b()).describe_repositories(repositoryNames=[full])["repositories"]
        assert got_b[0]["encryptionConfiguration"] == kms, got_b

        msg = expect_api_error("RepositoryAlreadyExistsException", ecr.create_repository, repositoryName=plain)
        assert plain in msg, msg
        ecr.set_repository_policy(repositoryName=full, policyText=iam_policy(iam_statement(
            "ecr:ListImages", ecr_repo_arn(full), principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"})))
        out = ecr.delete_repository(repositoryName=full)
        check_repository(out["repository"], full, "IMMUTABLE", kms, True)
        msg = expect_api_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=[full])
        assert full in msg, msg
        expect_api_error("RepositoryNotFoundException", ecr.delete_repository, repositoryName=full)
        expect_api_error("RepositoryNotFoundException", ecr.list_tags_for_resource, resourceArn=ecr_repo_arn(full))
        # A new repository of the same name starts clean: no tags, no policy left behind.
        ecr.create_repository(repositoryName=full)
        assert ecr.list_tags_for_resource(resourceArn=ecr_repo_arn(full))["tags"] == []
        expect_api_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=full)
        # One unknown name fails the whole call.
        expect_api_error("RepositoryNotFoundException", ecr.describe_repositories,
                         repositoryNames=[plain, unique_repo("missing")])
    finally:
        drop(plain)
        drop(full)


def test_create_repository_refuses_bad_input_without_creating_anything():
    ecr = ecr_client(validate=False)
    ns = unique_repo("bad").split("/")[0]
    cases = [
        ({"repositoryName": f"{ns}/UPPER"}, "InvalidParameterException", "repositoryName"),
        ({"repositoryName": "a"}, "InvalidParameterException", "repositoryName"),
        ({"repositoryName": f"{ns}/a..b"}, "InvalidParameterException", "repositoryName"),
        ({"repositoryName": f"{ns}/-lead"}, "InvalidParameterException", "repositoryName"),
        ({"repositoryName": f"{ns}/x", "imageTagMutability": "SOMETIMES"}, "InvalidParameterException",
         "imageTagMutability"),
        ({"repositoryName": f"{ns}/x", "encryptionConfiguration": {"encryptionType": "ROT13"}},
         "InvalidParameterException", "encryptionType"),
        ({"repositoryName": f"{ns}/x", "encryptionConfiguration": {"encryptionType": "AES256", "kmsKey": "k"}},
         "InvalidParameterException", "kmsKey"),
        ({"repositoryName": f"{ns}/x", "registryId": "999999999999"}, "InvalidParameterException", "registryId"),
        ({"repositoryName": f"{ns}/x", "tags": [{"Key": "aws:reserved", "Value": "v"}]},
         "InvalidTagParameterException", "aws:"),
        ({"repositoryName": f"{ns}/x", "tags": [{"Key": "", "Value": "v"}]}, "InvalidTagParameterException", "Key"),
        ({"repositoryName": f"{ns}/x", "tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]},
         "TooManyTagsException", "50"),
        ({}, "InvalidParameterException", "repositoryName"),
    ]
    problems = []
    for body, code, word in cases:
        got, msg, status = api_error(ecr.create_repository, **body)
        if got != code or status != 400 or word not in msg:
            problems.append(f"{body!r:.120}: {got} {status} {msg!r} (expected {code} mentioning {word!r})")
    assert not problems, "\n".join(problems)
    listed = [r["repositoryName"] for page in ecr.get_paginator("describe_repositories").paginate()
              for r in page["repositories"]]
    leaked = [n for n in listed if n.startswith(ns + "/")]
    assert not leaked, f"refused creations left repositories behind: {leaked}"


def test_describe_repositories_pages():
    ecr = ecr_client()
    ns = unique_repo("pages").split("/")[0] + "-pg"
    names = [f"{ns}/r{i}" for i in range(5)]
    try:
        for n in names:
            ecr.create_repository(repositoryName=n)
        seen, pages = [], 0
        for page in ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 2}):
            pages += 1
            assert len(page["repositories"]) <= 2, page
            seen += [r["repositoryName"] for r in page["repositories"]]
        ours = [n for n in seen if n.startswith(ns + "/")]
        assert sorted(ours) == names, f"paging found {ours}"
        assert len(seen) == len(set(seen)), "a repository appeared on two pages"
        assert pages >= 3, f"5+ repositories in pages of 2 came in {pages} pages"
        first = ecr.describe_repositories(maxResults=1)
        assert len(first["repositories"]) == 1 and isinstance(first.get("nextToken"), str), first
        nxt = ecr.describe_repositories(maxResults=1, nextToken=first["nextToken"])
        assert nxt["repositories"][0]["repositoryName"] != first["repositories"][0]["repositoryName"], nxt
        raw = ecr_client(validate=False)
        for kw in ({"maxResults": 0}, {"maxResults": 1001}, {"nextToken": "not-a-token"}):
            expect_api_error("InvalidParameterException", raw.describe_repositories, **kw)
    finally:
        for n in names:
            drop(n)


def test_delete_repository_not_empty_and_force():
    ecr = ecr_client()
    repo = unique_repo("full-repo")
    img = push_image(client_a(), repo, "v1")
    try:
        msg = expect_api_error("RepositoryNotEmptyException", ecr.delete_repository, repositoryName=repo)
        assert repo in msg, msg
        r = client_a().get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
        out = ecr.delete_repository(repositoryName=repo, force=True)
        check_repository(out["repository"], repo)
        r = client_a().get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status == 404, f"image of a force-deleted repository still served: {r.summary()}"
        expect_api_error("RepositoryNotFoundException", ecr.describe_images, repositoryName=repo)
    finally:
        drop(repo)


def test_repository_policy_set_get_delete():
    ecr = ecr_client()
    repo = unique_repo("repopol")
    ecr.create_repository(repositoryName=repo)
    try:
        with User("api-repopol") as u:
            msg = expect_api_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=repo)
            assert repo in msg, msg
            expect_api_error("RepositoryPolicyNotFoundException", ecr.delete_repository_policy, repositoryName=repo)
            expect_api_error("AccessDeniedException", ecr_client(u.creds).list_images, repositoryName=repo)
            doc = iam_policy(iam_statement(["ecr:ListImages", "ecr:DescribeImages"], ecr_repo_arn(repo),
                                           sid="ReadForUser", principal={"AWS": u.arn}))
            out = ecr.set_repository_policy(repositoryName=repo, policyText=doc)
            assert (out["registryId"], out["repositoryName"], out["policyText"]) == (ACCOUNT_ID, repo, doc), out
            got = ecr.get_repository_policy(repositoryName=repo)
            assert (got["registryId"], got["repositoryName"], got["policyText"]) == (ACCOUNT_ID, repo, doc), got
            time.sleep(POLICY_SETTLE)
            assert ecr_client(u.creds).list_images(repositoryName=repo)["imageIds"] == []
            expect_api_error("AccessDeniedException", ecr_client(u.creds).get_repository_policy, repositoryName=repo)

            bad = [
                ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}', "Statement[0].Principal"),
                ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":7}]}',
                 "Statement[0].Action"),
                ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*"},'
                 '{"Effect":"Allow","Principal":{"AWS":5},"Action":"ecr:*"}]}', "Statement[1].Principal"),
                ("{", "JSON"),
            ]
            problems = []
            for text, path in bad:
                code, msg, status = api_error(ecr.set_repository_policy, repositoryName=repo, policyText=text)
                if code != "InvalidParameterException" or status != 400 or path not in msg:
                    problems.append(f"{text}: {code} {status} {msg!r} (expected InvalidParameterException naming {path})")
            assert not problems, "\n".join(problems)
            assert ecr.get_repository_policy(repositoryName=repo)["policyText"] == doc

            missing = unique_repo("nopol")
            for call in (ecr.get_repository_policy, ecr.delete_repository_policy):
                expect_api_error("RepositoryNotFoundException", call, repositoryName=missing)
            expect_api_error("RepositoryNotFoundException", ecr.set_repository_policy, repositoryName=missing,
                             policyText=doc)

            out = ecr.delete_repository_policy(repositoryName=repo)
            assert (out["registryId"], out["repositoryName"], out["policyText"]) == (ACCOUNT_ID, repo, doc), out
            expect_api_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=repo)
            time.sleep(POLICY_SETTLE)
            expect_api_error("AccessDeniedException", ecr_client(u.creds).list_images, repositoryName=repo)
    finally:
        drop(repo)


def test_resource_tags():
    ecr = ecr_client()
    repo = unique_repo("tags")
    arn = ecr_repo_arn(repo)
    ecr.create_repository(repositoryName=repo, tags=[{"Key": "a", "Value": "1"}])
    try:
        assert ecr.tag_resource(resourceArn=arn, tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "one"}]) \
            .keys() <= {"ResponseMetadata"}
        tags = ecr.list_tags_for_resource(resourceArn=arn)["tags"]
        assert tags == [{"Key": "a", "Value": "one"}, {"Key": "b", "Value": "2"}], tags
        ecr.untag_resource(resourceArn=arn, tagKeys=["a", "not-there"])
        assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}]

        expect_api_error("InvalidTagParameterException", ecr.tag_resource, resourceArn=arn,
                         tags=[{"Key": "aws:x", "Value": "y"}])
        msg = expect_api_error("TooManyTagsException", ecr.tag_resource, resourceArn=arn,
                               tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
        assert "50" in msg, msg
        assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "b", "Value": "2"}], \
            "a refused TagResource stored some of its tags"
        missing = ecr_repo_arn(unique_repo("no-such"))
        for call, kw in ((ecr.list_tags_for_resource, {}), (ecr.tag_resource, {"tags": [{"Key": "k", "Value": "v"}]}),
                         (ecr.untag_resource, {"tagKeys": ["k"]})):
            expect_api_error("RepositoryNotFoundException", call, resourceArn=missing, **kw)
        for bad in ("arn:aws:ecr:us-east-1:999999999999:repository/x/y", "arn:aws:s3:::bucket", "not-an-arn",
                    f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/UPPER"):
            expect_api_error("InvalidParameterException", ecr.list_tags_for_resource, resourceArn=bad)
    finally:
        drop(repo)


def test_put_image_tag_mutability():
    ecr = ecr_client()
    repo = unique_repo("mut")
    ecr.create_repository(repositoryName=repo)
    try:
        out = ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
        assert (out["registryId"], out["repositoryName"], out["imageTagMutability"]) == \
            (ACCOUNT_ID, repo, "IMMUTABLE"), out
        assert ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageTagMutability"] == "IMMUTABLE"
        out = ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="MUTABLE")
        assert out["imageTagMutability"] == "MUTABLE", out
        assert ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageTagMutability"] == "MUTABLE"
        expect_api_error("InvalidParameterException", ecr.put_image_tag_mutability, repositoryName=repo,
                         imageTagMutability="FROZEN")
        expect_api_error("RepositoryNotFoundException", ecr.put_image_tag_mutability,
                         repositoryName=unique_repo("gone"), imageTagMutability="IMMUTABLE")
    finally:
        drop(repo)


def test_an_immutable_repository_refuses_to_move_a_tag_until_it_is_mutable_again():
    """docs/control-plane.md: PutImageTagMutability is enforced, a push cannot move a tag
    of an immutable repository. Pushing the image the tag already names is no move."""
    ecr = ecr_client()
    c = client_a()
    repo = unique_repo("immutable")
    ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE")
    try:
        first = push_image(c, repo, "1.0")
        other = push_image(c, repo, None)
        r = put_manifest(c, repo, "1.0", other.manifest)
        assert_oci_error(r, 403, "DENIED", ("immutable",))
        assert "1.0" in r.text, f"the refusal does not name the tag: {r.summary()}"
        got = expect_status(c.get(f"/v2/{repo}/manifests/1.0", headers={"Accept": OCI_MANIFEST}), 200)
        assert got.header("Docker-Content-Digest") == first.digest and got.body == first.manifest.data, \
            f"the refused push moved the tag: {got.summary()}"
        # The same image again under its tag, and a new image under a new tag, are pushes as usual.
        push_manifest(c, repo, "1.0", first.manifest)
        push_manifest(c, repo, "1.1", other.manifest)
        # Made mutable, the tag moves.
        ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="MUTABLE")
        push_manifest(c, repo, "1.0", other.manifest)
        got = expect_status(c.get(f"/v2/{repo}/manifests/1.0", headers={"Accept": OCI_MANIFEST}), 200)
        assert got.header("Docker-Content-Digest") == other.digest, got.summary()
    finally:
        drop(repo)


def _three_images(repo):
    """a: tags v1 and v2; b: untagged; c: tag c1. Returns (a, b, c)."""
    c = client_a()
    a = push_image(c, repo, "v1")
    push_manifest(c, repo, "v2", a.manifest)
    b = push_image(c, repo, None)
    cc = push_image(c, repo, "c1", nlayers=2)
    return a, b, cc


def test_list_images_filters_and_pages():
    ecr = ecr_client()
    repo = unique_repo("list")
    a, b, c = _three_images(repo)
    try:
        def ids(**kw):
            out = []
            for page in ecr.get_paginator("list_images").paginate(repositoryName=repo, **kw):
                out += [(i["imageDigest"], i.get("imageTag")) for i in page["imageIds"]]
            return sorted(out, key=lambda x: (x[0], x[1] or ""))
        every = sorted([(a.digest, "v1"), (a.digest, "v2"), (b.digest, None), (c.digest, "c1")],
                       key=lambda x: (x[0], x[1] or ""))
        assert ids() == every, ids()
        assert ids(PaginationConfig={"PageSize": 1}) == every
        assert ids(filter={"tagStatus": "ANY"}) == every
        assert ids(filter={"tagStatus": "TAGGED"}) == [x for x in every if x[1]]
        assert ids(filter={"tagStatus": "UNTAGGED"}) == [(b.digest, None)]
        page = ecr.list_images(repositoryName=repo, maxResults=2)
        assert len(page["imageIds"]) == 2 and page.get("nextToken"), page
        rest = ecr.list_images(repositoryName=repo, maxResults=2, nextToken=page["nextToken"])
        assert len(rest["imageIds"]) == 2 and not rest.get("nextToken"), rest
        raw = ecr_client(validate=False)
        expect_api_error("InvalidParameterException", raw.list_images, repositoryName=repo,
                         filter={"tagStatus": "SOMETIMES"})
        expect_api_error("InvalidParameterException", raw.list_images, repositoryName=repo, maxResults=0)
        expect_api_error("RepositoryNotFoundException", ecr.list_images, repositoryName=unique_repo("none"))
    finally:
        drop(repo)


def test_describe_images_details():
    ecr = ecr_client()
    repo = unique_repo("describe")
    a, b, c = _three_images(repo)
    index, _children = push_index(client_a(), repo, "multi")
    try:
        details = []
        for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo,
                                                                   PaginationConfig={"PageSize": 2}):
            details += page["imageDetails"]
        by_digest = {d["imageDigest"]: d for d in details}
        assert len(details) == len(by_digest), "an image appeared twice"
        assert {a.digest, b.digest, c.digest, index.digest} <= set(by_digest), sorted(by_digest)
        for img, tags in ((a, ["v1", "v2"]), (b, None), (c, ["c1"])):
            d = by_digest[img.digest]
            assert d["registryId"] == ACCOUNT_ID and d["repositoryName"] == repo, d
            assert d.get("imageTags") == tags if tags else "imageTags" not in d or d["imageTags"] == [], d
            layers = sum(l.size for l in img.layers)
            size = d["imageSizeInBytes"]
            assert isinstance(size, int) and layers <= size <= layers + img.config.size, \
                f"imageSizeInBytes {size} for layers of {layers} bytes and a config of {img.config.size}"
            recent(d["imagePushedAt"], "imagePushedAt")
            assert d["imageManifestMediaType"] == OCI_MANIFEST, d
        assert by_digest[index.digest]["imageManifestMediaType"] == OCI_INDEX
        assert by_digest[index.digest]["imageTags"] == ["multi"]

        one = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v2"}])["imageDetails"]
        assert [d["imageDigest"] for d in one] == [a.digest], one
        one = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": c.digest}])["imageDetails"]
        assert [d["imageDigest"] for d in one] == [c.digest], one
        expect_api_error("ImageNotFoundException", ecr.describe_images, repositoryName=repo,
                         imageIds=[{"imageTag": "no-such-tag"}])
        expect_api_error("ImageNotFoundException", ecr.describe_images, repositoryName=repo,
                         imageIds=[{"imageDigest": "sha256:" + "0" * 64}])
        expect_api_error("InvalidParameterException", ecr.describe_images, repositoryName=repo,
                         imageIds=[{"imageDigest": "sha256:xyz"}])
        expect_api_error("RepositoryNotFoundException", ecr.describe_images, repositoryName=unique_repo("none"))
        # filter.tagStatus, as in ListImages.
        for status, want in (("TAGGED", {a.digest, c.digest, index.digest}),
                             ("UNTAGGED", set(by_digest) - {a.digest, c.digest, index.digest})):
            got = {d["imageDigest"] for d in ecr.describe_images(repositoryName=repo,
                                                                 filter={"tagStatus": status})["imageDetails"]}
            assert got == want, f"DescribeImages filter tagStatus={status}: {sorted(got)}, expected {sorted(want)}"
    finally:
        drop(repo)


def test_describe_images_records_the_last_pull():
    ecr = ecr_client()
    repo = unique_repo("pulltime")
    img = push_image(client_a(), repo, "v1")
    try:
        before = ecr.describe_images(repositoryName=repo)["imageDetails"][0]
        assert "lastRecordedPullTime" not in before, f"never pulled, yet {before}"
        t0 = now()
        r = Client(url_b()).get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200, r.summary()

        def pulled():
            # Workers record pulls in their periodic flush (after 2 s idle, or with a later request).
            d = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": img.digest}])["imageDetails"][0]
            return d.get("lastRecordedPullTime")
        ts = wait_until(pulled, 20, 0.5)
        assert ts, "lastRecordedPullTime did not appear within 20 s of a pull"
        assert isinstance(ts, datetime.datetime), ts
        assert t0 - datetime.timedelta(seconds=5) <= ts <= now() + datetime.timedelta(seconds=5), \
            f"lastRecordedPullTime {ts} is not the pull at {t0}"
    finally:
        drop(repo)


def test_batch_get_image():
    ecr = ecr_client()
    repo = unique_repo("batchget")
    a, b, c = _three_images(repo)
    try:
        out = ecr.batch_get_image(repositoryName=repo, imageIds=[
            {"imageTag": "v1"}, {"imageDigest": b.digest}, {"imageDigest": c.digest, "imageTag": "c1"},
            {"imageTag": "missing"}, {"imageDigest": "sha256:" + "1" * 64}, {"imageDigest": "md5:zz"},
            {"imageDigest": a.digest, "imageTag": "c1"}])
        images = out["images"]
        assert [(i["imageId"]["imageDigest"], i["imageId"].get("imageTag")) for i in images] == \
            [(a.digest, "v1"), (b.digest, None), (c.digest, "c1")], images
        for i, img in zip(images, (a, b, c)):
            assert i["registryId"] == ACCOUNT_ID and i["repositoryName"] == repo, i
            assert i["imageManifest"].encode() == img.manifest.data, "imageManifest is not the pushed bytes"
            assert i["imageManifestMediaType"] == OCI_MANIFEST, i
        codes = [(f["imageId"], f["failureCode"]) for f in out["failures"]]
        assert codes == [({"imageTag": "missing"}, "ImageNotFound"),
                         ({"imageDigest": "sha256:" + "1" * 64}, "ImageNotFound"),
                         ({"imageDigest": "md5:zz"}, "InvalidImageDigest"),
                         ({"imageDigest": a.digest, "imageTag": "c1"}, "ImageTagDoesNotMatchDigest")], codes
        assert all(f["failureReason"] for f in out["failures"]), out["failures"]
        # acceptedMediaTypes that exclude the image's type: a failure, not the image.
        out = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}],
                                  acceptedMediaTypes=["application/vnd.docker.distribution.manifest.v2+json"])
        assert out["images"] == [] and len(out["failures"]) == 1, out
        out = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}],
                                  acceptedMediaTypes=[OCI_MANIFEST])
        assert len(out["images"]) == 1, out
        expect_api_error("RepositoryNotFoundException", ecr.batch_get_image, repositoryName=unique_repo("none"),
                         imageIds=[{"imageTag": "v1"}])
        expect_api_error("InvalidParameterException", ecr_client(validate=False).batch_get_image,
                         repositoryName=repo, imageIds=[])
    finally:
        drop(repo)


def test_batch_delete_image():
    ecr = ecr_client()
    repo = unique_repo("batchdel")
    a, b, c = _three_images(repo)
    try:
        out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}, {"imageTag": "missing"}])
        assert out["imageIds"] == [{"imageDigest": a.digest, "imageTag": "v1"}], out
        assert [(f["imageId"], f["failureCode"]) for f in out["failures"]] == [({"imageTag": "missing"}, "ImageNotFound")]
        # a keeps its other tag.
        d = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": a.digest}])["imageDetails"][0]
        assert d["imageTags"] == ["v2"], d
        # By digest: the image and every tag go.
        out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": b.digest}])
        assert out["imageIds"] == [{"imageDigest": b.digest}] and out["failures"] == [], out
        expect_api_error("ImageNotFoundException", ecr.describe_images, repositoryName=repo,
                         imageIds=[{"imageDigest": b.digest}])
        r = client_a().get(f"/v2/{repo}/manifests/{b.digest}", headers={"Accept": OCI_MANIFEST})
        assert r.status == 404, r.summary()
        # Removing an image's last tag deletes the image (as ECR does).
        out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "c1"}])
        assert out["imageIds"] == [{"imageDigest": c.digest, "imageTag": "c1"}], out
        left = sorted(i["imageDigest"] for i in ecr.list_images(repositoryName=repo)["imageIds"])
        assert left == [a.digest], f"after deleting c's only tag the repository holds {left}, expected only {a.digest}"
        expect_api_error("RepositoryNotFoundException", ecr.batch_delete_image, repositoryName=unique_repo("none"),
                         imageIds=[{"imageTag": "v1"}])
    finally:
        drop(repo)


def test_repository_operations_as_a_scoped_user_with_boto3_defaults():
    """A user allowed everything on one namespace works there and nowhere else (boto3, default registryId)."""
    ns = unique_repo("own").split("/")[0] + "-own"
    doc = iam_policy(iam_statement("ecr:*", f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{ns}/*"))
    with User("api-own", {"own": doc}) as u:
        mine = ecr_client(u.creds)
        try:
            mine.create_repository(repositoryName=f"{ns}/app", registryId=ACCOUNT_ID)
            img = push_image(Client(url_a(), auth=u.creds), f"{ns}/app", "v1")
            assert mine.batch_get_image(repositoryName=f"{ns}/app", imageIds=[{"imageTag": "v1"}])["images"][0][
                "imageId"]["imageDigest"] == img.digest
            expect_api_error("RepositoryNotEmptyException", mine.delete_repository, repositoryName=f"{ns}/app")
            mine.delete_repository(repositoryName=f"{ns}/app", force=True)
            expect_api_error("AccessDeniedException", mine.create_repository, repositoryName=f"{ns}x/app")
            r = signed_api_request("DescribeRegistry", {}, creds=u.creds)
            api_error_body(r, "AccessDeniedException")
        finally:
            drop(f"{ns}/app")
