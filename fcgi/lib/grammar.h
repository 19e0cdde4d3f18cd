/* grammar: the OCI distribution-spec grammars. Every name, tag and digest is
 * checked here before it reaches a path, a query or a URL. Each check explains
 * in its error message which rule was broken. */
#ifndef PIER_GRAMMAR_H
#define PIER_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include "lib/err.h"

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128
#define DIGEST_MAX_LEN 135 /* "sha512:" + 128 hex */

enum digest_alg { DIGEST_SHA256 = 0, DIGEST_SHA512 = 1 };

/* Repository name: components [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* joined by '/',
 * at most NAME_MAX_LEN characters. PIER_E_NAME_INVALID otherwise. */
PIER_MUST_USE
pier_err grammar_name(const char *s, struct perr *e);
/* Tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. PIER_E_MANIFEST_INVALID otherwise
 * (the spec has no TAG_INVALID; the message says it is the tag). */
PIER_MUST_USE
pier_err grammar_tag(const char *s, struct perr *e);
/* Digest: algorithm ":" encoded, algorithm sha256 (64 lowercase hex) or sha512
 * (128 lowercase hex). Sets *alg when not NULL. PIER_E_DIGEST_INVALID otherwise. */
PIER_MUST_USE
pier_err grammar_digest(const char *s, enum digest_alg *alg, struct perr *e);
/* True when s looks like a digest rather than a tag (contains ':'). */
bool grammar_is_digest(const char *s);
/* Reference = tag or digest, checked by the matching grammar. */
PIER_MUST_USE
pier_err grammar_reference(const char *s, struct perr *e);

/* Largest byte offset or length accepted from a client (as for CONTENT_LENGTH):
 * sums and differences of two such values cannot overflow a long long. */
#define GRAMMAR_OFFSET_MAX (1LL << 62)
/* Content-Range of a chunk: "<start>-<end>" (inclusive), also accepting a
 * "bytes " or "bytes=" prefix and a "/<total>" or "/" + "*" suffix.
 * PIER_E_RANGE_INVALID when malformed, end < start or a value is above
 * GRAMMAR_OFFSET_MAX. */
PIER_MUST_USE
pier_err grammar_content_range(const char *s, long long *start, long long *end, struct perr *e);
/* Non-negative decimal integer without sign or spaces, at most max. */
bool grammar_uint(const char *s, long long max, long long *out);
/* Media type: type "/" subtype with RFC 6838 restricted-name characters,
 * optionally followed by parameters; at most 255 characters. */
bool grammar_media_type(const char *s);

#endif
