/* Unit tests for Signature Version 4 against AWS's published test vector. */
#include <time.h>
#include "ecrapi/sigv4.h"
#include "tap.h"

static const char *vanilla_header(void *arg, const char *name)
{
    (void)arg;
    if (!strcmp(name, "host"))
        return "example.amazonaws.com";
    if (!strcmp(name, "x-amz-date"))
        return "20150830T123600Z";
    return NULL;
}

static char long_value[3000];

static const char *long_header(void *arg, const char *name)
{
    (void)arg;
    if (!strcmp(name, "x-long"))
        return long_value;
    return vanilla_header(NULL, name);
}

int main(void)
{
    struct sigv4_auth a;
    struct perr e;
    /* "get-vanilla" from the AWS Signature Version 4 test suite. */
    const char *auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                       "SignedHeaders=host;x-amz-date, "
                       "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
    CHECK("parse", sigv4_parse(auth, &a, &e) == PIER_OK && !strcmp(a.key_id, "AKIDEXAMPLE") &&
                       !strcmp(a.region, "us-east-1") && !strcmp(a.service, "service") &&
                       !strcmp(a.signed_headers, "host;x-amz-date"));
    struct sigv4_request rq = {
        .method = "GET", .path = "/", .query = "", .header = vanilla_header,
        .payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"};
    const char *secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    char sig[65];
    CHECK("sign matches the published signature",
          sigv4_sign(&a, &rq, "20150830T123600Z", secret, sig) &&
              !strcmp(sig, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
    time_t when = 1440938160; /* 2015-08-30T12:36:00Z */
    CHECK("verify ok", sigv4_verify(&a, &rq, secret, "us-east-1", when, 900, &e) == PIER_OK);
    CHECK("wrong secret", sigv4_verify(&a, &rq, "x", "us-east-1", when, 900, &e) == PIER_E_UNAUTHORIZED &&
                              strstr(e.msg, "does not match"));
    CHECK("expired", sigv4_verify(&a, &rq, secret, "us-east-1", when + 3600, 900, &e) == PIER_E_UNAUTHORIZED &&
                         strstr(e.msg, "expired"));
    CHECK("other region", sigv4_verify(&a, &rq, secret, "eu-west-1", when, 900, &e) == PIER_E_UNAUTHORIZED);
    rq.payload_hash = "00";
    CHECK("tampered body", sigv4_verify(&a, &rq, secret, "us-east-1", when, 900, &e) == PIER_E_UNAUTHORIZED);
    CHECK("not sigv4", sigv4_parse("Basic abc", &a, &e) == PIER_E_UNAUTHORIZED);
    CHECK("missing signature", sigv4_parse("AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, "
                                           "SignedHeaders=host", &a, &e) == PIER_E_UNAUTHORIZED);
    CHECK("bad scope", sigv4_parse("AWS4-HMAC-SHA256 Credential=A/2015/r/s/aws4_request, SignedHeaders=host, "
                                   "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
                                   &a, &e) == PIER_E_UNAUTHORIZED);
    /* Nothing is cut to fit a buffer: a signature covers the whole request or the
     * request is refused (a cut part could be changed without breaking it). */
    CHECK("parse again", sigv4_parse(auth, &a, &e) == PIER_OK);
    struct sigv4_auth big = a;
    snprintf(big.signed_headers, sizeof big.signed_headers, "host;x-amz-date;x-long");
    memset(long_value, 'a', sizeof long_value - 1);
    struct sigv4_request lrq = rq;
    lrq.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    lrq.header = long_header;
    CHECK("header value over 2 KiB refused", !sigv4_sign(&big, &lrq, "20150830T123600Z", secret, sig));
    long_value[1500] = '\0';
    CHECK("header value under 2 KiB signed", sigv4_sign(&big, &lrq, "20150830T123600Z", secret, sig));
    char q[400] = "";
    for (int i = 0; i < 33; i++)
        snprintf(q + strlen(q), sizeof q - strlen(q), "%sp%d=v", i ? "&" : "", i);
    lrq.header = vanilla_header;
    lrq.query = q;
    CHECK("33 query parameters refused", !sigv4_sign(&a, &lrq, "20150830T123600Z", secret, sig));
    *strrchr(q, '&') = '\0';
    CHECK("32 query parameters signed", sigv4_sign(&a, &lrq, "20150830T123600Z", secret, sig));
    static char path[3000];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    lrq.query = "";
    lrq.path = path;
    CHECK("path over 2 KiB refused", !sigv4_sign(&a, &lrq, "20150830T123600Z", secret, sig));
    CHECK("refusal says why", sigv4_verify(&a, &lrq, secret, "us-east-1", 1440938160, 900, &e) ==
                                  PIER_E_UNAUTHORIZED && strstr(e.msg, "longer than"));
    return TAP_DONE();
}
