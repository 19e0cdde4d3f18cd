/* Fuzz target: Signature Version 4 (ecrapi/sigv4.c) — the Authorization
 * header (sigv4_parse), the canonical request with its query and header
 * canonicalization (sigv4_sign) and the full check (sigv4_verify).
 * Input, one field per line:
 *   Authorization value
 *   method
 *   path (raw)
 *   query (raw, without '?')
 *   headers "name: value", up to an empty line (x-amz-date among them)
 *   payload hash (optional; default: SHA-256 of an empty body)
 * When the header does not parse, the request is still signed under a fixed
 * credential scope, so the canonicalization sees every input.
 * Checks: signatures are 64 lowercase hex and deterministic, and a request
 * carrying the signature sigv4_sign computed passes sigv4_verify whenever its
 * date, scope and signed headers are in order. */
#include <string.h>
#include <strings.h>
#include <time.h>
#include "ecrapi/sigv4.h"
#include "fuzz.h"

#define MAX_HEADERS 64
#define EMPTY_HASH "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

struct headers {
    size_t n;
    const char *name[MAX_HEADERS];
    const char *value[MAX_HEADERS];
};

static const char *header(void *arg, const char *lname)
{
    const struct headers *h = arg;
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], lname) == 0)
            return h->value[i];
    return NULL;
}

/* X-Amz-Date as sigv4_verify reads it, or -1. */
static time_t amz_time(const char *s)
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

static bool is_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = fuzz_strdup(data, size);
    char *cursor = buf;
    const char *authorization = fuzz_line(&cursor);
    struct sigv4_request rq = {.header = header};
    rq.method = fuzz_line(&cursor);
    rq.path = fuzz_line(&cursor);
    rq.query = fuzz_line(&cursor);
    struct headers h = {0};
    rq.arg = &h;
    for (;;) {
        char *line = fuzz_line(&cursor);
        if (!*line)
            break;
        char *colon = strchr(line, ':');
        if (!colon || h.n == MAX_HEADERS)
            continue;
        *colon = '\0';
        h.name[h.n] = line;
        h.value[h.n++] = colon + 1;
    }
    const char *hash = fuzz_line(&cursor);
    rq.payload_hash = *hash ? hash : EMPTY_HASH;

    struct sigv4_auth a;
    struct perr e;
    bool parsed = sigv4_parse(authorization, &a, &e) == PIER_OK;
    if (parsed) {
        FUZZ_ASSERT(strlen(a.signature) == 64 && strlen(a.date) == 8);
        FUZZ_ASSERT(a.key_id[0] && a.region[0] && a.service[0] && a.signed_headers[0]);
    } else {
        FUZZ_ASSERT(e.code == PIER_E_UNAUTHORIZED && memchr(e.msg, '\0', sizeof e.msg));
        memset(&a, 0, sizeof a);
        snprintf(a.key_id, sizeof a.key_id, "AKIDEXAMPLE");
        snprintf(a.date, sizeof a.date, "20150830");
        snprintf(a.region, sizeof a.region, "us-east-1");
        snprintf(a.service, sizeof a.service, "ecr");
        snprintf(a.signed_headers, sizeof a.signed_headers, "host;x-amz-date");
    }

    const char *amz_date = header(&h, "x-amz-date");
    char sig[65], again[65];
    bool signed_ok = sigv4_sign(&a, &rq, amz_date ? amz_date : "20150830T123600Z", SECRET, sig);
    if (signed_ok) {
        FUZZ_ASSERT(is_hex64(sig));
        FUZZ_ASSERT(sigv4_sign(&a, &rq, amz_date ? amz_date : "20150830T123600Z", SECRET, again));
        FUZZ_ASSERT(strcmp(sig, again) == 0);
    }

    time_t t = amz_time(amz_date);
    time_t now = t == (time_t)-1 ? 1440938160 : t;
    if (parsed)
        (void)sigv4_verify(&a, &rq, SECRET, "us-east-1", now, 900, &e);

    /* The request with the signature we computed for it. */
    if (signed_ok) {
        memcpy(a.signature, sig, sizeof sig);
        char probe[520];
        snprintf(probe, sizeof probe, ";%s;", a.signed_headers);
        bool expect = t != (time_t)-1 && strncmp(amz_date, a.date, 8) == 0 &&
                      strstr(probe, ";host;") != NULL;
        pier_err rc = sigv4_verify(&a, &rq, SECRET, a.region, now, 900, &e);
        if (expect && rc != PIER_OK)
            fprintf(stderr, "verify: %s\n", e.msg);
        FUZZ_ASSERT(rc == (expect ? PIER_OK : PIER_E_UNAUTHORIZED));
    }
    free(buf);
    return 0;
}
