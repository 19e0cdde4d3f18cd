"""Blob uploads (monolithic, chunked, streamed), blob reads, deletes and mounts."""

import os
import re
import threading

from pierlib import (
    add_query, assert_oci_error, blob_files, blob_path, blob_row_count, client_a, expect_header,
    expect_status, files_for_digest, location_path, patch_chunk, push_blob_chunked, push_blob_monolithic,
    push_blob_post_put, sha256_digest, sha256_hex, start_upload, unique_repo,
)

OCTET = {"Content-Type": "application/octet-stream"}
UPLOAD_LOCATION = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<uuid>[^/?#]+)(\?.*)?$")


def assert_blob_content(c, repo, digest, data):
    r = expect_status(c.get(f"/v2/{repo}/blobs/{digest}"), 200, f"GET blob {digest}")
    assert r.body == data, f"GET blob returned {len(r.body)} bytes that differ from the {len(data)} pushed"
    assert r.header("Docker-Content-Digest") == digest, r.summary()


def test_monolithic_post_with_digest():
    c = client_a()
    repo = unique_repo("mono")
    data = os.urandom(10000)
    digest = sha256_digest(data)
    r = c.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data, headers=OCTET)
    expect_status(r, 201, "monolithic POST")
    assert location_path(expect_header(r, "Location")) == f"/v2/{repo}/blobs/{digest}", r.summary()
    assert r.header("Docker-Content-Digest") == digest, r.summary()
    assert_blob_content(c, repo, digest, data)
    assert os.path.isfile(blob_path(digest)), f"blob file {blob_path(digest)} missing"
    assert blob_row_count(digest) == 1, "expected exactly one row in blobs"


def test_monolithic_post_with_wrong_digest_is_rejected():
    c = client_a()
    repo = unique_repo("mono-bad")
    data = os.urandom(5000)
    claimed = sha256_digest(b"something else " + data)
    before = blob_files()
    r = c.post(f"/v2/{repo}/blobs/uploads/?digest={claimed}", body=data, headers=OCTET)
    assert_oci_error(r, 400, "DIGEST_INVALID")
    assert blob_files() == before, "a file appeared under blobs/ for a rejected upload"
    expect_status(c.head(f"/v2/{repo}/blobs/{claimed}"), 404, "HEAD claimed digest")
    expect_status(c.head(f"/v2/{repo}/blobs/{sha256_digest(data)}"), 404, "HEAD actual digest")


def test_post_then_put_with_body():
    c = client_a()
    repo = unique_repo("postput")
    data = os.urandom(70000)
    digest = sha256_digest(data)
    _, loc = start_upload(c, repo)
    r = c.put(add_query(loc, digest=digest), body=data, headers=OCTET)
    expect_status(r, 201, "closing PUT")
    assert location_path(expect_header(r, "Location")) == f"/v2/{repo}/blobs/{digest}", r.summary()
    assert r.header("Docker-Content-Digest") == digest, r.summary()
    assert_blob_content(c, repo, digest, data)


def test_chunked_post_patch_put():
    c = client_a()
    repo = unique_repo("chunked")
    data = os.urandom(3 * 40000 + 123)
    digest = sha256_digest(data)
    _, loc = start_upload(c, repo)
    offset = 0
    for size in (40000, 40000, 40000, 123):
        chunk = data[offset:offset + size]
        r = patch_chunk(c, loc, chunk, offset)
        expect_status(r, 202, f"PATCH {offset}")
        assert r.header("Range") == f"0-{offset + size - 1}", f"Range after PATCH: {r.summary()}"
        loc = location_path(expect_header(r, "Location", "PATCH"))
        offset += size
    r = c.put(add_query(loc, digest=digest))
    expect_status(r, 201, "closing PUT without body")
    assert r.header("Docker-Content-Digest") == digest
    assert_blob_content(c, repo, digest, data)


def test_chunked_upload_with_final_chunk_in_put():
    c = client_a()
    repo = unique_repo("chunked-final")
    data = os.urandom(50000)
    digest = sha256_digest(data)
    _, loc = start_upload(c, repo)
    r = patch_chunk(c, loc, data[:30000], 0)
    expect_status(r, 202, "first PATCH")
    loc = location_path(r.header("Location"))
    r = c.put(add_query(loc, digest=digest), body=data[30000:],
              headers={**OCTET, "Content-Range": f"30000-{len(data) - 1}"})
    expect_status(r, 201, "closing PUT with the final chunk")
    assert_blob_content(c, repo, digest, data)


def test_streamed_patch_without_content_length():
    c = client_a()
    repo = unique_repo("streamed")
    pieces = [os.urandom(n) for n in (1, 4096, 65536, 100000, 7)]
    data = b"".join(pieces)
    digest = sha256_digest(data)
    _, loc = start_upload(c, repo)

    def body():
        for p in pieces:
            yield p

    r = c.patch(loc, body=body(), headers=OCTET)
    expect_status(r, 202, "streamed PATCH (chunked transfer encoding)")
    assert r.header("Range") == f"0-{len(data) - 1}", f"Range after streamed PATCH: {r.summary()}"
    loc = location_path(expect_header(r, "Location"))
    r = c.put(add_query(loc, digest=digest))
    expect_status(r, 201, "closing PUT")
    assert_blob_content(c, repo, digest, data)


def test_out_of_order_patch_returns_416_with_current_range():
    c = client_a()
    repo = unique_repo("ooo")
    data = os.urandom(300)
    _, loc = start_upload(c, repo)
    r = patch_chunk(c, loc, data[:100], 0)
    expect_status(r, 202, "first PATCH")
    loc = location_path(r.header("Location"))
    r = patch_chunk(c, loc, data[200:300], 200)  # skips 100-199
    assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.header("Range") == "0-99", f"416 response Range should be 0-99: {r.summary()}"
    expect_header(r, "Location", "416 response")
    # The session is intact and can be completed from the reported offset.
    loc = location_path(r.header("Location"))
    r = patch_chunk(c, loc, data[100:], 100)
    expect_status(r, 202, "in-order PATCH after the 416")
    r = c.put(add_query(location_path(r.header("Location")), digest=sha256_digest(data)))
    expect_status(r, 201, "closing PUT")
    assert_blob_content(c, repo, sha256_digest(data), data)


def test_upload_status_reports_range_and_uuid():
    c = client_a()
    repo = unique_repo("status")
    post, loc = start_upload(c, repo)
    uid = post.header("Docker-Upload-UUID")
    r = patch_chunk(c, loc, os.urandom(1234), 0)
    expect_status(r, 202)
    loc = location_path(r.header("Location"))
    s = c.get(loc)
    expect_status(s, 204, "upload status GET")
    assert s.header("Range") == "0-1233", f"status Range: {s.summary()}"
    assert s.header("Docker-Upload-UUID") == uid, f"status Docker-Upload-UUID {s.header('Docker-Upload-UUID')!r} != {uid!r}"
    expect_header(s, "Location", "status GET")
    assert s.body == b"", "204 response carried a body"


def test_cancel_upload_then_status_is_unknown():
    c = client_a()
    repo = unique_repo("cancel")
    _, loc = start_upload(c, repo)
    r = expect_status(patch_chunk(c, loc, os.urandom(500), 0), 202)
    loc = location_path(expect_header(r, "Location", "PATCH"))
    r = c.delete(loc)
    expect_status(r, 204, "cancel upload")
    assert_oci_error(c.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(patch_chunk(c, loc, b"x" * 10, 500), 404, "BLOB_UPLOAD_UNKNOWN")


def test_blob_head_and_get():
    c = client_a()
    repo = unique_repo("headget")
    data = os.urandom(4321)
    digest = push_blob_monolithic(c, repo, data)
    h = c.head(f"/v2/{repo}/blobs/{digest}")
    expect_status(h, 200, "HEAD blob")
    assert h.header("Content-Length") == str(len(data)), f"HEAD Content-Length: {h.summary()}"
    assert h.header("Docker-Content-Digest") == digest, f"HEAD Docker-Content-Digest: {h.summary()}"
    assert h.body == b""
    g = expect_status(c.get(f"/v2/{repo}/blobs/{digest}"), 200, "GET blob")
    assert g.body == data, "GET body differs from pushed bytes"
    assert g.header("Content-Length") == str(len(data))
    assert g.header("Docker-Content-Digest") == digest


def test_blob_range_request_returns_partial_content():
    c = client_a()
    repo = unique_repo("range")
    data = os.urandom(100)
    digest = push_blob_monolithic(c, repo, data)
    r = c.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    expect_status(r, 206, "ranged GET")
    assert r.body == data[10:20], f"ranged GET returned {r.body!r}, expected {data[10:20]!r}"
    assert r.header("Content-Range") == "bytes 10-19/100", f"Content-Range: {r.summary()}"
    assert r.header("Content-Length") == "10"


def test_delete_blob_then_get_is_unknown():
    c = client_a()
    repo = unique_repo("delblob")
    digest = push_blob_monolithic(c, repo, os.urandom(300))
    r = c.delete(f"/v2/{repo}/blobs/{digest}")
    expect_status(r, 202, "DELETE blob")
    assert_oci_error(c.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    expect_status(c.head(f"/v2/{repo}/blobs/{digest}"), 404, "HEAD deleted blob")


def test_cross_repository_mount():
    c = client_a()
    src = unique_repo("mount-src")
    dst = unique_repo("mount-dst")
    data = os.urandom(2048)
    digest = push_blob_monolithic(c, src, data)
    expect_status(c.head(f"/v2/{dst}/blobs/{digest}"), 404, "blob not yet in destination")
    r = c.post(f"/v2/{dst}/blobs/uploads/?mount={digest}&from={src}")
    expect_status(r, 201, "mount")
    assert location_path(expect_header(r, "Location")) == f"/v2/{dst}/blobs/{digest}", r.summary()
    assert_blob_content(c, dst, digest, data)
    assert len(files_for_digest(digest)) == 1, f"mount copied the blob file: {files_for_digest(digest)}"


def test_mount_of_unknown_digest_starts_upload_session():
    c = client_a()
    src = unique_repo("mount-src")
    dst = unique_repo("mount-dst")
    push_blob_monolithic(c, src, os.urandom(100))
    missing = sha256_digest(os.urandom(64))
    r = c.post(f"/v2/{dst}/blobs/uploads/?mount={missing}&from={src}")
    expect_status(r, 202, "mount of unknown digest")
    loc = location_path(expect_header(r, "Location"))
    m = UPLOAD_LOCATION.match(loc)
    assert m and m.group("name") == dst, f"Location {loc!r} is not an upload location in {dst}"
    assert r.header("Docker-Upload-UUID") == m.group("uuid"), r.summary()
    # The session works.
    data = os.urandom(777)
    r = c.put(add_query(loc, digest=sha256_digest(data)), body=data, headers=OCTET)
    expect_status(r, 201, "PUT into session opened by failed mount")
    expect_status(c.head(f"/v2/{dst}/blobs/{missing}"), 404, "unknown digest must not appear")


def test_mount_without_from_finds_existing_blob():
    c = client_a()
    src = unique_repo("mount-src")
    dst = unique_repo("mount-dst")
    data = os.urandom(999)
    digest = push_blob_monolithic(c, src, data)
    r = c.post(f"/v2/{dst}/blobs/uploads/?mount={digest}")
    expect_status(r, 201, "mount without from")
    assert location_path(expect_header(r, "Location")) == f"/v2/{dst}/blobs/{digest}", r.summary()
    assert_blob_content(c, dst, digest, data)


def test_finalize_with_wrong_digest_is_rejected_and_not_stored():
    c = client_a()
    repo = unique_repo("wrongdigest")
    data = os.urandom(4096)
    actual = sha256_digest(data)
    claimed = sha256_digest(data + b"!")
    before = blob_files()
    _, loc = start_upload(c, repo)
    r = patch_chunk(c, loc, data, 0)
    expect_status(r, 202)
    r = c.put(add_query(location_path(r.header("Location")), digest=claimed))
    assert_oci_error(r, 400, "DIGEST_INVALID")
    assert blob_files() == before, f"new files under blobs/: {sorted(blob_files() - before)}"
    assert not os.path.exists(blob_path(claimed)) and not os.path.exists(blob_path(actual))
    assert blob_row_count(claimed) == 0, "row in blobs for the claimed digest"
    assert blob_row_count(actual) == 0, "row in blobs for the content's digest"
    expect_status(c.head(f"/v2/{repo}/blobs/{claimed}"), 404)
    expect_status(c.head(f"/v2/{repo}/blobs/{actual}"), 404)


def test_upload_uuid_is_bound_to_its_repository():
    c = client_a()
    repo = unique_repo("owner")
    other = unique_repo("thief")
    push_blob_monolithic(c, other, os.urandom(10))  # the other repository exists
    post, loc = start_upload(c, repo)
    uid = post.header("Docker-Upload-UUID") or UPLOAD_LOCATION.match(loc).group("uuid")
    foreign = f"/v2/{other}/blobs/uploads/{uid}"
    data = os.urandom(100)
    assert_oci_error(c.get(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(patch_chunk(c, foreign, data, 0), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(c.put(add_query(foreign, digest=sha256_digest(data)), body=data, headers=OCTET),
                     404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(c.delete(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    expect_status(c.head(f"/v2/{other}/blobs/{sha256_digest(data)}"), 404)
    # The session still belongs to its own repository.
    expect_status(c.get(loc), 204, "status in the owning repository")


def test_post_location_and_upload_uuid_header():
    c = client_a()
    repo = unique_repo("location")
    uuids = set()
    for _ in range(2):
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        expect_status(r, 202, "POST upload")
        loc = location_path(expect_header(r, "Location"))
        m = UPLOAD_LOCATION.match(loc)
        assert m, f"Location {loc!r} does not look like /v2/<name>/blobs/uploads/<uuid>"
        assert m.group("name") == repo, f"Location names {m.group('name')!r}, expected {repo!r}"
        assert r.header("Docker-Upload-UUID") == m.group("uuid"), \
            f"Docker-Upload-UUID {r.header('Docker-Upload-UUID')!r} != {m.group('uuid')!r}"
        uuids.add(m.group("uuid"))
    assert len(uuids) == 2, "two POSTs returned the same upload UUID"


def test_concurrent_pushes_of_same_blob():
    c = client_a()
    repos = [unique_repo("race-a"), unique_repo("race-b")]
    targets = [repos[0], repos[0], repos[1]]
    data = os.urandom(3 * 1024 * 1024)
    digest = sha256_digest(data)
    barrier = threading.Barrier(len(targets))
    results = [None] * len(targets)

    def push(i, repo):
        try:
            _, loc = start_upload(c, repo)
            r = patch_chunk(c, loc, data, 0)
            expect_status(r, 202)
            loc = location_path(r.header("Location"))
            barrier.wait(timeout=30)
            r = c.put(add_query(loc, digest=digest))
            results[i] = r
        except BaseException as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=push, args=(i, repo)) for i, repo in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, r in enumerate(results):
        assert not isinstance(r, BaseException), f"push {i} raised {r!r}"
        assert r is not None, f"push {i} did not finish"
        expect_status(r, 201, f"concurrent push {i}")
    files = files_for_digest(digest)
    assert files == [os.path.join("sha256", sha256_hex(data)[:2], sha256_hex(data))], \
        f"expected exactly one blob file for {digest}, found {files}"
    with open(blob_path(digest), "rb") as f:
        assert sha256_digest(f.read()) == digest, "stored blob file content does not match its digest"
    assert blob_row_count(digest) == 1, f"expected one row in blobs, found {blob_row_count(digest)}"
    for repo in repos:
        assert_blob_content(c, repo, digest, data)
