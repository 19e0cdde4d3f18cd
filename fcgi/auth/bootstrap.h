/* bootstrap: the first administrator. On the first start of a registry (no
 * principal yet) pierd creates the user "admin" with an identity policy
 * allowing ecr:*, secretsmanager:* and iam:*, and one access key, written to
 * bootstrap_file (0600). */
#ifndef PIER_BOOTSTRAP_H
#define PIER_BOOTSTRAP_H

#include "lib/err.h"
#include "lib/ctx.h"

#define ADMIN_POLICY                                                                       \
    "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"AdministratorAccess\","         \
    "\"Effect\":\"Allow\",\"Action\":[\"ecr:*\",\"secretsmanager:*\",\"iam:*\"],\"Resource\":\"*\"}]}"

/* Create the administrator if no principal exists (safe when several nodes
 * start at once). *created tells whether this call did it. */
PIER_MUST_USE
pier_err bootstrap_admin(struct ctx *c, bool *created, struct perr *e);

/* Write the access key to cfg->bootstrap_file (mode 0600) through a fresh
 * temporary file next to it, created with O_EXCL|O_NOFOLLOW, then rename(). */
PIER_MUST_USE
pier_err bootstrap_write_env(const struct config *cfg, const char *id, const char *secret,
                             struct perr *e);

#endif
