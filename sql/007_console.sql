-- 007: admin console sessions (server-side, so signing out works on every node)
-- and per-repository pull counts for the console's overview.
CREATE TABLE console_sessions (
    id_hash       bytea PRIMARY KEY,          -- SHA-256 of the cookie value
    principal_id  bigint NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    csrf          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions(expires_at);

ALTER TABLE repositories ADD COLUMN pulls bigint NOT NULL DEFAULT 0;
