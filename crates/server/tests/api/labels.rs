//! Deploying through labels over HTTP: protected labels, traffic splits, promote, rollback,
//! `GET /api/resolve` (time travel, sticky request keys) and imports that meet protected labels.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_for, expect_json, expect_problem};

crate::on_both_backends!(
    a_protected_label_takes_only_approved_versions_moved_by_deploy_roles,
    a_new_prompt_or_version_cannot_carry_a_protected_label_and_nothing_is_written,
    a_prompt_type_that_requires_approval_protects_every_label,
    the_deployment_chooses_its_protected_labels,
    canary_split_then_promote_then_rollback_each_recorded_and_audited,
    rollback_and_promote_without_a_target_are_conflicts,
    resolve_answers_what_a_label_served_at_a_time,
    a_split_serves_each_request_key_one_version_by_weight,
    invalid_label_moves_are_refused_naming_the_problem,
    an_import_skips_protected_labels_on_drafts_and_reports_them,
);

async fn user_client(app: &TestApp) -> Client {
    let user = app.user(&["user"]).await;
    let token = app
        .token(json!({"name": "deployer", "role": "user", "user_id": user}))
        .await;
    client_for(&token)
}

async fn put_label(client: &Client, app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    client
        .put(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn audit_details(app: &TestApp, action: &str) -> Vec<Value> {
    let audit = expect_json(
        app.get(&format!("/api/audit?action={action}")).await,
        StatusCode::OK,
    )
    .await;
    audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| {
            let mut detail = entry["detail"].clone();
            detail["outcome"] = entry["outcome"].clone();
            detail
        })
        .collect()
}

/// A prompt with `n` versions, each approved.
async fn approved_versions(app: &TestApp, name: &str, n: i64) {
    app.create_prompt(name, "version 1").await;
    for number in 2..=n {
        expect_json(
            app.add_version(name, &json!({"content": format!("version {number}")}))
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    for number in 1..=n {
        app.approve(name, number).await;
    }
}

async fn a_protected_label_takes_only_approved_versions_moved_by_deploy_roles(app: TestApp) {
    app.create_prompt("deploy/guarded", "Hello").await;
    let path = "/api/prompts/deploy%2Fguarded/labels/production";
    let refused = expect_problem(
        app.put(path, &json!({"version": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
    let detail = refused["detail"].as_str().expect("detail");
    assert!(
        detail.contains("version 1") && detail.contains("draft"),
        "{detail}"
    );
    app.approve("deploy/guarded", 1).await;
    let user = user_client(&app).await;
    expect_problem(
        put_label(&user, &app, path, json!({"version": 1})).await,
        StatusCode::FORBIDDEN,
        "deploy_forbidden",
    )
    .await;
    let moved = expect_json(app.put(path, &json!({"version": 1})).await, StatusCode::OK).await;
    assert_eq!(moved, json!({"label": "production", "version": 1}));
    // An unprotected label is any writer's, on any version.
    expect_json(
        put_label(
            &user,
            &app,
            "/api/prompts/deploy%2Fguarded/labels/staging",
            json!({"version": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // Removing a protected label is for deploy roles too.
    let response = user.delete(app.url(path)).send().await.expect("request");
    expect_problem(response, StatusCode::FORBIDDEN, "deploy_forbidden").await;
    assert_eq!(app.delete(path).await.status(), StatusCode::NO_CONTENT);
    let denied: Vec<Value> = audit_details(&app, "label.set")
        .await
        .into_iter()
        .filter(|detail| detail["outcome"] == "denied")
        .map(|detail| detail["reason"].clone())
        .collect();
    assert_eq!(
        denied,
        [json!("label_requires_approval"), json!("deploy_forbidden")]
    );
    let removals = audit_details(&app, "label.remove").await;
    let outcomes: Vec<&Value> = removals.iter().map(|detail| &detail["outcome"]).collect();
    assert_eq!(outcomes, [&json!("denied"), &json!("ok")]);
}

async fn a_new_prompt_or_version_cannot_carry_a_protected_label_and_nothing_is_written(
    app: TestApp,
) {
    expect_problem(
        app.post(
            "/api/prompts",
            &json!({"name": "deploy/new", "content": "Hi", "labels": ["production"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
    expect_problem(
        app.get("/api/prompts/deploy%2Fnew").await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    app.create_prompt("deploy/next", "Hi").await;
    expect_problem(
        app.add_version(
            "deploy/next",
            &json!({"content": "Hi again", "labels": ["staging", "production"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
    let prompt = expect_json(app.get("/api/prompts/deploy%2Fnext").await, StatusCode::OK).await;
    assert_eq!(prompt["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(prompt["labels"], json!({"latest": 1}));
    // Unprotected labels still come with a version.
    expect_json(
        app.add_version(
            "deploy/next",
            &json!({"content": "Hi again", "labels": ["staging"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
}

async fn a_prompt_type_that_requires_approval_protects_every_label(app: TestApp) {
    expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "guarded", "name": "Guarded", "requires_approval": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "deploy/typed", "content": "Hi", "type": "guarded"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = "/api/prompts/deploy%2Ftyped/labels/staging";
    expect_problem(
        app.put(path, &json!({"version": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
    app.approve("deploy/typed", 1).await;
    expect_json(app.put(path, &json!({"version": 1})).await, StatusCode::OK).await;
}

async fn the_deployment_chooses_its_protected_labels(app: TestApp) {
    let app = app
        .reconfigured(|settings| {
            settings.labels.protected = vec!["live".into()];
            settings.labels.deploy_roles = vec![promptvault_core::model::Role::Admin];
        })
        .await;
    app.create_prompt("deploy/custom", "Hi").await;
    expect_json(
        app.put(
            "/api/prompts/deploy%2Fcustom/labels/production",
            &json!({"version": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_problem(
        app.put(
            "/api/prompts/deploy%2Fcustom/labels/live",
            &json!({"version": 1}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
}

async fn canary_split_then_promote_then_rollback_each_recorded_and_audited(app: TestApp) {
    approved_versions(&app, "deploy/canary", 3).await;
    let label = "/api/prompts/deploy%2Fcanary/labels/production";
    expect_json(app.put(label, &json!({"version": 1})).await, StatusCode::OK).await;
    expect_json(app.put(label, &json!({"version": 2})).await, StatusCode::OK).await;
    let split = json!([{"version": 2, "weight": 90}, {"version": 3, "weight": 10}]);
    let moved = expect_json(
        app.put(label, &json!({ "split": split })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        moved,
        json!({"label": "production", "version": 2, "split": split})
    );
    let prompt = expect_json(
        app.get("/api/prompts/deploy%2Fcanary").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(prompt["labels"]["production"], 2, "the primary version");
    assert_eq!(prompt["label_splits"], json!({ "production": split }));

    // The same request key gets the same version from resolve and from render.
    for key in ["alice", "bob", "carol"] {
        let resolved = expect_json(
            app.get(&format!(
                "/api/resolve?name=deploy%2Fcanary&request_key={key}"
            ))
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(resolved["label"], "production");
        assert_eq!(resolved["split"], split);
        assert_eq!(resolved["picked"]["by"], "key");
        let version = resolved["version"]["version_number"].clone();
        assert_eq!(resolved["picked"]["version"], version);
        let rendered = expect_json(
            app.post(
                "/api/prompts/deploy%2Fcanary/render",
                &json!({"label": "production", "request_key": key}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(rendered["version_number"], version, "{key}");
    }

    let promoted = expect_json(
        app.post(&format!("{label}/promote"), &json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(promoted, json!({"label": "production", "version": 3}));
    let prompt = expect_json(
        app.get("/api/prompts/deploy%2Fcanary").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(prompt["label_splits"], json!({}));

    let rolled = expect_json(
        app.post(&format!("{label}/rollback"), &json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rolled, json!({"label": "production", "version": 2}));

    let history = expect_json(app.get(&format!("{label}/history")).await, StatusCode::OK).await;
    let moves: Vec<(Value, Value, Value)> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|event| {
            (
                event["action"].clone(),
                event["from_version"].clone(),
                event["to_version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            (json!("set"), Value::Null, json!(1)),
            (json!("set"), json!(1), json!(2)),
            (json!("split"), json!(2), json!(2)),
            (json!("promote"), json!(2), json!(3)),
            (json!("rollback"), json!(3), json!(2)),
        ]
    );
    assert_eq!(history[2]["split"], split);
    for (action, from, to) in [("label.promote", 2, 3), ("label.rollback", 3, 2)] {
        let details = audit_details(&app, action).await;
        assert_eq!(details.len(), 1, "{action}");
        assert_eq!(
            (
                &details[0]["from"],
                &details[0]["to"],
                &details[0]["outcome"]
            ),
            (&json!(from), &json!(to), &json!("ok")),
            "{action}"
        );
    }
    assert_eq!(audit_details(&app, "label.split").await.len(), 1);
}

async fn rollback_and_promote_without_a_target_are_conflicts(app: TestApp) {
    approved_versions(&app, "deploy/alone", 1).await;
    let label = "/api/prompts/deploy%2Falone/labels/production";
    expect_json(app.put(label, &json!({"version": 1})).await, StatusCode::OK).await;
    let problem = expect_problem(
        app.post(&format!("{label}/rollback"), &json!({})).await,
        StatusCode::CONFLICT,
        "no_rollback_target",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("production")),
        "{problem}"
    );
    expect_problem(
        app.post(&format!("{label}/promote"), &json!({})).await,
        StatusCode::CONFLICT,
        "label_not_split",
    )
    .await;
    let denied = audit_details(&app, "label.rollback").await;
    assert_eq!(denied[0]["outcome"], "denied");
    // A user may not roll back a protected label at all.
    let user = user_client(&app).await;
    let response = user
        .post(app.url(&format!("{label}/rollback")))
        .send()
        .await
        .expect("request");
    expect_problem(response, StatusCode::FORBIDDEN, "deploy_forbidden").await;
}

async fn resolve_answers_what_a_label_served_at_a_time(app: TestApp) {
    let before = time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.create_prompt("deploy/travel", "one").await;
    app.add_version("deploy/travel", &json!({"content": "two"}))
        .await;
    let label = "/api/prompts/deploy%2Ftravel/labels/staging";
    expect_json(app.put(label, &json!({"version": 1})).await, StatusCode::OK).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let then = time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    expect_json(app.put(label, &json!({"version": 2})).await, StatusCode::OK).await;
    let rfc = |at: time::OffsetDateTime| {
        at.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
            .replace('+', "%2B")
    };
    let app = &app;
    let resolve = |query: String| async move {
        app.get(&format!("/api/resolve?name=deploy%2Ftravel&{query}"))
            .await
    };
    let now = expect_json(resolve("label=staging".into()).await, StatusCode::OK).await;
    assert_eq!(now["version"]["version_number"], 2);
    assert_eq!(now["prompt"]["name"], "deploy/travel");
    assert_eq!(now["picked"], Value::Null);
    let past = expect_json(
        resolve(format!("label=staging&at={}", rfc(then))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(past["version"]["version_number"], 1);
    assert_eq!(past["version"]["content"], "one");
    let missing = expect_problem(
        resolve(format!("label=staging&at={}", rfc(before))).await,
        StatusCode::NOT_FOUND,
        "label_not_found",
    )
    .await;
    let detail = missing["detail"].as_str().expect("detail");
    assert!(
        detail.contains("staging") && detail.contains(" at "),
        "{detail}"
    );
    // `latest` at a time is the newest version created by then.
    let latest = expect_json(
        resolve(format!("label=latest&at={}", rfc(then))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(latest["version"]["version_number"], 2);
    // The default label is production; a version number works too.
    let production = expect_problem(
        resolve(String::new()).await,
        StatusCode::NOT_FOUND,
        "label_not_found",
    )
    .await;
    assert!(
        production["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("production")),
        "{production}"
    );
    let pinned = expect_json(resolve("version=1".into()).await, StatusCode::OK).await;
    assert_eq!(
        (&pinned["version"]["version_number"], &pinned["label"]),
        (&json!(1), &Value::Null)
    );
    expect_problem(
        resolve("label=staging&at=yesterday".into()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
    )
    .await;
    expect_problem(
        resolve("label=staging&version=1".into()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
    )
    .await;
    expect_problem(
        app.get("/api/resolve?name=deploy%2Fnope").await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
}

async fn a_split_serves_each_request_key_one_version_by_weight(app: TestApp) {
    app.create_prompt("deploy/ab", "A").await;
    app.add_version("deploy/ab", &json!({"content": "B"})).await;
    expect_json(
        app.put(
            "/api/prompts/deploy%2Fab/labels/experiment",
            &json!({"split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..40 {
        let path = format!("/api/resolve?name=deploy%2Fab&label=experiment&request_key=user-{n}");
        let first = expect_json(app.get(&path).await, StatusCode::OK).await;
        let again = expect_json(app.get(&path).await, StatusCode::OK).await;
        assert_eq!(
            first["version"]["version_number"],
            again["version"]["version_number"]
        );
        seen.insert(first["version"]["version_number"].as_i64().expect("number"));
    }
    assert_eq!(seen.len(), 2, "both versions serve some keys");
    // Without a key the pick is random, but always one of the split.
    let random = expect_json(
        app.get("/api/resolve?name=deploy%2Fab&label=experiment")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(random["picked"]["by"], "random");
}

async fn invalid_label_moves_are_refused_naming_the_problem(app: TestApp) {
    app.create_prompt("deploy/bad", "A").await;
    app.add_version("deploy/bad", &json!({"content": "B"}))
        .await;
    let path = "/api/prompts/deploy%2Fbad/labels/staging";
    for (body, code) in [
        (json!({}), "invalid_field"),
        (
            json!({"version": 1, "split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}),
            "invalid_field",
        ),
        (
            json!({"split": [{"version": 1, "weight": 100}]}),
            "invalid_field",
        ),
        (
            json!({"split": [{"version": 1, "weight": 60}, {"version": 2, "weight": 50}]}),
            "invalid_field",
        ),
        (
            json!({"split": [{"version": 1, "weight": 50, "extra": 1}, {"version": 2, "weight": 50}]}),
            "invalid_body",
        ),
    ] {
        let problem = expect_problem(
            app.put(path, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    expect_problem(
        app.put(
            path,
            &json!({"split": [{"version": 1, "weight": 50}, {"version": 9, "weight": 50}]}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
    let prompt = expect_json(app.get("/api/prompts/deploy%2Fbad").await, StatusCode::OK).await;
    assert_eq!(
        prompt["labels"],
        json!({"latest": 2}),
        "nothing was written"
    );
}

async fn an_import_skips_protected_labels_on_drafts_and_reports_them(app: TestApp) {
    let bundle = json!({
        "format": "promptvault.bundle/v1",
        "prompts": [{
            "name": "deploy/imported",
            "versions": [{"version_number": 1, "content": "Imported"}],
            "labels": {"production": 1, "staging": 1}
        }]
    });
    let report = expect_json(app.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(report["labels_moved"], 1);
    assert_eq!(
        report["labels_skipped"],
        json!([{
            "prompt": "deploy/imported",
            "label": "production",
            "version_number": 1,
            "reason": "label_requires_approval"
        }])
    );
    let prompt = expect_json(
        app.get("/api/prompts/deploy%2Fimported").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(prompt["labels"], json!({"latest": 1, "staging": 1}));
    // Once the version is approved here, importing again sets the label.
    app.approve("deploy/imported", 1).await;
    let again = expect_json(app.post("/api/import", &bundle).await, StatusCode::OK).await;
    assert_eq!(again["labels_moved"], 1);
    assert!(again.get("labels_skipped").is_none(), "{again}");
}
