//! Template test cases (issue 4 item 5) and output redaction (SPEC §9) through HTTP: tests are
//! stored with a prompt, run on every new version (failures are error findings that block
//! draft → review), run on demand without storing anything; rendered output of the
//! classifications in `compliance.redact` has secrets and PII replaced.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, encode, expect_json, expect_problem};

crate::on_both_backends!(
    tests_run_on_every_new_version_and_a_failure_blocks_review,
    running_the_tests_answers_per_case_results_without_storing_them,
    invalid_tests_are_refused_naming_the_case_and_the_assertion,
    a_confidential_render_is_redacted_and_an_internal_one_is_not,
    tests_travel_in_export_and_import_bundles,
);

fn tests_path(name: &str) -> String {
    format!("/api/prompts/{}/tests", encode(name))
}

fn greeting_tests() -> Value {
    json!({"cases": [
        {"name": "greets by name", "params": {"name": "Ada"},
         "assertions": [
            {"type": "contains", "value": "Hello, Ada"},
            {"type": "max_tokens", "max": 50}
         ]},
        {"name": "no shouting", "params": {"name": "Ada"},
         "assertions": [{"type": "regex", "pattern": "^[^!]*$"}]}
    ]})
}

async fn audit_entries(app: &TestApp, action: &str, name: &str) -> Vec<Value> {
    let audit = expect_json(
        app.get(&format!(
            "/api/audit?limit=100&action={action}&prompt={}",
            encode(name)
        ))
        .await,
        StatusCode::OK,
    )
    .await;
    audit["entries"].as_array().expect("entries").clone()
}

async fn tests_run_on_every_new_version_and_a_failure_blocks_review(app: TestApp) {
    let name = "tests/greeting";
    app.create_prompt(name, "Hello, {{ name }}.").await;
    // No tests yet.
    let none = expect_json(app.get(&tests_path(name)).await, StatusCode::OK).await;
    assert_eq!(none["cases"], json!([]));

    let set = expect_json(
        app.put(&tests_path(name), &greeting_tests()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(set["cases"], greeting_tests()["cases"]);
    let read = expect_json(app.get(&tests_path(name)).await, StatusCode::OK).await;
    assert_eq!(read["cases"], greeting_tests()["cases"]);

    // A version that fails a test carries an error finding located at the case …
    let v2 = expect_json(
        app.add_version(name, &json!({"content": "HELLO {{ name }}!"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let failed: Vec<(&str, &str, &str)> = v2["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().expect("rule"),
                f["severity"].as_str().expect("severity"),
                f["location"].as_str().expect("location"),
            )
        })
        .collect();
    assert_eq!(
        failed,
        vec![
            (
                "test_failed",
                "error",
                "test \"greets by name\", assertion 0 (contains)"
            ),
            (
                "test_failed",
                "error",
                "test \"no shouting\", assertion 0 (regex)"
            ),
        ]
    );
    // … which blocks draft → review through the compliance gate.
    let refused = expect_problem(
        app.post(
            &format!("/api/prompts/{}/versions/2/transition", encode(name)),
            &json!({"to": "review"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "compliance_failed",
    )
    .await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .expect("message")
            .starts_with("test_failed: ")
    );
    // A fixed version passes and goes to review.
    let v3 = expect_json(
        app.add_version(name, &json!({"content": "Hello, {{ name }}; welcome."}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(v3["findings"], json!([]));
    expect_json(
        app.post(
            &format!("/api/prompts/{}/versions/3/transition", encode(name)),
            &json!({"to": "review"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    // The change is audited with hashes, never the cases themselves.
    let entries = audit_entries(&app, "tests.set", name).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["detail"]["cases"], 2);
    assert_eq!(
        entries[0]["after_hash"].as_str().expect("hash").len(),
        64,
        "{}",
        entries[0]
    );
    assert!(!entries[0].to_string().contains("Hello, Ada"));

    // An empty set removes them: new versions are no longer tested.
    expect_json(
        app.put(&tests_path(name), &json!({"cases": []})).await,
        StatusCode::OK,
    )
    .await;
    let v4 = expect_json(
        app.add_version(name, &json!({"content": "HEY!"})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(v4["findings"], json!([]));
}

async fn running_the_tests_answers_per_case_results_without_storing_them(app: TestApp) {
    let name = "tests/run";
    app.create_prompt(name, "Hello, {{ name }}.").await;
    expect_json(
        app.put(&tests_path(name), &greeting_tests()).await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        app.add_version(
            name,
            &json!({"content": "HELLO {{ name }}!", "labels": ["staging"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("{}/run", tests_path(name));
    let run = |body: Value| {
        let request = app.client.post(app.url(&path)).json(&body);
        async move { request.send().await.expect("request") }
    };

    let v1 = expect_json(run(json!({"version": 1})).await, StatusCode::OK).await;
    assert_eq!(
        (
            &v1["version_number"],
            &v1["passed"],
            &v1["total"],
            &v1["failed"]
        ),
        (&json!(1), &json!(true), &json!(2), &json!(0))
    );
    assert_eq!(
        v1["results"][0]["assertions"],
        json!([{"type": "contains", "passed": true}, {"type": "max_tokens", "passed": true}])
    );

    // The default is `latest`; a label works too.
    for body in [json!({}), json!({"label": "staging"})] {
        let v2 = expect_json(run(body).await, StatusCode::OK).await;
        assert_eq!(v2["version_number"], 2);
        assert_eq!((&v2["passed"], &v2["failed"]), (&json!(false), &json!(2)));
        let reason = v2["results"][0]["assertions"][0]["reason"]
            .as_str()
            .expect("reason");
        assert!(reason.contains("does not contain"), "{reason}");
        assert!(!v2.to_string().contains("HELLO"), "never echoes the output");
    }

    // Bad requests.
    expect_problem(
        run(json!({"version": 1, "label": "staging"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    let unknown = run(json!({"versions": 1})).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let missing = run(json!({"label": "nowhere"})).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Running stored nothing: version 2's findings are what they were at creation.
    let findings = expect_json(
        app.get(&format!(
            "/api/prompts/{}/versions/1/findings",
            encode(name)
        ))
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(findings["findings"], json!([]));
}

async fn invalid_tests_are_refused_naming_the_case_and_the_assertion(app: TestApp) {
    let name = "tests/invalid";
    app.create_prompt(name, "Hello").await;
    let refused = expect_problem(
        app.put(
            &tests_path(name),
            &json!({"cases": [
                {"name": "a", "assertions": [{"type": "valid_json"}]},
                {"name": "a", "assertions": [{"type": "regex", "pattern": "("}]},
                {"name": "b", "assertions": [
                    {"type": "json_schema", "schema": {"type": "nonsense"}}
                ]}
            ]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_tests",
    )
    .await;
    let pointers: Vec<&str> = refused["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| error["pointer"].as_str().expect("pointer"))
        .collect();
    assert_eq!(
        pointers,
        vec![
            "/cases/1/name",
            "/cases/1/assertions/0/pattern",
            "/cases/2/assertions/0/schema"
        ]
    );
    assert!(
        refused["errors"][1]["message"]
            .as_str()
            .expect("message")
            .starts_with("test case \"a\", assertion 0 (regex)")
    );
    // Unknown assertion types and fields are refused by the body's shape.
    for body in [
        json!({"cases": [{"name": "x", "assertions": [{"type": "vibes"}]}]}),
        json!({"cases": [{"name": "x", "assertions": [], "extra": true}]}),
        json!({"tests": []}),
    ] {
        let response = app.put(&tests_path(name), &body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
    // Nothing was stored.
    let read = expect_json(app.get(&tests_path(name)).await, StatusCode::OK).await;
    assert_eq!(read["cases"], json!([]));
}

async fn a_confidential_render_is_redacted_and_an_internal_one_is_not(app: TestApp) {
    let content = "Reply to {{ email }} about the order.";
    for (name, classification) in [
        ("redact/confidential", "confidential"),
        ("redact/internal", "internal"),
    ] {
        expect_json(
            app.post(
                "/api/prompts",
                &json!({"name": name, "content": content, "classification": classification}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let confidential = expect_json(render(&app, "redact/confidential").await, StatusCode::OK).await;
    assert_eq!(
        confidential["rendered"],
        "Reply to [REDACTED:pii_email] about the order."
    );
    assert_eq!(confidential["redactions"], 1);
    let internal = expect_json(render(&app, "redact/internal").await, StatusCode::OK).await;
    assert_eq!(
        internal["rendered"],
        "Reply to jane.doe@example.com about the order."
    );
    assert_eq!(internal["redactions"], 0);

    // Chat prompts: every message is filtered.
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "redact/chat", "kind": "chat", "classification": "restricted",
            "content": [
                {"role": "system", "content": "Key {{ key }}"},
                {"role": "user", "content": "Mail {{ email }} or call +49 30 1234 5678"}
            ]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let chat = expect_json(
        app.post(
            "/api/prompts/redact%2Fchat/render",
            &json!({"params": {"key": "AKIAIOSFODNN7EXAMPLE", "email": "a@b.io"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        chat["rendered"],
        json!([
            {"role": "system", "content": "Key [REDACTED:secret]"},
            {"role": "user", "content": "Mail [REDACTED:pii_email] or call [REDACTED:pii_phone]"}
        ])
    );
    assert_eq!(chat["redactions"], 3);

    // The classifications filtered are a setting.
    let app = app
        .reconfigured(|settings| settings.compliance.redact = Vec::new())
        .await;
    let unfiltered = expect_json(render(&app, "redact/confidential").await, StatusCode::OK).await;
    assert_eq!(
        unfiltered["rendered"],
        "Reply to jane.doe@example.com about the order."
    );
}

async fn render(app: &TestApp, name: &str) -> reqwest::Response {
    app.post(
        &format!("/api/prompts/{}/render", encode(name)),
        &json!({"params": {"email": "jane.doe@example.com"}}),
    )
    .await
}

async fn tests_travel_in_export_and_import_bundles(app: TestApp) {
    let name = "tests/bundled";
    app.create_prompt(name, "Hello, {{ name }}.").await;
    expect_json(
        app.put(&tests_path(name), &greeting_tests()).await,
        StatusCode::OK,
    )
    .await;
    let bundle = expect_json(app.get("/api/export").await, StatusCode::OK).await;
    let exported = bundle["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .find(|prompt| prompt["name"] == name)
        .expect("exported")
        .clone();
    assert_eq!(exported["tests"], greeting_tests()["cases"]);

    let other = app.fresh().await;
    let report = expect_json(other.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(report["prompts_created"], 1);
    let read = expect_json(other.get(&tests_path(name)).await, StatusCode::OK).await;
    assert_eq!(read["cases"], greeting_tests()["cases"]);
    // Importing again changes nothing (no second tests.set).
    expect_json(other.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(audit_entries(&other, "tests.set", name).await.len(), 1);

    // A bundle without tests (older ones) imports and leaves tests alone; invalid tests in a
    // bundle are reported with their pointer and nothing is written.
    let mut without = bundle.clone();
    without["prompts"][0]
        .as_object_mut()
        .expect("prompt")
        .remove("tests");
    expect_json(other.post("/api/import", &without).await, StatusCode::OK).await;
    let read = expect_json(other.get(&tests_path(name)).await, StatusCode::OK).await;
    assert_eq!(read["cases"], greeting_tests()["cases"]);
    let bad = json!({"format": "promptvault.bundle/v1", "prompts": [{
        "name": "tests/bad-bundle",
        "versions": [{"version_number": 1, "content": "Hi"}],
        "tests": [{"name": "x", "assertions": [{"type": "regex", "pattern": "("}]}]
    }]});
    let refused = expect_problem(
        other.post("/api/import", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_bundle",
    )
    .await;
    assert!(
        refused["errors"][0]["pointer"]
            .as_str()
            .expect("pointer")
            .ends_with("/tests/0/assertions/0/pattern"),
        "{refused}"
    );
    let missing = other
        .get(&format!("/api/prompts/{}", encode("tests/bad-bundle")))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
