/* exceptions: the table of control-plane error types and their statuses. */
#include "ecrapi/exceptions.h"

#include <stddef.h>

struct exc {
    const char *type;
    int status;          /* on the API */
    int console_status;  /* on the console */
};

/* The console passes an operation's error on with 403 for AccessDenied, the
 * API's status for server faults (500, 503 to retry, 507 for a full blob
 * root), and 400 for everything else. */
static const struct exc EXC[ECR_EXC__COUNT] = {
    [ECR_EXC_NONE] = {"", 200, 200},
    [ECR_EXC_SERVER] = {"ServerException", 500, 500},
    [ECR_EXC_SERVER_UNAVAILABLE] = {"ServerException", 503, 503},
    [ECR_EXC_SERVER_STORAGE_FULL] = {"ServerException", 507, 507},
    [ECR_EXC_UNKNOWN_OPERATION] = {"UnknownOperationException", 400, 400},
    [ECR_EXC_VALIDATION] = {"ValidationException", 400, 400},
    [ECR_EXC_SERIALIZATION] = {"SerializationException", 400, 400},
    [ECR_EXC_MISSING_AUTHENTICATION_TOKEN] = {"MissingAuthenticationTokenException", 400, 400},
    [ECR_EXC_INVALID_SIGNATURE] = {"InvalidSignatureException", 400, 400},
    [ECR_EXC_UNRECOGNIZED_CLIENT] = {"UnrecognizedClientException", 400, 401},
    [ECR_EXC_THROTTLING] = {"ThrottlingException", 400, 429},
    [ECR_EXC_INVALID_PARAMETER] = {"InvalidParameterException", 400, 400},
    [ECR_EXC_ACCESS_DENIED] = {"AccessDeniedException", 400, 403},
    [ECR_EXC_INVALID_NEXT_TOKEN] = {"InvalidNextTokenException", 400, 400},
    [ECR_EXC_REPOSITORY_NOT_FOUND] = {"RepositoryNotFoundException", 400, 400},
    [ECR_EXC_REPOSITORY_ALREADY_EXISTS] = {"RepositoryAlreadyExistsException", 400, 400},
    [ECR_EXC_REPOSITORY_NOT_EMPTY] = {"RepositoryNotEmptyException", 400, 400},
    [ECR_EXC_REPOSITORY_POLICY_NOT_FOUND] = {"RepositoryPolicyNotFoundException", 400, 400},
    [ECR_EXC_REGISTRY_POLICY_NOT_FOUND] = {"RegistryPolicyNotFoundException", 400, 400},
    [ECR_EXC_IMAGE_NOT_FOUND] = {"ImageNotFoundException", 400, 400},
    [ECR_EXC_INVALID_TAG_PARAMETER] = {"InvalidTagParameterException", 400, 400},
    [ECR_EXC_TOO_MANY_TAGS] = {"TooManyTagsException", 400, 400},
    [ECR_EXC_TEMPLATE_NOT_FOUND] = {"TemplateNotFoundException", 400, 400},
    [ECR_EXC_TEMPLATE_ALREADY_EXISTS] = {"TemplateAlreadyExistsException", 400, 400},
    [ECR_EXC_PTC_RULE_NOT_FOUND] = {"PullThroughCacheRuleNotFoundException", 400, 400},
    [ECR_EXC_PTC_RULE_ALREADY_EXISTS] = {"PullThroughCacheRuleAlreadyExistsException", 400, 400},
    [ECR_EXC_UNSUPPORTED_UPSTREAM_REGISTRY] = {"UnsupportedUpstreamRegistryException", 400, 400},
    [ECR_EXC_SECRET_NOT_FOUND] = {"SecretNotFoundException", 400, 400},
    [ECR_EXC_LIFECYCLE_POLICY_NOT_FOUND] = {"LifecyclePolicyNotFoundException", 400, 400},
    [ECR_EXC_LIFECYCLE_PREVIEW_NOT_FOUND] = {"LifecyclePolicyPreviewNotFoundException", 400, 400},
    [ECR_EXC_LIFECYCLE_PREVIEW_IN_PROGRESS] = {"LifecyclePolicyPreviewInProgressException", 400,
                                               400},
    [ECR_EXC_RESOURCE_NOT_FOUND] = {"ResourceNotFoundException", 400, 400},
    [ECR_EXC_RESOURCE_EXISTS] = {"ResourceExistsException", 400, 400},
    [ECR_EXC_UPLOAD_NOT_FOUND] = {"UploadNotFoundException", 400, 400},
    [ECR_EXC_INVALID_LAYER_PART] = {"InvalidLayerPartException", 400, 400},
    [ECR_EXC_LAYER_PART_TOO_SMALL] = {"LayerPartTooSmallException", 400, 400},
    [ECR_EXC_EMPTY_UPLOAD] = {"EmptyUploadException", 400, 400},
    [ECR_EXC_INVALID_LAYER] = {"InvalidLayerException", 400, 400},
    [ECR_EXC_LAYER_ALREADY_EXISTS] = {"LayerAlreadyExistsException", 400, 400},
    [ECR_EXC_LAYERS_NOT_FOUND] = {"LayersNotFoundException", 400, 400},
    [ECR_EXC_LAYER_INACCESSIBLE] = {"LayerInaccessibleException", 400, 400},
    [ECR_EXC_LIMIT_EXCEEDED] = {"LimitExceededException", 400, 400},
    [ECR_EXC_IMAGE_ALREADY_EXISTS] = {"ImageAlreadyExistsException", 400, 400},
    [ECR_EXC_IMAGE_TAG_ALREADY_EXISTS] = {"ImageTagAlreadyExistsException", 400, 400},
    [ECR_EXC_IMAGE_DIGEST_DOES_NOT_MATCH] = {"ImageDigestDoesNotMatchException", 400, 400},
    [ECR_EXC_REFERENCED_IMAGES_NOT_FOUND] = {"ReferencedImagesNotFoundException", 400, 400},
    [ECR_EXC_EXCLUSION_ALREADY_EXISTS] = {"ExclusionAlreadyExistsException", 400, 400},
    [ECR_EXC_EXCLUSION_NOT_FOUND] = {"ExclusionNotFoundException", 400, 400},
    [ECR_EXC_UNABLE_TO_LIST_UPSTREAM_REFERRERS] = {"UnableToListUpstreamImageReferrersException",
                                                   400, 400},
    [ECR_EXC_UNSUPPORTED_IMAGE_TYPE] = {"UnsupportedImageTypeException", 400, 400},
    [ECR_EXC_SCAN_NOT_FOUND] = {"ScanNotFoundException", 400, 400},
    [ECR_EXC_SIGNING_CONFIGURATION_NOT_FOUND] = {"SigningConfigurationNotFoundException", 400, 400},
    [ECR_EXC_IMAGE_STORAGE_CLASS_UPDATE_NOT_SUPPORTED] = {
        "ImageStorageClassUpdateNotSupportedException", 400, 400},
    [ECR_EXC_NO_SUCH_ENTITY] = {"NoSuchEntityException", 400, 400},
    [ECR_EXC_ENTITY_ALREADY_EXISTS] = {"EntityAlreadyExistsException", 400, 400},
    [ECR_EXC_DELETE_CONFLICT] = {"DeleteConflictException", 400, 400},
    [ECR_EXC_CONSOLE_UNAVAILABLE] = {"ServerException", 503, 503},
    [ECR_EXC_CONSOLE_NOT_FOUND] = {"UnknownOperationException", 404, 404},
    [ECR_EXC_SESSION_EXPIRED] = {"SessionExpired", 401, 401},
    [ECR_EXC_INVALID_ORIGIN] = {"InvalidOrigin", 403, 403},
    [ECR_EXC_INVALID_CSRF_TOKEN] = {"InvalidCsrfToken", 403, 403},
};

/* An enum value outside the table is a server fault, never a crash. */
static const struct exc *get(enum ecr_exc x)
{
    return x >= 0 && x < ECR_EXC__COUNT && EXC[x].type ? &EXC[x] : &EXC[ECR_EXC_SERVER];
}

const char *ecr_exc_type(enum ecr_exc x)
{
    return get(x)->type;
}

int ecr_exc_status(enum ecr_exc x)
{
    return get(x)->status;
}

int ecr_exc_console_status(enum ecr_exc x)
{
    return get(x)->console_status;
}
