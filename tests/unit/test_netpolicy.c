/* Unit tests for the address policy of outgoing connections. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include "lib/netpolicy.h"
#include "tap.h"

static struct netpolicy np;

/* Allowed? for a textual address (any form inet_aton / inet_pton take). */
static bool allowed(const char *text)
{
    bool is_ip;
    return netpolicy_allows_text(&np, text, &is_ip, NULL) && is_ip;
}

static const char *why(const char *text)
{
    bool is_ip;
    const char *w = NULL;
    netpolicy_allows_text(&np, text, &is_ip, &w);
    return w ? w : "";
}

static bool sockaddr_allowed(int family, const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&ss;
        s->sin_family = AF_INET;
        inet_pton(AF_INET, text, &s->sin_addr);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
        s->sin6_family = AF_INET6;
        inet_pton(AF_INET6, text, &s->sin6_addr);
    }
    return netpolicy_allows(&np, (struct sockaddr *)&ss, NULL);
}

int main(void)
{
    struct perr e;
    CHECK("empty allow-list parses", netpolicy_parse("", &np, &e) == PIER_OK && np.n == 0);

    /* Public addresses pass, every internal class is refused. */
    CHECK("public v4", allowed("93.184.216.34") && allowed("8.8.8.8"));
    CHECK("public v6", allowed("2606:4700::1111"));
    CHECK("loopback", !allowed("127.0.0.1") && !strcmp(why("127.0.0.1"), "loopback"));
    CHECK("loopback anywhere in 127/8", !allowed("127.255.0.9"));
    CHECK("v6 loopback", !allowed("::1") && !allowed("[::1]"));
    CHECK("private 10/8", !allowed("10.1.2.3") && !strcmp(why("10.1.2.3"), "private"));
    CHECK("private 172.16/12", !allowed("172.16.0.1") && !allowed("172.31.255.255") && allowed("172.32.0.1"));
    CHECK("private 192.168/16", !allowed("192.168.1.1"));
    CHECK("link-local (metadata)", !allowed("169.254.169.254") && !strcmp(why("169.254.169.254"), "link-local"));
    CHECK("carrier-grade NAT", !allowed("100.64.0.1") && allowed("100.128.0.1"));
    CHECK("unspecified", !allowed("0.0.0.0") && !allowed("::"));
    CHECK("multicast and reserved", !allowed("224.0.0.1") && !allowed("255.255.255.255") && !allowed("ff02::1"));
    CHECK("documentation", !allowed("192.0.2.1") && !allowed("2001:db8::1"));
    CHECK("unique-local", !allowed("fd00::1") && !strcmp(why("fc12::1"), "unique-local"));
    CHECK("v6 link-local", !allowed("fe80::1"));
    /* Other spellings of internal IPv4 addresses. */
    CHECK("decimal", !allowed("2130706433"));
    CHECK("hex", !allowed("0x7f000001") && !allowed("0x7f.1"));
    CHECK("octal", !allowed("0177.0.0.1"));
    CHECK("short", !allowed("127.1") && !allowed("10.1"));
    CHECK("v4-mapped v6", !allowed("::ffff:127.0.0.1") && !allowed("::ffff:10.0.0.1") && allowed("::ffff:8.8.8.8"));
    CHECK("NAT64 embedding", !allowed("64:ff9b::a00:1") && allowed("64:ff9b::808:808"));
    CHECK("6to4 embedding", !allowed("2002:a00:1::1") && allowed("2002:808:808::1"));
    bool is_ip = true;
    CHECK("a host name is not judged by text", netpolicy_allows_text(&np, "registry-1.docker.io", &is_ip, NULL) && !is_ip);
    CHECK("sockaddr v4", !sockaddr_allowed(AF_INET, "127.0.0.1") && sockaddr_allowed(AF_INET, "1.1.1.1"));
    CHECK("sockaddr v6", !sockaddr_allowed(AF_INET6, "::1") && sockaddr_allowed(AF_INET6, "2a00:1450::1"));
    CHECK("unknown family refused", !netpolicy_allows(&np, NULL, NULL));

    /* The allow-list opens exactly what it names. */
    CHECK("allow-list parses", netpolicy_parse("127.0.0.1/32, 10.1.0.0/16 fd00::/8", &np, &e) == PIER_OK && np.n == 3);
    CHECK("listed host", allowed("127.0.0.1") && !allowed("127.0.0.2"));
    CHECK("listed network", allowed("10.1.200.3") && !allowed("10.2.0.1"));
    CHECK("listed v6 network", allowed("fd12::1") && !allowed("fc00::1"));
    CHECK("listed v4 also via mapped v6", allowed("::ffff:127.0.0.1") && sockaddr_allowed(AF_INET6, "::ffff:10.1.0.9"));
    CHECK("single address without prefix", netpolicy_parse("169.254.169.254", &np, &e) == PIER_OK &&
                                               allowed("169.254.169.254") && !allowed("169.254.169.253"));

    /* Bad lists are refused and leave nothing allowed. */
    CHECK("bad address", netpolicy_parse("10.0.0.0/8, nonsense", &np, &e) == PIER_E_BAD_REQUEST && strstr(e.msg, "nonsense"));
    CHECK("bad list leaves it empty", np.n == 0);
    CHECK("prefix too long", netpolicy_parse("10.0.0.0/33", &np, &e) != PIER_OK);
    CHECK("v6 prefix too long", netpolicy_parse("::/129", &np, &e) != PIER_OK);
    CHECK("empty prefix", netpolicy_parse("10.0.0.0/", &np, &e) != PIER_OK);
    return TAP_DONE();
}
