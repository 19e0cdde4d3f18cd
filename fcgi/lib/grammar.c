/* grammar: hand-written matchers for the OCI grammars (no regex engine, so the
 * error can say exactly where and why a string was refused). */
#include "lib/grammar.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_hex_lower(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

/* Printable rendering of a character for messages. */
static const char *show_char(char c, char buf[8])
{
    if (c >= 0x21 && c < 0x7f && c != '\'') {
        buf[0] = c;
        buf[1] = '\0';
    } else {
        static const char hex[] = "0123456789ABCDEF";
        buf[0] = '\\';
        buf[1] = 'x';
        buf[2] = hex[((unsigned char)c) >> 4];
        buf[3] = hex[((unsigned char)c) & 15];
        buf[4] = '\0';
    }
    return buf;
}

static pier_err component(const char *s, size_t n, size_t pos, struct perr *e)
{
    char cb[8];
    if (n == 0)
        return perr_set(e, PIER_E_NAME_INVALID,
                        "invalid repository name: empty path component at position %zu "
                        "(leading, trailing or double '/')", pos);
    if (s[0] >= 'A' && s[0] <= 'Z')
        return perr_set(e, PIER_E_NAME_INVALID,
                        "invalid repository name: uppercase letter '%c' at position %zu "
                        "(names are lowercase)", s[0], pos);
    if (!is_lower_alnum(s[0]))
        return perr_set(e, PIER_E_NAME_INVALID,
                        "invalid repository name: path component at position %zu must start "
                        "with a lowercase letter or digit, not '%s'", pos, show_char(s[0], cb));
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (is_lower_alnum(c)) {
            i++;
            continue;
        }
        size_t sep;
        if (c == '.')
            sep = 1;
        else if (c == '_')
            sep = (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
        else if (c == '-') {
            sep = 1;
            while (i + sep < n && s[i + sep] == '-')
                sep++;
        } else if (c >= 'A' && c <= 'Z')
            return perr_set(e, PIER_E_NAME_INVALID,
                            "invalid repository name: uppercase letter '%c' at position %zu "
                            "(names are lowercase)", c, pos + i);
        else
            return perr_set(e, PIER_E_NAME_INVALID,
                            "invalid repository name: character '%s' at position %zu is not "
                            "allowed (use a-z, 0-9, '.', '_', '__', '-' and '/')",
                            show_char(c, cb), pos + i);
        i += sep;
        if (i >= n || !is_lower_alnum(s[i]))
            return perr_set(e, PIER_E_NAME_INVALID,
                            "invalid repository name: separator at position %zu must be "
                            "followed by a lowercase letter or digit", pos + i - sep);
    }
    return PIER_OK;
}

pier_err grammar_name(const char *s, struct perr *e)
{
    PIER_ASSERT(s != NULL);
    size_t len = strlen(s);
    if (len == 0)
        return perr_set(e, PIER_E_NAME_INVALID, "invalid repository name: empty");
    if (len > NAME_MAX_LEN)
        return perr_set(e, PIER_E_NAME_INVALID,
                        "invalid repository name: %zu characters, the limit is %d", len,
                        NAME_MAX_LEN);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            pier_err rc = component(s + start, i - start, start, e);
            if (rc)
                return rc;
            start = i + 1;
        }
    }
    return PIER_OK;
}

pier_err grammar_tag(const char *s, struct perr *e)
{
    PIER_ASSERT(s != NULL);
    char cb[8];
    size_t len = strlen(s);
    if (len == 0)
        return perr_set(e, PIER_E_MANIFEST_INVALID, "invalid tag: empty");
    if (len > TAG_MAX_LEN)
        return perr_set(e, PIER_E_MANIFEST_INVALID,
                        "invalid tag: %zu characters, the limit is %d", len, TAG_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = isalnum((unsigned char)c) || c == '_' || (i > 0 && (c == '.' || c == '-'));
        if (!ok)
            return perr_set(e, PIER_E_MANIFEST_INVALID,
                            "invalid tag: character '%s' at position %zu (tags match "
                            "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})", show_char(c, cb), i);
    }
    return PIER_OK;
}

bool grammar_is_digest(const char *s)
{
    PIER_ASSERT(s != NULL);
    return strchr(s, ':') != NULL;
}

pier_err grammar_digest(const char *s, enum digest_alg *alg, struct perr *e)
{
    PIER_ASSERT(s != NULL);
    char cb[8];
    const char *colon = strchr(s, ':');
    if (!colon)
        return perr_set(e, PIER_E_DIGEST_INVALID,
                        "invalid digest: expected <algorithm>:<hex>, no ':' found");
    size_t alen = (size_t)(colon - s);
    if (alen == 0)
        return perr_set(e, PIER_E_DIGEST_INVALID, "invalid digest: empty algorithm");
    /* algorithm-component ([+._-] algorithm-component)* */
    for (size_t i = 0; i < alen; i++) {
        char c = s[i];
        if (is_lower_alnum(c))
            continue;
        if ((c == '+' || c == '.' || c == '_' || c == '-') && i > 0 && i + 1 < alen &&
            is_lower_alnum(s[i + 1]))
            continue;
        return perr_set(e, PIER_E_DIGEST_INVALID,
                        "invalid digest: character '%s' in algorithm at position %zu",
                        show_char(c, cb), i);
    }
    const char *hex = colon + 1;
    size_t hlen = strlen(hex);
    if (hlen == 0)
        return perr_set(e, PIER_E_DIGEST_INVALID, "invalid digest: empty encoded part");
    for (size_t i = 0; i < hlen; i++) {
        char c = hex[i];
        if (!(isalnum((unsigned char)c) || c == '=' || c == '_' || c == '-'))
            return perr_set(e, PIER_E_DIGEST_INVALID,
                            "invalid digest: character '%s' in encoded part at position %zu",
                            show_char(c, cb), alen + 1 + i);
    }
    size_t want;
    enum digest_alg a;
    if (alen == 6 && memcmp(s, "sha256", 6) == 0) {
        want = 64;
        a = DIGEST_SHA256;
    } else if (alen == 6 && memcmp(s, "sha512", 6) == 0) {
        want = 128;
        a = DIGEST_SHA512;
    } else {
        return perr_set(e, PIER_E_DIGEST_INVALID,
                        "unsupported digest algorithm '%.*s' (supported: sha256, sha512)",
                        (int)(alen > 32 ? 32 : alen), s);
    }
    if (hlen != want)
        return perr_set(e, PIER_E_DIGEST_INVALID,
                        "invalid digest: %.6s needs %zu hex characters, got %zu", s, want, hlen);
    for (size_t i = 0; i < hlen; i++)
        if (!is_hex_lower(hex[i]))
            return perr_set(e, PIER_E_DIGEST_INVALID,
                            "invalid digest: '%s' at position %zu is not a lowercase hex digit",
                            show_char(hex[i], cb), alen + 1 + i);
    if (alg)
        *alg = a;
    return PIER_OK;
}

pier_err grammar_reference(const char *s, struct perr *e)
{
    PIER_ASSERT(s != NULL);
    return grammar_is_digest(s) ? grammar_digest(s, NULL, e) : grammar_tag(s, e);
}

bool grammar_uint(const char *s, long long max, long long *out)
{
    PIER_ASSERT(s != NULL);
    if (!s || !*s)
        return false;
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        int d = *p - '0';
        if (d > max || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

pier_err grammar_content_range(const char *s, long long *start, long long *end, struct perr *e)
{
    PIER_ASSERT(s != NULL);
    const char *p = s;
    if (strncmp(p, "bytes ", 6) == 0 || strncmp(p, "bytes=", 6) == 0)
        p += 6;
    const char *dash = strchr(p, '-');
    if (!dash || dash == p)
        return perr_set(e, PIER_E_RANGE_INVALID,
                        "invalid Content-Range '%.64s': expected <start>-<end>", s);
    char a[24], b[24];
    size_t alen = (size_t)(dash - p);
    const char *q = dash + 1;
    size_t blen = strcspn(q, "/");
    if (alen >= sizeof a || blen == 0 || blen >= sizeof b)
        return perr_set(e, PIER_E_RANGE_INVALID,
                        "invalid Content-Range '%.64s': expected <start>-<end>", s);
    memcpy(a, p, alen);
    a[alen] = '\0';
    memcpy(b, q, blen);
    b[blen] = '\0';
    const char *tail = q + blen;
    if (*tail == '/') {
        long long total;
        if (strcmp(tail + 1, "*") != 0 && !grammar_uint(tail + 1, GRAMMAR_OFFSET_MAX, &total))
            return perr_set(e, PIER_E_RANGE_INVALID,
                            "invalid Content-Range '%.64s': bad total length", s);
    }
    if (!grammar_uint(a, GRAMMAR_OFFSET_MAX, start) || !grammar_uint(b, GRAMMAR_OFFSET_MAX, end))
        return perr_set(e, PIER_E_RANGE_INVALID,
                        "invalid Content-Range '%.64s': start and end must be decimal integers "
                        "of at most %lld", s, GRAMMAR_OFFSET_MAX);
    if (*end < *start)
        return perr_set(e, PIER_E_RANGE_INVALID,
                        "invalid Content-Range '%.64s': end is before start", s);
    return PIER_OK;
}

static bool restricted_name(const char *s, size_t n)
{
    if (n == 0 || n > 127 || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || strchr("!#$&-^_.+", c)))
            return false;
    }
    return true;
}

bool grammar_media_type(const char *s)
{
    PIER_ASSERT(s != NULL);
    size_t len = strlen(s);
    if (len == 0 || len > 255)
        return false;
    size_t main_len = strcspn(s, ";");
    while (main_len && s[main_len - 1] == ' ')
        main_len--;
    const char *slash = memchr(s, '/', main_len);
    if (!slash)
        return false;
    size_t tlen = (size_t)(slash - s);
    return restricted_name(s, tlen) && restricted_name(slash + 1, main_len - tlen - 1);
}
