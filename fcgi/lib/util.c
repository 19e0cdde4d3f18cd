/* util: UUIDs, percent-encoding, query strings, hex, clocks. */
#include "lib/util.h"

#include <limits.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>

bool uuid_v4(char out[UUID_STR_LEN])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1)
        return false;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    hex_encode(b, 16, hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
    return true;
}

bool uuid_valid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool percent_decode(const char *src, size_t n, char *dst, bool query)
{
    PIER_ASSERT((src != NULL || n == 0) && dst != NULL);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            char d = (char)(hi * 16 + lo);
            if (d == '\0' || (d == '/' && !query))
                return false;
            dst[j++] = d;
            i += 2;
        } else if (c == '+' && query) {
            dst[j++] = ' ';
        } else {
            dst[j++] = c;
        }
    }
    dst[j] = '\0';
    return true;
}

int query_get(const char *query, const char *key, char *out, size_t outsz)
{
    PIER_ASSERT(query != NULL && key != NULL && out != NULL && outsz > 0);
    if (!query)
        return 0;
    size_t klen = strlen(key);
    const char *p = query;
    while (*p) {
        size_t seg = strcspn(p, "&");
        const char *eq = memchr(p, '=', seg);
        size_t name_len = eq ? (size_t)(eq - p) : seg;
        if (name_len == klen && memcmp(p, key, klen) == 0) {
            const char *v = eq ? eq + 1 : p + seg;
            size_t vlen = eq ? seg - name_len - 1 : 0;
            if (vlen >= outsz)
                return -1;
            if (!percent_decode(v, vlen, out, true))
                return -1;
            return 1;
        }
        p += seg;
        if (*p == '&')
            p++;
    }
    return 0;
}

size_t percent_encode(const char *s, char *out, size_t outsz)
{
    PIER_ASSERT(s != NULL && out != NULL && outsz > 0);
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~' ||
                     c == '/' || c == ':';
        size_t need = plain ? 1 : 3;
        if (j + need >= outsz)
            break;
        if (plain) {
            out[j++] = (char)c;
        } else {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    if (outsz)
        out[j] = '\0';
    return j;
}

long long size_add(long long a, long long b)
{
    long long sum;
    return __builtin_add_overflow(a, b, &sum) ? LLONG_MAX : sum;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
    PIER_ASSERT((in != NULL || n == 0) && out != NULL);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
