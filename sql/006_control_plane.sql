-- 006: what the ECR-compatible control plane stores beyond the registry itself.
ALTER TABLE repositories ADD COLUMN image_tag_mutability text NOT NULL DEFAULT 'MUTABLE'
    CHECK (image_tag_mutability IN ('MUTABLE', 'IMMUTABLE'));
ALTER TABLE repositories ADD COLUMN scan_on_push boolean NOT NULL DEFAULT false;
ALTER TABLE repositories ADD COLUMN encryption_type text NOT NULL DEFAULT 'AES256'
    CHECK (encryption_type IN ('AES256', 'KMS', 'KMS_DSSE'));
ALTER TABLE repositories ADD COLUMN kms_key text;
ALTER TABLE manifests ADD COLUMN last_pulled_at timestamptz;

-- Tags on resources (ECR TagResource), by ARN.
CREATE TABLE resource_tags (
    resource_arn  text COLLATE "C" NOT NULL,
    key           text NOT NULL,
    value         text NOT NULL,
    PRIMARY KEY (resource_arn, key)
);

-- Repository creation templates (applied when the cache or a push creates a repository).
CREATE TABLE creation_templates (
    prefix                text COLLATE "C" PRIMARY KEY,   -- 'ROOT' or a name prefix
    description           text,
    encryption_type       text NOT NULL DEFAULT 'AES256',
    kms_key               text,
    resource_tags         jsonb NOT NULL DEFAULT '[]',
    image_tag_mutability  text NOT NULL DEFAULT 'MUTABLE',
    repository_policy     text,
    lifecycle_policy      text,
    applied_for           text[] NOT NULL,
    custom_role_arn       text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Secrets Manager subset (ecr-pullthroughcache/... credentials), values sealed.
CREATE TABLE secrets (
    name        text COLLATE "C" PRIMARY KEY,
    arn         text COLLATE "C" NOT NULL UNIQUE,
    description text,
    value_enc   bytea,
    version_id  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
