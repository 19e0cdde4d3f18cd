/* console images: the console's views of one image (manifest, platforms,
 * layers, config, referrers, a cache tag's upstream history), its actions on
 * cache tags (check the upstream now, evict), and the storage page's usage
 * per repository and per rule. Each endpoint authorizes the session's
 * principal with an ECR action (docs/console.md) and answers through
 * console.c's reply and fail. */
#ifndef PIER_CONSOLE_IMAGES_H
#define PIER_CONSOLE_IMAGES_H

#include <jansson.h>
#include "ecrapi/exceptions.h"
#include "http/request.h"
#include "lib/ctx.h"

/* console.c: the console's one way to answer (JSON, no-store; body is
 * consumed) and to fail (type and status from the exception table). */
void console_reply(struct req *r, int status, json_t *body);
void console_fail(struct req *r, enum ecr_exc exc, const char *msg);

/* GET image?name=&ref= (a tag or a digest): what is stored, never asking an
 * upstream; needs ecr:BatchGetImage on the repository. */
void console_image(struct ctx *c, struct req *r);

/* POST image/check {repositoryName, imageTag}: ask a cache repository's
 * upstream about the tag now; answers result "moved", "unchanged",
 * "imported" (it was not cached), "notFound" or "upstreamError". Needs
 * ecr:BatchImportUpstreamImage; audited as console:CheckUpstream. */
void console_image_check(struct ctx *c, struct req *r, json_t *in);

/* POST image/evict {repositoryName, imageTag}: drop a cached tag, and its
 * image when no other tag or index in the repository needs it (its blobs
 * then go in the next garbage-collection sweep); the next pull fetches it
 * from the upstream again. Needs ecr:BatchDeleteImage; audited as
 * console:EvictTag. */
void console_image_evict(struct ctx *c, struct req *r, json_t *in);

/* The storage page's usage, added to out: bytes of pushed and of cache
 * repositories, the 50 repositories whose name contains q ("" for all)
 * holding the most bytes (those the caller may describe), and per rule its
 * bytes, budget and reclaimed bytes. */
PIER_MUST_USE
pier_err console_storage_usage(struct ctx *c, const char *q, json_t *out, struct perr *e);

#endif
