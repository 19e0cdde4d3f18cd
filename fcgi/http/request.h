/* request: one FastCGI request as seen by handlers — the CGI variables Apache
 * passes, the request body as a stream, and a response built header by header. */
#ifndef PIER_REQUEST_H
#define PIER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <fcgiapp.h>
#include <jansson.h>
#include "lib/arena.h"
#include "lib/buf.h"
#include "lib/err.h"

#define RESP_HEADERS_MAX 8192

struct req {
    FCGX_Request *fx;
    struct arena *a;
    const char *method;        /* "GET", "HEAD", ... */
    bool head;                 /* HEAD: headers only, same Content-Length */
    const char *path;          /* raw request path, percent-encoding intact */
    const char *query;         /* raw query string without '?', or "" */
    long long content_length;  /* -1 when the request has none (chunked) */
    const char *remote_addr;
    long long body_read;       /* bytes consumed from the body so far */
    bool body_eof;             /* the end of the body was read */
    bool body_refused;         /* the rest of the body will not be read (see req_refuse_body) */
    /* response */
    int status;
    bool sent;                 /* headers written */
    bool streaming;            /* the socket buffer was enlarged for a long body */
    struct buf hdr;            /* header lines so far, capped at RESP_HEADERS_MAX */
    struct perr hdr_err;       /* why the response failed while it was built (see resp_failed) */
};

/* Bind r to an accepted FastCGI request; strings live in arena a. */
void req_init(struct req *r, FCGX_Request *fx, struct arena *a);
/* A CGI variable (e.g. "REQUEST_URI"), or NULL. */
const char *req_env(const struct req *r, const char *name);
/* A request header by its HTTP name (case-insensitive), or NULL. Apache joins
 * repeated headers with ", ". */
const char *req_header(const struct req *r, const char *name);
/* Query parameter, decoded into out. 1 found, 0 absent, -1 malformed/too long. */
int req_query(const struct req *r, const char *key, char *out, size_t outsz);

/* Read up to n body bytes. Returns the count, 0 at the end of the body, -1 when
 * the connection to Apache broke (the client went away mid-body). */
ssize_t req_read(struct req *r, void *buf, size_t n);
/* Read the whole body into arena memory, refusing more than limit bytes with
 * PIER_E_TOO_LARGE (the rest of the body is then refused); a body cut off is
 * PIER_E_BAD_REQUEST. *out is NUL-terminated for convenience. */
PIER_MUST_USE
pier_err req_read_body(struct req *r, size_t limit, char **out, size_t *len, struct perr *e);
/* The request is answered without reading the rest of its body: nothing
 * more is read (a client that trickles its body must not hold a worker), and
 * req_finish() closes the FastCGI connection once the answer is out. */
void req_refuse_body(struct req *r);
/* Does the request have a body still to come (Content-Length > 0, or no
 * length on a method that takes a body)? */
bool req_has_body(const struct req *r);
/* End the request (instead of FCGX_Finish_r): after a refused body the
 * answer and the end-of-request record are flushed, Apache gets up to
 * REQ_REFUSED_LINGER_MS to take them and hang up, and the connection is
 * closed without reading what the client still sends. */
void req_finish(struct req *r);
#define REQ_REFUSED_LINGER_MS 500

void resp_status(struct req *r, int status);
/* Add a header; values must not contain CR or LF (they are replaced). The
 * headers of a response are capped at RESP_HEADERS_MAX bytes in all: a header
 * that does not fit fails the whole response (a response missing a Location,
 * a digest or a length would mean something else). Headers added after that
 * are ignored, and what goes out is a bare 500 with no body; resp_failed()
 * names the error. */
void resp_header(struct req *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* PIER_OK, or why the response failed while it was built (PIER_E_TOO_LARGE:
 * its headers passed RESP_HEADERS_MAX), copied into e. */
PIER_MUST_USE
pier_err resp_failed(const struct req *r, struct perr *e);
/* Finish with a complete body: adds Content-Type (when given) and
 * Content-Length; a HEAD request gets the headers only. */
void resp_send(struct req *r, const char *content_type, const void *body, size_t len);
/* Finish with no body (Content-Length: 0 unless a length header was set). */
void resp_end(struct req *r);
/* Streaming: send the status and headers now (no Content-Length is added),
 * then the body piece by piece. resp_write returns -1 once the client (or
 * Apache) is gone, or when the response failed (resp_failed). */
void resp_begin(struct req *r);
int resp_write(struct req *r, const void *data, size_t len);
/* Break the response off so the client sees an incomplete transfer (used when
 * bytes already streamed turn out to be wrong). */
void resp_abort(struct req *r);
/* Has a header of this name (case-insensitive) been added? */
bool resp_has_header(const struct req *r, const char *name);
/* Serialize j (not consumed) and send it. */
void resp_json(struct req *r, int status, const char *content_type, const json_t *j);

const char *http_reason(int status);

#endif
