-- 020: where the tags of cache repositories pointed over time. A row is
-- written when a pull-through import stores a tag whose digest differs from
-- the one cached (the first import too: previous is NULL), and when the
-- console evicts a tag (digest NULL). The last 100 rows per tag are kept; the
-- rows go with their repository.
CREATE TABLE tag_history (
    id            bigserial PRIMARY KEY,
    repository_id bigint NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag           text COLLATE "C" NOT NULL,
    digest        text COLLATE "C",
    previous      text COLLATE "C",
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tag_history_tag ON tag_history (repository_id, tag, id);
