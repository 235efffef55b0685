//! Runs over HTTP: renders and resolves that ask for it record runs off the hot path, every
//! use counts toward usage, feedback is durable when answered (even
//! for a run still queued), metrics aggregate per version, the monitor raises one alert per
//! breach, and stored runs honour redaction and encryption.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_for, encode, expect_json, expect_problem};

crate::on_both_backends!(
    a_render_records_a_run_that_feedback_and_metrics_see,
    a_render_not_asked_to_record_counts_a_use_and_records_no_run,
    a_server_set_to_record_records_every_render_unless_it_opts_out,
    feedback_is_for_the_runs_sender_or_an_admin_and_is_validated,
    an_alert_is_raised_once_when_the_success_rate_falls_below_the_threshold,
    runs_of_confidential_prompts_are_stored_redacted_and_sealed,
    a_resolve_records_a_run_when_asked_and_counts_every_render,
);

async fn render(app: &TestApp, name: &str, body: Value) -> Value {
    expect_json(
        app.post(&format!("/api/prompts/{}/render", encode(name)), &body)
            .await,
        StatusCode::OK,
    )
    .await
}

async fn feedback(app: &TestApp, run_id: &Value, body: Value) -> reqwest::Response {
    let run_id = run_id.as_str().expect("run_id");
    app.post(&format!("/api/runs/{run_id}/feedback"), &body)
        .await
}

/// The stored run an answer's `run_id` names, once everything queued is written.
async fn stored_run(app: &TestApp, answer: &Value) -> promptvault_store::types::Run {
    let run_id = answer["run_id"]
        .as_str()
        .expect("run_id")
        .parse()
        .expect("uuid");
    app.state.vault.flush_runs().await;
    app.database()
        .store()
        .get_run(run_id)
        .await
        .expect("stored run")
}

async fn a_render_records_a_run_that_feedback_and_metrics_see(app: TestApp) {
    app.create_prompt("runs/hello", "Hello {{ name }}").await;
    let first = render(
        &app,
        "runs/hello",
        json!({"params": {"name": "Ann"}, "session_id": "s-1", "record": true}),
    )
    .await;
    let second = render(
        &app,
        "runs/hello",
        json!({"params": {"name": "Bo"}, "record": true}),
    )
    .await;
    assert_ne!(first["run_id"], second["run_id"]);
    // Right after the render the run may still be queued: feedback waits for it.
    let given = expect_json(
        feedback(
            &app,
            &first["run_id"],
            json!({"success": true, "score": 0.8}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(given["run_id"], first["run_id"]);
    assert_eq!(given["version_number"], 1);
    assert_eq!(
        (given["success"].clone(), given["score"].clone()),
        (json!(true), json!(0.8))
    );
    // A later feedback changes the fields it gives and keeps the others.
    let corrected = expect_json(
        feedback(&app, &first["run_id"], json!({"comment": "good"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(corrected["success"], true);
    assert_eq!(corrected["comment"], "good");

    let metrics = expect_json(
        app.get("/api/prompts/runs%2Fhello/metrics").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(metrics["name"], "runs/hello");
    let v1 = &metrics["versions"][0];
    assert_eq!(v1["version_number"], 1);
    assert_eq!(v1["times_used"], 2, "{metrics}");
    assert!(v1["last_used"].is_string(), "{metrics}");
    assert_eq!(v1["outcomes"], 1);
    assert_eq!(v1["success_rate"], 1.0);
    assert_eq!(v1["mean_score"], 0.8);

    let run = stored_run(&app, &first).await;
    assert_eq!(run.params, json!({"name": "Ann"}));
    assert_eq!(run.rendered, json!("Hello Ann"));
    assert_eq!(run.head.session_id.as_deref(), Some("s-1"));
    assert!(run.head.request_id.is_some(), "the request id is kept");
    assert!(run.head.sender.is_some(), "the sender is kept");

    let audited = expect_json(
        app.get("/api/audit?action=run.feedback").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(audited["entries"].as_array().map(Vec::len), Some(2));
}

async fn a_render_not_asked_to_record_counts_a_use_and_records_no_run(app: TestApp) {
    app.create_prompt("runs/quiet", "Hi").await;
    let unsaid = render(&app, "runs/quiet", json!({})).await;
    assert!(unsaid.get("run_id").is_none(), "{unsaid}");
    let declined = render(&app, "runs/quiet", json!({"record": false})).await;
    assert!(declined.get("run_id").is_none(), "{declined}");
    let metrics = expect_json(
        app.get("/api/prompts/runs%2Fquiet/metrics").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(metrics["versions"][0]["times_used"], 2, "{metrics}");
    assert!(metrics["versions"][0]["last_used"].is_string(), "{metrics}");
    assert_eq!(metrics["versions"][0]["success_rate"], Value::Null);
    let stored = app
        .database()
        .query_text("SELECT CAST(count(*) AS TEXT) FROM runs")
        .await;
    assert_eq!(stored, vec![Some("0".to_string())], "no run rows");
    expect_problem(
        app.post(
            "/api/prompts/runs%2Fquiet/render",
            &json!({"session_id": ""}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
}

async fn a_server_set_to_record_records_every_render_unless_it_opts_out(app: TestApp) {
    app.create_prompt("runs/all", "Hi {{ name }}").await;
    let recording = app.sibling(|settings| settings.runs.record = true).await;
    let unsaid = render(&recording, "runs/all", json!({"params": {"name": "Ann"}})).await;
    assert!(unsaid["run_id"].is_string(), "{unsaid}");
    let declined = render(
        &recording,
        "runs/all",
        json!({"params": {"name": "Bo"}, "record": false}),
    )
    .await;
    assert!(declined.get("run_id").is_none(), "{declined}");
    let resolved = expect_json(
        recording
            .get("/api/resolve?name=runs%2Fall&version=1&params=%7B%22name%22%3A%22Cy%22%7D")
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(resolved["run_id"].is_string(), "{resolved}");
    let metrics = expect_json(
        recording.get("/api/prompts/runs%2Fall/metrics").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(metrics["versions"][0]["times_used"], 3, "{metrics}");
    let stored = app
        .database()
        .query_text("SELECT CAST(count(*) AS TEXT) FROM runs")
        .await;
    assert_eq!(stored, vec![Some("2".to_string())], "two run rows");
}

async fn feedback_is_for_the_runs_sender_or_an_admin_and_is_validated(app: TestApp) {
    app.create_prompt("runs/shared", "Hi {{ name }}").await;
    let sender = app.user(&["user"]).await;
    let sender = client_for(
        &app.token(json!({"name": "sender", "role": "user", "user_id": sender}))
            .await,
    );
    let other = app.user(&["user"]).await;
    let other = client_for(
        &app.token(json!({"name": "other", "role": "user", "user_id": other}))
            .await,
    );
    let rendered = expect_json(
        sender
            .post(app.url("/api/prompts/runs%2Fshared/render"))
            .json(&json!({"params": {"name": "Ann"}, "record": true}))
            .send()
            .await
            .expect("render"),
        StatusCode::OK,
    )
    .await;
    let run = rendered["run_id"].as_str().expect("run_id").to_string();
    let path = format!("/api/runs/{run}/feedback");

    expect_problem(
        other
            .post(app.url(&path))
            .json(&json!({"success": false}))
            .send()
            .await
            .expect("request"),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    expect_json(
        sender
            .post(app.url(&path))
            .json(&json!({"success": true}))
            .send()
            .await
            .expect("request"),
        StatusCode::OK,
    )
    .await;
    expect_json(
        app.post(&path, &json!({"score": 0.5})).await,
        StatusCode::OK,
    )
    .await;

    for (body, code) in [
        (json!({}), "invalid_field"),
        (json!({"score": 1.5}), "invalid_field"),
        (json!({"score": -1}), "invalid_field"),
        (json!({"comment": "x".repeat(4001)}), "invalid_field"),
    ] {
        expect_problem(
            app.post(&path, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    let unknown = app.post(&path, &json!({"succes": true})).await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let missing = uuid::Uuid::now_v7();
    expect_problem(
        app.post(
            &format!("/api/runs/{missing}/feedback"),
            &json!({"success": true}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "run_not_found",
    )
    .await;
    let denied = expect_json(
        app.get("/api/audit?action=access.denied&outcome=denied")
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        denied["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|entry| entry["detail"]["attempted"] == "run.feedback"),
        "{denied}"
    );
}

async fn an_alert_is_raised_once_when_the_success_rate_falls_below_the_threshold(app: TestApp) {
    let app = app
        .reconfigured(|settings| {
            settings.runs.alert_below = Some(0.5);
            settings.runs.alert_window = 2;
        })
        .await;
    app.create_prompt("runs/flaky", "Hi").await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        runs.push(render(&app, "runs/flaky", json!({"record": true})).await["run_id"].clone());
    }
    let alerts = || async {
        expect_json(
            app.get("/api/audit?action=alert.raised").await,
            StatusCode::OK,
        )
        .await["entries"]
            .as_array()
            .expect("entries")
            .clone()
    };
    // One failure out of one: the window of two is not full yet.
    expect_json(
        feedback(&app, &runs[0], json!({"success": false})).await,
        StatusCode::OK,
    )
    .await;
    assert!(alerts().await.is_empty());
    // Two failures out of two: raised, by the system.
    expect_json(
        feedback(&app, &runs[1], json!({"success": false})).await,
        StatusCode::OK,
    )
    .await;
    let raised = alerts().await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["actor_kind"], "system");
    assert_eq!(raised[0]["detail"]["version"], 1);
    assert_eq!(raised[0]["detail"]["success_rate"], 0.0);
    // Still breached: not raised again.
    expect_json(
        feedback(&app, &runs[2], json!({"success": false})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(alerts().await.len(), 1);
    // Recovered (one of the last two succeeded), then breached again: a second alert.
    expect_json(
        feedback(&app, &runs[3], json!({"success": true})).await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        feedback(&app, &runs[3], json!({"success": false})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(alerts().await.len(), 2);
}

async fn runs_of_confidential_prompts_are_stored_redacted_and_sealed(app: TestApp) {
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "runs/secret", "content": "Mail {{ to }} about SWORDFISH",
                    "classification": "confidential"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let rendered = render(
        &app,
        "runs/secret",
        json!({"params": {"to": "ada@example.com"}, "record": true}),
    )
    .await;
    assert_eq!(rendered["redactions"], 1, "{rendered}");
    let run = stored_run(&app, &rendered).await;
    let stored = format!("{} {}", run.params, run.rendered);
    assert!(!stored.contains("ada@example.com"), "{stored}");
    assert!(stored.contains("[REDACTED:"), "{stored}");
    let sql = if app.database().file_bytes().is_some() {
        "SELECT params || rendered FROM runs"
    } else {
        "SELECT params::text || rendered::text FROM runs"
    };
    let raw: Vec<String> = app
        .database()
        .query_text(sql)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(raw, vec!["nullnull".to_string()], "sealed at rest");
}

async fn a_resolve_records_a_run_when_asked_and_counts_every_render(app: TestApp) {
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "runs/resolved", "content": "Hi {{ name }}", "labels": ["staging"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let plain = expect_json(
        app.get("/api/resolve?name=runs%2Fresolved&label=staging")
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(plain.get("run_id").is_none(), "{plain}");
    let rendered = expect_json(
        app.post(
            "/api/resolve",
            &json!({"name": "runs/resolved", "label": "staging", "params": {"name": "Ann"}, "record": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rendered["rendered"], "Hi Ann");
    let given = expect_json(
        feedback(&app, &rendered["run_id"], json!({"success": true})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(given["version_number"], 1);
    let metrics = expect_json(
        app.get("/api/prompts/runs%2Fresolved/metrics").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(metrics["versions"][0]["times_used"], 1, "{metrics}");
    // Over GET, unasked: a use counted, no run; record=true without params is refused.
    let counted = expect_json(
        app.get(
            "/api/resolve?name=runs%2Fresolved&label=staging&params=%7B%22name%22%3A%22Bo%22%7D",
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(counted.get("run_id").is_none(), "{counted}");
    let recorded = expect_json(
        app.get("/api/resolve?name=runs%2Fresolved&label=staging&params=%7B%22name%22%3A%22Cy%22%7D&record=true&session_id=s-9")
            .await,
        StatusCode::OK,
    )
    .await;
    let run = stored_run(&app, &recorded).await;
    assert_eq!(run.head.session_id.as_deref(), Some("s-9"));
    expect_problem(
        app.get("/api/resolve?name=runs%2Fresolved&label=staging&record=true")
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
    )
    .await;
    let metrics = expect_json(
        app.get("/api/prompts/runs%2Fresolved/metrics").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(metrics["versions"][0]["times_used"], 3, "{metrics}");
}
