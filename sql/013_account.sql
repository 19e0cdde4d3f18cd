-- 013: registry-wide settings of the account (docs/control-plane.md).

-- Principals whose pulls do not update lastRecordedPullTime (ECR's
-- RegisterPullTimeUpdateExclusion): a scanner or a CI job that pulls every
-- image would otherwise keep every image looking recently used.
CREATE TABLE pull_time_exclusions (
    principal_arn  text COLLATE "C" PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now()
);
