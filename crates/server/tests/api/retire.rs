//! Deprecation, archive, retention and periodic review through HTTP (issue 4 item 6): a
//! deprecated version is served until its sunset with `Deprecation`, `Sunset` and `Link`
//! headers, then gone (410 naming the replacement); archived versions are not served and
//! labelled ones cannot be archived; retention purges archived content; `GET /api/reviews/due`
//! lists overdue prompts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, encode, expect_json, expect_problem};

crate::on_both_backends!(
    a_deprecated_version_is_served_with_a_notice_until_its_sunset_then_gone_naming_the_replacement,
    a_deprecation_refuses_a_bad_replacement_period_or_sunset,
    a_labelled_version_cannot_be_archived_and_archived_versions_are_gone_but_keep_their_history,
    retention_purges_the_content_of_archived_versions_and_audits_it,
    overdue_reviews_are_listed_oldest_first_until_attested,
);

async fn transition(app: &TestApp, name: &str, n: i64, body: Value) -> reqwest::Response {
    app.post(
        &format!("/api/prompts/{}/versions/{n}/transition", encode(name)),
        &body,
    )
    .await
}

async fn render(app: &TestApp, name: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/api/prompts/{}/render", encode(name)), &body)
        .await
}

async fn a_deprecated_version_is_served_with_a_notice_until_its_sunset_then_gone_naming_the_replacement(
    app: TestApp,
) {
    app.create_prompt("dep/new", "New {{ x }}").await;
    app.create_prompt("dep/old", "Old {{ x }}").await;
    app.approve("dep/old", 1).await;
    let version = expect_json(
        transition(
            &app,
            "dep/old",
            1,
            json!({"to": "deprecated", "replacement": "dep/new", "period": "7d", "comment": "use new"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(version["status"], "deprecated");
    let deprecation = &version["deprecation"];
    assert_eq!(deprecation["replacement"]["name"], "dep/new");
    let deprecated_at = time::OffsetDateTime::parse(
        deprecation["deprecated_at"]
            .as_str()
            .expect("deprecated_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let sunset_at = time::OffsetDateTime::parse(
        deprecation["sunset_at"].as_str().expect("sunset_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert_eq!(sunset_at - deprecated_at, time::Duration::days(7));
    assert!(version["approved_at"].is_string());

    // Still served, and it says so.
    let response = render(&app, "dep/old", json!({"params": {"x": 1}})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        header("deprecation"),
        Some(format!("@{}", deprecated_at.unix_timestamp()))
    );
    assert_eq!(
        header("sunset"),
        Some(promptvault_core::retire::http_date(sunset_at))
    );
    assert_eq!(
        header("link"),
        Some("</api/prompts/dep%2Fnew>; rel=\"successor-version\"".to_string())
    );
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["rendered"], "Old 1");
    assert_eq!(body["deprecation"]["replacement"]["name"], "dep/new");
    // Resolve says the same, in the same headers and field.
    let resolved = app.get("/api/resolve?name=dep%2Fold&version=1").await;
    assert_eq!(
        resolved
            .headers()
            .get("deprecation")
            .and_then(|value| value.to_str().ok()),
        Some(format!("@{}", deprecated_at.unix_timestamp()).as_str())
    );
    let resolved = expect_json(resolved, StatusCode::OK).await;
    assert_eq!(resolved["deprecation"]["replacement"]["name"], "dep/new");
    // A version that is not deprecated carries no notice.
    let fresh = render(&app, "dep/new", json!({"params": {"x": 1}})).await;
    assert!(fresh.headers().get("deprecation").is_none());
    assert!(
        expect_json(fresh, StatusCode::OK)
            .await
            .get("deprecation")
            .is_none()
    );

    // After the sunset: 410, naming the replacement.
    app.database()
        .execute("UPDATE prompt_versions SET sunset_at = '2000-01-01T00:00:00.000000Z' WHERE sunset_at IS NOT NULL")
        .await;
    // Raw SQL goes around the vault, so its resolve cache is told by hand.
    app.state
        .vault
        .serve_cache()
        .apply(&promptvault_server::serve_cache::CacheEvent::All);
    let problem = expect_problem(
        render(&app, "dep/old", json!({"params": {"x": 1}})).await,
        StatusCode::GONE,
        "version_sunset",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("dep/new"),
        "{problem}"
    );
    expect_problem(
        app.get("/api/resolve?name=dep%2Fold&version=1").await,
        StatusCode::GONE,
        "version_sunset",
    )
    .await;

    // The audit log holds the deprecation with its replacement and sunset.
    let audit = expect_json(
        app.get("/api/audit?action=version.transition&limit=100")
            .await,
        StatusCode::OK,
    )
    .await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert!(
        entries
            .iter()
            .any(|entry| entry["detail"]["action"] == "deprecate"
                && entry["detail"]["replacement"] == "dep/new"
                && entry["detail"]["sunset_at"].is_string()),
        "{audit}"
    );
}

async fn a_deprecation_refuses_a_bad_replacement_period_or_sunset(app: TestApp) {
    app.create_prompt("bad/p", "P").await;
    app.approve("bad/p", 1).await;
    let cases = [
        (
            json!({"to": "deprecated", "replacement": "no/such"}),
            "invalid_replacement",
        ),
        (
            json!({"to": "deprecated", "replacement": "bad/p"}),
            "invalid_replacement",
        ),
        (
            json!({"to": "deprecated", "period": "soon"}),
            "invalid_field",
        ),
        (json!({"to": "deprecated", "period": "0d"}), "invalid_field"),
        (
            json!({"to": "deprecated", "period": "7d", "sunset": "2099-01-01T00:00:00Z"}),
            "invalid_field",
        ),
        (
            json!({"to": "deprecated", "sunset": "2001-01-01T00:00:00Z"}),
            "invalid_field",
        ),
        (
            json!({"to": "deprecated", "sunset": "tomorrow"}),
            "invalid_field",
        ),
        (json!({"to": "review", "period": "7d"}), "invalid_field"),
    ];
    for (body, code) in cases {
        let problem = expect_problem(
            transition(&app, "bad/p", 1, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert!(problem["detail"].is_string(), "{body}: {problem}");
    }
    let read = expect_json(
        app.get("/api/prompts/bad%2Fp/versions/1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["status"], "approved", "nothing moved");
    assert_eq!(read["deprecation"], Value::Null);
    // Without a replacement, with the default period.
    let moved = expect_json(
        transition(&app, "bad/p", 1, json!({"to": "deprecated"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["deprecation"]["replacement"], Value::Null);
}

async fn a_labelled_version_cannot_be_archived_and_archived_versions_are_gone_but_keep_their_history(
    app: TestApp,
) {
    app.create_prompt("arc/p", "Archived {{ x }}").await;
    app.create_prompt("arc/other", "Other").await;
    expect_json(
        app.put(
            "/api/prompts/arc%2Fp/labels/staging",
            &json!({"version": 1}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    app.approve("arc/p", 1).await;
    expect_json(
        transition(&app, "arc/p", 1, json!({"to": "deprecated"})).await,
        StatusCode::OK,
    )
    .await;
    let listed = expect_json(app.get("/api/prompts").await, StatusCode::OK).await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert!(
        names.contains(&"arc/p"),
        "deprecated prompts are still listed"
    );

    let problem = expect_problem(
        transition(&app, "arc/p", 1, json!({"to": "archived"})).await,
        StatusCode::CONFLICT,
        "version_labelled",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("staging")
    );
    let denied = expect_json(
        app.get("/api/audit?action=version.transition&outcome=denied")
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(denied.to_string().contains("version_labelled"), "{denied}");

    expect_json(
        app.delete("/api/prompts/arc%2Fp/labels/staging").await,
        StatusCode::NO_CONTENT,
    )
    .await
    .to_string();
    let archived = expect_json(
        transition(&app, "arc/p", 1, json!({"to": "archived"})).await,
        StatusCode::OK,
    )
    .await;
    assert!(archived["archived_at"].is_string());
    for body in [
        json!({"version": 1, "params": {"x": 1}}),
        json!({"params": {"x": 1}}),
    ] {
        expect_problem(
            render(&app, "arc/p", body).await,
            StatusCode::GONE,
            "version_archived",
        )
        .await;
    }
    let listed = expect_json(app.get("/api/prompts").await, StatusCode::OK).await;
    assert!(!listed.to_string().contains("arc/p"), "hidden: {listed}");
    let archived_list = expect_json(
        app.get("/api/prompts?status=archived").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(archived_list["items"][0]["name"], "arc/p");
    assert_eq!(archived_list["total"], 1);
    let prompt = expect_json(app.get("/api/prompts/arc%2Fp").await, StatusCode::OK).await;
    assert_eq!(prompt["status"], "archived");
    assert_eq!(prompt["versions"][0]["status"], "archived");
}

async fn retention_purges_the_content_of_archived_versions_and_audits_it(app: TestApp) {
    app.create_prompt("ret/p", "Keep {{ x }} for a while").await;
    app.approve("ret/p", 1).await;
    for to in ["deprecated", "archived"] {
        expect_json(
            transition(&app, "ret/p", 1, json!({"to": to})).await,
            StatusCode::OK,
        )
        .await;
    }
    let before = expect_json(
        app.get("/api/prompts/ret%2Fp/versions/1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        app.state
            .vault
            .apply_version_retention(30)
            .await
            .expect("retention"),
        0,
        "archived just now: kept"
    );
    assert_eq!(
        app.state
            .vault
            .apply_version_retention(0)
            .await
            .expect("retention"),
        1
    );
    let after = expect_json(
        app.get("/api/prompts/ret%2Fp/versions/1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["content"], Value::Null);
    assert!(after["purged_at"].is_string());
    assert_eq!(after["config"], json!({}));
    for field in [
        "version_number",
        "semver",
        "diff_hash",
        "author_id",
        "status",
        "created_at",
    ] {
        assert_eq!(after[field], before[field], "{field} stays");
    }
    let audit = expect_json(
        app.get("/api/audit?action=version.purge").await,
        StatusCode::OK,
    )
    .await;
    let text = audit.to_string();
    assert!(text.contains("ret/p") && text.contains("system"), "{audit}");
    assert_eq!(
        app.state
            .vault
            .apply_version_retention(0)
            .await
            .expect("retention"),
        0,
        "purged once"
    );
}

async fn overdue_reviews_are_listed_oldest_first_until_attested(app: TestApp) {
    let app = app
        .reconfigured(|settings| {
            settings
                .lifecycle
                .review_every_days
                .insert(promptvault_core::model::Classification::Internal, 30);
        })
        .await;
    expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "weekly", "name": "Weekly", "review_every_days": 7}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    app.create_prompt("rev/internal", "I").await;
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "rev/public", "content": "P", "classification": "public"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(
        app.post(
            "/api/prompts",
            &json!({"name": "rev/typed", "content": "T", "classification": "public", "type": "weekly"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    app.approve("rev/typed", 1).await;
    app.database()
        .execute("UPDATE prompts SET created_at = '2000-01-01T00:00:00.000000Z'")
        .await;
    app.database()
        .execute("UPDATE prompt_versions SET approved_at = '2001-01-01T00:00:00.000000Z' WHERE approved_at IS NOT NULL")
        .await;

    let due = expect_json(app.get("/api/reviews/due").await, StatusCode::OK).await;
    let items = due["items"].as_array().expect("items");
    let names: Vec<&str> = items
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert_eq!(names, ["rev/internal", "rev/typed"], "{due}");
    assert_eq!(items[0]["review_every_days"], 30);
    assert_eq!(items[0]["last_reviewed_at"], Value::Null);
    assert_eq!(items[0]["due_since"], "2000-01-31T00:00:00Z");
    assert!(items[0]["days_overdue"].as_i64().expect("days") > 365 * 20);
    assert_eq!(items[1]["review_every_days"], 7);
    assert_eq!(items[1]["type"], "weekly");
    assert_eq!(items[1]["last_reviewed_at"], "2001-01-01T00:00:00Z");
    assert_eq!(items[1]["due_since"], "2001-01-08T00:00:00Z");

    let attested = expect_json(
        app.post(
            "/api/prompts/rev%2Finternal/reviewed",
            &json!({"comment": "still right"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(attested["name"], "rev/internal");
    let due = expect_json(app.get("/api/reviews/due").await, StatusCode::OK).await;
    let names: Vec<&str> = due["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect();
    assert_eq!(names, ["rev/typed"]);
    let audit = expect_json(
        app.get("/api/audit?action=prompt.reviewed").await,
        StatusCode::OK,
    )
    .await;
    assert!(audit.to_string().contains("still right"), "{audit}");
    expect_problem(
        app.post("/api/prompts/rev%2Finternal/reviewed", &json!({"nope": 1}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
}
