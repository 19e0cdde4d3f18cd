/* rulechange: what a change of a pull-through cache rule means for what the
 * cache kept — the rules are a table of the store; the cache's own state
 * that the old upstream left behind is the cache's to forget. */
#ifndef PIER_RULECHANGE_H
#define PIER_RULECHANGE_H

#include <stdbool.h>
#include "lib/ctx.h"
#include "lib/contract.h"
#include "lib/err.h"
#include "store/rules.h"

/* rules_update() and, in the same transaction, forget the upstream tokens
 * obtained with the old URL or credentials (they must not be sent to the
 * new upstream) and the download failures remembered for the old upstream
 * (they say nothing about the new one). All or nothing. */
PIER_MUST_USE
pier_err cache_rule_update(struct ctx *c, const struct cache_rule *r, bool set_credentials,
                           const char *username, const char *secret, struct perr *e);

#endif
