"""Credentials never reach the logs: after the other test_auth_* modules (run
before this one in the same process) and a round of logins of its own, none
of the secrets, login passwords, bearer tokens, wrong passwords or Basic
headers used appears in pier.log or Apache's logs of either node (nor in
PostgreSQL's log). Denials and refused logins are logged, with the principal."""

import base64
import os
import time

from pierlib import Client, push_image, state_dir, url_a, url_b
from upstreams import pier_logs
from authlib import (
    PULL_ACTIONS, SECRETS, User, allow, basic, bearer, get_token, policy, remember, tamper_payload,
    tamper_signature, token_for, unique_ns,
)


def all_logs() -> dict[str, str]:
    logs = pier_logs()
    pg = os.path.join(state_dir(), "log", "postgresql.log")
    try:
        with open(pg, "rb") as f:
            logs[pg] = f.read().decode(errors="replace")
    except OSError:
        pass
    return logs


def variants(secret: str) -> list[str]:
    """The secret, and for tokens their signature on its own."""
    out = [secret]
    if secret.startswith("PIER1.") and secret.count(".") >= 2:
        sig = secret.rsplit(".", 1)[1]
        if len(sig) >= 20:
            out.append(sig)
    return out


def test_no_credential_appears_in_any_log():
    ns = unique_ns("logs")
    repo, hidden = f"{ns}/app", f"{ns}/hidden"
    admin = Client(url_a())
    push_image(admin, repo, "v1")
    push_image(admin, hidden, "v1")
    with User("logs", policies={"pull": policy(allow(PULL_ACTIONS, repo))}) as u:
        wrong = "Wr0ng" + os.urandom(16).hex()
        remember(wrong, base64.b64encode(f"{u.key_id}:{wrong}".encode()).decode())
        pw = u.login_password()
        expired = u.login_password(hours=0)
        tok = token_for(u.creds, [f"repository:{repo}:pull"])
        forged = tamper_payload(tok, lambda c: c.update(access=[{"n": hidden, "a": ["pull"]}]))
        remember(forged)
        for base in (url_a(), url_b()):
            c = Client(base, auth=None)
            assert c.get(f"/v2/{repo}/manifests/v1", headers=basic(*u.creds)).status == 200
            assert c.get(f"/v2/{repo}/manifests/v1", headers=basic("AWS", pw)).status == 200
            assert c.get(f"/v2/{repo}/manifests/v1", headers=bearer(tok)).status == 200
            assert c.get(f"/v2/{hidden}/manifests/v1", headers=basic("AWS", pw)).status == 403
            assert c.get(f"/v2/{repo}/manifests/v1", headers=basic(u.key_id, wrong)).status == 401
            assert c.get(f"/v2/{repo}/manifests/v1", headers=basic("AWS", expired)).status == 401
            assert c.get(f"/v2/{repo}/manifests/v1", headers=basic("AWS", wrong)).status == 401
            assert c.get(f"/v2/{hidden}/manifests/v1", headers=bearer(forged)).status == 401
            assert c.get(f"/v2/{repo}/manifests/v1", headers=bearer(tamper_signature(tok))).status == 401
            assert get_token(base, [f"repository:{repo}:pull"], (u.key_id, wrong)).status == 401
            assert get_token(base, [f"repository:{repo}:pull"], ("AWS", expired)).status == 401
        time.sleep(0.5)  # Apache writes its access log after the answer
        logs = all_logs()
        assert any(p.endswith("pier.log") for p in logs) and any("apache-access" in p for p in logs), \
            f"logs not found: {sorted(logs)}"
        pier_a = next(t for p, t in logs.items() if p.endswith("pier.log") and p.startswith(state_dir()))
        # Denials are logged with the principal; refused logins are logged (by key id, not secret).
        assert f"denied: {u.arn} ecr:BatchGetImage" in pier_a, "the denial of the hidden repository is not logged"
        assert u.key_id in pier_a, "the refused login with a wrong secret is not logged"
        remembered = list(SECRETS)
        assert u.secret in remembered and pw in remembered and tok in remembered and wrong in remembered
        leaks = []
        for s in remembered:
            for v in variants(s):
                for where, text in logs.items():
                    if v in text:
                        leaks.append(f"{os.path.basename(os.path.dirname(os.path.dirname(where)))}/"
                                     f"{os.path.basename(where)}: {v[:10]}...")
        assert not leaks, f"{len(leaks)} credentials found in logs ({len(remembered)} checked): {leaks[:10]}"
