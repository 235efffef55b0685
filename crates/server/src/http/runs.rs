//! Handlers of runs: `POST /api/runs/{id}/feedback` (an outcome for a run a render recorded)
//! and `GET /api/prompts/{id}/metrics` (usage per version). Each one extracts, calls the
//! [`crate::vault::Vault`] and answers.

use axum::{Json, extract::State};
use promptvault_api::{
    problem::Problem,
    runs::{FeedbackRequest, FeedbackResponse, MetricsResponse},
};
use uuid::Uuid;

use crate::{
    error::AppResult,
    http::{
        AppState,
        extract::{ApiJson, ApiPath, CurrentActor},
    },
};

#[utoipa::path(
    post, path = "/api/runs/{id}/feedback", tag = "runs",
    params(("id" = Uuid, Path, description = "The run's id (`run_id` of a render answer)")),
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "the run's feedback as stored (merged with earlier feedback); durable when answered", body = FeedbackResponse),
        (status = 403, description = "only the run's sender or an admin may give feedback", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`run_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_field`: nothing given, a score outside 0..1, a comment too long", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn run_feedback(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<FeedbackRequest>,
) -> AppResult<Json<FeedbackResponse>> {
    Ok(Json(state.vault.run_feedback(&actor, id, request).await?))
}

#[utoipa::path(
    get, path = "/api/prompts/{id}/metrics", tag = "runs",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    responses(
        (status = 200, description = "every version, newest first: times used, last used, success rate, mean score", body = MetricsResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn prompt_metrics(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<MetricsResponse>> {
    Ok(Json(state.vault.metrics(&actor, &id).await?))
}
