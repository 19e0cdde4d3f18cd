/* request: CGI environment, body stream and response writer over libfcgi. */
#include "http/request.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>
#include "lib/contract.h"
#include "lib/grammar.h"
#include "lib/log.h"
#include "lib/util.h"
#include <sys/socket.h>
#include <sys/uio.h>
#include <errno.h>
#include <poll.h>

void req_init(struct req *r, FCGX_Request *fx, struct arena *a)
{
    PIER_ASSERT(r != NULL && fx != NULL && a != NULL);
    memset(r, 0, sizeof *r);
    buf_init_arena(&r->hdr, a, RESP_HEADERS_MAX);
    /* Room for the usual headers up front: one allocation, no regrowth. */
    (void)buf_reserve(&r->hdr, 1024);
    r->fx = fx;
    r->a = a;
    r->status = 200;
    const char *m = req_env(r, "REQUEST_METHOD");
    r->method = m ? m : "GET";
    r->head = strcmp(r->method, "HEAD") == 0;
    const char *uri = req_env(r, "REQUEST_URI");
    if (!uri)
        uri = "/";
    const char *q = strchr(uri, '?');
    if (q) {
        r->path = arena_strndup(a, uri, (size_t)(q - uri));
        r->query = arena_strdup(a, q + 1);
    } else {
        r->path = uri;
        r->query = "";
    }
    long long cl;
    const char *cls = req_env(r, "CONTENT_LENGTH");
    r->content_length = (cls && *cls && grammar_uint(cls, 1LL << 62, &cl)) ? cl : -1;
    const char *ra = req_env(r, "REMOTE_ADDR");
    r->remote_addr = ra ? ra : "-";
}

const char *req_env(const struct req *r, const char *name)
{
    return FCGX_GetParam(name, r->fx->envp);
}

const char *req_header(const struct req *r, const char *name)
{
    char var[128];
    size_t j = 0;
    bool plain = strcasecmp(name, "Content-Type") == 0 || strcasecmp(name, "Content-Length") == 0;
    if (!plain) {
        memcpy(var, "HTTP_", 5);
        j = 5;
    }
    for (const char *p = name; *p && j < sizeof var - 1; p++)
        var[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    var[j] = '\0';
    return req_env(r, var);
}

int req_query(const struct req *r, const char *key, char *out, size_t outsz)
{
    return query_get(r->query, key, out, outsz);
}

ssize_t req_read(struct req *r, void *buf, size_t n)
{
    if (n > (size_t)1 << 30)
        n = (size_t)1 << 30;
    if (r->body_refused || r->body_eof)
        return 0;
    int got = FCGX_GetStr(buf, (int)n, r->fx->in);
    if (got > 0) {
        r->body_read += got;
        return got;
    }
    if (FCGX_GetError(r->fx->in) != 0)
        return -1;
    r->body_eof = true;
    return 0;
}

pier_err req_read_body(struct req *r, size_t limit, char **out, size_t *len, struct perr *e)
{
    PIER_ASSERT(out != NULL && len != NULL);
    struct buf body;
    buf_init_arena(&body, r->a, limit);
    if (r->content_length > (long long)limit ||
        (r->content_length >= 0 && buf_reserve(&body, (size_t)r->content_length) != PIER_OK)) {
        req_refuse_body(r);
        return perr_set(e, PIER_E_TOO_LARGE, "request body is %lld bytes; the limit is %zu",
                        r->content_length, limit);
    }
    for (;;) {
        char piece[16384];
        ssize_t got = req_read(r, piece, sizeof piece);
        if (got < 0)
            return perr_set(e, PIER_E_BAD_REQUEST, "the request body was cut off");
        if (got == 0)
            break;
        if (buf_add(&body, piece, (size_t)got) != PIER_OK) {
            req_refuse_body(r);
            return perr_set(e, PIER_E_TOO_LARGE, "request body exceeds the limit of %zu bytes",
                            limit);
        }
    }
    size_t n = buf_len(&body);
    if (r->content_length >= 0 && (long long)n != r->content_length)
        return perr_set(e, PIER_E_BAD_REQUEST,
                        "the request body was cut off after %zu of %lld bytes", n,
                        r->content_length);
    *out = body.p ? body.p : arena_strdup(r->a, "");
    *len = n;
    return PIER_OK;
}

void req_refuse_body(struct req *r)
{
    if (!r->body_eof && req_has_body(r))
        r->body_refused = true;
}

bool req_has_body(const struct req *r)
{
    if (r->body_eof)
        return false;
    if (r->content_length >= 0)
        return r->content_length > r->body_read;
    /* No Content-Length: chunked, unless the method never carries a body. */
    return strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0 &&
           strcmp(r->method, "DELETE") != 0 && strcmp(r->method, "OPTIONS") != 0;
}

void req_finish(struct req *r)
{
    FCGX_Request *fx = r->fx;
    if (r->body_refused && fx->ipcFd >= 0) {
        /* Flush the answer and FCGI_END_REQUEST. Apache forwards the body
         * while it waits for the answer: once our receive buffer is full it
         * reads the answer, finishes and hangs up. Whatever the client still
         * sends is Apache's to discard (mod_reqtimeout bounds that), not a
         * worker's: libfcgi would read it for up to 2 s, so the connection
         * is detached and simply closed. */
        FCGX_FClose(fx->err);
        FCGX_FClose(fx->out);
        int64_t until = now_ms() + REQ_REFUSED_LINGER_MS;
        for (;;) {
            int64_t left = until - now_ms();
            if (left <= 0)
                break;
            struct pollfd p = {.fd = fx->ipcFd, .events = POLLRDHUP};
            int n = poll(&p, 1, (int)left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n != 0)
                break; /* hung up (or an error): nothing more to wait for */
        }
        FCGX_Detach(fx);
    }
    FCGX_Finish_r(fx);
}

void resp_status(struct req *r, int status)
{
    r->status = status;
}

void resp_header(struct req *r, const char *name, const char *fmt, ...)
{
    PIER_ASSERT(name != NULL && fmt != NULL);
    if (r->hdr_err.code != PIER_OK)
        return;
    size_t start = buf_len(&r->hdr);
    va_list ap;
    va_start(ap, fmt);
    pier_err rc = buf_addf(&r->hdr, "%s: ", name);
    if (rc == PIER_OK)
        rc = buf_vaddf(&r->hdr, fmt, ap);
    va_end(ap);
    if (rc == PIER_OK) {
        for (char *p = r->hdr.p + start; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        rc = buf_add(&r->hdr, "\r\n", 2);
    }
    if (rc != PIER_OK)
        perr_set(&r->hdr_err, rc, "the response headers pass %d bytes at %.64s", RESP_HEADERS_MAX,
                 name);
}

pier_err resp_failed(const struct req *r, struct perr *e)
{
    if (r->hdr_err.code != PIER_OK && e)
        *e = r->hdr_err;
    return r->hdr_err.code;
}

/* Send the status line and the headers once. False when the response failed
 * while it was built: a bare 500 went out instead, and no body may follow. */
static bool send_headers(struct req *r)
{
    if (r->sent)
        return r->hdr_err.code == PIER_OK;
    r->sent = true;
    if (r->hdr_err.code != PIER_OK) {
        static const char failed[] = "Status: 500 Internal Server Error\r\n"
                                     "Content-Length: 0\r\n\r\n";
        FCGX_PutStr(failed, (int)sizeof failed - 1, r->fx->out);
        return false;
    }
    char status[64]; /* "Status: " + 11 digits + the longest reason + CRLF */
    int n = snprintf(status, sizeof status, "Status: %d %s\r\n", r->status, http_reason(r->status));
    FCGX_PutStr(status, n, r->fx->out);
    FCGX_PutStr(buf_str(&r->hdr), (int)buf_len(&r->hdr), r->fx->out);
    FCGX_PutStr("\r\n", 2, r->fx->out);
    return true;
}

void resp_send(struct req *r, const char *content_type, const void *body, size_t len)
{
    PIER_ASSERT(body != NULL || len == 0);
    if (content_type)
        resp_header(r, "Content-Type", "%s", content_type);
    resp_header(r, "Content-Length", "%zu", len);
    if (send_headers(r) && !r->head && len)
        FCGX_PutStr(body, (int)len, r->fx->out);
}

void resp_end(struct req *r)
{
    const char *h = buf_str(&r->hdr);
    if (r->status != 204 && r->status != 304 && !strstr(h, "Content-Length:") &&
        !strstr(h, "X-Sendfile:"))
        resp_header(r, "Content-Length", "0");
    (void)send_headers(r); /* nothing follows either way */
}

void resp_begin(struct req *r)
{
    (void)send_headers(r); /* a failed response shows in resp_write() and resp_failed() */
}

/* Bodies streamed by a worker (cache misses) are written as FastCGI records
 * of up to 64 KiB straight to the connection: libfcgi packs output into
 * 8 KiB records, which for a large blob costs pierd and Apache about twice
 * the CPU (measured; see docs/pull-through-cache.md). libfcgi's own buffer is
 * flushed first, so the byte stream stays in order. */
#define FCGI_STDOUT_TYPE 6
#define RECORD_MAX 65528 /* a multiple of 8: no padding needed */
#define STREAM_SNDBUF (4 << 20)

static int write_records(struct req *r, const char *p, size_t len)
{
    if (FCGX_FFlush(r->fx->out) < 0)
        return -1;
    int fd = r->fx->ipcFd;
    int id = r->fx->requestId;
    if (!r->streaming) {
        /* A long body (a blob streamed from an upstream): a few MiB of socket
         * buffer let the worker get on with hashing and storing the next
         * piece while Apache catches up, instead of waiting for it every
         * 200 KiB. The kernel caps this at net.core.wmem_max. */
        int size = STREAM_SNDBUF;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        r->streaming = true;
    }
    while (len) {
        size_t n = len > RECORD_MAX ? RECORD_MAX : len;
        unsigned char hdr[8] = {1, FCGI_STDOUT_TYPE, (unsigned char)(id >> 8),
                                (unsigned char)(id & 0xff), (unsigned char)(n >> 8),
                                (unsigned char)(n & 0xff), 0, 0};
        struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)p, n}};
        size_t want = sizeof hdr + n;
        while (want) {
            ssize_t w = writev(fd, iov, 2);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            want -= (size_t)w;
            /* Partial write: advance the iovecs. */
            for (int i = 0; i < 2 && w > 0; i++) {
                size_t take = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
                iov[i].iov_base = (char *)iov[i].iov_base + take;
                iov[i].iov_len -= take;
                w -= (ssize_t)take;
            }
        }
        p += n;
        len -= n;
    }
    return 0;
}

int resp_write(struct req *r, const void *data, size_t len)
{
    if (!send_headers(r))
        return -1;
    if (r->head || len == 0)
        return 0;
    if (len >= 16384)
        return write_records(r, data, len);
    return FCGX_PutStr(data, (int)len, r->fx->out) == (int)len ? 0 : -1;
}

void resp_abort(struct req *r)
{
    /* Closing the FastCGI connection without FCGI_END_REQUEST makes Apache
     * treat the response as failed and cut the client connection. */
    if (r->fx->ipcFd >= 0)
        shutdown(r->fx->ipcFd, SHUT_RDWR);
}

void resp_json(struct req *r, int status, const char *content_type, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        log_error("json_dumps failed");
        resp_status(r, 500);
        resp_end(r);
        return;
    }
    resp_status(r, status);
    resp_send(r, content_type ? content_type : "application/json", s, strlen(s));
    free(s);
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

bool resp_has_header(const struct req *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = buf_str(&r->hdr); *line;) {
        if (strncasecmp(line, name, n) == 0 && line[n] == ':')
            return true;
        const char *nl = strstr(line, "\r\n");
        if (!nl)
            break;
        line = nl + 2;
    }
    return false;
}
