/* migrate: schema versioning with an advisory lock. */
#include "db/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include "db/db.h"
#include "lib/log.h"

/* Arbitrary constant shared by every Pier node: "pier" in ASCII plus 1. */
#define MIGRATION_LOCK_KEY "1885955442001"

static const struct db_stmt st_lock = {
    "migrate_lock", "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", 0};
static const struct db_stmt st_unlock = {
    "migrate_unlock", "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", 0};
static const struct db_stmt st_version = {
    "migrate_version", "SELECT coalesce(max(version), 0) FROM schema_migrations", 0};
static const struct db_stmt st_applied = {
    "migrate_applied", "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1};
static const struct db_stmt st_record = {
    "migrate_record", "INSERT INTO schema_migrations(version, name) VALUES ($1::int, $2)", 2};

static const struct db_stmt st_recorded = {"migrate_recorded",
                                           "SELECT version FROM schema_migrations", 0};

static const char create_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

pier_err migrate_pending(struct db *db, int *missing, struct perr *e)
{
    struct arena *a = arena_new();
    pier_err rc = PIER_OK;
    PGresult *r = db_exec(db, a, &st_recorded, e);
    if (!r) {
        rc = e->code;
    } else {
        int rows = PQntuples(r);
        *missing = 0;
        for (int i = 0; i < pier_migrations_count; i++) {
            bool found = false;
            for (int j = 0; j < rows && !found; j++)
                found = db_int(r, j, 0) == pier_migrations[i].version;
            if (!found)
                ++*missing;
        }
    }
    arena_free(a);
    return rc;
}

int migrate_version(struct db *db, struct perr *e)
{
    struct arena *a = arena_new();
    int v = -1;
    if (db_command(db, create_table, e) == PIER_OK) {
        PGresult *r = db_exec(db, a, &st_version, e);
        if (r)
            v = (int)db_int(r, 0, 0);
    }
    arena_free(a);
    return v;
}

int migrate_newest(void)
{
    return pier_migrations_count ? pier_migrations[pier_migrations_count - 1].version : 0;
}

static pier_err refuse_newer(int current, struct perr *e)
{
    return perr_set(e, PIER_E_INTERNAL,
                    "the database schema is at version %d but this binary knows only up to %d; "
                    "upgrade this node",
                    current, migrate_newest());
}

pier_err migrate_check(struct db *db, int *pending, struct perr *e)
{
    int current = migrate_version(db, e);
    if (current < 0)
        return e->code;
    if (current > migrate_newest())
        return refuse_newer(current, e);
    struct arena *a = arena_new();
    int count = 0;
    for (int i = 0; i < pier_migrations_count; i++) {
        const struct migration *m = &pier_migrations[i];
        if (m->version > current) {
            count++;
            continue;
        }
        PGresult *done = db_exec(db, a, &st_applied, e, m->version);
        if (!done) {
            arena_free(a);
            return e->code;
        }
        if (PQntuples(done) == 0)
            count++;
    }
    arena_free(a);
    if (pending)
        *pending = count;
    return PIER_OK;
}

pier_err migrate_run(struct db *db, int *applied, struct perr *e)
{
    struct arena *a = arena_new();
    pier_err rc = PIER_OK;
    int count = 0;
    if (!db_exec(db, a, &st_lock, e)) {
        rc = e->code;
        goto out_nolock;
    }
    int current = migrate_version(db, e);
    if (current < 0) {
        rc = e->code;
        goto out;
    }
    if (current > migrate_newest()) {
        rc = refuse_newer(current, e);
        goto out;
    }
    for (int i = 0; i < pier_migrations_count; i++) {
        const struct migration *m = &pier_migrations[i];
        /* Every migration not recorded yet, also one numbered below the
         * newest applied (branches that landed out of order). */
        PGresult *done = m->version <= current ? db_exec(db, a, &st_applied, e, m->version) : NULL;
        if (m->version <= current && !done) {
            rc = e->code;
            goto out;
        }
        if (done && PQntuples(done) > 0)
            continue;
        if ((rc = db_tx_begin(db, e)) != PIER_OK)
            goto out;
        if ((rc = db_command(db, m->sql, e)) == PIER_OK &&
            !db_exec(db, a, &st_record, e, m->version, m->name))
            rc = e->code ? e->code : PIER_E_INTERNAL;
        if (rc != PIER_OK) {
            (void)db_tx_end(db, rc, e); /* rolls back, returns rc */
            perr_set(e, rc, "migration %s failed (see the log)", m->name);
            goto out;
        }
        if ((rc = db_tx_end(db, PIER_OK, e)) != PIER_OK)
            goto out;
        log_info("applied migration %s", m->name);
        count++;
    }
out:
    {
        struct perr ignore;
        db_exec(db, a, &st_unlock, &ignore);
    }
out_nolock:
    arena_free(a);
    if (applied)
        *applied = count;
    return rc;
}
