/* buf: capped growing buffers (see buf.h for the contract). */
#include "lib/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib/contract.h"

#define BUF_FIRST 256

static void init(struct buf *b, struct arena *a, size_t cap)
{
    PIER_ASSERT(b != NULL && cap < SIZE_MAX);
    b->p = NULL;
    b->len = b->alloc = 0;
    b->cap = cap;
    b->a = a;
}

void buf_init(struct buf *b, size_t cap)
{
    init(b, NULL, cap);
}

void buf_init_arena(struct buf *b, struct arena *a, size_t cap)
{
    PIER_ASSERT(a != NULL);
    init(b, a, cap);
}

void buf_free(struct buf *b)
{
    if (!b->a)
        free(b->p);
    b->p = NULL;
    b->len = b->alloc = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

/* Room for want content bytes plus the NUL. Callers checked want <= cap. */
static void grow(struct buf *b, size_t want)
{
    if (want < b->alloc)
        return;
    size_t n = b->alloc ? b->alloc : BUF_FIRST;
    while (n <= want)
        n = n > (SIZE_MAX >> 1) ? SIZE_MAX : n * 2;
    if (n > b->cap + 1)
        n = b->cap + 1;
    if (b->a) {
        char *p = arena_alloc(b->a, n);
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
    } else {
        b->p = xrealloc(b->p, n);
    }
    b->alloc = n;
}

static pier_err too_large(struct buf *b)
{
    buf_free(b);
    return PIER_E_TOO_LARGE;
}

pier_err buf_reserve(struct buf *b, size_t n)
{
    if (n > b->cap)
        return too_large(b);
    grow(b, n);
    if (b->len == 0)
        b->p[0] = '\0';
    return PIER_OK;
}

pier_err buf_add(struct buf *b, const void *data, size_t n)
{
    PIER_ASSERT(data != NULL || n == 0);
    if (n > b->cap - b->len)
        return too_large(b);
    grow(b, b->len + n);
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return PIER_OK;
}

pier_err buf_adds(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

pier_err buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    /* Format in place when it fits what is allocated, else measure first. */
    size_t room = b->alloc > b->len ? b->alloc - b->len : 0;
    int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
    if (n < 0) {
        va_end(again);
        buf_free(b);
        return PIER_E_INTERNAL;
    }
    if ((size_t)n > b->cap - b->len) {
        va_end(again);
        return too_large(b);
    }
    if ((size_t)n >= room) {
        grow(b, b->len + (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    b->len += (size_t)n;
    return PIER_OK;
}

pier_err buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pier_err rc = buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

const char *buf_str(const struct buf *b)
{
    return b->p ? b->p : "";
}

size_t buf_len(const struct buf *b)
{
    return b->len;
}

size_t buf_cap(const struct buf *b)
{
    return b->cap;
}
