-- 012: a pull-through cache within a byte budget.
-- A rule's budget: the bytes its cache repositories may hold on the blob root
-- (NULL: no budget). Enforcement expires the least recently pulled images.
ALTER TABLE cache_rules ADD COLUMN max_bytes bigint CHECK (max_bytes > 0);
-- What enforcement did per rule: images expired, bytes it removed from the
-- blob root, and when it last expired one of the rule's images.
ALTER TABLE cache_stats ADD COLUMN budget_expired bigint NOT NULL DEFAULT 0;
ALTER TABLE cache_stats ADD COLUMN budget_reclaimed_bytes bigint NOT NULL DEFAULT 0;
ALTER TABLE cache_stats ADD COLUMN budget_last_expired_at timestamptz;
