/* util: small helpers no library provides in the shape we need. */
#ifndef PIER_UTIL_H
#define PIER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "lib/contract.h"

#define UUID_STR_LEN 37 /* 36 characters and NUL */

/* Random (version 4) UUID from OpenSSL's CSPRNG, lowercase, into out.
 * Returns false if the random generator failed. */
PIER_MUST_USE
bool uuid_v4(char out[UUID_STR_LEN]);
/* True when s is a canonical lowercase UUID (8-4-4-4-12 hex). */
bool uuid_valid(const char *s);

/* Percent-decode src[0..n) into dst (at least n+1 bytes). In query mode '+'
 * becomes a space and %2F a '/'; in a path segment both are refused or kept
 * literally. Returns false on a malformed escape or one that decodes to NUL
 * (or to '/' outside query mode). */
bool percent_decode(const char *src, size_t n, char *dst, bool query);
/* Look up key in a query string (a=b&c=d), percent-decoding the value into out.
 * Returns 1 found, 0 absent, -1 malformed or too long. A key without '='
 * yields an empty value. */
int query_get(const char *query, const char *key, char *out, size_t outsz);
/* Percent-encode s for use inside a query value (RFC 3986 unreserved pass). */
size_t percent_encode(const char *s, char *out, size_t outsz);

/* a + b for non-negative sizes, LLONG_MAX instead of overflowing (manifests
 * may declare absurd sizes for layers nobody checks, e.g. external ones). */
long long size_add(long long a, long long b);

/* Hex encoding of n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Monotonic milliseconds, for timeouts. */
int64_t now_ms(void);
/* Monotonic microseconds, for durations. */
int64_t now_us(void);

#endif
