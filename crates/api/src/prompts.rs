//! Bodies of the prompt, version, label, link, render, diff and prompt-type endpoints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    ApprovalWorkflow, Bump, Classification, Finding, Kind, PromptAccess, PromptStatus, Scope,
    UndefinedMode, VersionStatus, WordOp,
};

/// The schema of a template's `content` (documentation only): a string for a text prompt, or a
/// list of chat entries for a chat prompt.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Content {
    Text(String),
    Chat(Vec<ChatEntry>),
}

/// A chat entry: a message template `{role, content}`, or `{role: "placeholder", name}` which
/// expands to the list of messages passed as the parameter `name` at render time.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ChatEntry {
    pub role: String,
    pub content: Option<String>,
    pub name: Option<String>,
}

/// The schema of a render result (documentation only): a string for text prompts, a list of
/// messages for chat prompts.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Rendered {
    Text(String),
    Chat(Vec<RenderedMessage>),
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct RenderedMessage {
    pub role: String,
    pub content: String,
}

/// `POST /api/prompts`: the prompt's fields and its first version's fields in one body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePromptRequest {
    /// A unique path such as `support/summarize`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_description_markdown: Option<String>,
    /// Default `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The agent an `agent`-scoped prompt belongs to (required for that scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Uuid>,
    /// A prompt type key.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub prompt_type: Option<String>,
    /// Default `text`; must match the content (a string is text, a list is chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `human` (default), `system`, `gen`, `file` or `sync:<library>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Default `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Per-prompt access rules (owner_only, allowed_roles, restricted_deployments, grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<PromptAccess>,
    /// A template string (text) or a list of `{role, content}` / `{role: "placeholder", name}`.
    #[schema(value_type = Content)]
    pub content: Value,
    /// Model settings (a JSON object); default `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// A JSON Schema (2020-12) of the render parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameter_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Labels to point at the first version (`latest` is automatic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// `PUT /api/prompts/{id}`: metadata to change. Absent fields stay; `null` clears a nullable one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePromptRequest {
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub title: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub long_description_markdown: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub agent_id: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Uuid>, nullable)]
    pub owner_id: Option<Option<Uuid>>,
    #[serde(
        default,
        rename = "type",
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable)]
    pub prompt_type: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromptStatus>,
    /// Replaces the per-prompt access rules (admins and the owner only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<PromptAccess>,
}

/// `POST /api/prompts/{id}/version`. A version is a full snapshot, but `config` and
/// `parameter_schema` carry over from the latest version when absent, so a text edit never drops
/// the parameter contract by accident (`"parameter_schema": null` removes it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersionRequest {
    #[schema(value_type = Content)]
    pub content: Value,
    /// Model settings; absent: the latest version's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Absent: the latest version's; `null`: no schema.
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Object>, nullable)]
    pub parameter_schema: Option<Option<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Ask for at least this bump; smaller than the computed one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bump: Option<Bump>,
}

/// A version of a prompt (immutable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionResponse {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub version_number: i64,
    #[schema(example = "1.2.0")]
    pub semver: String,
    #[schema(value_type = Content)]
    pub content: Value,
    #[schema(value_type = Object)]
    pub config: Value,
    #[schema(value_type = Option<Object>)]
    pub parameter_schema: Option<Value>,
    /// SHA-256 of the canonical content + config + schema.
    pub diff_hash: String,
    pub notes: Option<String>,
    pub author_id: Option<Uuid>,
    pub status: VersionStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// The top-level variables the template reads.
    pub variables: Vec<String>,
    /// What the compliance checks found when the version was created (SPEC §9).
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Tokens of the template (`o200k_base`), counted when the version was created.
    #[serde(default)]
    pub token_count: i64,
    /// When the version last became approved.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub approved_at: Option<OffsetDateTime>,
    /// Its deprecation, while deprecated or archived after one (`null` otherwise).
    #[serde(default)]
    pub deprecation: Option<DeprecationResponse>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub archived_at: Option<OffsetDateTime>,
    /// When retention dropped this archived version's content, config and schema (`content` is
    /// then `null`); its number, semver, diff_hash, author, status and times stay.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub purged_at: Option<OffsetDateTime>,
}

/// A deprecation: served until `sunset_at` (with `Deprecation`, `Sunset` and `Link` headers),
/// gone (410 `version_sunset`) after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeprecationResponse {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub deprecated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub sunset_at: OffsetDateTime,
    /// The prompt to use instead, if one was named.
    pub replacement: Option<ReplacementResponse>,
}

/// The prompt that replaces a deprecated one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplacementResponse {
    pub prompt_id: Uuid,
    pub name: String,
}

/// The compliance findings of one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FindingsResponse {
    pub prompt_id: Uuid,
    pub prompt_name: String,
    pub version_number: i64,
    pub status: VersionStatus,
    pub token_count: i64,
    /// Whether an error finding blocks draft → review.
    pub blocking: bool,
    pub findings: Vec<Finding>,
}

/// A prompt with its versions (newest first) and labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromptResponse {
    pub id: Uuid,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub scope: Scope,
    pub agent_id: Option<String>,
    pub owner_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    #[serde(rename = "type")]
    pub prompt_type: Option<String>,
    pub kind: Kind,
    pub tags: Vec<String>,
    pub source: String,
    pub classification: Classification,
    pub status: PromptStatus,
    pub access: PromptAccess,
    /// Increases with every change; the `ETag` is made from it.
    pub revision: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Label name → version number, e.g. `{"production": 3, "latest": 4}`.
    pub labels: BTreeMap<String, i64>,
    /// The labels that split traffic: label → entries (the first is what `labels` shows).
    #[serde(default)]
    pub label_splits: BTreeMap<String, Vec<SplitEntry>>,
    pub versions: Vec<VersionResponse>,
}

/// One row of `GET /api/prompts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromptSummary {
    pub id: Uuid,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub scope: Scope,
    pub agent_id: Option<String>,
    pub owner_id: Option<Uuid>,
    #[serde(rename = "type")]
    pub prompt_type: Option<String>,
    pub kind: Kind,
    pub tags: Vec<String>,
    pub source: String,
    pub classification: Classification,
    pub status: PromptStatus,
    pub latest_version: i64,
    pub labels: BTreeMap<String, i64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// Query of `GET /api/prompts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPromptsQuery {
    /// 1-based page (ignored when `cursor` is given). Default 1.
    pub page: Option<i64>,
    /// Page size, 1–200. Default 50.
    pub per_page: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub scope: Option<Scope>,
    /// Owner id.
    pub owner: Option<Uuid>,
    pub tag: Option<String>,
    /// Prompt type key.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub prompt_type: Option<String>,
    pub status: Option<PromptStatus>,
    /// Only prompts carrying this label.
    pub label: Option<String>,
    /// Case-insensitive text in name, title or description.
    pub q: Option<String>,
    pub name_prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromptListResponse {
    pub items: Vec<PromptSummary>,
    /// Prompts matching the filters, across all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /api/prompts/{id}/versions/{n}/transition`: move the version to another status
/// (draft → review → approved → deprecated → archived; review → draft).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The status to move to.
    pub to: VersionStatus,
    /// Why (recorded in the audit log; at most 2000 characters).
    #[serde(default)]
    pub comment: Option<String>,
    /// With `"to": "deprecated"` only: the prompt (name or id) that replaces this one; optional
    /// (deprecating an old version in favour of a newer one of the same prompt names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// With `"to": "deprecated"` only: how long it is still served, `30d`, `2w` or `12h`
    /// (default: `lifecycle.deprecation_period_days`). Not with `sunset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// With `"to": "deprecated"` only: served until this RFC 3339 time. Not with `period`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
}

/// `POST /api/prompts/{id}/reviewed`: attest that the prompt was reviewed now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewedRequest {
    /// Recorded in the audit log (at most 2000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewedResponse {
    pub prompt_id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_reviewed_at: OffsetDateTime,
}

/// One prompt overdue for its periodic review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewDueItem {
    pub prompt_id: Uuid,
    pub name: String,
    pub classification: Classification,
    #[serde(rename = "type")]
    pub prompt_type: Option<String>,
    /// The interval: the prompt type's, else the classification's (`lifecycle.review_every_days`).
    pub review_every_days: u32,
    /// The last approval of one of its versions or attestation (`null`: never reviewed; the
    /// interval then counts from the prompt's creation).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_reviewed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub due_since: OffsetDateTime,
    pub days_overdue: i64,
}

/// `GET /api/reviews/due`: overdue prompts the caller may see, oldest due first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewsDueResponse {
    pub items: Vec<ReviewDueItem>,
}

/// `PUT /api/prompts/{id}/labels/{label}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLabelRequest {
    /// Point the label at this version (exclusive with `split`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Split the label's traffic between versions by weight (≥ 2 distinct versions, positive
    /// weights summing to 100); the first entry is the label's primary version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<SplitEntry>>,
}

impl SetLabelRequest {
    /// Points the label at one version.
    pub fn version(version: i64) -> Self {
        SetLabelRequest {
            version: Some(version),
            split: None,
        }
    }
}

/// One version of a traffic split and its share, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitEntry {
    pub version: i64,
    pub weight: u32,
}

/// Where a label points now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LabelResponse {
    pub label: String,
    /// The primary version (the first entry of a split).
    pub version: i64,
    /// The traffic split, when the label has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<SplitEntry>>,
}

/// `POST /api/prompts/{id}/labels/{label}/promote`: end the label's split on one version
/// (default: the non-primary version of a two-version split).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// Query of `GET /api/resolve`: a prompt by `name`, or by `agent` + `capability` through links.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResolveQuery {
    /// The prompt's name (or id); exclusive with `agent` and `capability`.
    pub name: Option<String>,
    /// The agent whose links are followed first (then global links); goes with `capability`.
    pub agent: Option<String>,
    /// Resolve through links: the agent's own links to this capability first, then global ones,
    /// highest priority first; the first prompt the caller may serve wins.
    pub capability: Option<String>,
    /// The label to resolve (default `production`); exclusive with `version`.
    pub label: Option<String>,
    /// A version number; exclusive with `label` and `at`.
    pub version: Option<i64>,
    /// RFC 3339 time: what the label served then.
    pub at: Option<String>,
    /// Sticky key for a split label: the same key always gets the same version.
    pub request_key: Option<String>,
    /// Render in the same call: a JSON object of render inputs (URL-encoded).
    pub params: Option<String>,
    /// With `params`: `strict` (default), `lenient` or `chainable`.
    pub undefined: Option<UndefinedMode>,
    /// With `params`: record this use as a run (`true`/`false`; default: the server's
    /// `runs.record`, off by default). Every use counts toward the version's usage either way.
    pub record: Option<bool>,
    /// With `params`: the caller's session, kept with a recorded run.
    pub session_id: Option<String>,
}

/// `POST /api/resolve`: the same as the query of `GET /api/resolve`, for large params.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The prompt's name (or id); exclusive with `agent` and `capability`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_key: Option<String>,
    /// Render in the same call with these inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undefined: Option<UndefinedMode>,
    /// With `params`: record this use as a run (default: the server's `runs.record`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// With `params`: the caller's session, kept with a recorded run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// The prompt's essentials in a resolve answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResolvedPrompt {
    pub id: Uuid,
    pub name: String,
    pub title: Option<String>,
    pub kind: Kind,
    pub scope: Scope,
    pub classification: Classification,
    pub status: PromptStatus,
    #[serde(rename = "type")]
    pub prompt_type: Option<String>,
}

/// Which entry of a split a request got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SplitPick {
    /// Index of the entry in the split (0 = primary).
    pub index: usize,
    pub version: i64,
    pub weight: u32,
    /// `key`: picked by `request_key` (sticky); `random`: no key was given.
    pub by: String,
}

/// `GET /api/resolve`: the version to use, ready to use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResolveResponse {
    // Serialized once per cached prompt, sent as bytes on every hit.
    #[schema(value_type = ResolvedPrompt)]
    pub prompt: crate::preserialized::Preserialized<ResolvedPrompt>,
    // Serialized once per cached version, sent as bytes on every hit.
    #[schema(value_type = VersionResponse)]
    pub version: crate::preserialized::Preserialized<VersionResponse>,
    /// The label resolved (`null` when a version number was asked for).
    pub label: Option<String>,
    /// The time asked about (`at`), if any.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<OffsetDateTime>,
    /// The label's split and the entry picked, when the label splits traffic.
    pub split: Option<Vec<SplitEntry>>,
    pub picked: Option<SplitPick>,
    /// Present when the version served now is deprecated (and still before its sunset); never
    /// for a question about the past (`at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<DeprecationResponse>,
    /// How many secrets and PII matches were replaced by `[REDACTED:<rule>]` in the version's
    /// content (for the classifications in `compliance.redact`).
    #[serde(default)]
    pub redactions: u64,
    /// With `params`: the rendered version (a string for text prompts, a list of `{role,
    /// content}` for chat prompts), filtered like a render's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Rendered>)]
    pub rendered: Option<Value>,
    /// With `params`: how many matches were redacted in `rendered`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered_redactions: Option<u64>,
    /// With `params`: the run recorded for this use (for `POST /api/runs/{id}/feedback`), when
    /// runs are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
}

/// One move of a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LabelEventResponse {
    pub label: String,
    /// Where it pointed before (`null`: created).
    pub from_version: Option<i64>,
    /// Where it points after (`null`: removed).
    pub to_version: Option<i64>,
    /// `set`, `remove`, `split`, `promote` or `rollback`.
    pub action: String,
    /// The split after the move, if the label splits traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Vec<SplitEntry>>,
    pub actor_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// `POST /api/prompts/{id}/link`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub capability: String,
    /// The agent; absent for a link every agent uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Higher wins; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkResponse {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub prompt_name: String,
    pub capability: String,
    pub agent_id: Option<String>,
    pub priority: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Query of `GET /api/links`: with `agent`, that agent's links and global ones, in resolution
/// order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LinksQuery {
    pub agent: Option<String>,
    pub capability: Option<String>,
}

/// `POST /api/prompts/{id}/render`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// A version number; exclusive with `label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// A label; default `production`, then `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The render inputs, validated against the version's parameter schema.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
    /// `strict` (default): undefined variables are an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undefined: Option<UndefinedMode>,
    /// Sticky key for a split label: the same key always gets the same version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_key: Option<String>,
    /// Record this render as a run (default: the server's `runs.record`, off by default).
    /// Every render counts toward the version's usage either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// The caller's session, kept with the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RenderResponse {
    pub prompt_id: Uuid,
    pub name: String,
    pub version_number: i64,
    pub semver: String,
    /// A string for text prompts, a list of `{role, content}` for chat prompts.
    #[schema(value_type = Rendered)]
    pub rendered: Value,
    #[schema(value_type = Object)]
    pub config: Value,
    /// How many secrets and PII matches were replaced by `[REDACTED:<rule>]` in `rendered`
    /// (output filtering for the classifications in `compliance.redact`).
    #[serde(default)]
    pub redactions: u64,
    /// Present when the version served is deprecated (and still before its sunset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation: Option<DeprecationResponse>,
    /// The run recorded for this render, for `POST /api/runs/{id}/feedback`; absent when
    /// nothing was recorded (not asked for, or the recording queue full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
}

/// Query of `GET /api/prompts/{id}/diff`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// Default: the version before `to`.
    pub from: Option<i64>,
    /// Default: the newest version.
    pub to: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WordChange {
    pub op: WordOp,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldDiff {
    pub changed: bool,
    /// Unified diff (empty when unchanged).
    pub unified: String,
    pub words: Vec<WordChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiffResponse {
    pub from: i64,
    pub to: i64,
    pub content: FieldDiff,
    pub config: FieldDiff,
    pub parameter_schema: FieldDiff,
}

/// `POST /api/prompt-types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePromptTypeRequest {
    pub key: String,
    pub name: String,
    /// A JSON Schema every template of this type must satisfy in its `parameter_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub restricted_creation: bool,
    #[serde(default)]
    pub requires_approval: bool,
    /// Prompts of this type need a review every this many days (overrides the
    /// classification's `lifecycle.review_every_days`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_every_days: Option<u32>,
    /// The approval workflow of this type's prompts, overriding their classification's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_workflow: Option<ApprovalWorkflow>,
}

/// `PUT /api/prompt-types/{key}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePromptTypeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Object>, nullable)]
    pub schema: Option<Option<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_creation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_approval: Option<bool>,
    /// `null` clears it.
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, nullable)]
    pub review_every_days: Option<Option<u32>>,
    /// A workflow overriding the classification's; `null` removes the override.
    #[serde(
        default,
        deserialize_with = "crate::double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<ApprovalWorkflow>, nullable)]
    pub approval_workflow: Option<Option<ApprovalWorkflow>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromptTypeResponse {
    pub key: String,
    pub name: String,
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    pub restricted_creation: bool,
    pub requires_approval: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    pub review_every_days: Option<u32>,
    /// The approval workflow of this type's prompts (none: their classification's).
    #[serde(default)]
    pub approval_workflow: Option<ApprovalWorkflow>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    pub status: String,
}
