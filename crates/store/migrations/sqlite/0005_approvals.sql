-- Approval workflows (SQLite dialect).
--
-- `prompt_types.approval_workflow`: the JSON of a workflow (`{"steps": [{"roles": [...],
-- "count": n}]}`) overriding the classification's for prompts of this type; NULL: none.
-- `prompt_versions.review_round`: incremented each time the version enters review, so the
-- approvals of an earlier round (before a rejection or a withdrawal) never count again.
-- `version_approvals`: every approval and rejection, kept with the version (who, which round,
-- which step, why, when). One approval per approver per round (the partial unique index).

ALTER TABLE prompt_types ADD COLUMN approval_workflow TEXT;
ALTER TABLE prompt_versions ADD COLUMN review_round INTEGER NOT NULL DEFAULT 0;

CREATE TABLE version_approvals (
    id             BLOB    NOT NULL PRIMARY KEY,
    prompt_id      BLOB    NOT NULL,
    version_number INTEGER NOT NULL,
    round          INTEGER NOT NULL,
    step           INTEGER NOT NULL CHECK (step >= 0),
    -- The user id, `token:<id>`, or `operator` (the CLI on the local database).
    approver_id    TEXT    NOT NULL,
    approver_role  TEXT    NOT NULL CHECK (approver_role IN ('admin', 'user', 'agent')),
    decision       TEXT    NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment        TEXT,
    at             TEXT    NOT NULL,
    FOREIGN KEY (prompt_id, version_number)
        REFERENCES prompt_versions (prompt_id, version_number) ON DELETE CASCADE
) STRICT;

CREATE UNIQUE INDEX version_approvals_once_per_round_idx
    ON version_approvals (prompt_id, version_number, round, approver_id)
    WHERE decision = 'approve';
CREATE INDEX version_approvals_version_idx
    ON version_approvals (prompt_id, version_number, round);
-- The review queue reads the versions in review.
CREATE INDEX prompt_versions_in_review_idx
    ON prompt_versions (prompt_id, version_number) WHERE status = 'review';
