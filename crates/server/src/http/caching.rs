//! HTTP caching of serve answers (SPEC §10): a strong `ETag` computed from the exact bytes
//! sent (so it changes with anything served — version, label target, deprecation, rendering —
//! and never with the time), `If-None-Match` answered `304 Not Modified` without a body, and
//! `Cache-Control` by deployment model: `web_application` → `private, no-store`; otherwise
//! `private, max-age=<serving.client_ttl_secs>, must-revalidate` for resolve answers, and
//! `private, max-age=31536000, immutable` for a version by number (its content never changes).

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
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
pub fn cache_control(model: DeploymentModel, policy: CachePolicy) -> String {
    match (model, policy) {
        (DeploymentModel::WebApplication, _) => "private, no-store".to_string(),
        (_, CachePolicy::Revalidate { ttl_secs }) => {
            format!("private, max-age={ttl_secs}, must-revalidate")
        }
        (_, CachePolicy::Immutable) => "private, max-age=31536000, immutable".to_string(),
    }
}

/// A strong entity tag of these bytes: their 128-bit XXH3, quoted. A strong tag promises
/// byte-identical answers, not secrecy, so a fast non-cryptographic hash does (SHA-256 of every
/// served answer cost more than the rest of a cache hit's handler).
pub fn etag_of(bytes: &[u8]) -> String {
    let digest = xxhash_rust::xxh3::xxh3_128(bytes).to_be_bytes();
    format!("\"{}\"", promptvault_core::hash::hex(&digest))
}

/// Whether `If-None-Match` names this tag (or is `*`); weak tags compare by their opaque part.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        })
}

/// `body` as JSON with `ETag` and `Cache-Control`, or `304` when the client has it already.
pub fn cached_json<T: serde::Serialize>(
    headers: &HeaderMap,
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
    let control = cache_control(model, policy);
    let mut response = if none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response()
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&control) {
        out.insert(header::CACHE_CONTROL, value);
    }
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
        let headers_with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(value).expect("header"),
            );
            headers
        };
        assert!(none_match(&headers_with(&tag), &tag));
        assert!(none_match(&headers_with(&format!("\"x\", W/{tag}")), &tag));
        assert!(none_match(&headers_with("*"), &tag));
        assert!(!none_match(&headers_with("\"other\""), &tag));
        assert!(!none_match(&HeaderMap::new(), &tag));
    }
}
