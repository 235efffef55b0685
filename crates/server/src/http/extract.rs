//! Request extractors that turn every malformed input into a problem+json answer naming what is
//! wrong: bad JSON syntax (400), a body that does not fit the type — unknown fields included —
//! (422), a wrong content type (415), an oversized body (413), a bad query or path (400).
//! And [`CurrentActor`], the authenticated principal of the request; and [`ResolveParams`], the
//! query of `GET /api/resolve` decoded on a fast path.

use std::{borrow::Cow, net::SocketAddr};

use axum::{
    extract::{
        ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, rejection::JsonRejection,
    },
    http::{StatusCode, header::AUTHORIZATION, request::Parts},
};
use promptvault_api::prompts::ResolveQuery;
use serde::{Deserialize, de::DeserializeOwned};

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

/// The query of `GET /api/resolve`, the agents' hot path. Decoded by [`resolve_query`] when it
/// can; anything that one does not take as is goes through [`ApiQuery`], which decodes it the
/// general way and words the refusal. Same answers either way, the fast one for the common case:
/// `serde_urlencoded`'s per-byte decoding cost more than every other extractor of the route.
pub struct ResolveParams(pub ResolveQuery);

impl<S> FromRequestParts<S> for ResolveParams
where
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(query) = resolve_query(parts.uri.query().unwrap_or_default()) {
            return Ok(ResolveParams(query));
        }
        ApiQuery::<ResolveQuery>::from_request_parts(parts, state)
            .await
            .map(|ApiQuery(query)| ResolveParams(query))
    }
}

/// Decodes a resolve query, or `None` when it has an unknown or repeated field, a version that
/// is not a number, or an unknown `undefined` mode (then [`ApiQuery`] decides, and refuses).
fn resolve_query(query: &str) -> Option<ResolveQuery> {
    let mut out = ResolveQuery::default();
    for (key, value) in form_pairs(query) {
        let slot = match &*key {
            "name" => &mut out.name,
            "agent" => &mut out.agent,
            "capability" => &mut out.capability,
            "label" => &mut out.label,
            "at" => &mut out.at,
            "request_key" => &mut out.request_key,
            "params" => &mut out.params,
            "session_id" => &mut out.session_id,
            "record" if out.record.is_none() => {
                out.record = Some(value.parse().ok()?);
                continue;
            }
            "version" if out.version.is_none() => {
                out.version = Some(value.parse().ok()?);
                continue;
            }
            "undefined" if out.undefined.is_none() => {
                let mode =
                    serde::de::value::StrDeserializer::<serde::de::value::Error>::new(&value);
                out.undefined = Some(Deserialize::deserialize(mode).ok()?);
                continue;
            }
            _ => return None,
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(value.into_owned());
    }
    Some(out)
}

/// The `key=value` pairs of an `application/x-www-form-urlencoded` query, decoded as
/// `form_urlencoded::parse` decodes them (empty pairs skipped, a missing `=` is an empty value).
fn form_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(key), decode_component(value))
        })
}

/// One form-encoded component: `+` is a space, `%` and two hex digits a byte (any other `%`
/// stays), invalid UTF-8 is replaced. Text with neither `+` nor `%` is borrowed; otherwise the
/// runs between escapes are copied whole.
fn decode_component(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let Some(first) = bytes.iter().position(|byte| matches!(byte, b'+' | b'%')) else {
        return Cow::Borrowed(text);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut at = first;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            b'%' => match (hex_digit(bytes.get(at + 1)), hex_digit(bytes.get(at + 2))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    at += 3;
                }
                _ => {
                    out.push(b'%');
                    at += 1;
                }
            },
            _ => {
                let run = bytes[at..]
                    .iter()
                    .position(|byte| matches!(byte, b'+' | b'%'))
                    .map_or(bytes.len(), |length| at + length);
                out.extend_from_slice(&bytes[at..run]);
                at = run;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(error) => Cow::Owned(String::from_utf8_lossy(error.as_bytes()).into_owned()),
    }
}

fn hex_digit(byte: Option<&u8>) -> Option<u8> {
    let digit = char::from(*byte?).to_digit(16)?;
    u8::try_from(digit).ok()
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
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        match state.auth.authenticate(header, address).await {
            Ok(authenticated) => Ok(CurrentActor(Actor {
                principal: authenticated.principal,
                kind: authenticated.kind,
                token_id: authenticated.token_id,
                source: address,
                request_id,
            })),
            Err(failure) => {
                let source = address.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
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
                } else if let Err(audit_error) = Box::pin(
                    state
                        .vault
                        .audit_failed_authentication(&source, request_id, &reason),
                )
                .await
                {
                    // (Boxed: a refusal's audit write would otherwise be carried by the
                    // future of every request.)
                    tracing::error!(error = %audit_error, "could not audit a failed authentication");
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_decode_exactly_as_form_urlencoded_does() {
        let cases = [
            "",
            "plain",
            "a+b",
            "%2B",
            "caf%C3%A9",
            "%7B%22name%22%3A%22Ada%22%7D",
            "100%",
            "%4",
            "%zz%41",
            "%%41",
            "%ff%fe",
            "%E2%82",
            "tail%2",
            "+%20+",
            "ünïcödé+%F0%9F%98%80",
        ];
        for case in cases {
            let expected: Vec<(String, String)> =
                form_urlencoded::parse(format!("k={case}").as_bytes())
                    .map(|(key, value)| (key.into_owned(), value.into_owned()))
                    .collect();
            let got: Vec<(String, String)> = form_pairs(&format!("k={case}"))
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            assert_eq!(got, expected, "{case:?}");
        }
    }

    #[test]
    fn pairs_split_as_form_urlencoded_splits_them() {
        for query in [
            "", "&", "a", "a=", "=b", "a=b&&c=d", "a=b=c", "a&b=1&", "%61=%62",
        ] {
            let expected: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            let got: Vec<(String, String)> = form_pairs(query)
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect();
            assert_eq!(got, expected, "{query:?}");
        }
    }

    #[test]
    fn the_fast_resolve_query_agrees_with_serde_urlencoded_or_leaves_the_refusal_to_it() {
        let cases = [
            "",
            "name=support%2Fsummarize",
            "name=a&label=stable&params=%7B%22name%22%3A%22Ada%22%2C%22words%22%3A20%7D",
            "agent=bot&capability=summarize&request_key=user-7",
            "name=a&version=3",
            "name=a&version=-1",
            "name=a&version=%2B4",
            "name=a&at=2025-01-31T12%3A00%3A00Z&label=production",
            "name=a&params=%7B%7D&undefined=lenient",
            "name=a&undefined=strict",
            "name=a&params=%7B%7D&record=true&session_id=s%2D1",
            "name=a&record=false",
            // refused: the general decoder words why
            "name=a&name=b",
            "name=a&version=1&version=2",
            "name=a&version=three",
            "name=a&undefined=loose",
            "name=a&undefined=strict&undefined=lenient",
            "name=a&colour=blue",
            "name=a&record=yes",
            "name=a&record=true&record=false",
        ];
        for query in cases {
            let general = serde_urlencoded::from_str::<ResolveQuery>(query).ok();
            assert_eq!(resolve_query(query), general, "{query:?}");
        }
    }
}
