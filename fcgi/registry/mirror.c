/* mirror: which repository a mirror request means (see mirror.h). */
#include "registry/mirror.h"

#include <stdio.h>
#include <string.h>
#include "lib/config.h"
#include "lib/util.h"
#include "store/repo.h"
#include "store/rules.h"

static bool mapped_kind(const struct route *rt, const char *method)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return false;
    return rt->kind == ROUTE_MANIFEST || rt->kind == ROUTE_BLOB || rt->kind == ROUTE_TAGS ||
           rt->kind == ROUTE_REFERRERS;
}

/* rt->name becomes <prefix>/<name>; the longer name is checked again. */
static pier_err prefix_name(struct ctx *c, struct route *rt, const struct cache_rule *rule,
                            const char **asked, struct perr *e)
{
    if (strcmp(rule->prefix, "ROOT") == 0)
        return PIER_OK;
    size_t n = strlen(rule->prefix);
    if (strncmp(rt->name, rule->prefix, n) == 0 && rt->name[n] == '/')
        return PIER_OK; /* already the prefixed name (override_path) */
    char mapped[2 * NAME_MAX_LEN + 2];
    int len = snprintf(mapped, sizeof mapped, "%s/%s", rule->prefix, rt->name);
    if (len < 0 || len > NAME_MAX_LEN)
        return perr_set(e, PIER_E_NAME_INVALID,
                        "repository %s under the mirror's prefix %s is longer than %d characters",
                        rt->name, rule->prefix, NAME_MAX_LEN);
    pier_err rc = grammar_name(mapped, e);
    if (rc)
        return rc;
    *asked = arena_strdup(c->a, rt->name);
    memcpy(rt->name, mapped, (size_t)len + 1);
    return PIER_OK;
}

pier_err mirror_map(struct ctx *c, struct req *r, struct route *rt, const char **asked,
                    struct perr *e)
{
    *asked = NULL;
    if (!mapped_kind(rt, r->method))
        return PIER_OK;
    char ns[RULE_MIRROR_LEN + 2];
    int have = req_query(r, MIRROR_NS_PARAM, ns, sizeof ns);
    struct cache_rule rule;
    bool found = false;
    pier_err rc;
    if (have != 0) {
        char registry[RULE_MIRROR_LEN + 1];
        struct perr why;
        if (have < 0 || rule_check_mirror(ns, registry, &why) != PIER_OK)
            return perr_set(e, PIER_E_NAME_UNKNOWN,
                            "repository %s: the ns parameter is not a registry host name, so "
                            "no rule mirrors it",
                            rt->name);
        if ((rc = rules_for_mirror(c, registry, &rule, &found, e)))
            return rc;
        if (!found) {
            /* containerd's override_path pointing at a rule's prefix
             * (server .../v2/<prefix>) sends the prefixed name with ns:
             * served as asked. ROOT does not count: it would answer every
             * registry's names with its own upstream's images. */
            if ((rc = rules_match(c, rt->name, &rule, &found, e)))
                return rc;
            if (found && strcmp(rule.prefix, "ROOT") != 0)
                return PIER_OK;
            return perr_set(e, PIER_E_NAME_UNKNOWN,
                            "repository %s of registry %s: no pull-through cache rule mirrors "
                            "%s (pierctl rule update PREFIX --mirrors %s)",
                            rt->name, registry, registry, registry);
        }
        return prefix_name(c, rt, &rule, asked, e);
    }
    /* Without ns, a pull of a pushed or prefixed name must not pay a query
     * for a default mirror that usually does not exist: whether one does is
     * kept by the worker for policy_cache_ms, like the policies. */
    static int64_t checked_ms = -1;
    static bool default_exists;
    int64_t now = now_ms();
    if (checked_ms < 0 || now - checked_ms >= c->cfg->policy_cache_ms || now < checked_ms) {
        if ((rc = rules_default_mirror_exists(c, &default_exists, e)))
            return rc;
        checked_ms = now;
    }
    if (!default_exists)
        return PIER_OK;
    if ((rc = rules_default_mirror_for(c, rt->name, &rule, &found, e)) || !found)
        return rc;
    if (rt->kind == ROUTE_BLOB && strcmp(rule.prefix, "ROOT") != 0) {
        /* A pull asks for the manifest first, which creates the mirror's
         * repository; a blob request for a name whose mirror repository does
         * not exist is a client checking before it pushes a new repository:
         * left alone, or a layer readable elsewhere would answer 200 and the
         * client would skip uploading it to the repository it pushes to. */
        char mapped[2 * NAME_MAX_LEN + 2];
        snprintf(mapped, sizeof mapped, "%s/%s", rule.prefix, rt->name);
        bool exists = false;
        if (strlen(mapped) <= NAME_MAX_LEN && (rc = repo_exists_named(c, mapped, &exists, e)))
            return rc;
        if (!exists)
            return PIER_OK;
    }
    return prefix_name(c, rt, &rule, asked, e);
}
