"""Control plane, pull-through cache rules and their secrets: Create/Describe/
Update/Delete/ValidatePullThroughCacheRule and the Secrets Manager calls
(CreateSecret, PutSecretValue, DescribeSecret, ListSecrets, DeleteSecret),
with boto3: shapes, errors, pagination, validation against real upstreams,
and a rule whose credentials come from a secret pulling through the cache."""

import datetime
import json
import re
import uuid

from pierlib import (
    ACCOUNT_ID, Client, TempDir, api_error, assert_oci_error, build_image_layout, ecr_client, expect_api_error,
    psql_value, secrets_client, signed_api_request, sql_str, url_a, url_b,
)
from upstreams import CacheRule, DockerRegistry, get_manifest, pierctl, rule_count, unique_prefix, upstream_port

SECRET_ARN_RE = r"arn:aws:secretsmanager:us-east-1:111122223333:secret:{name}-[A-Za-z0-9]{{6}}"


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def recent(ts, what):
    assert isinstance(ts, datetime.datetime), f"{what} is not a datetime: {ts!r}"
    assert abs((now() - ts).total_seconds()) < 120, f"{what} {ts} is not now"


def forget_rule(*prefixes):
    for p in prefixes:
        try:
            ecr_client().delete_pull_through_cache_rule(ecrRepositoryPrefix=p)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def forget_secret(*names):
    for n in names:
        try:
            secrets_client().delete_secret(SecretId=n)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def forget_repo(*names):
    for n in names:
        try:
            ecr_client().delete_repository(repositoryName=n, force=True)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def new_secret(value: dict, label="s") -> tuple[str, str]:
    name = f"ecr-pullthroughcache/{unique_prefix(label)}"
    return name, secrets_client().create_secret(Name=name, SecretString=json.dumps(value))["ARN"]


# ---------------------------------------------------------------------------
# Secrets Manager


def test_secret_lifecycle_never_returns_values():
    sm = secrets_client()
    name = f"ecr-pullthroughcache/{unique_prefix('life')}"
    value = json.dumps({"username": "robot", "accessToken": "tok-" + uuid.uuid4().hex})
    value2 = json.dumps({"username": "robot", "accessToken": "tok2-" + uuid.uuid4().hex})
    try:
        out = sm.create_secret(Name=name, SecretString=value, Description="upstream login")
        assert re.fullmatch(SECRET_ARN_RE.format(name=re.escape(name)), out["ARN"]), out
        assert out["Name"] == name and re.fullmatch(r"[0-9a-f-]{36}", out["VersionId"]), out
        arn = out["ARN"]
        msg = expect_api_error("ResourceExistsException", sm.create_secret, Name=name, SecretString=value)
        assert name in msg, msg

        for ident in (name, arn):
            d = sm.describe_secret(SecretId=ident)
            assert (d["ARN"], d["Name"], d.get("Description")) == (arn, name, "upstream login"), d
            recent(d["CreatedDate"], "CreatedDate")
            recent(d["LastChangedDate"], "LastChangedDate")
        put = sm.put_secret_value(SecretId=arn, SecretString=value2)
        assert (put["ARN"], put["Name"], put["VersionStages"]) == (arn, name, ["AWSCURRENT"]), put
        assert put["VersionId"] != out["VersionId"], put
        d = sm.describe_secret(SecretId=name)
        assert d["LastChangedDate"] >= d["CreatedDate"], d

        listed = [s for page in sm.get_paginator("list_secrets").paginate() for s in page["SecretList"]]
        mine = [s for s in listed if s["Name"] == name]
        assert len(mine) == 1 and mine[0]["ARN"] == arn, mine

        # Values never come back, in any answer.
        for op, body in (("DescribeSecret", {"SecretId": name}), ("ListSecrets", {}),
                         ("PutSecretValue", {"SecretId": name, "SecretString": value2})):
            r = signed_api_request(op, body, service="secretsmanager")
            assert r.status == 200, r.summary()
            for v in (value, value2, "tok-", "tok2-"):
                assert v not in r.text, f"{op} returned the secret's value: {r.text[:300]}"
            assert "SecretString" not in r.text, f"{op}: {r.text[:300]}"
        r = signed_api_request("GetSecretValue", {"SecretId": name}, service="secretsmanager")
        assert r.status == 400 and "tok" not in r.text, r.summary()

        gone = sm.delete_secret(SecretId=arn)
        assert (gone["ARN"], gone["Name"]) == (arn, name), gone
        recent(gone["DeletionDate"], "DeletionDate")
        for call, kw in ((sm.describe_secret, {}), (sm.delete_secret, {}),
                         (sm.put_secret_value, {"SecretString": value})):
            expect_api_error("ResourceNotFoundException", call, SecretId=name, **kw)
    finally:
        forget_secret(name)


def test_secret_bad_input():
    sm = secrets_client(validate=False)
    base = f"ecr-pullthroughcache/{unique_prefix('bad')}"
    problems = []
    for kw in ({"Name": base + " space", "SecretString": "{}"}, {"Name": base + "#", "SecretString": "{}"},
               {"Name": "", "SecretString": "{}"}, {"Name": base + "-b", "SecretBinary": b"\x00\x01"},
               {"SecretString": "{}"}):
        code, msg, status = api_error(sm.create_secret, **kw)
        if code not in ("InvalidParameterException", "ValidationException", "InvalidRequestException") or status != 400:
            problems.append(f"{kw}: {code} {status} {msg!r}")
    assert not problems, "\n".join(problems)
    listed = [s["Name"] for page in sm.get_paginator("list_secrets").paginate() for s in page["SecretList"]]
    assert not [n for n in listed if n.startswith(base)], listed


def test_list_secrets_pages():
    sm = secrets_client()
    label = unique_prefix("pg")
    names = [f"ecr-pullthroughcache/{label}-{i}" for i in range(3)]
    try:
        for n in names:
            sm.create_secret(Name=n, SecretString="{}")
        first = sm.list_secrets(MaxResults=1)
        assert len(first["SecretList"]) == 1, f"MaxResults=1 returned {len(first['SecretList'])} secrets"
        assert first.get("NextToken"), f"more secrets exist, but no NextToken: {first}"
        seen, pages = [], 0
        for page in sm.get_paginator("list_secrets").paginate(PaginationConfig={"PageSize": 1}):
            pages += 1
            assert len(page["SecretList"]) <= 1, page
            seen += [s["Name"] for s in page["SecretList"]]
        assert [n for n in seen if n.startswith(f"ecr-pullthroughcache/{label}-")] == names, seen
        assert pages >= 3, pages
    finally:
        forget_secret(*names)


# ---------------------------------------------------------------------------
# rules


def test_rule_create_describe_update_delete():
    ecr = ecr_client()
    prefix, other = unique_prefix("rc"), unique_prefix("rd")
    s1, arn1 = new_secret({"username": "a", "accessToken": "b"})
    s2, arn2 = new_secret({"username": "c", "accessToken": "d"})
    url = f"http://127.0.0.1:{upstream_port()}"
    try:
        out = ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=url,
                                                 credentialArn=arn1, upstreamRegistry="docker-hub")
        assert (out["ecrRepositoryPrefix"], out["upstreamRegistryUrl"], out["registryId"], out["credentialArn"],
                out["upstreamRegistry"]) == (prefix, url, ACCOUNT_ID, arn1, "docker-hub"), out
        recent(out["createdAt"], "createdAt")
        assert rule_count(prefix) == 1
        msg = expect_api_error("PullThroughCacheRuleAlreadyExistsException", ecr.create_pull_through_cache_rule,
                               ecrRepositoryPrefix=prefix, upstreamRegistryUrl=url)
        assert prefix in msg, msg
        ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=other, upstreamRegistryUrl=url)

        got = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])["pullThroughCacheRules"]
        assert len(got) == 1, got
        g = got[0]
        assert (g["ecrRepositoryPrefix"], g["upstreamRegistryUrl"], g["credentialArn"], g["registryId"],
                g["upstreamRegistry"]) == (prefix, url, arn1, ACCOUNT_ID, "docker-hub"), g
        recent(g["createdAt"], "createdAt")
        recent(g["updatedAt"], "updatedAt")
        # Node B reads the same rule.
        got_b = ecr_client(base_url=url_b()).describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])
        assert got_b["pullThroughCacheRules"][0]["credentialArn"] == arn1, got_b
        # Pages.
        seen = []
        for page in ecr.get_paginator("describe_pull_through_cache_rules").paginate(PaginationConfig={"PageSize": 1}):
            assert len(page["pullThroughCacheRules"]) <= 1, page
            seen += [r["ecrRepositoryPrefix"] for r in page["pullThroughCacheRules"]]
        assert seen.count(prefix) == 1 and seen.count(other) == 1, seen
        msg = expect_api_error("PullThroughCacheRuleNotFoundException", ecr.describe_pull_through_cache_rules,
                               ecrRepositoryPrefixes=[prefix + "x"])
        assert prefix + "x" in msg, msg

        up = ecr.update_pull_through_cache_rule(ecrRepositoryPrefix=prefix, credentialArn=arn2)
        assert (up["ecrRepositoryPrefix"], up["registryId"], up["credentialArn"]) == (prefix, ACCOUNT_ID, arn2), up
        recent(up["updatedAt"], "updatedAt")
        g = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[prefix])["pullThroughCacheRules"][0]
        assert g["credentialArn"] == arn2 and g["upstreamRegistryUrl"] == url, g
        missing = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:ecr-pullthroughcache/none-AbCdEf"
        expect_api_error("SecretNotFoundException", ecr.update_pull_through_cache_rule, ecrRepositoryPrefix=prefix,
                         credentialArn=missing)
        expect_api_error("PullThroughCacheRuleNotFoundException", ecr.update_pull_through_cache_rule,
                         ecrRepositoryPrefix=prefix + "x", credentialArn=arn2)
        # The rule is the one pierctl sees.
        p = pierctl("rule", "show", prefix)
        assert p.returncode == 0 and url in p.stdout, p.stdout + p.stderr

        gone = ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
        assert (gone["ecrRepositoryPrefix"], gone["upstreamRegistryUrl"], gone["credentialArn"]) == \
            (prefix, url, arn2), gone
        assert rule_count(prefix) == 0
        for call in (ecr.delete_pull_through_cache_rule, ecr.validate_pull_through_cache_rule):
            expect_api_error("PullThroughCacheRuleNotFoundException", call, ecrRepositoryPrefix=prefix)
    finally:
        forget_rule(prefix, other)
        forget_secret(s1, s2)


def test_rule_bad_input_creates_nothing():
    ecr = ecr_client(validate=False)
    base = unique_prefix("rb")
    url = "http://127.0.0.1:9"
    other_name = f"other/{unique_prefix('o')}"
    other_arn = secrets_client().create_secret(Name=other_name, SecretString="{}")["ARN"]
    missing = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:ecr-pullthroughcache/{base}-AbCdEf"
    cases = [
        ({"ecrRepositoryPrefix": base.upper(), "upstreamRegistryUrl": url}, "InvalidParameterException",
         "ecrRepositoryPrefix"),
        ({"ecrRepositoryPrefix": base + "!", "upstreamRegistryUrl": url}, "InvalidParameterException",
         "ecrRepositoryPrefix"),
        ({"ecrRepositoryPrefix": base + "x" * 30, "upstreamRegistryUrl": url}, "InvalidParameterException",
         "ecrRepositoryPrefix"),
        ({"ecrRepositoryPrefix": "", "upstreamRegistryUrl": url}, "InvalidParameterException", "ecrRepositoryPrefix"),
        ({"ecrRepositoryPrefix": base}, "InvalidParameterException", "upstreamRegistryUrl"),
        ({"ecrRepositoryPrefix": base, "upstreamRegistryUrl": "not a url"}, "InvalidParameterException",
         "upstreamRegistryUrl"),
        ({"ecrRepositoryPrefix": base, "upstreamRegistryUrl": "ftp://127.0.0.1:9"}, "InvalidParameterException",
         "upstreamRegistryUrl"),
        ({"ecrRepositoryPrefix": base, "upstreamRegistryUrl": url, "upstreamRegistry": "my-registry"},
         "UnsupportedUpstreamRegistryException", "my-registry"),
        ({"ecrRepositoryPrefix": base, "upstreamRegistryUrl": url, "credentialArn": missing},
         "SecretNotFoundException", missing),
        ({"ecrRepositoryPrefix": base, "upstreamRegistryUrl": url, "credentialArn": other_arn},
         "InvalidParameterException", "ecr-pullthroughcache/"),
        ({"ecrRepositoryPrefix": base, "upstreamRegistryUrl": url, "credentialArn": "arn:aws:iam::1:role/x"},
         "InvalidParameterException", "credentialArn"),
        ({"ecrRepositoryPrefix": base, "upstreamRegistryUrl": url, "registryId": "999999999999"},
         "InvalidParameterException", "registryId"),
    ]
    problems = []
    try:
        for body, code, word in cases:
            got, msg, status = api_error(ecr.create_pull_through_cache_rule, **body)
            if got != code or status != 400 or word not in msg:
                problems.append(f"{body}: {got} {status} {msg!r} (expected {code} mentioning {word!r})")
        assert not problems, "\n".join(problems)
        n = rules_like(base)
        assert n == 0, f"refused creations left {n} rules behind"
    finally:
        forget_rule(base)
        forget_secret(other_name)


def rules_like(base: str) -> int:
    """Rules whose prefix starts with base, in any case."""
    return int(psql_value(f"SELECT count(*) FROM cache_rules WHERE lower(prefix) LIKE lower({sql_str(base + '%')})"))


def test_validate_rule_against_real_upstreams():
    ecr = ecr_client()
    good, anon, wrong, dead = (unique_prefix(x) for x in ("vg", "va", "vw", "vx"))
    with DockerRegistry(auth="htpasswd") as up:
        sgood, arn_good = new_secret({"username": up.username, "accessToken": up.password})
        swrong, arn_wrong = new_secret({"username": up.username, "accessToken": "not-the-password"})
        dead_url = f"http://127.0.0.1:{upstream_port()}"
        try:
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=good, upstreamRegistryUrl=up.url,
                                               credentialArn=arn_good)
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=anon, upstreamRegistryUrl=up.url)
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=wrong, upstreamRegistryUrl=up.url,
                                               credentialArn=arn_wrong)
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=dead, upstreamRegistryUrl=dead_url)

            mark = up.mark()
            v = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=good)
            assert v["isValid"] is True and not v.get("failure"), v
            assert (v["ecrRepositoryPrefix"], v["registryId"], v["upstreamRegistryUrl"], v["credentialArn"]) == \
                (good, ACCOUNT_ID, up.url, arn_good), v
            up.settle()
            assert up.count("GET", "/v2/", status=200, since=mark) >= 1, \
                f"validation did not reach the upstream with credentials: {up.summary(mark)}"
            v = ecr_client(base_url=url_b()).validate_pull_through_cache_rule(ecrRepositoryPrefix=good)
            assert v["isValid"] is True, f"node B: {v}"

            problems = []
            for prefix, hint in ((anon, ("401", "auth", "unauthorized")), (wrong, ("401", "auth", "unauthorized")),
                                 (dead, (dead_url, "connect"))):
                v = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=prefix)
                f = v.get("failure") or ""
                if v.get("isValid") is not False or not any(h in f.lower() for h in hint):
                    problems.append(f"{prefix}: {v} (expected isValid false and a failure mentioning one of {hint})")
            assert not problems, "\n".join(problems)

            # Fixing the secret fixes the rule.
            secrets_client().put_secret_value(SecretId=swrong, SecretString=json.dumps(
                {"username": up.username, "accessToken": up.password}))
            v = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=wrong)
            assert v["isValid"] is True, f"after PutSecretValue with the right password: {v}"
            # A secret without the two fields is a failure, not a fault.
            secrets_client().put_secret_value(SecretId=swrong, SecretString='{"user": "x"}')
            v = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=wrong)
            assert v["isValid"] is False and "username" in (v.get("failure") or ""), v
        finally:
            forget_rule(good, anon, wrong, dead)
            forget_secret(sgood, swrong)


def test_validate_rule_with_a_token_service_upstream():
    """Validation does the Bearer token dance with the secret's credentials."""
    ecr = ecr_client()
    good, bad = unique_prefix("tg"), unique_prefix("tb")
    with DockerRegistry(auth="token") as up:
        sgood, arn_good = new_secret({"username": up.username, "accessToken": up.password})
        sbad, arn_bad = new_secret({"username": up.username, "accessToken": "not-" + up.password})
        try:
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=good, upstreamRegistryUrl=up.url,
                                               credentialArn=arn_good)
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=bad, upstreamRegistryUrl=up.url,
                                               credentialArn=arn_bad)
            v = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=good)
            assert v["isValid"] is True and not v.get("failure"), v
            assert up.token_service.count(user=up.username) >= 1, "no token was issued to the secret's user"
            v = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix=bad)
            assert v["isValid"] is False and v.get("failure"), v
            assert up.token_service.count(status=401) >= 1, "the token service never saw the wrong password"
        finally:
            forget_rule(good, bad)
            forget_secret(sgood, sbad)


def test_rule_with_secret_pulls_through_the_cache():
    """A rule made with the API and credentialArn imports from a Basic-auth upstream; the secret's
    value is what reaches the upstream, and a deleted rule stops imports."""
    ecr = ecr_client()
    prefix = unique_prefix("rp")
    repo = f"{prefix}/team/app"
    with DockerRegistry(auth="htpasswd") as up, TempDir() as tmp:
        img = build_image_layout(tmp.sub("app"), "1", layer_sizes=(1024, 8192))
        up.push_layout(tmp.sub("app"), "1", "team/app")
        sname, arn = new_secret({"username": up.username, "accessToken": up.password})
        try:
            ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl=up.url,
                                               credentialArn=arn)
            r = get_manifest(Client(url_b()), repo, "1")
            assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
            assert r.body == img.manifest.data
            for blob in (img.config, *img.layers):
                b = Client(url_a()).get(f"/v2/{repo}/blobs/{blob.digest}")
                assert b.status == 200 and b.body == blob.data, b.summary()
            details = ecr.describe_images(repositoryName=repo)["imageDetails"]
            assert [(d["imageDigest"], d.get("imageTags")) for d in details] == [(img.digest, ["1"])], details
            got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "1"}])["images"]
            assert got[0]["imageManifest"].encode() == img.manifest.data
            assert ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryName"] == repo

            # A secret that no longer holds valid credentials: a new tag cannot be imported.
            up.push_layout(tmp.sub("app"), "1", "team/app", dest_ref="2")
            secrets_client().put_secret_value(SecretId=arn, SecretString=json.dumps(
                {"username": up.username, "accessToken": "wrong"}))
            mark = up.mark()
            r = get_manifest(Client(url_a()), repo, "2")
            up.settle()
            assert r.status != 200, (f"imported with credentials the secret no longer holds: {r.summary()}; "
                                     f"upstream saw: {up.summary(mark)}")
            # docs/pull-through-cache.md: refused credentials, nothing cached: 502 naming the rule.
            assert_oci_error(r, 502, "UPSTREAM_UNAVAILABLE", (prefix,))
        finally:
            forget_rule(prefix)
            forget_secret(sname)
            forget_repo(repo)


def test_rule_from_api_and_pierctl_agree():
    """A rule created with pierctl is described by the API, and one created by the API is
    deleted by pierctl (one store)."""
    ecr = ecr_client()
    with CacheRule("http://127.0.0.1:9", prefix=unique_prefix("pc")) as rule:
        got = ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=[rule.prefix])["pullThroughCacheRules"]
        assert [(g["ecrRepositoryPrefix"], g["upstreamRegistryUrl"]) for g in got] == \
            [(rule.prefix, "http://127.0.0.1:9")], got
    expect_api_error("PullThroughCacheRuleNotFoundException", ecr.describe_pull_through_cache_rules,
                     ecrRepositoryPrefixes=[rule.prefix])
    prefix = unique_prefix("pa")
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix, upstreamRegistryUrl="http://127.0.0.1:9")
    p = pierctl("rule", "delete", prefix)
    assert p.returncode == 0, p.stderr
    expect_api_error("PullThroughCacheRuleNotFoundException", ecr.validate_pull_through_cache_rule,
                     ecrRepositoryPrefix=prefix)
