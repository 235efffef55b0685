-- Compliance findings and the token count of every version (PostgreSQL dialect), computed when
-- the version is created and written in the same transaction. `findings` is the JSON array of
-- findings (rule, severity, message, location; messages mask what they found, so it stays in
-- clear even for sealed versions). Versions created before this migration were never checked:
-- no findings, token count 0.

ALTER TABLE prompt_versions ADD COLUMN findings JSONB NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE prompt_versions ADD COLUMN token_count BIGINT NOT NULL DEFAULT 0;
