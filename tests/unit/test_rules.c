/* Unit tests for cache rule validation and the local-to-upstream name mapping. */
#include "store/rules.h"
#include "tap.h"

static pier_err prefix(const char *p) { struct perr e; return rule_check_prefix(p, &e); }

static const char *url(const char *in)
{
    static char out[RULE_URL_MAX];
    struct perr e;
    if (rule_normalize_url(in, out, &e) != PIER_OK)
        return NULL;
    return out;
}

static const char *mapped(const char *pfx, const char *kind, const char *upfx, const char *local)
{
    static char out[NAME_MAX_LEN + 1];
    struct cache_rule r;
    rule_defaults(&r);
    snprintf(r.prefix, sizeof r.prefix, "%s", pfx);
    snprintf(r.upstream_registry, sizeof r.upstream_registry, "%s", kind);
    snprintf(r.upstream_prefix, sizeof r.upstream_prefix, "%s", upfx);
    struct perr e;
    if (rule_upstream_name(&r, local, out, &e) != PIER_OK)
        return NULL;
    return out;
}

int main(void)
{
    CHECK("prefix ROOT", prefix("ROOT") == PIER_OK);
    CHECK("prefix ecr-public", prefix("ecr-public") == PIER_OK);
    CHECK("prefix with slash", prefix("team/hub") == PIER_OK);
    CHECK("prefix one char refused", prefix("a") != PIER_OK);
    CHECK("prefix 31 chars refused", prefix("abcdefghijabcdefghijabcdefghija") != PIER_OK);
    CHECK("prefix 30 chars ok", prefix("abcdefghijabcdefghijabcdefghij") == PIER_OK);
    CHECK("prefix uppercase refused", prefix("Docker") != PIER_OK);
    CHECK("prefix trailing slash refused", prefix("x/") != PIER_OK);
    CHECK("prefix leading slash refused", prefix("/x") != PIER_OK);
    CHECK("prefix double slash refused", prefix("a//b") != PIER_OK);
    CHECK("prefix dots refused", prefix("..") != PIER_OK);
    CHECK("prefix root lowercase is a name", prefix("root") == PIER_OK);

    CHECK("https implied", url("public.ecr.aws") && !strcmp(url("public.ecr.aws"), "https://public.ecr.aws"));
    CHECK("http kept", url("http://127.0.0.1:5000") && !strcmp(url("http://127.0.0.1:5000"), "http://127.0.0.1:5000"));
    CHECK("path kept, slash trimmed", url("https://r.example.com/mirror/") &&
                                          !strcmp(url("https://r.example.com/mirror/"), "https://r.example.com/mirror"));
    CHECK("docker.io normalized", url("docker.io") && !strcmp(url("docker.io"), "https://registry-1.docker.io"));
    CHECK("host lowercased", url("Quay.IO") && !strcmp(url("Quay.IO"), "https://quay.io"));
    CHECK("ftp refused", url("ftp://x") == NULL);
    CHECK("credentials refused", url("http://user:pw@host") == NULL);
    CHECK("query refused", url("http://host?x=1") == NULL);
    CHECK("bad port refused", url("http://h:99999") == NULL);
    CHECK("empty host refused", url("https:///x") == NULL);
    CHECK("dotdot path refused", url("https://h/a/../b") == NULL);

    char kind[40];
    struct perr e;
    CHECK("kind inferred docker hub", rule_check_registry("", "https://registry-1.docker.io", kind, &e) == PIER_OK &&
                                          !strcmp(kind, "docker-hub"));
    CHECK("kind inferred azure", rule_check_registry(NULL, "https://x.azurecr.io", kind, &e) == PIER_OK &&
                                     !strcmp(kind, "azure-container-registry"));
    CHECK("kind inferred generic", rule_check_registry("", "http://127.0.0.1:5000", kind, &e) == PIER_OK &&
                                       !strcmp(kind, "oci"));
    CHECK("kind unknown refused", rule_check_registry("dockerhub", "https://x", kind, &e) != PIER_OK);

    const char *m = mapped("ecr-public", "ecr-public", "ROOT", "ecr-public/docker/library/nginx");
    CHECK("ecr public mapping", m && !strcmp(m, "docker/library/nginx"));
    m = mapped("docker-hub", "docker-hub", "ROOT", "docker-hub/nginx");
    CHECK("docker hub library mapping", m && !strcmp(m, "library/nginx"));
    m = mapped("docker-hub", "docker-hub", "ROOT", "docker-hub/bitnami/redis");
    CHECK("docker hub two components kept", m && !strcmp(m, "bitnami/redis"));
    m = mapped("my-app", "oci", "upstream-app", "my-app/x");
    CHECK("upstream prefix mapping", m && !strcmp(m, "upstream-app/x"));
    m = mapped("ROOT", "oci", "ROOT", "anything/here");
    CHECK("root mapping", m && !strcmp(m, "anything/here"));
    CHECK("prefix itself has no upstream name", mapped("quay", "quay", "ROOT", "quay") == NULL);
    CHECK("other namespace refused", mapped("quay", "quay", "ROOT", "quayx/a") == NULL);

    CHECK("no budget", rule_check_budget(0, &e) == PIER_OK);
    CHECK("budget of 1 MiB", rule_check_budget(1LL << 20, &e) == PIER_OK);
    CHECK("budget under 1 MiB refused",
          rule_check_budget((1LL << 20) - 1, &e) != PIER_OK && strstr(e.msg, "budget"));
    CHECK("negative budget refused", rule_check_budget(-5, &e) != PIER_OK);
    CHECK("budget of 1 EiB", rule_check_budget(1LL << 60, &e) == PIER_OK);
    CHECK("budget over 1 EiB refused", rule_check_budget((1LL << 60) + 1, &e) != PIER_OK);
    struct cache_rule d;
    rule_defaults(&d);
    CHECK("a new rule has no budget", d.max_bytes == 0);
    return TAP_DONE();
}
