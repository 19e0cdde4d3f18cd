-- 021: mirror mode. A rule may declare which registries it mirrors
-- (containerd sends /v2/<name>/...?ns=<registry>, and such a request is
-- served by the rule that mirrors <registry>); one registry belongs to at
-- most one rule (the primary key), and at most one rule is the registry-wide
-- default mirror (unprefixed requests without ns, as dockerd sends them).
CREATE TABLE cache_rule_mirrors (
    registry text COLLATE "C" PRIMARY KEY,
    rule_id bigint NOT NULL REFERENCES cache_rules(id) ON DELETE CASCADE,
    position int NOT NULL DEFAULT 0
);
CREATE INDEX cache_rule_mirrors_rule ON cache_rule_mirrors (rule_id);
ALTER TABLE cache_rules ADD COLUMN default_mirror boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX cache_rules_one_default_mirror ON cache_rules ((true)) WHERE default_mirror;
