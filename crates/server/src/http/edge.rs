//! The server's own middleware, written as two plain tower services rather than `from_fn`
//! layers: `from_fn` boxes the inner service and two futures on every request, and the agent
//! hot path paid that four times over.
//!
//! - [`EdgeLayer`] wraps the whole router once: the request timeout (503 `timeout`), the
//!   security headers every answer carries, the in-flight gauge, the latency histogram under the
//!   route template, and the access log line (inside the request span, so it carries the
//!   request id).
//! - [`RouteKnownLayer`] sits inside the router, where routing has matched: it records the route
//!   template into the request span (every line logged while serving carries it) and hands it
//!   to the edge on the response.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use tower::{Layer, Service};

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
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let in_flight = crate::metrics::InFlight::start();
        let answer = self.inner.call(request);
        let limit = self.timeout;
        Box::pin(async move {
            let mut response = match tokio::time::timeout(limit, answer).await {
                Ok(Ok(response)) => response.map(axum::body::Body::new),
                Ok(Err(never)) => match never {},
                Err(_) => AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long",
                )
                .into_response(),
            };
            drop(in_flight);
            let headers = response.headers_mut();
            headers.reserve(SECURITY_HEADERS.len());
            for (name, value) in SECURITY_HEADERS {
                headers
                    .entry(HeaderName::from_static(name))
                    .or_insert(HeaderValue::from_static(value));
            }
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
        })
    }
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
        tracing::debug!("started processing request");
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

    async fn answer_after(delay: Duration) -> Response {
        let service = EdgeLayer::new(Duration::from_millis(50)).layer(service_fn(
            move |_request: Request| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(
                    (
                        [("cache-control", "private, max-age=60")],
                        "the inner answer",
                    )
                        .into_response(),
                )
            },
        ));
        let request = Request::builder()
            .uri("/slow")
            .body(Body::empty())
            .expect("request");
        match service.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn a_request_past_the_timeout_is_answered_503_timeout_with_the_security_headers() {
        let response = answer_after(Duration::from_secs(5)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem+json");
        assert_eq!(problem["code"], "timeout");
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
