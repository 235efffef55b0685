//! The import/export bundle: prompts (every status) with all their versions (oldest first),
//! labels and links, plus the prompt types they use. Written as JSON or YAML by `prompt export`
//! and `GET /api/export`, read by `prompt import` and `POST /api/import`.
//!
//! On import, a prompt that does not exist yet is created with every version replayed in
//! `version_number` order (a reverted history A, B, A comes back as three versions), its labels
//! on the same numbers and its `status`. A prompt that exists keeps its metadata and status; only
//! versions whose `diff_hash` it does not have are added, and labels move to the local version
//! with the same text (the same number if that one matches, else the newest with that
//! `diff_hash`), so importing a bundle twice changes nothing. Imported versions get the time of
//! the import as `created_at` and a `semver` computed again; the bundle's values are
//! informational. A bundle is validated whole (on its own and against the database) before
//! anything is written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{Classification, Kind, PromptStatus, Scope, prompts::CreatePromptTypeRequest};

/// The `format` every bundle carries.
pub const BUNDLE_FORMAT: &str = "promptvault.bundle/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always `promptvault.bundle/v1`.
    pub format: String,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub exported_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_types: Vec<CreatePromptTypeRequest>,
    pub prompts: Vec<BundlePrompt>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundlePrompt {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_description_markdown: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Uuid>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub prompt_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// Carried over when the import creates the prompt (absent: `active`); an existing prompt
    /// keeps its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromptStatus>,
    /// Per-prompt access rules (owner_only, allowed_roles, restricted_deployments, grants), so a
    /// restored backup is exactly as closed as the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<crate::PromptAccess>,
    /// Oldest first; at least one. Replayed in `version_number` order.
    pub versions: Vec<BundleVersion>,
    /// Label → `version_number` as numbered in this bundle (`latest` is ignored on import).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<BundleLink>,
    /// The prompt's template test cases (absent in bundles from before tests, and when it has
    /// none). On import they replace the local set when they differ, after the versions are
    /// written (so imported versions are not re-tested).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<Vec<promptvault_core::testcase::TestCase>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleVersion {
    /// The version's number in this bundle; labels refer to it. The importing side numbers
    /// versions itself (a new prompt gets the same numbers when no two consecutive versions are
    /// identical, which an export never contains).
    pub version_number: i64,
    /// Informational: the importing side computes its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    #[schema(value_type = crate::prompts::Content)]
    pub content: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameter_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Informational: recomputed on import, which is idempotent by this hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_hash: Option<String>,
    /// Informational: an imported version's `created_at` is the time of the import.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleLink {
    pub capability: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub priority: i32,
}

/// What an import did. Importing the same bundle twice creates nothing the second time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub prompt_types_created: u64,
    pub prompts_created: u64,
    pub versions_created: u64,
    /// Versions whose `diff_hash` the prompt already had.
    pub versions_unchanged: u64,
    pub labels_moved: u64,
    pub links_set: u64,
    /// Protected labels the bundle asked for and that were not set: imported versions are
    /// drafts, and only approved versions may carry a protected label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels_skipped: Vec<SkippedLabel>,
}

/// A label an import did not set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SkippedLabel {
    pub prompt: String,
    pub label: String,
    pub version_number: i64,
    pub reason: String,
}
