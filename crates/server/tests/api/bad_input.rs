//! Bad input gets a clear problem+json answer naming what is wrong, and the server stays up.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, expect_json, expect_problem};

crate::on_both_backends!(
    malformed_requests_get_a_problem_naming_what_is_wrong,
    hostile_templates_fail_fast_and_the_server_stays_alive,
);

/// (what, method, path, content type, body, status, code, a word the detail must contain)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    String,
    StatusCode,
    &'static str,
    &'static str,
);

async fn malformed_requests_get_a_problem_naming_what_is_wrong(app: TestApp) {
    app.create_prompt("target", "Hello {{ name }}").await;
    let json = "application/json";
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            "POST",
            "/api/prompts",
            json,
            "{\"name\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "JSON",
        ),
        (
            "unknown field",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "colour": 1}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "colour",
        ),
        (
            "missing content",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "content",
        ),
        (
            "wrong enum value",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "scope": "galaxy"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "scope",
        ),
        (
            "invalid name",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a//b", "content": "x"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "//",
        ),
        (
            "invalid label on create",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "labels": ["PROD"]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_label",
            "PROD",
        ),
        (
            "template syntax error",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "{% for %}"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_template",
            "line",
        ),
        (
            "invalid schema",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "parameter_schema": {"type": 12}}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_schema",
            "parameter_schema",
        ),
        (
            "config not an object",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "config": [1]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
            "object",
        ),
        (
            "agent scope without agent",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "scope": "agent"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "agent_id",
        ),
        (
            "duplicate name",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "target", "content": "x"}).to_string(),
            StatusCode::CONFLICT,
            "conflict",
            "target",
        ),
        (
            "not JSON content type",
            "POST",
            "/api/prompts",
            "text/plain",
            json!({"name": "a", "content": "x"}).to_string(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "JSON",
        ),
        (
            "oversized body",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x".repeat(100 * 1024)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "larger",
        ),
        (
            "non-numeric version",
            "GET",
            "/api/prompts/target/versions/abc",
            json,
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
            "abc",
        ),
        (
            "version and label both",
            "POST",
            "/api/prompts/target/render",
            json,
            json!({"version": 1, "label": "latest"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "either",
        ),
        (
            "params not an object",
            "POST",
            "/api/prompts/target/render",
            json,
            json!({"params": [1, 2]}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "params",
        ),
        (
            "unknown route",
            "GET",
            "/api/nothing-here",
            json,
            String::new(),
            StatusCode::NOT_FOUND,
            "route_not_found",
            "route",
        ),
        (
            "wrong method",
            "PATCH",
            "/api/prompts",
            json,
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method",
        ),
        (
            "bad bump",
            "POST",
            "/api/prompts/target/version",
            json,
            json!({"content": "y", "bump": "huge"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "bump",
        ),
        (
            "bad cursor",
            "GET",
            "/api/prompts?cursor=zz",
            json,
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "cursor",
        ),
        (
            "NUL in a title",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "title": "a\0b"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "NUL",
        ),
        (
            "NUL in content",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "a\0b"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "NUL",
        ),
        (
            "NUL in config",
            "POST",
            "/api/prompts",
            json,
            json!({"name": "a", "content": "x", "config": {"k": "\0"}}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "NUL",
        ),
        (
            "page overflow",
            "GET",
            "/api/prompts?page=9223372036854775807",
            json,
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "page",
        ),
        (
            "diff with the smallest version number",
            "GET",
            "/api/prompts/target/diff?to=-9223372036854775808",
            json,
            String::new(),
            StatusCode::NOT_FOUND,
            "version_not_found",
            "version",
        ),
    ];
    let total = cases.len();
    for (what, method, path, content_type, body, status, code, needle) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = app
            .client
            .request(method, app.url(path))
            .header("content-type", content_type);
        if !body.is_empty() {
            request = request.body(body);
        }
        let response = request.send().await.expect("request");
        let problem = expect_problem(response, status, code).await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(needle),
            "{what}: detail {detail:?} should mention {needle:?}"
        );
    }
    let prompts = expect_json(app.get("/api/prompts").await, StatusCode::OK).await;
    assert_eq!(
        prompts["total"], 1,
        "none of the {total} bad requests created anything"
    );
}

async fn hostile_templates_fail_fast_and_the_server_stays_alive(app: TestApp) {
    let cases = [
        (
            "loop/infinite",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
        ),
        (
            "loop/recursion",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        ),
        (
            "loop/huge",
            "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
        ),
    ];
    for (name, template) in cases {
        expect_json(
            app.post("/api/prompts", &json!({"name": name, "content": template}))
                .await,
            StatusCode::CREATED,
        )
        .await;
        let path = format!("/api/prompts/{}/render", name.replace('/', "%2F"));
        let problem = expect_problem(
            app.post(&path, &json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "render_limit_exceeded",
        )
        .await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("limit")),
            "{name}: {problem}"
        );
    }
    // Amplification that fuel cannot bound is refused when the template is saved.
    for template in [
        "{{ 'x' * 100000000 }}",
        "{{ 'x' * n }}",
        "{# {% #}{% include 'other' %}",
    ] {
        let problem = expect_problem(
            app.post(
                "/api/prompts",
                &json!({"name": "loop/refused", "content": template}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_template",
        )
        .await;
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{template}"
        );
    }
    assert_eq!(
        expect_json(app.get("/healthz").await, StatusCode::OK).await["status"],
        "ok"
    );
}
