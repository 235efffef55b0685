//! The wire types of promptvault's native HTTP API (`/api`): request and response bodies, the
//! problem+json error body and the import/export bundle. The server, the CLI's HTTP client and the
//! tests all speak through these types; they are the only serialized view of the domain, and
//! converting from domain records happens here, explicitly.
//!
//! Requests refuse unknown fields (`deny_unknown_fields`), so a typo is an error, not a silent
//! no-op.

pub mod access;
pub mod bundle;
pub mod convert;
pub mod preserialized;
pub mod problem;
pub mod prompts;
pub mod reviews;
pub mod runs;
pub mod testcases;

pub use promptvault_core::{
    compliance::{Finding, Severity},
    diff::WordOp,
    model::{
        Classification, DeploymentModel, Grantee, Kind, PromptAccess, PromptStatus, Role, Scope,
        VersionStatus,
    },
    render::UndefinedMode,
    version::Bump,
    workflow::{ApprovalStep, ApprovalWorkflow, ReviewDecision},
};

/// Deserializes a field that distinguishes "absent" (`None`) from "null" (`Some(None)`).
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
