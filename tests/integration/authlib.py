"""Helpers for the identity and access tests (test_auth_*.py).

Python 3.11 standard library only.

  User            a principal made with `pierctl user create` (a role with
                  role=True), with its access key; identity policies, login
                  passwords; deleted on exit
  RegistryPolicy  sets the registry policy for a block and puts the previous
                  one (or none) back on exit
  RepositoryPolicy  the same for one repository's policy
  policy()        builds a policy document from statements
  allow(), deny() statements
  denied()        checks a 403 DENIED / 401 UNAUTHORIZED answer and its message
  SECRETS         every credential the tests used, for the log check
  forge_bearer()  a bearer token signed with the server key (to test expiry)

Policies are cached by each worker for up to 1 s: after changing one, call
policy_settle() before asserting its effect. A principal created after the
workers last looked is not cached anywhere, so policies put on a fresh user
before its first request need no wait.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
import urllib.parse
import uuid

from pierlib import (
    RUN_ID, Client, PreconditionError, Response, basic_auth, env, oci_errors, psql_value, sql_str, url_a,
)
from upstreams import pierctl

ACCOUNT = "111122223333"
REGION = "us-east-1"
POLICY_CACHE_SETTLE = 1.5

PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
PUSH_ACTIONS = ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"]
IMPORT_ACTIONS = ["ecr:CreateRepository", "ecr:BatchImportUpstreamImage"]

# Every secret, password and token the auth tests handled; test_auth_secrets_not_logged
# looks for each of them in the logs.
SECRETS: list[str] = []


def remember(*values: str) -> None:
    for v in values:
        if v and v not in SECRETS:
            SECRETS.append(v)


def repo_arn(name: str) -> str:
    return f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}"


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def unique_ns(label: str = "auth") -> str:
    """A repository namespace nobody else uses: it-<run>-<label>-<random>."""
    return f"it-{RUN_ID}-{label}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------------------
# policy documents


def statement(effect: str, actions, resources="*", sid: str | None = None, principal=None,
              condition: dict | None = None) -> dict:
    """One statement; resources are repository names (or patterns), ARNs, or "*"."""
    def arn(r):
        return r if r == "*" or r.startswith("arn:") else repo_arn(r)
    st: dict = {}
    if sid:
        st["Sid"] = sid
    st["Effect"] = effect
    if principal is not None:
        st["Principal"] = principal
    st["Action"] = actions if isinstance(actions, str) else list(actions)
    st["Resource"] = arn(resources) if isinstance(resources, str) else [arn(r) for r in resources]
    if condition:
        st["Condition"] = condition
    return st


def allow(actions, resources="*", **kw) -> dict:
    return statement("Allow", actions, resources, **kw)


def deny(actions, resources="*", **kw) -> dict:
    return statement("Deny", actions, resources, **kw)


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def aws_principal(*arns: str) -> dict:
    return {"AWS": arns[0] if len(arns) == 1 else list(arns)}


def policy_settle() -> None:
    """Wait until every worker's policy cache (1 s) has expired."""
    time.sleep(POLICY_CACHE_SETTLE)


def ctl_ok(*args: str, input: str | None = None) -> str:
    p = pierctl(*args, input=input)
    assert p.returncode == 0, f"pierctl {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}"
    return p.stdout


# ---------------------------------------------------------------------------
# principals


class User:
    """A principal made with pierctl, with its first access key; deleted on exit.

        with User("reader", policies={"pull": policy(allow(PULL_ACTIONS))}) as u:
            u.client().get(...)
    """

    def __init__(self, label: str = "u", policies: dict[str, str] | None = None, admin: bool = False,
                 role: bool = False):
        self.name = f"{label}-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        self.role = role
        self.arn = role_arn(self.name) if role else user_arn(self.name)
        self.key_id = self.secret = None
        self.admin = admin
        self.initial_policies = policies or {}
        self.created = False

    def create(self) -> "User":
        args = ["user", "create", self.name] + (["--admin"] if self.admin else []) + \
            (["--role"] if self.role else [])
        out = ctl_ok(*args)
        vals = {}
        for line in out.splitlines():
            if line.startswith("role " if self.role else "user "):
                vals["user"] = line.split(None, 1)[1].strip()
            elif "=" in line:
                k, v = line.strip().split("=", 1)
                vals[k] = v
        assert vals.get("user") == self.arn, f"user create printed {out!r}, expected ARN {self.arn}"
        assert vals.get("AWS_ACCESS_KEY_ID") and vals.get("AWS_SECRET_ACCESS_KEY"), out
        self.key_id, self.secret = vals["AWS_ACCESS_KEY_ID"], vals["AWS_SECRET_ACCESS_KEY"]
        remember(self.secret, base64.b64encode(f"{self.key_id}:{self.secret}".encode()).decode())
        self.created = True
        for name, doc in self.initial_policies.items():
            self.put_policy(name, doc)
        return self

    @property
    def creds(self) -> tuple[str, str]:
        return self.key_id, self.secret

    @property
    def creds_arg(self) -> str:
        """id:secret, for skopeo --src-creds and podman --creds."""
        return f"{self.key_id}:{self.secret}"

    def client(self, base_url: str | None = None) -> Client:
        return Client(base_url or url_a(), auth=self.creds)

    def put_policy(self, name: str, doc: str) -> None:
        ctl_ok("policy", "identity", "put", self.name, name, "-", input=doc)

    def delete_policy(self, name: str) -> None:
        ctl_ok("policy", "identity", "delete", self.name, name)

    def login_password(self, hours: int | None = None) -> str:
        args = ["login-password", self.name] + (["--hours", str(hours)] if hours is not None else [])
        pw = ctl_ok(*args).strip()
        assert pw.startswith("PIER1.") and "\n" not in pw, f"login-password printed {pw!r}"
        remember(pw, base64.b64encode(f"AWS:{pw}".encode()).decode())
        return pw

    def new_key(self) -> tuple[str, str]:
        out = ctl_ok("key", "create", self.name)
        vals = dict(line.strip().split("=", 1) for line in out.splitlines() if "=" in line)
        key_id, secret = vals["AWS_ACCESS_KEY_ID"], vals["AWS_SECRET_ACCESS_KEY"]
        remember(secret, base64.b64encode(f"{key_id}:{secret}".encode()).decode())
        return key_id, secret

    def delete(self) -> None:
        if self.created:
            pierctl("user", "delete", self.name)
            self.created = False

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.delete()


# ---------------------------------------------------------------------------
# registry and repository policies (restored on exit)


class RegistryPolicy:
    """Sets the registry policy on entry (and on put()), restores the previous one on exit."""

    def __init__(self, doc: str | None = None):
        self.doc = doc
        self.previous: str | None = None

    def put(self, doc: str, settle: bool = True) -> None:
        ctl_ok("policy", "registry", "put", "-", input=doc)
        self.doc = doc
        if settle:
            policy_settle()

    def __enter__(self):
        p = pierctl("policy", "registry", "get")
        self.previous = p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None
        if self.doc is not None:
            self.put(self.doc, settle=False)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            pierctl("policy", "registry", "put", "-", input=self.previous)
        else:
            pierctl("policy", "registry", "delete")


class RepositoryPolicy:
    """Sets a repository's policy on entry, deletes it on exit (the repository must exist)."""

    def __init__(self, repo: str, doc: str):
        self.repo, self.doc = repo, doc

    def __enter__(self):
        ctl_ok("policy", "repository", "put", self.repo, "-", input=self.doc)
        return self

    def __exit__(self, *exc):
        pierctl("policy", "repository", "delete", self.repo)


# ---------------------------------------------------------------------------
# answers


def error_message(r: Response) -> str:
    return " ".join(e.get("message", "") for e in oci_errors(r))


def denied(r: Response, action: str, repo: str, reason: str = "no statement", anonymous: bool = False) -> str:
    """r is the refusal of `action` on `repo`: 403 DENIED (401 UNAUTHORIZED with a Bearer
    challenge when anonymous) whose message names the action, the ARN and the reason.
    Returns the message."""
    want_status, want_code = (401, "UNAUTHORIZED") if anonymous else (403, "DENIED")
    assert r.status == want_status, f"expected {want_status} for {action} on {repo}: {r.summary()}"
    errs = oci_errors(r)
    codes = [e.get("code") for e in errs]
    assert want_code in codes, f"expected {want_code}, got {codes}: {r.summary()}"
    msg = error_message(r)
    assert action in msg, f"the message does not name {action}: {msg!r}"
    assert repo_arn(repo) in msg, f"the message does not name {repo_arn(repo)}: {msg!r}"
    if reason:
        assert reason in msg, f"the message does not say {reason!r}: {msg!r}"
    if anonymous:
        challenge = r.header("WWW-Authenticate") or ""
        assert challenge.startswith("Bearer ") and 'service="pier"' in challenge, \
            f"anonymous refusal without a Bearer challenge: {r.summary()}"
    mentioned = set(re.findall(r"repository/([a-z0-9](?:[a-z0-9._/-]*[a-z0-9])?)", msg))
    assert mentioned <= {repo}, f"the message mentions other repositories {mentioned - {repo}}: {msg!r}"
    return msg


def no_statement_allows(r: Response, action: str, repo: str) -> str:
    return denied(r, action, repo, "no statement")


def explicitly_denied(r: Response, action: str, repo: str, sid: str, where: str) -> str:
    return denied(r, action, repo, f'explicitly denied by statement "{sid}" of the {where}')


def challenge_params(value: str) -> dict[str, str]:
    """{'scheme': 'Bearer', 'realm': ..., 'service': ..., 'scope': ...} of a WWW-Authenticate value."""
    scheme, _, rest = value.partition(" ")
    out = {"scheme": scheme}
    for k, v in re.findall(r'(\w+)="([^"]*)"', rest):
        out[k] = v
    return out


# ---------------------------------------------------------------------------
# tokens


def get_token(base_url: str | None, scopes=(), creds: tuple[str, str] | None = None) -> Response:
    """GET /token?service=pier&scope=...; creds None means anonymous."""
    q = [("service", "pier")] + [("scope", s) for s in scopes]
    path = "/token?" + urllib.parse.urlencode(q)
    return Client(base_url or url_a(), auth=creds).get(path)


def token_for(creds, scopes, base_url: str | None = None) -> str:
    r = get_token(base_url, scopes, creds)
    assert r.status == 200, f"token request failed: {r.summary()}"
    doc = r.json()
    tok = doc.get("token")
    assert isinstance(tok, str) and tok.startswith("PIER1."), doc
    remember(tok)
    return tok


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def token_claims(token: str) -> dict:
    body = token[len("PIER1."):].rsplit(".", 1)[0]
    return json.loads(_unb64url(body))


def server_key() -> bytes:
    """Node A's server key (32 bytes, base64 in <state>/server.key)."""
    path = os.path.join(env("PIER_STATE_DIR"), "server.key")
    try:
        with open(path) as f:
            key = base64.b64decode(f.read().strip())
    except OSError as e:
        raise PreconditionError(f"precondition missing: cannot read {path}: {e}") from None
    if len(key) != 32:
        raise PreconditionError(f"precondition missing: {path} does not hold 32 bytes")
    return key


def sign_token(claims: dict, label: str = "pier bearer token v1") -> str:
    """A token signed like the server signs them (key = HMAC-SHA256(server key, label))."""
    key = hmac.new(server_key(), label.encode(), hashlib.sha256).digest()
    body = _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signed = "PIER1." + body
    mac = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    tok = signed + "." + _b64url(mac)
    remember(tok)
    return tok


def forge_bearer(user: User, repo: str, actions=("pull",), exp: int | None = None) -> str:
    pid = principal_id(user.name)
    claims = {"access": [{"n": repo, "a": list(actions)}], "catalog": False, "sub": user.arn,
              "pid": pid, "typ": "bearer", "exp": exp if exp is not None else int(time.time()) + 300}
    return sign_token(claims)


def principal_id(name: str) -> int:
    v = psql_value(f"SELECT id FROM principals WHERE name = {sql_str(name)}")
    assert v is not None, f"no principals row for {name}"
    return int(v)


def tamper_payload(token: str, change) -> str:
    """The token with its claims changed by change(claims) but the original signature."""
    prefix, rest = token[:len("PIER1.")], token[len("PIER1."):]
    body, sig = rest.rsplit(".", 1)
    claims = json.loads(_unb64url(body))
    change(claims)
    return prefix + _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()) + "." + sig


def flip_last_char(s: str) -> str:
    """s with its last character changed (for secrets and passwords, not for base64 text)."""
    return s[:-1] + ("A" if s[-1] != "A" else "B")


def tamper_signature(token: str) -> str:
    """The token with the first character of its signature changed (the last character of
    base64 text may carry only padding bits, so changing it need not change the bytes)."""
    head, sig = token.rsplit(".", 1)
    return head + "." + ("B" if sig[0] != "B" else "C") + sig[1:]


def basic(user: str, password: str) -> dict:
    return {"Authorization": basic_auth(user, password)}
