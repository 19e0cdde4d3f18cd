/* arena: request-scoped memory. Everything allocated from an arena, and every
 * cleanup deferred to it, is released by one arena_reset() when the request ends. */
#ifndef PIER_ARENA_H
#define PIER_ARENA_H

#include <stddef.h>
#include <stdarg.h>

struct arena;

/* Create an empty arena. Aborts the process on out-of-memory (see xmalloc). */
struct arena *arena_new(void);
/* Run deferred cleanups (newest first), free every block but the first. */
void arena_reset(struct arena *a);
/* arena_reset() then free the arena itself. NULL is allowed. */
void arena_free(struct arena *a);

/* Zeroed, 16-byte aligned memory that lives until the next reset. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Call fn(p) at the next reset. Used for PGresult, json_t, open files. */
void arena_defer(struct arena *a, void (*fn)(void *), void *p);

/* Bytes handed out since the last reset (for limits and tests). */
size_t arena_used(const struct arena *a);

/* Process-wide allocation wrappers: abort with a log line on out-of-memory,
 * because a worker that cannot allocate cannot answer sensibly anyway and the
 * master replaces it. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
