"""Policy documents through pierctl: refused documents name the offending
element and change nothing; size and statement limits; conditions
(aws:SourceIp, aws:CurrentTime, aws:username) decide real requests; an
explicit Deny in any of the three kinds of policy wins."""

import json
from concurrent.futures import ThreadPoolExecutor

from pierlib import Client, push_image, url_a
from upstreams import pierctl
from authlib import (
    ACCOUNT, PULL_ACTIONS, RegistryPolicy, RepositoryPolicy, User, allow, aws_principal, ctl_ok, deny,
    explicitly_denied, no_statement_allows, policy, policy_settle, repo_arn, unique_ns,
)

V = "2012-10-17"


def doc(*statements, version=V) -> str:
    return json.dumps({"Version": version, "Statement": list(statements)})


def st(**kw) -> dict:
    out = {"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "*"}
    out.update(kw)
    return {k: v for k, v in out.items() if v is not None}


PRINCIPAL = {"AWS": f"arn:aws:iam::{ACCOUNT}:user/someone"}

# (where, document, text the error must contain: the JSON path of the offending element)
REFUSED = [
    ("identity", doc(st(Condition={"StringLik": {"aws:username": "a*"}})), "Statement[0].Condition.StringLik"),
    ("identity", doc(st(), st(Effect="Permit")), "Statement[1].Effect"),
    ("identity", doc(st(Action="s3:GetObject")), "Statement[0].Action"),
    ("identity", doc(st(Action=["ecr:BatchGetImage", "ecr:Batch-Get"])), "Statement[0].Action[1]"),
    ("identity", doc(st(), st(), st(Resource="repository/x")), "Statement[2].Resource"),
    ("identity", doc(st(Principal="*")), "Statement[0].Principal"),
    ("identity", doc(st(Actions="ecr:*", Action=None)), "Statement[0]"),
    ("identity", doc(st(Condition={"IpAddress": {"aws:SourceIp": "300.1.2.3/8"}})),
     "Statement[0].Condition.IpAddress.aws:SourceIp"),
    ("identity", doc(st(Condition={"IpAddress": {"aws:username": "10.0.0.0/8"}})),
     "Statement[0].Condition.IpAddress.aws:username"),
    ("identity", doc(st(Condition={"DateGreaterThan": {"aws:CurrentTime": "next tuesday"}})),
     "Statement[0].Condition.DateGreaterThan.aws:CurrentTime"),
    ("identity", doc(st(Condition={"StringEquals": {"aws:NoSuchKey": "x"}})),
     "Statement[0].Condition.StringEquals.aws:NoSuchKey"),
    ("identity", doc(st(), version="2020-01-01"), "Version"),
    ("identity", json.dumps({"Version": V, "Statement": []}), "Statement"),
    ("identity", '{"Version": "2012-10-17", "Statement": [', "not valid JSON"),
    ("registry", doc(st()), "Statement[0].Principal"),
    ("registry", doc(st(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:user/*"})), "Statement[0].Principal.AWS"),
    ("registry", doc(st(Principal=PRINCIPAL), st(Principal={"Service": "ecr.amazonaws.com"})),
     "Statement[1].Principal.Service"),
    ("repository", doc(st(Principal="someone")), "Statement[0].Principal"),
    ("repository", doc(st(Principal=PRINCIPAL, NotResource="*", Resource="*")), "Statement[0]"),
]


def put(where: str, user: str, repo: str, document: str):
    if where == "identity":
        return pierctl("policy", "identity", "put", user, "p-refused", "-", input=document)
    if where == "registry":
        return pierctl("policy", "registry", "put", "-", input=document)
    return pierctl("policy", "repository", "put", repo, "-", input=document)


def padded(size: int) -> str:
    """A valid identity policy of exactly `size` bytes (padded with spaces inside the object)."""
    base = doc(st(Sid="Padded"))
    assert len(base) < size
    return base[:-1] + " " * (size - len(base)) + "}"


def test_refused_documents_name_the_offending_element_and_change_nothing():
    ns = unique_ns("docs")
    repo = f"{ns}/app"
    push_image(Client(url_a()), repo, "v1")
    with User("docs") as u, RegistryPolicy():
        before = {
            "identity": ctl_ok("policy", "identity", "list", u.name),
            "registry": pierctl("policy", "registry", "get").stdout,
            "repository": pierctl("policy", "repository", "get", repo).stdout,
        }
        # The refused puts are independent: run them a few at a time.
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda case: put(case[0], u.name, repo, case[1]), REFUSED))
        for (where, document, path), p in zip(REFUSED, results):
            assert p.returncode == 1, f"{where} policy {document} was not refused: {p.returncode} {p.stdout!r}"
            assert path in p.stderr, f"{where} policy {document}: the error does not name {path!r}: {p.stderr!r}"
            assert p.stdout.strip() == "", f"a refused put printed {p.stdout!r}"
        # Limits: 10240 bytes and 100 statements.
        ctl_ok("policy", "identity", "put", u.name, "p-max", "-", input=padded(10240))
        p = pierctl("policy", "identity", "put", u.name, "p-big", "-", input=padded(10241))
        assert p.returncode == 1 and "10240" in p.stderr, f"10241 bytes: {p.returncode} {p.stderr!r}"
        p = pierctl("policy", "identity", "put", u.name, "p-huge", "-", input=padded(64 * 1024))
        assert p.returncode == 1 and "10240" in p.stderr, f"64 KiB: {p.returncode} {p.stderr!r}"
        ctl_ok("policy", "identity", "put", u.name, "p-100", "-", input=doc(*[st(Sid=f"S{i}") for i in range(100)]))
        # A repository policy needs the repository.
        p = pierctl("policy", "repository", "put", f"{ns}/missing", "-", input=doc(st(Principal=PRINCIPAL)))
        assert p.returncode == 1 and f"{ns}/missing" in p.stderr, f"{p.returncode} {p.stderr!r}"
        # Nothing refused was stored.
        listed = json.loads(ctl_ok("policy", "identity", "list", u.name))
        names = sorted(x["name"] if isinstance(x, dict) else x for x in listed)
        assert names == ["p-100", "p-max"], f"identity policies after the refusals: {listed}"
        assert json.loads(before["identity"]) == [], before
        assert pierctl("policy", "registry", "get").stdout == before["registry"]
        assert pierctl("policy", "repository", "get", repo).stdout == before["repository"]
        # What was accepted reads back as written.
        d = doc(st(Sid="Back", Principal=PRINCIPAL, Resource=repo_arn(repo)))
        ctl_ok("policy", "repository", "put", repo, "-", input=d)
        assert json.loads(ctl_ok("policy", "repository", "get", repo)) == json.loads(d)
        ctl_ok("policy", "repository", "delete", repo)
        assert pierctl("policy", "repository", "get", repo).returncode == 1


def test_more_than_100_statements_are_refused():
    with User("docs-101") as u, RegistryPolicy():
        for args in (("identity", "put", u.name, "p-101", "-"), ("registry", "put", "-")):
            statements = [st(Sid=f"S{i}", Principal="*" if "registry" in args else None) for i in range(101)]
            document = json.dumps({"Version": V, "Statement": statements}, separators=(",", ":"))
            assert len(document) < 10240, len(document)
            p = pierctl("policy", *args, input=document)
            assert p.returncode == 1, \
                f"policy {args[0]} put of 101 statements: exit {p.returncode}, {p.stderr[-300:]!r}"
            assert "Statement" in p.stderr and "100" in p.stderr, p.stderr
        assert json.loads(ctl_ok("policy", "identity", "list", u.name)) == []


def test_source_ip_condition_decides_a_real_request():
    ns = unique_ns("ip")
    repo = f"{ns}/app"
    push_image(Client(url_a()), repo, "v1")
    from_loopback = policy(allow(PULL_ACTIONS, repo, sid="FromLoopback",
                                 condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))
    from_ten = policy(allow(PULL_ACTIONS, repo, sid="FromTen", condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    only_ten = policy(allow(PULL_ACTIONS, repo, sid="Pull"),
                      deny("ecr:*", "*", sid="NotFromTen",
                           condition={"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}))
    not_from_lan = policy(allow(PULL_ACTIONS, repo, sid="Pull"),
                          deny("ecr:*", "*", sid="NoLan", condition={"IpAddress": {"aws:SourceIp": "192.168.0.0/16"}}))
    with User("ip", policies={"net": from_loopback}) as u, User("ip-deny", policies={"net": only_ten}) as d, \
            User("ip-lan", policies={"net": not_from_lan}) as lan:
        path = f"/v2/{repo}/manifests/v1"
        assert u.client().get(path).status == 200, "allowed from 127.0.0.0/8 but refused"
        explicitly_denied(d.client().get(path), "ecr:BatchGetImage", repo, "NotFromTen", "identity policy")
        assert lan.client().get(path).status == 200, "a Deny for 192.168.0.0/16 refused a loopback request"
        u.put_policy("net", from_ten)
        policy_settle()
        no_statement_allows(u.client().get(path), "ecr:BatchGetImage", repo)
        u.put_policy("net", from_loopback)
        policy_settle()
        assert u.client().get(path).status == 200, "allowed again from 127.0.0.0/8 but refused"


def test_date_and_string_conditions_decide_real_requests():
    ns = unique_ns("when")
    repo = f"{ns}/app"
    push_image(Client(url_a()), repo, "v1")
    future_allow = policy(allow(PULL_ACTIONS, repo, sid="Later",
                                condition={"DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}))
    until_future = policy(allow(PULL_ACTIONS, repo, sid="Until",
                                condition={"DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}))
    past_deny = policy(allow(PULL_ACTIONS, repo, sid="Pull"),
                       deny("ecr:*", "*", sid="AfterCutoff",
                            condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))
    path = f"/v2/{repo}/manifests/v1"
    with User("later", policies={"t": future_allow}) as later, User("until", policies={"t": until_future}) as until, \
            User("cutoff", policies={"t": past_deny}) as cutoff:
        no_statement_allows(later.client().get(path), "ecr:BatchGetImage", repo)
        assert until.client().get(path).status == 200, "DateLessThan a future date did not allow"
        explicitly_denied(cutoff.client().get(path), "ecr:BatchGetImage", repo, "AfterCutoff", "identity policy")
    # Username conditions: an Allow conditioned on a user name applies to that user only.
    x, y = User("named"), User("other")
    named = policy(allow(PULL_ACTIONS, repo, sid="Named", condition={"StringEquals": {"aws:username": x.name}}))
    by_arn = policy(allow(PULL_ACTIONS, repo, sid="ByArn", condition={"ArnLike": {"aws:PrincipalArn": x.arn}}))
    x.initial_policies = {"n": named}
    y.initial_policies = {"n": named, "a": by_arn}
    with x, y:
        assert x.client().get(path).status == 200, "StringEquals aws:username did not match its user"
        no_statement_allows(y.client().get(path), "ecr:BatchGetImage", repo)


def test_explicit_deny_in_any_policy_overrides_allows_elsewhere():
    ns = unique_ns("deny")
    repo = f"{ns}/app"
    push_image(Client(url_a()), repo, "v1")
    path = f"/v2/{repo}/manifests/v1"
    with User("d-ident", policies={"deny": policy(deny(["ecr:BatchGetImage"], repo, sid="SelfDeny"))}) as ident, \
            User("d-repo", policies={"pull": policy(allow(PULL_ACTIONS))}) as by_repo, \
            User("d-reg", policies={"pull": policy(allow(PULL_ACTIONS))}) as by_reg, \
            User("d-none", policies={"pull": policy(allow(PULL_ACTIONS))}) as bystander:
        repo_doc = policy(allow(PULL_ACTIONS, repo, sid="RepoAllowsIdent", principal=aws_principal(ident.arn)),
                          deny("ecr:*", repo, sid="RepoDeny", principal=aws_principal(by_repo.arn)))
        reg_doc = policy(deny(["ecr:BatchGetImage"], f"{ns}/*", sid="RegistryDeny",
                              principal=aws_principal(by_reg.arn)),
                         allow(PULL_ACTIONS, repo, sid="RegistryAllowsIdent", principal=aws_principal(ident.arn)))
        with RepositoryPolicy(repo, repo_doc), RegistryPolicy(reg_doc):
            policy_settle()
            explicitly_denied(ident.client().get(path), "ecr:BatchGetImage", repo, "SelfDeny", "identity policy")
            explicitly_denied(by_repo.client().get(path), "ecr:BatchGetImage", repo, "RepoDeny", "repository policy")
            explicitly_denied(by_reg.client().get(path), "ecr:BatchGetImage", repo, "RegistryDeny", "registry policy")
            assert bystander.client().get(path).status == 200, "a Deny for others refused a bystander"
            # The identity Deny covers only BatchGetImage: the repository policy's Allow gives blobs.
            r = Client(url_a()).get(f"/v2/{repo}/manifests/v1",
                                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            layer = r.json()["layers"][0]["digest"]
            assert ident.client().get(f"/v2/{repo}/blobs/{layer}").status == 200
        policy_settle()
        assert by_repo.client().get(path).status == 200 and by_reg.client().get(path).status == 200
