#!/usr/bin/env python3
"""A thundering herd of registry clients (standard library only).

    herd.py BASE_URL NAME TAG --digest MANIFEST_DIGEST [--clients 20]

Starts CLIENTS threads that wait on a barrier, then each, at the same moment:
GETs the manifest NAME:TAG (Accept: OCI image manifest), checks that the body
hashes to the Docker-Content-Digest it came with and to MANIFEST_DIGEST, then
GETs the config and every layer it names, one after the other, hashing each
body and comparing it with the digest and the size in the manifest. Every
request uses a fresh connection. With PIER_BENCH_BASIC=user:password in the
environment every request carries those Basic credentials.

Prints one JSON object on stdout:
  clients, requests, ok (requests whose status, size and digest were right),
  bad (descriptions of the others), seconds (barrier to last response),
  blobs (the digests in the manifest: config first), client_seconds (each
  client's total), cache (tally of X-Pier-Cache values, "-" when absent).
Exits 1 if any request was wrong.
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CHUNK = 1 << 20
_basic = os.environ.get("PIER_BENCH_BASIC", "")
AUTH = {"Authorization": "Basic " + base64.b64encode(_basic.encode()).decode()} if _basic else {}


def get(base, path, accept=None, timeout=300):
    """GET base+path; return (status, headers dict (lower-case keys), sha256 hex, size)."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        headers = dict(AUTH)
        if accept:
            headers["Accept"] = accept
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        h = hashlib.sha256()
        size = 0
        body = b""
        while True:
            b = resp.read(CHUNK)
            if not b:
                break
            h.update(b)
            size += len(b)
            if accept:  # a manifest: keep the bytes
                body += b
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, h.hexdigest(), size, body
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("name")
    ap.add_argument("tag")
    ap.add_argument("--digest", required=True, help="the manifest digest every client must get")
    ap.add_argument("--clients", type=int, default=20)
    a = ap.parse_args()

    lock = threading.Lock()
    results = {"requests": 0, "ok": 0, "bad": [], "cache": {}, "client_seconds": [None] * a.clients}
    blobs_seen = []
    barrier = threading.Barrier(a.clients + 1)

    def record(ok, what, cache):
        with lock:
            results["requests"] += 1
            results["cache"][cache] = results["cache"].get(cache, 0) + 1
            if ok:
                results["ok"] += 1
            else:
                results["bad"].append(what)

    def client(i):
        barrier.wait()
        t0 = time.monotonic()
        try:
            st, hd, hexd, size, body = get(a.base, f"/v2/{a.name}/manifests/{a.tag}", accept=OCI_MANIFEST)
            got = "sha256:" + hexd
            ok = st == 200 and got == a.digest and hd.get("docker-content-digest") == a.digest
            record(ok, f"client {i}: manifest status {st}, body {got}, header {hd.get('docker-content-digest')}",
                   hd.get("x-pier-cache", "-"))
            if not ok:
                return
            m = json.loads(body)
            descs = [m["config"]] + m["layers"]
            with lock:
                if not blobs_seen:
                    blobs_seen.extend(d["digest"] for d in descs)
            for d in descs:
                try:
                    st, hd, hexd, size, _ = get(a.base, f"/v2/{a.name}/blobs/{d['digest']}")
                except (OSError, http.client.HTTPException) as e:
                    record(False, f"client {i}: blob {d['digest']}: {e!r}", "error")
                    continue
                got = "sha256:" + hexd
                ok = st == 200 and got == d["digest"] and size == d["size"]
                record(ok, f"client {i}: blob {d['digest']}: status {st}, {size} of {d['size']} bytes, "
                           f"digest {got}", hd.get("x-pier-cache", "-"))
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            record(False, f"client {i}: {e!r}", "error")
        finally:
            results["client_seconds"][i] = round(time.monotonic() - t0, 3)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    results["seconds"] = round(time.monotonic() - t0, 3)
    results["clients"] = a.clients
    results["blobs"] = blobs_seen
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")
    return 0 if not results["bad"] and results["ok"] == results["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
