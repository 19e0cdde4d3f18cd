"""The API version check and unknown routes."""

from pierlib import (Client, assert_oci_error, client_a, expect_status, oci_errors, unique_repo, url_b)


def test_version_check_returns_200_with_api_version_header():
    c = client_a()
    r = expect_status(c.get("/v2/"), 200, "GET /v2/")
    assert r.header("Docker-Distribution-API-Version") == "registry/2.0", \
        f"Docker-Distribution-API-Version is {r.header('Docker-Distribution-API-Version')!r}: {r.summary()}"
    h = expect_status(c.head("/v2/"), 200, "HEAD /v2/")
    assert h.body == b"", "HEAD /v2/ returned a body"
    assert h.header("Docker-Distribution-API-Version") == "registry/2.0"


def test_version_check_on_second_node():
    r = expect_status(Client(url_b()).get("/v2/"), 200, "GET /v2/ on node B")
    assert r.header("Docker-Distribution-API-Version") == "registry/2.0", r.summary()


def test_unknown_routes_return_404_json_error():
    c = client_a()
    repo = unique_repo("routes")
    for path in (
        "/v2/_nothing_here",
        f"/v2/{repo}/not-an-endpoint/x",
        f"/v2/{repo}/blobs",
        f"/v2/{repo}/manifests",
        f"/v2/{repo}/tags/unknown",
    ):
        r = c.get(path)
        expect_status(r, 404, f"GET {path}")
        errors = oci_errors(r)
        assert all(e.get("message") for e in errors), f"empty error message: {r.summary()}"


def test_error_bodies_are_json_with_code_and_message():
    c = client_a()
    repo = unique_repo("errshape")
    r = c.get(f"/v2/{repo}/tags/list")
    assert_oci_error(r, 404, "NAME_UNKNOWN")
