/* netpolicy: address classes Pier does not connect to, and the allow-list. */
#include "lib/netpolicy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct range {
    unsigned char addr[16];
    int bits;
    const char *what;
};

/* IPv4 ranges that are not the public internet (RFC 6890 and friends). */
static const struct range v4_blocked[] = {
    {{0, 0, 0, 0}, 8, "unspecified"},
    {{10, 0, 0, 0}, 8, "private"},
    {{100, 64, 0, 0}, 10, "shared (carrier-grade NAT)"},
    {{127, 0, 0, 0}, 8, "loopback"},
    {{169, 254, 0, 0}, 16, "link-local"},
    {{172, 16, 0, 0}, 12, "private"},
    {{192, 0, 0, 0}, 24, "reserved"},
    {{192, 0, 2, 0}, 24, "documentation"},
    {{192, 88, 99, 0}, 24, "reserved"},
    {{192, 168, 0, 0}, 16, "private"},
    {{198, 18, 0, 0}, 15, "benchmarking"},
    {{198, 51, 100, 0}, 24, "documentation"},
    {{203, 0, 113, 0}, 24, "documentation"},
    {{224, 0, 0, 0}, 4, "multicast"},
    {{240, 0, 0, 0}, 4, "reserved"},
};

static const struct range v6_blocked[] = {
    {{0}, 128, "unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {{0}, 96, "reserved"}, /* IPv4-compatible, deprecated */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, "private"}, /* local-use NAT64 */
    {{0x01, 0x00}, 64, "reserved"},                /* discard-only */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {{0xfc}, 7, "unique-local"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xfe, 0xc0}, 10, "site-local"},
    {{0xff}, 8, "multicast"},
};

static bool in_prefix(const unsigned char *a, const unsigned char *net, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static const char *classify4(const unsigned char a[4])
{
    for (size_t i = 0; i < sizeof v4_blocked / sizeof v4_blocked[0]; i++)
        if (in_prefix(a, v4_blocked[i].addr, v4_blocked[i].bits))
            return v4_blocked[i].what;
    return NULL;
}

/* An IPv6 address that carries an IPv4 address the packet really goes to:
 * IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4
 * (2002:aabb:ccdd::). Copies it to v4 and returns true. */
static bool embedded_v4(const unsigned char a[16], unsigned char v4[4])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0) {
        memcpy(v4, a + 12, 4);
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        memcpy(v4, a + 2, 4);
        return true;
    }
    return false;
}

static const char *classify6(const unsigned char a[16])
{
    unsigned char v4[4];
    if (embedded_v4(a, v4))
        return classify4(v4);
    for (size_t i = 0; i < sizeof v6_blocked / sizeof v6_blocked[0]; i++)
        if (in_prefix(a, v6_blocked[i].addr, v6_blocked[i].bits))
            return v6_blocked[i].what;
    return NULL;
}

static bool listed(const struct netpolicy *np, int family, const unsigned char *a)
{
    for (size_t i = 0; np && i < np->n; i++)
        if (np->allow[i].family == family && in_prefix(a, np->allow[i].addr, np->allow[i].bits))
            return true;
    return false;
}

static bool check(const struct netpolicy *np, int family, const unsigned char *a, const char **why)
{
    const char *cls = family == AF_INET ? classify4(a) : classify6(a);
    if (why)
        *why = cls;
    if (!cls || listed(np, family, a))
        return true;
    unsigned char v4[4];
    if (family == AF_INET6 && embedded_v4(a, v4) && listed(np, AF_INET, v4))
        return true;
    return false;
}

bool netpolicy_allows(const struct netpolicy *np, const struct sockaddr *sa, const char **why)
{
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        return check(np, AF_INET, (const unsigned char *)&s->sin_addr, why);
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        return check(np, AF_INET6, (const unsigned char *)&s->sin6_addr, why);
    }
    if (why)
        *why = "not an internet address";
    return false;
}

/* text to an address; brackets around IPv6 are accepted. */
static int parse_addr(const char *text, unsigned char out[16])
{
    char buf[64];
    size_t n = strlen(text);
    if (n >= sizeof buf)
        return 0;
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
        memcpy(buf, text + 1, n - 2);
        buf[n - 2] = '\0';
    } else {
        memcpy(buf, text, n + 1);
    }
    if (strchr(buf, ':'))
        return inet_pton(AF_INET6, buf, out) == 1 ? AF_INET6 : 0;
    /* inet_aton takes every form the C library's resolver (and so libcurl)
     * takes for a literal: 127.1, 2130706433, 0x7f000001, 0177.0.0.1. */
    struct in_addr in;
    if (!buf[0] || !isxdigit((unsigned char)buf[0]) || inet_aton(buf, &in) == 0)
        return 0;
    memcpy(out, &in, 4);
    return AF_INET;
}

bool netpolicy_allows_text(const struct netpolicy *np, const char *text, bool *is_ip,
                           const char **why)
{
    unsigned char a[16];
    int family = parse_addr(text, a);
    *is_ip = family != 0;
    if (why)
        *why = NULL;
    if (!family)
        return true;
    return check(np, family, a, why);
}

pier_err netpolicy_parse(const char *list, struct netpolicy *out, struct perr *e)
{
    return netpolicy_parse_key(list, "upstream_allow_networks", out, e);
}

pier_err netpolicy_parse_key(const char *list, const char *key, struct netpolicy *out,
                             struct perr *e)
{
    memset(out, 0, sizeof *out);
    const char *p = list ? list : "";
    while (*p) {
        size_t skip = strspn(p, ", \t");
        p += skip;
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        char item[80];
        if (n >= sizeof item) {
            memset(out, 0, sizeof *out);
            return perr_set(e, PIER_E_BAD_REQUEST, "%s: entry '%.40s...' is too long", key, p);
        }
        memcpy(item, p, n);
        item[n] = '\0';
        p += n;
        if (out->n == NETPOLICY_MAX) {
            memset(out, 0, sizeof *out);
            return perr_set(e, PIER_E_BAD_REQUEST, "%s: more than %d entries", key, NETPOLICY_MAX);
        }
        struct netpolicy_net *net = &out->allow[out->n];
        char *slash = strchr(item, '/');
        if (slash)
            *slash = '\0';
        int family = 0;
        if (strchr(item, ':'))
            family = inet_pton(AF_INET6, item, net->addr) == 1 ? AF_INET6 : 0;
        else
            family = inet_pton(AF_INET, item, net->addr) == 1 ? AF_INET : 0;
        int max = family == AF_INET ? 32 : 128;
        int bits = max;
        if (family && slash) {
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (end == slash + 1 || *end || b < 0 || b > max)
                family = 0;
            else
                bits = (int)b;
        }
        if (!family) {
            if (slash)
                *slash = '/';
            memset(out, 0, sizeof *out);
            return perr_set(e, PIER_E_BAD_REQUEST,
                            "%s: '%s' is not an address or address/prefix "
                            "(e.g. 10.1.0.0/16 or fd00::/8)",
                            key, item);
        }
        net->family = family;
        net->bits = bits;
        out->n++;
    }
    return PIER_OK;
}

bool netpolicy_contains(const struct netpolicy *np, const char *text)
{
    unsigned char a[16];
    int family = text ? parse_addr(text, a) : 0;
    if (!family)
        return false;
    if (listed(np, family, a))
        return true;
    /* An IPv4 client on a dual-stack socket appears as ::ffff:a.b.c.d. */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && memcmp(a, mapped, 12) == 0)
        return listed(np, AF_INET, a + 12);
    return false;
}
