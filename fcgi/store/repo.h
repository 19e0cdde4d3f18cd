/* repo: the registry's metadata store — repositories, blob links, manifests,
 * tags and the listings built from them. It owns the tables repositories,
 * blobs, repository_blobs, manifests, manifest_references and tags: other
 * modules call these functions instead of querying them. Every statement is
 * parameterized; every name and digest passed in has already passed the
 * grammar checks. Writes that may create a repository do not authorize: the
 * caller decided with authz_create_or_import() before calling. */
#ifndef PIER_REPO_H
#define PIER_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <jansson.h>
#include "lib/contract.h"
#include "lib/err.h"
#include "store/manifest.h"
#include "lib/ctx.h"

/* Size of a blob linked to repository name: PIER_OK, or PIER_E_BLOB_UNKNOWN.
 * *rule_id (may be NULL) receives the repository's cache rule, 0 if none. */
PIER_MUST_USE
pier_err repo_blob_get(struct ctx *c, const char *name, const char *digest, long long *size,
                       long long *rule_id, struct perr *e);
/* Size of a blob known to the registry in any repository. */
PIER_MUST_USE
pier_err repo_blob_any(struct ctx *c, const char *digest, long long *size, struct perr *e);
/* Link a stored blob (its row exists) into repository name, creating the
 * repository. rule_id 0 is a push: refused (PIER_E_DENIED) for cache
 * repositories and for new names under a cache rule. rule_id > 0 links into
 * the cache repository of that rule. PIER_E_BLOB_UNKNOWN when the blob is not
 * stored (any more: garbage collection may have taken it a moment ago; the
 * caller uploads or fetches it again). Joins the caller's transaction when
 * one is open, else runs in its own. */
PIER_MUST_USE
pier_err repo_blob_link(struct ctx *c, const char *name, const char *digest, long long size,
                        long long rule_id, struct perr *e);
/* Publish a verified temporary file as blob digest and link it into
 * repository name (as repo_blob_link), in one transaction (the caller's, when
 * one is open) that holds the digest's lock, so that repo_blob_drop_orphan
 * never removes a file between its publication and its row. If tmp_path is
 * gone but the blob is already published with this size, that file is
 * linked. */
PIER_MUST_USE
pier_err repo_blob_publish(struct ctx *c, const char *name, const char *tmp_path,
                           const char *digest, long long size, long long rule_id, struct perr *e);
/* Remove the blob file at path if no blobs row names digest and the file is
 * at least min_age seconds old, under the digest's lock. */
PIER_MUST_USE
pier_err repo_blob_drop_orphan(struct ctx *c, const char *digest, const char *path, int min_age,
                               bool *removed, struct perr *e);
/* Does repository name exist? */
PIER_MUST_USE
pier_err repo_exists_named(struct ctx *c, const char *name, bool *exists, struct perr *e);
/* Like repo_blob_any, but only if the caller may read the blob from at least
 * one repository holding it (mount without from=). */
PIER_MUST_USE
pier_err repo_blob_readable(struct ctx *c, const char *digest, long long *size, struct perr *e);
/* May clients push to name? PIER_E_DENIED (with the reason) for cache
 * repositories and names under a pull-through cache rule. *exists says
 * whether the repository exists (one lookup answers both). */
PIER_MUST_USE
pier_err repo_check_push(struct ctx *c, const char *name, bool *exists, struct perr *e);
/* The size the manifests of repository name declare for blob digest, or -1
 * when no manifest there references it (or none recorded a size). */
PIER_MUST_USE
pier_err repo_blob_declared_size(struct ctx *c, const char *name, const char *digest,
                                 long long *size, struct perr *e);
/* Remove the link. The blobs row and the file stay: nothing collects blobs
 * that no repository links any more (yet). */
PIER_MUST_USE
pier_err repo_blob_unlink(struct ctx *c, const char *name, const char *digest, struct perr *e);

struct stored_manifest {
    const char *digest;
    const char *media_type;
    const char *body;   /* NULL when not requested */
    long long size;
    long long rule_id;  /* cache rule of the repository, 0 for pushed repositories */
    bool cache;         /* the repository is a pull-through cache repository */
    bool fresh;         /* by tag in a cache repository: checked within the refresh interval,
                           or a tag the repository's mutability setting keeps where it is */
};

/* Manifest by tag or digest. PIER_E_MANIFEST_UNKNOWN, or PIER_E_NAME_UNKNOWN
 * when the repository itself does not exist. */
PIER_MUST_USE
pier_err repo_manifest_get(struct ctx *c, const char *name, const char *ref, bool with_body,
                           struct stored_manifest *out, struct perr *e);
/* Store a parsed, digest-checked manifest and move tag (may be NULL) to it.
 * A push (rule_id 0) first checks that every referenced blob and child
 * manifest is present in this repository (PIER_E_MANIFEST_BLOB_UNKNOWN names
 * the first missing one). A cache import (rule_id > 0) stores what the
 * upstream sent (blobs and children are fetched on demand) and marks the tag
 * as just checked. A tag that exists and that the repository's mutability
 * setting makes immutable (store/mutability.h) does not move: a push gets
 * PIER_E_DENIED naming it; a cache import succeeds and changes nothing (the
 * tag keeps its image). All or nothing. */
PIER_MUST_USE
pier_err repo_manifest_put(struct ctx *c, const char *name, const char *tag, const char *digest,
                           const struct manifest *m, const char *body, size_t len,
                           long long rule_id, struct perr *e);
/* The upstream confirmed that tag still points to the stored manifest. */
PIER_MUST_USE
pier_err repo_tag_checked(struct ctx *c, const char *name, const char *tag, struct perr *e);
/* The registry API's DELETE: a manifest by digest (repo_image_delete) or a
 * tag by name (repo_tag_delete). PIER_E_DENIED in cache repositories, whose
 * images only the control plane deletes. */
PIER_MUST_USE
pier_err repo_manifest_delete(struct ctx *c, const char *name, const char *ref, struct perr *e);
/* Delete image digest from repository name, a push or a cache repository:
 * the manifest, its tags and its references. PIER_E_NAME_UNKNOWN,
 * PIER_E_MANIFEST_UNKNOWN, or PIER_E_CONFLICT (detail: the index's digest)
 * when an image index in the same repository still lists it. The blobs it
 * referenced stay until garbage collection finds them unreferenced. */
PIER_MUST_USE
pier_err repo_image_delete(struct ctx *c, const char *name, const char *digest, struct perr *e);
/* repo_image_delete for a lifecycle expiry: also PIER_E_CONFLICT when the
 * image's tags (checked under its lock) are no longer tags_json, the JSON
 * array of names, by name, that repo_lifecycle_images gave. */
PIER_MUST_USE
pier_err repo_image_expire(struct ctx *c, const char *name, const char *digest,
                           const char *tags_json, struct perr *e);
/* Delete tag from repository name (any kind); the image stays, untagged.
 * PIER_E_MANIFEST_UNKNOWN when there is no such tag. */
PIER_MUST_USE
pier_err repo_tag_delete(struct ctx *c, const char *name, const char *tag, struct perr *e);

/* Up to n tags after last (NULL: from the start), lexically ordered, appended
 * to the JSON array out; *more tells whether another page exists. */
PIER_MUST_USE
pier_err repo_tags(struct ctx *c, const char *name, const char *last, int n, json_t *out,
                   bool *more, struct perr *e);
PIER_MUST_USE
pier_err repo_catalog(struct ctx *c, const char *last, int n, json_t *out, bool *more,
                      struct perr *e);
/* Descriptors of the manifests in name whose subject is digest, optionally
 * only those of artifact_type, appended to out. */
PIER_MUST_USE
pier_err repo_referrers(struct ctx *c, const char *name, const char *digest,
                        const char *artifact_type, json_t *out, struct perr *e);

/* ---- repository records: the control plane and the console ----
 * Results live in the request arena. None of these checks authorization:
 * the caller has (ecrapi, console, cache rules). */

/* A repository as the control plane describes it. */
struct repo_record {
    long long id;
    const char *name;
    long long created_ms;                  /* milliseconds since the epoch */
    const char *tag_mutability;            /* one of ECR's four modes (store/mutability.h) */
    const char *tag_mutability_exclusions; /* JSON array of its filter values, e.g. ["dev-*"] */
    bool scan_on_push;
    const char *encryption_type;   /* "AES256", "KMS" or "KMS_DSSE" */
    const char *kms_key;           /* NULL when none */
    bool cache;                    /* a pull-through cache repository */
};

/* Settings of a repository created through the control plane (checked by
 * the caller against the values the schema allows). */
struct repo_settings {
    const char *tag_mutability;
    const char *tag_mutability_exclusions; /* JSON array of filter values; NULL: none */
    bool scan_on_push;
    const char *encryption_type;
    const char *kms_key;           /* NULL when none */
};

/* Create repository name with settings s; rule_id > 0 makes it the cache
 * repository of that rule. *created is false (and nothing changed) when the
 * name exists. Joins the caller's transaction when one is open. */
PIER_MUST_USE
pier_err repo_create(struct ctx *c, const char *name, long long rule_id,
                     const struct repo_settings *s, bool *created, struct perr *e);
/* The record of repository name; PIER_E_NAME_UNKNOWN when it does not exist. */
PIER_MUST_USE
pier_err repo_describe(struct ctx *c, const char *name, struct repo_record *out, struct perr *e);
/* Up to limit records by name after skipping offset: *out (arena), *n. */
PIER_MUST_USE
pier_err repo_list(struct ctx *c, long long limit, long long offset, struct repo_record **out,
                   int *n, struct perr *e);
/* Delete repository name if it exists; what it holds (manifests, tags, blob
 * links, its policy, cached referrers) goes with it. Its resource tags are
 * the caller's to drop (resource_tags_drop). */
PIER_MUST_USE
pier_err repo_delete(struct ctx *c, const char *name, struct perr *e);
/* Set the tag mutability of name, if it exists: one of ECR's four modes and
 * its filter values (JSON array text; NULL: none), checked by the caller
 * with mutability_parse(). Pushes and cache imports after it obey it (see
 * repo_manifest_put). */
PIER_MUST_USE
pier_err repo_set_tag_mutability(struct ctx *c, const char *name, const char *mutability,
                                 const char *exclusions, struct perr *e);
/* Record scanOnPush for name, if it exists: stored and reported, it scans
 * nothing (Pier has no scanner). */
PIER_MUST_USE
pier_err repo_set_scan_on_push(struct ctx *c, const char *name, bool scan_on_push, struct perr *e);
/* A creation template's settings for the repository just created with id
 * repo_id (kms_key and exclusions may be NULL), in the caller's transaction. */
PIER_MUST_USE
pier_err repo_apply_template(struct ctx *c, const char *repo_id, const char *encryption_type,
                             const char *kms_key, const char *tag_mutability,
                             const char *exclusions, struct perr *e);

/* ---- images: manifests and their tags as the control plane lists them ---- */

/* One manifest and one of its tags (NULL: an untagged manifest). */
struct repo_image_id {
    const char *digest;
    const char *tag;
};

/* A manifest with what DescribeImages says about it. */
struct repo_image {
    const char *digest;
    const char *media_type;
    const char *artifact_type;     /* NULL when none */
    long long size;                /* of the manifest itself */
    long long pushed_ms;           /* milliseconds since the epoch */
    long long last_pulled_ms;      /* milliseconds since the epoch, 0: never pulled */
    const char *body;              /* the manifest (arena); NULL if it did not decode */
    size_t body_len;
    const char *tags_json;         /* JSON array of its tags' names, by name */
    long long largest_child;       /* an index: the bytes of the largest image it lists that
                                      the repository holds (its blobs' sizes), else 0 */
};

/* How many manifests repository name holds (0 if it does not exist). */
PIER_MUST_USE
pier_err repo_image_count(struct ctx *c, const char *name, long long *n, struct perr *e);
/* The manifests of name, one entry per tag (an untagged manifest once),
 * ordered by digest and tag; status "ANY", "TAGGED" or "UNTAGGED" filters on
 * the tag. Up to limit entries after skipping offset: *out (arena), *n. */
PIER_MUST_USE
pier_err repo_image_ids(struct ctx *c, const char *name, const char *status, long long limit,
                        long long offset, struct repo_image_id **out, int *n, struct perr *e);
/* The manifests of name in the order they were stored: only digest when it
 * is not NULL, else those status selects ("ANY", "TAGGED", "UNTAGGED"); up to
 * limit after skipping offset: *out (arena), *n. */
PIER_MUST_USE
pier_err repo_images(struct ctx *c, const char *name, const char *digest, const char *status,
                     long long limit, long long offset, struct repo_image **out, int *n,
                     struct perr *e);
/* The images a lifecycle policy evaluates in name: every manifest that no
 * image index of the repository lists (a listed one goes with its index),
 * in the order they were stored, up to limit: digest, pushed_at,
 * last_pulled_at and tags_json only (the rest is zero). *out (arena), *n. */
PIER_MUST_USE
pier_err repo_lifecycle_images(struct ctx *c, const char *name, long long limit,
                               struct repo_image **out, int *n, struct perr *e);
/* The digest tag points to in name (arena); PIER_E_MANIFEST_UNKNOWN when
 * there is no such tag or repository. */
PIER_MUST_USE
pier_err repo_tag_digest(struct ctx *c, const char *name, const char *tag, const char **digest,
                         struct perr *e);
/* How many tags of name point to digest. */
PIER_MUST_USE
pier_err repo_tags_on(struct ctx *c, const char *name, const char *digest, long long *n,
                      struct perr *e);

/* ---- console views ---- */

struct repo_pulls {
    const char *name;
    long long pulls;
    const char *rule_prefix;       /* "" for a pushed repository */
};

struct repo_summary {
    const char *name;
    bool cache;
    const char *rule_prefix;       /* "" for a pushed repository */
    long long created_at;          /* seconds since the epoch */
    long long images, tags, pulls;
};

/* A tag with its manifest, for the console's repository page. */
struct repo_tag_detail {
    const char *tag;
    const char *digest;
    const char *media_type;
    long long size;                /* of the manifest */
    long long pushed_at;           /* seconds since the epoch */
    long long last_pulled_at;      /* 0: never */
    long long checked_at;          /* last upstream confirmation, 0: never */
    bool stale;                    /* cache repository, not checked within the refresh interval */
    const char *body;              /* the manifest (arena); NULL if it did not decode */
    size_t body_len;
};

/* The 50 most pulled repositories, most pulls first: *out (arena), *n. */
PIER_MUST_USE
pier_err repo_most_pulled(struct ctx *c, struct repo_pulls **out, int *n, struct perr *e);
/* Up to 500 repositories whose name contains q ("" for all), by name. */
PIER_MUST_USE
pier_err repo_search(struct ctx *c, const char *q, struct repo_summary **out, int *n,
                     struct perr *e);
/* Every tag of name with its manifest, by tag name (none if name does not exist). */
PIER_MUST_USE
pier_err repo_tag_details(struct ctx *c, const char *name, struct repo_tag_detail **out, int *n,
                          struct perr *e);

/* ---- what the cache and the administrators ask of the repository tables ---- */

struct repo_counts {
    long long repositories, blobs, blob_bytes, manifests, tags;
};

/* count pulls of manifest digest in name by principal (an ARN, NULL for
 * anonymous callers) happened: the repository's pull counter grows by count,
 * and the manifest's last-pulled time becomes now unless principal is
 * excluded from pull-time updates (pull_time_exclusions, store/account.c). */
PIER_MUST_USE
pier_err repo_note_pulls(struct ctx *c, const char *name, const char *digest,
                         const char *principal, long long count, struct perr *e);
/* A pushed repository under prefix ("ROOT": anywhere) in *name (arena), or
 * NULL when there is none. */
PIER_MUST_USE
pier_err repo_pushed_under(struct ctx *c, const char *prefix, const char **name, struct perr *e);
/* The cache repositories under prefix that have no rule, or a rule with a
 * shorter prefix (or ROOT), now belong to rule rule_id (a new rule takes
 * over its namespace). */
PIER_MUST_USE
pier_err repo_adopt(struct ctx *c, long long rule_id, const char *prefix, struct perr *e);
/* A repository's share of the blob root. */
struct repo_usage {
    const char *name;
    bool cache;
    const char *rule_prefix; /* "" for pushed repositories and cache ones without a rule */
    long long blobs, bytes;  /* the blobs it links and their bytes */
    long long images;        /* manifests */
};
/* The limit repositories whose name contains q ("" for all) that link the
 * most bytes, most first (*out in the arena, *n), and the bytes linked by
 * pushed and by cache repositories, each blob counted once per kind. */
PIER_MUST_USE
pier_err repo_usage(struct ctx *c, const char *q, int limit, struct repo_usage **out, int *n,
                    long long *pushed_bytes, long long *cache_bytes, struct perr *e);

/* One move of a cache tag: digest is "" when the console evicted the tag,
 * previous "" when the tag was not cached before. */
struct repo_tag_move {
    const char *digest;
    const char *previous;
    long long at; /* seconds since the epoch */
};
/* Up to limit moves of tag in name, newest first (*out in the arena, *n).
 * Written by repo_manifest_put for cache imports and by repo_tag_evicted. */
PIER_MUST_USE
pier_err repo_tag_history(struct ctx *c, const char *name, const char *tag, int limit,
                          struct repo_tag_move **out, int *n, struct perr *e);
/* Record that tag, which pointed to digest, was evicted from the cache. */
PIER_MUST_USE
pier_err repo_tag_evicted(struct ctx *c, const char *name, const char *tag, const char *digest,
                          struct perr *e);

/* How many repositories, blobs (and their bytes), manifests and tags exist. */
PIER_MUST_USE
pier_err repo_counts(struct ctx *c, struct repo_counts *out, struct perr *e);

/* ---- the pull-through cache's byte budgets (cache/budget.c) ---- */

struct repo_gc_candidate;

/* An image of a cache repository, as budget enforcement sees it. */
struct repo_cache_image {
    const char *name; /* its repository */
    const char *digest;
    long long rule_id; /* the repository's rule */
    const char *rule_prefix;
    long long last_pulled_at; /* seconds since the epoch, 0: never pulled */
    long long pushed_at;      /* when it was stored (imported) */
};

/* What the cache repositories of rule rule_id (0: of every rule) hold on the
 * blob root: *bytes, the sizes of the distinct blobs linked in them (a layer
 * several of them hold is one file, counted once); manifests live in the
 * database and are not counted. *oldest (may be NULL): the least recent last
 * pull (a never pulled image: its push) of their images, 0 when they hold none. */
PIER_MUST_USE
pier_err repo_cache_usage(struct ctx *c, long long rule_id, long long *bytes, long long *oldest,
                          struct perr *e);
/* Up to n images of the cache repositories of rule rule_id (0: of every
 * rule), least recently pulled first (a never pulled image counts as pulled
 * when it was stored; ties by storage time), after skipping the first skip;
 * only images neither pulled nor stored within the last idle seconds (as far
 * as the pull times were flushed). *out lives in the arena. */
PIER_MUST_USE
pier_err repo_cache_lru(struct ctx *c, long long rule_id, int idle, int skip, int n,
                        struct repo_cache_image **out, int *nout, struct perr *e);
/* The blobs (config, layers) manifest digest of repository name references,
 * with their sizes; size -1 for a blob the store does not hold (yet: a cache
 * fetches blobs on demand). *out (arena), *n; an index references none. */
PIER_MUST_USE
pier_err repo_image_blobs(struct ctx *c, const char *name, const char *digest,
                          struct repo_gc_candidate **out, int *n, struct perr *e);

/* ---- garbage collection (the protocol is in docs/storage.md) ---- */

struct repo_gc_candidate {
    const char *digest;
    long long size;
};

struct repo_gc_result {
    long long links;   /* repository_blobs rows removed (or that would be) */
    long long blobs;   /* blobs rows and files removed (or that would be) */
    long long bytes;   /* their sizes */
    long long busy;    /* digests skipped: someone held their lock */
};

/* Up to n digests ordered after `after` ("" from the start) that a sweep
 * looks at: a blob row older than grace seconds that no manifest references,
 * or one with a link older than grace that no manifest of that repository
 * references. rule_id > 0 adds the blobs linked in that rule's cache
 * repositories that no manifest there references, whatever their age.
 * *out lives in the arena. */
PIER_MUST_USE
pier_err repo_gc_candidates(struct ctx *c, const char *after, int grace, long long rule_id, int n,
                            struct repo_gc_candidate **out, int *nout, struct perr *e);
/* Collect the candidates. Per digest: its lock exclusively (a session lock,
 * tried: a busy digest is skipped), then one transaction removes its links
 * older than grace (any age in rule_id's cache repositories) that no
 * manifest of their repository references, and its blobs row if nothing
 * links or references it any more, leaving a tombstone; after the commit the
 * file goes, then the tombstone, then the lock. dry_run: only counts. Adds to
 * *r. */
PIER_MUST_USE
pier_err repo_gc_collect(struct ctx *c, const struct repo_gc_candidate *cand, int n, int grace,
                         long long rule_id, bool dry_run, struct repo_gc_result *r,
                         struct perr *e);
/* Finish what a sweep that died left: for every tombstone whose blobs row is
 * gone, remove the file (under the digest's lock) and the tombstone. */
PIER_MUST_USE
pier_err repo_gc_finish(struct ctx *c, long long *finished, struct perr *e);
/* What a sweep with this grace would free now: blobs that no manifest
 * references and that nothing linked within grace seconds. */
PIER_MUST_USE
pier_err repo_gc_reclaimable(struct ctx *c, int grace, long long *blobs, long long *bytes,
                             struct perr *e);

/* ---- consistency check (store/fsck.c; what it repairs: docs/operations.md) ---- */

/* The blobs rows whose digest starts with prefix ("sha256:ab": one fan-out
 * directory of the blob root), by digest: *out (arena), *n. */
PIER_MUST_USE
pier_err repo_fsck_rows(struct ctx *c, const char *prefix, struct repo_gc_candidate **out, int *n,
                        struct perr *e);

/* What the store says about one digest once nobody publishes or collects it. */
struct repo_fsck_state {
    bool row;       /* a blobs row names it */
    long long size; /* the row's size, -1 without a row */
    bool tombstone; /* a sweep removed its row and has yet to remove the file */
    int file_errno; /* 0: lstat() of its file succeeded (st), else its errno */
    struct stat st;
};

/* Settle digest: take its lock shared (waiting for a publisher's or a sweep's
 * commit), then read its row and tombstone and lstat() its file, and let go.
 * A file without a row seen this way is not a publication in flight, and a
 * row without a file is not a sweep's work in progress. Never writes. */
PIER_MUST_USE
pier_err repo_fsck_settle(struct ctx *c, const char *digest, struct repo_fsck_state *out,
                          struct perr *e);

/* Forget a blob whose bytes are lost: under the digest's exclusive lock, if
 * its file is still missing (was NULL) or still the very file was describes
 * (inode, size, modification time), delete every repository's link to it and
 * its blobs row and, given quarantine (a path on the same file system), move
 * the file there; one transaction of its own (never call inside one). *done
 * is false when the file or the row changed meanwhile (nothing was done).
 * *links: the links removed. A pull through a cache then fetches the blob
 * again, a push uploads it again; pushed manifests that list it stay (fsck
 * reports them). If the commit fails the file moves back. */
PIER_MUST_USE
pier_err repo_blob_forget(struct ctx *c, const char *digest, const struct stat *was,
                          const char *quarantine, bool *done, long long *links, struct perr *e);

/* A reference a pushed manifest cannot serve. */
struct repo_fsck_ref {
    const char *repository, *manifest, *child;
    bool blob; /* child is a blob without a row; else a manifest the repository lacks */
};

/* Up to limit references of manifests in push repositories to blobs that
 * have no row or to child manifests their repository does not hold, by
 * repository, manifest and child: *out (arena), *n. (Cache repositories
 * fetch both on demand; tags cannot name a missing manifest: a foreign key.) */
PIER_MUST_USE
pier_err repo_fsck_references(struct ctx *c, int limit, struct repo_fsck_ref **out, int *n,
                              struct perr *e);

#endif
