/* lifecycle_run: plans, previews and runs of lifecycle policies. */
#include "store/lifecycle_run.h"

#include <string.h>
#include <time.h>
#include <jansson.h>
#include "db/db.h"
#include "lib/log.h"
#include "store/audit.h"
#include "store/lifecycle.h"
#include "store/repo.h"

/* The tags of tags_json ("[\"a\",\"b\"]") as an array in the arena. */
static const char *const *tag_array(struct arena *a, const char *tags_json, size_t *n)
{
    json_t *j = json_loads(tags_json, 0, NULL);
    *n = json_array_size(j);
    const char **out = arena_alloc(a, sizeof *out * (*n ? *n : 1));
    size_t i, k = 0;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        if (json_is_string(v))
            out[k++] = arena_strdup(a, json_string_value(v));
    }
    *n = k;
    json_decref(j);
    return out;
}

const char *lifecycle_tag_words(struct arena *a, const char *tags_json)
{
    size_t n;
    const char *const *tags = tag_array(a, tags_json, &n);
    if (n == 0)
        return "untagged";
    const char *s = "tags ";
    for (size_t i = 0; i < n; i++)
        s = arena_printf(a, "%s%s%s", s, i ? "," : "", tags[i]);
    return s;
}

pier_err lifecycle_plan(struct ctx *c, const char *name, const char *text, long long now,
                        struct lifecycle_expiry **out, size_t *n, struct perr *e)
{
    *out = NULL;
    *n = 0;
    struct lifecycle_policy *p;
    pier_err rc = lifecycle_parse(text, &p, e);
    if (rc)
        return rc;
    bool exists;
    struct repo_image *imgs = NULL;
    int count = 0;
    if ((rc = repo_exists_named(c, name, &exists, e)) == PIER_OK && !exists)
        rc = perr_set(e, PIER_E_NAME_UNKNOWN, "repository %s does not exist", name);
    if (!rc)
        rc = repo_lifecycle_images(c, name, LIFECYCLE_MAX_IMAGES + 1, &imgs, &count, e);
    if (!rc && count > LIFECYCLE_MAX_IMAGES)
        rc = perr_set(e, PIER_E_TOO_LARGE,
                      "repository %s holds more than %d images; lifecycle policies evaluate at "
                      "most %d",
                      name, LIFECYCLE_MAX_IMAGES, LIFECYCLE_MAX_IMAGES);
    if (rc) {
        lifecycle_free(p);
        return rc;
    }
    struct lifecycle_image *li = arena_alloc(c->a, sizeof *li * (size_t)(count ? count : 1));
    int *by = arena_alloc(c->a, sizeof *by * (size_t)(count ? count : 1));
    for (int i = 0; i < count; i++) {
        li[i].digest = imgs[i].digest;
        li[i].tags = tag_array(c->a, imgs[i].tags_json, &li[i].ntags);
        li[i].pushed_at = imgs[i].pushed_ms / 1000;
        li[i].pulled_at = imgs[i].last_pulled_ms / 1000;
    }
    lifecycle_evaluate(p, li, (size_t)count, now, by);
    lifecycle_free(p);
    size_t m = 0;
    for (int i = 0; i < count; i++)
        m += by[i] != 0;
    *out = arena_alloc(c->a, sizeof **out * (m ? m : 1));
    for (int i = 0; i < count; i++) {
        if (!by[i])
            continue;
        (*out)[*n] = (struct lifecycle_expiry){.digest = imgs[i].digest,
                                               .tags_json = imgs[i].tags_json,
                                               .pushed_at = imgs[i].pushed_ms / 1000,
                                               .rule = by[i]};
        (*n)++;
    }
    return PIER_OK;
}

pier_err lifecycle_preview_start(struct ctx *c, const char *name, const char *text,
                                 const char **text_used, struct perr *e)
{
    pier_err rc = db_tx_begin(c->db, e);
    if (rc)
        return rc;
    rc = lifecycle_preview_lock(c, name, e);
    if (!rc && !text) {
        struct lifecycle_record stored;
        if (!(rc = lifecycle_policy_get(c, name, &stored, e)))
            text = stored.text;
    }
    struct lifecycle_expiry *x = NULL;
    size_t n = 0;
    if (!rc)
        rc = lifecycle_plan(c, name, text, time(NULL), &x, &n, e);
    if (!rc)
        rc = lifecycle_preview_save(c, name, text, x, n, e);
    if ((rc = db_tx_end(c->db, rc, e)))
        return rc;
    *text_used = text;
    return PIER_OK;
}

pier_err lifecycle_run_repository(struct ctx *c, const char *name, long long max_expiries,
                                  lifecycle_notify_fn *notify, void *arg,
                                  struct lifecycle_report *r, struct perr *e)
{
    struct lifecycle_record policy;
    pier_err rc = lifecycle_policy_get(c, name, &policy, e);
    struct lifecycle_expiry *x = NULL;
    size_t n = 0;
    if (!rc)
        rc = lifecycle_plan(c, name, policy.text, time(NULL), &x, &n, e);
    if (rc)
        return rc;
    long long done = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (max_expiries > 0 && done >= max_expiries) {
            r->more = true;
            break;
        }
        struct perr why;
        pier_err d = repo_image_expire(c, name, x[i].digest, x[i].tags_json, &why);
        if (d == PIER_OK) {
            done++;
            r->expired++;
            log_info("lifecycle: expired %s@%s (%s) by rule %d", name, x[i].digest,
                     lifecycle_tag_words(c->a, x[i].tags_json), x[i].rule);
            struct audit_event ev = {
                .action = "lifecycle:ExpireImage",
                .repository = name,
                .target = arena_printf(c->a, "%s (%s; rule %d)", x[i].digest,
                                       lifecycle_tag_words(c->a, x[i].tags_json), x[i].rule)};
            audit_record(c, &ev);
            if (notify)
                notify(arg, name, &x[i], NULL);
        } else if (d == PIER_E_CONFLICT) {
            /* An index listed it or its tags changed after the plan. */
            r->kept++;
            log_info("lifecycle: kept %s@%s, which rule %d expires: %s", name, x[i].digest,
                     x[i].rule, why.msg);
            if (notify)
                notify(arg, name, &x[i], why.msg);
        } else if (d != PIER_E_MANIFEST_UNKNOWN) { /* deleted meanwhile: nothing to do */
            *e = why;
            return d;
        }
    }
    if (i < n)
        return PIER_OK;
    if ((rc = lifecycle_policy_evaluated(c, name, e)))
        return rc;
    r->repositories++;
    return PIER_OK;
}

pier_err lifecycle_run_due(struct ctx *c, int max_repos, long long max_expiries,
                           lifecycle_notify_fn *notify, void *arg, struct lifecycle_report *r,
                           struct perr *e)
{
    const char **names;
    int count;
    pier_err rc = lifecycle_policy_due(c, max_repos, &names, &count, e);
    if (rc)
        return rc;
    for (int i = 0; i < count; i++) {
        if (max_expiries > 0 && r->expired >= max_expiries) {
            r->more = true;
            break;
        }
        struct ctx rc_ctx = *c;
        rc_ctx.a = arena_new();
        struct perr why;
        pier_err x = lifecycle_run_repository(&rc_ctx, names[i],
                                              max_expiries > 0 ? max_expiries - r->expired : 0,
                                              notify, arg, r, &why);
        arena_free(rc_ctx.a);
        if (x == PIER_E_UNAVAILABLE) {
            *e = why;
            return x; /* the database went away: the next run goes on */
        }
        if (x && x != PIER_E_NAME_UNKNOWN && x != PIER_E_MANIFEST_UNKNOWN) {
            r->failed++;
            log_warn("lifecycle: the policy of %s did not run: %s", names[i], why.msg);
        }
    }
    return PIER_OK;
}
