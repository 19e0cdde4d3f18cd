-- 010: garbage collection (docs/storage.md).

-- A blob whose row a sweep deleted and whose file it has not removed yet.
-- Written in the transaction that deletes the blobs row, removed after the
-- file is gone: a sweep that dies in between leaves the tombstone, and the
-- next sweep finishes the deletion (repo_gc_finish).
CREATE TABLE blob_tombstones (
    digest      text COLLATE "C" PRIMARY KEY,
    size        bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per sweep, for pierctl and the console.
CREATE TABLE gc_runs (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    duration_ms  bigint,
    node         text NOT NULL,
    dry_run      boolean NOT NULL,
    grace        integer NOT NULL,
    links        bigint NOT NULL DEFAULT 0,
    blobs        bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    busy         bigint NOT NULL DEFAULT 0,
    finished     bigint NOT NULL DEFAULT 0,
    error        text
);
CREATE INDEX gc_runs_by_start ON gc_runs(started_at);
