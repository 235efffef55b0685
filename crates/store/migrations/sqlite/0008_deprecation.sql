-- Deprecation, archive, retention and periodic review (SQLite dialect).
--
-- On a version: when it last became approved (`approved_at`), its deprecation (`deprecated_at`,
-- `sunset_at`: served until then, gone after; the replacement prompt by id and by the name it
-- had then, since names do not change and the replacement may later be deleted), when it was
-- archived, and when retention purged it (`purged_at`: content is then JSON null, config `{}`,
-- schema, notes and findings dropped; number, semver, diff_hash, author, status and times stay).
-- Times are RFC 3339 text, like every other time in this dialect.

ALTER TABLE prompt_versions ADD COLUMN approved_at TEXT;
ALTER TABLE prompt_versions ADD COLUMN deprecated_at TEXT;
ALTER TABLE prompt_versions ADD COLUMN sunset_at TEXT;
ALTER TABLE prompt_versions ADD COLUMN replacement_prompt_id BLOB;
ALTER TABLE prompt_versions ADD COLUMN replacement_name TEXT;
ALTER TABLE prompt_versions ADD COLUMN archived_at TEXT;
ALTER TABLE prompt_versions ADD COLUMN purged_at TEXT;

-- Retention looks for archived versions not yet purged, oldest first.
CREATE INDEX prompt_versions_archived_idx ON prompt_versions (archived_at)
    WHERE archived_at IS NOT NULL AND purged_at IS NULL;

-- The last explicit review attestation of a prompt (approvals count too; see the versions).
ALTER TABLE prompts ADD COLUMN last_reviewed_at TEXT;

-- Prompts of this type need a review every N days (NULL: the classification's setting).
ALTER TABLE prompt_types ADD COLUMN review_every_days INTEGER
    CHECK (review_every_days IS NULL OR review_every_days > 0);
