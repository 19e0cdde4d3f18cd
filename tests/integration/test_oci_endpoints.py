"""The OCI distribution spec's endpoint table, row by row (end-1 … end-14):
the success status and every failure status the table lists, with the error
code the error table gives. A row whose failure cannot happen in Pier says
why in its docstring."""

import json
import os

from pierlib import sha256_digest
from pierlib import (
    OCI_MANIFEST, Client, ExtraNode, admin_creds, assert_oci_error, build_image, client_a, expect_header,
    expect_status, location_path, push_blob_monolithic, push_image, push_image_blobs, push_manifest,
    start_upload, unique_repo, url_a,
)

ZERO = "sha256:" + "0" * 64


def test_end_1_base():
    r = expect_status(client_a().get("/v2/"), 200, "GET /v2/ with credentials")
    assert r.header("Docker-Distribution-API-Version") == "registry/2.0"
    r = expect_status(Client(url_a(), auth=None).get("/v2/"), 401, "GET /v2/ without credentials")
    assert expect_header(r, "WWW-Authenticate", "the challenge")
    # 404 is for a server that does not implement the spec.


def test_end_2_blob_get_and_head():
    c = client_a()
    repo = unique_repo("end2")
    data = os.urandom(100)
    digest = push_blob_monolithic(c, repo, data)
    assert expect_status(c.get(f"/v2/{repo}/blobs/{digest}"), 200, "GET").body == data
    r = expect_status(c.head(f"/v2/{repo}/blobs/{digest}"), 200, "HEAD")
    assert int(r.header("Content-Length")) == 100 and r.body == b""
    assert_oci_error(c.get(f"/v2/{repo}/blobs/{ZERO}"), 404, "BLOB_UNKNOWN")
    expect_status(c.head(f"/v2/{repo}/blobs/{ZERO}"), 404, "HEAD of an unknown blob")
    assert_oci_error(c.get(f"/v2/{unique_repo('nothere')}/blobs/{digest}"), 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))


def test_end_3_manifest_get_and_head():
    c = client_a()
    repo = unique_repo("end3")
    img = push_image(c, repo, "v1")
    for ref in ("v1", img.digest):
        r = expect_status(c.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}), 200, ref)
        assert r.body == img.manifest.data and r.header("Docker-Content-Digest") == img.digest
        r = expect_status(c.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST}), 200, ref)
        assert int(r.header("Content-Length")) == len(img.manifest.data)
    assert_oci_error(c.get(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(c.get(f"/v2/{repo}/manifests/{ZERO}"), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(c.get(f"/v2/{unique_repo('nothere')}/manifests/v1"), 404, "NAME_UNKNOWN")
    expect_status(c.head(f"/v2/{repo}/manifests/nope"), 404, "HEAD of an unknown tag")


def test_end_4a_start_an_upload():
    """404 (NAME_UNKNOWN) does not happen: a push creates its repository."""
    c = client_a()
    repo = unique_repo("end4a")
    r = expect_status(c.post(f"/v2/{repo}/blobs/uploads/"), 202, "POST uploads/")
    loc = location_path(expect_header(r, "Location", "the session"))
    assert loc.startswith(f"/v2/{repo}/blobs/uploads/"), loc
    assert r.header("Range") in (None, "0-0"), r.summary()
    assert_oci_error(c.post("/v2/Bad_Name/blobs/uploads/"), 400, "NAME_INVALID")


def test_end_4b_monolithic_upload():
    c = client_a()
    repo = unique_repo("end4b")
    data = os.urandom(64)
    r = expect_status(c.post(f"/v2/{repo}/blobs/uploads/?digest={sha256_digest(data)}", body=data), 201, "POST ?digest")
    assert r.header("Docker-Content-Digest") == sha256_digest(data)
    assert location_path(r.header("Location")) == f"/v2/{repo}/blobs/{sha256_digest(data)}"
    # An empty body is the empty blob, stored like any other (201).
    r = expect_status(c.post(f"/v2/{repo}/blobs/uploads/?digest={sha256_digest(b'')}"), 201, "empty blob")
    assert r.header("Docker-Content-Digest") == sha256_digest(b"")
    assert_oci_error(c.post(f"/v2/{repo}/blobs/uploads/?digest={ZERO}", body=data), 400, "DIGEST_INVALID")
    assert_oci_error(c.post(f"/v2/{repo}/blobs/uploads/?digest=sha256:xyz", body=data), 400, "DIGEST_INVALID")
    expect_status(c.head(f"/v2/{repo}/blobs/{ZERO}"), 404, "nothing stored by the refused upload")


def test_end_5_patch_a_chunk():
    c = client_a()
    repo = unique_repo("end5")
    _, loc = start_upload(c, repo)
    r = c.patch(loc, body=b"a" * 10, headers={"Content-Range": "0-9", "Content-Type": "application/octet-stream"})
    expect_status(r, 202, "first chunk")
    assert r.header("Range") == "0-9"
    loc = location_path(r.header("Location"))
    r = c.patch(loc, body=b"b" * 10, headers={"Content-Range": "20-29", "Content-Type": "application/octet-stream"})
    assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
    bogus = f"/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000"
    r = c.patch(bogus, body=b"x", headers={"Content-Range": "0-0", "Content-Type": "application/octet-stream"})
    assert_oci_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


def test_end_6_close_an_upload():
    c = client_a()
    repo = unique_repo("end6")
    _, loc = start_upload(c, repo)
    sep = "&" if "?" in loc else "?"
    r = c.put(f"{loc}{sep}digest={sha256_digest(b'whole')}", body=b"whole")
    expect_status(r, 201, "PUT with the last bytes")
    assert r.header("Docker-Content-Digest") == sha256_digest(b"whole")
    _, loc = start_upload(c, repo)
    sep = "&" if "?" in loc else "?"
    assert_oci_error(c.put(f"{loc}{sep}digest={ZERO}", body=b"other"), 400, "DIGEST_INVALID")
    # The mismatch ended the session.
    assert_oci_error(c.put(f"{loc}{sep}digest={sha256_digest(b'other')}", body=b"other"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(c.put(f"/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000?digest={ZERO}"),
                     404, "BLOB_UPLOAD_UNKNOWN")


def test_end_7_put_a_manifest():
    """404 does not happen: a push creates its repository."""
    c = client_a()
    repo = unique_repo("end7")
    img = build_image()
    push_image_blobs(c, repo, img)
    r = push_manifest(c, repo, "v1", img.manifest)
    assert r.status == 201 and r.header("Docker-Content-Digest") == img.digest, r.summary()
    assert location_path(r.header("Location")) == f"/v2/{repo}/manifests/{img.digest}"
    # 413: over max_manifest_size (4 MiB by default), refused before it is read.
    big = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"x": "y" * (4 << 20)}}).encode()
    r = c.put(f"/v2/{repo}/manifests/big", body=big, headers={"Content-Type": OCI_MANIFEST})
    assert_oci_error(r, 413, "SIZE_INVALID")
    # 400s of the error table: an invalid manifest, a missing blob.
    assert_oci_error(c.put(f"/v2/{repo}/manifests/bad", body=b"{", headers={"Content-Type": OCI_MANIFEST}),
                     400, "MANIFEST_INVALID")
    other = build_image()
    assert_oci_error(push_manifest_raw(c, repo, "missing", other.manifest.data), 400, "MANIFEST_BLOB_UNKNOWN")


def push_manifest_raw(c, repo, ref, data):
    return c.put(f"/v2/{repo}/manifests/{ref}", body=data, headers={"Content-Type": OCI_MANIFEST})


def test_end_8_tags_list_and_pages():
    c = client_a()
    repo = unique_repo("end8")
    img = build_image()
    push_image_blobs(c, repo, img)
    for t in ("a", "b", "c"):
        push_manifest(c, repo, t, img.manifest)
    r = expect_status(c.get(f"/v2/{repo}/tags/list"), 200, "tags")
    assert r.json() == {"name": repo, "tags": ["a", "b", "c"]}, r.json()
    r = expect_status(c.get(f"/v2/{repo}/tags/list?n=2"), 200, "first page")
    assert r.json()["tags"] == ["a", "b"] and "last=b" in expect_header(r, "Link", "next page")
    r = expect_status(c.get(f"/v2/{repo}/tags/list?n=2&last=b"), 200, "second page")
    assert r.json()["tags"] == ["c"] and r.header("Link") is None, r.summary()
    assert_oci_error(c.get(f"/v2/{unique_repo('nothere')}/tags/list"), 404, "NAME_UNKNOWN")


def test_end_9_and_10_deletes_and_405_where_deletes_are_off():
    c = client_a()
    repo = unique_repo("end9")
    img = push_image(c, repo, "v1")
    layer = img.layers[0].digest
    with ExtraNode("nodelete", 10, PIER_ALLOW_DELETE="false") as node:
        n = Client(node.url)
        assert_oci_error(n.delete(f"/v2/{repo}/manifests/{img.digest}"), 405, "UNSUPPORTED")
        assert_oci_error(n.delete(f"/v2/{repo}/blobs/{layer}"), 405, "UNSUPPORTED")
        expect_status(n.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200, "still there")
    assert_oci_error(c.delete(f"/v2/{repo}/manifests/sha256:XYZ"), 400, "DIGEST_INVALID")
    assert_oci_error(c.delete(f"/v2/{repo}/blobs/sha256:XYZ"), 400, "DIGEST_INVALID")
    expect_status(c.delete(f"/v2/{repo}/manifests/v1"), 202, "DELETE a tag")
    expect_status(c.delete(f"/v2/{repo}/manifests/{img.digest}"), 202, "DELETE a manifest")
    assert_oci_error(c.delete(f"/v2/{repo}/manifests/{img.digest}"), 404, "MANIFEST_UNKNOWN")
    expect_status(c.delete(f"/v2/{repo}/blobs/{layer}"), 202, "DELETE a blob")
    assert_oci_error(c.delete(f"/v2/{repo}/blobs/{layer}"), 404, "BLOB_UNKNOWN")


def test_end_11_mount():
    """404 does not happen: a mount the registry cannot do becomes an upload (202)."""
    c = client_a()
    src, dst = unique_repo("end11s"), unique_repo("end11d")
    digest = push_blob_monolithic(c, src, os.urandom(50))
    r = expect_status(c.post(f"/v2/{dst}/blobs/uploads/?mount={digest}&from={src}"), 201, "mount")
    assert r.header("Docker-Content-Digest") == digest
    r = expect_status(c.post(f"/v2/{dst}/blobs/uploads/?mount={ZERO}&from={src}"), 202, "mount of an unknown blob")
    assert location_path(expect_header(r, "Location", "upload")).startswith(f"/v2/{dst}/blobs/uploads/")


def test_end_12_referrers():
    c = client_a()
    repo = unique_repo("end12")
    img = push_image(c, repo, "v1")
    r = expect_status(c.get(f"/v2/{repo}/referrers/{img.digest}"), 200, "referrers")
    assert r.json()["manifests"] == [] and r.header("Content-Type").startswith("application/vnd.oci.image.index.v1+json")
    r = expect_status(c.get(f"/v2/{repo}/referrers/{img.digest}?artifactType=application/x-none"), 200, "filtered")
    assert r.json()["manifests"] == []
    assert_oci_error(c.get(f"/v2/{repo}/referrers/sha256:XYZ"), 400, "DIGEST_INVALID")


def test_end_13_and_14_upload_status_and_cancel():
    """end-14's 400 has no case in Pier: a malformed session id is 404 BLOB_UPLOAD_UNKNOWN."""
    c = client_a()
    repo = unique_repo("end13")
    _, loc = start_upload(c, repo)
    r = expect_status(c.get(loc), 204, "status")
    assert location_path(expect_header(r, "Location", "status")).startswith(f"/v2/{repo}/blobs/uploads/")
    expect_status(c.delete(loc), 204, "cancel")
    assert_oci_error(c.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(c.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(c.get(f"/v2/{repo}/blobs/uploads/not-a-uuid"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_error_codes_401_unauthorized_and_403_denied_and_429():
    """code-11 and code-12 here; code-14 (TOOMANYREQUESTS) is covered with its Retry-After in
    test_slow_clients and test_security_auth."""
    anon = Client(url_a(), auth=None)
    assert_oci_error(anon.get(f"/v2/{unique_repo('x')}/tags/list"), 401, "UNAUTHORIZED")
    from authlib import User
    with User("end-denied", policies={}) as u:
        r = Client(url_a(), auth=(u.key_id, u.secret)).get(f"/v2/{unique_repo('x')}/tags/list")
        assert_oci_error(r, 403, "DENIED")
    assert admin_creds()
