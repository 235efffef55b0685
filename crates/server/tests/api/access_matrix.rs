//! The authorization table (SPEC §7, issue 3): every route of the OpenAPI document × every
//! principal × every prompt (each scope × classification, plus the per-prompt rules), checked
//! through HTTP. The tables below are the spec; the test only combines them:
//!
//! - a request without a credential is 401 (except the public health routes);
//! - a prompt the principal may not see is 404, exactly like a missing one;
//! - a visible prompt the principal may not act on is 403, and so is an admin-only route;
//! - everything else is 2xx (every request carries a valid body).
//!
//! Principals, in the order of every expectation string: `A` the bootstrap admin token, `O` the
//! user owning the prompts, `U` another user, `G` the agent the agent-scoped prompts are for,
//! `X` another agent, `N` no credential at all. A `.` in a string means "refused".

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_for, encode, expect_json, expect_problem};

crate::on_both_backends!(
    every_route_answers_every_principal_as_the_access_table_says,
    a_hidden_prompt_answers_exactly_like_a_missing_one,
);

const PRINCIPALS: [char; 6] = ['A', 'O', 'U', 'G', 'X', 'N'];

/// A prompt of the table: who sees it (over `AOUGX`; `N` never does) and who may serve
/// (render) it when that differs. `access` may name `OTHER` (the other user's id).
struct Fixture {
    key: &'static str,
    scope: &'static str,
    classification: &'static str,
    access: Option<&'static str>,
    /// Created by the admin for the owner, so the owner holds no implicit grant.
    by_admin: bool,
    visible: &'static str,
    served: Option<&'static str>,
}

const fn fixture(
    key: &'static str,
    scope: &'static str,
    classification: &'static str,
    visible: &'static str,
) -> Fixture {
    Fixture {
        key,
        scope,
        classification,
        access: None,
        by_admin: false,
        visible,
        served: None,
    }
}

/// Every scope × classification created by the owner (a non-admin creating a restricted prompt
/// keeps a grant to it), agent prompts for agent `G`, then the per-prompt rules.
const FIXTURES: &[Fixture] = &[
    fixture("global-public", "global", "public", "AOUGX"),
    fixture("global-internal", "global", "internal", "AOUGX"),
    fixture("global-confidential", "global", "confidential", "AOU.."),
    fixture("global-restricted", "global", "restricted", "AO..."),
    fixture("user-public", "user", "public", "AO..."),
    fixture("user-internal", "user", "internal", "AO..."),
    fixture("user-confidential", "user", "confidential", "AO..."),
    fixture("user-restricted", "user", "restricted", "AO..."),
    fixture("agent-public", "agent", "public", "AO.G."),
    fixture("agent-internal", "agent", "internal", "AO.G."),
    fixture("agent-confidential", "agent", "confidential", "AO..."),
    fixture("agent-restricted", "agent", "restricted", "AO..."),
    Fixture {
        access: Some(r#"{"owner_only": true}"#),
        ..fixture("owner-only", "global", "internal", "AO...")
    },
    Fixture {
        access: Some(r#"{"allowed_roles": ["agent"]}"#),
        ..fixture("agents-only", "global", "internal", "A..GX")
    },
    Fixture {
        access: Some(r#"{"allowed_roles": ["user"]}"#),
        ..fixture("users-only", "global", "internal", "AOU..")
    },
    Fixture {
        access: Some(r#"{"restricted_deployments": ["web_application"]}"#),
        served: Some("....."),
        ..fixture("not-served-here", "global", "internal", "AOUGX")
    },
    Fixture {
        access: Some(r#"{"grants": [{"agent": "bot"}]}"#),
        ..fixture(
            "confidential-granted-to-agent",
            "global",
            "confidential",
            "AOUG.",
        )
    },
    Fixture {
        access: Some(r#"{"grants": [{"user": "OTHER"}]}"#),
        ..fixture(
            "restricted-granted-to-other",
            "global",
            "restricted",
            "AOU..",
        )
    },
    Fixture {
        by_admin: true,
        ..fixture("restricted-without-grant", "global", "restricted", "A....")
    },
    Fixture {
        access: Some(r#"{"grants": [{"agent": "bot"}]}"#),
        ..fixture(
            "agent-confidential-granted",
            "agent",
            "confidential",
            "AO.G.",
        )
    },
];

/// What a route needs: nothing from a prompt, or a prompt the principal sees (and, to serve
/// it, one its deployment rules let this server serve).
#[derive(Clone, Copy, PartialEq)]
enum Target {
    None,
    Prompt,
    ServedPrompt,
}

/// A route: who may call it (over `AOUGXN`) on a prompt they see.
struct Route {
    method: &'static str,
    path: &'static str,
    allowed: &'static str,
    target: Target,
}

const fn route(method: &'static str, path: &'static str, allowed: &'static str) -> Route {
    Route {
        method,
        path,
        allowed,
        target: Target::None,
    }
}

const fn on_prompt(method: &'static str, path: &'static str, allowed: &'static str) -> Route {
    Route {
        method,
        path,
        allowed,
        target: Target::Prompt,
    }
}

/// The role matrix of SPEC §7 per route: read `AOUGX.`, write `AOU...`, link `A.....`, delete
/// `AO....` (admins, and the owner of their own prompt: every fixture is the owner's), admin-only
/// routes `A.....`.
const ROUTES: &[Route] = &[
    route("GET", "/api/prompts", "AOUGX."),
    route("POST", "/api/prompts", "AOU..."),
    on_prompt("GET", "/api/prompts/{id}", "AOUGX."),
    on_prompt("PUT", "/api/prompts/{id}", "AOU..."),
    on_prompt("POST", "/api/prompts/{id}/version", "AOU..."),
    on_prompt("GET", "/api/prompts/{id}/versions/{n}", "AOUGX."),
    on_prompt("GET", "/api/prompts/{id}/versions/{n}/findings", "AOUGX."),
    on_prompt(
        "POST",
        "/api/prompts/{id}/versions/{n}/transition",
        "AOU...",
    ),
    on_prompt("GET", "/api/prompts/{id}/diff", "AOUGX."),
    on_prompt("PUT", "/api/prompts/{id}/labels/{label}", "AOU..."),
    on_prompt("DELETE", "/api/prompts/{id}/labels/{label}", "AOU..."),
    on_prompt("GET", "/api/prompts/{id}/labels/{label}/history", "AOUGX."),
    Route {
        target: Target::ServedPrompt,
        ..on_prompt("POST", "/api/prompts/{id}/render", "AOUGX.")
    },
    on_prompt("POST", "/api/prompts/{id}/link", "A....."),
    route("GET", "/api/links", "AOUGX."),
    route("DELETE", "/api/links/{link_id}", "A....."),
    route("GET", "/api/prompt-types", "AOUGX."),
    route("POST", "/api/prompt-types", "A....."),
    route("GET", "/api/prompt-types/{key}", "AOUGX."),
    route("PUT", "/api/prompt-types/{key}", "A....."),
    route("DELETE", "/api/prompt-types/{key}", "A....."),
    route("GET", "/api/export", "AOUGX."),
    route("POST", "/api/import", "A....."),
    route("GET", "/api/users", "A....."),
    route("POST", "/api/users", "A....."),
    route("GET", "/api/users/{user_id}", "A....."),
    route("PUT", "/api/users/{user_id}", "A....."),
    route("DELETE", "/api/users/{user_id}", "A....."),
    route("GET", "/api/tokens", "A....."),
    route("POST", "/api/tokens", "A....."),
    route("DELETE", "/api/tokens/{token_id}", "A....."),
    route("GET", "/api/audit", "A....."),
    route("GET", "/api/audit/verify", "A....."),
    route("POST", "/api/keys/rotate", "A....."),
    route("GET", "/healthz", "AOUGXN"),
    route("GET", "/readyz", "AOUGXN"),
    on_prompt("GET", "/api/prompts/{id}/tests", "AOUGX."),
    on_prompt("PUT", "/api/prompts/{id}/tests", "AOU..."),
    on_prompt("POST", "/api/prompts/{id}/tests/run", "AOUGX."),
    on_prompt("POST", "/api/prompts/{id}/reviewed", "AOU..."),
    route("GET", "/api/reviews/due", "AOUGX."),
    on_prompt("POST", "/api/prompts/{id}/labels/{label}/promote", "AOU..."),
    on_prompt(
        "POST",
        "/api/prompts/{id}/labels/{label}/rollback",
        "AOU...",
    ),
    Route {
        target: Target::ServedPrompt,
        ..route("GET", "/api/resolve", "AOUGX.")
    },
    Route {
        target: Target::ServedPrompt,
        ..route("POST", "/api/resolve", "AOUGX.")
    },
    on_prompt("POST", "/api/prompts/{id}/versions/{n}/approve", "AOU..."),
    on_prompt("POST", "/api/prompts/{id}/versions/{n}/reject", "AOU..."),
    on_prompt("GET", "/api/prompts/{id}/versions/{n}/approvals", "AOUGX."),
    route("GET", "/api/reviews", "AOUGX."),
    // A run's feedback: its sender or an admin (every run here is sent by nobody of the table),
    // among those who see the prompt.
    on_prompt("POST", "/api/runs/{id}/feedback", "A....."),
    on_prompt("GET", "/api/prompts/{id}/metrics", "AOUGX."),
    route("GET", "/metrics", "A....."),
    // Deleting comes last so that no other cell loses its prompt (each delete cell deletes a
    // fresh copy of its fixture anyway).
    on_prompt("DELETE", "/api/prompts/{id}", "AO...."),
];

/// The expected answer of one cell: `Ok(())` for any 2xx, else this status.
fn expected(route: &Route, principal: usize, fixture: Option<&Fixture>) -> Result<(), StatusCode> {
    let allowed = |table: &str| table.as_bytes()[principal] != b'.';
    if PRINCIPALS[principal] == 'N' {
        return if allowed(route.allowed) {
            Ok(())
        } else {
            Err(StatusCode::UNAUTHORIZED)
        };
    }
    if let Some(fixture) = fixture {
        if !allowed(fixture.visible) {
            return Err(StatusCode::NOT_FOUND);
        }
        if route.target == Target::ServedPrompt && !allowed(fixture.served.unwrap_or("AOUGX")) {
            return Err(StatusCode::FORBIDDEN);
        }
    }
    if allowed(route.allowed) {
        Ok(())
    } else {
        Err(StatusCode::FORBIDDEN)
    }
}

/// The principals' credentials and the ids the cells need.
struct Cast {
    clients: Vec<Client>,
    owner_id: String,
    other_id: String,
    owner: Client,
    admin: Client,
    /// An admin user outside the table, who writes the versions the table's principals review.
    author: Client,
}

async fn cast(app: &TestApp) -> Cast {
    let owner_id = app.user(&["user"]).await;
    let other_id = app.user(&["user"]).await;
    let owner_token = app
        .token(json!({"name": "owner", "role": "user", "user_id": owner_id}))
        .await;
    let other_token = app
        .token(json!({"name": "other", "role": "user", "user_id": other_id}))
        .await;
    let agent_token = app
        .token(json!({"name": "bot", "role": "agent", "agent_id": "bot"}))
        .await;
    let other_agent_token = app
        .token(json!({"name": "other bot", "role": "agent", "agent_id": "other-bot"}))
        .await;
    let author_id = app.user(&["admin"]).await;
    let author_token = app
        .token(json!({"name": "author", "role": "admin", "user_id": author_id}))
        .await;
    let clients = vec![
        client_for(&app.admin_token),
        client_for(&owner_token),
        client_for(&other_token),
        client_for(&agent_token),
        client_for(&other_agent_token),
        Client::new(),
    ];
    Cast {
        owner: clients[1].clone(),
        admin: clients[0].clone(),
        author: client_for(&author_token),
        clients,
        owner_id,
        other_id,
    }
}

/// Creates the fixture's prompt under `name` (as its owner, or as the admin for the owner).
async fn create_fixture(app: &TestApp, cast: &Cast, fixture: &Fixture, name: &str) -> String {
    let mut body = json!({
        "name": name,
        "content": "Hello",
        "scope": fixture.scope,
        "classification": fixture.classification,
    });
    if fixture.scope == "agent" {
        body["agent_id"] = json!("bot");
    }
    if let Some(access) = fixture.access {
        body["access"] =
            serde_json::from_str(&access.replace("OTHER", &cast.other_id)).expect("access");
    }
    let client = if fixture.by_admin {
        body["owner_id"] = json!(cast.owner_id);
        &cast.admin
    } else {
        &cast.owner
    };
    let response = client
        .post(app.url("/api/prompts"))
        .json(&body)
        .send()
        .await
        .expect("request");
    let created = expect_json(response, StatusCode::CREATED).await;
    created["id"].as_str().expect("id").to_string()
}

/// One request of the table: its path (placeholders filled) and body, after any set-up the
/// admin does so that an allowed request can succeed.
async fn prepare(
    app: &TestApp,
    cast: &Cast,
    route: &Route,
    fixture: Option<(&Fixture, &str)>,
    serial: usize,
) -> (String, Option<Value>) {
    let admin = |method: Method, path: String, body: Value| {
        let request = cast.admin.request(method, app.url(&path)).json(&body);
        async move {
            let response = request.send().await.expect("set-up request");
            assert!(
                response.status().is_success(),
                "set-up {path}: {}",
                response.text().await.unwrap_or_default()
            );
        }
    };
    let prompt = match fixture {
        Some((fixture, _)) if route.method == "DELETE" && route.path == "/api/prompts/{id}" => {
            encode(&format!("d/{}-{serial}", fixture.key))
        }
        Some((_, name)) => encode(name),
        None => String::new(),
    };
    if let Some((fixture, _)) = fixture
        && route.method == "DELETE"
        && route.path == "/api/prompts/{id}"
    {
        create_fixture(app, cast, fixture, &format!("d/{}-{serial}", fixture.key)).await;
    }
    let path = route.path.replace("{id}", &prompt);
    match (route.method, route.path) {
        ("POST", "/api/prompts") => (
            path,
            Some(json!({"name": format!("made/{serial}"), "content": "Hi"})),
        ),
        ("PUT", "/api/prompts/{id}") => (path, Some(json!({"title": format!("title {serial}")}))),
        ("POST", "/api/prompts/{id}/version") => (
            path,
            Some(json!({"content": format!("Hello, version {serial}")})),
        ),
        ("GET", "/api/prompts/{id}/versions/{n}") => (path.replace("{n}", "1"), None),
        ("GET", "/api/prompts/{id}/versions/{n}/findings") => (path.replace("{n}", "1"), None),
        ("POST", "/api/prompts/{id}/versions/{n}/transition") => {
            // A fresh draft per cell, so every allowed cell can submit it for review.
            let response = cast
                .admin
                .post(app.url(&format!("/api/prompts/{prompt}/version")))
                .json(&json!({"content": format!("Hello, draft {serial}")}))
                .send()
                .await
                .expect("set-up version");
            let version = expect_json(response, StatusCode::CREATED).await;
            (
                path.replace("{n}", &version["version_number"].to_string()),
                Some(json!({"to": "review"})),
            )
        }
        (
            "POST",
            "/api/prompts/{id}/versions/{n}/approve" | "/api/prompts/{id}/versions/{n}/reject",
        ) => {
            // A fresh version in review per cell (written by an admin user outside the table, so
            // no principal of the table is its author), so every allowed cell can decide on it.
            let response = cast
                .author
                .post(app.url(&format!("/api/prompts/{prompt}/version")))
                .json(&json!({"content": format!("Hello, review {serial}")}))
                .send()
                .await
                .expect("set-up version");
            let version = expect_json(response, StatusCode::CREATED).await;
            let number = version["version_number"].to_string();
            admin(
                Method::POST,
                format!("/api/prompts/{prompt}/versions/{number}/transition"),
                json!({"to": "review"}),
            )
            .await;
            let body = if route.path.ends_with("approve") {
                json!({"comment": "fine"})
            } else {
                json!({"comment": "not yet"})
            };
            (path.replace("{n}", &number), Some(body))
        }
        ("GET", "/api/prompts/{id}/versions/{n}/approvals") => (path.replace("{n}", "1"), None),
        ("GET", "/api/prompts/{id}/diff") => (format!("{path}?from=1&to=1"), None),
        ("PUT", "/api/prompts/{id}/labels/{label}") => (
            path.replace("{label}", "staging"),
            Some(json!({"version": 1})),
        ),
        ("POST", "/api/prompts/{id}/labels/{label}/promote") => {
            // A fresh canary split per cell (staging is not protected), for every allowed cell
            // to promote.
            let version = admin_version(app, cast, &prompt, &format!("canary {serial}")).await;
            admin(
                Method::PUT,
                format!("/api/prompts/{prompt}/labels/staging"),
                json!({"split": [{"version": 1, "weight": 90}, {"version": version, "weight": 10}]}),
            )
            .await;
            (path.replace("{label}", "staging"), Some(json!({})))
        }
        ("POST", "/api/prompts/{id}/labels/{label}/rollback") => {
            // An approved version, then a move away from it: a rollback goes back to it.
            let version = admin_version(app, cast, &prompt, &format!("rollback {serial}")).await;
            app.approve(&prompt.replace("%2F", "/"), version).await;
            for version in [version, 1] {
                admin(
                    Method::PUT,
                    format!("/api/prompts/{prompt}/labels/staging"),
                    json!({"version": version}),
                )
                .await;
            }
            (path.replace("{label}", "staging"), None)
        }
        ("GET", "/api/resolve") => (format!("{path}?name={prompt}&label=latest"), None),
        ("POST", "/api/resolve") => (
            path,
            Some(json!({"name": prompt.replace("%2F", "/"), "label": "latest"})),
        ),
        ("POST", "/api/runs/{id}/feedback") => {
            // A run of the fixture's prompt, recorded straight into the store with no sender
            // (a render cannot make one for a prompt this deployment may not serve).
            let shown = cast
                .admin
                .get(app.url(&format!("/api/prompts/{prompt}")))
                .send()
                .await
                .expect("set-up read");
            let shown = expect_json(shown, StatusCode::OK).await;
            let run = promptvault_store::types::NewRun {
                id: uuid::Uuid::now_v7(),
                prompt_id: shown["id"].as_str().expect("id").parse().expect("uuid"),
                version_number: 1,
                classification: shown["classification"]
                    .as_str()
                    .expect("classification")
                    .parse()
                    .expect("classification word"),
                params: json!({}),
                rendered: json!("Hi"),
                sender: None,
                session_id: None,
                request_id: None,
                agent_id: None,
                deployment_model: promptvault_core::model::DeploymentModel::WebApplication,
                created_at: time::OffsetDateTime::now_utc(),
            };
            let id = run.id;
            app.database()
                .store()
                .insert_runs(vec![run])
                .await
                .expect("set-up run");
            (
                format!("/api/runs/{id}/feedback"),
                Some(json!({"success": true, "score": 1.0})),
            )
        }
        ("DELETE", "/api/prompts/{id}/labels/{label}") => {
            admin(
                Method::PUT,
                format!("/api/prompts/{prompt}/labels/staging"),
                json!({"version": 1}),
            )
            .await;
            (path.replace("{label}", "staging"), None)
        }
        ("GET", "/api/prompts/{id}/labels/{label}/history") => {
            (path.replace("{label}", "latest"), None)
        }
        ("POST", "/api/prompts/{id}/render") => (path, Some(json!({}))),
        ("PUT", "/api/prompts/{id}/tests") => (
            path,
            Some(json!({"cases": [{"name": format!("case {serial}"),
                "assertions": [{"type": "max_tokens", "max": 1000}]}]})),
        ),
        ("POST", "/api/prompts/{id}/tests/run") => (path, Some(json!({}))),
        ("POST", "/api/prompts/{id}/reviewed") => (
            path,
            Some(json!({"comment": format!("looked at it {serial}")})),
        ),
        ("POST", "/api/prompts/{id}/link") => (
            path,
            Some(json!({"capability": "summarize", "agent_id": "bot"})),
        ),
        ("DELETE", "/api/links/{link_id}") => {
            let response = cast
                .admin
                .post(app.url("/api/prompts/m%2Fglobal-internal/link"))
                .json(&json!({"capability": format!("doomed-{serial}")}))
                .send()
                .await
                .expect("link");
            let link = expect_json(response, StatusCode::OK).await;
            (
                path.replace("{link_id}", link["id"].as_str().expect("link id")),
                None,
            )
        }
        ("POST", "/api/prompt-types") => (
            path,
            Some(json!({"key": format!("made-{serial}"), "name": "Made"})),
        ),
        ("GET" | "PUT", "/api/prompt-types/{key}") => (
            path.replace("{key}", "shared"),
            Some(json!({"name": "Shared"})),
        ),
        ("DELETE", "/api/prompt-types/{key}") => {
            let key = format!("doomed-{serial}");
            admin(
                Method::POST,
                "/api/prompt-types".into(),
                json!({"key": key, "name": "Doomed"}),
            )
            .await;
            (path.replace("{key}", &key), None)
        }
        ("POST", "/api/import") => (
            path,
            Some(json!({"format": "promptvault.bundle/v1", "prompts": [{
                "name": "imported/one",
                "versions": [{"version_number": 1, "content": "Imported"}],
            }]})),
        ),
        ("POST", "/api/users") => (path, Some(json!({"roles": ["user"]}))),
        ("GET", "/api/users/{user_id}") => (path.replace("{user_id}", &cast.owner_id), None),
        ("PUT", "/api/users/{user_id}") => (
            path.replace("{user_id}", &cast.other_id),
            Some(json!({"first_name": format!("Other {serial}")})),
        ),
        ("DELETE", "/api/users/{user_id}") => {
            let user = app.user(&["user"]).await;
            (path.replace("{user_id}", &user), None)
        }
        ("POST", "/api/tokens") => (
            path,
            Some(json!({"name": format!("made {serial}"), "role": "agent"})),
        ),
        ("DELETE", "/api/tokens/{token_id}") => {
            let created = expect_json(
                app.post("/api/tokens", &json!({"name": "doomed", "role": "agent"}))
                    .await,
                StatusCode::CREATED,
            )
            .await;
            (
                path.replace("{token_id}", created["id"].as_str().expect("token id")),
                None,
            )
        }
        _ => (path, None),
    }
}

/// A new version of the prompt (encoded name `prompt`) made by the admin; its number.
async fn admin_version(app: &TestApp, cast: &Cast, prompt: &str, content: &str) -> i64 {
    let response = cast
        .admin
        .post(app.url(&format!("/api/prompts/{prompt}/version")))
        .json(&json!({ "content": content }))
        .send()
        .await
        .expect("set-up version");
    expect_json(response, StatusCode::CREATED).await["version_number"]
        .as_i64()
        .expect("version number")
}

/// The operations of the OpenAPI document, as `METHOD path`.
async fn documented_operations(app: &TestApp) -> BTreeSet<String> {
    let document = expect_json(app.get("/api/openapi.json").await, StatusCode::OK).await;
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if matches!(
                method.as_str(),
                "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
            ) {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

async fn every_route_answers_every_principal_as_the_access_table_says(app: TestApp) {
    // Anonymous cells are failed authentications: let them all through the per-address limit.
    let app = app
        .reconfigured(|settings| settings.auth.max_failures_per_minute = u32::MAX)
        .await;

    let documented = documented_operations(&app).await;
    let tabled: BTreeSet<String> = ROUTES
        .iter()
        .map(|route| format!("{} {}", route.method, route.path))
        .collect();
    let untabled: Vec<&String> = documented.difference(&tabled).collect();
    assert!(
        untabled.is_empty(),
        "routes of the OpenAPI document without an expectation in ROUTES: {untabled:?}"
    );
    let undocumented: Vec<&String> = tabled.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "ROUTES names operations the OpenAPI document does not have: {undocumented:?}"
    );

    let cast = cast(&app).await;
    expect_json(
        app.post(
            "/api/prompt-types",
            &json!({"key": "shared", "name": "Shared"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let mut ids = BTreeMap::new();
    for fixture in FIXTURES {
        let name = format!("m/{}", fixture.key);
        ids.insert(
            fixture.key,
            create_fixture(&app, &cast, fixture, &name).await,
        );
    }

    let started = std::time::Instant::now();
    let mut cells = 0usize;
    let mut mismatches = Vec::new();
    for route in ROUTES {
        let fixtures: Vec<Option<&Fixture>> = if route.target == Target::None {
            vec![None]
        } else {
            FIXTURES.iter().map(Some).collect()
        };
        for fixture in fixtures {
            for (principal, letter) in PRINCIPALS.iter().enumerate() {
                cells += 1;
                let name = fixture.map(|fixture| format!("m/{}", fixture.key));
                let (path, body) =
                    prepare(&app, &cast, route, fixture.zip(name.as_deref()), cells).await;
                let method = Method::from_bytes(route.method.as_bytes()).expect("method");
                let mut request = cast.clients[principal].request(method, app.url(&path));
                if let Some(body) = &body {
                    request = request.json(body);
                }
                let response = request.send().await.expect("request");
                let status = response.status();
                let want = expected(route, principal, fixture);
                let fine = match want {
                    Ok(()) => status.is_success(),
                    Err(want) => status == want,
                };
                if !fine {
                    let text = response.text().await.unwrap_or_default();
                    mismatches.push(format!(
                        "{} {} [{}] as {letter}: expected {}, got {status}: {text}",
                        route.method,
                        path,
                        fixture.map_or("-", |fixture| fixture.key),
                        want.map_or_else(|status| status.to_string(), |()| "2xx".into()),
                    ));
                }
            }
        }
    }
    println!(
        "access table: {cells} cells ({} routes × {} principals, prompt routes × {} prompts) in {:?}",
        ROUTES.len(),
        PRINCIPALS.len(),
        FIXTURES.len(),
        started.elapsed()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ from the table:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    lists_show_exactly_the_visible_prompts(&app, &cast, &ids).await;
}

/// Lists, counts, exports and links never show a prompt the table hides.
async fn lists_show_exactly_the_visible_prompts(
    app: &TestApp,
    cast: &Cast,
    ids: &BTreeMap<&str, String>,
) {
    // Every fixture carries a link (the admin's cells linked each one to `summarize`).
    for (principal, letter) in PRINCIPALS.iter().enumerate().take(5) {
        let client = &cast.clients[principal];
        let want: BTreeSet<String> = FIXTURES
            .iter()
            .filter(|fixture| fixture.visible.as_bytes()[principal] != b'.')
            .map(|fixture| format!("m/{}", fixture.key))
            .collect();
        let get = |path: &str| {
            let request = client.get(app.url(path));
            async move { expect_json(request.send().await.expect("request"), StatusCode::OK).await }
        };

        let listed = get("/api/prompts?name_prefix=m/&per_page=200").await;
        let names: BTreeSet<String> = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["name"].as_str().expect("name").to_string())
            .collect();
        assert_eq!(names, want, "GET /api/prompts as {letter}");
        assert_eq!(
            listed["total"].as_u64(),
            Some(want.len() as u64),
            "total of GET /api/prompts as {letter}"
        );

        let exported = get("/api/export").await;
        let names: BTreeSet<String> = exported["prompts"]
            .as_array()
            .expect("prompts")
            .iter()
            .filter_map(|prompt| prompt["name"].as_str())
            .filter(|name| name.starts_with("m/"))
            .map(str::to_string)
            .collect();
        assert_eq!(names, want, "GET /api/export as {letter}");

        let links = get("/api/links?capability=summarize").await;
        let linked: BTreeSet<String> = links
            .as_array()
            .expect("links")
            .iter()
            .map(|link| link["prompt_id"].as_str().expect("prompt_id").to_string())
            .collect();
        let want_ids: BTreeSet<String> = FIXTURES
            .iter()
            .filter(|fixture| fixture.visible.as_bytes()[principal] != b'.')
            .map(|fixture| ids[fixture.key].clone())
            .collect();
        assert_eq!(linked, want_ids, "GET /api/links as {letter}");
    }
}

/// A 404 for a prompt the principal may not see says nothing a 404 for a missing prompt does
/// not: not its name, not that it exists.
async fn a_hidden_prompt_answers_exactly_like_a_missing_one(app: TestApp) {
    let owner = app.user(&["user"]).await;
    let owner_token = app
        .token(json!({"name": "owner", "role": "user", "user_id": owner}))
        .await;
    let stranger = app.user(&["user"]).await;
    let stranger_token = app
        .token(json!({"name": "stranger", "role": "user", "user_id": stranger}))
        .await;
    let created = expect_json(
        client_for(&owner_token)
            .post(app.url("/api/prompts"))
            .json(&json!({"name": "secret/plans", "content": "x", "scope": "user"}))
            .send()
            .await
            .expect("request"),
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let missing = uuid::Uuid::now_v7().to_string();

    let as_stranger = |path: String| {
        app.request_as(Some(&stranger_token), Method::GET, &path)
            .send()
    };
    let hidden = expect_problem(
        as_stranger(format!("/api/prompts/{id}"))
            .await
            .expect("request"),
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    let absent = expect_problem(
        as_stranger(format!("/api/prompts/{missing}"))
            .await
            .expect("request"),
        StatusCode::NOT_FOUND,
        "prompt_not_found",
    )
    .await;
    // SECURITY: addressed by id, the 404 of a hidden prompt names it ("prompt \"secret/plans\"
    // not found") where a missing one says "prompt <id> not found" (vault/guard.rs,
    // `Vault::authorize`), so anyone holding an id learns the hidden prompt's name.
    assert!(
        !hidden["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("secret/plans"),
        "the 404 of a hidden prompt reveals its name: {hidden}"
    );
    assert_eq!(
        hidden["detail"]
            .as_str()
            .map(|detail| detail.replace(id, "ID")),
        absent["detail"]
            .as_str()
            .map(|detail| detail.replace(&missing, "ID")),
    );

    // By name, both are the same answer.
    let hidden = as_stranger("/api/prompts/secret%2Fplans".into())
        .await
        .expect("request");
    let hidden = expect_problem(hidden, StatusCode::NOT_FOUND, "prompt_not_found").await;
    let absent = as_stranger("/api/prompts/secret%2Fother".into())
        .await
        .expect("request");
    let absent = expect_problem(absent, StatusCode::NOT_FOUND, "prompt_not_found").await;
    assert_eq!(
        hidden["detail"]
            .as_str()
            .map(|detail| detail.replace("plans", "X")),
        absent["detail"]
            .as_str()
            .map(|detail| detail.replace("other", "X")),
    );
}
