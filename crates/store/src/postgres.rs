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

use std::{
    collections::{BTreeMap, HashMap},
    str::FromStr,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use async_trait::async_trait;
use promptvault_core::{
    ident::{LabelName, PromptName},
    model::{LabelEvent, Link, Prompt, PromptDetail, PromptType, PromptVersion},
    version::{VersionPlan, plan_version},
};
use sqlx::{
    AssertSqlSafe, PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder, Row, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
    types::Json,
};
use uuid::Uuid;

use crate::{
    Store,
    common::{
        self, PromptRecord, VersionRecord, is_foreign_key_violation, is_unique_violation, label_of,
        name_taken, now, prompt_type_not_found, prompt_with_id, requested_labels, version_of,
    },
    error::{StoreError, StoreResult},
    redact_url,
    types::{
        AddedVersion, LinkFilter, NewLink, NewPrompt, NewPromptType, NewVersion, PromptKey,
        PromptListItem, PromptPage, PromptPatch, PromptQuery, PromptTypePatch, VersionSelector,
    },
};

const MIGRATION: &str = include_str!("../migrations/postgres/0001_init.sql");
/// Enough for 16 concurrent writers plus readers.
const MAX_CONNECTIONS: u32 = 20;

/// The PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    writers: Arc<PromptWriters>,
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
    /// Connects to the database a `postgres://` URL names and runs the migrations.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> StoreResult<Self> {
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
        common::migrator(MIGRATION).run(&pool).await?;
        Ok(PgStore {
            pool,
            writers: Arc::default(),
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

    /// The pool, for the testing fixtures' checks.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The prompt columns, in the order [`decode_prompt`] reads them.
macro_rules! prompt_columns {
    () => {
        "p.id, p.name, p.title, p.description, p.long_description_markdown, p.scope, p.agent_id, \
         p.owner_id, p.creator_id, p.prompt_type, p.kind, p.tags, p.source, p.classification, \
         p.status, p.revision, p.created_at, p.updated_at"
    };
}
const PROMPT_COLUMNS: usize = 18;

/// The version columns, in the order [`decode_version`] reads them.
macro_rules! version_columns {
    () => {
        "v.id, v.prompt_id, v.version_number, v.semver, v.content, v.config, v.parameter_schema, \
         v.diff_hash, v.notes, v.author_id, v.status, v.created_at"
    };
}

macro_rules! label_event_columns {
    () => {
        "h.prompt_id, h.label, h.from_version, h.to_version, h.actor_id, h.at"
    };
}

macro_rules! prompt_type_columns {
    () => {
        "key, name, schema, restricted_creation, requires_approval, created_at, updated_at"
    };
}

macro_rules! link_columns {
    () => {
        "l.id, l.prompt_id, p.name, l.capability, l.agent_id, l.priority, l.created_at"
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
    }
    .into_prompt()
}

/// Decodes the version columns starting at `at`; `None` when an outer join found no version.
fn decode_version(row: &PgRow, at: usize) -> StoreResult<Option<PromptVersion>> {
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
    }
    .into_version()
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
             SELECT version_number FROM labels WHERE prompt_id = $1 AND name = $2
         ), up AS (
             INSERT INTO labels (prompt_id, name, version_number, updated_at)
             SELECT $1, $2, $3, $5
             WHERE EXISTS (SELECT 1 FROM ver)
               AND (SELECT version_number FROM old) IS DISTINCT FROM $3
             ON CONFLICT (prompt_id, name) DO UPDATE
             SET version_number = EXCLUDED.version_number, updated_at = EXCLUDED.updated_at
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
    }))
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
        let version = common::new_version(prompt.id, 1, semver, &first, at);
        let labels = requested_labels(&first.labels);

        // One statement, so no explicit transaction: the prompt, its first version, `latest`,
        // the requested labels and their history. Foreign keys are checked at statement end.
        let inserted = sqlx::query(
            "WITH p AS (
                 INSERT INTO prompts (id, name, title, description, long_description_markdown,
                     scope, agent_id, owner_id, creator_id, prompt_type, kind, tags, source,
                     classification, status, revision, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $17, $17)
             ), v AS (
                 INSERT INTO prompt_versions (id, prompt_id, version_number, semver, content,
                     config, parameter_schema, diff_hash, notes, author_id, status, created_at)
                 VALUES ($18, $1, $19, $20, $21, $22, $23, $24, $25, $26, $27, $17)
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
        .bind(version.content.to_json())
        .bind(&version.config)
        .bind(&version.parameter_schema)
        .bind(&version.diff_hash)
        .bind(&version.notes)
        .bind(version.author_id)
        .bind(version.status.as_str())
        .bind(label_names(&labels))
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
             FROM labels l WHERE l.prompt_id = p.id) \
             FROM prompts p LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
             WHERE p.id = $1 ORDER BY v.version_number DESC"
        );
        const BY_NAME: &str = concat!(
            "SELECT ",
            prompt_columns!(),
            ", ",
            version_columns!(),
            ", (SELECT coalesce(jsonb_object_agg(l.name, l.version_number), '{}'::jsonb) \
             FROM labels l WHERE l.prompt_id = p.id) \
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
        let Json(labels): Json<BTreeMap<String, i64>> = first.try_get(PROMPT_COLUMNS + 12)?;
        let versions = rows
            .iter()
            .filter_map(|row| decode_version(row, PROMPT_COLUMNS).transpose())
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(PromptDetail {
            prompt,
            versions,
            labels,
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
        if let Some(classification) = patch.classification {
            update
                .push(", classification = ")
                .push_bind(classification.as_str());
        }
        if let Some(status) = patch.status {
            update.push(", status = ").push_bind(status.as_str());
        }
        update.push(" WHERE p.id = ").push_bind(id);
        if let Some(expected) = expected_revision {
            update.push(" AND p.revision = ").push_bind(expected);
        }
        update.push(concat!(" RETURNING ", prompt_columns!()));

        let row = match update.build().fetch_optional(&self.pool).await {
            Err(error) if is_foreign_key_violation(&error) => {
                return Err(prompt_type_not_found(new_type.as_deref().unwrap_or("")));
            }
            other => other?,
        };
        if let Some(row) = row {
            return decode_prompt(&row, 0);
        }
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
            "SELECT p.kind, ",
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
        let latest = decode_version(&row, 1)?;
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
                let created = common::new_version(prompt_id, number, semver, &version, at);
                sqlx::query(
                    "WITH v AS (
                         INSERT INTO prompt_versions (id, prompt_id, version_number, semver,
                             content, config, parameter_schema, diff_hash, notes, author_id,
                             status, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ), old AS (
                         SELECT name, version_number FROM labels
                         WHERE prompt_id = $2 AND name = ANY($13::text[])
                     ), up AS (
                         INSERT INTO labels (prompt_id, name, version_number, updated_at)
                         SELECT $2, name, $3, $12
                         FROM unnest(array_append($13::text[], 'latest')) AS name
                         ON CONFLICT (prompt_id, name) DO UPDATE
                         SET version_number = EXCLUDED.version_number,
                             updated_at = EXCLUDED.updated_at
                     ), hist AS (
                         INSERT INTO label_history (prompt_id, label, from_version, to_version,
                             actor_id, at)
                         SELECT $2, r.name, old.version_number, $3, $10, $12
                         FROM unnest($13::text[]) WITH ORDINALITY AS r(name, ord)
                         LEFT JOIN old ON old.name = r.name
                         ORDER BY r.ord
                     )
                     UPDATE prompts SET revision = revision + 1, updated_at = $12 WHERE id = $2",
                )
                .bind(created.id)
                .bind(prompt_id)
                .bind(number)
                .bind(created.semver.to_string())
                .bind(created.content.to_json())
                .bind(&created.config)
                .bind(&created.parameter_schema)
                .bind(&created.diff_hash)
                .bind(&created.notes)
                .bind(created.author_id)
                .bind(created.status.as_str())
                .bind(at)
                .bind(label_names(&labels))
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
        decode_version(&row, 1)?
            .ok_or_else(|| StoreError::not_found(version_of(version_number, &name)))
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
        match decode_version(&row, PROMPT_COLUMNS)? {
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
                 INSERT INTO label_history (prompt_id, label, from_version, to_version, actor_id, at)
                 SELECT $1, $2, version_number, NULL, $3, $4 FROM del
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
            ") VALUES ($1, $2, $3, $4, $5, $6, $6)"
        ))
        .bind(&prompt_type.key)
        .bind(&prompt_type.name)
        .bind(&prompt_type.schema)
        .bind(prompt_type.restricted_creation)
        .bind(prompt_type.requires_approval)
        .bind(at)
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
}
