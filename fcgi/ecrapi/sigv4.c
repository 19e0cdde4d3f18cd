/* sigv4: canonical request, string to sign, HMAC chain — OpenSSL for the
 * hashes and MACs. */
#include "ecrapi/sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "lib/util.h"

static bool field(const char *s, const char *name, char *out, size_t outsz)
{
    const char *p = strstr(s, name);
    if (!p)
        return false;
    p += strlen(name);
    size_t n = strcspn(p, ", ");
    if (n == 0 || n >= outsz)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

pier_err sigv4_parse(const char *h, struct sigv4_auth *out, struct perr *e)
{
    memset(out, 0, sizeof *out);
    if (strncmp(h, "AWS4-HMAC-SHA256 ", 17) != 0)
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "Authorization must use AWS4-HMAC-SHA256 (Signature Version 4)");
    char cred[256];
    if (!field(h, "Credential=", cred, sizeof cred) ||
        !field(h, "SignedHeaders=", out->signed_headers, sizeof out->signed_headers) ||
        !field(h, "Signature=", out->signature, sizeof out->signature))
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "Authorization lacks Credential, SignedHeaders or Signature");
    /* <id>/<date>/<region>/<service>/aws4_request */
    char *parts[5];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(cred, "/", &save); t && n < 5; t = strtok_r(NULL, "/", &save))
        parts[n++] = t;
    if (n != 5 || strcmp(parts[4], "aws4_request") != 0 || strlen(parts[1]) != 8 ||
        strlen(parts[0]) >= sizeof out->key_id || strlen(parts[2]) >= sizeof out->region ||
        strlen(parts[3]) >= sizeof out->service)
        return perr_set(e, PIER_E_UNAUTHORIZED, "malformed Credential in Authorization");
    snprintf(out->key_id, sizeof out->key_id, "%s", parts[0]);
    snprintf(out->date, sizeof out->date, "%s", parts[1]);
    snprintf(out->region, sizeof out->region, "%s", parts[2]);
    snprintf(out->service, sizeof out->service, "%s", parts[3]);
    if (strlen(out->signature) != 64)
        return perr_set(e, PIER_E_UNAUTHORIZED, "malformed Signature in Authorization");
    return PIER_OK;
}

/* RFC 3986 encoding as SigV4 wants it (unreserved kept, '/' kept when asked).
 * False when it does not fit: a signature must cover all of a request, so
 * nothing is ever cut to fit a buffer. */
static bool uri_encode(const char *s, size_t n, bool keep_slash, char *out, size_t outsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (j + 4 >= outsz) {
            out[j] = '\0';
            return false;
        }
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
            out[j++] = (char)c;
        } else {
            out[j++] = '%';
            out[j++] = hex[c >> 4];
            out[j++] = hex[c & 15];
        }
    }
    out[j] = '\0';
    return true;
}

struct qparam {
    char name[256];
    char value[1024];
};

static int cmp_param(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* False when the query has more parameters, or longer ones, than fit. */
static bool canonical_query(const char *q, char *out, size_t outsz)
{
    struct qparam ps[32];
    int n = 0;
    out[0] = '\0';
    while (q && *q) {
        if (n == 32)
            return false;
        size_t seg = strcspn(q, "&");
        const char *eq = memchr(q, '=', seg);
        size_t nl = eq ? (size_t)(eq - q) : seg;
        size_t vl = eq ? seg - nl - 1 : 0;
        char raw[1024], dec[1024];
        if (nl >= sizeof raw || vl >= sizeof raw)
            return false;
        snprintf(raw, sizeof raw, "%.*s", (int)nl, q);
        if (!percent_decode(raw, strlen(raw), dec, true))
            dec[0] = '\0';
        if (!uri_encode(dec, strlen(dec), false, ps[n].name, sizeof ps[n].name))
            return false;
        if (eq) {
            snprintf(raw, sizeof raw, "%.*s", (int)vl, eq + 1);
            if (!percent_decode(raw, strlen(raw), dec, true))
                dec[0] = '\0';
        } else {
            dec[0] = '\0';
        }
        if (!uri_encode(dec, strlen(dec), false, ps[n].value, sizeof ps[n].value))
            return false;
        n++;
        q += seg;
        if (*q == '&')
            q++;
    }
    if (n > 1)
        qsort(ps, (size_t)n, sizeof ps[0], cmp_param);
    size_t j = 0;
    for (int i = 0; i < n; i++) {
        j += (size_t)snprintf(out + j, j < outsz ? outsz - j : 0, "%s%s=%s", i ? "&" : "",
                              ps[i].name, ps[i].value);
        if (j >= outsz)
            return false;
    }
    return true;
}

static void hex_sha256(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    EVP_Digest(data, n, md, NULL, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

static void hmac(const unsigned char *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n);
}

bool sigv4_sign(const struct sigv4_auth *a, const struct sigv4_request *rq, const char *amz_date,
                const char *secret, char hex[65])
{
    /* Canonical request. */
    size_t cap = 16384;
    char *canon = malloc(cap);
    if (!canon)
        return false;
    char uri[2048], query[4096];
    const char *path = rq->path && *rq->path ? rq->path : "/";
    if (!uri_encode(path, strlen(path), true, uri, sizeof uri) ||
        !canonical_query(rq->query, query, sizeof query)) {
        free(canon);
        return false;
    }
    size_t j = (size_t)snprintf(canon, cap, "%s\n%s\n%s\n", rq->method, uri, query);
    char names[512];
    snprintf(names, sizeof names, "%s", a->signed_headers);
    char *save = NULL;
    for (char *h = strtok_r(names, ";", &save); h; h = strtok_r(NULL, ";", &save)) {
        const char *v = rq->header(rq->arg, h);
        if (!v) {
            free(canon);
            return false;
        }
        /* trim and collapse runs of spaces */
        while (*v == ' ' || *v == '\t')
            v++;
        char val[2048];
        size_t k = 0;
        bool space = false;
        for (; *v && k < sizeof val - 1; v++) {
            if (*v == ' ' || *v == '\t') {
                space = true;
                continue;
            }
            if (space && k) {
                if (k + 2 > sizeof val - 1)
                    break; /* no room for the separator and the character */
                val[k++] = ' ';
            }
            space = false;
            val[k++] = *v;
        }
        val[k] = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v) {
            /* Longer than the buffer: refuse rather than sign a prefix. */
            free(canon);
            return false;
        }
        j += (size_t)snprintf(canon + j, j < cap ? cap - j : 0, "%s:%s\n", h, val);
    }
    j += (size_t)snprintf(canon + j, j < cap ? cap - j : 0, "\n%s\n%s", a->signed_headers,
                          rq->payload_hash);
    if (j >= cap) {
        free(canon);
        return false;
    }
    char canon_hash[65];
    hex_sha256(canon, j, canon_hash);
    free(canon);
    char sts[512];
    snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amz_date, a->date,
             a->region, a->service, canon_hash);
    /* Signing key: HMAC chain from "AWS4" + secret. */
    char k0[128];
    snprintf(k0, sizeof k0, "AWS4%s", secret);
    unsigned char kd[32], kr[32], ks[32], kk[32], sig[32];
    hmac((const unsigned char *)k0, strlen(k0), a->date, kd);
    hmac(kd, 32, a->region, kr);
    hmac(kr, 32, a->service, ks);
    hmac(ks, 32, "aws4_request", kk);
    hmac(kk, 32, sts, sig);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(kk, sizeof kk);
    hex_encode(sig, 32, hex);
    return true;
}

static time_t parse_amz_date(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return (time_t)-1;
    const char *end = strptime(s, "%Y%m%dT%H%M%SZ", &tm);
    if (!end || *end)
        return (time_t)-1;
    return timegm(&tm);
}

pier_err sigv4_verify(const struct sigv4_auth *a, const struct sigv4_request *rq,
                      const char *secret, const char *region, time_t now, int max_skew,
                      struct perr *e)
{
    const char *amz_date = rq->header(rq->arg, "x-amz-date");
    time_t t = parse_amz_date(amz_date);
    if (t == (time_t)-1)
        return perr_set(e, PIER_E_UNAUTHORIZED, "X-Amz-Date is missing or malformed");
    if (strncmp(amz_date, a->date, 8) != 0)
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "the credential scope date %s does not match X-Amz-Date", a->date);
    if (t < now - max_skew || t > now + max_skew)
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "Signature expired: the request time %s differs from the server time by "
                        "more than %d seconds", amz_date, max_skew);
    if (strcmp(a->region, region) != 0)
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "the credential scope names region %s; this registry is in %s", a->region,
                        region);
    char probe[520];
    snprintf(probe, sizeof probe, ";%s;", a->signed_headers);
    if (!strstr(probe, ";host;"))
        return perr_set(e, PIER_E_UNAUTHORIZED, "the Host header must be signed");
    char want[65];
    if (!sigv4_sign(a, rq, amz_date, secret, want))
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "a signed header is missing, or the request's path, query or a signed "
                        "header is longer than Pier verifies (2 KiB each, 32 query parameters)");
    if (CRYPTO_memcmp(want, a->signature, 64) != 0)
        return perr_set(e, PIER_E_UNAUTHORIZED,
                        "The request signature we calculated does not match the signature you "
                        "provided. Check your AWS Secret Access Key and signing method.");
    return PIER_OK;
}
