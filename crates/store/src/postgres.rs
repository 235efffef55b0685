//! The server store: PostgreSQL through sqlx.
//!
//! Round trips are kept low with data-modifying CTEs: creating a prompt is one statement; adding
//! a version is four round trips: `BEGIN` with the prompt's `SELECT … FOR UPDATE`, the read of
//! the newest version, one write statement (version, `latest`, requested labels, their history,
//! the revision), `COMMIT`. The lock and the read must be separate statements: under READ
//! COMMITTED a statement's snapshot is taken before it waits for a row lock, so a read in the
//! locking statement could miss the version the previous lock holder just committed. Writers to
//! one prompt from this process queue in memory first ([`PromptWriters`]), so only one of them at
//! a time holds a connection waiting for the row lock.
//!
//! The audit log is one chain, so appends (and purges) serialize on one transaction-scoped
//! advisory lock ([`AUDIT_LOCK_KEY`]); appenders from this process queue in memory in front of
//! it, like prompt writers.

use std::{
    collections::{BTreeMap, HashMap},
    str::FromStr,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use async_trait::async_trait;
use promptvault_core::{
    access::VisibilityFilter,
    audit::{AuditEntry, Checkpoint, NewAuditEntry},
    compliance::Finding,
    crypto::KeyRing,
    deploy::{LabelTarget, SplitEntry},
    ident::{LabelName, PromptName},
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
use serde_json::json;
use sqlx::{
    AssertSqlSafe, PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder, Row, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
    types::Json,
};
use time::OffsetDateTime;
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
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "access",
        include_str!("../migrations/postgres/0002_access.sql"),
    ),
    (
        3,
        "encryption",
        include_str!("../migrations/postgres/0003_encryption.sql"),
    ),
    (
        4,
        "compliance",
        include_str!("../migrations/postgres/0004_compliance.sql"),
    ),
    (
        5,
        "approvals",
        include_str!("../migrations/postgres/0005_approvals.sql"),
    ),
    (
        6,
        "label splits",
        include_str!("../migrations/postgres/0006_label_splits.sql"),
    ),
    (
        7,
        "prompt tests",
        include_str!("../migrations/postgres/0007_prompt_tests.sql"),
    ),
    (
        8,
        "deprecation",
        include_str!("../migrations/postgres/0008_deprecation.sql"),
    ),
    (
        11,
        "runs",
        include_str!("../migrations/postgres/0011_runs.sql"),
    ),
];
/// The advisory lock that serializes audit appends and purges ("pvaudit" in ASCII). Advisory
/// locks are per database, not per schema, so test schemas in one database share it (harmless:
/// it is held for one short transaction).
const AUDIT_LOCK_KEY: i64 = 0x0070_7661_7564_6974;
/// Enough for 16 concurrent writers plus readers.
const MAX_CONNECTIONS: u32 = 20;

/// An audit entry waiting for the next batch, and where to say it was written.
#[derive(Debug)]
struct QueuedAudit {
    pending: common::PendingAudit,
    done: tokio::sync::oneshot::Sender<StoreResult<AuditEntry>>,
}

/// The PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    writers: Arc<PromptWriters>,
    /// Audit appenders of this process, queued in front of the advisory lock.
    audit_writers: Arc<tokio::sync::Mutex<()>>,
    /// Entries waiting to be appended: whoever holds `audit_writers` writes all of them in one
    /// transaction (a group commit: one flush for many concurrent appenders).
    audit_queue: Arc<std::sync::Mutex<Vec<QueuedAudit>>>,
    /// The keys for sealed content (confidential and restricted versions).
    keys: Option<Arc<KeyRing>>,
}

/// In-process queues of writers per prompt, in front of the row lock.
///
/// The row lock (`FOR UPDATE`) is what makes version numbers safe across processes. Without this
/// queue, N concurrent writers to one prompt from this process would each hold a pooled
/// connection while blocked on the row lock, and every commit would wake all of them to race for
/// it again. With it, one writer per prompt per process waits on the database and the rest wait
/// here, in FIFO order, without a connection.
#[derive(Debug, Default)]
struct PromptWriters {
    queues: Mutex<WriterQueues>,
}

#[derive(Debug, Default)]
struct WriterQueues {
    by_prompt: HashMap<Uuid, Weak<tokio::sync::Mutex<()>>>,
    /// Forget unused prompts when the map reaches this size.
    purge_at: usize,
}

impl PromptWriters {
    async fn enter(&self, prompt_id: Uuid) -> tokio::sync::OwnedMutexGuard<()> {
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            match queues.by_prompt.get(&prompt_id).and_then(Weak::upgrade) {
                Some(queue) => queue,
                None => {
                    if queues.by_prompt.len() >= queues.purge_at {
                        queues.by_prompt.retain(|_, queue| queue.strong_count() > 0);
                        queues.purge_at = (queues.by_prompt.len() * 2).max(64);
                    }
                    let queue = Arc::new(tokio::sync::Mutex::new(()));
                    queues.by_prompt.insert(prompt_id, Arc::downgrade(&queue));
                    queue
                }
            }
        };
        queue.lock_owned().await
    }
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names and runs the migrations. No
    /// encryption keys (see [`PgStore::connect_with`]).
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// [`PgStore::connect`] with options (the encryption key ring).
    #[tracing::instrument(skip_all)]
    pub async fn connect_with(url: &str, connect: ConnectOptions) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|error| {
            StoreError::Config(format!(
                "invalid PostgreSQL URL {:?}: {error}",
                redact_url(url)
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            // A ping before every use would add a round trip to every operation; a broken
            // connection fails its query instead and is then dropped from the pool.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        common::migrator(MIGRATIONS).run(&pool).await?;
        Ok(PgStore {
            pool,
            writers: Arc::default(),
            audit_writers: Arc::default(),
            audit_queue: Arc::default(),
            keys: connect.keys,
        })
    }

    /// Begins a transaction that holds the prompt's row lock (if the prompt exists), in one round
    /// trip: `BEGIN` and the `SELECT … FOR UPDATE` go together as one simple query. The
    /// statements that follow take fresh snapshots (READ COMMITTED), so they see everything the
    /// previous lock holder committed.
    async fn begin_locked(&self, prompt_id: Uuid) -> StoreResult<Transaction<'static, Postgres>> {
        // A simple query has no parameters, so the id is written into the text: a hyphenated
        // UUID is hex digits and hyphens only.
        let statement = format!(
            "BEGIN; SELECT 1 FROM prompts WHERE id = '{}' FOR UPDATE",
            prompt_id.hyphenated()
        );
        Ok(self.pool.begin_with(AssertSqlSafe(statement)).await?)
    }

    /// Begins a transaction that holds the audit log's advisory lock, in one round trip. The
    /// statements that follow see every entry the previous holder committed.
    async fn begin_audit(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let statement = format!("BEGIN; SELECT pg_advisory_xact_lock({AUDIT_LOCK_KEY})");
        Ok(self.pool.begin_with(AssertSqlSafe(statement)).await?)
    }

    fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_deref()
    }

    /// Why an `update_prompt` matched no row: a stale revision, or no such prompt.
    async fn update_missed(&self, id: Uuid, expected_revision: Option<i64>) -> StoreResult<Prompt> {
        let current: Option<i64> = sqlx::query_scalar("SELECT revision FROM prompts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match (current, expected_revision) {
            (Some(current), Some(expected)) => {
                Err(StoreError::PreconditionFailed { expected, current })
            }
            _ => Err(StoreError::not_found(prompt_with_id(id))),
        }
    }

    /// The pool, for the testing fixtures' checks.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
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

/// The version columns, in the order [`decode_version`] reads them.
macro_rules! version_columns {
    () => {
        "v.id, v.prompt_id, v.version_number, v.semver, v.content, v.config, v.parameter_schema, \
         v.diff_hash, v.notes, v.author_id, v.status, v.created_at, v.key_id, v.nonce, \
         v.ciphertext, v.findings, v.token_count, v.approved_at, v.deprecated_at, v.sunset_at, \
         v.replacement_prompt_id, v.replacement_name, v.archived_at, v.purged_at"
    };
}
const VERSION_COLUMNS: usize = 24;

macro_rules! label_event_columns {
    () => {
        "h.prompt_id, h.label, h.from_version, h.to_version, h.actor_id, h.at, h.action, h.split"
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

macro_rules! checkpoint_columns {
    () => {
        "up_to_seq, up_to_hash, purged, at_ns, signature"
    };
}

fn decode_prompt(row: &PgRow, at: usize) -> StoreResult<Prompt> {
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
        tags: row.try_get(at + 11)?,
        source: row.try_get(at + 12)?,
        classification: row.try_get(at + 13)?,
        status: row.try_get(at + 14)?,
        revision: row.try_get(at + 15)?,
        created_at: row.try_get(at + 16)?,
        updated_at: row.try_get(at + 17)?,
        access: row.try_get(at + 18)?,
    }
    .into_prompt()
}

/// Decodes the version columns starting at `at`; `None` when an outer join found no version.
fn decode_version(
    row: &PgRow,
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
        created_at: row.try_get(at + 11)?,
        key_id: row.try_get(at + 12)?,
        nonce: row.try_get(at + 13)?,
        ciphertext: row.try_get(at + 14)?,
        findings: row.try_get::<Json<Vec<Finding>>, _>(at + 15)?.0,
        token_count: row.try_get(at + 16)?,
        approved_at: row.try_get(at + 17)?,
        deprecated_at: row.try_get(at + 18)?,
        sunset_at: row.try_get(at + 19)?,
        replacement_prompt_id: row.try_get(at + 20)?,
        replacement_name: row.try_get(at + 21)?,
        archived_at: row.try_get(at + 22)?,
        purged_at: row.try_get(at + 23)?,
    }
    .into_version(keys)
    .map(Some)
}

/// Decodes the label event columns starting at `at`; `None` when an outer join found none.
fn decode_label_event(row: &PgRow, at: usize) -> StoreResult<Option<LabelEvent>> {
    let Some(prompt_id) = row.try_get::<Option<Uuid>, _>(at)? else {
        return Ok(None);
    };
    Ok(Some(LabelEvent {
        prompt_id,
        label: common::parse_label(&row.try_get::<String, _>(at + 1)?)?,
        from_version: row.try_get(at + 2)?,
        to_version: row.try_get(at + 3)?,
        actor_id: row.try_get(at + 4)?,
        at: row.try_get(at + 5)?,
        action: common::parse_word("label_history.action", &row.try_get::<String, _>(at + 6)?)?,
        split: common::decode_split(
            row.try_get::<Option<Json<Vec<SplitEntry>>>, _>(at + 7)?
                .map(|json| json.0),
        )?,
    }))
}

fn decode_prompt_type(row: &PgRow) -> StoreResult<PromptType> {
    Ok(PromptType {
        key: row.try_get(0)?,
        name: row.try_get(1)?,
        schema: row.try_get(2)?,
        restricted_creation: row.try_get(3)?,
        requires_approval: row.try_get(4)?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
        review_every_days: common::review_days(row.try_get::<Option<i32>, _>(7)?.map(i64::from))?,
        approval_workflow: row
            .try_get::<Option<Json<ApprovalWorkflow>>, _>(8)?
            .map(|workflow| workflow.0),
    })
}

fn decode_link(row: &PgRow) -> StoreResult<Link> {
    let name: String = row.try_get(2)?;
    Ok(Link {
        id: row.try_get(0)?,
        prompt_id: row.try_get(1)?,
        prompt_name: PromptName::parse(&name)
            .map_err(|error| StoreError::Corrupt(format!("prompts.name: {error}")))?,
        capability: row.try_get(3)?,
        agent_id: row.try_get(4)?,
        priority: row.try_get(5)?,
        created_at: row.try_get(6)?,
    })
}

fn decode_user(row: &PgRow) -> StoreResult<User> {
    UserRecord {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        external_user_id: row.try_get(2)?,
        did: row.try_get(3)?,
        at_protocol_handle: row.try_get(4)?,
        first_name: row.try_get(5)?,
        last_name: row.try_get(6)?,
        roles: row.try_get(7)?,
        permissions: row.try_get(8)?,
        data: row.try_get(9)?,
        created_at: row.try_get(10)?,
        updated_at: row.try_get(11)?,
    }
    .into_user()
}

fn decode_token(row: &PgRow) -> StoreResult<ApiToken> {
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
        expires_at: row.try_get(8)?,
        revoked_at: row.try_get(9)?,
        created_at: row.try_get(10)?,
        created_by: row.try_get(11)?,
        last_used_at: row.try_get(12)?,
    }
    .into_token()
}

fn decode_audit(row: &PgRow) -> StoreResult<AuditEntry> {
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

fn decode_checkpoint(row: &PgRow) -> StoreResult<Checkpoint> {
    common::decode_checkpoint(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
    )
}

async fn fetch_prompt<'e>(executor: impl PgExecutor<'e>, key: &PromptKey) -> StoreResult<Prompt> {
    let row = match key {
        PromptKey::Id(id) => {
            sqlx::query(concat!(
                "SELECT ",
                prompt_columns!(),
                " FROM prompts p WHERE p.id = $1"
            ))
            .bind(*id)
            .fetch_optional(executor)
            .await?
        }
        PromptKey::Name(name) => {
            sqlx::query(concat!(
                "SELECT ",
                prompt_columns!(),
                " FROM prompts p WHERE p.name = $1"
            ))
            .bind(name.as_str().to_string())
            .fetch_optional(executor)
            .await?
        }
    };
    match row {
        Some(row) => decode_prompt(&row, 0),
        None => Err(StoreError::not_found(key.to_string())),
    }
}

/// Points `label` at an existing version inside a transaction that holds the prompt's lock:
/// records the move (unless the label is `latest`) and bumps the prompt's revision, in one
/// statement. `Ok(None)` for a no-op move; `NotFound` naming the prompt or the version if either
/// does not exist.
async fn move_label(
    conn: &mut PgConnection,
    prompt_id: Uuid,
    label: &LabelName,
    to: i64,
    actor_id: Option<Uuid>,
) -> StoreResult<Option<LabelEvent>> {
    let at = now();
    let row = sqlx::query(
        "WITH ver AS (
             SELECT 1 FROM prompt_versions WHERE prompt_id = $1 AND version_number = $3
         ), old AS (
             SELECT version_number, split FROM labels WHERE prompt_id = $1 AND name = $2
         ), up AS (
             INSERT INTO labels (prompt_id, name, version_number, updated_at)
             SELECT $1, $2, $3, $5
             WHERE EXISTS (SELECT 1 FROM ver)
               AND ((SELECT version_number FROM old) IS DISTINCT FROM $3
                    OR (SELECT split FROM old) IS NOT NULL)
             ON CONFLICT (prompt_id, name) DO UPDATE
             SET version_number = EXCLUDED.version_number, updated_at = EXCLUDED.updated_at,
                 split = NULL
             RETURNING 1
         ), hist AS (
             INSERT INTO label_history (prompt_id, label, from_version, to_version, actor_id, at)
             SELECT $1, $2, (SELECT version_number FROM old), $3, $4, $5
             WHERE EXISTS (SELECT 1 FROM up) AND $2 <> 'latest'
         ), bump AS (
             UPDATE prompts SET revision = revision + 1, updated_at = $5
             WHERE id = $1 AND EXISTS (SELECT 1 FROM up)
         )
         SELECT (SELECT name FROM prompts WHERE id = $1), EXISTS (SELECT 1 FROM ver),
                (SELECT version_number FROM old), EXISTS (SELECT 1 FROM up)",
    )
    .bind(prompt_id)
    .bind(label.as_str().to_string())
    .bind(to)
    .bind(actor_id)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    let Some(prompt_name) = row.try_get::<Option<String>, _>(0)? else {
        return Err(StoreError::not_found(prompt_with_id(prompt_id)));
    };
    let version_exists: bool = row.try_get(1)?;
    let from: Option<i64> = row.try_get(2)?;
    let moved: bool = row.try_get(3)?;
    if !version_exists {
        return Err(StoreError::not_found(version_of(to, &prompt_name)));
    }
    if !moved || label.is_latest() {
        return Ok(None);
    }
    Ok(Some(LabelEvent {
        prompt_id,
        label: label.clone(),
        from_version: from,
        to_version: Some(to),
        actor_id,
        at,
        action: LabelAction::Set,
        split: None,
    }))
}

/// Where a label points now (`None`: it does not exist).
async fn current_target(
    conn: &mut PgConnection,
    prompt_id: Uuid,
    label: &LabelName,
) -> StoreResult<Option<LabelTarget>> {
    let row =
        sqlx::query("SELECT version_number, split FROM labels WHERE prompt_id = $1 AND name = $2")
            .bind(prompt_id)
            .bind(label.as_str().to_string())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let split = common::decode_split(
        row.try_get::<Option<Json<Vec<SplitEntry>>>, _>(1)?
            .map(|json| json.0),
    )?;
    Ok(Some(LabelTarget::from_parts(row.try_get(0)?, split)))
}

/// The name of a prompt (`NotFound` if it does not exist).
async fn name_of_prompt(conn: &mut PgConnection, prompt_id: Uuid) -> StoreResult<String> {
    sqlx::query_scalar("SELECT name FROM prompts WHERE id = $1")
        .bind(prompt_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))
}

/// Points `label` at `target` inside a transaction holding the prompt's lock (checking the
/// target versions exist and have `required`), records the move as `action` and bumps the
/// revision. `None` for a `set`/`split` that changes nothing.
#[allow(clippy::too_many_arguments)]
async fn write_label_target(
    conn: &mut PgConnection,
    prompt_id: Uuid,
    prompt_name: &str,
    label: &LabelName,
    target: &LabelTarget,
    action: LabelAction,
    required: Option<VersionStatus>,
    actor_id: Option<Uuid>,
) -> StoreResult<Option<LabelEvent>> {
    let versions = target.versions();
    let rows = sqlx::query(
        "SELECT version_number, status FROM prompt_versions \
         WHERE prompt_id = $1 AND version_number = ANY($2)",
    )
    .bind(prompt_id)
    .bind(&versions)
    .fetch_all(&mut *conn)
    .await?;
    let mut found = BTreeMap::new();
    for row in &rows {
        let status: VersionStatus =
            common::parse_word("prompt_versions.status", &row.try_get::<String, _>(1)?)?;
        found.insert(row.try_get::<i64, _>(0)?, status);
    }
    let statuses: Vec<(i64, Option<VersionStatus>)> = versions
        .iter()
        .map(|version| (*version, found.get(version).copied()))
        .collect();
    common::check_target_statuses(label, prompt_name, &statuses, required)?;
    let current = current_target(conn, prompt_id, label).await?;
    if matches!(action, LabelAction::Set | LabelAction::Split) && current.as_ref() == Some(target) {
        return Ok(None);
    }
    let at = now();
    sqlx::query(
        "WITH up AS (
             INSERT INTO labels (prompt_id, name, version_number, updated_at, split)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (prompt_id, name) DO UPDATE
             SET version_number = EXCLUDED.version_number, updated_at = EXCLUDED.updated_at,
                 split = EXCLUDED.split
         ), hist AS (
             INSERT INTO label_history (prompt_id, label, from_version, to_version, actor_id, at,
                 action, split)
             VALUES ($1, $2, $6, $3, $7, $4, $8, $5)
         )
         UPDATE prompts SET revision = revision + 1, updated_at = $4 WHERE id = $1",
    )
    .bind(prompt_id)
    .bind(label.as_str().to_string())
    .bind(target.primary())
    .bind(at)
    .bind(target.split().map(Json))
    .bind(current.as_ref().map(LabelTarget::primary))
    .bind(actor_id)
    .bind(action.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(Some(LabelEvent {
        prompt_id,
        label: label.clone(),
        from_version: current.map(|target| target.primary()),
        to_version: Some(target.primary()),
        actor_id,
        at,
        action,
        split: target.split().cloned(),
    }))
}

/// Brings the stored form of every version of a prompt in line with its classification:
/// seals the clear ones of a confidential/restricted prompt, opens the sealed ones of any
/// other. Runs inside the caller's transaction, which holds the prompt's row lock; returns how
/// many rows changed.
async fn reseal_versions(
    conn: &mut PgConnection,
    prompt_id: Uuid,
    classification: Classification,
    keys: Option<&KeyRing>,
) -> StoreResult<u64> {
    let mut changed = 0;
    if classification.is_sealed_at_rest() {
        let rows = sqlx::query(
            "SELECT id, content FROM prompt_versions WHERE prompt_id = $1 AND ciphertext IS NULL \
             AND purged_at IS NULL FOR UPDATE",
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
             WHERE prompt_id = $1 AND ciphertext IS NOT NULL FOR UPDATE",
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
    conn: &mut PgConnection,
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
    conn: &mut PgConnection,
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
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Brings the stored form of a prompt's test cases in line with its classification and the
/// ring's current key (sealed under it, or in clear); returns whether the row changed.
async fn reseal_tests(
    conn: &mut PgConnection,
    prompt_id: Uuid,
    classification: Classification,
    keys: Option<&KeyRing>,
) -> StoreResult<bool> {
    let key_id: Option<Option<String>> =
        sqlx::query_scalar("SELECT key_id FROM prompt_tests WHERE prompt_id = $1 FOR UPDATE")
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
    conn: &mut PgConnection,
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

fn label_names(labels: &[LabelName]) -> Vec<String> {
    labels
        .iter()
        .map(|label| label.as_str().to_string())
        .collect()
}

/// Appends the `list_prompts` filters (not the paging) as `AND …` clauses.
fn push_filters(builder: &mut QueryBuilder<Postgres>, query: &PromptQuery) {
    if let Some(scope) = query.scope {
        builder.push(" AND p.scope = ").push_bind(scope.as_str());
    }
    if let Some(owner_id) = query.owner_id {
        builder.push(" AND p.owner_id = ").push_bind(owner_id);
    }
    if let Some(tag) = &query.tag {
        // `@>` can use the GIN index on tags.
        builder.push(" AND p.tags @> ").push_bind(vec![tag.clone()]);
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
        let pattern = format!("%{}%", common::escape_like(q));
        builder
            .push(" AND (p.name ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR p.title ILIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR p.description ILIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    if let Some(prefix) = &query.name_prefix {
        // Case-sensitive; with the "C" collation the name index serves the prefix.
        builder
            .push(" AND p.name LIKE ")
            .push_bind(format!("{}%", common::escape_like(prefix)))
            .push(" ESCAPE '\\'");
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
fn push_visibility(builder: &mut QueryBuilder<Postgres>, filter: &VisibilityFilter) {
    if let Some(scopes) = &filter.scopes {
        builder
            .push(" AND p.scope = ANY(")
            .push_bind(common::scope_words(scopes))
            .push(")");
    }
    if let Some(prefixes) = &filter.name_prefixes {
        builder.push(" AND (FALSE");
        for prefix in prefixes {
            builder
                .push(" OR p.name LIKE ")
                .push_bind(format!("{}%", common::escape_like(prefix)))
                .push(" ESCAPE '\\'");
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

    builder.push(" AND (NOT coalesce((p.access->>'owner_only')::boolean, FALSE) OR ");
    push_owns(builder, filter);
    builder.push(")");

    builder
        .push(
            " AND (coalesce(p.access->'allowed_roles', '[]'::jsonb) = '[]'::jsonb \
             OR p.access->'allowed_roles' @> ",
        )
        .push_bind(json!([filter.role.as_str()]))
        .push(")");

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
fn push_owns(builder: &mut QueryBuilder<Postgres>, filter: &VisibilityFilter) {
    match filter.user_id {
        Some(user_id) => {
            builder.push("p.owner_id = ").push_bind(user_id);
        }
        None => {
            builder.push("FALSE");
        }
    }
}

/// Whether the prompt's grants name the filter's user or agent (JSONB containment of
/// `[{"user": id}]` or `[{"agent": id}]`, the serde form of `Grantee`).
fn push_granted(builder: &mut QueryBuilder<Postgres>, filter: &VisibilityFilter) {
    builder.push("(FALSE");
    if let Some(user_id) = filter.user_id {
        builder
            .push(" OR coalesce(p.access->'grants', '[]'::jsonb) @> ")
            .push_bind(json!([{ "user": user_id.hyphenated().to_string() }]));
    }
    if let Some(agent_id) = &filter.agent_id {
        builder
            .push(" OR coalesce(p.access->'grants', '[]'::jsonb) @> ")
            .push_bind(json!([{ "agent": agent_id }]));
    }
    builder.push(")");
}

/// Appends the `list_audit` filters as `AND …` clauses.
fn push_audit_filters(builder: &mut QueryBuilder<Postgres>, query: &AuditQuery) {
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
    // `action` has the "C" collation, so the range is byte order.
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
impl Store for PgStore {
    #[tracing::instrument(skip_all)]
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
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
        let labels = requested_labels(&first.labels);
        // Sealed before anything is written: without keys, nothing is.
        let stored = StoredContent::of(self.keys(), prompt.classification, &version)?;

        // One statement, so no explicit transaction: the prompt, its first version, `latest`,
        // the requested labels and their history. Foreign keys are checked at statement end.
        let inserted = sqlx::query(
            "WITH p AS (
                 INSERT INTO prompts (id, name, title, description, long_description_markdown,
                     scope, agent_id, owner_id, creator_id, prompt_type, kind, tags, source,
                     classification, status, revision, created_at, updated_at, access)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $17, $29)
             ), v AS (
                 INSERT INTO prompt_versions (id, prompt_id, version_number, semver, content,
                     config, parameter_schema, diff_hash, notes, author_id, status, created_at,
                     key_id, nonce, ciphertext, findings, token_count)
                 VALUES ($18, $1, $19, $20, $21, $22, $23, $24, $25, $26, $27, $17, $30, $31,
                     $32, $33, $34)
             ), l AS (
                 INSERT INTO labels (prompt_id, name, version_number, updated_at)
                 SELECT $1, name, $19, $17 FROM unnest(array_append($28::text[], 'latest')) AS name
             ), h AS (
                 INSERT INTO label_history (prompt_id, label, from_version, to_version, actor_id, at)
                 SELECT $1, r.name, NULL, $19, $26, $17
                 FROM unnest($28::text[]) WITH ORDINALITY AS r(name, ord) ORDER BY r.ord
             )
             SELECT 1",
        )
        .bind(prompt.id)
        .bind(prompt.name.as_str().to_string())
        .bind(&prompt.title)
        .bind(&prompt.description)
        .bind(&prompt.long_description_markdown)
        .bind(prompt.scope.as_str())
        .bind(&prompt.agent_id)
        .bind(prompt.owner_id)
        .bind(prompt.creator_id)
        .bind(&prompt.prompt_type)
        .bind(prompt.kind.as_str())
        .bind(&prompt.tags)
        .bind(prompt.source.as_str().to_string())
        .bind(prompt.classification.as_str())
        .bind(prompt.status.as_str())
        .bind(prompt.revision)
        .bind(at)
        .bind(version.id)
        .bind(version.version_number)
        .bind(version.semver.to_string())
        .bind(stored.content)
        .bind(&version.config)
        .bind(&version.parameter_schema)
        .bind(&version.diff_hash)
        .bind(&version.notes)
        .bind(version.author_id)
        .bind(version.status.as_str())
        .bind(label_names(&labels))
        .bind(Json(&prompt.access))
        .bind(stored.key_id)
        .bind(stored.nonce)
        .bind(stored.ciphertext)
        .bind(Json(&version.findings))
        .bind(version.token_count)
        .execute(&self.pool)
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
        let mut label_map = BTreeMap::from([(LabelName::latest().to_string(), 1)]);
        label_map.extend(labels.iter().map(|label| (label.to_string(), 1)));
        Ok(PromptDetail {
            prompt,
            versions: vec![version],
            labels: label_map,
            label_splits: BTreeMap::new(),
        })
    }

    #[tracing::instrument(skip_all)]
    async fn get_prompt(&self, key: &PromptKey) -> StoreResult<PromptDetail> {
        // One statement (one snapshot): the prompt with its labels, once per version row.
        const BY_ID: &str = concat!(
            "SELECT ",
            prompt_columns!(),
            ", ",
            version_columns!(),
            ", (SELECT coalesce(jsonb_object_agg(l.name, l.version_number), '{}'::jsonb) \
             FROM labels l WHERE l.prompt_id = p.id), \
             (SELECT coalesce(jsonb_object_agg(l.name, l.split), '{}'::jsonb) \
             FROM labels l WHERE l.prompt_id = p.id AND l.split IS NOT NULL) \
             FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
             WHERE p.id = $1 ORDER BY v.version_number DESC"
        );
        const BY_NAME: &str = concat!(
            "SELECT ",
            prompt_columns!(),
            ", ",
            version_columns!(),
            ", (SELECT coalesce(jsonb_object_agg(l.name, l.version_number), '{}'::jsonb) \
             FROM labels l WHERE l.prompt_id = p.id), \
             (SELECT coalesce(jsonb_object_agg(l.name, l.split), '{}'::jsonb) \
             FROM labels l WHERE l.prompt_id = p.id AND l.split IS NOT NULL) \
             FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
             WHERE p.name = $1 ORDER BY v.version_number DESC"
        );
        let rows = match key {
            PromptKey::Id(id) => sqlx::query(BY_ID).bind(*id).fetch_all(&self.pool).await?,
            PromptKey::Name(name) => {
                sqlx::query(BY_NAME)
                    .bind(name.as_str().to_string())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let Some(first) = rows.first() else {
            return Err(StoreError::not_found(key.to_string()));
        };
        let prompt = decode_prompt(first, 0)?;
        let Json(labels): Json<BTreeMap<String, i64>> =
            first.try_get(PROMPT_COLUMNS + VERSION_COLUMNS)?;
        let Json(stored_splits): Json<BTreeMap<String, Vec<SplitEntry>>> =
            first.try_get(PROMPT_COLUMNS + VERSION_COLUMNS + 1)?;
        let mut label_splits = BTreeMap::new();
        for (name, entries) in stored_splits {
            if let Some(split) = common::decode_split(Some(entries))? {
                label_splits.insert(name, split);
            }
        }
        let versions = rows
            .iter()
            .filter_map(|row| decode_version(row, PROMPT_COLUMNS, self.keys()).transpose())
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(PromptDetail {
            prompt,
            versions,
            labels,
            label_splits,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn find_prompt(&self, key: &PromptKey) -> StoreResult<Prompt> {
        fetch_prompt(&self.pool, key).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_prompts(&self, query: &PromptQuery) -> StoreResult<PromptPage> {
        // One statement: the total over the filtered set, left-joined to the page, each page row
        // with its latest version number and its labels.
        let mut page =
            QueryBuilder::<Postgres>::new("WITH filtered AS (SELECT p.* FROM prompts p WHERE TRUE");
        push_filters(&mut page, query);
        page.push(concat!(
            "), total AS (SELECT count(*) AS n FROM filtered) \
             SELECT total.n, page.* FROM total LEFT JOIN LATERAL (SELECT ",
            prompt_columns!(),
            ", coalesce((SELECT max(v.version_number) FROM prompt_versions v \
             WHERE v.prompt_id = p.id), 0) AS latest_version, \
             (SELECT coalesce(jsonb_object_agg(l.name, l.version_number), '{}'::jsonb) \
             FROM labels l WHERE l.prompt_id = p.id) AS labels \
             FROM filtered p WHERE TRUE"
        ));
        if let Some(after_name) = &query.after_name {
            page.push(" AND p.name > ").push_bind(after_name.clone());
        }
        page.push(" ORDER BY p.name");
        if query.limit > 0 {
            page.push(" LIMIT ").push_bind(query.limit);
        }
        if query.after_name.is_none() && query.offset > 0 {
            page.push(" OFFSET ").push_bind(query.offset);
        }
        page.push(") page ON TRUE ORDER BY page.name");
        let rows = page.build().fetch_all(&self.pool).await?;
        let mut total = 0;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            total = row.try_get(0)?;
            if row.try_get::<Option<Uuid>, _>(1)?.is_none() {
                continue;
            }
            let Json(labels): Json<BTreeMap<String, i64>> = row.try_get(PROMPT_COLUMNS + 2)?;
            items.push(PromptListItem {
                prompt: decode_prompt(row, 1)?,
                labels,
                latest_version: row.try_get(PROMPT_COLUMNS + 1)?,
            });
        }
        Ok(PromptPage { items, total })
    }

    #[tracing::instrument(skip_all)]
    async fn update_prompt(
        &self,
        id: Uuid,
        patch: PromptPatch,
        expected_revision: Option<i64>,
    ) -> StoreResult<Prompt> {
        let mut update = QueryBuilder::<Postgres>::new(
            "UPDATE prompts AS p SET revision = p.revision + 1, updated_at = ",
        );
        update.push_bind(now());
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
            update.push(", tags = ").push_bind(tags);
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
        update.push(" WHERE p.id = ").push_bind(id);
        if let Some(expected) = expected_revision {
            update.push(" AND p.revision = ").push_bind(expected);
        }
        update.push(concat!(" RETURNING ", prompt_columns!()));

        let Some(classification) = new_classification else {
            let row = match update.build().fetch_optional(&self.pool).await {
                Err(error) if is_foreign_key_violation(&error) => {
                    return Err(prompt_type_not_found(new_type.as_deref().unwrap_or("")));
                }
                other => other?,
            };
            return match row {
                Some(row) => decode_prompt(&row, 0),
                None => self.update_missed(id, expected_revision).await,
            };
        };
        // A classification change seals or opens the prompt's versions in the same
        // transaction, queued like the prompt's other writers; the UPDATE takes the row lock
        // first (the order `add_version` uses: prompt, then versions).
        let _queue = self.writers.enter(id).await;
        let mut tx = self.pool.begin().await?;
        let row = match update.build().fetch_optional(&mut *tx).await {
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(prompt_type_not_found(new_type.as_deref().unwrap_or("")));
            }
            other => other?,
        };
        let Some(row) = row else {
            drop(tx);
            return self.update_missed(id, expected_revision).await;
        };
        let prompt = decode_prompt(&row, 0)?;
        reseal_versions(&mut tx, id, classification, self.keys()).await?;
        tx.commit().await?;
        Ok(prompt)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_prompt(&self, id: Uuid) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM prompts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
        // A statement after the lock, so a snapshot that includes every version committed
        // before the lock was granted.
        let row = sqlx::query(concat!(
            "SELECT p.kind, p.classification, ",
            version_columns!(),
            " FROM prompts p LEFT JOIN LATERAL (SELECT * FROM prompt_versions \
             WHERE prompt_id = p.id ORDER BY version_number DESC LIMIT 1) v ON TRUE \
             WHERE p.id = $1"
        ))
        .bind(prompt_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found(prompt_with_id(prompt_id)))?;
        let kind: String = row.try_get(0)?;
        version
            .draft
            .content()
            .check_kind(common::parse_word("prompts.kind", &kind)?)?;
        let classification: Classification =
            common::parse_word("prompts.classification", &row.try_get::<String, _>(1)?)?;
        let latest = decode_version(&row, 2, self.keys())?;
        common::apply_carry_over(&mut version, latest.as_ref())?;
        let labels = requested_labels(&version.labels);

        match plan_version(latest.as_ref(), &version.draft)? {
            VersionPlan::Unchanged => {
                let Some(latest) = latest else {
                    return Err(StoreError::Corrupt(
                        "plan_version found a prompt without versions unchanged".into(),
                    ));
                };
                for label in &labels {
                    move_label(
                        &mut tx,
                        prompt_id,
                        label,
                        latest.version_number,
                        version.author_id,
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(AddedVersion {
                    version: latest,
                    created: false,
                })
            }
            VersionPlan::Create { semver, .. } => {
                let number = latest.map_or(1, |latest| latest.version_number + 1);
                let at = now();
                // The prompt's tests run on the version as it will be stored (carry-over applied).
                let tests = load_tests(&mut tx, prompt_id, self.keys()).await?;
                let created = common::new_version(prompt_id, number, semver, &version, &tests, at);
                let stored = StoredContent::of(self.keys(), classification, &created)?;
                sqlx::query(
                    "WITH v AS (
                         INSERT INTO prompt_versions (id, prompt_id, version_number, semver,
                             content, config, parameter_schema, diff_hash, notes, author_id,
                             status, created_at, key_id, nonce, ciphertext, findings,
                             token_count)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14, $15,
                             $16, $17, $18)
                     ), old AS (
                         SELECT name, version_number FROM labels
                         WHERE prompt_id = $2 AND name = ANY($13::text[])
                     ), up AS (
                         INSERT INTO labels (prompt_id, name, version_number, updated_at)
                         SELECT $2, name, $3, $12
                         FROM unnest(array_append($13::text[], 'latest')) AS name
                         ON CONFLICT (prompt_id, name) DO UPDATE
                         SET version_number = EXCLUDED.version_number,
                             updated_at = EXCLUDED.updated_at, split = NULL
                     ), hist AS (
                         INSERT INTO label_history (prompt_id, label, from_version, to_version,
                             actor_id, at)
                         SELECT $2, r.name, old.version_number, $3, $10, $12
                         FROM unnest($13::text[]) WITH ORDINALITY AS r(name, ord)
                         LEFT JOIN old ON old.name = r.name
                         ORDER BY r.ord
                     )
                     UPDATE prompts SET revision = revision + 1, updated_at = $12,
                         status = 'active'
                     WHERE id = $2",
                )
                .bind(created.id)
                .bind(prompt_id)
                .bind(number)
                .bind(created.semver.to_string())
                .bind(stored.content)
                .bind(&created.config)
                .bind(&created.parameter_schema)
                .bind(&created.diff_hash)
                .bind(&created.notes)
                .bind(created.author_id)
                .bind(created.status.as_str())
                .bind(at)
                .bind(label_names(&labels))
                .bind(stored.key_id)
                .bind(stored.nonce)
                .bind(stored.ciphertext)
                .bind(Json(&created.findings))
                .bind(created.token_count)
                .execute(&mut *tx)
                .await?;
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
        .fetch_optional(&self.pool)
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
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
        let (by_id, by_name) = match selector {
            VersionSelector::Number(_) => (
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
            ),
            VersionSelector::Label(_) => (
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
            ),
        };
        let query = match key {
            PromptKey::Id(id) => sqlx::query(by_id).bind(*id),
            PromptKey::Name(name) => sqlx::query(by_name).bind(name.as_str().to_string()),
        };
        let query = match selector {
            VersionSelector::Number(number) => query.bind(*number),
            VersionSelector::Label(label) => query.bind(label.as_str().to_string()),
        };
        let row = query
            .fetch_optional(&self.pool)
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
        let event = move_label(&mut tx, prompt_id, label, version_number, actor_id).await?;
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
        let at = now();
        let row = sqlx::query(
            "WITH del AS (
                 DELETE FROM labels WHERE prompt_id = $1 AND name = $2 RETURNING version_number
             ), hist AS (
                 INSERT INTO label_history (prompt_id, label, from_version, to_version, actor_id, at,
                     action)
                 SELECT $1, $2, version_number, NULL, $3, $4, 'remove' FROM del
             ), bump AS (
                 UPDATE prompts SET revision = revision + 1, updated_at = $4
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM del)
             )
             SELECT (SELECT name FROM prompts WHERE id = $1), (SELECT version_number FROM del)",
        )
        .bind(prompt_id)
        .bind(label.as_str().to_string())
        .bind(actor_id)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let Some(name) = row.try_get::<Option<String>, _>(0)? else {
            return Err(StoreError::not_found(prompt_with_id(prompt_id)));
        };
        let Some(from) = row.try_get::<Option<i64>, _>(1)? else {
            return Err(StoreError::not_found(label_of(label.as_str(), &name)));
        };
        tx.commit().await?;
        Ok(LabelEvent {
            prompt_id,
            label: label.clone(),
            from_version: Some(from),
            to_version: None,
            actor_id,
            at,
            action: LabelAction::Remove,
            split: None,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn label_history(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
    ) -> StoreResult<Vec<LabelEvent>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            label_event_columns!(),
            " FROM prompts p LEFT JOIN label_history h ON h.prompt_id = p.id AND h.label = $2 \
             WHERE p.id = $1 ORDER BY h.id"
        ))
        .bind(prompt_id)
        .bind(label.as_str().to_string())
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::not_found(prompt_with_id(prompt_id)));
        }
        rows.iter()
            .filter_map(|row| decode_label_event(row, 0).transpose())
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_link(&self, link: NewLink) -> StoreResult<Link> {
        let row = sqlx::query(
            "WITH p AS (
                 SELECT id, name FROM prompts WHERE id = $2
             ), l AS (
                 INSERT INTO links (id, prompt_id, capability, agent_id, priority, created_at)
                 SELECT $1, p.id, $3, $4, $5, $6 FROM p
                 ON CONFLICT (prompt_id, capability, agent_key) DO UPDATE
                 SET priority = EXCLUDED.priority
                 RETURNING id, prompt_id, capability, agent_id, priority, created_at
             )
             SELECT l.id, l.prompt_id, p.name, l.capability, l.agent_id, l.priority, l.created_at
             FROM l JOIN p ON p.id = l.prompt_id",
        )
        .bind(Uuid::now_v7())
        .bind(link.prompt_id)
        .bind(&link.capability)
        .bind(&link.agent_id)
        .bind(link.priority)
        .bind(now())
        .fetch_optional(&self.pool)
        .await;
        let row = match row {
            Err(error) if is_foreign_key_violation(&error) => None,
            other => other?,
        };
        match row {
            Some(row) => decode_link(&row),
            None => Err(StoreError::not_found(prompt_with_id(link.prompt_id))),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn list_links(&self, filter: &LinkFilter) -> StoreResult<Vec<Link>> {
        let mut query = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            link_columns!(),
            " FROM links l JOIN prompts p ON p.id = l.prompt_id WHERE TRUE"
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
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(decode_link).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn delete_link(&self, id: Uuid) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM links WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
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
        .bind(at)
        .bind(prompt_type.review_every_days.map(|days| days as i32))
        .bind(prompt_type.approval_workflow.as_ref().map(Json))
        .execute(&self.pool)
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
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| prompt_type_not_found(key))?;
        decode_prompt_type(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn list_prompt_types(&self) -> StoreResult<Vec<PromptType>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            prompt_type_columns!(),
            " FROM prompt_types ORDER BY key COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_prompt_type).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn update_prompt_type(
        &self,
        key: &str,
        patch: PromptTypePatch,
    ) -> StoreResult<PromptType> {
        let mut update = QueryBuilder::<Postgres>::new("UPDATE prompt_types SET updated_at = ");
        update.push_bind(now());
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
                .push_bind(review_every_days.map(|days| days as i32));
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
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| prompt_type_not_found(key))?;
        decode_prompt_type(&row)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_prompt_type(&self, key: &str) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM prompt_types WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
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
        .bind(common::role_words(&user.roles))
        .bind(&user.permissions)
        .bind(&user.data)
        .bind(user.created_at)
        .execute(&self.pool)
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
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_user).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn update_user(&self, id: Uuid, patch: UserPatch) -> StoreResult<User> {
        let mut update = QueryBuilder::<Postgres>::new("UPDATE users SET updated_at = ");
        update.push_bind(now());
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
                .push_bind(common::role_words(&roles));
        }
        if let Some(permissions) = patch.permissions {
            update.push(", permissions = ").push_bind(permissions);
        }
        if let Some(data) = patch.data {
            update.push(", data = ").push_bind(data);
        }
        update
            .push(" WHERE id = ")
            .push_bind(id)
            .push(concat!(" RETURNING ", user_columns!()));
        let row = match update.build().fetch_optional(&self.pool).await {
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
            .execute(&self.pool)
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
        .bind(created.expires_at)
        .bind(created.created_at)
        .bind(created.created_by)
        .execute(&self.pool)
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
        // The UNIQUE constraint's index on token_hash serves this.
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
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
        .bind(now())
        .fetch_optional(&self.pool)
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
        .bind(at)
        .bind(at - common::TOUCH_INTERVAL)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn count_tokens(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM api_tokens")
            .fetch_one(&self.pool)
            .await?)
    }

    #[tracing::instrument(skip_all)]
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry> {
        let pending = common::pending_audit(entry)?;
        let (done, mut written) = tokio::sync::oneshot::channel();
        self.audit_queue
            .lock()
            .map_err(|_| StoreError::Corrupt("the audit queue lock is poisoned".into()))?
            .push(QueuedAudit { pending, done });
        let _writer = self.audit_writers.lock().await;
        // The previous holder may have written this entry with its batch.
        if let Ok(result) = written.try_recv() {
            return result;
        }
        let batch = std::mem::take(
            &mut *self
                .audit_queue
                .lock()
                .map_err(|_| StoreError::Corrupt("the audit queue lock is poisoned".into()))?,
        );
        match self.write_audit_batch(batch).await {
            Ok(()) => {}
            // Every sender of the batch was told; ours too, so fall through to read it.
            Err(error) => return Err(error),
        }
        written
            .await
            .map_err(|_| StoreError::Corrupt("an audit entry was dropped from its batch".into()))?
    }

    #[tracing::instrument(skip_all)]
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        common::check_audit_limit(query.limit)?;
        let mut select = QueryBuilder::<Postgres>::new(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE TRUE"
        ));
        push_audit_filters(&mut select, query);
        select.push(" ORDER BY seq LIMIT ").push_bind(query.limit);
        let rows = select.build().fetch_all(&self.pool).await?;
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
        .fetch_all(&self.pool)
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
        .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
        .await?)
    }

    #[tracing::instrument(skip_all)]
    async fn reencrypt(&self) -> StoreResult<u64> {
        let keys = self.keys().ok_or_else(common::encryption_key_required)?;
        let current = keys.current_key_id();
        let mut total = 0;
        // Versions sealed under an older key, one short transaction per batch. The rows are
        // locked (not the prompts), so a concurrent classification change, which locks the
        // prompt and then its versions, waits for the batch and never deadlocks with it.
        loop {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(
                "SELECT id, key_id, nonce, ciphertext FROM prompt_versions \
                 WHERE key_id IS NOT NULL AND key_id <> $1 ORDER BY id LIMIT $2 FOR UPDATE",
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
        // was configured), one prompt per transaction under the prompt's lock.
        loop {
            let prompt_ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT DISTINCT v.prompt_id FROM prompt_versions v \
                 JOIN prompts p ON p.id = v.prompt_id \
                 WHERE v.ciphertext IS NULL AND v.purged_at IS NULL \
                 AND p.classification IN ('confidential', 'restricted') LIMIT $1",
            )
            .bind(common::REENCRYPT_BATCH)
            .fetch_all(&self.pool)
            .await?;
            if prompt_ids.is_empty() {
                break;
            }
            for prompt_id in prompt_ids {
                let _queue = self.writers.enter(prompt_id).await;
                let mut tx = self.begin_locked(prompt_id).await?;
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
        .fetch_all(&self.pool)
        .await?;
        for prompt_id in prompt_ids {
            let mut tx = self.pool.begin().await?;
            let classification: Option<String> =
                sqlx::query_scalar("SELECT classification FROM prompts WHERE id = $1 FOR UPDATE")
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
        let _queue = self.audit_writers.lock().await;
        let mut tx = self.begin_audit().await?;
        let found: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(checkpoint.up_to_seq)
            .fetch_optional(&mut *tx)
            .await?;
        if found.as_deref() != Some(checkpoint.up_to_hash.as_str()) {
            return Err(common::checkpoint_mismatch(&checkpoint, found.as_deref()));
        }
        sqlx::query(concat!(
            "WITH cp AS (INSERT INTO audit_checkpoints (",
            checkpoint_columns!(),
            ") VALUES ($1, $2, $3, $4, $5)) DELETE FROM audit_log WHERE seq <= $1"
        ))
        .bind(checkpoint.up_to_seq)
        .bind(&checkpoint.up_to_hash)
        .bind(checkpoint.purged)
        .bind(at_ns)
        .bind(&checkpoint.signature)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn get_tests(&self, prompt_id: Uuid) -> StoreResult<Vec<TestCase>> {
        let mut tx = self.pool.begin().await?;
        fetch_prompt(&mut *tx, &PromptKey::Id(prompt_id)).await?;
        let cases = load_tests(&mut tx, prompt_id, self.keys()).await?;
        tx.commit().await?;
        Ok(cases)
    }

    #[tracing::instrument(skip_all)]
    async fn replace_tests(&self, prompt_id: Uuid, cases: Vec<TestCase>) -> StoreResult<Prompt> {
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
        let prompt = fetch_prompt(&mut *tx, &PromptKey::Id(prompt_id)).await?;
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
        let row = sqlx::query(concat!(
            "UPDATE prompts p SET revision = revision + 1, updated_at = $2 WHERE p.id = $1 \
             RETURNING ",
            prompt_columns!()
        ))
        .bind(prompt_id)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let prompt = decode_prompt(&row, 0)?;
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
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
        // One statement; its row locks order it with a concurrent re-seal (which re-checks
        // `purged_at IS NULL` under `FOR UPDATE`).
        let rows = sqlx::query(
            "UPDATE prompt_versions v SET content = 'null'::jsonb, config = '{}'::jsonb, \
             parameter_schema = NULL, notes = NULL, findings = '[]'::jsonb, key_id = NULL, \
             nonce = NULL, ciphertext = NULL, purged_at = $2 \
             FROM prompts p WHERE p.id = v.prompt_id AND v.status = 'archived' \
             AND v.archived_at < $1 AND v.purged_at IS NULL \
             RETURNING v.prompt_id, p.name, v.version_number, v.diff_hash, v.archived_at",
        )
        .bind(archived_before)
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        let mut purged = rows
            .iter()
            .map(|row| {
                Ok(PurgedVersion {
                    prompt_id: row.try_get(0)?,
                    prompt_name: row.try_get(1)?,
                    version_number: row.try_get(2)?,
                    diff_hash: row.try_get(3)?,
                    archived_at: row.try_get(4)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        purged.sort_by(|a, b| {
            (a.archived_at, &a.prompt_name, a.version_number).cmp(&(
                b.archived_at,
                &b.prompt_name,
                b.version_number,
            ))
        });
        Ok(purged)
    }

    #[tracing::instrument(skip_all)]
    async fn mark_reviewed(&self, prompt_id: Uuid, at: OffsetDateTime) -> StoreResult<()> {
        let updated = sqlx::query("UPDATE prompts SET last_reviewed_at = $2 WHERE id = $1")
            .bind(prompt_id)
            .bind(at)
            .execute(&self.pool)
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
             WHERE p.status <> 'archived' ORDER BY p.name COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ReviewState {
                    prompt: decode_prompt(row, 0)?,
                    type_review_every_days: common::review_days(
                        row.try_get::<Option<i32>, _>(PROMPT_COLUMNS)?
                            .map(i64::from),
                    )?,
                    last_attested_at: row.try_get(PROMPT_COLUMNS + 1)?,
                    last_approved_at: row.try_get(PROMPT_COLUMNS + 2)?,
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
        let name = name_of_prompt(&mut tx, prompt_id).await?;
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
        let name = name_of_prompt(&mut tx, prompt_id).await?;
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
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
        let name = name_of_prompt(&mut tx, prompt_id).await?;
        let current = current_target(&mut tx, prompt_id, label).await?;
        let past: Vec<i64> = sqlx::query_scalar(
            "SELECT to_version FROM label_history \
             WHERE prompt_id = $1 AND label = $2 AND to_version IS NOT NULL ORDER BY id DESC",
        )
        .bind(prompt_id)
        .bind(label.as_str().to_string())
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
        let mut tx = self.pool.begin().await?;
        name_of_prompt(&mut tx, prompt_id).await?;
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
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect::<StoreResult<Vec<_>>>()?;
                common::latest_at(&versions, at)
            }
            Some(at) => {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    label_event_columns!(),
                    " FROM label_history h WHERE h.prompt_id = $1 AND h.label = $2 ORDER BY h.id"
                ))
                .bind(prompt_id)
                .bind(label.as_str().to_string())
                .fetch_all(&mut *tx)
                .await?;
                let history = rows
                    .iter()
                    .filter_map(|row| decode_label_event(row, 0).transpose())
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
        .fetch_all(&self.pool)
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
        let mut query = QueryBuilder::<Postgres>::new(concat!(
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
        let rows = query.build().fetch_all(&self.pool).await?;
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
                    created_at: row.try_get(at + 3)?,
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
        let mut query = QueryBuilder::<Postgres>::new(concat!(
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
        let rows = query.build().fetch_all(&self.pool).await?;
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
        let mut query = QueryBuilder::<Postgres>::new(concat!(
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
        let rows = query.build().fetch_all(&self.pool).await?;
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
        vec![crate::types::PoolStats {
            pool: "main",
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }]
    }

    async fn insert_runs(&self, runs: Vec<NewRun>) -> StoreResult<u64> {
        if runs.is_empty() {
            return Ok(0);
        }
        let mut stored = Vec::with_capacity(runs.len());
        for run in &runs {
            stored.push(common::stored_run(self.keys(), run)?);
        }
        let mut tx = self.pool.begin().await?;
        let existing = existing_prompts(&mut tx, runs.iter().map(|run| run.prompt_id)).await?;
        let kept: Vec<_> = runs
            .iter()
            .zip(stored)
            .filter(|(run, _)| existing.contains(&run.prompt_id))
            .collect();
        // 14 columns per row: well under PostgreSQL's 65535 bound parameters per statement.
        for chunk in kept.chunks(RUNS_PER_INSERT) {
            let mut builder = QueryBuilder::<Postgres>::new(
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
                    .push_bind(params.clone())
                    .push_bind(rendered.clone())
                    .push_bind(key_id)
                    .push_bind(nonce)
                    .push_bind(ciphertext)
                    .push_bind(run.sender.clone())
                    .push_bind(run.session_id.clone())
                    .push_bind(run.request_id.clone())
                    .push_bind(run.agent_id.clone())
                    .push_bind(run.deployment_model.as_str())
                    .push_bind(run.created_at);
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
        let mut tx = self.pool.begin().await?;
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
        .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::not_found(common::run_with_id(id)))?;
        let head = decode_run_head(&row)?;
        let seal = common::stored_seal(row.try_get(15)?, row.try_get(16)?, row.try_get(17)?)?;
        let (params, rendered) =
            common::open_run(self.keys(), id, row.try_get(13)?, row.try_get(14)?, seal)?;
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            run_head_columns!(),
            " FROM runs WHERE id = $1 FOR UPDATE"
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
        .bind(at)
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
        .fetch_all(&self.pool)
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
                        last_used: row.try_get(2)?,
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
        .fetch_all(&self.pool)
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

/// Which of `prompt_ids` still exist, locked against deletion until the transaction ends (runs
/// and uses of a prompt deleted meanwhile are skipped).
async fn existing_prompts(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    prompt_ids: impl Iterator<Item = Uuid>,
) -> StoreResult<std::collections::BTreeSet<Uuid>> {
    let prompt_ids: Vec<Uuid> = prompt_ids
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(
        sqlx::query_scalar("SELECT id FROM prompts WHERE id = ANY($1) ORDER BY id FOR KEY SHARE")
            .bind(&prompt_ids)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect(),
    )
}

/// Adds `uses` (one per version, in key order) to `version_usage`; `last_used` never moves
/// back.
async fn upsert_usage(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    uses: &[VersionUse],
) -> StoreResult<()> {
    if uses.is_empty() {
        return Ok(());
    }
    // One statement for the whole batch: a statement per version was a round trip each, and
    // with thousands of prompts in use a tally write held a database core for most of a second.
    // `uses` has one entry per version (merged by the callers), as `ON CONFLICT` requires.
    let prompt_ids: Vec<Uuid> = uses.iter().map(|one| one.prompt_id).collect();
    let numbers: Vec<i64> = uses.iter().map(|one| one.version_number).collect();
    let counts: Vec<i64> = uses.iter().map(|one| one.count).collect();
    let last_used: Vec<OffsetDateTime> = uses.iter().map(|one| one.last_used).collect();
    sqlx::query(
        "INSERT INTO version_usage (prompt_id, version_number, times_used, last_used) \
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[]) \
         ON CONFLICT (prompt_id, version_number) DO UPDATE SET \
         times_used = version_usage.times_used + excluded.times_used, \
         last_used = greatest(version_usage.last_used, excluded.last_used)",
    )
    .bind(prompt_ids)
    .bind(numbers)
    .bind(counts)
    .bind(last_used)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn decode_run_head(row: &PgRow) -> StoreResult<RunHead> {
    let deployment_model: String = row.try_get(7)?;
    let (feedback, feedback_at) = common::feedback_of(
        row.try_get(9)?,
        row.try_get(10)?,
        row.try_get(11)?,
        row.try_get(12)?,
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
        created_at: row.try_get(8)?,
        feedback,
        feedback_at,
    })
}

/// Moves a version's status inside a transaction holding the prompt's lock: conditional on
/// `expected_from`; records `approved_at` / `archived_at` / the deprecation; refuses archiving a
/// version a user-set label points at (or serves through a split); re-derives the prompt's status and bumps its revision.
async fn move_version_status(
    conn: &mut PgConnection,
    keys: Option<&KeyRing>,
    prompt_id: Uuid,
    version_number: i64,
    expected_from: VersionStatus,
    to: VersionStatus,
    deprecation: Option<&Deprecation>,
) -> StoreResult<PromptVersion> {
    let row = sqlx::query(
        "SELECT p.name, v.status, \
         (SELECT coalesce(array_agg(l.name ORDER BY l.name), '{}') FROM labels l \
          WHERE l.prompt_id = p.id AND l.name <> 'latest' AND (l.version_number = $2 \
          OR l.split @> jsonb_build_array(jsonb_build_object('version', $2::bigint)))) \
         FROM prompts p LEFT JOIN prompt_versions v \
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
    let labels: Vec<String> = row.try_get(2)?;
    if to == VersionStatus::Archived && !labels.is_empty() {
        return Err(StoreError::VersionLabelled {
            version: version_number,
            labels,
        });
    }
    let at = now();
    // Conditional on the status read, so a change that slipped in is never overwritten.
    let updated = sqlx::query(
        "UPDATE prompt_versions SET status = $3, \
         review_round = review_round + (CASE WHEN $3 = 'review' THEN 1 ELSE 0 END), \
         approved_at = CASE WHEN $3 = 'approved' THEN $5 ELSE approved_at END, \
         archived_at = CASE WHEN $3 = 'archived' THEN $5 ELSE archived_at END, \
         deprecated_at = COALESCE($6, deprecated_at), sunset_at = COALESCE($7, sunset_at), \
         replacement_prompt_id = CASE WHEN $6::timestamptz IS NULL THEN replacement_prompt_id \
             ELSE $8 END, \
         replacement_name = CASE WHEN $6::timestamptz IS NULL THEN replacement_name ELSE $9 END \
         WHERE prompt_id = $1 AND version_number = $2 AND status = $4",
    )
    .bind(prompt_id)
    .bind(version_number)
    .bind(to.as_str())
    .bind(expected_from.as_str())
    .bind(at)
    .bind(deprecation.map(|d| d.deprecated_at))
    .bind(deprecation.map(|d| d.sunset_at))
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
    .bind(at)
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

impl PgStore {
    /// Appends queued entries in one transaction under the advisory lock, chaining each on the
    /// one before, and tells every appender its entry (or the failure).
    async fn write_audit_batch(&self, batch: Vec<QueuedAudit>) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.insert_audit_batch(&batch).await;
        match result {
            Ok(entries) => {
                for (queued, entry) in batch.into_iter().zip(entries) {
                    let _ = queued.done.send(Ok(entry));
                }
                Ok(())
            }
            Err(error) => {
                let message = error.to_string();
                for queued in batch {
                    let _ = queued.done.send(Err(StoreError::Corrupt(format!(
                        "audit append failed: {message}"
                    ))));
                }
                Err(error)
            }
        }
    }

    async fn insert_audit_batch(&self, batch: &[QueuedAudit]) -> StoreResult<Vec<AuditEntry>> {
        let mut tx = self.begin_audit().await?;
        // After the lock, so this snapshot includes the previous holder's entries.
        let row = sqlx::query(
            "SELECT (SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1),
                    (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1),
                    (SELECT up_to_seq FROM audit_checkpoints ORDER BY up_to_seq DESC LIMIT 1),
                    (SELECT up_to_hash FROM audit_checkpoints ORDER BY up_to_seq DESC LIMIT 1)",
        )
        .fetch_one(&mut *tx)
        .await?;
        let pair = |seq: Option<i64>, hash: Option<String>| seq.zip(hash);
        let mut last = pair(row.try_get(0)?, row.try_get(1)?);
        let checkpoint = pair(row.try_get(2)?, row.try_get(3)?);
        let mut entries = Vec::with_capacity(batch.len());
        let mut insert = QueryBuilder::<Postgres>::new(concat!(
            "INSERT INTO audit_log (",
            audit_columns!(),
            ") "
        ));
        let mut rows = Vec::with_capacity(batch.len());
        for queued in batch {
            let chained = queued
                .pending
                .clone()
                .chain(last.clone(), checkpoint.clone());
            last = Some((chained.seq, chained.hash.clone()));
            rows.push((
                queued.pending.at_ns,
                queued.pending.detail.clone(),
                chained.clone(),
            ));
            entries.push(chained);
        }
        insert.push_values(rows, |mut values, (at_ns, detail, chained)| {
            let entry = &chained.entry;
            values
                .push_bind(chained.seq)
                .push_bind(entry.id)
                .push_bind(at_ns)
                .push_bind(entry.actor_kind.clone())
                .push_bind(entry.actor_id.clone())
                .push_bind(entry.actor_role.map(Role::as_str))
                .push_bind(entry.action.clone())
                .push_bind(entry.outcome.as_str())
                .push_bind(entry.prompt_id)
                .push_bind(entry.prompt_name.clone())
                .push_bind(entry.prompt_scope.map(|scope| scope.as_str()))
                .push_bind(
                    entry
                        .classification
                        .map(|classification| classification.as_str()),
                )
                .push_bind(entry.before_hash.clone())
                .push_bind(entry.after_hash.clone())
                .push_bind(detail)
                .push_bind(entry.source.clone())
                .push_bind(entry.request_id.clone())
                .push_bind(chained.prev_hash.clone())
                .push_bind(chained.hash.clone());
        });
        insert.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(entries)
    }
}

impl PgStore {
    /// Approve or reject, decided and written in one write transaction (holding the prompt's row
    /// lock, behind this process's queue of the prompt's writers).
    async fn record_review(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        review: NewReview,
        decision: ReviewDecision,
    ) -> StoreResult<ReviewOutcome> {
        let _queue = self.writers.enter(prompt_id).await;
        let mut tx = self.begin_locked(prompt_id).await?;
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
        .bind(at)
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
                sqlx::query(
                    "UPDATE prompts SET revision = revision + 1, updated_at = $2 WHERE id = $1",
                )
                .bind(prompt_id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
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
fn decode_review(row: &PgRow, at: usize) -> StoreResult<ReviewRecord> {
    common::review_record(
        row.try_get(at)?,
        row.try_get(at + 1)?,
        row.try_get(at + 2)?,
        &row.try_get::<String, _>(at + 3)?,
        &row.try_get::<String, _>(at + 4)?,
        row.try_get(at + 5)?,
        row.try_get(at + 6)?,
    )
}
