//! The prompt lifecycle through HTTP: create, read by id and by encoded name, versions, ETags,
//! labels, render, diff, links, prompt types, paging, import/export.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, encode, expect_json, expect_problem};

crate::on_both_backends!(
    a_prompt_is_readable_by_id_and_by_its_encoded_name,
    adding_versions_numbers_them_and_identical_content_is_idempotent,
    a_new_version_keeps_the_latest_config_and_schema_unless_given,
    a_stale_if_match_is_refused_with_412_and_a_current_one_succeeds,
    labels_move_keep_history_and_latest_is_reserved,
    render_uses_production_then_latest_and_names_a_missing_label,
    render_validates_params_against_the_schema_with_pointers,
    chat_prompts_render_messages_and_expand_placeholders,
    diff_shows_unified_and_word_changes,
    links_list_the_agents_own_first_then_global_by_priority,
    prompt_types_constrain_the_parameter_schema_of_their_prompts,
    retyping_a_prompt_checks_its_latest_version_against_the_new_type,
    listing_pages_by_offset_and_cursor_and_filters,
    deleting_a_prompt_removes_it,
    export_then_import_into_a_fresh_server_reproduces_every_prompt,
    health_and_readiness_answer,
);

async fn a_prompt_is_readable_by_id_and_by_its_encoded_name(app: TestApp) {
    let created = app
        .create_prompt("support/summarize", "Summarize {{ text }}")
        .await;
    assert_eq!(created["name"], "support/summarize");
    assert_eq!(created["labels"], json!({"latest": 1}));
    assert_eq!(created["versions"][0]["semver"], "1.0.0");
    assert_eq!(created["versions"][0]["variables"], json!(["text"]));
    assert_eq!(created["scope"], "global");
    assert_eq!(created["classification"], "internal");
    let id = created["id"].as_str().expect("id");

    let by_id = app.get(&format!("/api/prompts/{id}")).await;
    let etag = by_id
        .headers()
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let by_id = expect_json(by_id, StatusCode::OK).await;
    let by_name = expect_json(
        app.get("/api/prompts/support%2Fsummarize").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_id, by_name);
    assert!(
        etag.is_some_and(|tag| tag.starts_with('"')),
        "a prompt carries an ETag"
    );

    expect_problem(
        app.get("/api/prompts/support%2Fnothing").await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
}

async fn adding_versions_numbers_them_and_identical_content_is_idempotent(app: TestApp) {
    app.create_prompt("greet", "Hello {{ name }}").await;
    let patch = expect_json(
        app.add_version("greet", &json!({"content": "Hi {{ name }}"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (patch["version_number"].as_i64(), patch["semver"].as_str()),
        (Some(2), Some("1.0.1"))
    );

    let again = expect_json(
        app.add_version("greet", &json!({"content": "Hi {{ name }}"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        again["version_number"], 2,
        "identical content returns the existing version"
    );

    let major = expect_json(
        app.add_version(
            "greet",
            &json!({"content": "Hi {{ name }} from {{ place }}", "notes": "adds place"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (major["version_number"].as_i64(), major["semver"].as_str()),
        (Some(3), Some("2.0.0"))
    );

    let too_small = app
        .add_version(
            "greet",
            &json!({"content": "Hi {{ who }}", "bump": "patch"}),
        )
        .await;
    expect_problem(
        too_small,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bump_too_small",
    )
    .await;

    let prompt = expect_json(app.get("/api/prompts/greet").await, StatusCode::OK).await;
    let numbers: Vec<i64> = prompt["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["version_number"].as_i64())
        .collect();
    assert_eq!(numbers, vec![3, 2, 1], "versions are newest first");
    assert_eq!(prompt["labels"]["latest"], 3);

    let version = expect_json(
        app.get("/api/prompts/greet/versions/2").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(version["content"], "Hi {{ name }}");
    expect_problem(
        app.get("/api/prompts/greet/versions/9").await,
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
}

async fn a_new_version_keeps_the_latest_config_and_schema_unless_given(app: TestApp) {
    let schema =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let body = json!({"name": "carry", "content": "Hello {{ name }}", "config": {"model": "m1"}, "parameter_schema": schema});
    expect_json(app.post("/api/prompts", &body).await, StatusCode::CREATED).await;

    let text_edit = expect_json(
        app.add_version("carry", &json!({"content": "Hi {{ name }}"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        text_edit["parameter_schema"], schema,
        "the schema carries over"
    );
    assert_eq!(
        text_edit["config"],
        json!({"model": "m1"}),
        "the config carries over"
    );
    assert_eq!(text_edit["semver"], "1.0.1", "a text-only edit is a patch");

    let new_config = expect_json(
        app.add_version(
            "carry",
            &json!({"content": "Hi {{ name }}", "config": {"model": "m2"}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (new_config["config"].clone(), new_config["semver"].as_str()),
        (json!({"model": "m2"}), Some("1.1.0"))
    );

    let cleared = expect_json(
        app.add_version(
            "carry",
            &json!({"content": "Hi {{ name }}", "parameter_schema": null}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        cleared["parameter_schema"],
        Value::Null,
        "null removes the schema"
    );
    assert_eq!(cleared["config"], json!({"model": "m2"}));
}

async fn a_stale_if_match_is_refused_with_412_and_a_current_one_succeeds(app: TestApp) {
    app.create_prompt("etag/demo", "x").await;
    let first = app.get("/api/prompts/etag%2Fdemo").await;
    let etag = first
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();

    let updated = app
        .client
        .put(app.url("/api/prompts/etag%2Fdemo"))
        .header("if-match", &etag)
        .json(&json!({"title": "Demo", "tags": ["b", "a"]}))
        .send()
        .await
        .expect("put");
    let new_etag = updated
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("etag")
        .to_string();
    let body = expect_json(updated, StatusCode::OK).await;
    assert_eq!(
        (body["title"].as_str(), body["tags"].clone()),
        (Some("Demo"), json!(["a", "b"]))
    );
    assert_ne!(etag, new_etag, "the ETag changes with the prompt");

    let stale = app
        .client
        .put(app.url("/api/prompts/etag%2Fdemo"))
        .header("if-match", &etag)
        .json(&json!({"title": "Lost update"}))
        .send()
        .await
        .expect("put");
    expect_problem(stale, StatusCode::PRECONDITION_FAILED, "version_conflict").await;
    let prompt = expect_json(app.get("/api/prompts/etag%2Fdemo").await, StatusCode::OK).await;
    assert_eq!(
        prompt["title"], "Demo",
        "the refused update changed nothing"
    );

    let cleared = expect_json(
        app.put("/api/prompts/etag%2Fdemo", &json!({"title": null}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        cleared["title"],
        Value::Null,
        "null clears a field; no If-Match means unconditional"
    );
}

async fn labels_move_keep_history_and_latest_is_reserved(app: TestApp) {
    app.create_prompt("labelled", "v1").await;
    app.add_version("labelled", &json!({"content": "v2"})).await;
    let moved = expect_json(
        app.put(
            "/api/prompts/labelled/labels/staging",
            &json!({"version": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved, json!({"label": "staging", "version": 1}));
    expect_json(
        app.put(
            "/api/prompts/labelled/labels/staging",
            &json!({"version": 2}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_problem(
        app.put(
            "/api/prompts/labelled/labels/staging",
            &json!({"version": 7}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
    expect_problem(
        app.put(
            "/api/prompts/labelled/labels/latest",
            &json!({"version": 1}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reserved_label",
    )
    .await;
    expect_problem(
        app.put("/api/prompts/labelled/labels/Prod!", &json!({"version": 1}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_label",
    )
    .await;
    assert_eq!(
        app.delete("/api/prompts/labelled/labels/staging")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let history = expect_json(
        app.get("/api/prompts/labelled/labels/staging/history")
            .await,
        StatusCode::OK,
    )
    .await;
    let moves: Vec<(Value, Value)> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|event| (event["from_version"].clone(), event["to_version"].clone()))
        .collect();
    assert_eq!(
        moves,
        vec![
            (Value::Null, json!(1)),
            (json!(1), json!(2)),
            (json!(2), Value::Null)
        ]
    );
    expect_problem(
        app.delete("/api/prompts/labelled/labels/staging").await,
        StatusCode::NOT_FOUND,
        "label_not_found",
    )
    .await;
}

async fn render_uses_production_then_latest_and_names_a_missing_label(app: TestApp) {
    app.create_prompt("render/me", "one {{ x }}").await;
    app.add_version("render/me", &json!({"content": "two {{ x }}"}))
        .await;
    let path = "/api/prompts/render%2Fme/render";
    let latest = expect_json(
        app.post(path, &json!({"params": {"x": 1}})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            latest["rendered"].as_str(),
            latest["version_number"].as_i64()
        ),
        (Some("two 1"), Some(2))
    );

    app.approve("render/me", 1).await;
    expect_json(
        app.put(
            "/api/prompts/render%2Fme/labels/production",
            &json!({"version": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let production = expect_json(
        app.post(path, &json!({"params": {"x": 1}})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        production["rendered"], "one 1",
        "production wins over latest"
    );

    let pinned = expect_json(
        app.post(path, &json!({"version": 2, "params": {"x": "a"}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(pinned["rendered"], "two a");

    let missing = expect_problem(
        app.post(path, &json!({"label": "staging"})).await,
        StatusCode::NOT_FOUND,
        "label_not_found",
    )
    .await;
    assert!(
        missing["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("staging")),
        "{missing}"
    );

    let undefined = expect_problem(
        app.post(path, &json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_params",
    )
    .await;
    assert_eq!(undefined["errors"][0]["pointer"], "/x");
    let lenient = expect_json(
        app.post(path, &json!({"undefined": "lenient"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(lenient["rendered"], "one ");
}

async fn render_validates_params_against_the_schema_with_pointers(app: TestApp) {
    let schema = json!({
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1}, "text": {"type": "string"}},
        "required": ["n", "text"],
        "additionalProperties": false
    });
    let created = app
        .post("/api/prompts", &json!({"name": "schema/bound", "content": "{{ text }} in {{ n }}", "parameter_schema": schema}))
        .await;
    expect_json(created, StatusCode::CREATED).await;
    let problem = expect_problem(
        app.post(
            "/api/prompts/schema%2Fbound/render",
            &json!({"params": {"n": 0, "extra": true}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_params",
    )
    .await;
    let mut pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    pointers.sort();
    assert_eq!(
        pointers,
        vec!["", "", "/n"],
        "missing `text`, unexpected `extra`, and n below its minimum: {problem}"
    );
    let ok = expect_json(
        app.post(
            "/api/prompts/schema%2Fbound/render",
            &json!({"params": {"n": 3, "text": "t"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ok["rendered"], "t in 3");
}

async fn chat_prompts_render_messages_and_expand_placeholders(app: TestApp) {
    let content = json!([
        {"role": "system", "content": "You are {{ persona }}."},
        {"role": "placeholder", "name": "history"},
        {"role": "user", "content": "{{ question }}"}
    ]);
    let created = expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "chat/bot", "content": content}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["kind"], "chat");
    expect_problem(
        app.add_version("chat/bot", &json!({"content": "plain text"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "kind_mismatch",
    )
    .await;
    let rendered = expect_json(
        app.post(
            "/api/prompts/chat%2Fbot/render",
            &json!({"params": {"persona": "terse", "question": "Why?", "history": [{"role": "user", "content": "Hi"}]}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        rendered["rendered"],
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "user", "content": "Why?"}
        ])
    );
}

async fn diff_shows_unified_and_word_changes(app: TestApp) {
    app.create_prompt("diffed", "Hello {{ name }}\nBye\n").await;
    app.add_version(
        "diffed",
        &json!({"content": "Hi {{ name }}\nBye\n", "config": {"temperature": 0.2}}),
    )
    .await;
    let diff = expect_json(
        app.get("/api/prompts/diffed/diff?from=1&to=2").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(diff["content"]["changed"], true);
    assert!(
        diff["content"]["unified"]
            .as_str()
            .is_some_and(|u| u.contains("-Hello {{ name }}") && u.contains("+Hi {{ name }}"))
    );
    assert_eq!(
        diff["content"]["words"][0],
        json!({"op": "delete", "text": "Hello"})
    );
    assert_eq!(diff["config"]["changed"], true);
    assert_eq!(diff["parameter_schema"]["changed"], false);
    let default = expect_json(app.get("/api/prompts/diffed/diff").await, StatusCode::OK).await;
    assert_eq!(
        (default["from"].as_i64(), default["to"].as_i64()),
        (Some(1), Some(2)),
        "default: previous → newest"
    );
    expect_problem(
        app.get("/api/prompts/diffed/diff?from=1&to=5").await,
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
}

async fn links_list_the_agents_own_first_then_global_by_priority(app: TestApp) {
    for name in ["summary/global-low", "summary/global-high", "summary/agent"] {
        app.create_prompt(name, "x").await;
    }
    let app = &app;
    let link = |name: &str, body: Value| {
        let path = format!("/api/prompts/{}/link", encode(name));
        async move { expect_json(app.post(&path, &body).await, StatusCode::OK).await }
    };
    link(
        "summary/global-low",
        json!({"capability": "summarize", "priority": 1}),
    )
    .await;
    link(
        "summary/global-high",
        json!({"capability": "summarize", "priority": 5}),
    )
    .await;
    link(
        "summary/agent",
        json!({"capability": "summarize", "agent_id": "bot-7", "priority": 0}),
    )
    .await;
    let relinked = link(
        "summary/global-low",
        json!({"capability": "summarize", "priority": 2}),
    )
    .await;
    assert_eq!(
        relinked["priority"], 2,
        "linking again updates the priority"
    );

    let listed = expect_json(
        app.get("/api/links?agent=bot-7&capability=summarize").await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = listed
        .as_array()
        .expect("links")
        .iter()
        .filter_map(|l| l["prompt_name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["summary/agent", "summary/global-high", "summary/global-low"]
    );

    let other_agent = expect_json(
        app.get("/api/links?agent=bot-8&capability=summarize").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        other_agent.as_array().map(Vec::len),
        Some(2),
        "another agent sees only global links"
    );

    let id = listed[0]["id"].as_str().expect("id");
    assert_eq!(
        app.delete(&format!("/api/links/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    expect_problem(
        app.delete(&format!("/api/links/{id}")).await,
        StatusCode::NOT_FOUND,
        "link_not_found",
    )
    .await;
    expect_problem(
        app.post(
            "/api/prompts/summary%2Fagent/link",
            &json!({"capability": "has space"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_identifier",
    )
    .await;
}

async fn prompt_types_constrain_the_parameter_schema_of_their_prompts(app: TestApp) {
    let type_schema = json!({"type": "object", "required": ["properties"], "properties": {"properties": {"required": ["ticket"]}}});
    let created = app
        .post(
            "/api/prompt-types",
            &json!({"key": "support", "name": "Support", "schema": type_schema}),
        )
        .await;
    expect_json(created, StatusCode::CREATED).await;
    expect_problem(
        app.post(
            "/api/prompt-types",
            &json!({"key": "support", "name": "Again"}),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;

    let without = app
        .post(
            "/api/prompts",
            &json!({"name": "typed/bad", "type": "support", "content": "x"}),
        )
        .await;
    let problem = expect_problem(
        without,
        StatusCode::UNPROCESSABLE_ENTITY,
        "prompt_type_mismatch",
    )
    .await;
    assert!(
        problem["errors"][0]["pointer"]
            .as_str()
            .is_some_and(|p| p.starts_with("/parameter_schema")),
        "{problem}"
    );

    let schema = json!({"type": "object", "properties": {"ticket": {"type": "string"}}});
    let good = app
        .post("/api/prompts", &json!({"name": "typed/good", "type": "support", "content": "{{ ticket }}", "parameter_schema": schema}))
        .await;
    expect_json(good, StatusCode::CREATED).await;
    expect_problem(
        app.delete("/api/prompt-types/support").await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;

    let renamed = expect_json(
        app.put(
            "/api/prompt-types/support",
            &json!({"name": "Support desk"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["name"], "Support desk");
    let listed = expect_json(app.get("/api/prompt-types").await, StatusCode::OK).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    expect_problem(
        app.get("/api/prompt-types/nope").await,
        StatusCode::NOT_FOUND,
        "prompt_type_not_found",
    )
    .await;
    expect_problem(
        app.post(
            "/api/prompts",
            &json!({"name": "typed/unknown", "type": "nope", "content": "x"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "prompt_type_not_found",
    )
    .await;
}

async fn retyping_a_prompt_checks_its_latest_version_against_the_new_type(app: TestApp) {
    let type_schema = json!({"type": "object", "required": ["properties"], "properties": {"properties": {"required": ["ticket"]}}});
    expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "support", "name": "Support", "schema": type_schema}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    app.create_prompt("retype/me", "{{ ticket }}").await;
    let problem = expect_problem(
        app.put("/api/prompts/retype%2Fme", &json!({"type": "support"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "prompt_type_mismatch",
    )
    .await;
    assert!(
        problem["errors"][0]["pointer"]
            .as_str()
            .is_some_and(|p| p.starts_with("/parameter_schema")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("latest version (1)")),
        "{problem}"
    );
    let unchanged = expect_json(app.get("/api/prompts/retype%2Fme").await, StatusCode::OK).await;
    assert_eq!(unchanged["type"], Value::Null, "{unchanged}");

    let schema = json!({"type": "object", "properties": {"ticket": {"type": "string"}}});
    expect_json(
        app.add_version(
            "retype/me",
            &json!({"content": "{{ ticket }}!", "parameter_schema": schema}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let retyped = expect_json(
        app.put("/api/prompts/retype%2Fme", &json!({"type": "support"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(retyped["type"], "support");
    let untyped = expect_json(
        app.put("/api/prompts/retype%2Fme", &json!({"type": null}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(untyped["type"], Value::Null);
}

async fn listing_pages_by_offset_and_cursor_and_filters(app: TestApp) {
    for index in 0..5 {
        let body = json!({"name": format!("list/p{index}"), "content": "x", "tags": [if index % 2 == 0 { "even" } else { "odd" }]});
        expect_json(app.post("/api/prompts", &body).await, StatusCode::CREATED).await;
    }
    app.create_prompt("other/q", "x").await;
    let page = expect_json(
        app.get("/api/prompts?name_prefix=list/&per_page=2&page=2")
            .await,
        StatusCode::OK,
    )
    .await;
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(names(&page), vec!["list/p2", "list/p3"]);
    assert_eq!(page["total"], 5);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/prompts?name_prefix=list/&per_page=2&cursor={cursor}"),
            None => "/api/prompts?name_prefix=list/&per_page=2".to_string(),
        };
        let page = expect_json(app.get(&path).await, StatusCode::OK).await;
        seen.extend(names(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["list/p0", "list/p1", "list/p2", "list/p3", "list/p4"]
    );

    let even = expect_json(app.get("/api/prompts?tag=even").await, StatusCode::OK).await;
    assert_eq!(names(&even), vec!["list/p0", "list/p2", "list/p4"]);
    let search = expect_json(app.get("/api/prompts?q=OTHER").await, StatusCode::OK).await;
    assert_eq!(names(&search), vec!["other/q"]);
    expect_problem(
        app.get("/api/prompts?per_page=201").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
    )
    .await;
    expect_problem(
        app.get("/api/prompts?scope=everywhere").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

async fn deleting_a_prompt_removes_it(app: TestApp) {
    app.create_prompt("doomed", "x").await;
    assert_eq!(
        app.delete("/api/prompts/doomed").await.status(),
        StatusCode::NO_CONTENT
    );
    expect_problem(
        app.get("/api/prompts/doomed").await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    expect_problem(
        app.delete("/api/prompts/doomed").await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
}

async fn export_then_import_into_a_fresh_server_reproduces_every_prompt(app: TestApp) {
    app.create_prompt("bundle/a", "A {{ x }}").await;
    app.add_version(
        "bundle/a",
        &json!({"content": "A2 {{ x }}", "labels": ["staging"]}),
    )
    .await;
    app.create_prompt("bundle/b", "B").await;
    app.post(
        "/api/prompts/bundle%2Fb/link",
        &json!({"capability": "cap", "priority": 3}),
    )
    .await;
    let bundle = expect_json(app.get("/api/export").await, StatusCode::OK).await;

    let fresh = app.fresh().await;
    let report = expect_json(fresh.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(
        report,
        json!({"prompt_types_created": 0, "prompts_created": 2, "versions_created": 3, "versions_unchanged": 0, "labels_moved": 1, "links_set": 1})
    );
    let again = expect_json(fresh.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(
        (
            again["prompts_created"].as_i64(),
            again["versions_created"].as_i64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );

    let original = expect_json(app.get("/api/prompts/bundle%2Fa").await, StatusCode::OK).await;
    let imported = expect_json(fresh.get("/api/prompts/bundle%2Fa").await, StatusCode::OK).await;
    let hashes = |prompt: &Value| -> Vec<Value> {
        prompt["versions"]
            .as_array()
            .expect("v")
            .iter()
            .map(|v| v["diff_hash"].clone())
            .collect()
    };
    assert_eq!(hashes(&original), hashes(&imported));
    assert_eq!(original["labels"], imported["labels"]);

    let mut broken = bundle.clone();
    broken["prompts"][1]["versions"][0]["content"] = json!("{% if %}");
    broken["prompts"][0]["name"] = json!("bad//name");
    let empty = app.fresh().await;
    let problem = expect_problem(
        empty.post("/api/import", &broken).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_bundle",
    )
    .await;
    assert_eq!(
        problem["errors"].as_array().map(Vec::len),
        Some(2),
        "every problem is listed: {problem}"
    );
    let listed = expect_json(empty.get("/api/prompts").await, StatusCode::OK).await;
    assert_eq!(listed["total"], 0, "an invalid bundle writes nothing");
}

async fn health_and_readiness_answer(app: TestApp) {
    assert_eq!(
        expect_json(app.get("/healthz").await, StatusCode::OK).await,
        json!({"status": "ok"})
    );
    assert_eq!(
        expect_json(app.get("/readyz").await, StatusCode::OK).await,
        json!({"status": "ready"})
    );
}
