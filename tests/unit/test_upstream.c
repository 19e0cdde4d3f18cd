/* Unit tests for WWW-Authenticate parsing. */
#include "cache/upstream.h"
#include "tap.h"

int main(void)
{
    struct challenge c;
    CHECK("docker hub challenge",
          upstream_parse_challenge("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                                   "scope=\"repository:library/nginx:pull\"", &c) &&
              !strcmp(c.scheme, "Bearer") && !strcmp(c.realm, "https://auth.docker.io/token") &&
              !strcmp(c.service, "registry.docker.io") && !strcmp(c.scope, "repository:library/nginx:pull"));
    CHECK("basic challenge", upstream_parse_challenge("Basic realm=\"Registry Realm\"", &c) &&
                                 !strcmp(c.scheme, "Basic") && !strcmp(c.realm, "Registry Realm"));
    CHECK("unquoted values and spaces",
          upstream_parse_challenge("Bearer realm=https://x/t , service=svc", &c) &&
              !strcmp(c.realm, "https://x/t") && !strcmp(c.service, "svc") && c.scope[0] == 0);
    CHECK("escaped quote", upstream_parse_challenge("Bearer realm=\"a\\\"b\"", &c) && !strcmp(c.realm, "a\"b"));
    CHECK("case-insensitive keys", upstream_parse_challenge("Bearer Realm=\"r\",SERVICE=\"s\"", &c) &&
                                       !strcmp(c.realm, "r") && !strcmp(c.service, "s"));
    CHECK("unterminated quote refused", !upstream_parse_challenge("Bearer realm=\"abc", &c));
    CHECK("empty refused", !upstream_parse_challenge("", &c));
    CHECK("garbage refused", !upstream_parse_challenge("Bearer ===", &c));
    {
        char v[700];
        int n = snprintf(v, sizeof v, "Bearer realm=\"https://auth.example/%0*d\",service=\"s\"",
                         (int)sizeof c.realm, 7);
        CHECK("a realm too long for its field is refused, not cut",
              n > 0 && (size_t)n < sizeof v && !upstream_parse_challenge(v, &c));
        snprintf(v, sizeof v, "Bearer realm=\"r\",service=\"%0*d\"", (int)sizeof c.service, 7);
        CHECK("a service too long for its field is refused", !upstream_parse_challenge(v, &c));
        snprintf(v, sizeof v, "Bearer realm=\"r\",error=\"%0*d\"", 600, 7);
        CHECK("a long parameter Pier does not read is ignored",
              upstream_parse_challenge(v, &c) && !strcmp(c.realm, "r"));
    }
    /* The classes the control plane names (pierFailureClass, the health's last failure). */
    CHECK("a timeout is unreachable", !strcmp(upstream_failure_class(UPF_TIMEOUT), "unreachable"));
    CHECK("a certificate failure is tls, not unreachable", !strcmp(upstream_failure_class(UPF_TLS), "tls"));
    CHECK("401/403 after credentials is auth-refused", !strcmp(upstream_failure_class(UPF_AUTH), "auth-refused"));
    CHECK("no /v2/ is not-a-registry", !strcmp(upstream_failure_class(UPF_NOT_REGISTRY), "not-a-registry"));
    CHECK("429 is rate-limited", !strcmp(upstream_failure_class(UPF_RATE_LIMITED), "rate-limited"));
    CHECK("a 404 or a transfer Pier stopped says nothing about the upstream",
          !upstream_failure_class(UPF_NOT_FOUND) && !upstream_failure_class(UPF_ABORTED));
    return TAP_DONE();
}
