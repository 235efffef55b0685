//! JSON logs: one object per line, every line logged while serving a request carries that
//! request's id (from `x-request-id`, or the one the server made), the access line names the
//! method, the route template, the status and the latency, and no line holds a credential or
//! prompt text.
//!
//! The subscriber is the one `--log-format json` installs, writing into a buffer. It is the
//! thread's default, and the test runs on a single-threaded runtime, so the server's tasks log
//! into it too.

use std::sync::{Arc, Mutex};

use promptvault_server::{settings::LogFormat, telemetry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

use crate::helpers::{TestApp, client_for, encode, expect_json};

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("buffer").clone();
        String::from_utf8(bytes)
            .expect("UTF-8 logs")
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|error| {
                    panic!("not one JSON object per line ({error}): {line}")
                })
            })
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("buffer").clone()).expect("UTF-8 logs")
    }
}

#[tokio::test]
async fn json_logs_carry_the_request_id_on_every_line_of_a_request_and_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = telemetry::subscriber(
        LogFormat::Json,
        // The request-start lines too, so a request has more than one line.
        EnvFilter::new(format!("info,{}=debug", telemetry::REQUEST_TARGET)),
        move || writer.clone(),
    );
    // With a single scoped subscriber alive, tracing decides a call site's interest on the
    // thread that first reaches it; another test's thread (no subscriber) would switch the
    // call site off for good. A second dispatcher that is "sometimes" interested in everything
    // makes every call site ask the current thread's subscriber each time.
    let _sometimes = tracing::Dispatch::new(Sometimes);
    let _default = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let app = TestApp::sqlite().await;
    let secret_text = "Confidential launch plan {{ name }}";
    let created = app
        .post(
            "/api/prompts",
            &json!({"name": "logs/secret", "content": secret_text, "classification": "confidential"}),
        )
        .await;
    expect_json(created, StatusCode::CREATED).await;

    let request_id = "test-request-7f3a";
    let response = app
        .client
        .post(app.url(&format!("/api/prompts/{}/render", encode("logs/secret"))))
        .header("x-request-id", request_id)
        .json(&json!({"label": "latest", "params": {"name": "Ada"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|value| value.to_str().ok()),
        Some(request_id),
        "the id goes back to the caller"
    );
    expect_json(response, StatusCode::OK).await;

    // A request without an id gets one made by the server, and its lines carry that one.
    let unnamed = client_for(&app.admin_token)
        .get(app.url("/api/prompts/logs%2Fnowhere"))
        .send()
        .await
        .expect("request");
    let made_id = unnamed
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .expect("a request id is made")
        .to_string();
    assert_eq!(unnamed.status(), StatusCode::NOT_FOUND);
    // A wrong credential: refused, and its secret is not logged either.
    let wrong = client_for("pv_wrong0000000000000000000000000000000000000000000000000000000000")
        .get(app.url("/api/prompts"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let lines = captured.lines();
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|line| line["request_id"] == id)
            .collect()
    };
    let ours = of(request_id);
    assert!(
        ours.len() >= 2,
        "the request's start and access lines carry its id: {ours:?}"
    );
    let access: Vec<&&Value> = ours
        .iter()
        .filter(|line| line["target"] == telemetry::ACCESS_TARGET)
        .collect();
    assert_eq!(access.len(), 1, "one access line: {ours:?}");
    let access = access[0];
    assert_eq!(access["method"], "POST");
    assert_eq!(
        access["route"], "/api/prompts/{id}/render",
        "the template, not the path"
    );
    assert_eq!(access["status"], 200);
    assert!(
        access["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{access}"
    );
    assert_eq!(access["level"], "INFO");
    assert!(access["timestamp"].is_string());
    for line in &ours {
        assert_eq!(line["route"], "/api/prompts/{id}/render", "{line}");
    }

    let unnamed_access: Vec<&Value> = of(&made_id)
        .into_iter()
        .filter(|line| line["target"] == telemetry::ACCESS_TARGET)
        .collect();
    assert_eq!(unnamed_access.len(), 1, "{lines:?}");
    assert_eq!(unnamed_access[0]["status"], 404);
    assert_eq!(unnamed_access[0]["route"], "/api/prompts/{id}");

    let text = captured.text();
    for secret in [
        app.admin_token.as_str(),
        "pv_wrong",
        "Bearer",
        "Confidential launch plan",
        "Ada",
    ] {
        assert!(!text.contains(secret), "{secret:?} was logged:\n{text}");
    }
}

/// A subscriber that records nothing but keeps every call site's interest at "sometimes".
struct Sometimes;

impl tracing::Subscriber for Sometimes {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
