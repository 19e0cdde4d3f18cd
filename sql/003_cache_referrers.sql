-- 003: referrers lists fetched from upstreams for cache repositories, kept and
-- refreshed like tags (the rule's refresh interval).
CREATE TABLE cache_referrers (
    repository  text COLLATE "C" NOT NULL,
    subject     text COLLATE "C" NOT NULL,
    manifests   jsonb NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository, subject)
);
