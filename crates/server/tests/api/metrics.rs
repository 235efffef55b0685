//! `GET /metrics`: the Prometheus text format with request latency per route template (never the
//! raw path), the database pool gauges, the cache counters; and who may scrape it (admins by
//! default, a dedicated metrics token, or anyone when made public).
//!
//! The recorder is shared by every server of the test process, so counts are compared before
//! and after (other tests add to them at the same time, never take away).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, encode, expect_json, expect_problem};

crate::on_both_backends!(
    a_scrape_shows_route_templates_pool_gauges_and_cache_counters,
    metrics_need_an_admin_credential_by_default,
    the_resolve_cache_counts_its_hits_and_misses,
);

/// The value of the first sample of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("body")
}

async fn a_scrape_shows_route_templates_pool_gauges_and_cache_counters(app: TestApp) {
    let name = "metrics/one";
    app.create_prompt(name, "Hello {{ name }}").await;
    let before = scrape(&app).await;
    let hits_before = sample(
        &before,
        "promptvault_cache_hits_total",
        &[("cache", "compiled")],
    )
    .expect("the compiled-template hit counter exists from the start");
    let misses_before = sample(
        &before,
        "promptvault_cache_misses_total",
        &[("cache", "compiled")],
    )
    .expect("the miss counter exists from the start");

    for _ in 0..2 {
        let response = app
            .post(
                &format!("/api/prompts/{}/render", encode(name)),
                &json!({"label": "latest", "params": {"name": "Ada"}}),
            )
            .await;
        expect_json(response, StatusCode::OK).await;
    }
    let version = app
        .get(&format!("/api/prompts/{}/versions/1", encode(name)))
        .await;
    expect_json(version, StatusCode::OK).await;
    let missing = app.get("/api/prompts/metrics%2Fmissing").await;
    expect_problem(missing, StatusCode::NOT_FOUND, "prompt_not_found").await;
    let no_route = app.get("/no/such/route/42").await;
    expect_problem(no_route, StatusCode::NOT_FOUND, "route_not_found").await;

    let text = scrape(&app).await;
    let histogram = "promptvault_http_request_duration_seconds_count";
    for (method, route, status) in [
        ("POST", "/api/prompts/{id}/render", "2xx"),
        ("GET", "/api/prompts/{id}/versions/{n}", "2xx"),
        ("GET", "/api/prompts/{id}", "4xx"),
        ("GET", "unmatched", "4xx"),
    ] {
        let count = sample(
            &text,
            histogram,
            &[("method", method), ("route", route), ("status", status)],
        );
        assert!(
            count.is_some_and(|count| count >= 1.0),
            "{method} {route} {status}: {count:?}"
        );
    }
    assert!(
        text.lines().any(|line| line
            .starts_with("promptvault_http_request_duration_seconds_bucket{")
            && line.contains("le=\"0.0005\"")),
        "sub-millisecond buckets"
    );
    for raw in ["metrics%2F", "metrics/one", "metrics/missing", "/no/such"] {
        assert!(
            !text.contains(raw),
            "raw paths never become labels: {raw} in\n{text}"
        );
    }

    let pools: &[&str] = if text.contains("pool=\"main\"") {
        &["main"]
    } else {
        &["writer", "reader"]
    };
    for pool in pools {
        let open = sample(
            &text,
            "promptvault_db_pool_connections",
            &[("pool", pool), ("state", "open")],
        );
        let idle = sample(
            &text,
            "promptvault_db_pool_connections",
            &[("pool", pool), ("state", "idle")],
        );
        let max = sample(
            &text,
            "promptvault_db_pool_connections",
            &[("pool", pool), ("state", "max")],
        );
        assert!(open.is_some_and(|open| open >= 1.0), "{pool} open {open:?}");
        assert!(
            idle.is_some_and(|idle| idle <= open.unwrap_or(0.0)),
            "{pool} idle {idle:?}"
        );
        assert!(
            max.is_some_and(|max| max >= open.unwrap_or(0.0)),
            "{pool} max {max:?}"
        );
    }

    let hits = sample(
        &text,
        "promptvault_cache_hits_total",
        &[("cache", "compiled")],
    )
    .expect("hits");
    let misses = sample(
        &text,
        "promptvault_cache_misses_total",
        &[("cache", "compiled")],
    )
    .expect("misses");
    assert!(
        hits >= hits_before + 1.0,
        "the second render hit: {hits_before} → {hits}"
    );
    assert!(
        misses >= misses_before + 1.0,
        "the first render missed: {misses_before} → {misses}"
    );
    assert!(
        sample(&text, "promptvault_runs_dropped_total", &[]).is_some(),
        "the runs-dropped counter exists from the start"
    );
    let in_flight = sample(&text, "promptvault_http_requests_in_flight", &[]);
    assert!(
        in_flight.is_some_and(|in_flight| in_flight >= 1.0),
        "the scrape itself is in flight: {in_flight:?}"
    );
}

async fn metrics_need_an_admin_credential_by_default(app: TestApp) {
    let anonymous = app
        .request_as(None, Method::GET, "/metrics")
        .send()
        .await
        .expect("request");
    expect_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let user = app.user(&["user"]).await;
    let token = app
        .token(json!({"name": "metrics user", "role": "user", "user_id": user}))
        .await;
    let refused = app
        .request_as(Some(&token), Method::GET, "/metrics")
        .send()
        .await
        .expect("request");
    expect_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let audit = expect_json(
        app.get("/api/audit?action=access.denied").await,
        StatusCode::OK,
    )
    .await;
    assert!(
        audit["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|entry| entry["detail"]["attempted"] == "ReadMetrics"),
        "the refusal is audited: {audit}"
    );

    scrape(&app).await;
}

#[tokio::test]
async fn a_metrics_token_opens_metrics_and_nothing_else() {
    let secret = "metrics-scraper-secret-0123456789abcdef";
    let app = TestApp::sqlite()
        .await
        .reconfigured(|settings| {
            settings.metrics.token = Some(promptvault_server::settings::Secret(secret.into()));
        })
        .await;
    let scraped = app
        .request_as(Some(secret), Method::GET, "/metrics")
        .send()
        .await
        .expect("request");
    assert_eq!(scraped.status(), StatusCode::OK);
    let elsewhere = app
        .request_as(Some(secret), Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    expect_problem(elsewhere, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let anonymous = app
        .request_as(None, Method::GET, "/metrics")
        .send()
        .await
        .expect("request");
    expect_problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    scrape(&app).await;
}

#[tokio::test]
async fn public_metrics_need_no_credential() {
    let app = TestApp::sqlite()
        .await
        .reconfigured(|settings| settings.metrics.public = true)
        .await;
    let scraped = app
        .request_as(None, Method::GET, "/metrics")
        .send()
        .await
        .expect("request");
    assert_eq!(scraped.status(), StatusCode::OK);
    let api = app
        .request_as(None, Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    expect_problem(api, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

async fn the_resolve_cache_counts_its_hits_and_misses(app: TestApp) {
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "metrics/resolved", "content": "Hi", "labels": ["staging"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let counts = |text: &str| {
        (
            sample(
                text,
                "promptvault_cache_hits_total",
                &[("cache", "resolve")],
            )
            .unwrap_or(0.0),
            sample(
                text,
                "promptvault_cache_misses_total",
                &[("cache", "resolve")],
            )
            .unwrap_or(0.0),
        )
    };
    let (hits_before, misses_before) = counts(&scrape(&app).await);
    for _ in 0..3 {
        expect_json(
            app.get("/api/resolve?name=metrics%2Fresolved&label=staging")
                .await,
            StatusCode::OK,
        )
        .await;
    }
    let (hits, misses) = counts(&scrape(&app).await);
    // The first resolve misses and fills the cache; the next two hit (other tests may add more).
    assert!(
        misses >= misses_before + 1.0,
        "misses {misses_before} → {misses}"
    );
    assert!(hits >= hits_before + 2.0, "hits {hits_before} → {hits}");
}
