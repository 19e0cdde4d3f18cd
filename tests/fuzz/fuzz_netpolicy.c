/* Fuzz target: the address policy (lib/netpolicy.c) — the operator's
 * allow-list (upstream_allow_networks) and the literal hosts of rule URLs
 * (any inet_aton / inet_pton spelling). Input: an allow-list on the first
 * line, an address to judge on the second. Checks that a failed parse
 * leaves nothing allowed, that the allow-list never forbids what is public,
 * and that judging text and judging the parsed address agree. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include "fuzz.h"
#include "lib/netpolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_strdup(data, size);
    char *cursor = in;
    char *list = fuzz_line(&cursor);
    char *addr = fuzz_line(&cursor);
    struct netpolicy np, none;
    struct perr e;
    memset(&none, 0, sizeof none);
    if (netpolicy_parse(list, &np, &e) != PIER_OK) {
        FUZZ_ASSERT(np.n == 0 && memchr(e.msg, '\0', sizeof e.msg) != NULL);
    } else {
        FUZZ_ASSERT(np.n <= NETPOLICY_MAX);
        for (size_t i = 0; i < np.n; i++)
            FUZZ_ASSERT(np.allow[i].bits >= 0 &&
                        np.allow[i].bits <= (np.allow[i].family == AF_INET ? 32 : 128));
    }
    bool is_ip = false;
    const char *why = NULL;
    bool allowed = netpolicy_allows_text(&np, addr, &is_ip, &why);
    bool strict_ip = false;
    bool strict = netpolicy_allows_text(&none, addr, &strict_ip, NULL);
    FUZZ_ASSERT(is_ip == strict_ip);
    FUZZ_ASSERT(!strict || allowed); /* an allow-list only ever opens more */
    if (is_ip && !allowed)
        FUZZ_ASSERT(why != NULL);
    /* The same address as a socket address gets the same answer. */
    unsigned char raw[16];
    if (inet_pton(AF_INET6, addr, raw) == 1) {
        struct sockaddr_in6 s6;
        memset(&s6, 0, sizeof s6);
        s6.sin6_family = AF_INET6;
        memcpy(&s6.sin6_addr, raw, 16);
        FUZZ_ASSERT(netpolicy_allows(&np, (struct sockaddr *)&s6, NULL) == allowed);
    } else if (inet_pton(AF_INET, addr, raw) == 1) {
        struct sockaddr_in s4;
        memset(&s4, 0, sizeof s4);
        s4.sin_family = AF_INET;
        memcpy(&s4.sin_addr, raw, 4);
        FUZZ_ASSERT(netpolicy_allows(&np, (struct sockaddr *)&s4, NULL) == allowed);
    }
    free(in);
    return 0;
}
