"""Control plane, repository creation templates: Create/Describe/Update/
DeleteRepositoryCreationTemplate (shapes and errors), and their effect when a
push creates a repository (CREATE_ON_PUSH) or when the pull-through cache does
(PULL_THROUGH_CACHE). The aws CLI variant of the cache case is in
test_api_walkthrough."""

import datetime
import json

from pierlib import (
    ACCOUNT_ID, Client, TempDir, api_error, build_image_layout, client_a, ecr_client, ecr_repo_arn,
    expect_api_error, iam_policy, iam_statement, push_image, signed_api_request, url_a,
)
from authlib import User
from upstreams import DockerRegistry, get_manifest, unique_prefix

KMS = {"encryptionType": "KMS", "kmsKey": f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/template-key"}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def raw(op, body):
    r = signed_api_request(op, body)
    assert r.status == 200, f"{op}: {r.summary()}"
    return r.json()


def delete_template(prefix):
    signed_api_request("DeleteRepositoryCreationTemplate", {"prefix": prefix})


def drop(*repos):
    for name in repos:
        try:
            ecr_client().delete_repository(repositoryName=name, force=True)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def parsed(call, **kw):
    """A boto3 call whose answer botocore must be able to parse (a shape error is a failure, not a crash)."""
    try:
        return call(**kw)
    except (AttributeError, TypeError, KeyError) as e:
        raise AssertionError(f"boto3 could not parse the answer of {call.__name__}: {type(e).__name__}: {e}") from e


def check_template_json(t: dict, prefix: str, **want) -> None:
    """The JSON of a template as the SDKs' model describes it."""
    assert t.get("prefix") == prefix, t
    enc = t.get("encryptionConfiguration")
    assert isinstance(enc, dict) and enc.get("encryptionType") in ("AES256", "KMS", "KMS_DSSE"), \
        f"encryptionConfiguration must be an object {{encryptionType, kmsKey}}, got {enc!r} in {t}"
    assert isinstance(t.get("resourceTags"), list), t
    assert isinstance(t.get("appliedFor"), list) and t["appliedFor"], t
    assert isinstance(t.get("createdAt"), (int, float)) and isinstance(t.get("updatedAt"), (int, float)), t
    for k, v in want.items():
        assert t.get(k) == v, f"{k}: {t.get(k)!r}, expected {v!r} in {t}"


def test_template_response_shape():
    prefix = unique_prefix("ts")
    pol = iam_policy(iam_statement("ecr:BatchGetImage", "*", principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}))
    body = {"prefix": prefix, "description": "team images", "encryptionConfiguration": KMS,
            "resourceTags": [{"Key": "team", "Value": "a"}], "imageTagMutability": "IMMUTABLE",
            "repositoryPolicy": pol, "appliedFor": ["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"]}
    try:
        out = raw("CreateRepositoryCreationTemplate", body)
        assert out.get("registryId") == ACCOUNT_ID, out
        check_template_json(out["repositoryCreationTemplate"], prefix, description="team images",
                            encryptionConfiguration=KMS, imageTagMutability="IMMUTABLE",
                            resourceTags=[{"Key": "team", "Value": "a"}], repositoryPolicy=pol,
                            appliedFor=["CREATE_ON_PUSH", "PULL_THROUGH_CACHE"])
        out = raw("DescribeRepositoryCreationTemplates", {"prefixes": [prefix]})
        assert len(out["repositoryCreationTemplates"]) == 1, out
        check_template_json(out["repositoryCreationTemplates"][0], prefix, encryptionConfiguration=KMS)
        out = raw("UpdateRepositoryCreationTemplate", {"prefix": prefix, "imageTagMutability": "MUTABLE"})
        check_template_json(out["repositoryCreationTemplate"], prefix, imageTagMutability="MUTABLE",
                            encryptionConfiguration=KMS)
        out = raw("DeleteRepositoryCreationTemplate", {"prefix": prefix})
        check_template_json(out["repositoryCreationTemplate"], prefix, encryptionConfiguration=KMS)
    finally:
        delete_template(prefix)


def test_template_crud_with_boto3():
    ecr = ecr_client()
    prefix = unique_prefix("tc")
    pol = iam_policy(iam_statement("ecr:BatchGetImage", "*", principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}))
    lifecycle = json.dumps({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "untagged", "countType":
                                                                       "sinceImagePushed", "countUnit": "days",
                                                                       "countNumber": 14},
                                       "action": {"type": "expire"}}]})
    try:
        out = parsed(
            ecr.create_repository_creation_template, prefix=prefix, description="d", encryptionConfiguration=KMS, resourceTags=[{"Key": "k", "Value": "v"}],
            imageTagMutability="IMMUTABLE", repositoryPolicy=pol, lifecyclePolicy=lifecycle,
            appliedFor=["PULL_THROUGH_CACHE"])
        assert out["registryId"] == ACCOUNT_ID, out
        t = out["repositoryCreationTemplate"]
        assert (t["prefix"], t["description"], t["encryptionConfiguration"], t["imageTagMutability"],
                t["appliedFor"]) == (prefix, "d", KMS, "IMMUTABLE", ["PULL_THROUGH_CACHE"]), t
        assert t["resourceTags"] == [{"Key": "k", "Value": "v"}] and t["repositoryPolicy"] == pol, t
        assert json.loads(t["lifecyclePolicy"]) == json.loads(lifecycle), t
        for k in ("createdAt", "updatedAt"):
            assert isinstance(t[k], datetime.datetime) and abs((now() - t[k]).total_seconds()) < 120, t
        msg = expect_api_error("TemplateAlreadyExistsException", ecr.create_repository_creation_template,
                               prefix=prefix, appliedFor=["CREATE_ON_PUSH"])
        assert prefix in msg, msg

        got = parsed(ecr.describe_repository_creation_templates, prefixes=[prefix])
        assert got["registryId"] == ACCOUNT_ID and [x["prefix"] for x in got["repositoryCreationTemplates"]] == [prefix]
        listed = []
        for page in ecr.get_paginator("describe_repository_creation_templates").paginate(
                PaginationConfig={"PageSize": 1}):
            assert len(page["repositoryCreationTemplates"]) <= 1, page
            listed += [x["prefix"] for x in page["repositoryCreationTemplates"]]
        assert listed.count(prefix) == 1, listed

        up = parsed(ecr.update_repository_creation_template, prefix=prefix, imageTagMutability="MUTABLE",
                    appliedFor=["PULL_THROUGH_CACHE", "CREATE_ON_PUSH"])
        t2 = up["repositoryCreationTemplate"]
        assert t2["imageTagMutability"] == "MUTABLE" and t2["appliedFor"] == ["PULL_THROUGH_CACHE", "CREATE_ON_PUSH"], t2
        assert t2["description"] == "d" and t2["encryptionConfiguration"] == KMS and t2["repositoryPolicy"] == pol, \
            f"update lost fields it did not name: {t2}"
        assert t2["updatedAt"] >= t["createdAt"], t2

        out = parsed(ecr.delete_repository_creation_template, prefix=prefix)
        assert out["repositoryCreationTemplate"]["prefix"] == prefix, out
        for call, kw in ((ecr.delete_repository_creation_template, {}),
                         (ecr.update_repository_creation_template, {"imageTagMutability": "MUTABLE"})):
            expect_api_error("TemplateNotFoundException", call, prefix=prefix, **kw)
        # Describe names no TemplateNotFoundException in the model: the prefix selects nothing.
        got = parsed(ecr.describe_repository_creation_templates, prefixes=[prefix])
        assert got["repositoryCreationTemplates"] == [], got
    finally:
        delete_template(prefix)


def test_template_bad_input():
    ecr = ecr_client(validate=False)
    prefix = unique_prefix("tb")
    bad_policy = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*"}]}'
    cases = [
        ({"prefix": prefix}, "appliedFor"),
        ({"prefix": prefix, "appliedFor": []}, "appliedFor"),
        ({"prefix": prefix, "appliedFor": ["SOMETIMES"]}, "appliedFor"),
        ({"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"], "imageTagMutability": "FROZEN"}, "imageTagMutability"),
        ({"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"], "encryptionConfiguration": {"encryptionType": "ROT13"}},
         "encryptionType"),
        ({"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"], "repositoryPolicy": bad_policy},
         "Statement[0].Principal"),
        ({"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"], "repositoryPolicy": "{"}, "repositoryPolicy"),
        ({"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"], "lifecyclePolicy": "not json"}, "lifecyclePolicy"),
        ({"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"],
          "resourceTags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}, "resourceTags"),
        ({"prefix": "UPPER/case", "appliedFor": ["CREATE_ON_PUSH"]}, "prefix"),
        ({"prefix": "a", "appliedFor": ["CREATE_ON_PUSH"]}, "prefix"),
    ]
    problems = []
    try:
        for body, word in cases:
            code, msg, status = api_error(ecr.create_repository_creation_template, **body)
            if code != "InvalidParameterException" or status != 400 or word not in msg:
                problems.append(f"{body!r:.140}: {code} {status} {msg!r} (expected InvalidParameterException naming {word})")
        assert not problems, "\n".join(problems)
        got = ecr.describe_repository_creation_templates(prefixes=[prefix])["repositoryCreationTemplates"]
        assert got == [], f"refused creations left a template behind: {got}"
    finally:
        delete_template(prefix)


def test_template_applies_when_a_push_creates_the_repository():
    base = unique_prefix("tpush")
    team = f"{base}/team"
    pol = iam_policy(iam_statement(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "*", sid="FromTemplate",
                                   principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}))
    ecr = ecr_client()
    created = [f"{base}/app", f"{team}/svc", f"{base}x/other", f"{base}/by-api", f"{base}-cache/none"]
    try:
        raw("CreateRepositoryCreationTemplate", {"prefix": base, "appliedFor": ["CREATE_ON_PUSH"],
                                                 "imageTagMutability": "IMMUTABLE", "encryptionConfiguration": KMS,
                                                 "resourceTags": [{"Key": "made-by", "Value": "push"}],
                                                 "repositoryPolicy": pol})
        raw("CreateRepositoryCreationTemplate", {"prefix": team, "appliedFor": ["CREATE_ON_PUSH"],
                                                 "resourceTags": [{"Key": "team", "Value": "yes"}]})
        raw("CreateRepositoryCreationTemplate", {"prefix": f"{base}-cache", "appliedFor": ["PULL_THROUGH_CACHE"],
                                                 "imageTagMutability": "IMMUTABLE"})
        for name in (f"{base}/app", f"{team}/svc", f"{base}x/other", f"{base}-cache/none"):
            push_image(client_a(), name, "v1")
        ecr.create_repository(repositoryName=f"{base}/by-api")

        def repo(name):
            return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]

        def tags(name):
            return ecr.list_tags_for_resource(resourceArn=ecr_repo_arn(name))["tags"]

        app = repo(f"{base}/app")
        assert app["imageTagMutability"] == "IMMUTABLE" and app["encryptionConfiguration"] == KMS, app
        assert tags(f"{base}/app") == [{"Key": "made-by", "Value": "push"}]
        got = ecr.get_repository_policy(repositoryName=f"{base}/app")["policyText"]
        assert json.loads(got) == json.loads(pol), got
        # The longest matching prefix wins, alone.
        svc = repo(f"{team}/svc")
        assert svc["imageTagMutability"] == "MUTABLE" and svc["encryptionConfiguration"]["encryptionType"] == "AES256", svc
        assert tags(f"{team}/svc") == [{"Key": "team", "Value": "yes"}]
        # A prefix matches whole path components only; other templates and CreateRepository are untouched.
        for name in (f"{base}x/other", f"{base}-cache/none", f"{base}/by-api"):
            r = repo(name)
            assert r["imageTagMutability"] == "MUTABLE" and r["encryptionConfiguration"] == {"encryptionType": "AES256"}, r
            assert tags(name) == [], (name, tags(name))
        expect_api_error("RepositoryPolicyNotFoundException", ecr.get_repository_policy, repositoryName=f"{base}x/other")
    finally:
        for p in (base, team, f"{base}-cache"):
            delete_template(p)
        drop(*created)


def test_template_for_pushes_does_not_apply_to_the_cache():
    prefix = unique_prefix("tn")
    repo = f"{prefix}/library/alpine"
    ecr = ecr_client()
    with DockerRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("a"), "3", layer_sizes=(1024,))
        up.push_layout(tmp.sub("a"), "3", "library/alpine")
        try:
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=up.url)
            raw("CreateRepositoryCreationTemplate", {"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"],
                                                     "imageTagMutability": "IMMUTABLE",
                                                     "resourceTags": [{"Key": "push", "Value": "only"}]})
            r = get_manifest(Client(url_a()), repo, "3")
            assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
            got = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
            assert got["imageTagMutability"] == "MUTABLE", got
            assert ecr.list_tags_for_resource(resourceArn=ecr_repo_arn(repo))["tags"] == []
            # Switching the template to the cache applies it to the next repository the cache creates.
            raw("UpdateRepositoryCreationTemplate", {"prefix": prefix, "appliedFor": ["PULL_THROUGH_CACHE"]})
            up.push_layout(tmp.sub("a"), "3", "library/other")
            r = get_manifest(Client(url_a()), f"{prefix}/library/other", "3")
            assert r.status == 200, r.summary()
            got = ecr.describe_repositories(repositoryNames=[f"{prefix}/library/other"])["repositories"][0]
            assert got["imageTagMutability"] == "IMMUTABLE", got
            tags = ecr.list_tags_for_resource(resourceArn=ecr_repo_arn(f"{prefix}/library/other"))["tags"]
            assert tags == [{"Key": "push", "Value": "only"}], tags
        finally:
            try:
                ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
            except Exception:  # noqa: BLE001
                pass
            delete_template(prefix)
            drop(repo, f"{prefix}/library/other")


def test_template_operations_need_permission():
    prefix = unique_prefix("tpm")
    with User("api-tpl") as u:
        for call, kw in ((ecr_client(u.creds).create_repository_creation_template,
                          {"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"]}),
                         (ecr_client(u.creds).describe_repository_creation_templates, {})):
            msg = expect_api_error("AccessDeniedException", call, **kw)
            assert "RepositoryCreationTemplate" in msg and ":registry" in msg, msg
    r = signed_api_request("DescribeRepositoryCreationTemplates", {"prefixes": [prefix]})
    assert r.status == 200 and r.json()["repositoryCreationTemplates"] == [], \
        f"a refused creation left a template behind: {r.summary()}"
