"""Control plane, ECR's layer and image API: BatchCheckLayerAvailability,
InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload, PutImage and
GetDownloadUrlForLayer — shapes as the installed botocore model has them,
errors by exception name, with boto3 and both aws CLIs; AWS's retag recipe
verbatim; podman and skopeo pulling what the API pushed; download URLs that
Apache serves and that expire."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import uuid

from pierlib import (
    ACCOUNT_ID, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, MIB, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_MANIFEST, Content, ExtraNode, Podman, TempDir, _aws_env, _need_module, admin_creds, api_error_body,
    aws_cli, aws_cli_error, aws_cli_path, aws_json, client_a, docker_ref, ecr_client, ecr_repo_arn,
    expect_api_error, iam_policy, iam_statement, image_ref, make_config, random_layer, sha256_digest,
    signed_api_request, skopeo, unique_repo, url_a, url_b,
)
from authlib import User
from pierlib import drop_repositories as drop

PART_MIN = 5 * MIB
PART_MAX = 20 * MIB  # bytes in one UploadLayerPart
POLICY_SETTLE = 1.5


def error_response(call, **kwargs) -> dict:
    """The parsed error of a boto3 call that must fail: botocore puts the modeled
    exception's members (e.g. lastValidByteReceived) next to "Error"."""
    botocore_exceptions = _need_module("botocore.exceptions")
    try:
        out = call(**kwargs)
    except botocore_exceptions.ClientError as e:
        return e.response
    raise AssertionError(f"{call.__name__} succeeded, expected an error: {out!r}")


def compact_json(doc) -> bytes:
    """A manifest as docker and podman write them: no trailing newline (the shell
    in AWS's retag recipe would drop one, and with it the digest)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def build_compact_image(layer_size: int = 2048, kind: str = "oci") -> tuple[Content, Content, list[Content]]:
    layers = [random_layer(layer_size, OCI_LAYER if kind == "oci" else DOCKER_LAYER)]
    config = make_config(layers, media_type=OCI_CONFIG if kind == "oci" else DOCKER_CONFIG)
    mt = OCI_MANIFEST if kind == "oci" else DOCKER_MANIFEST
    doc = {"schemaVersion": 2, "mediaType": mt, "config": config.descriptor(),
           "layers": [l.descriptor() for l in layers]}
    return Content(compact_json(doc), mt), config, layers


def upload_layer(repo: str, data: bytes, part_sizes=None, clients=None) -> str:
    """InitiateLayerUpload, UploadLayerPart in parts (part_sizes: the sizes of all but
    the last part; default one part), CompleteLayerUpload; parts go to clients in turn."""
    clients = clients or [ecr_client()]
    digest = sha256_digest(data)
    up = clients[0].initiate_layer_upload(repositoryName=repo)
    uid = up["uploadId"]
    assert isinstance(uid, str) and str(uuid.UUID(uid)) == uid, up
    assert isinstance(up["partSize"], int) and up["partSize"] >= PART_MIN, up
    sizes = list(part_sizes or [])
    offset, i = 0, 0
    while offset < len(data):
        n = sizes[i] if i < len(sizes) else len(data) - offset
        part = data[offset:offset + n]
        out = clients[i % len(clients)].upload_layer_part(
            repositoryName=repo, uploadId=uid, partFirstByte=offset, partLastByte=offset + n - 1,
            layerPartBlob=part)
        assert out["lastByteReceived"] == offset + n - 1, out
        assert out["uploadId"] == uid and out["repositoryName"] == repo and out["registryId"] == ACCOUNT_ID, out
        offset += n
        i += 1
    out = clients[i % len(clients)].complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[digest])
    assert out["layerDigest"] == digest and out["uploadId"] == uid, out
    assert out["repositoryName"] == repo and out["registryId"] == ACCOUNT_ID, out
    return digest


def push_compact_image(repo: str, tag: str, kind: str = "oci") -> Content:
    """An image pushed through the layer API alone; returns its manifest."""
    manifest, config, layers = build_compact_image(kind=kind)
    for blob in [config, *layers]:
        upload_layer(repo, blob.data)
    out = ecr_client().put_image(repositoryName=repo, imageManifest=manifest.data.decode(), imageTag=tag)
    assert out["image"]["imageId"] == {"imageDigest": manifest.digest, "imageTag": tag}, out
    return manifest


def curl(url: str, *args: str) -> tuple[int, dict, bytes]:
    """GET url with curl: (status, headers with lower-case names, body)."""
    if shutil.which("curl") is None:
        raise AssertionError("precondition missing: curl is not installed")
    with TempDir() as d:
        body, hdrs = d.sub("body"), d.sub("headers")
        p = subprocess.run(["curl", "-sS", "-o", body, "-D", hdrs, "-w", "%{http_code}", *args, url],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"curl {url[:120]}... failed: {p.stderr}"
        headers = {}
        with open(hdrs) as f:
            for line in f:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
        with open(body, "rb") as f:
            return int(p.stdout.strip()), headers, f.read()


def test_layer_api_pushes_an_image_in_parts_that_podman_and_skopeo_pull():
    """A layer of 26 MiB in three parts (5 MiB, the largest a part may be, the rest)
    that alternate between the nodes, a config in one part, PutImage, then pulls
    through /v2 with podman and skopeo."""
    repo = unique_repo("layers")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        layer = random_layer(26 * MIB, OCI_LAYER, nfiles=2)
        config = make_config([layer])
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
               "layers": [layer.descriptor()]}
        manifest = Content(compact_json(doc), OCI_MANIFEST)
        digests = [layer.digest, config.digest]

        out = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=digests)
        assert out["layers"] == [], out
        assert [(f["layerDigest"], f["failureCode"]) for f in out["failures"]] == \
            [(d, "MissingLayerDigest") for d in digests], out
        assert all(f["failureReason"] for f in out["failures"]), out

        both = [ecr_client(), ecr_client(base_url=url_b())]
        assert upload_layer(repo, layer.data, [PART_MIN, PART_MAX], clients=both) == layer.digest
        assert upload_layer(repo, config.data) == config.digest

        out = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=digests)
        assert out["failures"] == [], out
        assert out["layers"] == [
            {"layerDigest": layer.digest, "layerAvailability": "AVAILABLE", "layerSize": layer.size},
            {"layerDigest": config.digest, "layerAvailability": "AVAILABLE", "layerSize": config.size},
        ], out

        out = ecr.put_image(repositoryName=repo, imageManifest=manifest.data.decode(), imageTag="v1")
        assert out["image"] == {
            "registryId": ACCOUNT_ID, "repositoryName": repo,
            "imageId": {"imageDigest": manifest.digest, "imageTag": "v1"},
            "imageManifest": manifest.data.decode(), "imageManifestMediaType": OCI_MANIFEST,
        }, out

        r = client_a().get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200 and r.body == manifest.data, r.summary()
        with Podman() as podman:
            podman.pull(image_ref(repo, "v1"))
            info = podman.inspect(image_ref(repo, "v1"))
            assert info["Digest"] == manifest.digest, info["Digest"]
        raw = skopeo("inspect", "--raw", docker_ref(repo, "v1", url_b())).stdout
        assert raw == manifest.data, raw[:200]
        with TempDir() as d:
            skopeo("copy", docker_ref(repo, "v1"), f"oci:{d.sub('out')}:v1")
            blob = os.path.join(d.sub("out"), "blobs", "sha256", layer.digest.split(":")[1])
            with open(blob, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == layer.digest.split(":")[1]
    finally:
        drop(repo)


def test_upload_layer_part_refuses_parts_that_do_not_follow():
    repo = unique_repo("parts")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        first_part = PART_MIN  # parts but the last hold at least 5 MiB
        data = os.urandom(first_part + 2 * MIB)
        uid = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0, partLastByte=first_part - 1,
                              layerPartBlob=data[:first_part])
        # A part that skips bytes, one sent twice, one whose range is not its size.
        for first, last, part in ((first_part + MIB, len(data) - 1, data[first_part + MIB:]),
                                  (0, first_part - 1, data[:first_part]),
                                  (first_part, len(data), data[first_part:first_part + MIB])):
            resp = error_response(ecr.upload_layer_part, repositoryName=repo, uploadId=uid,
                                  partFirstByte=first, partLastByte=last, layerPartBlob=part)
            assert resp["Error"]["Code"] == "InvalidLayerPartException", resp
            assert resp["Error"]["Message"], resp
            assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400, resp
            assert resp["lastValidByteReceived"] == first_part - 1, resp
            assert resp["uploadId"] == uid and resp["repositoryName"] == repo and resp["registryId"] == ACCOUNT_ID, resp
        # The same on the wire, as the model's InvalidLayerPartException shape.
        body = {"repositoryName": repo, "uploadId": uid, "partFirstByte": 5, "partLastByte": 5,
                "layerPartBlob": base64.b64encode(b"x").decode()}
        r = signed_api_request("UploadLayerPart", body)
        api_error_body(r, "InvalidLayerPartException")
        assert r.json()["lastValidByteReceived"] == first_part - 1, r.summary()
        # A part holds at most 20 MiB (28 MiB of base64 in the request).
        resp = error_response(ecr_client(validate=False).upload_layer_part, repositoryName=repo, uploadId=uid,
                              partFirstByte=first_part, partLastByte=first_part + PART_MAX,
                              layerPartBlob=b"\0" * (PART_MAX + 1))
        assert resp["Error"]["Code"] == "InvalidLayerPartException", resp
        assert resp["lastValidByteReceived"] == first_part - 1, resp
        # Nothing of the refused parts stuck: the next part continues where the first ended.
        out = ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=first_part,
                                    partLastByte=len(data) - 1, layerPartBlob=data[first_part:])
        assert out["lastByteReceived"] == len(data) - 1, out
        # Unknown sessions, and a session of another repository.
        other = unique_repo("parts-other")
        for rp, u in ((repo, str(uuid.uuid4())), (other, uid)):
            expect_api_error("UploadNotFoundException", ecr.upload_layer_part, repositoryName=rp, uploadId=u,
                             partFirstByte=len(data), partLastByte=len(data), layerPartBlob=b"x")
        expect_api_error("InvalidParameterException", ecr_client(validate=False).upload_layer_part,
                         repositoryName=repo, uploadId="not-an-upload", partFirstByte=0, partLastByte=0,
                         layerPartBlob=b"x")
        # The upload id in upper case (the model's pattern allows it) names the same session.
        out = ecr.complete_layer_upload(repositoryName=repo, uploadId=uid.upper(), layerDigests=[sha256_digest(data)])
        assert out["layerDigest"] == sha256_digest(data), out
    finally:
        drop(repo)


def test_complete_layer_upload_errors():
    repo = unique_repo("complete")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        def started(parts):
            uid = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
            off = 0
            for p in parts:
                ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=off,
                                      partLastByte=off + len(p) - 1, layerPartBlob=p)
                off += len(p)
            return uid

        data = os.urandom(1000)
        uid = started([data])
        msg = expect_api_error("InvalidLayerException", ecr.complete_layer_upload, repositoryName=repo,
                               uploadId=uid, layerDigests=[sha256_digest(b"something else")])
        assert sha256_digest(data) in msg, msg
        # The mismatch discarded the upload.
        expect_api_error("UploadNotFoundException", ecr.upload_layer_part, repositoryName=repo, uploadId=uid,
                         partFirstByte=1000, partLastByte=1000, layerPartBlob=b"x")

        empty = started([])
        expect_api_error("EmptyUploadException", ecr.complete_layer_upload, repositoryName=repo, uploadId=empty,
                         layerDigests=[sha256_digest(b"")])

        small = [os.urandom(MIB), os.urandom(MIB)]
        uid = started(small)
        expect_api_error("LayerPartTooSmallException", ecr.complete_layer_upload, repositoryName=repo,
                         uploadId=uid, layerDigests=[sha256_digest(b"".join(small))])
        # Only the last part may be short: 5 MiB then 1 byte completes.
        ok = [os.urandom(PART_MIN), b"z"]
        uid = started(ok)
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[sha256_digest(b"".join(ok))])

        uid = started([data])
        ecr.complete_layer_upload(repositoryName=repo, uploadId=uid, layerDigests=[sha256_digest(data)])
        again = started([data])
        expect_api_error("LayerAlreadyExistsException", ecr.complete_layer_upload, repositoryName=repo,
                         uploadId=again, layerDigests=[sha256_digest(data)])

        expect_api_error("UploadNotFoundException", ecr.complete_layer_upload, repositoryName=repo,
                         uploadId=str(uuid.uuid4()), layerDigests=[sha256_digest(data)])
        expect_api_error("InvalidParameterException", ecr.complete_layer_upload, repositoryName=repo,
                         uploadId=str(uuid.uuid4()), layerDigests=["sha256:nothex"])
        # One kind of session: a layer started here may be finished through /v2.
        tail = os.urandom(2000)
        uid = started([tail[:1000]])
        r = client_a().put(f"/v2/{repo}/blobs/uploads/{uid}?digest={sha256_digest(tail)}", body=tail[1000:],
                           headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, r.summary()
        out = ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[sha256_digest(tail)])
        assert out["layers"] == [{"layerDigest": sha256_digest(tail), "layerAvailability": "AVAILABLE",
                                  "layerSize": 2000}], out
    finally:
        drop(repo)


def test_batch_check_layer_availability_failures():
    repo = unique_repo("check")
    ecr = ecr_client()
    expect_api_error("RepositoryNotFoundException", ecr.batch_check_layer_availability, repositoryName=repo,
                     layerDigests=[sha256_digest(b"x")])
    ecr.create_repository(repositoryName=repo)
    try:
        present = upload_layer(repo, b"present")
        out = ecr.batch_check_layer_availability(repositoryName=repo,
                                                 layerDigests=["md5:zz", present, sha256_digest(b"absent")])
        assert out["layers"] == [{"layerDigest": present, "layerAvailability": "AVAILABLE", "layerSize": 7}], out
        assert [(f["layerDigest"], f["failureCode"]) for f in out["failures"]] == [
            ("md5:zz", "InvalidLayerDigest"), (sha256_digest(b"absent"), "MissingLayerDigest")], out
        loose = ecr_client(validate=False)
        expect_api_error("InvalidParameterException", loose.batch_check_layer_availability, repositoryName=repo,
                         layerDigests=[present] * 101)
        expect_api_error("InvalidParameterException", loose.batch_check_layer_availability, repositoryName=repo,
                         layerDigests=[])
    finally:
        drop(repo)


def test_put_image_errors_and_media_types():
    repo = unique_repo("putimage")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        manifest, config, layers = build_compact_image()
        # Nothing uploaded yet: the manifest names layers this repository lacks.
        expect_api_error("LayersNotFoundException", ecr.put_image, repositoryName=repo,
                         imageManifest=manifest.data.decode(), imageTag="v1")
        for blob in [config, *layers]:
            upload_layer(repo, blob.data)
        expect_api_error("ImageDigestDoesNotMatchException", ecr.put_image, repositoryName=repo,
                         imageManifest=manifest.data.decode(), imageDigest=sha256_digest(b"other"))
        out = ecr.put_image(repositoryName=repo, imageManifest=manifest.data.decode(), imageTag="v1",
                            imageDigest=manifest.digest, imageManifestMediaType=OCI_MANIFEST)
        assert out["image"]["imageId"] == {"imageDigest": manifest.digest, "imageTag": "v1"}, out
        # The same again changes nothing: ImageAlreadyExistsException, with the tag or without.
        expect_api_error("ImageAlreadyExistsException", ecr.put_image, repositoryName=repo,
                         imageManifest=manifest.data.decode(), imageTag="v1")
        expect_api_error("ImageAlreadyExistsException", ecr.put_image, repositoryName=repo,
                         imageManifest=manifest.data.decode())
        # A manifest without mediaType needs imageManifestMediaType.
        bare = json.loads(manifest.data)
        del bare["mediaType"]
        bare_bytes = compact_json(bare)
        out = ecr.put_image(repositoryName=repo, imageManifest=bare_bytes.decode(), imageTag="bare",
                            imageManifestMediaType=OCI_MANIFEST)
        assert out["image"]["imageId"]["imageDigest"] == sha256_digest(bare_bytes), out
        assert out["image"]["imageManifestMediaType"] == OCI_MANIFEST, out
        expect_api_error("InvalidParameterException", ecr.put_image, repositoryName=repo,
                         imageManifest=manifest.data.decode(), imageTag="wrong-type",
                         imageManifestMediaType=DOCKER_MANIFEST)
        expect_api_error("InvalidParameterException", ecr.put_image, repositoryName=repo,
                         imageManifest="{not json", imageTag="broken")
        expect_api_error("InvalidParameterException", ecr.put_image, repositoryName=repo,
                         imageManifest=manifest.data.decode(), imageTag="bad tag!")
        # An index whose child is not here.
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha256_digest(b"no such image"), "size": 13,
             "platform": {"os": "linux", "architecture": "amd64"}}]}
        expect_api_error("ReferencedImagesNotFoundException", ecr.put_image, repositoryName=repo,
                         imageManifest=compact_json(index).decode(), imageTag="idx")
        # An index over the image goes in.
        index["manifests"][0].update(digest=manifest.digest, size=manifest.size)
        out = ecr.put_image(repositoryName=repo, imageManifest=compact_json(index).decode(), imageTag="idx")
        assert out["image"]["imageManifestMediaType"] == OCI_INDEX, out
        # Immutable tags do not move.
        ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
        expect_api_error("ImageTagAlreadyExistsException", ecr.put_image, repositoryName=repo,
                         imageManifest=bare_bytes.decode(), imageTag="v1")
        expect_api_error("RepositoryNotFoundException", ecr.describe_images, repositoryName=repo + "-none")
        tags = {t for d in ecr.describe_images(repositoryName=repo)["imageDetails"] for t in d.get("imageTags", [])}
        assert tags == {"v1", "bare", "idx"}, tags
    finally:
        drop(repo)


def _recipe_env(version: int) -> dict:
    env = _aws_env(admin_creds())
    env["PATH"] = os.path.dirname(aws_cli_path(version)) + os.pathsep + env.get("PATH", "")
    env["AWS_ENDPOINT_URL"] = url_a()
    return env


def test_retag_recipe_from_the_ecr_guide_works_verbatim():
    """AWS's documented retag: batch-get-image | put-image --image-tag new, run by a
    shell exactly as the guide writes it (the endpoint comes from AWS_ENDPOINT_URL
    for v1; v2.9 ignores that variable and gets --endpoint-url)."""
    repo = unique_repo("retag")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        manifest = push_compact_image(repo, "old", kind="docker")
        recipe = ('MANIFEST=$(aws ecr batch-get-image --repository-name R --image-ids imageTag=old '
                  '--output text --query \'images[].imageManifest\')\n'
                  'aws ecr put-image --repository-name R --image-tag new --image-manifest "$MANIFEST"\n')
        script = recipe.replace(" R ", f" {repo} ")
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=_recipe_env(1), capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, f"the recipe failed with aws CLI v1: {p.stderr[-1500:]}"
        out = json.loads(p.stdout)
        assert out["image"]["imageId"] == {"imageDigest": manifest.digest, "imageTag": "new"}, out
        v2 = script.replace("aws ecr batch-get-image", f"aws ecr batch-get-image --endpoint-url {url_a()}") \
                   .replace("aws ecr put-image", f"aws ecr put-image --endpoint-url {url_a()}") \
                   .replace("--image-tag new", "--image-tag newer")
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", v2], env=_recipe_env(2), capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, f"the recipe failed with aws CLI v2: {p.stderr[-1500:]}"
        details = ecr.describe_images(repositoryName=repo)["imageDetails"]
        assert len(details) == 1 and sorted(details[0]["imageTags"]) == ["new", "newer", "old"], details
        assert details[0]["imageDigest"] == manifest.digest, details
        # Running it again changes nothing, which ECR reports as an error.
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=_recipe_env(1), capture_output=True,
                           text=True, timeout=120)
        assert aws_cli_error(p)[0] == "ImageAlreadyExistsException", p.stderr
        with Podman() as podman:
            podman.pull(image_ref(repo, "new"))
            assert podman.inspect(image_ref(repo, "new"))["Digest"] == manifest.digest
    finally:
        drop(repo)


def _layer_api_with_aws_cli(version: int) -> None:
    """Every operation through one aws CLI (layer parts from files, fileb://)."""
    repo = unique_repo(f"layers-cli-v{version}")
    ecr_client().create_repository(repositoryName=repo)
    try:
        manifest, config, layers = build_compact_image()
        upload_layer(repo, config.data)  # (boto3: the CLI is slow to start)
        blob = layers[0]
        with TempDir() as d:
            path = d.sub("part")
            with open(path, "wb") as f:
                f.write(blob.data)
            up = aws_json("ecr", "initiate-layer-upload", "--repository-name", repo, version=version)
            out = aws_json("ecr", "upload-layer-part", "--repository-name", repo, "--upload-id",
                           up["uploadId"], "--part-first-byte", "0", "--part-last-byte",
                           str(blob.size - 1), "--layer-part-blob", f"fileb://{path}", version=version)
            assert out["lastByteReceived"] == blob.size - 1, out
            out = aws_json("ecr", "complete-layer-upload", "--repository-name", repo, "--upload-id",
                           up["uploadId"], "--layer-digests", blob.digest, version=version)
            assert out["layerDigest"] == blob.digest, out
            out = aws_json("ecr", "batch-check-layer-availability", "--repository-name", repo,
                           "--layer-digests", layers[0].digest, config.digest, version=version)
            assert [l["layerAvailability"] for l in out["layers"]] == ["AVAILABLE", "AVAILABLE"], out
            mpath = d.sub("manifest.json")
            with open(mpath, "wb") as f:
                f.write(manifest.data)
            out = aws_json("ecr", "put-image", "--repository-name", repo, "--image-tag", "cli",
                           "--image-manifest", f"file://{mpath}", version=version)
            assert out["image"]["imageId"] == {"imageDigest": manifest.digest, "imageTag": "cli"}, out
            out = aws_json("ecr", "get-download-url-for-layer", "--repository-name", repo, "--layer-digest",
                           layers[0].digest, version=version)
            assert out["layerDigest"] == layers[0].digest, out
            status, _, body = curl(out["downloadUrl"])
            assert status == 200 and body == layers[0].data, status
            p = aws_cli("ecr", "complete-layer-upload", "--repository-name", repo, "--upload-id",
                        str(uuid.uuid4()), "--layer-digests", config.digest, version=version, check=False)
            assert aws_cli_error(p)[0] == "UploadNotFoundException", p.stderr
    finally:
        drop(repo)


def test_layer_api_with_aws_cli_v1():
    _layer_api_with_aws_cli(1)


def test_layer_api_with_aws_cli_v2():
    _layer_api_with_aws_cli(2)


def _tamper(url: str, part: str) -> str:
    """The URL with one character of its token's signature or payload changed."""
    parts = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qs(parts.query)
    tok = q["download_token"][0]
    head, payload, sig = tok.split(".")
    if part == "signature":
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    else:
        payload = payload[:5] + ("A" if payload[5] != "A" else "B") + payload[6:]
    q["download_token"] = [f"{head}.{payload}.{sig}"]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q, doseq=True)))


def test_download_url_is_served_by_apache_and_refused_once_altered_or_expired():
    repo = unique_repo("download")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        manifest, config, layers = build_compact_image(layer_size=300 * 1024)
        layer = layers[0]
        for blob in [config, layer]:
            upload_layer(repo, blob.data)
        # A layer no image references yet is inaccessible; an unknown one is not found.
        expect_api_error("LayerInaccessibleException", ecr.get_download_url_for_layer, repositoryName=repo,
                         layerDigest=layer.digest)
        ecr.put_image(repositoryName=repo, imageManifest=manifest.data.decode(), imageTag="v1")
        expect_api_error("LayersNotFoundException", ecr.get_download_url_for_layer, repositoryName=repo,
                         layerDigest=sha256_digest(b"nowhere"))
        expect_api_error("RepositoryNotFoundException", ecr.get_download_url_for_layer,
                         repositoryName=repo + "-none", layerDigest=layer.digest)
        expect_api_error("InvalidParameterException", ecr.get_download_url_for_layer, repositoryName=repo,
                         layerDigest="sha256:xyz")

        out = ecr.get_download_url_for_layer(repositoryName=repo, layerDigest=layer.digest)
        assert set(out) - {"ResponseMetadata"} == {"downloadUrl", "layerDigest"}, out
        assert out["layerDigest"] == layer.digest, out
        url = out["downloadUrl"]
        assert url.startswith(f"{url_a()}/v2/{repo}/blobs/{layer.digest}?download_token="), url
        # Anyone holding the URL gets the bytes, without credentials, from Apache
        # (X-Sendfile: lengths and ranges as for a static file), on both nodes.
        status, headers, body = curl(url)
        assert status == 200 and body == layer.data, (status, headers)
        assert sha256_digest(body) == layer.digest
        assert headers.get("docker-content-digest") == layer.digest, headers
        assert headers.get("content-length") == str(layer.size), headers
        assert "x-sendfile" not in headers, headers
        status, headers, body = curl(url, "-r", "10-19")
        assert status == 206 and body == layer.data[10:20], (status, headers)
        assert headers.get("content-range") == f"bytes 10-19/{layer.size}", headers
        status, _, body = curl(url.replace(url_a(), url_b()))
        assert status == 200 and body == layer.data, status

        # Altered, moved to another layer, or emptied: 403 with a registry error.
        for bad in (_tamper(url, "signature"), _tamper(url, "payload"),
                    url.replace(layer.digest, config.digest), url.split("?")[0] + "?download_token=x",
                    url.split("?")[0] + "?download_token="):
            status, headers, body = curl(bad)
            assert status == 403, (bad, status, body[:300])
            assert json.loads(body)["errors"][0]["code"] == "DENIED", body[:300]
            assert "www-authenticate" not in headers, headers
        # Without the token the blob needs credentials as always.
        status, _, _ = curl(url.split("?")[0])
        assert status == 401, status

        # A URL from a node whose URLs live 2 seconds works, then is refused.
        with ExtraNode("dlttl", 7, PIER_DOWNLOAD_URL_TTL="2") as n:
            short = ecr_client(base_url=n.url).get_download_url_for_layer(
                repositoryName=repo, layerDigest=layer.digest)["downloadUrl"]
            status, _, body = curl(short)
            assert status == 200 and body == layer.data, status
            time.sleep(3.5)
            status, _, body = curl(short)
            assert status == 403 and b"expired" in body, (status, body[:300])
            status, _, _ = curl(short.replace(n.url, url_a()))
            assert status == 403, status
    finally:
        drop(repo)


def test_download_url_acts_as_the_principal_that_asked_for_it():
    """Like a presigned URL: it works while its signer may still read the layer."""
    repo = unique_repo("download-who")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        manifest = push_compact_image(repo, "v1")
        layer_digest = json.loads(manifest.data)["layers"][0]["digest"]
        read = iam_policy(iam_statement(["ecr:GetDownloadUrlForLayer"], ecr_repo_arn(repo)))
        with User("dl-url", {"read": read}) as u:
            time.sleep(POLICY_SETTLE)
            url = ecr_client(u.creds).get_download_url_for_layer(repositoryName=repo,
                                                                 layerDigest=layer_digest)["downloadUrl"]
            assert curl(url)[0] == 200
            expect_api_error("AccessDeniedException", ecr_client(u.creds).get_download_url_for_layer,
                             repositoryName=repo + "-elsewhere", layerDigest=layer_digest)
            u.delete_policy("read")
            time.sleep(POLICY_SETTLE)
            status, _, body = curl(url)
            assert status == 403 and b"ecr:GetDownloadUrlForLayer" in body, (status, body[:300])
    finally:
        drop(repo)


def test_each_layer_operation_needs_its_own_action():
    """ecr:<Operation> on the repository, as the registry asks for the same steps."""
    repo = unique_repo("layers-authz")
    ecr = ecr_client()
    ecr.create_repository(repositoryName=repo)
    try:
        manifest = push_compact_image(repo, "v1")
        layer_digest = json.loads(manifest.data)["layers"][0]["digest"]
        uid = ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        check_only = iam_policy(iam_statement(["ecr:BatchCheckLayerAvailability"], ecr_repo_arn(repo)))
        with User("layers-authz", {"check": check_only}) as u:
            time.sleep(POLICY_SETTLE)
            mine = ecr_client(u.creds)
            out = mine.batch_check_layer_availability(repositoryName=repo, layerDigests=[layer_digest])
            assert out["layers"][0]["layerAvailability"] == "AVAILABLE", out
            calls = [
                ("ecr:InitiateLayerUpload", mine.initiate_layer_upload, {}),
                ("ecr:UploadLayerPart", mine.upload_layer_part,
                 {"uploadId": uid, "partFirstByte": 0, "partLastByte": 0, "layerPartBlob": b"x"}),
                ("ecr:CompleteLayerUpload", mine.complete_layer_upload,
                 {"uploadId": uid, "layerDigests": [layer_digest]}),
                ("ecr:PutImage", mine.put_image, {"imageManifest": manifest.data.decode(), "imageTag": "v2"}),
                ("ecr:GetDownloadUrlForLayer", mine.get_download_url_for_layer, {"layerDigest": layer_digest}),
            ]
            for action, call, kw in calls:
                msg = expect_api_error("AccessDeniedException", call, repositoryName=repo, **kw)
                assert action in msg and u.arn in msg, msg
        # Nothing of it happened: the session is still empty and v2 does not exist.
        out = ecr.upload_layer_part(repositoryName=repo, uploadId=uid, partFirstByte=0, partLastByte=0,
                                    layerPartBlob=b"x")
        assert out["lastByteReceived"] == 0, out
        expect_api_error("ImageNotFoundException", ecr.describe_images, repositoryName=repo,
                         imageIds=[{"imageTag": "v2"}])
    finally:
        drop(repo)
