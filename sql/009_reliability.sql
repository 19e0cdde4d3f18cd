-- 009: failures are shared and told apart.
-- A failed download keeps its lease row until expires_at, with the error
-- class its followers answer with (so five clients of one broken blob cause
-- one download, and a bad digest is remembered like a negative cache entry).
ALTER TABLE fetch_leases ADD COLUMN error_code text;
-- Local storage failures (blob root full or unwritable) are counted apart
-- from upstream errors, and the last one is kept per rule like last_error.
ALTER TABLE cache_stats ADD COLUMN storage_errors bigint NOT NULL DEFAULT 0;
ALTER TABLE cache_rules ADD COLUMN last_storage_error text;
ALTER TABLE cache_rules ADD COLUMN last_storage_error_at timestamptz;
