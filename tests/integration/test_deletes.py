"""Deleting images: an image an index lists cannot go before the index (ECR's
ImageReferencedByManifestList, 409 on the registry API); BatchDeleteImage
works in cache repositories and the next pull fetches the image again; a
blob that garbage collection took while a client mounted it falls back to an
upload."""

import os

from pierlib import (
    OCI_INDEX, OCI_MANIFEST, TempDir, assert_oci_error, blob_path, build_image_layout, client_a, ecr_client,
    expect_status, psql, psql_value, push_blob_monolithic, push_index, random_layer, sql_str, unique_repo,
)
from upstreams import CacheRule, DockerRegistry, cache_state, get_manifest, image_blobs, pierctl, read_blob
from pierlib import drop_repositories as drop


def test_an_image_an_index_lists_is_not_deleted_before_the_index():
    c = client_a()
    ecr = ecr_client()
    repo = unique_repo("idxdel")
    try:
        index, children = push_index(c, repo, "multi")
        child = children[0].digest
        out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": child}])
        assert out["imageIds"] == [], out
        assert [f["failureCode"] for f in out["failures"]] == ["ImageReferencedByManifestList"], out
        assert index.digest in out["failures"][0]["failureReason"], out
        r = c.delete(f"/v2/{repo}/manifests/{child}")
        err = assert_oci_error(r, 409, "UNSUPPORTED", ["index"])
        assert index.digest in err["message"], err
        # Nothing changed: the child still pulls.
        expect_status(c.get(f"/v2/{repo}/manifests/{child}", headers={"Accept": OCI_MANIFEST}), 200, "child")
        # The index first, then the child.
        out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "multi"}])
        assert out["failures"] == [] and out["imageIds"][0]["imageDigest"] == index.digest, out
        expect_status(c.get(f"/v2/{repo}/manifests/{index.digest}", headers={"Accept": OCI_INDEX}), 404, "index")
        out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": child}])
        assert out["failures"] == [] and out["imageIds"] == [{"imageDigest": child}], out
        expect_status(c.delete(f"/v2/{repo}/manifests/{children[1].digest}"), 202, "the other child")
    finally:
        drop(repo)


def test_batch_delete_image_in_a_cache_repository_and_the_next_pull_fetches_it_again():
    with DockerRegistry() as up, TempDir() as tmp:
        src = tmp.sub("src")
        image = build_image_layout(src, "1.0", layer_sizes=(2048, 4096))
        up.push_layout(src, "1.0", "library/gone")
        with CacheRule(up.url) as rule:
            repo = rule.repo("library/gone")
            c = client_a()
            r = expect_status(get_manifest(c, repo, "1.0"), 200, "first pull")
            for blob in image_blobs(image):
                b = read_blob(c.base_url, f"/v2/{repo}/blobs/{blob.digest}")
                assert b.complete and b.digest == blob.digest, b.summary()
            ecr = ecr_client()
            out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "1.0"}])
            assert out["failures"] == [], out
            assert out["imageIds"] == [{"imageDigest": image.digest, "imageTag": "1.0"}], out
            assert ecr.list_images(repositoryName=repo)["imageIds"] == [], "the image is still listed"
            # The registry API still refuses deletes in cache repositories.
            assert_oci_error(c.delete(f"/v2/{repo}/manifests/{image.digest}"), 403, "DENIED")
            r = expect_status(get_manifest(c, repo, "1.0"), 200, "pull after the delete")
            assert r.body == image.manifest.data
            assert cache_state(r) == "miss", f"the pull after the delete was {cache_state(r)}, expected a miss"
            ids = ecr.list_images(repositoryName=repo)["imageIds"]
            assert {"imageDigest": image.digest, "imageTag": "1.0"} in ids, ids


def test_a_mount_of_a_blob_collected_meanwhile_becomes_an_upload():
    c = client_a()
    src, dst = unique_repo("mnt-src"), unique_repo("mnt-dst")
    try:
        layer = random_layer(700)
        digest = push_blob_monolithic(c, src, layer.data)
        # Never referenced by a manifest and older than any grace: collectable.
        psql(f"UPDATE repository_blobs SET created_at = now() - interval '2 days' WHERE digest = {sql_str(digest)}")
        psql(f"UPDATE blobs SET created_at = now() - interval '2 days' WHERE digest = {sql_str(digest)}")
        p = pierctl("gc", "--grace", "60")
        assert p.returncode == 0, p.stderr
        assert psql_value(f"SELECT count(*) FROM blobs WHERE digest = {sql_str(digest)}") == "0", p.stdout
        assert not os.path.exists(blob_path(digest)), "the collected blob's file is still there"
        r = c.post(f"/v2/{dst}/blobs/uploads/?mount={digest}&from={src}")
        expect_status(r, 202, "a mount of a collected blob")
        r = c.post(f"/v2/{dst}/blobs/uploads/?mount={digest}")
        expect_status(r, 202, "a mount without from= of a collected blob")
        assert push_blob_monolithic(c, dst, layer.data) == digest
        b = read_blob(c.base_url, f"/v2/{dst}/blobs/{digest}")
        assert b.complete and b.digest == digest, b.summary()
    finally:
        drop(src)
        drop(dst)
