/* resource_tags: tags on resources, by ARN (ECR TagResource), and the only
 * module with SQL on the resource_tags table. Keys and values are checked by
 * the caller; results live in the request arena. */
#ifndef PIER_RESOURCE_TAGS_H
#define PIER_RESOURCE_TAGS_H

#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

struct resource_tag {
    const char *key;
    const char *value;
};

/* The tags of arn ordered by key: *out (arena), *n. */
PIER_MUST_USE
pier_err resource_tags_list(struct ctx *c, const char *arn, struct resource_tag **out, int *n,
                            struct perr *e);
/* Set key on arn to value, replacing the value the key had. */
PIER_MUST_USE
pier_err resource_tags_put(struct ctx *c, const char *arn, const char *key, const char *value,
                           struct perr *e);
/* Add the tags of a JSON array of {"Key", "Value"} (a missing Value is "")
 * to arn; keys arn already has keep their values. */
PIER_MUST_USE
pier_err resource_tags_add_json(struct ctx *c, const char *arn, const char *tags_json,
                                struct perr *e);
/* Remove key from arn (nothing happens when arn does not have it). */
PIER_MUST_USE
pier_err resource_tags_delete(struct ctx *c, const char *arn, const char *key, struct perr *e);
/* Remove every tag of arn (its resource is gone). */
PIER_MUST_USE
pier_err resource_tags_drop(struct ctx *c, const char *arn, struct perr *e);
/* How many tags arn has. */
PIER_MUST_USE
pier_err resource_tags_count(struct ctx *c, const char *arn, long long *n, struct perr *e);

#endif
