/* repo: SQL for repositories, blob links, manifests, tags and listings. */
#include "store/repo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "auth/authz.h"
#include "store/rules.h"
#include "db/db.h"
#include "store/blobstore.h"
#include "store/mutability.h"
#include "store/templates.h"
#include "lib/grammar.h"
#include "lib/log.h"

/* ---- statements (the tables of sql/001_init.sql) ---- */

static const struct db_stmt st_blob_get = {
    "repo_blob_get",
    "SELECT b.size, coalesce(r.rule_id, 0) FROM repositories r"
    " JOIN repository_blobs rb ON rb.repository_id = r.id"
    " JOIN blobs b ON b.digest = rb.digest"
    " WHERE r.name = $1 AND rb.digest = $2", 2};
static const struct db_stmt st_blob_any = {
    "repo_blob_any", "SELECT size FROM blobs WHERE digest = $1", 1};
static const struct db_stmt st_repo_find = {
    "repo_find", "SELECT id, kind FROM repositories WHERE name = $1", 1};
static const struct db_stmt st_repo_insert = {
    "repo_insert",
    "INSERT INTO repositories(name, kind, rule_id) VALUES ($1, $2, nullif($3::bigint, 0))"
    " ON CONFLICT (name) DO NOTHING RETURNING id, kind", 3};
static const struct db_stmt st_declared_size = {
    "repo_declared_size",
    "SELECT max(mr.size) FROM manifest_references mr JOIN repositories r ON r.id = mr.repository_id"
    " WHERE r.name = $1 AND mr.child = $2 AND mr.child_kind = 'blob'", 2};
/* The image a tag names now, in a repository whose tags may be immutable
 * (the mode and its filters decide: store/mutability.h). */
static const struct db_stmt st_tag_immutable = {
    "repo_tag_immutable",
    "SELECT t.digest, r.image_tag_mutability, array_to_json(r.image_tag_mutability_exclusions)::text"
    " FROM repositories r JOIN tags t ON t.repository_id = r.id AND t.name = $2"
    " WHERE r.id = $1::bigint AND r.image_tag_mutability <> 'MUTABLE'", 2};
static const struct db_stmt st_tag_checked = {
    "repo_tag_checked",
    "UPDATE tags t SET checked_at = now() FROM repositories r"
    " WHERE t.repository_id = r.id AND r.name = $1 AND t.name = $2", 2};
static const struct db_stmt st_blob_insert = {
    "repo_blob_insert",
    "INSERT INTO blobs(digest, size) VALUES ($1, $2::bigint) ON CONFLICT (digest) DO NOTHING", 2};
/* Publishing a blob file and recording its row, and removing a file that
 * has no row, are serialized per digest (see repo_blob_publish). */
static const struct db_stmt st_blob_lock = {
    "repo_blob_lock", "SELECT pg_advisory_xact_lock(hashtextextended($1, 7039))", 1};
static const struct db_stmt st_blob_row = {
    "repo_blob_row", "SELECT 1 FROM blobs WHERE digest = $1", 1};
static const struct db_stmt st_link_insert = {
    "repo_link_insert",
    "INSERT INTO repository_blobs(repository_id, digest)"
    " SELECT $1::bigint, digest FROM blobs WHERE digest = $2"
    " ON CONFLICT DO NOTHING", 2};
/* Linking a published file (repo_blob_publish) in one round trip when the
 * repository exists and is of the expected kind: records the blob's row and
 * the link. Returns how many repositories matched (0 or 1). */
static const struct db_stmt st_link_fast = {
    "repo_link_fast",
    "WITH r AS (SELECT id FROM repositories WHERE name = $1 AND kind = $4),"
    " b AS (INSERT INTO blobs(digest, size) SELECT $2, $3::bigint FROM r"
    "       ON CONFLICT (digest) DO NOTHING),"
    " l AS (INSERT INTO repository_blobs(repository_id, digest) SELECT id, $2 FROM r"
    "       ON CONFLICT DO NOTHING)"
    " SELECT count(*) FROM r", 4};
/* Linking a blob that is already stored (a mount, a cache hit from another
 * repository): never creates its row — garbage collection may just have
 * removed it, and then the file is gone too. The digest's shared lock waits
 * for a sweep holding it; a row deleted after this statement's snapshot
 * fails the foreign key (23503), which the caller reports as unknown.
 * Returns (repositories matched, blob rows seen). */
static const struct db_stmt st_link_existing = {
    "repo_link_existing",
    "WITH lk AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(hashtextextended($2, 7039))),"
    " r AS (SELECT id FROM repositories, lk WHERE name = $1 AND kind = $3),"
    " b AS (SELECT digest FROM blobs WHERE digest = $2),"
    " l AS (INSERT INTO repository_blobs(repository_id, digest) SELECT r.id, b.digest FROM r, b"
    "       ON CONFLICT DO NOTHING)"
    " SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM b)", 3};
static const struct db_stmt st_link_delete = {
    "repo_link_delete",
    "DELETE FROM repository_blobs rb USING repositories r"
    " WHERE rb.repository_id = r.id AND r.name = $1 AND rb.digest = $2 AND r.kind = 'push'", 2};
/* Manifest lookups return: digest, media_type, size, rule_id (0: pushed),
 * fresh (tag checked within the rule's refresh interval), the repository's
 * tag mutability and its filters, then the body. */
#define MANIFEST_COLUMNS                                                                  \
    "m.digest, m.media_type, m.size, coalesce(r.rule_id, 0), r.kind = 'cache',"           \
    " coalesce(t.checked_at > now() - make_interval(secs => cr.refresh_seconds), false)," \
    " r.image_tag_mutability, array_to_json(r.image_tag_mutability_exclusions)::text"
static const struct db_stmt st_manifest_by_tag = {
    "repo_manifest_by_tag",
    "SELECT " MANIFEST_COLUMNS ", m.body FROM repositories r"
    " JOIN tags t ON t.repository_id = r.id"
    " JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest"
    " LEFT JOIN cache_rules cr ON cr.id = r.rule_id"
    " WHERE r.name = $1 AND t.name = $2", 2};
static const struct db_stmt st_manifest_by_digest = {
    "repo_manifest_by_digest",
    "SELECT " MANIFEST_COLUMNS ", m.body FROM repositories r"
    " JOIN manifests m ON m.repository_id = r.id"
    " LEFT JOIN (SELECT NULL::timestamptz AS checked_at) t ON true"
    " LEFT JOIN cache_rules cr ON cr.id = r.rule_id"
    " WHERE r.name = $1 AND m.digest = $2", 2};
static const struct db_stmt st_head_by_tag = {
    "repo_head_by_tag",
    "SELECT " MANIFEST_COLUMNS " FROM repositories r"
    " JOIN tags t ON t.repository_id = r.id"
    " JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest"
    " LEFT JOIN cache_rules cr ON cr.id = r.rule_id"
    " WHERE r.name = $1 AND t.name = $2", 2};
static const struct db_stmt st_head_by_digest = {
    "repo_head_by_digest",
    "SELECT " MANIFEST_COLUMNS " FROM repositories r"
    " JOIN manifests m ON m.repository_id = r.id"
    " LEFT JOIN (SELECT NULL::timestamptz AS checked_at) t ON true"
    " LEFT JOIN cache_rules cr ON cr.id = r.rule_id"
    " WHERE r.name = $1 AND m.digest = $2", 2};
/* The blobs a pushed manifest references; the caller holds their digests'
 * locks (shared), so garbage collection cannot take them meanwhile. */
static const struct db_stmt st_blobs_present = {
    "repo_blobs_present",
    "SELECT rb.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest"
    " WHERE rb.repository_id = $1::bigint AND rb.digest = ANY($2::text[])", 2};
/* The children a pushed index lists, locked until it is stored: a delete of
 * one of them (repo_image_delete locks it FOR UPDATE first) waits and then
 * sees the new reference. */
static const struct db_stmt st_manifests_present = {
    "repo_manifests_present",
    "SELECT digest, size FROM manifests"
    " WHERE repository_id = $1::bigint AND digest = ANY($2::text[]) FOR KEY SHARE", 2};
/* Shared locks on the digests a manifest or a link is about to make live
 * (sorted, so two holders of several never deadlock); garbage collection
 * takes them exclusively (repo_gc_collect). */
static const struct db_stmt st_blob_lock_shared = {
    "repo_blob_lock_shared",
    "SELECT pg_advisory_xact_lock_shared(hashtextextended(d, 7039))"
    " FROM unnest($1::text[]) AS d ORDER BY d", 1};
static const struct db_stmt st_manifest_insert = {
    "repo_manifest_insert",
    "INSERT INTO manifests(repository_id, digest, media_type, artifact_type, subject,"
    " annotations, size, body)"
    " VALUES ($1::bigint, $2, $3, $4, $5, $6::jsonb, $7::bigint, $8::bytea)"
    " ON CONFLICT (repository_id, digest) DO NOTHING", 8};
static const struct db_stmt st_refs_insert = {
    "repo_refs_insert",
    "INSERT INTO manifest_references(repository_id, manifest, child, child_kind, size)"
    " SELECT $1::bigint, $2, c.d, $4, c.s FROM unnest($3::text[], $5::bigint[]) AS c(d, s)"
    " ON CONFLICT DO NOTHING", 5};
static const struct db_stmt st_tag_upsert = {
    "repo_tag_upsert",
    "INSERT INTO tags(repository_id, name, digest, checked_at)"
    " VALUES ($1::bigint, $2, $3, CASE WHEN $4 THEN now() END)"
    " ON CONFLICT (repository_id, name) DO UPDATE SET digest = EXCLUDED.digest,"
    " checked_at = EXCLUDED.checked_at,"
    " updated_at = CASE WHEN tags.digest IS DISTINCT FROM EXCLUDED.digest THEN now()"
    " ELSE tags.updated_at END", 4};
/* Where a cache tag pointed (sql/020): a row when an import moves the tag
 * (or stores it first), before the tag's row changes; the last 100 per tag. */
static const struct db_stmt st_history_moved = {
    "repo_history_moved",
    "INSERT INTO tag_history(repository_id, tag, digest, previous)"
    " SELECT $1::bigint, $2, $3,"
    " (SELECT digest FROM tags WHERE repository_id = $1::bigint AND name = $2)"
    " WHERE NOT EXISTS (SELECT 1 FROM tags"
    "                   WHERE repository_id = $1::bigint AND name = $2 AND digest = $3)", 3};
static const struct db_stmt st_history_prune = {
    "repo_history_prune",
    "DELETE FROM tag_history WHERE repository_id = $1::bigint AND tag = $2 AND id <="
    " (SELECT id FROM tag_history WHERE repository_id = $1::bigint AND tag = $2"
    "  ORDER BY id DESC OFFSET 100 LIMIT 1)", 2};
static const struct db_stmt st_history_evicted = {
    "repo_history_evicted",
    "INSERT INTO tag_history(repository_id, tag, digest, previous)"
    " SELECT r.id, $2, NULL, $3 FROM repositories r WHERE r.name = $1", 3};
static const struct db_stmt st_history_get = {
    "repo_history_get",
    "SELECT coalesce(h.digest, ''), coalesce(h.previous, ''),"
    " extract(epoch FROM h.recorded_at)::bigint"
    " FROM tag_history h JOIN repositories r ON r.id = h.repository_id"
    " WHERE r.name = $1 AND h.tag = $2 ORDER BY h.id DESC LIMIT $3::int", 3};
/* repo_image_delete: lock the manifest, then look for an index that lists
 * it, then delete it (its tags and references go by cascade). */
static const struct db_stmt st_image_lock = {
    "repo_image_lock",
    "SELECT m.repository_id FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " WHERE r.name = $1 AND m.digest = $2 FOR UPDATE OF m", 2};
static const struct db_stmt st_image_parent = {
    "repo_image_parent",
    "SELECT manifest FROM manifest_references WHERE repository_id = $1::bigint AND child = $2"
    " AND child_kind = 'manifest' AND manifest <> $2 ORDER BY manifest LIMIT 1", 2};
static const struct db_stmt st_image_delete = {
    "repo_image_delete",
    "DELETE FROM manifests WHERE repository_id = $1::bigint AND digest = $2", 2};
/* repo_image_expire: are the image's tags still those its evaluation saw?
 * (Asked under the manifest's lock: a tag cannot move onto it meanwhile.) */
static const struct db_stmt st_image_same_tags = {
    "repo_image_same_tags",
    "SELECT coalesce((SELECT json_agg(t.name ORDER BY t.name) FROM tags t"
    " WHERE t.repository_id = $1::bigint AND t.digest = $2), '[]')::jsonb = $3::jsonb",
    3};
static const struct db_stmt st_tag_delete = {
    "repo_tag_delete",
    "DELETE FROM tags t USING repositories r"
    " WHERE t.repository_id = r.id AND r.name = $1 AND t.name = $2", 2};
static const struct db_stmt st_tags = {
    "repo_tags",
    "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id"
    " WHERE r.name = $1 AND ($2::text IS NULL OR t.name > $2)"
    " ORDER BY t.name LIMIT $3::int", 3};
static const struct db_stmt st_catalog = {
    "repo_catalog",
    "SELECT name FROM repositories WHERE ($1::text IS NULL OR name > $1)"
    " ORDER BY name LIMIT $2::int", 2};
static const struct db_stmt st_referrers = {
    "repo_referrers",
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations::text"
    " FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " WHERE r.name = $1 AND m.subject = $2 AND ($3::text IS NULL OR m.artifact_type = $3)"
    " ORDER BY m.created_at, m.digest LIMIT 10000", 3};

/* ---- helpers ---- */

static bool repo_exists(struct ctx *c, const char *name, struct perr *e, pier_err *rc)
{
    PGresult *res = db_exec(c->db, c->a, &st_repo_find, e, name);
    if (!res) {
        *rc = e->code;
        return false;
    }
    *rc = PIER_OK;
    return PQntuples(res) > 0;
}

static pier_err cache_denied(struct perr *e, const char *name, const char *what)
{
    return perr_set(e, PIER_E_DENIED,
                    "repository %s is a pull-through cache repository: its images come from the "
                    "upstream and cannot be %s", name, what);
}

/* Why a name cannot be pushed to, or PIER_OK. */
static pier_err push_allowed(struct ctx *c, const char *name, PGresult *found, struct perr *e)
{
    if (found && PQntuples(found) > 0)
        return strcmp(db_value(found, 0, 1), "cache") == 0 ? cache_denied(e, name, "pushed")
                                                            : PIER_OK;
    struct cache_rule rule;
    bool under;
    pier_err rc = rules_match(c, name, &rule, &under, e);
    if (rc)
        return rc;
    if (under)
        return perr_set(e, PIER_E_DENIED,
                        "repository %s is in the namespace of pull-through cache rule '%s' "
                        "(upstream %s); images there come from the upstream and cannot be "
                        "pushed", name, rule.prefix, rule.upstream_url);
    return PIER_OK;
}

pier_err repo_exists_named(struct ctx *c, const char *name, bool *exists, struct perr *e)
{
    pier_err rc;
    *exists = repo_exists(c, name, e, &rc);
    return rc;
}

static const struct db_stmt st_holders = {
    "repo_holders",
    "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id"
    " WHERE rb.digest = $1 ORDER BY r.name LIMIT 50", 1};

pier_err repo_blob_readable(struct ctx *c, const char *digest, long long *size, struct perr *e)
{
    PIER_ASSERT(grammar_is_digest(digest));
    pier_err rc = repo_blob_any(c, digest, size, e);
    if (rc || !c->who)
        return rc;
    PGresult *res = db_exec(c->db, c->a, &st_holders, e, digest);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++)
        if (authz_allowed(c, "ecr:GetDownloadUrlForLayer", PQgetvalue(res, i, 0)))
            return PIER_OK;
    return perr_set(e, PIER_E_BLOB_UNKNOWN, "blob %s is not known to this registry", digest);
}

pier_err repo_check_push(struct ctx *c, const char *name, bool *exists, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_repo_find, e, name);
    if (!res)
        return e->code;
    *exists = PQntuples(res) > 0;
    return push_allowed(c, name, res, e);
}

pier_err repo_blob_declared_size(struct ctx *c, const char *name, const char *digest,
                                 long long *size, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_declared_size, e, name, digest);
    if (!res)
        return e->code;
    *size = PQntuples(res) && !PQgetisnull(res, 0, 0) ? db_int(res, 0, 0) : -1;
    return PIER_OK;
}

/* Find or create the repository; *id receives its id. Must run inside a
 * transaction. rule_id 0: a push, refused in cache namespaces; rule_id > 0: a
 * cache import, creating a cache repository of that rule. */
static pier_err repo_for_write(struct ctx *c, const char *name, long long rule_id, char id[24],
                               struct perr *e)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        PGresult *res = db_exec(c->db, c->a, &st_repo_find, e, name);
        if (!res)
            return e->code;
        if (PQntuples(res) == 0) {
            if (rule_id == 0) {
                pier_err rc = push_allowed(c, name, NULL, e);
                if (rc)
                    return rc;
            }
            /* Creating a repository is an action of its own (ECR's model):
             * the caller authorized it (authz_create_or_import). */
            res = db_exec(c->db, c->a, &st_repo_insert, e, name, rule_id ? "cache" : "push",
                          rule_id);
            if (!res)
                return e->code;
            if (PQntuples(res) == 0)
                continue; /* created concurrently: look it up again */
            pier_err rc = templates_apply(c, db_value(res, 0, 0), name,
                                          rule_id ? "PULL_THROUGH_CACHE" : "CREATE_ON_PUSH", e);
            if (rc)
                return rc;
        }
        bool is_cache = strcmp(db_value(res, 0, 1), "cache") == 0;
        if (rule_id == 0 && is_cache)
            return cache_denied(e, name, "pushed");
        if (rule_id > 0 && !is_cache)
            return perr_set(e, PIER_E_DENIED,
                            "repository %s holds pushed images; the cache does not import into it",
                            name);
        snprintf(id, 24, "%s", db_value(res, 0, 0));
        return PIER_OK;
    }
    return perr_set(e, PIER_E_INTERNAL, "could not create repository %s", name);
}

/* "{a,b,c}" from digests (grammar-checked, so no quoting is needed). */
static char *pg_array(struct arena *a, const char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) + 1;
    char *s = arena_alloc(a, len);
    char *p = s;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        size_t l = strlen(items[i]);
        memcpy(p, items[i], l);
        p += l;
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* ---- blobs ---- */

pier_err repo_blob_get(struct ctx *c, const char *name, const char *digest, long long *size,
                       long long *rule_id, struct perr *e)
{
    PIER_ASSERT(grammar_name(name, NULL) == PIER_OK && grammar_is_digest(digest));
    PGresult *res = db_exec(c->db, c->a, &st_blob_get, e, name, digest);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_BLOB_UNKNOWN, "blob %s is not known in repository %s", digest,
                        name);
    *size = db_int(res, 0, 0);
    if (rule_id)
        *rule_id = db_int(res, 0, 1);
    return PIER_OK;
}

pier_err repo_blob_any(struct ctx *c, const char *digest, long long *size, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_blob_any, e, digest);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_BLOB_UNKNOWN, "blob %s is not known to this registry", digest);
    *size = db_int(res, 0, 0);
    return PIER_OK;
}

/* A foreign-key violation on a link: the blob's row went meanwhile. */
static pier_err link_lost(struct ctx *c, const char *name, const char *digest, struct perr *e)
{
    if (e->code == PIER_E_INTERNAL && strcmp(db_sqlstate(c->db), "23503") == 0)
        return perr_set(e, PIER_E_BLOB_UNKNOWN,
                        "blob %s was garbage-collected while it was being linked into %s",
                        digest, name);
    return e->code;
}

/* Link digest into name. published: the caller just published the file
 * under the digest's lock, and the row is recorded if missing; otherwise the
 * row must exist (PIER_E_BLOB_UNKNOWN). */
static pier_err blob_link(struct ctx *c, const char *name, const char *digest, long long size,
                          long long rule_id, bool published, struct perr *e)
{
    PIER_ASSERT(grammar_name(name, NULL) == PIER_OK && grammar_is_digest(digest));
    pier_err rc;
    char id[24];
    const char *kind = rule_id ? "cache" : "push";
    if (!db_in_tx(c->db)) {
        PGresult *res = published ? db_exec(c->db, c->a, &st_link_fast, e, name, digest, size, kind)
                                  : db_exec(c->db, c->a, &st_link_existing, e, name, digest, kind);
        if (!res)
            return link_lost(c, name, digest, e);
        if (!published && db_int(res, 0, 1) == 0)
            return perr_set(e, PIER_E_BLOB_UNKNOWN, "blob %s is not known to this registry",
                            digest);
        if (db_int(res, 0, 0) > 0)
            return PIER_OK;
        /* No such repository (or of the other kind): the full path creates it
         * or says why not. */
    }
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    PGresult *res = NULL;
    if ((rc = repo_for_write(c, name, rule_id, id, e)) == PIER_OK &&
        (!(published ? db_exec(c->db, c->a, &st_blob_insert, e, digest, size)
                     : db_exec(c->db, c->a, &st_blob_lock_shared, e, pg_array(c->a, &digest, 1))) ||
         !(res = db_exec(c->db, c->a, &st_blob_row, e, digest)) ||
         !db_exec(c->db, c->a, &st_link_insert, e, id, digest)))
        rc = link_lost(c, name, digest, e);
    if (rc == PIER_OK && PQntuples(res) == 0)
        rc = perr_set(e, PIER_E_BLOB_UNKNOWN, "blob %s is not known to this registry", digest);
    return db_tx_end(c->db, rc, e);
}

pier_err repo_blob_link(struct ctx *c, const char *name, const char *digest, long long size,
                        long long rule_id, struct perr *e)
{
    return blob_link(c, name, digest, size, rule_id, false, e);
}

pier_err repo_blob_publish(struct ctx *c, const char *name, const char *tmp_path,
                           const char *digest, long long size, long long rule_id, struct perr *e)
{
    PIER_ASSERT(grammar_name(name, NULL) == PIER_OK && grammar_is_digest(digest) && tmp_path != NULL);
    pier_err rc;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    if (!db_exec(c->db, c->a, &st_blob_lock, e, digest)) {
        rc = e->code;
        goto end;
    }
    if ((rc = blobstore_publish(c->bs, tmp_path, digest, e)) != PIER_OK) {
        /* The temporary file may be gone (swept while its writer stalled);
         * the same verified bytes published by someone else will do. */
        long long have;
        if (!blobstore_stat(c->bs, digest, &have) || have != size)
            goto end;
        log_warn("blob %s was published by another request meanwhile; using it", digest);
    }
    rc = blob_link(c, name, digest, size, rule_id, true, e);
end:
    return db_tx_end(c->db, rc, e);
}

pier_err repo_blob_drop_orphan(struct ctx *c, const char *digest, const char *path, int min_age,
                               bool *removed, struct perr *e)
{
    *removed = false;
    pier_err rc;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    PGresult *res;
    if (!db_exec(c->db, c->a, &st_blob_lock, e, digest) ||
        !(res = db_exec(c->db, c->a, &st_blob_row, e, digest)))
        return db_tx_end(c->db, e->code, e);
    /* Under the lock nobody publishes this digest: if there is still no row
     * and the file is still old, it is nobody's. */
    struct stat st;
    if (PQntuples(res) == 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        time(NULL) - st.st_mtime >= min_age && unlink(path) == 0)
        *removed = true;
    return db_tx_end(c->db, PIER_OK, e); /* nothing was written: only the lock ends */
}

pier_err repo_blob_unlink(struct ctx *c, const char *name, const char *digest, struct perr *e)
{
    PIER_ASSERT(grammar_name(name, NULL) == PIER_OK && grammar_is_digest(digest));
    PGresult *res = db_exec(c->db, c->a, &st_link_delete, e, name, digest);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0) {
        PGresult *r = db_exec(c->db, c->a, &st_repo_find, e, name);
        if (r && PQntuples(r) > 0 && strcmp(db_value(r, 0, 1), "cache") == 0)
            return cache_denied(e, name, "deleted");
        return perr_set(e, PIER_E_BLOB_UNKNOWN, "blob %s is not known in repository %s", digest,
                        name);
    }
    return PIER_OK;
}

/* ---- manifests ---- */

static long long bin_int8(const PGresult *res, int row, int col)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(res, row, col);
    unsigned long long v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return (long long)v;
}

pier_err repo_manifest_get(struct ctx *c, const char *name, const char *ref, bool with_body,
                           struct stored_manifest *out, struct perr *e)
{
    PIER_ASSERT(grammar_name(name, NULL) == PIER_OK && grammar_reference(ref, NULL) == PIER_OK);
    bool by_digest = grammar_is_digest(ref);
    const struct db_stmt *st = with_body ? (by_digest ? &st_manifest_by_digest : &st_manifest_by_tag)
                                         : (by_digest ? &st_head_by_digest : &st_head_by_tag);
    struct db_param p[2] = {{.value = name}, {.value = ref}};
    PGresult *res = db_execp(c->db, c->a, st, p, true, e);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0) {
        pier_err rc;
        bool exists = repo_exists(c, name, e, &rc);
        if (rc)
            return rc;
        if (!exists)
            return perr_set(e, PIER_E_NAME_UNKNOWN, "repository %s is not known to this registry",
                            name);
        return perr_set(e, PIER_E_MANIFEST_UNKNOWN, "manifest %s is not known in repository %s",
                        ref, name);
    }
    /* Binary results: text columns are raw strings, integers big-endian. */
    out->digest = PQgetvalue(res, 0, 0);
    out->media_type = PQgetvalue(res, 0, 1);
    long long size = bin_int8(res, 0, 2);
    out->size = size;
    out->rule_id = bin_int8(res, 0, 3);
    out->cache = PQgetvalue(res, 0, 4)[0] != 0;
    out->fresh = PQgetvalue(res, 0, 5)[0] != 0;
    /* A tag the cache may not move is never due for a check: asking the
     * upstream could only find an image the tag must not name. */
    if (out->cache && !by_digest && !out->fresh &&
        mutability_tag_immutable(PQgetvalue(res, 0, 6), PQgetvalue(res, 0, 7), ref))
        out->fresh = true;
    out->body = with_body ? PQgetvalue(res, 0, 8) : NULL;
    if (with_body && PQgetlength(res, 0, 8) != size)
        return perr_set(e, PIER_E_INTERNAL, "stored manifest %s has an inconsistent size",
                        out->digest);
    return PIER_OK;
}

/* Check that each digest in want[] appears in res (column 0); returns the
 * first missing one or NULL. sizes[] (may be NULL) must match column 1. */
static const char *first_missing(PGresult *res, const struct descriptor *want, size_t n,
                                 bool check_size, const struct descriptor **bad_size)
{
    int rows = PQntuples(res);
    for (size_t i = 0; i < n; i++) {
        if (want[i].external)
            continue;
        bool found = false;
        for (int r = 0; r < rows; r++) {
            if (strcmp(PQgetvalue(res, r, 0), want[i].digest) == 0) {
                found = true;
                if (check_size && db_int(res, r, 1) != want[i].size && bad_size && !*bad_size)
                    *bad_size = &want[i];
                break;
            }
        }
        if (!found)
            return want[i].digest;
    }
    return NULL;
}

pier_err repo_manifest_put(struct ctx *c, const char *name, const char *tag, const char *digest,
                           const struct manifest *m, const char *body, size_t len,
                           long long rule_id, struct perr *e)
{
    PIER_ASSERT(grammar_name(name, NULL) == PIER_OK && grammar_is_digest(digest) && m != NULL &&
                (body != NULL || len == 0));
    pier_err rc;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    char id[24];
    if ((rc = repo_for_write(c, name, rule_id, id, e)) != PIER_OK)
        goto end;
    if (tag) {
        PGresult *imm = db_exec(c->db, c->a, &st_tag_immutable, e, id, tag);
        if (!imm) {
            rc = e->code;
            goto end;
        }
        if (PQntuples(imm) > 0 && strcmp(PQgetvalue(imm, 0, 0), digest) != 0 &&
            mutability_tag_immutable(PQgetvalue(imm, 0, 1), PQgetvalue(imm, 0, 2), tag)) {
            /* A push is refused; the cache keeps the image the tag names
             * (ECR: an immutable tag stops the cache from updating it). */
            rc = rule_id
                     ? PIER_OK
                     : perr_set(e, PIER_E_DENIED,
                                "the image tag '%s' already exists in repository %s and cannot "
                                "be overwritten because the repository's tags are immutable (%s)",
                                tag, name, PQgetvalue(imm, 0, 1));
            goto end;
        }
    }

    /* Everything the manifest references must already be here. */
    size_t nwant = m->nrefs + (m->kind == MANIFEST_IMAGE ? 1 : 0);
    struct descriptor *want = arena_alloc(c->a, (nwant ? nwant : 1) * sizeof *want);
    const char **digests = arena_alloc(c->a, (nwant ? nwant : 1) * sizeof *digests);
    size_t nd = 0;
    for (size_t i = 0; i < m->nrefs; i++)
        want[i] = m->refs[i];
    if (m->kind == MANIFEST_IMAGE)
        want[m->nrefs] = m->config;
    const char **sizes = arena_alloc(c->a, (nwant ? nwant : 1) * sizeof *sizes);
    for (size_t i = 0; i < nwant; i++)
        if (!want[i].external) {
            sizes[nd] = arena_printf(c->a, "%lld", want[i].size);
            digests[nd++] = want[i].digest;
        }
    char *arr = pg_array(c->a, digests, nd);
    char *size_arr = pg_array(c->a, sizes, nd);
    const struct db_stmt *check = m->kind == MANIFEST_IMAGE ? &st_blobs_present
                                                            : &st_manifests_present;
    PGresult *res = NULL;
    if (!rule_id && m->kind == MANIFEST_IMAGE && !db_exec(c->db, c->a, &st_blob_lock_shared, e, arr)) {
        rc = e->code;
        goto end;
    }
    res = rule_id ? NULL : db_exec(c->db, c->a, check, e, id, arr);
    if (!rule_id && !res) {
        rc = e->code;
        goto end;
    }
    const struct descriptor *bad_size = NULL;
    const char *missing = rule_id ? NULL : first_missing(res, want, nwant, true, &bad_size);
    if (missing) {
        rc = perr_set(e, PIER_E_MANIFEST_BLOB_UNKNOWN,
                      m->kind == MANIFEST_IMAGE
                          ? "manifest references blob %s, which is not in repository %s; push it first"
                          : "index references manifest %s, which is not in repository %s; push it first",
                      missing, name);
        perr_detail(e, "%s", missing);
        goto end;
    }
    if (bad_size) {
        rc = perr_set(e, PIER_E_MANIFEST_INVALID,
                      "descriptor for %s says size %lld, but the stored content has a different size",
                      bad_size->digest, bad_size->size);
        perr_detail(e, "%s", bad_size->digest);
        goto end;
    }

    char *ann = NULL;
    if (m->annotations) {
        ann = json_dumps(m->annotations, JSON_COMPACT);
        if (ann)
            arena_defer(c->a, free, ann);
    }
    struct db_param p[8] = {
        {.value = id},
        {.value = digest},
        {.value = m->media_type},
        {.value = m->artifact_type},
        {.value = m->has_subject ? m->subject.digest : NULL},
        {.value = ann},
        DB_ARG(len),
        {.value = body, .length = (int)len, .binary = true},
    };
    if (!db_execp(c->db, c->a, &st_manifest_insert, p, false, e) ||
        !db_exec(c->db, c->a, &st_refs_insert, e, id, digest, arr,
                 m->kind == MANIFEST_IMAGE ? "blob" : "manifest", size_arr) ||
        (tag && rule_id &&
         (!db_exec(c->db, c->a, &st_history_moved, e, id, tag, digest) ||
          !db_exec(c->db, c->a, &st_history_prune, e, id, tag))) ||
        (tag && !db_exec(c->db, c->a, &st_tag_upsert, e, id, tag, digest, rule_id ? "t" : "f"))) {
        rc = e->code;
        goto end;
    }
    rc = PIER_OK;
end:
    return db_tx_end(c->db, rc, e);
}

pier_err repo_tag_checked(struct ctx *c, const char *name, const char *tag, struct perr *e)
{
    return db_exec(c->db, c->a, &st_tag_checked, e, name, tag) ? PIER_OK : e->code;
}

/* repo_image_delete, and with expect_tags (a JSON array) repo_image_expire. */
static pier_err image_delete(struct ctx *c, const char *name, const char *digest,
                             const char *expect_tags, struct perr *e)
{
    PIER_ASSERT(grammar_name(name, NULL) == PIER_OK && grammar_is_digest(digest));
    pier_err rc;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    PGresult *res = db_exec(c->db, c->a, &st_image_lock, e, name, digest);
    if (!res) {
        rc = e->code;
        goto end;
    }
    if (PQntuples(res) == 0) {
        bool exists = repo_exists(c, name, e, &rc);
        if (rc == PIER_OK)
            rc = exists ? perr_set(e, PIER_E_MANIFEST_UNKNOWN,
                                   "manifest %s is not known in repository %s", digest, name)
                        : perr_set(e, PIER_E_NAME_UNKNOWN,
                                   "repository %s is not known to this registry", name);
        goto end;
    }
    char id[24];
    snprintf(id, sizeof id, "%s", db_value(res, 0, 0));
    /* A new statement sees every index committed while we waited for the lock. */
    PGresult *parent = db_exec(c->db, c->a, &st_image_parent, e, id, digest);
    if (!parent) {
        rc = e->code;
        goto end;
    }
    if (PQntuples(parent) > 0) {
        rc = perr_set(e, PIER_E_CONFLICT,
                      "manifest %s is referenced by the image index %s in repository %s; "
                      "delete the index first", digest, db_value(parent, 0, 0), name);
        perr_detail(e, "%s", db_value(parent, 0, 0));
        goto end;
    }
    if (expect_tags) {
        PGresult *same = db_exec(c->db, c->a, &st_image_same_tags, e, id, digest, expect_tags);
        if (!same) {
            rc = e->code;
            goto end;
        }
        if (db_value(same, 0, 0)[0] != 't') {
            rc = perr_set(e, PIER_E_CONFLICT,
                          "the tags of %s in repository %s changed since it was evaluated", digest,
                          name);
            goto end;
        }
    }
    rc = db_exec(c->db, c->a, &st_image_delete, e, id, digest) ? PIER_OK : e->code;
end:
    return db_tx_end(c->db, rc, e);
}

pier_err repo_image_delete(struct ctx *c, const char *name, const char *digest, struct perr *e)
{
    return image_delete(c, name, digest, NULL, e);
}

pier_err repo_image_expire(struct ctx *c, const char *name, const char *digest,
                           const char *tags_json, struct perr *e)
{
    PIER_ASSERT(tags_json != NULL);
    return image_delete(c, name, digest, tags_json, e);
}

pier_err repo_manifest_delete(struct ctx *c, const char *name, const char *ref, struct perr *e)
{
    bool by_digest = grammar_is_digest(ref);
    PGresult *r = db_exec(c->db, c->a, &st_repo_find, e, name);
    if (!r)
        return e->code;
    if (PQntuples(r) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "repository %s is not known to this registry", name);
    if (strcmp(db_value(r, 0, 1), "cache") == 0)
        return cache_denied(e, name, "deleted through the registry API (BatchDeleteImage can)");
    return by_digest ? repo_image_delete(c, name, ref, e) : repo_tag_delete(c, name, ref, e);
}

pier_err repo_tag_delete(struct ctx *c, const char *name, const char *tag, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_tag_delete, e, name, tag);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") != 0)
        return PIER_OK;
    return perr_set(e, PIER_E_MANIFEST_UNKNOWN, "tag %s is not known in repository %s", tag, name);
}

/* ---- listings ---- */

static pier_err page(struct ctx *c, PGresult *res, int n, json_t *out, bool *more)
{
    (void)c;
    int rows = PQntuples(res);
    *more = rows > n;
    for (int i = 0; i < rows && i < n; i++)
        json_array_append_new(out, json_string(PQgetvalue(res, i, 0)));
    return PIER_OK;
}

pier_err repo_tags(struct ctx *c, const char *name, const char *last, int n, json_t *out,
                   bool *more, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_tags, e, name, last, n + 1);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0) {
        pier_err rc;
        if (!repo_exists(c, name, e, &rc))
            return rc ? rc
                      : perr_set(e, PIER_E_NAME_UNKNOWN,
                                 "repository %s is not known to this registry", name);
    }
    return page(c, res, n, out, more);
}

pier_err repo_catalog(struct ctx *c, const char *last, int n, json_t *out, bool *more,
                      struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_catalog, e, last, n + 1);
    if (!res)
        return e->code;
    return page(c, res, n, out, more);
}

pier_err repo_referrers(struct ctx *c, const char *name, const char *digest,
                        const char *artifact_type, json_t *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_referrers, e, name, digest, artifact_type);
    if (!res)
        return e->code;
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *d = json_pack("{s:s, s:s, s:I}", "mediaType", PQgetvalue(res, i, 1), "digest",
                              PQgetvalue(res, i, 0), "size", (json_int_t)db_int(res, i, 2));
        if (!db_isnull(res, i, 3))
            json_object_set_new(d, "artifactType", json_string(PQgetvalue(res, i, 3)));
        if (!db_isnull(res, i, 4)) {
            json_t *ann = json_loads(PQgetvalue(res, i, 4), 0, NULL);
            if (json_is_object(ann) && json_object_size(ann) > 0)
                json_object_set_new(d, "annotations", ann);
            else
                json_decref(ann);
        }
        json_array_append_new(out, d);
    }
    return PIER_OK;
}

/* ---- repository records: the control plane and the console ---- */

#define RECORD_COLUMNS                                                                         \
    "r.id, r.name, (extract(epoch FROM r.created_at) * 1000)::bigint, r.image_tag_mutability," \
    " r.scan_on_push, r.encryption_type, r.kms_key, r.kind,"                                   \
    " array_to_json(r.image_tag_mutability_exclusions)::text"

static const struct db_stmt st_record_create = {
    "repo_record_create",
    "INSERT INTO repositories(name, kind, rule_id, image_tag_mutability, scan_on_push,"
    " encryption_type, kms_key, image_tag_mutability_exclusions)"
    " VALUES ($1, CASE WHEN $2::bigint > 0 THEN 'cache' ELSE 'push' END,"
    " nullif($2::bigint, 0), $3, $4::bool, $5, $6, ARRAY(SELECT json_array_elements_text($7::json)))"
    " ON CONFLICT (name) DO NOTHING RETURNING id", 7};
static const struct db_stmt st_record_get = {
    "repo_record_get", "SELECT " RECORD_COLUMNS " FROM repositories r WHERE r.name = $1", 1};
static const struct db_stmt st_record_list = {
    "repo_record_list",
    "SELECT " RECORD_COLUMNS " FROM repositories r ORDER BY r.name"
    " LIMIT $1::bigint OFFSET $2::bigint", 2};
static const struct db_stmt st_record_delete = {
    "repo_record_delete", "DELETE FROM repositories WHERE name = $1", 1};
static const struct db_stmt st_record_mutability = {
    "repo_record_mutability",
    "UPDATE repositories SET image_tag_mutability = $2,"
    " image_tag_mutability_exclusions = ARRAY(SELECT json_array_elements_text($3::json))"
    " WHERE name = $1", 3};
static const struct db_stmt st_record_scan = {
    "repo_record_scan", "UPDATE repositories SET scan_on_push = $2 WHERE name = $1", 2};
static const struct db_stmt st_record_template = {
    "repo_record_template",
    "UPDATE repositories SET encryption_type = $2, kms_key = $3, image_tag_mutability = $4,"
    " image_tag_mutability_exclusions = ARRAY(SELECT json_array_elements_text($5::json))"
    " WHERE id = $1::bigint", 5};

static void record_row(const PGresult *res, int i, struct repo_record *r)
{
    r->id = db_int(res, i, 0);
    r->name = PQgetvalue(res, i, 1);
    r->created_ms = db_int(res, i, 2);
    r->tag_mutability = PQgetvalue(res, i, 3);
    r->scan_on_push = PQgetvalue(res, i, 4)[0] == 't';
    r->encryption_type = PQgetvalue(res, i, 5);
    r->kms_key = db_isnull(res, i, 6) ? NULL : PQgetvalue(res, i, 6);
    r->cache = strcmp(PQgetvalue(res, i, 7), "cache") == 0;
    r->tag_mutability_exclusions = PQgetvalue(res, i, 8);
}

pier_err repo_create(struct ctx *c, const char *name, long long rule_id,
                     const struct repo_settings *s, bool *created, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_record_create, e, name, rule_id > 0 ? rule_id : 0,
                            s->tag_mutability, s->scan_on_push ? "true" : "false",
                            s->encryption_type, s->kms_key,
                            s->tag_mutability_exclusions ? s->tag_mutability_exclusions : "[]");
    if (!res)
        return e->code;
    *created = PQntuples(res) > 0;
    return PIER_OK;
}

pier_err repo_describe(struct ctx *c, const char *name, struct repo_record *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_record_get, e, name);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "repository %s does not exist", name);
    record_row(res, 0, out);
    return PIER_OK;
}

pier_err repo_list(struct ctx *c, long long limit, long long offset, struct repo_record **out,
                   int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_record_list, e, limit, offset);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++)
        record_row(res, i, &(*out)[i]);
    return PIER_OK;
}

pier_err repo_delete(struct ctx *c, const char *name, struct perr *e)
{
    return db_exec(c->db, c->a, &st_record_delete, e, name) ? PIER_OK : e->code;
}

pier_err repo_set_tag_mutability(struct ctx *c, const char *name, const char *mutability,
                                 const char *exclusions, struct perr *e)
{
    return db_exec(c->db, c->a, &st_record_mutability, e, name, mutability,
                   exclusions ? exclusions : "[]")
               ? PIER_OK
               : e->code;
}

pier_err repo_set_scan_on_push(struct ctx *c, const char *name, bool scan_on_push, struct perr *e)
{
    return db_exec(c->db, c->a, &st_record_scan, e, name, scan_on_push) ? PIER_OK : e->code;
}

pier_err repo_apply_template(struct ctx *c, const char *repo_id, const char *encryption_type,
                             const char *kms_key, const char *tag_mutability,
                             const char *exclusions, struct perr *e)
{
    return db_exec(c->db, c->a, &st_record_template, e, repo_id, encryption_type, kms_key,
                   tag_mutability, exclusions ? exclusions : "[]")
               ? PIER_OK
               : e->code;
}

/* ---- images: manifests and their tags as the control plane lists them ---- */

static const struct db_stmt st_image_count = {
    "repo_image_count",
    "SELECT count(*) FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " WHERE r.name = $1", 1};
static const struct db_stmt st_image_ids = {
    "repo_image_ids",
    "SELECT m.digest, t.name FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest"
    " WHERE r.name = $1 AND ($2 = 'ANY' OR ($2 = 'TAGGED') = (t.name IS NOT NULL))"
    " ORDER BY m.digest, t.name LIMIT $3::bigint OFFSET $4::bigint", 4};
static const struct db_stmt st_images = {
    "repo_images",
    "SELECT m.digest, m.media_type, m.artifact_type, m.size,"
    " (extract(epoch FROM m.created_at) * 1000)::bigint,"
    " coalesce((extract(epoch FROM m.last_pulled_at) * 1000)::bigint, 0), m.body,"
    " coalesce((SELECT json_agg(t.name ORDER BY t.name) FROM tags t"
    "   WHERE t.repository_id = m.repository_id AND t.digest = m.digest), '[]')::text,"
    /* an index: its largest child held here, by the blobs that child references */
    " coalesce((SELECT max(k.s) FROM (SELECT sum(b.size) AS s FROM manifest_references c"
    "   JOIN manifest_references b ON b.repository_id = c.repository_id AND b.manifest = c.child"
    "   AND b.child_kind = 'blob' WHERE c.repository_id = m.repository_id AND c.manifest = m.digest"
    "   AND c.child_kind = 'manifest' GROUP BY c.child) k), 0)"
    " FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " WHERE r.name = $1 AND ($2::text IS NULL OR m.digest = $2)"
    " AND ($5 = 'ANY' OR ($5 = 'TAGGED') = EXISTS (SELECT 1 FROM tags t"
    "      WHERE t.repository_id = m.repository_id AND t.digest = m.digest))"
    " ORDER BY m.created_at, m.digest LIMIT $3::bigint OFFSET $4::bigint", 5};
/* The images a lifecycle policy evaluates: the manifests no image index of
 * the repository lists, each with its tags, in the order they were stored. */
static const struct db_stmt st_lifecycle_images = {
    "repo_lifecycle_images",
    "SELECT m.digest, extract(epoch FROM m.created_at)::bigint,"
    " coalesce(extract(epoch FROM m.last_pulled_at)::bigint, 0),"
    " coalesce(json_agg(t.name ORDER BY t.name) FILTER (WHERE t.name IS NOT NULL), '[]')::text"
    " FROM manifests m JOIN repositories r ON r.id = m.repository_id"
    " LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest"
    " WHERE r.name = $1 AND NOT EXISTS (SELECT 1 FROM manifest_references x"
    "   WHERE x.repository_id = m.repository_id AND x.child = m.digest"
    "   AND x.child_kind = 'manifest' AND x.manifest <> m.digest)"
    " GROUP BY m.repository_id, m.digest, m.created_at, m.last_pulled_at"
    " ORDER BY m.created_at, m.digest LIMIT $2::bigint",
    2};
static const struct db_stmt st_tag_digest = {
    "repo_tag_digest",
    "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id"
    " WHERE r.name = $1 AND t.name = $2", 2};
static const struct db_stmt st_tags_on = {
    "repo_tags_on",
    "SELECT count(*) FROM tags t JOIN repositories r ON r.id = t.repository_id"
    " WHERE r.name = $1 AND t.digest = $2", 2};

/* A bytea column of a text result, decoded into the arena; NULL when it
 * does not decode. */
static const char *bytea_value(struct arena *a, const PGresult *res, int i, int col,
                               size_t *len)
{
    *len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, col), len);
    if (!raw)
        return NULL;
    arena_defer(a, PQfreemem, raw);
    return (const char *)raw;
}

pier_err repo_image_count(struct ctx *c, const char *name, long long *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_image_count, e, name);
    if (!res)
        return e->code;
    *n = db_int(res, 0, 0);
    return PIER_OK;
}

pier_err repo_image_ids(struct ctx *c, const char *name, const char *status, long long limit,
                        long long offset, struct repo_image_id **out, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_image_ids, e, name, status, limit, offset);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        (*out)[i].digest = PQgetvalue(res, i, 0);
        (*out)[i].tag = db_isnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
    }
    return PIER_OK;
}

pier_err repo_images(struct ctx *c, const char *name, const char *digest, const char *status,
                     long long limit, long long offset, struct repo_image **out, int *n,
                     struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_images, e, name, digest, limit, offset, status);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        struct repo_image *m = &(*out)[i];
        m->digest = PQgetvalue(res, i, 0);
        m->media_type = PQgetvalue(res, i, 1);
        m->artifact_type = db_isnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        m->size = db_int(res, i, 3);
        m->pushed_ms = db_int(res, i, 4);
        m->last_pulled_ms = db_int(res, i, 5);
        m->body = bytea_value(c->a, res, i, 6, &m->body_len);
        m->tags_json = PQgetvalue(res, i, 7);
        m->largest_child = db_int(res, i, 8);
    }
    return PIER_OK;
}

pier_err repo_lifecycle_images(struct ctx *c, const char *name, long long limit,
                               struct repo_image **out, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_lifecycle_images, e, name, limit);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        struct repo_image *m = &(*out)[i];
        memset(m, 0, sizeof *m);
        m->digest = PQgetvalue(res, i, 0);
        m->pushed_ms = db_int(res, i, 1) * 1000; /* whole seconds: what the rules count */
        m->last_pulled_ms = db_int(res, i, 2) * 1000;
        m->tags_json = PQgetvalue(res, i, 3);
    }
    return PIER_OK;
}

pier_err repo_tag_digest(struct ctx *c, const char *name, const char *tag, const char **digest,
                         struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_tag_digest, e, name, tag);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_MANIFEST_UNKNOWN, "%s:%s is not a tag", name, tag);
    *digest = PQgetvalue(res, 0, 0);
    return PIER_OK;
}

pier_err repo_tags_on(struct ctx *c, const char *name, const char *digest, long long *n,
                      struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_tags_on, e, name, digest);
    if (!res)
        return e->code;
    *n = db_int(res, 0, 0);
    return PIER_OK;
}

/* ---- console views ---- */

static const struct db_stmt st_most_pulled = {
    "repo_most_pulled",
    "SELECT r.name, r.pulls, coalesce(cr.prefix, '') FROM repositories r"
    " LEFT JOIN cache_rules cr ON cr.id = r.rule_id WHERE r.pulls > 0"
    " ORDER BY r.pulls DESC, r.name LIMIT 50", 0};
static const struct db_stmt st_search = {
    "repo_search",
    "SELECT r.name, r.kind, coalesce(cr.prefix, ''), extract(epoch FROM r.created_at)::bigint,"
    " (SELECT count(*) FROM manifests m WHERE m.repository_id = r.id),"
    " (SELECT count(*) FROM tags t WHERE t.repository_id = r.id), r.pulls"
    " FROM repositories r LEFT JOIN cache_rules cr ON cr.id = r.rule_id"
    " WHERE strpos(r.name, $1) > 0 ORDER BY r.name LIMIT 500", 1};
static const struct db_stmt st_tag_details = {
    "repo_tag_details",
    "SELECT t.name, t.digest, m.media_type, m.size, extract(epoch FROM m.created_at)::bigint,"
    " coalesce(extract(epoch FROM m.last_pulled_at)::bigint, 0),"
    " coalesce(extract(epoch FROM t.checked_at)::bigint, 0),"
    " (r.kind = 'cache' AND (t.checked_at IS NULL OR t.checked_at <"
    "   now() - make_interval(secs => coalesce(cr.refresh_seconds, 0)))),"
    " m.body"
    " FROM tags t JOIN repositories r ON r.id = t.repository_id"
    " JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest"
    " LEFT JOIN cache_rules cr ON cr.id = r.rule_id WHERE r.name = $1 ORDER BY t.name", 1};

pier_err repo_most_pulled(struct ctx *c, struct repo_pulls **out, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_most_pulled, e);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        (*out)[i].name = PQgetvalue(res, i, 0);
        (*out)[i].pulls = db_int(res, i, 1);
        (*out)[i].rule_prefix = PQgetvalue(res, i, 2);
    }
    return PIER_OK;
}

pier_err repo_search(struct ctx *c, const char *q, struct repo_summary **out, int *n,
                     struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_search, e, q);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        struct repo_summary *s = &(*out)[i];
        s->name = PQgetvalue(res, i, 0);
        s->cache = strcmp(PQgetvalue(res, i, 1), "cache") == 0;
        s->rule_prefix = PQgetvalue(res, i, 2);
        s->created_at = db_int(res, i, 3);
        s->images = db_int(res, i, 4);
        s->tags = db_int(res, i, 5);
        s->pulls = db_int(res, i, 6);
    }
    return PIER_OK;
}

pier_err repo_tag_details(struct ctx *c, const char *name, struct repo_tag_detail **out, int *n,
                          struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_tag_details, e, name);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        struct repo_tag_detail *t = &(*out)[i];
        t->tag = PQgetvalue(res, i, 0);
        t->digest = PQgetvalue(res, i, 1);
        t->media_type = PQgetvalue(res, i, 2);
        t->size = db_int(res, i, 3);
        t->pushed_at = db_int(res, i, 4);
        t->last_pulled_at = db_int(res, i, 5);
        t->checked_at = db_int(res, i, 6);
        t->stale = PQgetvalue(res, i, 7)[0] == 't';
        t->body = bytea_value(c->a, res, i, 8, &t->body_len);
    }
    return PIER_OK;
}

/* ---- what the cache and the administrators ask of the repository tables ---- */

/* The counter counts every pull; the time only those of principals that
 * are not excluded (ECR's pull-time update exclusions). */
static const struct db_stmt st_note_pulls = {
    "repo_note_pulls",
    "WITH m AS (UPDATE manifests m SET last_pulled_at = now() FROM repositories r"
    "   WHERE m.repository_id = r.id AND r.name = $1 AND m.digest = $2"
    "   AND ($4::text IS NULL OR NOT EXISTS (SELECT 1 FROM pull_time_exclusions x"
    "        WHERE x.principal_arn = $4::text)) RETURNING r.id)"
    " UPDATE repositories r SET pulls = pulls + $3::bigint WHERE r.name = $1"
    " AND EXISTS (SELECT 1 FROM manifests mm WHERE mm.repository_id = r.id AND mm.digest = $2)",
    4};
static const struct db_stmt st_pushed_under = {
    "repo_pushed_under",
    "SELECT name FROM repositories WHERE kind = 'push'"
    " AND ($1 = 'ROOT' OR left(name, length($1) + 1) = $1 || '/') ORDER BY name LIMIT 1", 1};
static const struct db_stmt st_adopt = {
    "repo_adopt",
    "UPDATE repositories SET rule_id = $1::bigint WHERE kind = 'cache'"
    " AND ($2 = 'ROOT' OR left(name, length($2) + 1) = $2 || '/')"
    " AND (rule_id IS NULL OR ($2 <> 'ROOT' AND rule_id IN (SELECT id FROM cache_rules"
    "      WHERE prefix = 'ROOT' OR length(prefix) < length($2))))", 2};
static const struct db_stmt st_counts = {
    "repo_counts",
    "SELECT (SELECT count(*) FROM repositories), (SELECT count(*) FROM blobs),"
    " (SELECT coalesce(sum(size), 0) FROM blobs), (SELECT count(*) FROM manifests),"
    " (SELECT count(*) FROM tags)", 0};

pier_err repo_note_pulls(struct ctx *c, const char *name, const char *digest,
                         const char *principal, long long count, struct perr *e)
{
    return db_exec(c->db, c->a, &st_note_pulls, e, name, digest, count, principal) ? PIER_OK
                                                                                  : e->code;
}

pier_err repo_pushed_under(struct ctx *c, const char *prefix, const char **name, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_pushed_under, e, prefix);
    if (!res)
        return e->code;
    *name = PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : NULL;
    return PIER_OK;
}

pier_err repo_adopt(struct ctx *c, long long rule_id, const char *prefix, struct perr *e)
{
    return db_exec(c->db, c->a, &st_adopt, e, rule_id, prefix) ? PIER_OK : e->code;
}

/* Bytes per repository: the blobs it links (a blob two repositories link
 * counts in both). */
static const struct db_stmt st_usage = {
    "repo_usage",
    "SELECT r.name, r.kind = 'cache', coalesce(cr.prefix, ''), count(b.digest),"
    " coalesce(sum(b.size), 0)::bigint,"
    " (SELECT count(*) FROM manifests m WHERE m.repository_id = r.id)"
    " FROM repositories r LEFT JOIN cache_rules cr ON cr.id = r.rule_id"
    " LEFT JOIN repository_blobs rb ON rb.repository_id = r.id"
    " LEFT JOIN blobs b ON b.digest = rb.digest WHERE strpos(r.name, $2) > 0"
    " GROUP BY r.id, cr.prefix ORDER BY 5 DESC, r.name LIMIT $1::int", 2};
/* Bytes of pushed and of cache repositories, each blob once per kind. */
static const struct db_stmt st_usage_kinds = {
    "repo_usage_kinds",
    "SELECT coalesce(sum(size) FILTER (WHERE kind = 'push'), 0)::bigint,"
    " coalesce(sum(size) FILTER (WHERE kind = 'cache'), 0)::bigint FROM"
    " (SELECT DISTINCT r.kind, b.digest, b.size FROM repositories r"
    "  JOIN repository_blobs rb ON rb.repository_id = r.id"
    "  JOIN blobs b ON b.digest = rb.digest) AS k", 0};

pier_err repo_usage(struct ctx *c, const char *q, int limit, struct repo_usage **out, int *n,
                    long long *pushed_bytes, long long *cache_bytes, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_usage, e, limit, q);
    PGresult *kinds = res ? db_exec(c->db, c->a, &st_usage_kinds, e) : NULL;
    if (!kinds)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, (size_t)(*n ? *n : 1) * sizeof **out);
    for (int i = 0; i < *n; i++) {
        struct repo_usage *u = &(*out)[i];
        u->name = arena_strdup(c->a, PQgetvalue(res, i, 0));
        u->cache = PQgetvalue(res, i, 1)[0] == 't';
        u->rule_prefix = arena_strdup(c->a, PQgetvalue(res, i, 2));
        u->blobs = db_int(res, i, 3);
        u->bytes = db_int(res, i, 4);
        u->images = db_int(res, i, 5);
    }
    *pushed_bytes = db_int(kinds, 0, 0);
    *cache_bytes = db_int(kinds, 0, 1);
    return PIER_OK;
}

pier_err repo_tag_history(struct ctx *c, const char *name, const char *tag, int limit,
                          struct repo_tag_move **out, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_history_get, e, name, tag, limit);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, (size_t)(*n ? *n : 1) * sizeof **out);
    for (int i = 0; i < *n; i++) {
        (*out)[i].digest = arena_strdup(c->a, PQgetvalue(res, i, 0));
        (*out)[i].previous = arena_strdup(c->a, PQgetvalue(res, i, 1));
        (*out)[i].at = db_int(res, i, 2);
    }
    return PIER_OK;
}

pier_err repo_tag_evicted(struct ctx *c, const char *name, const char *tag, const char *digest,
                          struct perr *e)
{
    return db_exec(c->db, c->a, &st_history_evicted, e, name, tag, digest) ? PIER_OK : e->code;
}

pier_err repo_counts(struct ctx *c, struct repo_counts *out, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_counts, e);
    if (!res)
        return e->code;
    out->repositories = db_int(res, 0, 0);
    out->blobs = db_int(res, 0, 1);
    out->blob_bytes = db_int(res, 0, 2);
    out->manifests = db_int(res, 0, 3);
    out->tags = db_int(res, 0, 4);
    return PIER_OK;
}

/* ---- garbage collection (docs/storage.md) ---- */

#define GC_AGE "make_interval(secs => $2::int)"
/* A link a sweep removes: older than the grace (or in the cache repositories
 * of the rule being brought within its budget) and referenced by no manifest
 * of its repository. Over rb (repository_blobs) and r (its repository). */
#define GC_LINK_GOES                                                                       \
    "(rb.created_at < now() - " GC_AGE " OR coalesce(r.rule_id = $3::bigint, false))"     \
    " AND NOT EXISTS (SELECT 1 FROM manifest_references mr"                                \
    "                 WHERE mr.repository_id = rb.repository_id AND mr.child = rb.digest)"
/* A blob a sweep removes once its links are gone: old enough (any age for a
 * budget) and referenced by no manifest anywhere. Over b (blobs). */
#define GC_BLOB_GOES                                                                       \
    "(b.created_at < now() - " GC_AGE " OR $3::bigint > 0)"                               \
    " AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child = b.digest)"

/* The next n digests after $1 with a blob or a link to remove. Blobs and
 * links are each walked in digest order through their own index (a) and (l),
 * each to at most n rows; where one of them stopped at its limit, digests
 * beyond its last are left for the next round (cut), so none is skipped.
 * The conditions are GC_BLOB_GOES and GC_LINK_GOES, with "mr.child > $1"
 * added so that the anti joins start their walk of manifest_references at $1
 * rather than at its first row. One query with an OR over both would hash
 * every link and reference of the registry in every round. */
static const struct db_stmt st_gc_candidates = {
    "repo_gc_candidates",
    "WITH a AS (SELECT b.digest FROM blobs b WHERE b.digest > $1"
    "           AND (b.created_at < now() - " GC_AGE " OR $3::bigint > 0)"
    "           AND NOT EXISTS (SELECT 1 FROM manifest_references mr"
    "                           WHERE mr.child = b.digest AND mr.child > $1)"
    "           ORDER BY b.digest LIMIT $4::int),"
    " l AS (SELECT DISTINCT rb.digest FROM repository_blobs rb"
    "       JOIN repositories r ON r.id = rb.repository_id"
    "       WHERE rb.digest > $1"
    "       AND (rb.created_at < now() - " GC_AGE " OR coalesce(r.rule_id = $3::bigint, false))"
    "       AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child > $1"
    "                       AND mr.repository_id = rb.repository_id AND mr.child = rb.digest)"
    "       ORDER BY rb.digest LIMIT $4::int),"
    " cut AS (SELECT least((SELECT max(digest) FROM a HAVING count(*) >= $4::int),"
    "                      (SELECT max(digest) FROM l HAVING count(*) >= $4::int)) AS d)"
    " SELECT u.digest, b.size FROM (SELECT digest FROM a UNION SELECT digest FROM l) u"
    " JOIN blobs b ON b.digest = u.digest, cut"
    " WHERE cut.d IS NULL OR u.digest <= cut.d ORDER BY u.digest LIMIT $4::int", 4};
/* Session locks, tried: a digest someone publishes, links or references
 * right now is skipped, not waited for. */
static const struct db_stmt st_gc_lock = {
    "repo_gc_lock",
    "SELECT d, pg_try_advisory_lock(hashtextextended(d, 7039)) FROM unnest($1::text[]) AS d", 1};
static const struct db_stmt st_gc_unlock = {
    "repo_gc_unlock",
    "SELECT pg_advisory_unlock(hashtextextended(d, 7039)) FROM unnest($1::text[]) AS d", 1};
static const struct db_stmt st_gc_links = {
    "repo_gc_links",
    "DELETE FROM repository_blobs rb USING repositories r"
    " WHERE rb.digest = ANY($1::text[]) AND r.id = rb.repository_id AND " GC_LINK_GOES, 3};
static const struct db_stmt st_gc_blobs = {
    "repo_gc_blobs",
    "WITH gone AS (DELETE FROM blobs b WHERE b.digest = ANY($1::text[]) AND " GC_BLOB_GOES
    "   AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)"
    "   RETURNING b.digest, b.size)"
    " INSERT INTO blob_tombstones(digest, size) SELECT digest, size FROM gone"
    " ON CONFLICT (digest) DO UPDATE SET size = EXCLUDED.size, created_at = now()"
    " RETURNING digest, size", 3};
/* What the two statements above would do, without doing it. */
static const struct db_stmt st_gc_dry = {
    "repo_gc_dry",
    "SELECT (SELECT count(*) FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id"
    "        WHERE rb.digest = ANY($1::text[]) AND " GC_LINK_GOES "),"
    " count(*), coalesce(sum(b.size), 0)::bigint FROM blobs b"
    " WHERE b.digest = ANY($1::text[]) AND " GC_BLOB_GOES
    " AND NOT EXISTS (SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id"
    "                 WHERE rb.digest = b.digest AND NOT (" GC_LINK_GOES "))", 3};
static const struct db_stmt st_gc_tomb_done = {
    "repo_gc_tomb_done", "DELETE FROM blob_tombstones WHERE digest = ANY($1::text[])", 1};
static const struct db_stmt st_gc_tombs = {
    "repo_gc_tombs",
    "SELECT digest FROM blob_tombstones WHERE digest > $1 ORDER BY digest LIMIT 500", 1};
static const struct db_stmt st_gc_rows = {
    "repo_gc_rows", "SELECT digest FROM blobs WHERE digest = ANY($1::text[])", 1};
static const struct db_stmt st_gc_reclaimable = {
    "repo_gc_reclaimable",
    "SELECT count(*), coalesce(sum(b.size), 0)::bigint FROM blobs b"
    " WHERE b.created_at < now() - make_interval(secs => $1::int)"
    " AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.child = b.digest)"
    " AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest"
    "                 AND rb.created_at >= now() - make_interval(secs => $1::int))", 1};

pier_err repo_gc_candidates(struct ctx *c, const char *after, int grace, long long rule_id, int n,
                            struct repo_gc_candidate **out, int *nout, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_gc_candidates, e, after ? after : "", grace,
                            rule_id, n);
    if (!res)
        return e->code;
    *nout = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*nout ? *nout : 1));
    for (int i = 0; i < *nout; i++) {
        (*out)[i].digest = PQgetvalue(res, i, 0);
        (*out)[i].size = db_int(res, i, 1);
    }
    return PIER_OK;
}

/* Remove the files of digests whose rows are gone, then their tombstones. A
 * file that cannot be removed keeps its tombstone for the next sweep. */
static pier_err unlink_tombstoned(struct ctx *c, PGresult *gone, long long *blobs,
                                  long long *bytes, struct perr *e)
{
    int n = PQntuples(gone);
    const char **done = arena_alloc(c->a, sizeof *done * (size_t)(n ? n : 1));
    size_t nd = 0;
    for (int i = 0; i < n; i++) {
        const char *digest = PQgetvalue(gone, i, 0);
        if (!grammar_is_digest(digest))
            continue; /* never a path from a value that is not a digest */
        char path[PATH_MAX];
        blobstore_blob_path(c->bs, digest, path);
        if (unlink(path) != 0 && errno != ENOENT) {
            log_warn("gc: cannot remove %s (%s); the next sweep tries again", path,
                     strerror(errno));
            continue;
        }
        done[nd++] = digest;
        (*blobs)++;
        *bytes += db_int(gone, i, 1);
    }
    if (nd && !db_exec(c->db, c->a, &st_gc_tomb_done, e, pg_array(c->a, done, nd)))
        return e->code;
    return PIER_OK;
}

/* Try the session locks of ds: the locked ones in *locked (arena), *nl. */
static pier_err gc_lock(struct ctx *c, const char *const *ds, int n, const char ***locked,
                        size_t *nl, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_gc_lock, e, pg_array(c->a, ds, (size_t)n));
    if (!res)
        return e->code;
    *locked = arena_alloc(c->a, sizeof **locked * (size_t)(n ? n : 1));
    *nl = 0;
    for (int i = 0; i < PQntuples(res); i++)
        if (PQgetvalue(res, i, 1)[0] == 't')
            (*locked)[(*nl)++] = PQgetvalue(res, i, 0);
    return PIER_OK;
}

static void gc_unlock(struct ctx *c, const char *const *ds, size_t n)
{
    struct perr ignore; /* a broken connection has released them already */
    if (n)
        (void)db_exec(c->db, c->a, &st_gc_unlock, &ignore, pg_array(c->a, ds, n));
}

pier_err repo_gc_collect(struct ctx *c, const struct repo_gc_candidate *cand, int n, int grace,
                         long long rule_id, bool dry_run, struct repo_gc_result *r,
                         struct perr *e)
{
    if (n <= 0)
        return PIER_OK;
    const char **ds = arena_alloc(c->a, sizeof *ds * (size_t)n);
    for (int i = 0; i < n; i++) {
        PIER_ASSERT(grammar_is_digest(cand[i].digest));
        ds[i] = cand[i].digest;
    }
    if (dry_run) {
        PGresult *res = db_exec(c->db, c->a, &st_gc_dry, e, pg_array(c->a, ds, (size_t)n), grace,
                                rule_id);
        if (!res)
            return e->code;
        r->links += db_int(res, 0, 0);
        r->blobs += db_int(res, 0, 1);
        r->bytes += db_int(res, 0, 2);
        return PIER_OK;
    }
    const char **locked;
    size_t nl;
    pier_err rc = gc_lock(c, ds, n, &locked, &nl, e);
    if (rc)
        return rc;
    r->busy += n - (long long)nl;
    if (nl == 0)
        return PIER_OK;
    char *arr = pg_array(c->a, locked, nl);
    PGresult *links = NULL, *gone = NULL;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        goto unlock;
    if (!(links = db_exec(c->db, c->a, &st_gc_links, e, arr, grace, rule_id)) ||
        !(gone = db_exec(c->db, c->a, &st_gc_blobs, e, arr, grace, rule_id)))
        rc = e->code;
    if ((rc = db_tx_end(c->db, rc, e)) != PIER_OK)
        goto unlock;
    r->links += atoll(PQcmdTuples(links));
    /* Committed: the rows are gone and their tombstones recorded. The files
     * go while the locks still keep publishers of the same digests out. */
    rc = unlink_tombstoned(c, gone, &r->blobs, &r->bytes, e);
unlock:
    gc_unlock(c, locked, nl);
    return rc;
}

/* Is digest among the first column of res? */
static bool has_row(const PGresult *res, const char *digest)
{
    for (int j = 0; j < PQntuples(res); j++)
        if (strcmp(PQgetvalue(res, j, 0), digest) == 0)
            return true;
    return false;
}

pier_err repo_gc_finish(struct ctx *c, long long *finished, struct perr *e)
{
    *finished = 0;
    char after[DIGEST_MAX_LEN + 2] = "";
    for (;;) {
        PGresult *res = db_exec(c->db, c->a, &st_gc_tombs, e, after);
        if (!res)
            return e->code;
        int n = PQntuples(res);
        if (n == 0)
            return PIER_OK;
        snprintf(after, sizeof after, "%s", PQgetvalue(res, n - 1, 0));
        const char **ds = arena_alloc(c->a, sizeof *ds * (size_t)n);
        for (int i = 0; i < n; i++)
            ds[i] = PQgetvalue(res, i, 0);
        const char **locked;
        size_t nl;
        pier_err rc = gc_lock(c, ds, n, &locked, &nl, e);
        if (rc)
            return rc;
        if (nl == 0)
            continue;
        PGresult *rows = db_exec(c->db, c->a, &st_gc_rows, e, pg_array(c->a, locked, nl));
        const char **done = arena_alloc(c->a, sizeof *done * nl);
        size_t nd = 0;
        for (size_t i = 0; rows && i < nl; i++) {
            /* A row that exists again was published after the sweep died:
             * the file is the new one, only the tombstone goes. */
            if (!has_row(rows, locked[i])) {
                char path[PATH_MAX];
                blobstore_blob_path(c->bs, locked[i], path);
                if (unlink(path) != 0 && errno != ENOENT) {
                    log_warn("gc: cannot remove %s (%s); the next sweep tries again", path,
                             strerror(errno));
                    continue;
                }
                (*finished)++;
            }
            done[nd++] = locked[i];
        }
        if (!rows || (nd && !db_exec(c->db, c->a, &st_gc_tomb_done, e, pg_array(c->a, done, nd))))
            rc = e->code;
        gc_unlock(c, locked, nl);
        if (rc)
            return rc;
    }
}

pier_err repo_gc_reclaimable(struct ctx *c, int grace, long long *blobs, long long *bytes,
                             struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_gc_reclaimable, e, grace);
    if (!res)
        return e->code;
    *blobs = db_int(res, 0, 0);
    *bytes = db_int(res, 0, 1);
    return PIER_OK;
}

/* ---- the pull-through cache's byte budgets ---- */

/* The cache repositories of rule $1, or of every rule when $1 is 0. */
#define CACHE_REPOS_OF_RULE \
    " r.kind = 'cache' AND (r.rule_id = $1::bigint OR ($1::bigint = 0 AND r.rule_id IS NOT NULL))"

static const struct db_stmt st_cache_usage = {
    "repo_cache_usage",
    "SELECT (SELECT coalesce(sum(b.size), 0) FROM blobs b WHERE b.digest IN"
    "   (SELECT rb.digest FROM repositories r JOIN repository_blobs rb ON rb.repository_id = r.id"
    "    WHERE" CACHE_REPOS_OF_RULE ")),"
    " (SELECT coalesce(extract(epoch FROM min(coalesce(m.last_pulled_at, m.created_at)))::bigint, 0)"
    "   FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE" CACHE_REPOS_OF_RULE
    ")",
    1};
static const struct db_stmt st_cache_lru = {
    "repo_cache_lru",
    "SELECT r.name, m.digest, r.rule_id, cr.prefix,"
    " coalesce(extract(epoch FROM m.last_pulled_at)::bigint, 0),"
    " extract(epoch FROM m.created_at)::bigint"
    " FROM repositories r JOIN cache_rules cr ON cr.id = r.rule_id"
    " JOIN manifests m ON m.repository_id = r.id"
    " WHERE" CACHE_REPOS_OF_RULE
    " AND coalesce(m.last_pulled_at, m.created_at) < now() - make_interval(secs => $2::int)"
    " ORDER BY coalesce(m.last_pulled_at, m.created_at), m.created_at, r.id, m.digest"
    " OFFSET $3::int LIMIT $4::int",
    4};
static const struct db_stmt st_image_blobs = {
    "repo_image_blobs",
    "SELECT mr.child, coalesce(b.size, -1) FROM repositories r"
    " JOIN manifest_references mr ON mr.repository_id = r.id"
    " LEFT JOIN blobs b ON b.digest = mr.child"
    " WHERE r.name = $1 AND mr.manifest = $2 AND mr.child_kind = 'blob' ORDER BY mr.child",
    2};

pier_err repo_cache_usage(struct ctx *c, long long rule_id, long long *bytes, long long *oldest,
                          struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_cache_usage, e, rule_id);
    if (!res)
        return e->code;
    *bytes = db_int(res, 0, 0);
    if (oldest)
        *oldest = db_int(res, 0, 1);
    return PIER_OK;
}

pier_err repo_cache_lru(struct ctx *c, long long rule_id, int idle, int skip, int n,
                        struct repo_cache_image **out, int *nout, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_cache_lru, e, rule_id, idle, skip, n);
    if (!res)
        return e->code;
    *nout = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*nout ? *nout : 1));
    for (int i = 0; i < *nout; i++) {
        struct repo_cache_image *m = &(*out)[i];
        m->name = PQgetvalue(res, i, 0);
        m->digest = PQgetvalue(res, i, 1);
        m->rule_id = db_int(res, i, 2);
        m->rule_prefix = PQgetvalue(res, i, 3);
        m->last_pulled_at = db_int(res, i, 4);
        m->pushed_at = db_int(res, i, 5);
    }
    return PIER_OK;
}

pier_err repo_image_blobs(struct ctx *c, const char *name, const char *digest,
                          struct repo_gc_candidate **out, int *n, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_image_blobs, e, name, digest);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        (*out)[i].digest = PQgetvalue(res, i, 0);
        (*out)[i].size = db_int(res, i, 1);
    }
    return PIER_OK;
}

/* ---- consistency check (store/fsck.c, docs/operations.md) ---- */

/* The rows of one fan-out directory: every digest that starts with prefix
 * ("sha256:ab"); '~' sorts after every hex digit in the C collation. */
static const struct db_stmt st_fsck_rows = {
    "repo_fsck_rows",
    "SELECT digest, size FROM blobs WHERE digest >= $1 AND digest < $1 || '~' ORDER BY digest", 1};
static const struct db_stmt st_fsck_lock_shared = {
    "repo_fsck_lock_shared", "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 7039))", 1};
/* Run after the lock, in a statement of its own: its snapshot then sees
 * whatever the holder committed before letting go. */
static const struct db_stmt st_fsck_state = {
    "repo_fsck_state",
    "SELECT (SELECT size FROM blobs WHERE digest = $1),"
    " EXISTS (SELECT 1 FROM blob_tombstones WHERE digest = $1)",
    1};
static const struct db_stmt st_fsck_unlink_all = {
    "repo_fsck_unlink_all", "DELETE FROM repository_blobs WHERE digest = $1", 1};
static const struct db_stmt st_fsck_row_delete = {
    "repo_fsck_row_delete", "DELETE FROM blobs WHERE digest = $1 RETURNING size", 1};
/* References of pushed manifests that cannot be served: a blob without a
 * row, a child manifest the repository does not hold. Cache repositories
 * fetch both on demand, so theirs are not listed. */
static const struct db_stmt st_fsck_refs = {
    "repo_fsck_refs",
    "SELECT r.name, mr.manifest, mr.child, mr.child_kind FROM manifest_references mr"
    " JOIN repositories r ON r.id = mr.repository_id"
    " WHERE r.kind = 'push' AND ((mr.child_kind = 'blob'"
    "   AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = mr.child))"
    "  OR (mr.child_kind = 'manifest' AND NOT EXISTS (SELECT 1 FROM manifests m"
    "   WHERE m.repository_id = mr.repository_id AND m.digest = mr.child)))"
    " ORDER BY r.name, mr.manifest, mr.child LIMIT $1::int",
    1};

pier_err repo_fsck_rows(struct ctx *c, const char *prefix, struct repo_gc_candidate **out, int *n,
                        struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_fsck_rows, e, prefix);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        (*out)[i].digest = PQgetvalue(res, i, 0);
        (*out)[i].size = db_int(res, i, 1);
    }
    return PIER_OK;
}

pier_err repo_fsck_settle(struct ctx *c, const char *digest, struct repo_fsck_state *out,
                          struct perr *e)
{
    PIER_ASSERT(grammar_is_digest(digest));
    memset(out, 0, sizeof *out);
    out->size = -1;
    pier_err rc;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    PGresult *res;
    if (!db_exec(c->db, c->a, &st_fsck_lock_shared, e, digest) ||
        !(res = db_exec(c->db, c->a, &st_fsck_state, e, digest)))
        return db_tx_end(c->db, e->code, e);
    out->row = !db_isnull(res, 0, 0);
    if (out->row)
        out->size = db_int(res, 0, 0);
    out->tombstone = db_value(res, 0, 1)[0] == 't';
    char path[PATH_MAX];
    blobstore_blob_path(c->bs, digest, path);
    /* Still under the lock: nobody publishes or collects this file now. */
    out->file_errno = lstat(path, &out->st) == 0 ? 0 : errno;
    return db_tx_end(c->db, PIER_OK, e); /* nothing was written: only the lock ends */
}

/* Is the file at path still the one the caller judged: gone (was NULL), or
 * the same inode with the same size and modification time? */
static bool file_unchanged(const char *path, const struct stat *was)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return was == NULL && errno == ENOENT;
    return was != NULL && S_ISREG(st.st_mode) && st.st_dev == was->st_dev &&
           st.st_ino == was->st_ino && st.st_size == was->st_size &&
           st.st_mtim.tv_sec == was->st_mtim.tv_sec && st.st_mtim.tv_nsec == was->st_mtim.tv_nsec;
}

pier_err repo_blob_forget(struct ctx *c, const char *digest, const struct stat *was,
                          const char *quarantine, bool *done, long long *links, struct perr *e)
{
    PIER_ASSERT(grammar_is_digest(digest) && (was == NULL) == (quarantine == NULL));
    PIER_ASSERT(!db_in_tx(c->db)); /* its commit decides where the file ends up */
    *done = false;
    *links = 0;
    char path[PATH_MAX];
    blobstore_blob_path(c->bs, digest, path);
    pier_err rc;
    if ((rc = db_tx_begin(c->db, e)) != PIER_OK)
        return rc;
    /* Exclusive, as a sweep or a publisher takes it: no link, manifest push
     * or publication of this digest runs until the commit. */
    if (!db_exec(c->db, c->a, &st_blob_lock, e, digest))
        return db_tx_end(c->db, e->code, e);
    if (!file_unchanged(path, was))
        return db_tx_end(c->db, PIER_OK, e); /* changed meanwhile: the next check looks again */
    PGresult *l, *row;
    if (!(l = db_exec(c->db, c->a, &st_fsck_unlink_all, e, digest)) ||
        !(row = db_exec(c->db, c->a, &st_fsck_row_delete, e, digest)))
        return db_tx_end(c->db, e->code, e);
    if (PQntuples(row) == 0) {
        /* The row went meanwhile (a sweep): undo the links' deletion. */
        struct perr undo;
        pier_err undone = db_tx_end(c->db, perr_set(&undo, PIER_E_CONFLICT, "row gone"), &undo);
        (void)undone; /* rolled back; the caller sees nothing done */
        return PIER_OK;
    }
    if (quarantine && rename(path, quarantine) != 0) {
        int err = errno;
        rc = perr_set(e, PIER_E_INTERNAL, "cannot move %s to %s: %s", path, quarantine,
                      strerror(err));
        return db_tx_end(c->db, rc, e);
    }
    if ((rc = db_tx_end(c->db, PIER_OK, e)) != PIER_OK) {
        /* The row stays: put the file back where it points. */
        if (quarantine && rename(quarantine, path) != 0)
            log_warn("fsck: %s stays in %s (%s); its row points at nothing now", digest, quarantine,
                     strerror(errno));
        return rc;
    }
    *done = true;
    *links = atoll(PQcmdTuples(l));
    return PIER_OK;
}

pier_err repo_fsck_references(struct ctx *c, int limit, struct repo_fsck_ref **out, int *n,
                              struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_fsck_refs, e, limit);
    if (!res)
        return e->code;
    *n = PQntuples(res);
    *out = arena_alloc(c->a, sizeof **out * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) {
        (*out)[i].repository = PQgetvalue(res, i, 0);
        (*out)[i].manifest = PQgetvalue(res, i, 1);
        (*out)[i].child = PQgetvalue(res, i, 2);
        (*out)[i].blob = strcmp(PQgetvalue(res, i, 3), "blob") == 0;
    }
    return PIER_OK;
}
