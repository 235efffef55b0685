-- promptvault schema, SQLite dialect.
--
-- Conventions: ids are UUIDs stored as 16-byte BLOBs; times are TEXT in RFC 3339 UTC with exactly
-- six fractional digits (`2026-01-02T03:04:05.123456Z`), so text order is time order; JSON
-- (version content, config, parameter schema, prompt-type schema, tags) is TEXT. Tables are
-- STRICT so a wrong type is an error instead of a silent conversion. Never edit an applied
-- migration (sqlx checksums it): add a new file instead.

CREATE TABLE prompt_types (
    key                 TEXT    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL,
    schema              TEXT,
    restricted_creation INTEGER NOT NULL DEFAULT 0 CHECK (restricted_creation IN (0, 1)),
    requires_approval   INTEGER NOT NULL DEFAULT 0 CHECK (requires_approval IN (0, 1)),
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
) STRICT;

CREATE TABLE prompts (
    id                        BLOB    NOT NULL PRIMARY KEY,
    -- BINARY collation: case-sensitive, byte order (the same order PostgreSQL's "C" gives).
    name                      TEXT    NOT NULL UNIQUE,
    title                     TEXT,
    description               TEXT,
    long_description_markdown TEXT,
    scope                     TEXT    NOT NULL CHECK (scope IN ('global', 'agent', 'user')),
    agent_id                  TEXT,
    owner_id                  BLOB,
    creator_id                BLOB,
    -- A type in use cannot be deleted (no ON DELETE action = restrict at statement end).
    prompt_type               TEXT    REFERENCES prompt_types (key),
    kind                      TEXT    NOT NULL CHECK (kind IN ('text', 'chat')),
    -- A JSON array of strings.
    tags                      TEXT    NOT NULL DEFAULT '[]',
    source                    TEXT    NOT NULL,
    classification            TEXT    NOT NULL
        CHECK (classification IN ('public', 'internal', 'confidential', 'restricted')),
    status                    TEXT    NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'deprecated', 'archived')),
    -- Bumped on every change to the prompt (metadata, a new version, a label move).
    revision                  INTEGER NOT NULL DEFAULT 1,
    created_at                TEXT    NOT NULL,
    updated_at                TEXT    NOT NULL
) STRICT;

CREATE INDEX prompts_scope_name_idx ON prompts (scope, name);
CREATE INDEX prompts_owner_name_idx ON prompts (owner_id, name);
CREATE INDEX prompts_status_name_idx ON prompts (status, name);
CREATE INDEX prompts_type_idx ON prompts (prompt_type);

CREATE TABLE prompt_versions (
    id               BLOB    NOT NULL PRIMARY KEY,
    prompt_id        BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version_number   INTEGER NOT NULL CHECK (version_number >= 1),
    semver           TEXT    NOT NULL,
    -- JSON: a string (text prompts) or a list of chat entries.
    content          TEXT    NOT NULL,
    -- JSON object.
    config           TEXT    NOT NULL,
    -- JSON Schema, or NULL.
    parameter_schema TEXT,
    diff_hash        TEXT    NOT NULL,
    notes            TEXT,
    author_id        BLOB,
    status           TEXT    NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'review', 'approved', 'deprecated', 'archived')),
    created_at       TEXT    NOT NULL,
    UNIQUE (prompt_id, version_number)
) STRICT;

-- Movable pointers, including the system-kept `latest`.
CREATE TABLE labels (
    prompt_id      BLOB    NOT NULL,
    name           TEXT    NOT NULL,
    version_number INTEGER NOT NULL,
    updated_at     TEXT    NOT NULL,
    PRIMARY KEY (prompt_id, name),
    FOREIGN KEY (prompt_id, version_number)
        REFERENCES prompt_versions (prompt_id, version_number) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The `label` list filter: prompts carrying a given label.
CREATE INDEX labels_name_prompt_idx ON labels (name, prompt_id);

-- Every caller-made label move, oldest first by id (`latest` moves are not recorded).
CREATE TABLE label_history (
    id           INTEGER NOT NULL PRIMARY KEY,
    prompt_id    BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    label        TEXT    NOT NULL,
    from_version INTEGER,
    to_version   INTEGER,
    actor_id     BLOB,
    at           TEXT    NOT NULL
) STRICT;

CREATE INDEX label_history_prompt_label_idx ON label_history (prompt_id, label, id);

CREATE TABLE links (
    id         BLOB    NOT NULL PRIMARY KEY,
    prompt_id  BLOB    NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    capability TEXT    NOT NULL,
    -- NULL: the link applies to every agent.
    agent_id   TEXT,
    -- Makes "no agent" a value, so a global link is unique per (prompt, capability) too.
    -- Agent ids start with a letter or digit, so '' never collides with a real one.
    agent_key  TEXT    GENERATED ALWAYS AS (coalesce(agent_id, '')) VIRTUAL,
    priority   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL
) STRICT;

CREATE UNIQUE INDEX links_prompt_capability_agent_key ON links (prompt_id, capability, agent_key);
CREATE INDEX links_capability_agent_idx ON links (capability, agent_id);
