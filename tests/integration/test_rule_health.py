"""Upstream health per rule and validation in words: ValidatePullThroughCacheRule
tells an unreachable upstream from a TLS failure, refused credentials, a server
that is not a registry and a rate limit (pierFailureClass, failure); the health
of each rule's upstream (failing since, rate-limited until, last success and
failure, recent error rate) is shared by both nodes and clears as soon as a
fetch or a validation succeeds; UpdatePullThroughCacheRule changes every rule
setting; the console tries an upstream before a rule is saved, and only for
principals who may create rules."""

import http.server
import json
import os
import time

from pierlib import (
    TempDir, admin_creds, build_image_layout, client_a, client_b, ecr_client, expect_status, psql_value,
    signed_api_request, url_a, url_b, wait_until,
)
from authlib import User, allow, policy, policy_settle
from upstreams import (
    CacheRule, DockerRegistry, _QuietHandler, _ThreadedServer, get_manifest, self_signed_cert, unique_prefix,
    upstream_port,
)
from test_console_api import Console, error_type


def forget_rule(*prefixes):
    for p in prefixes:
        try:
            ecr_client().delete_pull_through_cache_rule(ecrRepositoryPrefix=p)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def describe(prefix, base_url=None):
    """DescribePullThroughCacheRules for one prefix as the wire carries it (boto3
    drops Pier's extension fields)."""
    r = signed_api_request("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [prefix]}, base_url=base_url)
    assert r.status == 200, r.summary()
    rules = r.json()["pullThroughCacheRules"]
    assert len(rules) == 1, rules
    return rules[0]


def validate(prefix, base_url=None):
    r = signed_api_request("ValidatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix}, base_url=base_url)
    assert r.status == 200, r.summary()
    return r.json()


def create(prefix, url, **extra):
    r = signed_api_request("CreatePullThroughCacheRule",
                           {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": url, **extra})
    assert r.status == 200, r.summary()
    return r.json()


def update(prefix, **fields):
    return signed_api_request("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": prefix, **fields})


class _TooManyHandler(_QuietHandler):
    def _answer(self):
        self.send_json(429, {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]},
                       extra=[("Retry-After", "42")])

    do_GET = _answer
    do_HEAD = _answer


class TooManyRequests(_ThreadedServer):
    """A server that answers every request 429 with Retry-After: 42 (no real
    registry here rate-limits on demand)."""

    handler_class = _TooManyHandler


class _WebHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass


class PlainWebServer(_ThreadedServer):
    """A plain HTTP file server (the standard library's), serving a directory
    with an index page: a web site, not a registry."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "index.html"), "w") as f:
            f.write("<html><body>A web site</body></html>\n")
        d = directory

        class Handler(_WebHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=d, **kw)

        self.handler_class = Handler


def test_validate_says_what_went_wrong_in_words_and_class():
    """Each kind of failure gets its own class and sentence: a closed port is
    unreachable, a certificate nobody trusts is TLS (and the rule's CA bundle
    fixes it), a wrong password is refused credentials, not "could not reach",
    a web server is not a registry, a 429 is a rate limit with its Retry-After."""
    prefixes = {k: unique_prefix(k[:2]) for k in ("dead", "tls", "auth", "web", "rate", "nocreds")}
    with TempDir() as tmp, DockerRegistry(auth="htpasswd") as locked, \
            DockerRegistry(tls=self_signed_cert(tmp.path, "up")) as tls_up, \
            PlainWebServer(tmp.sub("site")) as web, TooManyRequests() as many:
        cert_pem = open(os.path.join(tmp.path, "up.pem")).read()
        dead_url = f"http://127.0.0.1:{upstream_port()}"
        try:
            create(prefixes["dead"], dead_url)
            create(prefixes["tls"], tls_up.url)
            create(prefixes["web"], web.url)
            create(prefixes["rate"], many.url)
            create(prefixes["nocreds"], locked.url)
            CacheRule(locked.url, prefix=prefixes["auth"], secret="not-" + locked.password,
                      username=locked.username).create()

            want = {
                "dead": ("unreachable", "unreachable"),
                "tls": ("tls", "tls"),
                "auth": ("auth-refused", "credentials refused"),
                "web": ("not-a-registry", "not a registry"),
                "rate": ("rate-limited", "rate-limited"),
                "nocreds": ("auth-refused", "credentials needed"),
            }
            problems = []
            for k, (cls, words) in want.items():
                v = validate(prefixes[k])
                if v.get("isValid") is not False or v.get("pierFailureClass") != cls or \
                        words not in (v.get("failure") or "").lower():
                    problems.append(f"{k}: expected {cls} / '{words}', got {v}")
            assert not problems, "\n".join(problems)
            # "could not reach" is only for what Pier did not reach.
            v = validate(prefixes["auth"])
            assert "could not" not in v["failure"].lower() and "401" in v["failure"], v
            v = validate(prefixes["rate"])
            assert v.get("pierRetryAfterSeconds") == 42 and "42" in v["failure"], v

            # The TLS upstream with its certificate as the rule's CA bundle: valid.
            r = update(prefixes["tls"], pierCaBundle=cert_pem)
            assert r.status == 200, r.summary()
            v = validate(prefixes["tls"])
            assert v["isValid"] is True and v["pierFailureClass"] == "ok" and "failure" not in v, v
            # Credentials fixed: valid, class ok.
            CacheRule(locked.url, prefix=prefixes["auth"]).update(secret=locked.password, username=locked.username)
            v = validate(prefixes["auth"])
            assert v["isValid"] is True and v["pierFailureClass"] == "ok", v
        finally:
            forget_rule(*prefixes.values())


def test_upstream_health_is_shared_by_both_nodes_and_recovers():
    """A failing upstream is "failing since T" on both nodes with its class and
    error rate; a validation that succeeds clears it at once, and so does a fetch
    that succeeds; a 429 is "rate-limited until" now + Retry-After."""
    with DockerRegistry() as up, TempDir() as tmp:
        build_image_layout(tmp.sub("img"), "1.0", layer_sizes=(1024,))
        up.push_layout(tmp.sub("img"), "1.0", "library/app")
        with CacheRule(up.url, refresh=0) as rule:
            repo = rule.repo("library/app")
            h = describe(rule.prefix)["pierUpstreamHealth"]
            assert h["state"] == "unknown" and h["recentAttempts"] == 0, h
            expect_status(get_manifest(client_a(), repo, "1.0"), 200, "upstream up")
            h = describe(rule.prefix, url_b())["pierUpstreamHealth"]
            assert h["state"] == "healthy" and h["lastSuccessAt"] >= time.time() - 60, h

            up.stop()
            before = time.time()
            r = get_manifest(client_a(), repo, "2.0")
            assert r.status == 502, r.summary()
            # Node B sees node A's failure (the database, not a worker's memory).
            h = describe(rule.prefix, url_b())["pierUpstreamHealth"]
            assert h["state"] == "failing", h
            assert before - 2 <= h["failingSince"] <= time.time() + 2, h
            assert h["lastFailureClass"] == "unreachable" and "unreachable" in h["lastFailure"].lower(), h
            assert h.get("lastSuccessAt"), h
            shown = rule.show().get("upstreamHealth", {})
            assert shown.get("state") == "failing" and shown.get("lastFailureClass") == "unreachable", \
                f"pierctl rule show: {shown}"
            # The error rate: counters reach the database within a few seconds.
            wait_until(lambda: describe(rule.prefix)["pierUpstreamHealth"]["recentErrors"] >= 1, timeout=15)
            h = describe(rule.prefix)["pierUpstreamHealth"]
            assert h["recentAttempts"] >= h["recentErrors"] >= 1 and h["recentWindowSeconds"] == 900, h
            rows = int(psql_value(f"SELECT count(*) FROM upstream_health_minutes WHERE rule_id = "
                                  f"(SELECT id FROM cache_rules WHERE prefix = '{rule.prefix}')"))
            assert 1 <= rows <= 21, f"{rows} minute rows for one rule"
            # Still failing on a second failure: the time it started stays.
            since = h["failingSince"]
            assert validate(rule.prefix, url_b())["isValid"] is False
            h = describe(rule.prefix)["pierUpstreamHealth"]
            assert h["state"] == "failing" and h["failingSince"] == since, h

            # Recovery by validation, on the other node: cleared at once for both.
            up.start()
            v = validate(rule.prefix, url_b())
            assert v["isValid"] is True, v
            h = describe(rule.prefix, url_a())["pierUpstreamHealth"]
            assert h["state"] == "healthy" and "failingSince" not in h, h
            # The last failure is still told, as the last failure.
            assert h["lastFailureClass"] == "unreachable" and h["lastSuccessAt"] >= h["lastFailureAt"], h

            # Recovery by a fetch.
            up.stop()
            assert get_manifest(client_b(), repo, "3.0").status == 502
            assert describe(rule.prefix)["pierUpstreamHealth"]["state"] == "failing"
            up.start()
            # A worker writes an unchanged state at most every 5 s: past that, the
            # first fetch that succeeds, on any worker, clears "failing".
            time.sleep(5.2)
            expect_status(get_manifest(client_a(), repo, "1.0"), 200, "upstream back (refresh 0: asked)")
            h = describe(rule.prefix, url_b())["pierUpstreamHealth"]
            assert h["state"] == "healthy", f"a fetch that succeeded did not clear 'failing': {h}"

    with TooManyRequests() as many, CacheRule(many.url) as rule:
        r = get_manifest(client_a(), rule.repo("library/x"), "1.0")
        assert r.status in (429, 502, 503), r.summary()
        h = describe(rule.prefix, url_b())["pierUpstreamHealth"]
        assert h["state"] == "rate-limited" and h["lastFailureClass"] == "rate-limited", h
        assert time.time() + 30 <= h["rateLimitedUntil"] <= time.time() + 45, h


def test_update_rule_changes_every_setting_and_removes_them():
    """UpdatePullThroughCacheRule's extension fields do what pierctl rule update
    does: refresh interval, negative-cache time, CA bundle (set, removed), a new
    upstream URL, credentials removed; Describe reads them back."""
    with TempDir() as tmp, DockerRegistry(auth="htpasswd") as one, DockerRegistry() as two:
        cert, _ = self_signed_cert(tmp.path, "ca")
        pem = open(cert).read()
        with CacheRule(one.url, secret=one.password, username=one.username) as rule:
            d = describe(rule.prefix)
            assert d["pierRefreshSeconds"] == 86400 and d["pierNegativeSeconds"] == 300, d
            assert d["pierHasCredentials"] is True and "pierCaBundle" not in d, d

            r = update(rule.prefix, pierRefreshSeconds=600, pierNegativeSeconds=30, pierCaBundle=pem)
            assert r.status == 200, r.summary()
            assert r.json()["pierRefreshSeconds"] == 600 and r.json()["pierCaBundle"] == pem, r.json()
            shown = rule.show()
            assert shown["refreshIntervalSeconds"] == 600 and shown["negativeCacheSeconds"] == 30, shown
            assert shown["hasCaBundle"] is True, shown

            # Out of range and contradictory requests change nothing.
            for bad in ({"pierRefreshSeconds": -1}, {"pierNegativeSeconds": 8 * 86400},
                        {"pierCaBundle": "not a certificate"},
                        {"pierRemoveCredentials": True, "credentialArn": "arn:aws:secretsmanager:x"}):
                r = update(rule.prefix, **bad)
                assert r.status == 400 and r.json()["__type"].endswith("InvalidParameterException"), \
                    f"{bad}: {r.summary()}"
            assert rule.show()["refreshIntervalSeconds"] == 600

            # A new upstream, without credentials and without the CA bundle.
            r = update(rule.prefix, pierUpstreamRegistryUrl=two.url, pierRemoveCredentials=True, pierCaBundle="")
            assert r.status == 200, r.summary()
            assert r.json()["pierUpstreamRegistryUrl"] == two.url, r.json()
            d = describe(rule.prefix)
            assert d["upstreamRegistryUrl"] == two.url and d["pierHasCredentials"] is False, d
            assert "pierCaBundle" not in d and "credentialArn" not in d, d
            shown = rule.show()
            assert shown["hasCredentials"] is False and shown["hasCaBundle"] is False, shown
            v = validate(rule.prefix)
            assert v["isValid"] is True, f"the new upstream (anonymous) should validate: {v}"
            # The old upstream's tokens and settings are gone with it.
            assert shown["refreshIntervalSeconds"] == 600 and shown["negativeCacheSeconds"] == 30, shown


def test_console_tests_an_upstream_before_saving_and_refuses_without_permission():
    """rules/test tries URL + credentials without storing anything: wrong
    credentials are refused credentials, right ones are ok; a rule's saved
    credentials are used when editing; a principal who may not create rules is
    refused; the console overview carries each rule's health."""
    with DockerRegistry(auth="htpasswd") as up:
        admin = Console(url_a())
        assert admin.login(*admin_creds()).status == 200
        rules_before = int(psql_value("SELECT count(*) FROM cache_rules"))
        secrets_before = int(psql_value("SELECT count(*) FROM secrets"))
        r = admin.call("POST", "rules/test", {"upstreamRegistryUrl": up.url, "username": up.username,
                                              "accessToken": "wrong"})
        assert r.status == 200, r.summary()
        doc = r.json()
        assert doc["isValid"] is False and doc["pierFailureClass"] == "auth-refused", doc
        assert "credentials refused" in doc["failure"].lower(), doc
        r = admin.call("POST", "rules/test", {"upstreamRegistryUrl": up.url, "username": up.username,
                                              "accessToken": up.password})
        assert r.status == 200 and r.json()["isValid"] is True and r.json()["pierFailureClass"] == "ok", r.summary()
        r = admin.call("POST", "rules/test", {"upstreamRegistryUrl": f"http://127.0.0.1:{upstream_port()}"})
        assert r.json()["pierFailureClass"] == "unreachable", r.summary()
        r = admin.call("POST", "rules/test", {"upstreamRegistryUrl": "ftp://x"})
        assert r.status == 400 and error_type(r) == "InvalidParameterException", r.summary()
        assert int(psql_value("SELECT count(*) FROM cache_rules")) == rules_before, "a test stored a rule"
        assert int(psql_value("SELECT count(*) FROM secrets")) == secrets_before, "a test stored a secret"

        with CacheRule(up.url, secret=up.password, username=up.username) as rule:
            # Editing: the saved credentials are tried unless others are given or removed.
            r = admin.call("POST", "rules/test", {"ecrRepositoryPrefix": rule.prefix})
            assert r.json()["isValid"] is True, r.summary()
            r = admin.call("POST", "rules/test", {"ecrRepositoryPrefix": rule.prefix, "pierRemoveCredentials": True})
            assert r.json()["pierFailureClass"] == "auth-refused" and "credentials needed" in r.json()["failure"].lower(), \
                r.summary()
            # A test leaves the saved rule's health alone.
            assert describe(rule.prefix)["pierUpstreamHealth"]["state"] == "unknown"

            # The overview: health per rule.
            assert validate(rule.prefix)["isValid"] is True
            r = admin.call("GET", "overview")
            mine = [x for x in r.json()["rules"] if x["prefix"] == rule.prefix]
            assert mine and mine[0]["health"]["state"] == "healthy", mine
            assert mine[0]["negativeSeconds"] == 300 and mine[0]["hasCaBundle"] is False, mine

            with User("rh-ro", policies={"read": policy(allow(["ecr:DescribePullThroughCacheRules"]))}) as u:
                policy_settle()
                c = Console(url_b())
                assert c.login(*u.creds).status == 200
                r = c.call("POST", "rules/test", {"upstreamRegistryUrl": up.url})
                assert r.status == 403 and error_type(r) == "AccessDeniedException", r.summary()
                assert "ecr:CreatePullThroughCacheRule" in r.json()["error"]["message"], r.summary()
                r = c.call("POST", "rules/test", {"ecrRepositoryPrefix": rule.prefix})
                assert r.status == 403 and "ecr:UpdatePullThroughCacheRule" in r.json()["error"]["message"], \
                    r.summary()
                # Reading the rules is allowed, and shows the health too.
                r = c.call("GET", "overview")
                assert r.status == 200 and all("health" in x for x in r.json()["rules"]), r.summary()
