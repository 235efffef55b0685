//! Storage for promptvault: one [`Store`] trait with use-case-shaped methods, and two
//! implementations, [`sqlite::SqliteStore`] (the embedded default) and
//! [`postgres::PgStore`] (the server database). Each dialect owns its SQL and its migrations
//! (`migrations/sqlite`, `migrations/postgres`), run at startup.
//!
//! Invariants: only this crate knows SQL. Version numbers are assigned inside a transaction that
//! holds the prompt's lock, by `promptvault_core::version::plan_version`, so they stay contiguous
//! and unique however many writers there are. The content of versions of confidential and
//! restricted prompts is never stored in clear: it is sealed with the [`ConnectOptions::keys`]
//! ring (see `promptvault_core::crypto`) before it is written, and opened when read.

mod common;
pub mod error;
pub mod postgres;
pub mod sqlite;
pub mod testing;
pub mod types;

use std::sync::Arc;

use async_trait::async_trait;
use promptvault_core::{
    access::VisibilityFilter,
    audit::{AuditEntry, Checkpoint, NewAuditEntry},
    crypto::KeyRing,
    deploy::LabelTarget,
    ident::LabelName,
    model::{
        ApiToken, LabelEvent, Link, Prompt, PromptDetail, PromptType, PromptVersion, User,
        VersionStatus,
    },
    retire::Deprecation,
    runs::Feedback,
    testcase::TestCase,
};
use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::error::{StoreError, StoreResult};
use crate::types::{
    AddedVersion, AuditQuery, LinkFilter, NewApiToken, NewLink, NewPrompt, NewPromptType,
    NewReview, NewRun, NewUser, NewVersion, PoolStats, PromptKey, PromptPage, PromptPatch,
    PromptQuery, PromptTypePatch, PurgedVersion, ReviewOutcome, ReviewQueueItem, ReviewState, Run,
    RunHead, ServeCandidate, ServeSubject, UserPatch, VersionReviews, VersionSelector,
    VersionUsage, VersionUse,
};

/// Everything promptvault keeps, behind use-case-shaped methods. Implementations: SQLite and
/// PostgreSQL; both pass the same conformance suite (`tests/conformance.rs`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// Creates a prompt with its first version (number 1, semver 1.0.0) and the labels asked
    /// for; `latest` points at it. A taken name is `Conflict`.
    async fn create_prompt(
        &self,
        prompt: NewPrompt,
        first: NewVersion,
    ) -> StoreResult<PromptDetail>;

    /// The prompt with its versions (newest first) and labels.
    async fn get_prompt(&self, key: &PromptKey) -> StoreResult<PromptDetail>;

    /// The prompt's metadata only (no versions), for cheap existence and permission checks.
    async fn find_prompt(&self, key: &PromptKey) -> StoreResult<Prompt>;

    /// One page of prompts matching the query, sorted by name, with the total count.
    async fn list_prompts(&self, query: &PromptQuery) -> StoreResult<PromptPage>;

    /// Updates metadata. With `expected_revision`, the update only happens if the prompt's
    /// revision still equals it (`PreconditionFailed` otherwise), atomically.
    async fn update_prompt(
        &self,
        id: Uuid,
        patch: PromptPatch,
        expected_revision: Option<i64>,
    ) -> StoreResult<Prompt>;

    /// Deletes a prompt with its versions, labels, label history and links.
    async fn delete_prompt(&self, id: Uuid) -> StoreResult<()>;

    /// Adds a version: under the prompt's lock, asks `plan_version` what to do with the draft
    /// against the newest version, then inserts number `max + 1` (or returns the identical latest
    /// version with `created: false`), moves `latest`, sets the requested labels and bumps the
    /// prompt's revision. Domain refusals come back as `StoreError::Domain` (including content of
    /// the wrong kind for the prompt).
    ///
    /// With an identical draft, the requested labels are pointed at the existing latest version
    /// (moves recorded, revision bumped only if a label actually moved), so retrying a request
    /// that created a version and labelled it is a no-op.
    async fn add_version(&self, prompt_id: Uuid, version: NewVersion) -> StoreResult<AddedVersion>;

    /// One version by number.
    async fn get_version(&self, prompt_id: Uuid, version_number: i64)
    -> StoreResult<PromptVersion>;

    /// Moves a version from status `expected_from` to `to`, atomically: only if its status is
    /// still `expected_from` (`StatusChanged` naming the current one otherwise; nothing is
    /// written). Bumps the prompt's revision and re-derives the prompt's status from its
    /// versions' (`promptvault_core::retire::prompt_status`). Becoming approved records
    /// `approved_at`; becoming archived records `archived_at` and is refused with
    /// `VersionLabelled` while a label other than `latest` points at the version. Whether the move is allowed is the caller's
    /// business (`promptvault_core::lifecycle`). A missing prompt or version is `NotFound`.
    async fn set_version_status(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        expected_from: VersionStatus,
        to: VersionStatus,
    ) -> StoreResult<PromptVersion>;

    /// The serve path: the prompt and the version a selector picks, in one round trip where the
    /// dialect allows. A missing label is `NotFound` naming the label.
    async fn resolve_version(
        &self,
        key: &PromptKey,
        selector: &VersionSelector,
    ) -> StoreResult<(Prompt, PromptVersion)>;

    /// Points a label at an existing version, recording the move in the history (a no-op move
    /// records nothing and returns `None`). `latest` is refused by the caller, not here.
    async fn set_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        version_number: i64,
        actor_id: Option<Uuid>,
    ) -> StoreResult<Option<LabelEvent>>;

    /// Removes a label, recording the removal in the history.
    async fn remove_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        actor_id: Option<Uuid>,
    ) -> StoreResult<LabelEvent>;

    /// Every move of a label, oldest first.
    async fn label_history(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
    ) -> StoreResult<Vec<LabelEvent>>;

    /// Attaches a prompt to a capability (for one agent or for all). Linking the same
    /// (prompt, capability, agent) again updates the priority.
    async fn upsert_link(&self, link: NewLink) -> StoreResult<Link>;

    /// Links matching the filter, in resolution order: the agent's own links first, then global
    /// ones, then highest priority, then oldest, then id.
    async fn list_links(&self, filter: &LinkFilter) -> StoreResult<Vec<Link>>;

    async fn delete_link(&self, id: Uuid) -> StoreResult<()>;

    async fn create_prompt_type(&self, prompt_type: NewPromptType) -> StoreResult<PromptType>;
    async fn get_prompt_type(&self, key: &str) -> StoreResult<PromptType>;
    async fn list_prompt_types(&self) -> StoreResult<Vec<PromptType>>;
    async fn update_prompt_type(
        &self,
        key: &str,
        patch: PromptTypePatch,
    ) -> StoreResult<PromptType>;
    /// Deletes a prompt type; one still used by a prompt is `Conflict`.
    async fn delete_prompt_type(&self, key: &str) -> StoreResult<()>;

    /// Creates a user; a taken email is `Conflict`.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;
    async fn get_user(&self, id: Uuid) -> StoreResult<User>;
    /// Every user, oldest first.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn update_user(&self, id: Uuid, patch: UserPatch) -> StoreResult<User>;
    /// Deletes a user and every token that belongs to them.
    async fn delete_user(&self, id: Uuid) -> StoreResult<()>;

    /// Stores a token's record (its hash, never the secret).
    async fn create_token(&self, token: NewApiToken) -> StoreResult<ApiToken>;
    /// The token with this hash, revoked or expired ones included (the caller decides).
    async fn find_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;
    /// Every token, newest first.
    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>>;
    /// Marks a token revoked (now); revoking twice keeps the first time.
    async fn revoke_token(&self, id: Uuid) -> StoreResult<ApiToken>;
    /// Records that a token was used now (best effort, may be coalesced: at most one write per
    /// token per minute). A missing token is not an error.
    async fn touch_token(&self, id: Uuid) -> StoreResult<()>;
    /// How many tokens exist (for the first-start bootstrap).
    async fn count_tokens(&self) -> StoreResult<i64>;

    /// Appends an entry to the audit log: under the log's lock, `seq` is the last `seq` + 1 and
    /// `prev_hash` the last entry's hash (or the latest checkpoint's `up_to_hash`, or
    /// `GENESIS_HASH`); the hash is `promptvault_core::audit::entry_hash`. `at` is kept to the
    /// nanosecond, so the stored entry equals the one given (an `at` outside the years 1677–2262
    /// is a `Domain` error).
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<AuditEntry>;
    /// Entries matching the query, in `seq` order. A `limit` that is not positive is a `Domain`
    /// error.
    async fn list_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
    /// Up to `limit` entries with `seq > after_seq`, in `seq` order, exactly as stored (for
    /// verification). `limit` must be positive.
    async fn audit_chain(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The newest retention checkpoint, if entries were ever purged.
    async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>>;
    /// The newest entry written before `cutoff`, as (`seq`, `hash`): precisely, the entry just
    /// before the first one written at or after `cutoff`, so that purging up to it never removes
    /// a newer entry even when writers' clocks made `at` go backwards.
    async fn last_audit_before(&self, cutoff: OffsetDateTime)
    -> StoreResult<Option<(i64, String)>>;
    /// Atomically stores `checkpoint` and deletes every entry with `seq <= checkpoint.up_to_seq`;
    /// `Conflict` if entry `up_to_seq` does not have hash `up_to_hash`.
    async fn purge_audit(&self, checkpoint: Checkpoint) -> StoreResult<()>;

    /// Key rotation: re-seals, under the ring's current key, every sealed version whose key id
    /// is another one, and seals any version of a confidential or restricted prompt still
    /// stored in clear (written before encryption was configured). Works in batches, each in its
    /// own short transaction, so reads and writes go on meanwhile; returns how many versions it
    /// (re-)sealed. Safe to rerun after an interruption. Without a key ring it is a `Config`
    /// error; a version sealed under a key the ring lacks is an `Encryption` error (earlier
    /// batches stay done).
    async fn reencrypt(&self) -> StoreResult<u64>;

    /// The prompt's template test cases, in order (empty when it has none). Sealed cases (of a
    /// confidential or restricted prompt) are opened. A missing prompt is `NotFound`.
    async fn get_tests(&self, prompt_id: Uuid) -> StoreResult<Vec<TestCase>>;

    /// Replaces the prompt's test cases with `cases` (empty removes them), under the prompt's
    /// lock, sealed like version content when the classification asks for it, and bumps the
    /// prompt's revision. Returns the prompt as updated. The cases are not validated here (the
    /// caller runs `promptvault_core::testcase::validate`). From then on `add_version` runs them
    /// on every new version and adds their failures to its findings.
    async fn replace_tests(&self, prompt_id: Uuid, cases: Vec<TestCase>) -> StoreResult<Prompt>;
    /// Moves a version from `expected_from` to `deprecated` (as `set_version_status` does) and
    /// records the deprecation (time, sunset, replacement) on it, in one transaction.
    async fn deprecate_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        expected_from: VersionStatus,
        deprecation: Deprecation,
    ) -> StoreResult<PromptVersion>;

    /// Retention: drops the content, config, parameter schema, notes and findings of every
    /// archived version archived before `archived_before` and not purged yet, marking it purged
    /// (number, semver, diff_hash, author, status and times stay). Returns what it purged.
    async fn purge_archived_versions(
        &self,
        archived_before: OffsetDateTime,
    ) -> StoreResult<Vec<PurgedVersion>>;

    /// Records an explicit review attestation of a prompt at `at`.
    async fn mark_reviewed(&self, prompt_id: Uuid, at: OffsetDateTime) -> StoreResult<()>;

    /// Every prompt that is not archived, with what the periodic-review rule needs, by name.
    async fn review_states(&self) -> StoreResult<Vec<ReviewState>>;
    /// Points a label at one version or at a traffic split, recording the move (`set` or
    /// `split`) in the history; a move to exactly where it points already records nothing and
    /// returns `None`. With `required_status`, every target version must have that status, read
    /// inside the transaction that moves the label (so a status change cannot race the move):
    /// `Domain(LabelRequiresApproval)` naming the version otherwise. Missing prompt or version:
    /// `NotFound`. `latest` is refused by the caller, not here.
    async fn set_label_target(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        target: &LabelTarget,
        required_status: Option<VersionStatus>,
        actor_id: Option<Uuid>,
    ) -> StoreResult<Option<LabelEvent>>;

    /// Ends a label's split: the label points at one version of it (`version`, or with none
    /// given the non-primary one of a two-version split), recorded as `promote`.
    /// `required_status` as for [`Store::set_label_target`]. A missing label is `NotFound`; a
    /// label that does not split traffic is `Conflict`; a version outside the split, or none
    /// given for a split of three or more, is a `Domain` error.
    async fn promote_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        version: Option<i64>,
        required_status: Option<VersionStatus>,
        actor_id: Option<Uuid>,
    ) -> StoreResult<LabelEvent>;

    /// Rolls a label back, atomically: walking its history newest first, the first target
    /// version that differs from the current one and is `approved` (status read inside the
    /// transaction); the label moves there (any split cleared), recorded as `rollback`.
    /// `Conflict` when there is no such version.
    async fn rollback_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        actor_id: Option<Uuid>,
    ) -> StoreResult<LabelEvent>;

    /// Where a label points: now (`at` = `None`), or at a past time — from the history, and for
    /// `latest` (whose moves are not recorded) the newest version created by then. `None` when
    /// the label did not exist then; a missing prompt is `NotFound`.
    async fn label_target(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        at: Option<OffsetDateTime>,
    ) -> StoreResult<Option<LabelTarget>>;
    /// Records an approval, atomically under the prompt's lock: re-reads the version's status,
    /// its prompt's classification and type workflow and this round's decisions, asks
    /// `promptvault_core::workflow::decide_approval`, inserts the approval and, when it completes
    /// the workflow, moves the version review → approved in the same transaction. Bumps the
    /// prompt's revision. A refusal is `StoreError::Approval` and writes nothing.
    async fn approve_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        review: NewReview,
    ) -> StoreResult<ReviewOutcome>;

    /// Records a rejection like [`Store::approve_version`] (decided by
    /// `promptvault_core::workflow::decide_rejection`) and moves the version review → draft,
    /// which ends the review round: a resubmission starts with no approvals.
    async fn reject_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        review: NewReview,
    ) -> StoreResult<ReviewOutcome>;

    /// Every approval and rejection of a version, every round, oldest first, with the version's
    /// current review round. A missing prompt or version is `NotFound`.
    async fn list_reviews(
        &self,
        prompt_id: Uuid,
        version_number: i64,
    ) -> StoreResult<VersionReviews>;

    /// Every version in review (of prompts that are not archived) with its prompt and the
    /// decisions of its current round, in one query, sorted by prompt name then version. With a
    /// visibility filter, only prompts it lets the principal see (as `list_prompts`).
    async fn review_queue(
        &self,
        visibility: Option<&VisibilityFilter>,
    ) -> StoreResult<Vec<ReviewQueueItem>>;

    /// The resolve path, in one read transaction of two statements whatever the number of
    /// candidates (no N+1): the prompt(s) the subject names — one by key, or every prompt linked
    /// to the capability in `list_links` order (the agent's own links first, then global ones,
    /// highest priority, oldest, id) — each with where the selector's label points now and the
    /// versions that target may serve. Access is not decided here: the caller skips candidates
    /// the principal may not serve. A missing prompt (by key) is `NotFound`; no links is an empty
    /// list.
    async fn serve_candidates(
        &self,
        subject: &ServeSubject,
        selector: &VersionSelector,
    ) -> StoreResult<Vec<ServeCandidate>>;

    /// Records a batch of runs in one transaction and adds them to their versions' usage
    /// (`times_used`, `last_used`). Params and output are sealed for classifications sealed at
    /// rest (`EncryptionKeyRequired` without keys, and nothing is written). Runs of prompts
    /// deleted meanwhile are skipped. Returns how many runs were written.
    async fn insert_runs(&self, runs: Vec<NewRun>) -> StoreResult<u64>;

    /// Adds uses served without a run to their versions' usage (`times_used`, `last_used`,
    /// which never moves back), in one transaction. Uses of prompts deleted meanwhile are
    /// skipped.
    async fn add_usage(&self, uses: Vec<VersionUse>) -> StoreResult<()>;

    /// A run's metadata and feedback (no params, no output). A missing run is `NotFound`
    /// (`run <id>`).
    async fn run_head(&self, id: Uuid) -> StoreResult<RunHead>;

    /// A run with its params and output, opened if sealed.
    async fn get_run(&self, id: Uuid) -> StoreResult<Run>;

    /// Records feedback on a run, atomically: the fields given replace the stored ones, the
    /// others stay (`Feedback::merged`), and the version's usage moves by
    /// `FeedbackDelta::between` the stored and the merged feedback. Returns the run with its
    /// merged feedback. A missing run is `NotFound`.
    async fn upsert_feedback(
        &self,
        run_id: Uuid,
        feedback: Feedback,
        at: OffsetDateTime,
    ) -> StoreResult<RunHead>;

    /// Every version of the prompt, newest first, with its usage (zero for versions never
    /// used). A missing prompt is `NotFound`.
    async fn version_usage(&self, prompt_id: Uuid) -> StoreResult<Vec<VersionUsage>>;

    /// The outcomes (`success`) of the version's newest runs that have one, newest run first,
    /// at most `limit` (positive).
    async fn recent_outcomes(
        &self,
        prompt_id: Uuid,
        version_number: i64,
        limit: i64,
    ) -> StoreResult<Vec<bool>>;

    /// The size and idle connections of each connection pool now (no query: read from the
    /// pools themselves, so a scrape costs nothing and works while the database is down).
    fn pool_stats(&self) -> Vec<PoolStats>;
}

/// How to open a store, beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The encryption keys for the content of confidential and restricted versions. Without
    /// them, such content can be neither written nor read (a clear error each time); every
    /// other prompt works as usual.
    pub keys: Option<Arc<KeyRing>>,
}

/// Opens the store a URL names and runs its migrations: `postgres://` or `postgresql://` for
/// PostgreSQL, `sqlite:` (a file path or `sqlite::memory:`) for SQLite. No encryption keys:
/// see [`connect_with`].
#[tracing::instrument(skip_all)]
pub async fn connect(database_url: &str) -> StoreResult<Arc<dyn Store>> {
    connect_with(database_url, ConnectOptions::default()).await
}

/// [`connect`] with options (the encryption key ring).
#[tracing::instrument(skip_all)]
pub async fn connect_with(
    database_url: &str,
    options: ConnectOptions,
) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::connect_with(database_url, options).await?,
        ))
    } else if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect_with(database_url, options).await?,
        ))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL {:?}: use postgres://… or sqlite:…",
            redact_url(database_url)
        )))
    }
}

/// A database URL with any password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
