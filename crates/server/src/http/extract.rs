//! Request extractors that turn every malformed input into a problem+json answer naming what is
//! wrong: bad JSON syntax (400), a body that does not fit the type — unknown fields included —
//! (422), a wrong content type (415), an oversized body (413), a bad query or path (400).
//! And [`CurrentActor`], the authenticated principal of the request.

use std::net::SocketAddr;

use axum::{
    extract::{
        ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, rejection::JsonRejection,
    },
    http::{StatusCode, header::AUTHORIZATION, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::{actor::Actor, auth::AuthFailure, error::AppError, http::AppState};

/// `Json<T>` whose rejections are problem+json.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match &rejection {
        JsonRejection::JsonSyntaxError(_) => AppError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {}", rejection.body_text()),
        ),
        JsonRejection::JsonDataError(_) => {
            AppError::unprocessable("invalid_body", rejection.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than the server accepts",
        ),
        _ => AppError::bad_request("invalid_body", rejection.body_text()),
    }
}

/// `Query<T>` whose rejections are problem+json.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // The plain decoder first (resolve is on the hot path); axum's, which names the field
        // at fault, only to word a refusal.
        if let Ok(value) = serde_urlencoded::from_str::<T>(parts.uri.query().unwrap_or_default()) {
            return Ok(ApiQuery(value));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| AppError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// `Path<T>` whose rejections are problem+json. Path segments arrive percent-decoded, so a
/// prompt name sent as `support%2Fsummarize` is `support/summarize` here.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| AppError::bad_request("invalid_path", rejection.body_text()))
    }
}

/// The authenticated principal of a request. A missing or invalid credential is 401 (with
/// `WWW-Authenticate`), too many failures from one address 429; both are audited.
pub struct CurrentActor(pub Actor);

impl FromRequestParts<AppState> for CurrentActor {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        match state.auth.authenticate(header, &source).await {
            Ok(authenticated) => Ok(CurrentActor(Actor {
                principal: authenticated.principal,
                kind: authenticated.kind,
                token_id: authenticated.token_id,
                source: Some(source),
                request_id,
            })),
            Err(failure) => {
                let (error, reason) = match &failure {
                    AuthFailure::Missing => (
                        AppError::new(
                            StatusCode::UNAUTHORIZED,
                            "unauthenticated",
                            "send Authorization: Bearer <token>",
                        ),
                        "no credential".to_string(),
                    ),
                    AuthFailure::Invalid(reason) => (
                        AppError::new(
                            StatusCode::UNAUTHORIZED,
                            "invalid_credentials",
                            reason.clone(),
                        ),
                        reason.clone(),
                    ),
                    AuthFailure::RateLimited => (
                        AppError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "too_many_failures",
                            "too many failed authentications from this address; wait a minute",
                        ),
                        "rate limited".to_string(),
                    ),
                };
                if matches!(failure, AuthFailure::RateLimited) {
                    // Past the limit, failures are not audited one by one (that would let anyone
                    // flood the log); the limit's own start was.
                    tracing::warn!(%source, "failed authentication past the limit");
                } else if let Err(audit_error) = state
                    .vault
                    .audit_failed_authentication(&source, request_id, &reason)
                    .await
                {
                    tracing::error!(error = %audit_error, "could not audit a failed authentication");
                }
                Err(error)
            }
        }
    }
}
