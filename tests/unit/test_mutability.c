/* Unit tests for ECR's tag mutability settings: the modes, their filters and
 * which tags may move. */
#include "store/mutability.h"
#include <stdlib.h>
#include "tap.h"

static bool wild(const char *p, const char *s)
{
    return mutability_wildcard_match(p, s);
}

/* mutability_parse on a JSON text of filters (NULL: absent); returns the
 * values as compact JSON text in a static buffer, or NULL when refused. */
static const char *parse(const char *mode, const char *filters)
{
    static char out[1024];
    json_t *f = filters ? json_loads(filters, JSON_DECODE_ANY, NULL) : NULL;
    json_t *values = NULL;
    struct perr e;
    pier_err rc = mutability_parse(mode, f, &values, &e);
    json_decref(f);
    if (rc != PIER_OK)
        return values ? "values set on failure" : NULL;
    char *s = json_dumps(values, JSON_COMPACT);
    snprintf(out, sizeof out, "%s", s ? s : "?");
    free(s);
    json_decref(values);
    return out;
}

static bool same(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

int main(void)
{
    CHECK("wildcard literal", wild("latest", "latest"));
    CHECK("wildcard literal is whole", !wild("latest", "latest2") && !wild("latest", "xlatest"));
    CHECK("wildcard prefix", wild("dev-*", "dev-") && wild("dev-*", "dev-feature.x"));
    CHECK("wildcard prefix no match", !wild("dev-*", "prod-1") && !wild("dev-*", "dev"));
    CHECK("wildcard suffix", wild("*-rc", "1.2-rc") && !wild("*-rc", "1.2-rc1"));
    CHECK("wildcard middle",
          wild("v*.x", "v1.x") && wild("v*.x", "v1.2.x") && !wild("v*.x", "v1.y"));
    CHECK("wildcard star alone", wild("*", "anything") && wild("*", ""));
    CHECK("wildcard stars",
          wild("a*b*c", "abc") && wild("a*b*c", "a-b-b-c") && !wild("a*b*c", "acb"));
    CHECK("wildcard backtracks", wild("*ab", "aab") && wild("a*ab", "aaab") && !wild("a*ab", "ab"));
    CHECK("wildcard dot is literal", !wild("1.0", "1x0"));
    CHECK("wildcard case matters", !wild("Latest", "latest"));

    CHECK("modes", mutability_mode_valid("MUTABLE") && mutability_mode_valid("IMMUTABLE") &&
                       mutability_mode_valid("IMMUTABLE_WITH_EXCLUSION") &&
                       mutability_mode_valid("MUTABLE_WITH_EXCLUSION"));
    CHECK("mode unknown", !mutability_mode_valid("FROZEN") && !mutability_mode_valid("mutable") &&
                              !mutability_mode_valid(NULL));

    CHECK("parse MUTABLE", same(parse("MUTABLE", NULL), "[]"));
    CHECK("parse IMMUTABLE", same(parse("IMMUTABLE", NULL), "[]"));
    CHECK("parse IMMUTABLE null filters", same(parse("IMMUTABLE", "null"), "[]"));
    CHECK("parse IMMUTABLE with filters refused",
          !parse("IMMUTABLE", "[{\"filterType\":\"WILDCARD\",\"filter\":\"latest\"}]"));
    CHECK("parse MUTABLE with empty filters refused", !parse("MUTABLE", "[]"));
    CHECK("parse bad mode", !parse("FROZEN", NULL));
    CHECK("parse exclusion", same(parse("IMMUTABLE_WITH_EXCLUSION",
                                        "[{\"filterType\":\"WILDCARD\",\"filter\":\"latest\"},"
                                        "{\"filterType\":\"WILDCARD\",\"filter\":\"dev-*\"},"
                                        "{\"filterType\":\"WILDCARD\",\"filter\":\"latest\"}]"),
                                  "[\"latest\",\"dev-*\"]"));
    CHECK("parse exclusion needs filters",
          !parse("MUTABLE_WITH_EXCLUSION", NULL) && !parse("MUTABLE_WITH_EXCLUSION", "[]"));
    CHECK(
        "parse six filters refused",
        !parse(
            "MUTABLE_WITH_EXCLUSION",
            "[{\"filterType\":\"WILDCARD\",\"filter\":\"a\"},{\"filterType\":\"WILDCARD\",\"filter\":\"b\"},"
            "{\"filterType\":\"WILDCARD\",\"filter\":\"c\"},{\"filterType\":\"WILDCARD\",\"filter\":\"d\"},"
            "{\"filterType\":\"WILDCARD\",\"filter\":\"e\"},{\"filterType\":\"WILDCARD\",\"filter\":\"f\"}]"));
    CHECK("parse filter type",
          !parse("MUTABLE_WITH_EXCLUSION", "[{\"filterType\":\"REGEX\",\"filter\":\"a\"}]") &&
              !parse("MUTABLE_WITH_EXCLUSION", "[{\"filter\":\"a\"}]"));
    CHECK("parse filter characters",
          !parse("MUTABLE_WITH_EXCLUSION", "[{\"filterType\":\"WILDCARD\",\"filter\":\"a/b\"}]") &&
              !parse("MUTABLE_WITH_EXCLUSION", "[{\"filterType\":\"WILDCARD\",\"filter\":\"\"}]") &&
              !parse("MUTABLE_WITH_EXCLUSION", "[{\"filterType\":\"WILDCARD\"}]") &&
              !parse("MUTABLE_WITH_EXCLUSION", "[\"latest\"]"));
    CHECK("parse filters not a list",
          !parse("MUTABLE_WITH_EXCLUSION", "{\"filterType\":\"WILDCARD\"}"));

    json_t *values = json_pack("[s, s]", "latest", "dev-*");
    json_t *objs = mutability_filters_json(values);
    char *text = json_dumps(objs, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK("filters as ECR's objects",
          same(text, "[{\"filter\":\"latest\",\"filterType\":\"WILDCARD\"},"
                     "{\"filter\":\"dev-*\",\"filterType\":\"WILDCARD\"}]"));
    free(text);
    json_decref(objs);
    json_decref(values);

    const char *f = "[\"latest\",\"dev-*\"]";
    CHECK("MUTABLE moves", !mutability_tag_immutable("MUTABLE", NULL, "v1"));
    CHECK("IMMUTABLE stays", mutability_tag_immutable("IMMUTABLE", NULL, "latest"));
    CHECK("IMMUTABLE_WITH_EXCLUSION: excluded moves",
          !mutability_tag_immutable("IMMUTABLE_WITH_EXCLUSION", f, "latest") &&
              !mutability_tag_immutable("IMMUTABLE_WITH_EXCLUSION", f, "dev-x"));
    CHECK("IMMUTABLE_WITH_EXCLUSION: others stay",
          mutability_tag_immutable("IMMUTABLE_WITH_EXCLUSION", f, "v1.0"));
    CHECK("MUTABLE_WITH_EXCLUSION: excluded stays",
          mutability_tag_immutable("MUTABLE_WITH_EXCLUSION", f, "latest") &&
              mutability_tag_immutable("MUTABLE_WITH_EXCLUSION", f, "dev-1"));
    CHECK("MUTABLE_WITH_EXCLUSION: others move",
          !mutability_tag_immutable("MUTABLE_WITH_EXCLUSION", f, "v1"));
    CHECK("no filters stored",
          mutability_tag_immutable("IMMUTABLE_WITH_EXCLUSION", NULL, "x") &&
              !mutability_tag_immutable("MUTABLE_WITH_EXCLUSION", "not json", "x"));
    CHECK("unknown mode fails closed", mutability_tag_immutable("SOMETHING", NULL, "x"));
    return TAP_DONE();
}
