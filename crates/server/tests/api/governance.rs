//! The governance scenario of SPEC §6, end to end through HTTP: an author drafts; a compliance
//! finding blocks review; the fix goes to review; a two-step workflow takes a user's review then
//! an admin's sign-off (self-approval and the wrong role refused); an admin deploys it to the
//! protected `production` label; the next version gets a 10% canary, is promoted, and is rolled
//! back; time travel answers what production served in between; and the audit log holds every
//! step, refusals included.

use std::collections::BTreeMap;

use promptvault_core::{
    model::Role,
    workflow::{ApprovalStep, ApprovalWorkflow},
};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_for, expect_json, expect_problem};

crate::on_both_backends!(
    a_version_reaches_production_only_through_review_and_approvals_then_canary_promote_and_rollback_are_audited,
);

const PROMPT: &str = "/api/prompts/gov%2Fsupport";

async fn member(app: &TestApp, role: &str) -> (Client, String) {
    let id = app.user(&[role]).await;
    let token = app
        .token(json!({"name": format!("{role} {id}"), "role": role, "user_id": id}))
        .await;
    (client_for(&token), id)
}

async fn send(
    app: &TestApp,
    client: &Client,
    method: &str,
    path: &str,
    body: Value,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    client
        .request(method, app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn resolve(app: &TestApp, client: &Client, query: &str) -> Value {
    let response = client
        .get(app.url(&format!("/api/resolve?name=gov%2Fsupport&{query}")))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await
}

/// Submits version `n` as the author, then approves it through both steps.
async fn review_and_approve(
    app: &TestApp,
    author: &Client,
    reviewer: &Client,
    lead: &Client,
    n: i64,
) {
    let version = format!("{PROMPT}/versions/{n}");
    let submitted = expect_json(
        send(
            app,
            author,
            "POST",
            &format!("{version}/transition"),
            json!({"to": "review"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(submitted["status"], "review");
    for approver in [reviewer, lead] {
        expect_json(
            send(
                app,
                approver,
                "POST",
                &format!("{version}/approve"),
                json!({"comment": "ok"}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
}

async fn a_version_reaches_production_only_through_review_and_approvals_then_canary_promote_and_rollback_are_audited(
    app: TestApp,
) {
    // Internal prompts need a user's review, then an admin's sign-off.
    let app = app
        .reconfigured(|settings| {
            settings.approvals.internal = ApprovalWorkflow {
                steps: vec![
                    ApprovalStep {
                        roles: vec![Role::User],
                        count: 1,
                    },
                    ApprovalStep {
                        roles: vec![Role::Admin],
                        count: 1,
                    },
                ],
            };
        })
        .await;
    let (author, _) = member(&app, "user").await;
    let (reviewer, _) = member(&app, "user").await;
    let (lead, _) = member(&app, "admin").await;

    // 1. The author drafts a version that leaks an API key: it cannot go to review.
    let created = send(
        &app,
        &author,
        "POST",
        "/api/prompts",
        json!({
            "name": "gov/support",
            "content": "Answer {{ question }}. Use key sk-proj-abcdefghijklmnopqrstuvwxyz0123",
            "parameter_schema": {"type": "object", "properties": {"question": {"type": "string"}}},
        }),
    )
    .await;
    let created = expect_json(created, StatusCode::CREATED).await;
    assert_eq!(created["versions"][0]["status"], "draft");
    // A draft can never carry production, not even on creation.
    expect_problem(
        send(
            &app,
            &author,
            "POST",
            &format!("{PROMPT}/version"),
            json!({"content": "Answer {{ question }}.", "labels": ["production"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
    expect_problem(
        send(
            &app,
            &author,
            "POST",
            &format!("{PROMPT}/versions/1/transition"),
            json!({"to": "review"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "compliance_failed",
    )
    .await;

    // 2. The fix is version 2; it goes to review.
    let fixed = expect_json(
        send(
            &app,
            &author,
            "POST",
            &format!("{PROMPT}/version"),
            json!({"content": "Answer {{ question }} politely.", "notes": "no key"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(fixed["version_number"], 2);
    let v2 = format!("{PROMPT}/versions/2");
    expect_json(
        send(
            &app,
            &author,
            "POST",
            &format!("{v2}/transition"),
            json!({"to": "review"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    // 3. Approvals: not the author's own, not an admin at the user step, then the user, then
    //    the admin. A transition cannot shortcut the workflow.
    expect_problem(
        send(&app, &author, "POST", &format!("{v2}/approve"), json!({})).await,
        StatusCode::FORBIDDEN,
        "self_approval",
    )
    .await;
    expect_problem(
        send(
            &app,
            &lead,
            "POST",
            &format!("{v2}/transition"),
            json!({"to": "approved"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "approval_required",
    )
    .await;
    expect_problem(
        send(&app, &lead, "POST", &format!("{v2}/approve"), json!({})).await,
        StatusCode::FORBIDDEN,
        "approver_role_not_allowed",
    )
    .await;
    let first = expect_json(
        send(
            &app,
            &reviewer,
            "POST",
            &format!("{v2}/approve"),
            json!({"comment": "reads well"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["version"]["status"], "review", "{first}");
    expect_problem(
        send(&app, &reviewer, "POST", &format!("{v2}/approve"), json!({})).await,
        StatusCode::CONFLICT,
        "already_approved",
    )
    .await;
    let second = expect_json(
        send(
            &app,
            &lead,
            "POST",
            &format!("{v2}/approve"),
            json!({"comment": "ship it"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["version"]["status"], "approved", "{second}");

    // 4. Only a deploy role moves production.
    expect_problem(
        send(
            &app,
            &author,
            "PUT",
            &format!("{PROMPT}/labels/production"),
            json!({"version": 2}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "deploy_forbidden",
    )
    .await;
    expect_json(
        send(
            &app,
            &lead,
            "PUT",
            &format!("{PROMPT}/labels/production"),
            json!({"version": 2}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    // 5. Version 3 goes through the same review, then gets a 10% canary. An unapproved version
    //    cannot be part of the split.
    expect_json(
        send(
            &app,
            &author,
            "POST",
            &format!("{PROMPT}/version"),
            json!({"content": "Answer {{ question }} politely and briefly."}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let canary = json!({"split": [{"version": 2, "weight": 90}, {"version": 3, "weight": 10}]});
    expect_problem(
        send(
            &app,
            &lead,
            "PUT",
            &format!("{PROMPT}/labels/production"),
            canary.clone(),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
    review_and_approve(&app, &author, &reviewer, &lead, 3).await;
    expect_json(
        send(
            &app,
            &lead,
            "PUT",
            &format!("{PROMPT}/labels/production"),
            canary,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let mut served: BTreeMap<i64, u32> = BTreeMap::new();
    for key in 0..2_000 {
        let resolved = resolve(&app, &author, &format!("request_key=customer-{key}")).await;
        let number = resolved["version"]["version_number"]
            .as_i64()
            .expect("number");
        *served.entry(number).or_default() += 1;
    }
    // Keys are hashed, so the share is deterministic; over 2,000 keys it stays within 3 points
    // of the weight (the 10,000-key ±2 point check is in core::deploy).
    let canary_share = f64::from(served.get(&3).copied().unwrap_or(0)) / 2_000.0;
    assert!((0.07..=0.13).contains(&canary_share), "{served:?}");
    assert_eq!(served.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    let sticky = resolve(&app, &author, "request_key=customer-7").await;
    for _ in 0..5 {
        let again = resolve(&app, &author, "request_key=customer-7").await;
        assert_eq!(
            again["version"]["version_number"],
            sticky["version"]["version_number"]
        );
    }

    // 6. Promote ends the split on version 3.
    let promoted = expect_json(
        send(
            &app,
            &lead,
            "POST",
            &format!("{PROMPT}/labels/production/promote"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(promoted["version"], 3, "{promoted}");
    let after_promote = resolve(&app, &author, "request_key=customer-7").await;
    assert_eq!(after_promote["version"]["version_number"], 3);
    assert_eq!(after_promote["split"], Value::Null);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let promoted_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // 7. One call rolls production back to version 2; the past is still answerable.
    let rolled = expect_json(
        send(
            &app,
            &lead,
            "POST",
            &format!("{PROMPT}/labels/production/rollback"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(rolled["version"], 2, "{rolled}");
    assert_eq!(
        resolve(&app, &author, "").await["version"]["version_number"],
        2
    );
    let then = resolve(
        &app,
        &author,
        &format!("at={}", promoted_at.replace(':', "%3A").replace('+', "%2B")),
    )
    .await;
    assert_eq!(then["version"]["version_number"], 3, "{then}");

    let history = expect_json(
        app.get(&format!("{PROMPT}/labels/production/history"))
            .await,
        StatusCode::OK,
    )
    .await;
    let moves: Vec<(String, Value)> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|event| {
            (
                event["action"].as_str().unwrap_or_default().to_string(),
                event["to_version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        vec![
            ("set".to_string(), json!(2)),
            ("split".to_string(), json!(2)),
            ("promote".to_string(), json!(3)),
            ("rollback".to_string(), json!(2)),
        ]
    );

    // 8. The audit log holds every step, in order, refusals included.
    let audit = expect_json(
        app.get("/api/audit?limit=1000&prompt=gov%2Fsupport").await,
        StatusCode::OK,
    )
    .await;
    let steps: Vec<String> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["action"] != "prompt.read_text")
        .map(|entry| {
            format!(
                "{} {}",
                entry["action"].as_str().unwrap_or_default(),
                entry["outcome"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let expected = [
        "prompt.create ok",
        "version.transition denied", // compliance finding
        "version.create ok",
        "version.transition ok",  // submit v2
        "version.approve denied", // self-approval
        "version.approve denied", // an admin at the user step
        "version.approve ok",
        "version.approve denied", // the same reviewer twice
        "version.approve ok",
        "label.set denied", // the author may not deploy
        "label.set ok",
        "version.create ok",
        "label.set denied", // version 3 not approved yet
        "version.transition ok",
        "version.approve ok",
        "version.approve ok",
        "label.split ok",
        "label.promote ok",
        "label.rollback ok",
    ];
    let expected: Vec<String> = expected.iter().map(|step| step.to_string()).collect();
    assert_eq!(steps, expected);
}
