/* authz: who is asking (struct identity, filled by authn) and whether they
 * may: identity policies of the principal, the registry policy and the
 * repository's policy, evaluated with the policy engine. Stores the registry
 * and repository policies (the only module with SQL on registry_policy and
 * repository_policies). Policies are kept per worker for policy_cache_ms. */
#ifndef PIER_AUTHZ_H
#define PIER_AUTHZ_H

#include <stdbool.h>
#include <jansson.h>
#include "auth/principals.h"
#include "lib/contract.h"
#include "lib/err.h"
#include "lib/ctx.h"

/* How the caller proved who they are; VIA_DOWNLOAD_URL: a layer download
 * URL (GetDownloadUrlForLayer), which acts as the principal that asked for it. */
enum auth_via { VIA_ANONYMOUS, VIA_ACCESS_KEY, VIA_LOGIN_TOKEN, VIA_BEARER, VIA_DOWNLOAD_URL };

struct identity {
    bool authenticated;       /* false: anonymous */
    enum auth_via via;
    struct principal p;       /* when authenticated */
    json_t *scope;            /* bearer tokens: [{"n": repo, "a": [actions]}] (owned); NULL otherwise */
    bool catalog;             /* bearer tokens: registry:catalog:* granted */
    long long expires;        /* login passwords, bearer tokens, console sessions: when they
                                 end (unix s); 0 otherwise */
    char key_id[24];          /* the access key behind this identity (directly, or the one a
                                 token or session was issued for); "" when none */
    /* Mirror mode (request arena, NULL otherwise): the name a pull asked for
     * and the repository it maps to; a bearer token's scope for the asked
     * name covers the mapped repository in this request. */
    const char *mirror_asked, *mirror_mapped;
};

void identity_clear(struct identity *id);

struct authz_cache;
struct authz_cache *authz_cache_new(void);
void authz_cache_free(struct authz_cache *ac);

/* The authenticated caller's principal still exists (tokens outlive
 * deletions otherwise). Cached like the policies. */
PIER_MUST_USE
pier_err authz_principal_check(struct ctx *c, struct perr *e);

/* Resource ARN of a repository: arn:aws:ecr:<region>:<account>:repository/<name>. */
const char *authz_repo_arn(struct ctx *c, const char *repo);

/* The registry itself as a resource: arn:aws:ecr:<region>:<account>:registry. */
const char *authz_registry_arn(struct ctx *c);
/* Like authz_check, for a resource given by its ARN (registry-wide actions). */
PIER_MUST_USE
pier_err authz_check_arn(struct ctx *c, const char *action, const char *arn, struct perr *e);

/* May c->who perform action (e.g. "ecr:BatchGetImage") on repository repo?
 * PIER_OK, or PIER_E_DENIED / PIER_E_UNAUTHORIZED (anonymous callers) with a
 * message naming the action, the resource and the reason. Denials are logged. */
PIER_MUST_USE
pier_err authz_check(struct ctx *c, const char *action, const char *repo, struct perr *e);
/* The same decision without logging or a message (catalog filtering). */
bool authz_allowed(struct ctx *c, const char *action, const char *repo);
/* A request that may put images into repository repo: one that does not
 * exist yet needs ecr:CreateRepository, and an import from a pull-through
 * cache's upstream (import) needs ecr:BatchImportUpstreamImage. The one
 * place these are decided; the store's write functions do not authorize.
 * A context without a caller (c->who NULL: maintenance, pierctl) is trusted. */
PIER_MUST_USE
pier_err authz_create_or_import(struct ctx *c, const char *repo, bool exists, bool import,
                                struct perr *e);

/* Registry policy (ECR PutRegistryPolicy); validated before it is stored. */
PIER_MUST_USE
pier_err registry_policy_put(struct ctx *c, const char *doc, struct perr *e);
/* *doc is arena memory; PIER_E_NAME_UNKNOWN when there is none. */
PIER_MUST_USE
pier_err registry_policy_get(struct ctx *c, const char **doc, struct perr *e);
PIER_MUST_USE
pier_err registry_policy_delete(struct ctx *c, struct perr *e);
/* Repository policies; the repository must exist (PIER_E_NAME_UNKNOWN). */
PIER_MUST_USE
pier_err repository_policy_put(struct ctx *c, const char *repo, const char *doc, struct perr *e);
PIER_MUST_USE
pier_err repository_policy_get(struct ctx *c, const char *repo, const char **doc, struct perr *e);
PIER_MUST_USE
pier_err repository_policy_delete(struct ctx *c, const char *repo, struct perr *e);
/* A creation template's policy doc (not parsed here: templates_check did)
 * for the repository with id repo_id, created in the caller's transaction;
 * a policy the repository already has stays. */
PIER_MUST_USE
pier_err repository_policy_init(struct ctx *c, const char *repo_id, const char *doc,
                                struct perr *e);

#endif
