"""The production TLS site (apache/pier-ssl.conf.in) with real clients.

Each test makes a throwaway CA and a server certificate for 127.0.0.1 and
localhost with openssl, starts a node of the registry (ExtraNode: same
database, blob root and server key as node A) and, in front of its socket, an
Apache with mod_ssl running the example site as it is shipped, only its
placeholders filled in: the HTTPS host on node A's port + 13, the redirecting
plain-HTTP host on + 14 (the node's own plain Apache is on + 12). The node's
registry_host names the HTTPS address and public_url is unset, so the scheme in
the login challenge comes from the HTTPS variable mod_ssl sets.

Clients trust the CA only when told to (skopeo and podman --cert-dir, the aws
CLIs --ca-bundle) and must fail without it; old protocols and weak suites are
refused in the handshake; plain HTTP only redirects; HSTS is sent; the
console's session cookie is Secure over HTTPS and not over plain HTTP."""

from __future__ import annotations

import base64
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time

from pierlib import (
    Client, ExtraNode, Headers, Podman, PreconditionError, Response, TempDir, admin_creds, aws_cli, aws_json,
    build_image_layout, unique_repo, url_a,
)

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = "/usr/lib/apache2/modules"

_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """preexec_fn: Apache gets SIGTERM when the test process dies (PR_SET_PDEATHSIG)."""
    _LIBC.prctl(1, signal.SIGTERM)


def _openssl(*args: str, cwd: str) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"openssl {' '.join(args)} failed: {p.stderr[-800:]}"


def make_test_ca(d: str) -> None:
    """ca.crt/ca.key (a CA) and server.crt/server.key (signed by it, SAN 127.0.0.1 and localhost) in d."""
    if shutil.which("openssl") is None:
        raise PreconditionError("precondition missing: openssl is not installed")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=Pier test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "server.ext", cwd=d)
    os.chmod(os.path.join(d, "server.key"), 0o600)


def render(template: str, values: dict[str, str]) -> str:
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", v)
    left = re.findall(r"@PIER_[A-Z_]+@", text)
    assert not left, f"{template}: placeholders left unreplaced: {left}"
    return text


class TlsSite:
    """An ExtraNode and, in front of its socket, Apache running apache/pier-ssl.conf.in."""

    def __init__(self, label: str):
        base = int(url_a().rsplit(":", 1)[1])
        self.https_port, self.http_port = base + 13, base + 14
        self.https_url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.host = f"127.0.0.1:{self.https_port}"
        self.node = ExtraNode(label, 12, PIER_REGISTRY_HOST=self.host)
        self.dir = os.path.join(self.node.state, "tls")
        self.ca = os.path.join(self.dir, "ca.crt")
        self.cert_dir = os.path.join(self.dir, "certs.d")  # what --cert-dir gets: only ca.crt
        self.proc = None

    def __enter__(self):
        self.node.__enter__()
        try:
            self._start_apache()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_apache(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.cert_dir)
        os.chmod(self.dir, 0o755)
        make_test_ca(self.dir)
        shutil.copy(self.ca, os.path.join(self.cert_dir, "ca.crt"))
        site = render(os.path.join(SRC, "apache", "pier-ssl.conf.in"), {
            "PIER_SERVER_NAME": "127.0.0.1",
            "PIER_PUBLIC_URL": self.https_url,
            "PIER_HTTPS_PORT": str(self.https_port),
            "PIER_HTTP_PORT": str(self.http_port),
            "PIER_TLS_CERT": os.path.join(self.dir, "server.crt"),
            "PIER_TLS_KEY": os.path.join(self.dir, "server.key"),
            "PIER_CONF": os.path.join(self.node.state, "apache", "pier.conf"),  # the node's, as quickstart rendered it
            "PIER_HTDOCS": os.path.join(SRC, "htdocs"),
        })
        with open(os.path.join(self.dir, "pier-ssl.conf"), "w") as f:
            f.write(site)
        # Server-level settings a Debian Apache has in apache2.conf, ports.conf and
        # mods-enabled/: modules (those of the node's own Apache, plus mod_ssl), ports.
        with open(os.path.join(self.node.state, "apache", "httpd.conf")) as f:
            modules = [line for line in f.read().splitlines() if line.startswith("LoadModule ")]
        modules += [f"LoadModule ssl_module {MODULES}/mod_ssl.so",
                    f"LoadModule socache_shmcb_module {MODULES}/mod_socache_shmcb.so"]
        user = "User www-data\nGroup www-data\n" if os.getuid() == 0 else ""
        d = self.dir
        conf = f"""ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:{self.https_port}
Listen 127.0.0.1:{self.http_port}
PidFile "{d}/httpd.pid"
DefaultRuntimeDir "{d}"
Mutex file:{d} default
{user}{chr(10).join(modules)}
SSLSessionCache "shmcb:{d}/ssl_scache(512000)"
TypesConfig /etc/mime.types
ErrorLog "{d}/error.log"
LogLevel warn
LogFormat "%h %t \\"%r\\" %>s %{{SSL_PROTOCOL}}x %{{SSL_CIPHER}}x" tls
CustomLog "{d}/access.log" tls
<Directory />
    Require all denied
    AllowOverride None
</Directory>
Include "{d}/pier-ssl.conf"
"""
        self.conf = os.path.join(d, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        p = subprocess.run(["apache2", "-f", self.conf, "-t"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"Apache rejects the TLS site: {p.stderr[-1500:]}"
        out = open(os.path.join(d, "apache.out"), "wb")
        self.proc = subprocess.Popen(["apache2", "-f", self.conf, "-DFOREGROUND"], stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        out.close()
        deadline = time.monotonic() + 15
        while True:
            assert self.proc.poll() is None, f"Apache exited ({self.proc.returncode}): {self.error_log()}"
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"Apache does not listen on {self.https_port}: {self.error_log()}"
                time.sleep(0.1)

    def error_log(self) -> str:
        text = ""
        for name in ("apache.out", "error.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()[-1500:]
            except OSError:
                pass
        return text

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # graceful stop of the parent and its children
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.node.__exit__(*exc)  # also kills whatever still names a file of its state directory

    def request(self, method: str, path: str, headers=None, body=None, ca: str | None = "test") -> Response:
        """One HTTPS request to the site, trusting the test CA (ca="test") or the system's CAs (None)."""
        ctx = ssl.create_default_context(cafile=self.ca if ca == "test" else None)
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=30, context=ctx)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(method, path, r.status, r.reason, Headers(r.getheaders()), r.read())
        finally:
            conn.close()

    def s_client(self, *args: str) -> subprocess.CompletedProcess:
        """openssl s_client to the HTTPS port: a handshake, then EOF on stdin closes it."""
        return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.https_port}",
                               "-servername", "localhost", "-CAfile", self.ca, *args],
                              input="", capture_output=True, text=True, timeout=30)


def handshake(p: subprocess.CompletedProcess) -> str | None:
    """'TLSv1.3 TLS_AES_256_GCM_SHA384' when s_client completed a handshake, else None."""
    m = re.search(r"^(?:New|Reused), (TLSv[\d.]+|SSLv3), Cipher is (\S+)", p.stdout, re.M)
    if not m or m.group(2) == "(NONE)":
        return None
    return f"{m.group(1)} {m.group(2)}"


def cookie_attrs(r: Response) -> list[str]:
    set_cookie = r.header("Set-Cookie")
    assert set_cookie, f"no Set-Cookie: {r.summary()}"
    return [a.strip().lower() for a in set_cookie.split(";")]


def console_login(send) -> Response:
    body = json.dumps(dict(zip(("accessKeyId", "secretAccessKey"), admin_creds()))).encode()
    return send("POST", "/console/api/login", {"Content-Type": "application/json"}, body)


UNKNOWN_CA = ("certificate signed by unknown authority", "certificate verify failed", "CERTIFICATE_VERIFY_FAILED")


def assert_unknown_ca(p: subprocess.CompletedProcess, what: str) -> None:
    err = p.stderr.decode(errors="replace") if isinstance(p.stderr, bytes) else p.stderr
    assert p.returncode != 0, f"{what} succeeded without the test CA"
    assert any(s in err for s in UNKNOWN_CA), f"{what} failed, but not for the unknown CA: {err[-800:]}"


def test_tls_site_refuses_old_protocols_redirects_http_and_marks_the_session_cookie_secure():
    with TlsSite("tls-site") as site:
        # TLS 1.2 and 1.3 with the test CA; the client allows everything (SECLEVEL=0), so a
        # refusal below is the server's.
        weak = ("-cipher", "ALL:@SECLEVEL=0")
        for proto in ("-tls1_2", "-tls1_3"):
            p = site.s_client(proto, *weak)
            hs = handshake(p)
            assert hs and "Verify return code: 0 (ok)" in p.stdout, f"{proto}: no verified handshake: {p.stdout[-1500:]}"
        assert handshake(site.s_client("-tls1_2")).split()[1].startswith("ECDHE-"), "TLS 1.2 suite is not forward-secret"
        for proto in ("-tls1", "-tls1_1"):
            p = site.s_client(proto, *weak)
            assert handshake(p) is None and p.returncode != 0, f"{proto} was accepted: {handshake(p)}"
        # TLS 1.2 suites without forward secrecy or with CBC are refused too.
        for cipher in ("AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA", "AES256-SHA256"):
            p = site.s_client("-tls1_2", "-cipher", cipher + ":@SECLEVEL=0")
            assert handshake(p) is None, f"TLS 1.2 suite {cipher} was accepted: {handshake(p)}"

        # HSTS on every HTTPS answer: a registry 401, the console page, a console error.
        for path in ("/v2/", "/console/", "/console/api/session"):
            r = site.request("GET", path)
            hsts = r.header("Strict-Transport-Security", "")
            assert re.fullmatch(r"max-age=(\d+)", hsts) and int(hsts.split("=")[1]) >= 31536000, \
                f"HSTS on {path}: {r.summary()}"
        # Without the test CA the system's trust store refuses the certificate.
        try:
            site.request("GET", "/v2/", ca=None)
            raise AssertionError("an HTTPS request succeeded without trusting the test CA")
        except ssl.SSLCertVerificationError:
            pass

        # The login challenge sends clients to the token service over HTTPS: the scheme
        # comes from mod_ssl's HTTPS=on (public_url is unset), the host from registry_host.
        r = site.request("GET", "/v2/")
        assert r.status == 401, r.summary()
        assert r.header("WWW-Authenticate", "").startswith(f'Bearer realm="{site.https_url}/token"'), r.summary()
        plain = Client(site.node.url, auth=None).get("/v2/")
        assert plain.header("WWW-Authenticate", "").startswith(f'Bearer realm="http://{site.host}/token"'), \
            f"the same node over plain HTTP: {plain.summary()}"
        r = site.request("GET", "/token?service=pier&scope=repository:x/y:pull",
                         {"Authorization": "Basic " + base64.b64encode(":".join(admin_creds()).encode()).decode()})
        assert r.status == 200 and r.json().get("token"), r.summary()

        # Plain HTTP only redirects, with the path and query, to the HTTPS site; nothing reaches pierd.
        http_site = Client(site.http_url, auth=None)
        for method, path in (("GET", "/v2/"), ("GET", "/v2/library/x/tags/list?n=2"), ("POST", "/"),
                             ("GET", "/console/")):
            r = http_site.request(method, path, body=b"{}" if method == "POST" else None)
            assert r.status == 301 and r.header("Location") == site.https_url + path, r.summary()
            assert "WWW-Authenticate" not in r.headers and b"__type" not in r.body, r.summary()

        # The console's session cookie is Secure over HTTPS, and not on the same node over
        # plain HTTP (a browser drops a Secure cookie set over http).
        r = console_login(site.request)
        assert r.status == 200, r.summary()
        attrs = cookie_attrs(r)
        assert "secure" in attrs and "httponly" in attrs and "samesite=strict" in attrs, attrs
        cookie, csrf = r.header("Set-Cookie").split(";", 1)[0], r.json()["csrfToken"]
        r = site.request("POST", "/console/api/logout", {"Cookie": cookie, "X-CSRF-Token": csrf,
                                                         "Content-Type": "application/json"}, b"{}")
        assert r.status == 200 and {"secure", "max-age=0"} <= set(cookie_attrs(r)), r.summary()
        plain = Client(site.node.url, auth=None)
        r = console_login(lambda m, p, h, b: plain.request(m, p, headers=h, body=b))
        assert r.status == 200, r.summary()
        assert "secure" not in cookie_attrs(r), f"Secure cookie over plain HTTP: {cookie_attrs(r)}"

        # Apache logged the protocols it spoke: nothing older than TLS 1.2.
        with open(os.path.join(site.dir, "access.log")) as f:
            protos = set(re.findall(r" (TLSv[\d.]+|SSLv3|-) ", f.read()))
        assert protos and protos <= {"TLSv1.2", "TLSv1.3", "-"}, protos


def test_tls_skopeo_and_podman_push_and_pull_with_cert_dir():
    repo = unique_repo("tls")
    creds = ":".join(admin_creds())
    with TlsSite("tls-clients") as site, TempDir() as tmp, Podman() as podman:
        image = build_image_layout(tmp.sub("layout"), layer_sizes=(2048, 128 * 1024))
        dest = f"docker://{site.host}/{repo}:v1"
        base = ["skopeo", "--insecure-policy"]
        # Without the CA: refused before any credential is sent.
        p = subprocess.run(base + ["copy", f"--dest-creds={creds}", f"oci:{tmp.sub('layout')}:latest", dest],
                           capture_output=True, text=True, timeout=120)
        assert_unknown_ca(p, "skopeo copy")
        p = subprocess.run(base + ["copy", "--dest-cert-dir", site.cert_dir, f"--dest-creds={creds}",
                                   f"oci:{tmp.sub('layout')}:latest", dest],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"skopeo copy over TLS: {p.stderr[-1500:]}"
        p = subprocess.run(base + ["inspect", "--raw", "--cert-dir", site.cert_dir, f"--creds={creds}", dest],
                           capture_output=True, timeout=120)
        assert p.returncode == 0 and p.stdout == image.manifest.data, p.stderr[-800:]
        # It is the registry's: node A serves the same manifest over plain HTTP.
        r = Client(url_a()).get(f"/v2/{repo}/manifests/v1", headers={"Accept": image.manifest.media_type})
        assert r.status == 200 and r.body == image.manifest.data, r.summary()

        # podman: pull, then push under another tag, with --cert-dir; both fail without it.
        ref = f"{site.host}/{repo}:v1"
        p = podman("pull", f"--creds={creds}", ref, check=False)
        assert_unknown_ca(p, "podman pull")
        podman("pull", "--cert-dir", site.cert_dir, f"--creds={creds}", ref)
        podman("tag", ref, f"{site.host}/{repo}:v2")
        p = podman("push", f"--creds={creds}", f"{site.host}/{repo}:v2", check=False)
        assert_unknown_ca(p, "podman push")
        podman("push", "--cert-dir", site.cert_dir, f"--creds={creds}", f"{site.host}/{repo}:v2")
        r = Client(url_a()).head(f"/v2/{repo}/manifests/v2", headers={"Accept": ",".join(
            ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"])})
        assert r.status == 200, f"podman's push over TLS is not in the registry: {r.summary()}"


def test_tls_aws_cli_v1_and_v2_with_ca_bundle_and_podman_login():
    with TlsSite("tls-aws") as site, TempDir() as tmp, Podman() as podman:
        for version in (1, 2):
            repo = unique_repo(f"tls-aws{version}")
            p = aws_cli("ecr", "create-repository", "--repository-name", repo, base_url=site.https_url,
                        version=version, check=False)
            assert_unknown_ca(p, f"aws v{version} without --ca-bundle")
            out = aws_json("ecr", "create-repository", "--repository-name", repo, "--ca-bundle", site.ca,
                           base_url=site.https_url, version=version)
            assert out["repository"]["repositoryUri"] == f"{site.host}/{repo}", out
            # The ECR login flow: get-login-password over HTTPS, podman login with --cert-dir.
            password = aws_cli("ecr", "get-login-password", "--ca-bundle", site.ca, base_url=site.https_url,
                               version=version).stdout.strip()
            authfile = tmp.sub(f"auth{version}.json")
            login = ["login", "--authfile", authfile, "-u", "AWS", "--password-stdin", site.host]
            p = podman(*login, input=(password + "\n").encode(), check=False)
            assert_unknown_ca(p, "podman login")
            p = podman(login[0], "--cert-dir", site.cert_dir, *login[1:], input=(password + "\n").encode(),
                       check=False)
            assert p.returncode == 0, f"podman login over TLS with the v{version} password: {p.stderr[-800:]}"
            # The stored login (the ECR password, not the access key) pushes over TLS.
            layout = tmp.sub(f"layout{version}")
            image = build_image_layout(layout, layer_sizes=(1024,))
            p = subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-authfile", authfile,
                                "--dest-cert-dir", site.cert_dir, f"oci:{layout}:latest",
                                f"docker://{site.host}/{repo}:login"], capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, f"push with the stored v{version} login over TLS: {p.stderr[-800:]}"
            r = Client(url_a()).get(f"/v2/{repo}/manifests/login", headers={"Accept": image.manifest.media_type})
            assert r.status == 200 and r.body == image.manifest.data, r.summary()
