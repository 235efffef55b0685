//! The embedded store: SQLite through sqlx, one file (or one in-memory database).
//!
//! Concurrency model: every write goes through a pool of exactly one connection and starts with
//! `BEGIN IMMEDIATE`, so writers queue in the pool instead of racing for SQLite's write lock
//! (no `SQLITE_BUSY` between our own writers; `busy_timeout` covers other processes on the same
//! file). Reads use a separate pool of read-only (`query_only`) connections; WAL lets them run
//! alongside the writer, each read transaction seeing one committed snapshot. An in-memory
//! database cannot be shared across pools reliably, so `sqlite::memory:` uses the single writer
//! connection for everything.
//!
//! Storage formats: UUIDs are 16-byte BLOBs, times are RFC 3339 UTC text with six fractional
//! digits (text order = time order), JSON and tags are text.

use std::{collections::BTreeMap, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use promptvault_core::{
    access::VisibilityFilter,
    audit::{AuditEntry, Checkpoint, NewAuditEntry},
    compliance::Finding,
    crypto::KeyRing,
    deploy::{LabelTarget, Split, SplitEntry},
    ident::LabelName,
    model::{
        ApiToken, Classification, LabelAction, LabelEvent, Link, Prompt, PromptDetail, PromptType,
        PromptVersion, Role, User, VersionStatus,
    },
    retire::{self, Deprecation},
    runs::{Feedback, FeedbackDelta, Usage},
    testcase::TestCase,
    version::{VersionPlan, plan_version},
    workflow::{ApprovalWorkflow, ReviewDecision, ReviewRecord},
};
use sqlx::{
    QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    types::Json,
};
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};
use uuid::Uuid;

use crate::{
    ConnectOptions, Store,
    common::{
        self, ActionMatch, AuditRecord, PromptRecord, ReviewSubject, StoredContent, TokenRecord,
        UserRecord, VersionRecord, is_foreign_key_violation, is_unique_violation, label_of,
        name_taken, now, prompt_type_not_found, prompt_with_id, requested_labels, token_with_id,
        user_with_id, version_of,
    },
    error::{StoreError, StoreResult},
    redact_url,
    types::{
        AddedVersion, AuditQuery, LinkFilter, NewApiToken, NewLink, NewPrompt, NewPromptType,
        NewReview, NewRun, NewUser, NewVersion, PromptKey, PromptListItem, PromptPage, PromptPatch,
        PromptQuery, PromptTypePatch, PurgedVersion, ReviewOutcome, ReviewQueueItem, ReviewState,
        Run, RunHead, ServeCandidate, ServeSubject, UserPatch, VersionReviews, VersionSelector,
        VersionUsage, VersionUse,
    },
};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "access",
        include_str!("../migrations/sqlite/0002_access.sql"),
    ),
    (
        3,
        "encryption",
        include_str!("../migrations/sqlite/0003_encryption.sql"),
    ),
    (
        4,
        "compliance",
        include_str!("../migrations/sqlite/0004_compliance.sql"),
    ),
    (
        5,
        "approvals",
        include_str!("../migrations/sqlite/0005_approvals.sql"),
    ),
    (
        6,
        "label splits",
        include_str!("../migrations/sqlite/0006_label_splits.sql"),
    ),
    (
        7,
        "prompt tests",
        include_str!("../migrations/sqlite/0007_prompt_tests.sql"),
    ),
    (
        8,
        "deprecation",
        include_str!("../migrations/sqlite/0008_deprecation.sql"),
    ),
    (
        11,
        "runs",
        include_str!("../migrations/sqlite/0011_runs.sql"),
    ),
];
/// How long a connection waits for another process's lock on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const READER_CONNECTIONS: u32 = 4;

/// The SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: all writes, in `BEGIN IMMEDIATE` transactions.
    writer: SqlitePool,
    /// Read-only connections (the writer pool itself for an in-memory database).
    reader: SqlitePool,
    /// The keys for sealed content (confidential and restricted versions).
    keys: Option<Arc<KeyRing>>,
    /// An in-memory database: `reader` is the writer pool itself.
    in_memory: bool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database a `sqlite:` URL names and runs the migrations.
    /// No encryption keys (see [`SqliteStore::connect_with`]).
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// [`SqliteStore::connect`] with options (the encryption key ring).
    #[tracing::instrument(skip_all)]
    pub async fn connect_with(url: &str, options: ConnectOptions) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url).map_err(|error| {
            StoreError::Config(format!("invalid SQLite URL {:?}: {error}", redact_url(url)))
        })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let writer_options = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // One connection, never closed for idleness: an in-memory database lives only as long as
        // a connection to it does.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            // A local file does not drop connections; a ping per acquire would only cost time.
            .test_before_acquire(false)
            .connect_with(writer_options)
            .await
            .map_err(|error| {
                StoreError::Config(format!(
                    "cannot open SQLite database {:?}: {error}",
                    redact_url(url)
                ))
            })?;
        common::migrator(MIGRATIONS).run(&writer).await?;
        let reader = if in_memory {
            writer.clone()
        } else {
            let reader_options = base
                .foreign_keys(true)
                .busy_timeout(BUSY_TIMEOUT)
                .pragma("query_only", "ON");
            SqlitePoolOptions::new()
                .max_connections(READER_CONNECTIONS)
                .test_before_acquire(false)
                .connect_with(reader_options)
                .await?
        };
        Ok(SqliteStore {
            writer,
            reader,
            keys: options.keys,
            in_memory,
        })
    }

    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_deref()
    }
}

/// The review columns of `version_approvals a`, in the order [`decode_review`] reads them.
macro_rules! review_columns {
    () => {
        "a.round, a.step, a.approver_id, a.approver_role, a.decision, a.comment, a.at"
    };
}

/// The prompt columns, in the order [`decode_prompt`] reads them.
macro_rules! prompt_columns {
    () => {
        "p.id, p.name, p.title, p.description, p.long_description_markdown, p.scope, p.agent_id, \
         p.owner_id, p.creator_id, p.prompt_type, p.kind, p.tags, p.source, p.classification, \
         p.status, p.revision, p.created_at, p.updated_at, p.access"
    };
}
const PROMPT_COLUMNS: usize = 19;

/// [`prompt_columns`] unqualified, for `RETURNING` (SQLite does not accept the alias there).
macro_rules! returned_prompt_columns {
    () => {
        "id, name, title, description, long_description_markdown, scope, agent_id, owner_id, \
         creator_id, prompt_type, kind, tags, source, classification, status, revision, \
         created_at, updated_at, access"
    };
}

/// The version columns, in the order [`decode_version`] reads them.
macro_rules! version_columns {
    () => {
        "v.id, v.prompt_id, v.version_number, v.semver, v.content, v.config, v.parameter_schema, \
         v.diff_hash, v.notes, v.author_id, v.status, v.created_at, v.key_id, v.nonce, \
         v.ciphertext, v.findings, v.token_count, v.approved_at, v.deprecated_at, v.sunset_at, \
         v.replacement_prompt_id, v.replacement_name, v.archived_at, v.purged_at"
    };
}

macro_rules! label_event_columns {
    () => {
        "prompt_id, label, from_version, to_version, actor_id, at, action, split"
    };
}

macro_rules! prompt_type_columns {
    () => {
        "key, name, schema, restricted_creation, requires_approval, created_at, updated_at, \
         review_every_days, approval_workflow"
    };
}

macro_rules! link_columns {
    () => {
        "l.id, l.prompt_id, p.name, l.capability, l.agent_id, l.priority, l.created_at"
    };
}

/// The user columns, in the order [`decode_user`] reads them.
macro_rules! user_columns {
    () => {
        "id, email, external_user_id, did, at_protocol_handle, first_name, last_name, roles, \
         permissions, data, created_at, updated_at"
    };
}

/// The token columns, in the order [`decode_token`] reads them (never the hash).
macro_rules! token_columns {
    () => {
        "id, name, token_prefix, role, user_id, agent_id, scopes, prompt_names, expires_at, \
         revoked_at, created_at, created_by, last_used_at"
    };
}

/// The audit columns, in the order [`decode_audit`] reads them.
macro_rules! audit_columns {
    () => {
        "seq, id, at_ns, actor_kind, actor_id, actor_role, action, outcome, prompt_id, \
         prompt_name, prompt_scope, classification, before_hash, after_hash, detail, source, \
         request_id, prev_hash, hash"
    };
}

/// The per-request credential lookup (the UNIQUE constraint's index on `token_hash` serves it).
const FIND_TOKEN_BY_HASH: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM api_tokens WHERE token_hash = $1"
);

macro_rules! checkpoint_columns {
    () => {
        "up_to_seq, up_to_hash, purged, at_ns, signature"
    };
}

/// Formats a time as stored: UTC, six fractional digits, `Z`.
fn encode_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

fn decode_time(row: &SqliteRow, index: usize) -> StoreResult<OffsetDateTime> {
    let text: String = row.try_get(index)?;
    OffsetDateTime::parse(&text, &Rfc3339)
        .map_err(|error| StoreError::Corrupt(format!("time {text:?}: {error}")))
}

fn decode_prompt(row: &SqliteRow, at: usize) -> StoreResult<Prompt> {
    let Json(tags): Json<Vec<String>> = row.try_get(at + 11)?;
    PromptRecord {
        id: row.try_get(at)?,
        name: row.try_get(at + 1)?,
        title: row.try_get(at + 2)?,
        description: row.try_get(at + 3)?,
        long_description_markdown: row.try_get(at + 4)?,
        scope: row.try_get(at + 5)?,
        agent_id: row.try_get(at + 6)?,
        owner_id: row.try_get(at + 7)?,
        creator_id: row.try_get(at + 8)?,
        prompt_type: row.try_get(at + 9)?,
        kind: row.try_get(at + 10)?,
        tags,
        source: row.try_get(at + 12)?,
        classification: row.try_get(at + 13)?,
        status: row.try_get(at + 14)?,
        revision: row.try_get(at + 15)?,
        created_at: decode_time(row, at + 16)?,
        updated_at: decode_time(row, at + 17)?,
        access: row.try_get(at + 18)?,
    }
    .into_prompt()
}

/// Decodes the version columns starting at `at`; `None` when an outer join found no version.
fn decode_version(
    row: &SqliteRow,
    at: usize,
    keys: Option<&KeyRing>,
) -> StoreResult<Option<PromptVersion>> {
    let Some(id) = row.try_get::<Option<Uuid>, _>(at)? else {
        return Ok(None);
    };
    VersionRecord {
        id,
        prompt_id: row.try_get(at + 1)?,
        version_number: row.try_get(at + 2)?,
        semver: row.try_get(at + 3)?,
        content: row.try_get(at + 4)?,
        config: row.try_get(at + 5)?,
        parameter_schema: row.try_get(at + 6)?,
        diff_hash: row.try_get(at + 7)?,
        notes: row.try_get(at + 8)?,
        author_id: row.try_get(at + 9)?,
        status: row.try_get(at + 10)?,
        created_at: decode_time(row, at + 11)?,
        key_id: row.try_get(at + 12)?,
        nonce: row.try_get(at + 13)?,
        ciphertext: row.try_get(at + 14)?,
        findings: row.try_get::<Json<Vec<Finding>>, _>(at + 15)?.0,
        token_count: row.try_get(at + 16)?,
        approved_at: decode_optional_time(row, at + 17)?,
        deprecated_at: decode_optional_time(row, at + 18)?,
        sunset_at: decode_optional_time(row, at + 19)?,
        replacement_prompt_id: row.try_get(at + 20)?,
        replacement_name: row.try_get(at + 21)?,
        archived_at: decode_optional_time(row, at + 22)?,
        purged_at: decode_optional_time(row, at + 23)?,
    }
    .into_version(keys)
    .map(Some)
}

fn decode_label_event(row: &SqliteRow) -> StoreResult<LabelEvent> {
    Ok(LabelEvent {
        prompt_id: row.try_get(0)?,
        label: common::parse_label(&row.try_get::<String, _>(1)?)?,
        from_version: row.try_get(2)?,
        to_version: row.try_get(3)?,
        actor_id: row.try_get(4)?,
        at: decode_time(row, 5)?,
        action: common::parse_word("label_history.action", &row.try_get::<String, _>(6)?)?,
        split: common::decode_split(
            row.try_get::<Option<Json<Vec<SplitEntry>>>, _>(7)?
                .map(|json| json.0),
        )?,
    })
}

fn decode_prompt_type(row: &SqliteRow) -> StoreResult<PromptType> {
    Ok(PromptType {
        key: row.try_get(0)?,
        name: row.try_get(1)?,
        schema: row.try_get(2)?,
        restricted_creation: row.try_get(3)?,
        requires_approval: row.try_get(4)?,
        created_at: decode_time(row, 5)?,
        updated_at: decode_time(row, 6)?,
        review_every_days: common::review_days(row.try_get(7)?)?,
        approval_workflow: row
            .try_get::<Option<Json<ApprovalWorkflow>>, _>(8)?
            .map(|workflow| workflow.0),
    })
}

fn decode_link(row: &SqliteRow) -> StoreResult<Link> {
    let name: String = row.try_get(2)?;
    Ok(Link {
        id: row.try_get(0)?,
        prompt_id: row.try_get(1)?,
        prompt_name: promptvault_core::ident::PromptName::parse(&name)
            .map_err(|error| StoreError::Corrupt(format!("prompts.name: {error}")))?,
        capability: row.try_get(3)?,
        agent_id: row.try_get(4)?,
        priority: row.try_get(5)?,
        created_at: decode_time(row, 6)?,
    })
}

fn decode_optional_time(row: &SqliteRow, index: usize) -> StoreResult<Option<OffsetDateTime>> {
    let text: Option<String> = row.try_get(index)?;
    text.map(|text| {
        OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|error| StoreError::Corrupt(format!("time {text:?}: {error}")))
    })
    .transpose()
}

fn decode_user(row: &SqliteRow) -> StoreResult<User> {
    let Json(roles): Json<Vec<String>> = row.try_get(7)?;
    let Json(permissions): Json<Vec<String>> = row.try_get(8)?;
    UserRecord {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        external_user_id: row.try_get(2)?,
        did: row.try_get(3)?,
        at_protocol_handle: row.try_get(4)?,
        first_name: row.try_get(5)?,
        last_name: row.try_get(6)?,
        roles,
        permissions,
        data: row.try_get(9)?,
        created_at: decode_time(row, 10)?,
        updated_at: decode_time(row, 11)?,
    }
    .into_user()
}

fn decode_token(row: &SqliteRow) -> StoreResult<ApiToken> {
    let scopes: Option<Json<Vec<String>>> = row.try_get(6)?;
    let prompt_names: Option<Json<Vec<String>>> = row.try_get(7)?;
    TokenRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        token_prefix: row.try_get(2)?,
        role: row.try_get(3)?,
        user_id: row.try_get(4)?,
        agent_id: row.try_get(5)?,
        scopes: scopes.map(|Json(scopes)| scopes),
        prompt_names: prompt_names.map(|Json(names)| names),
        expires_at: decode_optional_time(row, 8)?,
        revoked_at: decode_optional_time(row, 9)?,
        created_at: decode_time(row, 10)?,
        created_by: row.try_get(11)?,
        last_used_at: decode_optional_time(row, 12)?,
    }
    .into_token()
}

fn decode_audit(row: &SqliteRow) -> StoreResult<AuditEntry> {
    AuditRecord {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        at_ns: row.try_get(2)?,
        actor_kind: row.try_get(3)?,
        actor_id: row.try_get(4)?,
        actor_role: row.try_get(5)?,
        action: row.try_get(6)?,
        outcome: row.try_get(7)?,
        prompt_id: row.try_get(8)?,
        prompt_name: row.try_get(9)?,
        prompt_scope: row.try_get(10)?,
        classification: row.try_get(11)?,
        before_hash: row.try_get(12)?,
        after_hash: row.try_get(13)?,
        detail: row.try_get(14)?,
        source: row.try_get(15)?,
        request_id: row.try_get(16)?,
        prev_hash: row.try_get(17)?,
        hash: row.try_get(18)?,
    }
    .into_entry()
}

fn decode_checkpoint(row: &SqliteRow) -> StoreResult<Checkpoint> {
    common::decode_checkpoint(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    )
}

async fn fetch_prompt(conn: &mut SqliteConnection, key: &PromptKey) -> StoreResult<Prompt> {
    let row = match key {
        PromptKey::Id(id) => {
            sqlx::query(concat!(
                "SELECT ",
                prompt_columns!(),
                " FROM prompts p WHERE p.id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        }
        PromptKey::Name(name) => {
            sqlx::query(concat!(
                "SELECT ",
                prompt_columns!(),
                " FROM prompts p WHERE p.name = $1"
            ))
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    match row {
        Some(row) => decode_prompt(&row, 0),
        None => Err(StoreError::not_found(key.to_string())),
    }
}

/// The name of the prompt with this id, or `NotFound`.
async fn prompt_name(conn: &mut SqliteConnection, prompt_id: Uuid) -> StoreResult<String> {
    sqlx::query_scalar("SELECT name FROM prompts WHERE id = $1")
        .bind(prompt_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))
}

/// Inserts a version whose content is stored as `stored` (clear or sealed).
async fn insert_version(
    conn: &mut SqliteConnection,
    version: &PromptVersion,
    stored: StoredContent,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO prompt_versions (id, prompt_id, version_number, semver, content, config, \
         parameter_schema, diff_hash, notes, author_id, status, created_at, key_id, nonce, \
         ciphertext, findings, token_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(version.id)
    .bind(version.prompt_id)
    .bind(version.version_number)
    .bind(version.semver.to_string())
    .bind(stored.content)
    .bind(&version.config)
    .bind(&version.parameter_schema)
    .bind(&version.diff_hash)
    .bind(&version.notes)
    .bind(version.author_id)
    .bind(version.status.as_str())
    .bind(encode_time(version.created_at))
    .bind(stored.key_id)
    .bind(stored.nonce)
    .bind(stored.ciphertext)
    .bind(Json(&version.findings))
    .bind(version.token_count)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Brings the stored form of every version of a prompt in line with its classification:
/// seals the clear ones of a confidential/restricted prompt, opens the sealed ones of any
/// other. Runs inside the caller's write transaction; returns how many rows changed.
async fn reseal_versions(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    classification: Classification,
    keys: Option<&KeyRing>,
) -> StoreResult<u64> {
    let mut changed = 0;
    if classification.is_sealed_at_rest() {
        let rows = sqlx::query(
            "SELECT id, content FROM prompt_versions WHERE prompt_id = $1 AND ciphertext IS NULL \
             AND purged_at IS NULL",
        )
        .bind(prompt_id)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let id: Uuid = row.try_get(0)?;
            let content: serde_json::Value = row.try_get(1)?;
            let sealed = StoredContent::sealed(common::seal_content(keys, id, &content)?);
            store_content(conn, id, sealed).await?;
            changed += 1;
        }
    } else {
        let rows = sqlx::query(
            "SELECT id, key_id, nonce, ciphertext FROM prompt_versions \
             WHERE prompt_id = $1 AND ciphertext IS NOT NULL",
        )
        .bind(prompt_id)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let id: Uuid = row.try_get(0)?;
            let Some(sealed) =
                common::stored_seal(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)?
            else {
                continue;
            };
            let content = common::open_content(keys, id, &sealed)?;
            store_content(conn, id, StoredContent::clear(content)).await?;
            changed += 1;
        }
    }
    reseal_tests(conn, prompt_id, classification, keys).await?;
    Ok(changed)
}

/// A prompt's template test cases (none without a row), opened if sealed.
async fn load_tests(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    keys: Option<&KeyRing>,
) -> StoreResult<Vec<TestCase>> {
    let row = sqlx::query(
        "SELECT cases, key_id, nonce, ciphertext FROM prompt_tests WHERE prompt_id = $1",
    )
    .bind(prompt_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(Vec::new()),
        Some(row) => common::decode_tests(
            keys,
            prompt_id,
            row.try_get(0)?,
            common::stored_seal(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)?,
        ),
    }
}

/// Replaces a prompt's test cases (no cases: no row), sealed when the classification asks.
async fn write_tests(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    classification: Classification,
    keys: Option<&KeyRing>,
    cases: &[TestCase],
    at: OffsetDateTime,
) -> StoreResult<()> {
    if cases.is_empty() {
        sqlx::query("DELETE FROM prompt_tests WHERE prompt_id = $1")
            .bind(prompt_id)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    let stored = common::stored_tests(keys, classification, prompt_id, cases)?;
    sqlx::query(
        "INSERT INTO prompt_tests (prompt_id, cases, key_id, nonce, ciphertext, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (prompt_id) DO UPDATE SET cases = excluded.cases, key_id = excluded.key_id, \
         nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
    )
    .bind(prompt_id)
    .bind(stored.content)
    .bind(stored.key_id)
    .bind(stored.nonce)
    .bind(stored.ciphertext)
    .bind(encode_time(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Brings the stored form of a prompt's test cases in line with its classification and the
/// ring's current key (sealed under it, or in clear); returns whether the row changed.
async fn reseal_tests(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    classification: Classification,
    keys: Option<&KeyRing>,
) -> StoreResult<bool> {
    let key_id: Option<Option<String>> =
        sqlx::query_scalar("SELECT key_id FROM prompt_tests WHERE prompt_id = $1")
            .bind(prompt_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(key_id) = key_id else {
        return Ok(false);
    };
    let stale = if classification.is_sealed_at_rest() {
        key_id.is_none() || key_id.as_deref() != keys.map(KeyRing::current_key_id)
    } else {
        key_id.is_some()
    };
    if !stale {
        return Ok(false);
    }
    let cases = load_tests(conn, prompt_id, keys).await?;
    write_tests(conn, prompt_id, classification, keys, &cases, now()).await?;
    Ok(true)
}

/// Rewrites the stored form of one version's content.
async fn store_content(
    conn: &mut SqliteConnection,
    version_id: Uuid,
    stored: StoredContent,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE prompt_versions SET content = $2, key_id = $3, nonce = $4, ciphertext = $5 \
         WHERE id = $1",
    )
    .bind(version_id)
    .bind(stored.content)
    .bind(stored.key_id)
    .bind(stored.nonce)
    .bind(stored.ciphertext)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Points `label` at `to`; records the move in the history unless it is `latest`. A no-op move
/// records nothing and returns `None`. The version must exist (the foreign key enforces it).
async fn move_label(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    label: &LabelName,
    to: i64,
    actor_id: Option<Uuid>,
    at: OffsetDateTime,
) -> StoreResult<Option<LabelEvent>> {
    if label.is_latest() {
        // Not recorded, so the previous position does not matter.
        upsert_label(conn, prompt_id, label, to, at).await?;
        return Ok(None);
    }
    let current = current_target(conn, prompt_id, label).await?;
    if current == Some(LabelTarget::Version(to)) {
        return Ok(None);
    }
    upsert_label(conn, prompt_id, label, to, at).await?;
    let event = LabelEvent {
        prompt_id,
        label: label.clone(),
        from_version: current.map(|target| target.primary()),
        to_version: Some(to),
        actor_id,
        at,
        action: LabelAction::Set,
        split: None,
    };
    record_label_event(conn, &event).await?;
    Ok(Some(event))
}

async fn upsert_label(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    label: &LabelName,
    to: i64,
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO labels (prompt_id, name, version_number, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (prompt_id, name) DO UPDATE \
         SET version_number = excluded.version_number, updated_at = excluded.updated_at, \
         split = NULL",
    )
    .bind(prompt_id)
    .bind(label.as_str())
    .bind(to)
    .bind(encode_time(at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Where a label points now (`None`: it does not exist).
async fn current_target(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    label: &LabelName,
) -> StoreResult<Option<LabelTarget>> {
    let row =
        sqlx::query("SELECT version_number, split FROM labels WHERE prompt_id = $1 AND name = $2")
            .bind(prompt_id)
            .bind(label.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let split = common::decode_split(
        row.try_get::<Option<Json<Vec<SplitEntry>>>, _>(1)?
            .map(|json| json.0),
    )?;
    Ok(Some(LabelTarget::from_parts(row.try_get(0)?, split)))
}

/// The statuses of the given versions of a prompt (`None` for a missing one).
async fn statuses_of(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    versions: &[i64],
) -> StoreResult<Vec<(i64, Option<VersionStatus>)>> {
    let mut out = Vec::with_capacity(versions.len());
    for &version in versions {
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM prompt_versions WHERE prompt_id = $1 AND version_number = $2",
        )
        .bind(prompt_id)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
        out.push((
            version,
            status
                .map(|status| common::parse_word("prompt_versions.status", &status))
                .transpose()?,
        ));
    }
    Ok(out)
}

/// Points `label` at `target` (checking the target versions exist and have `required`), records
/// the move as `action` and bumps the revision. `None` for a `set`/`split` that changes nothing.
#[allow(clippy::too_many_arguments)]
async fn write_label_target(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    prompt_name: &str,
    label: &LabelName,
    target: &LabelTarget,
    action: LabelAction,
    required: Option<VersionStatus>,
    actor_id: Option<Uuid>,
) -> StoreResult<Option<LabelEvent>> {
    let statuses = statuses_of(conn, prompt_id, &target.versions()).await?;
    common::check_target_statuses(label, prompt_name, &statuses, required)?;
    let current = current_target(conn, prompt_id, label).await?;
    if matches!(action, LabelAction::Set | LabelAction::Split) && current.as_ref() == Some(target) {
        return Ok(None);
    }
    let at = now();
    sqlx::query(
        "INSERT INTO labels (prompt_id, name, version_number, updated_at, split) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (prompt_id, name) DO UPDATE \
         SET version_number = excluded.version_number, updated_at = excluded.updated_at, \
         split = excluded.split",
    )
    .bind(prompt_id)
    .bind(label.as_str())
    .bind(target.primary())
    .bind(encode_time(at))
    .bind(target.split().map(Json))
    .execute(&mut *conn)
    .await?;
    let event = LabelEvent {
        prompt_id,
        label: label.clone(),
        from_version: current.map(|target| target.primary()),
        to_version: Some(target.primary()),
        actor_id,
        at,
        action,
        split: target.split().cloned(),
    };
    record_label_event(conn, &event).await?;
    bump_revision(conn, prompt_id, at).await?;
    Ok(Some(event))
}

async fn record_label_event(conn: &mut SqliteConnection, event: &LabelEvent) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO label_history (",
        label_event_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(event.prompt_id)
    .bind(event.label.as_str())
    .bind(event.from_version)
    .bind(event.to_version)
    .bind(event.actor_id)
    .bind(encode_time(event.at))
    .bind(event.action.as_str())
    .bind(event.split.as_ref().map(Json))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves a version's status under the write lock: conditional on `expected_from`; records
/// `approved_at` / `archived_at` / the deprecation; refuses archiving a version a user-set label
/// points at; re-derives the prompt's status and bumps its revision. Returns the moved version.
async fn move_version_status(
    conn: &mut SqliteConnection,
    keys: Option<&KeyRing>,
    prompt_id: Uuid,
    version_number: i64,
    expected_from: VersionStatus,
    to: VersionStatus,
    deprecation: Option<&Deprecation>,
) -> StoreResult<PromptVersion> {
    let row = sqlx::query(
        "SELECT p.name, v.status FROM prompts p LEFT JOIN prompt_versions v \
         ON v.prompt_id = p.id AND v.version_number = $2 WHERE p.id = $1",
    )
    .bind(prompt_id)
    .bind(version_number)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))?;
    let name: String = row.try_get(0)?;
    let Some(current) = row.try_get::<Option<String>, _>(1)? else {
        return Err(StoreError::not_found(version_of(version_number, &name)));
    };
    let current: VersionStatus = common::parse_word("prompt_versions.status", &current)?;
    if current != expected_from {
        return Err(StoreError::StatusChanged {
            version: version_number,
            expected: expected_from,
            current,
        });
    }
    if to == VersionStatus::Archived {
        let labels: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM labels WHERE prompt_id = $1 AND name <> 'latest' \
             AND (version_number = $2 OR EXISTS (SELECT 1 FROM json_each(labels.split) \
             WHERE json_extract(json_each.value, '$.version') = $2)) ORDER BY name",
        )
        .bind(prompt_id)
        .bind(version_number)
        .fetch_all(&mut *conn)
        .await?;
        if !labels.is_empty() {
            return Err(StoreError::VersionLabelled {
                version: version_number,
                labels,
            });
        }
    }
    let at = now();
    let stamp = encode_time(at);
    // Conditional on the status read, so a change that slipped in is never overwritten.
    let updated = sqlx::query(
        "UPDATE prompt_versions SET status = $3, \
         review_round = review_round + (CASE WHEN $3 = 'review' THEN 1 ELSE 0 END), \
         approved_at = CASE WHEN $3 = 'approved' THEN $5 ELSE approved_at END, \
         archived_at = CASE WHEN $3 = 'archived' THEN $5 ELSE archived_at END, \
         deprecated_at = COALESCE($6, deprecated_at), sunset_at = COALESCE($7, sunset_at), \
         replacement_prompt_id = CASE WHEN $6 IS NULL THEN replacement_prompt_id ELSE $8 END, \
         replacement_name = CASE WHEN $6 IS NULL THEN replacement_name ELSE $9 END \
         WHERE prompt_id = $1 AND version_number = $2 AND status = $4",
    )
    .bind(prompt_id)
    .bind(version_number)
    .bind(to.as_str())
    .bind(expected_from.as_str())
    .bind(&stamp)
    .bind(deprecation.map(|d| encode_time(d.deprecated_at)))
    .bind(deprecation.map(|d| encode_time(d.sunset_at)))
    .bind(deprecation.and_then(|d| d.replacement.as_ref().map(|r| r.prompt_id)))
    .bind(deprecation.and_then(|d| d.replacement.as_ref().map(|r| r.name.clone())))
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::StatusChanged {
            version: version_number,
            expected: expected_from,
            current,
        });
    }
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM prompt_versions WHERE prompt_id = $1")
            .bind(prompt_id)
            .fetch_all(&mut *conn)
            .await?;
    let statuses = statuses
        .iter()
        .map(|status| common::parse_word("prompt_versions.status", status))
        .collect::<StoreResult<Vec<VersionStatus>>>()?;
    sqlx::query(
        "UPDATE prompts SET revision = revision + 1, updated_at = $2, status = $3 WHERE id = $1",
    )
    .bind(prompt_id)
    .bind(&stamp)
    .bind(retire::prompt_status(&statuses).as_str())
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        version_columns!(),
        " FROM prompt_versions v WHERE v.prompt_id = $1 AND v.version_number = $2"
    ))
    .bind(prompt_id)
    .bind(version_number)
    .fetch_one(&mut *conn)
    .await?;
    decode_version(&row, 0, keys)?
        .ok_or_else(|| StoreError::not_found(version_of(version_number, &name)))
}

async fn bump_revision(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
    at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("UPDATE prompts SET revision = revision + 1, updated_at = $2 WHERE id = $1")
        .bind(prompt_id)
        .bind(encode_time(at))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A prompt's labels (name → primary version) and the splits of those that split traffic.
async fn labels_of(
    conn: &mut SqliteConnection,
    prompt_id: Uuid,
) -> StoreResult<(BTreeMap<String, i64>, BTreeMap<String, Split>)> {
    let rows = sqlx::query("SELECT name, version_number, split FROM labels WHERE prompt_id = $1")
        .bind(prompt_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut labels = BTreeMap::new();
    let mut splits = BTreeMap::new();
    for row in &rows {
        let name: String = row.try_get(0)?;
        if let Some(split) = common::decode_split(
            row.try_get::<Option<Json<Vec<SplitEntry>>>, _>(2)?
                .map(|json| json.0),
        )? {
            splits.insert(name.clone(), split);
        }
        labels.insert(name, row.try_get(1)?);
    }
    Ok((labels, splits))
}

/// Appends the `list_prompts` filters (not the paging) as `AND …` clauses.
fn push_filters(builder: &mut QueryBuilder<Sqlite>, query: &PromptQuery) {
    if let Some(scope) = query.scope {
        builder.push(" AND p.scope = ").push_bind(scope.as_str());
    }
    if let Some(owner_id) = query.owner_id {
        builder.push(" AND p.owner_id = ").push_bind(owner_id);
    }
    if let Some(tag) = &query.tag {
        builder
            .push(" AND EXISTS (SELECT 1 FROM json_each(p.tags) AS t WHERE t.value = ")
            .push_bind(tag.clone())
            .push(")");
    }
    if let Some(prompt_type) = &query.prompt_type {
        builder
            .push(" AND p.prompt_type = ")
            .push_bind(prompt_type.clone());
    }
    match query.status {
        Some(status) => {
            builder.push(" AND p.status = ").push_bind(status.as_str());
        }
        None => {
            builder.push(" AND p.status <> 'archived'");
        }
    }
    if let Some(label) = &query.label {
        builder
            .push(" AND EXISTS (SELECT 1 FROM labels AS l WHERE l.prompt_id = p.id AND l.name = ")
            .push_bind(label.as_str().to_string())
            .push(")");
    }
    if let Some(q) = &query.q {
        // SQLite's LIKE is case-insensitive for ASCII letters.
        let pattern = format!("%{}%", common::escape_like(q));
        builder
            .push(" AND (p.name LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR p.title LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR p.description LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    if let Some(prefix) = &query.name_prefix {
        // GLOB is case-sensitive (LIKE is not) and can use the name index.
        builder
            .push(" AND p.name GLOB ")
            .push_bind(format!("{}*", common::escape_glob(prefix)));
    }
    if let Some(filter) = &query.visibility {
        push_visibility(builder, filter);
    }
}

/// Appends `promptvault_core::access::is_visible` for the filter's principal as `AND …`
/// clauses: the credential restrictions, then (unless the role is unrestricted) scope,
/// `owner_only`, `allowed_roles` and classification with grants. Who the principal is (role,
/// user, agent) is known here, so only the branches that can hold are written. Absent keys of
/// the `access` JSON mean the defaults (no rule, no grant).
fn push_visibility(builder: &mut QueryBuilder<Sqlite>, filter: &VisibilityFilter) {
    if let Some(scopes) = &filter.scopes {
        builder.push(" AND p.scope IN (SELECT value FROM json_each(");
        builder.push_bind(Json(common::scope_words(scopes)));
        builder.push("))");
    }
    if let Some(prefixes) = &filter.name_prefixes {
        builder.push(" AND (FALSE");
        for prefix in prefixes {
            builder
                .push(" OR p.name GLOB ")
                .push_bind(format!("{}*", common::escape_glob(prefix)));
        }
        builder.push(")");
    }
    if !filter.restricted_role {
        return;
    }
    builder.push(" AND (p.scope = 'global' OR (p.scope = 'user' AND ");
    push_owns(builder, filter);
    builder.push(") OR (p.scope = 'agent' AND (");
    push_owns(builder, filter);
    builder.push(" OR ");
    match &filter.agent_id {
        Some(agent_id) => {
            builder.push("p.agent_id = ").push_bind(agent_id.clone());
        }
        None => {
            builder.push("FALSE");
        }
    }
    builder.push(")))");

    builder.push(" AND (coalesce(json_extract(p.access, '$.owner_only'), 0) = 0 OR ");
    push_owns(builder, filter);
    builder.push(")");

    builder
        .push(
            " AND (NOT EXISTS (SELECT 1 FROM json_each(p.access, '$.allowed_roles')) \
             OR EXISTS (SELECT 1 FROM json_each(p.access, '$.allowed_roles') WHERE value = ",
        )
        .push_bind(filter.role.as_str())
        .push("))");

    builder.push(" AND (p.classification IN ('public', 'internal')");
    if filter.role != Role::Agent {
        builder.push(" OR p.classification = 'confidential'");
    } else {
        builder.push(" OR (p.classification = 'confidential' AND ");
        push_granted(builder, filter);
        builder.push(")");
    }
    builder.push(" OR (p.classification = 'restricted' AND ");
    push_granted(builder, filter);
    builder.push("))");
}

/// Whether the filter's user owns the prompt (never, without a user).
fn push_owns(builder: &mut QueryBuilder<Sqlite>, filter: &VisibilityFilter) {
    match filter.user_id {
        Some(user_id) => {
            builder.push("p.owner_id = ").push_bind(user_id);
        }
        None => {
            builder.push("FALSE");
        }
    }
}

/// Whether the prompt's grants name the filter's user or agent.
fn push_granted(builder: &mut QueryBuilder<Sqlite>, filter: &VisibilityFilter) {
    if filter.user_id.is_none() && filter.agent_id.is_none() {
        builder.push("FALSE");
        return;
    }
    builder.push("EXISTS (SELECT 1 FROM json_each(p.access, '$.grants') AS g WHERE FALSE");
    if let Some(user_id) = filter.user_id {
        builder
            .push(" OR json_extract(g.value, '$.user') = ")
            .push_bind(user_id.hyphenated().to_string());
    }
    if let Some(agent_id) = &filter.agent_id {
        builder
            .push(" OR json_extract(g.value, '$.agent') = ")
            .push_bind(agent_id.clone());
    }
    builder.push(")");
}

/// Appends the `list_audit` filters as `AND …` clauses.
fn push_audit_filters(builder: &mut QueryBuilder<Sqlite>, query: &AuditQuery) {
    if let Some(actor_id) = &query.actor_id {
        builder.push(" AND actor_id = ").push_bind(actor_id.clone());
    }
    if let Some(actor_role) = query.actor_role {
        builder
            .push(" AND actor_role = ")
            .push_bind(actor_role.as_str());
    }
    if let Some(prompt_id) = query.prompt_id {
        builder.push(" AND prompt_id = ").push_bind(prompt_id);
    }
    if let Some(prompt_name) = &query.prompt_name {
        builder
            .push(" AND prompt_name = ")
            .push_bind(prompt_name.clone());
    }
    match query.action.as_deref().map(common::action_match) {
        Some(ActionMatch::Exact(action)) => {
            builder.push(" AND action = ").push_bind(action);
        }
        Some(ActionMatch::Range { from, to }) => {
            builder
                .push(" AND action >= ")
                .push_bind(from)
                .push(" AND action < ")
                .push_bind(to);
        }
        None => {}
    }
    if let Some(outcome) = query.outcome {
        builder.push(" AND outcome = ").push_bind(outcome.as_str());
    }
    if let Some(prompt_scope) = query.prompt_scope {
        builder
            .push(" AND prompt_scope = ")
            .push_bind(prompt_scope.as_str());
    }
    if let Some(since) = query.since {
        builder
            .push(" AND at_ns >= ")
            .push_bind(common::clamped_unix_nanos(since));
    }
    if let Some(until) = query.until {
        builder
            .push(" AND at_ns < ")
            .push_bind(common::clamped_unix_nanos(until));
    }
    if let Some(after_seq) = query.after_seq {
        builder.push(" AND seq > ").push_bind(after_seq);
    }
}

#[async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn create_prompt(
        &self,
        prompt: NewPrompt,
        first: NewVersion,
    ) -> StoreResult<PromptDetail> {
        first.draft.content().check_kind(prompt.kind)?;
        let VersionPlan::Create { semver, .. } = plan_version(None, &first.draft)? else {
            return Err(StoreError::Corrupt(
                "plan_version found nothing to create for a first version".into(),
            ));
        };
        let at = now();
        let prompt = common::new_prompt(prompt, at);
        let version = common::new_version(prompt.id, 1, semver, &first, &[], at);
        // Sealed before anything is written: without keys, nothing is.
        let stored = StoredContent::of(self.keys(), prompt.classification, &version)?;

        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO prompts (id, name, title, description, long_description_markdown, scope, \
             agent_id, owner_id, creator_id, prompt_type, kind, tags, source, classification, \
             status, revision, created_at, updated_at, access) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19)",
        )
        .bind(prompt.id)
        .bind(prompt.name.as_str())
        .bind(&prompt.title)
        .bind(&prompt.description)
        .bind(&prompt.long_description_markdown)
        .bind(prompt.scope.as_str())
        .bind(&prompt.agent_id)
        .bind(prompt.owner_id)
        .bind(prompt.creator_id)
        .bind(&prompt.prompt_type)
        .bind(prompt.kind.as_str())
        .bind(Json(&prompt.tags))
        .bind(prompt.source.as_str())
        .bind(prompt.classification.as_str())
        .bind(prompt.status.as_str())
        .bind(prompt.revision)
        .bind(encode_time(prompt.created_at))
        .bind(encode_time(prompt.updated_at))
        .bind(Json(&prompt.access))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => {
                return Err(name_taken(prompt.name.as_str()));
            }
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(prompt_type_not_found(
                    prompt.prompt_type.as_deref().unwrap_or(""),
                ));
            }
            other => other?,
        };
        insert_version(&mut tx, &version, stored).await?;
        let mut labels = BTreeMap::from([(LabelName::latest().to_string(), 1)]);
        move_label(
            &mut tx,
            prompt.id,
            &LabelName::latest(),
            1,
            first.author_id,
            at,
        )
        .await?;
        for label in requested_labels(&first.labels) {
            move_label(&mut tx, prompt.id, &label, 1, first.author_id, at).await?;
            labels.insert(label.to_string(), 1);
        }
        tx.commit().await?;
        Ok(PromptDetail {
            prompt,
            versions: vec![version],
            labels,
            label_splits: BTreeMap::new(),
        })
    }

    #[tracing::instrument(skip_all)]
    async fn get_prompt(&self, key: &PromptKey) -> StoreResult<PromptDetail> {
        // One read transaction: the prompt, its versions and labels from the same snapshot.
        let mut tx = self.reader.begin().await?;
        let prompt = fetch_prompt(&mut tx, key).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_columns!(),
            " FROM prompt_versions v WHERE v.prompt_id = $1 ORDER BY v.version_number DESC"
        ))
        .bind(prompt.id)
        .fetch_all(&mut *tx)
        .await?;
        let versions = rows
            .iter()
            .filter_map(|row| decode_version(row, 0, self.keys()).transpose())
            .collect::<StoreResult<Vec<_>>>()?;
        let (labels, label_splits) = labels_of(&mut tx, prompt.id).await?;
        tx.commit().await?;
        Ok(PromptDetail {
            prompt,
            versions,
            labels,
            label_splits,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn find_prompt(&self, key: &PromptKey) -> StoreResult<Prompt> {
        let mut conn = self.reader.acquire().await?;
        fetch_prompt(&mut conn, key).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_prompts(&self, query: &PromptQuery) -> StoreResult<PromptPage> {
        let mut tx = self.reader.begin().await?;

        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM prompts p WHERE 1 = 1");
        push_filters(&mut count, query);
        let total: i64 = count.build_query_scalar().fetch_one(&mut *tx).await?;

        let mut page = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            prompt_columns!(),
            ", coalesce((SELECT max(v.version_number) FROM prompt_versions v \
             WHERE v.prompt_id = p.id), 0) FROM prompts p WHERE 1 = 1"
        ));
        push_filters(&mut page, query);
        if let Some(after_name) = &query.after_name {
            page.push(" AND p.name > ").push_bind(after_name.clone());
        }
        page.push(" ORDER BY p.name LIMIT ")
            .push_bind(if query.limit > 0 { query.limit } else { -1 });
        if query.after_name.is_none() && query.offset > 0 {
            page.push(" OFFSET ").push_bind(query.offset);
        }
        let rows = page.build().fetch_all(&mut *tx).await?;
        let mut items = rows
            .iter()
            .map(|row| {
                Ok(PromptListItem {
                    prompt: decode_prompt(row, 0)?,
                    labels: BTreeMap::new(),
                    latest_version: row.try_get(PROMPT_COLUMNS)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;

        if !items.is_empty() {
            let mut labels = QueryBuilder::<Sqlite>::new(
                "SELECT prompt_id, name, version_number FROM labels WHERE prompt_id IN (",
            );
            let mut ids = labels.separated(", ");
            for item in &items {
                ids.push_bind(item.prompt.id);
            }
            labels.push(")");
            let mut by_prompt: BTreeMap<Uuid, BTreeMap<String, i64>> = BTreeMap::new();
            for row in labels.build().fetch_all(&mut *tx).await? {
                by_prompt
                    .entry(row.try_get(0)?)
                    .or_default()
                    .insert(row.try_get(1)?, row.try_get(2)?);
            }
            for item in &mut items {
                item.labels = by_prompt.remove(&item.prompt.id).unwrap_or_default();
            }
        }
        tx.commit().await?;
        Ok(PromptPage { items, total })
    }

    #[tracing::instrument(skip_all)]
    async fn update_prompt(
        &self,
        id: Uuid,
        patch: PromptPatch,
        expected_revision: Option<i64>,
    ) -> StoreResult<Prompt> {
        let mut update = QueryBuilder::<Sqlite>::new(
            "UPDATE prompts SET revision = revision + 1, updated_at = ",
        );
        update.push_bind(encode_time(now()));
        if let Some(title) = patch.title {
            update.push(", title = ").push_bind(title);
        }
        if let Some(description) = patch.description {
            update.push(", description = ").push_bind(description);
        }
        if let Some(long_description) = patch.long_description_markdown {
            update
                .push(", long_description_markdown = ")
                .push_bind(long_description);
        }
        if let Some(scope) = patch.scope {
            update.push(", scope = ").push_bind(scope.as_str());
        }
        if let Some(agent_id) = patch.agent_id {
            update.push(", agent_id = ").push_bind(agent_id);
        }
        if let Some(owner_id) = patch.owner_id {
            update.push(", owner_id = ").push_bind(owner_id);
        }
        let new_type = patch.prompt_type.clone().flatten();
        if let Some(prompt_type) = patch.prompt_type {
            update.push(", prompt_type = ").push_bind(prompt_type);
        }
        if let Some(tags) = patch.tags {
            update.push(", tags = ").push_bind(Json(tags));
        }
        let new_classification = patch.classification;
        if let Some(classification) = patch.classification {
            update
                .push(", classification = ")
                .push_bind(classification.as_str());
        }
        if let Some(status) = patch.status {
            update.push(", status = ").push_bind(status.as_str());
        }
        if let Some(access) = patch.access {
            update.push(", access = ").push_bind(Json(access));
        }
        update.push(" WHERE id = ").push_bind(id);
        if let Some(expected) = expected_revision {
            update.push(" AND revision = ").push_bind(expected);
        }
        update.push(concat!(" RETURNING ", returned_prompt_columns!()));

        // One transaction: a classification change seals or opens the prompt's versions with it.
        let mut tx = self.begin_write().await?;
        let row = match update.build().fetch_optional(&mut *tx).await {
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(prompt_type_not_found(new_type.as_deref().unwrap_or("")));
            }
            other => other?,
        };
        if let Some(row) = row {
            let prompt = decode_prompt(&row, 0)?;
            if let Some(classification) = new_classification {
                reseal_versions(&mut tx, id, classification, self.keys()).await?;
            }
            tx.commit().await?;
            return Ok(prompt);
        }
        let current: Option<i64> = sqlx::query_scalar("SELECT revision FROM prompts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        match (current, expected_revision) {
            (Some(current), Some(expected)) => {
                Err(StoreError::PreconditionFailed { expected, current })
            }
            _ => Err(StoreError::not_found(prompt_with_id(id))),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn delete_prompt(&self, id: Uuid) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM prompts WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::not_found(prompt_with_id(id)));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn add_version(
        &self,
        prompt_id: Uuid,
        mut version: NewVersion,
    ) -> StoreResult<AddedVersion> {
        // BEGIN IMMEDIATE on the single writer connection: this transaction is the only writer
        // until it ends, which is the prompt's lock.
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "SELECT p.name, p.kind, p.classification, ",
            version_columns!(),
            " FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
             AND v.version_number = (SELECT max(version_number) FROM prompt_versions \
             WHERE prompt_id = p.id) WHERE p.id = $1"
        ))
        .bind(prompt_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))?;
        let kind: String = row.try_get(1)?;
        version
            .draft
            .content()
            .check_kind(common::parse_word("prompts.kind", &kind)?)?;
        let classification: Classification =
            common::parse_word("prompts.classification", &row.try_get::<String, _>(2)?)?;
        let latest = decode_version(&row, 3, self.keys())?;
        common::apply_carry_over(&mut version, latest.as_ref())?;
        let at = now();

        match plan_version(latest.as_ref(), &version.draft)? {
            VersionPlan::Unchanged => {
                let Some(latest) = latest else {
                    return Err(StoreError::Corrupt(
                        "plan_version found a prompt without versions unchanged".into(),
                    ));
                };
                let mut moved = false;
                for label in requested_labels(&version.labels) {
                    moved |= move_label(
                        &mut tx,
                        prompt_id,
                        &label,
                        latest.version_number,
                        version.author_id,
                        at,
                    )
                    .await?
                    .is_some();
                }
                if moved {
                    bump_revision(&mut tx, prompt_id, at).await?;
                }
                tx.commit().await?;
                Ok(AddedVersion {
                    version: latest,
                    created: false,
                })
            }
            VersionPlan::Create { semver, .. } => {
                let number = latest.map_or(1, |latest| latest.version_number + 1);
                // The prompt's tests run on the version as it will be stored (carry-over applied).
                let tests = load_tests(&mut tx, prompt_id, self.keys()).await?;
                let created = common::new_version(prompt_id, number, semver, &version, &tests, at);
                let stored = StoredContent::of(self.keys(), classification, &created)?;
                insert_version(&mut tx, &created, stored).await?;
                // A new draft makes the prompt active again (`retire::prompt_status`).
                sqlx::query("UPDATE prompts SET status = 'active' WHERE id = $1")
                    .bind(prompt_id)
                    .execute(&mut *tx)
                    .await?;
                move_label(&mut tx, prompt_id, &LabelName::latest(), number, None, at).await?;
                for label in requested_labels(&version.labels) {
                    move_label(&mut tx, prompt_id, &label, number, version.author_id, at).await?;
                }
                bump_revision(&mut tx, prompt_id, at).await?;
                tx.commit().await?;
                Ok(AddedVersion {
                    version: created,
                    created: true,
                })
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn get_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
    ) -> StoreResult<PromptVersion> {
        let row = sqlx::query(concat!(
            "SELECT p.name, ",
            version_columns!(),
            " FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
             AND v.version_number = $2 WHERE p.id = $1"
        ))
        .bind(prompt_id)
        .bind(version_number)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))?;
        let name: String = row.try_get(0)?;
        decode_version(&row, 1, self.keys())?
            .ok_or_else(|| StoreError::not_found(version_of(version_number, &name)))
    }

    #[tracing::instrument(skip_all)]
    async fn set_version_status(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        expected_from: VersionStatus,
        to: VersionStatus,
    ) -> StoreResult<PromptVersion> {
        let mut tx = self.begin_write().await?;
        let version = move_version_status(
            &mut tx,
            self.keys(),
            prompt_id,
            version_number,
            expected_from,
            to,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    #[tracing::instrument(skip_all)]
    async fn resolve_version(
        &self,
        key: &PromptKey,
        selector: &VersionSelector,
    ) -> StoreResult<(Prompt, PromptVersion)> {
        // One statement: the prompt, outer-joined to the version the selector picks.
        let (by_id, by_name, label, number) = match selector {
            VersionSelector::Number(number) => (
                concat!(
                    "SELECT ",
                    prompt_columns!(),
                    ", ",
                    version_columns!(),
                    " FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
                     AND v.version_number = $2 WHERE p.id = $1"
                ),
                concat!(
                    "SELECT ",
                    prompt_columns!(),
                    ", ",
                    version_columns!(),
                    " FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
                     AND v.version_number = $2 WHERE p.name = $1"
                ),
                None,
                Some(*number),
            ),
            VersionSelector::Label(label) => (
                concat!(
                    "SELECT ",
                    prompt_columns!(),
                    ", ",
                    version_columns!(),
                    " FROM prompts p LEFT JOIN labels l ON l.prompt_id = p.id AND l.name = $2 \
                     LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
                     AND v.version_number = l.version_number WHERE p.id = $1"
                ),
                concat!(
                    "SELECT ",
                    prompt_columns!(),
                    ", ",
                    version_columns!(),
                    " FROM prompts p LEFT JOIN labels l ON l.prompt_id = p.id AND l.name = $2 \
                     LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
                     AND v.version_number = l.version_number WHERE p.name = $1"
                ),
                Some(label.as_str()),
                None,
            ),
        };
        let query = match key {
            PromptKey::Id(id) => sqlx::query(by_id).bind(*id),
            PromptKey::Name(name) => sqlx::query(by_name).bind(name.as_str().to_string()),
        };
        let query = match (label, number) {
            (Some(label), _) => query.bind(label.to_string()),
            (None, number) => query.bind(number),
        };
        let row = query
            .fetch_optional(&self.reader)
            .await?
            .ok_or_else(|| StoreError::not_found(key.to_string()))?;
        let prompt = decode_prompt(&row, 0)?;
        match decode_version(&row, PROMPT_COLUMNS, self.keys())? {
            Some(version) => Ok((prompt, version)),
            None => Err(StoreError::not_found(match selector {
                VersionSelector::Number(number) => version_of(*number, prompt.name.as_str()),
                VersionSelector::Label(label) => label_of(label.as_str(), prompt.name.as_str()),
            })),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn set_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        version_number: i64,
        actor_id: Option<Uuid>,
    ) -> StoreResult<Option<LabelEvent>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT p.name, EXISTS (SELECT 1 FROM prompt_versions v WHERE v.prompt_id = p.id \
             AND v.version_number = $2) FROM prompts p WHERE p.id = $1",
        )
        .bind(prompt_id)
        .bind(version_number)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))?;
        let name: String = row.try_get(0)?;
        let version_exists: bool = row.try_get(1)?;
        if !version_exists {
            return Err(StoreError::not_found(version_of(version_number, &name)));
        }
        let at = now();
        let event = move_label(&mut tx, prompt_id, label, version_number, actor_id, at).await?;
        if event.is_some() {
            bump_revision(&mut tx, prompt_id, at).await?;
        }
        tx.commit().await?;
        Ok(event)
    }

    #[tracing::instrument(skip_all)]
    async fn remove_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        actor_id: Option<Uuid>,
    ) -> StoreResult<LabelEvent> {
        let mut tx = self.begin_write().await?;
        let name = prompt_name(&mut tx, prompt_id).await?;
        let from: Option<i64> = sqlx::query_scalar(
            "DELETE FROM labels WHERE prompt_id = $1 AND name = $2 RETURNING version_number",
        )
        .bind(prompt_id)
        .bind(label.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(from) = from else {
            return Err(StoreError::not_found(label_of(label.as_str(), &name)));
        };
        let at = now();
        let event = LabelEvent {
            prompt_id,
            label: label.clone(),
            from_version: Some(from),
            to_version: None,
            actor_id,
            at,
            action: LabelAction::Remove,
            split: None,
        };
        record_label_event(&mut tx, &event).await?;
        bump_revision(&mut tx, prompt_id, at).await?;
        tx.commit().await?;
        Ok(event)
    }

    #[tracing::instrument(skip_all)]
    async fn label_history(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
    ) -> StoreResult<Vec<LabelEvent>> {
        let mut tx = self.reader.begin().await?;
        prompt_name(&mut tx, prompt_id).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            label_event_columns!(),
            " FROM label_history WHERE prompt_id = $1 AND label = $2 ORDER BY id"
        ))
        .bind(prompt_id)
        .bind(label.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(decode_label_event).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_link(&self, link: NewLink) -> StoreResult<Link> {
        let mut tx = self.begin_write().await?;
        prompt_name(&mut tx, link.prompt_id).await?;
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO links (id, prompt_id, capability, agent_id, priority, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (prompt_id, capability, agent_key) DO UPDATE SET priority = excluded.priority \
             RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(link.prompt_id)
        .bind(&link.capability)
        .bind(&link.agent_id)
        .bind(link.priority)
        .bind(encode_time(now()))
        .fetch_one(&mut *tx)
        .await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links l JOIN prompts p ON p.id = l.prompt_id WHERE l.id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        decode_link(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn list_links(&self, filter: &LinkFilter) -> StoreResult<Vec<Link>> {
        let mut query = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links l JOIN prompts p ON p.id = l.prompt_id WHERE 1 = 1"
        ));
        if let Some(agent_id) = &filter.agent_id {
            query
                .push(" AND (l.agent_id = ")
                .push_bind(agent_id.clone())
                .push(" OR l.agent_id IS NULL)");
        }
        if let Some(capability) = &filter.capability {
            query
                .push(" AND l.capability = ")
                .push_bind(capability.clone());
        }
        if let Some(prompt_id) = filter.prompt_id {
            query.push(" AND l.prompt_id = ").push_bind(prompt_id);
        }
        if let Some(link_id) = filter.link_id {
            query.push(" AND l.id = ").push_bind(link_id);
        }
        query.push(" ORDER BY l.agent_id IS NULL, l.priority DESC, l.created_at, l.id");
        let rows = query.build().fetch_all(&self.reader).await?;
        rows.iter().map(decode_link).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn delete_link(&self, id: Uuid) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM links WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::not_found(format!("link {id}")));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn create_prompt_type(&self, prompt_type: NewPromptType) -> StoreResult<PromptType> {
        let at = now();
        let inserted = sqlx::query(concat!(
            "INSERT INTO prompt_types (",
            prompt_type_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)"
        ))
        .bind(&prompt_type.key)
        .bind(&prompt_type.name)
        .bind(&prompt_type.schema)
        .bind(prompt_type.restricted_creation)
        .bind(prompt_type.requires_approval)
        .bind(encode_time(at))
        .bind(prompt_type.review_every_days.map(i64::from))
        .bind(prompt_type.approval_workflow.as_ref().map(Json))
        .execute(&self.writer)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => {
                return Err(StoreError::conflict(format!(
                    "prompt type {:?} already exists",
                    prompt_type.key
                )));
            }
            other => other?,
        };
        Ok(PromptType {
            key: prompt_type.key,
            name: prompt_type.name,
            schema: prompt_type.schema,
            restricted_creation: prompt_type.restricted_creation,
            requires_approval: prompt_type.requires_approval,
            created_at: at,
            updated_at: at,
            review_every_days: prompt_type.review_every_days,
            approval_workflow: prompt_type.approval_workflow,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn get_prompt_type(&self, key: &str) -> StoreResult<PromptType> {
        let row = sqlx::query(concat!(
            "SELECT ",
            prompt_type_columns!(),
            " FROM prompt_types WHERE key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| prompt_type_not_found(key))?;
        decode_prompt_type(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn list_prompt_types(&self) -> StoreResult<Vec<PromptType>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            prompt_type_columns!(),
            " FROM prompt_types ORDER BY key"
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode_prompt_type).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn update_prompt_type(
        &self,
        key: &str,
        patch: PromptTypePatch,
    ) -> StoreResult<PromptType> {
        let mut update = QueryBuilder::<Sqlite>::new("UPDATE prompt_types SET updated_at = ");
        update.push_bind(encode_time(now()));
        if let Some(name) = patch.name {
            update.push(", name = ").push_bind(name);
        }
        if let Some(schema) = patch.schema {
            update.push(", schema = ").push_bind(schema);
        }
        if let Some(restricted_creation) = patch.restricted_creation {
            update
                .push(", restricted_creation = ")
                .push_bind(restricted_creation);
        }
        if let Some(requires_approval) = patch.requires_approval {
            update
                .push(", requires_approval = ")
                .push_bind(requires_approval);
        }
        if let Some(review_every_days) = patch.review_every_days {
            update
                .push(", review_every_days = ")
                .push_bind(review_every_days.map(i64::from));
        }
        if let Some(workflow) = patch.approval_workflow {
            update
                .push(", approval_workflow = ")
                .push_bind(workflow.map(Json));
        }
        update
            .push(" WHERE key = ")
            .push_bind(key.to_string())
            .push(concat!(" RETURNING ", prompt_type_columns!()));
        let row = update
            .build()
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| prompt_type_not_found(key))?;
        decode_prompt_type(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_prompt_type(&self, key: &str) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM prompt_types WHERE key = $1")
            .bind(key)
            .execute(&self.writer)
            .await;
        let deleted = match deleted {
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(common::prompt_type_in_use(key));
            }
            other => other?,
        };
        if deleted.rows_affected() == 0 {
            return Err(prompt_type_not_found(key));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        let user = common::new_user(user, now());
        let inserted = sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)"
        ))
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.external_user_id)
        .bind(&user.did)
        .bind(&user.at_protocol_handle)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(Json(common::role_words(&user.roles)))
        .bind(Json(&user.permissions))
        .bind(&user.data)
        .bind(encode_time(user.created_at))
        .execute(&self.writer)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => {
                return Err(common::email_taken(user.email.as_deref()));
            }
            other => other?,
        };
        Ok(user)
    }

    #[tracing::instrument(skip_all)]
    async fn get_user(&self, id: Uuid) -> StoreResult<User> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| StoreError::not_found(user_with_id(id)))?;
        decode_user(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY created_at, id"
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode_user).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn update_user(&self, id: Uuid, patch: UserPatch) -> StoreResult<User> {
        let mut update = QueryBuilder::<Sqlite>::new("UPDATE users SET updated_at = ");
        update.push_bind(encode_time(now()));
        let new_email = patch.email.clone().flatten();
        if let Some(email) = patch.email {
            update.push(", email = ").push_bind(email);
        }
        if let Some(external_user_id) = patch.external_user_id {
            update
                .push(", external_user_id = ")
                .push_bind(external_user_id);
        }
        if let Some(did) = patch.did {
            update.push(", did = ").push_bind(did);
        }
        if let Some(handle) = patch.at_protocol_handle {
            update.push(", at_protocol_handle = ").push_bind(handle);
        }
        if let Some(first_name) = patch.first_name {
            update.push(", first_name = ").push_bind(first_name);
        }
        if let Some(last_name) = patch.last_name {
            update.push(", last_name = ").push_bind(last_name);
        }
        if let Some(roles) = patch.roles {
            update
                .push(", roles = ")
                .push_bind(Json(common::role_words(&roles)));
        }
        if let Some(permissions) = patch.permissions {
            update.push(", permissions = ").push_bind(Json(permissions));
        }
        if let Some(data) = patch.data {
            update.push(", data = ").push_bind(data);
        }
        update
            .push(" WHERE id = ")
            .push_bind(id)
            .push(concat!(" RETURNING ", user_columns!()));
        let row = match update.build().fetch_optional(&self.writer).await {
            Err(error) if is_unique_violation(&error) => {
                return Err(common::email_taken(new_email.as_deref()));
            }
            other => other?,
        };
        decode_user(&row.ok_or_else(|| StoreError::not_found(user_with_id(id)))?)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_user(&self, id: Uuid) -> StoreResult<()> {
        // The user's tokens go with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::not_found(user_with_id(id)));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn create_token(&self, token: NewApiToken) -> StoreResult<ApiToken> {
        let created = common::new_token(&token, now());
        let inserted = sqlx::query(concat!(
            "INSERT INTO api_tokens (token_hash, ",
            token_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, NULL)"
        ))
        .bind(&token.token_hash)
        .bind(created.id)
        .bind(&created.name)
        .bind(&created.token_prefix)
        .bind(created.role.as_str())
        .bind(created.user_id)
        .bind(&created.agent_id)
        .bind(
            created
                .scopes
                .as_deref()
                .map(|s| Json(common::scope_words(s))),
        )
        .bind(created.prompt_names.as_ref().map(Json))
        .bind(created.expires_at.map(encode_time))
        .bind(encode_time(created.created_at))
        .bind(created.created_by)
        .execute(&self.writer)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => return Err(common::token_hash_taken()),
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(StoreError::not_found(user_with_id(
                    created.user_id.unwrap_or_default(),
                )));
            }
            other => other?,
        };
        Ok(created)
    }

    #[tracing::instrument(skip_all)]
    async fn find_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(FIND_TOKEN_BY_HASH)
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(decode_token).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY created_at DESC, id DESC"
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode_token).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_token(&self, id: Uuid) -> StoreResult<ApiToken> {
        let row = sqlx::query(concat!(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING ",
            token_columns!()
        ))
        .bind(id)
        .bind(encode_time(now()))
        .fetch_optional(&self.writer)
        .await?
        .ok_or_else(|| StoreError::not_found(token_with_id(id)))?;
        decode_token(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn touch_token(&self, id: Uuid) -> StoreResult<()> {
        // Best effort: a missing token, or one touched less than TOUCH_INTERVAL ago, is left
        // alone without an error.
        let at = now();
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(id)
        .bind(encode_time(at))
        .bind(encode_time(at - common::TOUCH_INTERVAL))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn count_tokens(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM api_tokens")
            .fetch_one(&self.reader)
            .await?)
    }

    #[tracing::instrument(skip_all)]
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        let mut pending = common::pending_audit(entry)?;
        // BEGIN IMMEDIATE on the single writer connection: the log's lock.
        let mut tx = self.begin_write().await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let checkpoint: Option<(i64, String)> = if last.is_none() {
            sqlx::query_as(
                "SELECT up_to_seq, up_to_hash FROM audit_checkpoints \
                 ORDER BY up_to_seq DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?
        } else {
            None
        };
        let at_ns = pending.at_ns;
        let detail = std::mem::take(&mut pending.detail);
        let chained = pending.chain(last, checkpoint);
        let entry = &chained.entry;
        sqlx::query(concat!(
            "INSERT INTO audit_log (",
            audit_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19)"
        ))
        .bind(chained.seq)
        .bind(entry.id)
        .bind(at_ns)
        .bind(&entry.actor_kind)
        .bind(&entry.actor_id)
        .bind(entry.actor_role.map(Role::as_str))
        .bind(&entry.action)
        .bind(entry.outcome.as_str())
        .bind(entry.prompt_id)
        .bind(&entry.prompt_name)
        .bind(entry.prompt_scope.map(|scope| scope.as_str()))
        .bind(
            entry
                .classification
                .map(|classification| classification.as_str()),
        )
        .bind(&entry.before_hash)
        .bind(&entry.after_hash)
        .bind(detail)
        .bind(&entry.source)
        .bind(&entry.request_id)
        .bind(&chained.prev_hash)
        .bind(&chained.hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(chained)
    }

    #[tracing::instrument(skip_all)]
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        common::check_audit_limit(query.limit)?;
        let mut select = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE TRUE"
        ));
        push_audit_filters(&mut select, query);
        select.push(" ORDER BY seq LIMIT ").push_bind(query.limit);
        let rows = select.build().fetch_all(&self.reader).await?;
        rows.iter().map(decode_audit).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn audit_chain(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        common::check_audit_limit(limit)?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(decode_audit).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            checkpoint_columns!(),
            " FROM audit_checkpoints ORDER BY up_to_seq DESC LIMIT 1"
        ))
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(decode_checkpoint).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn last_audit_before(
        &self,
        cutoff: OffsetDateTime,
    ) -> StoreResult<Option<(i64, String)>> {
        // The entry just before the first one written at or after the cutoff: every entry up to
        // it is older than the cutoff, even if writers' clocks made `at` non-monotonic.
        Ok(sqlx::query_as(
            "SELECT seq, hash FROM audit_log WHERE seq < coalesce((SELECT min(seq) FROM audit_log \
             WHERE at_ns >= $1), 9223372036854775807) ORDER BY seq DESC LIMIT 1",
        )
        .bind(common::clamped_unix_nanos(cutoff))
        .fetch_optional(&self.reader)
        .await?)
    }

    #[tracing::instrument(skip_all)]
    async fn reencrypt(&self) -> StoreResult<u64> {
        let keys = self.keys().ok_or_else(common::encryption_key_required)?;
        let current = keys.current_key_id();
        let mut total = 0;
        // Versions sealed under an older key, one short write transaction per batch.
        loop {
            let mut tx = self.begin_write().await?;
            let rows = sqlx::query(
                "SELECT id, key_id, nonce, ciphertext FROM prompt_versions \
                 WHERE key_id IS NOT NULL AND key_id <> $1 ORDER BY id LIMIT $2",
            )
            .bind(current)
            .bind(common::REENCRYPT_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let id: Uuid = row.try_get(0)?;
                let Some(sealed) =
                    common::stored_seal(row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)?
                else {
                    continue;
                };
                let content = common::open_content(Some(keys), id, &sealed)?;
                let resealed =
                    StoredContent::sealed(common::seal_content(Some(keys), id, &content)?);
                store_content(&mut tx, id, resealed).await?;
            }
            tx.commit().await?;
            total += rows.len() as u64;
        }
        // Versions of confidential/restricted prompts still in clear (written before encryption
        // was configured), one prompt per transaction.
        loop {
            let prompt_ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT DISTINCT v.prompt_id FROM prompt_versions v \
                 JOIN prompts p ON p.id = v.prompt_id \
                 WHERE v.ciphertext IS NULL AND v.purged_at IS NULL \
                 AND p.classification IN ('confidential', 'restricted') LIMIT $1",
            )
            .bind(common::REENCRYPT_BATCH)
            .fetch_all(&self.reader)
            .await?;
            if prompt_ids.is_empty() {
                break;
            }
            for prompt_id in prompt_ids {
                let mut tx = self.begin_write().await?;
                let classification: Option<String> =
                    sqlx::query_scalar("SELECT classification FROM prompts WHERE id = $1")
                        .bind(prompt_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(classification) = classification {
                    let classification =
                        common::parse_word("prompts.classification", &classification)?;
                    total +=
                        reseal_versions(&mut tx, prompt_id, classification, Some(keys)).await?;
                }
                tx.commit().await?;
            }
        }
        // Test cases sealed under another key, or left in clear on a confidential/restricted
        // prompt: one prompt per transaction (not counted: the total counts versions).
        let prompt_ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT t.prompt_id FROM prompt_tests t JOIN prompts p ON p.id = t.prompt_id \
             WHERE (t.key_id IS NOT NULL AND t.key_id <> $1) \
             OR (t.key_id IS NULL AND p.classification IN ('confidential', 'restricted'))",
        )
        .bind(keys.current_key_id())
        .fetch_all(&self.reader)
        .await?;
        for prompt_id in prompt_ids {
            let mut tx = self.begin_write().await?;
            let classification: Option<String> =
                sqlx::query_scalar("SELECT classification FROM prompts WHERE id = $1")
                    .bind(prompt_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(classification) = classification {
                let classification = common::parse_word("prompts.classification", &classification)?;
                reseal_tests(&mut tx, prompt_id, classification, Some(keys)).await?;
            }
            tx.commit().await?;
        }
        Ok(total)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_audit(&self, checkpoint: Checkpoint) -> StoreResult<()> {
        let at_ns = common::unix_nanos("at", checkpoint.at)?;
        let mut tx = self.begin_write().await?;
        let found: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(checkpoint.up_to_seq)
            .fetch_optional(&mut *tx)
            .await?;
        if found.as_deref() != Some(checkpoint.up_to_hash.as_str()) {
            return Err(common::checkpoint_mismatch(&checkpoint, found.as_deref()));
        }
        sqlx::query(concat!(
            "INSERT INTO audit_checkpoints (",
            checkpoint_columns!(),
            ") VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(checkpoint.up_to_seq)
        .bind(&checkpoint.up_to_hash)
        .bind(checkpoint.purged)
        .bind(at_ns)
        .bind(&checkpoint.signature)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
            .bind(checkpoint.up_to_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn get_tests(&self, prompt_id: Uuid) -> StoreResult<Vec<TestCase>> {
        let mut tx = self.reader.begin().await?;
        prompt_name(&mut tx, prompt_id).await?;
        let cases = load_tests(&mut tx, prompt_id, self.keys()).await?;
        tx.commit().await?;
        Ok(cases)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_tests(&self, prompt_id: Uuid, cases: Vec<TestCase>) -> StoreResult<Prompt> {
        let mut tx = self.begin_write().await?;
        let prompt = fetch_prompt(&mut tx, &PromptKey::Id(prompt_id)).await?;
        let at = now();
        write_tests(
            &mut tx,
            prompt_id,
            prompt.classification,
            self.keys(),
            &cases,
            at,
        )
        .await?;
        bump_revision(&mut tx, prompt_id, at).await?;
        let prompt = fetch_prompt(&mut tx, &PromptKey::Id(prompt_id)).await?;
        tx.commit().await?;
        Ok(prompt)
    }

    async fn deprecate_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        expected_from: VersionStatus,
        deprecation: Deprecation,
    ) -> StoreResult<PromptVersion> {
        let mut tx = self.begin_write().await?;
        let version = move_version_status(
            &mut tx,
            self.keys(),
            prompt_id,
            version_number,
            expected_from,
            VersionStatus::Deprecated,
            Some(&deprecation),
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_archived_versions(
        &self,
        archived_before: OffsetDateTime,
    ) -> StoreResult<Vec<PurgedVersion>> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT v.prompt_id, p.name, v.version_number, v.diff_hash, v.archived_at \
             FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
             WHERE v.status = 'archived' AND v.archived_at < $1 AND v.purged_at IS NULL \
             ORDER BY v.archived_at, p.name, v.version_number",
        )
        .bind(encode_time(archived_before))
        .fetch_all(&mut *tx)
        .await?;
        let at = encode_time(now());
        let mut purged = Vec::with_capacity(rows.len());
        for row in &rows {
            let version = PurgedVersion {
                prompt_id: row.try_get(0)?,
                prompt_name: row.try_get(1)?,
                version_number: row.try_get(2)?,
                diff_hash: row.try_get(3)?,
                archived_at: decode_time(row, 4)?,
            };
            sqlx::query(
                "UPDATE prompt_versions SET content = 'null', config = '{}', \
                 parameter_schema = NULL, notes = NULL, findings = '[]', key_id = NULL, \
                 nonce = NULL, ciphertext = NULL, purged_at = $3 \
                 WHERE prompt_id = $1 AND version_number = $2",
            )
            .bind(version.prompt_id)
            .bind(version.version_number)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            purged.push(version);
        }
        tx.commit().await?;
        Ok(purged)
    }

    #[tracing::instrument(skip_all)]
    async fn mark_reviewed(&self, prompt_id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let updated = sqlx::query("UPDATE prompts SET last_reviewed_at = $2 WHERE id = $1")
            .bind(prompt_id)
            .bind(encode_time(at))
            .execute(&self.writer)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::not_found(prompt_with_id(prompt_id)));
        }
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn review_states(&self) -> StoreResult<Vec<ReviewState>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            prompt_columns!(),
            ", t.review_every_days, p.last_reviewed_at, \
             (SELECT max(v.approved_at) FROM prompt_versions v WHERE v.prompt_id = p.id) \
             FROM prompts p LEFT JOIN prompt_types t ON t.key = p.prompt_type \
             WHERE p.status <> 'archived' ORDER BY p.name"
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ReviewState {
                    prompt: decode_prompt(row, 0)?,
                    type_review_every_days: common::review_days(row.try_get(PROMPT_COLUMNS)?)?,
                    last_attested_at: decode_optional_time(row, PROMPT_COLUMNS + 1)?,
                    last_approved_at: decode_optional_time(row, PROMPT_COLUMNS + 2)?,
                })
            })
            .collect()
    }

    async fn set_label_target(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        target: &LabelTarget,
        required_status: Option<VersionStatus>,
        actor_id: Option<Uuid>,
    ) -> StoreResult<Option<LabelEvent>> {
        let mut tx = self.begin_write().await?;
        let name = prompt_name(&mut tx, prompt_id).await?;
        let action = match target {
            LabelTarget::Version(_) => LabelAction::Set,
            LabelTarget::Split(_) => LabelAction::Split,
        };
        let event = write_label_target(
            &mut tx,
            prompt_id,
            &name,
            label,
            target,
            action,
            required_status,
            actor_id,
        )
        .await?;
        tx.commit().await?;
        Ok(event)
    }

    #[tracing::instrument(skip_all)]
    async fn promote_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        version: Option<i64>,
        required_status: Option<VersionStatus>,
        actor_id: Option<Uuid>,
    ) -> StoreResult<LabelEvent> {
        let mut tx = self.begin_write().await?;
        let name = prompt_name(&mut tx, prompt_id).await?;
        let Some(current) = current_target(&mut tx, prompt_id, label).await? else {
            return Err(StoreError::not_found(label_of(label.as_str(), &name)));
        };
        let Some(split) = current.split() else {
            return Err(StoreError::conflict(format!(
                "{} does not split traffic: there is nothing to promote",
                label_of(label.as_str(), &name)
            )));
        };
        let chosen = common::promote_choice(split, version, label.as_str(), &name)?;
        let event = write_label_target(
            &mut tx,
            prompt_id,
            &name,
            label,
            &LabelTarget::Version(chosen),
            LabelAction::Promote,
            required_status,
            actor_id,
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("a promote recorded no move".into()))?;
        tx.commit().await?;
        Ok(event)
    }

    #[tracing::instrument(skip_all)]
    async fn rollback_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        actor_id: Option<Uuid>,
    ) -> StoreResult<LabelEvent> {
        let mut tx = self.begin_write().await?;
        let name = prompt_name(&mut tx, prompt_id).await?;
        let current = current_target(&mut tx, prompt_id, label).await?;
        let past: Vec<i64> = sqlx::query_scalar(
            "SELECT to_version FROM label_history \
             WHERE prompt_id = $1 AND label = $2 AND to_version IS NOT NULL ORDER BY id DESC",
        )
        .bind(prompt_id)
        .bind(label.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let approved: Vec<i64> = sqlx::query_scalar(
            "SELECT version_number FROM prompt_versions WHERE prompt_id = $1 AND status = $2",
        )
        .bind(prompt_id)
        .bind(VersionStatus::Approved.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let Some(target) = common::rollback_target(
            &past,
            current.as_ref().map(LabelTarget::primary),
            |version| approved.contains(&version),
        ) else {
            return Err(StoreError::conflict(format!(
                "{} has no earlier approved version to roll back to",
                label_of(label.as_str(), &name)
            )));
        };
        let event = write_label_target(
            &mut tx,
            prompt_id,
            &name,
            label,
            &LabelTarget::Version(target),
            LabelAction::Rollback,
            Some(VersionStatus::Approved),
            actor_id,
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("a rollback recorded no move".into()))?;
        tx.commit().await?;
        Ok(event)
    }

    #[tracing::instrument(skip_all)]
    async fn label_target(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        at: Option<OffsetDateTime>,
    ) -> StoreResult<Option<LabelTarget>> {
        let mut tx = self.reader.begin().await?;
        prompt_name(&mut tx, prompt_id).await?;
        let target = match at {
            None => current_target(&mut tx, prompt_id, label).await?,
            Some(at) if label.is_latest() => {
                let rows = sqlx::query(
                    "SELECT version_number, created_at FROM prompt_versions WHERE prompt_id = $1",
                )
                .bind(prompt_id)
                .fetch_all(&mut *tx)
                .await?;
                let versions = rows
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, decode_time(row, 1)?)))
                    .collect::<StoreResult<Vec<_>>>()?;
                common::latest_at(&versions, at)
            }
            Some(at) => {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    label_event_columns!(),
                    " FROM label_history WHERE prompt_id = $1 AND label = $2 ORDER BY id"
                ))
                .bind(prompt_id)
                .bind(label.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let history = rows
                    .iter()
                    .map(decode_label_event)
                    .collect::<StoreResult<Vec<_>>>()?;
                common::target_at(&history, at)
            }
        };
        tx.commit().await?;
        Ok(target)
    }
    async fn approve_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        review: NewReview,
    ) -> StoreResult<ReviewOutcome> {
        self.record_review(prompt_id, version_number, review, ReviewDecision::Approve)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn reject_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        review: NewReview,
    ) -> StoreResult<ReviewOutcome> {
        self.record_review(prompt_id, version_number, review, ReviewDecision::Reject)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_reviews(
        &self,
        prompt_id: Uuid,
        version_number: i64,
    ) -> StoreResult<VersionReviews> {
        let rows = sqlx::query(concat!(
            "SELECT p.name, v.review_round, a.id, ",
            review_columns!(),
            " FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
             AND v.version_number = $2 LEFT JOIN version_approvals a \
             ON a.prompt_id = v.prompt_id AND a.version_number = v.version_number \
             WHERE p.id = $1 ORDER BY a.round, a.at, a.id"
        ))
        .bind(prompt_id)
        .bind(version_number)
        .fetch_all(&self.reader)
        .await?;
        let Some(first) = rows.first() else {
            return Err(StoreError::not_found(prompt_with_id(prompt_id)));
        };
        let Some(current_round) = first.try_get::<Option<i64>, _>(1)? else {
            let name: String = first.try_get(0)?;
            return Err(StoreError::not_found(version_of(version_number, &name)));
        };
        let mut reviews = Vec::new();
        for row in &rows {
            if row.try_get::<Option<Uuid>, _>(2)?.is_some() {
                reviews.push(decode_review(row, 3)?);
            }
        }
        Ok(VersionReviews {
            current_round,
            reviews,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn review_queue(
        &self,
        visibility: Option<&VisibilityFilter>,
    ) -> StoreResult<Vec<ReviewQueueItem>> {
        let mut query = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            prompt_columns!(),
            ", v.version_number, v.semver, v.author_id, v.created_at, v.review_round, \
             t.approval_workflow, a.id, ",
            review_columns!(),
            " FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
             LEFT JOIN prompt_types t ON t.key = p.prompt_type \
             LEFT JOIN version_approvals a ON a.prompt_id = v.prompt_id \
             AND a.version_number = v.version_number AND a.round = v.review_round \
             WHERE v.status = 'review' AND p.status <> 'archived'"
        ));
        if let Some(filter) = visibility {
            push_visibility(&mut query, filter);
        }
        query.push(" ORDER BY p.name, v.version_number, a.at, a.id");
        let rows = query.build().fetch_all(&self.reader).await?;
        let mut items: Vec<ReviewQueueItem> = Vec::new();
        for row in &rows {
            let at = PROMPT_COLUMNS;
            let prompt_id: Uuid = row.try_get(0)?;
            let version_number: i64 = row.try_get(at)?;
            let same = items.last().is_some_and(|item| {
                item.prompt.id == prompt_id && item.version_number == version_number
            });
            if !same {
                items.push(ReviewQueueItem {
                    prompt: decode_prompt(row, 0)?,
                    version_number,
                    semver: row.try_get(at + 1)?,
                    author_id: row.try_get(at + 2)?,
                    created_at: decode_time(row, at + 3)?,
                    round: row.try_get(at + 4)?,
                    type_workflow: row
                        .try_get::<Option<Json<ApprovalWorkflow>>, _>(at + 5)?
                        .map(|workflow| workflow.0),
                    approvals: Vec::new(),
                });
            }
            if row.try_get::<Option<Uuid>, _>(at + 6)?.is_some()
                && let Some(item) = items.last_mut()
            {
                item.approvals.push(decode_review(row, at + 7)?);
            }
        }
        Ok(items)
    }

    #[tracing::instrument(skip_all)]
    async fn serve_candidates(
        &self,
        subject: &ServeSubject,
        selector: &VersionSelector,
    ) -> StoreResult<Vec<ServeCandidate>> {
        // Statement 1: the candidate prompts, each with where the label points now.
        let label = match selector {
            VersionSelector::Label(label) => Some(label.as_str().to_string()),
            VersionSelector::Number(_) => None,
        };
        let mut query = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            prompt_columns!(),
            ", lb.version_number, lb.split FROM "
        ));
        match subject {
            ServeSubject::Prompt(_) => query.push("prompts p"),
            ServeSubject::Capability { .. } => {
                query.push("links k JOIN prompts p ON p.id = k.prompt_id")
            }
        };
        query
            .push(" LEFT JOIN labels lb ON lb.prompt_id = p.id AND lb.name = ")
            .push_bind(label.clone());
        match subject {
            ServeSubject::Prompt(PromptKey::Id(id)) => {
                query.push(" WHERE p.id = ").push_bind(*id);
            }
            ServeSubject::Prompt(PromptKey::Name(name)) => {
                query
                    .push(" WHERE p.name = ")
                    .push_bind(name.as_str().to_string());
            }
            ServeSubject::Capability {
                agent_id,
                capability,
            } => {
                query
                    .push(" WHERE k.capability = ")
                    .push_bind(capability.clone());
                match agent_id {
                    Some(agent_id) => query
                        .push(" AND (k.agent_id = ")
                        .push_bind(agent_id.clone())
                        .push(" OR k.agent_id IS NULL)"),
                    None => query.push(" AND k.agent_id IS NULL"),
                };
                query.push(" ORDER BY k.agent_id IS NULL, k.priority DESC, k.created_at, k.id");
            }
        }
        let rows = query.build().fetch_all(&self.reader).await?;
        if rows.is_empty()
            && let ServeSubject::Prompt(key) = subject
        {
            return Err(StoreError::not_found(key.to_string()));
        }
        let mut candidates = Vec::with_capacity(rows.len());
        for row in &rows {
            let prompt = decode_prompt(row, 0)?;
            let target = match selector {
                VersionSelector::Number(_) => None,
                VersionSelector::Label(_) => {
                    match row.try_get::<Option<i64>, _>(PROMPT_COLUMNS)? {
                        None => None,
                        Some(primary) => {
                            let split = common::decode_split(
                                row.try_get::<Option<Json<Vec<SplitEntry>>>, _>(
                                    PROMPT_COLUMNS + 1,
                                )?
                                .map(|json| json.0),
                            )?;
                            Some(LabelTarget::from_parts(primary, split))
                        }
                    }
                }
            };
            candidates.push(ServeCandidate {
                prompt,
                target,
                versions: Vec::new(),
            });
        }
        // Statement 2: every version those candidates may serve.
        let wanted: Vec<(Uuid, Vec<i64>)> = candidates
            .iter()
            .filter_map(|candidate| {
                let numbers = match (selector, &candidate.target) {
                    (VersionSelector::Number(number), _) => vec![*number],
                    (VersionSelector::Label(_), Some(target)) => target.versions(),
                    (VersionSelector::Label(_), None) => return None,
                };
                Some((candidate.prompt.id, numbers))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(candidates);
        }
        let mut query = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            version_columns!(),
            " FROM prompt_versions v WHERE "
        ));
        for (index, (prompt_id, numbers)) in wanted.iter().enumerate() {
            if index > 0 {
                query.push(" OR ");
            }
            query
                .push("(v.prompt_id = ")
                .push_bind(*prompt_id)
                .push(" AND v.version_number IN (");
            let mut separated = query.separated(", ");
            for number in numbers {
                separated.push_bind(*number);
            }
            separated.push_unseparated("))");
        }
        let rows = query.build().fetch_all(&self.reader).await?;
        for row in &rows {
            let Some(version) = decode_version(row, 0, self.keys())? else {
                continue;
            };
            if let Some(candidate) = candidates
                .iter_mut()
                .find(|candidate| candidate.prompt.id == version.prompt_id)
            {
                candidate.versions.push(version);
            }
        }
        Ok(candidates)
    }

    fn pool_stats(&self) -> Vec<crate::types::PoolStats> {
        let stats = |pool: &'static str, connections: &SqlitePool| crate::types::PoolStats {
            pool,
            size: connections.size(),
            idle: u32::try_from(connections.num_idle()).unwrap_or(u32::MAX),
            max: connections.options().get_max_connections(),
        };
        let mut pools = vec![stats("writer", &self.writer)];
        // An in-memory database reads through its writer: one pool, reported once.
        if !self.in_memory {
            pools.push(stats("reader", &self.reader));
        }
        pools
    }

    async fn insert_runs(&self, runs: Vec<NewRun>) -> StoreResult<u64> {
        if runs.is_empty() {
            return Ok(0);
        }
        // Seal before taking the writer: the single writer is never held for crypto.
        let mut stored = Vec::with_capacity(runs.len());
        for run in &runs {
            stored.push(common::stored_run(self.keys(), run)?);
        }
        let mut tx = self.begin_write().await?;
        let existing = existing_prompts(&mut tx, runs.iter().map(|run| run.prompt_id)).await?;
        let kept: Vec<_> = runs
            .iter()
            .zip(stored)
            .filter(|(run, _)| existing.contains(&run.prompt_id))
            .collect();
        // 18 columns per row: well under SQLite's 32766 bound variables per statement.
        for chunk in kept.chunks(RUNS_PER_INSERT) {
            let mut builder = QueryBuilder::<Sqlite>::new(
                "INSERT INTO runs (id, prompt_id, version_number, params, rendered, key_id, nonce, \
                 ciphertext, sender, session_id, request_id, agent_id, deployment_model, \
                 created_at) ",
            );
            builder.push_values(chunk, |mut row, (run, (params, rendered, seal))| {
                let (key_id, nonce, ciphertext) = match seal {
                    Some(sealed) => (
                        Some(sealed.key_id.clone()),
                        Some(sealed.nonce.clone()),
                        Some(sealed.ciphertext.clone()),
                    ),
                    None => (None, None, None),
                };
                row.push_bind(run.id)
                    .push_bind(run.prompt_id)
                    .push_bind(run.version_number)
                    .push_bind(params.to_string())
                    .push_bind(rendered.to_string())
                    .push_bind(key_id)
                    .push_bind(nonce)
                    .push_bind(ciphertext)
                    .push_bind(run.sender.clone())
                    .push_bind(run.session_id.clone())
                    .push_bind(run.request_id.clone())
                    .push_bind(run.agent_id.clone())
                    .push_bind(run.deployment_model.as_str())
                    .push_bind(encode_time(run.created_at));
            });
            builder.build().execute(&mut *tx).await?;
        }
        upsert_usage(
            &mut tx,
            &common::uses_per_version(kept.iter().map(|(run, _)| *run)),
        )
        .await?;
        tx.commit().await?;
        Ok(kept.len() as u64)
    }

    async fn add_usage(&self, uses: Vec<VersionUse>) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let existing = existing_prompts(&mut tx, uses.iter().map(|one| one.prompt_id)).await?;
        let kept = common::merge_uses(
            uses.into_iter()
                .filter(|one| existing.contains(&one.prompt_id)),
        );
        upsert_usage(&mut tx, &kept).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn run_head(&self, id: Uuid) -> StoreResult<RunHead> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_head_columns!(),
            " FROM runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| StoreError::not_found(common::run_with_id(id)))?;
        decode_run_head(&row)
    }

    async fn get_run(&self, id: Uuid) -> StoreResult<Run> {
        let row = sqlx::query(concat!(
            "SELECT ",
            run_head_columns!(),
            ", params, rendered, key_id, nonce, ciphertext FROM runs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or_else(|| StoreError::not_found(common::run_with_id(id)))?;
        let head = decode_run_head(&row)?;
        let json = |index: usize| -> StoreResult<serde_json::Value> {
            let text: String = row.try_get(index)?;
            serde_json::from_str(&text)
                .map_err(|error| StoreError::Corrupt(format!("runs: {error}")))
        };
        let seal = common::stored_seal(row.try_get(15)?, row.try_get(16)?, row.try_get(17)?)?;
        let (params, rendered) = common::open_run(self.keys(), id, json(13)?, json(14)?, seal)?;
        Ok(Run {
            head,
            params,
            rendered,
        })
    }

    async fn upsert_feedback(
        &self,
        run_id: Uuid,
        feedback: Feedback,
        at: OffsetDateTime,
    ) -> StoreResult<RunHead> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            run_head_columns!(),
            " FROM runs WHERE id = $1"
        ))
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found(common::run_with_id(run_id)))?;
        let mut head = decode_run_head(&row)?;
        let merged = head.feedback.clone().unwrap_or_default().merged(&feedback);
        let delta = FeedbackDelta::between(head.feedback.as_ref(), &merged);
        sqlx::query(
            "UPDATE runs SET feedback_success = $2, feedback_score = $3, feedback_comment = $4, \
             feedback_at = $5 WHERE id = $1",
        )
        .bind(run_id)
        .bind(merged.success)
        .bind(merged.score)
        .bind(merged.comment.clone())
        .bind(encode_time(at))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO version_usage (prompt_id, version_number, outcomes, successes, scored, \
             score_sum) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (prompt_id, version_number) DO UPDATE SET \
             outcomes = version_usage.outcomes + excluded.outcomes, \
             successes = version_usage.successes + excluded.successes, \
             scored = version_usage.scored + excluded.scored, \
             score_sum = version_usage.score_sum + excluded.score_sum",
        )
        .bind(head.prompt_id)
        .bind(head.version_number)
        .bind(delta.outcomes)
        .bind(delta.successes)
        .bind(delta.scored)
        .bind(delta.score_sum)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        head.feedback = Some(merged);
        head.feedback_at = Some(at);
        Ok(head)
    }

    async fn version_usage(&self, prompt_id: Uuid) -> StoreResult<Vec<VersionUsage>> {
        let rows = sqlx::query(
            "SELECT v.version_number, coalesce(u.times_used, 0), u.last_used, \
             coalesce(u.outcomes, 0), coalesce(u.successes, 0), coalesce(u.scored, 0), \
             coalesce(u.score_sum, 0.0) \
             FROM prompt_versions v LEFT JOIN version_usage u \
             ON u.prompt_id = v.prompt_id AND u.version_number = v.version_number \
             WHERE v.prompt_id = $1 ORDER BY v.version_number DESC",
        )
        .bind(prompt_id)
        .fetch_all(&self.reader)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::not_found(prompt_with_id(prompt_id)));
        }
        rows.iter()
            .map(|row| {
                Ok(VersionUsage {
                    version_number: row.try_get(0)?,
                    usage: Usage {
                        times_used: row.try_get(1)?,
                        last_used: decode_optional_time(row, 2)?,
                        outcomes: row.try_get(3)?,
                        successes: row.try_get(4)?,
                        scored: row.try_get(5)?,
                        score_sum: row.try_get(6)?,
                    },
                })
            })
            .collect()
    }

    async fn recent_outcomes(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        limit: i64,
    ) -> StoreResult<Vec<bool>> {
        common::check_audit_limit(limit)?;
        Ok(sqlx::query_scalar(
            "SELECT feedback_success FROM runs WHERE prompt_id = $1 AND version_number = $2 \
             AND feedback_success IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(prompt_id)
        .bind(version_number)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}

/// The run columns without params and output, in the order [`decode_run_head`] reads them.
macro_rules! run_head_columns {
    () => {
        "id, prompt_id, version_number, sender, session_id, request_id, agent_id, \
         deployment_model, created_at, feedback_success, feedback_score, feedback_comment, \
         feedback_at"
    };
}
use run_head_columns;

/// How many runs one multi-row INSERT carries.
const RUNS_PER_INSERT: usize = 500;

/// Which of `prompt_ids` still exist, read in the write transaction (runs and uses of a prompt
/// deleted meanwhile are skipped).
async fn existing_prompts(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    prompt_ids: impl Iterator<Item = Uuid>,
) -> StoreResult<std::collections::BTreeSet<Uuid>> {
    let mut existing = std::collections::BTreeSet::new();
    for prompt_id in prompt_ids.collect::<std::collections::BTreeSet<_>>() {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM prompts WHERE id = $1")
            .bind(prompt_id)
            .fetch_optional(&mut **tx)
            .await?;
        if found.is_some() {
            existing.insert(prompt_id);
        }
    }
    Ok(existing)
}

/// Adds `uses` (one per version) to `version_usage`; `last_used` never moves back.
async fn upsert_usage(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    uses: &[VersionUse],
) -> StoreResult<()> {
    // Many rows per statement: each statement is a round trip to SQLite's worker thread, and
    // with thousands of prompts in use a statement per version made a tally write thousands of
    // them. `uses` has one entry per version (merged by the callers), as `ON CONFLICT` requires.
    for chunk in uses.chunks(USAGE_ROWS_PER_STATEMENT) {
        let mut builder = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO version_usage (prompt_id, version_number, times_used, last_used) ",
        );
        builder.push_values(chunk, |mut row, one| {
            row.push_bind(one.prompt_id)
                .push_bind(one.version_number)
                .push_bind(one.count)
                .push_bind(encode_time(one.last_used));
        });
        builder.push(
            " ON CONFLICT (prompt_id, version_number) DO UPDATE SET \
             times_used = version_usage.times_used + excluded.times_used, \
             last_used = max(coalesce(version_usage.last_used, ''), excluded.last_used)",
        );
        builder.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Rows of one usage upsert: 4 parameters each, far below SQLite's limit on parameters.
const USAGE_ROWS_PER_STATEMENT: usize = 500;

fn decode_run_head(row: &SqliteRow) -> StoreResult<RunHead> {
    let deployment_model: String = row.try_get(7)?;
    let (feedback, feedback_at) = common::feedback_of(
        row.try_get(9)?,
        row.try_get(10)?,
        row.try_get(11)?,
        decode_optional_time(row, 12)?,
    );
    Ok(RunHead {
        id: row.try_get(0)?,
        prompt_id: row.try_get(1)?,
        version_number: row.try_get(2)?,
        sender: row.try_get(3)?,
        session_id: row.try_get(4)?,
        request_id: row.try_get(5)?,
        agent_id: row.try_get(6)?,
        deployment_model: common::parse_word("runs.deployment_model", &deployment_model)?,
        created_at: decode_time(row, 8)?,
        feedback,
        feedback_at,
    })
}

impl SqliteStore {
    /// Approve or reject, decided and written in one write transaction (the single writer
    /// connection is the prompt's lock).
    async fn record_review(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        review: NewReview,
        decision: ReviewDecision,
    ) -> StoreResult<ReviewOutcome> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT p.name, p.classification, t.approval_workflow, v.status, v.review_round, \
             v.author_id FROM prompts p LEFT JOIN prompt_types t ON t.key = p.prompt_type \
             LEFT JOIN prompt_versions v ON v.prompt_id = p.id AND v.version_number = $2 \
             WHERE p.id = $1",
        )
        .bind(prompt_id)
        .bind(version_number)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))?;
        let name: String = row.try_get(0)?;
        let Some(status) = row.try_get::<Option<String>, _>(3)? else {
            return Err(StoreError::not_found(version_of(version_number, &name)));
        };
        let subject = ReviewSubject {
            classification: common::parse_word(
                "prompts.classification",
                &row.try_get::<String, _>(1)?,
            )?,
            type_workflow: row
                .try_get::<Option<Json<ApprovalWorkflow>>, _>(2)?
                .map(|workflow| workflow.0),
            status: common::parse_word("prompt_versions.status", &status)?,
            round: row.try_get(4)?,
            author_id: row.try_get(5)?,
            name,
        };
        let rows = sqlx::query(concat!(
            "SELECT ",
            review_columns!(),
            " FROM version_approvals a WHERE a.prompt_id = $1 AND a.version_number = $2 \
             AND a.round = $3 ORDER BY a.at, a.id"
        ))
        .bind(prompt_id)
        .bind(version_number)
        .bind(subject.round)
        .fetch_all(&mut *tx)
        .await?;
        let mut round = rows
            .iter()
            .map(|row| decode_review(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        let at = now();
        let (workflow, recorded, record) =
            common::decide_review(&subject, &round, &review, decision, at)?;
        sqlx::query(
            "INSERT INTO version_approvals (id, prompt_id, version_number, round, step, \
             approver_id, approver_role, decision, comment, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::now_v7())
        .bind(prompt_id)
        .bind(version_number)
        .bind(record.round)
        .bind(i64::from(record.step))
        .bind(&record.reviewer_id)
        .bind(record.reviewer_role.as_str())
        .bind(record.decision.as_str())
        .bind(&record.comment)
        .bind(encode_time(at))
        .execute(&mut *tx)
        .await?;
        let version = match common::status_after(decision, recorded) {
            // Completing the workflow (or rejecting) is a lifecycle move like any other: it
            // records its dates, re-derives the prompt's status and bumps the revision.
            Some(to) => {
                move_version_status(
                    &mut tx,
                    self.keys(),
                    prompt_id,
                    version_number,
                    VersionStatus::Review,
                    to,
                    None,
                )
                .await?
            }
            None => {
                bump_revision(&mut tx, prompt_id, at).await?;
                let row = sqlx::query(concat!(
                    "SELECT ",
                    version_columns!(),
                    " FROM prompt_versions v WHERE v.prompt_id = $1 AND v.version_number = $2"
                ))
                .bind(prompt_id)
                .bind(version_number)
                .fetch_one(&mut *tx)
                .await?;
                decode_version(&row, 0, self.keys())?.ok_or_else(|| {
                    StoreError::not_found(version_of(version_number, &subject.name))
                })?
            }
        };
        tx.commit().await?;
        round.push(record.clone());
        Ok(ReviewOutcome {
            version,
            record,
            complete: recorded.complete,
            workflow,
            round,
        })
    }
}

/// Decodes the review columns starting at `at`.
fn decode_review(row: &SqliteRow, at: usize) -> StoreResult<ReviewRecord> {
    common::review_record(
        row.try_get(at)?,
        row.try_get(at + 1)?,
        row.try_get(at + 2)?,
        &row.try_get::<String, _>(at + 3)?,
        &row.try_get::<String, _>(at + 4)?,
        row.try_get(at + 5)?,
        decode_time(row, at + 6)?,
    )
}

#[cfg(test)]
mod tests {
    use sqlx::AssertSqlSafe;

    use super::*;

    #[tokio::test]
    async fn the_token_lookup_uses_an_index() {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .expect("in-memory store");
        let plan: Vec<String> = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {FIND_TOKEN_BY_HASH}"
        )))
        .bind("hash")
        .fetch_all(&store.reader)
        .await
        .expect("plan")
        .iter()
        .map(|row| row.try_get::<String, _>(3).expect("detail"))
        .collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX") || step.contains("USING COVERING INDEX")),
            "{plan:?}"
        );
    }

    #[test]
    fn stored_times_sort_as_text_and_round_trip() {
        let early = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_001_000)
            .expect("valid time");
        let late = early + time::Duration::microseconds(999_999);
        let (early_text, late_text) = (encode_time(early), encode_time(late));
        assert_eq!(early_text, "2023-11-14T22:13:20.000001Z");
        assert!(early_text < late_text);
        assert_eq!(OffsetDateTime::parse(&late_text, &Rfc3339).ok(), Some(late));
    }
}
