/* lifecycle_run: lifecycle policies applied to repositories. One function,
 * lifecycle_plan(), decides what a policy expires in a repository now; a
 * preview stores its answer and a run deletes exactly that, so a preview
 * lists what a run would expire. Runs are started by maintenance (every
 * repository with a policy, a bounded amount per run), by `pierctl
 * lifecycle run` and by nothing else; the control plane only previews. */
#ifndef PIER_LIFECYCLE_RUN_H
#define PIER_LIFECYCLE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"
#include "store/lifecycle_store.h"

/* A repository with more images than this is not evaluated (its plan fails
 * with PIER_E_TOO_LARGE): the evaluation holds them all in memory. */
#define LIFECYCLE_MAX_IMAGES 50000

/* What policy text expires in repository name at now (seconds since the
 * epoch): *out (arena, in the order the images were pushed), *n. Images an
 * image index of the repository lists are not evaluated on their own (they
 * go with their index, and may expire in a later run once it is gone).
 * PIER_E_BAD_REQUEST when text is not a valid policy, PIER_E_NAME_UNKNOWN
 * when the repository does not exist, PIER_E_TOO_LARGE past
 * LIFECYCLE_MAX_IMAGES. */
PIER_MUST_USE
pier_err lifecycle_plan(struct ctx *c, const char *name, const char *text, long long now,
                        struct lifecycle_expiry **out, size_t *n, struct perr *e);

/* Compute the plan of text (NULL: the repository's stored policy, else
 * PIER_E_MANIFEST_UNKNOWN when it has none) and store it as name's preview,
 * under the preview's lock (PIER_E_CONFLICT while another preview of name
 * is being computed). *text_used (arena) is the text evaluated. */
PIER_MUST_USE
pier_err lifecycle_preview_start(struct ctx *c, const char *name, const char *text,
                                 const char **text_used, struct perr *e);

/* Called for every image a run expires (after it is gone) or keeps against
 * its plan (why says why: an index listed it meanwhile, its tags changed). */
typedef void lifecycle_notify_fn(void *arg, const char *repo, const struct lifecycle_expiry *x,
                                 const char *why);

struct lifecycle_report {
    long long repositories; /* repositories whose policy ran to the end */
    long long expired;      /* images deleted */
    long long kept;         /* images the plan expired that were kept (see notify) */
    long long failed;       /* repositories whose run failed (logged) */
    bool more;              /* stopped at max_expiries: work is left */
};

/* Run the stored policy of repository name now: plan, then delete each
 * planned image (repo_image_expire), logging each expiry as
 * "lifecycle: expired <repo>@<digest> (tags a,b | untagged) by rule <n>".
 * At most max_expiries deletions (0: no limit); when the plan is carried
 * out to its end, the policy's lastEvaluatedAt becomes now. Adds to *r.
 * PIER_E_MANIFEST_UNKNOWN when name has no policy, PIER_E_NAME_UNKNOWN when
 * it does not exist. notify may be NULL. */
PIER_MUST_USE
pier_err lifecycle_run_repository(struct ctx *c, const char *name, long long max_expiries,
                                  lifecycle_notify_fn *notify, void *arg,
                                  struct lifecycle_report *r, struct perr *e);
/* Run the policies of up to max_repos repositories, the least recently
 * evaluated first, stopping after max_expiries deletions in all (0: no
 * limit). A repository whose run fails is logged, counted in r->failed and
 * skipped; only a failure to list the repositories is returned. Each
 * repository is run with an arena of its own; c->a holds only the list. */
PIER_MUST_USE
pier_err lifecycle_run_due(struct ctx *c, int max_repos, long long max_expiries,
                           lifecycle_notify_fn *notify, void *arg, struct lifecycle_report *r,
                           struct perr *e);

/* "tags a,b" or "untagged" for tags_json (a JSON array of names), in a:
 * how the log and pierctl name an image's tags. */
const char *lifecycle_tag_words(struct arena *a, const char *tags_json);

#endif
