"""Security of identities, logins and policies: the findings of the security
review, each reproduced against a live node and shown closed.

  - identity policies: a documented limit, and fail closed past it; a stored
    policy that no longer parses denies instead of being skipped
  - a deleted or deactivated access key stops working within seconds on every node,
    with every login made from it (Basic, login passwords, bearer tokens, console
    sessions); a session cannot mint a password that outlives it
  - access keys are checked with a keyed hash (old slow hashes are upgraded), and
    repeated failures back off
  - SigV4 requests must sign the operation, the date and the content type
  - console sign-in refuses cross-site requests (login CSRF)
  - the token realm never follows the client's Host header when the registry knows
    its own address
  - request sizes: DescribeImages takes at most 100 image ids; an anonymous catalog
    scan stops after a bounded number of names
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

from pierlib import (
    AMZ_JSON, AWS_REGION, ECR_TARGET_PREFIX, Client, admin_creds, client_a, ecr_client, expect_api_error,
    psql, psql_value, push_blob_monolithic, sql_str, url_a, url_b, wait_until,
)
from authlib import (
    PULL_ACTIONS, RegistryPolicy, User, allow, aws_principal, deny, error_message, pierctl, policy, policy_settle,
    repo_arn, unique_ns,
)
from test_console_api import Console, error_type

REVOCATION_SECONDS = 3.0


def _pull_user(label: str, repo: str) -> User:
    return User(label, policies={"pull": policy(allow(PULL_ACTIONS + ["ecr:ListImages"], repo),
                                                allow(["ecr:GetAuthorizationToken"], "*"))})


# ---------------------------------------------------------------------------
# identity policy limits and stored policies that do not parse


def test_identity_policies_have_a_limit_and_fail_closed_past_it():
    ns = unique_ns("lim")
    repo = f"{ns}/app"
    push_blob_monolithic(client_a(), repo, b"x" * 100)
    with _pull_user("lim", repo) as u:
        for i in range(9):
            u.put_policy(f"p{i:02d}", policy(allow(["ecr:DescribeImages"], repo)))
        p = pierctl("policy", "identity", "put", u.name, "one-too-many", "-",
                    input=policy(allow(["ecr:DescribeImages"], repo)))
        assert p.returncode != 0 and "at most 10" in p.stderr, f"an 11th policy was accepted: {p.stderr}"
        # Replacing an existing one is still fine.
        u.put_policy("p00", policy(allow(["ecr:DescribeImages"], repo)))
        assert u.client().get(f"/v2/{repo}/tags/list").status in (200, 404)
        # Rows written behind the limit's back (an older version, a restore): a Deny in the
        # 17th policy used to be ignored. Past the limit, everything is denied.
        pid = psql_value(f"SELECT id FROM principals WHERE name = {sql_str(u.name)}")
        for i in range(6):
            doc = policy(allow(["ecr:DescribeImages"], repo)) if i < 5 else policy(deny("ecr:*", "*", sid="Late"))
            psql(f"INSERT INTO identity_policies(principal_id, name, document) VALUES ({pid}, 'zz{i}', {sql_str(doc)})")
        policy_settle()
        r = u.client().get(f"/v2/{repo}/tags/list")
        assert r.status == 403 and "more identity policies than the limit" in error_message(r), r.summary()
        psql(f"DELETE FROM identity_policies WHERE principal_id = {pid} AND name LIKE 'zz%'")
        policy_settle()
        assert u.client().get(f"/v2/{repo}/tags/list").status in (200, 404)


def test_a_stored_policy_that_no_longer_parses_denies():
    ns = unique_ns("brk")
    repo, other = f"{ns}/app", f"{ns}/other"
    for name in (repo, other):
        push_blob_monolithic(client_a(), name, b"y" * 10)
    pull_both = policy(allow(PULL_ACTIONS + ["ecr:ListImages"], [repo, other]))
    with User("brk", policies={"pull": pull_both, "guard": policy(deny("ecr:ListImages", other))}) as u:
        c = u.client()
        assert c.get(f"/v2/{repo}/tags/list").status in (200, 404)
        pid = psql_value(f"SELECT id FROM principals WHERE name = {sql_str(u.name)}")
        # An identity policy (here: the one holding a Deny) that no longer parses.
        broken = sql_str('{"Version": "2012-10-17", "Statement": 5}')
        psql(f"UPDATE identity_policies SET document = {broken} WHERE principal_id = {pid} AND name = 'guard'")
        policy_settle()
        r = c.get(f"/v2/{other}/tags/list")
        assert r.status == 403 and "no longer parses" in error_message(r), f"the broken Deny was skipped: {r.summary()}"
        r = c.get(f"/v2/{repo}/tags/list")
        assert r.status == 403, r.summary()
        u.put_policy("guard", policy(deny("ecr:ListImages", other)))
        policy_settle()
        assert c.get(f"/v2/{repo}/tags/list").status in (200, 404)
        # A repository policy that no longer parses: that repository is closed, the other is not.
        rid = psql_value(f"SELECT id FROM repositories WHERE name = {sql_str(repo)}")
        psql(f"INSERT INTO repository_policies(repository_id, document) VALUES ({rid}, 'not json')")
        try:
            policy_settle()
            r = c.get(f"/v2/{repo}/tags/list")
            assert r.status == 403 and "repository policy no longer parses" in error_message(r), r.summary()
            assert client_a().get(f"/v2/{repo}/tags/list").status == 403, "the administrator too (fail closed)"
        finally:
            psql(f"DELETE FROM repository_policies WHERE repository_id = {rid}")
        # The registry policy: everything is denied while it is broken.
        with RegistryPolicy():
            psql("INSERT INTO registry_policy(id, document) VALUES (1, '{}') ON CONFLICT (id) DO UPDATE"
                 " SET document = '{}'")
            policy_settle()
            r = client_a().get(f"/v2/{repo}/tags/list")
            assert r.status == 403 and "registry policy no longer parses" in error_message(r), r.summary()
        policy_settle()
        assert client_a().get(f"/v2/{repo}/tags/list").status in (200, 404)


# ---------------------------------------------------------------------------
# revocation


def _login_password_via_api(creds) -> str:
    data = ecr_client(creds).get_authorization_token()["authorizationData"][0]
    user, pw = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    assert user == "AWS"
    return pw


def _bearer(creds, repo) -> str:
    auth = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    r = Client(url_a(), auth=None).get(f"/token?service=pier&scope=repository:{repo}:pull",
                                       headers={"Authorization": auth})
    assert r.status == 200, r.summary()
    return r.json()["token"]


def test_a_deleted_or_deactivated_key_stops_working_everywhere_within_seconds():
    ns = unique_ns("rev")
    repo = f"{ns}/app"
    push_blob_monolithic(client_a(), repo, b"z" * 64)
    with _pull_user("rev", repo) as u:
        creds = u.creds
        pw = _login_password_via_api(creds)
        token = _bearer(creds, repo)
        console = Console(url_a())
        assert console.login(*creds).status == 200
        logins = {
            "access key (Basic)": {"Authorization": "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()},
            "login password": {"Authorization": "Basic " + base64.b64encode(f"AWS:{pw}".encode()).decode()},
            "bearer token": {"Authorization": f"Bearer {token}"},
        }
        for base in (url_a(), url_b()):
            for what, h in logins.items():
                r = Client(base, auth=None).get(f"/v2/{repo}/tags/list", headers=h)
                assert r.status in (200, 404), f"{what} before deletion on {base}: {r.summary()}"
        assert console.call("GET", "session").status == 200

        ctl = pierctl("key", "delete", creds[0])
        assert ctl.returncode == 0, ctl.stderr
        t0 = time.monotonic()
        for base in (url_a(), url_b()):
            for what, h in logins.items():
                ok = wait_until(lambda: Client(base, auth=None).get(f"/v2/{repo}/tags/list", headers=h).status == 401,
                                REVOCATION_SECONDS)
                assert ok, f"{what} still works on {base} {time.monotonic() - t0:.1f}s after its key was deleted"
        r = console.call("GET", "session")
        assert r.status == 401, f"the console session outlived its key: {r.summary()}"
        assert psql_value(f"SELECT count(*) FROM console_sessions WHERE key_id = {sql_str(creds[0])}") == "0"

        # Deactivating (not deleting) a key ends its sessions and tokens just the same.
        key2 = u.new_key()
        console2 = Console(url_b())
        assert console2.login(*key2).status == 200
        token2 = _bearer(key2, repo)
        psql(f"UPDATE access_keys SET active = false WHERE id = {sql_str(key2[0])}")
        assert wait_until(lambda: console2.call("GET", "session").status == 401, REVOCATION_SECONDS)
        assert wait_until(lambda: Client(url_a(), auth=None).get(
            f"/v2/{repo}/tags/list", headers={"Authorization": f"Bearer {token2}"}).status == 401, REVOCATION_SECONDS)


def test_a_console_session_cannot_mint_a_password_that_outlives_it():
    with User("mint", policies={"t": policy(allow(["ecr:GetAuthorizationToken"], "*"))}) as u:
        pw = u.login_password(hours=1)
        console = Console(url_a())
        r = console.login("AWS", pw)
        assert r.status == 200, r.summary()
        session_end = console.session["expiresAt"]
        assert session_end <= time.time() + 3600 + 5
        r = console.call("POST", "ecr/GetAuthorizationToken", {})
        assert r.status == 200, r.summary()
        expires = r.json()["authorizationData"][0]["expiresAt"]
        assert expires <= session_end + 1, f"a 1-hour session minted a password until {expires} (session: {session_end})"
        # The same through the API with the access key: the full 12 hours.
        data = ecr_client(u.creds).get_authorization_token()["authorizationData"][0]
        assert data["expiresAt"].timestamp() > time.time() + 11 * 3600


# ---------------------------------------------------------------------------
# keyed hash and backoff


def test_access_keys_use_a_keyed_hash_and_old_slow_hashes_are_upgraded():
    with User("hash") as u:
        row = psql(f"SELECT iterations FROM access_keys WHERE id = {sql_str(u.key_id)}")
        assert row == [["0"]], f"a new key is stored with {row}"
        # A key stored by an earlier version: PBKDF2-SHA256, 100000 iterations.
        salt = os.urandom(16)
        old = hashlib.pbkdf2_hmac("sha256", u.secret.encode(), salt, 100000, 32)
        psql(f"UPDATE access_keys SET secret_hash = '\\x{old.hex()}', salt = '\\x{salt.hex()}', iterations = 100000"
             f" WHERE id = {sql_str(u.key_id)}")
        r = Client(url_b(), auth=u.creds).get("/v2/")
        assert r.status == 200, r.summary()
        assert psql(f"SELECT iterations FROM access_keys WHERE id = {sql_str(u.key_id)}") == [["0"]]
        assert Client(url_a(), auth=u.creds).get("/v2/").status == 200
        assert Client(url_a(), auth=(u.key_id, u.secret[:-1] + "x")).get("/v2/").status == 401


def test_repeated_login_failures_back_off():
    with User("bo") as u:
        wrong = (u.key_id, "W" * 40)
        for i in range(11):
            r = Client(url_a(), auth=wrong).get("/v2/")
            assert r.status == 401, f"failure {i + 1}: {r.summary()}"
        # Now even the right secret waits, with Retry-After, on the registry, /token and the console.
        r = Client(url_a(), auth=u.creds).get("/v2/")
        assert r.status == 429 and r.header("Retry-After"), r.summary()
        auth = "Basic " + base64.b64encode(f"{u.key_id}:{u.secret}".encode()).decode()
        r = Client(url_b(), auth=None).get("/token?service=pier", headers={"Authorization": auth})
        assert r.status == 429, r.summary()
        assert Console(url_a()).login(*u.creds).status == 429
        wait = int(r.header("Retry-After") or "1")
        time.sleep(wait + 0.5)
        assert Client(url_a(), auth=u.creds).get("/v2/").status == 200
        assert psql_value(f"SELECT count(*) FROM login_failures WHERE key_id = {sql_str(u.key_id)}") == "0"


# ---------------------------------------------------------------------------
# SigV4


def _sign(op: str, body: dict, sign_target: bool, sign_content_type: bool = True):
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    data = json.dumps(body).encode()
    hdrs = {}
    if sign_content_type:
        hdrs["Content-Type"] = AMZ_JSON
    if sign_target:
        hdrs["X-Amz-Target"] = ECR_TARGET_PREFIX + op
    req = botocore.awsrequest.AWSRequest("POST", url_a() + "/", data=data, headers=hdrs)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*admin_creds()), "ecr", AWS_REGION).add_auth(req)
    out = dict(req.headers.items())
    out["X-Amz-Target"] = ECR_TARGET_PREFIX + op
    out["Content-Type"] = AMZ_JSON
    return data, out


def test_sigv4_requires_the_operation_date_and_content_type_to_be_signed():
    ns = unique_ns("sig")
    repo = f"{ns}/keep"
    ecr_client().create_repository(repositoryName=repo)
    # A request whose X-Amz-Target is not signed could be replayed as any operation.
    data, headers = _sign("DescribeRepositories", {"repositoryName": repo}, sign_target=False)
    headers["X-Amz-Target"] = ECR_TARGET_PREFIX + "DeleteRepository"
    r = Client(url_a(), auth=None).post("/", body=data, headers=headers)
    assert r.status == 400 and "InvalidSignatureException" in r.text and "x-amz-target" in r.text, r.summary()
    assert psql_value(f"SELECT count(*) FROM repositories WHERE name = {sql_str(repo)}") == "1"
    data, headers = _sign("DescribeRepositories", {}, sign_target=True, sign_content_type=False)
    r = Client(url_a(), auth=None).post("/", body=data, headers=headers)
    assert r.status == 400 and "content-type" in r.text, r.summary()
    data, headers = _sign("DescribeRepositories", {"repositoryNames": [repo]}, sign_target=True)
    r = Client(url_a(), auth=None).post("/", body=data, headers=headers)
    assert r.status == 200, r.summary()
    ecr_client().delete_repository(repositoryName=repo)


# ---------------------------------------------------------------------------
# console sign-in CSRF, public URL


def test_console_sign_in_refuses_cross_site_requests():
    key, secret = admin_creds()
    before = int(psql_value("SELECT count(*) FROM console_sessions"))
    body = json.dumps({"accessKeyId": key, "secretAccessKey": secret}).encode()
    http = Client(url_a(), auth=None)
    host = url_a().split("://", 1)[1]
    for headers in ({"Content-Type": "text/plain", "Origin": "http://evil.example"},
                    {"Content-Type": "text/plain"},
                    {"Content-Type": "application/json", "Origin": "http://evil.example"},
                    {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}):
        r = http.post("/console/api/login", body=body, headers=headers)
        assert r.status == 403 and error_type(r) == "InvalidOrigin", f"{headers}: {r.summary()}"
        assert not r.header("Set-Cookie")
    assert int(psql_value("SELECT count(*) FROM console_sessions")) == before
    r = http.post("/console/api/login", body=body, headers={"Content-Type": "application/json",
                                                             "Origin": f"http://{host}",
                                                             "Sec-Fetch-Site": "same-origin"})
    assert r.status == 200, r.summary()


def _raw(method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request with exactly these headers (http.client adds its own Host)."""
    import http.client
    host, port = url_a().split("://", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    out = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    conn.close()
    return out


def test_the_token_realm_does_not_follow_the_host_header():
    status, headers, _ = _raw("GET", "/v2/", {"Host": "evil.example"})
    assert status == 401, status
    challenge = headers.get("www-authenticate", "")
    assert "evil.example" not in challenge and url_a().split("://")[1] in challenge, challenge
    console = Console(url_a())
    assert console.login(*admin_creds()).status == 200
    status, _, body = _raw("POST", "/console/api/ecr/GetAuthorizationToken",
                           {"Host": "evil.example", "Cookie": console.cookie, "X-CSRF-Token": console.csrf,
                            "Content-Type": "application/json"}, b"{}")
    assert status == 200, body[:300]
    endpoint = json.loads(body)["authorizationData"][0]["proxyEndpoint"]
    assert "evil.example" not in endpoint, endpoint


# ---------------------------------------------------------------------------
# request sizes


def test_describe_images_takes_at_most_100_image_ids():
    ns = unique_ns("di")
    repo = f"{ns}/app"
    ecr_client().create_repository(repositoryName=repo)
    try:
        ids = [{"imageTag": f"t{i}"} for i in range(20000)]
        t0 = time.monotonic()
        msg = expect_api_error("InvalidParameterException", ecr_client().describe_images, repositoryName=repo,
                               imageIds=ids)
        assert "100" in msg and time.monotonic() - t0 < 5, msg
        expect_api_error("ImageNotFoundException", ecr_client().describe_images, repositoryName=repo,
                         imageIds=ids[:100])
    finally:
        ecr_client().delete_repository(repositoryName=repo, force=True)


def test_an_anonymous_catalog_scan_is_bounded():
    ns = unique_ns("cat")
    psql(f"INSERT INTO repositories(name) SELECT {sql_str(ns + '/a')} || lpad(i::text, 5, '0')"
         " FROM generate_series(1, 2100) AS i")
    psql(f"INSERT INTO repositories(name) VALUES ({sql_str(ns + '/zzz')})")
    try:
        anyone = policy(allow(["ecr:DescribeRepositories"], f"{ns}/zzz", principal="*", sid="PublicZ"))
        with RegistryPolicy(anyone):
            policy_settle()
            r = Client(url_a(), auth=None).get(f"/v2/_catalog?n=10&last={ns}")
            assert r.status == 200, r.summary()
            assert r.json()["repositories"] == [], \
                f"an anonymous request scanned past 2000 hidden names: {r.json()}"
            r = client_a().get(f"/v2/_catalog?n=10&last={ns}/a02099")
            assert r.json()["repositories"][:1] == [f"{ns}/a02100"], r.json()
    finally:
        psql(f"DELETE FROM repositories WHERE name LIKE {sql_str(ns + '/%')}")
