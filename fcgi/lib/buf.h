/* buf: a growing byte buffer with a hard cap set at init, for everything
 * Pier builds from pieces whose total it does not know in advance (response
 * headers, upstream answers, request bodies). Modelled on curl's dynbuf: an
 * append that would pass the cap fails with PIER_E_TOO_LARGE and frees what
 * was built, so a caller never cleans up half a buffer and never sends or
 * parses a truncated one. */
#ifndef PIER_BUF_H
#define PIER_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include "lib/arena.h"
#include "lib/err.h"

struct buf {
    char *p;          /* contents, NUL-terminated; NULL while empty */
    size_t len;       /* bytes held, at most cap */
    size_t alloc;     /* bytes allocated at p */
    size_t cap;       /* the hard limit */
    struct arena *a;  /* where memory comes from; NULL: the heap */
};

/* An empty buffer that will never hold more than cap bytes.
 * With an arena, memory comes from it and needs no buf_free(); otherwise
 * from the heap (xmalloc: out-of-memory aborts). */
void buf_init(struct buf *b, size_t cap);
void buf_init_arena(struct buf *b, struct arena *a, size_t cap);

/* Append n bytes (n may be 0). PIER_E_TOO_LARGE when the contents would pass
 * the cap: the buffer is then freed and empty (still usable). */
PIER_MUST_USE
pier_err buf_add(struct buf *b, const void *data, size_t n);
/* Append a string. Same contract as buf_add. */
PIER_MUST_USE
pier_err buf_adds(struct buf *b, const char *s);
/* Append printf-formatted text. Same contract as buf_add; a format error is
 * PIER_E_INTERNAL (also freeing the buffer). */
PIER_MUST_USE
pier_err buf_addf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
PIER_MUST_USE
pier_err buf_vaddf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Make room for n bytes in total (an allocation hint, e.g. a Content-Length).
 * PIER_E_TOO_LARGE, freeing the buffer, when n passes the cap. */
PIER_MUST_USE
pier_err buf_reserve(struct buf *b, size_t n);

/* Forget the contents, keep the memory and the cap. */
void buf_reset(struct buf *b);
/* Release the memory (heap buffers; a no-op beyond buf_reset for arena
 * ones); the buffer stays usable with its cap. */
void buf_free(struct buf *b);

/* The contents: never NULL ("" while empty), valid until the next append,
 * reset or free. */
const char *buf_str(const struct buf *b);
size_t buf_len(const struct buf *b);
size_t buf_cap(const struct buf *b);

#endif
