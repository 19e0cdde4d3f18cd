/* Unit tests for building a response: headers up to RESP_HEADERS_MAX go in
 * whole; the first one past it fails the response with a named error instead
 * of being dropped. */
#include <string.h>
#include "http/request.h"
#include "tap.h"

int main(void)
{
    struct arena *a = arena_new();
    char *envp[] = {"REQUEST_METHOD=GET", "REQUEST_URI=/v2/", NULL};
    FCGX_Request fx;
    memset(&fx, 0, sizeof fx);
    fx.envp = envp;
    struct req r;
    req_init(&r, &fx, a);
    struct perr e;
    resp_header(&r, "Docker-Distribution-API-Version", "registry/2.0");
    resp_header(&r, "X-Broken", "a\r\nInjected: yes");
    CHECK("headers within the cap are fine", resp_failed(&r, &e) == PIER_OK);
    CHECK("header lines are built whole",
          strcmp(buf_str(&r.hdr), "Docker-Distribution-API-Version: registry/2.0\r\n"
                                  "X-Broken: a  Injected: yes\r\n") == 0);
    char big[5000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    resp_header(&r, "X-Big", "%s", big);
    CHECK("a 5000-byte header fits when there is room", resp_failed(&r, &e) == PIER_OK &&
                                                            strstr(buf_str(&r.hdr), "X-Big: vvv"));
    resp_header(&r, "X-Second", "%s", big);
    CHECK("the header that passes the cap fails the response",
          resp_failed(&r, &e) == PIER_E_TOO_LARGE && strstr(e.msg, "X-Second") &&
              strstr(e.msg, "8192"));
    resp_header(&r, "X-After", "small");
    CHECK("later headers are not added to a failed response",
          resp_failed(&r, &e) == PIER_E_TOO_LARGE && !strstr(buf_str(&r.hdr), "X-After"));
    arena_free(a);
    return TAP_DONE();
}
