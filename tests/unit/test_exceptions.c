/* Unit tests for the control plane's exception table: every error type has a
 * name and the statuses the SDKs and the console page rely on. */
#include "ecrapi/exceptions.h"
#include "tap.h"

int main(void)
{
    int named = 1, api_ok = 1;
    for (int x = ECR_EXC_NONE + 1; x < ECR_EXC__COUNT; x++) {
        const char *t = ecr_exc_type((enum ecr_exc)x);
        int s = ecr_exc_status((enum ecr_exc)x);
        if (!t || !t[0])
            named = 0;
        /* AWS JSON 1.1: client errors are 400, server faults 5xx. */
        if (x >= ECR_EXC_UNKNOWN_OPERATION && x < ECR_EXC_CONSOLE_UNAVAILABLE && s != 400)
            api_ok = 0;
    }
    CHECK("every exception has a type", named);
    CHECK("client errors are 400 on the API", api_ok);
    CHECK("server fault", ecr_exc_status(ECR_EXC_SERVER) == 500 &&
                              !strcmp(ecr_exc_type(ECR_EXC_SERVER), "ServerException"));
    CHECK("unavailable is 503 (Retry-After)", ecr_exc_status(ECR_EXC_SERVER_UNAVAILABLE) == 503 &&
                                                  !strcmp(ecr_exc_type(ECR_EXC_SERVER_UNAVAILABLE),
                                                          "ServerException"));
    CHECK("storage full is 507", ecr_exc_status(ECR_EXC_SERVER_STORAGE_FULL) == 507);
    CHECK("repository not found",
          !strcmp(ecr_exc_type(ECR_EXC_REPOSITORY_NOT_FOUND), "RepositoryNotFoundException"));
    CHECK("access denied: 400 on the API, 403 on the console",
          ecr_exc_status(ECR_EXC_ACCESS_DENIED) == 400 &&
              ecr_exc_console_status(ECR_EXC_ACCESS_DENIED) == 403);
    CHECK("account, referrers, scanning and signing exceptions carry the model's names",
          !strcmp(ecr_exc_type(ECR_EXC_LIMIT_EXCEEDED), "LimitExceededException") &&
              !strcmp(ecr_exc_type(ECR_EXC_EXCLUSION_ALREADY_EXISTS),
                      "ExclusionAlreadyExistsException") &&
              !strcmp(ecr_exc_type(ECR_EXC_EXCLUSION_NOT_FOUND), "ExclusionNotFoundException") &&
              !strcmp(ecr_exc_type(ECR_EXC_UNABLE_TO_LIST_UPSTREAM_REFERRERS),
                      "UnableToListUpstreamImageReferrersException") &&
              !strcmp(ecr_exc_type(ECR_EXC_UNSUPPORTED_IMAGE_TYPE),
                      "UnsupportedImageTypeException") &&
              !strcmp(ecr_exc_type(ECR_EXC_SCAN_NOT_FOUND), "ScanNotFoundException") &&
              !strcmp(ecr_exc_type(ECR_EXC_SIGNING_CONFIGURATION_NOT_FOUND),
                      "SigningConfigurationNotFoundException") &&
              !strcmp(ecr_exc_type(ECR_EXC_IMAGE_STORAGE_CLASS_UPDATE_NOT_SUPPORTED),
                      "ImageStorageClassUpdateNotSupportedException"));
    CHECK("lifecycle exceptions carry the model's names",
          !strcmp(ecr_exc_type(ECR_EXC_LIFECYCLE_POLICY_NOT_FOUND),
                  "LifecyclePolicyNotFoundException") &&
              !strcmp(ecr_exc_type(ECR_EXC_LIFECYCLE_PREVIEW_NOT_FOUND),
                      "LifecyclePolicyPreviewNotFoundException") &&
              !strcmp(ecr_exc_type(ECR_EXC_LIFECYCLE_PREVIEW_IN_PROGRESS),
                      "LifecyclePolicyPreviewInProgressException"));
    CHECK("IAM exceptions carry IAM's names",
          !strcmp(ecr_exc_type(ECR_EXC_NO_SUCH_ENTITY), "NoSuchEntityException") &&
              !strcmp(ecr_exc_type(ECR_EXC_ENTITY_ALREADY_EXISTS), "EntityAlreadyExistsException") &&
              !strcmp(ecr_exc_type(ECR_EXC_DELETE_CONFLICT), "DeleteConflictException"));
    CHECK("console: server fault 500", ecr_exc_console_status(ECR_EXC_SERVER) == 500);
    CHECK("console: other operation errors 400",
          ecr_exc_console_status(ECR_EXC_REPOSITORY_NOT_FOUND) == 400 &&
              ecr_exc_console_status(ECR_EXC_UNKNOWN_OPERATION) == 400);
    /* A browser retries a 503 and shows a full disk as what it is. */
    CHECK("console: server faults keep their status",
          ecr_exc_console_status(ECR_EXC_SERVER_UNAVAILABLE) == 503 &&
              ecr_exc_console_status(ECR_EXC_SERVER_STORAGE_FULL) == 507);
    CHECK("console: own statuses",
          ecr_exc_console_status(ECR_EXC_SESSION_EXPIRED) == 401 &&
              ecr_exc_console_status(ECR_EXC_UNRECOGNIZED_CLIENT) == 401 &&
              ecr_exc_console_status(ECR_EXC_INVALID_CSRF_TOKEN) == 403 &&
              ecr_exc_console_status(ECR_EXC_INVALID_ORIGIN) == 403 &&
              ecr_exc_console_status(ECR_EXC_THROTTLING) == 429 &&
              ecr_exc_console_status(ECR_EXC_CONSOLE_UNAVAILABLE) == 503 &&
              ecr_exc_console_status(ECR_EXC_CONSOLE_NOT_FOUND) == 404);
    /* The layer and image API answers with the model's exception names. */
    static const struct {
        enum ecr_exc x;
        const char *type;
    } layers[] = {
        {ECR_EXC_UPLOAD_NOT_FOUND, "UploadNotFoundException"},
        {ECR_EXC_INVALID_LAYER_PART, "InvalidLayerPartException"},
        {ECR_EXC_LAYER_PART_TOO_SMALL, "LayerPartTooSmallException"},
        {ECR_EXC_EMPTY_UPLOAD, "EmptyUploadException"},
        {ECR_EXC_INVALID_LAYER, "InvalidLayerException"},
        {ECR_EXC_LAYER_ALREADY_EXISTS, "LayerAlreadyExistsException"},
        {ECR_EXC_LAYERS_NOT_FOUND, "LayersNotFoundException"},
        {ECR_EXC_LAYER_INACCESSIBLE, "LayerInaccessibleException"},
        {ECR_EXC_LIMIT_EXCEEDED, "LimitExceededException"},
        {ECR_EXC_IMAGE_ALREADY_EXISTS, "ImageAlreadyExistsException"},
        {ECR_EXC_IMAGE_TAG_ALREADY_EXISTS, "ImageTagAlreadyExistsException"},
        {ECR_EXC_IMAGE_DIGEST_DOES_NOT_MATCH, "ImageDigestDoesNotMatchException"},
        {ECR_EXC_REFERENCED_IMAGES_NOT_FOUND, "ReferencedImagesNotFoundException"},
    };
    int layer_names = 1;
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
        if (strcmp(ecr_exc_type(layers[i].x), layers[i].type) != 0 ||
            ecr_exc_status(layers[i].x) != 400)
            layer_names = 0;
    CHECK("layer and image exceptions: the model's names, 400", layer_names);
    CHECK("out of range is a server fault", ecr_exc_status((enum ecr_exc)ECR_EXC__COUNT) == 500);
    return TAP_DONE();
}
