"""Control plane, the account's settings: GetAccountSetting / PutAccountSetting
(which answer what Pier does) and the pull-time update exclusions
(Register/Deregister/ListPullTimeUpdateExclusions), honoured where pulls are
recorded. Answers are checked on the wire against the installed botocore
model, errors by exception name, with boto3 and the aws CLI v1 (v2.9.19's
model has none of these operations)."""

import datetime
import time

from pierlib import (
    ACCOUNT_ID, OCI_MANIFEST, aws_cli, aws_cli_error, aws_json, client_a, ecr_client,
    expect_api_error, iam_policy, iam_statement, psql_value, push_image, signed_api_request, sql_str,
    unique_repo, wait_until,
)
from authlib import PULL_ACTIONS, User, role_arn, user_arn
from ecrmodel import raw, raw_error
from pierlib import drop_repositories as drop


def forget_exclusion(*arns: str) -> None:
    for arn in arns:
        signed_api_request("DeregisterPullTimeUpdateExclusion", {"principalArn": arn})


def test_account_settings_answer_what_pier_does():
    ecr = ecr_client()
    for name, value in (("REGISTRY_POLICY_SCOPE", "V2"), ("BLOB_MOUNTING", "ENABLED")):
        assert raw("GetAccountSetting", {"name": name}) == {"name": name, "value": value}
        got = ecr.get_account_setting(name=name)
        assert (got["name"], got["value"]) == (name, value), got
        # Putting what Pier does is accepted (Terraform puts, then reads back).
        assert raw("PutAccountSetting", {"name": name, "value": value}) == {"name": name, "value": value}
        out = aws_json("ecr", "put-account-setting", "--name", name, "--value", value)
        assert out == {"name": name, "value": value}, out
        assert aws_json("ecr", "get-account-setting", "--name", name) == {"name": name, "value": value}
    # The other values ECR knows are refused, saying what Pier does instead.
    msg = expect_api_error("InvalidParameterException", ecr.put_account_setting,
                           name="REGISTRY_POLICY_SCOPE", value="V1")
    assert "V2" in msg and "every ECR action" in msg, msg
    msg = expect_api_error("InvalidParameterException", ecr.put_account_setting, name="BLOB_MOUNTING",
                           value="DISABLED")
    assert "mounts" in msg, msg
    msg = raw_error("PutAccountSetting", {"name": "BLOB_MOUNTING", "value": "SOMETIMES"},
                    "InvalidParameterException")
    assert "ENABLED or DISABLED" in msg, msg
    # The scan type needs a scanner.
    for call, kw in ((ecr.get_account_setting, {}), (ecr.put_account_setting, {"value": "AWS_NATIVE"})):
        msg = expect_api_error("ValidationException", call, name="BASIC_SCAN_TYPE_VERSION", **kw)
        assert "not supported by Pier" in msg and "scanning engine" in msg, msg
    p = aws_cli("ecr", "get-account-setting", "--name", "BASIC_SCAN_TYPE_VERSION", check=False)
    code, msg = aws_cli_error(p)
    assert code == "ValidationException" and "scanning engine" in msg, (code, msg)
    msg = raw_error("GetAccountSetting", {"name": "NO_SUCH_SETTING"}, "InvalidParameterException")
    assert "REGISTRY_POLICY_SCOPE" in msg, msg
    raw_error("GetAccountSetting", {}, "InvalidParameterException")
    # Reading and changing settings are registry-wide actions like any other.
    with User("acct-none") as u:
        expect_api_error("AccessDeniedException", ecr_client(u.creds).get_account_setting,
                         name="REGISTRY_POLICY_SCOPE")
        expect_api_error("AccessDeniedException", ecr_client(u.creds).put_account_setting,
                         name="REGISTRY_POLICY_SCOPE", value="V2")
    with User("acct-get", {"get": iam_policy(iam_statement("ecr:GetAccountSetting", "*"))}) as u:
        assert ecr_client(u.creds).get_account_setting(name="BLOB_MOUNTING")["value"] == "ENABLED"
        expect_api_error("AccessDeniedException", ecr_client(u.creds).put_account_setting,
                         name="BLOB_MOUNTING", value="ENABLED")


def test_pull_time_update_exclusions_register_list_deregister():
    ecr = ecr_client()
    stamp = f"{int(time.time())}{time.monotonic_ns() % 100000}"
    user, role = user_arn(f"scanner-{stamp}"), role_arn(f"ci/builder-{stamp}")
    try:
        t0 = datetime.datetime.now(datetime.timezone.utc)
        out = raw("RegisterPullTimeUpdateExclusion", {"principalArn": user})
        assert out["principalArn"] == user and isinstance(out["createdAt"], (int, float)), out
        assert abs(out["createdAt"] - t0.timestamp()) < 120, out
        got = ecr.register_pull_time_update_exclusion(principalArn=role)
        assert got["principalArn"] == role and isinstance(got["createdAt"], datetime.datetime), got
        msg = expect_api_error("ExclusionAlreadyExistsException", ecr.register_pull_time_update_exclusion,
                               principalArn=user)
        assert user in msg, msg
        listed = raw("ListPullTimeUpdateExclusions", {})
        assert {user, role} <= set(listed["pullTimeUpdateExclusions"]), listed
        # Pages of one, in a stable order, until nextToken runs out.
        seen, token = [], None
        for _ in range(200):
            body = {"maxResults": 1} | ({"nextToken": token} if token else {})
            page = raw("ListPullTimeUpdateExclusions", body)
            assert len(page["pullTimeUpdateExclusions"]) <= 1, page
            seen += page["pullTimeUpdateExclusions"]
            token = page.get("nextToken")
            if not token:
                break
        assert seen == listed["pullTimeUpdateExclusions"], (seen, listed)
        cli = aws_json("ecr", "list-pull-time-update-exclusions")
        assert {user, role} <= set(cli["pullTimeUpdateExclusions"]), cli
        out = raw("DeregisterPullTimeUpdateExclusion", {"principalArn": user})
        assert out == {"principalArn": user}, out
        msg = expect_api_error("ExclusionNotFoundException", ecr.deregister_pull_time_update_exclusion,
                               principalArn=user)
        assert user in msg, msg
        assert user not in ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]
        # The aws CLI v1 registers and deregisters too.
        out = aws_json("ecr", "register-pull-time-update-exclusion", "--principal-arn", user)
        assert out["principalArn"] == user, out
        code, msg = aws_cli_error(aws_cli("ecr", "register-pull-time-update-exclusion", "--principal-arn",
                                          user, check=False))
        assert code == "ExclusionAlreadyExistsException", (code, msg)
        assert aws_json("ecr", "deregister-pull-time-update-exclusion", "--principal-arn", user) == \
            {"principalArn": user}
        # Only IAM user and role ARNs (the model's pattern).
        for bad in ("alice", f"arn:aws:iam::{ACCOUNT_ID}:group/devs", "arn:aws:iam::123:user/x",
                    f"arn:aws:iam::{ACCOUNT_ID}:user/", f"arn:aws:iam::{ACCOUNT_ID}:user/a//b",
                    f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/r/s"):
            raw_error("RegisterPullTimeUpdateExclusion", {"principalArn": bad}, "InvalidParameterException")
        raw_error("RegisterPullTimeUpdateExclusion", {}, "InvalidParameterException")
        raw_error("ListPullTimeUpdateExclusions", {"maxResults": 0}, "InvalidParameterException")
        raw_error("ListPullTimeUpdateExclusions", {"nextToken": "garbage"}, "InvalidParameterException")
        with User("excl-none") as u:
            for op, body in (("RegisterPullTimeUpdateExclusion", {"principalArn": user}),
                             ("DeregisterPullTimeUpdateExclusion", {"principalArn": role}),
                             ("ListPullTimeUpdateExclusions", {})):
                raw_error(op, body, "AccessDeniedException", creds=u.creds)
        assert role in ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"], \
            "a refused deregistration removed the exclusion"
    finally:
        forget_exclusion(user, role)


def test_pull_time_update_exclusion_limit():
    stamp = f"{int(time.time())}{time.monotonic_ns() % 100000}"
    have = int(psql_value("SELECT count(*) FROM pull_time_exclusions"))
    mine = [user_arn(f"lim-{stamp}-{i}") for i in range(100 - have)]
    try:
        for arn in mine:
            raw("RegisterPullTimeUpdateExclusion", {"principalArn": arn})
        msg = raw_error("RegisterPullTimeUpdateExclusion", {"principalArn": user_arn(f"lim-{stamp}-over")},
                        "LimitExceededException")
        assert "100" in msg, msg
        # maxResults beyond the page size of the model: pages of at most 100.
        page = raw("ListPullTimeUpdateExclusions", {"maxResults": 1000})
        assert len(page["pullTimeUpdateExclusions"]) == 100 and "nextToken" not in page, len(page)
    finally:
        forget_exclusion(*mine)


def _last_pull(repo: str, digest: str):
    d = ecr_client().describe_images(repositoryName=repo, imageIds=[{"imageDigest": digest}])["imageDetails"][0]
    return d.get("lastRecordedPullTime")


def _pulls(repo: str) -> int:
    return int(psql_value(f"SELECT pulls FROM repositories WHERE name = {sql_str(repo)}") or 0)


def test_excluded_principal_pulls_leave_last_recorded_pull_time():
    """A scanner's pulls are counted but do not make an image look used; another caller's do."""
    repo = unique_repo("pulltimex")
    img = push_image(client_a(), repo, "v1")
    accept = {"Accept": OCI_MANIFEST}
    pull = iam_policy(iam_statement(PULL_ACTIONS, "*"))
    try:
        with User("scanner", {"pull": pull}) as scanner, User("deployer", {"pull": pull}) as deployer:
            ecr_client().register_pull_time_update_exclusion(principalArn=scanner.arn)
            try:
                r = scanner.client().get(f"/v2/{repo}/manifests/v1", headers=accept)
                assert r.status == 200, r.summary()
                # The pull is recorded (the counter) at the worker's next flush ...
                assert wait_until(lambda: _pulls(repo) >= 1, 20, 0.3), "the scanner's pull was never counted"
                # ... without a pull time.
                assert _last_pull(repo, img.digest) is None, "an excluded principal's pull set lastRecordedPullTime"
                # A principal that is not excluded sets it.
                t0 = datetime.datetime.now(datetime.timezone.utc)
                r = deployer.client().get(f"/v2/{repo}/manifests/v1", headers=accept)
                assert r.status == 200, r.summary()
                ts = wait_until(lambda: _last_pull(repo, img.digest), 20, 0.3)
                assert ts and ts >= t0 - datetime.timedelta(seconds=5), ts
                # The scanner's later pulls do not move it.
                before = _pull_time_exact(repo, img.digest)
                count = _pulls(repo)
                time.sleep(1.1)
                r = scanner.client().get(f"/v2/{repo}/manifests/{img.digest}", headers=accept)
                assert r.status == 200, r.summary()
                assert wait_until(lambda: _pulls(repo) > count, 20, 0.3), "the scanner's second pull was never counted"
                assert _pull_time_exact(repo, img.digest) == before, "an excluded principal's pull moved the pull time"
            finally:
                ecr_client().deregister_pull_time_update_exclusion(principalArn=scanner.arn)
            # Deregistered, its pulls count again.
            before = _pull_time_exact(repo, img.digest)
            time.sleep(1.1)
            r = scanner.client().get(f"/v2/{repo}/manifests/v1", headers=accept)
            assert r.status == 200, r.summary()
            assert wait_until(lambda: _pull_time_exact(repo, img.digest) != before, 20, 0.3), \
                "after deregistration the scanner's pull did not set the pull time"
    finally:
        drop(repo)


def _pull_time_exact(repo: str, digest: str) -> str | None:
    return psql_value(
        "SELECT m.last_pulled_at::text FROM manifests m JOIN repositories r ON r.id = m.repository_id"
        f" WHERE r.name = {sql_str(repo)} AND m.digest = {sql_str(digest)}")

