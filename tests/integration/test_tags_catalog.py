"""Tag listing, the catalog and their Link pagination."""

import re
import urllib.parse

from pierlib import (
    RUN_ID, assert_oci_error, client_a, expect_status, push_image, push_manifest, unique_repo,
)

LINK_NEXT = re.compile(r'^\s*<([^>]+)>\s*;\s*rel="?next"?\s*$')

# Chosen so that byte order and case-insensitive order differ ("Beta" vs "alpha");
# the spec allows either ordering.  No tags that differ only in punctuation, so a
# locale collation that ignores punctuation orders them like one of the two.
TAGS = ["latest", "v2", "v10", "alpha", "Beta", "1", "10", "2", "zeta", "rc1"]


def ordered(tags, result):
    """True if result is `tags` in ASCII order or in case-insensitive order."""
    return result in (sorted(tags), sorted(tags, key=lambda t: (t.lower(), t)))


def tag_repo(c, tags=TAGS):
    repo = unique_repo("tags")
    img = push_image(c, repo, tags[0])
    for t in tags[1:]:
        push_manifest(c, repo, t, img.manifest)
    return repo


def next_link(resp):
    """The path+query of a Link rel="next" header, or None."""
    values = resp.headers.get_all("Link")
    for v in values:
        m = LINK_NEXT.match(v)
        if m:
            parts = urllib.parse.urlsplit(m.group(1))
            return parts.path + ("?" + parts.query if parts.query else "")
    assert not values, f"Link header without rel=\"next\": {values}"
    return None


def walk(c, first_path, key, page_size, max_pages=1000):
    """Follow Link headers from first_path; returns (items, pages)."""
    items, pages, path = [], [], first_path
    while path is not None:
        r = expect_status(c.get(path), 200, f"GET {path}")
        page = r.json().get(key) or []
        assert len(page) <= page_size, f"{path} returned {len(page)} items, more than n={page_size}"
        items.extend(page)
        pages.append((path, page))
        nxt = next_link(r)
        if nxt is not None:
            assert page, f"{path}: empty page still carries a Link header"
        path = nxt
        assert len(pages) <= max_pages, "pagination does not terminate"
    return items, pages


def test_tags_list_is_sorted():
    c = client_a()
    repo = tag_repo(c)
    r = expect_status(c.get(f"/v2/{repo}/tags/list"), 200, "tags list")
    doc = r.json()
    assert doc.get("name") == repo, f"name field {doc.get('name')!r} != {repo!r}"
    assert sorted(doc["tags"]) == sorted(TAGS), f"tags {doc['tags']} != {sorted(TAGS)}"
    assert ordered(TAGS, doc["tags"]), f"tags not in lexical order: {doc['tags']}"
    assert "json" in (r.header("Content-Type") or ""), r.summary()


def test_tags_pagination_follows_link_header():
    c = client_a()
    repo = tag_repo(c)
    full = expect_status(c.get(f"/v2/{repo}/tags/list"), 200).json()["tags"]
    r = expect_status(c.get(f"/v2/{repo}/tags/list?n=2"), 200, "first page")
    first = r.json()["tags"]
    assert first == full[:2], f"first page {first} != {full[:2]}"
    link = r.header("Link")
    assert link is not None, f"first page of {len(full)} tags with n=2 has no Link header: {r.summary()}"
    expected = f'</v2/{repo}/tags/list?n=2&last={urllib.parse.quote(first[-1], safe="")}>; rel="next"'
    nxt = next_link(r)
    parts = urllib.parse.urlsplit(nxt)
    query = urllib.parse.parse_qs(parts.query)
    assert parts.path == f"/v2/{repo}/tags/list", f"Link {link!r}, expected like {expected!r}"
    assert query.get("n") == ["2"] and query.get("last") == [first[-1]], f"Link {link!r}, expected like {expected!r}"
    items, pages = walk(c, f"/v2/{repo}/tags/list?n=2", "tags", 2)
    assert items == full, f"walking Link headers gave {items}, expected {full}"
    assert len(pages) >= (len(full) + 1) // 2


def test_tags_list_last_parameter():
    c = client_a()
    repo = tag_repo(c)
    full = expect_status(c.get(f"/v2/{repo}/tags/list"), 200).json()["tags"]
    pivot = full[3]
    q = urllib.parse.quote(pivot, safe="")
    rest = expect_status(c.get(f"/v2/{repo}/tags/list?last={q}"), 200).json()["tags"]
    assert rest == full[4:], f"last={pivot} gave {rest}, expected {full[4:]}"
    two = expect_status(c.get(f"/v2/{repo}/tags/list?n=2&last={q}"), 200).json()["tags"]
    assert two == full[4:6], f"n=2&last={pivot} gave {two}, expected {full[4:6]}"
    end = expect_status(c.get(f"/v2/{repo}/tags/list?n=5&last={urllib.parse.quote(full[-1], safe='')}"), 200)
    assert (end.json().get("tags") or []) == [], f"after the last tag: {end.json()}"
    assert end.header("Link") is None, "Link header after the last tag"


def test_tags_list_n_zero_is_empty_without_link():
    c = client_a()
    repo = tag_repo(c, ["a", "b", "c"])
    r = expect_status(c.get(f"/v2/{repo}/tags/list?n=0"), 200)
    assert (r.json().get("tags") or []) == [], r.summary()
    assert r.header("Link") is None, "n=0 must not carry a Link header"


def test_catalog_paginates_and_contains_pushed_repositories():
    c = client_a()
    prefix = f"it-{RUN_ID}-cat-{unique_repo('x').rsplit('-', 1)[1]}"
    repos = [f"{prefix}/r{i}" for i in range(3)]
    for repo in repos:
        push_image(c, repo, "v1")
    # Start just before our prefix: nothing else can sort between.
    start = f"/v2/_catalog?n=2&last={urllib.parse.quote(prefix, safe='')}"
    r = expect_status(c.get(start), 200, "catalog page")
    page = r.json()["repositories"]
    assert page == repos[:2], f"catalog after {prefix!r} gave {page}, expected {repos[:2]}"
    nxt = next_link(r)
    assert nxt is not None, f"catalog page without Link header: {r.summary()}"
    parts = urllib.parse.urlsplit(nxt)
    query = urllib.parse.parse_qs(parts.query)
    assert parts.path == "/v2/_catalog" and query.get("n") == ["2"] and query.get("last") == [repos[1]], \
        f"catalog Link {r.header('Link')!r}"
    r2 = expect_status(c.get(nxt), 200)
    assert r2.json()["repositories"][:1] == [repos[2]], f"second page {r2.json()}"
    # The whole catalog, walked with Link headers, is ordered and complete.
    items, _ = walk(c, "/v2/_catalog?n=100", "repositories", 100, max_pages=100000)
    assert len(items) == len(set(items)), "catalog walk returned duplicates"
    for repo in repos:
        assert repo in items, f"{repo} missing from the catalog"


def test_tags_list_of_unknown_repository_is_name_unknown():
    c = client_a()
    repo = unique_repo("nobody")
    assert_oci_error(c.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert_oci_error(c.get(f"/v2/{repo}/tags/list?n=2"), 404, "NAME_UNKNOWN")
