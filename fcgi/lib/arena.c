/* arena: bump allocator with deferred cleanups, reset once per request. */
#include "lib/arena.h"

#include "lib/contract.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#define ARENA_BLOCK 16384
#define ARENA_ALIGN 16

struct block {
    struct block *next;
    size_t size, used;
    /* data follows, aligned */
};

struct cleanup {
    struct cleanup *next;
    void (*fn)(void *);
    void *p;
};

struct arena {
    struct block *head;     /* newest block first; the last one is kept on reset */
    struct cleanup *cleanups;
    size_t total;
};

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "pier: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p) {
        fprintf(stderr, "pier: out of memory allocating %zu x %zu bytes\n", n, m);
        abort();
    }
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "pier: out of memory reallocating %zu bytes\n", n);
        abort();
    }
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

static size_t hdr_size(void)
{
    return (sizeof(struct block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

static struct block *block_new(size_t want)
{
    size_t size = want > ARENA_BLOCK ? want : ARENA_BLOCK;
    struct block *b = xmalloc(hdr_size() + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

struct arena *arena_new(void)
{
    struct arena *a = xcalloc(1, sizeof *a);
    a->head = block_new(ARENA_BLOCK);
    return a;
}

void arena_reset(struct arena *a)
{
    if (!a)
        return;
    struct cleanup *c = a->cleanups;
    a->cleanups = NULL;
    while (c) {
        struct cleanup *next = c->next;
        c->fn(c->p);
        c = next;
    }
    /* Keep only the oldest block (the tail), which is the standard size. */
    struct block *b = a->head;
    while (b->next) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    b->used = 0;
    a->head = b;
    a->total = 0;
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    arena_reset(a);
    free(a->head);
    free(a);
}

void *arena_alloc(struct arena *a, size_t n)
{
    PIER_ASSERT(a != NULL);
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n) {
        fprintf(stderr, "pier: arena allocation overflow\n");
        abort();
    }
    struct block *b = a->head;
    if (b->size - b->used < need) {
        b = block_new(need);
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b + hdr_size() + b->used;
    b->used += need;
    a->total += need;
    memset(p, 0, n);
    return p;
}

void *arena_memdup(struct arena *a, const void *p, size_t n)
{
    PIER_ASSERT(p != NULL || n == 0);
    void *q = arena_alloc(a, n + 1);
    if (n)
        memcpy(q, p, n);
    return q;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    return arena_memdup(a, s, n);
}

char *arena_strdup(struct arena *a, const char *s)
{
    PIER_ASSERT(s != NULL);
    return arena_strndup(a, s, strlen(s));
}

char *arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
    PIER_ASSERT(a != NULL && fmt != NULL);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    char *s = arena_alloc(a, (size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return s;
}

void arena_defer(struct arena *a, void (*fn)(void *), void *p)
{
    PIER_ASSERT(a != NULL && fn != NULL);
    struct cleanup *c = arena_alloc(a, sizeof *c);
    c->fn = fn;
    c->p = p;
    c->next = a->cleanups;
    a->cleanups = c;
}

size_t arena_used(const struct arena *a)
{
    return a->total;
}
