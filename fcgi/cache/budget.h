/* budget: the pull-through cache within its byte budgets. A rule may have
 * one (cache_rules.max_bytes) and the registry may have one for all rules
 * together (cache_max_bytes). While the cache repositories of a budget hold
 * more than it allows, their least recently pulled images are expired — one
 * at a time: the image is deleted (repo_image_delete), then its blobs are
 * collected at once (repo_gc_collect with the rule's id), so the space
 * really comes back; a layer another image still references stays. What
 * is counted: the distinct blobs linked in the repositories (a shared layer
 * once), not the manifests, which live in the database.
 *
 * Never expired: an image pulled (or imported) within the last minute
 * (BUDGET_IDLE_S), one with a blob being downloaded right now (a live fetch
 * lease), and one an image index of its repository lists (the index goes
 * first). An expired image is fetched from the upstream again on its next
 * pull. Runs from maintenance (under its cluster-wide lock) and from
 * `pierctl budget run`; one enforcement at a time cluster-wide. */
#ifndef PIER_BUDGET_H
#define PIER_BUDGET_H

#include <stdbool.h>
#include "lib/contract.h"
#include "lib/ctx.h"
#include "lib/err.h"

/* Images pulled or imported within this many seconds are never expired. */
#define BUDGET_IDLE_S 60
/* An enforcement expires at most this many images; the next run goes on. */
#define BUDGET_MAX_EXPIRIES 10000

struct budget_report {
    int budgets;         /* budgets looked at: rules with one, and the registry's */
    int over;            /* budgets still exceeded when the run ended */
    long long expired;   /* images expired */
    long long reclaimed; /* bytes their collection removed from the blob root */
    long long kept;      /* images passed over although over budget: a blob being
                             downloaded, or listed by an image index */
};

/* Enforce every rule's budget, then the registry-wide one (c->cfg's
 * cache_max_bytes), outside any transaction; c needs the blob store (c->bs),
 * whose files the collection removes. Logs every expiry
 * ("budget: expired <repo>@<digest> (rule <prefix>, last pulled <time>)")
 * and adds it to the rule's counters (stats_note_expiry). PIER_E_CONFLICT
 * when another enforcement runs somewhere; a database error ends the run
 * (what was expired stays expired). */
PIER_MUST_USE
pier_err budget_enforce(struct ctx *c, struct budget_report *out, struct perr *e);

#endif
