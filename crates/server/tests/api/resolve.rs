//! `GET`/`POST /api/resolve`, the hot path: by agent + capability through links (access
//! respected, hidden links skipped), rendering with `params` in the same call, the in-process
//! cache seeing every kind of write at once, and HTTP caching (`ETag`, `304`, `Cache-Control` by
//! deployment model).

use promptvault_core::model::DeploymentModel;
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, client_for, encode, expect_json, expect_problem},
    on_both_backends,
};

on_both_backends!(
    resolving_by_capability_prefers_the_agents_own_links_then_global_ones_by_priority,
    resolving_by_capability_skips_links_to_prompts_the_caller_may_not_see,
    resolve_renders_with_params_by_query_and_by_body,
    resolve_refuses_ambiguous_or_incomplete_subjects,
    the_next_resolve_sees_every_kind_of_write,
    resolve_answers_carry_a_strong_etag_and_revalidate_with_304,
    web_application_answers_are_not_stored_by_clients,
    electron_remote_answers_are_cached_for_the_ttl_and_versions_for_a_year,
);

async fn resolve(client: &Client, app: &TestApp, query: &str) -> reqwest::Response {
    client
        .get(app.url(&format!("/api/resolve?{query}")))
        .send()
        .await
        .expect("request")
}

async fn resolved(app: &TestApp, query: &str) -> Value {
    expect_json(resolve(&app.client, app, query).await, StatusCode::OK).await
}

pub(crate) async fn link(
    app: &TestApp,
    name: &str,
    capability: &str,
    agent: Option<&str>,
    priority: i32,
) {
    let response = app
        .post(
            &format!("/api/prompts/{}/link", encode(name)),
            &json!({"capability": capability, "agent_id": agent, "priority": priority}),
        )
        .await;
    expect_json(response, StatusCode::OK).await;
}

async fn resolving_by_capability_prefers_the_agents_own_links_then_global_ones_by_priority(
    app: TestApp,
) {
    for name in ["cap/low", "cap/high", "cap/own", "cap/other-agent"] {
        app.create_prompt(name, &format!("I am {name}")).await;
    }
    link(&app, "cap/low", "summarize", None, 1).await;
    link(&app, "cap/high", "summarize", None, 9).await;
    link(&app, "cap/own", "summarize", Some("agent-1"), 0).await;
    link(&app, "cap/other-agent", "summarize", Some("agent-2"), 100).await;
    let cases = [
        ("agent=agent-1&capability=summarize", "cap/own"),
        ("agent=agent-2&capability=summarize", "cap/other-agent"),
        ("agent=agent-3&capability=summarize", "cap/high"),
        ("capability=summarize", "cap/high"),
    ];
    for (query, expected) in cases {
        let answer = resolved(&app, &format!("{query}&label=latest")).await;
        assert_eq!(answer["prompt"]["name"], expected, "{query}: {answer}");
        assert_eq!(answer["version"]["content"], format!("I am {expected}"));
    }
    // The label asked for is the chosen prompt's: no label there is a 404 naming it.
    expect_problem(
        resolve(&app.client, &app, "capability=summarize").await,
        StatusCode::NOT_FOUND,
        "label_not_found",
    )
    .await;
    expect_problem(
        resolve(&app.client, &app, "capability=nothing-linked&label=latest").await,
        StatusCode::NOT_FOUND,
        "link_not_found",
    )
    .await;
}

async fn resolving_by_capability_skips_links_to_prompts_the_caller_may_not_see(app: TestApp) {
    let response = app
        .post(
            "/api/prompts",
            &json!({"name": "cap/secret", "content": "the secret one", "classification": "restricted"}),
        )
        .await;
    expect_json(response, StatusCode::CREATED).await;
    app.create_prompt("cap/open", "the open one").await;
    link(&app, "cap/secret", "answer", Some("agent-1"), 50).await;
    link(&app, "cap/open", "answer", None, 0).await;
    let user = app.user(&["user"]).await;
    let token = app
        .token(json!({"name": "a user", "role": "user", "user_id": user}))
        .await;
    let as_user = client_for(&token);
    let query = "agent=agent-1&capability=answer&label=latest";
    // The admin sees the agent's own link first.
    assert_eq!(resolved(&app, query).await["prompt"]["name"], "cap/secret");
    // The user may not see the restricted prompt: skipped, never named.
    let answer = expect_json(resolve(&as_user, &app, query).await, StatusCode::OK).await;
    assert_eq!(answer["prompt"]["name"], "cap/open");
    assert!(!answer.to_string().contains("secret"), "{answer}");
    // With only the hidden link, a 404 that does not name it.
    let hidden_only = expect_problem(
        resolve(
            &as_user,
            &app,
            "agent=agent-1&capability=answer-secret&label=latest",
        )
        .await,
        StatusCode::NOT_FOUND,
        "link_not_found",
    )
    .await;
    link(&app, "cap/secret", "answer-secret", None, 0).await;
    let hidden_only_now = expect_problem(
        resolve(
            &as_user,
            &app,
            "agent=agent-1&capability=answer-secret&label=latest",
        )
        .await,
        StatusCode::NOT_FOUND,
        "link_not_found",
    )
    .await;
    assert_eq!(hidden_only["detail"], hidden_only_now["detail"]);
}

async fn resolve_renders_with_params_by_query_and_by_body(app: TestApp) {
    app.create_prompt("render/hello", "Hello {{ name }}!").await;
    let by_query = resolved(
        &app,
        "name=render%2Fhello&label=latest&params=%7B%22name%22%3A%22Ada%22%7D",
    )
    .await;
    assert_eq!(by_query["rendered"], "Hello Ada!");
    assert_eq!(by_query["version"]["content"], "Hello {{ name }}!");
    let by_body = expect_json(
        app.post(
            "/api/resolve",
            &json!({"name": "render/hello", "label": "latest", "params": {"name": "Grace"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_body["rendered"], "Hello Grace!");
    // Without params, nothing is rendered.
    let plain = resolved(&app, "name=render%2Fhello&label=latest").await;
    assert!(plain.get("rendered").is_none(), "{plain}");
    // Bad params: not JSON, not an object; a missing variable under strict rendering.
    for params in ["not-json", "%5B1%5D"] {
        expect_problem(
            resolve(
                &app.client,
                &app,
                &format!("name=render%2Fhello&label=latest&params={params}"),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
        )
        .await;
    }
    let missing = app
        .post(
            "/api/resolve",
            &json!({"name": "render/hello", "label": "latest", "params": {}}),
        )
        .await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Unknown fields in the body are refused.
    expect_problem(
        app.post(
            "/api/resolve",
            &json!({"name": "render/hello", "colour": "blue"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
}

async fn resolve_refuses_ambiguous_or_incomplete_subjects(app: TestApp) {
    app.create_prompt("subject/one", "one").await;
    for query in [
        "name=subject%2Fone&capability=summarize",
        "name=subject%2Fone&agent=agent-1",
        "agent=agent-1",
        "label=latest",
        "name=subject%2Fone&version=1&label=latest",
    ] {
        let problem = expect_problem(
            resolve(&app.client, &app, query).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
        )
        .await;
        assert!(problem["detail"].as_str().is_some(), "{query}");
    }
}

/// Each kind of write that changes what resolve returns, and what the next resolve must show.
#[derive(Debug, Clone, Copy)]
enum Write {
    NewVersion,
    SetLabel,
    RemoveLabel,
    Split,
    Promote,
    Rollback,
    Submit,
    Deprecate,
    Archive,
    Title,
    Access,
    Delete,
    Relink,
    Unlink,
    Import,
}

pub(crate) async fn the_next_resolve_sees_every_kind_of_write(app: TestApp) {
    let writes = [
        Write::NewVersion,
        Write::SetLabel,
        Write::RemoveLabel,
        Write::Split,
        Write::Promote,
        Write::Rollback,
        Write::Submit,
        Write::Deprecate,
        Write::Archive,
        Write::Title,
        Write::Access,
        Write::Delete,
        Write::Relink,
        Write::Unlink,
        Write::Import,
    ];
    let user = app.user(&["user"]).await;
    let user_token = app
        .token(json!({"name": "reader", "role": "user", "user_id": user}))
        .await;
    let as_user = client_for(&user_token);
    for (index, write) in writes.into_iter().enumerate() {
        let name = format!("cache/case-{index}");
        let path = format!("/api/prompts/{}", encode(&name));
        let other = format!("cache/other-{index}");
        let capability = format!("capability-{index}");
        app.create_prompt(&name, "v1").await;
        expect_json(
            app.add_version(&name, &json!({"content": "v2"})).await,
            StatusCode::CREATED,
        )
        .await;
        expect_json(
            app.put(&format!("{path}/labels/staging"), &json!({"version": 1}))
                .await,
            StatusCode::OK,
        )
        .await;
        let by_name = |label: &str| format!("name={}&label={label}", encode(&name));
        let by_link = format!("capability={capability}&label=latest");
        // What is resolved, warmed twice (a miss, then a hit) before the write.
        let query = match write {
            Write::NewVersion | Write::Title | Write::Delete | Write::Access | Write::Import => {
                by_name("latest")
            }
            Write::Submit | Write::Deprecate => format!("name={}&version=1", encode(&name)),
            Write::Archive => format!("name={}&version=1", encode(&name)),
            Write::Relink | Write::Unlink => {
                app.create_prompt(&other, "the other one").await;
                link(&app, &name, &capability, None, 5).await;
                link(&app, &other, &capability, None, 1).await;
                by_link.clone()
            }
            _ => by_name("staging"),
        };
        if matches!(write, Write::Promote) {
            expect_json(
                app.put(
                    &format!("{path}/labels/staging"),
                    &json!({"split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}),
                )
                .await,
                StatusCode::OK,
            )
            .await;
        }
        if matches!(write, Write::Rollback) {
            app.approve(&name, 1).await;
            app.approve(&name, 2).await;
            expect_json(
                app.put(&format!("{path}/labels/staging"), &json!({"version": 2}))
                    .await,
                StatusCode::OK,
            )
            .await;
        }
        if matches!(write, Write::Deprecate | Write::Archive) {
            app.approve(&name, 1).await;
        }
        if matches!(write, Write::Archive) {
            expect_json(
                app.post(
                    &format!("{path}/versions/1/transition"),
                    &json!({"to": "deprecated"}),
                )
                .await,
                StatusCode::OK,
            )
            .await;
            // Archiving needs no label other than latest on the version.
            let removed = app.delete(&format!("{path}/labels/staging")).await;
            assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        }
        let warm = |client: Client| {
            let query = query.clone();
            let app = &app;
            async move {
                for _ in 0..2 {
                    let response = resolve(&client, app, &query).await;
                    assert_eq!(response.status(), StatusCode::OK, "{write:?} warm-up");
                }
            }
        };
        warm(app.client.clone()).await;
        if matches!(write, Write::Access) {
            warm(as_user.clone()).await;
        }
        // The write.
        match write {
            Write::NewVersion => {
                expect_json(
                    app.add_version(&name, &json!({"content": "v3"})).await,
                    StatusCode::CREATED,
                )
                .await;
            }
            Write::SetLabel => {
                expect_json(
                    app.put(&format!("{path}/labels/staging"), &json!({"version": 2}))
                        .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::RemoveLabel => {
                let response = app.delete(&format!("{path}/labels/staging")).await;
                assert_eq!(response.status(), StatusCode::NO_CONTENT);
            }
            Write::Split => {
                expect_json(
                    app.put(
                        &format!("{path}/labels/staging"),
                        &json!({"split": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}]}),
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Promote => {
                expect_json(
                    app.post(
                        &format!("{path}/labels/staging/promote"),
                        &json!({"version": 2}),
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Rollback => {
                expect_json(
                    app.post(&format!("{path}/labels/staging/rollback"), &json!({}))
                        .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Submit => {
                expect_json(
                    app.post(
                        &format!("{path}/versions/1/transition"),
                        &json!({"to": "review"}),
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Deprecate => {
                expect_json(
                    app.post(
                        &format!("{path}/versions/1/transition"),
                        &json!({"to": "deprecated"}),
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Archive => {
                expect_json(
                    app.post(
                        &format!("{path}/versions/1/transition"),
                        &json!({"to": "archived"}),
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Title => {
                expect_json(
                    app.put(&path, &json!({"title": "A new title"})).await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Access => {
                expect_json(
                    app.put(&path, &json!({"classification": "restricted"}))
                        .await,
                    StatusCode::OK,
                )
                .await;
            }
            Write::Delete => {
                let response = app.delete(&path).await;
                assert_eq!(response.status(), StatusCode::NO_CONTENT);
            }
            Write::Relink => link(&app, &other, &capability, None, 10).await,
            Write::Unlink => {
                let links = expect_json(
                    app.get(&format!("/api/links?capability={capability}"))
                        .await,
                    StatusCode::OK,
                )
                .await;
                let id = links
                    .as_array()
                    .expect("links")
                    .iter()
                    .find(|link| link["prompt_name"] == name.as_str())
                    .and_then(|link| link["id"].as_str())
                    .expect("the link")
                    .to_string();
                let response = app.delete(&format!("/api/links/{id}")).await;
                assert_eq!(response.status(), StatusCode::NO_CONTENT);
            }
            Write::Import => {
                let mut bundle = expect_json(app.get("/api/export").await, StatusCode::OK).await;
                let mut prompt = bundle["prompts"]
                    .as_array()
                    .expect("prompts")
                    .iter()
                    .find(|prompt| prompt["name"] == name.as_str())
                    .expect("the prompt")
                    .clone();
                let versions = prompt["versions"].as_array_mut().expect("versions");
                let mut third = versions[versions.len() - 1].clone();
                third["version_number"] = json!(3);
                third["content"] = json!("v3 imported");
                if let Some(fields) = third.as_object_mut() {
                    fields.remove("diff_hash");
                    fields.remove("semver");
                }
                versions.push(third);
                bundle["prompts"] = json!([prompt]);
                let response = app.post("/api/import", &bundle).await;
                expect_json(response, StatusCode::OK).await;
            }
        }
        // The next resolve sees it.
        let after = resolve(&app.client, &app, &query).await;
        match write {
            Write::NewVersion => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["version"]["version_number"], 3, "{write:?}");
            }
            Write::SetLabel | Write::Promote => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["version"]["version_number"], 2, "{write:?}: {after}");
                assert_eq!(after["split"], Value::Null, "{write:?}");
            }
            Write::Rollback => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["version"]["version_number"], 1, "{write:?}: {after}");
            }
            Write::RemoveLabel => {
                expect_problem(after, StatusCode::NOT_FOUND, "label_not_found").await;
            }
            Write::Split => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["split"].as_array().map(Vec::len), Some(2), "{after}");
            }
            Write::Submit => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["version"]["status"], "review", "{write:?}");
            }
            Write::Deprecate => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["version"]["status"], "deprecated", "{write:?}");
                assert!(after["deprecation"].is_object(), "{after}");
            }
            Write::Archive => {
                expect_problem(after, StatusCode::GONE, "version_archived").await;
            }
            Write::Title => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["prompt"]["title"], "A new title");
            }
            Write::Access => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["prompt"]["classification"], "restricted");
                expect_problem(
                    resolve(&as_user, &app, &query).await,
                    StatusCode::NOT_FOUND,
                    "prompt_not_found",
                )
                .await;
            }
            Write::Delete => {
                expect_problem(after, StatusCode::NOT_FOUND, "prompt_not_found").await;
            }
            Write::Relink | Write::Unlink => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["prompt"]["name"], other.as_str(), "{write:?}");
            }
            Write::Import => {
                let after = expect_json(after, StatusCode::OK).await;
                assert_eq!(after["version"]["content"], "v3 imported", "{after}");
            }
        }
    }
}

async fn resolve_answers_carry_a_strong_etag_and_revalidate_with_304(app: TestApp) {
    app.create_prompt("etag/one", "one").await;
    let query = "name=etag%2Fone&label=latest";
    let first = resolve(&app.client, &app, query).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first
        .headers()
        .get(header::ETAG)
        .and_then(|value| value.to_str().ok())
        .expect("an ETag")
        .to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    // The same answer again: the same tag (not the time), and a 304 without a body.
    let again = resolve(&app.client, &app, query).await;
    assert_eq!(
        again.headers().get(header::ETAG).expect("an ETag"),
        etag.as_str()
    );
    let revalidated = app
        .client
        .get(app.url(&format!("/api/resolve?{query}")))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        revalidated.headers().get(header::ETAG).expect("an ETag"),
        etag.as_str()
    );
    assert!(revalidated.bytes().await.expect("body").is_empty());
    // A new version: the tag changes, the old one gets the whole answer.
    expect_json(
        app.add_version("etag/one", &json!({"content": "two"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let changed = app
        .client
        .get(app.url(&format!("/api/resolve?{query}")))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(
        changed.headers().get(header::ETAG).expect("an ETag"),
        etag.as_str()
    );
    // A version by number too.
    let version = app.get("/api/prompts/etag%2Fone/versions/1").await;
    let version_tag = version
        .headers()
        .get(header::ETAG)
        .expect("an ETag")
        .clone();
    let revalidated = app
        .client
        .get(app.url("/api/prompts/etag%2Fone/versions/1"))
        .header(header::IF_NONE_MATCH, version_tag)
        .send()
        .await
        .expect("request");
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
}

fn cache_control(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn web_application_answers_are_not_stored_by_clients(app: TestApp) {
    app.create_prompt("cc/web", "web").await;
    let resolved = resolve(&app.client, &app, "name=cc%2Fweb&label=latest").await;
    assert_eq!(cache_control(&resolved), "private, no-store");
    let version = app.get("/api/prompts/cc%2Fweb/versions/1").await;
    assert_eq!(cache_control(&version), "private, no-store");
}

async fn electron_remote_answers_are_cached_for_the_ttl_and_versions_for_a_year(app: TestApp) {
    let app = app
        .reconfigured(|settings| {
            settings.deployment_model = DeploymentModel::ElectronRemote;
            settings.serving.client_ttl_secs = 30;
        })
        .await;
    app.create_prompt("cc/remote", "remote").await;
    let resolved = resolve(&app.client, &app, "name=cc%2Fremote&label=latest").await;
    assert_eq!(resolved.status(), StatusCode::OK);
    assert_eq!(
        cache_control(&resolved),
        "private, max-age=30, must-revalidate"
    );
    let version = app.get("/api/prompts/cc%2Fremote/versions/1").await;
    assert_eq!(
        cache_control(&version),
        "private, max-age=31536000, immutable"
    );
}
