"""The console's people operations (/console/api/iam/<Op>): users, access keys,
identity policies and login passwords, run for the session's principal with IAM
actions. An administrator can do each; a principal without the permission is
refused and nothing changes; a key's secret is answered once, by the call that
made it; every change and refusal is in the audit trail without a secret; a key
made in the console works with skopeo and the aws CLI, and stops working when it
is deactivated; nobody can delete or deactivate their own last key."""

import json
import uuid

from pierlib import (
    RUN_ID, Client, admin_creds, aws_cli, aws_cli_error, client_a, psql, push_image, skopeo, sql_str,
    unique_repo, url_a, url_b, wait_until,
)
from authlib import PULL_ACTIONS, User, allow, policy, policy_settle, remember, user_arn
from test_console_api import Console, error_type

IAM_OPS = ["ListUsers", "CreateUser", "DeleteUser", "CreateAccessKey", "UpdateAccessKey",
           "DeleteAccessKey", "ListUserPolicies", "GetUserPolicy", "PutUserPolicy",
           "DeleteUserPolicy", "CreateLoginPassword"]


def admin_console(base=None) -> Console:
    con = Console(base or url_a())
    r = con.login(*admin_creds())
    assert r.status == 200, r.summary()
    return con


def iam(con: Console, op: str, doc: dict | None = None):
    return con.call("POST", f"iam/{op}", doc or {})


def ok(r) -> dict:
    assert r.status == 200, r.summary()
    return r.json()


def new_name(label: str) -> str:
    return f"{label}-{RUN_ID}-{uuid.uuid4().hex[:6]}"


def listed(con: Console, name: str) -> dict | None:
    users = ok(iam(con, "ListUsers"))["Users"]
    return next((u for u in users if u["name"] == name), None)


def audit_rows(where: str) -> list[dict]:
    cols = ["principal", "access_key_id", "action", "resource", "target", "result"]
    out = psql(f"SELECT {', '.join(cols)} FROM audit_events WHERE {where} ORDER BY id")
    return [dict(zip(cols, r)) for r in out]


def all_audit_text() -> str:
    return "\n".join("|".join(r) for r in psql("SELECT principal, access_key_id, action, repository, "
                                                "resource, target, result FROM audit_events"))


def host() -> str:
    return url_a().split("://", 1)[1]


def skopeo_inspect(repo: str, creds: tuple[str, str]):
    return skopeo("inspect", "--raw", f"--creds={creds[0]}:{creds[1]}",
                  f"docker://{host()}/{repo}:v1", check=False, timeout=120)


def test_console_people_admin_creates_a_user_key_and_policy_that_work_with_skopeo_and_aws():
    repo = unique_repo("people")
    push_image(client_a(), repo, "v1")
    con = admin_console()
    name = new_name("ppl")
    arn = user_arn(name)
    try:
        u = ok(iam(con, "CreateUser", {"UserName": name}))["User"]
        assert u == {"UserName": name, "Arn": arn, "Role": False}, u
        r = iam(con, "CreateUser", {"UserName": name})
        assert r.status == 400 and error_type(r) == "EntityAlreadyExistsException", r.summary()
        r = iam(con, "CreateUser", {"UserName": "bad/name"})
        assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()
        entry = listed(con, name)
        assert entry and entry["arn"] == arn and entry["accessKeys"] == [] and not entry["you"], entry

        # The secret comes once, from CreateAccessKey; nothing else ever answers it.
        key = ok(iam(con, "CreateAccessKey", {"UserName": name}))["AccessKey"]
        kid, secret = key["AccessKeyId"], key["SecretAccessKey"]
        remember(secret)
        assert kid.startswith("PIER") and len(secret) == 40 and key["Status"] == "Active", key
        r = iam(con, "ListUsers")
        assert secret not in r.body.decode(), "ListUsers answered a key's secret"
        entry = listed(con, name)
        assert [(k["accessKeyId"], k["active"]) for k in entry["accessKeys"]] == [(kid, True)], entry
        assert "SecretAccessKey" not in json.dumps(entry) and "secret" not in json.dumps(entry).lower()

        # An identity policy from the console; GetUserPolicy answers it as stored.
        doc = policy(allow(PULL_ACTIONS + ["ecr:DescribeRepositories"], "*"))
        ok(iam(con, "PutUserPolicy", {"UserName": name, "PolicyName": "pull", "PolicyDocument": doc}))
        got = ok(iam(con, "GetUserPolicy", {"UserName": name, "PolicyName": "pull"}))
        assert got["PolicyDocument"] == doc and got["PolicyName"] == "pull", got
        assert ok(iam(con, "ListUserPolicies", {"UserName": name}))["PolicyNames"] == ["pull"]
        assert listed(con, name)["policies"] == ["pull"]
        bad = policy(allow(["ecr:BatchGetImage"], "*")).replace('"Effect"', '"Efect"')
        r = iam(con, "PutUserPolicy", {"UserName": name, "PolicyName": "bad", "PolicyDocument": bad})
        assert r.status == 400 and "Statement[0]" in r.json()["error"]["message"], r.summary()
        policy_settle()

        # The new key works with skopeo and the aws CLI ...
        p = skopeo_inspect(repo, (kid, secret))
        assert p.returncode == 0 and b"schemaVersion" in p.stdout, p.stderr
        out = json.loads(aws_cli("ecr", "describe-repositories", "--repository-names", repo,
                                 creds=(kid, secret)).stdout)
        assert out["repositories"][0]["repositoryName"] == repo, out

        # ... and not once it is deactivated; again when it is active.
        ok(iam(con, "UpdateAccessKey", {"UserName": name, "AccessKeyId": kid, "Status": "Inactive"}))
        assert listed(con, name)["accessKeys"][0]["active"] is False
        policy_settle()
        p = skopeo_inspect(repo, (kid, secret))
        assert p.returncode != 0, "skopeo pulled with a deactivated key"
        p = aws_cli("ecr", "describe-repositories", "--repository-names", repo, creds=(kid, secret),
                    check=False)
        code, _ = aws_cli_error(p)
        assert code == "UnrecognizedClientException", code
        r = Client(url_b(), auth=(kid, secret)).get(f"/v2/{repo}/manifests/v1")
        assert r.status == 401, r.summary()
        ok(iam(con, "UpdateAccessKey", {"UserName": name, "AccessKeyId": kid, "Status": "Active"}))
        policy_settle()
        assert skopeo_inspect(repo, (kid, secret)).returncode == 0
        r = iam(con, "UpdateAccessKey", {"AccessKeyId": kid, "Status": "Paused"})
        assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()
        r = iam(con, "UpdateAccessKey", {"UserName": "someone-else", "AccessKeyId": kid, "Status": "Inactive"})
        assert r.status == 400 and error_type(r) == "NoSuchEntityException", r.summary()

        # Detach the policy: the key authenticates but may not pull.
        ok(iam(con, "DeleteUserPolicy", {"UserName": name, "PolicyName": "pull"}))
        r = iam(con, "GetUserPolicy", {"UserName": name, "PolicyName": "pull"})
        assert r.status == 400 and error_type(r) == "NoSuchEntityException", r.summary()
        policy_settle()
        r = Client(url_a(), auth=(kid, secret)).get(f"/v2/{repo}/manifests/v1")
        assert r.status == 403, r.summary()

        # Delete the key, then the user.
        ok(iam(con, "DeleteAccessKey", {"UserName": name, "AccessKeyId": kid}))
        assert listed(con, name)["accessKeys"] == []
        r = iam(con, "DeleteAccessKey", {"UserName": name, "AccessKeyId": kid})
        assert r.status == 400 and error_type(r) == "NoSuchEntityException", r.summary()
        # Without UserName the key is looked for among the caller's own.
        r = iam(con, "DeleteAccessKey", {"AccessKeyId": kid})
        assert r.status == 400 and error_type(r) == "NoSuchEntityException", r.summary()
        ok(iam(con, "DeleteUser", {"UserName": name}))
        assert listed(con, name) is None
        r = iam(con, "DeleteUser", {"UserName": name})
        assert r.status == 400 and error_type(r) == "NoSuchEntityException", r.summary()
    finally:
        iam(con, "DeleteUser", {"UserName": name})


def test_console_people_every_operation_is_refused_without_its_permission():
    """A signed-in user without IAM permissions is refused each operation with 403 and
    the action named; one allowed only iam:ListUsers and iam:CreateAccessKey on one
    user can do exactly that."""
    con = admin_console()
    target = new_name("ppl-t")
    ok(iam(con, "CreateUser", {"UserName": target}))
    tkey = ok(iam(con, "CreateAccessKey", {"UserName": target}))["AccessKey"]
    remember(tkey["SecretAccessKey"])
    doc = policy(allow(["ecr:DescribeRepositories"]))
    ok(iam(con, "PutUserPolicy", {"UserName": target, "PolicyName": "p", "PolicyDocument": doc}))
    try:
        with User("ppl-none", policies={"read": policy(allow(["ecr:DescribeRepositories"]))}) as u:
            policy_settle()
            c = Console(url_b())
            assert c.login(*u.creds).status == 200
            calls = {
                "ListUsers": ({}, "iam:ListUsers"),
                "CreateUser": ({"UserName": new_name("ppl-x")}, "iam:CreateUser"),
                "DeleteUser": ({"UserName": target}, "iam:DeleteUser"),
                "CreateAccessKey": ({"UserName": target}, "iam:CreateAccessKey"),
                "UpdateAccessKey": ({"AccessKeyId": tkey["AccessKeyId"], "Status": "Inactive"},
                                    "iam:UpdateAccessKey"),
                "DeleteAccessKey": ({"AccessKeyId": tkey["AccessKeyId"]}, "iam:DeleteAccessKey"),
                "ListUserPolicies": ({"UserName": target}, "iam:ListUserPolicies"),
                "GetUserPolicy": ({"UserName": target, "PolicyName": "p"}, "iam:GetUserPolicy"),
                "PutUserPolicy": ({"UserName": target, "PolicyName": "p", "PolicyDocument": policy(
                    allow(["ecr:*"]))}, "iam:PutUserPolicy"),
                "DeleteUserPolicy": ({"UserName": target, "PolicyName": "p"}, "iam:DeleteUserPolicy"),
                "CreateLoginPassword": ({"UserName": target}, "iam:CreateLoginPassword"),
            }
            assert sorted(calls) == sorted(IAM_OPS)
            for op, (doc_in, action) in calls.items():
                r = iam(c, op, doc_in)
                assert r.status == 403 and error_type(r) == "AccessDeniedException", (op, r.summary())
                assert action in r.json()["error"]["message"], (op, r.json())
            # Nothing changed.
            entry = listed(con, target)
            assert entry and [(k["accessKeyId"], k["active"]) for k in entry["accessKeys"]] == \
                [(tkey["AccessKeyId"], True)] and entry["policies"] == ["p"], entry
            got = ok(iam(con, "GetUserPolicy", {"UserName": target, "PolicyName": "p"}))
            assert got["PolicyDocument"] == doc, got

            # Scoped: list everyone, make keys only for the target.
            u.put_policy("iam", policy(allow(["iam:ListUsers"]),
                                       allow(["iam:CreateAccessKey"], [user_arn(target)])))
            policy_settle()
            assert any(x["name"] == target for x in ok(iam(c, "ListUsers"))["Users"])
            k2 = ok(iam(c, "CreateAccessKey", {"UserName": target}))["AccessKey"]
            remember(k2["SecretAccessKey"])
            r = iam(c, "CreateAccessKey", {"UserName": u.name})
            assert r.status == 403 and "iam:CreateAccessKey" in r.json()["error"]["message"], r.summary()
            r = iam(c, "DeleteAccessKey", {"AccessKeyId": k2["AccessKeyId"]})
            assert r.status == 403, r.summary()
    finally:
        iam(con, "DeleteUser", {"UserName": target})


def test_console_people_refusals_tell_nothing_about_which_users_and_keys_exist():
    """Authorization comes before any lookup, as in IAM: a caller without the permission
    gets the same refusal for a real key and a made-up one, for a real user and a made-up
    one, and the refusal never names the owner of a key the caller did not name; a caller
    allowed key changes only on itself cannot touch another user's key by leaving out
    UserName (the caller is then the user, and the key is not theirs)."""
    con = admin_console()
    target = new_name("ppl-k")
    ok(iam(con, "CreateUser", {"UserName": target}))
    tkey = ok(iam(con, "CreateAccessKey", {"UserName": target}))["AccessKey"]
    remember(tkey["SecretAccessKey"])
    made_up = "AKIA" + uuid.uuid4().hex[:16].upper()
    try:
        with User("ppl-probe", policies={"read": policy(allow(["ecr:DescribeRepositories"]))}) as u:
            policy_settle()
            c = Console(url_b())
            assert c.login(*u.creds).status == 200
            for op in ("UpdateAccessKey", "DeleteAccessKey"):
                extra = {"Status": "Inactive"} if op == "UpdateAccessKey" else {}
                answers = []
                for key_id in (tkey["AccessKeyId"], made_up):
                    r = iam(c, op, dict(extra, AccessKeyId=key_id))
                    assert r.status == 403 and error_type(r) == "AccessDeniedException", (op, r.summary())
                    msg = r.json()["error"]["message"]
                    assert target not in msg, (op, msg)
                    answers.append(msg.replace(key_id, "KEY"))
                assert answers[0] == answers[1], (op, answers)
            # A user that exists and one that does not: the same refusal.
            for op, doc in (("GetUserPolicy", {"PolicyName": "p"}), ("DeleteUser", {}),
                            ("CreateLoginPassword", {})):
                answers = []
                for name in (target, target + "-nobody"):
                    r = iam(c, op, dict(doc, UserName=name))
                    assert r.status == 403 and error_type(r) == "AccessDeniedException", (op, r.summary())
                    answers.append(r.json()["error"]["message"].replace(name, "NAME"))
                assert answers[0] == answers[1], (op, answers)

            # Allowed key changes on itself only: another user's key without UserName is
            # not the caller's key.
            u.put_policy("self", policy(allow(["iam:UpdateAccessKey", "iam:DeleteAccessKey"],
                                              [user_arn(u.name)])))
            policy_settle()
            for op in ("UpdateAccessKey", "DeleteAccessKey"):
                extra = {"Status": "Inactive"} if op == "UpdateAccessKey" else {}
                for key_id in (tkey["AccessKeyId"], made_up):
                    r = iam(c, op, dict(extra, AccessKeyId=key_id))
                    assert r.status == 400 and error_type(r) == "NoSuchEntityException", (op, r.summary())
                    assert r.json()["error"]["message"] == f"{u.name} has no access key {key_id}", r.json()
                # Naming the owner is refused: the policy covers the caller only.
                r = iam(c, op, dict(extra, AccessKeyId=tkey["AccessKeyId"], UserName=target))
                assert r.status == 403 and error_type(r) == "AccessDeniedException", (op, r.summary())
            entry = listed(con, target)
            assert entry and [(k["accessKeyId"], k["active"]) for k in entry["accessKeys"]] == \
                [(tkey["AccessKeyId"], True)], entry
    finally:
        iam(con, "DeleteUser", {"UserName": target})


def test_console_people_changes_and_refusals_are_audited_without_secrets():
    con = admin_console()
    admin_arn = con.session["principal"]
    name = new_name("ppl-a")
    arn = user_arn(name)
    ok(iam(con, "CreateUser", {"UserName": name}))
    key = ok(iam(con, "CreateAccessKey", {"UserName": name}))["AccessKey"]
    secret = key["SecretAccessKey"]
    remember(secret)
    doc = policy(allow(["ecr:DescribeRepositories"], "*", sid="AuditMarkerSid"))
    ok(iam(con, "PutUserPolicy", {"UserName": name, "PolicyName": "audited", "PolicyDocument": doc}))
    ok(iam(con, "UpdateAccessKey", {"UserName": name, "AccessKeyId": key["AccessKeyId"], "Status": "Inactive"}))
    pw = ok(iam(con, "CreateLoginPassword", {"UserName": name, "Hours": 1}))["LoginPassword"]
    remember(pw["Password"])
    ok(iam(con, "DeleteAccessKey", {"UserName": name, "AccessKeyId": key["AccessKeyId"]}))
    with User("ppl-deny", policies={"r": policy(allow(["ecr:DescribeRepositories"]))}) as u:
        policy_settle()
        c = Console(url_a())
        assert c.login(*u.creds).status == 200
        assert iam(c, "DeleteUser", {"UserName": name}).status == 403
        ok(iam(con, "DeleteUser", {"UserName": name}))

        where = f"resource = {sql_str(arn)} AND action LIKE 'iam:%'"
        assert wait_until(lambda: len(audit_rows(where)) >= 8, 5), audit_rows(where)
        got = [(r["principal"], r["action"], r["target"], r["result"]) for r in audit_rows(where)]
        kid = key["AccessKeyId"]
        assert got == [
            (admin_arn, "iam:CreateUser", "", "success"),
            (admin_arn, "iam:CreateAccessKey", kid, "success"),
            (admin_arn, "iam:PutUserPolicy", "policy audited", "success"),
            (admin_arn, "iam:UpdateAccessKey", f"{kid} Inactive", "success"),
            (admin_arn, "iam:CreateLoginPassword", "", "success"),
            (admin_arn, "iam:DeleteAccessKey", kid, "success"),
            (u.arn, "iam:DeleteUser", "", "AccessDeniedException"),
            (admin_arn, "iam:DeleteUser", "", "success"),
        ], got
        text = all_audit_text()
        for s in (secret, pw["Password"], "AuditMarkerSid"):
            assert s not in text, f"the audit trail holds {s[:12]}…"

        # The activity view answers the same rows, filtered by action and principal.
        r = con.call("GET", f"activity?action=iam:*&principal={u.arn}")
        assert r.status == 200, r.summary()
        assert [(e["action"], e["resource"], e["result"]) for e in r.json()["events"]] == \
            [("iam:DeleteUser", arn, "AccessDeniedException")], r.json()


def test_console_people_nobody_locks_themselves_out():
    """An IAM administrator signed in with their only key cannot delete or deactivate
    it, nor delete themselves; with a second key, the first can go (and the session
    opened with it ends with it)."""
    with User("ppl-self", policies={"iam": policy(allow(["iam:*", "ecr:DescribeRepositories"]))}) as u:
        policy_settle()
        c = Console(url_a())
        assert c.login(*u.creds).status == 200
        me = next(x for x in ok(iam(c, "ListUsers"))["Users"] if x["name"] == u.name)
        assert me["you"] is True, me
        for op, doc in (("DeleteAccessKey", {"AccessKeyId": u.key_id}),
                        ("UpdateAccessKey", {"AccessKeyId": u.key_id, "Status": "Inactive"})):
            r = iam(c, op, doc)
            assert r.status == 400 and error_type(r) == "DeleteConflictException", r.summary()
            assert "lock you out" in r.json()["error"]["message"], r.json()
        r = iam(c, "DeleteUser", {"UserName": u.name})
        assert r.status == 400 and error_type(r) == "DeleteConflictException", r.summary()
        me = next(x for x in ok(iam(c, "ListUsers"))["Users"] if x["name"] == u.name)
        assert [(k["accessKeyId"], k["active"]) for k in me["accessKeys"]] == [(u.key_id, True)], me

        # A login password for oneself works with the registry's "AWS" login.
        pw = ok(iam(c, "CreateLoginPassword", {"UserName": u.name}))["LoginPassword"]
        remember(pw["Password"])
        assert pw["Username"] == "AWS" and pw["Password"].startswith("PIER1."), pw
        assert Client(url_a(), auth=("AWS", pw["Password"])).get("/v2/").status == 200

        k2 = ok(iam(c, "CreateAccessKey", {"UserName": u.name}))["AccessKey"]
        remember(k2["SecretAccessKey"])
        ok(iam(c, "DeleteAccessKey", {"AccessKeyId": u.key_id}))
        r = c.call("GET", "session")
        assert r.status == 401 and error_type(r) == "SessionExpired", r.summary()
        c2 = Console(url_a())
        assert c2.login(k2["AccessKeyId"], k2["SecretAccessKey"]).status == 200
        r = iam(c2, "DeleteAccessKey", {"AccessKeyId": k2["AccessKeyId"]})
        assert r.status == 400 and error_type(r) == "DeleteConflictException", r.summary()


def test_console_activity_pages_with_the_cursor():
    """The activity endpoint answers newest first; before=<cursor of the last event>
    answers the next older page, without repeating or skipping an event."""
    with User("ppl-page", policies={"p": policy(allow(["iam:ListUsers", "ecr:LookupAuditEvents"]))}) as u:
        policy_settle()
        c = Console(url_a())
        assert c.login(*u.creds).status == 200
        for _ in range(5):
            ok(iam(c, "ListUsers"))
        q = f"activity?principal={u.name}&action=iam:ListUsers"
        assert wait_until(lambda: len(ok(c.call("GET", q))["events"]) >= 5, 5)
        everything = ok(c.call("GET", q))["events"]
        assert len(everything) == 5, everything
        pages, before = [], ""
        for _ in range(4):
            evs = ok(c.call("GET", f"{q}&limit=2{'&before=' + before if before else ''}"))["events"]
            if not evs:
                break
            pages.append(evs)
            before = evs[-1]["cursor"]
        assert [len(p) for p in pages] == [2, 2, 1], [len(p) for p in pages]
        flat = [e for p in pages for e in p]
        assert [e["requestId"] for e in flat] == [e["requestId"] for e in everything], (flat, everything)
        assert len({e["requestId"] for e in flat}) == 5
        r = c.call("GET", f"{q}&before=yesterday")
        assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()
