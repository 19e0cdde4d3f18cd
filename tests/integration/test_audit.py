"""The audit trail: who deleted a tag (by BatchDeleteImage and by an OCI
DELETE) is answered by the audit_events table, `pierctl audit` and the
console's activity endpoint; denials, console sign-ins (and failed ones),
pull-through imports and policy changes are recorded with the principal and
the result; the request id is the X-Request-Id the client got; the JSON lines
of every node parse and match the table; retention prunes old rows; and no
secret the tests used appears in the lines or the table."""

import json
import os
import re
import uuid

from pierlib import (
    Client, TempDir, build_image_layout, client_a, ecr_client, env, psql, psql_value, push_image,
    secrets_client, sql_str, unique_repo, url_a, url_b, wait_until,
)
from upstreams import CacheRule, DockerRegistry, pierctl
from authlib import SECRETS, User, allow, basic, policy, policy_settle, remember, user_arn
from test_console_api import Console, error_type
from test_cache_pull import pull_http

DELETE_ACTIONS = ["ecr:BatchDeleteImage", "ecr:DescribeImages", "ecr:BatchGetImage"]


def audit_files() -> dict[str, str]:
    """Each node's audit_log (quickstart: <state>/log/audit.log)."""
    out = {}
    for var in ("PIER_STATE_DIR", "PIER_STATE_DIR_B"):
        path = os.path.join(env(var), "log", "audit.log")
        with open(path, encoding="utf-8") as f:
            out[path] = f.read()
    return out


def audit_lines() -> list[dict]:
    lines = []
    for path, text in audit_files().items():
        for n, line in enumerate(text.splitlines(), 1):
            try:
                ev = json.loads(line)
            except ValueError as exc:
                raise AssertionError(f"{path}:{n} is not JSON ({exc}): {line[:200]!r}")
            assert isinstance(ev, dict), f"{path}:{n}: {line[:200]!r}"
            lines.append(ev)
    return lines


def ctl_audit(*args: str) -> list[dict]:
    p = pierctl("audit", *args)
    assert p.returncode == 0, f"pierctl audit {args} failed: {p.stderr}"
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def rows(where: str) -> list[dict]:
    cols = ["request_id", "principal", "access_key_id", "source_address", "action", "repository",
            "resource", "target", "result"]
    out = psql(f"SELECT {', '.join(cols)} FROM audit_events WHERE {where} ORDER BY id")
    return [dict(zip(cols, r)) for r in out]


def wait_rows(where: str, n: int = 1, timeout: float = 5) -> list[dict]:
    got = wait_until(lambda: len(rows(where)) >= n, timeout)
    found = rows(where)
    assert got and len(found) >= n, f"expected {n} audit rows WHERE {where}, found {found}"
    return found


def admin_console() -> Console:
    from pierlib import admin_creds
    con = Console(url_a())
    r = con.login(*admin_creds())
    assert r.status == 200, r.summary()
    return con


def test_who_deleted_tag_x_is_answered_by_the_table_pierctl_and_the_console():
    repo = unique_repo("audit-del")
    admin = client_a()
    push_image(admin, repo, "x1")
    push_image(admin, repo, "x2")
    with User("deleter1", policies={"d": policy(allow(DELETE_ACTIONS, repo))}) as u1, \
            User("deleter2", policies={"d": policy(allow(DELETE_ACTIONS, repo))}) as u2:
        policy_settle()
        out = ecr_client(creds=u1.creds).batch_delete_image(repositoryName=repo,
                                                           imageIds=[{"imageTag": "x1"}])
        assert out["imageIds"] and out["failures"] == [], out
        rid1 = out["ResponseMetadata"]["HTTPHeaders"].get("x-request-id")
        r = Client(url_b(), auth=None).delete(f"/v2/{repo}/manifests/x2", headers=basic(*u2.creds))
        assert r.status == 202, r.summary()
        rid2 = r.header("X-Request-Id")
        assert rid1 and rid2, "no X-Request-Id on the answers"

        # The table.
        by_api = wait_rows(f"repository = {sql_str(repo)} AND action = 'ecr:BatchDeleteImage'")
        assert [(e["principal"], e["access_key_id"], e["target"], e["result"], e["request_id"])
                for e in by_api] == [(u1.arn, u1.key_id, "x1", "success", rid1)], by_api
        assert by_api[0]["resource"].endswith(f":repository/{repo}"), by_api
        assert by_api[0]["source_address"] == "127.0.0.1", by_api
        by_oci = wait_rows(f"repository = {sql_str(repo)} AND action = 'registry:DeleteManifest'")
        assert [(e["principal"], e["access_key_id"], e["target"], e["result"], e["request_id"])
                for e in by_oci] == [(u2.arn, u2.key_id, "x2", "success", rid2)], by_oci

        # pierctl audit, with each filter.
        evs = ctl_audit("--repository", repo, "--action", "ecr:BatchDeleteImage")
        assert [(e["principal"], e["target"]) for e in evs] == [(u1.arn, "x1")], evs
        evs = ctl_audit("--principal", u2.name, "--since", "1h")
        assert [(e["action"], e["repository"], e["target"]) for e in evs] == \
            [("registry:DeleteManifest", repo, "x2")], evs
        evs = ctl_audit("--repository", repo, "--limit", "1")
        assert len(evs) == 1 and evs[0]["target"] == "x2", f"newest first, one: {evs}"
        assert ctl_audit("--repository", repo, "--since", "2999-01-01") == []
        assert pierctl("audit", "--since", "yesterday-ish").returncode == 2

        # The console's activity endpoint, for an administrator only.
        con = admin_console()
        r = con.call("GET", f"activity?repository={repo}&action=ecr:*")
        assert r.status == 200, r.summary()
        assert [(e["principal"], e["action"], e["target"]) for e in r.json()["events"]] == \
            [(u1.arn, "ecr:BatchDeleteImage", "x1")], r.json()
        r = con.call("GET", f"activity?principal={u2.arn}")
        assert [(e["action"], e["target"]) for e in r.json()["events"]] == \
            [("registry:DeleteManifest", "x2")], r.json()
        plain = Console(url_a())
        assert plain.login(*u1.creds).status == 200
        r = plain.call("GET", f"activity?repository={repo}")
        assert r.status == 403 and error_type(r) == "AccessDeniedException", r.summary()


def test_a_denied_call_is_recorded_with_the_principal_and_the_result():
    repo = unique_repo("audit-deny")
    push_image(client_a(), repo, "v1")
    with User("denied", policies={"pull": policy(allow(["ecr:BatchGetImage"], repo))}) as u:
        policy_settle()
        try:
            ecr_client(creds=u.creds).batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
            raise AssertionError("BatchDeleteImage was allowed")
        except Exception as exc:  # botocore ClientError
            assert "AccessDenied" in str(exc), exc
        r = Client(url_a(), auth=None).delete(f"/v2/{repo}/manifests/v1", headers=basic(*u.creds))
        assert r.status == 403, r.summary()
        api = wait_rows(f"principal = {sql_str(u.arn)} AND action = 'ecr:BatchDeleteImage' "
                        "AND result <> 'success'", 2)
        results = sorted(e["result"] for e in api)
        assert results == ["AccessDeniedException", "DENIED"], api
        assert all(e["repository"] == repo and e["access_key_id"] == u.key_id for e in api), api
        assert all(e["target"] == "v1" for e in api), api
        # A refused Basic login: recorded with the key id claimed, never the secret.
        wrong = "Wr0ng" + uuid.uuid4().hex
        remember(wrong)
        r = Client(url_a(), auth=None).get(f"/v2/{repo}/manifests/v1", headers=basic(u.key_id, wrong))
        assert r.status == 401, r.summary()
        bad = wait_rows(f"principal = {sql_str(u.key_id)} AND action = 'registry:SignIn'")
        assert bad[-1]["result"] == "UNAUTHORIZED" and bad[-1]["repository"] == repo, bad


def test_console_sign_in_and_a_failed_one_are_recorded():
    with User("signin") as u:
        con = Console(url_a())
        r = con.login(*u.creds)
        assert r.status == 200, r.summary()
        ok = wait_rows(f"action = 'console:SignIn' AND principal = {sql_str(u.arn)}")
        assert ok[-1]["result"] == "success" and ok[-1]["access_key_id"] == u.key_id, ok
        assert ok[-1]["request_id"] == r.header("X-Request-Id"), (ok, r.header("X-Request-Id"))
        wrong = "N0tIt" + uuid.uuid4().hex
        remember(wrong)
        r = Console(url_a()).login(u.key_id, wrong)
        assert r.status in (400, 401, 403), r.summary()
        bad = wait_rows(f"action = 'console:SignIn' AND access_key_id = {sql_str(u.key_id)} "
                        "AND result <> 'success'")
        assert bad[-1]["result"] == "UnrecognizedClientException" and bad[-1]["principal"] == "unknown", bad


def test_a_pull_through_import_is_recorded():
    with DockerRegistry() as up, TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "1.0", layer_sizes=(2048, 4096))
        up.push_layout(src, "1.0", "library/audited")
        with CacheRule(up.url) as rule:
            repo = rule.repo("library/audited")
            pull_http(client_a(), repo, "1.0", image, expect_state="miss")
            imports = wait_rows(f"repository = {sql_str(repo)} AND action = 'cache:Import'", 1 + len(image.layers) + 1)
            admin_arn = user_arn("admin")  # the first administrator, whose key client_a() uses
            assert {e["principal"] for e in imports} == {admin_arn}, imports
            targets = {e["target"] for e in imports}
            assert f"1.0@{image.digest}" in targets, targets
            for layer in image.layers:
                assert layer.digest in targets, (layer.digest, targets)
            # A second pull is a hit: no import, and pulls are not recorded.
            before = len(rows(f"repository = {sql_str(repo)}"))
            pull_http(client_a(), repo, "1.0", image, expect_state="hit")
            assert len(rows(f"repository = {sql_str(repo)}")) == before


def test_a_policy_change_is_recorded_without_the_policy_text():
    repo = unique_repo("audit-pol")
    push_image(client_a(), repo, "v1")
    marker = "Sid" + uuid.uuid4().hex[:12]
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": marker, "Effect": "Allow", "Principal": "*", "Action": ["ecr:BatchGetImage"]}]})
    out = ecr_client().set_repository_policy(repositoryName=repo, policyText=doc)
    rid = out["ResponseMetadata"]["HTTPHeaders"]["x-request-id"]
    ev = wait_rows(f"repository = {sql_str(repo)} AND action = 'ecr:SetRepositoryPolicy'")
    assert ev[-1]["result"] == "success" and ev[-1]["request_id"] == rid, ev
    ecr_client().delete_repository_policy(repositoryName=repo)
    ev = wait_rows(f"repository = {sql_str(repo)} AND action LIKE 'ecr:%RepositoryPolicy'", 2)
    assert [e["action"] for e in ev] == ["ecr:SetRepositoryPolicy", "ecr:DeleteRepositoryPolicy"], ev
    assert ev[-1]["resource"].startswith("arn:aws:ecr:") and ev[-1]["result"] == "success", ev
    # The same change made with pierctl: by the local account that ran it.
    p = pierctl("policy", "repository", "put", repo, "-", input=doc)
    assert p.returncode == 0, p.stderr
    ev = wait_rows(f"repository = {sql_str(repo)} AND action = 'pierctl:SetRepositoryPolicy'")
    assert ev[-1]["principal"].startswith("local:") and ev[-1]["request_id"] == "", ev
    assert pierctl("policy", "repository", "delete", repo).returncode == 0
    n = psql_value(f"SELECT count(*) FROM audit_events WHERE position({sql_str(marker)} IN "
                   "audit_events::text) > 0")
    assert n == "0", "a policy's text reached the audit trail"


def test_the_request_id_is_the_x_request_id_header():
    r = client_a().get("/v2/")
    rid = r.header("X-Request-Id")
    assert rid and len(rid) >= 16, r.summary()
    r2 = client_a().get("/v2/")
    assert r2.header("X-Request-Id") and r2.header("X-Request-Id") != rid, "request ids repeat"
    # Errors carry one too, on every endpoint.
    r = Client(url_a(), auth=None).get("/v2/nope/manifests/x")
    assert r.header("X-Request-Id"), r.summary()
    ecr = ecr_client()
    out = ecr.describe_registry()
    rid = out["ResponseMetadata"]["HTTPHeaders"]["x-request-id"]
    ev = wait_rows(f"request_id = {sql_str(rid)}")
    assert [e["action"] for e in ev] == ["ecr:DescribeRegistry"], ev


def test_json_lines_parse_and_match_the_table():
    repo = unique_repo("audit-lines")
    push_image(client_a(), repo, "v1")
    ecr_client().batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    ecr_client(base_url=url_b()).describe_repositories(repositoryNames=[repo])
    wait_rows(f"repository = {sql_str(repo)}", 2)
    table = ctl_audit("--repository", repo)
    lines = [e for e in audit_lines() if e.get("repository") == repo]
    key = lambda e: (e["time"], e["requestId"], e["action"])  # noqa: E731
    assert sorted(lines, key=key) == sorted(table, key=key), (lines, table)
    assert {e["action"] for e in lines} == {"ecr:BatchDeleteImage", "ecr:DescribeRepositories"}, lines
    fields = {"time", "requestId", "principal", "accessKeyId", "sourceAddress", "action",
              "repository", "resource", "target", "result"}
    for ev in audit_lines():
        assert set(ev) == fields, ev


def test_retention_prunes_old_rows():
    repo = unique_repo("audit-ret")
    push_image(client_a(), repo, "v1")
    ecr_client().describe_images(repositoryName=repo)
    ecr_client().list_images(repositoryName=repo)
    wait_rows(f"repository = {sql_str(repo)}", 2)
    psql(f"UPDATE audit_events SET created_at = now() - interval '91 days' "
         f"WHERE repository = {sql_str(repo)} AND action = 'ecr:DescribeImages'")
    p = pierctl("cleanup")
    assert p.returncode == 0, p.stderr
    left = [e["action"] for e in rows(f"repository = {sql_str(repo)}")]
    assert left == ["ecr:ListImages"], f"after cleanup with 90 days' retention: {left}"


def test_a_lifecycle_expiry_is_recorded_as_the_system():
    repo = unique_repo("audit-lc")
    old = push_image(client_a(), repo, "old")
    new = push_image(client_a(), repo, "new")
    keep_one = json.dumps({"rules": [{
        "rulePriority": 1, "description": "keep only the newest image of this test repository",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]})
    ecr_client().put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=keep_one)
    p = pierctl("lifecycle", "run", repo, timeout=120)
    assert p.returncode == 0, p.stderr
    ev = wait_rows(f"repository = {sql_str(repo)} AND action = 'lifecycle:ExpireImage'")
    assert [(e["principal"], e["result"]) for e in ev] == [("system", "success")], ev
    # Both were pushed within the same second or so: either may be the one that went.
    tag_of = {old.digest: "old", new.digest: "new"}
    gone = ev[0]["target"].split(" ")[0]
    assert gone in tag_of and f"tags {tag_of[gone]}" in ev[0]["target"], ev
    left = {i["imageDigest"] for i in ecr_client().list_images(repositoryName=repo)["imageIds"]}
    assert left == set(tag_of) - {gone}, (left, ev)


def test_the_audit_log_is_reopened_after_rotation_and_sighup():
    import signal
    from pierlib import master_pid
    path = os.path.join(env("PIER_STATE_DIR"), "log", "audit.log")
    rotated = path + ".1"
    os.rename(path, rotated)
    try:
        os.kill(master_pid(), signal.SIGHUP)
        repo = unique_repo("audit-rot")
        push_image(client_a(), repo, "v1")

        def answered():
            ecr_client().describe_images(repositoryName=repo)
            return os.path.exists(path) and repo in open(path, encoding="utf-8").read()
        assert wait_until(answered, 15, interval=0.5), "no new audit.log after SIGHUP"
        line = [json.loads(x) for x in open(path, encoding="utf-8") if repo in x][0]
        assert line["action"] == "ecr:DescribeImages", line
    finally:
        # Keep the earlier lines for the secrets check below.
        with open(rotated, encoding="utf-8") as f:
            earlier = f.read()
        os.unlink(rotated)
        with open(path, "a", encoding="utf-8") as f:
            f.write(earlier)


def test_no_secret_appears_in_the_audit_trail():
    """After the tests above and a round of its own: Secrets Manager values,
    secret keys, login passwords, tokens and wrong passwords are in neither
    the JSON lines of either node nor the table."""
    value = "S3cretV4lue-" + uuid.uuid4().hex
    remember(value)
    sm = secrets_client()
    name = "audit-" + uuid.uuid4().hex[:8]
    sm.create_secret(Name=name, SecretString=value)
    sm.put_secret_value(SecretId=name, SecretString=value + "2")
    remember(value + "2")
    sm.delete_secret(SecretId=name)
    with User("secretive") as u:
        pw = u.login_password()
        r = Client(url_a(), auth=None).get("/v2/", headers=basic("AWS", pw))
        assert r.status == 200, r.summary()
        Console(url_a()).login(u.key_id, u.secret)
        from authlib import get_token
        tok = get_token(url_a(), [], u.creds).json()["token"]
        remember(tok)
        wait_rows(f"principal = {sql_str(u.arn)} AND action = 'registry:GetToken'")
    wait_rows(f"action = 'secretsmanager:DeleteSecret' AND resource = {sql_str(name)}")
    dump = "\n".join("|".join(r) for r in psql("SELECT audit_events::text FROM audit_events"))
    texts = dict(audit_files(), table=dump)
    assert value in SECRETS and pw in SECRETS and tok in SECRETS and u.secret in SECRETS
    leaks = [f"{where}: {s[:10]}..." for s in SECRETS if len(s) >= 8
             for where, text in texts.items() if s in text]
    assert not leaks, f"secrets in the audit trail: {leaks}"
    # No header value (the action ecr:GetAuthorizationToken is not one).
    for text in texts.values():
        found = re.search(r"Authorization\s*[:=]|Basic [A-Za-z0-9+/=]{8}|Bearer [A-Za-z0-9._-]{8}", text)
        assert not found, f"a credential header in the audit trail: {found.group(0)!r}"


def _max_id() -> int:
    return int(psql_value("SELECT coalesce(max(id), 0) FROM audit_events"))


def test_a_garbage_collection_sweep_is_recorded_as_the_system_with_what_it_removed():
    """A sweep that removes blobs leaves one gc:DeleteBlobs event (principal system) whose
    target is the sweep's own summary; a dry run and a sweep with nothing to do leave none."""
    from test_gc import gc
    repo = unique_repo("audit-gc")
    push_image(client_a(), repo, "v1")
    ecr_client().delete_repository(repositoryName=repo, force=True)
    gc("--grace", "0", "--duty", "100")   # this sweep or a node's removes the image's blobs
    mark = _max_id()
    push_image(client_a(), repo, "v2")
    ecr_client().delete_repository(repositoryName=repo, force=True)
    dry = gc("--grace", "0", "--dry-run")
    assert dry.blobs >= 1, f"the dry run sees nothing to remove: {dry}"
    assert not rows(f"id > {mark} AND action = 'gc:DeleteBlobs'"), "a dry run was recorded"
    s = gc("--grace", "0", "--duty", "100")
    evs = rows(f"id > {mark} AND action = 'gc:DeleteBlobs'")
    # A node's maintenance may sweep in between: then it removed them, recorded the same way.
    assert evs, f"no gc:DeleteBlobs event after a sweep that removed {s}"
    assert all(e["principal"] == "system" and e["result"] == "success" and e["access_key_id"] == ""
               for e in evs), evs
    if s.blobs:
        assert f"{s.blobs} blobs, {s.bytes} bytes, {s.links} links" in [e["target"] for e in evs], (s, evs)
    # Nothing left to remove (the suite runs one test at a time): nothing recorded.
    mark = _max_id()
    again = gc("--grace", "0", "--duty", "100")
    assert again.removed() == (0, 0, 0) and not again.finished, again
    assert not rows(f"id > {mark} AND action = 'gc:DeleteBlobs'"), "a sweep that removed nothing was recorded"


def test_pierctl_login_password_is_recorded_without_the_password():
    with User("audit-lp", {"read": policy(allow(["ecr:DescribeRepositories"]))}) as u:
        mark = _max_id()
        p = pierctl("login-password", u.name, "--hours", "2")
        assert p.returncode == 0, p.stderr
        password = p.stdout.strip()
        assert len(password) > 20, p.stdout
        evs = rows(f"id > {mark} AND action = 'pierctl:CreateLoginPassword'")
        assert [(e["resource"], e["target"], e["result"]) for e in evs] == [(u.arn, "valid 2 hours", "success")], evs
        assert evs[0]["principal"].startswith("local:"), evs
        dump = "\n".join(r[0] for r in psql(f"SELECT row_to_json(a)::text FROM audit_events a WHERE id > {mark}"))
        lines = "\n".join(audit_files().values())
        for secret in (password, password[:32], password[-32:]):
            assert secret not in dump and secret not in lines, "the login password is in the audit trail"
