#!/usr/bin/env python3
"""Build a minimal OCI image layout for the benchmarks (standard library only).

    mkimage.py DIR --layer-mib N [N ...] [--tag bench] [--seed S]

DIR receives an OCI image layout (oci-layout, index.json, blobs/sha256/...)
holding one image: a config JSON, one uncompressed tar layer
(application/vnd.oci.image.layer.v1.tar) per N, each containing a single file
of N MiB of pseudo-random bytes, and an OCI image manifest tagged TAG. Every
run draws a fresh seed unless --seed is given, so two layers never share a
digest and no registry can skip the upload.

Prints one JSON object on stdout: the manifest, config and layer digests and
sizes ("layer" is the first layer, "layers" all of them, in order), so a shell
script can push the blobs itself.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import tarfile
import time

CHUNK = 1 << 20


def write_blob(root, data):
    """Store bytes as a content-addressed blob; return (digest, size)."""
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(root, "blobs", "sha256", hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd, len(data)


def write_layer(root, mib, seed, name="bench/random.bin"):
    """Stream a one-file tar into the blob directory, hashing as it goes."""
    rng = random.Random(seed)
    tmp = os.path.join(root, "blobs", "sha256", ".layer.tmp")
    size = mib * CHUNK
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = "root"
    h = hashlib.sha256()
    total = 0
    with open(tmp, "wb") as f:
        def out(b):
            nonlocal total
            h.update(b)
            f.write(b)
            total += len(b)

        out(info.tobuf(format=tarfile.USTAR_FORMAT))
        left = size
        while left:
            n = min(CHUNK, left)
            out(rng.randbytes(n))
            left -= n
        pad = (-size) % tarfile.BLOCKSIZE
        out(b"\0" * pad)
        out(b"\0" * (2 * tarfile.BLOCKSIZE))  # end-of-archive marker
        # uncompressed layers: diff_id == digest
    digest = "sha256:" + h.hexdigest()
    os.replace(tmp, os.path.join(root, "blobs", "sha256", h.hexdigest()))
    return digest, total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--layer-mib", type=int, nargs="+", required=True,
                    help="size of each layer in MiB (one layer per value)")
    ap.add_argument("--tag", default="bench")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(8), "big")

    root = a.dir
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    layers = []
    for i, mib in enumerate(a.layer_mib):
        # Layer i uses seed + i: distinct random streams, all from one seed.
        name = "bench/random.bin" if i == 0 else f"bench/random-{i}.bin"
        layers.append(write_layer(root, mib, seed + i, name))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
        "config": {"Labels": {"org.example.pier.bench.seed": str(seed)}},
        "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},
        "history": [{"created_by": "bench/mkimage.py"}],
    }
    config_digest, config_size = write_blob(
        root, json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": d,
            "size": n,
        } for d, n in layers],
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    manifest_digest, manifest_size = write_blob(root, manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": a.tag},
        }],
    }
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f, indent=2)

    json.dump({
        "manifest": {"digest": manifest_digest, "size": manifest_size},
        "config": {"digest": config_digest, "size": config_size},
        "layer": {"digest": layers[0][0], "size": layers[0][1]},
        "layers": [{"digest": d, "size": n} for d, n in layers],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
