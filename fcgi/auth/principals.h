/* principals: users and machine identities, their access keys and identity
 * policies. A principal is a user (arn:aws:iam::<account_id>:user/<name>) or
 * a role (arn:aws:iam::<account_id>:role/<name>); both sign requests with
 * their access keys, and names are unique across the two. */
#ifndef PIER_PRINCIPALS_H
#define PIER_PRINCIPALS_H

#include <stdbool.h>
#include <jansson.h>
#include "lib/contract.h"
#include "lib/err.h"
#include "lib/ctx.h"

#define PRINCIPAL_NAME_MAX 64
#define ARN_MAX 256
#define KEY_ID_LEN 20
#define KEY_SECRET_LEN 40

struct principal {
    long long id;
    char name[PRINCIPAL_NAME_MAX + 1];
    char arn[ARN_MAX];
};

enum principal_kind { PRINCIPAL_USER, PRINCIPAL_ROLE };

/* Names: 1-64 characters of [A-Za-z0-9+=,.@_-] (IAM user and role names). */
PIER_MUST_USE
pier_err principal_check_name(const char *name, struct perr *e);
/* The ARN a user or role called name has in this account
 * (arn:aws:iam::<account>:user/<name> or …:role/<name>). */
void principal_arn(struct ctx *c, enum principal_kind kind, const char *name, char out[ARN_MAX]);
/* A new user or role named name; PIER_E_CONFLICT when a principal (of
 * either kind) has that name. */
PIER_MUST_USE
pier_err principal_create(struct ctx *c, const char *name, enum principal_kind kind,
                          struct principal *out, struct perr *e);
PIER_MUST_USE
pier_err principal_get(struct ctx *c, const char *name, struct principal *out, struct perr *e);
PIER_MUST_USE
pier_err principal_get_id(struct ctx *c, long long id, struct principal *out, struct perr *e);
PIER_MUST_USE
pier_err principal_delete(struct ctx *c, const char *name, struct perr *e);
PIER_MUST_USE
pier_err principal_list(struct ctx *c, json_t *out, struct perr *e);
PIER_MUST_USE
pier_err principal_count(struct ctx *c, long long *n, struct perr *e);

/* A new access key: id (20 characters) and secret (40), shown only now. */
PIER_MUST_USE
pier_err key_create(struct ctx *c, long long principal_id, char id[KEY_ID_LEN + 1],
                    char secret[KEY_SECRET_LEN + 1], struct perr *e);
PIER_MUST_USE
pier_err key_delete(struct ctx *c, const char *id, struct perr *e);
/* Activate or deactivate access key id (PIER_E_NAME_UNKNOWN when there is
 * none). An inactive key stays listed but signs nothing: logins, tokens and
 * console sessions made with it end within policy_cache_ms. */
PIER_MUST_USE
pier_err key_set_active(struct ctx *c, const char *id, bool active, struct perr *e);
/* Who owns access key id, whether it is active and how many active keys
 * that principal has in all; PIER_E_NAME_UNKNOWN when there is no such key. */
PIER_MUST_USE
pier_err key_owner(struct ctx *c, const char *id, struct principal *out, bool *active,
                   long long *active_keys, struct perr *e);
/* The keys of principal_id, oldest first: [{accessKeyId, active, createdAt,
 * lastUsedAt (0: never)}] appended to out. Never a secret. */
PIER_MUST_USE
pier_err key_list(struct ctx *c, long long principal_id, json_t *out, struct perr *e);
/* Check an id/secret pair (keyed hash, constant-time comparison; unknown
 * ids cost the same hashing).
 * PIER_E_UNAUTHORIZED for an unknown, inactive or wrong key. */
PIER_MUST_USE
pier_err key_verify(struct ctx *c, const char *id, const char *secret, struct principal *out,
                    struct perr *e);
/* Does access key id exist and is it active? (*active false for unknown ids.) */
PIER_MUST_USE
pier_err key_active(struct ctx *c, const char *id, bool *active, struct perr *e);
/* The secret itself (for signature checks) and its principal. */
PIER_MUST_USE
pier_err key_secret(struct ctx *c, const char *id, char secret[KEY_SECRET_LEN + 1],
                    struct principal *out, struct perr *e);

/* Identity policies (validated before they are stored). A principal has at
 * most IDENTITY_POLICIES_MAX of them: a write past it is refused, and a
 * principal found with more (written by an older version) is denied
 * everything until some are deleted. */
#define IDENTITY_POLICIES_MAX 10
PIER_MUST_USE
pier_err identity_policy_put(struct ctx *c, long long principal_id, const char *name,
                             const char *doc, struct perr *e);
PIER_MUST_USE
pier_err identity_policy_delete(struct ctx *c, long long principal_id, const char *name,
                                struct perr *e);
PIER_MUST_USE
pier_err identity_policy_list(struct ctx *c, long long principal_id, json_t *out, struct perr *e);
/* The identity policy documents of principal_id by name (*docs in the arena,
 * *n of them), for the policy engine; *exists is false when the principal
 * does not exist (any more). */
PIER_MUST_USE
pier_err identity_policy_documents(struct ctx *c, long long principal_id, bool *exists,
                                   const char ***docs, int *n, struct perr *e);

#endif
