"""Real clients (skopeo, podman) against Pier, and the two-node setup."""

import json
import os

from pierlib import (
    EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST, Client, Content, OciLayout, Podman, TempDir, artifact_manifest, add_query, build_image_layout, build_large_layout,
    build_multiarch_layout, client_a, docker_ref, expect_status, file_digest, image_ref, layout_blob,
    location_path, patch_chunk, push_image, read_layout, sha256_digest, skopeo, skopeo_copy, skopeo_inspect_raw,
    start_upload, unique_repo, url_a, url_b,
)


def layer_digests(manifest_bytes: bytes) -> list[str]:
    return [l["digest"] for l in json.loads(manifest_bytes)["layers"]]


def check_layout_copy(path: str, tag: str, image) -> None:
    """The layout at path (copied back from the registry) holds the same image."""
    raw, desc = read_layout(path, tag)
    assert desc["digest"] == image.digest, f"copied-back manifest digest {desc['digest']} != {image.digest}"
    assert raw == image.manifest.data, "copied-back manifest bytes differ"
    assert layer_digests(raw) == [l.digest for l in image.layers]
    for blob in [image.config, *image.layers]:
        p = os.path.join(path, "blobs", "sha256", blob.digest.split(":", 1)[1])
        assert file_digest(p) == blob.digest, f"copied-back blob {blob.digest} has wrong content"


def test_push_pull_roundtrip_with_skopeo():
    repo = unique_repo("skopeo")
    with TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "v1", layer_sizes=(1500, 200 * 1024, 1200 * 1024))
        assert len({l.size for l in image.layers}) == 3
        skopeo_copy(f"oci:{src}:v1", docker_ref(repo, "v1"))
        raw = skopeo_inspect_raw(docker_ref(repo, "v1"))
        assert raw == image.manifest.data, "skopeo inspect --raw differs from the pushed manifest"
        info = json.loads(skopeo("inspect", docker_ref(repo, "v1")).stdout)
        assert info["Digest"] == image.digest, f"skopeo inspect Digest {info['Digest']} != {image.digest}"
        assert info["Layers"] == [l.digest for l in image.layers], info["Layers"]
        c = client_a()
        r = expect_status(c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
        assert r.header("Docker-Content-Digest") == image.digest
        for layer in image.layers:
            h = expect_status(c.head(f"/v2/{repo}/blobs/{layer.digest}"), 200)
            assert h.header("Content-Length") == str(layer.size)
        back = tmp.sub("back")
        skopeo_copy(docker_ref(repo, "v1"), f"oci:{back}:v1")
        check_layout_copy(back, "v1", image)
        # And by digest.
        back2 = tmp.sub("back2")
        skopeo_copy(docker_ref(repo, image.digest), f"oci:{back2}:bydigest")
        check_layout_copy(back2, "bydigest", image)


def test_multiarch_index_push_with_skopeo_all():
    repo = unique_repo("multiarch")
    with TempDir() as tmp:
        src = tmp.sub("src")
        index, images = build_multiarch_layout(src, "multi")
        skopeo_copy(f"oci:{src}:multi", docker_ref(repo, "multi"), all_images=True)
        raw = skopeo_inspect_raw(docker_ref(repo, "multi"))
        assert raw == index.data, "index bytes changed on the way through the registry"
        c = client_a()
        r = expect_status(c.get(f"/v2/{repo}/manifests/multi", headers={"Accept": OCI_INDEX}), 200)
        assert r.header("Content-Type") == OCI_INDEX and r.header("Docker-Content-Digest") == index.digest
        for img in images:
            r = expect_status(c.get(f"/v2/{repo}/manifests/{img.digest}", headers={"Accept": OCI_MANIFEST}), 200)
            assert r.body == img.manifest.data
        back = tmp.sub("back")
        skopeo_copy(docker_ref(repo, "multi"), f"oci:{back}:multi", all_images=True)
        raw_back, desc = read_layout(back, "multi")
        assert desc["digest"] == index.digest and raw_back == index.data
        for img in images:
            assert layout_blob(back, img.digest) == img.manifest.data
            for layer in img.layers:
                assert sha256_digest(layout_blob(back, layer.digest)) == layer.digest


def test_large_layer_push_and_pull():
    repo = unique_repo("large")
    with TempDir() as tmp:
        src = tmp.sub("src")
        image = build_large_layout(src, "big", mib=32)
        big = max(image.layers, key=lambda l: l.size)
        assert big.size > 32 * 1024 * 1024, f"large layer is only {big.size} bytes"
        skopeo_copy(f"oci:{src}:big", docker_ref(repo, "big"))
        c = client_a()
        h = expect_status(c.head(f"/v2/{repo}/blobs/{big.digest}"), 200)
        assert h.header("Content-Length") == str(big.size)
        g = expect_status(c.get(f"/v2/{repo}/blobs/{big.digest}"), 200)
        assert sha256_digest(g.body) == big.digest, "large blob content differs"
        back = tmp.sub("back")
        skopeo_copy(docker_ref(repo, "big"), f"oci:{back}:big")
        check_layout_copy(back, "big", image)


def test_podman_pull_by_tag_and_by_digest():
    repo = unique_repo("podman")
    with TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "v1")
        skopeo_copy(f"oci:{src}:v1", docker_ref(repo, "v1"))
        with Podman() as podman:
            podman.pull(image_ref(repo, "v1"))
            info = podman.inspect(image_ref(repo, "v1"))
            assert info["Digest"] == image.digest, f"podman digest {info['Digest']} != {image.digest}"
            assert info.get("Architecture") == "amd64" and info.get("Os") == "linux", info
            podman("rmi", "--all", "--force")
            by_digest = image_ref(repo, image.digest)
            podman.pull(by_digest)
            info = podman.inspect(by_digest)
            assert info["Digest"] == image.digest, f"podman digest {info['Digest']} != {image.digest}"
            assert f"{image_ref(repo, image.digest)}" in info.get("RepoDigests", []), info.get("RepoDigests")


def test_push_to_node_a_pull_from_node_b():
    repo = unique_repo("twonodes")
    with TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "v1")
        skopeo_copy(f"oci:{src}:v1", docker_ref(repo, "v1", url_a()))
        raw = skopeo_inspect_raw(docker_ref(repo, "v1", url_b()))
        assert raw == image.manifest.data, "node B serves different manifest bytes"
        back = tmp.sub("back")
        skopeo_copy(docker_ref(repo, "v1", url_b()), f"oci:{back}:v1")
        check_layout_copy(back, "v1", image)
        tags = expect_status(Client(url_b()).get(f"/v2/{repo}/tags/list"), 200).json()["tags"]
        assert tags == ["v1"], tags


def test_push_to_node_b_pull_from_node_a_over_http():
    a, b = client_a(), Client(url_b())
    repo = unique_repo("twonodes-http")
    img = push_image(b, repo, "v1", nlayers=2)
    r = expect_status(a.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}), 200)
    assert r.body == img.manifest.data
    for blob in [img.config, *img.layers]:
        assert expect_status(a.get(f"/v2/{repo}/blobs/{blob.digest}"), 200).body == blob.data


def test_chunked_upload_alternating_between_nodes():
    a, b = client_a(), Client(url_b())
    repo = unique_repo("alternate")
    data = os.urandom(6 * 100000 + 17)
    digest = sha256_digest(data)
    _, loc = start_upload(a, repo)
    offset, i = 0, 0
    while offset < len(data):
        node = b if i % 2 == 0 else a
        chunk = data[offset:offset + 100000]
        r = patch_chunk(node, loc, chunk, offset)
        expect_status(r, 202, f"PATCH {offset} on node {'B' if node is b else 'A'}")
        assert r.header("Range") == f"0-{offset + len(chunk) - 1}", r.summary()
        loc = location_path(r.header("Location"))
        status = expect_status((a if node is b else b).get(loc), 204, "status from the other node")
        assert status.header("Range") == f"0-{offset + len(chunk) - 1}", status.summary()
        offset += len(chunk)
        i += 1
    r = b.put(add_query(loc, digest=digest))
    expect_status(r, 201, "closing PUT on node B")
    for node in (a, b):
        g = expect_status(node.get(f"/v2/{repo}/blobs/{digest}"), 200)
        assert g.body == data, "blob assembled across nodes differs"


def test_artifact_with_subject_pushed_with_skopeo_is_listed_as_referrer():
    c = client_a()
    repo = unique_repo("artifact")
    with TempDir() as tmp:
        d = tmp.sub("layout")
        build_image_layout(d, tag="img")
        raw, _ = read_layout(d, "img")
        subject = Content(raw, OCI_MANIFEST)
        sig = Content(b"signature-bytes-" + os.urandom(8).hex().encode(), "application/vnd.example.sig")
        art = artifact_manifest(subject, "application/vnd.example.sig", blobs=[sig],
                                annotations={"org.example.signed-by": "tests"})
        with open(os.path.join(d, "index.json")) as f:
            entries = json.load(f)["manifests"]
        layout = OciLayout(d)  # reopening rewrites index.json: put the image entry back
        layout.entries = entries
        for blob in (EMPTY_CONFIG, sig, art):
            layout.add_blob(blob)
        layout.tag(art, "sig")
        skopeo_copy(f"oci:{d}:img", docker_ref(repo, "img"))
        skopeo_copy(f"oci:{d}:sig", docker_ref(repo, "sig"))
    got = skopeo_inspect_raw(docker_ref(repo, "sig"))
    assert got == art.data, "the artifact manifest changed on the way through skopeo"
    r = expect_status(c.get(f"/v2/{repo}/referrers/{subject.digest}"), 200, "referrers")
    listed = {m["digest"]: m for m in json.loads(r.body)["manifests"]}
    assert art.digest in listed, f"artifact {art.digest} not among referrers {list(listed)}"
    assert listed[art.digest]["artifactType"] == "application/vnd.example.sig"
    assert listed[art.digest].get("annotations") == {"org.example.signed-by": "tests"}
