/* templates: repository creation templates (ECR's CreateRepositoryCreationTemplate)
 * — stored settings applied when a pull-through cache or a push creates a
 * repository under a prefix: tag mutability, encryption settings, a repository
 * policy and resource tags. */
#ifndef PIER_TEMPLATES_H
#define PIER_TEMPLATES_H

#include <jansson.h>
#include "lib/err.h"
#include "lib/ctx.h"

/* Template as ECR's RepositoryCreationTemplate JSON (timestamps in epoch
 * seconds with milliseconds), or NULL. */
PIER_MUST_USE
pier_err templates_get(struct ctx *c, const char *prefix, json_t **out, struct perr *e);
PIER_MUST_USE
pier_err templates_list(struct ctx *c, json_t *out, struct perr *e);
/* Check a prefix ("ROOT" or a repository name prefix) and a template document
 * (appliedFor, imageTagMutability with imageTagMutabilityExclusionFilters,
 * encryptionConfiguration, repositoryPolicy, lifecyclePolicy — checked as
 * lifecycle_parse does —, resourceTags) without storing anything. */
PIER_MUST_USE
pier_err templates_check(const char *prefix, json_t *t, struct perr *e);
/* Create (t has ECR's fields; validated by templates_check) or replace the given fields. */
PIER_MUST_USE
pier_err templates_put(struct ctx *c, const char *prefix, json_t *t, bool create, struct perr *e);
PIER_MUST_USE
pier_err templates_delete(struct ctx *c, const char *prefix, json_t **old, struct perr *e);
/* Apply the template matching name (longest prefix, else ROOT) for how the
 * repository came to be ("PULL_THROUGH_CACHE" or "CREATE_ON_PUSH"): its
 * settings, repository policy, resource tags and lifecycle policy. Runs in
 * the caller's transaction. */
PIER_MUST_USE
pier_err templates_apply(struct ctx *c, const char *repo_id, const char *name, const char *applied_for,
                         struct perr *e);

#endif
