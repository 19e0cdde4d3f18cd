"""Helpers shared by the Pier integration tests.

Python 3.11 standard library only, except the control-plane helpers at the
end (boto3, the aws CLIs), which import or look those up only when called.
Everything that needs the running registry reads its location from the
environment:

  PIER_URL        node A, e.g. http://127.0.0.1:5100
  PIER_URL_B      node B (same database and blob root as node A)
  PIER_BLOB_ROOT  blob root; blobs at blobs/sha256/<2 hex>/<64 hex>, temp files under tmp/
  PIER_DB         libpq conninfo used with psql
  PIER_STATE_DIR  node A state directory (run/pierd.pid, log/)

A missing variable raises PreconditionError (an AssertionError), so the
test that needed it fails instead of being skipped.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import base64
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import uuid

# ---------------------------------------------------------------------------
# media types

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

ALL_MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)

MIB = 1024 * 1024

# ---------------------------------------------------------------------------
# environment


class PreconditionError(AssertionError):
    """A precondition of a test is missing: the test fails (never skips)."""


def env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise PreconditionError(f"precondition missing: environment variable {name} is not set")
    return value


def url_a() -> str:
    return env("PIER_URL")


def url_b() -> str:
    return env("PIER_URL_B")


def blob_root() -> str:
    root = env("PIER_BLOB_ROOT")
    if not os.path.isabs(root):
        raise PreconditionError(f"precondition missing: PIER_BLOB_ROOT must be absolute, got {root!r}")
    if not os.path.isdir(root):
        raise PreconditionError(f"precondition missing: PIER_BLOB_ROOT {root!r} is not a directory")
    return root


def state_dir() -> str:
    d = env("PIER_STATE_DIR")
    if not os.path.isdir(d):
        raise PreconditionError(f"precondition missing: PIER_STATE_DIR {d!r} is not a directory")
    return d


RUN_ID = uuid.uuid4().hex[:8]


def unique_repo(label: str = "repo") -> str:
    """A repository name nobody else uses: it-<run>/<label>-<random>."""
    label = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "repo"
    return f"it-{RUN_ID}/{label}-{uuid.uuid4().hex[:8]}"


def unique_tag(label: str = "t") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------
# HTTP


class Headers:
    """Case-insensitive, multi-valued response headers."""

    def __init__(self, items):
        self._items = [(str(k), str(v)) for k, v in items]

    def get(self, name: str, default=None):
        lname = name.lower()
        for k, v in self._items:
            if k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self._items if k.lower() == lname]

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def items(self):
        return list(self._items)

    def __repr__(self):
        return "{" + ", ".join(f"{k}: {v}" for k, v in self._items) + "}"


class Response:
    def __init__(self, method: str, path: str, status: int, reason: str, headers: Headers, body: bytes):
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str, default=None):
        return self.headers.get(name, default)

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"{self.method} {self.path}: body is not JSON ({e}): {self.body[:200]!r}") from None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def summary(self) -> str:
        body = self.body[:300]
        more = "..." if len(self.body) > 300 else ""
        return f"{self.method} {self.path} -> {self.status} {self.reason} headers={self.headers!r} body={body!r}{more}"

    def __repr__(self):
        return f"<Response {self.summary()}>"


def location_path(value: str) -> str:
    """Path and query of a Location value, whether absolute or relative."""
    if value is None:
        raise AssertionError("no Location header")
    parts = urllib.parse.urlsplit(value)
    path = parts.path
    if parts.query:
        path += "?" + parts.query
    return path


def add_query(path: str, **params) -> str:
    """Append query parameters to a path that may already carry a query."""
    sep = "&" if "?" in path else "?"
    return path + sep + urllib.parse.urlencode(params)


def read_admin_env(path: str) -> tuple[str, str]:
    """The access key in an admin.env file pierd wrote when it bootstrapped its first administrator."""
    vals = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    vals[k] = v
    except OSError as e:
        raise PreconditionError(f"precondition missing: cannot read {path}: {e}") from None
    if "AWS_ACCESS_KEY_ID" not in vals or "AWS_SECRET_ACCESS_KEY" not in vals:
        raise PreconditionError(f"precondition missing: {path} lacks the access key")
    return vals["AWS_ACCESS_KEY_ID"], vals["AWS_SECRET_ACCESS_KEY"]


def admin_creds() -> tuple[str, str]:
    """The first administrator's access key, from the admin.env pierd wrote on first start."""
    return read_admin_env(env("PIER_ADMIN_ENV"))


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


_EXTRA_NETLOCS: set[str] = set()  # ExtraNode instances running now


def is_pier(netloc: str) -> bool:
    """Is host:port one of the Pier nodes under test (A, B, a node C on A's port + 2, or a
    running ExtraNode)?"""
    ours = {registry_host(url_a()), registry_host(url_b())} | _EXTRA_NETLOCS
    host, _, port = registry_host(url_a()).rpartition(":")
    ours.add(f"{host}:{int(port) + 2}")
    return netloc in ours


class Client:
    """A minimal HTTP/1.1 client on http.client: one connection per request.

    auth: "auto" (default) sends the administrator's Basic credentials to Pier nodes and
    nothing to other servers; None sends nothing (anonymous); a (user, password) pair sends
    those. An explicit Authorization header in a request always wins.
    """

    def __init__(self, base_url: str | None = None, timeout: float = 60.0, auth="auto"):
        base_url = base_url or url_a()
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise PreconditionError(f"precondition missing: registry URL must be http://host:port, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self.timeout = timeout
        if auth == "auto":
            auth = admin_creds() if is_pier(self.netloc) else None
        self.authorization = basic_auth(*auth) if auth else None

    def _target(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            path = location_path(path)
        if not path.startswith("/"):
            path = "/" + path
        return path

    def request(self, method: str, path: str, headers=None, body=None, timeout: float | None = None) -> Response:
        """Send one request.

        headers: a dict or a list of (name, value) pairs; a list may repeat a name.
        body: None, bytes, or an iterable of bytes (sent with chunked transfer encoding).
        """
        target = self._target(path)
        if headers is None:
            hdrs = []
        elif isinstance(headers, dict):
            hdrs = list(headers.items())
        else:
            hdrs = list(headers)
        names = {k.lower() for k, _ in hdrs}
        if self.authorization and "authorization" not in names:
            hdrs.append(("Authorization", self.authorization))
        chunked = False
        if body is None:
            if method in ("POST", "PUT", "PATCH") and "content-length" not in names and "transfer-encoding" not in names:
                hdrs.append(("Content-Length", "0"))
        elif isinstance(body, (bytes, bytearray, memoryview)):
            body = bytes(body)
            if "content-length" not in names:
                hdrs.append(("Content-Length", str(len(body))))
        else:
            chunked = True
            if "transfer-encoding" not in names:
                hdrs.append(("Transfer-Encoding", "chunked"))
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for k, v in hdrs:
                conn.putheader(k, v)
            send_error = None
            try:
                conn.endheaders(message_body=body, encode_chunked=chunked)
            except (BrokenPipeError, ConnectionResetError) as e:
                # The server may answer (e.g. 413) and close before the body is sent.
                send_error = e
            try:
                r = conn.getresponse()
                data = r.read()
            except (http.client.HTTPException, OSError) as e:
                if send_error is not None:
                    raise send_error from e
                raise
            return Response(method, target, r.status, r.reason, Headers(r.getheaders()), data)
        finally:
            conn.close()

    def get(self, path, headers=None, **kw):
        return self.request("GET", path, headers=headers, **kw)

    def head(self, path, headers=None, **kw):
        return self.request("HEAD", path, headers=headers, **kw)

    def delete(self, path, headers=None, **kw):
        return self.request("DELETE", path, headers=headers, **kw)

    def post(self, path, body=None, headers=None, **kw):
        return self.request("POST", path, headers=headers, body=body, **kw)

    def put(self, path, body=None, headers=None, **kw):
        return self.request("PUT", path, headers=headers, body=body, **kw)

    def patch(self, path, body=None, headers=None, **kw):
        return self.request("PATCH", path, headers=headers, body=body, **kw)


def client_a() -> Client:
    return Client(url_a())


def client_b() -> Client:
    return Client(url_b())


def registry_host(base_url: str | None = None) -> str:
    """host:port of a registry URL, as used in image references."""
    return urllib.parse.urlsplit(base_url or url_a()).netloc


# ---------------------------------------------------------------------------
# assertions


def expect_status(resp: Response, status, what: str = "") -> Response:
    allowed = status if isinstance(status, (tuple, list, set)) else (status,)
    if resp.status not in allowed:
        prefix = f"{what}: " if what else ""
        want = "/".join(str(s) for s in allowed)
        raise AssertionError(f"{prefix}expected {want}, got {resp.status}: {resp.summary()}")
    return resp


def expect_header(resp: Response, name: str, what: str = "") -> str:
    value = resp.header(name)
    if value is None or value == "":
        prefix = f"{what}: " if what else ""
        raise AssertionError(f"{prefix}missing header {name}: {resp.summary()}")
    return value


def oci_errors(resp: Response) -> list[dict]:
    """The errors list of an OCI error body (asserts the shape)."""
    try:
        doc = json.loads(resp.body)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {resp.summary()}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list) or not doc["errors"]:
        raise AssertionError(f'error body lacks a non-empty "errors" list: {resp.summary()}')
    for e in doc["errors"]:
        if not isinstance(e, dict) or not isinstance(e.get("code"), str) or not re.fullmatch(r"[A-Z_]+", e["code"]):
            raise AssertionError(f"malformed error entry {e!r}: {resp.summary()}")
    return doc["errors"]


def assert_oci_error(resp: Response, status, code, keywords=None) -> dict:
    """Check an OCI error response and return the matching error entry.

    status: an int or a tuple of acceptable ints.
    code: a code or a tuple of acceptable codes.
    keywords: if given, the message of the matching entry must contain one
    of these words (case-insensitive), i.e. it names the rule broken.
    """
    expect_status(resp, status)
    codes = (code,) if isinstance(code, str) else tuple(code)
    ctype = resp.header("Content-Type", "")
    if "json" not in ctype.lower():
        raise AssertionError(f"error response Content-Type is {ctype!r}, expected JSON: {resp.summary()}")
    errors = oci_errors(resp)
    for e in errors:
        if e["code"] in codes:
            msg = e.get("message")
            if not isinstance(msg, str) or not msg.strip():
                raise AssertionError(f"error {e['code']} has an empty message: {resp.summary()}")
            if keywords:
                low = msg.lower()
                if not any(k.lower() in low for k in keywords):
                    raise AssertionError(
                        f"error {e['code']} message {msg!r} does not name the rule (expected one of {list(keywords)})"
                    )
            return e
    got = [e["code"] for e in errors]
    raise AssertionError(f"expected error code {'/'.join(codes)}, got {got}: {resp.summary()}")


# ---------------------------------------------------------------------------
# digests

HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


def digest_hex(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    assert algo == "sha256" and HEX64.fullmatch(hexpart), f"not a sha256 digest: {digest!r}"
    return hexpart


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def blob_path(digest: str) -> str:
    hexpart = digest_hex(digest)
    return os.path.join(blob_root(), "blobs", "sha256", hexpart[:2], hexpart)


# ---------------------------------------------------------------------------
# blob uploads


def start_upload(client: Client, repo: str) -> tuple[Response, str]:
    """POST /v2/<repo>/blobs/uploads/ -> (response, upload location path)."""
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    expect_status(r, 202, f"start upload in {repo}")
    return r, location_path(expect_header(r, "Location", "upload POST"))


def push_blob_monolithic(client: Client, repo: str, data: bytes) -> str:
    """Single POST /v2/<repo>/blobs/uploads/?digest=<d> carrying the blob."""
    digest = sha256_digest(data)
    r = client.post(
        f"/v2/{repo}/blobs/uploads/?digest={digest}",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    expect_status(r, 201, f"monolithic POST of {digest} to {repo}")
    return digest


def push_blob_post_put(client: Client, repo: str, data: bytes) -> str:
    """POST to open a session, then PUT ?digest= with the whole blob."""
    digest = sha256_digest(data)
    _, loc = start_upload(client, repo)
    r = client.put(add_query(loc, digest=digest), body=data, headers={"Content-Type": "application/octet-stream"})
    expect_status(r, 201, f"PUT of {digest} to {repo}")
    return digest


def patch_chunk(client: Client, loc: str, chunk: bytes, start: int) -> Response:
    return client.patch(
        loc,
        body=chunk,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
            "Content-Length": str(len(chunk)),
        },
    )


def push_blob_chunked(client: Client, repo: str, data: bytes, chunk_size: int = 64 * 1024, clients=None) -> str:
    """POST, one PATCH per chunk (Content-Range), then an empty PUT ?digest=.

    clients: optional list of clients used in turn for the PATCH requests
    (e.g. node A and node B alternately).
    """
    digest = sha256_digest(data)
    _, loc = start_upload(client, repo)
    pool = clients or [client]
    offset = 0
    i = 0
    while offset < len(data):
        chunk = data[offset:offset + chunk_size]
        r = patch_chunk(pool[i % len(pool)], loc, chunk, offset)
        expect_status(r, 202, f"PATCH {offset}-{offset + len(chunk) - 1}")
        rng = r.header("Range")
        assert rng == f"0-{offset + len(chunk) - 1}", f"PATCH Range header {rng!r}, expected 0-{offset + len(chunk) - 1}"
        loc = location_path(expect_header(r, "Location", "PATCH"))
        offset += len(chunk)
        i += 1
    r = pool[i % len(pool)].put(add_query(loc, digest=digest))
    expect_status(r, 201, f"closing PUT of {digest}")
    return digest


push_blob = push_blob_monolithic


# ---------------------------------------------------------------------------
# content (blobs and manifests) and manifest builders


class Content:
    """Bytes with a media type: a blob, a config or a manifest."""

    def __init__(self, data: bytes, media_type: str, **info):
        self.data = data
        self.media_type = media_type
        self.digest = sha256_digest(data)
        self.size = len(data)
        self.info = info

    def descriptor(self, **extra) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        d.update({k: v for k, v in extra.items() if v is not None})
        return d

    def __repr__(self):
        return f"<Content {self.media_type} {self.digest} {self.size}B>"


def _json_bytes(doc) -> bytes:
    # Deliberately not canonical (indent 3, trailing newline): the registry
    # must store and serve the exact bytes it was given.
    return (json.dumps(doc, indent=3) + "\n").encode()


def _desc(x) -> dict:
    return x.descriptor() if isinstance(x, Content) else dict(x)


def make_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar with the given regular files (deterministic)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = 1700000000
                    tf.addfile(ti)
            ti = tarfile.TarInfo(name)
            ti.size = len(files[name])
            ti.mode = 0o644
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(files[name]))
    return buf.getvalue()


def make_layer(files: dict[str, bytes] | None = None, media_type: str = OCI_LAYER, level: int = 6) -> Content:
    """A real gzip'd tar layer; info['diff_id'] is the digest of the tar."""
    if files is None:
        files = {f"data/{uuid.uuid4().hex}.txt": os.urandom(64)}
    tar = make_tar(files)
    gz = gzip.compress(tar, compresslevel=level, mtime=0)
    return Content(gz, media_type, diff_id=sha256_digest(tar), tar_size=len(tar))


def random_layer(size: int = 1024, media_type: str = OCI_LAYER, nfiles: int = 3) -> Content:
    """A layer with a few files holding `size` random bytes in all."""
    size = max(size, nfiles)
    per = size // nfiles
    files = {}
    for i in range(nfiles):
        n = per if i < nfiles - 1 else size - per * (nfiles - 1)
        files[f"pier/file{i}-{uuid.uuid4().hex[:6]}.bin"] = os.urandom(n)
    files["etc/pier-release"] = f"pier test layer {uuid.uuid4()}\n".encode()
    return make_layer(files, media_type, level=1)


def make_config(layers, os_name: str = "linux", arch: str = "amd64", media_type: str = OCI_CONFIG,
                variant: str | None = None) -> Content:
    """A real image config whose rootfs.diff_ids match the layers."""
    diff_ids = [l.info["diff_id"] for l in layers]
    doc = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.example.pier-test": uuid.uuid4().hex},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"pier test layer {i}"}
                    for i in range(len(layers))],
    }
    if variant:
        doc["variant"] = variant
    return Content(_json_bytes(doc), media_type)


def oci_manifest(config, layers, annotations=None, subject=None, artifact_type=None) -> Content:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = _desc(config)
    doc["layers"] = [_desc(l) for l in layers]
    if subject is not None:
        doc["subject"] = _desc(subject)
    if annotations:
        doc["annotations"] = dict(annotations)
    return Content(_json_bytes(doc), OCI_MANIFEST)


def oci_index(manifests, annotations=None, subject=None, artifact_type=None) -> Content:
    """manifests: list of (Content or descriptor dict, platform dict or None)."""
    entries = []
    for m, platform in manifests:
        d = _desc(m)
        if platform:
            d["platform"] = dict(platform)
        entries.append(d)
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["manifests"] = entries
    if subject is not None:
        doc["subject"] = _desc(subject)
    if annotations:
        doc["annotations"] = dict(annotations)
    return Content(_json_bytes(doc), OCI_INDEX)


def docker_manifest(config, layers) -> Content:
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": _desc(config),
        "layers": [_desc(l) for l in layers],
    }
    return Content(_json_bytes(doc), DOCKER_MANIFEST)


def docker_manifest_list(manifests) -> Content:
    """manifests: list of (Content or descriptor dict, platform dict)."""
    entries = []
    for m, platform in manifests:
        d = _desc(m)
        d["platform"] = dict(platform)
        entries.append(d)
    doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}
    return Content(_json_bytes(doc), DOCKER_LIST)


EMPTY_CONFIG = Content(b"{}", OCI_EMPTY)


def artifact_manifest(subject, artifact_type: str | None, blobs=(), annotations=None, config=None) -> Content:
    """An OCI image manifest used as an artifact: artifactType + subject.

    config defaults to the OCI empty descriptor ({} as a blob).
    """
    return oci_manifest(config or EMPTY_CONFIG, list(blobs), annotations=annotations,
                        subject=subject, artifact_type=artifact_type)


# ---------------------------------------------------------------------------
# pushing whole images over HTTP


def put_manifest(client: Client, repo: str, ref: str, manifest: Content, content_type: str | None = None) -> Response:
    return client.put(f"/v2/{repo}/manifests/{ref}", body=manifest.data,
                      headers={"Content-Type": content_type or manifest.media_type})


def push_manifest(client: Client, repo: str, ref: str, manifest: Content) -> Response:
    r = put_manifest(client, repo, ref, manifest)
    expect_status(r, 201, f"PUT manifest {repo}:{ref}")
    got = r.header("Docker-Content-Digest")
    assert got == manifest.digest, f"Docker-Content-Digest {got!r} != {manifest.digest}"
    return r


class Image:
    def __init__(self, manifest: Content, config: Content, layers: list[Content]):
        self.manifest = manifest
        self.config = config
        self.layers = layers

    @property
    def digest(self):
        return self.manifest.digest


def build_image(kind: str = "oci", arch: str = "amd64", nlayers: int = 1, layer_size: int = 512) -> Image:
    """Build (not push) an image; kind is 'oci' or 'docker'."""
    layer_type = OCI_LAYER if kind == "oci" else DOCKER_LAYER
    config_type = OCI_CONFIG if kind == "oci" else DOCKER_CONFIG
    layers = [random_layer(layer_size, layer_type) for _ in range(nlayers)]
    config = make_config(layers, arch=arch, media_type=config_type)
    if kind == "oci":
        manifest = oci_manifest(config, layers)
    else:
        manifest = docker_manifest(config, layers)
    return Image(manifest, config, layers)


def push_image_blobs(client: Client, repo: str, image: Image) -> None:
    for blob in [image.config, *image.layers]:
        push_blob_monolithic(client, repo, blob.data)


def push_image(client: Client, repo: str, tag: str | None = None, kind: str = "oci", arch: str = "amd64",
               nlayers: int = 1, layer_size: int = 512) -> Image:
    """Push blobs and manifest; the manifest goes to `tag`, or by digest if tag is None."""
    image = build_image(kind, arch, nlayers, layer_size)
    push_image_blobs(client, repo, image)
    push_manifest(client, repo, tag or image.digest, image.manifest)
    return image


PLATFORMS = [{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]


def push_index(client: Client, repo: str, tag: str | None = None, kind: str = "oci"):
    """Push two platform images by digest and an index (OCI) or list (docker) over them.

    Returns (index Content, [child Image, ...]).
    """
    children = []
    for p in PLATFORMS:
        children.append(push_image(client, repo, None, kind=kind, arch=p["architecture"]))
    pairs = [(c.manifest, p) for c, p in zip(children, PLATFORMS)]
    index = oci_index(pairs) if kind == "oci" else docker_manifest_list(pairs)
    push_manifest(client, repo, tag or index.digest, index)
    return index, children


def manifest_kinds():
    """Names of the four manifest kinds, with their media types."""
    return [("oci-manifest", OCI_MANIFEST), ("oci-index", OCI_INDEX),
            ("docker-manifest", DOCKER_MANIFEST), ("docker-list", DOCKER_LIST)]


def build_and_push_prereqs(client: Client, repo: str, media_type: str) -> Content:
    """Push everything a manifest of `media_type` needs and return the manifest (not pushed)."""
    if media_type == OCI_MANIFEST:
        img = build_image("oci")
        push_image_blobs(client, repo, img)
        return img.manifest
    if media_type == DOCKER_MANIFEST:
        img = build_image("docker")
        push_image_blobs(client, repo, img)
        return img.manifest
    kind = "oci" if media_type == OCI_INDEX else "docker"
    children = [push_image(client, repo, None, kind=kind, arch=p["architecture"]) for p in PLATFORMS]
    pairs = [(c.manifest, p) for c, p in zip(children, PLATFORMS)]
    return oci_index(pairs) if kind == "oci" else docker_manifest_list(pairs)


# ---------------------------------------------------------------------------
# OCI image layouts on disk (for skopeo's oci: transport)


class OciLayout:
    """Writes an OCI image layout: oci-layout, index.json, blobs/sha256/."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.entries: list[dict] = []
        self._write_index()

    def add_blob(self, content: Content) -> Content:
        p = os.path.join(self.path, "blobs", "sha256", digest_hex(content.digest))
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(content.data)
        return content

    def tag(self, manifest: Content, tag: str) -> None:
        self.entries = [e for e in self.entries
                        if e.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        self.entries.append(manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag}))
        self._write_index()

    def _write_index(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(doc, f, indent=2)

    def add_image(self, layers: list[Content], arch: str = "amd64", os_name: str = "linux",
                  variant: str | None = None) -> Image:
        config = make_config(layers, os_name=os_name, arch=arch, variant=variant)
        for blob in [config, *layers]:
            self.add_blob(blob)
        manifest = oci_manifest(config, layers)
        self.add_blob(manifest)
        return Image(manifest, config, layers)


def build_image_layout(path: str, tag: str = "latest", layer_sizes=(2048, 64 * 1024, 512 * 1024),
                       arch: str = "amd64") -> Image:
    """A single-arch image with one layer per size (random content, real tar.gz)."""
    layout = OciLayout(path)
    layers = [random_layer(s) for s in layer_sizes]
    image = layout.add_image(layers, arch=arch)
    layout.tag(image.manifest, tag)
    return image


def build_multiarch_layout(path: str, tag: str = "latest", platforms=(("linux", "amd64"), ("linux", "arm64"))):
    """An OCI index over one image per platform. Returns (index Content, [Image...])."""
    layout = OciLayout(path)
    images = []
    pairs = []
    for os_name, arch in platforms:
        layers = [random_layer(4096), random_layer(16 * 1024)]
        img = layout.add_image(layers, arch=arch, os_name=os_name)
        images.append(img)
        pairs.append((img.manifest, {"os": os_name, "architecture": arch}))
    index = oci_index(pairs)
    layout.add_blob(index)
    layout.tag(index, tag)
    return index, images


def build_large_layout(path: str, tag: str = "latest", mib: int = 32) -> Image:
    """An image with one large layer of `mib` MiB of random (incompressible) data."""
    layout = OciLayout(path)
    big = make_layer({"pier/large.bin": os.urandom(mib * MIB)}, level=1)
    small = random_layer(1024)
    image = layout.add_image([small, big])
    layout.tag(image.manifest, tag)
    return image


def read_layout(path: str, tag: str | None = None) -> tuple[bytes, dict]:
    """(manifest bytes, descriptor) of the entry tagged `tag` (or the only entry)."""
    with open(os.path.join(path, "index.json")) as f:
        idx = json.load(f)
    entries = idx.get("manifests", [])
    if tag is not None:
        entries = [e for e in entries if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(entries) == 1, f"layout {path}: expected one entry for tag {tag!r}, found {entries}"
    desc = entries[0]
    return layout_blob(path, desc["digest"]), desc


def layout_blob(path: str, digest: str) -> bytes:
    with open(os.path.join(path, "blobs", "sha256", digest_hex(digest)), "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# external clients: skopeo and podman


def run(cmd: list[str], timeout: float = 300, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise PreconditionError(f"precondition missing: {cmd[0]} is not installed")
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"command timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().replace("\n", " | ")
        raise AssertionError(f"command failed ({p.returncode}): {' '.join(cmd)}: {err[-1500:]}")
    return p


def docker_ref(repo: str, ref: str, base_url: str | None = None) -> str:
    """docker://host:port/repo:tag or docker://host:port/repo@sha256:..."""
    sep = "@" if ":" in ref else ":"
    return f"docker://{registry_host(base_url)}/{repo}{sep}{ref}"


def image_ref(repo: str, ref: str, base_url: str | None = None) -> str:
    """host:port/repo:tag or host:port/repo@digest (for podman)."""
    sep = "@" if ":" in ref else ":"
    return f"{registry_host(base_url)}/{repo}{sep}{ref}"


def _pier_ref(ref: str) -> bool:
    return ref.startswith("docker://") and is_pier(ref[len("docker://"):].split("/", 1)[0])


def skopeo(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run skopeo, adding --src/--dest-tls-verify=false / --tls-verify=false where they apply,
    and the administrator's credentials for Pier nodes unless credentials are given."""
    args = list(args)
    cmd = ["skopeo", "--insecure-policy"]
    given = " ".join(a for a in args if a.startswith("--"))
    creds = None
    if args and args[0] == "copy":
        extra = []
        srcdst = [a for a in args[1:] if not a.startswith("-")]
        if len(srcdst) >= 1 and srcdst[0].startswith("docker://"):
            extra.append("--src-tls-verify=false")
            if _pier_ref(srcdst[0]) and "--src-creds" not in given and "--src-no-creds" not in given:
                creds = creds or ":".join(admin_creds())
                extra.append(f"--src-creds={creds}")
        if len(srcdst) >= 2 and srcdst[1].startswith("docker://"):
            extra.append("--dest-tls-verify=false")
            if _pier_ref(srcdst[1]) and "--dest-creds" not in given and "--dest-no-creds" not in given:
                creds = creds or ":".join(admin_creds())
                extra.append(f"--dest-creds={creds}")
        args = ["copy", *extra, *args[1:]]
    elif args and args[0] in ("inspect", "list-tags", "delete"):
        if any(a.startswith("docker://") for a in args[1:]):
            extra = ["--tls-verify=false"]
            if any(_pier_ref(a) for a in args[1:]) and "--creds" not in given and "--no-creds" not in given:
                extra.append("--creds=" + ":".join(admin_creds()))
            args = [args[0], *extra, *args[1:]]
    return run(cmd + args, timeout=timeout, check=check)


def skopeo_copy(src: str, dst: str, all_images: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    args = ["copy"]
    if all_images:
        args.append("--all")
    return skopeo(*args, src, dst, timeout=timeout)


def skopeo_inspect_raw(ref: str) -> bytes:
    return skopeo("inspect", "--raw", ref).stdout


class Podman:
    """podman with private storage (--root/--runroot/--tmpdir in a temp dir, vfs driver)."""

    def __init__(self):
        if shutil.which("podman") is None:
            raise PreconditionError("precondition missing: podman is not installed")
        self.base = tempfile.mkdtemp(prefix="pier-podman-")
        self.root = os.path.join(self.base, "root")
        self.runroot = os.path.join(self.base, "runroot")
        self.tmpdir = os.path.join(self.base, "tmp")
        for d in (self.root, self.runroot, self.tmpdir):
            os.makedirs(d)

    def __call__(self, *args: str, timeout: float = 300, check: bool = True,
                 input: bytes | None = None) -> subprocess.CompletedProcess:
        cmd = ["podman", "--root", self.root, "--runroot", self.runroot, "--tmpdir", self.tmpdir,
               "--storage-driver=vfs", "--events-backend=file", "--cgroup-manager=cgroupfs", *args]
        return run(cmd, timeout=timeout, check=check, input=input)

    def pull(self, ref: str, creds: str | None = "auto") -> subprocess.CompletedProcess:
        """Pull; "auto" logs in to Pier nodes as the administrator, None pulls anonymously."""
        extra = []
        if creds == "auto":
            creds = ":".join(admin_creds()) if is_pier(ref.split("/", 1)[0]) else None
        if creds:
            extra.append(f"--creds={creds}")
        return self("pull", "--tls-verify=false", *extra, ref)

    def inspect(self, ref: str) -> dict:
        out = self("image", "inspect", ref).stdout
        docs = json.loads(out)
        assert isinstance(docs, list) and docs, f"podman image inspect {ref}: unexpected output {out[:300]!r}"
        return docs[0]

    def close(self) -> None:
        # vfs layers are plain directories; best effort to let podman tidy up first.
        try:
            self("system", "reset", "--force", timeout=60, check=False)
        except AssertionError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class TempDir:
    """A temporary directory removed on exit."""

    def __init__(self, prefix: str = "pier-it-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def sub(self, name: str) -> str:
        return os.path.join(self.path, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------
# database and blob root


def psql(sql: str) -> list[list[str]]:
    """Run one SQL statement with psql "$PIER_DB" -XAtc and return rows as lists of strings."""
    db = env("PIER_DB")
    if shutil.which("psql") is None:
        raise PreconditionError("precondition missing: psql is not installed")
    p = subprocess.run(["psql", db, "-v", "ON_ERROR_STOP=1", "-XAtc", sql],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"psql failed ({p.returncode}) for {sql!r}: {p.stderr.strip()}")
    return [line.split("|") for line in p.stdout.splitlines() if line != ""]


def psql_value(sql: str) -> str | None:
    rows = psql(sql)
    return rows[0][0] if rows else None


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sql_digest_match(column: str, digest: str) -> str:
    """A WHERE fragment matching a digest column whether it stores 'sha256:<hex>' or '<hex>'."""
    hexpart = digest.split(":", 1)[-1]
    return f"({column}::text = {sql_str(digest)} OR {column}::text = {sql_str(hexpart)})"


COUNTED_TABLES = ("repositories", "blobs", "manifests", "tags")


def db_counts(tables=COUNTED_TABLES) -> dict[str, int]:
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables)
    return {row[0]: int(row[1]) for row in psql(sql)}


def blob_row_count(digest: str) -> int:
    return int(psql_value(f"SELECT count(*) FROM blobs WHERE {sql_digest_match('digest', digest)}"))


def manifest_row_count(digest: str) -> int:
    return int(psql_value(f"SELECT count(*) FROM manifests WHERE {sql_digest_match('digest', digest)}"))


def tag_row_count(repo: str, tag: str) -> int:
    return int(psql_value(
        "SELECT count(*) FROM tags t JOIN repositories r ON r.id = t.repository_id "
        f"WHERE r.name = {sql_str(repo)} AND t.name = {sql_str(tag)}"))


def repository_row_count(repo: str) -> int:
    return int(psql_value(f"SELECT count(*) FROM repositories WHERE name = {sql_str(repo)}"))


def _walk(top: str) -> set[str]:
    found = set()
    if not os.path.isdir(top):
        return found
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            found.add(os.path.relpath(os.path.join(dirpath, name), top))
    return found


def blob_files() -> set[str]:
    """Paths (relative to $PIER_BLOB_ROOT/blobs) of every file under blobs/."""
    return _walk(os.path.join(blob_root(), "blobs"))


def tmp_files() -> set[str]:
    """Paths (relative to $PIER_BLOB_ROOT/tmp) of every file under tmp/."""
    return _walk(os.path.join(blob_root(), "tmp"))


def files_for_digest(digest: str) -> list[str]:
    """Files under blobs/ whose name contains the digest's hex."""
    hexpart = digest_hex(digest)
    return sorted(p for p in blob_files() if hexpart in os.path.basename(p))


# ---------------------------------------------------------------------------
# processes (node A's master and its workers)


class ExtraNode:
    """A short-lived extra node of the same registry (same database, blob root and server
    key as node A), started with quickstart.sh and its own configuration overrides, e.g.

        with ExtraNode("strict", 3, PIER_UPSTREAM_ALLOW_HTTP_CREDENTIALS="false") as n:
            Client(n.url).get("/v2/")

    `offset` is added to node A's port; settings are PIER_<KEY> variables, which pierd
    reads over its configuration file, and may also replace quickstart's PIER_DATABASE and
    PIER_BLOB_ROOT (a node of another registry: it bootstraps its own administrator, see
    creds()). Stopped on exit, and also when it fails to start half-way; whatever of it is
    still alive then is killed; its state directory is kept for the logs."""

    def __init__(self, label: str, offset: int, **settings: str):
        self.state = os.path.join(env("PIER_TEST_DIR"), f"extra-{label}")
        self.port = int(env("PIER_URL").rsplit(":", 1)[1]) + offset
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, PIER_STATE_DIR=self.state, PIER_PORT=str(self.port),
                        PIER_DATABASE=env("PIER_DB"), PIER_BLOB_ROOT=env("PIER_BLOB_ROOT"),
                        PIER_SERVER_KEY_FILE=os.path.join(state_dir(), "server.key"))
        self.env.update(settings)  # may override the blob root or the database
        self.src = env("PIER_SRC")

    def quickstart(self, action: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """Run quickstart.sh <action> for this node."""
        return subprocess.run([os.path.join(self.src, "quickstart.sh"), action], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def __enter__(self):
        p = self.quickstart("start")
        if p.returncode != 0:
            self.stop()  # pierd may run although Apache did not start
            raise AssertionError(f"extra node {self.state} did not start: {p.stdout[-2000:]}\n{p.stderr[-2000:]}"
                                 f"\n{self.log()[-2000:]}")
        _EXTRA_NETLOCS.add(f"127.0.0.1:{self.port}")
        return self

    def stop(self) -> None:
        """quickstart.sh stop for this node (Apache, then pierd); harmless when stopped.
        What stop left (it should leave nothing) is killed: it must not hold the port."""
        self.quickstart("stop", timeout=120)
        self.kill_all()

    def __exit__(self, *exc):
        _EXTRA_NETLOCS.discard(f"127.0.0.1:{self.port}")
        self.stop()

    def creds(self) -> tuple[str, str]:
        """The access key of the administrator this node's first start wrote to its state
        directory (only a node with a database of its own bootstraps one)."""
        return read_admin_env(os.path.join(self.state, "admin.env"))

    def log(self) -> str:
        try:
            with open(os.path.join(self.state, "log", "pier.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pid(self, name: str) -> int | None:
        """The pid in run/<name>.pid (pierd, pierd-supervisor, httpd, apache-supervisor) if that
        process is alive, else None."""
        try:
            with open(os.path.join(self.state, "run", f"{name}.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def processes(self) -> dict[int, str]:
        """Every live process whose command line names a file of this node's state directory
        (pierd -c <state>/pier.conf, apache2 -f <state>/apache/httpd.conf, ...): pid -> command."""
        found = {}
        mark = self.state.rstrip("/") + "/"
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    args = f.read().decode(errors="replace").split("\0")
                with open(f"/proc/{d}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except OSError:
                continue
            if any(a.startswith(mark) for a in args):
                found[int(d)] = " ".join(a for a in args if a)
        return found

    def kill_all(self) -> None:
        """SIGKILL every process of this node (cleanup after a test that broke it)."""
        import signal
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def master_pid() -> int:
    pidfile = os.path.join(state_dir(), "run", "pierd.pid")
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError) as e:
        raise PreconditionError(f"precondition missing: cannot read master pid from {pidfile}: {e}") from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise PreconditionError(f"precondition missing: master pid {pid} from {pidfile} is not running") from None
    return pid


def child_pids(pid: int) -> list[int]:
    if shutil.which("pgrep") is None:
        raise PreconditionError("precondition missing: pgrep is not installed")
    p = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=10)
    return sorted(int(x) for x in p.stdout.split())


def wait_until(predicate, timeout: float, interval: float = 0.1):
    """Poll predicate() until it returns a truthy value or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


# ---------------------------------------------------------------------------
# the ECR-compatible control plane: AWS JSON 1.1 over POST /, signed with SigV4
#
# boto3/botocore and the aws command-line interfaces are not standard library:
# they are imported or looked up only when a control-plane test asks for them
# (a missing one is a PreconditionError). aws_cli(version=1) runs the aws CLI v1
# of this Python environment, aws_cli(version=2) Debian's aws CLI v2.

ACCOUNT_ID = "111122223333"
AWS_REGION = "us-east-1"
ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
SM_TARGET_PREFIX = "secretsmanager."
REGISTRY_ARN = f"arn:aws:ecr:{AWS_REGION}:{ACCOUNT_ID}:registry"
AMZ_JSON = "application/x-amz-json-1.1"


def ecr_repo_arn(name: str) -> str:
    return f"arn:aws:ecr:{AWS_REGION}:{ACCOUNT_ID}:repository/{name}"


def _need_module(name: str):
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise PreconditionError(f"precondition missing: Python module {name} ({e})") from None


_AWS_CLIENTS: dict = {}


def aws_client(service: str, creds: tuple[str, str] | None = None, base_url: str | None = None,
               validate: bool = True):
    """A boto3 client ("ecr" or "secretsmanager") for a Pier node, signed with creds (default: the
    first administrator). No retries; validate=False skips botocore's own parameter checks."""
    key_id, secret = creds or admin_creds()
    key = (service, key_id, secret, base_url or url_a(), validate)
    if key not in _AWS_CLIENTS:  # making a client costs 0.3-3 s: keep them
        boto3 = _need_module("boto3")
        from botocore.config import Config
        if not _AWS_CLIENTS.get("session"):
            _AWS_CLIENTS["session"] = boto3.session.Session()
        _AWS_CLIENTS[key] = _AWS_CLIENTS["session"].client(
            service, endpoint_url=base_url or url_a(), region_name=AWS_REGION,
            aws_access_key_id=key_id, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10,
                          read_timeout=120, parameter_validation=validate))
    return _AWS_CLIENTS[key]


def ecr_client(creds=None, base_url=None, validate: bool = True):
    return aws_client("ecr", creds, base_url, validate)


def secrets_client(creds=None, base_url=None, validate: bool = True):
    return aws_client("secretsmanager", creds, base_url, validate)


def api_error(call, *args, **kwargs) -> tuple[str, str, int]:
    """(code, message, HTTP status) of a boto3 call that must fail with a service error."""
    botocore_exceptions = _need_module("botocore.exceptions")
    try:
        out = call(*args, **kwargs)
    except botocore_exceptions.ClientError as e:
        err = e.response.get("Error", {})
        return err.get("Code", ""), err.get("Message", ""), e.response["ResponseMetadata"]["HTTPStatusCode"]
    name = getattr(call, "__name__", repr(call))
    if isinstance(out, dict):
        out = {k: v for k, v in out.items() if k != "ResponseMetadata"}
    raise AssertionError(f"{name}({kwargs}) succeeded, expected an error: {out!r}")


def expect_api_error(code: str, call, *args, status: int = 400, **kwargs) -> str:
    """The boto3 call fails with error code `code` and HTTP `status`; returns the message."""
    got, message, st = api_error(call, *args, **kwargs)
    name = getattr(call, "__name__", repr(call))
    assert got == code, f"{name}({kwargs}): expected {code}, got {got} ({st}): {message!r}"
    assert st == status, f"{name}({kwargs}): {code} came with HTTP {st}, expected {status}: {message!r}"
    assert message, f"{name}({kwargs}): {code} without a message"
    return message


def signed_api_request(op: str, body=None, creds: tuple[str, str] | None = None, base_url: str | None = None,
                       service: str = "ecr", signing_service: str | None = None, when=None,
                       tamper=None, headers=None) -> Response:
    """POST / with X-Amz-Target <service's prefix><op>, signed with SigV4 by botocore.

    body: a dict (sent as JSON) or bytes. when: a datetime (UTC) to sign at instead of now.
    tamper(body bytes, headers dict) -> (body, headers) changes the request after signing.
    """
    _need_module("botocore")
    import datetime
    from unittest import mock
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    base_url = (base_url or url_a()).rstrip("/")
    data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body if body is not None else {}).encode()
    prefix = ECR_TARGET_PREFIX if service == "ecr" else SM_TARGET_PREFIX
    hdrs = {"X-Amz-Target": prefix + op, "Content-Type": AMZ_JSON}
    hdrs.update(headers or {})
    req = botocore.awsrequest.AWSRequest("POST", base_url + "/", data=bytes(data), headers=hdrs)
    key_id, secret = creds or admin_creds()
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, secret),
                                     signing_service or service, AWS_REGION)
    if when is None:
        signer.add_auth(req)
    else:
        frozen = when.astimezone(datetime.timezone.utc).replace(tzinfo=None) if when.tzinfo else when
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: frozen):
            signer.add_auth(req)
    out_headers = {k: v for k, v in req.headers.items()}
    out_body = bytes(data)
    if tamper is not None:
        out_body, out_headers = tamper(out_body, out_headers)
    return Client(base_url, auth=None).post("/", body=out_body, headers=out_headers)


def unsigned_api_request(op: str, body=None, base_url: str | None = None, service: str = "ecr",
                         headers=None) -> Response:
    prefix = ECR_TARGET_PREFIX if service == "ecr" else SM_TARGET_PREFIX
    hdrs = {"X-Amz-Target": prefix + op, "Content-Type": AMZ_JSON}
    hdrs.update(headers or {})
    data = json.dumps(body if body is not None else {}).encode()
    return Client(base_url or url_a(), auth=None).post("/", body=data, headers=hdrs)


def api_error_body(r: Response, code: str, status: int = 400) -> str:
    """r is an AWS JSON error: HTTP status, {"__type": code, "message": ...}; returns the message."""
    assert r.status == status, f"expected HTTP {status} with {code}: {r.summary()}"
    doc = r.json()
    assert isinstance(doc, dict), r.summary()
    got = doc.get("__type", "")
    assert got.rsplit("#", 1)[-1] == code, f"expected __type {code}: {r.summary()}"
    msg = doc.get("message", doc.get("Message"))
    assert isinstance(msg, str) and msg, f"{code} without a message: {r.summary()}"
    return msg


_AWS_CLI_CONFIG: list[str] = []
_AWS_CLI_PATHS: dict[int, str] = {}


def _cli_version(path: str) -> str:
    try:
        p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                           env=_aws_env(None))
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (p.stdout + p.stderr).strip()


def aws_cli_path(version: int = 1) -> str:
    """The aws CLI of the given major version: v1 from this Python environment (sys.prefix/bin,
    then PATH), v2 from /usr/bin/aws (then PATH). Checked with --version."""
    import sys
    if version in _AWS_CLI_PATHS:
        return _AWS_CLI_PATHS[version]
    candidates = [os.path.join(sys.prefix, "bin", "aws")] if version == 1 else ["/usr/bin/aws"]
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if d:
            candidates.append(os.path.join(d, "aws"))
    seen = set()
    for c in candidates:
        real = os.path.realpath(c)
        if real in seen or not os.access(c, os.X_OK) or os.path.isdir(c):
            continue
        seen.add(real)
        if _cli_version(c).startswith(f"aws-cli/{version}."):
            _AWS_CLI_PATHS[version] = c
            return c
    raise PreconditionError(f"precondition missing: no aws CLI v{version} found (looked at {candidates})")


def _aws_env(creds: tuple[str, str] | None) -> dict:
    if not _AWS_CLI_CONFIG:
        import atexit
        d = tempfile.mkdtemp(prefix="pier-awscli-")
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, "config")
        with open(path, "w") as f:
            # v1 would otherwise fetch http:// parameter values (--upstream-registry-url) itself.
            f.write("[default]\ncli_follow_urlparam = false\n")
        _AWS_CLI_CONFIG.append(path)
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(AWS_CONFIG_FILE=_AWS_CLI_CONFIG[0], AWS_SHARED_CREDENTIALS_FILE=_AWS_CLI_CONFIG[0] + ".none",
             AWS_DEFAULT_REGION=AWS_REGION, AWS_PAGER="", AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard",
             AWS_EC2_METADATA_DISABLED="true")
    if creds:
        e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"] = creds
    return e


def aws_cli(*args: str, creds: tuple[str, str] | None = None, base_url: str | None = None, version: int = 1,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """aws <args> --endpoint-url <node> --output json, as creds (default: the first administrator)."""
    cmd = [aws_cli_path(version), *args, "--endpoint-url", base_url or url_a(), "--output", "json"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=_aws_env(creds or admin_creds()))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"aws CLI timed out after {timeout}s: {' '.join(args)}") from e
    if check and p.returncode != 0:
        raise AssertionError(f"aws v{version} {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-1500:]}")
    return p


def aws_json(*args: str, **kw):
    """aws_cli(...) and its standard output parsed as JSON ({} when empty)."""
    p = aws_cli(*args, **kw)
    out = p.stdout.strip()
    if not out:
        return {}
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError(f"aws {' '.join(args)} printed no JSON: {out[:500]!r}") from None


def aws_cli_error(p: subprocess.CompletedProcess) -> tuple[str, str]:
    """(code, message) of a failed aws CLI run: "An error occurred (Code) when calling ...: message"."""
    assert p.returncode != 0, f"the aws CLI succeeded: {p.stdout[-500:]!r}"
    m = re.search(r"An error occurred \(([^)]+)\) when calling the \w+ operation(?: \([^)]*\))?: (.*)", p.stderr)
    assert m, f"the aws CLI failed without a service error ({p.returncode}): {p.stderr.strip()[-800:]}"
    return m.group(1), m.group(2).strip()


def iam_policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def iam_statement(actions, resources="*", effect: str = "Allow", sid: str | None = None, principal=None) -> dict:
    st: dict = {}
    if sid:
        st["Sid"] = sid
    st["Effect"] = effect
    if principal is not None:
        st["Principal"] = principal
    st["Action"] = actions if isinstance(actions, str) else list(actions)
    st["Resource"] = resources if isinstance(resources, str) else list(resources)
    return st


class SavedRegistryPolicy:
    """Remembers the registry policy (pierctl policy registry get) and puts it back, or deletes
    it when there was none, on exit; sleeps out the workers' 1 s policy cache afterwards."""

    def __enter__(self):
        from upstreams import pierctl
        p = pierctl("policy", "registry", "get")
        self.previous = p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None
        return self

    def __exit__(self, *exc):
        from upstreams import pierctl
        if self.previous is not None:
            pierctl("policy", "registry", "put", "-", input=self.previous)
        else:
            pierctl("policy", "registry", "delete")
        time.sleep(1.5)


def aws_login(podman: "Podman", creds: tuple[str, str], authfile: str, version: int = 1,
              base_url: str | None = None) -> str:
    """aws ecr get-login-password | podman login -u AWS --password-stdin <node>; returns the password."""
    password = aws_cli("ecr", "get-login-password", creds=creds, version=version, base_url=base_url).stdout.strip()
    assert password and "\n" not in password, f"get-login-password printed {password!r}"
    host = registry_host(base_url)
    p = podman("login", "--tls-verify=false", "--authfile", authfile, "-u", "AWS", "--password-stdin", host,
               input=(password + "\n").encode(), check=False)
    assert p.returncode == 0, f"podman login to {host} with the ECR password failed: {p.stderr.decode(errors='replace')}"
    return password


_MODELS: dict = {}


def service_model(service: str = "ecr"):
    """The installed botocore's model of service (what boto3 and the aws CLI v1 speak)."""
    if service not in _MODELS:
        session = _need_module("botocore.session")
        _MODELS[service] = session.get_session().get_service_model(service)
    return _MODELS[service]


def assert_model_shape(op: str, doc, service: str = "ecr") -> list[tuple[str, object]]:
    """doc, the raw JSON answer of op, holds only what the output shape of op in the installed
    botocore model names (and Pier's extension members, named pier*), every member of its type: strings of an enum among the enum's values,
    numbers for timestamps, lists and structures member by member, required members present.
    Returns the timestamps found as (path, raw JSON value)."""
    model = service_model(service)
    shape = model.operation_model(op).output_shape
    problems: list[str] = []
    times: list[tuple[str, object]] = []

    def check(s, v, path):
        t = s.type_name
        if t == "structure":
            if not isinstance(v, dict):
                problems.append(f"{path}: {type(v).__name__}, the model says structure {s.name}")
                return
            for k, sub in v.items():
                if k.startswith("pier") and k not in s.members:
                    continue  # Pier's documented extension members; SDKs ignore them
                if k not in s.members:
                    problems.append(f"{path}.{k}: not a member of {s.name} in the model")
                else:
                    check(s.members[k], sub, f"{path}.{k}")
            for k in getattr(s, "required_members", []) or []:
                if k not in v:
                    problems.append(f"{path}.{k}: required by {s.name} but missing")
        elif t == "list":
            if not isinstance(v, list):
                problems.append(f"{path}: {type(v).__name__}, the model says list {s.name}")
                return
            for i, sub in enumerate(v):
                check(s.member, sub, f"{path}[{i}]")
        elif t == "map":
            if not isinstance(v, dict):
                problems.append(f"{path}: {type(v).__name__}, the model says map {s.name}")
                return
            for k, sub in v.items():
                check(s.value, sub, f"{path}[{k!r}]")
        elif t == "string":
            if not isinstance(v, str):
                problems.append(f"{path}: {v!r} is not a string ({s.name})")
            elif s.enum and v not in s.enum:
                problems.append(f"{path}: {v!r} is not one of {s.name}'s values {s.enum}")
        elif t in ("integer", "long"):
            if not isinstance(v, int) or isinstance(v, bool):
                problems.append(f"{path}: {v!r} is not an integer ({s.name})")
        elif t in ("float", "double"):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                problems.append(f"{path}: {v!r} is not a number ({s.name})")
        elif t == "boolean":
            if not isinstance(v, bool):
                problems.append(f"{path}: {v!r} is not a boolean ({s.name})")
        elif t == "timestamp":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                problems.append(f"{path}: {v!r} is not epoch seconds ({s.name})")
            times.append((path, v))
        elif t == "blob":
            if not isinstance(v, str):
                problems.append(f"{path}: {v!r} is not base64 text ({s.name})")

    if shape is not None:
        check(shape, doc, op)
    assert not problems, f"{op}: the answer does not match the botocore model:\n  " + "\n  ".join(problems)
    return times


def api_call(op: str, body=None, service: str = "ecr", **kw):
    """A signed call that must succeed; its raw JSON answer, checked with assert_model_shape."""
    r = signed_api_request(op, body, service=service, **kw)
    assert r.status == 200, f"{op}: {r.summary()}"
    doc = r.json()
    assert_model_shape(op, doc, service)
    return doc


def drop_repositories(*names: str) -> None:
    """Delete repositories with everything in them, if they exist (test cleanup)."""
    for name in names:
        try:
            ecr_client().delete_repository(repositoryName=name, force=True)
        except Exception:  # noqa: BLE001 - cleanup
            pass
