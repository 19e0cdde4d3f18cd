"""The console's API (/console/api/) without a browser: sign-in with an access
key or with AWS and a login password, the session cookie's attributes, CSRF and
Origin checks on changes, sign-out, sessions that end with their principal or
their password, and the control plane's authorization behind every change.
The page itself is tested in Chromium by tests/browser."""

import json
import os
import subprocess
import time

from pierlib import Client, admin_creds, env, psql_value, url_a, url_b
from authlib import User, allow, policy, policy_settle

API = "/console/api/"


class Console:
    """One browser's worth of state: the session cookie and the CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.http = Client(base, auth=None)
        self.cookie = None
        self.csrf = None
        self.session = None

    def call(self, method: str, what: str, doc=None, csrf=True, origin=None):
        headers = {}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if method == "POST":
            headers["Content-Type"] = "application/json"
            if csrf and self.csrf:
                headers["X-CSRF-Token"] = self.csrf
            if origin:
                headers["Origin"] = origin
        body = json.dumps(doc if doc is not None else {}).encode() if method == "POST" else None
        return self.http.request(method, API + what, headers=headers, body=body)

    def login(self, key_id: str, secret: str):
        r = self.call("POST", "login", {"accessKeyId": key_id, "secretAccessKey": secret})
        if r.status == 200:
            set_cookie = r.header("Set-Cookie")
            assert set_cookie, f"sign-in without a cookie: {r.summary()}"
            self.cookie = set_cookie.split(";", 1)[0]
            self.session = r.json()
            self.csrf = self.session["csrfToken"]
        return r


def error_type(r) -> str:
    try:
        return r.json()["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return f"<no console error in {r.summary()}>"


def sessions_count() -> int:
    return int(psql_value("SELECT count(*) FROM console_sessions WHERE expires_at > now()"))


def test_console_sign_in_cookie_csrf_and_sign_out():
    key_id, secret = admin_creds()
    c = Console(url_a())
    r = c.login(key_id, secret)
    assert r.status == 200, r.summary()
    attrs = [a.strip().lower() for a in r.header("Set-Cookie").split(";")]
    assert c.cookie.startswith("pier_session="), c.cookie
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/console" in attrs, attrs
    assert "secure" not in attrs, f"Secure on a plain-HTTP cookie makes the browser drop it: {attrs}"
    assert 8 * 3600 - 60 <= c.session["expiresAt"] - time.time() <= 8 * 3600 + 60, c.session
    assert c.session["principal"].startswith("arn:aws:iam::"), c.session

    # The session is stored in the database: the other node knows it too.
    other = Console(url_b())
    other.cookie, other.csrf = c.cookie, c.csrf
    r = other.call("GET", "session")
    assert r.status == 200 and r.json()["principal"] == c.session["principal"], r.summary()

    # Changes need the CSRF token, and a same-origin Origin when one is sent.
    r = c.call("POST", "ecr/DescribeRepositories", {"maxResults": 1}, csrf=False)
    assert r.status == 403 and error_type(r) == "InvalidCsrfToken", r.summary()
    r = c.call("POST", "ecr/DescribeRepositories", {"maxResults": 1}, origin="http://evil.example")
    assert r.status == 403 and error_type(r) == "InvalidCsrfToken", r.summary()
    r = c.call("POST", "ecr/DescribeRepositories", {"maxResults": 1})
    assert r.status == 200 and "repositories" in r.json(), r.summary()

    # Sign-out ends the session on the server, not just in the browser.
    r = c.call("POST", "logout")
    assert r.status == 200 and r.json() == {"signedOut": True}, r.summary()
    assert "max-age=0" in r.header("Set-Cookie", "").lower(), r.header("Set-Cookie")
    r = c.call("GET", "session")
    assert r.status == 401 and error_type(r) == "SessionExpired", r.summary()
    r = c.call("POST", "ecr/DescribeRepositories", {})
    assert r.status == 401 and error_type(r) == "SessionExpired", r.summary()


def test_console_cookie_is_secure_behind_a_tls_terminating_proxy():
    """A node whose public_url is https:// while its Apache speaks plain HTTP (TLS ends
    at a proxy in front of it): the session cookie is Secure anyway, so a browser never
    sends it in clear text. A third, short-lived node (same database, blob root and
    server key) on node A's port + 2."""
    src, state = env("PIER_SRC"), os.path.join(env("PIER_TEST_DIR"), "c-tls")
    port = int(url_a().rsplit(":", 1)[1]) + 2
    node_env = dict(os.environ, PIER_STATE_DIR=state, PIER_PORT=str(port), PIER_WORKERS="1",
                    PIER_DATABASE=env("PIER_DB"), PIER_BLOB_ROOT=env("PIER_BLOB_ROOT"),
                    PIER_SERVER_KEY_FILE=os.path.join(env("PIER_STATE_DIR"), "server.key"),
                    PIER_PUBLIC_URL=f"https://registry.example.test:{port}")
    p = subprocess.run([os.path.join(src, "quickstart.sh"), "start"], env=node_env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"node c did not start: {p.stdout}\n{p.stderr}"
    try:
        c = Console(f"http://127.0.0.1:{port}")
        r = c.login(*admin_creds())
        assert r.status == 200, r.summary()
        attrs = [a.strip().lower() for a in r.header("Set-Cookie").split(";")]
        assert "secure" in attrs, f"sign-in cookie without Secure behind an https public_url: {attrs}"
        assert "httponly" in attrs and "samesite=strict" in attrs, attrs
        r = c.call("GET", "session")
        assert r.status == 200, r.summary()
        r = c.call("POST", "logout")
        assert r.status == 200, r.summary()
        attrs = [a.strip().lower() for a in r.header("Set-Cookie").split(";")]
        assert "secure" in attrs and "max-age=0" in attrs, f"sign-out cookie: {attrs}"
    finally:
        subprocess.run([os.path.join(src, "quickstart.sh"), "stop"], env=node_env, capture_output=True, timeout=120)


def test_console_wrong_or_malformed_sign_in_stores_nothing():
    key_id, _ = admin_creds()
    before = sessions_count()
    c = Console(url_a())
    r = c.login(key_id, "not-the-secret")
    assert r.status == 401 and error_type(r) == "UnrecognizedClientException", r.summary()
    assert not r.header("Set-Cookie"), r.header("Set-Cookie")
    r = c.login("AWS", "PIER1.not.a-token")
    assert r.status == 401 and error_type(r) == "UnrecognizedClientException", r.summary()
    r = c.call("POST", "login", {"accessKeyId": key_id})
    assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()
    r = c.http.request("POST", API + "login", headers={"Content-Type": "application/json"}, body=b"[1,2")
    assert r.status == 400 and error_type(r) == "SerializationException", r.summary()
    assert sessions_count() == before, "a refused sign-in stored a session"


def test_console_sign_in_with_login_password_ends_with_the_password():
    with User("con-pw", policies={"read": policy(allow(["ecr:DescribeRepositories"]))}) as u:
        pw = u.login_password(hours=1)
        c = Console(url_a())
        r = c.login("AWS", pw)
        assert r.status == 200, r.summary()
        assert c.session["principal"] == u.arn, c.session
        left = c.session["expiresAt"] - time.time()
        assert 3600 - 120 <= left <= 3600 + 5, f"the session outlives its 1 h password: {left:.0f} s left"
        max_age = [a for a in r.header("Set-Cookie").split(";") if a.strip().lower().startswith("max-age=")]
        assert max_age and 3600 - 120 <= int(max_age[0].split("=")[1]) <= 3600, r.header("Set-Cookie")
        r = c.call("POST", "ecr/DescribeRepositories", {"maxResults": 1})
        assert r.status == 200, r.summary()

        # A bearer token from /token is not a login password.
        tok = Client(url_a(), auth=u.creds).get("/token?service=pier").json()["token"]
        r = Console(url_a()).login("AWS", tok)
        assert r.status == 401, r.summary()

        # Deleting the user ends its sessions.
        u.delete()
        r = c.call("GET", "session")
        assert r.status == 401 and error_type(r) == "SessionExpired", r.summary()


def test_console_changes_go_through_the_same_policy_checks():
    """A user who may read the registry policy but not change it cannot change it
    from the console either; the policy stays as it was."""
    with User("con-ro", policies={"read": policy(allow(["ecr:GetRegistryPolicy", "ecr:DescribeRegistry"]))}) as u:
        policy_settle()
        c = Console(url_b())
        assert c.login(*u.creds).status == 200
        admin = Console(url_a())
        assert admin.login(*admin_creds()).status == 200
        r = admin.call("POST", "ecr/GetRegistryPolicy", {})
        old = r.json().get("policyText") if r.status == 200 else None
        assert r.status == 200 or error_type(r) == "RegistryPolicyNotFoundException", r.summary()

        doc = policy(allow(["ecr:CreateRepository"], "*", principal={"AWS": u.arn}))
        r = c.call("POST", "ecr/PutRegistryPolicy", {"policyText": doc})
        assert r.status == 403 and error_type(r) == "AccessDeniedException", r.summary()
        msg = r.json()["error"]["message"]
        assert "ecr:PutRegistryPolicy" in msg, f"the denial does not name the action: {msg!r}"
        r = admin.call("POST", "ecr/GetRegistryPolicy", {})
        now = r.json().get("policyText") if r.status == 200 else None
        assert now == old, "a denied PutRegistryPolicy changed the registry policy"

        # Reads it may do work, and views without permission are refused, not empty.
        r = c.call("GET", "overview")
        assert r.status == 403 and error_type(r) == "AccessDeniedException", r.summary()


def test_console_made_up_repository_is_not_found_rather_than_empty():
    """A repository URL with a made-up name answers RepositoryNotFoundException,
    so the page cannot show it as a real, empty repository; one that exists
    (even without tags) answers its tags."""
    admin = Console(url_a())
    assert admin.login(*admin_creds()).status == 200
    name = f"con-real-{os.getpid()}"
    r = admin.call("POST", "ecr/CreateRepository", {"repositoryName": name})
    assert r.status == 200, r.summary()
    try:
        r = admin.call("GET", f"repository?name={name}")
        assert r.status == 200 and r.json()["tags"] == [], r.summary()
        r = admin.call("GET", f"repository?name={name}-does-not-exist")
        assert error_type(r) == "RepositoryNotFoundException", r.summary()
        assert f"{name}-does-not-exist" in r.json()["error"]["message"], r.summary()
    finally:
        admin.call("POST", "ecr/DeleteRepository", {"repositoryName": name, "force": True})


def test_console_listing_says_when_the_caller_may_not_list_repositories():
    """A user whose policies do not allow ecr:DescribeRepositories gets an empty
    list that says so (naming the action), not one that reads as "there are no
    repositories"; the overview's most pulled repositories say the same. An
    administrator's listing carries no such note."""
    admin = Console(url_a())
    assert admin.login(*admin_creds()).status == 200
    name = f"con-hidden-{os.getpid()}"
    r = admin.call("POST", "ecr/CreateRepository", {"repositoryName": name})
    assert r.status == 200, r.summary()
    try:
        with User("con-nolist", policies={"rules": policy(allow(["ecr:DescribePullThroughCacheRules"]))}) as u:
            policy_settle()
            c = Console(url_a())
            assert c.login(*u.creds).status == 200
            r = c.call("GET", "repositories?q=")
            assert r.status == 200, r.summary()
            doc = r.json()
            assert doc["repositories"] == [], f"a user who may not list repositories sees some: {doc}"
            assert "ecr:DescribeRepositories" in doc.get("listDenied", ""), f"no note naming the action: {doc}"
            r = c.call("GET", "overview")
            assert r.status == 200, r.summary()
            assert "ecr:DescribeRepositories" in r.json().get("topRepositoriesDenied", ""), r.json()
        r = admin.call("GET", "repositories?q=")
        assert r.status == 200 and "listDenied" not in r.json(), r.summary()
        assert any(x["name"] == name for x in r.json()["repositories"]), r.summary()
        assert "topRepositoriesDenied" not in admin.call("GET", "overview").json()
    finally:
        admin.call("POST", "ecr/DeleteRepository", {"repositoryName": name, "force": True})


def test_console_known_actions_come_from_the_policy_engine():
    """The editor's list of known actions is the policy engine's: it names ECR's
    and Pier's actions and not a misspelled one. A policy naming an unknown
    action is still accepted (as IAM accepts it; it grants nothing): the console
    warns before saving instead."""
    admin = Console(url_a())
    assert admin.login(*admin_creds()).status == 200
    r = admin.call("GET", "policy-actions")
    assert r.status == 200, r.summary()
    actions = r.json()["actions"]
    for a in ("ecr:BatchGetImage", "ecr:CreateRepository", "ecr:BatchImportUpstreamImage",
              "ecr:LookupAuditEvents", "secretsmanager:GetSecretValue"):
        assert a in actions, f"{a} missing from {actions}"
    assert "ecr:BatchGetImagee" not in actions
    assert len(actions) == len(set(actions)), "the list names an action twice"
    name = f"con-typo-{os.getpid()}"
    r = admin.call("POST", "ecr/CreateRepository", {"repositoryName": name})
    assert r.status == 200, r.summary()
    try:
        doc = policy(allow(["ecr:BatchGetImagee"], principal={"AWS": admin.session["principal"]}))
        doc = json.loads(doc)
        for st in doc["Statement"]:
            st.pop("Resource", None)
        r = admin.call("POST", "ecr/SetRepositoryPolicy", {"repositoryName": name, "policyText": json.dumps(doc)})
        assert r.status == 200, r.summary()
    finally:
        admin.call("POST", "ecr/DeleteRepository", {"repositoryName": name, "force": True})
    # Without a session there is no list.
    r = Console(url_a()).call("GET", "policy-actions")
    assert r.status == 401, r.summary()
