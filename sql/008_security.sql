-- 008: what the security review asked the schema for.

-- The size each manifest declares for what it references: a pull-through
-- download of a blob may not exceed (nor differ from) it.
ALTER TABLE manifest_references ADD COLUMN size bigint;

-- Referrers lists fetched from upstreams belong to a repository: they go
-- with it, and housekeeping drops the ones nobody refreshed for a week.
DROP TABLE cache_referrers;
CREATE TABLE cache_referrers (
    repository_id bigint NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    subject       text COLLATE "C" NOT NULL,
    manifests     jsonb NOT NULL,
    fetched_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, subject)
);
CREATE INDEX cache_referrers_by_age ON cache_referrers(fetched_at);

-- Failed logins per access key id and client address: repeated failures
-- wait (backoff) before their credentials are even checked.
CREATE TABLE login_failures (
    key_id         text COLLATE "C" NOT NULL,
    address        text NOT NULL,
    failures       integer NOT NULL DEFAULT 0,
    blocked_until  timestamptz,
    last_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, address)
);
CREATE INDEX login_failures_by_age ON login_failures(last_at);

-- A console session remembers the access key it was opened with: deleting
-- the key ends the session, deactivating it refuses the session.
ALTER TABLE console_sessions ADD COLUMN key_id text COLLATE "C"
    REFERENCES access_keys(id) ON DELETE CASCADE;

-- Attaching a secret to a pull-through cache rule sends it to that rule's
-- upstream, so it now needs secretsmanager:GetSecretValue on the secret.
-- Administrators created with the built-in policy keep what they could do.
UPDATE identity_policies
   SET document = '{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":["ecr:*","secretsmanager:*"],"Resource":"*"}]}',
       updated_at = now()
 WHERE name = 'AdministratorAccess'
   AND document = '{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":"ecr:*","Resource":"*"}]}';
