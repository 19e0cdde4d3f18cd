"""Malformed names, tags, digests and upload requests: the right error, and nothing stored."""

import os

from pierlib import (
    OCI_MANIFEST, add_query, assert_oci_error, blob_files, blob_root, build_image, client_a, db_counts,
    expect_status, location_path, patch_chunk, psql_value, push_blob_monolithic, push_image, push_image_blobs,
    put_manifest, sha256_digest, start_upload, tmp_files, unique_repo,
)

BAD_NAMES = [
    "../x",
    "A/b",
    "a//b",
    "a/",
    "a" * 128 + "/" + "b" * 128,  # 257 characters
    "a%2Fb",
    "a/..",
    "-a",
]

BAD_TAGS = ["-lead", ".lead", "t" * 129, "tag%20space", "ta$g"]

BAD_DIGESTS = [
    "sha256:xyz",
    "md5:" + "abc1" * 8,
    "sha256:" + "a" * 63,
    "sha256:" + "ABCDEF0123456789" * 4,
]

NAME_WORDS = ("name", "repository")
DIGEST_WORDS = ("digest",)
TAG_WORDS = ("tag", "reference")
OCTET = {"Content-Type": "application/octet-stream"}


class NothingStored:
    """Asserts that no file appeared under blobs/ and no row in the counted tables."""

    def __enter__(self):
        self.files = blob_files()
        self.counts = db_counts()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        new_files = sorted(blob_files() - self.files)
        assert not new_files, f"new files under blobs/: {new_files}"
        counts = db_counts()
        grown = {t: (self.counts[t], counts[t]) for t in counts if counts[t] != self.counts[t]}
        assert not grown, f"row counts changed (before, after): {grown}"
        return False


def test_bad_repository_names_are_name_invalid():
    c = client_a()
    good = unique_repo("names-src")
    img = push_image(c, good, "v1")
    blob = img.layers[0]
    data = os.urandom(100)
    with NothingStored():
        for name in BAD_NAMES:
            ctx = f"name {name!r}"
            for method, path, body, headers in (
                ("GET", f"/v2/{name}/tags/list", None, None),
                ("GET", f"/v2/{name}/manifests/v1", None, {"Accept": OCI_MANIFEST}),
                ("PUT", f"/v2/{name}/manifests/v1", img.manifest.data, {"Content-Type": OCI_MANIFEST}),
                ("DELETE", f"/v2/{name}/manifests/{img.digest}", None, None),
                ("GET", f"/v2/{name}/blobs/{blob.digest}", None, None),
                ("DELETE", f"/v2/{name}/blobs/{blob.digest}", None, None),
                ("POST", f"/v2/{name}/blobs/uploads/", None, None),
                ("POST", f"/v2/{name}/blobs/uploads/?digest={sha256_digest(data)}", data, OCTET),
                ("POST", f"/v2/{name}/blobs/uploads/?mount={blob.digest}&from={good}", None, None),
                ("GET", f"/v2/{name}/referrers/{img.digest}", None, None),
            ):
                r = c.request(method, path, headers=headers, body=body)
                try:
                    assert_oci_error(r, 400, "NAME_INVALID", NAME_WORDS)
                except AssertionError as e:
                    raise AssertionError(f"{ctx}: {method} {path}: {e}") from None
            for path in (f"/v2/{name}/manifests/v1", f"/v2/{name}/blobs/{blob.digest}"):
                r = c.head(path)
                assert r.status == 400, f"{ctx}: HEAD {path} -> {r.status}, expected 400"


def test_bad_name_as_mount_source_is_not_mounted():
    c = client_a()
    good = unique_repo("mount-bad-from")
    push_image(c, good, "v1")
    src = unique_repo("mount-real-src")
    digest = push_blob_monolithic(c, src, os.urandom(64))
    for name in ("A/b", "../" + src, src + "/..", "-a"):
        r = c.post(f"/v2/{good}/blobs/uploads/?mount={digest}&from={name}")
        if r.status == 202:
            expect_status(c.delete(location_path(r.header("Location"))), 204, "cancel fallback session")
        else:
            assert_oci_error(r, 400, "NAME_INVALID", NAME_WORDS)
        expect_status(c.head(f"/v2/{good}/blobs/{digest}"), 404, f"blob mounted from bad name {name!r}")


def test_bad_tags_are_rejected():
    c = client_a()
    repo = unique_repo("badtags")
    img = push_image(c, repo, "v1")
    with NothingStored():
        for tag in BAD_TAGS:
            r = put_manifest(c, repo, tag, img.manifest)
            try:
                assert_oci_error(r, 400, "MANIFEST_INVALID", TAG_WORDS)
            except AssertionError as e:
                raise AssertionError(f"PUT tag {tag!r}: {e}") from None
            r = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            if r.status == 400:
                assert_oci_error(r, 400, "MANIFEST_INVALID", TAG_WORDS)
            else:
                assert_oci_error(r, 404, "MANIFEST_UNKNOWN")
            h = c.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert h.status == r.status, f"HEAD tag {tag!r} -> {h.status}, GET -> {r.status}"
    tags = expect_status(c.get(f"/v2/{repo}/tags/list"), 200).json()["tags"]
    assert tags == ["v1"], f"tags after bad pushes: {tags}"


def test_bad_digests_on_manifest_endpoints_are_digest_invalid():
    """PUT and DELETE say which grammar was broken (400 DIGEST_INVALID); GET and HEAD
    answer 404 MANIFEST_UNKNOWN, the only failure the spec's endpoint table lists for
    them, with the same reason in the message."""
    c = client_a()
    repo = unique_repo("baddigest-m")
    img = push_image(c, repo, "v1")
    with NothingStored():
        for d in BAD_DIGESTS:
            for method, body, headers in (
                ("PUT", img.manifest.data, {"Content-Type": OCI_MANIFEST}),
                ("DELETE", None, None),
            ):
                r = c.request(method, f"/v2/{repo}/manifests/{d}", headers=headers, body=body)
                try:
                    assert_oci_error(r, 400, "DIGEST_INVALID", DIGEST_WORDS)
                except AssertionError as e:
                    raise AssertionError(f"{method} manifests/{d}: {e}") from None
            r = c.get(f"/v2/{repo}/manifests/{d}", headers={"Accept": OCI_MANIFEST})
            try:
                assert_oci_error(r, 404, "MANIFEST_UNKNOWN", DIGEST_WORDS)
            except AssertionError as e:
                raise AssertionError(f"GET manifests/{d}: {e}") from None
            r = c.head(f"/v2/{repo}/manifests/{d}", headers={"Accept": OCI_MANIFEST})
            assert r.status == 404, f"HEAD manifests/{d} -> {r.status}, expected 404"
            r = c.get(f"/v2/{repo}/referrers/{d}")
            assert_oci_error(r, 400, "DIGEST_INVALID", DIGEST_WORDS)
    r = expect_status(c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
    assert r.body == img.manifest.data


def test_bad_digests_on_blob_and_upload_endpoints_are_digest_invalid():
    c = client_a()
    repo = unique_repo("baddigest-b")
    push_image(c, repo, "v1")
    data = os.urandom(256)
    with NothingStored():
        for d in BAD_DIGESTS:
            for method in ("GET", "DELETE"):
                r = c.request(method, f"/v2/{repo}/blobs/{d}")
                try:
                    assert_oci_error(r, 400, "DIGEST_INVALID", DIGEST_WORDS)
                except AssertionError as e:
                    raise AssertionError(f"{method} blobs/{d}: {e}") from None
            r = c.head(f"/v2/{repo}/blobs/{d}")
            assert r.status == 400, f"HEAD blobs/{d} -> {r.status}, expected 400"
            r = c.post(f"/v2/{repo}/blobs/uploads/?digest={d}", body=data, headers=OCTET)
            try:
                assert_oci_error(r, 400, "DIGEST_INVALID", DIGEST_WORDS)
            except AssertionError as e:
                raise AssertionError(f"monolithic POST ?digest={d}: {e}") from None
            _, loc = start_upload(c, repo)
            r = c.put(add_query(loc, digest=d), body=data, headers=OCTET)
            try:
                assert_oci_error(r, 400, "DIGEST_INVALID", DIGEST_WORDS)
            except AssertionError as e:
                raise AssertionError(f"closing PUT ?digest={d}: {e}") from None
            c.delete(loc)
    expect_status(c.head(f"/v2/{repo}/blobs/{sha256_digest(data)}"), 404, "blob of rejected uploads")


def test_bad_manifest_body_stores_nothing():
    c = client_a()
    repo = unique_repo("badbody")
    img = build_image("oci")
    push_image_blobs(c, repo, img)
    with NothingStored():
        r = c.put(f"/v2/{repo}/manifests/v1", body=b'{"schemaVersion": 2, "mediaType": ',
                  headers={"Content-Type": OCI_MANIFEST})
        assert_oci_error(r, 400, "MANIFEST_INVALID")


def test_unknown_things_are_404_with_the_right_code():
    c = client_a()
    repo = unique_repo("unknowns")
    push_image(c, repo, "v1")
    missing = sha256_digest(os.urandom(32))
    assert_oci_error(c.get(f"/v2/{repo}/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    expect_status(c.head(f"/v2/{repo}/blobs/{missing}"), 404, "HEAD unknown blob")
    assert_oci_error(c.delete(f"/v2/{repo}/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    accept = {"Accept": OCI_MANIFEST}
    assert_oci_error(c.get(f"/v2/{repo}/manifests/{missing}", headers=accept), 404, "MANIFEST_UNKNOWN")
    expect_status(c.head(f"/v2/{repo}/manifests/{missing}", headers=accept), 404, "HEAD unknown manifest")
    assert_oci_error(c.get(f"/v2/{repo}/manifests/nope", headers=accept), 404, "MANIFEST_UNKNOWN")
    assert_oci_error(c.delete(f"/v2/{repo}/manifests/{missing}"), 404, "MANIFEST_UNKNOWN")
    nobody = unique_repo("nobody")
    assert_oci_error(c.get(f"/v2/{nobody}/blobs/{missing}"), 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))
    expect_status(c.head(f"/v2/{nobody}/blobs/{missing}"), 404, "HEAD blob in unknown repository")
    assert_oci_error(c.get(f"/v2/{nobody}/tags/list"), 404, "NAME_UNKNOWN")
    uid = "0b9b6f0e-1b1e-4c1e-9e0e-000000000000"
    up = f"/v2/{repo}/blobs/uploads/{uid}"
    assert_oci_error(c.get(up), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(patch_chunk(c, up, b"abc", 0), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(c.put(add_query(up, digest=sha256_digest(b"abc")), body=b"abc", headers=OCTET),
                     404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(c.delete(up), 404, "BLOB_UPLOAD_UNKNOWN")


def test_malformed_upload_ids_do_not_touch_the_filesystem():
    c = client_a()
    repo = unique_repo("badupload")
    push_image(c, repo, "v1")
    before_tmp = tmp_files()
    with NothingStored():
        for uid in ("not-a-uuid", "..%2F..%2Fblobs", "%2e%2e", "..", "x" * 300):
            up = f"/v2/{repo}/blobs/uploads/{uid}"
            for r in (c.get(up), patch_chunk(c, up, b"payload", 0),
                      c.put(add_query(up, digest=sha256_digest(b"payload")), body=b"payload", headers=OCTET)):
                if r.status == 400:
                    assert_oci_error(r, 400, "BLOB_UPLOAD_INVALID")
                else:
                    assert_oci_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert tmp_files() <= before_tmp, f"new files under tmp/: {sorted(tmp_files() - before_tmp)}"


def test_content_range_beyond_2_62_is_416_and_changes_nothing():
    """end - start + 1 of 0-9223372036854775807 does not fit in 64 bits: such ranges are
    refused before any arithmetic, in the registry's error format, and the session is
    left as it was."""
    c = client_a()
    repo = unique_repo("hugerange")
    data = os.urandom(100)
    _, loc = start_upload(c, repo)
    upload_id = loc.split("?", 1)[0].rstrip("/").rsplit("/", 1)[1]
    tmp_file = os.path.join(blob_root(), "tmp", "uploads", upload_id)
    with NothingStored():
        for rng in ("0-9223372036854775807", "bytes=0-9223372036854775807/*",
                    "0-4611686018427387904", "4611686018427387905-4611686018427387905",
                    "9223372036854775807-9223372036854775807"):
            r = c.patch(loc, body=data[:10], headers={**OCTET, "Content-Range": rng})
            assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
            s = expect_status(c.get(loc), 204, f"status after Content-Range {rng}")
            assert s.header("Range") == "0-0", f"after {rng}: Range {s.header('Range')!r}"
            assert psql_value(f"SELECT size FROM uploads WHERE id = '{upload_id}'") == "0", \
                f"after {rng}: the session's size changed"
            assert os.path.getsize(tmp_file) == 0, f"after {rng}: the upload file grew"
    r = patch_chunk(c, loc, data, 0)
    expect_status(r, 202, "the correct chunk after the refused ones")
    r = c.put(add_query(location_path(r.header("Location")), digest=sha256_digest(data)))
    expect_status(r, 201, "closing PUT")
    got = expect_status(c.get(f"/v2/{repo}/blobs/{sha256_digest(data)}"), 200)
    assert got.body == data


def test_patch_not_following_previous_chunk_is_416():
    c = client_a()
    repo = unique_repo("badrange")
    data = os.urandom(400)
    _, loc = start_upload(c, repo)
    # The first chunk must start at 0.
    r = patch_chunk(c, loc, data[5:50], 5)
    assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
    r = patch_chunk(c, loc, data[:100], 0)
    expect_status(r, 202)
    loc = location_path(r.header("Location"))
    for start, end in ((101, 200), (50, 149), (0, 99), (200, 299)):
        r = patch_chunk(c, loc, data[start:end + 1], start)
        assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
        assert r.header("Range") == "0-99", f"after bad chunk {start}-{end}: Range {r.header('Range')!r}"
    s = expect_status(c.get(loc), 204, "status after rejected chunks")
    assert s.header("Range") == "0-99", f"status Range {s.header('Range')!r}"
    r = patch_chunk(c, loc, data[100:], 100)
    expect_status(r, 202, "the correct next chunk")
    # A closing PUT whose final chunk does not follow is 416 too.
    loc = location_path(r.header("Location"))
    r = c.put(add_query(loc, digest=sha256_digest(data + b"zz")), body=b"zz",
              headers={**OCTET, "Content-Range": "500-501"})
    assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
    r = c.put(add_query(loc, digest=sha256_digest(data)))
    expect_status(r, 201, "closing PUT")
    got = expect_status(c.get(f"/v2/{repo}/blobs/{sha256_digest(data)}"), 200)
    assert got.body == data
