-- Runs, their feedback and per-version usage (SQLite dialect).
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
    id               BLOB    NOT NULL PRIMARY KEY,
    prompt_id        BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version_number   INTEGER NOT NULL,
    params           TEXT    NOT NULL,
    rendered         TEXT    NOT NULL,
    key_id           TEXT,
    nonce            BLOB,
    ciphertext       BLOB,
    sender           TEXT,
    session_id       TEXT,
    request_id       TEXT,
    agent_id         TEXT,
    deployment_model TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    feedback_success INTEGER,
    feedback_score   REAL,
    feedback_comment TEXT,
    feedback_at      TEXT,
    CHECK (
        (key_id IS NULL AND nonce IS NULL AND ciphertext IS NULL)
        OR (key_id IS NOT NULL AND nonce IS NOT NULL AND ciphertext IS NOT NULL
            AND params = 'null' AND rendered = 'null')
    )
) STRICT;

CREATE INDEX runs_by_version ON runs (prompt_id, version_number, created_at);

CREATE TABLE version_usage (
    prompt_id      BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version_number INTEGER NOT NULL,
    times_used     INTEGER NOT NULL DEFAULT 0,
    last_used      TEXT,
    outcomes       INTEGER NOT NULL DEFAULT 0,
    successes      INTEGER NOT NULL DEFAULT 0,
    scored         INTEGER NOT NULL DEFAULT 0,
    score_sum      REAL    NOT NULL DEFAULT 0,
    PRIMARY KEY (prompt_id, version_number)
) STRICT;
