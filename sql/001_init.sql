-- 001: the registry's metadata. Blob bytes live on the shared blob root;
-- a row that names a blob is written only after the file was published.

CREATE TABLE repositories (
    id          bigserial PRIMARY KEY,
    name        text COLLATE "C" NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
    kind        text NOT NULL DEFAULT 'push' CHECK (kind IN ('push', 'cache')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per published file under blobs/<algorithm>/<2 hex>/<hex>.
CREATE TABLE blobs (
    digest      text COLLATE "C" PRIMARY KEY,
    size        bigint NOT NULL CHECK (size >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Which repositories may serve which blobs (pushed, mounted or cached there).
CREATE TABLE repository_blobs (
    repository_id bigint NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        text COLLATE "C" NOT NULL REFERENCES blobs(digest),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

CREATE TABLE manifests (
    repository_id  bigint NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         text COLLATE "C" NOT NULL,
    media_type     text NOT NULL,
    artifact_type  text,
    subject        text COLLATE "C",
    annotations    jsonb,
    size           bigint NOT NULL,
    body           bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;

-- What a manifest references: its config and layers (blobs) or, for an index,
-- its child manifests. Used for validation history, referrers and garbage collection.
CREATE TABLE manifest_references (
    repository_id bigint NOT NULL,
    manifest      text COLLATE "C" NOT NULL,
    child         text COLLATE "C" NOT NULL,
    child_kind    text NOT NULL CHECK (child_kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository_id, manifest, child),
    FOREIGN KEY (repository_id, manifest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_by_child ON manifest_references(child);

CREATE TABLE tags (
    repository_id bigint NOT NULL,
    name          text COLLATE "C" NOT NULL,
    digest        text COLLATE "C" NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
);

-- Upload sessions. The repository is named, not referenced, so that an upload
-- that never completes leaves no repository behind. hash_state lets any node
-- continue the running SHA-256 where the previous chunk stopped.
CREATE TABLE uploads (
    id          uuid PRIMARY KEY,
    repository  text COLLATE "C" NOT NULL,
    size        bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    hash_state  bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_by_age ON uploads(updated_at);
