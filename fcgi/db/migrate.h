/* migrate: apply the numbered migrations of sql/ (compiled in) under a
 * PostgreSQL advisory lock, so several nodes starting at once are safe. */
#ifndef PIER_MIGRATE_H
#define PIER_MIGRATE_H

#include "lib/err.h"

struct migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct migration pier_migrations[];
extern const int pier_migrations_count;

struct db;

/* Apply every migration newer than the database's version, each in its own
 * transaction, holding the migration lock throughout. *applied (if not NULL)
 * receives the number applied. Refuses to run against a database whose schema
 * is newer than this binary knows. */
PIER_MUST_USE
pier_err migrate_run(struct db *db, int *applied, struct perr *e);
/* How many of the compiled-in migrations the database has not recorded
 * (0: the schema is current), into *missing; reads only (no table is
 * created). A database without schema_migrations fails like any statement. */
PIER_MUST_USE
pier_err migrate_pending(struct db *db, int *missing, struct perr *e);
/* Current schema version of the database (0 if none), or -1 on error. */
int migrate_version(struct db *db, struct perr *e);
/* The newest migration compiled into this binary. */
int migrate_newest(void);
/* Check without applying anything: *pending (if not NULL) receives the number
 * of compiled-in migrations the database has not recorded. Fails (PIER_E_INTERNAL,
 * a message that says to upgrade this node) when the schema is newer than this
 * binary knows, like migrate_run. */
PIER_MUST_USE
pier_err migrate_check(struct db *db, int *pending, struct perr *e);

#endif
