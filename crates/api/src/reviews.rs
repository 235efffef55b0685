//! Approvals (SPEC §6): approving and rejecting a version in review, who approved what, and the
//! review queue. Steps are numbered from 1 on the wire.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    ApprovalStep, ReviewDecision, Role, VersionStatus, convert::review_step,
    prompts::VersionResponse,
};

/// `POST /api/prompts/{id}/versions/{n}/approve`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Why (kept with the approval; at most 2000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `POST /api/prompts/{id}/versions/{n}/reject`: the version goes back to draft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// What must change (required, 1 to 2000 characters); kept with the rejection.
    pub comment: String,
}

/// One approval or rejection of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    /// The review round (each submission for review starts a new one).
    pub round: i64,
    /// The workflow step (from 1) the decision counted toward.
    pub step: u32,
    /// The user id, `token:<id>`, or `operator` (the CLI on the local database).
    pub approver_id: String,
    pub approver_role: Role,
    pub decision: ReviewDecision,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<&promptvault_core::workflow::ReviewRecord> for ApprovalResponse {
    fn from(record: &promptvault_core::workflow::ReviewRecord) -> Self {
        ApprovalResponse {
            round: record.round,
            step: review_step(record.step as usize),
            approver_id: record.reviewer_id.clone(),
            approver_role: record.reviewer_role,
            decision: record.decision,
            comment: record.comment.clone(),
            at: record.at,
        }
    }
}

/// Where a version's current review round stands against its workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewProgress {
    /// The workflow's steps, in order.
    pub steps: Vec<ApprovalStep>,
    /// The first step (from 1) still short of approvals; none when the version is not in review
    /// or every step has its approvals.
    pub current_step: Option<u32>,
    /// Approvals so far in this round.
    pub approvals: u32,
    /// Approvals the whole workflow takes.
    pub required: u32,
}

/// What an approval or a rejection did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewOutcomeResponse {
    /// The version after the decision (`approved` once the workflow is complete, `draft` after a
    /// rejection).
    pub version: VersionResponse,
    pub decision: ApprovalResponse,
    /// Whether this approval completed the workflow.
    pub complete: bool,
    pub progress: ReviewProgress,
}

/// `GET /api/prompts/{id}/versions/{n}/approvals`: who approved or rejected what, every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalsResponse {
    pub prompt_id: Uuid,
    pub prompt_name: String,
    pub version_number: i64,
    pub status: VersionStatus,
    /// Against the workflow that applies now, counting the current round only.
    pub progress: ReviewProgress,
    /// Every decision, oldest first.
    pub approvals: Vec<ApprovalResponse>,
}

/// A version waiting for the caller's approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewQueueItem {
    pub prompt_id: Uuid,
    pub prompt_name: String,
    pub version_number: i64,
    pub semver: String,
    pub author_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub round: i64,
    pub progress: ReviewProgress,
    /// This round's approvals so far.
    pub approvals: Vec<ApprovalResponse>,
}

/// `GET /api/reviews`: the versions in review the caller can see and could approve now (their
/// role fits the current step, they are not the author, they have not approved this round).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewQueueResponse {
    pub items: Vec<ReviewQueueItem>,
}
