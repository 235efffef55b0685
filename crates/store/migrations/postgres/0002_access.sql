-- Access: per-prompt access rules, users, API tokens, the audit log and its retention checkpoints
-- (PostgreSQL dialect). Same conventions as 0001, except audit times (see audit_log).

-- The per-prompt rules (`PromptAccess` as JSON: owner_only, allowed_roles,
-- restricted_deployments, grants). Absent keys mean the defaults, so existing prompts get `{}`.
ALTER TABLE prompts ADD COLUMN access JSONB NOT NULL DEFAULT '{}';

CREATE TABLE users (
    id                 UUID        NOT NULL PRIMARY KEY,
    email              TEXT,
    external_user_id   TEXT,
    did                TEXT,
    at_protocol_handle TEXT,
    first_name         TEXT,
    last_name          TEXT,
    roles              TEXT[]      NOT NULL DEFAULT '{}',
    permissions        TEXT[]      NOT NULL DEFAULT '{}',
    data               JSONB       NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

-- Exact match; normalising emails (case) is the caller's business.
CREATE UNIQUE INDEX users_email_key ON users (email) WHERE email IS NOT NULL;

-- Opaque credentials: only the SHA-256 of the secret is kept.
CREATE TABLE api_tokens (
    id           UUID        NOT NULL PRIMARY KEY,
    name         TEXT        NOT NULL,
    -- Looked up on every authenticated request: the UNIQUE constraint is its index.
    token_hash   TEXT        NOT NULL UNIQUE,
    token_prefix TEXT        NOT NULL,
    role         TEXT        NOT NULL CHECK (role IN ('admin', 'user', 'agent')),
    user_id      UUID        REFERENCES users (id) ON DELETE CASCADE,
    agent_id     TEXT,
    -- JSON arrays, or NULL for "no restriction".
    scopes       JSONB,
    prompt_names JSONB,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    -- No foreign key: the record of who made a token outlives that user.
    created_by   UUID,
    last_used_at TIMESTAMPTZ
);

-- The cascade from users looks tokens up by user.
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- The append-only, hash-chained audit log. No foreign keys: the log outlives the prompts and
-- users it names. `at_ns` is Unix nanoseconds, exactly the value `entry_hash` covers
-- (TIMESTAMPTZ keeps microseconds, which would change the hash); `detail` is the JSON text as
-- written (JSONB would normalise numbers such as -0.0, which would also change the hash).
-- `action` uses the "C" collation so a prefix LIKE can use its index.
CREATE TABLE audit_log (
    seq            BIGINT      NOT NULL PRIMARY KEY,
    id             UUID        NOT NULL,
    at_ns          BIGINT      NOT NULL,
    actor_kind     TEXT        NOT NULL,
    actor_id       TEXT,
    actor_role     TEXT        CHECK (actor_role IN ('admin', 'user', 'agent')),
    action         TEXT        COLLATE "C" NOT NULL,
    outcome        TEXT        NOT NULL CHECK (outcome IN ('ok', 'denied', 'failed')),
    prompt_id      UUID,
    prompt_name    TEXT,
    prompt_scope   TEXT        CHECK (prompt_scope IN ('global', 'agent', 'user')),
    classification TEXT
        CHECK (classification IN ('public', 'internal', 'confidential', 'restricted')),
    before_hash    TEXT,
    after_hash     TEXT,
    detail         TEXT        NOT NULL,
    source         TEXT,
    request_id     TEXT,
    prev_hash      TEXT        NOT NULL,
    hash           TEXT        NOT NULL
);

-- The list filters, each in seq order.
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, seq);
CREATE INDEX audit_log_prompt_idx ON audit_log (prompt_id, seq);
CREATE INDEX audit_log_action_idx ON audit_log (action, seq);
CREATE INDEX audit_log_at_idx ON audit_log (at_ns);

-- Retention: entries up to `up_to_seq` were purged; `up_to_hash` was that entry's hash, so the
-- first remaining entry still chains. `at_ns` is Unix nanoseconds (the signature covers them).
CREATE TABLE audit_checkpoints (
    up_to_seq  BIGINT NOT NULL PRIMARY KEY,
    up_to_hash TEXT   NOT NULL,
    purged     BIGINT NOT NULL,
    at_ns      BIGINT NOT NULL,
    signature  TEXT   NOT NULL
);
