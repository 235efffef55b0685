//! Handlers of links (`POST /api/prompts/{id}/link`, `GET /api/links`, `DELETE /api/links/{id}`)
//! and of prompt types (`/api/prompt-types`).

use axum::{Json, extract::State, http::StatusCode};
use promptvault_api::{
    problem::Problem,
    prompts::{
        CreatePromptTypeRequest, LinkRequest, LinkResponse, LinksQuery, PromptTypeResponse,
        UpdatePromptTypeRequest,
    },
};
use uuid::Uuid;

use crate::{
    error::AppResult,
    http::{
        AppState,
        extract::{ApiJson, ApiPath, ApiQuery, CurrentActor},
    },
};

#[utoipa::path(
    post, path = "/api/prompts/{id}/link", tag = "links",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    request_body = LinkRequest,
    responses(
        (status = 200, description = "linked (re-linking updates the priority)", body = LinkResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn link(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<LinkRequest>,
) -> AppResult<Json<LinkResponse>> {
    Ok(Json(state.vault.link(&actor, &id, request).await?))
}

#[utoipa::path(
    get, path = "/api/links", tag = "links",
    params(LinksQuery),
    responses(
        (status = 200, description = "in resolution order: the agent's own links, then global ones, highest priority first", body = Vec<LinkResponse>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_links(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiQuery(query): ApiQuery<LinksQuery>,
) -> AppResult<Json<Vec<LinkResponse>>> {
    Ok(Json(state.vault.list_links(&actor, query).await?))
}

#[utoipa::path(
    delete, path = "/api/links/{link_id}", tag = "links",
    params(("link_id" = Uuid, Path, description = "The link's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_link(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(link_id): ApiPath<Uuid>,
) -> AppResult<StatusCode> {
    state.vault.delete_link(&actor, link_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/api/prompt-types", tag = "prompt types",
    responses((status = 200, body = Vec<PromptTypeResponse>))
)]
pub async fn list_prompt_types(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<Vec<PromptTypeResponse>>> {
    Ok(Json(state.vault.list_prompt_types(&actor).await?))
}

#[utoipa::path(
    post, path = "/api/prompt-types", tag = "prompt types",
    request_body = CreatePromptTypeRequest,
    responses(
        (status = 201, body = PromptTypeResponse),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_prompt_type(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiJson(request): ApiJson<CreatePromptTypeRequest>,
) -> AppResult<(StatusCode, Json<PromptTypeResponse>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.vault.create_prompt_type(&actor, request).await?),
    ))
}

#[utoipa::path(
    get, path = "/api/prompt-types/{key}", tag = "prompt types",
    params(("key" = String, Path, description = "The prompt type's key")),
    responses(
        (status = 200, body = PromptTypeResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_prompt_type(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(key): ApiPath<String>,
) -> AppResult<Json<PromptTypeResponse>> {
    Ok(Json(state.vault.get_prompt_type(&actor, &key).await?))
}

#[utoipa::path(
    put, path = "/api/prompt-types/{key}", tag = "prompt types",
    params(("key" = String, Path, description = "The prompt type's key")),
    request_body = UpdatePromptTypeRequest,
    responses(
        (status = 200, body = PromptTypeResponse),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_prompt_type(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(key): ApiPath<String>,
    ApiJson(request): ApiJson<UpdatePromptTypeRequest>,
) -> AppResult<Json<PromptTypeResponse>> {
    Ok(Json(
        state
            .vault
            .update_prompt_type(&actor, &key, request)
            .await?,
    ))
}

#[utoipa::path(
    delete, path = "/api/prompt-types/{key}", tag = "prompt types",
    params(("key" = String, Path, description = "The prompt type's key")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "still used by a prompt", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_prompt_type(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(key): ApiPath<String>,
) -> AppResult<StatusCode> {
    state.vault.delete_prompt_type(&actor, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
