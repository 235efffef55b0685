//! Deprecation on the wire and the periodic-review routes: [`with_deprecation`] puts the
//! `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and `Link: rel="successor-version"` headers on
//! any serve answer (render now, resolve too), and the handlers of
//! `POST /api/prompts/{id}/reviewed` and `GET /api/reviews/due`.

use axum::{
    Json,
    extract::State,
    http::{HeaderName, HeaderValue},
    response::{IntoResponse, Response},
};
use promptvault_api::{
    problem::Problem,
    prompts::{DeprecationResponse, ReviewedRequest, ReviewedResponse, ReviewsDueResponse},
};
use promptvault_core::retire::{self, Deprecation, Replacement};

use crate::{
    error::AppResult,
    http::{
        AppState,
        extract::{ApiJson, ApiPath, CurrentActor},
    },
};

/// `body` as JSON with the deprecation headers when `deprecation` is set (a deprecated version
/// served before its sunset).
pub fn with_deprecation<T: serde::Serialize>(
    deprecation: Option<&DeprecationResponse>,
    body: T,
) -> Response {
    deprecation_on(deprecation, Json(body).into_response())
}

/// Adds the deprecation headers to an answer already built.
pub fn deprecation_on(
    deprecation: Option<&DeprecationResponse>,
    mut response: Response,
) -> Response {
    if let Some(deprecation) = deprecation {
        let headers = response.headers_mut();
        for (name, value) in deprecation_headers(deprecation) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
    }
    response
}

/// The headers announcing a deprecation (`promptvault_core::retire::notice_headers`); the
/// successor link is the replacement prompt's URL under `/api/prompts/`.
pub fn deprecation_headers(deprecation: &DeprecationResponse) -> Vec<(&'static str, String)> {
    let deprecation = Deprecation {
        deprecated_at: deprecation.deprecated_at,
        sunset_at: deprecation.sunset_at,
        replacement: deprecation
            .replacement
            .as_ref()
            .map(|replacement| Replacement {
                prompt_id: replacement.prompt_id,
                name: replacement.name.clone(),
            }),
    };
    retire::notice_headers(&deprecation, |replacement| {
        format!("/api/prompts/{}", encode_segment(&replacement.name))
    })
}

/// Percent-encodes a prompt name as one path segment (`support/x` → `support%2Fx`).
fn encode_segment(name: &str) -> String {
    name.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[utoipa::path(
    post, path = "/api/prompts/{id}/reviewed", tag = "reviews",
    params(("id" = String, Path, description = "The prompt's UUID or URL-encoded name")),
    request_body = ReviewedRequest,
    responses(
        (status = 200, description = "the attestation is recorded (and audited as `prompt.reviewed`)", body = ReviewedResponse),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn mark_reviewed(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<ReviewedRequest>,
) -> AppResult<Json<ReviewedResponse>> {
    Ok(Json(state.vault.mark_reviewed(&actor, &id, request).await?))
}

#[utoipa::path(
    get, path = "/api/reviews/due", tag = "reviews",
    responses(
        (status = 200, description = "prompts you may see whose periodic review is overdue, oldest due first", body = ReviewsDueResponse),
    )
)]
pub async fn reviews_due(
    State(state): State<AppState>,
    CurrentActor(actor): CurrentActor,
) -> AppResult<Json<ReviewsDueResponse>> {
    Ok(Json(state.vault.reviews_due(&actor).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_one_segment() {
        assert_eq!(encode_segment("support/sum-v2.x"), "support%2Fsum-v2.x");
        assert_eq!(encode_segment("a b"), "a%20b");
    }
}
