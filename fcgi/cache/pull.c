/* pull: manifests in cache namespaces. By digest a cached manifest is served
 * as is, forever. By tag it is served while younger than the rule's refresh
 * interval; after that one request (cluster-wide, under a lease) asks the
 * upstream with a HEAD and fetches the body only when the digest changed.
 * When the upstream is down, slow, rate-limiting or refusing, what is cached
 * is served, marked stale. */
#include "cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "auth/authn.h"
#include "auth/authz.h"
#include "cache/lease.h"
#include "cache/stats.h"
#include "cache/upstream.h"
#include "db/db.h"
#include "lib/log.h"
#include "lib/util.h"
#include "registry/errors.h"
#include "registry/handlers.h"
#include "store/manifest.h"

#define POLL_MS 40

static const struct db_stmt st_negative_get = {
    "pull_negative_get",
    "SELECT 1 FROM cache_negative WHERE repository = $1 AND reference = $2 AND until > now()", 2};
static const struct db_stmt st_negative_put = {
    "pull_negative_put",
    "INSERT INTO cache_negative(repository, reference, until)"
    " VALUES ($1, $2, now() + make_interval(secs => $3::int))"
    " ON CONFLICT (repository, reference) DO UPDATE SET until = EXCLUDED.until", 3};
static const struct db_stmt st_negative_clear = {
    "pull_negative_clear", "DELETE FROM cache_negative WHERE repository = $1 AND reference = $2", 2};

pier_err cache_rule_for(struct ctx *c, const char *name, long long rule_id, struct cache_rule *rule,
                        bool *found, struct perr *e)
{
    if (rule_id > 0) {
        pier_err rc = rules_get_id(c, rule_id, rule, e);
        *found = rc == PIER_OK;
        return rc == PIER_E_NAME_UNKNOWN ? PIER_OK : rc;
    }
    return rules_match(c, name, rule, found, e);
}

static void serve_stale(struct ctx *c, struct req *r, const char *name, const char *ref,
                        const struct cache_rule *rule, const struct stored_manifest *stored,
                        const char *why)
{
    log_warn("serving cached %s stale: %s", ref, why);
    stats_add(c->stats, rule->id, STAT_STALE, 1);
    resp_header(r, "Warning", "110 pier \"Response is stale: upstream unavailable\"");
    h_manifest_send(c, r, name, ref, stored, "stale");
}

static void upstream_failed(struct ctx *c, struct req *r, const char *name, const char *ref,
                            const struct cache_rule *rule, const struct stored_manifest *stored,
                            const struct upstream_resp *resp)
{
    stats_add(c->stats, rule->id, STAT_UPSTREAM_ERROR, 1);
    rules_note_error(c, rule->id, resp->message);
    if (stored) {
        serve_stale(c, r, name, ref, rule, stored, resp->message);
        return;
    }
    struct perr e;
    perr_set(&e, cache_upstream_error(resp->failure),
             "the upstream of %s failed (%s: %s) and %s:%s is not cached",
             rule->prefix, upstream_failure_name(resp->failure), resp->message, name, ref);
    oci_error(r, &e);
}

/* Re-read what is stored now and serve it. */
static void serve_stored(struct ctx *c, struct req *r, const char *name, const char *ref,
                         const char *state)
{
    struct perr e;
    struct stored_manifest sm;
    if (repo_manifest_get(c, name, ref, !r->head, &sm, &e) != PIER_OK) {
        oci_error(r, &e);
        return;
    }
    h_manifest_send(c, r, name, ref, &sm, state);
}

/* Fetch the manifest from the upstream and store it. Answers the request. */
static void import(struct ctx *c, struct req *r, const char *name, const char *ref,
                   const char *upname, const struct cache_rule *rule,
                   const struct stored_manifest *stored, const char *key, const char *holder)
{
    struct perr e;
    struct upstream_resp resp;
    char *path = arena_printf(c->a, "manifests/%s", ref);
    struct lease_keeper keep = {.c = c, .key = key, .holder = holder, .last = now_ms()};
    struct upstream_req q = {.rule = rule, .repo = upname, .path = path,
                             .accept = UPSTREAM_MANIFEST_ACCEPT,
                             .max_body = (size_t)c->cfg->max_manifest_size,
                             .on_tick = lease_keeper_tick, .arg = &keep};
    if (upstream_do(c, &q, &resp, &e) != PIER_OK) {
        if (resp.failure == UPF_NOT_FOUND) {
            char secs[16];
            snprintf(secs, sizeof secs, "%d", rule->negative_seconds);
            if (rule->negative_seconds > 0)
                db_exec(c->db, c->a, &st_negative_put, &e, name, ref, secs);
            (void)lease_release(c, key, holder, &e);
            if (stored) {
                serve_stale(c, r, name, ref, rule, stored, resp.message);
                return;
            }
            perr_set(&e, PIER_E_MANIFEST_UNKNOWN, "%s:%s was not found upstream (%s)", name, ref,
                     resp.message);
            oci_error(r, &e);
            return;
        }
        lease_fail(c, key, holder, cache_upstream_error(resp.failure), resp.message, 0);
        upstream_failed(c, r, name, ref, rule, stored, &resp);
        return;
    }
    stats_add(c->stats, rule->id, STAT_UPSTREAM_BYTES, (long long)resp.body_len);
    enum digest_alg alg = DIGEST_SHA256;
    bool by_digest = grammar_is_digest(ref);
    if (by_digest)
        (void)grammar_digest(ref, &alg, NULL); /* a digest: it parses */
    char digest[DIGEST_STR_MAX];
    digest_buffer(alg, resp.body ? resp.body : "", resp.body_len, digest);
    const char *bad = NULL;
    if (by_digest && strcmp(digest, ref) != 0)
        bad = arena_printf(c->a, "upstream sent a manifest with digest %s for %s", digest, ref);
    else if (resp.digest[0] && strncmp(resp.digest, digest, 7) == 0 && strcmp(resp.digest, digest) != 0)
        bad = arena_printf(c->a, "upstream announced digest %s but sent a manifest with digest %s",
                           resp.digest, digest);
    struct manifest m;
    memset(&m, 0, sizeof m);
    if (!bad && manifest_parse(resp.body ? resp.body : "", resp.body_len, resp.content_type, &m,
                               &e) != PIER_OK) {
        /* What the upstream wrote stays in the log: clients get no part of
         * an upstream's body. */
        log_warn("%s:%s from %s: invalid manifest: %s", name, ref, rule->upstream_url, e.msg);
        bad = "the upstream sent an invalid manifest (the registry's log has the details)";
    }
    if (bad) {
        log_warn("%s:%s from %s: %s", name, ref, rule->upstream_url, bad);
        lease_fail(c, key, holder, PIER_E_UPSTREAM, bad, 0);
        struct upstream_resp fake = resp;
        fake.failure = UPF_PROTOCOL;
        snprintf(fake.message, sizeof fake.message, "%s", bad);
        upstream_failed(c, r, name, ref, rule, stored, &fake);
        return;
    }
    pier_err rc = repo_manifest_put(c, name, by_digest ? NULL : ref, digest, &m, resp.body,
                                    resp.body_len, rule->id, &e);
    manifest_free(&m);
    if (rc) {
        lease_fail(c, key, holder, e.code, e.msg, 0);
        oci_error(r, &e);
        return;
    }
    db_exec(c->db, c->a, &st_negative_clear, &e, name, ref);
    (void)lease_release(c, key, holder, &e);
    stats_add(c->stats, rule->id, STAT_MISS, 1);
    serve_stored(c, r, name, ref, "miss");
}

/* The tag is cached but old: ask with a HEAD whether it moved. */
static void revalidate(struct ctx *c, struct req *r, const char *name, const char *ref,
                       const char *upname, const struct cache_rule *rule,
                       const struct stored_manifest *stored, const char *key, const char *holder)
{
    struct perr e;
    struct upstream_resp resp;
    char *path = arena_printf(c->a, "manifests/%s", ref);
    struct lease_keeper keep = {.c = c, .key = key, .holder = holder, .last = now_ms()};
    struct upstream_req q = {.rule = rule, .repo = upname, .head = true, .path = path,
                             .accept = UPSTREAM_MANIFEST_ACCEPT,
                             .on_tick = lease_keeper_tick, .arg = &keep};
    if (upstream_do(c, &q, &resp, &e) != PIER_OK) {
        (void)lease_release(c, key, holder, &e);
        upstream_failed(c, r, name, ref, rule, stored, &resp);
        return;
    }
    if (resp.digest[0] && strcmp(resp.digest, stored->digest) == 0) {
        (void)repo_tag_checked(c, name, ref, &e); /* else it is checked again next time */
        (void)lease_release(c, key, holder, &e);
        stats_add(c->stats, rule->id, STAT_HIT, 1);
        h_manifest_send(c, r, name, ref, stored, "revalidated");
        return;
    }
    /* The tag moved upstream: fetching the new image is an import. A caller
     * who may pull but not import keeps getting what is cached. */
    if (authz_check(c, "ecr:BatchImportUpstreamImage", name, &e) != PIER_OK) {
        (void)lease_release(c, key, holder, &e);
        serve_stale(c, r, name, ref, rule, stored, "the tag moved upstream; the caller may not import");
        return;
    }
    import(c, r, name, ref, upname, rule, stored, key, holder);
}

void cache_manifest(struct ctx *c, struct req *r, const char *name, const char *ref,
                    const struct cache_rule *rule, const struct stored_manifest *stored)
{
    struct perr e;
    char upname[NAME_MAX_LEN + 1];
    if (rule_upstream_name(rule, name, upname, &e) != PIER_OK) {
        oci_error(r, &e);
        return;
    }
    if (!stored) {
        PGresult *neg = db_exec(c->db, c->a, &st_negative_get, &e, name, ref);
        if (neg && PQntuples(neg) > 0) {
            perr_set(&e, PIER_E_MANIFEST_UNKNOWN,
                     "%s:%s was not found upstream recently (remembered for %d s)", name, ref,
                     rule->negative_seconds);
            oci_error(r, &e);
            return;
        }
    }
    if (!stored) {
        /* Nothing cached: this pull is an import, and maybe a new repository.
         * Both are decided before any upstream traffic. */
        bool exists = true;
        if (repo_exists_named(c, name, &exists, &e) != PIER_OK ||
            (!exists && authz_check(c, "ecr:CreateRepository", name, &e) != PIER_OK) ||
            authz_check(c, "ecr:BatchImportUpstreamImage", name, &e) != PIER_OK) {
            authn_error(c, r, &e, arena_printf(c->a, "repository:%s:pull", name));
            return;
        }
    }
    char *key = arena_printf(c->a, "m:%s:%s", name, ref);
    char holder[UUID_STR_LEN];
    if (!uuid_v4(holder)) {
        perr_set(&e, PIER_E_INTERNAL, "the random number generator failed");
        oci_error(r, &e);
        return;
    }
    int64_t deadline = now_ms() + (int64_t)(c->cfg->upstream_timeout + 5) * 1000;
    for (;;) {
        bool mine = false;
        if (lease_acquire(c, key, holder, &mine, &e) != PIER_OK) {
            oci_error(r, &e);
            return;
        }
        if (mine) {
            /* The previous holder may have finished between our first look
             * and taking the lease: look again before asking the upstream. */
            struct stored_manifest now;
            pier_err rc = repo_manifest_get(c, name, ref, !r->head, &now, &e);
            if (rc == PIER_OK && (now.fresh || grammar_is_digest(ref))) {
                (void)lease_release(c, key, holder, &e);
                stats_add(c->stats, rule->id, STAT_HIT, 1);
                h_manifest_send(c, r, name, ref, &now, "hit");
                return;
            }
            if (rc == PIER_OK)
                stored = &now;
            if (stored && !grammar_is_digest(ref))
                revalidate(c, r, name, ref, upname, rule, stored, key, holder);
            else
                import(c, r, name, ref, upname, rule, stored, key, holder);
            return;
        }
        /* Someone else is asking the upstream right now: wait for the answer. */
        struct lease l;
        if (lease_read(c, key, &l, &e) != PIER_OK) {
            oci_error(r, &e);
            return;
        }
        if (l.state == LEASE_NONE) {
            struct stored_manifest now;
            pier_err rc = repo_manifest_get(c, name, ref, !r->head, &now, &e);
            if (rc == PIER_OK) {
                stats_add(c->stats, rule->id, STAT_HIT, 1);
                h_manifest_send(c, r, name, ref, &now, "hit");
                return;
            }
            PGresult *neg = db_exec(c->db, c->a, &st_negative_get, &e, name, ref);
            if (neg && PQntuples(neg) > 0) {
                perr_set(&e, PIER_E_MANIFEST_UNKNOWN, "%s:%s was not found upstream", name, ref);
                oci_error(r, &e);
                return;
            }
            continue;
        }
        if (l.state == LEASE_FAILED) {
            if (stored) {
                serve_stale(c, r, name, ref, rule, stored, l.message);
                return;
            }
            perr_set(&e, l.code, "the upstream of %s failed and %s:%s is not cached: %s",
                     rule->prefix, name, ref, l.message);
            oci_error(r, &e);
            return;
        }
        if (now_ms() > deadline) {
            if (stored) {
                serve_stale(c, r, name, ref, rule, stored, "timed out waiting for the upstream");
                return;
            }
            perr_set(&e, PIER_E_UPSTREAM_TIMEOUT,
                     "timed out waiting for another request to fetch %s:%s", name, ref);
            oci_error(r, &e);
            return;
        }
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- referrers ---- */

static const struct db_stmt st_ref_get = {
    "pull_ref_get",
    "SELECT cr.manifests::text, cr.fetched_at > now() - make_interval(secs => $3::int)"
    " FROM cache_referrers cr JOIN repositories r ON r.id = cr.repository_id"
    " WHERE r.name = $1 AND cr.subject = $2", 3};
/* Stored only for a repository that exists (a referrers query alone never
 * creates one); the row goes with its repository. */
static const struct db_stmt st_ref_put = {
    "pull_ref_put",
    "INSERT INTO cache_referrers(repository_id, subject, manifests)"
    " SELECT id, $2, $3::jsonb FROM repositories WHERE name = $1"
    " ON CONFLICT (repository_id, subject) DO UPDATE SET manifests = EXCLUDED.manifests,"
    " fetched_at = now()", 3};

static void send_referrers(struct req *r, json_t *list, const char *artifact_type,
                           const char *state)
{
    json_t *keep = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        if (!json_is_object(d))
            continue;
        const char *at = json_string_value(json_object_get(d, "artifactType"));
        if (artifact_type && (!at || strcmp(at, artifact_type) != 0))
            continue;
        json_array_append(keep, d);
    }
    json_t *body = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
                             "manifests", keep);
    if (artifact_type)
        resp_header(r, "OCI-Filters-Applied", "artifactType");
    resp_header(r, "X-Pier-Cache", "%s", state);
    resp_json(r, 200, MT_OCI_INDEX, body);
    json_decref(body);
}

/* The referrers of digest as the upstream reports them: the referrers API,
 * else the "sha256-<hex>" tag of the fallback scheme. NULL on failure. */
static json_t *upstream_referrers(struct ctx *c, const char *upname, const char *digest,
                                  const struct cache_rule *rule, struct upstream_resp *resp)
{
    struct perr e;
    char *path = arena_printf(c->a, "referrers/%s", digest);
    struct upstream_req q = {.rule = rule, .repo = upname, .path = path, .accept = MT_OCI_INDEX,
                             .max_body = (size_t)c->cfg->max_manifest_size};
    pier_err rc = upstream_do(c, &q, resp, &e);
    if (rc != PIER_OK && (resp->failure == UPF_NOT_FOUND || resp->status == 400 ||
                          resp->status == 405)) {
        /* No referrers API upstream: the tag schema. */
        char tag[DIGEST_MAX_LEN + 1];
        snprintf(tag, sizeof tag, "%s", digest);
        tag[6] = '-';
        path = arena_printf(c->a, "manifests/%s", tag);
        struct upstream_req t = {.rule = rule, .repo = upname, .path = path,
                                 .accept = MT_OCI_INDEX,
                                 .max_body = (size_t)c->cfg->max_manifest_size};
        rc = upstream_do(c, &t, resp, &e);
        if (rc != PIER_OK && resp->failure == UPF_NOT_FOUND)
            return json_array(); /* nothing refers to it */
    }
    if (rc != PIER_OK)
        return NULL;
    json_t *doc = json_loadb(resp->body ? resp->body : "", resp->body_len, 0, NULL);
    json_t *list = json_object_get(doc, "manifests");
    json_t *out = json_is_array(list) ? json_incref(list) : NULL;
    json_decref(doc);
    if (!out) {
        resp->failure = UPF_PROTOCOL;
        snprintf(resp->message, sizeof resp->message, "upstream referrers answer is not an index");
    }
    return out;
}

void cache_referrers(struct ctx *c, struct req *r, const char *name, const char *digest,
                     const struct cache_rule *rule, const char *artifact_type)
{
    struct perr e;
    char upname[NAME_MAX_LEN + 1];
    if (rule_upstream_name(rule, name, upname, &e) != PIER_OK) {
        oci_error(r, &e);
        return;
    }
    char refresh[16];
    snprintf(refresh, sizeof refresh, "%d", rule->refresh_seconds);
    PGresult *res = db_exec(c->db, c->a, &st_ref_get, &e, name, digest, refresh);
    if (!res) {
        oci_error(r, &e);
        return;
    }
    json_t *cached = PQntuples(res) ? json_loads(PQgetvalue(res, 0, 0), 0, NULL) : NULL;
    if (cached && PQgetvalue(res, 0, 1)[0] == 't') {
        stats_add(c->stats, rule->id, STAT_HIT, 1);
        send_referrers(r, cached, artifact_type, "hit");
        json_decref(cached);
        return;
    }
    /* Asking the upstream is an import, as for manifests: decided before
     * any traffic. A caller who may pull but not import keeps what is cached. */
    bool exists = true;
    if (repo_exists_named(c, name, &exists, &e) != PIER_OK) {
        json_decref(cached);
        oci_error(r, &e);
        return;
    }
    if ((!exists && authz_check(c, "ecr:CreateRepository", name, &e) != PIER_OK) ||
        authz_check(c, "ecr:BatchImportUpstreamImage", name, &e) != PIER_OK) {
        if (cached) {
            stats_add(c->stats, rule->id, STAT_STALE, 1);
            send_referrers(r, cached, artifact_type, "stale");
            json_decref(cached);
            return;
        }
        authn_error(c, r, &e, arena_printf(c->a, "repository:%s:pull", name));
        return;
    }
    struct upstream_resp resp;
    json_t *fresh = upstream_referrers(c, upname, digest, rule, &resp);
    if (!fresh) {
        stats_add(c->stats, rule->id, STAT_UPSTREAM_ERROR, 1);
        rules_note_error(c, rule->id, resp.message);
        log_warn("referrers of %s in %s: %s", digest, name, resp.message);
        if (cached) {
            stats_add(c->stats, rule->id, STAT_STALE, 1);
            send_referrers(r, cached, artifact_type, "stale");
            json_decref(cached);
            return;
        }
        perr_set(&e, cache_upstream_error(resp.failure),
                 "the upstream of %s failed (%s) and the referrers of %s are not cached",
                 rule->prefix, resp.message, digest);
        oci_error(r, &e);
        return;
    }
    json_decref(cached);
    char *text = json_dumps(fresh, JSON_COMPACT);
    if (text) {
        db_exec(c->db, c->a, &st_ref_put, &e, name, digest, text);
        free(text);
    }
    stats_add(c->stats, rule->id, STAT_MISS, 1);
    send_referrers(r, fresh, artifact_type, "miss");
    json_decref(fresh);
}
