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
    CHECK("a new rule mirrors nothing", d.n_mirrors == 0 && !d.default_mirror);

    /* mirror mode: registry names */
    char host[RULE_MIRROR_LEN + 1];
    CHECK("mirror docker.io",
          rule_check_mirror("docker.io", host, &e) == PIER_OK && !strcmp(host, "docker.io"));
    CHECK("mirror lowered",
          rule_check_mirror("Quay.IO", host, &e) == PIER_OK && !strcmp(host, "quay.io"));
    CHECK("mirror with port", rule_check_mirror("registry.example.com:5000", host, &e) == PIER_OK &&
                                  !strcmp(host, "registry.example.com:5000"));
    CHECK("mirror localhost", rule_check_mirror("localhost:5000", host, &e) == PIER_OK);
    CHECK("mirror index.docker.io is docker.io",
          rule_check_mirror("index.docker.io", host, &e) == PIER_OK && !strcmp(host, "docker.io"));
    CHECK("mirror registry-1.docker.io is docker.io",
          rule_check_mirror("registry-1.docker.io", host, &e) == PIER_OK &&
              !strcmp(host, "docker.io"));
    static const char *const bad[] = {
        "",
        "https://docker.io",
        "docker.io/library",
        "-bad.io",
        "bad-.io",
        "a..b",
        ".io",
        "io.",
        "x:0",
        "x:65536",
        "x:",
        "x:5a",
        ":5000",
        "under_score.io",
        "a b",
        "x:1:2",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.io", /* a 64-char label */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char what[120];
        snprintf(what, sizeof what, "mirror '%s' refused", bad[i]);
        CHECK(what, rule_check_mirror(bad[i], host, &e) != PIER_OK && strstr(e.msg, "registry"));
    }
    struct cache_rule mr;
    rule_defaults(&mr);
    CHECK("mirror list parsed, trimmed, deduplicated",
          rule_set_mirrors(&mr, " docker.io, Quay.io ,index.docker.io,,ghcr.io", &e) == PIER_OK &&
              mr.n_mirrors == 3 && !strcmp(mr.mirrors[0], "docker.io") &&
              !strcmp(mr.mirrors[1], "quay.io") && !strcmp(mr.mirrors[2], "ghcr.io"));
    struct arena *a = arena_new();
    CHECK("mirror list as text", !strcmp(rule_mirrors_text(a, &mr), "docker.io,quay.io,ghcr.io"));
    CHECK("a bad name leaves the list as it was",
          rule_set_mirrors(&mr, "k8s.io,https://x", &e) != PIER_OK && mr.n_mirrors == 3);
    char many[1024] = "";
    for (int i = 0; i <= RULE_MIRRORS_MAX; i++) {
        size_t at = strlen(many);
        snprintf(many + at, sizeof many - at, "r%d.example.com,", i);
    }
    CHECK("more than RULE_MIRRORS_MAX refused", rule_set_mirrors(&mr, many, &e) != PIER_OK &&
                                                    strstr(e.msg, "at most") && mr.n_mirrors == 3);
    CHECK("empty list clears", rule_set_mirrors(&mr, "", &e) == PIER_OK && mr.n_mirrors == 0 &&
                                   !strcmp(rule_mirrors_text(a, &mr), ""));
    arena_free(a);
    return TAP_DONE();
}
