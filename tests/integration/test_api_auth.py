"""Control plane: who may call it. SigV4 authentication (missing, unknown key,
bad and expired signatures, wrong service scope), the shape of every error,
and authorization of every operation as ecr:<Operation> by the registry's
policy engine (Secrets Manager calls as ecr:CreatePullThroughCacheRule)."""

import base64
import datetime
import json
import time
import uuid

from pierlib import (
    AMZ_JSON, ECR_TARGET_PREFIX, REGISTRY_ARN, admin_creds, api_error_body, client_a, ecr_client,
    ecr_repo_arn, expect_api_error, iam_policy, iam_statement, push_image, secrets_client, signed_api_request,
    unique_repo, unsigned_api_request, url_b,
)
from authlib import User
from upstreams import unique_prefix

POLICY_SETTLE = 1.5  # workers cache policies for up to 1 s


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def test_unsigned_request_is_missing_authentication_token():
    r = unsigned_api_request("DescribeRegistry")
    msg = api_error_body(r, "MissingAuthenticationTokenException")
    assert (r.header("Content-Type") or "").startswith(AMZ_JSON), r.summary()
    assert r.header("x-amzn-ErrorType", "").startswith("MissingAuthenticationTokenException"), r.summary()
    assert "Signature Version 4" in msg or "Authentication Token" in msg, msg
    # A Basic login is not a signature either.
    r = client_a().post("/", body=b"{}", headers={"X-Amz-Target": ECR_TARGET_PREFIX + "DescribeRegistry",
                                                   "Content-Type": AMZ_JSON})
    api_error_body(r, "MissingAuthenticationTokenException")


def test_unknown_access_key_is_unrecognized_client():
    fake = ("PIERNOSUCHKEY" + uuid.uuid4().hex[:7].upper(), "x" * 40)
    r = signed_api_request("DescribeRegistry", creds=fake)
    api_error_body(r, "UnrecognizedClientException")
    msg = expect_api_error("UnrecognizedClientException", ecr_client(fake).describe_repositories)
    assert "invalid" in msg.lower(), msg
    expect_api_error("UnrecognizedClientException", secrets_client(fake).list_secrets)
    # The key of a deleted user stops working at once.
    with User("api-gone", {"all": iam_policy(iam_statement("ecr:*", "*"))}) as u:
        ecr_client(u.creds).describe_registry()
    expect_api_error("UnrecognizedClientException", ecr_client(u.creds).describe_registry)


def test_wrong_secret_and_tampered_request_are_invalid_signatures():
    key_id = admin_creds()[0]
    expect_api_error("InvalidSignatureException", ecr_client((key_id, "W" * 40)).describe_registry)
    expect_api_error("InvalidSignatureException", secrets_client((key_id, "W" * 40)).list_secrets)

    # Signed correctly, then the body changes: the signature covers the payload hash.
    def other_body(body, headers):
        new = json.dumps({"registryId": "111122223333"}).encode()
        return new, {**headers, "Content-Length": str(len(new))}
    r = signed_api_request("DescribeRegistry", {}, tamper=other_body)
    api_error_body(r, "InvalidSignatureException")

    # ... or the operation changes: X-Amz-Target is a signed header.
    def other_target(body, headers):
        return body, {**headers, "X-Amz-Target": ECR_TARGET_PREFIX + "DeleteRegistryPolicy"}
    r = signed_api_request("DescribeRegistry", {}, tamper=other_target)
    api_error_body(r, "InvalidSignatureException")

    # ... or one hex digit of the signature.
    def flip_signature(body, headers):
        auth = headers["Authorization"]
        last = auth[-1]
        return body, {**headers, "Authorization": auth[:-1] + ("0" if last != "0" else "1")}
    r = signed_api_request("DescribeRegistry", {}, tamper=flip_signature)
    api_error_body(r, "InvalidSignatureException")

    # A payload hash header that does not match the body.
    def lying_hash(body, headers):
        return body, {**headers, "X-Amz-Content-Sha256": "0" * 64}
    r = signed_api_request("DescribeRegistry", {}, tamper=lying_hash)
    api_error_body(r, "InvalidSignatureException")

    # Signed for Secrets Manager, sent to ECR (and the reverse).
    r = signed_api_request("DescribeRegistry", {}, signing_service="secretsmanager")
    api_error_body(r, "InvalidSignatureException")
    r = signed_api_request("ListSecrets", {}, service="secretsmanager", signing_service="ecr")
    api_error_body(r, "InvalidSignatureException")

    # The untampered request passes: the failures above are the tampering's.
    r = signed_api_request("DescribeRegistry", {})
    assert r.status == 200, r.summary()


def test_expired_signature_is_refused():
    for minutes in (-20, 20):
        r = signed_api_request("DescribeRegistry", {}, when=utcnow() + datetime.timedelta(minutes=minutes))
        msg = api_error_body(r, "InvalidSignatureException")
        assert "expired" in msg.lower(), f"signed {minutes} minutes off: {msg!r}"
    r = signed_api_request("ListSecrets", {}, service="secretsmanager",
                           when=utcnow() - datetime.timedelta(minutes=20))
    assert "expired" in api_error_body(r, "InvalidSignatureException").lower()
    # Within the allowed skew (5 minutes old) a signature is fine.
    r = signed_api_request("DescribeRegistry", {}, when=utcnow() - datetime.timedelta(minutes=5))
    assert r.status == 200, r.summary()


def test_unknown_operation_and_malformed_body():
    r = signed_api_request("DescribeNothing", {})
    api_error_body(r, "UnknownOperationException")
    r = signed_api_request("GetSecretValue", {"SecretId": "x"}, service="secretsmanager")
    api_error_body(r, "UnknownOperationException")  # values are never returned
    r = signed_api_request("DescribeRegistry", b"[1, 2")
    api_error_body(r, "SerializationException")
    r = signed_api_request("DescribeRegistry", b"[1, 2]")
    api_error_body(r, "SerializationException")
    r = signed_api_request("CreateRepository", {"repositoryName": 42})
    assert "repositoryName" in api_error_body(r, "InvalidParameterException")


def test_node_b_serves_the_same_control_plane():
    repo = unique_repo("node-b")
    ecr_client().create_repository(repositoryName=repo)
    try:
        got = ecr_client(base_url=url_b()).describe_repositories(repositoryNames=[repo])["repositories"]
        assert [r["repositoryName"] for r in got] == [repo], got
        r = signed_api_request("DescribeRegistry", {}, base_url=url_b(),
                               when=utcnow() - datetime.timedelta(minutes=20))
        api_error_body(r, "InvalidSignatureException")
    finally:
        ecr_client().delete_repository(repositoryName=repo, force=True)


def _fixtures():
    """A repository with an image, a rule, a template and a secret: what the refused calls would change."""
    repo = unique_repo("denied")
    client = client_a()
    img = push_image(client, repo, "v1")
    prefix = unique_prefix("dn")
    ecr = ecr_client()
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="http://127.0.0.1:9")
    tpl = unique_prefix("dt")
    r = signed_api_request("CreateRepositoryCreationTemplate", {"prefix": tpl, "appliedFor": ["CREATE_ON_PUSH"]})
    assert r.status == 200, r.summary()
    secret = f"ecr-pullthroughcache/{unique_prefix('ds')}"
    arn = secrets_client().create_secret(Name=secret, SecretString='{"username":"u","accessToken":"t"}')["ARN"]
    return repo, img, prefix, tpl, secret, arn


def _cleanup(repo, prefix, tpl, secret):
    ecr = ecr_client()
    for call, kw in ((ecr.delete_repository, {"repositoryName": repo, "force": True}),
                     (ecr.delete_pull_through_cache_rule, {"ecrRepositoryPrefix": prefix}),
                     (secrets_client().delete_secret, {"SecretId": secret})):
        try:
            call(**kw)
        except Exception:  # noqa: BLE001 - best effort
            pass
    signed_api_request("DeleteRepositoryCreationTemplate", {"prefix": tpl})


def test_every_operation_needs_its_permission():
    repo, img, prefix, tpl, secret, secret_arn = _fixtures()
    arn = ecr_repo_arn(repo)
    doc = iam_policy(iam_statement("ecr:*", "*", principal={"AWS": "*"}))
    ecr_calls = [
        ("GetAuthorizationToken", {}, None),
        ("DescribeRegistry", {}, None),
        ("PutRegistryPolicy", {"policyText": doc}, None),
        ("GetRegistryPolicy", {}, None),
        ("DeleteRegistryPolicy", {}, None),
        ("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix + "x", "upstreamRegistryUrl": "http://127.0.0.1:9"}, None),
        ("DescribePullThroughCacheRules", {}, None),
        ("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix, "credentialArn": secret_arn}, None),
        ("DeletePullThroughCacheRule", {"ecrRepositoryPrefix": prefix}, None),
        ("ValidatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix}, None),
        ("CreateRepository", {"repositoryName": repo + "-new"}, repo + "-new"),
        ("DescribeRepositories", {"repositoryNames": [repo]}, repo),
        ("DeleteRepository", {"repositoryName": repo, "force": True}, repo),
        ("SetRepositoryPolicy", {"repositoryName": repo, "policyText": doc}, repo),
        ("GetRepositoryPolicy", {"repositoryName": repo}, repo),
        ("DeleteRepositoryPolicy", {"repositoryName": repo}, repo),
        ("ListImages", {"repositoryName": repo}, repo),
        ("DescribeImages", {"repositoryName": repo}, repo),
        ("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": "v1"}]}, repo),
        ("BatchDeleteImage", {"repositoryName": repo, "imageIds": [{"imageTag": "v1"}]}, repo),
        ("PutImageTagMutability", {"repositoryName": repo, "imageTagMutability": "IMMUTABLE"}, repo),
        ("CreateRepositoryCreationTemplate", {"prefix": tpl + "x", "appliedFor": ["CREATE_ON_PUSH"]}, None),
        ("DescribeRepositoryCreationTemplates", {}, None),
        ("UpdateRepositoryCreationTemplate", {"prefix": tpl, "imageTagMutability": "IMMUTABLE"}, None),
        ("DeleteRepositoryCreationTemplate", {"prefix": tpl}, None),
        ("ListTagsForResource", {"resourceArn": arn}, repo),
        ("TagResource", {"resourceArn": arn, "tags": [{"Key": "k", "Value": "v"}]}, repo),
        ("UntagResource", {"resourceArn": arn, "tagKeys": ["k"]}, repo),
    ]
    sm_calls = [
        ("CreateSecret", {"Name": secret + "x", "SecretString": "{}"}),
        ("PutSecretValue", {"SecretId": secret, "SecretString": "{}"}),
        ("DescribeSecret", {"SecretId": secret}),
        ("ListSecrets", {}),
        ("DeleteSecret", {"SecretId": secret}),
    ]
    try:
        # A user that may do everything except ecr:CreatePullThroughCacheRule, and one that may do nothing.
        with User("api-none") as nobody:
            problems = []
            for op, body, target in ecr_calls:
                r = signed_api_request(op, body, creds=nobody.creds)
                try:
                    msg = api_error_body(r, "AccessDeniedException")
                    resource = ecr_repo_arn(target) if target else REGISTRY_ARN
                    assert f"ecr:{op}" in msg and resource in msg and nobody.arn in msg, msg
                except AssertionError as e:
                    problems.append(f"{op}: {e}")
            for op, body in sm_calls:
                r = signed_api_request(op, body, creds=nobody.creds, service="secretsmanager")
                try:
                    msg = api_error_body(r, "AccessDeniedException")
                    assert "ecr:CreatePullThroughCacheRule" in msg and REGISTRY_ARN in msg, msg
                except AssertionError as e:
                    problems.append(f"secretsmanager.{op}: {e}")
            assert not problems, "calls not refused as expected:\n" + "\n".join(problems)
            # The same through boto3: the error code reaches the SDK.
            expect_api_error("AccessDeniedException", ecr_client(nobody.creds).describe_images, repositoryName=repo)
            expect_api_error("AccessDeniedException", secrets_client(nobody.creds).list_secrets)

        # Nothing the refused calls named changed.
        ecr = ecr_client()
        got = ecr.describe_images(repositoryName=repo)["imageDetails"]
        assert [d["imageDigest"] for d in got] == [img.digest], got
        assert ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageTagMutability"] == "MUTABLE"
        expect_api_error("RepositoryNotFoundException", ecr.describe_repositories, repositoryNames=[repo + "-new"])
        expect_api_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=repo)
        assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == []
        rules = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])["pullThroughCacheRules"]
        assert len(rules) == 1 and "credentialArn" not in rules[0], rules
        expect_api_error("PullThroughCacheRuleNotFoundException", ecr.describe_pull_through_cache_rules,
                         ecrRepositoryPrefixes=[prefix + "x"])
        r = signed_api_request("DescribeRepositoryCreationTemplates", {"prefixes": [tpl]})
        assert r.status == 200, r.summary()
        assert r.json()["repositoryCreationTemplates"][0]["imageTagMutability"] == "MUTABLE", r.text
        secrets_client().describe_secret(SecretId=secret)
        expect_api_error("ResourceNotFoundException", secrets_client().describe_secret, SecretId=secret + "x")
    finally:
        _cleanup(repo, prefix, tpl, secret)


def test_identity_policy_scopes_operations_to_repositories():
    ns = unique_repo("scoped").split("/")[0] + "-" + uuid.uuid4().hex[:4]
    mine, other = f"{ns}/mine", f"{ns}-other/theirs"
    ecr = ecr_client()
    for name in (mine, other):
        ecr.create_repository(repositoryName=name)
    try:
        doc = iam_policy(
            iam_statement(["ecr:DescribeRepositories", "ecr:ListImages", "ecr:CreateRepository"],
                          f"arn:aws:ecr:us-east-1:111122223333:repository/{ns}/*", sid="Mine"),
            iam_statement("ecr:ListImages", f"arn:aws:ecr:us-east-1:111122223333:repository/{ns}/mine",
                          effect="Deny", sid="NotThisOne"),
            iam_statement("ecr:GetAuthorizationToken", "*", sid="Login"))
        with User("api-scoped", {"scoped": doc}) as u:
            mine_ecr = ecr_client(u.creds)
            got = mine_ecr.describe_repositories(repositoryNames=[mine])["repositories"]
            assert [r["repositoryName"] for r in got] == [mine], got
            msg = expect_api_error("AccessDeniedException", mine_ecr.describe_repositories, repositoryNames=[other])
            assert "ecr:DescribeRepositories" in msg and ecr_repo_arn(other) in msg, msg
            msg = expect_api_error("AccessDeniedException", mine_ecr.list_images, repositoryName=mine)
            assert "NotThisOne" in msg or "denied" in msg.lower(), msg
            created = mine_ecr.create_repository(repositoryName=f"{ns}/made-by-user")["repository"]
            assert created["repositoryName"] == f"{ns}/made-by-user", created
            expect_api_error("AccessDeniedException", mine_ecr.create_repository, repositoryName=f"{ns}-other/nope")
            expect_api_error("AccessDeniedException", mine_ecr.describe_registry)
            tok = mine_ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
            assert base64.b64decode(tok).decode().startswith("AWS:"), tok
            # A listing without names shows only what the user may describe.
            listed = []
            for page in mine_ecr.get_paginator("describe_repositories").paginate(PaginationConfig={"PageSize": 1000}):
                listed += [r["repositoryName"] for r in page["repositories"]]
            assert mine in listed and f"{ns}/made-by-user" in listed, listed
            assert all(n.startswith(ns + "/") for n in listed), f"listing shows repositories outside {ns}/: {listed}"
            # Losing the permission takes effect (after the policy cache expires).
            u.put_policy("scoped", iam_policy(iam_statement("ecr:GetAuthorizationToken", "*")))
            time.sleep(POLICY_SETTLE)
            expect_api_error("AccessDeniedException", mine_ecr.describe_repositories, repositoryNames=[mine])
    finally:
        for name in (mine, other, f"{ns}/made-by-user"):
            try:
                ecr.delete_repository(repositoryName=name, force=True)
            except Exception:  # noqa: BLE001
                pass


def test_secrets_manager_calls_need_the_rule_permission():
    rule_admin = iam_policy(iam_statement("ecr:CreatePullThroughCacheRule", REGISTRY_ARN))
    name = f"ecr-pullthroughcache/{unique_prefix('perm')}"
    with User("api-sm", {"rules": rule_admin}) as u:
        sm = secrets_client(u.creds)
        out = sm.create_secret(Name=name, SecretString='{"username":"a","accessToken":"b"}')
        try:
            assert out["Name"] == name, out
            assert sm.describe_secret(SecretId=out["ARN"])["Name"] == name
            # Attaching the secret to a rule sends it to the rule's upstream: that also needs
            # secretsmanager:GetSecretValue on the secret (see test_security_cache).
            msg = expect_api_error("AccessDeniedException", ecr_client(u.creds).create_pull_through_cache_rule,
                                   ecrRepositoryPrefix=unique_prefix("pm"), upstreamRegistryUrl="http://127.0.0.1:9",
                                   credentialArn=out["ARN"])
            assert "secretsmanager:GetSecretValue" in msg, msg
            u.put_policy("use", iam_policy(iam_statement("secretsmanager:GetSecretValue", out["ARN"])))
            time.sleep(1.5)
            ecr_client(u.creds).create_pull_through_cache_rule(
                ecrRepositoryPrefix=unique_prefix("pm"), upstreamRegistryUrl="http://127.0.0.1:9",
                credentialArn=out["ARN"])
            # Describing rules is another action.
            expect_api_error("AccessDeniedException", ecr_client(u.creds).describe_pull_through_cache_rules)
        finally:
            for r in ecr_client().describe_pull_through_cache_rules()["pullThroughCacheRules"]:
                if r.get("credentialArn") == out["ARN"]:
                    ecr_client().delete_pull_through_cache_rule(ecrRepositoryPrefix=r["ecrRepositoryPrefix"])
            secrets_client().delete_secret(SecretId=name)
