//! Import and export of bundles through HTTP: every prompt is exported whatever its status and
//! comes back with it; versions are replayed as they were (a reverted A, B, A included) with the
//! labels on the same text; importing into an existing prompt is idempotent by `diff_hash`; a
//! bundle is checked whole against the database (prompt types, kinds, type contracts) before
//! anything is written.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, expect_problem};

crate::on_both_backends!(
    export_includes_every_status_and_import_keeps_it,
    a_reverted_prompt_comes_back_with_every_version_and_its_labels,
    importing_into_an_existing_prompt_points_labels_at_the_newest_version_with_that_text,
    a_bundle_is_checked_against_the_database_before_anything_is_written,
    import_enforces_the_prompt_type_contract,
    access_rules_survive_export_and_import,
    an_import_audits_every_mutation_it_makes,
);

/// The type schema the tests use: every template of the type must declare a `ticket` parameter.
fn ticket_type_schema() -> Value {
    json!({
        "type": "object",
        "required": ["properties"],
        "properties": {"properties": {"required": ["ticket"]}}
    })
}

fn ticket_parameter_schema() -> Value {
    json!({"type": "object", "properties": {"ticket": {"type": "string"}}})
}

/// A bundle without what differs between two databases: export time and version times.
fn without_times(mut bundle: Value) -> Value {
    if let Some(map) = bundle.as_object_mut() {
        map.remove("exported_at");
    }
    for prompt in bundle["prompts"].as_array_mut().into_iter().flatten() {
        for version in prompt["versions"].as_array_mut().into_iter().flatten() {
            if let Some(map) = version.as_object_mut() {
                map.remove("created_at");
            }
        }
    }
    bundle
}

/// `(version_number, content)` of every version, oldest first.
fn contents(prompt: &Value) -> Vec<(i64, Value)> {
    let mut contents: Vec<(i64, Value)> = prompt["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|version| {
            (
                version["version_number"].as_i64().expect("number"),
                version["content"].clone(),
            )
        })
        .collect();
    contents.sort_by_key(|(number, _)| *number);
    contents
}

async fn prompt_count(app: &TestApp) -> Value {
    let mut total = 0;
    for status in ["active", "deprecated", "archived"] {
        let page = expect_json(
            app.get(&format!("/api/prompts?status={status}")).await,
            StatusCode::OK,
        )
        .await;
        total += page["total"].as_i64().expect("total");
    }
    json!(total)
}

async fn export_includes_every_status_and_import_keeps_it(app: TestApp) {
    for name in ["status/active", "status/archived", "status/deprecated"] {
        app.create_prompt(name, "x {{ y }}").await;
    }
    for (path, status) in [
        ("/api/prompts/status%2Farchived", "archived"),
        ("/api/prompts/status%2Fdeprecated", "deprecated"),
    ] {
        expect_json(
            app.put(path, &json!({"status": status})).await,
            StatusCode::OK,
        )
        .await;
    }
    let bundle = expect_json(app.get("/api/export").await, StatusCode::OK).await;
    let exported: Vec<(Value, Value)> = bundle["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|prompt| (prompt["name"].clone(), prompt["status"].clone()))
        .collect();
    assert_eq!(
        exported,
        vec![
            (json!("status/active"), json!("active")),
            (json!("status/archived"), json!("archived")),
            (json!("status/deprecated"), json!("deprecated")),
        ],
        "every prompt is exported, by name, whatever its status"
    );

    let fresh = app.fresh().await;
    let report = expect_json(fresh.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(report["prompts_created"], 3, "{report}");
    for (name, status) in [
        ("status%2Factive", "active"),
        ("status%2Farchived", "archived"),
        ("status%2Fdeprecated", "deprecated"),
    ] {
        let imported = expect_json(
            fresh.get(&format!("/api/prompts/{name}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(imported["status"], status, "{imported}");
    }
    let again = expect_json(fresh.get("/api/export").await, StatusCode::OK).await;
    assert_eq!(without_times(again), without_times(bundle));
}

async fn a_reverted_prompt_comes_back_with_every_version_and_its_labels(app: TestApp) {
    app.create_prompt("revert/me", "A {{ x }}").await;
    for content in ["B {{ x }}", "A {{ x }}"] {
        expect_json(
            app.add_version("revert/me", &json!({"content": content}))
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    for (label, version) in [("stable", 3), ("staging", 1), ("canary", 2)] {
        expect_json(
            app.put(
                &format!("/api/prompts/revert%2Fme/labels/{label}"),
                &json!({"version": version}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    let original = expect_json(app.get("/api/prompts/revert%2Fme").await, StatusCode::OK).await;
    assert_eq!(
        original["labels"],
        json!({"latest": 3, "stable": 3, "staging": 1, "canary": 2})
    );
    let bundle = expect_json(app.get("/api/export").await, StatusCode::OK).await;

    let fresh = app.fresh().await;
    let report = expect_json(fresh.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(
        report,
        json!({"prompt_types_created": 0, "prompts_created": 1, "versions_created": 3, "versions_unchanged": 0, "labels_moved": 3, "links_set": 0})
    );
    let imported = expect_json(fresh.get("/api/prompts/revert%2Fme").await, StatusCode::OK).await;
    assert_eq!(
        contents(&imported),
        vec![
            (1, json!("A {{ x }}")),
            (2, json!("B {{ x }}")),
            (3, json!("A {{ x }}")),
        ]
    );
    assert_eq!(imported["labels"], original["labels"]);
    assert_eq!(contents(&imported), contents(&original));

    let again = expect_json(fresh.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(
        again,
        json!({"prompt_types_created": 0, "prompts_created": 0, "versions_created": 0, "versions_unchanged": 3, "labels_moved": 0, "links_set": 0}),
        "importing the same bundle twice changes nothing"
    );
    let after = expect_json(fresh.get("/api/prompts/revert%2Fme").await, StatusCode::OK).await;
    assert_eq!(after["labels"], original["labels"]);
    assert_eq!(contents(&after), contents(&original));
}

async fn importing_into_an_existing_prompt_points_labels_at_the_newest_version_with_that_text(
    app: TestApp,
) {
    app.create_prompt("merge/me", "A").await;
    for content in ["B", "A"] {
        expect_json(
            app.add_version("merge/me", &json!({"content": content}))
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    // Numbered differently from the local prompt: bundle 1 is B (local 2), bundle 2 is A (local 1
    // and 3), bundle 3 is new.
    let bundle = json!({
        "format": "promptvault.bundle/v1",
        "prompts": [{
            "name": "merge/me",
            "versions": [
                {"version_number": 1, "content": "B"},
                {"version_number": 2, "content": "A"},
                {"version_number": 3, "content": "C"}
            ],
            "labels": {"stable": 2, "staging": 1, "next": 3}
        }]
    });
    let report = expect_json(app.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(
        report,
        json!({"prompt_types_created": 0, "prompts_created": 0, "versions_created": 1, "versions_unchanged": 2, "labels_moved": 3, "links_set": 0})
    );
    let merged = expect_json(app.get("/api/prompts/merge%2Fme").await, StatusCode::OK).await;
    assert_eq!(
        contents(&merged),
        vec![
            (1, json!("A")),
            (2, json!("B")),
            (3, json!("A")),
            (4, json!("C"))
        ]
    );
    assert_eq!(
        merged["labels"],
        json!({"latest": 4, "stable": 3, "staging": 2, "next": 4})
    );
    let again = expect_json(app.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(
        (&again["versions_created"], &again["labels_moved"]),
        (&json!(0), &json!(0)),
        "{again}"
    );
}

async fn a_bundle_is_checked_against_the_database_before_anything_is_written(app: TestApp) {
    app.create_prompt("exists/text", "plain").await;
    expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "strict", "name": "Strict", "schema": ticket_type_schema()}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let bundle = json!({
        "format": "promptvault.bundle/v1",
        "prompts": [
            {"name": "new/fine", "versions": [{"version_number": 1, "content": "fine"}]},
            {"name": "new/typed", "type": "nope", "versions": [{"version_number": 1, "content": "x"}]},
            {
                "name": "exists/text",
                "versions": [{"version_number": 1, "content": [{"role": "user", "content": "hi"}]}]
            },
            {"name": "new/strict", "type": "strict", "versions": [{"version_number": 1, "content": "x"}]}
        ]
    });
    let problem = expect_problem(
        app.post("/api/import", &bundle).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_bundle",
    )
    .await;
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["pointer"].as_str())
        .collect();
    assert_eq!(pointers.len(), 3, "every problem is listed: {problem}");
    assert_eq!(pointers[0], "/prompts/1/type", "{problem}");
    assert!(pointers[1].starts_with("/prompts/2/"), "{problem}");
    assert!(
        pointers[2].starts_with("/prompts/3/versions/0/parameter_schema"),
        "{problem}"
    );

    assert_eq!(prompt_count(&app).await, 1, "nothing was written");
    expect_problem(
        app.get("/api/prompts/new%2Ffine").await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    let existing = expect_json(app.get("/api/prompts/exists%2Ftext").await, StatusCode::OK).await;
    assert_eq!(existing["versions"].as_array().map(Vec::len), Some(1));

    // A prompt type the bundle brings is as good as a local one.
    let mut fixed = bundle.clone();
    fixed["prompt_types"] = json!([{"key": "nope", "name": "Nope"}]);
    fixed["prompts"][2]["versions"][0]["content"] = json!("plain, again");
    fixed["prompts"][3]["versions"][0]["parameter_schema"] = ticket_parameter_schema();
    let report = expect_json(app.post("/api/import", &fixed).await, StatusCode::OK).await;
    assert_eq!(report["prompt_types_created"], 1, "{report}");
    assert_eq!(report["prompts_created"], 3, "{report}");
    assert_eq!(prompt_count(&app).await, 4);
}

async fn import_enforces_the_prompt_type_contract(app: TestApp) {
    expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "strict", "name": "Strict", "schema": ticket_type_schema()}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let typed = json!({
        "format": "promptvault.bundle/v1",
        "prompts": [{
            "name": "typed/a",
            "type": "strict",
            "versions": [
                {"version_number": 1, "content": "{{ ticket }}", "parameter_schema": ticket_parameter_schema()},
                {"version_number": 2, "content": "{{ ticket }}!"}
            ]
        }]
    });
    let problem = expect_problem(
        app.post("/api/import", &typed).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_bundle",
    )
    .await;
    assert_eq!(
        problem["errors"].as_array().map(Vec::len),
        Some(1),
        "{problem}"
    );
    assert!(
        problem["errors"][0]["pointer"]
            .as_str()
            .is_some_and(|pointer| pointer.starts_with("/prompts/0/versions/1/parameter_schema")),
        "{problem}"
    );
    assert_eq!(prompt_count(&app).await, 0);

    // A type that comes in the bundle constrains its prompts too, and is not created when they
    // violate it.
    let bundled = json!({
        "format": "promptvault.bundle/v1",
        "prompt_types": [{"key": "bundled", "name": "Bundled", "schema": ticket_type_schema()}],
        "prompts": [{
            "name": "typed/b",
            "type": "bundled",
            "versions": [{"version_number": 1, "content": "no ticket"}]
        }]
    });
    expect_problem(
        app.post("/api/import", &bundled).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_bundle",
    )
    .await;
    expect_problem(
        app.get("/api/prompt-types/bundled").await,
        StatusCode::NOT_FOUND,
        "prompt_type_not_found",
    )
    .await;

    // New versions for an existing typed prompt are checked against the local prompt's type.
    let mut valid = typed.clone();
    valid["prompts"][0]["versions"][1]["parameter_schema"] = ticket_parameter_schema();
    expect_json(app.post("/api/import", &valid).await, StatusCode::OK).await;
    let mut more = valid.clone();
    more["prompts"][0]["type"] = Value::Null;
    more["prompts"][0]["versions"] = json!([
        {"version_number": 3, "content": "{{ ticket }}?", "parameter_schema": {"type": "object"}}
    ]);
    let problem = expect_problem(
        app.post("/api/import", &more).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_bundle",
    )
    .await;
    assert!(
        problem["errors"][0]["pointer"]
            .as_str()
            .is_some_and(|pointer| pointer.starts_with("/prompts/0/versions/0/parameter_schema")),
        "{problem}"
    );
    let stored = expect_json(app.get("/api/prompts/typed%2Fa").await, StatusCode::OK).await;
    assert_eq!(stored["versions"].as_array().map(Vec::len), Some(2));
}

async fn access_rules_survive_export_and_import(app: TestApp) {
    let access = json!({"owner_only": true, "allowed_roles": ["admin"], "restricted_deployments": ["electron_local"], "grants": [{"agent": "bot-1"}]});
    let body = json!({"name": "closed/rules", "content": "x", "classification": "restricted", "access": access});
    expect_json(app.post("/api/prompts", &body).await, StatusCode::CREATED).await;
    let bundle = expect_json(app.get("/api/export").await, StatusCode::OK).await;
    assert_eq!(
        bundle["prompts"][0]["access"], access,
        "exported with the prompt"
    );

    let restored = app.fresh().await;
    expect_json(restored.post("/api/import", &bundle).await, StatusCode::OK).await;
    let prompt = expect_json(
        restored.get("/api/prompts/closed%2Frules").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        prompt["access"], access,
        "a restored backup is as closed as the original"
    );
    assert_eq!(prompt["classification"], "restricted");
}

async fn an_import_audits_every_mutation_it_makes(app: TestApp) {
    app.create_prompt("audited/import", "one").await;
    app.add_version(
        "audited/import",
        &json!({"content": "two", "labels": ["staging"]}),
    )
    .await;
    app.post(
        "/api/prompts/audited%2Fimport/link",
        &json!({"capability": "cap"}),
    )
    .await;
    let bundle = expect_json(app.get("/api/export").await, StatusCode::OK).await;

    let restored = app.fresh().await;
    expect_json(restored.post("/api/import", &bundle).await, StatusCode::OK).await;
    let audit = expect_json(restored.get("/api/audit?limit=100").await, StatusCode::OK).await;
    let imported: Vec<(String, Option<String>)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["detail"]["via"] == "import")
        .map(|entry| {
            (
                entry["action"].as_str().unwrap_or_default().to_string(),
                entry["after_hash"].as_str().map(str::to_string),
            )
        })
        .collect();
    let actions: Vec<&str> = imported.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["prompt.create", "version.create", "label.set", "link.set"]
    );
    assert!(
        imported[0].1.is_some() && imported[1].1.is_some(),
        "versions carry their diff_hash: {imported:?}"
    );
}
