/* authz: policy lookup with a short per-worker cache, and the decision. */
#include "auth/authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include "auth/policy.h"
#include "auth/principals.h"
#include "db/db.h"
#include "http/request.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"

#define CACHE_PRINCIPALS 64
#define CACHE_REPOS 256
#define MAX_IDENTITY_POLICIES IDENTITY_POLICIES_MAX
#define STR_(x) #x
#define STR(x) STR_(x)

static const struct db_stmt st_registry_get = {
    "az_registry_get", "SELECT document FROM registry_policy WHERE id = 1", 0};
static const struct db_stmt st_registry_put = {
    "az_registry_put",
    "INSERT INTO registry_policy(id, document) VALUES (1, $1) ON CONFLICT (id) DO UPDATE"
    " SET document = EXCLUDED.document, updated_at = now()", 1};
static const struct db_stmt st_registry_delete = {
    "az_registry_delete", "DELETE FROM registry_policy WHERE id = 1", 0};
static const struct db_stmt st_repo_get = {
    "az_repo_get",
    "SELECT r.id, rp.document FROM repositories r"
    " LEFT JOIN repository_policies rp ON rp.repository_id = r.id WHERE r.name = $1", 1};
/* What a decision about a repository needs: its policy and its resource
 * tags (the condition keys aws:ResourceTag/<key>), in one round trip. */
static const struct db_stmt st_repo_load = {
    "az_repo_load",
    "SELECT r.id, rp.document, (SELECT json_agg(json_build_array(t.key, t.value) ORDER BY t.key)"
    "   FROM resource_tags t WHERE t.resource_arn = $2) FROM repositories r"
    " LEFT JOIN repository_policies rp ON rp.repository_id = r.id WHERE r.name = $1", 2};
static const struct db_stmt st_repo_put = {
    "az_repo_put",
    "INSERT INTO repository_policies(repository_id, document) SELECT id, $2 FROM repositories"
    " WHERE name = $1 ON CONFLICT (repository_id) DO UPDATE SET document = EXCLUDED.document,"
    " updated_at = now() RETURNING repository_id", 2};
/* A creation template's policy for a repository created just now. */
static const struct db_stmt st_repo_init = {
    "az_repo_init",
    "INSERT INTO repository_policies(repository_id, document) VALUES ($1::bigint, $2)"
    " ON CONFLICT (repository_id) DO NOTHING", 2};
static const struct db_stmt st_repo_delete = {
    "az_repo_delete",
    "DELETE FROM repository_policies rp USING repositories r"
    " WHERE rp.repository_id = r.id AND r.name = $1", 1};

/* A stored policy that does not parse (any more), or more identity
 * policies than the limit, deny everything they are consulted for: a Deny
 * that could not be read must not turn into "no statement". */
struct cached_identity {
    long long principal_id;
    bool exists;
    int64_t at;
    size_t n;
    struct policy *p[MAX_IDENTITY_POLICIES];
    const char *broken;   /* static text, or NULL */
};

/* Room for the 50 tags a resource may have (ops_tags.c); more are not read. */
#define MAX_REPO_TAGS 64

struct cached_repo {
    char name[NAME_MAX_LEN + 1];
    int64_t at;
    struct policy *p; /* NULL: none */
    bool broken;
    struct policy_tag tags[MAX_REPO_TAGS]; /* keys and values owned (malloc) */
    size_t ntags;
};

/* Decisions reached from condition-free policies, reused while the policies
 * they came from are the ones in this worker's cache (same load times). A
 * warm pull with a long policy then costs one lookup, not an evaluation. */
#define DECISIONS 512

struct cached_decision {
    long long principal_id;   /* -1: anonymous */
    char action[48];
    char target[NAME_MAX_LEN + 64];
    int64_t epoch;            /* sum of the load times of the documents consulted */
    enum effect effect;
    char sid[130];
    const char *where;        /* static string */
};

struct authz_cache {
    struct cached_decision decisions[DECISIONS];
    int64_t registry_at;
    bool registry_valid;
    bool registry_broken;
    struct policy *registry;
    struct cached_identity ids[CACHE_PRINCIPALS];
    struct cached_repo repos[CACHE_REPOS];
    unsigned next_id, next_repo;
};

void identity_clear(struct identity *id)
{
    json_decref(id->scope);
    memset(id, 0, sizeof *id);
}

struct authz_cache *authz_cache_new(void)
{
    return xcalloc(1, sizeof(struct authz_cache));
}

static void forget_repo(struct cached_repo *cr)
{
    policy_free(cr->p);
    cr->p = NULL;
    for (size_t i = 0; i < cr->ntags; i++) {
        free((char *)cr->tags[i].key);
        free((char *)cr->tags[i].value);
    }
    cr->ntags = 0;
}

/* The tags of a repository from st_repo_load's [[key, value], ...] (NULL:
 * none). */
static void load_tags(struct cached_repo *cr, const char *text)
{
    json_t *list = text ? json_loads(text, 0, NULL) : NULL;
    size_t i;
    json_t *pair;
    json_array_foreach(list, i, pair) {
        const char *k = json_string_value(json_array_get(pair, 0));
        const char *v = json_string_value(json_array_get(pair, 1));
        if (!k || !v || cr->ntags == MAX_REPO_TAGS)
            continue;
        cr->tags[cr->ntags].key = xstrdup(k);
        cr->tags[cr->ntags].value = xstrdup(v);
        cr->ntags++;
    }
    json_decref(list);
}

static void forget_identity(struct cached_identity *ci)
{
    for (size_t i = 0; i < ci->n; i++)
        policy_free(ci->p[i]);
    memset(ci, 0, sizeof *ci);
}

void authz_cache_free(struct authz_cache *ac)
{
    if (!ac)
        return;
    policy_free(ac->registry);
    for (int i = 0; i < CACHE_PRINCIPALS; i++)
        forget_identity(&ac->ids[i]);
    for (int i = 0; i < CACHE_REPOS; i++)
        forget_repo(&ac->repos[i]);
    free(ac);
}

static struct policy *parse_stored(const char *doc, enum policy_kind kind, const char *what,
                                   bool *broken)
{
    struct policy *p = NULL;
    struct perr e;
    if (policy_parse(doc, strlen(doc), kind, &p, &e) != PIER_OK) {
        log_error("stored %s does not parse; it denies everything until it is fixed: %s", what,
                  e.msg);
        *broken = true;
    }
    return p;
}

static bool fresh(struct ctx *c, int64_t at)
{
    return at && now_ms() - at < c->cfg->policy_cache_ms;
}

static pier_err load_registry(struct ctx *c, struct policy **out, struct perr *e);
static pier_err load_registry(struct ctx *c, struct policy **out, struct perr *e)
{
    struct authz_cache *ac = c->acache;
    if (!fresh(c, ac->registry_at)) {
        PGresult *res = db_exec(c->db, c->a, &st_registry_get, e);
        if (!res)
            return e->code;
        policy_free(ac->registry);
        ac->registry_broken = false;
        ac->registry = PQntuples(res) ? parse_stored(PQgetvalue(res, 0, 0), POLICY_RESOURCE,
                                                     "registry policy", &ac->registry_broken)
                                      : NULL;
        ac->registry_at = now_ms();
    }
    *out = ac->registry;
    return PIER_OK;
}

static uint64_t fnv(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct cached_decision *decision_slot(struct authz_cache *ac, long long pid,
                                             const char *action, const char *target)
{
    uint64_t h = fnv(action, fnv(target, 1469598103934665603ULL ^ (uint64_t)pid));
    return &ac->decisions[h % DECISIONS];
}

static pier_err load_identity(struct ctx *c, long long pid, struct cached_identity **out,
                              struct perr *e)
{
    struct authz_cache *ac = c->acache;
    for (int i = 0; i < CACHE_PRINCIPALS; i++)
        if (ac->ids[i].principal_id == pid && fresh(c, ac->ids[i].at)) {
            *out = &ac->ids[i];
            return PIER_OK;
        }
    /* No principal: it was deleted (its signed tokens must stop working). */
    bool exists;
    const char **docs;
    int rows;
    pier_err rc = identity_policy_documents(c, pid, &exists, &docs, &rows, e);
    if (rc)
        return rc;
    struct cached_identity *ci = NULL;
    for (int i = 0; i < CACHE_PRINCIPALS && !ci; i++)
        if (ac->ids[i].principal_id == pid)
            ci = &ac->ids[i];
    if (!ci)
        ci = &ac->ids[ac->next_id++ % CACHE_PRINCIPALS];
    forget_identity(ci);
    ci->principal_id = pid;
    ci->exists = exists;
    if (rows > MAX_IDENTITY_POLICIES) {
        log_error("principal %lld has %d identity policies, more than the limit of %d: it is "
                  "denied everything until some are deleted", pid, rows, MAX_IDENTITY_POLICIES);
        ci->broken = "it has more identity policies than the limit of " STR(IDENTITY_POLICIES_MAX);
    }
    for (int i = 0; i < rows && ci->n < MAX_IDENTITY_POLICIES && !ci->broken; i++) {
        bool broken = false;
        struct policy *p = parse_stored(docs[i], POLICY_IDENTITY, "identity policy", &broken);
        if (broken)
            ci->broken = "one of its identity policies no longer parses";
        else if (p)
            ci->p[ci->n++] = p;
    }
    ci->at = now_ms();
    *out = ci;
    return PIER_OK;
}

/* The cached entry of repo (its policy and tags), read again when it is
 * older than policy_cache_ms. */
static pier_err load_repo(struct ctx *c, const char *repo, const struct cached_repo **out,
                          struct perr *e)
{
    struct authz_cache *ac = c->acache;
    for (int i = 0; i < CACHE_REPOS; i++)
        if (fresh(c, ac->repos[i].at) && strcmp(ac->repos[i].name, repo) == 0) {
            *out = &ac->repos[i];
            return PIER_OK;
        }
    PGresult *res = db_exec(c->db, c->a, &st_repo_load, e, repo, authz_repo_arn(c, repo));
    if (!res)
        return e->code;
    struct cached_repo *cr = NULL;
    for (int i = 0; i < CACHE_REPOS && !cr; i++)
        if (strcmp(ac->repos[i].name, repo) == 0)
            cr = &ac->repos[i];
    if (!cr)
        cr = &ac->repos[ac->next_repo++ % CACHE_REPOS];
    forget_repo(cr);
    snprintf(cr->name, sizeof cr->name, "%s", repo);
    cr->broken = false;
    cr->p = (PQntuples(res) && !PQgetisnull(res, 0, 1))
                ? parse_stored(PQgetvalue(res, 0, 1), POLICY_RESOURCE, "repository policy",
                               &cr->broken)
                : NULL;
    load_tags(cr, PQntuples(res) && !PQgetisnull(res, 0, 2) ? PQgetvalue(res, 0, 2) : NULL);
    cr->at = now_ms();
    *out = cr;
    return PIER_OK;
}

const char *authz_repo_arn(struct ctx *c, const char *repo)
{
    return arena_printf(c->a, "arn:aws:ecr:%s:%s:repository/%s", c->cfg->region,
                        c->cfg->account_id, repo ? repo : "*");
}

/* Which class of token scope an action needs; NULL: none (checked with
 * the request's main action). */
static const char *scope_action(const char *action)
{
    static const struct {
        const char *action;
        const char *scope;
    } map[] = {
        {"ecr:BatchGetImage", "pull"},          {"ecr:GetDownloadUrlForLayer", "pull"},
        {"ecr:BatchCheckLayerAvailability", "pull"}, {"ecr:ListImages", "pull"},
        {"ecr:InitiateLayerUpload", "push"},    {"ecr:UploadLayerPart", "push"},
        {"ecr:CompleteLayerUpload", "push"},    {"ecr:PutImage", "push"},
        {"ecr:BatchDeleteImage", "delete"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].action, action) == 0)
            return map[i].scope;
    return NULL;
}

static bool scope_grants(const struct identity *id, const char *repo, const char *want)
{
    size_t i;
    json_t *entry;
    json_array_foreach(id->scope, i, entry) {
        if (strcmp(json_string_value(json_object_get(entry, "n")), repo) != 0)
            continue;
        size_t j;
        json_t *a;
        json_array_foreach(json_object_get(entry, "a"), j, a) {
            const char *s = json_string_value(a);
            if (s && (strcmp(s, want) == 0 || strcmp(s, "*") == 0))
                return true;
        }
    }
    return false;
}

struct decision {
    enum effect effect;
    const char *sid;
    const char *where;
    const char *broken;        /* denied because a policy cannot be evaluated */
    const char *scope_missing; /* the token does not cover this */
};

static pier_err decide(struct ctx *c, const char *action, const char *repo, const char *arn,
                       struct decision *d, struct perr *e)
{
    const struct identity *id = c->who;
    memset(d, 0, sizeof *d);
    if (id->via == VIA_BEARER && repo) {
        const char *want = scope_action(action);
        if (want && !scope_grants(id, repo, want) &&
            !(id->mirror_mapped && strcmp(repo, id->mirror_mapped) == 0 &&
              scope_grants(id, id->mirror_asked, want))) {
            d->scope_missing = want;
            d->effect = EFFECT_NONE;
            return PIER_OK;
        }
    }
    struct authz_request rq = {
        .principal = id->authenticated ? id->p.arn : NULL,
        .action = action,
        .resource = arn ? arn : authz_repo_arn(c, repo),
        .source_ip = c->remote_addr,
        .now = time(NULL),
    };
    pier_err rc;
    struct policy *docs[MAX_IDENTITY_POLICIES + 2];
    const char *names[MAX_IDENTITY_POLICIES + 2];
    size_t n = 0;
    int64_t epoch = 0;
    if (id->authenticated) {
        struct cached_identity *ci = NULL;
        if ((rc = load_identity(c, id->p.id, &ci, e)))
            return rc;
        if (!ci->exists)
            return perr_set(e, PIER_E_UNAUTHORIZED, "the principal %s no longer exists", id->p.arn);
        if (ci->broken) {
            d->effect = EFFECT_DENY;
            d->broken = ci->broken;
            return PIER_OK;
        }
        epoch += ci->at;
        for (size_t i = 0; i < ci->n; i++) {
            docs[n] = ci->p[i];
            names[n++] = "identity policy";
        }
    }
    struct policy *reg = NULL, *rp = NULL;
    if ((rc = load_registry(c, &reg, e)))
        return rc;
    if (c->acache->registry_broken) {
        d->effect = EFFECT_DENY;
        d->broken = "the stored registry policy no longer parses";
        return PIER_OK;
    }
    epoch += c->acache->registry_at;
    if (reg) {
        docs[n] = reg;
        names[n++] = "registry policy";
    }
    const struct cached_repo *cr = NULL;
    if (repo && (rc = load_repo(c, repo, &cr, e)))
        return rc;
    if (cr && cr->broken) {
        d->effect = EFFECT_DENY;
        d->broken = "the stored repository policy no longer parses";
        return PIER_OK;
    }
    if (cr) {
        epoch += cr->at;
        rp = cr->p;
        rq.tags = cr->tags;
        rq.ntags = cr->ntags;
    }
    if (rp) {
        docs[n] = rp;
        names[n++] = "repository policy";
    }
    bool reusable = true;
    for (size_t i = 0; i < n && reusable; i++)
        reusable = !policy_has_conditions(docs[i]);
    long long pid = id->authenticated ? id->p.id : -1;
    const char *target = repo ? repo : rq.resource;
    struct cached_decision *cd = NULL;
    if (reusable && strlen(action) < sizeof cd->action && strlen(target) < sizeof cd->target) {
        cd = decision_slot(c->acache, pid, action, target);
        if (cd->epoch == epoch && cd->principal_id == pid && !strcmp(cd->action, action) &&
            !strcmp(cd->target, target)) {
            d->effect = cd->effect;
            d->sid = cd->sid;
            d->where = cd->where;
            return PIER_OK;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *sid;
        enum effect ef = policy_evaluate(docs[i], &rq, &sid);
        if (ef == EFFECT_DENY) {
            d->effect = EFFECT_DENY;
            d->sid = sid;
            d->where = names[i];
            break;
        }
        if (ef == EFFECT_ALLOW && d->effect == EFFECT_NONE) {
            d->effect = EFFECT_ALLOW;
            d->sid = sid;
            d->where = names[i];
        }
    }
    if (cd) {
        cd->principal_id = pid;
        snprintf(cd->action, sizeof cd->action, "%s", action);
        snprintf(cd->target, sizeof cd->target, "%s", target);
        cd->epoch = epoch;
        cd->effect = d->effect;
        snprintf(cd->sid, sizeof cd->sid, "%s", d->sid ? d->sid : "");
        cd->where = d->where;
    }
    return PIER_OK;
}

pier_err authz_principal_check(struct ctx *c, struct perr *e)
{
    if (!c->who->authenticated)
        return PIER_OK;
    struct cached_identity *ci = NULL;
    pier_err rc = load_identity(c, c->who->p.id, &ci, e);
    if (rc)
        return rc;
    return ci->exists ? PIER_OK
                      : perr_set(e, PIER_E_UNAUTHORIZED, "the principal %s no longer exists",
                                 c->who->p.arn);
}

bool authz_allowed(struct ctx *c, const char *action, const char *repo)
{
    struct decision d;
    struct perr e;
    return decide(c, action, repo, NULL, &d, &e) == PIER_OK && d.effect == EFFECT_ALLOW;
}

const char *authz_registry_arn(struct ctx *c)
{
    return arena_printf(c->a, "arn:aws:ecr:%s:%s:registry", c->cfg->region, c->cfg->account_id);
}

static pier_err check(struct ctx *c, const char *action, const char *repo, const char *arn_in,
                      struct perr *e);

pier_err authz_check(struct ctx *c, const char *action, const char *repo, struct perr *e)
{
    PIER_ASSERT(c != NULL && action != NULL && repo != NULL);
    return check(c, action, repo, NULL, e);
}

pier_err authz_check_arn(struct ctx *c, const char *action, const char *arn, struct perr *e)
{
    PIER_ASSERT(c != NULL && action != NULL && arn != NULL);
    return check(c, action, NULL, arn, e);
}

static pier_err check(struct ctx *c, const char *action, const char *repo, const char *arn_in,
                      struct perr *e)
{
    struct decision d;
    pier_err rc = decide(c, action, repo, arn_in, &d, e);
    if (rc)
        return rc;
    if (d.effect == EFFECT_ALLOW)
        return PIER_OK;
    const struct identity *id = c->who;
    const char *who = id->authenticated ? id->p.arn : "anonymous";
    const char *arn = arn_in ? arn_in : authz_repo_arn(c, repo);
    if (d.scope_missing)
        rc = perr_set(e, PIER_E_UNAUTHORIZED,
                      "the bearer token does not grant %s on repository %s; request a token with "
                      "scope repository:%s:%s", d.scope_missing, repo, repo, d.scope_missing);
    else if (d.broken)
        rc = perr_set(e, id->authenticated ? PIER_E_DENIED : PIER_E_UNAUTHORIZED,
                      "%s is not authorized to perform %s on resource %s: denied because %s "
                      "(fail closed; an administrator must fix it)", who, action, arn, d.broken);
    else if (d.effect == EFFECT_DENY)
        rc = perr_set(e, id->authenticated ? PIER_E_DENIED : PIER_E_UNAUTHORIZED,
                      "%s is not authorized to perform %s on resource %s: explicitly denied by "
                      "statement \"%s\" of the %s", who, action, arn, d.sid[0] ? d.sid : "(no Sid)",
                      d.where);
    else if (!id->authenticated)
        rc = perr_set(e, PIER_E_UNAUTHORIZED,
                      "authentication required: anonymous callers may not perform %s on "
                      "resource %s", action, arn);
    else
        rc = perr_set(e, PIER_E_DENIED,
                      "%s is not authorized to perform %s on resource %s: no statement in its "
                      "identity policies, the registry policy or the repository policy allows it",
                      who, action, arn);
    log_warn("denied: %s %s on %s (%s)", who, action, arn,
             d.scope_missing ? "token scope" : d.broken ? d.broken
             : d.effect == EFFECT_DENY ? "explicit deny" : "no allow");
    return rc;
}

/* ---- storage ---- */

pier_err registry_policy_put(struct ctx *c, const char *doc, struct perr *e)
{
    struct policy *p;
    pier_err rc = policy_parse(doc, strlen(doc), POLICY_RESOURCE, &p, e);
    if (rc)
        return rc;
    policy_free(p);
    return db_exec(c->db, c->a, &st_registry_put, e, doc) ? PIER_OK : e->code;
}

pier_err registry_policy_get(struct ctx *c, const char **doc, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_registry_get, e);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "the registry has no policy");
    *doc = PQgetvalue(res, 0, 0);
    return PIER_OK;
}

pier_err registry_policy_delete(struct ctx *c, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_registry_delete, e);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "the registry has no policy");
    return PIER_OK;
}

pier_err repository_policy_put(struct ctx *c, const char *repo, const char *doc, struct perr *e)
{
    struct policy *p;
    pier_err rc = policy_parse(doc, strlen(doc), POLICY_RESOURCE, &p, e);
    if (rc)
        return rc;
    policy_free(p);
    PGresult *res = db_exec(c->db, c->a, &st_repo_put, e, repo, doc);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "repository %s does not exist", repo);
    return PIER_OK;
}

pier_err repository_policy_get(struct ctx *c, const char *repo, const char **doc, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_repo_get, e, repo);
    if (!res)
        return e->code;
    if (PQntuples(res) == 0)
        return perr_set(e, PIER_E_NAME_UNKNOWN, "repository %s does not exist", repo);
    if (PQgetisnull(res, 0, 1))
        return perr_set(e, PIER_E_MANIFEST_UNKNOWN, "repository %s has no policy", repo);
    *doc = PQgetvalue(res, 0, 1);
    return PIER_OK;
}

pier_err repository_policy_delete(struct ctx *c, const char *repo, struct perr *e)
{
    PGresult *res = db_exec(c->db, c->a, &st_repo_delete, e, repo);
    if (!res)
        return e->code;
    if (strcmp(PQcmdTuples(res), "0") == 0)
        return perr_set(e, PIER_E_MANIFEST_UNKNOWN, "repository %s has no policy", repo);
    return PIER_OK;
}

pier_err authz_create_or_import(struct ctx *c, const char *repo, bool exists, bool import,
                                struct perr *e)
{
    if (!c->who)
        return PIER_OK;
    pier_err rc;
    if (!exists && (rc = authz_check(c, "ecr:CreateRepository", repo, e)) != PIER_OK)
        return rc;
    if (import && (rc = authz_check(c, "ecr:BatchImportUpstreamImage", repo, e)) != PIER_OK)
        return rc;
    return PIER_OK;
}

pier_err repository_policy_init(struct ctx *c, const char *repo_id, const char *doc,
                                struct perr *e)
{
    return db_exec(c->db, c->a, &st_repo_init, e, repo_id, doc) ? PIER_OK : e->code;
}
