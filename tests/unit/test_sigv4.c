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
    return TAP_DONE();
}
