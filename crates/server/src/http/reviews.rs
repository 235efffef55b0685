//! Handlers of the approval workflow (SPEC §6): approve and reject a version in review, who
//! approved what, and the caller's review queue. Each one extracts, calls the
//! [`crate::vault::Vault`] and answers with its JSON.

use axum::{Json, extract::State};
use promptvault_api::{
    problem::Problem,
    reviews::{
        ApprovalsResponse, ApproveRequest, RejectRequest, ReviewOutcomeResponse,
        ReviewQueueResponse,
    },
};

use crate::{
    error::AppResult,
    http::{
        AppState,
        extract::{ApiJson, ApiPath, CurrentActor},
    },
};

#[utoipa::path(
    post, path = "/api/prompts/{id}/versions/{n}/approve", tag = "reviews",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("n" = i64, Path, description = "The version number"),
    ),
    request_body = ApproveRequest,
    responses(
        (status = 200, description = "the approval, counted toward the first incomplete step; the one that completes the workflow makes the version approved", body = ReviewOutcomeResponse),
        (status = 403, description = "`self_approval`: the version's author; `approver_role_not_allowed`: the current step needs another role", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_in_review`; `already_approved`: one approval per approver per review round", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn approve_version(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, number)): ApiPath<(String, i64)>,
    ApiJson(request): ApiJson<ApproveRequest>,
) -> AppResult<Json<ReviewOutcomeResponse>> {
    Ok(Json(
        state
            .vault
            .approve_version(&actor, &id, number, request)
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/api/prompts/{id}/versions/{n}/reject", tag = "reviews",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("n" = i64, Path, description = "The version number"),
    ),
    request_body = RejectRequest,
    responses(
        (status = 200, description = "the version, back in draft with the reviewer's comment; a resubmission starts a new review round", body = ReviewOutcomeResponse),
        (status = 403, description = "`self_approval`; `approver_role_not_allowed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_in_review`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_field`: the comment is missing or too long", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reject_version(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, number)): ApiPath<(String, i64)>,
    ApiJson(request): ApiJson<RejectRequest>,
) -> AppResult<Json<ReviewOutcomeResponse>> {
    Ok(Json(
        state
            .vault
            .reject_version(&actor, &id, number, request)
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/api/prompts/{id}/versions/{n}/approvals", tag = "reviews",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("n" = i64, Path, description = "The version number"),
    ),
    responses(
        (status = 200, description = "every approval and rejection of the version, and where its current review round stands", body = ApprovalsResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn version_approvals(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, number)): ApiPath<(String, i64)>,
) -> AppResult<Json<ApprovalsResponse>> {
    Ok(Json(
        state.vault.version_approvals(&actor, &id, number).await?,
    ))
}

#[utoipa::path(
    get, path = "/api/reviews", tag = "reviews",
    responses(
        (status = 200, description = "the versions in review the caller can see and could approve now", body = ReviewQueueResponse),
    )
)]
pub async fn review_queue(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<ReviewQueueResponse>> {
    Ok(Json(state.vault.review_queue(&actor).await?))
}
