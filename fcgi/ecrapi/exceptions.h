/* exceptions: the error types the control plane answers with (the "__type"
 * of AWS JSON 1.1 errors) and the HTTP status of each — on the ECR and Secrets
 * Manager API, where the SDKs expect 400 for every client error, and on the
 * console's JSON API, which answers with the status that says what went
 * wrong. The one table of them: no other file spells a type or picks its
 * status. */
#ifndef PIER_EXCEPTIONS_H
#define PIER_EXCEPTIONS_H

enum ecr_exc {
    ECR_EXC_NONE = 0,                 /* no error */
    /* Faults of the server. */
    ECR_EXC_SERVER,                   /* ServerException, 500 */
    ECR_EXC_SERVER_UNAVAILABLE,       /* ServerException, 503 + Retry-After (database down) */
    ECR_EXC_SERVER_STORAGE_FULL,      /* ServerException, 507 */
    /* Requests the API refuses before any operation runs. */
    ECR_EXC_UNKNOWN_OPERATION,
    ECR_EXC_VALIDATION,
    ECR_EXC_SERIALIZATION,
    ECR_EXC_MISSING_AUTHENTICATION_TOKEN,
    ECR_EXC_INVALID_SIGNATURE,
    ECR_EXC_UNRECOGNIZED_CLIENT,
    ECR_EXC_THROTTLING,
    /* Operations' errors. */
    ECR_EXC_INVALID_PARAMETER,
    ECR_EXC_ACCESS_DENIED,
    ECR_EXC_INVALID_NEXT_TOKEN,
    ECR_EXC_REPOSITORY_NOT_FOUND,
    ECR_EXC_REPOSITORY_ALREADY_EXISTS,
    ECR_EXC_REPOSITORY_NOT_EMPTY,
    ECR_EXC_REPOSITORY_POLICY_NOT_FOUND,
    ECR_EXC_REGISTRY_POLICY_NOT_FOUND,
    ECR_EXC_IMAGE_NOT_FOUND,
    ECR_EXC_INVALID_TAG_PARAMETER,
    ECR_EXC_TOO_MANY_TAGS,
    ECR_EXC_TEMPLATE_NOT_FOUND,
    ECR_EXC_TEMPLATE_ALREADY_EXISTS,
    ECR_EXC_PTC_RULE_NOT_FOUND,
    ECR_EXC_PTC_RULE_ALREADY_EXISTS,
    ECR_EXC_UNSUPPORTED_UPSTREAM_REGISTRY,
    ECR_EXC_LIFECYCLE_POLICY_NOT_FOUND,
    ECR_EXC_LIFECYCLE_PREVIEW_NOT_FOUND,
    ECR_EXC_LIFECYCLE_PREVIEW_IN_PROGRESS,
    ECR_EXC_SECRET_NOT_FOUND,         /* ecr:ValidatePullThroughCacheRule's missing secret */
    ECR_EXC_RESOURCE_NOT_FOUND,       /* Secrets Manager */
    ECR_EXC_RESOURCE_EXISTS,          /* Secrets Manager */
    /* The layer and image API (ops_layers.c). */
    ECR_EXC_UPLOAD_NOT_FOUND,
    ECR_EXC_INVALID_LAYER_PART,       /* with lastValidByteReceived (api_fail_fields) */
    ECR_EXC_LAYER_PART_TOO_SMALL,
    ECR_EXC_EMPTY_UPLOAD,
    ECR_EXC_INVALID_LAYER,
    ECR_EXC_LAYER_ALREADY_EXISTS,
    ECR_EXC_LAYERS_NOT_FOUND,
    ECR_EXC_LAYER_INACCESSIBLE,
    ECR_EXC_LIMIT_EXCEEDED,
    ECR_EXC_IMAGE_ALREADY_EXISTS,
    ECR_EXC_IMAGE_TAG_ALREADY_EXISTS,
    ECR_EXC_IMAGE_DIGEST_DOES_NOT_MATCH,
    ECR_EXC_REFERENCED_IMAGES_NOT_FOUND,
    ECR_EXC_EXCLUSION_ALREADY_EXISTS,
    ECR_EXC_EXCLUSION_NOT_FOUND,
    ECR_EXC_UNABLE_TO_LIST_UPSTREAM_REFERRERS,
    /* What Pier has no engine for (scanning, signing, archival storage):
     * the model's closest exception, with a message saying so. */
    ECR_EXC_UNSUPPORTED_IMAGE_TYPE,
    ECR_EXC_SCAN_NOT_FOUND,
    ECR_EXC_SIGNING_CONFIGURATION_NOT_FOUND,
    ECR_EXC_IMAGE_STORAGE_CLASS_UPDATE_NOT_SUPPORTED,
    /* IAM's, for the users, access keys and identity policies (ops_iam.c). */
    ECR_EXC_NO_SUCH_ENTITY,
    ECR_EXC_ENTITY_ALREADY_EXISTS,
    ECR_EXC_DELETE_CONFLICT,          /* a change that would lock the caller out */
    /* The console's own. */
    ECR_EXC_CONSOLE_UNAVAILABLE,      /* ServerException, 503: sessions or views unreadable */
    ECR_EXC_CONSOLE_NOT_FOUND,        /* UnknownOperationException, 404: no such endpoint */
    ECR_EXC_SESSION_EXPIRED,
    ECR_EXC_INVALID_ORIGIN,
    ECR_EXC_INVALID_CSRF_TOKEN,
    ECR_EXC__COUNT
};

/* The "__type" of x, e.g. "RepositoryNotFoundException". */
const char *ecr_exc_type(enum ecr_exc x);
/* The HTTP status of x on the ECR and Secrets Manager API. */
int ecr_exc_status(enum ecr_exc x);
/* The HTTP status of x on the console's JSON API, raised by the console or
 * passed on from an operation it ran. */
int ecr_exc_console_status(enum ecr_exc x);

#endif
