/* ops_unsupported: what needs an engine Pier does not have — replication,
 * image scanning, managed signing, archival storage. Every operation is
 * authorized like any other and checks the repository and image it names;
 * then it answers what is true here in the model's shapes (no replication
 * rules, no destinations, no signing statuses, standard storage) or refuses
 * with the model's closest exception and a message that says Pier does not
 * support it (docs/control-plane.md lists which is which). */
#include <stdio.h>
#include <string.h>
#include "ecrapi/api.h"
#include "lib/grammar.h"
#include "store/repo.h"

#define NO_SCANNER "image scanning is not supported by Pier: it has no scanning engine"
#define NO_SIGNER                                                                            \
    "managed signing is not supported by Pier: it has no signing engine (push signatures "  \
    "made with cosign or notation as OCI referrers instead)"

/* ---- the image an operation names ---- */

/* repositoryName, registryId and imageId ({imageDigest} and/or {imageTag})
 * of an image-level operation, checked in ECR's order: the input, the
 * caller's permission, the repository, the image. *id receives the imageId
 * to answer with (the digest, and the tag when one was given; the caller
 * owns it). false when one failed (x holds why). */
static bool named_image(struct api *x, const char **name, json_t **id)
{
    *id = NULL;
    *name = api_repo_name(x, true);
    if (x->err_type || !api_registry_id(x))
        return false;
    json_t *in = json_object_get(x->in, "imageId");
    if (!json_is_object(in))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageId is required");
    json_t *dv = json_object_get(in, "imageDigest"), *tv = json_object_get(in, "imageTag");
    const char *digest = json_string_value(dv), *tag = json_string_value(tv);
    struct perr e;
    if ((dv && !json_is_null(dv) && !digest) || (tv && !json_is_null(tv) && !tag))
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageId members must be strings");
    if (!digest && !tag)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageId needs an imageDigest or an imageTag");
    if (digest && grammar_digest(digest, NULL, &e) != PIER_OK)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageId.imageDigest: %s", e.msg);
    if (tag && grammar_tag(tag, &e) != PIER_OK)
        return api_fail(x, ECR_EXC_INVALID_PARAMETER, "imageId.imageTag: %s", e.msg);
    if (!api_authorize(x, *name) || !api_repo_exists(x, *name, NULL))
        return false;
    struct stored_manifest sm;
    pier_err rc = repo_manifest_get(x->c, *name, tag ? tag : digest, false, &sm, &e);
    if (rc == PIER_OK && digest && strcmp(sm.digest, digest) != 0)
        rc = PIER_E_MANIFEST_UNKNOWN; /* the tag names another image */
    if (rc == PIER_E_MANIFEST_UNKNOWN || rc == PIER_E_NAME_UNKNOWN)
        return api_fail(x, ECR_EXC_IMAGE_NOT_FOUND,
                        "The image with imageId {imageDigest:'%s', imageTag:'%s'} does not exist "
                        "within the repository with name '%s' in the registry with id '%s'",
                        digest ? digest : "null", tag ? tag : "null", *name,
                        x->c->cfg->account_id);
    if (rc)
        return api_perr(x, &e, ECR_EXC_NONE, ECR_EXC_NONE);
    *id = json_pack("{s:s}", "imageDigest", sm.digest);
    if (tag)
        json_object_set_new(*id, "imageTag", json_string(tag));
    return true;
}

/* The answer of an image-level operation: registryId (when the model's
 * output has it), repositoryName and imageId (taken). */
static void image_out(struct api *x, const char *name, json_t *id, bool registry_id)
{
    if (registry_id)
        json_object_set_new(x->out, "registryId", json_string(x->c->cfg->account_id));
    json_object_set_new(x->out, "repositoryName", json_string(name));
    json_object_set_new(x->out, "imageId", id);
}

/* ---- replication: Pier replicates nothing ---- */

void op_put_replication_configuration(struct api *x)
{
    json_t *conf = json_object_get(x->in, "replicationConfiguration");
    json_t *rules = json_object_get(conf, "rules");
    if (!json_is_object(conf) || !json_is_array(rules)) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "replicationConfiguration.rules is required");
        return;
    }
    if (json_array_size(rules) > 10) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "replicationConfiguration.rules: at most 10 rules");
        return;
    }
    if (!api_authorize(x, NULL))
        return;
    /* An empty configuration is what DescribeRegistry reports: accepted. */
    if (json_array_size(rules) > 0) {
        api_fail(x, ECR_EXC_VALIDATION,
                 "replication is not supported by Pier: it replicates no image to another region "
                 "or registry, so replicationConfiguration.rules must be empty (run a Pier per "
                 "site with its own pull-through cache rules instead)");
        return;
    }
    json_object_set_new(x->out, "replicationConfiguration", json_pack("{s:[]}", "rules"));
}

void op_describe_image_replication_status(struct api *x)
{
    const char *name;
    json_t *id;
    if (!named_image(x, &name, &id))
        return;
    image_out(x, name, id, false);
    /* No replication rule, so no destination to report on. */
    json_object_set_new(x->out, "replicationStatuses", json_array());
}

/* ---- scanning: no engine ---- */

void op_start_image_scan(struct api *x)
{
    const char *name;
    json_t *id;
    if (!named_image(x, &name, &id))
        return;
    json_decref(id);
    api_fail(x, ECR_EXC_UNSUPPORTED_IMAGE_TYPE, NO_SCANNER "; no image can be scanned");
}

void op_describe_image_scan_findings(struct api *x)
{
    long long limit, offset;
    const char *name;
    json_t *id;
    if (!api_page(x, 1000, &limit, &offset) || !named_image(x, &name, &id))
        return;
    api_fail(x, ECR_EXC_SCAN_NOT_FOUND,
             "Image scan does not exist for the image with '%s' in the repository with name '%s': "
             NO_SCANNER, json_string_value(json_object_get(id, "imageDigest")), name);
    json_decref(id);
}

void op_put_registry_scanning_configuration(struct api *x)
{
    if (api_authorize(x, NULL))
        api_fail(x, ECR_EXC_VALIDATION, NO_SCANNER);
}

void op_get_registry_scanning_configuration(struct api *x)
{
    if (api_authorize(x, NULL))
        api_fail(x, ECR_EXC_VALIDATION, NO_SCANNER);
}

void op_batch_get_repository_scanning_configuration(struct api *x)
{
    json_t *names = json_object_get(x->in, "repositoryNames");
    if (!json_is_array(names) || json_array_size(names) < 1 || json_array_size(names) > 25) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "repositoryNames must list 1 to 25 names");
        return;
    }
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) {
        const char *name = json_string_value(n);
        struct perr e;
        if (!name || grammar_name(name, &e) != PIER_OK) {
            api_fail(x, ECR_EXC_INVALID_PARAMETER, "repositoryNames[%zu] must be a repository name",
                     i);
            return;
        }
        if (!api_authorize(x, name))
            return;
    }
    api_fail(x, ECR_EXC_VALIDATION, NO_SCANNER);
}

/* ---- managed signing: no engine, so never a configuration ---- */

void op_put_signing_configuration(struct api *x)
{
    if (!json_is_object(json_object_get(x->in, "signingConfiguration"))) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "signingConfiguration is required");
        return;
    }
    if (api_authorize(x, NULL))
        api_fail(x, ECR_EXC_VALIDATION, NO_SIGNER);
}

void op_get_signing_configuration(struct api *x)
{
    if (api_authorize(x, NULL))
        api_fail(x, ECR_EXC_SIGNING_CONFIGURATION_NOT_FOUND,
                 "the registry has no signing configuration: " NO_SIGNER);
}

void op_delete_signing_configuration(struct api *x)
{
    if (api_authorize(x, NULL))
        api_fail(x, ECR_EXC_SIGNING_CONFIGURATION_NOT_FOUND,
                 "the registry has no signing configuration to delete: " NO_SIGNER);
}

void op_describe_image_signing_status(struct api *x)
{
    const char *name;
    json_t *id;
    if (!named_image(x, &name, &id))
        return;
    image_out(x, name, id, true);
    /* No signing rule, so no signing profile to report on. */
    json_object_set_new(x->out, "signingStatuses", json_array());
}

/* ---- storage classes: standard only ---- */

void op_update_image_storage_class(struct api *x)
{
    const char *target = api_str(x, "targetStorageClass", true, 16);
    if (target && strcmp(target, "STANDARD") && strcmp(target, "ARCHIVE")) {
        api_fail(x, ECR_EXC_INVALID_PARAMETER, "targetStorageClass must be STANDARD or ARCHIVE");
        return;
    }
    const char *name;
    json_t *id;
    if (x->err_type || !named_image(x, &name, &id))
        return;
    if (strcmp(target, "ARCHIVE") == 0) {
        json_decref(id);
        api_fail(x, ECR_EXC_IMAGE_STORAGE_CLASS_UPDATE_NOT_SUPPORTED,
                 "archival storage is not supported by Pier: every image stays in standard "
                 "storage");
        return;
    }
    /* Every image is in standard storage already. */
    image_out(x, name, id, true);
    json_object_set_new(x->out, "imageStatus", json_string("ACTIVE"));
}
