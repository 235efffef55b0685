//! Liveness, readiness, the import/export bundle endpoints and fallbacks.

use axum::{Json, extract::State, http::StatusCode};
use promptvault_api::{
    bundle::{Bundle, ImportReport},
    problem::Problem,
    prompts::HealthResponse,
};

use crate::{
    error::{AppError, AppResult},
    http::{
        AppState,
        extract::{ApiJson, CurrentActor},
    },
};

#[utoipa::path(get, path = "/healthz", tag = "system", security(()), responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

#[utoipa::path(
    get, path = "/readyz", tag = "system",
    security(()),
    responses(
        (status = 200, description = "the database answers", body = HealthResponse),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> AppResult<Json<HealthResponse>> {
    state.vault.ready().await?;
    Ok(Json(HealthResponse {
        status: "ready".into(),
    }))
}

#[utoipa::path(
    get, path = "/api/export", tag = "bundle",
    responses((status = 200, description = "every prompt, whatever its status, with all versions, labels and links", body = Bundle))
)]
pub async fn export(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<Bundle>> {
    Ok(Json(state.vault.export_all(&actor).await?))
}

#[utoipa::path(
    post, path = "/api/import", tag = "bundle",
    request_body = Bundle,
    responses(
        (status = 200, description = "what was created; importing the same bundle again creates nothing", body = ImportReport),
        (status = 422, description = "the bundle is invalid on its own or against the database (unknown prompt type, kind of an existing prompt, prompt-type contract); every problem is listed and nothing was written", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiJson(bundle): ApiJson<Bundle>,
) -> AppResult<Json<ImportReport>> {
    Ok(Json(state.vault.import(&actor, bundle).await?))
}

pub async fn not_found() -> AppError {
    AppError::not_found("route_not_found", "no such route")
}

pub async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
