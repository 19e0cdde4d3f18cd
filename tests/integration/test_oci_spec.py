"""Rows of the OCI distribution spec's endpoint and error tables that an
earlier review found answered differently: a malformed reference on GET/HEAD
of a manifest is 404 (PUT keeps 400); every upload endpoint challenges for
push; upload status after a refused chunk; HEAD of an empty blob carries
Content-Length 0; an unsatisfiable Range is 416 with Content-Range
bytes */size; sha512 digests through every path; unknown algorithms."""

import hashlib
import json
import os

from authlib import bearer, token_for
from pierlib import (
    OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Client, admin_creds, assert_oci_error, client_a, client_b,
    expect_header, expect_status, location_path, push_blob_monolithic, push_image, start_upload, unique_repo,
    url_a,
)


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def test_a_malformed_reference_is_404_on_get_and_head_and_400_on_put():
    c = client_a()
    repo = unique_repo("badref")
    push_image(c, repo, "v1")
    for ref in ("bad:tag:x", "-leading-dash", "sha256:XYZ", "a" * 129):
        for method in ("GET", "HEAD"):
            r = c.request(method, f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
            expect_status(r, 404, f"{method} manifests/{ref[:20]}")
            if method == "GET":
                assert_oci_error(r, 404, "MANIFEST_UNKNOWN")
        r = c.put(f"/v2/{repo}/manifests/{ref}", body=b"{}", headers={"Content-Type": OCI_MANIFEST})
        assert_oci_error(r, 400, ("MANIFEST_INVALID", "DIGEST_INVALID"))


def test_every_upload_endpoint_challenges_for_push_and_status_works_with_a_token():
    c = client_a()
    repo = unique_repo("upscope")
    _, loc = start_upload(c, repo)
    anon = Client(url_a(), auth=None)
    for method, path in (("GET", loc), ("PATCH", loc), ("PUT", loc + "?digest=sha256:" + "0" * 64),
                         ("DELETE", loc), ("POST", f"/v2/{repo}/blobs/uploads/")):
        r = anon.request(method, path)
        expect_status(r, 401, f"anonymous {method} on an upload endpoint")
        challenge = expect_header(r, "WWW-Authenticate", method)
        assert f'scope="repository:{repo}:push,pull"' in challenge, f"{method}: {challenge}"
    # A client that fetches the token the challenge names gets the status.
    tok = token_for(admin_creds(), [f"repository:{repo}:push,pull"])
    r = anon.get(loc, headers=bearer(tok))
    expect_status(r, 204, "upload status with the challenged token")
    assert r.header("Range") is None or r.header("Range") == "0-0", r.summary()
    assert location_path(expect_header(r, "Location", "status")).startswith(f"/v2/{repo}/blobs/uploads/")


def test_upload_status_after_a_refused_out_of_order_chunk():
    c = client_a()
    repo = unique_repo("upstatus")
    _, loc = start_upload(c, repo)
    data = os.urandom(4096)
    r = c.patch(loc, body=data[:1000], headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"})
    expect_status(r, 202, "first chunk")
    loc = location_path(r.header("Location"))
    r = c.patch(loc, body=data[2000:3000], headers={"Content-Range": "2000-2999",
                                                    "Content-Type": "application/octet-stream"})
    assert_oci_error(r, 416, "BLOB_UPLOAD_INVALID")
    r = expect_status(c.get(loc), 204, "status after the refused chunk")
    assert r.header("Range") == "0-999", r.summary()
    assert location_path(expect_header(r, "Location", "status")).split("?")[0] == loc.split("?")[0]
    # On the other node too: sessions live in the database.
    r = expect_status(client_b().get(loc), 204, "status on node b")
    assert r.header("Range") == "0-999", r.summary()


def test_head_of_an_empty_blob_carries_content_length_zero():
    c = client_a()
    repo = unique_repo("empty")
    digest = push_blob_monolithic(c, repo, b"")
    for client in (client_a(), client_b()):
        r = expect_status(client.head(f"/v2/{repo}/blobs/{digest}"), 200, "HEAD of the empty blob")
        cl = r.header("Content-Length")
        assert cl is not None and int(cl) == 0, f"Content-Length of HEAD of an empty blob: {cl!r}"
        assert r.header("Docker-Content-Digest") == digest
        r = expect_status(client.get(f"/v2/{repo}/blobs/{digest}"), 200, "GET of the empty blob")
        assert r.body == b"" and int(r.header("Content-Length")) == 0, r.summary()


def test_an_unsatisfiable_range_is_416_with_the_size():
    c = client_a()
    repo = unique_repo("range")
    data = os.urandom(1000)
    digest = push_blob_monolithic(c, repo, data)
    for rng in ("bytes=1000-1010", "bytes=5000-", "bytes=500-100", "bytes=-0"):
        r = c.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": rng})
        assert_oci_error(r, 416, "SIZE_INVALID", ["range"])
        assert r.header("Content-Range") == "bytes */1000", f"{rng}: {r.summary()}"
    r = expect_status(c.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"}), 206, "a good range")
    assert r.body == data[10:20] and r.header("Content-Range") == "bytes 10-19/1000", r.summary()
    r = expect_status(c.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=-10"}), 206, "a suffix range")
    assert r.body == data[-10:], r.summary()


def test_sha512_through_every_upload_path_manifests_mounts_ranges_and_referrers():
    c = client_a()
    repo, other = unique_repo("s512"), unique_repo("s512-mount")
    mono = os.urandom(3000)
    r = c.post(f"/v2/{repo}/blobs/uploads/?digest={sha512(mono)}", body=mono)
    expect_status(r, 201, "monolithic sha512 upload")
    assert r.header("Docker-Content-Digest") == sha512(mono)
    # Chunked, continued on the other node.
    chunked = os.urandom(5000)
    _, loc = start_upload(c, repo)
    r = c.patch(loc, body=chunked[:2000], headers={"Content-Range": "0-1999", "Content-Type": "application/octet-stream"})
    loc = location_path(expect_status(r, 202, "chunk 1").header("Location"))
    r = client_b().patch(loc, body=chunked[2000:], headers={"Content-Range": "2000-4999",
                                                            "Content-Type": "application/octet-stream"})
    loc = location_path(expect_status(r, 202, "chunk 2").header("Location"))
    sep = "&" if "?" in loc else "?"
    r = c.put(f"{loc}{sep}digest={sha512(chunked)}")
    expect_status(r, 201, "chunked sha512 upload")
    # Streamed (PATCH without Content-Range), then PUT.
    streamed = os.urandom(2500)
    _, loc = start_upload(c, repo)
    r = c.patch(loc, body=iter([streamed[:1000], streamed[1000:]]), headers={"Content-Type": "application/octet-stream"})
    loc = location_path(expect_status(r, 202, "streamed chunk").header("Location"))
    sep = "&" if "?" in loc else "?"
    expect_status(c.put(f"{loc}{sep}digest={sha512(streamed)}"), 201, "streamed sha512 upload")
    # A wrong sha512 is DIGEST_INVALID and stores nothing.
    r = c.post(f"/v2/{repo}/blobs/uploads/?digest={sha512(b'other')}", body=b"not other")
    assert_oci_error(r, 400, "DIGEST_INVALID")
    expect_status(c.head(f"/v2/{repo}/blobs/{sha512(b'other')}"), 404, "the refused blob")
    # A manifest of sha512 blobs, pushed by its sha512 digest.
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    expect_status(c.post(f"/v2/{repo}/blobs/uploads/?digest={sha512(cfg)}", body=cfg), 201, "config")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha512(cfg), "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha512(b), "size": len(b)} for b in (mono, chunked, streamed)],
    }).encode()
    md = sha512(manifest)
    r = c.put(f"/v2/{repo}/manifests/{md}", body=manifest, headers={"Content-Type": OCI_MANIFEST})
    expect_status(r, 201, "manifest pushed by its sha512 digest")
    assert r.header("Docker-Content-Digest") == md, r.summary()
    for client in (client_a(), client_b()):
        r = expect_status(client.get(f"/v2/{repo}/manifests/{md}", headers={"Accept": OCI_MANIFEST}), 200, "GET")
        assert r.body == manifest and r.header("Docker-Content-Digest") == md
        expect_status(client.head(f"/v2/{repo}/manifests/{md}", headers={"Accept": OCI_MANIFEST}), 200, "HEAD")
        for blob in (mono, chunked, streamed, cfg):
            r = expect_status(client.get(f"/v2/{repo}/blobs/{sha512(blob)}"), 200, "blob")
            assert hashlib.sha512(r.body).hexdigest() == sha512(blob)[7:]
        r = expect_status(client.get(f"/v2/{repo}/blobs/{sha512(chunked)}", headers={"Range": "bytes=100-199"}),
                          206, "range of a sha512 blob")
        assert r.body == chunked[100:200]
    # A manifest whose content does not match the sha512 reference.
    r = c.put(f"/v2/{repo}/manifests/{sha512(b'x')}", body=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert_oci_error(r, 400, "DIGEST_INVALID")
    # A referrer whose subject is the sha512 manifest.
    art = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha512(mono), "size": len(mono)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": md, "size": len(manifest)},
    }).encode()
    push_blob_monolithic(c, repo, b"{}")
    r = c.put(f"/v2/{repo}/manifests/{sha512(art)}", body=art, headers={"Content-Type": OCI_MANIFEST})
    expect_status(r, 201, "referrer by sha512")
    assert r.header("OCI-Subject") == md, r.summary()
    refs = expect_status(c.get(f"/v2/{repo}/referrers/{md}"), 200, "referrers of a sha512 subject").json()
    assert [m["digest"] for m in refs["manifests"]] == [sha512(art)], refs
    # Mount by sha512, with and without from=.
    r = c.post(f"/v2/{other}/blobs/uploads/?mount={sha512(chunked)}&from={repo}")
    expect_status(r, 201, "sha512 mount")
    assert r.header("Docker-Content-Digest") == sha512(chunked)
    # DELETE by sha512: the referrer, then the manifest.
    expect_status(c.delete(f"/v2/{repo}/manifests/{sha512(art)}"), 202, "DELETE the referrer")
    expect_status(c.delete(f"/v2/{repo}/manifests/{md}"), 202, "DELETE by sha512")
    expect_status(c.get(f"/v2/{repo}/manifests/{md}", headers={"Accept": OCI_MANIFEST}), 404, "deleted")
    expect_status(c.delete(f"/v2/{other}/blobs/{sha512(chunked)}"), 202, "DELETE a sha512 blob")


def test_unknown_digest_algorithms():
    c = client_a()
    repo = unique_repo("alg")
    for d in ("md5:" + "0" * 32, "sha384:" + "0" * 96, "sha256:" + "0" * 63, "sha512:" + "0" * 127):
        r = c.post(f"/v2/{repo}/blobs/uploads/?digest={d}", body=b"x")
        assert_oci_error(r, 400, "DIGEST_INVALID")
        r = c.get(f"/v2/{repo}/blobs/{d}")
        assert_oci_error(r, (400, 404), ("DIGEST_INVALID", "BLOB_UNKNOWN", "NAME_UNKNOWN"))


def test_sha512_blobs_through_the_pull_through_cache():
    from upstreams import CacheRule, DockerRegistry, get_manifest, read_blob
    import requests

    with DockerRegistry() as up:
        layer, cfg = os.urandom(4000), json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        for blob in (layer, cfg):
            r = requests.post(f"{up.url}/v2/lib/s512/blobs/uploads/", timeout=30)
            loc = r.headers["Location"]
            sep = "&" if "?" in loc else "?"
            r = requests.put(f"{loc}{sep}digest={sha512(blob)}", data=blob, timeout=30)
            assert r.status_code == 201, f"upstream refused a sha512 blob: {r.status_code} {r.text}"
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha512(cfg), "size": len(cfg)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha512(layer), "size": len(layer)}],
        }).encode()
        r = requests.put(f"{up.url}/v2/lib/s512/manifests/v1", data=manifest,
                         headers={"Content-Type": OCI_MANIFEST}, timeout=30)
        assert r.status_code == 201, f"upstream refused the manifest: {r.status_code} {r.text}"
        with CacheRule(up.url) as rule:
            repo = rule.repo("lib/s512")
            c = client_a()
            r = expect_status(get_manifest(c, repo, "v1"), 200, "manifest through the cache")
            assert r.body == manifest
            for blob in (layer, cfg):
                got = read_blob(c.base_url, f"/v2/{repo}/blobs/{sha512(blob)}")
                assert got.complete and got.body == blob, got.summary()
            # Served from the store the second time, from the other node.
            for blob in (layer, cfg):
                r = expect_status(client_b().get(f"/v2/{repo}/blobs/{sha512(blob)}"), 200, "cached sha512 blob")
                assert r.body == blob and r.header("X-Pier-Cache") == "hit", r.summary()
