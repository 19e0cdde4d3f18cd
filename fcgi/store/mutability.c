/* mutability: ECR's tag mutability modes, their filters, and the decision. */
#include "store/mutability.h"

#include <string.h>

static const char *const MODES[] = {"MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION",
                                    "MUTABLE_WITH_EXCLUSION"};

bool mutability_mode_valid(const char *mode)
{
    for (size_t i = 0; mode && i < sizeof MODES / sizeof MODES[0]; i++)
        if (strcmp(mode, MODES[i]) == 0)
            return true;
    return false;
}

static bool with_exclusion(const char *mode)
{
    return strcmp(mode, "IMMUTABLE_WITH_EXCLUSION") == 0 ||
           strcmp(mode, "MUTABLE_WITH_EXCLUSION") == 0;
}

/* ECR's pattern for a filter: ^[0-9a-zA-Z._*-]{1,128}$ */
static bool filter_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > MUTABILITY_FILTER_LEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              strchr("._*-", ch)))
            return false;
    }
    return true;
}

static bool contains(const json_t *values, const char *s)
{
    size_t i;
    const json_t *v;
    json_array_foreach(values, i, v) {
        if (strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

pier_err mutability_parse(const char *mode, json_t *filters, json_t **values, struct perr *e)
{
    *values = NULL;
    if (!mutability_mode_valid(mode))
        return perr_set(
            e, PIER_E_BAD_REQUEST,
            "imageTagMutability must be MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION or "
            "MUTABLE_WITH_EXCLUSION");
    bool absent = !filters || json_is_null(filters);
    if (!with_exclusion(mode)) {
        if (!absent)
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "imageTagMutabilityExclusionFilters apply only to "
                            "IMMUTABLE_WITH_EXCLUSION and MUTABLE_WITH_EXCLUSION, not to %s",
                            mode);
        *values = json_array();
        return PIER_OK;
    }
    if (absent || !json_is_array(filters) || json_array_size(filters) < 1 ||
        json_array_size(filters) > MUTABILITY_FILTERS_MAX)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "imageTagMutabilityExclusionFilters must list 1 to %d filters with %s",
                        MUTABILITY_FILTERS_MAX, mode);
    json_t *out = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(filters, i, f) {
        const char *type = json_string_value(json_object_get(f, "filterType"));
        const char *value = json_string_value(json_object_get(f, "filter"));
        if (!json_is_object(f) || !type || strcmp(type, "WILDCARD") != 0) {
            json_decref(out);
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "imageTagMutabilityExclusionFilters[%zu].filterType must be WILDCARD",
                            i);
        }
        if (!value || !filter_valid(value)) {
            json_decref(out);
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "imageTagMutabilityExclusionFilters[%zu].filter must be 1 to %d "
                            "characters of [0-9a-zA-Z._*-]",
                            i, MUTABILITY_FILTER_LEN_MAX);
        }
        if (!contains(out, value))
            json_array_append_new(out, json_string(value));
    }
    *values = out;
    return PIER_OK;
}

json_t *mutability_filters_json(const json_t *values)
{
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(values, i, v) {
        if (json_is_string(v))
            json_array_append_new(out, json_pack("{s:s, s:s}", "filterType", "WILDCARD", "filter",
                                                 json_string_value(v)));
    }
    return out;
}

bool mutability_wildcard_match(const char *p, const char *s)
{
    /* Greedy with one backtrack point: the last '*' seen and where its run
     * ended. Linear in practice, O(|p|·|s|) at worst (both at most 128). */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static bool any_match(const char *values_json, const char *tag)
{
    json_t *values = values_json ? json_loads(values_json, 0, NULL) : NULL;
    bool hit = false;
    size_t i;
    json_t *v;
    json_array_foreach(values, i, v) {
        if (json_is_string(v) && mutability_wildcard_match(json_string_value(v), tag)) {
            hit = true;
            break;
        }
    }
    json_decref(values);
    return hit;
}

bool mutability_tag_immutable(const char *mode, const char *values_json, const char *tag)
{
    if (mode && strcmp(mode, "MUTABLE") == 0)
        return false;
    if (mode && strcmp(mode, "IMMUTABLE_WITH_EXCLUSION") == 0)
        return !any_match(values_json, tag);
    if (mode && strcmp(mode, "MUTABLE_WITH_EXCLUSION") == 0)
        return any_match(values_json, tag);
    return true;
}
