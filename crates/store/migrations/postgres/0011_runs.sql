-- Runs, their feedback and per-version usage (PostgreSQL dialect).
--
-- `runs`: one row per use of a version (render, resolve with params). `params` and `rendered`
-- are JSON; for a confidential or restricted prompt they are sealed together with the key ring
-- (the run id as associated data): both columns hold 'null' and `key_id`, `nonce`, `ciphertext`
-- the seal. The feedback (outcome) lives on the run's row: `feedback_at` is NULL until the first
-- feedback. Deleting a prompt deletes its runs and usage.
--
-- `version_usage`: the aggregates `GET …/metrics` reads, one row per used version, updated in
-- the same transaction as the runs (insert) and the feedback (upsert) that change them.

CREATE TABLE runs (
    id               UUID        NOT NULL PRIMARY KEY,
    prompt_id        UUID        NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version_number   BIGINT      NOT NULL,
    params           JSONB       NOT NULL,
    rendered         JSONB       NOT NULL,
    key_id           TEXT,
    nonce            BYTEA,
    ciphertext       BYTEA,
    sender           TEXT,
    session_id       TEXT,
    request_id       TEXT,
    agent_id         TEXT,
    deployment_model TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    feedback_success BOOLEAN,
    feedback_score   DOUBLE PRECISION,
    feedback_comment TEXT,
    feedback_at      TIMESTAMPTZ,
    CHECK (
        (key_id IS NULL AND nonce IS NULL AND ciphertext IS NULL)
        OR (key_id IS NOT NULL AND nonce IS NOT NULL AND ciphertext IS NOT NULL
            AND params = 'null'::jsonb AND rendered = 'null'::jsonb)
    )
);

CREATE INDEX runs_by_version ON runs (prompt_id, version_number, created_at);

CREATE TABLE version_usage (
    prompt_id      UUID             NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version_number BIGINT           NOT NULL,
    times_used     BIGINT           NOT NULL DEFAULT 0,
    last_used      TIMESTAMPTZ,
    outcomes       BIGINT           NOT NULL DEFAULT 0,
    successes      BIGINT           NOT NULL DEFAULT 0,
    scored         BIGINT           NOT NULL DEFAULT 0,
    score_sum      DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (prompt_id, version_number)
);
