"""Logins: the Bearer challenge and /token, Basic with access keys and login
passwords, podman login and skopeo login (token flow on nodes A and B, Basic
flow on a third node with auth_scheme = basic), expired, tampered and misused
tokens, wrong passwords, anonymous access on and off."""

import calendar
import json
import os
import re
import signal
import subprocess
import time
import urllib.parse

from pierlib import (
    Client, Podman, TempDir, build_image_layout, docker_ref, env, image_ref, oci_errors, push_image,
    registry_host, run, sha256_digest, skopeo, state_dir, url_a, url_b, wait_until,
)
from upstreams import assert_layout_holds, get_manifest
from authlib import (
    PULL_ACTIONS, PUSH_ACTIONS, RepositoryPolicy, User, allow, aws_principal, basic, bearer, challenge_params,
    denied, error_message, flip_last_char, forge_bearer, get_token, no_statement_allows, policy, policy_settle,
    remember, tamper_payload, tamper_signature, token_claims, token_for, unique_ns,
)

PULL_PUSH = PULL_ACTIONS + PUSH_ACTIONS + ["ecr:CreateRepository", "ecr:ListImages"]


def expect_unauthorized(r, what: str, contains: str | None = None) -> str:
    """401 UNAUTHORIZED with a challenge; returns the message (empty for HEAD)."""
    assert r.status == 401, f"{what}: expected 401, got {r.summary()}"
    assert r.header("WWW-Authenticate"), f"{what}: 401 without a challenge: {r.summary()}"
    if r.method == "HEAD":
        return ""
    msg = error_message(r)
    codes = [e.get("code") for e in oci_errors(r)]
    assert "UNAUTHORIZED" in codes, f"{what}: codes {codes}: {r.summary()}"
    if contains is not None:
        assert contains in msg, f"{what}: the message does not say {contains!r}: {msg!r}"
    return msg


def skopeo_cmd(*args: str, check: bool = True, input: bytes | None = None):
    """skopeo without the suite's automatic credentials."""
    return run(["skopeo", "--insecure-policy", *args], timeout=300, check=check, input=input)


def test_challenge_and_bearer_tokens_cover_only_their_scope():
    ns = unique_ns("tok")
    one, two = f"{ns}/one", f"{ns}/two"
    admin = Client(url_a())
    img1 = push_image(admin, one, "v1")
    img2 = push_image(admin, two, "v1")
    with User("tok", policies={"rw": policy(allow(PULL_PUSH, f"{ns}/*"))}) as u, User("tok-none") as none:
        # Anyone not logged in gets the challenge at /v2/, on either node, naming that node.
        for base in (url_a(), url_b()):
            r = Client(base, auth=None).get("/v2/")
            expect_unauthorized(r, f"anonymous GET /v2/ on {base}")
            ch = challenge_params(r.header("WWW-Authenticate"))
            assert ch == {"scheme": "Bearer", "realm": f"{base}/token", "service": "pier"}, \
                f"challenge of {base}: {r.header('WWW-Authenticate')!r}"

        # A token for one repository, pull only.
        t0 = time.time()
        r = get_token(url_a(), [f"repository:{one}:pull"], u.creds)
        assert r.status == 200, r.summary()
        doc = r.json()
        assert set(doc) >= {"token", "access_token", "expires_in", "issued_at"}, doc
        assert doc["token"] == doc["access_token"] and doc["token"].startswith("PIER1."), doc
        assert doc["expires_in"] == 300, doc
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["issued_at"]), doc
        issued = calendar.timegm(time.strptime(doc["issued_at"], "%Y-%m-%dT%H:%M:%SZ"))
        assert abs(issued - t0) < 60, f"issued_at {doc['issued_at']} is not now"
        tok = doc["token"]
        remember(tok)
        claims = token_claims(tok)
        assert claims.get("sub") == u.arn, claims
        assert 290 <= claims.get("exp", 0) - t0 <= 310, claims

        anon = Client(url_a(), auth=None)
        assert anon.get("/v2/", headers=bearer(tok)).status == 200
        r = anon.get(f"/v2/{one}/manifests/v1", headers=bearer(tok))
        assert r.status == 200 and r.header("Docker-Content-Digest") == img1.digest, r.summary()
        r = anon.get(f"/v2/{one}/blobs/{img1.layers[0].digest}", headers=bearer(tok))
        assert r.status == 200 and r.body == img1.layers[0].data, r.summary()
        # The same token on node B (same server key).
        r = Client(url_b(), auth=None).get(f"/v2/{one}/manifests/v1", headers=bearer(tok))
        assert r.status == 200, f"node B refused node A's token: {r.summary()}"

        # Another repository: 401, naming the scope that is missing, with a challenge for it.
        r = anon.get(f"/v2/{two}/manifests/v1", headers=bearer(tok))
        expect_unauthorized(r, "token for one used on two", f"repository:{two}:pull")
        assert challenge_params(r.header("WWW-Authenticate")).get("scope") == f"repository:{two}:pull", \
            r.header("WWW-Authenticate")
        assert one not in error_message(r), f"the refusal mentions the other repository: {r.summary()}"
        expect_unauthorized(anon.head(f"/v2/{two}/blobs/{img2.layers[0].digest}", headers=bearer(tok)),
                            "blob HEAD in two with a token for one")
        # Pull only: no push with it, even where the policy would allow it.
        r = anon.post(f"/v2/{one}/blobs/uploads/", headers=bearer(tok))
        expect_unauthorized(r, "upload with a pull token", f"repository:{one}:push")
        # Nor the catalog, which needs registry:catalog:*.
        expect_unauthorized(anon.get("/v2/_catalog", headers=bearer(tok)), "catalog with a repository token")

        # Several scopes in one token; push granted by the token and by the policy.
        tok2 = token_for(u.creds, [f"repository:{one}:pull,push", f"repository:{two}:pull"])
        assert anon.get(f"/v2/{two}/manifests/v1", headers=bearer(tok2)).status == 200
        blob = os.urandom(700)
        r = anon.post(f"/v2/{one}/blobs/uploads/?digest={sha256_digest(blob)}", body=blob,
                      headers=bearer(tok2))
        assert r.status == 201, f"push with a push token: {r.summary()}"
        expect_unauthorized(anon.post(f"/v2/{two}/blobs/uploads/", headers=bearer(tok2)),
                            "push to two with pull on two", f"repository:{two}:push")

        # A token grants nothing the policies do not: a user without policy gets a token
        # naming the repository, and is still refused.
        tok3 = token_for(none.creds, [f"repository:{one}:pull,push"])
        no_statement_allows(anon.get(f"/v2/{one}/manifests/v1", headers=bearer(tok3)), "ecr:BatchGetImage", one)
        no_statement_allows(anon.post(f"/v2/{one}/blobs/uploads/", headers=bearer(tok3)),
                            "ecr:InitiateLayerUpload", one)

        # A malformed scope is refused, not silently ignored.
        r = get_token(url_a(), ["repository:Not A Name:pull"], u.creds)
        assert 400 <= r.status < 500, f"a malformed scope: {r.summary()}"


def test_wrong_expired_and_tampered_credentials_are_refused():
    ns = unique_ns("bad")
    repo, other = f"{ns}/app", f"{ns}/other"
    admin = Client(url_a())
    img = push_image(admin, repo, "v1")
    push_image(admin, other, "v1")
    with User("bad", policies={"pull": policy(allow(PULL_ACTIONS, f"{ns}/*"))}) as u:
        anon = Client(url_a(), auth=None)
        wrong = "wrong-" + os.urandom(12).hex()
        remember(wrong)
        # Wrong passwords: the token endpoint says so; registry requests answer 401 with the challenge.
        for user, pw, what in ((u.key_id, wrong, "wrong secret"), ("PIERNOSUCHKEY0000000", u.secret, "unknown key"),
                               ("AWS", wrong, "garbage login password"), ("AWS", u.secret, "secret as login password"),
                               (u.key_id, "", "empty secret")):
            r = get_token(url_a(), [f"repository:{repo}:pull"], (user, pw))
            expect_unauthorized(r, f"/token with {what}", "invalid username/password")
            r = anon.get(f"/v2/{repo}/manifests/v1", headers=basic(user, pw))
            expect_unauthorized(r, f"manifest GET with {what}")
            assert r.header("WWW-Authenticate").startswith("Bearer "), r.summary()
            assert anon.get("/v2/", headers=basic(user, pw)).status == 401, what
        # The right ones work, as Basic on every request and at /token.
        r = anon.get(f"/v2/{repo}/manifests/v1", headers=basic(*u.creds))
        assert r.status == 200 and r.header("Docker-Content-Digest") == img.digest, r.summary()
        pw = u.login_password()
        assert anon.get("/v2/", headers=basic("AWS", pw)).status == 200
        assert anon.get(f"/v2/{repo}/manifests/v1", headers=basic("AWS", pw)).status == 200
        assert get_token(url_a(), [f"repository:{repo}:pull"], ("AWS", pw)).status == 200
        # A login password of another user's name does not work with the wrong user name either.
        assert anon.get("/v2/", headers=basic(u.key_id, pw)).status == 401

        # Expired login password (valid for 0 hours).
        expired_pw = u.login_password(hours=0)
        time.sleep(1.1)
        expect_unauthorized(anon.get(f"/v2/{repo}/manifests/v1", headers=basic("AWS", expired_pw)),
                            "expired login password", "expired")
        expect_unauthorized(get_token(url_a(), [f"repository:{repo}:pull"], ("AWS", expired_pw)),
                            "/token with an expired login password", "invalid username/password")

        # Bearer tokens signed with the server key: a current one works (so the forgery is
        # faithful), the same one expired is refused.
        good = forge_bearer(u, repo)
        r = anon.get(f"/v2/{repo}/manifests/v1", headers=bearer(good))
        assert r.status == 200, f"a correctly signed token was refused: {r.summary()}"
        stale = forge_bearer(u, repo, exp=int(time.time()) - 5)
        expect_unauthorized(anon.get(f"/v2/{repo}/manifests/v1", headers=bearer(stale)),
                            "expired bearer token", "expired")

        # Tampered tokens: a payload naming another repository under the old signature,
        # a changed signature, a truncated token, a foreign string.
        tok = token_for(u.creds, [f"repository:{repo}:pull"])

        def widen(claims):
            claims["access"] = [{"n": other, "a": ["pull"]}, {"n": repo, "a": ["*"]}]
        for bad, what in ((tamper_payload(tok, widen), "tampered payload"),
                          (tamper_signature(tok), "altered signature"),
                          (tok[: len(tok) - 10], "truncated token"),
                          (tok.rsplit(".", 1)[0] + ".", "token without signature"),
                          ("PIER1.e30." + tok.rsplit(".", 1)[1], "empty claims, real signature"),
                          ("not-a-token", "foreign string")):
            remember(bad)
            for target in (f"/v2/{repo}/manifests/v1", f"/v2/{other}/manifests/v1"):
                r = anon.get(target, headers=bearer(bad))
                expect_unauthorized(r, f"{what} on {target}")
        # Kinds do not mix: a login password is not a bearer token and the reverse.
        expect_unauthorized(anon.get(f"/v2/{repo}/manifests/v1", headers=bearer(pw)), "login password as Bearer")
        expect_unauthorized(anon.get(f"/v2/{repo}/manifests/v1", headers=basic("AWS", tok)),
                            "bearer token as login password")
        # An unsupported scheme.
        expect_unauthorized(anon.get("/v2/", headers={"Authorization": "Digest username=x"}), "Digest scheme")


def test_deleted_user_can_no_longer_log_in():
    """Deleting a principal ends its logins: its login password no longer authenticates, not
    even where a repository policy names its ARN, nor once a user of the same name exists again."""
    ns = unique_ns("gone")
    repo = f"{ns}/app"
    img = push_image(Client(url_a()), repo, "v1")
    u = User("gone", policies={"pull": policy(allow(PULL_ACTIONS, repo))}).create()
    try:
        pw = u.login_password()
        anon = Client(url_a(), auth=None)
        blob = f"/v2/{repo}/blobs/{img.layers[0].digest}"
        assert anon.get(blob, headers=basic("AWS", pw)).status == 200
        by_arn = policy(allow(PULL_ACTIONS, repo, sid="NamedUser", principal=aws_principal(u.arn)))
        with RepositoryPolicy(repo, by_arn):
            u.delete()
            policy_settle()
            problems = []
            for base in (url_a(), url_b()):
                c = Client(base, auth=None)
                for path in ("/v2/", blob):
                    r = c.get(path, headers=basic("AWS", pw))
                    if r.status != 401:
                        problems.append(f"GET {path} on {base} with the deleted user's login password: {r.status}")
                r = get_token(base, [f"repository:{repo}:pull"], ("AWS", pw))
                if r.status != 401:
                    problems.append(f"/token on {base} with the deleted user's login password: {r.status}")
            again = User("gone")
            again.name, again.arn = u.name, u.arn
            with again:
                r = anon.get(blob, headers=basic("AWS", pw))
                if r.status != 401:
                    problems.append(f"the old login password works for the new user of the same name: {r.status}")
            assert not problems, "; ".join(problems)
    finally:
        u.delete()


def test_podman_login_with_login_password_then_pull_and_push():
    ns = unique_ns("podman")
    base_repo = f"{ns}/base"
    with TempDir() as tmp, Podman() as podman, \
            User("podman", policies={"rw": policy(allow(PULL_PUSH, f"{ns}/*"))}) as u:
        image = build_image_layout(tmp.sub("src"), "1", layer_sizes=(2048, 20 * 1024))
        skopeo("copy", f"oci:{tmp.sub('src')}:1", docker_ref(base_repo, "1"))
        host = registry_host(url_a())
        authfile = tmp.sub("auth.json")
        pw = u.login_password()
        # Wrong password first: podman login fails and writes nothing usable.
        p = podman("login", "--tls-verify=false", "--authfile", authfile, "-u", "AWS", "--password-stdin", host,
                   input=b"PIER1.bogus.bogus\n", check=False)
        assert p.returncode != 0, f"podman login with a bogus password succeeded: {p.stdout!r}"
        podman("login", "--tls-verify=false", "--authfile", authfile, "-u", "AWS", "--password-stdin", host,
               input=(pw + "\n").encode())
        with open(authfile) as f:
            assert host in json.load(f).get("auths", {}), "podman login stored no credentials for Pier"
        ref = image_ref(base_repo, "1")
        podman("pull", "--tls-verify=false", "--authfile", authfile, ref)
        assert podman.inspect(ref)["Digest"] == image.digest
        pushed = image_ref(f"{ns}/pushed", "podman")
        podman("tag", ref, pushed)
        podman("push", "--tls-verify=false", "--authfile", authfile, pushed)
        r = get_manifest(Client(url_a()), f"{ns}/pushed", "podman")
        assert r.status == 200, f"the image podman pushed is not there: {r.summary()}"
        # Outside the policy's namespace the same login is refused.
        outside = image_ref(unique_ns("podman-out") + "/x", "podman")
        podman("tag", ref, outside)
        p = podman("push", "--tls-verify=false", "--authfile", authfile, outside, check=False)
        assert p.returncode != 0, "podman pushed outside the user's namespace"
        err = p.stderr.decode(errors="replace")
        assert "403" in err or "denied" in err.lower(), f"podman's refusal: {err[-800:]}"


def test_skopeo_login_with_access_key_then_pull_and_push():
    ns = unique_ns("skopeo")
    with TempDir() as tmp, User("skopeo", policies={"rw": policy(allow(PULL_PUSH, f"{ns}/*"))}) as u, \
            User("skopeo-ro", policies={"ro": policy(allow(PULL_ACTIONS, f"{ns}/*"))}) as ro:
        image = build_image_layout(tmp.sub("src"), "1", layer_sizes=(1024, 30 * 1024))
        host = registry_host(url_a())
        authfile, ro_auth = tmp.sub("auth.json"), tmp.sub("ro-auth.json")
        wrong = flip_last_char(u.secret)
        remember(wrong)
        p = skopeo_cmd("login", "--tls-verify=false", "--authfile", authfile, "-u", u.key_id, "-p", wrong, host,
                       check=False)
        assert p.returncode != 0, "skopeo login with a wrong secret succeeded"
        skopeo_cmd("login", "--tls-verify=false", "--authfile", authfile, "-u", u.key_id, "-p", u.secret, host)
        skopeo_cmd("login", "--tls-verify=false", "--authfile", ro_auth, "-u", ro.key_id, "-p", ro.secret, host)
        dest = f"docker://{host}/{ns}/app:1"
        skopeo_cmd("copy", "--authfile", authfile, "--dest-tls-verify=false", f"oci:{tmp.sub('src')}:1", dest)
        skopeo_cmd("copy", "--authfile", ro_auth, "--src-tls-verify=false", dest, f"oci:{tmp.sub('back')}:1")
        assert_layout_holds(tmp.sub("back"), "1", image)
        # The read-only user cannot push, with skopeo or by hand.
        p = skopeo_cmd("copy", "--authfile", ro_auth, "--dest-tls-verify=false", f"oci:{tmp.sub('src')}:1",
                       f"docker://{host}/{ns}/ro:1", check=False)
        assert p.returncode != 0, "a read-only user pushed"
        err = p.stderr.decode(errors="replace")
        assert "denied" in err.lower() or "ecr:" in err, f"skopeo's refusal: {err[-800:]}"
        denied(ro.client().post(f"/v2/{ns}/app/blobs/uploads/"), "ecr:InitiateLayerUpload", f"{ns}/app")
        # skopeo login with an expired login password fails.
        p = skopeo_cmd("login", "--tls-verify=false", "--authfile", tmp.sub("x.json"), "-u", "AWS", "-p",
                       u.login_password(hours=0), host, check=False)
        assert p.returncode != 0, "skopeo login with an expired login password succeeded"


def test_anonymous_access_only_where_a_policy_allows_it():
    ns = unique_ns("anon")
    pub, priv = f"{ns}/public", f"{ns}/private"
    with TempDir() as tmp, Podman() as podman:
        # An empty auth file, so that no stored login can make these pulls anything but anonymous.
        no_auth = tmp.sub("no-auth.json")
        with open(no_auth, "w") as f:
            f.write('{"auths": {}}')

        def anonymous_pull(ref, check=True):
            return podman("pull", "--tls-verify=false", "--authfile", no_auth, ref, check=check)
        image = build_image_layout(tmp.sub("src"), "1", layer_sizes=(1024, 10 * 1024))
        skopeo("copy", f"oci:{tmp.sub('src')}:1", docker_ref(pub, "1"))
        skopeo("copy", f"oci:{tmp.sub('src')}:1", docker_ref(priv, "1"))
        anon = Client(url_a(), auth=None)
        # Off: 401 with the challenge, podman and skopeo refused.
        r = anon.get(f"/v2/{pub}/manifests/1")
        denied(r, "ecr:BatchGetImage", pub, reason="", anonymous=True)
        assert challenge_params(r.header("WWW-Authenticate")).get("scope") == f"repository:{pub}:pull", r.summary()
        p = anonymous_pull(image_ref(pub, "1"), check=False)
        assert p.returncode != 0, "anonymous podman pull worked without a policy"
        anyone = policy(allow(PULL_ACTIONS, pub, sid="PublicPull", principal="*"))
        with RepositoryPolicy(pub, anyone):
            policy_settle()
            access_log = os.path.join(state_dir(), "log", "apache-access.log")
            with open(access_log, "rb") as f:
                start = len(f.read())
            anonymous_pull(image_ref(pub, "1"))
            with open(access_log, "rb") as f:
                new = urllib.parse.unquote(f.read()[start:].decode(errors="replace"))
            assert f"/token?" in new and f"repository:{pub}:pull" in new, \
                f"the anonymous pull did not go through an anonymous token: {new[-1500:]}"
            assert podman.inspect(image_ref(pub, "1"))["Digest"] == image.digest
            skopeo("copy", "--src-no-creds", docker_ref(pub, "1"), f"oci:{tmp.sub('back')}:1")
            assert_layout_holds(tmp.sub("back"), "1", image)
            r = anon.get(f"/v2/{pub}/manifests/1")
            assert r.status == 200 and r.header("Docker-Content-Digest") == image.digest, r.summary()
            # An anonymous token for it works; the login challenge at /v2/ stays.
            tok = token_for(None, [f"repository:{pub}:pull"])
            assert anon.get(f"/v2/{pub}/blobs/{image.layers[0].digest}", headers=bearer(tok)).status == 200
            assert anon.get("/v2/").status == 401
            # Only pulls, only there.
            denied(anon.post(f"/v2/{pub}/blobs/uploads/"), "ecr:InitiateLayerUpload", pub, reason="",
                   anonymous=True)
            denied(anon.get(f"/v2/{pub}/tags/list"), "ecr:ListImages", pub, reason="", anonymous=True)
            denied(anon.get(f"/v2/{priv}/manifests/1"), "ecr:BatchGetImage", priv, reason="", anonymous=True)
            tok = token_for(None, [f"repository:{priv}:pull"])
            r = anon.get(f"/v2/{priv}/manifests/1", headers=bearer(tok))
            assert r.status == 401, f"anonymous token opened a private repository: {r.summary()}"
            p = anonymous_pull(image_ref(priv, "1"), check=False)
            assert p.returncode != 0, "anonymous podman pull of a private repository worked"
            r = anon.get("/v2/_catalog")
            if r.status == 200:
                assert not [n for n in r.json().get("repositories", []) if n.startswith(ns)], r.summary()
            else:
                assert r.status == 401, r.summary()
        # Policy deleted: off again.
        policy_settle()
        denied(anon.get(f"/v2/{pub}/manifests/1"), "ecr:BatchGetImage", pub, reason="", anonymous=True)
        podman("rmi", "--all", "--force")
        p = anonymous_pull(image_ref(pub, "1"), check=False)
        assert p.returncode != 0, "anonymous podman pull worked after the policy was deleted"


def test_basic_scheme_node_clients_send_basic_on_every_request():
    """A third node with auth_scheme = basic: the challenge is Basic, skopeo and podman log in
    with an access key or a login password and send them on every request (no /token)."""
    src, state = env("PIER_SRC"), os.path.join(env("PIER_TEST_DIR"), "c-auth")
    port = int(env("PIER_URL").rsplit(":", 1)[1]) + 2
    base = f"http://127.0.0.1:{port}"
    host = f"127.0.0.1:{port}"
    node_env = dict(os.environ, PIER_STATE_DIR=state, PIER_PORT=str(port), PIER_WORKERS="2",
                    PIER_DATABASE=env("PIER_DB"), PIER_BLOB_ROOT=env("PIER_BLOB_ROOT"),
                    PIER_SERVER_KEY_FILE=os.path.join(env("PIER_STATE_DIR"), "server.key"))
    p = subprocess.run([os.path.join(src, "quickstart.sh"), "start"], env=node_env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"node c did not start: {p.stdout}\n{p.stderr}"
    try:
        with open(os.path.join(state, "pier.conf"), "a") as f:
            f.write("auth_scheme = basic\n")
        with open(os.path.join(state, "run", "pierd.pid")) as f:
            os.kill(int(f.read()), signal.SIGHUP)

        def basic_challenge():
            r = Client(base, auth=None).get("/v2/")
            return r.status == 401 and r.header("WWW-Authenticate") == 'Basic realm="pier"'
        assert wait_until(basic_challenge, 15, 0.2), \
            f"node c does not challenge with Basic: {Client(base, auth=None).get('/v2/').summary()}"
        ns = unique_ns("basic")
        with TempDir() as tmp, Podman() as podman, \
                User("basic", policies={"rw": policy(allow(PULL_PUSH, f"{ns}/*"))}) as u:
            image = build_image_layout(tmp.sub("src"), "1", layer_sizes=(1024, 8 * 1024))
            access_log = os.path.join(state, "log", "apache-access.log")
            with open(access_log, "rb") as f:
                start = len(f.read())
            authfile = tmp.sub("skopeo-auth.json")
            wrong = flip_last_char(u.secret)
            remember(wrong)
            p = skopeo_cmd("login", "--tls-verify=false", "--authfile", authfile, "-u", u.key_id, "-p", wrong, host,
                           check=False)
            assert p.returncode != 0, "skopeo login with a wrong secret succeeded on the basic node"
            skopeo_cmd("login", "--tls-verify=false", "--authfile", authfile, "-u", u.key_id, "-p", u.secret, host)
            skopeo_cmd("copy", "--authfile", authfile, "--dest-tls-verify=false", f"oci:{tmp.sub('src')}:1",
                       f"docker://{host}/{ns}/app:1")
            skopeo_cmd("copy", "--authfile", authfile, "--src-tls-verify=false", f"docker://{host}/{ns}/app:1",
                       f"oci:{tmp.sub('back')}:1")
            assert_layout_holds(tmp.sub("back"), "1", image)
            podman_auth = tmp.sub("podman-auth.json")
            podman("login", "--tls-verify=false", "--authfile", podman_auth, "-u", "AWS", "--password-stdin", host,
                   input=(u.login_password() + "\n").encode())
            podman("pull", "--tls-verify=false", "--authfile", podman_auth, f"{host}/{ns}/app:1")
            assert podman.inspect(f"{host}/{ns}/app:1")["Digest"] == image.digest
            # Outside the policy: refused with 403 on this node too.
            other = f"{ns}-other/x"
            no_statement_allows(Client(base, auth=u.creds).get(f"/v2/{other}/manifests/1"), "ecr:BatchGetImage", other)
            time.sleep(0.3)
            with open(access_log, "rb") as f:
                lines = f.read()[start:].decode(errors="replace").splitlines()
            assert any(f"/v2/{ns}/app/manifests/1" in line for line in lines), "node c's access log shows no pull"
            tokens = [line for line in lines if '"GET /token' in line]
            assert not tokens, f"clients asked a basic-scheme node for tokens: {tokens[:3]}"
    finally:
        subprocess.run([os.path.join(src, "quickstart.sh"), "stop"], env=node_env, capture_output=True, timeout=120)
