"""Referrers API (distribution-spec 1.1): subject, OCI-Subject, listing and filtering."""

import os
import urllib.parse

from pierlib import (
    EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST, Content, artifact_manifest, assert_oci_error, build_image,
    client_a, expect_status, push_blob_monolithic, push_image, push_manifest, put_manifest, unique_repo,
)

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


def push_artifact(c, repo, subject, artifact_type, annotations, config=None, tag=None):
    payload = Content(os.urandom(200), "application/octet-stream")
    push_blob_monolithic(c, repo, payload.data)
    cfg = config or EMPTY_CONFIG
    push_blob_monolithic(c, repo, cfg.data)
    art = artifact_manifest(subject, artifact_type, [payload], annotations=annotations, config=cfg)
    r = put_manifest(c, repo, tag or art.digest, art)
    expect_status(r, 201, f"PUT artifact {artifact_type}")
    subj = subject.digest if isinstance(subject, Content) else subject["digest"]
    assert r.header("OCI-Subject") == subj, f"OCI-Subject {r.header('OCI-Subject')!r}, expected {subj}"
    return art


def referrers(c, repo, digest, artifact_type=None):
    path = f"/v2/{repo}/referrers/{digest}"
    if artifact_type:
        path += "?artifactType=" + urllib.parse.quote(artifact_type, safe="")
    r = expect_status(c.get(path), 200, f"GET {path}")
    ctype = (r.header("Content-Type") or "").split(";")[0].strip()
    assert ctype == OCI_INDEX, f"referrers Content-Type {r.header('Content-Type')!r}"
    doc = r.json()
    assert doc.get("schemaVersion") == 2, doc
    assert doc.get("mediaType") == OCI_INDEX, doc
    assert isinstance(doc.get("manifests"), list), doc
    return r, doc["manifests"]


def by_digest(entries):
    out = {}
    for e in entries:
        assert e["digest"] not in out, f"duplicate referrer {e['digest']}"
        out[e["digest"]] = e
    return out


def check_entry(entry, art, artifact_type, annotations):
    assert entry.get("mediaType") == OCI_MANIFEST, entry
    assert entry.get("size") == art.size, f"size {entry.get('size')} != {art.size}"
    assert entry.get("artifactType") == artifact_type, f"artifactType {entry.get('artifactType')!r} != {artifact_type!r}"
    assert entry.get("annotations") == annotations, f"annotations {entry.get('annotations')} != {annotations}"


def test_push_artifact_with_subject_returns_oci_subject_header():
    c = client_a()
    repo = unique_repo("subject")
    img = push_image(c, repo, "v1")
    art = push_artifact(c, repo, img.manifest, SBOM, {"org.example.kind": "sbom"})
    r = expect_status(c.get(f"/v2/{repo}/manifests/{art.digest}", headers={"Accept": OCI_MANIFEST}), 200)
    assert r.body == art.data, "artifact manifest bytes changed"


def test_referrers_lists_artifacts_with_type_size_and_annotations():
    c = client_a()
    repo = unique_repo("referrers")
    img = push_image(c, repo, "v1")
    sbom_ann = {"org.example.kind": "sbom", "org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    sig_ann = {"org.example.kind": "signature"}
    sbom = push_artifact(c, repo, img.manifest, SBOM, sbom_ann)
    sig = push_artifact(c, repo, img.manifest, SIG, sig_ann)
    _, entries = referrers(c, repo, img.digest)
    found = by_digest(entries)
    assert set(found) == {sbom.digest, sig.digest}, f"referrers {sorted(found)}, expected {sbom.digest} and {sig.digest}"
    check_entry(found[sbom.digest], sbom, SBOM, sbom_ann)
    check_entry(found[sig.digest], sig, SIG, sig_ann)


def test_referrers_artifact_type_filter():
    c = client_a()
    repo = unique_repo("ref-filter")
    img = push_image(c, repo, "v1")
    sbom = push_artifact(c, repo, img.manifest, SBOM, {"k": "sbom"})
    push_artifact(c, repo, img.manifest, SIG, {"k": "sig"})
    r, entries = referrers(c, repo, img.digest, artifact_type=SBOM)
    assert [e["digest"] for e in entries] == [sbom.digest], f"filtered referrers: {entries}"
    check_entry(entries[0], sbom, SBOM, {"k": "sbom"})
    applied = ",".join(r.headers.get_all("OCI-Filters-Applied"))
    assert "artifactType" in [a.strip() for a in applied.split(",")], \
        f"OCI-Filters-Applied is {applied!r}, expected artifactType"
    r, entries = referrers(c, repo, img.digest, artifact_type="application/vnd.example.none")
    assert entries == [], f"filter matching nothing returned {entries}"


def test_referrers_of_manifest_without_referrers_is_empty_list():
    c = client_a()
    repo = unique_repo("ref-empty")
    img = push_image(c, repo, "v1")
    r, entries = referrers(c, repo, img.digest)
    assert entries == [], f"expected no referrers, got {entries}"
    assert r.header("OCI-Filters-Applied") in (None, ""), "no filter was requested"


def test_referrers_with_invalid_digest_is_400():
    c = client_a()
    repo = unique_repo("ref-bad")
    push_image(c, repo, "v1")
    for bad in ("sha256:xyz", "sha256:" + "a" * 63, "notadigest"):
        r = c.get(f"/v2/{repo}/referrers/{bad}")
        assert_oci_error(r, 400, "DIGEST_INVALID")


def test_referrer_artifact_type_defaults_to_config_media_type():
    c = client_a()
    repo = unique_repo("ref-config")
    img = push_image(c, repo, "v1")
    cfg_type = "application/vnd.example.config.v1+json"
    config = Content(b'{"tool":"pier-test"}', cfg_type)
    art = push_artifact(c, repo, img.manifest, None, {"k": "v"}, config=config)
    _, entries = referrers(c, repo, img.digest)
    found = by_digest(entries)
    assert art.digest in found, f"artifact missing from referrers: {entries}"
    check_entry(found[art.digest], art, cfg_type, {"k": "v"})


def test_referrer_pushed_before_its_subject():
    c = client_a()
    repo = unique_repo("ref-early")
    push_image(c, repo, "other")  # repository exists
    future = build_image("oci")
    art = push_artifact(c, repo, future.manifest, SBOM, {"k": "early"})
    _, entries = referrers(c, repo, future.digest)
    assert [e["digest"] for e in entries] == [art.digest], f"referrers of a not-yet-pushed subject: {entries}"
    # Now push the subject itself; the referrer is still listed.
    for blob in [future.config, *future.layers]:
        push_blob_monolithic(c, repo, blob.data)
    push_manifest(c, repo, "late", future.manifest)
    _, entries = referrers(c, repo, future.digest)
    assert [e["digest"] for e in entries] == [art.digest]


def test_deleting_referrer_removes_it_from_list():
    c = client_a()
    repo = unique_repo("ref-delete")
    img = push_image(c, repo, "v1")
    keep = push_artifact(c, repo, img.manifest, SBOM, {"k": "keep"})
    drop = push_artifact(c, repo, img.manifest, SIG, {"k": "drop"})
    expect_status(c.delete(f"/v2/{repo}/manifests/{drop.digest}"), 202, "DELETE referrer")
    _, entries = referrers(c, repo, img.digest)
    assert [e["digest"] for e in entries] == [keep.digest], f"referrers after delete: {entries}"
