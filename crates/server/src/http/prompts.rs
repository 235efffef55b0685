//! Handlers of `/api/prompts/…`: prompts, versions, diff, labels and render. Each one extracts,
//! calls the [`crate::vault::Vault`] and shapes the HTTP answer (status, `ETag`, `Location`).

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use promptvault_api::{
    problem::Problem,
    prompts::{
        CreatePromptRequest, CreateVersionRequest, DiffQuery, DiffResponse, FindingsResponse,
        LabelEventResponse, LabelResponse, ListPromptsQuery, PromptListResponse, PromptResponse,
        RenderRequest, RenderResponse, SetLabelRequest, TransitionRequest, UpdatePromptRequest,
        VersionResponse,
    },
};

use crate::{
    error::AppResult,
    http::{
        AppState,
        extract::{ApiJson, ApiPath, ApiQuery, CurrentActor},
    },
    vault::etag,
};

/// A prompt with its `ETag`.
fn with_etag(status: StatusCode, prompt: PromptResponse) -> Response {
    let tag = etag(prompt.id, prompt.revision);
    let mut response = (status, Json(prompt)).into_response();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[utoipa::path(
    get, path = "/api/prompts", tag = "prompts",
    params(ListPromptsQuery),
    responses(
        (status = 200, body = PromptListResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_prompts(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiQuery(query): ApiQuery<ListPromptsQuery>,
) -> AppResult<Json<PromptListResponse>> {
    Ok(Json(state.vault.list_prompts(&actor, query).await?))
}

#[utoipa::path(
    post, path = "/api/prompts", tag = "prompts",
    request_body = CreatePromptRequest,
    responses(
        (status = 201, body = PromptResponse, headers(("ETag" = String))),
        (status = 400, description = "malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid fields, template or schema", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_prompt(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiJson(request): ApiJson<CreatePromptRequest>,
) -> AppResult<Response> {
    Ok(with_etag(
        StatusCode::CREATED,
        state.vault.create_prompt(&actor, request).await?,
    ))
}

#[utoipa::path(
    get, path = "/api/prompts/{id}", tag = "prompts",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    responses(
        (status = 200, body = PromptResponse, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_prompt(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Response> {
    Ok(with_etag(
        StatusCode::OK,
        state.vault.get_prompt(&actor, &id).await?,
    ))
}

#[utoipa::path(
    put, path = "/api/prompts/{id}", tag = "prompts",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on"),
    ),
    request_body = UpdatePromptRequest,
    responses(
        (status = 200, body = PromptResponse, headers(("ETag" = String))),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not match the current ETag", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_prompt(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<UpdatePromptRequest>,
) -> AppResult<Response> {
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|value| value.to_str().ok());
    Ok(with_etag(
        StatusCode::OK,
        state
            .vault
            .update_prompt(&actor, &id, request, if_match)
            .await?,
    ))
}

#[utoipa::path(
    delete, path = "/api/prompts/{id}", tag = "prompts",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_prompt(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
) -> AppResult<StatusCode> {
    state.vault.delete_prompt(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/api/prompts/{id}/version", tag = "versions",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    request_body = CreateVersionRequest,
    responses(
        (status = 201, description = "a new version", body = VersionResponse),
        (status = 200, description = "identical to the latest version, which is returned", body = VersionResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn add_version(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<CreateVersionRequest>,
) -> AppResult<Response> {
    let (version, created) = state.vault.add_version(&actor, &id, request).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!(
        "/api/prompts/{}/versions/{}",
        version.prompt_id, version.version_number
    );
    let mut response = (status, Json(version)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

#[utoipa::path(
    get, path = "/api/prompts/{id}/versions/{n}", tag = "versions",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("n" = i64, Path, description = "The version number"),
    ),
    responses(
        (status = 200, description = "the version, with a strong `ETag`; its content never changes, so outside `web_application` it may be cached for a year (`immutable`)", body = VersionResponse),
        (status = 304, description = "`If-None-Match` matched the version's `ETag`"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_version(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    if_none_match: crate::http::caching::IfNoneMatch,
    ApiPath((id, number)): ApiPath<(String, i64)>,
) -> AppResult<Response> {
    let version = state.vault.get_version(&actor, &id, number).await?;
    Ok(crate::http::caching::cached_json(
        &if_none_match,
        state.settings.deployment_model,
        crate::http::caching::CachePolicy::Immutable,
        &version,
    ))
}

#[utoipa::path(
    get, path = "/api/prompts/{id}/versions/{n}/findings", tag = "versions",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("n" = i64, Path, description = "The version number"),
    ),
    responses(
        (status = 200, description = "what the compliance checks found when the version was created", body = FindingsResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn version_findings(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, number)): ApiPath<(String, i64)>,
) -> AppResult<Json<FindingsResponse>> {
    Ok(Json(
        state.vault.version_findings(&actor, &id, number).await?,
    ))
}

#[utoipa::path(
    post, path = "/api/prompts/{id}/versions/{n}/transition", tag = "versions",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("n" = i64, Path, description = "The version number"),
    ),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "the version, in its new status", body = VersionResponse),
        (status = 403, description = "`forbidden_transition`: not this actor's to make (role, or approving one's own version)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`status_conflict`: the status changed meanwhile; `version_labelled`: archiving a version user-set labels still point at (named)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_transition`: no such move from the current status; `compliance_failed`: an error finding blocks draft → review (one item per finding); `invalid_replacement`: the replacement is missing, hidden or this prompt; `invalid_field`: a bad period or sunset", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transition_version(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, number)): ApiPath<(String, i64)>,
    ApiJson(request): ApiJson<TransitionRequest>,
) -> AppResult<Json<VersionResponse>> {
    Ok(Json(
        state
            .vault
            .transition_version(&actor, &id, number, request)
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/api/prompts/{id}/diff", tag = "versions",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name"), DiffQuery),
    responses(
        (status = 200, body = DiffResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn diff(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> AppResult<Json<DiffResponse>> {
    Ok(Json(state.vault.diff(&actor, &id, query).await?))
}

#[utoipa::path(
    put, path = "/api/prompts/{id}/labels/{label}", tag = "labels",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("label" = String, Path, description = "A label matching ^[a-z0-9_.-]{1,36}$ (not `latest`)"),
    ),
    request_body = SetLabelRequest,
    responses(
        (status = 200, body = LabelResponse),
        (status = 403, description = "a protected label and a role that may not deploy (`deploy_forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "an invalid split, or a version that is not approved for a protected label (`label_requires_approval`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn set_label(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, label)): ApiPath<(String, String)>,
    ApiJson(request): ApiJson<SetLabelRequest>,
) -> AppResult<Json<LabelResponse>> {
    Ok(Json(
        state.vault.set_label(&actor, &id, &label, request).await?,
    ))
}

#[utoipa::path(
    delete, path = "/api/prompts/{id}/labels/{label}", tag = "labels",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("label" = String, Path, description = "The label to remove (not `latest`)"),
    ),
    responses(
        (status = 204, description = "removed"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn remove_label(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, label)): ApiPath<(String, String)>,
) -> AppResult<StatusCode> {
    state.vault.remove_label(&actor, &id, &label).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/api/prompts/{id}/labels/{label}/history", tag = "labels",
    params(
        ("id" = String, Path, description = "The prompt's UUID or URL-encoded name"),
        ("label" = String, Path, description = "The label"),
    ),
    responses(
        (status = 200, description = "every move, oldest first", body = Vec<LabelEventResponse>),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn label_history(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath((id, label)): ApiPath<(String, String)>,
) -> AppResult<Json<Vec<LabelEventResponse>>> {
    Ok(Json(state.vault.label_history(&actor, &id, &label).await?))
}

#[utoipa::path(
    post, path = "/api/prompts/{id}/render", tag = "render",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    request_body = RenderRequest,
    responses(
        (status = 200, description = "the rendered version; a deprecated one (before its sunset) comes with `Deprecation`, `Sunset` and `Link: rel=\"successor-version\"` headers and a `deprecation` field", body = RenderResponse),
        (status = 404, description = "no such prompt, version or label", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`version_sunset`: deprecated and past its sunset (the detail names the replacement); `version_archived`: archived", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "params fail the schema, missing variables, or a render limit was hit", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn render(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<RenderRequest>,
) -> AppResult<Response> {
    let rendered: RenderResponse = state.vault.render(&actor, &id, request).await?;
    Ok(crate::http::retire::with_deprecation(
        rendered.deprecation.clone().as_ref(),
        rendered,
    ))
}
