/* Unit tests for store/lifecycle: the policy language and ECR's evaluation. */
#include "store/lifecycle.h"

#include <stdlib.h>
#include "tap.h"

#define DAY 86400LL
static const long long NOW = 1800000000LL;

static struct lifecycle_policy *parse(const char *text)
{
    struct lifecycle_policy *p = NULL;
    struct perr e;
    if (lifecycle_parse(text, &p, &e) != PIER_OK)
        printf("# unexpected: %s\n", e.msg);
    return p;
}

/* The error message for text, "" when it parses. */
static const char *refusal(const char *text)
{
    static struct perr e;
    struct lifecycle_policy *p = NULL;
    if (lifecycle_parse(text, &p, &e) == PIER_OK) {
        lifecycle_free(p);
        return "";
    }
    return e.msg;
}

#define RULE(prio, sel) "{\"rulePriority\":" #prio ",\"selection\":{" sel "},\"action\":{\"type\":\"expire\"}}"

int main(void)
{
    /* ---- parsing ---- */
    struct lifecycle_policy *p = parse("{\"rules\":[" RULE(1, "\"tagStatus\":\"untagged\",\"countType\":"
                                       "\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":14") "]}");
    CHECK("a valid policy parses", p && lifecycle_rule_count(p) == 1);
    lifecycle_free(p);
    CHECK("not JSON is refused with its position", strstr(refusal("{\"rules\":["), "line 1") != NULL);
    CHECK("no rules is refused", strstr(refusal("{\"rules\":[]}"), "1 to 50") != NULL);
    CHECK("an unknown property is named",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                         "\"countNumber\":1,\"tagz\":1") "]}"), "selection.tagz") != NULL);
    CHECK("tagged needs a prefix or pattern list",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"tagged\",\"countType\":\"imageCountMoreThan\","
                         "\"countNumber\":1") "]}"), "exactly one of") != NULL);
    CHECK("untagged takes no list",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"untagged\",\"tagPrefixList\":[\"v\"],"
                         "\"countType\":\"imageCountMoreThan\",\"countNumber\":1") "]}"), "only with") != NULL);
    CHECK("countUnit is refused with imageCountMoreThan",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                         "\"countUnit\":\"days\",\"countNumber\":1") "]}"), "rules[0].selection.countUnit") != NULL);
    CHECK("sinceImagePushed needs countUnit days",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"any\",\"countType\":\"sinceImagePushed\","
                         "\"countNumber\":1") "]}"), "countUnit") != NULL);
    CHECK("countNumber must be at least 1",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                         "\"countNumber\":0") "]}"), "countNumber") != NULL);
    CHECK("five wildcards are too many",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"tagged\",\"tagPatternList\":[\"a*b*c*d*e*f\"],"
                         "\"countType\":\"imageCountMoreThan\",\"countNumber\":1") "]}"), "4 wildcards") != NULL);
    CHECK("priorities are unique",
          strstr(refusal("{\"rules\":[" RULE(2, "\"tagStatus\":\"untagged\",\"countType\":\"imageCountMoreThan\","
                         "\"countNumber\":1") "," RULE(2, "\"tagStatus\":\"tagged\",\"tagPrefixList\":[\"v\"],"
                         "\"countType\":\"imageCountMoreThan\",\"countNumber\":1") "]}"), "rulePriority 2") != NULL);
    CHECK("the any rule must come last",
          strstr(refusal("{\"rules\":[" RULE(1, "\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\","
                         "\"countNumber\":1") "," RULE(2, "\"tagStatus\":\"untagged\",\"countType\":"
                         "\"imageCountMoreThan\",\"countNumber\":1") "]}"), "highest rulePriority") != NULL);
    CHECK("only expire is an action",
          strstr(refusal("{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":"
                         "\"imageCountMoreThan\",\"countNumber\":1},\"action\":{\"type\":\"transition\"}}]}"),
                 "action.type") != NULL);

    /* ---- evaluation ---- */
    const char *const t_prod1[] = {"prod-1"}, *const t_prod2[] = {"prod-2"}, *const t_prod3[] = {"prod-3"};
    const char *const t_dev[] = {"dev-1"}, *const t_both[] = {"prod-9", "release"};
    struct lifecycle_image imgs[] = {
        {"sha256:a", t_prod1, 1, NOW - 30 * DAY, 0},
        {"sha256:b", t_prod2, 1, NOW - 20 * DAY, NOW - 1 * DAY},
        {"sha256:c", t_prod3, 1, NOW - 10 * DAY, 0},
        {"sha256:d", t_dev, 1, NOW - 40 * DAY, 0},
        {"sha256:e", NULL, 0, NOW - 50 * DAY, 0},
        {"sha256:f", NULL, 0, NOW - 1 * DAY, 0},
        {"sha256:g", t_both, 2, NOW - 60 * DAY, 0},
    };
    size_t n = sizeof imgs / sizeof imgs[0];
    int by[sizeof imgs / sizeof imgs[0]];

    p = parse("{\"rules\":[" RULE(1, "\"tagStatus\":\"tagged\",\"tagPrefixList\":[\"prod\"],\"countType\":"
              "\"imageCountMoreThan\",\"countNumber\":2") "]}");
    lifecycle_evaluate(p, imgs, n, NOW, by);
    /* prod*, newest first: c (10 d), b (20 d), a (30 d), g (60 d): a and g go. */
    CHECK("imageCountMoreThan keeps the newest pushes of the selection",
          by[2] == 0 && by[1] == 0 && by[0] == 1 && by[6] == 1 && by[3] == 0 && by[4] == 0);
    lifecycle_free(p);

    p = parse("{\"rules\":[" RULE(1, "\"tagStatus\":\"untagged\",\"countType\":\"sinceImagePushed\","
              "\"countUnit\":\"days\",\"countNumber\":7") "]}");
    lifecycle_evaluate(p, imgs, n, NOW, by);
    CHECK("sinceImagePushed expires old untagged images only", by[4] == 1 && by[5] == 0 && by[0] == 0);
    lifecycle_free(p);

    p = parse("{\"rules\":[" RULE(1, "\"tagStatus\":\"any\",\"countType\":\"sinceImagePulled\","
              "\"countUnit\":\"days\",\"countNumber\":15") "]}");
    lifecycle_evaluate(p, imgs, n, NOW, by);
    CHECK("sinceImagePulled uses the last pull, else the push",
          by[1] == 0 && by[0] == 1 && by[2] == 0 && by[3] == 1 && by[5] == 0);
    lifecycle_free(p);

    p = parse("{\"rules\":[" RULE(1, "\"tagStatus\":\"tagged\",\"tagPatternList\":[\"prod-*\",\"rel*\"],"
              "\"countType\":\"imageCountMoreThan\",\"countNumber\":1") "]}");
    lifecycle_evaluate(p, imgs, n, NOW, by);
    CHECK("several patterns select only images with a tag for each",
          by[6] == 0 && by[0] == 0 && by[1] == 0);
    lifecycle_free(p);

    /* A higher-priority rule's tag filter protects what it selects, even
     * when it expires nothing; the any rule still counts those images. */
    p = parse("{\"rules\":[" RULE(1, "\"tagStatus\":\"tagged\",\"tagPrefixList\":[\"prod\"],\"countType\":"
              "\"imageCountMoreThan\",\"countNumber\":100") "," RULE(5, "\"tagStatus\":\"any\",\"countType\":"
              "\"imageCountMoreThan\",\"countNumber\":2") "]}");
    lifecycle_evaluate(p, imgs, n, NOW, by);
    CHECK("a lower-priority rule never expires what a higher one selects",
          by[0] == 0 && by[1] == 0 && by[2] == 0 && by[6] == 0);
    /* any: newest first f(1) c(10) b(20) a(30) d(40) e(50) g(60); keeps f, c. */
    CHECK("the any rule expires the rest beyond its count", by[3] == 5 && by[4] == 5 && by[5] == 0);
    lifecycle_free(p);
    return TAP_DONE();
}
