"""Mirror mode: container runtimes that use Pier as the mirror of docker.io, quay.io, ...
pull images under their own names. Requests are sent exactly as the runtimes send them:
containerd's `/v2/<name>/...?ns=<registry>` (with its token dance), dockerd's unprefixed
names without ns (the default mirror), podman's registries.conf mirror with a prefix
location. One cache, two ways in: the same image pulled both ways is stored once.
Rules declare what they mirror with pierctl and with the ECR extension fields."""

import json
import os
import uuid

from authlib import RegistryPolicy, bearer, challenge_params, policy_settle, repo_arn, token_for
from pierlib import (
    Client, Podman, TempDir, add_query, admin_creds, assert_oci_error, blob_row_count,
    build_image_layout, client_a, client_b, ecr_client, expect_status, files_for_digest, psql, push_image,
    registry_host, repository_row_count, signed_api_request, sql_str, url_a,
)
from upstreams import MANIFEST_ACCEPT, CacheRule, DockerRegistry, image_blobs, pierctl, read_blob, rule_id, unique_prefix

# The registry policy docs/mirror.md gives for anonymous pulls through the mirror,
# for the repositories under one rule's prefix only.
def anonymous_mirror_policy(prefix: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "AnonymousMirrorPulls", "Effect": "Allow", "Principal": "*",
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
                   "ecr:ListImages", "ecr:CreateRepository", "ecr:BatchImportUpstreamImage"],
        "Resource": repo_arn(f"{prefix}/*")}]})


def ns_path(path: str, ns: str | None) -> str:
    return add_query(path, ns=ns) if ns else path


def manifest(client, name, ref, ns=None, method="GET", headers=None):
    """A manifest request as containerd sends it (every manifest type accepted)."""
    h = {"Accept": MANIFEST_ACCEPT}
    h.update(headers or {})
    return client.request(method, ns_path(f"/v2/{name}/manifests/{ref}", ns), headers=h)


def pull_all(client, name, ref, image, ns=None, headers=None):
    """HEAD then GET the manifest, HEAD then GET every blob; returns the X-Pier-Cache states."""
    h = expect_status(manifest(client, name, ref, ns, "HEAD", headers), 200, f"HEAD manifest {name}:{ref} ns={ns}")
    assert h.header("Docker-Content-Digest") == image.digest, h.summary()
    assert int(h.header("Content-Length")) == len(image.manifest.data), h.summary()
    r = expect_status(manifest(client, name, ref, ns, "GET", headers), 200, f"GET manifest {name}:{ref} ns={ns}")
    assert r.body == image.manifest.data, f"manifest bytes of {name}:{ref} (ns={ns}) differ"
    states = [r.header("X-Pier-Cache")]
    for blob in image_blobs(image):
        path = ns_path(f"/v2/{name}/blobs/{blob.digest}", ns)
        hb = expect_status(client.request("HEAD", path, headers=headers), 200, f"HEAD blob {path}")
        assert int(hb.header("Content-Length")) == len(blob.data), hb.summary()
        b = read_blob(client.base_url, path, headers=headers)
        assert b.complete and b.digest == blob.digest, f"blob {path}: {b.summary()}"
        states.append(b.header("X-Pier-Cache"))
    return states


def upstream_with(up, tmp, repo, tag="1.0", sizes=(2048, 32 * 1024)):
    src = tmp.sub(uuid.uuid4().hex[:8])
    image = build_image_layout(src, tag, layer_sizes=sizes)
    up.push_layout(src, tag, repo)
    return image


def assert_stored_once(local_repo, image, asked_name=None):
    """One repository row (the prefixed one), one blob row and one file per blob."""
    assert repository_row_count(local_repo) == 1, f"no single repository row {local_repo}"
    if asked_name:
        assert repository_row_count(asked_name) == 0, f"a repository {asked_name} was created for a mirror pull"
    for blob in image_blobs(image):
        assert blob_row_count(blob.digest) == 1, f"blob {blob.digest} has {blob_row_count(blob.digest)} rows"
        assert len(files_for_digest(blob.digest)) == 1, f"blob {blob.digest}: files {files_for_digest(blob.digest)}"


def ctl(*args, ok=True):
    p = pierctl(*args)
    if ok:
        assert p.returncode == 0, f"pierctl {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}"
    else:
        assert p.returncode == 1, f"pierctl {' '.join(args)} should fail with 1: rc={p.returncode} {p.stdout} {p.stderr}"
    return p


# ---------------------------------------------------------------------------
# requests as containerd and dockerd send them


def test_mirror_ns_pull_as_containerd_sends_it_is_the_prefixed_pull_stored_once():
    with DockerRegistry() as up, TempDir() as tmp:
        image = upstream_with(up, tmp, "library/demo")
        with CacheRule(up.url, mirrors=["docker.io"]) as rule:
            local = rule.repo("library/demo")
            mark = up.settle()
            # containerd: HEAD/GET manifest by tag, then by digest, then the blobs, all with ?ns=.
            states = pull_all(client_a(), "library/demo", "1.0", image, ns="docker.io")
            assert states[0] in ("miss", "refresh", None) or states[0], states
            by_digest = expect_status(manifest(client_a(), "library/demo", image.digest, "docker.io"), 200)
            assert by_digest.body == image.manifest.data
            tags = expect_status(client_a().get("/v2/library/demo/tags/list?ns=docker.io"), 200).json()
            assert "1.0" in tags.get("tags", []), tags
            # Stored under the rule's prefix, as if the prefixed name had been pulled.
            rows = psql(f"SELECT kind, rule_id FROM repositories WHERE name = {sql_str(local)}")
            assert rows == [["cache", str(rule_id(rule.prefix))]], rows
            assert_stored_once(local, image, asked_name="library/demo")
            gets = up.blob_gets("library/demo", since=mark)
            assert gets == {b.digest: 1 for b in image_blobs(image)}, f"upstream blob GETs {gets}"
            # The prefixed pull (and containerd's override_path form: the prefixed path with ns,
            # on the other node) serves the same cache: hits, nothing upstream, nothing stored twice.
            mark2 = up.settle()
            assert pull_all(client_b(), local, "1.0", image) == ["hit"] * (1 + len(image_blobs(image)))
            assert pull_all(client_a(), local, "1.0", image, ns="docker.io") == ["hit"] * (1 + len(image_blobs(image)))
            assert up.blob_gets("library/demo", since=mark2) == {}, up.summary(mark2)
            assert_stored_once(local, image, asked_name="library/demo")
test_mirror_ns_pull_as_containerd_sends_it_is_the_prefixed_pull_stored_once.timeout = 240


def test_mirror_second_registry_prefixed_first_then_ns_is_a_hit():
    with DockerRegistry() as up, TempDir() as tmp:
        image = upstream_with(up, tmp, "prometheus/node-exporter", tag="v1")
        with CacheRule(up.url, mirrors=["quay.io"]) as quay, CacheRule(up.url, mirrors=["docker.io"]) as hub:
            local = quay.repo("prometheus/node-exporter")
            pull_all(client_a(), local, "v1", image)
            mark = up.settle()
            states = pull_all(client_a(), "prometheus/node-exporter", "v1", image, ns="quay.io")
            assert states == ["hit"] * len(states), states
            assert up.blob_gets("prometheus/node-exporter", since=mark) == {}, up.summary(mark)
            assert_stored_once(local, image, asked_name="prometheus/node-exporter")
            # The docker.io rule did not take it: its namespace holds nothing.
            assert repository_row_count(hub.repo("prometheus/node-exporter")) == 0
test_mirror_second_registry_prefixed_first_then_ns_is_a_hit.timeout = 240


def test_mirror_token_dance_and_anonymous_pulls_only_with_the_policy():
    with DockerRegistry() as up, TempDir() as tmp:
        image = upstream_with(up, tmp, "library/tokdemo")
        with CacheRule(up.url, mirrors=["docker.io"]) as rule:
            anon = Client(url_a(), auth=None)
            # containerd first asks without credentials: the challenge names the scope of
            # the name it asked for.
            r = manifest(anon, "library/tokdemo", "1.0", "docker.io", "HEAD")
            assert r.status == 401, r.summary()
            ch = challenge_params(r.header("WWW-Authenticate") or "")
            assert ch.get("scheme") == "Bearer" and ch.get("realm", "").endswith("/token"), ch
            assert ch.get("scope") == "repository:library/tokdemo:pull", ch
            # A token for that scope (with credentials) opens the mapped repository.
            tok = token_for(admin_creds(), [ch["scope"]])
            pull_all(anon, "library/tokdemo", "1.0", image, ns="docker.io", headers=bearer(tok))
            # A token for another name does not.
            other = token_for(admin_creds(), ["repository:library/other:pull"])
            r = manifest(anon, "library/tokdemo", "1.0", "docker.io", headers=bearer(other))
            assert r.status == 401, f"a token for another repository opened the mirror: {r.summary()}"
            # Anonymous: refused without a policy, with or without an anonymous token.
            anon_tok = token_for(None, [ch["scope"]])
            for h in ({}, bearer(anon_tok)):
                r = manifest(anon, "library/tokdemo", "1.0", "docker.io", headers=h)
                assert r.status == 401, f"anonymous mirror pull without a policy: {r.summary()}"
            pushed = f"mirroranon{uuid.uuid4().hex[:8]}/app"
            push_image(client_a(), pushed, "v1")
            fresh = upstream_with(up, tmp, "library/fresh")
            with RegistryPolicy(anonymous_mirror_policy(rule.prefix)):
                policy_settle()
                for h in ({}, bearer(anon_tok)):
                    pull_all(anon, "library/tokdemo", "1.0", image, ns="docker.io", headers=h)
                # A first, anonymous pull imports (the policy allows it under the prefix only).
                pull_all(anon, "library/fresh", "1.0", fresh, ns="docker.io")
                assert repository_row_count(rule.repo("library/fresh")) == 1
                # Nothing outside the mirror's namespace opens to anonymous callers.
                r = anon.get(f"/v2/{pushed}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
                assert r.status == 401, f"the mirror policy opened a pushed repository: {r.summary()}"
test_mirror_token_dance_and_anonymous_pulls_only_with_the_policy.timeout = 240


def test_mirror_default_without_ns_as_dockerd_sends_it_and_pushes_unaffected():
    with DockerRegistry() as up, TempDir() as tmp:
        image = upstream_with(up, tmp, "library/dockerd")
        with CacheRule(up.url, mirrors=["docker.io"], default_mirror=True) as rule, CacheRule(up.url) as other:
            policy_settle()  # workers learn of a new default mirror within policy_cache_ms
            # dockerd's registry-mirrors: the Docker Hub name, no ns.
            pull_all(client_a(), "library/dockerd", "1.0", image)
            assert_stored_once(rule.repo("library/dockerd"), image, asked_name="library/dockerd")
            # A name under another rule's prefix stays that rule's.
            pull_all(client_a(), other.repo("library/dockerd"), "1.0", image)
            assert repository_row_count(other.repo("library/dockerd")) == 1
            # Pushes to unprefixed names work, and the pushed repository is served as itself.
            pushed = f"mirrorpush{uuid.uuid4().hex[:8]}/app"
            # A client checks the layers before it pushes a new repository: a layer the
            # store holds (and the caller may read) is still unknown there, so it is uploaded.
            layer = image_blobs(image)[-1].digest
            r = client_a().request("HEAD", f"/v2/{pushed}/blobs/{layer}")
            assert r.status == 404, f"a pre-push layer check was answered by the mirror: {r.summary()}"
            mine = push_image(client_a(), pushed, "v1")
            r = expect_status(manifest(client_a(), pushed, "v1"), 200, "pull of a pushed repository")
            assert r.body == mine.manifest.data and r.header("X-Pier-Cache") is None, r.summary()
            assert repository_row_count(rule.repo(pushed)) == 0
            # An unprefixed name the upstream lacks: the OCI error of the mapped repository.
            r = manifest(client_a(), "library/absent", "1.0")
            assert r.status == 404, r.summary()
            # No default mirror any more: unprefixed names are local names again.
            rule.update(default_mirror=False)
            assert_oci_error(manifest(client_a(), "library/nodefault", "1.0"), 404, "NAME_UNKNOWN")
test_mirror_default_without_ns_as_dockerd_sends_it_and_pushes_unaffected.timeout = 240


def test_mirror_unmapped_names_answer_name_unknown():
    with DockerRegistry() as up, TempDir() as tmp:
        image = upstream_with(up, tmp, "library/unmapped")
        with CacheRule(up.url, mirrors=["docker.io"]):
            digest = image_blobs(image)[0].digest
            for client in (client_a(), Client(url_a(), auth=None)):
                for method in ("GET", "HEAD"):
                    r = manifest(client, "library/unmapped", "1.0", "ghcr.io", method)
                    assert r.status == 404, r.summary()
                    if method == "GET":
                        err = assert_oci_error(r, 404, "NAME_UNKNOWN")
                        assert "ghcr.io" in err.get("message", ""), err
                assert_oci_error(client.get(f"/v2/library/unmapped/blobs/{digest}?ns=ghcr.io"), 404, "NAME_UNKNOWN")
                assert_oci_error(client.get("/v2/library/unmapped/manifests/1.0?ns=not%20a%20host"), 404,
                                 "NAME_UNKNOWN")
            # Without ns and without a default mirror, unprefixed names are local names.
            assert_oci_error(manifest(client_a(), "library/unmapped", "1.0"), 404, "NAME_UNKNOWN")
            assert repository_row_count("library/unmapped") == 0
            # containerd's override_path at a rule that mirrors nothing: the prefixed name
            # with ns is served as asked.
            with CacheRule(up.url) as plain:
                r = expect_status(manifest(client_a(), plain.repo("library/unmapped"), "1.0", "ghcr.io"), 200)
                assert r.header("Docker-Content-Digest") == image.digest, r.summary()


# ---------------------------------------------------------------------------
# podman / CRI-O: registries.conf mirror with a prefix location


def test_mirror_podman_registries_conf_prefix_location():
    with DockerRegistry() as up, TempDir() as tmp, Podman() as podman:
        image = upstream_with(up, tmp, "library/podmirror")
        with CacheRule(up.url) as rule:
            conf = tmp.sub("registries.conf")
            with open(conf, "w") as f:
                # docker.io itself is unreachable here: only the mirror can serve the pull.
                f.write('unqualified-search-registries = []\n'
                        '[[registry]]\nprefix = "docker.io"\nlocation = "127.0.0.1:9"\n'
                        '[[registry.mirror]]\n'
                        f'location = "{registry_host()}/{rule.prefix}"\ninsecure = true\n')
            saved = os.environ.get("CONTAINERS_REGISTRIES_CONF")
            os.environ["CONTAINERS_REGISTRIES_CONF"] = conf
            try:
                # Credentials for the mirror come from the auth file (--creds is for the
                # registry itself): podman login to Pier's host, as docs/mirror.md says.
                auth = tmp.sub("auth.json")
                user, password = admin_creds()
                podman("login", "--authfile", auth, "--tls-verify=false", "-u", user, "--password-stdin",
                       registry_host(), input=(password + "\n").encode())
                podman("pull", "--authfile", auth, "docker.io/library/podmirror:1.0")
                got = podman.inspect("docker.io/library/podmirror:1.0")
            finally:
                if saved is None:
                    del os.environ["CONTAINERS_REGISTRIES_CONF"]
                else:
                    os.environ["CONTAINERS_REGISTRIES_CONF"] = saved
            assert got.get("Digest") == image.digest, got.get("Digest")
            assert_stored_once(rule.repo("library/podmirror"), image)
test_mirror_podman_registries_conf_prefix_location.timeout = 300


# ---------------------------------------------------------------------------
# declaring mirrors: pierctl and the ECR extension fields


def test_mirror_rule_fields_and_validation_with_pierctl():
    a, b = unique_prefix("ma"), unique_prefix("mb")
    try:
        out = json.loads(ctl("rule", "create", a, "http://127.0.0.1:9", "--mirrors",
                             "Docker.io, quay.io:443,index.docker.io").stdout)
        assert out["mirrorRegistries"] == ["docker.io", "quay.io:443"] and out["defaultMirror"] is False, out
        listing = ctl("rule", "list").stdout
        line = next(l for l in listing.splitlines() if l.startswith(a + " "))
        assert "docker.io,quay.io:443" in line, listing
        ctl("rule", "create", b, "http://127.0.0.1:9")
        # One rule per registry, one default mirror: the error names the other rule.
        p = ctl("rule", "update", b, "--mirrors", "ghcr.io,docker.io", ok=False)
        assert "docker.io" in p.stderr and a in p.stderr, p.stderr
        assert json.loads(ctl("rule", "show", b).stdout)["mirrorRegistries"] == [], "a refused update changed the rule"
        ctl("rule", "update", a, "--default-mirror")
        p = ctl("rule", "update", b, "--default-mirror", ok=False)
        assert "default mirror" in p.stderr and a in p.stderr, p.stderr
        for bad in ("https://docker.io", "docker.io/library", "-bad.io", "a..b", "x:0", "x:70000", "under_score.io",
                    "x" * 64 + ".io"):
            p = ctl("rule", "update", b, "--mirrors", bad, ok=False)
            assert "mirrored registry" in p.stderr, (bad, p.stderr)
        # Clearing, and what a deleted rule mirrored is free again.
        shown = json.loads(ctl("rule", "update", a, "--mirrors", "", "--no-default-mirror").stdout)
        assert shown["mirrorRegistries"] == [] and shown["defaultMirror"] is False, shown
        ctl("rule", "update", a, "--mirrors", "docker.io", "--default-mirror")
        ctl("rule", "delete", a)
        shown = json.loads(ctl("rule", "update", b, "--mirrors", "docker.io", "--default-mirror").stdout)
        assert shown["mirrorRegistries"] == ["docker.io"] and shown["defaultMirror"] is True, shown
    finally:
        pierctl("rule", "delete", a)
        pierctl("rule", "delete", b)


def test_mirror_rule_fields_ecr_round_trip():
    a, b = unique_prefix("ea"), unique_prefix("eb")

    def call(op, body, status=200):
        r = signed_api_request(op, body)
        assert r.status == status, f"{op} {body}: {r.summary()}"
        return r.json()

    try:
        out = call("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": a, "upstreamRegistryUrl": "http://127.0.0.1:9",
                                                  "mirrorRegistries": ["docker.io", "Quay.io"], "defaultMirror": True})
        assert out["mirrorRegistries"] == ["docker.io", "quay.io"] and out["defaultMirror"] is True, out
        got = call("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [a]})["pullThroughCacheRules"][0]
        assert got["mirrorRegistries"] == ["docker.io", "quay.io"] and got["defaultMirror"] is True, got
        call("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": b, "upstreamRegistryUrl": "http://127.0.0.1:9"})
        plain = call("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": [b]})["pullThroughCacheRules"][0]
        assert "mirrorRegistries" not in plain and "defaultMirror" not in plain, plain
        # Errors: another rule's registry, a second default mirror, a malformed list.
        for body, words in (({"mirrorRegistries": ["quay.io"]}, ["quay.io", a]),
                            ({"defaultMirror": True}, ["default mirror", a]),
                            ({"mirrorRegistries": ["https://ghcr.io"]}, ["mirrored registry"]),
                            ({"mirrorRegistries": "ghcr.io"}, ["mirrorRegistries"]),
                            ({"defaultMirror": "yes"}, ["defaultMirror"])):
            r = signed_api_request("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": b, **body})
            assert r.status == 400 and r.json().get("__type", "").endswith("InvalidParameterException"), r.summary()
            msg = r.json().get("message", "")
            assert all(w in msg for w in words), (body, msg)
        out = call("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": a, "mirrorRegistries": [],
                                                  "defaultMirror": False})
        assert "mirrorRegistries" not in out, out
        out = call("UpdatePullThroughCacheRule", {"ecrRepositoryPrefix": b, "mirrorRegistries": ["ghcr.io", "quay.io"]})
        assert out["mirrorRegistries"] == ["ghcr.io", "quay.io"] and out["defaultMirror"] is False, out
        assert json.loads(ctl("rule", "show", b).stdout)["mirrorRegistries"] == ["ghcr.io", "quay.io"]
        # The SDKs refuse the extension fields client-side (docs/control-plane.md says so).
        try:
            ecr_client().update_pull_through_cache_rule(ecrRepositoryPrefix=b, mirrorRegistries=["x.io"])
        except Exception as e:  # noqa: BLE001 - botocore's ParamValidationError
            assert "mirrorRegistries" in str(e), e
        else:
            raise AssertionError("boto3 sent mirrorRegistries: update docs/control-plane.md")
    finally:
        pierctl("rule", "delete", a)
        pierctl("rule", "delete", b)
