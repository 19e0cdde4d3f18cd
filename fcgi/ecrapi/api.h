/* api: the ECR-compatible control plane — AWS JSON 1.1 over POST, signed with
 * Signature Version 4, the same policy engine as the registry, errors as the
 * SDKs expect ({"__type": "<Name>Exception", "message": ...}, HTTP 400).
 * Also answers the few Secrets Manager calls the pull-through-cache workflow
 * uses. Operations live in ops_*.c, one file per concept; this header is
 * their toolkit. */
#ifndef PIER_ECRAPI_H
#define PIER_ECRAPI_H

#include <stdbool.h>
#include <jansson.h>
#include "ecrapi/exceptions.h"
#include "http/request.h"
#include "lib/ctx.h"

struct authn_cache;
struct repo_record;

struct api {
    struct ctx *c;
    struct req *r;
    const char *op;          /* operation name, e.g. "CreateRepository" */
    json_t *in;              /* request document (borrowed) */
    json_t *out;             /* response document (operations fill it) */
    enum ecr_exc err_type;   /* set by api_fail; ECR_EXC_NONE while all is well */
    char err_msg[600];
    json_t *err_fields; /* members the error carries besides its message (owned), or NULL */
    /* What the audit event names, when the operation knows better than its
     * input (arena strings; NULL: taken from the input). Never a secret. */
    const char *audit_resource;
    const char *audit_target;
};

/* Answer POST / (X-Amz-Target dispatch). */
void ecrapi_handle(struct ctx *c, struct req *r);
/* A server-side failure before any operation ran (e.g. the database is
 * down), as the SDKs expect it: ServerException, 503 with Retry-After for
 * PIER_E_UNAVAILABLE, else 500. */
void ecrapi_error(struct req *r, const struct perr *e);
/* Run one operation for c->who (already authenticated another way, e.g. the
 * console's session): service "ecr", "secretsmanager" or "iam" (the IAM
 * operations exist only this way, for the console). On success *out
 * (caller decrefs) is the response document; otherwise *exc and the message
 * (the exception table gives the type and the status). The same code serves
 * both ways in. */
bool ecrapi_invoke(struct ctx *c, struct req *r, const char *service, const char *opname,
                   json_t *in, json_t **out, enum ecr_exc *exc, char *err_msg, size_t errsz);

/* The first operation ("ecr:PutImage") whose action the policy engine's list
 * (policy_actions) lacks, or NULL when it names them all: the tests keep the
 * one list of actions complete. */
const char *ecrapi_unlisted_operation(void);

/* ---- for operations ---- */
/* Record an error (first one wins) and return false. */
bool api_fail(struct api *x, enum ecr_exc exc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* api_fail for an exception whose shape has members besides the message
 * (e.g. InvalidLayerPartException's lastValidByteReceived): fields (a JSON
 * object, stolen) go into the error document. */
bool api_fail_fields(struct api *x, json_t *fields, enum ecr_exc exc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Map a pier error: NAME_UNKNOWN -> notfound (e.g. ECR_EXC_REPOSITORY_NOT_FOUND),
 * DENIED/UNAUTHORIZED -> AccessDenied, bad input -> InvalidParameter, CONFLICT ->
 * conflict, 5xx -> ServerException (503 when unavailable, 507 when storage is
 * full). ECR_EXC_NONE for notfound or conflict: InvalidParameter. */
bool api_perr(struct api *x, const struct perr *e, enum ecr_exc notfound, enum ecr_exc conflict);
/* Required or optional string member; type and length are checked. */
const char *api_str(struct api *x, const char *field, bool required, size_t maxlen);
/* Optional integer member within [lo, hi]; *out keeps its value when absent. */
bool api_int(struct api *x, const char *field, long long lo, long long hi, long long *out);
/* Optional boolean member. */
bool api_bool(struct api *x, const char *field, bool *out);
/* A repositoryName member, checked against the OCI name grammar. */
const char *api_repo_name(struct api *x, bool required);
/* The caller may perform ecr:<op> on repository repo (NULL: the registry). */
bool api_authorize(struct api *x, const char *repo);
/* registryId must be absent or this registry's account id. */
bool api_registry_id(struct api *x);
/* Pagination: maxResults (1..max) and the offset carried by nextToken. */
bool api_page(struct api *x, long long max, long long *limit, long long *offset);
/* Set nextToken when more results remain after offset+limit. */
void api_next(struct api *x, long long offset, long long limit, bool more);
/* A timestamp as ECR writes it: epoch seconds with their milliseconds, a
 * JSON number with a fraction (1700000000.123); ms is milliseconds since the
 * epoch. */
json_t *api_time(long long ms);
/* Registry URI host (public_url without scheme, else registry_host). */
const char *api_registry_host(struct api *x);
/* Repository name exists (RepositoryNotFoundException otherwise); *out (may
 * be NULL) receives its record (ops_repos.c). */
bool api_repo_exists(struct api *x, const char *name, struct repo_record *out);
/* Store tags ([{Key, Value}], NULL: none) on resource arn, at most 50 in all
 * (ops_tags.c). */
bool api_put_tags(struct api *x, const char *arn, json_t *tags);
/* filter.tagStatus of the request: "ANY" when absent, NULL when malformed
 * (x holds the error) (ops_images.c). */
const char *api_tag_status(struct api *x);

/* The largest request body operation op accepts when it takes more than the
 * API's 1 MiB: a layer part (20 MiB, base64) or a manifest (ops_layers.c);
 * 0 for every other operation. */
size_t layers_body_limit(const char *op);

/* Operations (ops_*.c). */
void op_get_authorization_token(struct api *x);
void op_describe_registry(struct api *x);
void op_put_registry_policy(struct api *x);
void op_get_registry_policy(struct api *x);
void op_delete_registry_policy(struct api *x);
void op_create_ptc_rule(struct api *x);
void op_describe_ptc_rules(struct api *x);
void op_update_ptc_rule(struct api *x);
void op_delete_ptc_rule(struct api *x);
void op_validate_ptc_rule(struct api *x);
void op_create_repository(struct api *x);
void op_describe_repositories(struct api *x);
void op_delete_repository(struct api *x);
void op_set_repository_policy(struct api *x);
void op_get_repository_policy(struct api *x);
void op_delete_repository_policy(struct api *x);
void op_list_images(struct api *x);
void op_describe_images(struct api *x);
void op_batch_get_image(struct api *x);
void op_batch_delete_image(struct api *x);
void op_put_image_tag_mutability(struct api *x);
void op_put_lifecycle_policy(struct api *x);
void op_get_lifecycle_policy(struct api *x);
void op_delete_lifecycle_policy(struct api *x);
void op_start_lifecycle_preview(struct api *x);
void op_get_lifecycle_preview(struct api *x);
void op_create_template(struct api *x);
void op_describe_templates(struct api *x);
void op_update_template(struct api *x);
void op_delete_template(struct api *x);
void op_list_tags_for_resource(struct api *x);
void op_tag_resource(struct api *x);
void op_untag_resource(struct api *x);
void op_put_image_scanning_configuration(struct api *x); /* ops_repos.c */
/* ops_account.c: account settings and pull-time update exclusions. */
void op_get_account_setting(struct api *x);
void op_put_account_setting(struct api *x);
void op_register_pull_time_exclusion(struct api *x);
void op_deregister_pull_time_exclusion(struct api *x);
void op_list_pull_time_exclusions(struct api *x);
/* ops_referrers.c */
void op_list_image_referrers(struct api *x);
/* ops_unsupported.c: replication, scanning, signing and archival storage,
 * which need engines Pier does not have. */
void op_put_replication_configuration(struct api *x);
void op_describe_image_replication_status(struct api *x);
void op_start_image_scan(struct api *x);
void op_describe_image_scan_findings(struct api *x);
void op_put_registry_scanning_configuration(struct api *x);
void op_get_registry_scanning_configuration(struct api *x);
void op_batch_get_repository_scanning_configuration(struct api *x);
void op_put_signing_configuration(struct api *x);
void op_get_signing_configuration(struct api *x);
void op_delete_signing_configuration(struct api *x);
void op_describe_image_signing_status(struct api *x);
void op_update_image_storage_class(struct api *x);
void op_batch_check_layer_availability(struct api *x);
void op_initiate_layer_upload(struct api *x);
void op_upload_layer_part(struct api *x);
void op_complete_layer_upload(struct api *x);
void op_put_image(struct api *x);
void op_get_download_url_for_layer(struct api *x);
/* ops_iam.c: users and roles, access keys, identity policies, login
 * passwords (IAM's names: UserName, AccessKeyId, PolicyName, ...). */
void op_iam_list_users(struct api *x);
void op_iam_create_user(struct api *x);
void op_iam_delete_user(struct api *x);
void op_iam_create_access_key(struct api *x);
void op_iam_update_access_key(struct api *x);
void op_iam_delete_access_key(struct api *x);
void op_iam_list_user_policies(struct api *x);
void op_iam_get_user_policy(struct api *x);
void op_iam_put_user_policy(struct api *x);
void op_iam_delete_user_policy(struct api *x);
void op_iam_create_login_password(struct api *x);
void op_sm_create_secret(struct api *x);
void op_sm_put_secret_value(struct api *x);
void op_sm_describe_secret(struct api *x);
void op_sm_list_secrets(struct api *x);
void op_sm_delete_secret(struct api *x);

#endif
