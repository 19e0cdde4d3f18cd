-- 014: what the control plane needs to answer as ECR does.

-- ECR's tag mutability modes with exclusions: IMMUTABLE_WITH_EXCLUSION (tags
-- matching a filter stay mutable) and MUTABLE_WITH_EXCLUSION (tags matching a
-- filter are immutable). The filters are ECR's WILDCARD values ('*' matches
-- any run of characters). A node of the previous release treats the two new
-- modes as MUTABLE while nodes are upgraded one by one.
ALTER TABLE repositories DROP CONSTRAINT IF EXISTS repositories_image_tag_mutability_check;
ALTER TABLE repositories ADD CONSTRAINT repositories_image_tag_mutability_check
    CHECK (image_tag_mutability IN ('MUTABLE', 'IMMUTABLE', 'IMMUTABLE_WITH_EXCLUSION',
                                    'MUTABLE_WITH_EXCLUSION'));
ALTER TABLE repositories ADD COLUMN image_tag_mutability_exclusions text[] NOT NULL DEFAULT '{}';
ALTER TABLE creation_templates ADD COLUMN image_tag_mutability_exclusions text[] NOT NULL DEFAULT '{}';

-- upstreamRegistryUrl exactly as the caller wrote it (upstream_url keeps the
-- normalized URL Pier connects to). Rules made before were almost always
-- written without a scheme, as ECR documents them. NULL (a rule a node of the
-- previous release creates during an upgrade) reads the same way.
ALTER TABLE cache_rules ADD COLUMN upstream_url_given text;
UPDATE cache_rules SET upstream_url_given = regexp_replace(upstream_url, '^https://', '');
