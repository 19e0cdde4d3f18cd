-- 004: followers announce themselves, so a download nobody follows does not
-- pay for making its progress durable (fdatasync) every few megabytes.
ALTER TABLE fetch_leases ADD COLUMN followers integer NOT NULL DEFAULT 0;
