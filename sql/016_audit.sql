-- 016: the audit trail. One row per recorded event (control-plane calls,
-- sign-ins, denials, pull-through imports, deletes, policy changes); the same
-- event also goes, as a JSON line, to the node's audit_log file when one is
-- configured. Rows older than audit_retention_days are pruned by
-- housekeeping. Nothing here is a secret: callers record names, ARNs, access
-- key ids and error codes, never passwords, tokens or secret values.
CREATE TABLE audit_events (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    request_id text NOT NULL DEFAULT '',
    principal text NOT NULL DEFAULT '',
    access_key_id text NOT NULL DEFAULT '',
    source_address text NOT NULL DEFAULT '',
    action text NOT NULL,
    repository text COLLATE "C" NOT NULL DEFAULT '',
    resource text NOT NULL DEFAULT '',
    target text NOT NULL DEFAULT '',
    result text NOT NULL DEFAULT 'success'
);
CREATE INDEX audit_events_created ON audit_events (created_at);
CREATE INDEX audit_events_principal ON audit_events (principal, created_at);
CREATE INDEX audit_events_repository ON audit_events (repository, created_at) WHERE repository <> '';
CREATE INDEX audit_events_action ON audit_events (action, created_at);
