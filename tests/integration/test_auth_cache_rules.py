"""Identity and access with pull-through cache rules: the ECR reference
scenario end to end with podman and skopeo through a real upstream.

The upstream (docker-registry) holds docker/library/nginx and nginx/nginx; a
rule maps <prefix>/ onto it. A registry policy lets user A create and import
only under <prefix>/docker/; A's identity policy allows the pull actions
everywhere. B has no policy. C may pull, but not import."""

from pierlib import (
    Podman, TempDir, build_image_layout, docker_ref, image_ref, psql, repository_row_count, skopeo, sql_str,
)
from upstreams import CacheRule, DockerRegistry, assert_layout_holds, get_manifest, read_blob, unique_prefix
from authlib import (
    IMPORT_ACTIONS, PULL_ACTIONS, RegistryPolicy, RepositoryPolicy, User, allow, aws_principal, deny,
    explicitly_denied, no_statement_allows, policy, policy_settle, repo_arn,
)


def upstream_requests_for(up, upstream_repo: str, since: int) -> list:
    """Every request (any method, any status) the upstream saw for upstream_repo since the mark."""
    return up.matching(None, f"/v2/{upstream_repo}/.*", status=None, since=since)


def skopeo_pull(ref: str, dest: str, creds: str | None, check: bool = True):
    """skopeo copy docker://<pier ref> oci:<dest> as the given user (None: anonymous)."""
    flag = f"--src-creds={creds}" if creds else "--src-no-creds"
    return skopeo("copy", flag, ref, f"oci:{dest}", check=check)


def refused_output(p) -> str:
    assert p.returncode != 0, f"the client succeeded: {p.stdout[-500:]!r}"
    return p.stderr.decode(errors="replace")


def test_reference_scenario_pull_through_with_registry_and_identity_policies():
    with DockerRegistry() as up, TempDir() as tmp:
        nginx1 = build_image_layout(tmp.sub("nginx1"), "latest", layer_sizes=(2048, 48 * 1024))
        up.push_layout(tmp.sub("nginx1"), "latest", "docker/library/nginx")
        other = build_image_layout(tmp.sub("nginx-nginx"), "latest", layer_sizes=(1024, 16 * 1024))
        up.push_layout(tmp.sub("nginx-nginx"), "latest", "nginx/nginx")
        pull_everywhere = policy(allow(PULL_ACTIONS, "*", sid="PullAnything"))
        with CacheRule(up.url, prefix=unique_prefix("ecr-public-"), refresh=0) as rule, \
                User("ref-a", policies={"pull": pull_everywhere}) as a, \
                User("ref-b") as b, \
                User("ref-c", policies={"pull": pull_everywhere}) as c, \
                Podman() as podman:
            lib, nn = rule.repo("docker/library/nginx"), rule.repo("nginx/nginx")
            import_docker = allow(IMPORT_ACTIONS, f"{rule.prefix}/docker/*", sid="PullThroughDocker",
                                  principal=aws_principal(a.arn))
            with RegistryPolicy(policy(import_docker)) as reg:
                policy_settle()

                # A pulls <prefix>/docker/library/nginx: created and imported.
                mark = up.settle()
                podman.pull(image_ref(lib, "latest"), creds=a.creds_arg)
                assert podman.inspect(image_ref(lib, "latest"))["Digest"] == nginx1.digest
                rows = psql(f"SELECT kind FROM repositories WHERE name = {sql_str(lib)}")
                assert rows == [["cache"]], f"repository row of {lib}: {rows}"
                up.settle()
                assert up.count("GET", up.manifest_pattern("docker/library/nginx", "latest"), since=mark) == 1, \
                    up.summary(mark)

                # A's pull of <prefix>/nginx/nginx is outside docker/*: refused before any upstream traffic.
                mark = up.settle()
                r = get_manifest(a.client(), nn, "latest")
                action = "ecr:CreateRepository" if "ecr:CreateRepository" in r.text else "ecr:BatchImportUpstreamImage"
                no_statement_allows(r, action, nn)
                out = refused_output(podman("pull", "--tls-verify=false", f"--creds={a.creds_arg}",
                                            image_ref(nn, "latest"), check=False))
                assert "denied" in out.lower() or "403" in out, f"podman's refusal: {out[-800:]}"
                out = refused_output(skopeo_pull(docker_ref(nn, "latest"), tmp.sub("nn") + ":x", a.creds_arg,
                                                 check=False))
                assert action in out and repo_arn(nn) in out, f"skopeo did not show Pier's refusal: {out[-800:]}"
                r = read_blob(a.client().base_url, f"/v2/{nn}/blobs/{other.layers[0].digest}",
                              headers={"Authorization": a.client().authorization})
                assert r.status == 403, f"blob of {nn}: {r.summary()}"
                up.settle()
                seen = upstream_requests_for(up, "nginx/nginx", mark)
                assert seen == [], f"the upstream saw requests for nginx/nginx: {seen}"
                assert repository_row_count(nn) == 0, f"{nn} was created"

                # B has no policy at all: refused, also for what is cached, and nothing goes upstream.
                mark = up.settle()
                no_statement_allows(get_manifest(b.client(), lib, "latest"), "ecr:BatchGetImage", lib)
                no_statement_allows(b.client().get(f"/v2/{lib}/blobs/{nginx1.layers[0].digest}"),
                                    "ecr:GetDownloadUrlForLayer", lib)
                no_statement_allows(get_manifest(b.client(), nn, "latest"), "ecr:BatchGetImage", nn)
                no_statement_allows(b.client().get(f"/v2/{lib}/referrers/{nginx1.digest}"), "ecr:BatchGetImage", lib)
                no_statement_allows(b.client().get(f"/v2/{lib}/tags/list"), "ecr:ListImages", lib)
                out = refused_output(skopeo_pull(docker_ref(lib, "latest"), tmp.sub("b") + ":x", b.creds_arg,
                                                 check=False))
                assert "ecr:BatchGetImage" in out, f"skopeo did not show Pier's refusal: {out[-800:]}"
                up.settle()
                assert up.mark() == mark, f"B's refused pulls reached the upstream: {up.summary(mark)}"

                # The tag moves upstream. C may pull but not import: C keeps getting the cached image,
                # and what is not cached yet stays out of reach without any upstream GET.
                nginx2 = build_image_layout(tmp.sub("nginx2"), "latest", layer_sizes=(3072, 40 * 1024))
                up.push_layout(tmp.sub("nginx2"), "latest", "docker/library/nginx")
                mark = up.settle()
                r = get_manifest(c.client(), lib, "latest")
                assert r.status == 200, r.summary()
                assert r.header("Docker-Content-Digest") == nginx1.digest and r.body == nginx1.manifest.data, \
                    f"C did not get the cached image: {r.summary()}"
                skopeo_pull(docker_ref(lib, "latest"), tmp.sub("c-copy") + ":latest", c.creds_arg)
                assert_layout_holds(tmp.sub("c-copy"), "latest", nginx1)
                no_statement_allows(get_manifest(c.client(), lib, nginx2.digest), "ecr:BatchImportUpstreamImage",
                                    lib)
                no_statement_allows(c.client().get(f"/v2/{lib}/blobs/{nginx2.layers[1].digest}"),
                                    "ecr:BatchImportUpstreamImage", lib)
                up.settle()
                assert up.count("GET", up.manifest_pattern("docker/library/nginx"), status=None, since=mark) == 0, \
                    f"C's pulls fetched a manifest upstream: {up.summary(mark)}"
                assert up.blob_gets("docker/library/nginx", since=mark) == {}, \
                    f"C's pulls fetched blobs upstream: {up.summary(mark)}"

                # A may import: A gets the new image, and then C gets it from the cache.
                podman.pull(image_ref(lib, "latest"), creds=a.creds_arg)
                assert podman.inspect(image_ref(lib, "latest"))["Digest"] == nginx2.digest
                mark = up.settle()
                r = get_manifest(c.client(), lib, "latest")
                assert r.status == 200 and r.body == nginx2.manifest.data, f"C after A's import: {r.summary()}"
                for blob in [nginx2.config, *nginx2.layers]:
                    r = c.client().get(f"/v2/{lib}/blobs/{blob.digest}")
                    assert r.status == 200 and r.body == blob.data, f"C's blob {blob.digest}: {r.summary()}"
                up.settle()
                assert up.blob_gets("docker/library/nginx", since=mark) == {}, up.summary(mark)

                # An explicit Deny overrides every Allow: in the registry policy for A, in the
                # repository policy for C; B's answers do not change.
                reg.put(policy(import_docker,
                               deny(["ecr:BatchGetImage"], lib, sid="NoNginxForA", principal=aws_principal(a.arn))),
                        settle=False)
                with RepositoryPolicy(lib, policy(deny("ecr:*", lib, sid="NoNginxForC",
                                                       principal=aws_principal(c.arn)))):
                    policy_settle()
                    explicitly_denied(get_manifest(a.client(), lib, "latest"), "ecr:BatchGetImage", lib,
                                      "NoNginxForA", "registry policy")
                    # Only BatchGetImage is denied to A: blobs still come.
                    r = a.client().get(f"/v2/{lib}/blobs/{nginx2.layers[0].digest}")
                    assert r.status == 200 and r.body == nginx2.layers[0].data, r.summary()
                    explicitly_denied(get_manifest(c.client(), lib, "latest"), "ecr:BatchGetImage", lib,
                                      "NoNginxForC", "repository policy")
                    explicitly_denied(c.client().get(f"/v2/{lib}/blobs/{nginx2.layers[0].digest}"),
                                      "ecr:GetDownloadUrlForLayer", lib, "NoNginxForC", "repository policy")
                    no_statement_allows(get_manifest(b.client(), lib, "latest"), "ecr:BatchGetImage", lib)
                policy_settle()
                # Deny gone (repository policy deleted): C pulls again.
                r = get_manifest(c.client(), lib, "latest")
                assert r.status == 200 and r.header("Docker-Content-Digest") == nginx2.digest, r.summary()
