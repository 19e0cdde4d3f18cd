-- 018: upstream health now, per pull-through cache rule, shared by every node.
-- upstream_health holds the rule's state: failing since a time (cleared by the
-- first fetch or validation that succeeds), rate-limited until a time (from
-- the upstream's Retry-After), the last success and the last failure with its
-- class. Workers write it when the state changes, and otherwise at most once
-- every few seconds per rule, never once per request.
-- upstream_health_minutes counts requests to the upstream and their failures
-- per rule and minute, for the recent error rate: workers add their counters
-- every few seconds, and rows older than 20 minutes are deleted as new ones
-- come, so a rule has at most about 20 rows.
CREATE TABLE upstream_health (
    rule_id bigint PRIMARY KEY REFERENCES cache_rules(id) ON DELETE CASCADE,
    failing_since timestamptz,
    rate_limited_until timestamptz,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    last_failure_class text NOT NULL DEFAULT '',
    last_failure text NOT NULL DEFAULT ''
);

CREATE TABLE upstream_health_minutes (
    rule_id bigint NOT NULL REFERENCES cache_rules(id) ON DELETE CASCADE,
    minute timestamptz NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    errors bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, minute)
);
