"""Control plane, every operation of the installed botocore ECR model: each one
answers (as ECR would, or with a clear "not supported by Pier" error in ECR's
shape), never UnknownOperationException, and docs/control-plane.md lists each
with its status. Then the operations that need engines Pier does not have —
replication, scanning, managed signing, archival storage — one by one, with
boto3 and the aws CLI v1 and v2 (for those in v2.9.19's model)."""

import os
import re

from pierlib import (
    ACCOUNT_ID, aws_cli, aws_cli_error, aws_json, client_a, ecr_client, env,
    expect_api_error, iam_policy, iam_statement, push_image, signed_api_request, unique_repo,
)
from authlib import User
import ecrmodel
from ecrmodel import raw, raw_error
from pierlib import drop_repositories as drop

STATUSES = ("supported", "partly", "not supported")


def docs_table() -> dict[str, str]:
    """operation -> status, from the table of docs/control-plane.md."""
    path = os.path.join(env("PIER_SRC"), "docs", "control-plane.md")
    with open(path) as f:
        text = f.read()
    # Only the section of that table: other tables of the page (tag mutability modes) are not
    # operations.
    start = text.index("## Every operation of the model")
    end = text.find("\n## ", start + 1)
    text = text[start:end if end > 0 else len(text)]
    rows = {}
    for m in re.finditer(r"^\|\s*`?([A-Z][A-Za-z]+)`?\s*\|\s*([a-z ]+?)\s*\|", text, re.M):
        rows[m.group(1)] = m.group(2)
    return rows


def test_every_model_operation_answers_and_is_documented():
    ops = ecrmodel.operations()
    assert len(ops) >= 58, f"the installed model has only {len(ops)} operations"
    # A caller denied everything: an implemented operation refuses it (or its input) before doing
    # anything, so walking every operation changes nothing; an unknown one says so first.
    deny_all = iam_policy(iam_statement("ecr:*", "*", effect="Deny"))
    problems = []
    with User("walk", {"deny": deny_all}) as u:
        for op in ops:
            r = signed_api_request(op, {}, creds=u.creds)
            doc = r.json() if r.text.strip().startswith("{") else {}
            code = doc.get("__type", "")
            if code == "UnknownOperationException" or r.status >= 500:
                problems.append(f"{op}: {r.status} {code}: {doc.get('message')}")
            elif r.status == 200:
                ecrmodel.check_output(op, doc)
            else:
                try:
                    ecrmodel.check_error(op, code)
                except AssertionError as e:
                    problems.append(str(e))
    assert not problems, "operations without a proper answer:\n" + "\n".join(problems)
    table = docs_table()
    missing = [op for op in ops if op not in table]
    assert not missing, f"docs/control-plane.md does not list {missing}"
    odd = {op: st for op, st in table.items() if st not in STATUSES}
    assert not odd, f"docs/control-plane.md: statuses must be one of {STATUSES}: {odd}"
    unknown = sorted(set(table) - set(ops) - {"CreateSecret", "PutSecretValue", "DescribeSecret", "ListSecrets",
                                             "DeleteSecret"})
    assert not unknown, f"docs/control-plane.md lists operations the model does not have: {unknown}"


def test_replication_answers_that_nothing_replicates():
    ecr = ecr_client()
    repo = unique_repo("repl")
    img = push_image(client_a(), repo, "v1")
    try:
        out = raw("PutReplicationConfiguration", {"replicationConfiguration": {"rules": []}})
        assert out == {"replicationConfiguration": {"rules": []}}, out
        reg = raw("DescribeRegistry", {})
        assert reg["replicationConfiguration"] == {"rules": []}, reg
        rule = {"destinations": [{"region": "eu-west-1", "registryId": ACCOUNT_ID}],
                "repositoryFilters": [{"filter": "team", "filterType": "PREFIX_MATCH"}]}
        msg = expect_api_error("ValidationException", ecr.put_replication_configuration,
                               replicationConfiguration={"rules": [rule]})
        assert "replication is not supported by Pier" in msg, msg
        assert ecr.describe_registry()["replicationConfiguration"] == {"rules": []}
        raw_error("PutReplicationConfiguration", {}, "InvalidParameterException")
        for cli in (1, 2):
            assert aws_json("ecr", "put-replication-configuration", "--replication-configuration",
                            '{"rules": []}', version=cli) == {"replicationConfiguration": {"rules": []}}
            code, msg = aws_cli_error(aws_cli("ecr", "put-replication-configuration", "--replication-configuration",
                                              '{"rules": [{"destinations": [{"region": "eu-west-1", '
                                              f'"registryId": "{ACCOUNT_ID}"}}]}}]}}', version=cli, check=False))
            assert code == "ValidationException" and "replication" in msg, (cli, code, msg)

        for image_id in ({"imageDigest": img.digest}, {"imageTag": "v1"}):
            out = raw("DescribeImageReplicationStatus", {"repositoryName": repo, "imageId": image_id})
            assert out["repositoryName"] == repo and out["replicationStatuses"] == [], out
            assert out["imageId"]["imageDigest"] == img.digest, out
            assert out["imageId"].get("imageTag") == image_id.get("imageTag"), out
        for cli in (1, 2):
            out = aws_json("ecr", "describe-image-replication-status", "--repository-name", repo,
                           "--image-id", "imageTag=v1", version=cli)
            assert out["replicationStatuses"] == [] and out["imageId"]["imageDigest"] == img.digest, (cli, out)
        expect_api_error("ImageNotFoundException", ecr.describe_image_replication_status, repositoryName=repo,
                         imageId={"imageTag": "nope"})
        expect_api_error("ImageNotFoundException", ecr.describe_image_replication_status, repositoryName=repo,
                         imageId={"imageDigest": "sha256:" + "2" * 64})
        expect_api_error("RepositoryNotFoundException", ecr.describe_image_replication_status,
                         repositoryName=repo + "-none", imageId={"imageTag": "v1"})
        raw_error("DescribeImageReplicationStatus", {"repositoryName": repo}, "InvalidParameterException")
        raw_error("DescribeImageReplicationStatus", {"repositoryName": repo, "imageId": {}},
                  "InvalidParameterException")
        with User("repl-none") as u:
            raw_error("PutReplicationConfiguration", {"replicationConfiguration": {"rules": []}},
                      "AccessDeniedException", creds=u.creds)
            raw_error("DescribeImageReplicationStatus", {"repositoryName": repo, "imageId": {"imageTag": "v1"}},
                      "AccessDeniedException", creds=u.creds)
    finally:
        drop(repo)


def test_scanning_operations_say_pier_has_no_scanner_and_scan_on_push_is_stored():
    ecr = ecr_client()
    repo = unique_repo("scan")
    img = push_image(client_a(), repo, "v1")
    image = {"imageDigest": img.digest}
    try:
        for call, kw, code in (
                (ecr.start_image_scan, {"repositoryName": repo, "imageId": image}, "UnsupportedImageTypeException"),
                (ecr.describe_image_scan_findings, {"repositoryName": repo, "imageId": {"imageTag": "v1"}},
                 "ScanNotFoundException"),
                (ecr.put_registry_scanning_configuration, {"scanType": "BASIC"}, "ValidationException"),
                (ecr.get_registry_scanning_configuration, {}, "ValidationException"),
                (ecr.batch_get_repository_scanning_configuration, {"repositoryNames": [repo]},
                 "ValidationException")):
            msg = expect_api_error(code, call, **kw)
            assert "not supported by Pier" in msg and "no scanning engine" in msg, f"{call.__name__}: {msg}"
        # The repository and the image are checked first, as ECR does.
        for call in (ecr.start_image_scan, ecr.describe_image_scan_findings):
            expect_api_error("RepositoryNotFoundException", call, repositoryName=repo + "-none", imageId=image)
            expect_api_error("ImageNotFoundException", call, repositoryName=repo, imageId={"imageTag": "nope"})
        expect_api_error("RepositoryNotFoundException", ecr.put_image_scanning_configuration,
                         repositoryName=repo + "-none", imageScanningConfiguration={"scanOnPush": False})
        raw_error("BatchGetRepositoryScanningConfiguration", {"repositoryNames": []}, "InvalidParameterException")
        raw_error("PutImageScanningConfiguration", {"repositoryName": repo,
                  "imageScanningConfiguration": {"scanOnPush": "yes"}}, "InvalidParameterException")
        # scanOnPush is stored and read back as CreateRepository's is (Terraform
        # updates it with this call), and scans nothing.
        def scan_on_push():
            return ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageScanningConfiguration"]
        assert scan_on_push() == {"scanOnPush": False}
        out = ecr.put_image_scanning_configuration(repositoryName=repo,
                                                   imageScanningConfiguration={"scanOnPush": True})
        assert out["repositoryName"] == repo and out["imageScanningConfiguration"] == {"scanOnPush": True}, out
        assert scan_on_push() == {"scanOnPush": True}
        for cli, flag in ((1, "false"), (2, "true")):
            out = aws_json("ecr", "put-image-scanning-configuration", "--repository-name", repo,
                           "--image-scanning-configuration", f"scanOnPush={flag}", version=cli)
            assert out["imageScanningConfiguration"] == {"scanOnPush": flag == "true"}, out
            assert scan_on_push() == {"scanOnPush": flag == "true"}
        for cli in (1, 2):
            for args, code in ((["start-image-scan", "--repository-name", repo, "--image-id", "imageTag=v1"],
                                "UnsupportedImageTypeException"),
                               (["describe-image-scan-findings", "--repository-name", repo, "--image-id",
                                 "imageTag=v1"], "ScanNotFoundException"),
                               (["get-registry-scanning-configuration"], "ValidationException"),
                               (["put-registry-scanning-configuration", "--scan-type", "BASIC"],
                                "ValidationException"),
                               (["batch-get-repository-scanning-configuration", "--repository-names", repo],
                                "ValidationException")):
                got, msg = aws_cli_error(aws_cli("ecr", *args, version=cli, check=False))
                assert got == code and "scanning engine" in msg, f"aws v{cli} {args[0]}: {got}: {msg}"
        # Authorization comes first: a caller without the permission is refused as such.
        with User("scan-none") as u:
            for op, body in (("StartImageScan", {"repositoryName": repo, "imageId": image}),
                             ("GetRegistryScanningConfiguration", {}),
                             ("BatchGetRepositoryScanningConfiguration", {"repositoryNames": [repo]})):
                msg = raw_error(op, body, "AccessDeniedException", creds=u.creds)
                assert f"ecr:{op}" in msg, msg
    finally:
        drop(repo)


def test_signing_operations_answer_that_nothing_is_signed():
    ecr = ecr_client()
    repo = unique_repo("sign")
    img = push_image(client_a(), repo, "v1")
    try:
        conf = {"rules": [{"signingProfileArn": f"arn:aws:signer:us-east-1:{ACCOUNT_ID}:/signing-profiles/p"}]}
        msg = expect_api_error("ValidationException", ecr.put_signing_configuration, signingConfiguration=conf)
        assert "managed signing is not supported by Pier" in msg and "referrers" in msg, msg
        for call in (ecr.get_signing_configuration, ecr.delete_signing_configuration):
            msg = expect_api_error("SigningConfigurationNotFoundException", call)
            assert "no signing configuration" in msg, msg
        raw_error("PutSigningConfiguration", {}, "InvalidParameterException")
        out = raw("DescribeImageSigningStatus", {"repositoryName": repo, "imageId": {"imageTag": "v1"}})
        assert out == {"registryId": ACCOUNT_ID, "repositoryName": repo,
                       "imageId": {"imageDigest": img.digest, "imageTag": "v1"}, "signingStatuses": []}, out
        expect_api_error("ImageNotFoundException", ecr.describe_image_signing_status, repositoryName=repo,
                         imageId={"imageDigest": "sha256:" + "3" * 64})
        code, msg = aws_cli_error(aws_cli("ecr", "get-signing-configuration", check=False))
        assert code == "SigningConfigurationNotFoundException", (code, msg)
        out = aws_json("ecr", "describe-image-signing-status", "--repository-name", repo, "--image-id",
                       f"imageDigest={img.digest}")
        assert out["signingStatuses"] == [], out
        with User("sign-none") as u:
            raw_error("GetSigningConfiguration", {}, "AccessDeniedException", creds=u.creds)
            raw_error("DescribeImageSigningStatus", {"repositoryName": repo, "imageId": {"imageTag": "v1"}},
                      "AccessDeniedException", creds=u.creds)
    finally:
        drop(repo)


def test_image_storage_class_is_always_standard():
    ecr = ecr_client()
    repo = unique_repo("storage")
    img = push_image(client_a(), repo, "v1")
    try:
        out = raw("UpdateImageStorageClass", {"repositoryName": repo, "imageId": {"imageTag": "v1"},
                                              "targetStorageClass": "STANDARD"})
        assert out == {"registryId": ACCOUNT_ID, "repositoryName": repo,
                       "imageId": {"imageDigest": img.digest, "imageTag": "v1"}, "imageStatus": "ACTIVE"}, out
        msg = expect_api_error("ImageStorageClassUpdateNotSupportedException", ecr.update_image_storage_class,
                               repositoryName=repo, imageId={"imageDigest": img.digest},
                               targetStorageClass="ARCHIVE")
        assert "archival storage is not supported by Pier" in msg, msg
        raw_error("UpdateImageStorageClass", {"repositoryName": repo, "imageId": {"imageTag": "v1"},
                                              "targetStorageClass": "GLACIER"}, "InvalidParameterException")
        expect_api_error("ImageNotFoundException", ecr.update_image_storage_class, repositoryName=repo,
                         imageId={"imageTag": "nope"}, targetStorageClass="STANDARD")
        code, msg = aws_cli_error(aws_cli("ecr", "update-image-storage-class", "--repository-name", repo,
                                          "--image-id", "imageTag=v1", "--target-storage-class", "ARCHIVE",
                                          check=False))
        assert code == "ImageStorageClassUpdateNotSupportedException", (code, msg)
        # The image is still there, and still pullable.
        r = client_a().get(f"/v2/{repo}/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert r.status == 200, r.summary()
    finally:
        drop(repo)
