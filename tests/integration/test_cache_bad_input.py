"""Pull-through cache: bad rules are refused by pierctl, cache namespaces
cannot be pushed to or deleted from, and names cannot escape a rule's prefix."""

import uuid

from pierlib import (
    OCI_MANIFEST, TempDir, assert_oci_error, blob_files, build_image, build_image_layout, client_a, client_b,
    db_counts, expect_status, push_image, repository_row_count, sha256_digest, tmp_files, unique_repo,
)
from upstreams import (
    CacheRule, FakeRegistry, cache_state, get_manifest, pierctl, read_blob, rule_count, unique_prefix,
)

BAD_PREFIXES = ["A", "a", "x/", "/x", "a//b", "a" * 31, "..", "Ab", "a b", "a:b", "-ab"]
BAD_URLS = ["ftp://x", "http://user:pw@host", "http://host?x=1", "http://h:99999", "http://h:0",
            "http://", "http://h/a#frag", "http://h/../x"]
CACHE_WORDS = ("pull-through cache",)


def _refused(p, what, words):
    assert p.returncode == 1, f"{what}: exit {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}"
    err = p.stderr.strip()
    assert err, f"{what}: no message on stderr"
    assert any(w in err.lower() for w in words), f"{what}: message {err!r} does not mention {words}"
    assert not p.stdout.strip(), f"{what}: printed {p.stdout!r} although it failed"
    return err


def test_rule_create_refuses_bad_prefixes_and_urls():
    url = "http://127.0.0.1:9"
    for prefix in BAD_PREFIXES:
        p = pierctl("rule", "create", prefix, url)
        _refused(p, f"rule create {prefix!r}", ("prefix",))
        assert rule_count(prefix) == 0, f"a rule with prefix {prefix!r} was stored"
    for bad in BAD_URLS:
        prefix = unique_prefix()
        p = pierctl("rule", "create", prefix, bad)
        err = _refused(p, f"rule create with URL {bad!r}", ("url",))
        assert "pw" not in err, f"the password of {bad!r} is echoed: {err!r}"
        assert rule_count(prefix) == 0, f"a rule with URL {bad!r} was stored"
    # Bad option values.
    prefix = unique_prefix()
    for args, words in ((["--refresh", "-1"], ("refresh",)), (["--refresh", "abc"], ("refresh",)),
                        (["--negative", "x"], ("negative",)), (["--registry", "nosuch"], ("upstreamregistry",)),
                        (["--upstream-prefix", "Bad//x"], ("upstreamrepositoryprefix", "prefix")),
                        (["--ca-bundle", "/nonexistent/ca.pem"], ("ca bundle",))):
        p = pierctl("rule", "create", prefix, url, *args)
        _refused(p, f"rule create {' '.join(args)}", words)
        assert rule_count(prefix) == 0
    # --username without a token on stdin.
    p = pierctl("rule", "create", prefix, url, "--username", "someone", input="")
    _refused(p, "rule create --username with empty stdin", ("token", "stdin", "standard input"))
    assert rule_count(prefix) == 0
    # The limits themselves are fine: 2 and 30 characters, http:// kept, https:// implied.
    limits = ((f"q{uuid.uuid4().hex[0]}", "http://127.0.0.1:9", "http://127.0.0.1:9"),
              ("c" + uuid.uuid4().hex[:29], "registry.example:8443/v", "https://registry.example:8443/v"))
    for good, given, stored in limits:
        with CacheRule(given, prefix=good) as rule:
            assert rule.created["ecrRepositoryPrefix"] == good, rule.created
            assert rule.created["upstreamRegistryUrl"] == stored, rule.created
        assert rule_count(good) == 0, "rule delete left the rule"


def test_rule_create_refuses_duplicates_and_prefixes_holding_pushed_images():
    with CacheRule("http://127.0.0.1:9") as rule:
        p = pierctl("rule", "create", rule.prefix, "http://127.0.0.1:10")
        _refused(p, "duplicate rule", ("exists",))
        assert rule.show()["upstreamRegistryUrl"] == "http://127.0.0.1:9", "the duplicate changed the rule"
    p = pierctl("rule", "delete", rule.prefix)
    assert p.returncode == 1 and p.stderr.strip(), f"deleting a missing rule: {p.returncode} {p.stderr!r}"
    p = pierctl("rule", "show", rule.prefix)
    assert p.returncode == 1 and p.stderr.strip(), f"showing a missing rule: {p.returncode} {p.stderr!r}"

    prefix = unique_prefix()
    c = client_a()
    push_image(c, f"{prefix}/app", "v1")
    p = pierctl("rule", "create", prefix, "http://127.0.0.1:9")
    _refused(p, "rule over pushed repositories", ("pushed",))
    assert rule_count(prefix) == 0
    # The pushed images are untouched and still pushable.
    expect_status(get_manifest(c, f"{prefix}/app", "v1"), 200)
    push_image(c, f"{prefix}/app", "v2")


def test_push_into_cache_namespace_is_denied_and_stores_nothing():
    with FakeRegistry() as up, TempDir() as tmp:
        image = build_image_layout(tmp.sub("src"), "1.0", layer_sizes=(1024,))
        up.add_layout("library/demo", tmp.sub("src"), "1.0")
        with CacheRule(up.url) as rule:
            a, b = client_a(), client_b()
            pushed_src = unique_repo("mount-src")
            pushed = push_image(a, pushed_src, "v1")
            new = build_image()
            data = new.layers[0].data
            counts, files, tmps = db_counts(), blob_files(), tmp_files()

            def refused(client, method, path, body=None, headers=None, what=""):
                r = client.request(method, path, body=body, headers=headers)
                try:
                    assert_oci_error(r, 403, "DENIED", CACHE_WORDS)
                except AssertionError as e:
                    raise AssertionError(f"{what or method + ' ' + path}: {e}") from None

            for client in (a, b):
                name = rule.repo(f"new-{uuid.uuid4().hex[:6]}")
                refused(client, "POST", f"/v2/{name}/blobs/uploads/")
                refused(client, "POST", f"/v2/{name}/blobs/uploads/?digest={sha256_digest(data)}", body=data,
                        headers={"Content-Type": "application/octet-stream"})
                refused(client, "POST",
                        f"/v2/{name}/blobs/uploads/?mount={pushed.layers[0].digest}&from={pushed_src}")
                refused(client, "PUT", f"/v2/{name}/manifests/v1", body=new.manifest.data,
                        headers={"Content-Type": OCI_MANIFEST})
                refused(client, "PUT", f"/v2/{name}/manifests/{new.digest}", body=new.manifest.data,
                        headers={"Content-Type": OCI_MANIFEST})
                assert repository_row_count(name) == 0, f"repository {name} was created"
            assert db_counts() == counts, f"rows created: {counts} -> {db_counts()}"
            assert blob_files() == files, f"files created under blobs/: {sorted(blob_files() - files)}"
            assert tmp_files() == tmps, f"files created under tmp/: {sorted(tmp_files() - tmps)}"
            assert up.entries() == [], f"pushes reached the upstream: {up.summary()}"

            # An existing cache repository: pushes and deletes are denied, content stays.
            repo = rule.repo("library/demo")
            r = expect_status(get_manifest(a, repo, "1.0"), 200)
            assert cache_state(r) == "miss"
            blob = image.layers[0]
            got = read_blob(a.base_url, f"/v2/{repo}/blobs/{blob.digest}")
            assert got.complete and got.digest == blob.digest, got.summary()
            counts, files = db_counts(), blob_files()
            refused(b, "POST", f"/v2/{repo}/blobs/uploads/")
            refused(b, "PUT", f"/v2/{repo}/manifests/1.0", body=new.manifest.data,
                    headers={"Content-Type": OCI_MANIFEST})
            refused(a, "DELETE", f"/v2/{repo}/manifests/{image.digest}")
            refused(a, "DELETE", f"/v2/{repo}/manifests/1.0")
            refused(b, "DELETE", f"/v2/{repo}/blobs/{blob.digest}")
            assert db_counts() == counts, f"rows changed: {counts} -> {db_counts()}"
            assert blob_files() == files
            r = expect_status(get_manifest(b, repo, "1.0"), 200)
            assert r.header("Docker-Content-Digest") == image.digest and cache_state(r) == "hit", r.summary()
            got = read_blob(b.base_url, f"/v2/{repo}/blobs/{blob.digest}")
            assert got.complete and got.digest == blob.digest, got.summary()
        # The rule is gone: the cache repository still refuses pushes and deletes.
        refused(a, "POST", f"/v2/{repo}/blobs/uploads/")
        refused(a, "DELETE", f"/v2/{repo}/manifests/{image.digest}")
        r = expect_status(get_manifest(a, repo, "1.0"), 200, "cache repository after its rule was deleted")
        assert r.header("Docker-Content-Digest") == image.digest


def test_names_escaping_the_prefix_are_name_invalid_and_never_reach_the_upstream():
    with FakeRegistry() as up, TempDir() as tmp:
        image = build_image_layout(tmp.sub("src"), "1.0", layer_sizes=(1024,))
        up.add_layout("x", tmp.sub("src"), "1.0")
        up.add_layout("library/demo", tmp.sub("src"), "1.0")
        with CacheRule(up.url) as rule:
            p = rule.prefix
            blob = image.layers[0].digest
            names = [f"{p}/../x", f"{p}%2F..", f"{p}%2F..%2Fx", f"{p}/library/../../x", f"{p}/./x",
                     f"{p}/library/demo/..", f"{p}/%2e%2e/x"]
            for client in (client_a(), client_b()):
                for name in names:
                    for path in (f"/v2/{name}/manifests/1.0", f"/v2/{name}/blobs/{blob}",
                                 f"/v2/{name}/manifests/{image.digest}"):
                        r = client.get(path, headers={"Accept": OCI_MANIFEST})
                        try:
                            assert_oci_error(r, 400, "NAME_INVALID", ("name", "repository"))
                        except AssertionError as e:
                            raise AssertionError(f"GET {path}: {e}") from None
                        h = client.head(path)
                        assert h.status == 400, f"HEAD {path} -> {h.status}"
            assert up.entries() == [], f"escaping names reached the upstream: {up.summary()}"
            for name in names:
                assert repository_row_count(name) == 0
            # The rule itself works.
            r = expect_status(get_manifest(client_a(), rule.repo("library/demo"), "1.0"), 200)
            assert r.header("Docker-Content-Digest") == image.digest
            assert [e[1] for e in up.entries()] == ["/v2/library/demo/manifests/1.0"], up.summary()
