/* h_listing: tags list, catalog and referrers — the read-only listings with
 * n/last pagination and Link headers. */
#include "registry/handlers.h"

#include <stdio.h>
#include <string.h>
#include "auth/authz.h"
#include "lib/grammar.h"
#include "lib/util.h"
#include "serve/referrers.h"
#include "store/repo.h"

/* n and last from the query. last is checked with the given grammar. */
static pier_err pagination(struct ctx *c, struct req *r, int *n, char *last, size_t lastsz,
                           bool *have_last, pier_err (*check)(const char *, struct perr *),
                           struct perr *e)
{
    char nbuf[24];
    int have = req_query(r, "n", nbuf, sizeof nbuf);
    long long v = c->cfg->max_page;
    if (have < 0 || (have > 0 && !grammar_uint(nbuf, 1LL << 40, &v)))
        return perr_set(e, PIER_E_PAGINATION_INVALID,
                        "n must be a non-negative integer (got '%.20s')", have < 0 ? "" : nbuf);
    *n = v > c->cfg->max_page ? c->cfg->max_page : (int)v;
    have = req_query(r, "last", last, lastsz);
    if (have < 0)
        return perr_set(e, PIER_E_PAGINATION_INVALID, "last is malformed or too long");
    *have_last = have > 0 && *last;
    if (*have_last) {
        struct perr sub;
        if (check(last, &sub) != PIER_OK)
            return perr_set(e, PIER_E_PAGINATION_INVALID, "last: %s", sub.msg);
    }
    return PIER_OK;
}

/* Catalog filtering reads this many names at a time, and gives up (returning
 * what it found, with a Link to go on when it found any) after scanning this
 * many names in one request: fewer for anonymous callers, whose requests cost
 * nothing to send. */
#define CATALOG_BATCH 500
#define CATALOG_SCAN_MAX 200000
#define CATALOG_SCAN_MAX_ANONYMOUS 2000

static void link_next(struct req *r, const char *base, int n, const char *last)
{
    char enc[NAME_MAX_LEN * 3 + 1];
    percent_encode(last, enc, sizeof enc);
    resp_header(r, "Link", "<%s?n=%d&last=%s>; rel=\"next\"", base, n, enc);
}

pier_err h_tags(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    int n;
    char last[TAG_MAX_LEN + 2];
    bool have_last, more = false;
    pier_err rc = pagination(c, r, &n, last, sizeof last, &have_last, grammar_tag, e);
    if (rc)
        return rc;
    json_t *tags = json_array();
    json_t *body = json_pack("{s:s, s:o}", "name", rt->name, "tags", tags);
    /* n=0 still answers NAME_UNKNOWN for a repository that does not exist. */
    if ((rc = repo_tags(c, rt->name, have_last ? last : NULL, n, tags, &more, e)) != PIER_OK) {
        json_decref(body);
        return rc;
    }
    if (more && json_array_size(tags) > 0) {
        char *base = arena_printf(r->a, "/v2/%s/tags/list", rt->name);
        link_next(r, base, n,
                  json_string_value(json_array_get(tags, json_array_size(tags) - 1)));
    }
    resp_json(r, 200, "application/json", body);
    json_decref(body);
    return PIER_OK;
}

pier_err h_catalog(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    (void)rt;
    int n;
    char last[NAME_MAX_LEN + 2];
    bool have_last, more = false;
    pier_err rc = pagination(c, r, &n, last, sizeof last, &have_last, grammar_name, e);
    if (rc)
        return rc;
    if (c->who->via == VIA_BEARER && !c->who->catalog)
        return perr_set(e, PIER_E_UNAUTHORIZED, "the bearer token does not grant the catalog; "
                        "request scope registry:catalog:*");
    /* Only what the caller may see (ecr:DescribeRepositories per repository).
     * Pages are filled from as many batches as it takes, and the Link cursor
     * is the last name shown, so hidden names never leave the server. */
    json_t *repos = json_array();
    const char *cursor = have_last ? last : NULL;
    bool exhausted = n == 0, full = false;
    long scanned = 0;
    long scan_max = c->who->authenticated ? CATALOG_SCAN_MAX : CATALOG_SCAN_MAX_ANONYMOUS;
    while (!exhausted && !full && scanned < scan_max) {
        json_t *all = json_array();
        if ((rc = repo_catalog(c, cursor, CATALOG_BATCH, all, &more, e)) != PIER_OK) {
            json_decref(all);
            json_decref(repos);
            return rc;
        }
        size_t i;
        json_t *v;
        json_array_foreach(all, i, v) {
            cursor = arena_strdup(r->a, json_string_value(v));
            scanned++;
            if (authz_allowed(c, "ecr:DescribeRepositories", json_string_value(v))) {
                json_array_append(repos, v);
                if ((int)json_array_size(repos) == n) {
                    full = true;
                    /* anything left in this batch, or a further batch, may be visible */
                    more = more || i + 1 < json_array_size(all);
                    break;
                }
            }
        }
        exhausted = !more || json_array_size(all) == 0;
        json_decref(all);
    }
    bool next = !exhausted && json_array_size(repos) > 0;
    json_t *body = json_pack("{s:o}", "repositories", repos);
    if (next)
        link_next(r, "/v2/_catalog", n,
                  json_string_value(json_array_get(repos, json_array_size(repos) - 1)));
    resp_json(r, 200, "application/json", body);
    json_decref(body);
    return PIER_OK;
}

pier_err h_referrers(struct ctx *c, struct req *r, const struct route *rt, struct perr *e)
{
    char at[256];
    int have = req_query(r, "artifactType", at, sizeof at);
    if (have < 0 || (have > 0 && !grammar_media_type(at)))
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "artifactType must be a media type like type/subtype");
    return serve_referrers(c, r, rt->name, rt->ref, have > 0 ? at : NULL, e);
}
