//! The first checks of access control through HTTP: no credential is 401, roles decide what a
//! principal may do, and a prompt a principal may not see does not exist for it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, expect_json, expect_problem};

crate::on_both_backends!(
    a_request_without_a_credential_is_401_with_www_authenticate,
    an_agent_reads_but_cannot_write,
    a_user_prompt_is_invisible_to_other_users,
    tokens_are_listed_without_their_secrets,
    only_the_owner_or_an_admin_changes_who_sees_a_prompt,
    labels_moved_with_an_identical_version_are_audited,
    a_link_to_a_hidden_prompt_cannot_be_deleted_by_id,
    rendering_a_hidden_prompt_never_says_what_is_missing,
);

async fn a_request_without_a_credential_is_401_with_www_authenticate(app: TestApp) {
    let response = app
        .request_as(None, Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    assert!(response.headers().get("www-authenticate").is_some());
    expect_problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let health = app
        .request_as(None, Method::GET, "/healthz")
        .send()
        .await
        .expect("request");
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "health needs no credential"
    );
}

async fn an_agent_reads_but_cannot_write(app: TestApp) {
    app.create_prompt("shared/greet", "Hi {{ name }}").await;
    let agent = app
        .token(json!({"name": "bot", "role": "agent", "agent_id": "bot-1"}))
        .await;
    let read = app
        .request_as(Some(&agent), Method::GET, "/api/prompts/shared%2Fgreet")
        .send()
        .await
        .expect("request");
    expect_json(read, StatusCode::OK).await;
    let write = app
        .request_as(
            Some(&agent),
            Method::POST,
            "/api/prompts/shared%2Fgreet/version",
        )
        .json(&json!({"content": "Hello {{ name }}"}))
        .send()
        .await
        .expect("request");
    expect_problem(write, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn a_user_prompt_is_invisible_to_other_users(app: TestApp) {
    let owner = app.user(&["user"]).await;
    let other = app.user(&["user"]).await;
    let owner_token = app
        .token(json!({"name": "owner", "role": "user", "user_id": owner}))
        .await;
    let other_token = app
        .token(json!({"name": "other", "role": "user", "user_id": other}))
        .await;
    let created = app
        .request_as(Some(&owner_token), Method::POST, "/api/prompts")
        .json(&json!({"name": "mine/notes", "content": "x", "scope": "user"}))
        .send()
        .await
        .expect("request");
    expect_json(created, StatusCode::CREATED).await;
    let hidden = app
        .request_as(Some(&other_token), Method::GET, "/api/prompts/mine%2Fnotes")
        .send()
        .await
        .expect("request");
    expect_problem(hidden, StatusCode::NOT_FOUND, "prompt_not_found").await;
    let listed = app
        .request_as(Some(&other_token), Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(listed, StatusCode::OK).await["total"],
        0,
        "lists and counts hide it too"
    );
    let own = app
        .request_as(Some(&owner_token), Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    assert_eq!(expect_json(own, StatusCode::OK).await["total"], 1);
}

async fn tokens_are_listed_without_their_secrets(app: TestApp) {
    let tokens = expect_json(app.get("/api/tokens").await, StatusCode::OK).await;
    let bootstrap = &tokens[0];
    assert!(bootstrap.get("token").is_none(), "{bootstrap}");
    assert!(
        app.admin_token
            .starts_with(bootstrap["token_prefix"].as_str().expect("prefix"))
    );
}

async fn only_the_owner_or_an_admin_changes_who_sees_a_prompt(app: TestApp) {
    let owner = app.user(&["user"]).await;
    let other = app.user(&["user"]).await;
    let owner_token = app
        .token(json!({"name": "owner", "role": "user", "user_id": owner}))
        .await;
    let other_token = app
        .token(json!({"name": "other", "role": "user", "user_id": other}))
        .await;
    let created = app
        .request_as(Some(&owner_token), Method::POST, "/api/prompts")
        .json(&json!({"name": "team/shared", "content": "x"}))
        .send()
        .await
        .expect("request");
    expect_json(created, StatusCode::CREATED).await;
    let cases = [
        json!({"scope": "user"}),
        json!({"classification": "restricted"}),
        json!({"owner_id": other}),
        json!({"access": {"owner_only": true}}),
    ];
    for change in cases {
        let refused = app
            .request_as(
                Some(&other_token),
                Method::PUT,
                "/api/prompts/team%2Fshared",
            )
            .json(&change)
            .send()
            .await
            .expect("request");
        expect_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let retitled = app
        .request_as(
            Some(&other_token),
            Method::PUT,
            "/api/prompts/team%2Fshared",
        )
        .json(&json!({"title": "Shared"}))
        .send()
        .await
        .expect("request");
    expect_json(retitled, StatusCode::OK).await;
    let moved = app
        .request_as(
            Some(&owner_token),
            Method::PUT,
            "/api/prompts/team%2Fshared",
        )
        .json(&json!({"scope": "user"}))
        .send()
        .await
        .expect("request");
    assert_eq!(expect_json(moved, StatusCode::OK).await["scope"], "user");
}

async fn labels_moved_with_an_identical_version_are_audited(app: TestApp) {
    app.create_prompt("moved/label", "same text").await;
    let again = app
        .add_version(
            "moved/label",
            &json!({"content": "same text", "labels": ["staging"]}),
        )
        .await;
    let version = expect_json(again, StatusCode::OK).await;
    assert_eq!(version["version_number"], 1, "identical: no new version");
    let audit = expect_json(app.get("/api/audit?action=label.set").await, StatusCode::OK).await;
    let moves: Vec<serde_json::Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| entry["detail"].clone())
        .collect();
    assert_eq!(
        moves,
        vec![json!({"label": "staging", "from": null, "to": 1})]
    );
}

async fn a_link_to_a_hidden_prompt_cannot_be_deleted_by_id(app: TestApp) {
    let owner = app.user(&["user"]).await;
    let owner_token = app
        .token(json!({"name": "owner", "role": "user", "user_id": owner}))
        .await;
    let created = app
        .request_as(Some(&owner_token), Method::POST, "/api/prompts")
        .json(&json!({"name": "private/notes", "content": "x", "scope": "user"}))
        .send()
        .await
        .expect("request");
    expect_json(created, StatusCode::CREATED).await;
    let link = expect_json(
        app.post(
            "/api/prompts/private%2Fnotes/link",
            &json!({"capability": "notes"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let linker = app.user(&["user"]).await;
    app.put(
        &format!("/api/users/{linker}"),
        &json!({"permissions": ["link"]}),
    )
    .await;
    let linker_token = app
        .token(json!({"name": "linker", "role": "user", "user_id": linker}))
        .await;
    let path = format!("/api/links/{}", link["id"].as_str().expect("link id"));
    let refused = app
        .request_as(Some(&linker_token), Method::DELETE, &path)
        .send()
        .await
        .expect("request");
    expect_problem(refused, StatusCode::NOT_FOUND, "link_not_found").await;
    let links = expect_json(app.get("/api/links?capability=notes").await, StatusCode::OK).await;
    assert_eq!(
        links.as_array().map(Vec::len),
        Some(1),
        "the link is still there"
    );
}

async fn rendering_a_hidden_prompt_never_says_what_is_missing(app: TestApp) {
    let owner = app.user(&["user"]).await;
    let other = app.user(&["user"]).await;
    let owner_token = app
        .token(json!({"name": "owner", "role": "user", "user_id": owner}))
        .await;
    let other_token = app
        .token(json!({"name": "other", "role": "user", "user_id": other}))
        .await;
    let created = app
        .request_as(Some(&owner_token), Method::POST, "/api/prompts")
        .json(&json!({"name": "hidden/render", "content": "x", "scope": "user"}))
        .send()
        .await
        .expect("request");
    expect_json(created, StatusCode::CREATED).await;
    for body in [
        json!({}),
        json!({"label": "nope"}),
        json!({"version": 9}),
        json!({"version": 1}),
    ] {
        let response = app
            .request_as(
                Some(&other_token),
                Method::POST,
                "/api/prompts/hidden%2Frender/render",
            )
            .json(&body)
            .send()
            .await
            .expect("request");
        let problem = expect_problem(response, StatusCode::NOT_FOUND, "prompt_not_found").await;
        assert_eq!(
            problem["detail"], "prompt \"hidden/render\" not found",
            "{body}: {problem}"
        );
    }
    let own = app
        .request_as(
            Some(&owner_token),
            Method::POST,
            "/api/prompts/hidden%2Frender/render",
        )
        .json(&json!({"label": "nope"}))
        .send()
        .await
        .expect("request");
    expect_problem(own, StatusCode::NOT_FOUND, "label_not_found").await;
}

#[tokio::test]
async fn without_encryption_keys_restricted_content_is_refused_clearly_and_nothing_is_written() {
    let app = TestApp::sqlite_without_keys().await;
    let body =
        json!({"name": "sealed/none", "content": "secret text", "classification": "restricted"});
    expect_problem(
        app.post("/api/prompts", &body).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "encryption_key_required",
    )
    .await;
    expect_problem(
        app.get("/api/prompts/sealed%2Fnone").await,
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    let internal = json!({"name": "plain/ok", "content": "x"});
    expect_json(
        app.post("/api/prompts", &internal).await,
        StatusCode::CREATED,
    )
    .await;
}
