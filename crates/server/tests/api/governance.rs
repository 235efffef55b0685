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
    a_credential_without_a_user_cannot_approve_a_version_whose_author_is_unknown,
    changing_the_type_or_classification_never_weakens_a_review_or_protection,
    a_replacement_more_restricted_than_the_deprecated_prompt_is_refused,
    a_review_interval_beyond_a_century_is_refused,
    resolve_redacts_the_template_of_a_confidential_prompt,
);

const PROMPT: &str = "/api/prompts/gov%2Fsupport";

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
    let (author, _) = app.member("user").await;
    let (reviewer, _) = app.member("user").await;
    let (lead, _) = app.member("admin").await;

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

/// A version written by a credential without a user has no known author: such a credential (an
/// API token, the bootstrap admin token) may not approve it, since it could be its author; a
/// user may.
async fn a_credential_without_a_user_cannot_approve_a_version_whose_author_is_unknown(
    app: TestApp,
) {
    let ci = client_for(&app.token(json!({"name": "ci", "role": "user"})).await);
    for client in [&ci, &app.client] {
        let name = if std::ptr::eq(client, &ci) {
            "gov/ci"
        } else {
            "gov/admin"
        };
        let path = format!("/api/prompts/{}", name.replace('/', "%2F"));
        expect_json(
            send(
                &app,
                client,
                "POST",
                "/api/prompts",
                json!({"name": name, "content": "Hi"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        expect_json(
            send(
                &app,
                client,
                "POST",
                &format!("{path}/versions/1/transition"),
                json!({"to": "review"}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        expect_problem(
            send(
                &app,
                client,
                "POST",
                &format!("{path}/versions/1/approve"),
                json!({}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "unidentified_approver",
        )
        .await;
        let (reviewer, _) = app.member("user").await;
        let approved = expect_json(
            send(
                &app,
                &reviewer,
                "POST",
                &format!("{path}/versions/1/approve"),
                json!({}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(approved["version"]["status"], "approved");
    }
}

/// The type and classification decide a prompt's workflow and protected labels: only its owner
/// or an admin changes them, never while a version is in review, and never so that a label ends
/// up protected on a version that is not approved.
async fn changing_the_type_or_classification_never_weakens_a_review_or_protection(app: TestApp) {
    expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "gated", "name": "Gated", "requires_approval": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let (owner, owner_id) = app.member("user").await;
    let (other, _) = app.member("user").await;
    expect_json(
        send(
            &app,
            &owner,
            "POST",
            "/api/prompts",
            json!({"name": "gov/typed", "content": "Hi", "owner_id": owner_id, "labels": ["staging"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = "/api/prompts/gov%2Ftyped";
    expect_problem(
        send(&app, &other, "PUT", path, json!({"type": "gated"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Staging points at a draft: a type protecting every label is refused.
    expect_problem(
        send(&app, &owner, "PUT", path, json!({"type": "gated"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "label_requires_approval",
    )
    .await;
    // While version 1 is in review, neither the type nor the classification changes.
    expect_json(
        send(
            &app,
            &owner,
            "POST",
            &format!("{path}/versions/1/transition"),
            json!({"to": "review"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    for change in [
        json!({"type": "gated"}),
        json!({"classification": "public"}),
    ] {
        expect_problem(
            send(&app, &owner, "PUT", path, change).await,
            StatusCode::CONFLICT,
            "review_in_progress",
        )
        .await;
    }
    // Approved, the label may become protected.
    let (reviewer, _) = app.member("user").await;
    expect_json(
        send(
            &app,
            &reviewer,
            "POST",
            &format!("{path}/versions/1/approve"),
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let typed = expect_json(
        send(&app, &owner, "PUT", path, json!({"type": "gated"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(typed["type"], "gated", "{typed}");
}

/// Naming a replacement must not reveal a prompt that callers of the deprecated one may not
/// see: a replacement with a stricter classification, a narrower scope or its own access rules
/// is refused.
async fn a_replacement_more_restricted_than_the_deprecated_prompt_is_refused(app: TestApp) {
    app.create_prompt("gov/old", "Old").await;
    app.approve("gov/old", 1).await;
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "gov/secret-plan", "content": "New", "classification": "restricted"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    app.create_prompt("gov/new", "New").await;
    let deprecate =
        |replacement: &str| json!({"to": "deprecated", "replacement": replacement, "period": "7d"});
    expect_problem(
        app.post(
            "/api/prompts/gov%2Fold/versions/1/transition",
            &deprecate("gov/secret-plan"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_replacement",
    )
    .await;
    let deprecated = expect_json(
        app.post(
            "/api/prompts/gov%2Fold/versions/1/transition",
            &deprecate("gov/new"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(deprecated["deprecation"]["replacement"]["name"], "gov/new");
}

/// Review intervals are bounded where they are given, so the overdue list never overflows.
async fn a_review_interval_beyond_a_century_is_refused(app: TestApp) {
    let problem = expect_problem(
        app.post(
            "/api/prompt-types",
            &json!({"key": "slow", "name": "Slow", "review_every_days": 4_294_967_295u64}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("36500"),
        "{problem}"
    );
    expect_json(app.get("/api/reviews/due").await, StatusCode::OK).await;
}

/// Resolve hands out the template itself: for the classifications whose output is redacted,
/// its secrets and PII are redacted too.
async fn resolve_redacts_the_template_of_a_confidential_prompt(app: TestApp) {
    for (name, classification, redacted) in [
        ("gov/conf", "confidential", true),
        ("gov/open", "internal", false),
    ] {
        expect_json(
            app.post(
                "/api/prompts",
                &json!({"name": name, "content": "Write to ada@example.com about {{ topic }}",
                        "classification": classification, "labels": ["staging"]}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let resolved = expect_json(
            app.get(&format!(
                "/api/resolve?name={}&label=staging",
                name.replace('/', "%2F")
            ))
            .await,
            StatusCode::OK,
        )
        .await;
        let content = resolved["version"]["content"].as_str().unwrap_or_default();
        assert_eq!(content.contains("ada@example.com"), !redacted, "{resolved}");
        assert_eq!(
            resolved["redactions"],
            json!(u64::from(redacted)),
            "{resolved}"
        );
    }
}
