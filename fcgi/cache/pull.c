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
#include "auth/authz.h"
#include "cache/lease.h"
#include "cache/memo.h"
#include "cache/stats.h"
#include "cache/upstream.h"
#include "db/db.h"
#include "lib/log.h"
#include "lib/util.h"
#include "store/audit.h"
#include "store/manifest.h"

#define POLL_MS 40


/* What is cached, served because the upstream could not be asked or did
 * not answer usefully. */
static pier_err serve_stale(struct ctx *c, const char *ref, const struct cache_rule *rule,
                            const struct stored_manifest *stored, const char *why,
                            struct cache_answer *out)
{
    log_warn("serving cached %s stale: %s", ref, why);
    stats_add(c->stats, rule->id, STAT_STALE, 1);
    out->manifest = *stored;
    out->state = "stale";
    out->why = arena_strdup(c->a, why);
    return PIER_OK;
}

static pier_err upstream_failed(struct ctx *c, const char *name, const char *ref,
                                const struct cache_rule *rule,
                                const struct stored_manifest *stored,
                                const struct upstream_resp *resp, struct cache_answer *out,
                                struct perr *e)
{
    stats_add(c->stats, rule->id, STAT_UPSTREAM_ERROR, 1);
    rules_note_error(c, rule->id, resp->message);
    if (stored)
        return serve_stale(c, ref, rule, stored, resp->message, out);
    perr_set(e, cache_upstream_error(resp->failure),
             "the upstream of %s failed (%s: %s) and %s:%s is not cached", rule->prefix,
             upstream_failure_name(resp->failure), resp->message, name, ref);
    /* Refused credentials are told from an outage (the control plane's
     * failure codes); the detail of a 429 is its Retry-After, so only this
     * class is named. */
    if (resp->failure == UPF_AUTH)
        perr_detail(e, "%s", upstream_failure_name(resp->failure));
    return e->code;
}

/* Re-read what is stored now and serve it. */
static pier_err serve_stored(struct ctx *c, struct req *r, const char *name, const char *ref,
                             const char *state, struct cache_answer *out, struct perr *e)
{
    pier_err rc = repo_manifest_get(c, name, ref, !r->head, &out->manifest, e);
    out->state = state;
    return rc;
}

/* Fetch the manifest from the upstream and store it. */
static pier_err import(struct ctx *c, struct req *r, const char *name, const char *ref,
                       const char *upname, const struct cache_rule *rule,
                       const struct stored_manifest *stored, const char *key, const char *holder,
                       struct cache_answer *out, struct perr *e)
{
    struct perr ig;
    struct upstream_resp resp;
    char *path = arena_printf(c->a, "manifests/%s", ref);
    struct lease_keeper keep = {.c = c, .key = key, .holder = holder, .last = now_ms()};
    struct upstream_req q = {.rule = rule, .repo = upname, .path = path,
                             .accept = UPSTREAM_MANIFEST_ACCEPT,
                             .max_body = (size_t)c->cfg->max_manifest_size,
                             .on_tick = lease_keeper_tick, .arg = &keep};
    if (upstream_do(c, &q, &resp, e) != PIER_OK) {
        if (resp.failure == UPF_NOT_FOUND) {
            if (rule->negative_seconds > 0)
                (void)memo_negative_put(c, name, ref, rule->negative_seconds, &ig);
            (void)lease_release(c, key, holder, &ig);
            if (stored)
                return serve_stale(c, ref, rule, stored, resp.message, out);
            return perr_set(e, PIER_E_MANIFEST_UNKNOWN, "%s:%s was not found upstream (%s)", name,
                            ref, resp.message);
        }
        (void)lease_fail(c, key, holder, cache_upstream_error(resp.failure), resp.message, 0);
        return upstream_failed(c, name, ref, rule, stored, &resp, out, e);
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
                               e) != PIER_OK) {
        /* What the upstream wrote stays in the log: clients get no part of
         * an upstream's body. */
        log_warn("%s:%s from %s: invalid manifest: %s", name, ref, rule->upstream_url, e->msg);
        bad = "the upstream sent an invalid manifest (the registry's log has the details)";
    }
    if (bad) {
        log_warn("%s:%s from %s: %s", name, ref, rule->upstream_url, bad);
        (void)lease_fail(c, key, holder, PIER_E_UPSTREAM, bad, 0);
        struct upstream_resp fake = resp;
        fake.failure = UPF_PROTOCOL;
        snprintf(fake.message, sizeof fake.message, "%s", bad);
        return upstream_failed(c, name, ref, rule, stored, &fake, out, e);
    }
    pier_err rc = repo_manifest_put(c, name, by_digest ? NULL : ref, digest, &m, resp.body,
                                    resp.body_len, rule->id, e);
    manifest_free(&m);
    if (rc) {
        (void)lease_fail(c, key, holder, e->code, e->msg, 0);
        return rc;
    }
    (void)memo_negative_clear(c, name, ref, &ig);
    (void)lease_release(c, key, holder, &ig);
    struct audit_event ev = {.action = "cache:Import",
                             .repository = name,
                             .target = by_digest ? digest
                                                 : arena_printf(c->a, "%s@%s", ref, digest)};
    audit_record(c, &ev);
    stats_add(c->stats, rule->id, STAT_MISS, 1);
    return serve_stored(c, r, name, ref, "miss", out, e);
}

/* The tag is cached but old: ask with a HEAD whether it moved. */
static pier_err revalidate(struct ctx *c, struct req *r, const char *name, const char *ref,
                           const char *upname, const struct cache_rule *rule,
                           const struct stored_manifest *stored, const char *key,
                           const char *holder, struct cache_answer *out, struct perr *e)
{
    struct perr ig;
    struct upstream_resp resp;
    char *path = arena_printf(c->a, "manifests/%s", ref);
    struct lease_keeper keep = {.c = c, .key = key, .holder = holder, .last = now_ms()};
    struct upstream_req q = {.rule = rule, .repo = upname, .head = true, .path = path,
                             .accept = UPSTREAM_MANIFEST_ACCEPT,
                             .on_tick = lease_keeper_tick, .arg = &keep};
    if (upstream_do(c, &q, &resp, e) != PIER_OK) {
        (void)lease_release(c, key, holder, &ig);
        return upstream_failed(c, name, ref, rule, stored, &resp, out, e);
    }
    if (resp.digest[0] && strcmp(resp.digest, stored->digest) == 0) {
        (void)repo_tag_checked(c, name, ref, &ig); /* else it is checked again next time */
        (void)lease_release(c, key, holder, &ig);
        stats_add(c->stats, rule->id, STAT_HIT, 1);
        out->manifest = *stored;
        out->state = "revalidated";
        return PIER_OK;
    }
    /* The tag moved upstream: fetching the new image is an import. A caller
     * who may pull but not import keeps getting what is cached. */
    if (authz_create_or_import(c, name, true, true, &ig) != PIER_OK) {
        (void)lease_release(c, key, holder, &ig);
        return serve_stale(c, ref, rule, stored,
                           "the tag moved upstream; the caller may not import", out);
    }
    return import(c, r, name, ref, upname, rule, stored, key, holder, out, e);
}

/* A failure to read the memo is no reason to refuse: ask the upstream. */
static bool negative_cached(struct ctx *c, const char *name, const char *ref)
{
    struct perr ig;
    bool remembered = false;
    return memo_negative_get(c, name, ref, &remembered, &ig) == PIER_OK && remembered;
}

/* force: ask the upstream even when the tag is fresh (the console's "check
 * upstream now"). */
static pier_err lookup(struct ctx *c, struct req *r, const char *name, const char *ref,
                       const struct cache_rule *rule, const struct stored_manifest *stored,
                       bool force, struct cache_answer *out, struct perr *e)
{
    memset(out, 0, sizeof *out);
    out->outcome = CACHE_SEND;
    struct perr ig;
    char upname[NAME_MAX_LEN + 1];
    pier_err rc = rule_upstream_name(rule, name, upname, e);
    if (rc)
        return rc;
    if (!stored) {
        if (negative_cached(c, name, ref))
            return perr_set(e, PIER_E_MANIFEST_UNKNOWN,
                            "%s:%s was not found upstream recently (remembered for %d s)", name,
                            ref, rule->negative_seconds);
        /* Nothing cached: this pull is an import, and maybe a new repository.
         * Both are decided before any upstream traffic. */
        bool exists = true;
        if ((rc = repo_exists_named(c, name, &exists, e)) != PIER_OK ||
            (rc = authz_create_or_import(c, name, exists, true, e)) != PIER_OK)
            return rc;
    }
    char *key = arena_printf(c->a, "m:%s:%s", name, ref);
    char holder[UUID_STR_LEN];
    if (!uuid_v4(holder))
        return perr_set(e, PIER_E_INTERNAL, "the random number generator failed");
    int64_t deadline = now_ms() + (int64_t)(c->cfg->upstream_timeout + 5) * 1000;
    for (;;) {
        bool mine = false;
        if ((rc = lease_acquire(c, key, holder, &mine, e)) != PIER_OK)
            return rc;
        if (mine) {
            /* The previous holder may have finished between our first look
             * and taking the lease: look again before asking the upstream. */
            struct stored_manifest *now = arena_alloc(c->a, sizeof *now);
            rc = repo_manifest_get(c, name, ref, !r->head, now, &ig);
            if (rc == PIER_OK && ((now->fresh && !force) || grammar_is_digest(ref))) {
                (void)lease_release(c, key, holder, &ig);
                stats_add(c->stats, rule->id, STAT_HIT, 1);
                out->manifest = *now;
                out->state = "hit";
                return PIER_OK;
            }
            if (rc == PIER_OK)
                stored = now;
            if (stored && !grammar_is_digest(ref))
                return revalidate(c, r, name, ref, upname, rule, stored, key, holder, out, e);
            return import(c, r, name, ref, upname, rule, stored, key, holder, out, e);
        }
        /* Someone else is asking the upstream right now: wait for the answer. */
        struct lease l;
        if ((rc = lease_read(c, key, &l, e)) != PIER_OK)
            return rc;
        if (l.state == LEASE_NONE) {
            if (repo_manifest_get(c, name, ref, !r->head, &out->manifest, &ig) == PIER_OK) {
                stats_add(c->stats, rule->id, STAT_HIT, 1);
                out->state = "hit";
                return PIER_OK;
            }
            if (negative_cached(c, name, ref))
                return perr_set(e, PIER_E_MANIFEST_UNKNOWN, "%s:%s was not found upstream",
                                name, ref);
            continue;
        }
        if (l.state == LEASE_FAILED) {
            if (stored)
                return serve_stale(c, ref, rule, stored, l.message, out);
            return perr_set(e, l.code, "the upstream of %s failed and %s:%s is not cached: %s",
                            rule->prefix, name, ref, l.message);
        }
        if (now_ms() > deadline) {
            if (stored)
                return serve_stale(c, ref, rule, stored, "timed out waiting for the upstream",
                                   out);
            return perr_set(e, PIER_E_UPSTREAM_TIMEOUT,
                            "timed out waiting for another request to fetch %s:%s", name, ref);
        }
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

pier_err cache_manifest(struct ctx *c, struct req *r, const char *name, const char *ref,
                        const struct cache_rule *rule, const struct stored_manifest *stored,
                        struct cache_answer *out, struct perr *e)
{
    return lookup(c, r, name, ref, rule, stored, false, out, e);
}

pier_err cache_check_tag(struct ctx *c, struct req *r, const char *name, const char *tag,
                         const struct cache_rule *rule, struct cache_check *out, struct perr *e)
{
    PIER_ASSERT(!grammar_is_digest(tag));
    memset(out, 0, sizeof *out);
    struct perr ig;
    struct stored_manifest *stored = arena_alloc(c->a, sizeof *stored);
    bool had = repo_manifest_get(c, name, tag, false, stored, &ig) == PIER_OK;
    out->before = had ? stored->digest : "";
    /* A HEAD request: the manifest's body is not needed here. */
    bool head = r->head;
    r->head = true;
    struct cache_answer a;
    pier_err rc = lookup(c, r, name, tag, rule, had ? stored : NULL, true, &a, e);
    r->head = head;
    if (rc != PIER_OK) {
        out->error = e->msg;
        return rc;
    }
    out->after = a.manifest.digest;
    if (strcmp(a.state, "stale") == 0)
        out->error = a.why ? a.why : "the upstream did not answer";
    return PIER_OK;
}

/* ---- referrers ---- */

/* Stored only for a repository that exists (a referrers query alone never
 * creates one); the row goes with its repository. */

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

pier_err cache_referrers(struct ctx *c, const char *name, const char *digest,
                         const struct cache_rule *rule, struct cache_answer *out,
                         struct perr *e)
{
    memset(out, 0, sizeof *out);
    out->outcome = CACHE_SEND;
    struct perr ig;
    char upname[NAME_MAX_LEN + 1];
    pier_err rc = rule_upstream_name(rule, name, upname, e);
    if (rc)
        return rc;
    const char *text = NULL;
    bool fresh_enough = false;
    if ((rc = memo_referrers_get(c, name, digest, rule->refresh_seconds, &text, &fresh_enough,
                                 e)) != PIER_OK)
        return rc;
    json_t *cached = text ? json_loads(text, 0, NULL) : NULL;
    if (cached && fresh_enough) {
        stats_add(c->stats, rule->id, STAT_HIT, 1);
        out->referrers = cached;
        out->state = "hit";
        return PIER_OK;
    }
    /* Asking the upstream is an import, as for manifests: decided before
     * any traffic. A caller who may pull but not import keeps what is cached. */
    bool exists = true;
    if ((rc = repo_exists_named(c, name, &exists, e)) != PIER_OK) {
        json_decref(cached);
        return rc;
    }
    if ((rc = authz_create_or_import(c, name, exists, true, e)) != PIER_OK) {
        if (!cached)
            return rc;
        stats_add(c->stats, rule->id, STAT_STALE, 1);
        out->referrers = cached;
        out->state = "stale";
        return PIER_OK;
    }
    struct upstream_resp resp;
    json_t *fresh = upstream_referrers(c, upname, digest, rule, &resp);
    if (!fresh) {
        stats_add(c->stats, rule->id, STAT_UPSTREAM_ERROR, 1);
        rules_note_error(c, rule->id, resp.message);
        log_warn("referrers of %s in %s: %s", digest, name, resp.message);
        if (cached) {
            stats_add(c->stats, rule->id, STAT_STALE, 1);
            out->referrers = cached;
            out->state = "stale";
            return PIER_OK;
        }
        return perr_set(e, cache_upstream_error(resp.failure),
                        "the upstream of %s failed (%s) and the referrers of %s are not cached",
                        rule->prefix, resp.message, digest);
    }
    json_decref(cached);
    char *list = json_dumps(fresh, JSON_COMPACT);
    if (list) {
        (void)memo_referrers_put(c, name, digest, list, &ig);
        free(list);
    }
    stats_add(c->stats, rule->id, STAT_MISS, 1);
    out->referrers = fresh;
    out->state = "miss";
    return PIER_OK;
}
