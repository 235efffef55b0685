//! The inputs and outputs of the [`crate::Store`] methods that are not domain records.

use std::collections::BTreeMap;

use promptvault_core::{
    access::VisibilityFilter,
    audit::AuditOutcome,
    compliance::ComplianceRules,
    ident::{LabelName, PromptName},
    model::{
        Classification, DeploymentModel, Kind, Prompt, PromptAccess, PromptStatus, PromptVersion,
        Role, Scope, Source,
    },
    runs::{Feedback, Usage},
    version::VersionDraft,
    workflow::{ApprovalPolicy, ApprovalWorkflow, ReviewRecord, Reviewer},
};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// How a caller addresses a prompt: by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptKey {
    Id(Uuid),
    Name(PromptName),
}

impl std::fmt::Display for PromptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PromptKey::Id(id) => write!(f, "prompt {id}"),
            PromptKey::Name(name) => write!(f, "prompt {:?}", name.as_str()),
        }
    }
}

/// A new prompt's metadata (its first version comes as a [`NewVersion`]).
#[derive(Debug, Clone)]
pub struct NewPrompt {
    pub name: PromptName,
    pub title: Option<String>,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub scope: Scope,
    pub agent_id: Option<String>,
    pub owner_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub prompt_type: Option<String>,
    pub kind: Kind,
    pub tags: Vec<String>,
    pub source: Source,
    pub classification: Classification,
    pub access: PromptAccess,
}

/// A version to add: the validated draft plus who wrote it, why, and labels to set on it.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub draft: VersionDraft,
    pub notes: Option<String>,
    pub author_id: Option<Uuid>,
    /// Labels (never `latest`) to point at the new version in the same transaction.
    pub labels: Vec<LabelName>,
    /// Which fields to take from the newest version instead of the draft: decided inside the
    /// transaction that holds the prompt's lock, so a concurrent writer's config or schema is
    /// never silently reverted.
    pub carry_over: CarryOver,
    /// The compliance rules the new version is checked against (inside the transaction, after
    /// carry-over, so the findings compare the schema the version actually gets).
    pub compliance: ComplianceRules,
}

/// Fields a new version takes from the newest version, when the caller did not give them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CarryOver {
    pub config: bool,
    pub parameter_schema: bool,
}

/// The outcome of `add_version`.
#[derive(Debug, Clone)]
pub struct AddedVersion {
    pub version: PromptVersion,
    /// `false` when the draft was identical to the latest version and that one was returned.
    pub created: bool,
}

/// Metadata changes; `None` leaves a field alone, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct PromptPatch {
    pub title: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub long_description_markdown: Option<Option<String>>,
    pub scope: Option<Scope>,
    pub agent_id: Option<Option<String>>,
    pub owner_id: Option<Option<Uuid>>,
    pub prompt_type: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub classification: Option<Classification>,
    pub status: Option<PromptStatus>,
    /// Replaces the per-prompt access rules (owner_only, allowed_roles, restricted_deployments,
    /// grants).
    pub access: Option<PromptAccess>,
}

/// Filters and paging for `list_prompts`. Results are sorted by name, byte-wise (the same order
/// on both backends).
#[derive(Debug, Clone, Default)]
pub struct PromptQuery {
    pub scope: Option<Scope>,
    pub owner_id: Option<Uuid>,
    pub tag: Option<String>,
    pub prompt_type: Option<String>,
    /// Only prompts with this status. `None` lists every prompt except archived ones (archived
    /// prompts are hidden from lists unless asked for).
    pub status: Option<PromptStatus>,
    /// Only prompts that carry this label.
    pub label: Option<LabelName>,
    /// Case-insensitive substring of name, title or description (`%`, `_` and `\` match
    /// themselves). On SQLite, case folding covers ASCII letters only.
    pub q: Option<String>,
    /// Case-sensitive, literal name prefix.
    pub name_prefix: Option<String>,
    /// Keyset paging: only names strictly after this one (takes precedence over `offset`).
    pub after_name: Option<String>,
    pub offset: i64,
    /// Page size; zero or less means no limit (callers cap it).
    pub limit: i64,
    /// Only prompts the principal may see (`promptvault_core::access::is_visible`, applied in
    /// SQL so that pages and `total` never count hidden prompts). `None`: no restriction.
    pub visibility: Option<VisibilityFilter>,
}

/// One row of a prompt list.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptListItem {
    pub prompt: Prompt,
    pub labels: BTreeMap<String, i64>,
    pub latest_version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptPage {
    pub items: Vec<PromptListItem>,
    /// How many prompts match the filters (ignoring paging).
    pub total: i64,
}

/// Which version of a prompt to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    Number(i64),
    Label(LabelName),
}

#[derive(Debug, Clone)]
pub struct NewLink {
    pub prompt_id: Uuid,
    pub capability: String,
    pub agent_id: Option<String>,
    pub priority: i32,
}

/// Filters for `list_links`. With `agent`, both that agent's links and global links match.
#[derive(Debug, Clone, Default)]
pub struct LinkFilter {
    pub agent_id: Option<String>,
    pub capability: Option<String>,
    pub prompt_id: Option<Uuid>,
    /// Only the link with this id.
    pub link_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewPromptType {
    pub key: String,
    pub name: String,
    pub schema: Option<Value>,
    pub restricted_creation: bool,
    pub requires_approval: bool,
    /// Prompts of this type need a review every this many days.
    pub review_every_days: Option<u32>,
    /// Overrides the classification's approval workflow for prompts of this type.
    pub approval_workflow: Option<ApprovalWorkflow>,
}

#[derive(Debug, Clone, Default)]
pub struct PromptTypePatch {
    pub name: Option<String>,
    pub schema: Option<Option<Value>>,
    pub restricted_creation: Option<bool>,
    pub requires_approval: Option<bool>,
    pub review_every_days: Option<Option<u32>>,
    pub approval_workflow: Option<Option<ApprovalWorkflow>>,
}

/// A new prompt's access rules are part of [`NewPrompt`]; this is a new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Option<String>,
    pub external_user_id: Option<String>,
    pub did: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Vec<Role>,
    pub permissions: Vec<String>,
    pub data: Value,
}

/// Changes to a user; `None` leaves a field alone, `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<Option<String>>,
    pub external_user_id: Option<Option<String>>,
    pub did: Option<Option<String>>,
    pub at_protocol_handle: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub roles: Option<Vec<Role>>,
    pub permissions: Option<Vec<String>>,
    pub data: Option<Value>,
}

/// A token record to store: the SHA-256 of the secret, never the secret.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub name: String,
    pub token_hash: String,
    pub token_prefix: String,
    pub role: Role,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<String>,
    pub scopes: Option<Vec<Scope>>,
    pub prompt_names: Option<Vec<String>>,
    pub expires_at: Option<OffsetDateTime>,
    pub created_by: Option<Uuid>,
}

/// Filters of `list_audit`; all given filters must match.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor_id: Option<String>,
    pub actor_role: Option<Role>,
    pub prompt_id: Option<Uuid>,
    pub prompt_name: Option<String>,
    /// Exact action, or a prefix ending in `.` (e.g. `label.`).
    pub action: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub prompt_scope: Option<Scope>,
    /// Only entries written at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries written before this time.
    pub until: Option<OffsetDateTime>,
    /// Keyset paging: only entries with a larger `seq`.
    pub after_seq: Option<i64>,
    /// At most this many (required, > 0).
    pub limit: i64,
}

/// A version whose content retention dropped (`purge_archived_versions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedVersion {
    pub prompt_id: Uuid,
    pub prompt_name: String,
    pub version_number: i64,
    pub diff_hash: String,
    pub archived_at: OffsetDateTime,
}

/// What the periodic-review rule needs about one prompt that is not archived.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewState {
    pub prompt: Prompt,
    /// The review interval of the prompt's type, if it has a type that sets one.
    pub type_review_every_days: Option<u32>,
    /// The last explicit review attestation.
    pub last_attested_at: Option<OffsetDateTime>,
    /// When one of its versions last became approved.
    pub last_approved_at: Option<OffsetDateTime>,
}

/// An approval or a rejection to record (`Store::approve_version`, `Store::reject_version`).
#[derive(Debug, Clone)]
pub struct NewReview {
    pub reviewer: Reviewer,
    pub comment: Option<String>,
    /// The workflow of each classification; the prompt's type may override it. Read together
    /// with the prompt inside the decision's transaction.
    pub policy: ApprovalPolicy,
}

/// What a recorded approval or rejection did.
#[derive(Debug, Clone)]
pub struct ReviewOutcome {
    /// The version after the decision: `approved` when the workflow completed, `draft` after a
    /// rejection, else still `review`.
    pub version: PromptVersion,
    pub record: ReviewRecord,
    /// Whether this approval completed the workflow.
    pub complete: bool,
    /// The workflow the decision was made against.
    pub workflow: ApprovalWorkflow,
    /// Every decision of the round, this one included, oldest first.
    pub round: Vec<ReviewRecord>,
}

/// A version waiting in review, with what deciding on it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewQueueItem {
    pub prompt: Prompt,
    pub version_number: i64,
    pub semver: String,
    pub author_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    /// The current review round.
    pub round: i64,
    /// The prompt type's own workflow, if it has one.
    pub type_workflow: Option<ApprovalWorkflow>,
    /// The decisions of the current round, oldest first.
    pub approvals: Vec<ReviewRecord>,
}

/// A version's approvals and rejections (`Store::list_reviews`).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionReviews {
    /// The version's current review round (0: never submitted); only this round's approvals
    /// count toward its workflow.
    pub current_round: i64,
    /// Every decision, every round, oldest first.
    pub reviews: Vec<ReviewRecord>,
}

/// What `GET /api/resolve` serves: one prompt by id or name, or the prompts linked to a
/// capability (an agent's own links, then global ones).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServeSubject {
    Prompt(PromptKey),
    /// Links of `capability`: with an agent, its own links first, then global ones; without one,
    /// global links only.
    Capability {
        agent_id: Option<String>,
        capability: String,
    },
}

impl std::hash::Hash for PromptKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            PromptKey::Id(id) => id.hash(state),
            PromptKey::Name(name) => name.as_str().hash(state),
        }
    }
}

/// One prompt a resolve may serve, with everything serving it needs: where the label asked for
/// points now (`None` when the prompt has no such label, or a version number was asked for) and
/// the versions that target may serve (a split's every entry; for a number, that version if it
/// exists).
#[derive(Debug, Clone)]
pub struct ServeCandidate {
    pub prompt: Prompt,
    pub target: Option<promptvault_core::deploy::LabelTarget>,
    pub versions: Vec<PromptVersion>,
}

impl ServeCandidate {
    /// The candidate's version with this number, if it was loaded.
    pub fn version(&self, number: i64) -> Option<&PromptVersion> {
        self.versions
            .iter()
            .find(|version| version.version_number == number)
    }
}

/// A run to record (`Store::insert_runs`): one use of a version. `params` and `rendered` are
/// stored as given (the caller redacts them first where the classification asks for it) and
/// sealed together when `classification` is sealed at rest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub version_number: i64,
    /// The prompt's classification when the run was served: decides sealing.
    pub classification: Classification,
    pub params: Value,
    pub rendered: Value,
    /// Who asked (the audit log's actor id).
    pub sender: Option<String>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub agent_id: Option<String>,
    pub deployment_model: DeploymentModel,
    pub created_at: OffsetDateTime,
}

/// Uses of one version that were served without a run recorded (`Store::add_usage`):
/// `count` more uses, the latest at `last_used`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionUse {
    pub prompt_id: Uuid,
    pub version_number: i64,
    pub count: i64,
    pub last_used: OffsetDateTime,
}

impl VersionUse {
    /// One use of `version_number` of `prompt_id` at `at`.
    pub fn one(prompt_id: Uuid, version_number: i64, at: OffsetDateTime) -> Self {
        VersionUse {
            prompt_id,
            version_number,
            count: 1,
            last_used: at,
        }
    }

    /// Adds `other`'s uses (of the same version) to these: counts add up, the latest
    /// `last_used` stays.
    pub fn absorb(&mut self, other: VersionUse) {
        self.count += other.count;
        self.last_used = self.last_used.max(other.last_used);
    }
}

/// A run's metadata, without what was rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct RunHead {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub version_number: i64,
    pub sender: Option<String>,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub agent_id: Option<String>,
    pub deployment_model: DeploymentModel,
    pub created_at: OffsetDateTime,
    pub feedback: Option<Feedback>,
    pub feedback_at: Option<OffsetDateTime>,
}

/// A run with its params and rendered output (opened if sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub head: RunHead,
    pub params: Value,
    pub rendered: Value,
}

/// One version's usage (`Store::version_usage`).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionUsage {
    pub version_number: i64,
    pub usage: Usage,
}

/// One connection pool of a store at the moment it is asked (`Store::pool_stats`), for the
/// `/metrics` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool: `writer` and `reader` on SQLite, `main` on PostgreSQL.
    pub pool: &'static str,
    /// Connections open now (idle or in use).
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool may open.
    pub max: u32,
}
