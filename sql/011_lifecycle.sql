-- 011: lifecycle policies, run by maintenance and on demand, and their previews.
-- One policy per repository (ECR's PutLifecyclePolicy); it goes with the repository.
CREATE TABLE lifecycle_policies (
    repository_id      bigint PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text        text NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_evaluated_at  timestamptz                 -- the last run that finished, NULL: never
);
-- Maintenance takes the repositories whose policy ran longest ago first.
CREATE INDEX lifecycle_policies_by_evaluation ON lifecycle_policies(last_evaluated_at NULLS FIRST);

-- The last preview of each repository (StartLifecyclePolicyPreview): the text it
-- evaluated and what that text would expire, one row per image, in the order
-- the evaluation listed them.
CREATE TABLE lifecycle_previews (
    repository_id  bigint PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text    text NOT NULL,
    status         text NOT NULL CHECK (status IN ('COMPLETE', 'FAILED')),
    expiring       bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE lifecycle_preview_results (
    repository_id  bigint NOT NULL REFERENCES lifecycle_previews(repository_id) ON DELETE CASCADE,
    ordinal        integer NOT NULL,
    digest         text COLLATE "C" NOT NULL,
    tags           jsonb NOT NULL,                -- ["tag", ...] by name; [] untagged
    pushed_at      bigint NOT NULL,               -- seconds since the epoch
    rule_priority  integer NOT NULL,
    PRIMARY KEY (repository_id, ordinal)
);
