//! `GET /api/openapi.json` is generated from the routes and describes every one of them.

use reqwest::StatusCode;

use crate::helpers::{TestApp, expect_json};

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_methods() {
    let app = TestApp::sqlite().await;
    let document = expect_json(app.get("/api/openapi.json").await, StatusCode::OK).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.1")),
        "OpenAPI 3.1"
    );
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations.sort();
    insta::assert_snapshot!(operations.join("\n"), @r"
    DELETE /api/links/{link_id}
    DELETE /api/prompt-types/{key}
    DELETE /api/prompts/{id}
    DELETE /api/prompts/{id}/labels/{label}
    DELETE /api/tokens/{token_id}
    DELETE /api/users/{user_id}
    GET /api/audit
    GET /api/audit/verify
    GET /api/export
    GET /api/links
    GET /api/prompt-types
    GET /api/prompt-types/{key}
    GET /api/prompts
    GET /api/prompts/{id}
    GET /api/prompts/{id}/diff
    GET /api/prompts/{id}/labels/{label}/history
    GET /api/prompts/{id}/metrics
    GET /api/prompts/{id}/tests
    GET /api/prompts/{id}/versions/{n}
    GET /api/prompts/{id}/versions/{n}/approvals
    GET /api/prompts/{id}/versions/{n}/findings
    GET /api/resolve
    GET /api/reviews
    GET /api/reviews/due
    GET /api/tokens
    GET /api/users
    GET /api/users/{user_id}
    GET /healthz
    GET /metrics
    GET /readyz
    POST /api/import
    POST /api/keys/rotate
    POST /api/prompt-types
    POST /api/prompts
    POST /api/prompts/{id}/labels/{label}/promote
    POST /api/prompts/{id}/labels/{label}/rollback
    POST /api/prompts/{id}/link
    POST /api/prompts/{id}/render
    POST /api/prompts/{id}/reviewed
    POST /api/prompts/{id}/tests/run
    POST /api/prompts/{id}/version
    POST /api/prompts/{id}/versions/{n}/approve
    POST /api/prompts/{id}/versions/{n}/reject
    POST /api/prompts/{id}/versions/{n}/transition
    POST /api/resolve
    POST /api/runs/{id}/feedback
    POST /api/tokens
    POST /api/users
    PUT /api/prompt-types/{key}
    PUT /api/prompts/{id}
    PUT /api/prompts/{id}/labels/{label}
    PUT /api/prompts/{id}/tests
    PUT /api/users/{user_id}
    ");
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::sqlite().await;
    let document = expect_json(app.get("/api/openapi.json").await, StatusCode::OK).await;
    for (path, item) in document["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{id}", "nope")
            .replace("{n}", "1")
            .replace("{label}", "production")
            .replace("{key}", "nope")
            .replace("{link_id}", "00000000-0000-0000-0000-000000000000");
        for method in item.as_object().expect("path item").keys() {
            let method =
                reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .expect("request");
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            assert_ne!(
                body["code"], "route_not_found",
                "{method} {path} is documented but not routed"
            );
            assert_ne!(
                body["code"], "method_not_allowed",
                "{method} {path} is documented but not routed"
            );
        }
    }
}

#[tokio::test]
async fn request_bodies_in_the_document_refuse_unknown_fields_like_the_routes() {
    let app = TestApp::sqlite().await;
    let document = expect_json(app.get("/api/openapi.json").await, StatusCode::OK).await;
    let schema = &document["components"]["schemas"]["CreatePromptRequest"];
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(
        required,
        vec!["name", "content"],
        "only name and content are required (SPEC §4)"
    );
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown fields are refused (422), so the schema says so"
    );
    assert!(schema["properties"]["labels"].is_object());
    assert!(document["components"]["schemas"]["Problem"]["properties"]["code"].is_object());
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "security scheme declared"
    );
    assert_eq!(
        document["security"][0]["bearer"],
        serde_json::json!([]),
        "every operation needs the bearer credential"
    );
    let content = &document["components"]["schemas"]["Content"]["oneOf"];
    let kinds: Vec<&str> = content
        .as_array()
        .expect("content is one of several shapes")
        .iter()
        .filter_map(|shape| shape["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec!["string", "array"],
        "content is a string (text) or a list (chat)"
    );
    assert_eq!(
        schema["properties"]["content"]["$ref"],
        "#/components/schemas/Content"
    );
}
