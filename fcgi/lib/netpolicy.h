/* netpolicy: which network addresses Pier's outgoing connections may reach.
 * Upstream registries are on the internet; an address that is loopback,
 * private, link-local, unique-local, unspecified, multicast or otherwise
 * reserved is refused unless the operator's allow-list (a list of CIDRs)
 * names it. The check runs on the address libcurl is about to connect to,
 * after DNS, so it also covers redirects, token realms and names that resolve
 * to internal addresses. */
#ifndef PIER_NETPOLICY_H
#define PIER_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "lib/err.h"

#define NETPOLICY_MAX 32

struct netpolicy_net {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char addr[16];     /* network address (4 or 16 bytes used) */
    int bits;                   /* prefix length */
};

struct netpolicy {
    size_t n;
    struct netpolicy_net allow[NETPOLICY_MAX];
};

/* Parse an allow-list: CIDRs or single addresses separated by commas or
 * spaces ("127.0.0.1/32, 10.1.0.0/16, fd00::/8"); "" allows nothing extra.
 * PIER_E_BAD_REQUEST names the entry that does not parse; *out is then empty. */
PIER_MUST_USE
pier_err netpolicy_parse(const char *list, struct netpolicy *out, struct perr *e);

/* The same, naming key (the configuration key the list comes from) in errors. */
PIER_MUST_USE
pier_err netpolicy_parse_key(const char *list, const char *key, struct netpolicy *out,
                             struct perr *e);

/* Is the address written as text (IPv4 or IPv6, as parsed above; an
 * IPv4-mapped IPv6 address counts as its IPv4 address) inside one of np's
 * networks? Only the list counts, not the address classes: for allow-lists
 * of clients (metrics_allow). false for anything that is not an address. */
bool netpolicy_contains(const struct netpolicy *np, const char *text);

/* May a connection go to sa? When not, *why (may be NULL) names the class
 * of the address ("loopback", "private", ...). Unknown families are refused. */
bool netpolicy_allows(const struct netpolicy *np, const struct sockaddr *sa, const char **why);

/* The same for an address written as text (IPv4 in any inet_aton form, such
 * as "2130706433" or "0x7f.1", or IPv6, brackets allowed). Returns true with
 * *is_ip false when text is not an address at all (a host name). */
bool netpolicy_allows_text(const struct netpolicy *np, const char *text, bool *is_ip,
                           const char **why);

#endif
