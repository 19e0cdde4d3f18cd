/* rulechange: a rule update with what it invalidates, in one transaction. */
#include "cache/rulechange.h"

#include "cache/lease.h"
#include "cache/upstream.h"
#include "db/db.h"

pier_err cache_rule_update(struct ctx *c, const struct cache_rule *r, bool set_credentials,
                           const char *username, const char *secret, struct perr *e)
{
    pier_err rc = db_tx_begin(c->db, e);
    if (rc)
        return rc;
    long long id = 0;
    if (!(rc = rules_update(c, r, set_credentials, username, secret, &id, e)) &&
        !(rc = upstream_tokens_forget(c, id, e)))
        rc = lease_forget_failures(c, id, e);
    return db_tx_end(c->db, rc, e);
}
