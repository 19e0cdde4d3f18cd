"""Control plane end to end with the aws CLI, as AWS's pull-through-cache
walkthrough does it: a secret with the upstream's credentials, a rule that
uses it, validation, a registry policy that lets a second user create and
import under the rule's prefix, that user's get-login-password into podman
login, a podman pull through the cache and describe-images of what appeared.
Also: a repository creation template applied by the cache, and the operations
Debian's aws CLI v2 (an older model) knows."""

import base64
import json
import re
import time

from pierlib import (
    ACCOUNT_ID, OCI_MANIFEST, Client, Podman, SavedRegistryPolicy, TempDir, aws_cli, aws_cli_error,
    aws_json, aws_login, build_image_layout, ecr_client, ecr_repo_arn, iam_policy, iam_statement, image_ref,
    secrets_client, signed_api_request, url_a,
)
from authlib import User
from upstreams import DockerRegistry, get_manifest, pier_logs, secret_leaks, unique_prefix, upstream_port

POLICY_SETTLE = 1.5
PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]


def _cleanup(prefixes=(), secrets=(), repos=(), templates=()):
    ecr = ecr_client()
    for p in prefixes:
        try:
            ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=p)
        except Exception:  # noqa: BLE001 - cleanup
            pass
    for s in secrets:
        try:
            secrets_client().delete_secret(SecretId=s)
        except Exception:  # noqa: BLE001
            pass
    for r in repos:
        try:
            ecr.delete_repository(repositoryName=r, force=True)
        except Exception:  # noqa: BLE001
            pass
    for t in templates:
        signed_api_request("DeleteRepositoryCreationTemplate", {"prefix": t})


def test_aws_pull_through_cache_walkthrough():
    prefix, dead = unique_prefix("wt"), unique_prefix("wd")
    secret_name = f"ecr-pullthroughcache/{prefix}"
    repo = f"{prefix}/library/demo"
    with DockerRegistry(auth="htpasswd") as up, TempDir() as tmp, SavedRegistryPolicy():
        img = build_image_layout(tmp.sub("demo"), "latest", layer_sizes=(2048, 48 * 1024))
        up.push_layout(tmp.sub("demo"), "latest", "library/demo")
        try:
            # 1. The upstream's credentials as a Secrets Manager secret.
            out = aws_json("secretsmanager", "create-secret", "--name", secret_name, "--secret-string",
                           json.dumps({"username": up.username, "accessToken": up.password}))
            arn = out["ARN"]
            assert re.fullmatch(rf"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:"
                                rf"{re.escape(secret_name)}-[A-Za-z0-9]{{6}}", arn), out
            assert out["Name"] == secret_name, out
            assert up.password not in json.dumps(aws_json("secretsmanager", "describe-secret", "--secret-id", arn))

            # 2. The rule, using the secret.
            rule = aws_json("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", prefix,
                            "--upstream-registry-url", up.url, "--credential-arn", arn)
            assert rule["ecrRepositoryPrefix"] == prefix and rule["upstreamRegistryUrl"] == up.url, rule
            assert rule["credentialArn"] == arn and rule["registryId"] == ACCOUNT_ID, rule
            assert isinstance(rule["createdAt"], (int, float, str)), rule
            rules = aws_json("ecr", "describe-pull-through-cache-rules", "--ecr-repository-prefixes", prefix)
            assert [r["credentialArn"] for r in rules["pullThroughCacheRules"]] == [arn], rules

            # 3. Validation contacts the upstream: valid here ...
            v = aws_json("ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", prefix)
            assert v["isValid"] is True and not v.get("failure"), v
            assert v["ecrRepositoryPrefix"] == prefix and v["upstreamRegistryUrl"] == up.url, v
            assert v.get("credentialArn") == arn, v
            # ... and not for an upstream nobody listens on.
            dead_url = f"http://127.0.0.1:{upstream_port()}"
            aws_json("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", dead,
                     "--upstream-registry-url", dead_url)
            v = aws_json("ecr", "validate-pull-through-cache-rule", "--ecr-repository-prefix", dead)
            assert v["isValid"] is False, v
            assert isinstance(v.get("failure"), str) and v["failure"], v
            assert dead_url in v["failure"] or "connect" in v["failure"].lower(), v

            # 4. A second user: may log in and pull (identity policy); the registry policy lets it
            #    create repositories and import images under the prefix.
            identity = iam_policy(iam_statement("ecr:GetAuthorizationToken", "*", sid="Login"),
                                  iam_statement(PULL_ACTIONS, f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{prefix}/*",
                                                sid="Pull"))
            with User("api-walk", {"pull": identity}) as u, Podman() as podman:
                registry_doc = iam_policy(iam_statement(
                    ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
                    f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/{prefix}/*", sid="PullThroughCache",
                    principal={"AWS": u.arn}))
                out = aws_json("ecr", "put-registry-policy", "--policy-text", registry_doc)
                assert out["policyText"] == registry_doc and out["registryId"] == ACCOUNT_ID, out
                assert aws_json("ecr", "get-registry-policy")["policyText"] == registry_doc
                time.sleep(POLICY_SETTLE)

                # 5. get-login-password | podman login, then podman pull through the cache.
                authfile = tmp.sub("auth.json")
                mark = up.mark()
                login_password = aws_login(podman, u.creds, authfile)
                ref = image_ref(repo, "latest")
                podman("pull", "--tls-verify=false", "--authfile", authfile, ref)
                assert podman.inspect(ref)["Digest"] == img.digest
                up.settle()
                assert up.count("GET", up.manifest_pattern("library/demo", "latest"), since=mark) >= 1, \
                    f"the upstream saw no authenticated manifest GET: {up.summary(mark)}"

                # 6. What appeared, as the administrator sees it.
                repos = aws_json("ecr", "describe-repositories", "--repository-names", repo)["repositories"]
                assert [r["repositoryName"] for r in repos] == [repo], repos
                assert repos[0]["repositoryArn"] == ecr_repo_arn(repo), repos
                details = aws_json("ecr", "describe-images", "--repository-name", repo)["imageDetails"]
                assert [d["imageDigest"] for d in details] == [img.digest], details
                assert details[0]["imageTags"] == ["latest"], details
                assert details[0]["imageManifestMediaType"] == OCI_MANIFEST, details
                layers = sum(l.size for l in img.layers)
                assert layers <= details[0]["imageSizeInBytes"] <= layers + img.config.size, details
                listed = aws_json("ecr", "list-images", "--repository-name", repo)["imageIds"]
                assert listed == [{"imageDigest": img.digest, "imageTag": "latest"}], listed
                # The user's own login pulls again from the cache, now without the upstream.
                up.stop()
                r = Client(url_a(), auth=("AWS", _password(u.creds))).get(
                    f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
                assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
                # None of the credentials in play reached a log.
                leaks = secret_leaks([up.password, login_password, u.secret], pier_logs())
                assert not leaks, f"credentials in the logs: {leaks}"
        finally:
            _cleanup(prefixes=(prefix, dead), secrets=(secret_name,), repos=(repo,))


def _password(creds) -> str:
    tok = ecr_client(creds).get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return base64.b64decode(tok).decode().split(":", 1)[1]


def test_creation_template_applies_to_pull_through_cache_repositories():
    prefix = unique_prefix("tp")
    repo = f"{prefix}/library/busybox"
    policy_doc = iam_policy(iam_statement("ecr:BatchGetImage", "*", sid="TemplateSaysSo",
                                          principal={"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}))
    with DockerRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("bb"), "1.0", layer_sizes=(1024,))
        up.push_layout(tmp.sub("bb"), "1.0", "library/busybox")
        try:
            aws_json("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", prefix,
                     "--upstream-registry-url", up.url)
            out = aws_json("ecr", "create-repository-creation-template", "--prefix", prefix,
                           "--applied-for", "PULL_THROUGH_CACHE", "--image-tag-mutability", "IMMUTABLE",
                           "--resource-tags", "Key=origin,Value=cache", "--repository-policy", policy_doc,
                           "--description", "cache repositories")
            t = out["repositoryCreationTemplate"]
            assert t["prefix"] == prefix and t["appliedFor"] == ["PULL_THROUGH_CACHE"], t
            assert t["imageTagMutability"] == "IMMUTABLE", t

            r = get_manifest(Client(url_a()), repo, "1.0")
            assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()

            got = aws_json("ecr", "describe-repositories", "--repository-names", repo)["repositories"][0]
            assert got["imageTagMutability"] == "IMMUTABLE", got
            tags = aws_json("ecr", "list-tags-for-resource", "--resource-arn", ecr_repo_arn(repo))["tags"]
            assert tags == [{"Key": "origin", "Value": "cache"}], tags
            pol = aws_json("ecr", "get-repository-policy", "--repository-name", repo)
            assert json.loads(pol["policyText"]) == json.loads(policy_doc), pol
        finally:
            _cleanup(prefixes=(prefix,), repos=(repo,), templates=(prefix,))


def test_aws_cli_v2_operations_it_knows():
    """Debian's aws CLI v2.9.19: create-repository, describe-repositories, get-login-password and
    create-pull-through-cache-rule with the basic fields, against a loopback upstream."""
    prefix = unique_prefix("v2")
    name = f"{prefix}-push/app"
    with DockerRegistry() as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("img"), "3", layer_sizes=(1024,))
        up.push_layout(tmp.sub("img"), "3", "tools/img")
        try:
            out = aws_json("ecr", "create-repository", "--repository-name", name, "--image-tag-mutability",
                           "IMMUTABLE", version=2)
            assert out["repository"]["repositoryName"] == name, out
            assert out["repository"]["imageTagMutability"] == "IMMUTABLE", out
            got = aws_json("ecr", "describe-repositories", "--repository-names", name, version=2)["repositories"]
            assert [r["repositoryArn"] for r in got] == [ecr_repo_arn(name)], got
            code, _ = aws_cli_error(aws_cli("ecr", "create-repository", "--repository-name", name, version=2,
                                            check=False))
            assert code == "RepositoryAlreadyExistsException", code

            rule = aws_json("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix", prefix,
                            "--upstream-registry-url", up.url, version=2)
            assert rule["ecrRepositoryPrefix"] == prefix and rule["upstreamRegistryUrl"] == up.url, rule
            code, _ = aws_cli_error(aws_cli("ecr", "create-pull-through-cache-rule", "--ecr-repository-prefix",
                                            prefix, "--upstream-registry-url", up.url, version=2, check=False))
            assert code == "PullThroughCacheRuleAlreadyExistsException", code

            password = aws_cli("ecr", "get-login-password", version=2).stdout.strip()
            r = Client(url_a(), auth=("AWS", password)).get(f"/v2/{prefix}/tools/img/manifests/3",
                                                           headers={"Accept": OCI_MANIFEST})
            assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
            got = aws_json("ecr", "describe-repositories", "--repository-names", f"{prefix}/tools/img",
                           version=2)["repositories"]
            assert len(got) == 1, got
        finally:
            _cleanup(prefixes=(prefix,), repos=(name, f"{prefix}/tools/img"))


def test_control_plane_logged_no_server_faults():
    """Every refusal above was a 4xx: no control-plane operation failed with a server fault
    (those are logged at error level as "control plane <Operation>: ...")."""
    faults = []
    for path, text in pier_logs().items():
        if path.endswith("pier.log"):
            faults += [line for line in text.splitlines() if re.search(r" error: control plane \w+:", line)]
    assert not faults, "control-plane server faults logged:\n" + "\n".join(faults[:20])
