/* secrets: the Secrets Manager subset behind ECR's credentialArn — named
 * secrets whose values are sealed with the server key and never returned.
 * The only module with SQL on the secrets table. */
#ifndef PIER_SECRETS_H
#define PIER_SECRETS_H

#include <jansson.h>
#include "lib/err.h"
#include "lib/ctx.h"

#define SECRET_VALUE_MAX 65536

/* Names: 1-512 characters of [A-Za-z0-9/_+=.@-]. */
PIER_MUST_USE
pier_err secret_check_name(const char *name, struct perr *e);
/* Create; *arn (arena) receives arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6>.
 * PIER_E_CONFLICT if the name exists. */
PIER_MUST_USE
pier_err secret_create(struct ctx *c, const char *name, const char *description,
                       const char *value, const char **arn, const char **version, struct perr *e);
/* Replace the value of the secret named or ARN'd by id. Upstream tokens and
 * Basic markers obtained with the old value must go: the caller forgets them
 * (upstream_tokens_forget_credential with *arn and *name). */
PIER_MUST_USE
pier_err secret_put(struct ctx *c, const char *id, const char *value, const char **arn,
                    const char **name, const char **version, struct perr *e);
/* Metadata of one secret (never the value). */
PIER_MUST_USE
pier_err secret_describe(struct ctx *c, const char *id, json_t **out, struct perr *e);
PIER_MUST_USE
pier_err secret_list(struct ctx *c, json_t *out, struct perr *e);
PIER_MUST_USE
pier_err secret_delete(struct ctx *c, const char *id, const char **arn, const char **name,
                       struct perr *e);
/* The decrypted value (arena), for the upstream client only. */
PIER_MUST_USE
pier_err secret_value(struct ctx *c, const char *id, char **value, struct perr *e);

#endif
