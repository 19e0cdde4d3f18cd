"""Pushes, deletes, tag lists and the catalog honour policies: every refusal
names its action and resource, and nothing changes when a request is refused."""

import os
import urllib.parse

import time

from pierlib import (
    Client, TempDir, add_query, blob_row_count, build_image, build_image_layout, docker_ref, files_for_digest,
    location_path, patch_chunk, psql, push_image, put_manifest, repository_row_count, sha256_digest, skopeo,
    sql_str,
    start_upload, tag_row_count, tmp_files, url_a,
)
from authlib import (
    PULL_ACTIONS, PUSH_ACTIONS, User, allow, bearer, deny, denied, no_statement_allows, policy, token_for,
    unique_ns,
)


def catalog(client: Client, start_after: str | None = None, n: int = 100, headers=None, max_pages: int = 500):
    """Every repository the client's catalog lists (following Link), and the Link `last` values seen."""
    path = "/v2/_catalog?" + urllib.parse.urlencode({"n": n, **({"last": start_after} if start_after else {})})
    names, lasts = [], []
    for _ in range(max_pages):
        r = client.get(path, headers=headers)
        assert r.status == 200, f"catalog: {r.summary()}"
        names += r.json().get("repositories", [])
        link = r.header("Link")
        if not link:
            return names, lasts
        target = link.split(";", 1)[0].strip().strip("<>")
        lasts += urllib.parse.parse_qs(urllib.parse.urlsplit(target).query).get("last", [])
        path = location_path(target)
    raise AssertionError(f"catalog did not end after {max_pages} pages")


def test_pull_only_user_cannot_push_or_delete():
    ns = unique_ns("ro")
    repo = f"{ns}/app"
    admin = Client(url_a())
    img = push_image(admin, repo, "v1")
    with User("ro", policies={"pull": policy(allow(PULL_ACTIONS, f"{ns}/*"))}) as u:
        c = u.client()
        assert c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": img.manifest.media_type}).status == 200
        assert c.head(f"/v2/{repo}/blobs/{img.layers[0].digest}").status == 200
        tmp_before = tmp_files()
        # Uploads: POST, monolithic POST with a body, PATCH and PUT of someone else's session.
        no_statement_allows(c.post(f"/v2/{repo}/blobs/uploads/"), "ecr:InitiateLayerUpload", repo)
        data = os.urandom(3000)
        digest = sha256_digest(data)
        r = c.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data,
                   headers={"Content-Type": "application/octet-stream"})
        no_statement_allows(r, "ecr:InitiateLayerUpload", repo)
        assert files_for_digest(digest) == [] and blob_row_count(digest) == 0, "a refused upload was stored"
        _, loc = start_upload(admin, repo)
        no_statement_allows(patch_chunk(c, loc, data, 0), "ecr:UploadLayerPart", repo)
        no_statement_allows(c.put(add_query(loc, digest=digest), body=data), "ecr:CompleteLayerUpload", repo)
        assert files_for_digest(digest) == [] and blob_row_count(digest) == 0, "a refused upload was stored"
        admin.delete(loc)
        # Manifests: no new tag, no delete by tag or digest; blobs: no delete; no tag list.
        no_statement_allows(put_manifest(c, repo, "v2", img.manifest), "ecr:PutImage", repo)
        no_statement_allows(c.delete(f"/v2/{repo}/manifests/{img.digest}"), "ecr:BatchDeleteImage", repo)
        no_statement_allows(c.delete(f"/v2/{repo}/manifests/v1"), "ecr:BatchDeleteImage", repo)
        no_statement_allows(c.delete(f"/v2/{repo}/blobs/{img.layers[0].digest}"), "ecr:BatchDeleteImage", repo)
        no_statement_allows(c.get(f"/v2/{repo}/tags/list"), "ecr:ListImages", repo)
        # Nothing changed.
        assert tag_row_count(repo, "v1") == 1 and tag_row_count(repo, "v2") == 0
        r = admin.get(f"/v2/{repo}/manifests/v1", headers={"Accept": img.manifest.media_type})
        assert r.status == 200 and r.body == img.manifest.data, r.summary()
        assert admin.get(f"/v2/{repo}/blobs/{img.layers[0].digest}").status == 200
        assert admin.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        leftovers = tmp_files() - tmp_before
        assert not [p for p in leftovers if os.path.getsize(os.path.join(os.environ["PIER_BLOB_ROOT"], "tmp", p))
                    == len(data)], f"refused bytes left in tmp/: {leftovers}"
    # Someone allowed to delete, can.
    with User("deleter", policies={"d": policy(allow(["ecr:BatchDeleteImage"], f"{ns}/*"))}) as d:
        r = d.client().delete(f"/v2/{repo}/manifests/{img.digest}")
        assert r.status == 202, f"delete by an allowed user: {r.summary()}"


def test_push_allowed_into_team_namespace_only():
    ns = unique_ns("team")
    team_app, other_app = f"{ns}/team/app", f"{ns}/other/app"
    may_push = allow(PULL_ACTIONS + PUSH_ACTIONS + ["ecr:CreateRepository"], f"{ns}/team/*", sid="TeamPush")
    with TempDir() as tmp, User("team", policies={"team": policy(may_push)}) as t:
        image = build_image_layout(tmp.sub("src"), "1", layer_sizes=(1024, 12 * 1024))
        skopeo("copy", f"--dest-creds={t.creds_arg}", f"oci:{tmp.sub('src')}:1", docker_ref(team_app, "1"))
        r = t.client().get(f"/v2/{team_app}/manifests/1", headers={"Accept": image.manifest.media_type})
        assert r.status == 200 and r.header("Docker-Content-Digest") == image.digest, r.summary()
        assert repository_row_count(team_app) == 1
        p = skopeo("copy", f"--dest-creds={t.creds_arg}", f"oci:{tmp.sub('src')}:1", docker_ref(other_app, "1"),
                   check=False)
        assert p.returncode != 0, "the team user pushed outside team/"
        c = t.client()
        for repo in (other_app, f"{ns}/team", f"{ns}/teams/app"):
            no_statement_allows(c.post(f"/v2/{repo}/blobs/uploads/"), "ecr:InitiateLayerUpload", repo)
            no_statement_allows(put_manifest(c, repo, "1", image.manifest), "ecr:PutImage", repo)
            assert repository_row_count(repo) == 0, f"{repo} was created"
        for blob in [image.config, *image.layers]:
            r = c.head(f"/v2/{other_app}/blobs/{blob.digest}")
            assert r.status == 403, f"blob HEAD outside team/: {r.summary()}"


def test_first_push_needs_create_repository_before_any_bytes_are_stored():
    ns = unique_ns("create")
    existing, new = f"{ns}/team/existing", f"{ns}/team/new"
    push_image(Client(url_a()), existing, "base")
    no_create = allow(PULL_ACTIONS + PUSH_ACTIONS, f"{ns}/team/*", sid="PushNoCreate")
    with User("nocreate", policies={"p": policy(no_create)}) as u:
        c = u.client()
        # Into an existing repository: no CreateRepository needed.
        img = build_image()
        for blob in [img.config, *img.layers]:
            r = c.post(f"/v2/{existing}/blobs/uploads/?digest={blob.digest}", body=blob.data)
            assert r.status == 201, f"push into an existing repository: {r.summary()}"
        assert put_manifest(c, existing, "mine", img.manifest).status == 201
        # A new repository: refused, naming ecr:CreateRepository, before any byte is accepted,
        # and nothing is kept.
        problems = []
        r = c.post(f"/v2/{new}/blobs/uploads/")
        if r.status != 403:
            problems.append(f"POST of an upload session answered {r.status}, not 403")
        else:
            denied(r, "ecr:CreateRepository", new)
        data = os.urandom(5000)
        digest = sha256_digest(data)
        r = c.post(f"/v2/{new}/blobs/uploads/?digest={digest}", body=data)
        denied(r, "ecr:CreateRepository", new)
        if repository_row_count(new) != 0:
            problems.append(f"{new} was created")
        if blob_row_count(digest) != 0:
            problems.append("the refused blob has a row")
        if files_for_digest(digest):
            problems.append(f"the refused blob was published under blobs/: {files_for_digest(digest)}")
        assert not problems, "; ".join(problems)


def test_catalog_lists_only_repositories_the_caller_may_describe():
    ns = unique_ns("cat")
    team_a, team_b, other = f"{ns}/team/a", f"{ns}/team/b", f"{ns}/other/c"
    admin = Client(url_a())
    for repo in (team_a, team_b, other):
        push_image(admin, repo, "v1")
    describe_team = policy(allow(["ecr:DescribeRepositories"], f"{ns}/team/*"))
    describe_all_but_other = policy(allow(["ecr:DescribeRepositories"], "*"),
                                    deny(["ecr:DescribeRepositories"], f"{ns}/other/*", sid="HideOther"))
    with User("cat-team", policies={"d": describe_team}) as t, \
            User("cat-most", policies={"d": describe_all_but_other}) as m, User("cat-none") as none:
        names, _ = catalog(admin, start_after=ns)
        assert {team_a, team_b, other} <= set(names), f"admin's catalog lacks ours: {names}"
        names, _ = catalog(t.client(), start_after=ns)
        assert sorted(names) == [team_a, team_b], f"team user's catalog: {names}"
        names, _ = catalog(t.client())
        assert [n for n in names if not n.startswith(f"{ns}/team/")] == [], f"team user sees {names}"
        names, _ = catalog(m.client(), start_after=ns)
        ours = [n for n in names if n.startswith(ns + "/")]
        assert sorted(ours) == [team_a, team_b], f"an explicit Deny did not hide {other}: {names}"
        names, _ = catalog(none.client(), start_after=ns)
        assert names == [], f"a user without policy sees {names}"
        # Through a bearer token with the catalog scope: the same filter.
        tok = token_for(t.creds, ["registry:catalog:*"])
        names, _ = catalog(Client(url_a(), auth=None), start_after=ns, headers=bearer(tok))
        assert sorted(names) == [team_a, team_b], f"team user's catalog through a token: {names}"
        # Pagination must not reveal what is hidden: the next-page links name only visible repositories.
        names, lasts = catalog(t.client(), start_after=ns, n=1)
        assert sorted(names) == [team_a, team_b], f"paginated catalog of the team user: {names}"
        hidden = [x for x in lasts if x.startswith(ns) and x not in (team_a, team_b)]
        assert not hidden, f"catalog Link headers reveal repositories the caller may not describe: {hidden}"


def test_catalog_pages_reach_visible_repositories_past_many_hidden_ones():
    """1500 repositories the caller may not describe sort before the one it may: paging with
    n=1 still reaches it, hides the others, and each page answers promptly."""
    ns = unique_ns("catmany")
    visible = f"{ns}/zz/visible"
    push_image(Client(url_a()), visible, "v1")
    psql("INSERT INTO repositories(name) SELECT " + sql_str(ns + "/hidden-") +
         " || lpad(i::text, 5, '0') FROM generate_series(1, 1500) AS i")
    try:
        with User("cat-many", policies={"d": policy(allow(["ecr:DescribeRepositories"], f"{ns}/zz/*"))}) as u:
            t0 = time.monotonic()
            names, lasts = catalog(u.client(), start_after=ns, n=1)
            took = time.monotonic() - t0
            assert names == [visible], f"paged catalog of {visible}'s only reader: {names[:5]}"
            hidden = [x for x in lasts if x != visible]
            assert not hidden, f"Link headers name hidden repositories: {hidden[:5]}"
            names, _ = catalog(u.client(), start_after=ns, n=100)
            assert names == [visible], f"catalog with n=100: {names[:5]}"
            assert took < 20, f"paging past 1500 hidden repositories took {took:.1f} s"
    finally:
        psql(f"DELETE FROM repositories WHERE name LIKE {sql_str(ns + '/hidden-%')}")
