-- 002: the pull-through cache. Rules map a local namespace to an upstream
-- registry; cache repositories remember their rule; tags remember when the
-- upstream was last asked; fetch leases make one node download each blob.

CREATE TABLE cache_rules (
    id                  bigserial PRIMARY KEY,
    prefix              text COLLATE "C" NOT NULL UNIQUE,  -- ecrRepositoryPrefix or 'ROOT'
    upstream_url        text NOT NULL,                     -- scheme://host[:port][/path]
    upstream_registry   text NOT NULL DEFAULT 'oci',       -- ecr-public, docker-hub, quay, ...
    upstream_prefix     text COLLATE "C" NOT NULL DEFAULT 'ROOT',
    credential_arn      text,
    custom_role_arn     text,
    username_enc        bytea,                             -- AES-256-GCM with the server key
    secret_enc          bytea,
    ca_bundle           text,                              -- PEM, or NULL for the system store
    refresh_seconds     integer NOT NULL DEFAULT 86400 CHECK (refresh_seconds >= 0),
    negative_seconds    integer NOT NULL DEFAULT 300 CHECK (negative_seconds >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_error          text,
    last_error_at       timestamptz
);

ALTER TABLE repositories ADD COLUMN rule_id bigint REFERENCES cache_rules(id) ON DELETE SET NULL;
ALTER TABLE repositories ADD COLUMN last_pull_at timestamptz;
ALTER TABLE tags ADD COLUMN checked_at timestamptz;   -- last time the upstream confirmed it

-- Upstream "not found" answers, remembered for the rule's negative_seconds.
CREATE TABLE cache_negative (
    repository  text COLLATE "C" NOT NULL,
    reference   text COLLATE "C" NOT NULL,
    until       timestamptz NOT NULL,
    PRIMARY KEY (repository, reference)
);

-- Upstream bearer tokens, shared by every worker on every node until they expire.
CREATE TABLE upstream_tokens (
    rule_id     bigint NOT NULL REFERENCES cache_rules(id) ON DELETE CASCADE,
    scope       text NOT NULL,
    token_enc   bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (rule_id, scope)
);

-- One download per key (a blob digest, or a repository's tag) cluster-wide.
-- The holder writes tmp_path and publishes how many bytes are durable in it,
-- so followers on any node read only what is really there (NFS).
CREATE TABLE fetch_leases (
    key          text COLLATE "C" PRIMARY KEY,
    holder       text NOT NULL,
    tmp_path     text,
    total_size   bigint,
    durable      bigint NOT NULL DEFAULT 0,
    state        text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'failed')),
    message      text,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Counters, added to by workers in small batches.
CREATE TABLE cache_stats (
    rule_id          bigint PRIMARY KEY REFERENCES cache_rules(id) ON DELETE CASCADE,
    hits             bigint NOT NULL DEFAULT 0,
    misses           bigint NOT NULL DEFAULT 0,
    stale            bigint NOT NULL DEFAULT 0,
    upstream_bytes   bigint NOT NULL DEFAULT 0,
    served_bytes     bigint NOT NULL DEFAULT 0,
    upstream_errors  bigint NOT NULL DEFAULT 0
);
