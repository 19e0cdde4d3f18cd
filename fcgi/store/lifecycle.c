/* lifecycle: ECR lifecycle policies — the rule language and its evaluation. */
#include "store/lifecycle.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

enum tag_status { TAG_TAGGED, TAG_UNTAGGED, TAG_ANY };
enum count_type { COUNT_MORE_THAN, SINCE_PUSHED, SINCE_PULLED };

struct rule {
    int priority;
    enum tag_status status;
    char **prefixes;  /* tagPrefixList, or NULL */
    char **patterns;  /* tagPatternList, or NULL */
    size_t nlist;
    enum count_type count;
    long long number;
};

struct lifecycle_policy {
    struct rule *rules; /* sorted by priority */
    size_t n;
};

static void free_rule(struct rule *r)
{
    char **list = r->prefixes ? r->prefixes : r->patterns;
    for (size_t i = 0; list && i < r->nlist; i++)
        free(list[i]);
    free(list);
}

void lifecycle_free(struct lifecycle_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free_rule(&p->rules[i]);
    free(p->rules);
    free(p);
}

size_t lifecycle_rule_count(const struct lifecycle_policy *p)
{
    return p ? p->n : 0;
}

/* Characters of a tag (the OCI tag grammar), plus '*' in patterns. */
static bool tag_chars(const char *s, bool wildcards, int *stars)
{
    *stars = 0;
    for (const char *c = s; *c; c++) {
        if (*c == '*' && wildcards)
            (*stars)++;
        else if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                   (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
            return false;
    }
    return true;
}

static bool only_keys(json_t *obj, const char *const *allowed, const char **bad)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok = ok || strcmp(k, *a) == 0;
        if (!ok) {
            *bad = k;
            return false;
        }
    }
    return true;
}

static pier_err bad(struct perr *e, size_t i, const char *where, const char *why)
{
    return perr_set(e, PIER_E_BAD_REQUEST, "lifecycle policy rules[%zu]%s%s: %s", i,
                    where[0] ? "." : "", where, why);
}

static pier_err parse_list(json_t *list, const char *name, bool wildcards, struct rule *r,
                           size_t i, struct perr *e)
{
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > 100)
        return bad(e, i, name, "must be a list of 1 to 100 strings");
    char **out = calloc(json_array_size(list), sizeof *out);
    if (!out)
        return perr_set(e, PIER_E_INTERNAL, "out of memory");
    if (wildcards)
        r->patterns = out;
    else
        r->prefixes = out;
    size_t k;
    json_t *v;
    json_array_foreach(list, k, v) {
        const char *s = json_string_value(v);
        int stars;
        if (!s || !*s || strlen(s) > 128 || !tag_chars(s, wildcards, &stars))
            return bad(e, i, name,
                       wildcards ? "each pattern is 1 to 128 tag characters or '*'"
                                 : "each prefix is 1 to 128 tag characters ([A-Za-z0-9_.-])");
        if (stars > LIFECYCLE_MAX_WILDCARDS)
            return bad(e, i, name, "a pattern may hold at most 4 wildcards ('*')");
        out[k] = strdup(s);
        r->nlist = k + 1;
        if (!out[k])
            return perr_set(e, PIER_E_INTERNAL, "out of memory");
    }
    return PIER_OK;
}

static pier_err parse_rule(json_t *j, size_t i, struct rule *r, struct perr *e)
{
    static const char *const rule_keys[] = {"rulePriority", "description", "selection", "action",
                                            NULL};
    static const char *const sel_keys[] = {"tagStatus", "tagPrefixList", "tagPatternList",
                                           "countType", "countUnit", "countNumber", NULL};
    static const char *const action_keys[] = {"type", NULL};
    const char *k;
    if (!json_is_object(j))
        return bad(e, i, "", "must be an object");
    if (!only_keys(j, rule_keys, &k))
        return perr_set(e, PIER_E_BAD_REQUEST, "lifecycle policy rules[%zu].%.64s: unknown property",
                        i, k);
    json_t *prio = json_object_get(j, "rulePriority");
    if (!json_is_integer(prio) || json_integer_value(prio) < 1 ||
        json_integer_value(prio) > 1000000)
        return bad(e, i, "rulePriority", "required, an integer of at least 1");
    r->priority = (int)json_integer_value(prio);
    json_t *desc = json_object_get(j, "description");
    if (desc && (!json_is_string(desc) || json_string_length(desc) > 256))
        return bad(e, i, "description", "must be a string of at most 256 characters");
    json_t *sel = json_object_get(j, "selection");
    if (!json_is_object(sel))
        return bad(e, i, "selection", "required, an object");
    if (!only_keys(sel, sel_keys, &k))
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "lifecycle policy rules[%zu].selection.%.64s: unknown property", i, k);
    const char *status = json_string_value(json_object_get(sel, "tagStatus"));
    if (!status || (strcmp(status, "tagged") && strcmp(status, "untagged") && strcmp(status, "any")))
        return bad(e, i, "selection.tagStatus", "required, one of tagged, untagged, any");
    r->status = !strcmp(status, "tagged") ? TAG_TAGGED : !strcmp(status, "untagged") ? TAG_UNTAGGED
                                                                                      : TAG_ANY;
    json_t *prefixes = json_object_get(sel, "tagPrefixList");
    json_t *patterns = json_object_get(sel, "tagPatternList");
    if (r->status == TAG_TAGGED && !!prefixes == !!patterns)
        return bad(e, i, "selection",
                   "tagStatus tagged takes exactly one of tagPrefixList and tagPatternList");
    if (r->status != TAG_TAGGED && (prefixes || patterns))
        return bad(e, i, "selection",
                   "tagPrefixList and tagPatternList go only with tagStatus tagged");
    pier_err rc;
    if (prefixes && (rc = parse_list(prefixes, "selection.tagPrefixList", false, r, i, e)))
        return rc;
    if (patterns && (rc = parse_list(patterns, "selection.tagPatternList", true, r, i, e)))
        return rc;
    const char *count = json_string_value(json_object_get(sel, "countType"));
    if (!count || (strcmp(count, "imageCountMoreThan") && strcmp(count, "sinceImagePushed") &&
                   strcmp(count, "sinceImagePulled")))
        return bad(e, i, "selection.countType",
                   "required, one of imageCountMoreThan, sinceImagePushed, sinceImagePulled");
    r->count = !strcmp(count, "imageCountMoreThan") ? COUNT_MORE_THAN
               : !strcmp(count, "sinceImagePushed") ? SINCE_PUSHED
                                                    : SINCE_PULLED;
    json_t *unit = json_object_get(sel, "countUnit");
    if (r->count == COUNT_MORE_THAN && unit)
        return bad(e, i, "selection.countUnit", "not allowed with countType imageCountMoreThan");
    if (r->count != COUNT_MORE_THAN &&
        (!json_is_string(unit) || strcmp(json_string_value(unit), "days") != 0))
        return bad(e, i, "selection.countUnit", "required with countType since*: \"days\"");
    json_t *number = json_object_get(sel, "countNumber");
    if (!json_is_integer(number) || json_integer_value(number) < 1 ||
        json_integer_value(number) > 1000000)
        return bad(e, i, "selection.countNumber", "required, an integer of at least 1");
    r->number = json_integer_value(number);
    json_t *action = json_object_get(j, "action");
    if (!json_is_object(action))
        return bad(e, i, "action", "required, an object");
    if (!only_keys(action, action_keys, &k))
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "lifecycle policy rules[%zu].action.%.64s: unknown property", i, k);
    const char *type = json_string_value(json_object_get(action, "type"));
    if (!type || strcmp(type, "expire") != 0)
        return bad(e, i, "action.type", "required: \"expire\" (the only action Pier runs)");
    return PIER_OK;
}

static int by_priority(const void *a, const void *b)
{
    const struct rule *x = a, *y = b;
    return (x->priority > y->priority) - (x->priority < y->priority);
}

pier_err lifecycle_parse(const char *text, struct lifecycle_policy **out, struct perr *e)
{
    *out = NULL;
    json_error_t je;
    json_t *doc = json_loads(text ? text : "", JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "lifecycle policy is not JSON (line %d, column %d): %s", je.line,
                        je.column, je.text);
    json_t *rules = json_object_get(doc, "rules");
    const char *k;
    static const char *const top_keys[] = {"rules", NULL};
    pier_err rc = PIER_OK;
    if (!json_is_object(doc) || !only_keys(doc, top_keys, &k))
        rc = perr_set(e, PIER_E_BAD_REQUEST, "lifecycle policy must be an object with only \"rules\"");
    else if (!json_is_array(rules) || json_array_size(rules) == 0 ||
             json_array_size(rules) > LIFECYCLE_MAX_RULES)
        rc = perr_set(e, PIER_E_BAD_REQUEST, "lifecycle policy rules: a list of 1 to %d rules",
                      LIFECYCLE_MAX_RULES);
    struct lifecycle_policy *p = NULL;
    if (!rc) {
        p = calloc(1, sizeof *p);
        if (p)
            p->rules = calloc(json_array_size(rules), sizeof *p->rules);
        if (!p || !p->rules)
            rc = perr_set(e, PIER_E_INTERNAL, "out of memory");
    }
    for (size_t i = 0; !rc && i < json_array_size(rules); i++) {
        rc = parse_rule(json_array_get(rules, i), i, &p->rules[i], e);
        p->n = i + 1;
    }
    json_decref(doc);
    if (!rc) {
        qsort(p->rules, p->n, sizeof *p->rules, by_priority);
        int untagged = 0;
        for (size_t i = 0; !rc && i < p->n; i++) {
            if (i > 0 && p->rules[i].priority == p->rules[i - 1].priority)
                rc = perr_set(e, PIER_E_BAD_REQUEST,
                              "lifecycle policy: two rules have rulePriority %d; each needs its own",
                              p->rules[i].priority);
            else if (p->rules[i].status == TAG_ANY && i + 1 < p->n)
                rc = perr_set(e, PIER_E_BAD_REQUEST,
                              "lifecycle policy: the rule with tagStatus any (rulePriority %d) must "
                              "have the highest rulePriority", p->rules[i].priority);
            else if (p->rules[i].status == TAG_UNTAGGED && ++untagged > 1)
                rc = perr_set(e, PIER_E_BAD_REQUEST,
                              "lifecycle policy: only one rule may select untagged images");
        }
    }
    if (rc) {
        lifecycle_free(p);
        return rc;
    }
    *out = p;
    return PIER_OK;
}

/* '*' matches any run of characters, everything else itself. */
static bool wildcard(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static bool some_tag(const struct lifecycle_image *im, const char *item, bool pattern)
{
    for (size_t t = 0; t < im->ntags; t++)
        if (pattern ? wildcard(item, im->tags[t])
                    : strncmp(im->tags[t], item, strlen(item)) == 0)
            return true;
    return false;
}

/* Does the rule's tag filter select the image? Several prefixes or
 * patterns select only images that have a tag for each of them. */
static bool selects(const struct rule *r, const struct lifecycle_image *im)
{
    switch (r->status) {
    case TAG_ANY: return true;
    case TAG_UNTAGGED: return im->ntags == 0;
    case TAG_TAGGED: break;
    }
    if (im->ntags == 0)
        return false;
    for (size_t k = 0; k < r->nlist; k++)
        if (!some_tag(im, r->prefixes ? r->prefixes[k] : r->patterns[k], r->patterns != NULL))
            return false;
    return true;
}

/* Newest push first; the digest breaks ties so the order is total. */
static int newest_first(const void *a, const void *b, void *arg)
{
    const struct lifecycle_image *imgs = arg;
    const struct lifecycle_image *x = &imgs[*(const size_t *)a];
    const struct lifecycle_image *y = &imgs[*(const size_t *)b];
    if (x->pushed_at != y->pushed_at)
        return x->pushed_at < y->pushed_at ? 1 : -1;
    return strcmp(x->digest, y->digest);
}

void lifecycle_evaluate(const struct lifecycle_policy *p, const struct lifecycle_image *imgs,
                        size_t n, long long now, int *expire_by)
{
    size_t *idx = n ? malloc(n * sizeof *idx) : NULL;
    int *owner = n ? calloc(n, sizeof *owner) : NULL; /* priority of the first rule selecting it */
    for (size_t i = 0; i < n; i++)
        expire_by[i] = 0;
    if (n && (!idx || !owner)) {
        free(idx);
        free(owner);
        return; /* out of memory: nothing is expired */
    }
    for (size_t r = 0; r < p->n; r++)
        for (size_t i = 0; i < n; i++)
            if (!owner[i] && selects(&p->rules[r], &imgs[i]))
                owner[i] = p->rules[r].priority;
    for (size_t r = 0; r < p->n; r++) {
        const struct rule *ru = &p->rules[r];
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (selects(ru, &imgs[i]))
                idx[m++] = i;
        if (ru->count == COUNT_MORE_THAN)
            qsort_r(idx, m, sizeof *idx, newest_first, (void *)imgs);
        long long cutoff = now - ru->number * 86400;
        for (size_t k = 0; k < m; k++) {
            size_t i = idx[k];
            bool marked;
            if (ru->count == COUNT_MORE_THAN)
                marked = (long long)k >= ru->number;
            else if (ru->count == SINCE_PUSHED)
                marked = imgs[i].pushed_at < cutoff;
            else
                marked = (imgs[i].pulled_at ? imgs[i].pulled_at : imgs[i].pushed_at) < cutoff;
            if (marked && owner[i] == ru->priority && !expire_by[i])
                expire_by[i] = ru->priority;
        }
    }
    free(idx);
    free(owner);
}
