//! Liveness, readiness, Prometheus metrics, the import/export bundle endpoints and fallbacks.

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
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

/// The Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[utoipa::path(
    get, path = "/metrics", tag = "system",
    description = "Operational metrics in the Prometheus text format: request latency per route template, requests in flight, database pool connections, cache hits and misses, runs dropped. Needs an admin credential, or the `metrics.token` secret as a bearer token; with `metrics.public = true`, no credential.",
    responses(
        (status = 200, description = "every metric of the process", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "no or an invalid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the credential is not an admin's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn metrics(State(state): State<AppState>, mut parts: Parts) -> AppResult<Response> {
    let settings = &state.settings.metrics;
    let scraper = settings.token.as_ref().is_some_and(|token| {
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| {
                promptvault_core::secret::constant_time_eq(given.as_bytes(), token.0.as_bytes())
            })
    });
    let text = if settings.public || scraper {
        state.vault.metrics_unchecked()
    } else {
        let CurrentActor(actor) = CurrentActor::from_request_parts(&mut parts, &state).await?;
        state.vault.scrape_metrics(&actor).await?
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROMETHEUS_TEXT),
        )],
        text,
    )
        .into_response())
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
