/* mirror: mirror mode — pulls of a name without the rule's prefix, as
 * container runtimes configured with Pier as a mirror send them, served
 * from the repository of the rule that mirrors the image's registry. */
#ifndef PIER_MIRROR_H
#define PIER_MIRROR_H

#include "http/request.h"
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"
#include "registry/route.h"

/* The query parameter containerd adds to every request it sends to a
 * mirror: the registry the image belongs to (docker.io, quay.io, ...). */
#define MIRROR_NS_PARAM "ns"

/* Map rt->name in place for a GET or HEAD of a manifest, blob, tag list or
 * referrers list (every other request is left alone: pushes are never
 * mapped):
 *  - with ?ns=<registry>: to <prefix>/<name> of the rule that mirrors
 *    <registry> (unchanged when the name already is under that prefix, as
 *    with containerd's override_path, or the rule's prefix is ROOT); when
 *    no rule mirrors it, a name under a rule's prefix (not ROOT) is served
 *    as asked (override_path again), any other name, or an ns that is no
 *    host name, is PIER_E_NAME_UNKNOWN (a runtime then tries its next host);
 *  - without ns: to <prefix>/<name> of the default mirror rule, when there
 *    is one and the name is neither a repository nor under a rule's prefix
 *    (a new default mirror applies within policy_cache_ms: the worker keeps
 *    whether there is one that long); a blob only once the mapped
 *    repository exists (its manifest was pulled), so that a client's
 *    checks before pushing a new repository stay local.
 * *asked is the name as requested (arena memory) when it was mapped, else
 * NULL. The caller authorizes the mapped name. */
PIER_MUST_USE
pier_err mirror_map(struct ctx *c, struct req *r, struct route *rt, const char **asked,
                    struct perr *e);

#endif
