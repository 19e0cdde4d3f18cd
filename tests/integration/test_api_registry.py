"""Control plane, registry-wide operations: GetAuthorizationToken (and logging
in with what it returns), DescribeRegistry, and the registry policy
(Put/Get/DeleteRegistryPolicy, its validation and its effect)."""

import base64
import datetime
import time

from pierlib import (
    ACCOUNT_ID, Client, SavedRegistryPolicy, api_error, api_error_body, client_a, ecr_client,
    ecr_repo_arn, expect_api_error, iam_policy, iam_statement, push_image, registry_host, signed_api_request,
    unique_repo, url_a, url_b,
)
from authlib import User

POLICY_SETTLE = 1.5


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def test_get_authorization_token_shape_and_login():
    out = ecr_client().get_authorization_token()
    data = out["authorizationData"]
    assert isinstance(data, list) and len(data) == 1, out
    d = data[0]
    assert set(d) >= {"authorizationToken", "expiresAt", "proxyEndpoint"}, d
    plain = base64.b64decode(d["authorizationToken"], validate=True).decode()
    user, _, password = plain.partition(":")
    assert user == "AWS" and password, f"token decodes to {plain[:20]!r}..."
    assert isinstance(d["expiresAt"], datetime.datetime), d["expiresAt"]
    left = (d["expiresAt"] - now()).total_seconds()
    assert 12 * 3600 - 300 <= left <= 12 * 3600 + 300, f"expiresAt is {left:.0f} s away, expected 12 h"
    assert isinstance(d["proxyEndpoint"], str) and d["proxyEndpoint"].endswith(registry_host()), d
    # registryIds naming this registry are fine.
    again = ecr_client().get_authorization_token(registryIds=[ACCOUNT_ID])["authorizationData"]
    assert len(again) == 1, again
    # The password logs in with Basic AWS:<password> on both nodes.
    for base in (url_a(), url_b()):
        r = Client(base, auth=("AWS", password)).get("/v2/")
        assert r.status == 200, f"login with the ECR password on {base}: {r.summary()}"
    r = Client(url_a(), auth=("AWS", password[:-2] + "xx")).get("/v2/")
    assert r.status == 401, f"a damaged password logged in: {r.summary()}"
    r = signed_api_request("GetAuthorizationToken", {"registryIds": "not-a-list"})
    api_error_body(r, "InvalidParameterException")


def test_login_password_carries_the_callers_identity():
    """A user's authorization token logs in as that user: pulling needs the user's permissions."""
    repo = unique_repo("login")
    img = push_image(client_a(), repo, "v1")
    login_only = iam_policy(iam_statement("ecr:GetAuthorizationToken", "*"))
    pull = iam_policy(iam_statement(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                     "ecr:BatchCheckLayerAvailability"], ecr_repo_arn(repo)))
    try:
        with User("api-login", {"login": login_only}) as u:
            tok = ecr_client(u.creds).get_authorization_token()["authorizationData"][0]["authorizationToken"]
            user, _, password = base64.b64decode(tok).decode().partition(":")
            http = Client(url_a(), auth=(user, password))
            accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
            assert http.get("/v2/").status == 200
            r = http.get(f"/v2/{repo}/manifests/v1", headers=accept)
            assert r.status == 403 and "ecr:BatchGetImage" in r.text and u.arn in r.text, r.summary()
            u.put_policy("pull", pull)
            time.sleep(POLICY_SETTLE)
            r = http.get(f"/v2/{repo}/manifests/v1", headers=accept)
            assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
            # Another user's token is another identity.
            other_tok = ecr_client().get_authorization_token()["authorizationData"][0]["authorizationToken"]
            assert other_tok != tok
    finally:
        ecr_client().delete_repository(repositoryName=repo, force=True)


def test_describe_registry():
    out = ecr_client().describe_registry()
    assert out["registryId"] == ACCOUNT_ID, out
    rc = out["replicationConfiguration"]
    assert isinstance(rc, dict) and isinstance(rc.get("rules"), list), out
    r = signed_api_request("DescribeRegistry", {})
    assert r.status == 200 and r.header("Content-Type", "").startswith("application/x-amz-json-1.1"), r.summary()


def _doc(*statements):
    return iam_policy(*statements)


def test_registry_policy_put_get_delete_and_effect():
    ecr = ecr_client()
    ns = unique_repo("regpol").split("/")[0]
    with SavedRegistryPolicy(), User("api-regpol") as u:
        # Start from no policy.
        try:
            ecr.delete_registry_policy()
        except Exception:  # noqa: BLE001 - there may be none
            pass
        msg = expect_api_error("RegistryPolicyNotFoundException", ecr.get_registry_policy)
        assert msg
        expect_api_error("RegistryPolicyNotFoundException", ecr.delete_registry_policy)
        mine = f"{ns}/by-registry-policy"
        expect_api_error("AccessDeniedException", ecr_client(u.creds).create_repository, repositoryName=mine)

        doc = _doc(iam_statement(["ecr:CreateRepository", "ecr:DescribeRepositories"],
                                 f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{ns}/*", sid="LetUserCreate",
                                 principal={"AWS": u.arn}))
        out = ecr.put_registry_policy(policyText=doc)
        assert out["registryId"] == ACCOUNT_ID and out["policyText"] == doc, out
        got = ecr.get_registry_policy()
        assert got["registryId"] == ACCOUNT_ID and got["policyText"] == doc, got
        time.sleep(POLICY_SETTLE)
        try:
            created = ecr_client(u.creds).create_repository(repositoryName=mine)["repository"]
            assert created["repositoryName"] == mine, created
            expect_api_error("AccessDeniedException", ecr_client(u.creds).create_repository,
                             repositoryName=f"{ns}-elsewhere/x")
            # The registry policy does not grant registry-wide operations it does not name.
            expect_api_error("AccessDeniedException", ecr_client(u.creds).get_registry_policy)

            # A new document replaces the old one.
            doc2 = _doc(iam_statement("ecr:DescribeRepositories", "*", sid="OnlyDescribe",
                                      principal={"AWS": u.arn}))
            assert ecr.put_registry_policy(policyText=doc2)["policyText"] == doc2
            assert ecr.get_registry_policy()["policyText"] == doc2
            time.sleep(POLICY_SETTLE)
            expect_api_error("AccessDeniedException", ecr_client(u.creds).create_repository,
                             repositoryName=f"{ns}/second")

            deleted = ecr.delete_registry_policy()
            assert deleted["registryId"] == ACCOUNT_ID and deleted["policyText"] == doc2, deleted
            expect_api_error("RegistryPolicyNotFoundException", ecr.get_registry_policy)
            time.sleep(POLICY_SETTLE)
            expect_api_error("AccessDeniedException", ecr_client(u.creds).describe_repositories,
                             repositoryNames=[mine])
        finally:
            try:
                ecr.delete_repository(repositoryName=mine, force=True)
            except Exception:  # noqa: BLE001
                pass


MALFORMED = [
    # (document, text the message must contain: the JSON path of the fault)
    ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}',
     "Statement[0].Principal"),
    ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"},'
     '{"Effect":"Maybe","Principal":"*","Action":"ecr:*","Resource":"*"}]}', "Statement[1].Effect"),
    ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["ecr:*",7],"Resource":"*"}]}',
     "Statement[0].Action[1]"),
    ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":5}]}',
     "Statement[0].Resource"),
    ('{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/x",3]},'
     '"Action":"ecr:*","Resource":"*"}}', "Statement.Principal.AWS[1]"),
    ('{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}]}', "Version"),
    ('{"Version":"2012-10-17","Statement":[]}', "Statement"),
    ('not json at all', "JSON"),
]


def test_malformed_registry_policy_is_refused_with_its_json_path():
    ecr = ecr_client()
    with SavedRegistryPolicy():
        good = _doc(iam_statement("ecr:DescribeRepositories", "*", principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}))
        ecr.put_registry_policy(policyText=good)
        problems = []
        for doc, path in MALFORMED:
            code, msg, status = api_error(ecr.put_registry_policy, policyText=doc)
            if code != "InvalidParameterException" or status != 400 or path not in msg:
                problems.append(f"{doc[:70]}...: {code} {status} {msg!r} (expected InvalidParameterException naming {path})")
        assert not problems, "\n".join(problems)
        # A refused document leaves the stored one alone.
        assert ecr.get_registry_policy()["policyText"] == good
        # policyText is required.
        r = signed_api_request("PutRegistryPolicy", {})
        assert "policyText" in api_error_body(r, "InvalidParameterException")


