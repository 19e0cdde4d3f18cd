"""Manifest push, pull, content negotiation, validation and deletion."""

import json
import os

from pierlib import (
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Content, assert_oci_error, build_and_push_prereqs,
    build_image, client_a, expect_header, expect_status, location_path, manifest_kinds, manifest_row_count,
    oci_index, oci_manifest, push_blob_monolithic, push_image, push_image_blobs, push_manifest, put_manifest,
    sha256_digest, tag_row_count, unique_repo, unique_tag,
)


def check_put_response(r, repo, ref, manifest):
    expect_status(r, 201, f"PUT {manifest.media_type} as {ref}")
    got = r.header("Docker-Content-Digest")
    assert got == manifest.digest, f"Docker-Content-Digest {got!r} != {manifest.digest}"
    loc = location_path(expect_header(r, "Location", "manifest PUT"))
    allowed = (f"/v2/{repo}/manifests/{manifest.digest}", f"/v2/{repo}/manifests/{ref}")
    assert loc in allowed, f"Location {loc!r} is not one of {allowed}"


def check_get(c, repo, ref, manifest):
    accept = {"Accept": manifest.media_type}
    r = c.get(f"/v2/{repo}/manifests/{ref}", headers=accept)
    expect_status(r, 200, f"GET {manifest.media_type} by {ref}")
    assert r.header("Content-Type") == manifest.media_type, \
        f"Content-Type {r.header('Content-Type')!r}, expected {manifest.media_type}"
    assert r.body == manifest.data, f"GET by {ref} returned bytes that differ from what was pushed"
    assert r.header("Docker-Content-Digest") == manifest.digest, r.summary()
    h = c.head(f"/v2/{repo}/manifests/{ref}", headers=accept)
    expect_status(h, 200, f"HEAD {manifest.media_type} by {ref}")
    assert h.header("Content-Type") == manifest.media_type, h.summary()
    assert h.header("Content-Length") == str(manifest.size), f"HEAD Content-Length: {h.summary()}"
    assert h.header("Docker-Content-Digest") == manifest.digest, h.summary()
    assert h.body == b""


def test_put_manifest_by_tag_for_each_media_type():
    c = client_a()
    repo = unique_repo("put-tag")
    for kind, media_type in manifest_kinds():
        manifest = build_and_push_prereqs(c, repo, media_type)
        assert manifest.media_type == media_type
        tag = unique_tag(kind)
        r = put_manifest(c, repo, tag, manifest)
        check_put_response(r, repo, tag, manifest)
        assert tag_row_count(repo, tag) == 1, f"no row in tags for {repo}:{tag}"
        assert manifest_row_count(manifest.digest) >= 1, f"no row in manifests for {manifest.digest}"


def test_put_manifest_by_digest_for_each_media_type():
    c = client_a()
    repo = unique_repo("put-digest")
    for _kind, media_type in manifest_kinds():
        manifest = build_and_push_prereqs(c, repo, media_type)
        r = put_manifest(c, repo, manifest.digest, manifest)
        check_put_response(r, repo, manifest.digest, manifest)


def test_get_and_head_by_tag_and_digest_return_exact_bytes():
    c = client_a()
    repo = unique_repo("get")
    for kind, media_type in manifest_kinds():
        manifest = build_and_push_prereqs(c, repo, media_type)
        tag = unique_tag(kind)
        push_manifest(c, repo, tag, manifest)
        check_get(c, repo, tag, manifest)
        check_get(c, repo, manifest.digest, manifest)


def test_accept_listing_only_another_type_is_manifest_unknown():
    c = client_a()
    repo = unique_repo("accept")
    oci = push_image(c, repo, "oci", kind="oci")
    docker = push_image(c, repo, "docker", kind="docker")
    r = c.get(f"/v2/{repo}/manifests/oci", headers={"Accept": DOCKER_MANIFEST})
    assert_oci_error(r, 404, "MANIFEST_UNKNOWN")
    r = c.get(f"/v2/{repo}/manifests/docker", headers={"Accept": OCI_MANIFEST})
    assert_oci_error(r, 404, "MANIFEST_UNKNOWN")
    # Sanity: the right type is served.
    check_get(c, repo, "oci", oci.manifest)
    check_get(c, repo, "docker", docker.manifest)


def test_accept_with_several_headers_including_the_right_type():
    c = client_a()
    repo = unique_repo("accept-multi")
    img = push_image(c, repo, "v1", kind="oci")
    headers = [("Accept", DOCKER_MANIFEST), ("Accept", DOCKER_LIST), ("Accept", OCI_MANIFEST)]
    r = c.get(f"/v2/{repo}/manifests/v1", headers=headers)
    expect_status(r, 200, "GET with three Accept headers")
    assert r.header("Content-Type") == OCI_MANIFEST, r.summary()
    assert r.body == img.manifest.data
    one_header = {"Accept": f"{DOCKER_MANIFEST};q=0.9, {OCI_INDEX}, {OCI_MANIFEST};q=0.5"}
    r = c.get(f"/v2/{repo}/manifests/v1", headers=one_header)
    expect_status(r, 200, "GET with a comma-separated Accept list")
    assert r.header("Content-Type") == OCI_MANIFEST and r.body == img.manifest.data, r.summary()


def test_manifest_naming_missing_blob_is_rejected():
    c = client_a()
    repo = unique_repo("missing-blob")
    push_image(c, repo, "existing")  # the repository exists
    for missing in ("layer", "config"):
        img = build_image("oci")
        blobs = [img.config] if missing == "layer" else img.layers
        for b in blobs:
            push_blob_monolithic(c, repo, b.data)
        tag = unique_tag(missing)
        r = put_manifest(c, repo, tag, img.manifest)
        assert_oci_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
        assert manifest_row_count(img.manifest.digest) == 0, f"row in manifests for rejected manifest ({missing})"
        assert tag_row_count(repo, tag) == 0, f"row in tags for rejected manifest ({missing})"
        assert_oci_error(c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}),
                         404, "MANIFEST_UNKNOWN")


def test_index_naming_missing_child_manifest_is_rejected():
    c = client_a()
    repo = unique_repo("missing-child")
    present = push_image(c, repo, None, arch="amd64")
    absent = build_image("oci", arch="arm64")
    push_image_blobs(c, repo, absent)  # blobs exist, the manifest itself does not
    index = oci_index([(present.manifest, {"os": "linux", "architecture": "amd64"}),
                       (absent.manifest, {"os": "linux", "architecture": "arm64"})])
    tag = unique_tag("idx")
    r = put_manifest(c, repo, tag, index)
    assert_oci_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert manifest_row_count(index.digest) == 0
    assert tag_row_count(repo, tag) == 0


def test_invalid_json_manifest_is_rejected():
    c = client_a()
    repo = unique_repo("badjson")
    push_image(c, repo, "existing")
    for body in (b"{not json", b"", b"[]", b'"a string"'):
        bad = Content(body, OCI_MANIFEST)
        tag = unique_tag("bad")
        r = put_manifest(c, repo, tag, bad)
        assert_oci_error(r, 400, "MANIFEST_INVALID")
        assert tag_row_count(repo, tag) == 0
        assert manifest_row_count(bad.digest) == 0


def test_manifest_missing_required_fields_is_rejected():
    c = client_a()
    repo = unique_repo("badschema")
    img = push_image(c, repo, "existing")
    no_config = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [img.layers[0].descriptor()]}
    wrong_version = json.loads(img.manifest.data)
    wrong_version["schemaVersion"] = 1
    for doc in (no_config, wrong_version):
        bad = Content(json.dumps(doc).encode(), OCI_MANIFEST)
        tag = unique_tag("bad")
        r = put_manifest(c, repo, tag, bad)
        assert_oci_error(r, 400, "MANIFEST_INVALID")
        assert tag_row_count(repo, tag) == 0


def test_manifest_over_4_mib_is_rejected_and_not_stored():
    c = client_a()
    repo = unique_repo("huge")
    img = push_image(c, repo, "existing")
    filler = "x" * (4 * 1024 * 1024 + 1024)
    huge = oci_manifest(img.config, img.layers, annotations={"org.example.filler": filler})
    assert huge.size > 4 * 1024 * 1024
    tag = unique_tag("huge")
    r = put_manifest(c, repo, tag, huge)
    # README: max_manifest_size (4 MiB), "larger manifests get 413 SIZE_INVALID".
    assert_oci_error(r, 413, "SIZE_INVALID")
    assert manifest_row_count(huge.digest) == 0, "oversized manifest was stored"
    assert tag_row_count(repo, tag) == 0, "oversized manifest was tagged"
    assert_oci_error(c.get(f"/v2/{repo}/manifests/{huge.digest}", headers={"Accept": OCI_MANIFEST}),
                     404, "MANIFEST_UNKNOWN")


def test_put_by_digest_with_mismatching_body_is_rejected():
    c = client_a()
    repo = unique_repo("digest-mismatch")
    img = build_image("oci")
    push_image_blobs(c, repo, img)
    other = oci_manifest(img.config, img.layers, annotations={"x": "y"})
    r = put_manifest(c, repo, other.digest, img.manifest)
    assert_oci_error(r, 400, "DIGEST_INVALID")
    assert manifest_row_count(img.manifest.digest) == 0
    assert manifest_row_count(other.digest) == 0


def test_delete_manifest_by_digest_removes_manifest_and_its_tag():
    c = client_a()
    repo = unique_repo("del-digest")
    keep = push_image(c, repo, "keep")
    gone = push_image(c, repo, "gone")
    r = c.delete(f"/v2/{repo}/manifests/{gone.digest}")
    expect_status(r, 202, "DELETE manifest by digest")
    accept = {"Accept": OCI_MANIFEST}
    assert_oci_error(c.get(f"/v2/{repo}/manifests/{gone.digest}", headers=accept), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(c.get(f"/v2/{repo}/manifests/gone", headers=accept), 404, "MANIFEST_UNKNOWN")
    expect_status(c.head(f"/v2/{repo}/manifests/gone", headers=accept), 404)
    tags = expect_status(c.get(f"/v2/{repo}/tags/list"), 200).json()["tags"] or []
    assert "gone" not in tags and "keep" in tags, f"tags after delete: {tags}"
    check = c.get(f"/v2/{repo}/manifests/keep", headers=accept)
    expect_status(check, 200)
    assert check.body == keep.manifest.data


def test_delete_by_tag_keeps_manifest_by_digest():
    c = client_a()
    repo = unique_repo("del-tag")
    img = push_image(c, repo, "v1")
    r = c.delete(f"/v2/{repo}/manifests/v1")
    expect_status(r, 202, "DELETE tag")
    accept = {"Accept": OCI_MANIFEST}
    assert_oci_error(c.get(f"/v2/{repo}/manifests/v1", headers=accept), 404, "MANIFEST_UNKNOWN")
    tags = expect_status(c.get(f"/v2/{repo}/tags/list"), 200, "tags list after tag deletion").json().get("tags") or []
    assert "v1" not in tags, f"deleted tag still listed: {tags}"
    r = c.get(f"/v2/{repo}/manifests/{img.digest}", headers=accept)
    expect_status(r, 200, "manifest by digest after tag deletion")
    assert r.body == img.manifest.data


def test_retag_points_tag_at_new_manifest():
    c = client_a()
    repo = unique_repo("retag")
    first = push_image(c, repo, "latest")
    second = push_image(c, repo, "latest")
    r = expect_status(c.get(f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST}), 200)
    assert r.body == second.manifest.data, "tag still points at the first manifest"
    r = expect_status(c.get(f"/v2/{repo}/manifests/{first.digest}", headers={"Accept": OCI_MANIFEST}), 200)
    assert r.body == first.manifest.data


def test_unknown_tag_is_manifest_unknown():
    c = client_a()
    repo = unique_repo("unknown-tag")
    push_image(c, repo, "present")
    accept = {"Accept": OCI_MANIFEST}
    assert_oci_error(c.get(f"/v2/{repo}/manifests/absent", headers=accept), 404, "MANIFEST_UNKNOWN")
    expect_status(c.head(f"/v2/{repo}/manifests/absent", headers=accept), 404)
    missing = sha256_digest(os.urandom(32))
    assert_oci_error(c.get(f"/v2/{repo}/manifests/{missing}", headers=accept), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(c.delete(f"/v2/{repo}/manifests/absent"), 404, "MANIFEST_UNKNOWN")


def test_unknown_repository_is_404():
    c = client_a()
    repo = unique_repo("never-pushed")
    accept = {"Accept": OCI_MANIFEST}
    assert_oci_error(c.get(f"/v2/{repo}/manifests/latest", headers=accept), 404,
                     ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"))
    expect_status(c.head(f"/v2/{repo}/manifests/latest", headers=accept), 404)
