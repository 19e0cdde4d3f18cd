#!/usr/bin/env python3
"""Write a garbage collection workload straight into a Pier blob root and a SQL script.

    gcdata.py --blob-root DIR --sql OUT.sql [--manifests M] [--garbage G]
              [--repos R] [--age-seconds A] [--label L]

Makes M image manifests in R repositories (gcbench/<label>/r<i>), each tagged, each
referencing its own config and two layers of its own plus two layers of a pool of M
shared ones: 4 M referenced blobs, 5 M references. Makes G more blobs linked in those
repositories that no manifest references: what a sweep collects. Every blob is a small
file of random bytes under blobs/sha256/<2 hex>/<hex>; every row (blobs,
repository_blobs, manifests, manifest_references, tags) is created A seconds ago. The
SQL script loads them with COPY in one transaction (psql -f); it prints nothing.
Standard library only; prints one JSON line of counts on stdout.
"""

import argparse
import hashlib
import json
import os
import sys

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blob-root", required=True)
    ap.add_argument("--sql", required=True)
    ap.add_argument("--manifests", type=int, default=0)
    ap.add_argument("--garbage", type=int, default=0)
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--age-seconds", type=int, default=7200)
    ap.add_argument("--label", default=os.urandom(4).hex())
    a = ap.parse_args()
    top = os.path.join(a.blob_root, "blobs", "sha256")
    made_dirs = set(os.listdir(top)) if os.path.isdir(top) else set()
    nbytes = 0

    def blob() -> tuple[str, int]:
        nonlocal nbytes
        data = os.urandom(64 + os.urandom(1)[0])
        hexd = hashlib.sha256(data).hexdigest()
        if hexd[:2] not in made_dirs:
            os.makedirs(os.path.join(top, hexd[:2]), mode=0o750, exist_ok=True)  # as Pier makes them
            made_dirs.add(hexd[:2])
        fd = os.open(os.path.join(top, hexd[:2], hexd), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        nbytes += len(data)
        return "sha256:" + hexd, len(data)

    repos = [f"gcbench/{a.label}/r{i}" for i in range(a.repos)]
    age = f"now() - interval '{a.age_seconds} seconds'"
    blobs: list[tuple[str, int]] = []
    links: list[tuple[str, str]] = []
    manifests: list[tuple[str, str, int, bytes]] = []
    refs: list[tuple[str, str, str, int]] = []
    tags: list[tuple[str, str, str]] = []
    shared = [blob() for _ in range(a.manifests)]
    blobs += shared
    shared_linked: set[tuple[str, str]] = set()
    for k in range(a.manifests):
        repo = repos[k % a.repos]
        config = blob()
        own = [blob(), blob()]
        blobs += [config, *own]
        pool = [shared[(k * 7) % a.manifests], shared[(k * 13 + 1) % a.manifests]]
        layers = own + [p for p in pool if p not in own]
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": config[0], "size": config[1]},
               "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers]}
        body = json.dumps(doc, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        manifests.append((repo, digest, len(body), body))
        tags.append((repo, f"t{k}", digest))
        children = {d: s for d, s in [config, *layers]}
        for d, s in children.items():
            refs.append((repo, digest, d, s))
            if (repo, d) not in shared_linked:
                shared_linked.add((repo, d))
                links.append((repo, d))
    for k in range(a.garbage):
        b = blob()
        blobs.append(b)
        links.append((repos[k % a.repos], b[0]))

    with open(a.sql, "w") as f:
        w = f.write
        w("\\set ON_ERROR_STOP 1\nBEGIN;\n")
        w("CREATE TEMP TABLE s_repos(name text) ON COMMIT DROP;\nCOPY s_repos FROM STDIN;\n")
        w("".join(f"{r}\n" for r in repos) + "\\.\n")
        w("INSERT INTO repositories(name, created_at) SELECT name, " + age +
          " FROM s_repos ON CONFLICT (name) DO NOTHING;\n")
        w("CREATE TEMP TABLE s_ids ON COMMIT DROP AS SELECT r.id, r.name FROM repositories r"
          " JOIN s_repos s ON s.name = r.name;\n")
        w("CREATE TEMP TABLE s_blobs(digest text, size bigint) ON COMMIT DROP;\nCOPY s_blobs FROM STDIN;\n")
        w("".join(f"{d}\t{s}\n" for d, s in blobs) + "\\.\n")
        w("INSERT INTO blobs(digest, size, created_at) SELECT digest, size, " + age + " FROM s_blobs;\n")
        w("CREATE TEMP TABLE s_links(repo text, digest text) ON COMMIT DROP;\nCOPY s_links FROM STDIN;\n")
        w("".join(f"{r}\t{d}\n" for r, d in links) + "\\.\n")
        w("INSERT INTO repository_blobs(repository_id, digest, created_at) SELECT i.id, l.digest, " + age +
          " FROM s_links l JOIN s_ids i ON i.name = l.repo;\n")
        if manifests:
            w("CREATE TEMP TABLE s_manifests(repo text, digest text, size bigint, body bytea) ON COMMIT DROP;\n"
              "COPY s_manifests FROM STDIN;\n")
            w("".join(f"{r}\t{d}\t{s}\t\\\\x{b.hex()}\n" for r, d, s, b in manifests) + "\\.\n")
            w("INSERT INTO manifests(repository_id, digest, media_type, size, body, created_at)"
              f" SELECT i.id, m.digest, '{OCI_MANIFEST}', m.size, m.body, " + age +
              " FROM s_manifests m JOIN s_ids i ON i.name = m.repo;\n")
            w("CREATE TEMP TABLE s_refs(repo text, manifest text, child text, size bigint) ON COMMIT DROP;\n"
              "COPY s_refs FROM STDIN;\n")
            w("".join(f"{r}\t{m}\t{c}\t{s}\n" for r, m, c, s in refs) + "\\.\n")
            w("INSERT INTO manifest_references(repository_id, manifest, child, child_kind, size)"
              " SELECT i.id, r.manifest, r.child, 'blob', r.size FROM s_refs r JOIN s_ids i ON i.name = r.repo;\n")
            w("CREATE TEMP TABLE s_tags(repo text, name text, digest text) ON COMMIT DROP;\n"
              "COPY s_tags FROM STDIN;\n")
            w("".join(f"{r}\t{n}\t{d}\n" for r, n, d in tags) + "\\.\n")
            w("INSERT INTO tags(repository_id, name, digest, updated_at) SELECT i.id, t.name, t.digest, " + age +
              " FROM s_tags t JOIN s_ids i ON i.name = t.repo;\n")
        w("COMMIT;\nANALYZE blobs;\nANALYZE repository_blobs;\nANALYZE manifests;\n"
          "ANALYZE manifest_references;\nANALYZE tags;\n")
    print(json.dumps({"blobs": len(blobs), "bytes": nbytes, "garbage": a.garbage, "manifests": len(manifests),
                      "references": len(refs), "links": len(links), "repositories": len(repos)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
