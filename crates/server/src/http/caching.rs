//! HTTP caching of serve answers (SPEC §10): a strong `ETag` computed from the exact bytes
//! sent (so it changes with anything served — version, label target, deprecation, rendering —
//! and never with the time), `If-None-Match` answered `304 Not Modified` without a body, and
//! `Cache-Control` by deployment model: `web_application` → `private, no-store`; otherwise
//! `private, max-age=<serving.client_ttl_secs>, must-revalidate` for resolve answers, and
//! `private, max-age=31536000, immutable` for a version by number (its content never changes).

use std::convert::Infallible;

use axum::{
    body::Body,
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use promptvault_core::model::DeploymentModel;

use crate::error::AppError;

/// How long a client may reuse an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Reuse for `ttl_secs`, then revalidate with the `ETag`.
    Revalidate { ttl_secs: u64 },
    /// Immutable content (a version by number).
    Immutable,
}

/// The `Cache-Control` value for this deployment model and policy.
pub fn cache_control(model: DeploymentModel, policy: CachePolicy) -> HeaderValue {
    match (model, policy) {
        (DeploymentModel::WebApplication, _) => HeaderValue::from_static("private, no-store"),
        // Digits and ASCII: never refused (no-store would be the safe answer if it were).
        (_, CachePolicy::Revalidate { ttl_secs }) => {
            HeaderValue::try_from(format!("private, max-age={ttl_secs}, must-revalidate"))
                .unwrap_or(HeaderValue::from_static("private, no-store"))
        }
        (_, CachePolicy::Immutable) => {
            HeaderValue::from_static("private, max-age=31536000, immutable")
        }
    }
}

/// A strong entity tag of these bytes: their 128-bit XXH3 in hex, quoted. A strong tag
/// promises byte-identical answers, not secrecy, so a fast non-cryptographic hash does
/// (SHA-256 of every served answer cost more than the rest of a cache hit's handler).
pub fn etag_of(bytes: &[u8]) -> String {
    use std::fmt::Write;
    // Sized once: `format!` grew it twice on the way to 34 characters.
    let mut tag = String::with_capacity(34);
    let _ = write!(tag, "\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(bytes));
    tag
}

/// The `If-None-Match` values a request sent: the extractor of the routes that answer with
/// [`cached_json`] (most requests send none, and then nothing is copied).
#[derive(Debug, Clone, Default)]
pub struct IfNoneMatch(Vec<HeaderValue>);

impl IfNoneMatch {
    /// The values of these headers.
    pub fn of(headers: &HeaderMap) -> Self {
        IfNoneMatch(
            headers
                .get_all(header::IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
        )
    }

    /// Whether they name this tag (or are `*`); weak tags compare by their opaque part.
    pub fn matches(&self, etag: &str) -> bool {
        self.0
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .any(|candidate| {
                candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(IfNoneMatch::of(&parts.headers))
    }
}

/// Room for every header a cached answer ends with: its own three, the deprecation notice's
/// three, and the edge's security headers and request id (growing the map as they came
/// reallocated it twice per answer).
const ANSWER_HEADERS: usize = 12;

/// `body` as JSON with `ETag` and `Cache-Control`, or `304` when the client has it already.
pub fn cached_json<T: serde::Serialize>(
    if_none_match: &IfNoneMatch,
    model: DeploymentModel,
    policy: CachePolicy,
    body: &T,
) -> Response {
    // Sized for a typical served answer (a prompt, its version and a rendering): growing from
    // serde_json's default took four reallocations per answer.
    let mut bytes = Vec::with_capacity(4096);
    if let Err(error) = serde_json::to_writer(&mut bytes, body) {
        return AppError::internal(&error).into_response();
    }
    let etag = etag_of(&bytes);
    let not_modified = if_none_match.matches(&etag);
    let mut headers = HeaderMap::with_capacity(ANSWER_HEADERS);
    if let Ok(value) = HeaderValue::try_from(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, cache_control(model, policy));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Response::new(Body::from(bytes))
    };
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_follows_the_deployment_model() {
        let revalidate = CachePolicy::Revalidate { ttl_secs: 60 };
        let cases = [
            (
                DeploymentModel::WebApplication,
                revalidate,
                "private, no-store",
            ),
            (
                DeploymentModel::WebApplication,
                CachePolicy::Immutable,
                "private, no-store",
            ),
            (
                DeploymentModel::ElectronRemote,
                revalidate,
                "private, max-age=60, must-revalidate",
            ),
            (
                DeploymentModel::ElectronRemote,
                CachePolicy::Immutable,
                "private, max-age=31536000, immutable",
            ),
        ];
        for (model, policy, expected) in cases {
            assert_eq!(
                cache_control(model, policy),
                expected,
                "{model:?} {policy:?}"
            );
        }
    }

    #[test]
    fn if_none_match_matches_the_tag_in_a_list_weak_or_star() {
        let tag = etag_of(b"{}");
        let sent = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(
                    header::IF_NONE_MATCH,
                    HeaderValue::from_str(value).expect("header"),
                );
            }
            IfNoneMatch::of(&headers)
        };
        assert!(sent(&[&tag]).matches(&tag));
        assert!(sent(&[&format!("\"x\", W/{tag}")]).matches(&tag));
        assert!(sent(&["\"x\"", &tag]).matches(&tag), "in a second header");
        assert!(sent(&["*"]).matches(&tag));
        assert!(!sent(&["\"other\""]).matches(&tag));
        assert!(!sent(&[]).matches(&tag));
    }
}
