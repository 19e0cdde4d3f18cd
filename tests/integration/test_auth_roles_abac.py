"""IAM roles as principals (`pierctl user create NAME --role`): they sign with
their access keys, log in, and policies name them by their role ARN. And
attribute-based access control: the condition keys aws:ResourceTag/<key> and
ecr:ResourceTag/<key> on repositories, in identity and repository policies,
on the registry and on the control plane, following TagResource/UntagResource."""

import base64
import json

from pierlib import (
    wait_until,
    Client, OCI_MANIFEST, SavedRegistryPolicy, ecr_client, ecr_repo_arn, expect_api_error, psql_value, push_image,
    sql_str, url_a, url_b,
)
from upstreams import pierctl
from authlib import (
    ACCOUNT, PULL_ACTIONS, RepositoryPolicy, User, allow, aws_principal, deny, denied, explicitly_denied,
    no_statement_allows, policy, policy_settle, role_arn, unique_ns,
)
from pierlib import drop_repositories as drop

ACCEPT = {"Accept": OCI_MANIFEST}


def test_role_principal_signs_requests_and_policies_name_its_arn():
    ns = unique_ns("role")
    mine, other = f"{ns}/app", f"{ns}-other/app"
    with User("builder", role=True) as role, SavedRegistryPolicy():
        assert role.arn == role_arn(role.name) and ":role/" in role.arn, role.arn
        listed = json.loads(pierctl("user", "list").stdout)
        assert any(e["name"] == role.name and e["arn"] == role.arn for e in listed), listed
        # Names are unique across users and roles.
        p = pierctl("user", "create", role.name)
        assert p.returncode != 0 and "already exists" in p.stderr, (p.returncode, p.stderr)
        # Signed with the role's key, it is the role: nothing is allowed yet, and the refusal names it.
        msg = expect_api_error("AccessDeniedException", ecr_client(role.creds).create_repository,
                               repositoryName=mine)
        assert role.arn in msg and "ecr:CreateRepository" in msg, msg
        # A registry policy naming the role ARN as Principal lets it work under its namespace.
        ecr_client().put_registry_policy(policyText=policy(allow(
            ["ecr:CreateRepository", "ecr:DescribeRepositories", "ecr:GetAuthorizationToken"] + PULL_ACTIONS +
            ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"],
            [f"{ns}/*", f"arn:aws:ecr:us-east-1:{ACCOUNT}:registry"], sid="BuilderRole",
            principal=aws_principal(role.arn))))
        policy_settle()
        try:
            out = ecr_client(role.creds).create_repository(repositoryName=mine)["repository"]
            assert out["repositoryName"] == mine, out
            expect_api_error("AccessDeniedException", ecr_client(role.creds).create_repository,
                             repositoryName=other)
            # Pushing and pulling on the registry with its key, and with a login password from
            # GetAuthorizationToken signed by the role.
            img = push_image(role.client(), mine, "v1")
            tok = ecr_client(role.creds).get_authorization_token()["authorizationData"][0]["authorizationToken"]
            user, _, password = base64.b64decode(tok).decode().partition(":")
            for base in (url_a(), url_b()):
                r = Client(base, auth=(user, password)).get(f"/v2/{mine}/manifests/v1", headers=ACCEPT)
                assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
        finally:
            drop(mine, other)

    # Identity policies of a role, and a repository policy naming it.
    ns = unique_ns("role2")
    repo = f"{ns}/app"
    img = push_image(Client(url_a()), repo, "v1")
    try:
        with User("puller", role=True, policies={"pull": policy(allow(PULL_ACTIONS, f"{ns}/*"))}) as r1, \
                User("reader", role=True) as r2:
            assert r1.client().get(f"/v2/{repo}/manifests/v1", headers=ACCEPT).status == 200
            no_statement_allows(r2.client().get(f"/v2/{repo}/manifests/v1", headers=ACCEPT),
                                "ecr:BatchGetImage", repo)
            with RepositoryPolicy(repo, policy(allow(PULL_ACTIONS, "*", sid="ReaderRole",
                                                     principal=aws_principal(r2.arn)))):
                policy_settle()
                r = r2.client().get(f"/v2/{repo}/manifests/v1", headers=ACCEPT)
                assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
    finally:
        drop(repo)


def _tag(repo: str, **tags: str) -> None:
    ecr_client().tag_resource(resourceArn=ecr_repo_arn(repo), tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def _untag(repo: str, *keys: str) -> None:
    ecr_client().untag_resource(resourceArn=ecr_repo_arn(repo), tagKeys=list(keys))


def test_abac_resource_tags_in_identity_policies():
    ns = unique_ns("abac")
    a, b, untagged = f"{ns}/team-a", f"{ns}/team-b", f"{ns}/plain"
    admin = Client(url_a())
    for repo in (a, b, untagged):
        push_image(admin, repo, "v1")
    _tag(a, team="a", env="prod")
    _tag(b, team="b")
    team_a = policy(allow(PULL_ACTIONS + ["ecr:ListImages", "ecr:DescribeImages"], "*", sid="TeamA",
                          condition={"StringEquals": {"aws:ResourceTag/team": "a"}}))
    try:
        with User("abac", {"team": team_a}) as u:
            c = u.client()
            # Tags reach the workers' policy caches within policy_cache_ms (documented).
            assert wait_until(lambda: c.get(f"/v2/{a}/manifests/v1", headers=ACCEPT).status == 200, 10, 0.2), \
                c.get(f"/v2/{a}/manifests/v1", headers=ACCEPT).summary()
            assert c.get(f"/v2/{a}/tags/list").status == 200
            no_statement_allows(c.get(f"/v2/{b}/manifests/v1", headers=ACCEPT), "ecr:BatchGetImage", b)
            no_statement_allows(c.get(f"/v2/{untagged}/manifests/v1", headers=ACCEPT), "ecr:BatchGetImage",
                                untagged)
            # The same decision on the control plane.
            ecr = ecr_client(u.creds)
            assert len(ecr.list_images(repositoryName=a)["imageIds"]) == 1
            expect_api_error("AccessDeniedException", ecr.list_images, repositoryName=b)
            # Tags change, decisions follow (within the policy cache's second).
            _tag(b, team="a")
            policy_settle()
            assert c.get(f"/v2/{b}/manifests/v1", headers=ACCEPT).status == 200
            assert len(ecr.describe_images(repositoryName=b)["imageDetails"]) == 1
            _untag(b, "team")
            policy_settle()
            no_statement_allows(c.get(f"/v2/{b}/manifests/v1", headers=ACCEPT), "ecr:BatchGetImage", b)
            # The ecr: spelling, and the key's case, as IAM allows them.
            u.put_policy("team", policy(allow(PULL_ACTIONS, "*", condition={
                "StringLike": {"ecr:ResourceTag/ENV": "pro*"}})))
            policy_settle()
            assert c.get(f"/v2/{a}/manifests/v1", headers=ACCEPT).status == 200
            no_statement_allows(c.get(f"/v2/{b}/manifests/v1", headers=ACCEPT), "ecr:BatchGetImage", b)

        # A deny for everything not tagged with the caller's team, over a broad allow.
        guard = policy(allow(PULL_ACTIONS, "*"),
                       deny("ecr:*", "*", sid="OnlyTeamA", condition={"StringNotEquals": {"aws:ResourceTag/team": "a"}}))
        with User("abac-deny", {"guard": guard}) as u:
            c = u.client()
            assert c.get(f"/v2/{a}/manifests/v1", headers=ACCEPT).status == 200
            explicitly_denied(c.get(f"/v2/{untagged}/manifests/v1", headers=ACCEPT), "ecr:BatchGetImage",
                              untagged, "OnlyTeamA", "identity policy")
            # Null: deny what carries no env tag at all.
            u.put_policy("guard", policy(allow(PULL_ACTIONS, "*"), deny(
                "ecr:*", "*", sid="NeedsEnv", condition={"Null": {"aws:ResourceTag/env": "true"}})))
            policy_settle()
            assert c.get(f"/v2/{a}/manifests/v1", headers=ACCEPT).status == 200
            explicitly_denied(c.get(f"/v2/{b}/manifests/v1", headers=ACCEPT), "ecr:BatchGetImage", b,
                              "NeedsEnv", "identity policy")
        # A condition key Pier does not know is refused when the policy is written.
        p = pierctl("policy", "identity", "put", "admin", "bad", "-", input=policy(allow(
            "ecr:*", "*", condition={"StringEquals": {"aws:RequestTag/team": "a"}})))
        assert p.returncode != 0 and "aws:RequestTag/team" in p.stderr, (p.returncode, p.stderr)
    finally:
        drop(a, b, untagged)


def test_abac_resource_tags_in_repository_policies():
    ns = unique_ns("abacrp")
    repo = f"{ns}/app"
    img = push_image(Client(url_a()), repo, "v1")
    try:
        with User("abac-rp") as u:
            doc = policy(allow(PULL_ACTIONS, "*", sid="ProdReaders", principal=aws_principal(u.arn),
                               condition={"StringEquals": {"ecr:ResourceTag/env": "prod"}}))
            with RepositoryPolicy(repo, doc):
                policy_settle()
                no_statement_allows(u.client().get(f"/v2/{repo}/manifests/v1", headers=ACCEPT),
                                    "ecr:BatchGetImage", repo)
                _tag(repo, env="prod")
                policy_settle()
                r = u.client().get(f"/v2/{repo}/manifests/v1", headers=ACCEPT)
                assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
                # The tags are read from the database, not from the request or a stale copy.
                assert psql_value("SELECT value FROM resource_tags WHERE resource_arn = "
                                  f"{sql_str(ecr_repo_arn(repo))} AND key = 'env'") == "prod"
                _tag(repo, env="dev")
                policy_settle()
                denied(u.client().get(f"/v2/{repo}/manifests/v1", headers=ACCEPT), "ecr:BatchGetImage", repo)
    finally:
        drop(repo)
