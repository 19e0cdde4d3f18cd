"""Lifecycle policies, ECR's language, really run: Put/Get/DeleteLifecyclePolicy,
Start/GetLifecyclePolicyPreview (shapes, errors, pages, filters), each rule kind
against a repository whose push and pull times are set in the database, the
preview equal to what a run (pierctl lifecycle run, or maintenance) expires,
creation templates that give their policy to the repositories a push creates,
and real clients: the aws CLI, then skopeo pulls."""

import datetime
import json
import os
import re
import subprocess

from pierlib import (
    ACCOUNT_ID, TempDir, api_error, aws_cli, aws_cli_error, aws_json, client_a, docker_ref, ecr_client,
    expect_api_error, push_image, push_index, push_manifest, psql, signed_api_request, skopeo, sql_str,
    state_dir, unique_repo, url_b, wait_until, ExtraNode,
)
from upstreams import pierctl, unique_prefix

PAD = "padding so that the policy text has the 100 characters the ECR model asks for"


def policy(*rules) -> str:
    return json.dumps({"rules": list(rules)})


def rule(priority, status, count_type, number, prefixes=None, patterns=None, description=PAD):
    sel = {"tagStatus": status, "countType": count_type, "countNumber": number}
    if count_type != "imageCountMoreThan":
        sel["countUnit"] = "days"
    if prefixes is not None:
        sel["tagPrefixList"] = prefixes
    if patterns is not None:
        sel["tagPatternList"] = patterns
    r = {"rulePriority": priority, "selection": sel, "action": {"type": "expire"}}
    if description:
        r["description"] = description
    return r


def drop(*names) -> None:
    for name in names:
        try:
            ecr_client().delete_repository(repositoryName=name, force=True)
        except Exception:  # noqa: BLE001 - cleanup
            pass


def set_times(repo: str, digest: str, pushed_days: float, pulled_days: float | None = None) -> None:
    """The image's push time (manifests.created_at) and last pull, in days before now."""
    pulled = "NULL" if pulled_days is None else f"now() - interval '{pulled_days * 86400:.0f} seconds'"
    psql(f"UPDATE manifests SET created_at = now() - interval '{pushed_days * 86400:.0f} seconds',"
         f" last_pulled_at = {pulled} WHERE digest = {sql_str(digest)}"
         f" AND repository_id = (SELECT id FROM repositories WHERE name = {sql_str(repo)})")


def make_images(repo: str, spec: dict) -> dict:
    """spec: label -> (tags, pushed days ago, pulled days ago or None). Returns label -> digest."""
    out = {}
    for label, (tags, pushed, pulled) in spec.items():
        img = push_image(client_a(), repo, tags[0] if tags else None)
        for t in tags[1:]:
            push_manifest(client_a(), repo, t, img.manifest)
        set_times(repo, img.digest, pushed, pulled)
        out[label] = img.digest
    return out


def preview_results(repo: str, **kw) -> list[dict]:
    out = []
    for page in ecr_client().get_paginator("get_lifecycle_policy_preview").paginate(repositoryName=repo, **kw):
        assert page["status"] == "COMPLETE", page
        out += page["previewResults"]
    return out


def remaining(repo: str) -> set[str]:
    ids = ecr_client().list_images(repositoryName=repo)["imageIds"]
    return {i["imageDigest"] for i in ids}


def lifecycle_run(repo: str | None = None) -> subprocess.CompletedProcess:
    p = pierctl("lifecycle", "run", *([repo] if repo else []), timeout=120)
    assert p.returncode == 0, f"pierctl lifecycle run failed ({p.returncode}): {p.stderr}"
    return p


EXPIRED_LINE = re.compile(r"^expired (\S+)@(sha256:[0-9a-f]{64}) \((tags \S+|untagged)\) by rule (\d+)$")


def run_expiries(p: subprocess.CompletedProcess) -> dict:
    """digest -> (tag words, rule) from pierctl lifecycle run's output."""
    out = {}
    for line in p.stdout.splitlines():
        m = EXPIRED_LINE.match(line)
        if m:
            out[m.group(2)] = (m.group(3), int(m.group(4)))
    return out


def _node_log_paths() -> list[str]:
    return [os.path.join(d, "log", "pier.log") for d in (state_dir(), os.environ.get("PIER_STATE_DIR_B", "")) if d]


def log_mark() -> list[int]:
    """Where the logs of nodes A and B end now (for node_logs)."""
    return [os.path.getsize(p) if os.path.exists(p) else 0 for p in _node_log_paths()]


def node_logs(mark: list[int] | None = None) -> str:
    """What nodes A and B logged (since mark)."""
    out = ""
    for i, path in enumerate(_node_log_paths()):
        try:
            with open(path, "rb") as f:
                f.seek(mark[i] if mark else 0)
                out += f.read().decode(errors="replace")
        except OSError:
            pass
    return out


def run_and_log(repo: str, mark: list[int]) -> tuple[subprocess.CompletedProcess, dict, str]:
    """pierctl lifecycle run REPO; what it and (since mark) the nodes' maintenance expired in
    repo — maintenance may run a policy between its put and pierctl — and the log lines."""
    p = lifecycle_run(repo)
    logged = p.stderr + node_logs(mark)
    return p, run_expiries(p) | logged_expiries(logged, repo), logged


def logged_expiries(log: str, repo: str) -> dict:
    """digest -> (tag words, rule) from "lifecycle: expired <repo>@..." log lines."""
    pat = re.compile(r"lifecycle: expired " + re.escape(repo) +
                     r"@(sha256:[0-9a-f]{64}) \((tags \S+|untagged)\) by rule (\d+)")
    return {m.group(1): (m.group(2), int(m.group(3))) for m in pat.finditer(log)}


def tag_words(tags) -> str:
    return "tags " + ",".join(sorted(tags)) if tags else "untagged"


# Each scenario: images (label -> tags, pushed days ago, pulled days ago), rules, and what
# they expire (label -> rulePriority).
SCENARIOS = {
    # ECR's documented example A: rule 2 would expire B too, but B matches rule 1's filter.
    "count-prefix": ({"A": (["beta-1", "prod-1"], 10, None), "B": (["beta-2", "prod-2"], 9, None),
                      "C": (["beta-3"], 8, None), "D": (["dev-1"], 20, None)},
                     [rule(1, "tagged", "imageCountMoreThan", 1, prefixes=["prod"]),
                      rule(2, "tagged", "imageCountMoreThan", 1, prefixes=["beta"])],
                     {"A": 1}),
    "untagged-pushed": ({"U1": ([], 10, None), "U2": ([], 3, None), "T": (["keep"], 30, None)},
                        [rule(1, "untagged", "sinceImagePushed", 7)],
                        {"U1": 1}),
    # Never pulled: the push time counts.
    "pulled": ({"P1": (["a"], 30, 1), "P2": (["b"], 30, 20), "P3": (["c"], 2, None), "P4": (["d"], 30, None)},
               [rule(1, "any", "sinceImagePulled", 14)],
               {"P2": 1, "P4": 1}),
    "patterns": ({"W1": (["release-1-rc1"], 5, None), "W2": (["release-2-rc3"], 4, None),
                  "W3": (["release-3"], 3, None), "W4": (["release-4-rc1"], 2, None), "W5": (["v1-rc"], 6, None)},
                 [rule(1, "tagged", "imageCountMoreThan", 1, patterns=["release-*-rc*"])],
                 {"W1": 1, "W2": 1}),
    # "any" counts tagged and untagged images, newest first; rule 1's filter protects keep-me.
    "any-count": ({"E1": (["x1"], 5, None), "E2": (["x2"], 4, None), "E3": ([], 3, None),
                   "E4": (["x3"], 2, None), "E5": (["keep-me"], 10, None)},
                  [rule(1, "tagged", "imageCountMoreThan", 100, prefixes=["keep"]),
                   rule(2, "any", "imageCountMoreThan", 2)],
                  {"E1": 2, "E2": 2}),
}


def test_lifecycle_each_rule_kind_preview_equals_run():
    ecr = ecr_client()
    problems = []
    repos = []
    try:
        for name, (spec, rules, want) in SCENARIOS.items():
            repo = unique_repo(f"lc-{name}")
            repos.append(repo)
            digests = make_images(repo, spec)
            tags = {digests[label]: spec[label][0] for label in spec}
            want_d = {digests[label]: prio for label, prio in want.items()}
            text = policy(*rules)
            # A preview of a text, before the repository has a policy.
            started = ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=text)
            assert (started["registryId"], started["repositoryName"], started["status"]) == \
                (ACCOUNT_ID, repo, "COMPLETE"), started
            assert json.loads(started["lifecyclePolicyText"]) == json.loads(text), started
            ecr.get_waiter("lifecycle_policy_preview_complete").wait(repositoryName=repo)
            got = ecr.get_lifecycle_policy_preview(repositoryName=repo)
            assert got["summary"]["expiringImageTotalCount"] == len(want_d), (name, got)
            results = preview_results(repo)
            preview = {r["imageDigest"]: r["appliedRulePriority"] for r in results}
            for r in results:
                assert r["action"] == {"type": "EXPIRE"}, r
                assert sorted(r.get("imageTags", [])) == sorted(tags[r["imageDigest"]]), r
                assert isinstance(r["imagePushedAt"], datetime.datetime), r
            if preview != want_d:
                problems.append(f"{name}: preview {preview}, expected {want_d} ({digests})")
            # The run expires exactly what the preview listed. (A node's maintenance may
            # run the policy between the put and pierctl: then its log has the lines.)
            mark = log_mark()
            ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)
            p, ran, logged = run_and_log(repo, mark)
            if ran != {d: (tag_words(tags[d]), prio) for d, prio in preview.items()}:
                problems.append(f"{name}: the run expired {ran}, the preview listed {preview}:\n{p.stdout}")
            for d, prio in preview.items():
                line = f"lifecycle: expired {repo}@{d} ({tag_words(tags[d])}) by rule {prio}"
                if line not in logged:
                    problems.append(f"{name}: no log line {line!r} in {p.stderr!r}")
            left = remaining(repo)
            if left != set(digests.values()) - set(want_d):
                problems.append(f"{name}: left {left}, expected {set(digests.values()) - set(want_d)}")
            # The stored policy ran: lastEvaluatedAt, and nothing more to expire.
            pol = ecr.get_lifecycle_policy(repositoryName=repo)
            assert abs((datetime.datetime.now(datetime.timezone.utc) - pol["lastEvaluatedAt"]).total_seconds()) < 120, pol
            again = ecr.start_lifecycle_policy_preview(repositoryName=repo)
            assert json.loads(again["lifecyclePolicyText"]) == json.loads(text), again
            assert ecr.get_lifecycle_policy_preview(repositoryName=repo)["summary"]["expiringImageTotalCount"] == 0
        assert not problems, "\n".join(problems)
    finally:
        drop(*repos)


def test_lifecycle_policy_put_get_delete_and_their_errors():
    ecr = ecr_client()
    repo = unique_repo("lc-crud")
    missing = unique_repo("lc-missing")
    text = policy(rule(1, "untagged", "sinceImagePushed", 7))
    ecr.create_repository(repositoryName=repo)
    try:
        expect_api_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repo)
        expect_api_error("LifecyclePolicyNotFoundException", ecr.delete_lifecycle_policy, repositoryName=repo)
        msg = expect_api_error("LifecyclePolicyPreviewNotFoundException", ecr.get_lifecycle_policy_preview,
                               repositoryName=repo)
        assert repo in msg, msg
        # Without a text, a preview evaluates the stored policy: there is none.
        expect_api_error("LifecyclePolicyNotFoundException", ecr.start_lifecycle_policy_preview,
                         repositoryName=repo)
        out = ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)
        assert (out["registryId"], out["repositoryName"], out["lifecyclePolicyText"]) == (ACCOUNT_ID, repo, text), out
        got = ecr.get_lifecycle_policy(repositoryName=repo)
        assert (got["registryId"], got["repositoryName"], got["lifecyclePolicyText"]) == (ACCOUNT_ID, repo, text)
        assert "lastEvaluatedAt" not in got, f"a policy that never ran has a lastEvaluatedAt: {got}"
        newer = policy(rule(1, "untagged", "sinceImagePushed", 3))
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=newer)
        assert ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"] == newer
        # Node B sees the same policy.
        assert ecr_client(base_url=url_b()).get_lifecycle_policy(
            repositoryName=repo)["lifecyclePolicyText"] == newer
        out = ecr.delete_lifecycle_policy(repositoryName=repo)
        assert (out["repositoryName"], out["lifecyclePolicyText"]) == (repo, newer), out
        expect_api_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repo)
        expect_api_error("LifecyclePolicyNotFoundException", ecr.delete_lifecycle_policy, repositoryName=repo)
        for call, kw in ((ecr.put_lifecycle_policy, {"lifecyclePolicyText": text}), (ecr.get_lifecycle_policy, {}),
                         (ecr.delete_lifecycle_policy, {}), (ecr.start_lifecycle_policy_preview, {}),
                         (ecr.get_lifecycle_policy_preview, {})):
            msg = expect_api_error("RepositoryNotFoundException", call, repositoryName=missing, **kw)
            assert missing in msg, msg
        # A policy goes with its repository.
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=text)
        ecr.delete_repository(repositoryName=repo)
        ecr.create_repository(repositoryName=repo)
        expect_api_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repo)
    finally:
        drop(repo)


def test_lifecycle_policy_validation_errors_name_the_element():
    ecr = ecr_client(validate=False)
    repo = unique_repo("lc-bad")
    ecr.create_repository(repositoryName=repo)
    good = rule(1, "untagged", "sinceImagePushed", 7)
    count_with_unit = rule(2, "tagged", "imageCountMoreThan", 3, prefixes=["v"])
    count_with_unit["selection"]["countUnit"] = "days"
    five_stars = rule(1, "tagged", "imageCountMoreThan", 1, patterns=["a*b*c*d*e*f"])
    archive = rule(1, "any", "imageCountMoreThan", 1)
    archive["action"] = {"type": "transition"}
    no_prio = rule(1, "untagged", "sinceImagePushed", 7)
    del no_prio["rulePriority"]
    unknown = rule(1, "untagged", "sinceImagePushed", 7)
    unknown["selection"]["countUnits"] = "days"
    cases = [
        (policy(good, count_with_unit), "rules[1].selection.countUnit"),
        (policy(rule(1, "maybe", "sinceImagePushed", 7)), "rules[0].selection.tagStatus"),
        (policy(good, rule(2, "tagged", "imageCountMoreThan", 0, prefixes=["v"])), "rules[1].selection.countNumber"),
        (policy(five_stars), "rules[0].selection.tagPatternList"),
        (policy(archive), "rules[0].action.type"),
        (policy(no_prio), "rules[0].rulePriority"),
        (policy(unknown), "rules[0].selection.countUnits"),
        (policy(rule(1, "tagged", "imageCountMoreThan", 1)), "rules[0].selection"),
        (policy(good, rule(1, "tagged", "imageCountMoreThan", 1, prefixes=["v"])), "rulePriority 1"),
        (policy(rule(1, "any", "imageCountMoreThan", 1), rule(2, "untagged", "sinceImagePushed", 7)),
         "tagStatus any"),
        ('{"rules": [' + json.dumps(good) + ', }' + " " * 100, "not JSON"),
    ]
    problems = []
    try:
        for text, element in cases:
            for call in (ecr.put_lifecycle_policy, ecr.start_lifecycle_policy_preview):
                code, msg, status = api_error(call, repositoryName=repo, lifecyclePolicyText=text)
                if code != "InvalidParameterException" or status != 400 or element not in msg:
                    problems.append(f"{call.__name__} {text[:90]!r}: {code} {status} {msg!r} "
                                    f"(expected InvalidParameterException naming {element!r})")
        assert not problems, "\n".join(problems)
        expect_api_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=repo)
        expect_api_error("LifecyclePolicyPreviewNotFoundException", ecr.get_lifecycle_policy_preview,
                         repositoryName=repo)
        # A creation template's lifecyclePolicy is checked the same way.
        prefix = unique_prefix("lcbad")
        code, msg, _ = api_error(ecr.create_repository_creation_template, prefix=prefix,
                                 appliedFor=["CREATE_ON_PUSH"], lifecyclePolicy=policy(good, count_with_unit))
        assert code == "InvalidParameterException" and "lifecyclePolicy" in msg and \
            "rules[1].selection.countUnit" in msg, (code, msg)
        # Nothing was stored: the prefix lists no template (an unknown prefix is an empty list, as the model says).
        got = ecr.describe_repository_creation_templates(prefixes=[prefix])["repositoryCreationTemplates"]
        assert got == [], got
    finally:
        drop(repo)


def test_lifecycle_preview_pages_and_filters():
    ecr = ecr_client()
    repo = unique_repo("lc-pages")
    spec = {f"u{i}": ([], 10 + i, None) for i in range(5)}
    spec.update({"t1": (["t1"], 9, None), "t2": (["t2"], 8, None), "t3": (["t3"], 1, None)})
    try:
        d = make_images(repo, spec)
        ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=policy(
            rule(1, "untagged", "sinceImagePushed", 2), rule(2, "tagged", "imageCountMoreThan", 1, prefixes=["t"])))
        want = {d[f"u{i}"]: 1 for i in range(5)} | {d["t1"]: 2, d["t2"]: 2}
        pages = list(ecr.get_paginator("get_lifecycle_policy_preview").paginate(
            repositoryName=repo, PaginationConfig={"PageSize": 3}))
        assert [len(p["previewResults"]) for p in pages] == [3, 3, 1], [p["previewResults"] for p in pages]
        assert all(p["summary"]["expiringImageTotalCount"] == 7 for p in pages), pages
        got = [r["imageDigest"] for p in pages for r in p["previewResults"]]
        assert len(got) == len(set(got)) and set(got) == set(want), got
        assert {r["imageDigest"]: r["appliedRulePriority"] for p in pages for r in p["previewResults"]} == want
        tagged = preview_results(repo, filter={"tagStatus": "TAGGED"})
        assert {r["imageDigest"] for r in tagged} == {d["t1"], d["t2"]}, tagged
        untagged = preview_results(repo, filter={"tagStatus": "UNTAGGED"})
        assert {r["imageDigest"] for r in untagged} == {d[f"u{i}"] for i in range(5)}, untagged
        by_id = ecr.get_lifecycle_policy_preview(repositoryName=repo, imageIds=[
            {"imageTag": "t2"}, {"imageDigest": d["u3"]}, {"imageTag": "t3"}])["previewResults"]
        assert [(r["imageDigest"], r.get("imageTags")) for r in by_id] == [(d["t2"], ["t2"]), (d["u3"], None)], by_id
        raw = ecr_client(validate=False)
        expect_api_error("InvalidParameterException", raw.get_lifecycle_policy_preview, repositoryName=repo,
                         imageIds=[{"imageTag": "t2"}], maxResults=5)
        expect_api_error("InvalidParameterException", raw.get_lifecycle_policy_preview, repositoryName=repo,
                         maxResults=101)
        expect_api_error("InvalidParameterException", raw.get_lifecycle_policy_preview, repositoryName=repo,
                         filter={"tagStatus": "SOMETIMES"})
    finally:
        drop(repo)


def test_lifecycle_preview_in_progress_is_refused():
    """While a preview of a repository is being computed (its lock is held), another start
    is refused with LifecyclePolicyPreviewInProgressException; afterwards it works."""
    ecr = ecr_client()
    repo = unique_repo("lc-busy")
    ecr.create_repository(repositoryName=repo)
    holder = subprocess.Popen(
        ["psql", os.environ["PIER_DB"], "-XAtc",
         f"SELECT pg_advisory_xact_lock(hashtextextended({sql_str(repo)}, 7040)), pg_sleep(6)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Taken once a try of our own fails (a try that succeeds lets go at once).
        probe = f"SELECT pg_try_advisory_xact_lock(hashtextextended({sql_str(repo)}, 7040))"
        assert wait_until(lambda: psql(probe)[0][0] == "f", 5), "the holder did not take the lock"
        text = policy(rule(1, "untagged", "sinceImagePushed", 7))
        msg = expect_api_error("LifecyclePolicyPreviewInProgressException", ecr.start_lifecycle_policy_preview,
                               repositoryName=repo, lifecyclePolicyText=text)
        assert repo in msg, msg
        holder.wait(timeout=30)
        out = ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=text)
        assert out["status"] == "COMPLETE", out
    finally:
        if holder.poll() is None:
            holder.kill()
        drop(repo)


def test_lifecycle_images_an_index_lists_go_with_their_index():
    """The platform images of a multi-arch index are untagged, but not expired on their own
    while the index lists them; once a run expired the index, the next run expires them."""
    ecr = ecr_client()
    repo = unique_repo("lc-index")
    try:
        index, children = push_index(client_a(), repo, "multi-1")
        for digest in [index.digest] + [c.digest for c in children]:
            set_times(repo, digest, 10)
        mark = log_mark()
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy(
            rule(1, "untagged", "sinceImagePushed", 1)))
        ecr.start_lifecycle_policy_preview(repositoryName=repo)
        assert preview_results(repo) == [], "a platform image its index lists would expire"
        assert run_and_log(repo, mark)[1] == {}
        r = client_a().get(f"/v2/{repo}/manifests/multi-1", headers={"Accept": index.media_type})
        assert r.status == 200, r.summary()

        # Preview first, then the policy (and its run) in one go: each run is the one previewed.
        two_rules = policy(rule(1, "tagged", "sinceImagePushed", 1, prefixes=["multi"]),
                           rule(2, "untagged", "sinceImagePushed", 1))
        ecr.start_lifecycle_policy_preview(repositoryName=repo, lifecyclePolicyText=two_rules)
        assert {r["imageDigest"]: r["appliedRulePriority"] for r in preview_results(repo)} == {index.digest: 1}
        mark = log_mark()
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=two_rules)
        assert run_and_log(repo, mark)[1] == {index.digest: ("tags multi-1", 1)}
        ecr.start_lifecycle_policy_preview(repositoryName=repo)
        want = {c.digest: 2 for c in children}
        assert {r["imageDigest"]: r["appliedRulePriority"] for r in preview_results(repo)} == want
        mark = log_mark()
        assert run_and_log(repo, mark)[1] == {c.digest: ("untagged", 2) for c in children}
        assert remaining(repo) == set()
    finally:
        drop(repo)


def test_creation_template_gives_its_lifecycle_policy_to_a_pushed_repository():
    ecr = ecr_client()
    prefix = unique_prefix("lctpl")
    repo = f"{prefix}/app"
    text = policy(rule(1, "tagged", "imageCountMoreThan", 1, prefixes=["v"]))
    ecr.create_repository_creation_template(prefix=prefix, appliedFor=["CREATE_ON_PUSH"], lifecyclePolicy=text)
    try:
        mark = log_mark()
        old = push_image(client_a(), repo, "v1")
        new = push_image(client_a(), repo, "v2")
        set_times(repo, old.digest, 3)
        got = ecr.get_lifecycle_policy(repositoryName=repo)
        assert json.loads(got["lifecyclePolicyText"]) == json.loads(text), got
        # It is the repository's policy: maintenance and pierctl run it.
        assert run_and_log(repo, mark)[1] == {old.digest: ("tags v1", 1)}
        assert remaining(repo) == {new.digest}
        # A repository pushed outside the prefix gets none.
        other = unique_repo("lc-notpl")
        push_image(client_a(), other, "v1")
        try:
            expect_api_error("LifecyclePolicyNotFoundException", ecr.get_lifecycle_policy, repositoryName=other)
        finally:
            drop(other)
    finally:
        signed_api_request("DeleteRepositoryCreationTemplate", {"prefix": prefix})
        drop(repo)


def test_lifecycle_with_aws_cli_then_skopeo_pulls_the_survivors():
    repo = unique_repo("lc-cli")
    try:
        imgs = {}
        for tag, days in (("v1", 10), ("v2", 5), ("v3", 0)):
            imgs[tag] = push_image(client_a(), repo, tag)
            set_times(repo, imgs[tag].digest, days)
        text = policy(rule(1, "tagged", "imageCountMoreThan", 1, prefixes=["v"],
                           description="keep the newest v image"))
        # Preview the text (nothing is stored yet), then store it and run it.
        started = aws_json("ecr", "start-lifecycle-policy-preview", "--repository-name", repo,
                           "--lifecycle-policy-text", text)
        assert started["status"] == "COMPLETE" and json.loads(started["lifecyclePolicyText"]) == json.loads(text)
        aws_cli("ecr", "wait", "lifecycle-policy-preview-complete", "--repository-name", repo)
        preview = aws_json("ecr", "get-lifecycle-policy-preview", "--repository-name", repo)
        assert preview["status"] == "COMPLETE" and preview["summary"] == {"expiringImageTotalCount": 2}, preview
        listed = {(r["imageDigest"], tuple(r["imageTags"]), r["appliedRulePriority"], r["action"]["type"])
                  for r in preview["previewResults"]}
        assert listed == {(imgs["v1"].digest, ("v1",), 1, "EXPIRE"), (imgs["v2"].digest, ("v2",), 1, "EXPIRE")}, preview
        p = aws_cli("ecr", "get-lifecycle-policy-preview", "--repository-name", unique_repo("lc-none"), check=False)
        assert aws_cli_error(p)[0] == "RepositoryNotFoundException", p.stderr
        # pierctl's preview of the same text says the same, and changes nothing.
        p = pierctl("lifecycle", "preview", repo, "-", input=text)
        assert p.returncode == 0, p.stderr
        assert sorted(p.stdout.splitlines()) == sorted([
            f"would expire {repo}@{imgs['v1'].digest} (tags v1) by rule 1",
            f"would expire {repo}@{imgs['v2'].digest} (tags v2) by rule 1", "2 images would expire"]), p.stdout
        assert len(remaining(repo)) == 3

        mark = log_mark()
        out = aws_json("ecr", "put-lifecycle-policy", "--repository-name", repo, "--lifecycle-policy-text", text)
        assert out["repositoryName"] == repo and json.loads(out["lifecyclePolicyText"]) == json.loads(text), out
        p, ran, _ = run_and_log(repo, mark)
        assert ran == {imgs["v1"].digest: ("tags v1", 1), imgs["v2"].digest: ("tags v2", 1)}, ran
        assert re.fullmatch(r"[0-2] images? expired \(0 kept\) in 1 repository", p.stdout.splitlines()[-1]), p.stdout
        got = aws_json("ecr", "get-lifecycle-policy", "--repository-name", repo)
        assert json.loads(got["lifecyclePolicyText"]) == json.loads(text) and "lastEvaluatedAt" in got, got
        # The stored policy has nothing left to expire.
        p = pierctl("lifecycle", "preview", repo)
        assert p.returncode == 0 and p.stdout.splitlines() == ["0 images would expire"], (p.stdout, p.stderr)
        with TempDir() as d:
            skopeo("copy", docker_ref(repo, "v3"), f"oci:{d.sub('v3')}:v3")
            for tag in ("v1", "v2"):
                for ref in (tag, imgs[tag].digest):
                    p = skopeo("copy", docker_ref(repo, ref), f"oci:{d.sub(tag)}:x", check=False)
                    assert p.returncode != 0, f"skopeo pulled the expired {repo}:{ref}"
                    err = p.stderr.lower()
                    assert b"manifest unknown" in err or b"not found" in err, p.stderr
    finally:
        drop(repo)


def test_maintenance_runs_lifecycle_policies_and_logs_each_expiry():
    """A node's maintenance (here every second) runs the policies without being asked, and
    logs every expiry with the rule that caused it."""
    ecr = ecr_client()
    repo = unique_repo("lc-maint")
    try:
        old = push_image(client_a(), repo, None)
        young = push_image(client_a(), repo, None)
        kept = push_image(client_a(), repo, "stays")
        set_times(repo, old.digest, 10)
        set_times(repo, kept.digest, 10)
        with ExtraNode("lifecycle", 19, PIER_MAINTENANCE_INTERVAL="1") as node:
            ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy(
                rule(1, "untagged", "sinceImagePushed", 7)))
            gone = wait_until(lambda: old.digest not in remaining(repo), 60, interval=0.5)
            line = f"lifecycle: expired {repo}@{old.digest} (untagged) by rule 1"
            logs = node.log() + node_logs()
            assert gone, f"maintenance did not expire {old.digest} within 60 s: {node.log()[-2000:]}"
            assert line in logs, f"no log line {line!r}: {node.log()[-2000:]}"
        assert remaining(repo) == {young.digest, kept.digest}
        assert "lastEvaluatedAt" in ecr.get_lifecycle_policy(repositoryName=repo)
    finally:
        drop(repo)
