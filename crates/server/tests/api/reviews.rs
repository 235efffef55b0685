//! Approval workflows through HTTP (SPEC §6, issue 4 item 2): `POST …/versions/{n}/approve`,
//! `POST …/versions/{n}/reject`, `GET …/versions/{n}/approvals` and the caller's queue
//! `GET /api/reviews`, with every decision and every refusal in the audit log.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, encode, expect_json, expect_problem};

crate::on_both_backends!(
    two_approvals_by_other_people_approve_a_confidential_version_and_everyone_sees_who,
    a_rejection_sends_the_version_back_with_the_comment_and_the_next_round_starts_fresh,
    a_restricted_version_needs_a_user_or_admin_then_an_admin,
    a_prompt_types_workflow_is_validated_kept_exported_and_followed,
    the_test_helper_approves_under_any_workflow,
);

async fn post(app: &TestApp, client: &Client, path: &str, body: Value) -> reqwest::Response {
    client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn get(app: &TestApp, client: &Client, path: &str) -> Value {
    let response = client.get(app.url(path)).send().await.expect("request");
    expect_json(response, StatusCode::OK).await
}

/// Creates `name` as `author` with `body`, and submits version 1 for review.
async fn submitted(app: &TestApp, author: &Client, name: &str, mut body: Value) {
    body["name"] = json!(name);
    body["content"] = json!("Summarize {{ topic }}");
    expect_json(
        post(app, author, "/api/prompts", body).await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(
        post(
            app,
            author,
            &format!("/api/prompts/{}/versions/1/transition", encode(name)),
            json!({"to": "review"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

fn queue_names(queue: &Value) -> Vec<String> {
    queue["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            format!(
                "{} v{}",
                item["prompt_name"].as_str().expect("name"),
                item["version_number"]
            )
        })
        .collect()
}

/// (outcome, detail.reason or detail.step) of the prompt's entries for `action`.
async fn audited(app: &TestApp, action: &str, name: &str) -> Vec<Value> {
    let list = expect_json(
        app.get(&format!(
            "/api/audit?limit=1000&action={action}&prompt={}",
            encode(name)
        ))
        .await,
        StatusCode::OK,
    )
    .await;
    list["entries"].as_array().expect("entries").clone()
}

async fn two_approvals_by_other_people_approve_a_confidential_version_and_everyone_sees_who(
    app: TestApp,
) {
    let (author, author_id) = app.member("user").await;
    let (alice, alice_id) = app.member("user").await;
    let (bob, bob_id) = app.member("admin").await;
    submitted(
        &app,
        &author,
        "rev/conf",
        json!({"classification": "confidential"}),
    )
    .await;
    let approve = "/api/prompts/rev%2Fconf/versions/1/approve";

    // The author never approves their own version.
    expect_problem(
        post(&app, &author, approve, json!({})).await,
        StatusCode::FORBIDDEN,
        "self_approval",
    )
    .await;
    // The queue: Alice and Bob see it, the author does not.
    assert_eq!(
        queue_names(&get(&app, &alice, "/api/reviews").await),
        ["rev/conf v1"]
    );
    assert!(queue_names(&get(&app, &author, "/api/reviews").await).is_empty());

    let first = expect_json(
        post(&app, &alice, approve, json!({"comment": "clear and safe"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["complete"], false);
    assert_eq!(first["version"]["status"], "review");
    assert_eq!(first["decision"]["approver_id"], json!(alice_id));
    assert_eq!(first["decision"]["step"], 1);
    assert_eq!(first["progress"]["approvals"], 1);
    assert_eq!(first["progress"]["required"], 2);
    assert_eq!(first["progress"]["current_step"], 1);
    // One approval per approver per round; the queue no longer offers it to Alice.
    expect_problem(
        post(&app, &alice, approve, json!({})).await,
        StatusCode::CONFLICT,
        "already_approved",
    )
    .await;
    assert!(queue_names(&get(&app, &alice, "/api/reviews").await).is_empty());
    let waiting = get(&app, &bob, "/api/reviews").await;
    assert_eq!(queue_names(&waiting), ["rev/conf v1"]);
    let item = &waiting["items"][0];
    assert_eq!(item["author_id"], json!(author_id));
    assert_eq!(item["semver"], "1.0.0");
    assert_eq!(item["progress"]["approvals"], 1);
    assert_eq!(
        item["progress"]["steps"],
        json!([{"roles": ["admin", "user"], "count": 2}])
    );
    assert_eq!(item["approvals"][0]["approver_id"], json!(alice_id));

    let second = expect_json(post(&app, &bob, approve, json!({})).await, StatusCode::OK).await;
    assert_eq!(second["complete"], true);
    assert_eq!(second["version"]["status"], "approved");
    assert!(queue_names(&get(&app, &bob, "/api/reviews").await).is_empty());
    expect_problem(
        post(&app, &bob, approve, json!({})).await,
        StatusCode::CONFLICT,
        "not_in_review",
    )
    .await;

    // Everyone who can read the prompt sees who approved what.
    let approvals = get(
        &app,
        &author,
        "/api/prompts/rev%2Fconf/versions/1/approvals",
    )
    .await;
    assert_eq!(approvals["status"], "approved");
    let who: Vec<(Value, Value, Value)> = approvals["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| {
            (
                a["approver_id"].clone(),
                a["approver_role"].clone(),
                a["comment"].clone(),
            )
        })
        .collect();
    assert_eq!(
        who,
        vec![
            (json!(alice_id), json!("user"), json!("clear and safe")),
            (json!(bob_id), json!("admin"), Value::Null),
        ]
    );
    assert_eq!(approvals["progress"]["approvals"], 2);
    assert_eq!(approvals["progress"]["current_step"], Value::Null);

    // The audit log: two approvals (the second completing it) and every refusal, denied.
    let entries = audited(&app, "version.approve", "rev/conf").await;
    let summary: Vec<(String, Value)> = entries
        .iter()
        .map(|entry| {
            let outcome = entry["outcome"].as_str().expect("outcome").to_string();
            let what = if outcome == "ok" {
                entry["detail"]["completed"].clone()
            } else {
                entry["detail"]["reason"].clone()
            };
            (outcome, what)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("denied".into(), json!("self_approval")),
            ("ok".into(), json!(false)),
            ("denied".into(), json!("already_approved")),
            ("ok".into(), json!(true)),
            ("denied".into(), json!("not_in_review")),
        ]
    );
    assert_eq!(entries[1]["actor_id"], json!(alice_id));
    assert_eq!(entries[1]["detail"]["comment"], "clear and safe");

    // The plain transition is no way around it.
    expect_json(
        post(
            &app,
            &author,
            "/api/prompts/rev%2Fconf/version",
            json!({"content": "Two {{ topic }}"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(
        post(
            &app,
            &author,
            "/api/prompts/rev%2Fconf/versions/2/transition",
            json!({"to": "review"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_problem(
        post(
            &app,
            &bob,
            "/api/prompts/rev%2Fconf/versions/2/transition",
            json!({"to": "approved"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "approval_required",
    )
    .await;
}

async fn a_rejection_sends_the_version_back_with_the_comment_and_the_next_round_starts_fresh(
    app: TestApp,
) {
    let (author, _) = app.member("user").await;
    let (alice, _) = app.member("user").await;
    let (bob, bob_id) = app.member("user").await;
    submitted(
        &app,
        &author,
        "rev/reject",
        json!({"classification": "confidential"}),
    )
    .await;
    let path = |action: &str| format!("/api/prompts/rev%2Freject/versions/1/{action}");
    expect_json(
        post(&app, &alice, &path("approve"), json!({})).await,
        StatusCode::OK,
    )
    .await;

    // A rejection says why.
    for body in [
        json!({}),
        json!({"comment": "   "}),
        json!({"comment": "x".repeat(2001)}),
        json!({"comment": "ok", "extra": 1}),
    ] {
        let response = post(&app, &bob, &path("reject"), body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
    expect_problem(
        post(&app, &author, &path("reject"), json!({"comment": "mine"})).await,
        StatusCode::FORBIDDEN,
        "self_approval",
    )
    .await;
    let rejected = expect_json(
        post(
            &app,
            &bob,
            &path("reject"),
            json!({"comment": "cite the source"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rejected["version"]["status"], "draft");
    assert_eq!(rejected["decision"]["decision"], "reject");
    assert_eq!(rejected["decision"]["comment"], "cite the source");
    let entries = audited(&app, "version.reject", "rev/reject").await;
    let ok: Vec<&Value> = entries.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["actor_id"], json!(bob_id));
    assert_eq!(ok[0]["detail"]["comment"], "cite the source");
    assert_eq!(
        entries.iter().filter(|e| e["outcome"] == "denied").count(),
        1
    );

    // Resubmitted: a new round; Alice's approval from round 1 no longer counts.
    expect_json(
        post(&app, &author, &path("transition"), json!({"to": "review"})).await,
        StatusCode::OK,
    )
    .await;
    let approvals = get(&app, &author, &path("approvals")).await;
    assert_eq!(approvals["progress"]["approvals"], 0);
    assert_eq!(
        approvals["approvals"].as_array().expect("all rounds").len(),
        2
    );
    let again = expect_json(
        post(&app, &alice, &path("approve"), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["decision"]["round"], 2);
    assert_eq!(again["complete"], false);

    // Requesting changes through a transition ends the round too.
    expect_json(
        post(
            &app,
            &bob,
            &path("transition"),
            json!({"to": "draft", "comment": "one more thing"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        post(&app, &author, &path("transition"), json!({"to": "review"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        get(&app, &author, &path("approvals")).await["progress"]["approvals"],
        0
    );
}

async fn a_restricted_version_needs_a_user_or_admin_then_an_admin(app: TestApp) {
    let (author, _) = app.member("user").await;
    let (alice, alice_id) = app.member("user").await;
    let (carol, carol_id) = app.member("user").await;
    let (bob, _) = app.member("admin").await;
    submitted(
        &app,
        &author,
        "rev/restricted",
        json!({"classification": "restricted"}),
    )
    .await;
    let approve = "/api/prompts/rev%2Frestricted/versions/1/approve";
    // Users without a grant do not see a restricted prompt at all.
    expect_problem(
        post(&app, &alice, approve, json!({})).await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    let grants = json!({"grants": [{"user": alice_id}, {"user": carol_id}]});
    expect_json(
        app.put("/api/prompts/rev%2Frestricted", &json!({"access": grants}))
            .await,
        StatusCode::OK,
    )
    .await;

    let first = expect_json(post(&app, &alice, approve, json!({})).await, StatusCode::OK).await;
    assert_eq!(first["decision"]["step"], 1);
    assert_eq!(first["progress"]["current_step"], 2);
    // Step 2 takes an admin: Carol (a user) may not, and the queue does not offer it to her.
    let refused = expect_problem(
        post(&app, &carol, approve, json!({})).await,
        StatusCode::FORBIDDEN,
        "approver_role_not_allowed",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .expect("detail")
            .contains("needs admin"),
        "{refused}"
    );
    assert!(queue_names(&get(&app, &carol, "/api/reviews").await).is_empty());
    assert_eq!(
        queue_names(&get(&app, &bob, "/api/reviews").await),
        ["rev/restricted v1"]
    );
    let done = expect_json(post(&app, &bob, approve, json!({})).await, StatusCode::OK).await;
    assert_eq!(done["decision"]["step"], 2);
    assert_eq!(done["version"]["status"], "approved");
}

async fn a_prompt_types_workflow_is_validated_kept_exported_and_followed(app: TestApp) {
    for (workflow, needle) in [
        (json!({"steps": []}), "at least one step"),
        (
            json!({"steps": [{"roles": ["agent"], "count": 1}]}),
            "agents never approve",
        ),
        (
            json!({"steps": [{"roles": ["admin"], "count": 0}]}),
            "steps[0].count",
        ),
    ] {
        let problem = expect_problem(
            app.post(
                "/api/prompt-types",
                &json!({"key": "bad", "name": "Bad", "approval_workflow": workflow}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        )
        .await;
        assert!(
            problem["detail"].as_str().expect("detail").contains(needle),
            "{problem}"
        );
    }
    let three =
        json!({"steps": [{"roles": ["user"], "count": 1}, {"roles": ["admin"], "count": 2}]});
    let created = expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "gated", "name": "Gated", "approval_workflow": three}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["approval_workflow"], three);
    let export = expect_json(app.get("/api/export").await, StatusCode::OK).await;
    assert_eq!(export["prompt_types"][0]["approval_workflow"], three);

    let (author, _) = app.member("user").await;
    submitted(
        &app,
        &author,
        "rev/gated",
        json!({"type": "gated", "classification": "public"}),
    )
    .await;
    let approvals = get(
        &app,
        &author,
        "/api/prompts/rev%2Fgated/versions/1/approvals",
    )
    .await;
    assert_eq!(approvals["progress"]["steps"], three["steps"]);
    assert_eq!(approvals["progress"]["required"], 3);

    // Removing the override brings back the classification's workflow.
    let cleared = expect_json(
        app.put(
            "/api/prompt-types/gated",
            &json!({"approval_workflow": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cleared["approval_workflow"], Value::Null);
    let approvals = get(
        &app,
        &author,
        "/api/prompts/rev%2Fgated/versions/1/approvals",
    )
    .await;
    assert_eq!(approvals["progress"]["required"], 1);
}

async fn the_test_helper_approves_under_any_workflow(app: TestApp) {
    for (name, classification) in [
        ("rev/h-internal", "internal"),
        ("rev/h-confidential", "confidential"),
        ("rev/h-restricted", "restricted"),
    ] {
        expect_json(
            app.post(
                "/api/prompts",
                &json!({"name": name, "content": "Hi", "classification": classification}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        app.approve(name, 1).await;
        let version = expect_json(
            app.get(&format!("/api/prompts/{}/versions/1", encode(name)))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(version["status"], "approved", "{name}");
    }
}
