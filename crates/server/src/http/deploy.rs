//! Handlers of deployment through labels: promote (end a traffic split), rollback, and
//! `GET /api/resolve` (what a label serves — now, at a past time, or for a sticky
//! `request_key`). Moving and removing a label are in `prompts.rs` with the other label routes.

use axum::{Json, body::Bytes, extract::State, response::Response};
use promptvault_api::{
    problem::Problem,
    prompts::{LabelResponse, PromoteRequest, ResolveQuery, ResolveRequest, ResolveResponse},
};

use crate::{
    error::{AppError, AppResult},
    http::{
        AppState,
        caching::IfNoneMatch,
        extract::{ApiJson, ApiPath, CurrentActor, ResolveParams},
    },
};

#[utoipa::path(
    post, path = "/api/prompts/{id}/labels/{label}/promote", tag = "labels",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("label" = String, Path, description = "A label that splits traffic"),
    ),
    request_body(content = PromoteRequest, description = "Optional: without a body (or with `{}`), a two-version split ends on its non-primary version"),
    responses(
        (status = 200, description = "the label now points at one version", body = LabelResponse),
        (status = 403, description = "a protected label and a role that may not deploy (`deploy_forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the label does not split traffic (`label_not_split`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "a version outside the split, or one that is not approved for a protected label", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn promote_label(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, label)): ApiPath<(String, String)>,
    body: Bytes,
) -> AppResult<Json<LabelResponse>> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        PromoteRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            if error.is_syntax() || error.is_eof() {
                AppError::bad_request(
                    "malformed_json",
                    format!("the body is not valid JSON: {error}"),
                )
            } else {
                AppError::unprocessable("invalid_body", error.to_string())
            }
        })?
    };
    Ok(Json(
        state
            .vault
            .promote_label(&actor, &id, &label, request)
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/api/prompts/{id}/labels/{label}/rollback", tag = "labels",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("label" = String, Path, description = "The label to move back"),
    ),
    responses(
        (status = 200, description = "the label points at the previous approved target of its history", body = LabelResponse),
        (status = 403, description = "a protected label and a role that may not deploy (`deploy_forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "no earlier approved version in the history (`no_rollback_target`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rollback_label(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, label)): ApiPath<(String, String)>,
) -> AppResult<Json<LabelResponse>> {
    Ok(Json(state.vault.rollback_label(&actor, &id, &label).await?))
}

#[utoipa::path(
    get, path = "/api/resolve", tag = "render",
    params(ResolveQuery),
    responses(
        (status = 200, description = "the version the label serves (for this request_key), or the version asked for, rendered when `params` is given; a deprecated one (before its sunset) comes with `Deprecation`, `Sunset` and `Link: rel=\"successor-version\"` headers and a `deprecation` field. Strong `ETag`; `Cache-Control` by deployment model", body = ResolveResponse),
        (status = 304, description = "`If-None-Match` matched the answer's `ETag`"),
        (status = 404, description = "no such prompt, version, or label (at that time); no prompt the caller may use linked to the capability (`link_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`version_sunset`: deprecated and past its sunset (the detail names the replacement); `version_archived`: archived (not for `at`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resolve(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    if_none_match: IfNoneMatch,
    ResolveParams(query): ResolveParams,
) -> AppResult<Response> {
    let request = crate::vault::resolve_request(query)?;
    let resolved = state.vault.resolve(&actor, request).await?;
    Ok(resolved_answer(&state, &if_none_match, resolved))
}

#[utoipa::path(
    post, path = "/api/resolve", tag = "render",
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "as `GET /api/resolve`, for params too large for a URL", body = ResolveResponse),
        (status = 304, description = "`If-None-Match` matched the answer's `ETag`"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resolve_post(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    if_none_match: IfNoneMatch,
    ApiJson(request): ApiJson<ResolveRequest>,
) -> AppResult<Response> {
    let resolved = state.vault.resolve(&actor, request).await?;
    Ok(resolved_answer(&state, &if_none_match, resolved))
}

/// The resolve answer with its deprecation headers, `ETag` and `Cache-Control` (or a 304).
fn resolved_answer(
    state: &AppState,
    if_none_match: &IfNoneMatch,
    resolved: ResolveResponse,
) -> Response {
    let deprecation = resolved.deprecation.clone();
    let policy = crate::http::caching::CachePolicy::Revalidate {
        ttl_secs: state.settings.serving.client_ttl_secs,
    };
    let answer = crate::http::caching::cached_json(
        if_none_match,
        state.settings.deployment_model,
        policy,
        &resolved,
    );
    crate::http::retire::deprecation_on(deprecation.as_ref(), answer)
}
