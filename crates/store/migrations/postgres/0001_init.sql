-- promptvault schema, PostgreSQL dialect (15+).
--
-- Conventions: UUID ids (v7, made by the application), TIMESTAMPTZ times (written by the
-- application, microsecond precision), JSONB for version content, config, parameter schema and
-- prompt-type schema, text[] for tags. Names use the "C" collation so ordering, keyset paging and
-- prefix matches are byte-wise and identical to SQLite's. Never edit an applied migration (sqlx
-- checksums it): add a new file instead.

CREATE TABLE prompt_types (
    key                 TEXT        NOT NULL PRIMARY KEY,
    name                TEXT        NOT NULL,
    schema              JSONB,
    restricted_creation BOOLEAN     NOT NULL DEFAULT FALSE,
    requires_approval   BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE prompts (
    id                        UUID        NOT NULL PRIMARY KEY,
    name                      TEXT        COLLATE "C" NOT NULL UNIQUE,
    title                     TEXT,
    description               TEXT,
    long_description_markdown TEXT,
    scope                     TEXT        NOT NULL CHECK (scope IN ('global', 'agent', 'user')),
    agent_id                  TEXT,
    owner_id                  UUID,
    creator_id                UUID,
    -- A type in use cannot be deleted (NO ACTION).
    prompt_type               TEXT        REFERENCES prompt_types (key),
    kind                      TEXT        NOT NULL CHECK (kind IN ('text', 'chat')),
    tags                      TEXT[]      NOT NULL DEFAULT '{}',
    source                    TEXT        NOT NULL,
    classification            TEXT        NOT NULL
        CHECK (classification IN ('public', 'internal', 'confidential', 'restricted')),
    status                    TEXT        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'deprecated', 'archived')),
    -- Bumped on every change to the prompt (metadata, a new version, a label move).
    revision                  BIGINT      NOT NULL DEFAULT 1,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);

CREATE INDEX prompts_scope_name_idx ON prompts (scope, name);
CREATE INDEX prompts_owner_name_idx ON prompts (owner_id, name);
CREATE INDEX prompts_status_name_idx ON prompts (status, name);
CREATE INDEX prompts_type_idx ON prompts (prompt_type);
CREATE INDEX prompts_tags_idx ON prompts USING GIN (tags);

CREATE TABLE prompt_versions (
    id               UUID        NOT NULL PRIMARY KEY,
    prompt_id        UUID        NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version_number   BIGINT      NOT NULL CHECK (version_number >= 1),
    semver           TEXT        NOT NULL,
    -- A JSON string (text prompts) or a list of chat entries.
    content          JSONB       NOT NULL,
    config           JSONB       NOT NULL,
    parameter_schema JSONB,
    diff_hash        TEXT        NOT NULL,
    notes            TEXT,
    author_id        UUID,
    status           TEXT        NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'review', 'approved', 'deprecated', 'archived')),
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (prompt_id, version_number)
);

-- Movable pointers, including the system-kept `latest`.
CREATE TABLE labels (
    prompt_id      UUID        NOT NULL,
    name           TEXT        NOT NULL,
    version_number BIGINT      NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (prompt_id, name),
    FOREIGN KEY (prompt_id, version_number)
        REFERENCES prompt_versions (prompt_id, version_number) ON DELETE CASCADE
);

-- The `label` list filter: prompts carrying a given label.
CREATE INDEX labels_name_prompt_idx ON labels (name, prompt_id);
-- The cascade from prompt_versions looks labels up by (prompt_id, version_number).
CREATE INDEX labels_prompt_version_idx ON labels (prompt_id, version_number);

-- Every caller-made label move, oldest first by id (`latest` moves are not recorded).
CREATE TABLE label_history (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prompt_id    UUID        NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    label        TEXT        NOT NULL,
    from_version BIGINT,
    to_version   BIGINT,
    actor_id     UUID,
    at           TIMESTAMPTZ NOT NULL
);

CREATE INDEX label_history_prompt_label_idx ON label_history (prompt_id, label, id);

CREATE TABLE links (
    id         UUID        NOT NULL PRIMARY KEY,
    prompt_id  UUID        NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    capability TEXT        NOT NULL,
    -- NULL: the link applies to every agent.
    agent_id   TEXT,
    -- Makes "no agent" a value, so a global link is unique per (prompt, capability) too.
    -- Agent ids start with a letter or digit, so '' never collides with a real one.
    agent_key  TEXT        GENERATED ALWAYS AS (COALESCE(agent_id, '')) STORED,
    priority   INTEGER     NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX links_prompt_capability_agent_key ON links (prompt_id, capability, agent_key);
CREATE INDEX links_capability_agent_idx ON links (capability, agent_id);
