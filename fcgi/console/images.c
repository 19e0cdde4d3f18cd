/* console images: one image in detail, a cache tag's history, "check
 * upstream now" and "evict this tag", and the storage page's usage figures
 * (console/images.h). */
#include "console/images.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "auth/authz.h"
#include "cache/cache.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "store/audit.h"
#include "store/blobstore.h"
#include "store/repo.h"
#include "store/rules.h"

/* A config blob larger than this is not shown (real ones are a few KiB). */
#define CONFIG_MAX (1024 * 1024)
#define HISTORY_MAX 50
#define USAGE_TOP 50

/* ---- one image ---- */

static json_t *descriptor(json_t *d)
{
    json_t *out = json_object();
    const char *keys[] = {"mediaType", "digest", "size", "artifactType", "annotations", "urls"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(d, keys[i]);
        if (v)
            json_object_set(out, keys[i], v);
    }
    return out;
}

static const char *platform_text(struct ctx *c, json_t *p)
{
    const char *os = json_string_value(json_object_get(p, "os"));
    const char *arch = json_string_value(json_object_get(p, "architecture"));
    const char *var = json_string_value(json_object_get(p, "variant"));
    if (!os || !arch)
        return NULL;
    return arena_printf(c->a, "%s/%s%s%s", os, arch, var ? "/" : "", var ? var : "");
}

/* The config blob of an image as JSON, when this repository holds it (a
 * cache repository fetches it on the first pull of the image). NULL with
 * *why saying why not. */
static json_t *read_config(struct ctx *c, const char *name, const char *digest, const char **why)
{
    struct perr e;
    long long size = 0, rule = 0;
    if (!digest || grammar_digest(digest, NULL, &e) != PIER_OK) {
        *why = "the manifest names no valid config digest";
        return NULL;
    }
    if (repo_blob_get(c, name, digest, &size, &rule, &e) != PIER_OK) {
        *why = "the config blob is not stored in this repository (a pull of the image fetches it)";
        return NULL;
    }
    if (size > CONFIG_MAX) {
        *why = "the config blob is larger than 1 MiB";
        return NULL;
    }
    char path[PATH_MAX];
    blobstore_blob_path(c->bs, digest, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_warn("console: config %s of %s: %s", digest, name, strerror(errno));
        *why = "the config blob could not be read";
        return NULL;
    }
    char *buf = arena_alloc(c->a, (size_t)size + 1);
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t n = read(fd, buf + got, (size_t)size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    json_t *doc = json_loadb(buf, got, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        *why = "the config blob is not a JSON object";
        return NULL;
    }
    return doc;
}

/* What an operator looks for in an image config. */
static json_t *config_summary(json_t *cfg)
{
    json_t *out = json_object();
    json_t *inner = json_object_get(cfg, "config");
    const char *top[] = {"created", "os", "architecture", "variant", "author"};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        json_t *v = json_object_get(cfg, top[i]);
        if (json_is_string(v))
            json_object_set(out, top[i], v);
    }
    struct {
        const char *from, *to;
    } fields[] = {{"Entrypoint", "entrypoint"}, {"Cmd", "cmd"},           {"Env", "env"},
                  {"Labels", "labels"},         {"WorkingDir", "workingDir"}, {"User", "user"},
                  {"ExposedPorts", "exposedPorts"}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(inner, fields[i].from);
        if (v && !json_is_null(v))
            json_object_set(out, fields[i].to, v);
    }
    json_t *hist = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(cfg, "history"), i, h) {
        json_t *row = json_object();
        const char *keys[][2] = {{"created", "created"},
                                 {"created_by", "createdBy"},
                                 {"comment", "comment"},
                                 {"empty_layer", "emptyLayer"}};
        for (size_t k = 0; k < 4; k++) {
            json_t *v = json_object_get(h, keys[k][0]);
            if (v)
                json_object_set(row, keys[k][1], v);
        }
        json_array_append_new(hist, row);
    }
    json_object_set_new(out, "history", hist);
    return out;
}

static json_t *tag_history_json(struct ctx *c, const char *name, const char *tag, struct perr *e)
{
    struct repo_tag_move *moves;
    int n;
    if (repo_tag_history(c, name, tag, HISTORY_MAX, &moves, &n, e) != PIER_OK)
        return NULL;
    json_t *out = json_array();
    for (int i = 0; i < n; i++) {
        json_t *j = json_pack("{s:I}", "at", (json_int_t)moves[i].at);
        if (moves[i].digest[0])
            json_object_set_new(j, "digest", json_string(moves[i].digest));
        else
            json_object_set_new(j, "evicted", json_true());
        if (moves[i].previous[0])
            json_object_set_new(j, "previous", json_string(moves[i].previous));
        json_array_append_new(out, j);
    }
    return out;
}

void console_image(struct ctx *c, struct req *r)
{
    char name[NAME_MAX_LEN + 2], ref[DIGEST_MAX_LEN + 2];
    struct perr e;
    if (req_query(r, "name", name, sizeof name) != 1 || grammar_name(name, &e) != PIER_OK) {
        console_fail(r, ECR_EXC_INVALID_PARAMETER, "name must be a repository name");
        return;
    }
    if (req_query(r, "ref", ref, sizeof ref) != 1 || grammar_reference(ref, &e) != PIER_OK) {
        console_fail(r, ECR_EXC_INVALID_PARAMETER, "ref must be a tag or a digest");
        return;
    }
    if (authz_check(c, "ecr:BatchGetImage", name, &e) != PIER_OK) {
        console_fail(r, ECR_EXC_ACCESS_DENIED, e.msg);
        return;
    }
    struct stored_manifest sm;
    pier_err rc = repo_manifest_get(c, name, ref, true, &sm, &e);
    if (rc == PIER_E_NAME_UNKNOWN || rc == PIER_E_MANIFEST_UNKNOWN) {
        console_fail(r, rc == PIER_E_NAME_UNKNOWN ? ECR_EXC_REPOSITORY_NOT_FOUND
                                                  : ECR_EXC_IMAGE_NOT_FOUND,
                     rc == PIER_E_NAME_UNKNOWN
                         ? arena_printf(r->a, "The repository %s does not exist.", name)
                         : arena_printf(r->a, "%s is not stored in %s.", ref, name));
        return;
    }
    if (rc != PIER_OK) {
        console_fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    bool by_tag = !grammar_is_digest(ref);
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:s%}", "repositoryName", name,
                            "reference", ref, "digest", sm.digest, "mediaType",
                            sm.media_type ? sm.media_type : "", "manifestBytes",
                            (json_int_t)sm.size, "cache", sm.cache, "manifest",
                            sm.body ? sm.body : "", (size_t)(sm.body ? sm.size : 0));
    json_t *m = json_loadb(sm.body ? sm.body : "", (size_t)sm.size, 0, NULL);
    json_t *v;
    if ((v = json_object_get(m, "artifactType")) && json_is_string(v))
        json_object_set(out, "artifactType", v);
    if ((v = json_object_get(m, "subject")) && json_is_object(v))
        json_object_set_new(out, "subject", descriptor(v));
    if ((v = json_object_get(m, "annotations")) && json_is_object(v))
        json_object_set(out, "annotations", v);

    /* The tags that name this image. */
    struct repo_tag_detail *tags;
    int ntags;
    if (repo_tag_details(c, name, &tags, &ntags, &e) != PIER_OK) {
        json_decref(m);
        json_decref(out);
        console_fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    json_t *tagged = json_array();
    for (int i = 0; i < ntags; i++)
        if (strcmp(tags[i].digest, sm.digest) == 0) {
            json_array_append_new(tagged, json_string(tags[i].tag));
            if (by_tag && strcmp(tags[i].tag, ref) == 0) {
                json_object_set_new(out, "lastUpstreamCheck", json_integer(tags[i].checked_at));
                json_object_set_new(out, "stale", json_boolean(tags[i].stale));
            }
        }
    json_object_set_new(out, "tags", tagged);

    size_t i;
    json_t *d;
    json_t *children = json_object_get(m, "manifests");
    if (json_is_array(children)) {
        json_t *plats = json_array();
        json_array_foreach(children, i, d) {
            json_t *p = descriptor(d);
            const char *text = platform_text(c, json_object_get(d, "platform"));
            if (text)
                json_object_set_new(p, "platform", json_string(text));
            const char *digest = json_string_value(json_object_get(d, "digest"));
            struct stored_manifest child;
            struct perr ig;
            bool stored = digest && grammar_digest(digest, NULL, &ig) == PIER_OK &&
                          repo_manifest_get(c, name, digest, false, &child, &ig) == PIER_OK;
            json_object_set_new(p, "stored", json_boolean(stored));
            json_array_append_new(plats, p);
        }
        json_object_set_new(out, "platforms", plats);
    }
    json_t *layers = json_object_get(m, "layers");
    if (json_is_array(layers)) {
        json_t *list = json_array();
        long long total = 0;
        json_array_foreach(layers, i, d) {
            json_array_append_new(list, descriptor(d));
            total += json_integer_value(json_object_get(d, "size"));
        }
        json_object_set_new(out, "layers", list);
        json_object_set_new(out, "layerBytes", json_integer(total));
    }
    json_t *cfgd = json_object_get(m, "config");
    if (json_is_object(cfgd)) {
        json_t *cd = descriptor(cfgd);
        const char *why = NULL;
        const char *mt = json_string_value(json_object_get(cfgd, "mediaType"));
        /* Only image configs are shown; an artifact's config may be anything. */
        bool image_config = mt && (strcmp(mt, "application/vnd.oci.image.config.v1+json") == 0 ||
                                   strcmp(mt, "application/vnd.docker.container.image.v1+json") == 0);
        json_t *cfg = image_config
                          ? read_config(c, name, json_string_value(json_object_get(cfgd, "digest")),
                                        &why)
                          : NULL;
        if (cfg) {
            json_t *summary = config_summary(cfg);
            json_object_update(cd, summary);
            json_decref(summary);
            json_decref(cfg);
        } else {
            json_object_set_new(cd, "unavailable",
                                json_string(why ? why : "not an image configuration"));
        }
        json_object_set_new(out, "config", cd);
    }
    json_decref(m);

    json_t *refs = json_array();
    if (repo_referrers(c, name, sm.digest, NULL, refs, &e) != PIER_OK) {
        json_decref(refs);
        json_decref(out);
        console_fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    json_object_set_new(out, "referrers", refs);
    if (sm.cache && by_tag) {
        json_t *hist = tag_history_json(c, name, ref, &e);
        if (!hist) {
            json_decref(out);
            console_fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
            return;
        }
        json_object_set_new(out, "tagHistory", hist);
    }
    console_reply(r, 200, out);
}

/* ---- actions on cache tags ---- */

/* repositoryName and imageTag of a cache repository, authorized for action;
 * false when the answer was written. */
static bool cache_tag_request(struct ctx *c, struct req *r, json_t *in, const char *action,
                              const char **name, const char **tag, struct repo_record *rec)
{
    struct perr e;
    *name = json_string_value(json_object_get(in, "repositoryName"));
    *tag = json_string_value(json_object_get(in, "imageTag"));
    if (!*name || grammar_name(*name, &e) != PIER_OK) {
        console_fail(r, ECR_EXC_INVALID_PARAMETER, "repositoryName must be a repository name.");
        return false;
    }
    if (!*tag || grammar_tag(*tag, &e) != PIER_OK) {
        console_fail(r, ECR_EXC_INVALID_PARAMETER, "imageTag must be a tag.");
        return false;
    }
    if (authz_check(c, action, *name, &e) != PIER_OK) {
        console_fail(r, ECR_EXC_ACCESS_DENIED, e.msg);
        return false;
    }
    pier_err rc = repo_describe(c, *name, rec, &e);
    if (rc == PIER_E_NAME_UNKNOWN) {
        console_fail(r, ECR_EXC_REPOSITORY_NOT_FOUND,
                     arena_printf(r->a, "The repository %s does not exist.", *name));
        return false;
    }
    if (rc != PIER_OK) {
        console_fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return false;
    }
    if (!rec->cache) {
        console_fail(r, ECR_EXC_INVALID_PARAMETER,
                     arena_printf(r->a, "%s is not a cache repository: it has no upstream.", *name));
        return false;
    }
    return true;
}

static void audit_tag(struct ctx *c, const char *action, const char *name, const char *tag,
                      const char *digest, const char *result)
{
    struct audit_event ev = {.action = action,
                             .repository = name,
                             .target = digest && digest[0]
                                           ? arena_printf(c->a, "%s@%s", tag, digest)
                                           : tag,
                             .result = result};
    audit_record(c, &ev);
}

void console_image_check(struct ctx *c, struct req *r, json_t *in)
{
    const char *name, *tag;
    struct repo_record rec;
    if (!cache_tag_request(c, r, in, "ecr:BatchImportUpstreamImage", &name, &tag, &rec))
        return;
    struct perr e, ig;
    struct stored_manifest sm;
    pier_err rc = repo_manifest_get(c, name, tag, false, &sm, &ig);
    struct cache_rule rule;
    bool found = false;
    if (rules_for_repository(c, name, rc == PIER_OK ? sm.rule_id : 0, &rule, &found, &e) !=
        PIER_OK) {
        console_fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    if (!found) {
        console_fail(r, ECR_EXC_PTC_RULE_NOT_FOUND,
                     arena_printf(r->a, "No pull through cache rule covers %s any more.", name));
        return;
    }
    struct cache_check chk;
    rc = cache_check_tag(c, r, name, tag, &rule, &chk, &e);
    const char *result;
    json_t *out = json_pack("{s:s, s:s, s:s}", "repositoryName", name, "imageTag", tag,
                            "upstreamUrl", rule.upstream_url);
    if (rc == PIER_E_MANIFEST_UNKNOWN) {
        result = "notFound";
    } else if (rc == PIER_E_UPSTREAM || rc == PIER_E_UPSTREAM_TIMEOUT ||
               rc == PIER_E_TOOMANYREQUESTS || (rc == PIER_OK && chk.error)) {
        result = "upstreamError";
    } else if (rc != PIER_OK) {
        json_decref(out);
        audit_tag(c, "console:CheckUpstream", name, tag, NULL, "ServerException");
        console_fail(r, rc == PIER_E_DENIED ? ECR_EXC_ACCESS_DENIED : ECR_EXC_CONSOLE_UNAVAILABLE,
                     e.msg);
        return;
    } else if (!chk.before[0]) {
        result = "imported";
    } else {
        result = strcmp(chk.before, chk.after) == 0 ? "unchanged" : "moved";
    }
    json_object_set_new(out, "result", json_string(result));
    if (chk.before[0])
        json_object_set_new(out, "previousDigest", json_string(chk.before));
    if (rc == PIER_OK)
        json_object_set_new(out, "imageDigest", json_string(chk.after));
    if (chk.error)
        json_object_set_new(out, "message", json_string(chk.error));
    audit_tag(c, "console:CheckUpstream", name, tag, rc == PIER_OK ? chk.after : chk.before,
              strcmp(result, "upstreamError") == 0 ? "UpstreamError"
              : strcmp(result, "notFound") == 0    ? "ImageNotFoundException"
                                                   : NULL);
    console_reply(r, 200, out);
}

void console_image_evict(struct ctx *c, struct req *r, json_t *in)
{
    const char *name, *tag;
    struct repo_record rec;
    if (!cache_tag_request(c, r, in, "ecr:BatchDeleteImage", &name, &tag, &rec))
        return;
    struct perr e;
    const char *digest;
    pier_err rc = repo_tag_digest(c, name, tag, &digest, &e);
    if (rc == PIER_OK)
        rc = repo_tag_delete(c, name, tag, &e);
    if (rc == PIER_E_MANIFEST_UNKNOWN) {
        console_fail(r, ECR_EXC_IMAGE_NOT_FOUND,
                     arena_printf(r->a, "The tag %s is not cached in %s.", tag, name));
        return;
    }
    if (rc != PIER_OK) {
        console_fail(r, ECR_EXC_CONSOLE_UNAVAILABLE, e.msg);
        return;
    }
    struct perr ig;
    if (repo_tag_evicted(c, name, tag, digest, &ig) != PIER_OK)
        log_warn("console: eviction of %s:%s not kept in the tag history: %s", name, tag, ig.msg);
    /* The image goes too when nothing else in the repository names it: its
     * blobs are then collected by the next sweep after gc_grace. */
    long long others = 1;
    bool image_deleted = false;
    const char *kept = NULL;
    if (repo_tags_on(c, name, digest, &others, &ig) == PIER_OK && others == 0) {
        rc = repo_image_delete(c, name, digest, &ig);
        image_deleted = rc == PIER_OK;
        if (rc == PIER_E_CONFLICT)
            kept = "an image index in the repository lists it";
        else if (rc != PIER_OK && rc != PIER_E_MANIFEST_UNKNOWN)
            log_warn("console: evicted %s:%s, its image stays: %s", name, tag, ig.msg);
    } else if (others > 0) {
        kept = "other tags name it";
    }
    audit_tag(c, "console:EvictTag", name, tag, digest, NULL);
    json_t *out = json_pack("{s:s, s:s, s:s, s:b}", "repositoryName", name, "imageTag", tag,
                            "imageDigest", digest, "imageDeleted", image_deleted);
    if (kept)
        json_object_set_new(out, "imageKept", json_string(kept));
    console_reply(r, 200, out);
}

/* ---- storage ---- */

pier_err console_storage_usage(struct ctx *c, const char *q, json_t *out, struct perr *e)
{
    struct repo_usage *u;
    int n;
    long long pushed, cached;
    struct rule_overview *ro;
    int nrules;
    pier_err rc;
    if ((rc = repo_usage(c, q, USAGE_TOP, &u, &n, &pushed, &cached, e)) != PIER_OK ||
        (rc = rules_overview(c, &ro, &nrules, e)) != PIER_OK)
        return rc;
    json_t *repos = json_array();
    for (int i = 0; i < n; i++) {
        if (!authz_allowed(c, "ecr:DescribeRepositories", u[i].name))
            continue;
        json_t *j = json_pack("{s:s, s:b, s:I, s:I, s:I}", "name", u[i].name, "cache", u[i].cache,
                              "blobs", (json_int_t)u[i].blobs, "bytes", (json_int_t)u[i].bytes,
                              "images", (json_int_t)u[i].images);
        if (u[i].rule_prefix[0])
            json_object_set_new(j, "rule", json_string(u[i].rule_prefix));
        json_array_append_new(repos, j);
    }
    json_t *rules = json_array();
    for (int i = 0; i < nrules; i++)
        json_array_append_new(
            rules, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "prefix", ro[i].prefix,
                             "repositories", (json_int_t)ro[i].repositories, "bytesCached",
                             (json_int_t)ro[i].bytes_cached, "maxBytes",
                             (json_int_t)ro[i].max_bytes, "bytesReclaimed",
                             (json_int_t)ro[i].budget_reclaimed, "imagesExpired",
                             (json_int_t)ro[i].budget_expired, "oldestLastPull",
                             (json_int_t)ro[i].oldest_last_pull));
    json_object_set_new(out, "pushedBytes", json_integer(pushed));
    json_object_set_new(out, "cacheBytes", json_integer(cached));
    json_object_set_new(out, "cacheMaxBytes", json_integer(c->cfg->cache_max_bytes));
    json_object_set_new(out, "repositories", repos);
    json_object_set_new(out, "repositoriesShown", json_integer(USAGE_TOP));
    json_object_set_new(out, "rules", rules);
    return PIER_OK;
}
