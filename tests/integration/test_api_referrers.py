"""Control plane, ListImageReferrers: the artifacts whose subject is an image
(the OCI referrers API's list, in ECR's shape), filters, pages, its errors,
and a cache repository whose upstream cannot list them. Answers are checked
on the wire against the installed botocore model; boto3 and the aws CLI v1
(v2.9.19's model does not have the operation)."""

import os

from pierlib import (
    EMPTY_CONFIG, OCI_MANIFEST, Content, artifact_manifest, aws_cli, aws_cli_error, aws_json,
    client_a, ecr_client, expect_api_error, expect_status, iam_policy, iam_statement, push_blob_monolithic,
    push_image, put_manifest, unique_repo,
)
from authlib import User
from upstreams import unique_prefix, upstream_port
from ecrmodel import raw, raw_error
from pierlib import drop_repositories as drop

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


def push_artifact(c, repo, subject, artifact_type, annotations):
    payload = Content(os.urandom(200), "application/octet-stream")
    push_blob_monolithic(c, repo, payload.data)
    push_blob_monolithic(c, repo, EMPTY_CONFIG.data)
    art = artifact_manifest(subject, artifact_type, [payload], annotations=annotations)
    expect_status(put_manifest(c, repo, art.digest, art), 201, f"PUT artifact {artifact_type}")
    return art


def test_list_image_referrers():
    c = client_a()
    ecr = ecr_client()
    repo = unique_repo("ecr-referrers")
    img = push_image(c, repo, "v1")
    other = push_image(c, repo, "v2")
    sbom = push_artifact(c, repo, img.manifest, SBOM, {"org.example.kind": "sbom"})
    sig = push_artifact(c, repo, img.manifest, SIG, {"org.example.kind": "signature"})
    try:
        body = {"repositoryName": repo, "subjectId": {"imageDigest": img.digest}}
        out = raw("ListImageReferrers", body)
        got = {r["digest"]: r for r in out["referrers"]}
        assert set(got) == {sbom.digest, sig.digest}, out
        assert got[sbom.digest] == {"digest": sbom.digest, "mediaType": OCI_MANIFEST, "size": sbom.size,
                                    "artifactType": SBOM, "annotations": {"org.example.kind": "sbom"},
                                    "artifactStatus": "ACTIVE"}, got[sbom.digest]
        assert "nextToken" not in out, out
        # boto3 parses it; the registryId of this registry is fine.
        parsed = ecr.list_image_referrers(registryId="111122223333", repositoryName=repo,
                                          subjectId={"imageDigest": img.digest})
        assert {r["digest"] for r in parsed["referrers"]} == {sbom.digest, sig.digest}, parsed
        # Filters: artifact types (any of them), and the status (nothing is archived here).
        only = raw("ListImageReferrers", body | {"filter": {"artifactTypes": [SBOM]}})
        assert [r["digest"] for r in only["referrers"]] == [sbom.digest], only
        both = raw("ListImageReferrers", body | {"filter": {"artifactTypes": [SBOM, SIG, "x/none"]}})
        assert len(both["referrers"]) == 2, both
        for status, n in (("ACTIVE", 2), ("ANY", 2), ("ARCHIVED", 0), ("ACTIVATING", 0)):
            got = raw("ListImageReferrers", body | {"filter": {"artifactStatus": status}})
            assert len(got["referrers"]) == n, f"artifactStatus {status}: {got}"
        # Pages of one.
        first = raw("ListImageReferrers", body | {"maxResults": 1})
        assert len(first["referrers"]) == 1 and first.get("nextToken"), first
        second = raw("ListImageReferrers", body | {"maxResults": 1, "nextToken": first["nextToken"]})
        assert len(second["referrers"]) == 1 and "nextToken" not in second, second
        assert {first["referrers"][0]["digest"], second["referrers"][0]["digest"]} == {sbom.digest, sig.digest}
        # An image nothing refers to, and a digest nothing has: empty lists.
        assert raw("ListImageReferrers", {"repositoryName": repo, "subjectId": {"imageDigest": other.digest}}) \
            == {"referrers": []}
        assert raw("ListImageReferrers", {"repositoryName": repo,
                                          "subjectId": {"imageDigest": "sha256:" + "0" * 64}}) == {"referrers": []}
        # The aws CLI v1.
        cli = aws_json("ecr", "list-image-referrers", "--repository-name", repo, "--subject-id",
                       f"imageDigest={img.digest}", "--filter", f"artifactTypes={SIG}")
        assert [r["digest"] for r in cli["referrers"]] == [sig.digest], cli
        code, msg = aws_cli_error(aws_cli("ecr", "list-image-referrers", "--repository-name", repo + "-none",
                                          "--subject-id", f"imageDigest={img.digest}", check=False))
        assert code == "RepositoryNotFoundException", (code, msg)
        # Errors.
        expect_api_error("RepositoryNotFoundException", ecr.list_image_referrers, repositoryName=repo + "-none",
                         subjectId={"imageDigest": img.digest})
        for bad in ({"repositoryName": repo}, {"repositoryName": repo, "subjectId": {"imageDigest": "sha256:xyz"}},
                    body | {"maxResults": 51}, body | {"filter": {"artifactStatus": "GONE"}},
                    body | {"filter": {"artifactTypes": ["a"] * 6}}, body | {"nextToken": "nope"}):
            raw_error("ListImageReferrers", bad, "InvalidParameterException")
        # The permission it needs is the pull permission, ecr:BatchGetImage.
        with User("refs-none") as u:
            msg = raw_error("ListImageReferrers", body, "AccessDeniedException", creds=u.creds)
            assert "ecr:BatchGetImage" in msg, msg
        with User("refs-pull", {"pull": iam_policy(iam_statement("ecr:BatchGetImage", "*"))}) as u:
            assert len(raw("ListImageReferrers", body, creds=u.creds)["referrers"]) == 2
    finally:
        drop(repo)


def test_list_image_referrers_cache_repository_upstream_down():
    """A cache repository asks its upstream; when it cannot and nothing is cached, ECR's exception says so."""
    ecr = ecr_client()
    prefix = unique_prefix("refdead")
    dead_url = f"http://127.0.0.1:{upstream_port()}"
    repo = f"{prefix}/library/thing"
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=dead_url)
    try:
        ecr.create_repository(repositoryName=repo)
        msg = raw_error("ListImageReferrers", {"repositoryName": repo,
                                               "subjectId": {"imageDigest": "sha256:" + "1" * 64}},
                        "UnableToListUpstreamImageReferrersException")
        assert prefix in msg, msg
    finally:
        drop(repo)
        try:
            ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        except Exception:  # noqa: BLE001 - cleanup
            pass
