//! The version lifecycle through HTTP (SPEC §6, issue 4 item 1):
//! `POST /api/prompts/{id}/versions/{n}/transition` moves a version along
//! draft → review, approved → deprecated → archived (and review → draft), as the core's
//! transition table allows; review → approved goes through the approval workflow
//! (`…/approve`, see `reviews.rs`), never a transition. The audit log holds every step.

use std::collections::BTreeSet;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_for, encode, expect_json, expect_problem};

crate::on_both_backends!(
    an_author_submits_an_admin_approves_deprecates_and_archives_and_every_step_is_audited,
    review_goes_back_to_draft_by_withdrawal_or_by_requested_changes,
    nobody_approves_their_own_version_and_agents_never_transition,
    a_jump_or_an_unknown_status_is_refused_and_a_hidden_prompt_is_not_found,
    concurrent_transitions_of_one_version_let_exactly_one_through,
);

async fn agent(app: &TestApp) -> Client {
    let token = app
        .token(json!({"name": "bot", "role": "agent", "agent_id": "bot"}))
        .await;
    client_for(&token)
}

async fn create(app: &TestApp, client: &Client, name: &str, body: Value) -> Value {
    let mut body = body;
    body["name"] = json!(name);
    let response = client
        .post(app.url("/api/prompts"))
        .json(&body)
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::CREATED).await
}

async fn transition(
    app: &TestApp,
    client: &Client,
    name: &str,
    version: i64,
    body: Value,
) -> reqwest::Response {
    client
        .post(app.url(&format!(
            "/api/prompts/{}/versions/{version}/transition",
            encode(name)
        )))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn status_of(app: &TestApp, name: &str, version: i64) -> String {
    let read = expect_json(
        app.get(&format!("/api/prompts/{}/versions/{version}", encode(name)))
            .await,
        StatusCode::OK,
    )
    .await;
    read["status"].as_str().expect("status").to_string()
}

/// The `version.transition` entries of a prompt, oldest first.
async fn transitions(app: &TestApp, name: &str) -> Vec<Value> {
    let list = expect_json(
        app.get(&format!(
            "/api/audit?limit=1000&action=version.transition&prompt={}",
            encode(name)
        ))
        .await,
        StatusCode::OK,
    )
    .await;
    list["entries"].as_array().expect("entries").clone()
}

async fn an_author_submits_an_admin_approves_deprecates_and_archives_and_every_step_is_audited(
    app: TestApp,
) {
    let (author, author_id) = app.member("user").await;
    let admin = client_for(&app.admin_token);
    let created = create(&app, &author, "life/flow", json!({"content": "Hello"})).await;
    assert_eq!(
        created["versions"][0]["status"], "draft",
        "new versions are drafts"
    );
    let revision = created["revision"].as_i64().expect("revision");

    let submitted = expect_json(
        transition(&app, &author, "life/flow", 1, json!({"to": "review"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(submitted["status"], "review");
    assert_eq!(submitted["version_number"], 1);
    assert_eq!(submitted["content"], "Hello");
    assert_eq!(submitted["author_id"], json!(author_id));

    // Nobody approves through a transition: the approval workflow decides.
    let refused = expect_problem(
        transition(&app, &admin, "life/flow", 1, json!({"to": "approved"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "approval_required",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .expect("present")
            .contains("/versions/1/approve"),
        "{refused}"
    );

    let approved = expect_json(
        admin
            .post(app.url("/api/prompts/life%2Fflow/versions/1/approve"))
            .json(&json!({"comment": "looks good"}))
            .send()
            .await
            .expect("request"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(approved["version"]["status"], "approved");
    // A user may not deprecate or archive.
    expect_problem(
        transition(&app, &author, "life/flow", 1, json!({"to": "deprecated"})).await,
        StatusCode::FORBIDDEN,
        "forbidden_transition",
    )
    .await;
    for to in ["deprecated", "archived"] {
        let moved = expect_json(
            transition(&app, &admin, "life/flow", 1, json!({"to": to})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(moved["status"], to);
        assert_eq!(status_of(&app, "life/flow", 1).await, to);
    }
    // Archived is the end.
    let end = expect_problem(
        transition(&app, &admin, "life/flow", 1, json!({"to": "draft"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_transition",
    )
    .await;
    assert!(
        end["detail"].as_str().expect("present").contains("none"),
        "{end}"
    );

    // Each move bumped the prompt's revision.
    let prompt = expect_json(app.get("/api/prompts/life%2Fflow").await, StatusCode::OK).await;
    assert_eq!(prompt["revision"].as_i64(), Some(revision + 4));

    // The audit log holds every step, in order, with who, from, to, action and comment; and the
    // refusals.
    let entries = transitions(&app, "life/flow").await;
    let steps: Vec<(String, String, String, String, String)> = entries
        .iter()
        .map(|entry| {
            (
                entry["outcome"].as_str().expect("present").to_string(),
                entry["actor_role"].as_str().unwrap_or("").to_string(),
                entry["detail"]["from"]
                    .as_str()
                    .expect("present")
                    .to_string(),
                entry["detail"]["to"].as_str().expect("present").to_string(),
                entry["detail"]["action"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let step = |outcome: &str, role: &str, from: &str, to: &str, action: &str| {
        (
            outcome.to_string(),
            role.to_string(),
            from.to_string(),
            to.to_string(),
            action.to_string(),
        )
    };
    assert_eq!(
        steps,
        vec![
            step("ok", "user", "draft", "review", "submit"),
            step("denied", "user", "approved", "deprecated", ""),
            step("ok", "admin", "approved", "deprecated", "deprecate"),
            step("ok", "admin", "deprecated", "archived", "archive"),
        ]
    );
    assert_eq!(entries[0]["actor_id"], json!(author_id));
    let approvals = expect_json(
        app.get("/api/audit?limit=1000&action=version.approve&prompt=life%2Fflow")
            .await,
        StatusCode::OK,
    )
    .await;
    let approval = &approvals["entries"][0];
    assert_eq!(approval["detail"]["comment"], "looks good");
    assert_eq!(approval["detail"]["version"], 1);
    assert_eq!(approval["detail"]["completed"], true);
    assert_eq!(entries[0]["prompt_name"], "life/flow");
}

async fn review_goes_back_to_draft_by_withdrawal_or_by_requested_changes(app: TestApp) {
    let (author, _) = app.member("user").await;
    let (reviewer, _) = app.member("user").await;
    create(&app, &author, "life/back", json!({"content": "Hi"})).await;

    for (client, action) in [(&author, "withdraw"), (&reviewer, "request_changes")] {
        expect_json(
            transition(&app, &author, "life/back", 1, json!({"to": "review"})).await,
            StatusCode::OK,
        )
        .await;
        let back = expect_json(
            transition(
                &app,
                client,
                "life/back",
                1,
                json!({"to": "draft", "comment": format!("{action}: tighten the wording")}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(back["status"], "draft");
        let last = transitions(&app, "life/back").await.pop().expect("entry");
        assert_eq!(last["detail"]["action"], action);
        assert_eq!(
            last["detail"]["comment"],
            format!("{action}: tighten the wording")
        );
    }
}

async fn nobody_approves_their_own_version_and_agents_never_transition(app: TestApp) {
    let (admin_author, _) = app.member("admin").await;
    let admin = client_for(&app.admin_token);
    create(&app, &admin_author, "life/own", json!({"content": "Mine"})).await;
    expect_json(
        transition(&app, &admin_author, "life/own", 1, json!({"to": "review"})).await,
        StatusCode::OK,
    )
    .await;
    let approve = |client: &Client| {
        client
            .post(app.url("/api/prompts/life%2Fown/versions/1/approve"))
            .json(&json!({}))
            .send()
    };
    let own = expect_problem(
        approve(&admin_author).await.expect("request"),
        StatusCode::FORBIDDEN,
        "self_approval",
    )
    .await;
    assert!(
        own["detail"]
            .as_str()
            .expect("present")
            .contains("own version"),
        "{own}"
    );
    assert_eq!(status_of(&app, "life/own", 1).await, "review");
    // Another admin may.
    expect_json(approve(&admin).await.expect("request"), StatusCode::OK).await;

    // An agent sees the prompt but never moves a status.
    let bot = agent(&app).await;
    create(&app, &admin, "life/agent", json!({"content": "For bots"})).await;
    let read = bot
        .get(app.url("/api/prompts/life%2Fagent/versions/1"))
        .send()
        .await
        .expect("request");
    expect_json(read, StatusCode::OK).await;
    for to in ["review", "approved", "draft"] {
        let response = transition(&app, &bot, "life/agent", 1, json!({"to": to})).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "agent → {to}");
    }
    assert_eq!(status_of(&app, "life/agent", 1).await, "draft");
    let refused = expect_json(
        app.get("/api/audit?limit=1000&outcome=denied&actor_role=agent&prompt=life%2Fagent")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        refused["entries"].as_array().expect("entries").len(),
        3,
        "every refusal is audited"
    );
}

async fn a_jump_or_an_unknown_status_is_refused_and_a_hidden_prompt_is_not_found(app: TestApp) {
    let admin = client_for(&app.admin_token);
    create(&app, &admin, "life/jump", json!({"content": "Jump"})).await;
    let jump = expect_problem(
        transition(&app, &admin, "life/jump", 1, json!({"to": "deprecated"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_transition",
    )
    .await;
    assert_eq!(
        jump["detail"],
        "a version cannot go from draft to deprecated; from draft it may go to: review"
    );
    expect_problem(
        transition(&app, &admin, "life/jump", 1, json!({"to": "approved"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "approval_required",
    )
    .await;
    expect_problem(
        transition(&app, &admin, "life/jump", 1, json!({"to": "draft"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_transition",
    )
    .await;
    for body in [
        json!({"to": "published"}),
        json!({}),
        json!({"to": "review", "extra": true}),
        json!({"to": "review", "comment": "x".repeat(2001)}),
    ] {
        let response = transition(&app, &admin, "life/jump", 1, body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    assert_eq!(status_of(&app, "life/jump", 1).await, "draft");
    assert!(transitions(&app, "life/jump").await.is_empty());

    // A missing version, a missing prompt, and a prompt the caller may not see.
    expect_problem(
        transition(&app, &admin, "life/jump", 9, json!({"to": "review"})).await,
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
    expect_problem(
        transition(&app, &admin, "life/none", 1, json!({"to": "review"})).await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    let (owner, _) = app.member("user").await;
    let (stranger, _) = app.member("user").await;
    create(
        &app,
        &owner,
        "life/private",
        json!({"content": "Mine", "scope": "user"}),
    )
    .await;
    expect_problem(
        transition(&app, &stranger, "life/private", 1, json!({"to": "review"})).await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    assert_eq!(status_of(&app, "life/private", 1).await, "draft");
}

async fn concurrent_transitions_of_one_version_let_exactly_one_through(app: TestApp) {
    let admin = client_for(&app.admin_token);
    create(&app, &admin, "life/race", json!({"content": "Race"})).await;
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let request = admin
                .post(app.url("/api/prompts/life%2Frace/versions/1/transition"))
                .json(&json!({"to": "review"}));
            tokio::spawn(async move { request.send().await.expect("request") })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.await.expect("task");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if status != StatusCode::OK {
            // Lost the race: either the status moved between the read and the write (409), or
            // it had already moved when read (422).
            let code = body["code"].as_str().unwrap_or("").to_string();
            assert!(
                matches!(
                    (status, code.as_str()),
                    (StatusCode::CONFLICT, "status_conflict")
                        | (StatusCode::UNPROCESSABLE_ENTITY, "invalid_transition")
                ),
                "{status}: {body}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    let audited: BTreeSet<String> = transitions(&app, "life/race")
        .await
        .iter()
        .map(|entry| entry["outcome"].as_str().expect("present").to_string())
        .collect();
    assert_eq!(audited, BTreeSet::from(["ok".to_string()]));
    assert_eq!(transitions(&app, "life/race").await.len(), 1);
}
