//! The server's own middleware, written as two plain tower services rather than `from_fn`
//! layers or a stack of tower-http ones: `from_fn` boxes the inner service and two futures on
//! every request, and each tower-http layer (request id, propagation, trace span, panic guard)
//! added a future, a body wrapper boxed again at the next layer, or an allocation of its own —
//! on the agent hot path, where the rest of a cache hit costs about as much as all of them.
//!
//! - [`EdgeLayer`] wraps the whole router once: the request id (`x-request-id`, kept when the
//!   caller sent one, else a new UUID; sent back on the answer), the request span (method,
//!   route, request id) every line logged while serving is in, the panic guard (500
//!   `internal_error`), the request timeout (503 `timeout`), the security headers every answer
//!   carries, the in-flight gauge, the latency histogram under the route template, and the
//!   access log line.
//! - [`RouteKnownLayer`] sits inside the router, where routing has matched: it records the route
//!   template into the request span (every line logged while serving carries it) and hands it
//!   to the edge on the response.

use std::{
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use futures::FutureExt;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::error::AppError;

/// Headers every answer carries: no sniffing, no framing, no referrer, nothing loaded from the
/// API's answers, and no caching unless the route says otherwise (serve answers set their own
/// `Cache-Control`, see [`crate::http::caching`]).
const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
];

/// The header carrying a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The answer to a request whose handler panicked.
fn panicked() -> Response {
    tracing::error!("a handler panicked; answered 500");
    AppError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "an internal error occurred",
    )
    .into_response()
}

/// The caller's `x-request-id`, or a new one (a UUID) put on the request for what runs inside.
fn request_id(request: &mut Request) -> HeaderValue {
    if let Some(id) = request.headers().get(&REQUEST_ID) {
        return id.clone();
    }
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let made = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    let id = HeaderValue::from_str(made).unwrap_or(HeaderValue::from_static("unknown"));
    request.headers_mut().insert(REQUEST_ID, id.clone());
    id
}

/// The future of an [`Edge`] answer.
pub type EdgeFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The outermost layer of the server's own: see the module doc.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLayer {
    timeout: Duration,
}

impl EdgeLayer {
    /// A request still running after `timeout` is answered 503 `timeout`.
    pub fn new(timeout: Duration) -> Self {
        EdgeLayer { timeout }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            timeout: self.timeout,
        }
    }
}

/// See [`EdgeLayer`].
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    timeout: Duration,
}

impl<S, B> Service<Request> for Edge<S>
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(&mut request);
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            route = tracing::field::Empty,
            request_id = id.to_str().unwrap_or(""),
        );
        let method = request.method().clone();
        let in_flight = crate::metrics::InFlight::start();
        let answer = {
            let _inside = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request)))
        };
        let limit = self.timeout;
        Box::pin(
            async move {
                let outcome = match answer {
                    Ok(answer) => {
                        tokio::time::timeout(limit, AssertUnwindSafe(answer).catch_unwind()).await
                    }
                    Err(panic) => Ok(Err(panic)),
                };
                let mut response = match outcome {
                    Ok(Ok(Ok(response))) => response.map(axum::body::Body::new),
                    Ok(Ok(Err(never))) => match never {},
                    Ok(Err(_panic)) => panicked(),
                    Err(_) => AppError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        "the request took too long",
                    )
                    .into_response(),
                };
                drop(in_flight);
                finish(&mut response, id);
                let latency = started.elapsed();
                let status = response.status().as_u16();
                let route = response
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                crate::metrics::request_finished(&method, route, status, latency);
                tracing::info!(
                    target: crate::telemetry::ACCESS_TARGET,
                    route,
                    status,
                    latency_ms = latency.as_secs_f64() * 1000.0,
                    "request answered"
                );
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Puts the security headers (where the route did not set its own) and the request id on an
/// answer.
fn finish(response: &mut Response, id: HeaderValue) {
    let headers = response.headers_mut();
    headers.reserve(SECURITY_HEADERS.len() + 1);
    for (name, value) in SECURITY_HEADERS {
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    }
    headers.entry(REQUEST_ID).or_insert(id);
}

/// Records the matched route template: see the module doc.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteKnownLayer;

impl<S> Layer<S> for RouteKnownLayer {
    type Service = RouteKnown<S>;

    fn layer(&self, inner: S) -> RouteKnown<S> {
        RouteKnown { inner }
    }
}

/// See [`RouteKnownLayer`].
#[derive(Debug, Clone)]
pub struct RouteKnown<S> {
    inner: S,
}

impl<S> Service<Request> for RouteKnown<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RouteKnownFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        if let Some(route) = &route {
            tracing::Span::current().record("route", route.as_str());
        }
        tracing::debug!(target: crate::telemetry::REQUEST_TARGET, "started processing request");
        RouteKnownFuture {
            inner: self.inner.call(request),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, with the route template put on it once ready.
    pub struct RouteKnownFuture<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for RouteKnownFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(route) = this.route.take() {
            response.extensions_mut().insert(route);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// `handler` behind an edge with a 50 ms timeout.
    async fn call_edge<F, Fut>(handler: F, request: Request) -> Response
    where
        F: Fn(Request) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Response, Infallible>> + Send + 'static,
    {
        let service = EdgeLayer::new(Duration::from_millis(50)).layer(service_fn(handler));
        match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    fn request_with_id(id: Option<&str>) -> Request {
        let mut builder = Request::builder().uri("/anything");
        if let Some(id) = id {
            builder = builder.header("x-request-id", id);
        }
        builder.body(Body::empty()).expect("request")
    }

    async fn answer_after(delay: Duration) -> Response {
        let handler = move |_request: Request| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(
                (
                    [("cache-control", "private, max-age=60")],
                    "the inner answer",
                )
                    .into_response(),
            )
        };
        call_edge(handler, request_with_id(None)).await
    }

    /// The `code` of a problem+json answer.
    async fn problem_code(response: Response) -> serde_json::Value {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem+json");
        problem["code"].clone()
    }

    #[tokio::test]
    async fn a_request_past_the_timeout_is_answered_503_timeout_with_the_security_headers() {
        let response = answer_after(Duration::from_secs(5)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert!(response.headers().contains_key("x-request-id"));
        assert_eq!(problem_code(response).await, "timeout");
    }

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_500_internal_error_with_its_request_id() {
        async fn panics(_request: Request) -> Result<Response, Infallible> {
            panic!("the handler broke");
        }
        let response = call_edge(panics, request_with_id(Some("req-panic-1"))).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["x-request-id"], "req-panic-1");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        assert_eq!(problem_code(response).await, "internal_error");
    }

    #[tokio::test]
    async fn a_caller_s_request_id_reaches_the_handler_and_comes_back_and_a_missing_one_is_made() {
        // The handler answers with the id it saw, so both directions are checked.
        async fn echo_id(request: Request) -> Result<Response, Infallible> {
            let seen = request
                .headers()
                .get("x-request-id")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("none")
                .to_string();
            Ok(seen.into_response())
        }
        let given = call_edge(echo_id, request_with_id(Some("req-given-7"))).await;
        assert_eq!(given.headers()["x-request-id"], "req-given-7");
        let body = axum::body::to_bytes(given.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(&body[..], b"req-given-7");

        let made = call_edge(echo_id, request_with_id(None)).await;
        let id = made.headers()["x-request-id"]
            .to_str()
            .expect("text")
            .to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "a UUID: {id}");
        let body = axum::body::to_bytes(made.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(body, id.as_bytes(), "the handler saw the id that went back");
    }

    #[tokio::test]
    async fn an_answer_in_time_keeps_its_own_cache_control_and_gains_the_other_headers() {
        let response = answer_after(Duration::ZERO).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["cache-control"], "private, max-age=60");
        for (name, value) in SECURITY_HEADERS
            .iter()
            .filter(|(name, _)| *name != "cache-control")
        {
            assert_eq!(response.headers()[*name], *value, "{name}");
        }
    }
}
