//! Handlers of users (`/api/users`), API tokens (`/api/tokens`) and the audit log
//! (`/api/audit`, `/api/audit/verify`). All of them need the admin role.

use axum::{Json, extract::State, http::StatusCode};
use promptvault_api::{
    access::{
        AuditListResponse, AuditQuery, AuditVerifyResponse, CreateTokenRequest, CreateUserRequest,
        KeysRotatedResponse, TokenResponse, UpdateUserRequest, UserResponse,
    },
    problem::Problem,
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
    get, path = "/api/users", tag = "access",
    responses(
        (status = 200, body = Vec<UserResponse>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<Vec<UserResponse>>> {
    Ok(Json(state.vault.list_users(&actor).await?))
}

#[utoipa::path(
    post, path = "/api/users", tag = "access",
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "the email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> AppResult<(StatusCode, Json<UserResponse>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.vault.create_user(&actor, request).await?),
    ))
}

#[utoipa::path(
    get, path = "/api/users/{user_id}", tag = "access",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = UserResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(user_id): ApiPath<Uuid>,
) -> AppResult<Json<UserResponse>> {
    Ok(Json(state.vault.get_user(&actor, user_id).await?))
}

#[utoipa::path(
    put, path = "/api/users/{user_id}", tag = "access",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, body = UserResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_user(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(user_id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> AppResult<Json<UserResponse>> {
    let user = state.vault.update_user(&actor, user_id, request).await?;
    // Roles and permissions behind cached tokens may have changed.
    state.auth.forget_cached_tokens();
    Ok(Json(user))
}

#[utoipa::path(
    delete, path = "/api/users/{user_id}", tag = "access",
    params(("user_id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 204, description = "deleted, with every token of the user"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(user_id): ApiPath<Uuid>,
) -> AppResult<StatusCode> {
    state.vault.delete_user(&actor, user_id).await?;
    state.auth.forget_cached_tokens();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/api/tokens", tag = "access",
    responses(
        (status = 200, description = "every token, without secrets", body = Vec<TokenResponse>),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<Vec<TokenResponse>>> {
    Ok(Json(state.vault.list_tokens(&actor).await?))
}

#[utoipa::path(
    post, path = "/api/tokens", tag = "access",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "the token, with its secret shown this once", body = TokenResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_token(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiJson(request): ApiJson<CreateTokenRequest>,
) -> AppResult<(StatusCode, Json<TokenResponse>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.vault.create_token(&actor, request).await?),
    ))
}

#[utoipa::path(
    delete, path = "/api/tokens/{token_id}", tag = "access",
    params(("token_id" = Uuid, Path, description = "The token's id")),
    responses(
        (status = 200, description = "revoked", body = TokenResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(token_id): ApiPath<Uuid>,
) -> AppResult<Json<TokenResponse>> {
    let revoked = state.vault.revoke_token(&actor, token_id).await?;
    state.auth.forget_cached_tokens();
    Ok(Json(revoked))
}

#[utoipa::path(
    get, path = "/api/audit", tag = "access",
    params(AuditQuery),
    responses(
        (status = 200, body = AuditListResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_audit(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> AppResult<Json<AuditListResponse>> {
    Ok(Json(state.vault.list_audit(&actor, query).await?))
}

#[utoipa::path(
    get, path = "/api/audit/verify", tag = "access",
    responses(
        (status = 200, description = "whether the hash chain is intact, and where it breaks", body = AuditVerifyResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_audit(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<AuditVerifyResponse>> {
    Ok(Json(state.vault.verify_audit(&actor).await?))
}

#[utoipa::path(
    post, path = "/api/keys/rotate", tag = "access",
    responses(
        (status = 200, description = "every sealed version is now under the current encryption key", body = KeysRotatedResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "a version is sealed under a key this server does not have", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_keys(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<KeysRotatedResponse>> {
    Ok(Json(state.vault.rotate_keys(&actor).await?))
}
