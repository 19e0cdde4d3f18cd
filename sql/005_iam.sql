-- 005: identities and policies.
CREATE TABLE principals (
    id          bigserial PRIMARY KEY,
    name        text COLLATE "C" NOT NULL UNIQUE,
    arn         text COLLATE "C" NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Secrets: a slow salted hash for password-style logins, and a sealed copy
-- (server key) because request signatures (SigV4) need the secret itself.
CREATE TABLE access_keys (
    id            text COLLATE "C" PRIMARY KEY,
    principal_id  bigint NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    secret_hash   bytea NOT NULL,
    salt          bytea NOT NULL,
    iterations    integer NOT NULL,
    secret_enc    bytea NOT NULL,
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX access_keys_by_principal ON access_keys(principal_id);

CREATE TABLE identity_policies (
    principal_id  bigint NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    name          text NOT NULL,
    document      text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal_id, name)
);

-- At most one registry policy (ECR: PutRegistryPolicy).
CREATE TABLE registry_policy (
    id          integer PRIMARY KEY CHECK (id = 1),
    document    text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repository_policies (
    repository_id  bigint PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    document       text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
