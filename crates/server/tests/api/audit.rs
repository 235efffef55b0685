//! The audit log through HTTP (SPEC §7, issue 3): every mutation, every read of confidential or
//! restricted text, every refusal and failed login is an entry; the filters of `GET /api/audit`;
//! the hash chain names the first entry edited, deleted or inserted directly in the database;
//! retention purges behind a signed checkpoint and the rest still verifies.

use std::collections::BTreeSet;

use promptvault_core::audit::entry_hash;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, client_for, expect_json, expect_problem};

crate::on_both_backends!(
    every_mutation_is_audited_with_actor_action_and_version_hashes,
    text_reads_of_classified_prompts_refusals_and_failed_logins_are_audited,
    the_audit_list_filters_by_actor_role_prompt_action_outcome_scope_and_time,
    an_untouched_log_verifies,
    an_edited_entry_is_named_by_verify,
    a_deleted_entry_is_named_by_verify,
    an_inserted_entry_is_named_by_verify,
    retention_purges_behind_a_signed_checkpoint_and_the_rest_still_verifies,
);

/// Every entry of the log (oldest first), as the admin reads it.
async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let list = expect_json(
        app.get(&format!("/api/audit?limit=1000&{query}")).await,
        StatusCode::OK,
    )
    .await;
    list["entries"].as_array().expect("entries").clone()
}

fn actions(entries: &[Value]) -> BTreeSet<String> {
    entries
        .iter()
        .map(|entry| entry["action"].as_str().expect("action").to_string())
        .collect()
}

async fn verify(app: &TestApp) -> Value {
    expect_json(app.get("/api/audit/verify").await, StatusCode::OK).await
}

/// An admin user with a token, so that entries name a user as their actor.
async fn admin_user(app: &TestApp) -> (String, reqwest::Client) {
    let id = app.user(&["admin"]).await;
    let token = app
        .token(json!({"name": "admin user", "role": "admin", "user_id": id}))
        .await;
    (id, client_for(&token))
}

async fn send(
    client: &reqwest::Client,
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}

async fn every_mutation_is_audited_with_actor_action_and_version_hashes(app: TestApp) {
    let (admin_id, admin) = admin_user(&app).await;
    let first_seq = entries(&app, "").await.len();
    let ok = |response: reqwest::Response| async move {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
    };
    let created = ok(send(
        &admin,
        &app,
        Method::POST,
        "/api/prompts",
        Some(json!({"name": "audited/one", "content": "One"})),
    )
    .await)
    .await;
    let first_hash = created["versions"][0]["diff_hash"].clone();
    let version = ok(send(
        &admin,
        &app,
        Method::POST,
        "/api/prompts/audited%2Fone/version",
        Some(json!({"content": "Two"})),
    )
    .await)
    .await;
    let steps: Vec<(Method, &str, Option<Value>)> = vec![
        (
            Method::PUT,
            "/api/prompts/audited%2Fone",
            Some(json!({"title": "T"})),
        ),
        (
            Method::PUT,
            "/api/prompts/audited%2Fone/labels/staging",
            Some(json!({"version": 1})),
        ),
        (
            Method::DELETE,
            "/api/prompts/audited%2Fone/labels/staging",
            None,
        ),
        (
            Method::POST,
            "/api/prompt-types",
            Some(json!({"key": "kind", "name": "Kind"})),
        ),
        (
            Method::PUT,
            "/api/prompt-types/kind",
            Some(json!({"name": "Kind 2"})),
        ),
        (Method::DELETE, "/api/prompt-types/kind", None),
        (
            Method::POST,
            "/api/import",
            Some(json!({"format": "promptvault.bundle/v1", "prompts": [{
                "name": "audited/imported",
                "versions": [{"version_number": 1, "content": "I"}],
            }]})),
        ),
    ];
    for (method, path, body) in steps {
        ok(send(&admin, &app, method, path, body).await).await;
    }
    let link = ok(send(
        &admin,
        &app,
        Method::POST,
        "/api/prompts/audited%2Fone/link",
        Some(json!({"capability": "cap"})),
    )
    .await)
    .await;
    let link_id = link["id"].as_str().expect("link id").to_string();
    ok(send(
        &admin,
        &app,
        Method::DELETE,
        &format!("/api/links/{link_id}"),
        None,
    )
    .await)
    .await;
    let user = ok(send(
        &admin,
        &app,
        Method::POST,
        "/api/users",
        Some(json!({"roles": ["user"]})),
    )
    .await)
    .await;
    let user_id = user["id"].as_str().expect("user id").to_string();
    ok(send(
        &admin,
        &app,
        Method::PUT,
        &format!("/api/users/{user_id}"),
        Some(json!({"first_name": "Ada"})),
    )
    .await)
    .await;
    let token = ok(send(
        &admin,
        &app,
        Method::POST,
        "/api/tokens",
        Some(json!({"name": "t", "role": "agent"})),
    )
    .await)
    .await;
    let token_id = token["id"].as_str().expect("token id").to_string();
    for path in [
        format!("/api/tokens/{token_id}"),
        format!("/api/users/{user_id}"),
        "/api/prompts/audited%2Fone".to_string(),
    ] {
        ok(send(&admin, &app, Method::DELETE, &path, None).await).await;
    }

    let log = entries(&app, "").await;
    let mine: Vec<&Value> = log.iter().skip(first_seq).collect();
    let expected = [
        "prompt.create",
        "version.create",
        "prompt.update",
        "label.set",
        "label.remove",
        "prompt_type.create",
        "prompt_type.update",
        "prompt_type.delete",
        "bundle.import",
        "link.set",
        "link.delete",
        "user.create",
        "user.update",
        "token.create",
        "token.revoke",
        "user.delete",
        "prompt.delete",
    ];
    let got: Vec<&str> = mine
        .iter()
        .map(|entry| entry["action"].as_str().expect("action"))
        .filter(|action| *action != "prompt.read_text")
        .collect();
    for action in expected {
        assert!(got.contains(&action), "{action} is not audited: {got:?}");
    }
    for entry in &mine {
        assert_eq!(entry["actor_id"], admin_id.as_str(), "{entry}");
        assert_eq!(entry["actor_role"], "admin", "{entry}");
        assert_eq!(entry["actor_kind"], "user", "{entry}");
        assert_eq!(entry["outcome"], "ok", "{entry}");
        assert_eq!(entry["source"], "127.0.0.1", "{entry}");
        assert!(
            entry["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{entry}"
        );
        assert!(
            entry["at"].is_string() && entry["hash"].is_string(),
            "{entry}"
        );
    }
    let find = |action: &str| {
        mine.iter()
            .find(|entry| entry["action"] == action)
            .copied()
            .unwrap_or_else(|| panic!("no {action}"))
    };
    let create = find("prompt.create");
    assert_eq!(create["prompt_name"], "audited/one");
    assert_eq!(create["before_hash"], Value::Null);
    assert_eq!(create["after_hash"], first_hash);
    let added = find("version.create");
    assert_eq!(added["before_hash"], first_hash);
    assert_eq!(added["after_hash"], version["diff_hash"]);
    assert_ne!(added["before_hash"], added["after_hash"]);
    assert_eq!(find("prompt.delete")["prompt_id"], created["id"]);
    assert_eq!(find("label.set")["detail"]["label"], "staging");
    assert_eq!(
        find("token.revoke")["detail"]["token_id"],
        token_id.as_str()
    );
    assert_eq!(verify(&app).await["ok"], true);
}

async fn text_reads_of_classified_prompts_refusals_and_failed_logins_are_audited(app: TestApp) {
    for (name, classification) in [
        ("read/public", "public"),
        ("read/internal", "internal"),
        ("read/confidential", "confidential"),
        ("read/restricted", "restricted"),
    ] {
        expect_json(
            app.post(
                "/api/prompts",
                &json!({"name": name, "content": "Text", "classification": classification}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    for name in [
        "read%2Fpublic",
        "read%2Finternal",
        "read%2Fconfidential",
        "read%2Frestricted",
    ] {
        expect_json(
            app.get(&format!("/api/prompts/{name}")).await,
            StatusCode::OK,
        )
        .await;
        expect_json(
            app.get(&format!("/api/prompts/{name}/versions/1")).await,
            StatusCode::OK,
        )
        .await;
        expect_json(
            app.post(&format!("/api/prompts/{name}/render"), &json!({}))
                .await,
            StatusCode::OK,
        )
        .await;
    }
    let reads = entries(&app, "action=prompt.read_text").await;
    let mut read: Vec<(String, String)> = reads
        .iter()
        .map(|entry| {
            (
                entry["prompt_name"].as_str().expect("name").to_string(),
                entry["detail"]["read"].as_str().expect("read").to_string(),
            )
        })
        .collect();
    read.sort();
    let mut want: Vec<(String, String)> = ["read/confidential", "read/restricted"]
        .iter()
        .flat_map(|name| {
            ["prompt", "version", "render"].map(|what| (name.to_string(), what.to_string()))
        })
        .collect();
    want.sort();
    assert_eq!(read, want, "only confidential and restricted text reads");
    assert!(
        reads
            .iter()
            .all(|entry| entry["classification"] == "confidential"
                || entry["classification"] == "restricted")
    );

    // A refusal: a user on an admin route, and on a prompt they may not see.
    let user = app.user(&["user"]).await;
    let token = app
        .token(json!({"name": "u", "role": "user", "user_id": user}))
        .await;
    let response = app
        .request_as(Some(&token), Method::GET, "/api/users")
        .send()
        .await
        .expect("request");
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app
        .request_as(Some(&token), Method::GET, "/api/prompts/read%2Frestricted")
        .send()
        .await
        .expect("request");
    expect_problem(response, StatusCode::NOT_FOUND, "prompt_not_found").await;
    let denied = entries(&app, "outcome=denied").await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    for entry in &denied {
        assert_eq!(entry["action"], "access.denied");
        assert_eq!(entry["actor_id"], user.as_str());
        assert_eq!(entry["actor_role"], "user");
    }
    assert_eq!(denied[1]["prompt_name"], "read/restricted");
    assert_eq!(denied[1]["detail"]["attempted"], "Read");

    // A failed login names neither a principal nor the credential.
    let wrong = format!("pv_{}", "0e".repeat(32));
    let response = app
        .request_as(Some(&wrong), Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let failed = entries(&app, "outcome=failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["action"], "auth.failed");
    assert_eq!(failed[0]["actor_kind"], "anonymous");
    assert_eq!(failed[0]["actor_id"], Value::Null);
    assert_eq!(failed[0]["source"], "127.0.0.1");
    assert!(!failed[0].to_string().contains(&wrong), "{}", failed[0]);
}

async fn the_audit_list_filters_by_actor_role_prompt_action_outcome_scope_and_time(app: TestApp) {
    let (admin_id, admin) = admin_user(&app).await;
    let user = app.user(&["user"]).await;
    let user_token = app
        .token(json!({"name": "u", "role": "user", "user_id": user}))
        .await;
    let user_client = client_for(&user_token);
    let mut global_id = String::new();
    for (name, scope) in [
        ("f/global", "global"),
        ("f/user", "user"),
        ("f/agent", "agent"),
    ] {
        let mut body = json!({"name": name, "content": "x", "scope": scope, "owner_id": user});
        if scope == "agent" {
            body["agent_id"] = json!("bot");
        }
        let created = expect_json(
            send(&admin, &app, Method::POST, "/api/prompts", Some(body)).await,
            StatusCode::CREATED,
        )
        .await;
        if scope == "global" {
            global_id = created["id"].as_str().expect("id").to_string();
        }
    }
    for (method, body) in [
        (Method::PUT, Some(json!({"version": 1}))),
        (Method::DELETE, None),
    ] {
        let response = send(
            &admin,
            &app,
            method,
            "/api/prompts/f%2Fglobal/labels/staging",
            body,
        )
        .await;
        assert!(response.status().is_success());
    }
    let response = send(
        &user_client,
        &app,
        Method::POST,
        "/api/prompts/f%2Fagent/version",
        Some(json!({"content": "y"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = send(&user_client, &app, Method::GET, "/api/audit", None).await;
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app
        .request_as(Some("not-a-token"), Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let all = entries(&app, "").await;
    type Check = Box<dyn Fn(&Value) -> bool>;
    let admin_for_check = admin_id.clone();
    let user_for_check = user.clone();
    let cases: Vec<(String, Check, usize)> = vec![
        (
            format!("actor={admin_id}"),
            Box::new(move |entry| entry["actor_id"] == admin_for_check.as_str()),
            5,
        ),
        (
            "actor_role=user".into(),
            Box::new(move |entry| {
                entry["actor_role"] == "user" && entry["actor_id"] == user_for_check.as_str()
            }),
            2,
        ),
        (
            "prompt=f/global".into(),
            Box::new(|entry| entry["prompt_name"] == "f/global"),
            3,
        ),
        (
            format!("prompt={global_id}"),
            Box::new(|entry| entry["prompt_name"] == "f/global"),
            3,
        ),
        (
            "action=label.".into(),
            Box::new(|entry| {
                entry["action"]
                    .as_str()
                    .is_some_and(|action| action.starts_with("label."))
            }),
            2,
        ),
        (
            "action=prompt.create".into(),
            Box::new(|entry| entry["action"] == "prompt.create"),
            3,
        ),
        (
            "outcome=denied".into(),
            Box::new(|entry| entry["outcome"] == "denied"),
            1,
        ),
        (
            "outcome=failed".into(),
            Box::new(|entry| entry["outcome"] == "failed" && entry["action"] == "auth.failed"),
            1,
        ),
        (
            "scope=agent".into(),
            Box::new(|entry| entry["prompt_scope"] == "agent"),
            2,
        ),
        ("since=7d".into(), Box::new(|_| true), all.len()),
        ("since=2999-01-01T00:00:00Z".into(), Box::new(|_| true), 0),
        ("until=2000-01-01T00:00:00Z".into(), Box::new(|_| true), 0),
        (
            "actor_role=user&scope=agent&action=version.".into(),
            Box::new(|entry| entry["action"] == "version.create"),
            1,
        ),
    ];
    for (query, check, count) in cases {
        let found = entries(&app, &query).await;
        assert_eq!(found.len(), count, "{query}: {:?}", actions(&found));
        for entry in &found {
            assert!(check(entry), "{query}: {entry}");
        }
        // Exactly the entries of the whole log that match.
        let matching = all.iter().filter(|entry| check(entry)).count();
        if !query.starts_with("since=2999") && !query.starts_with("until=") && !query.contains('&')
        {
            assert_eq!(
                matching, count,
                "{query}: the whole log has {matching} such"
            );
        }
    }
    // Paging: `after` and `next_after`.
    let page = expect_json(app.get("/api/audit?limit=2").await, StatusCode::OK).await;
    let next = page["next_after"].as_i64().expect("next_after");
    let rest = entries(&app, &format!("after={next}")).await;
    assert_eq!(rest.len() + 2, all.len(), "reading the log is not audited");
    for query in ["outcome=maybe", "since=7w", "limit=0"] {
        expect_problem(
            app.get(&format!("/api/audit?{query}")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
        )
        .await;
    }
}

/// A server with some history: prompts, versions, labels, a refusal.
async fn with_history(app: &TestApp) {
    app.create_prompt("chain/one", "One").await;
    app.add_version("chain/one", &json!({"content": "Two"}))
        .await;
    app.put(
        "/api/prompts/chain%2Fone/labels/staging",
        &json!({"version": 1}),
    )
    .await;
    app.create_prompt("chain/two", "Three").await;
    let response = app
        .request_as(None, Method::GET, "/api/prompts")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    app.delete("/api/prompts/chain%2Ftwo").await;
    assert!(entries(app, "").await.len() >= 7);
}

async fn an_untouched_log_verifies(app: TestApp) {
    let report = verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    with_history(&app).await;
    let report = verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["first_broken_seq"], Value::Null);
    let all = entries(&app, "").await;
    assert_eq!(report["checked"], all.len());
    assert_eq!(report["purged_before"], 0);
    // The head lets an operator notice later that entries were cut off the end.
    let newest = all.last().expect("entries");
    assert_eq!(report["head_seq"], newest["seq"], "{report}");
    assert_eq!(report["head_hash"], newest["hash"], "{report}");
}

async fn an_edited_entry_is_named_by_verify(app: TestApp) {
    with_history(&app).await;
    assert_eq!(verify(&app).await["ok"], true);
    let changed = app
        .database()
        .execute("UPDATE audit_log SET actor_id = 'someone-else' WHERE seq = 4")
        .await;
    assert_eq!(changed, 1);
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken_seq"], 4, "{report}");
    assert_eq!(report["checked"], 3, "{report}");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("edited")),
        "{report}"
    );
}

async fn a_deleted_entry_is_named_by_verify(app: TestApp) {
    with_history(&app).await;
    let changed = app
        .database()
        .execute("DELETE FROM audit_log WHERE seq = 5")
        .await;
    assert_eq!(changed, 1);
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken_seq"], 5, "{report}");

    // Deleting the last entry leaves a chain that still holds (a known limit of hash chains:
    // only a checkpoint or an outside copy of the head can tell); deleting the first is seen.
    let other = app.fresh().await;
    with_history(&other).await;
    other
        .database()
        .execute("DELETE FROM audit_log WHERE seq = 1")
        .await;
    let report = verify(&other).await;
    assert_eq!(report["first_broken_seq"], 1, "{report}");
}

const SHIFT_FROM_3: &str = "UPDATE audit_log SET seq = -seq WHERE seq >= 3;
     UPDATE audit_log SET seq = 1 - seq WHERE seq < 0;";

/// Inserts at seq 3 a copy of the entry now at seq 4 (the original third), claiming the action
/// `prompt.delete`, with these chain hashes.
fn forge_at_3(prev_hash: &str, hash: &str) -> String {
    format!(
        "INSERT INTO audit_log (seq, id, at_ns, actor_kind, actor_id, actor_role, action,
             outcome, prompt_id, prompt_name, prompt_scope, classification, before_hash,
             after_hash, detail, source, request_id, prev_hash, hash)
         SELECT 3, id, at_ns, actor_kind, actor_id, actor_role, 'prompt.delete', outcome,
             prompt_id, prompt_name, prompt_scope, classification, before_hash, after_hash,
             detail, source, request_id, '{prev_hash}', '{hash}'
         FROM audit_log WHERE seq = 4"
    )
}

/// A forged entry inserted at seq 3 (the later ones move up). With a made-up hash, verify names
/// the forged entry; with a hash computed exactly as the server would (the chain is not keyed),
/// the forged entry itself chains and verify names the entry after it.
async fn an_inserted_entry_is_named_by_verify(app: TestApp) {
    with_history(&app).await;
    app.database().execute(SHIFT_FROM_3).await;
    let inserted = app
        .database()
        .execute(&forge_at_3(&"0".repeat(64), &"f".repeat(64)))
        .await;
    assert_eq!(inserted, 1);
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken_seq"], 3, "{report}");

    let other = app.fresh().await;
    with_history(&other).await;
    let chain = other
        .state
        .vault
        .store()
        .audit_chain(0, 1000)
        .await
        .expect("chain");
    let mut forged = chain[2].entry.clone();
    forged.action = "prompt.delete".into();
    let prev_hash = chain[1].hash.clone();
    let hash = entry_hash(3, &prev_hash, &forged);
    other.database().execute(SHIFT_FROM_3).await;
    other
        .database()
        .execute(&forge_at_3(&prev_hash, &hash))
        .await;
    let report = verify(&other).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_broken_seq"], 4, "{report}");
    assert_eq!(report["checked"], 3, "{report}");
}

async fn retention_purges_behind_a_signed_checkpoint_and_the_rest_still_verifies(app: TestApp) {
    with_history(&app).await;
    let before = entries(&app, "").await;
    let purged = app
        .state
        .vault
        .apply_audit_retention(time::Duration::ZERO)
        .await
        .expect("retention");
    assert_eq!(purged, before.len() as i64);
    let last_seq = before.last().expect("entries")["seq"].clone();
    let report = verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["purged_before"], last_seq, "{report}");
    assert_eq!(report["checked"], 0, "{report}");
    assert!(entries(&app, "").await.is_empty());

    // New entries chain on from the checkpoint.
    app.create_prompt("after/retention", "x").await;
    let report = verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 1, "{report}");
    let after = entries(&app, "").await;
    assert_eq!(after[0]["seq"], last_seq.as_i64().expect("seq") + 1);
    assert_eq!(
        after[0]["prev_hash"],
        before.last().expect("entries")["hash"]
    );

    // A second retention moves the checkpoint; a negative age purges everything too.
    let purged = app
        .state
        .vault
        .apply_audit_retention(time::Duration::seconds(-60))
        .await
        .expect("retention");
    assert_eq!(purged, 1);
    app.create_prompt("after/second", "x").await;
    let report = verify(&app).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 1, "{report}");

    // The checkpoint is signed: changing it breaks the chain at the first entry after it.
    app.database()
        .execute("UPDATE audit_checkpoints SET purged = purged + 1")
        .await;
    let report = verify(&app).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        report["first_broken_seq"],
        after[0]["seq"].as_i64().expect("seq") + 1,
        "{report}"
    );
}
