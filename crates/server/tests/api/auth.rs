//! Authentication through HTTP (SPEC §7, issue 3): JWTs (HS256 pinned: `alg: none`, a wrong
//! signature, an expired or missing `exp`, a deleted user and an RS256 token are all refused),
//! opaque tokens (revoked, expired, unknown, missing), a token's role capped by its user's,
//! credential restrictions on prompt names and scopes (lists and counts included), the
//! failed-authentication limit per address, and the security headers on every answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_json, expect_problem};

crate::on_both_backends!(
    jwts_are_accepted_only_when_signed_with_the_pinned_algorithm_and_unexpired,
    an_rs256_server_accepts_its_keys_signature_and_refuses_others_and_hs256_confusion,
    revoked_expired_unknown_and_missing_opaque_tokens_are_refused,
    a_tokens_role_is_capped_by_its_users_role,
    a_token_restricted_to_names_or_scopes_sees_only_those_prompts,
    a_restricted_token_cannot_create_prompts_outside_its_restriction,
    a_restricted_token_cannot_import_into_prompts_outside_its_restriction,
    a_restricted_admin_token_cannot_mint_an_unrestricted_token,
    too_many_failures_from_one_address_are_answered_429_but_a_valid_token_still_passes,
    every_answer_carries_the_security_headers,
);

/// The HS256 secret of the JWT-configured test servers (at least 32 bytes).
const HS256_SECRET: &str = "the hs256 secret of the test servers, long enough";

/// A throwaway RSA key: signs the RS256 token an HS256 server must refuse.
const RSA_PRIVATE_KEY: &str = r"-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAn/Vc4GlduBmMfcYvqCQ7iTasOnrqPXfpSGsl1Q7/ipkzAoih
RoKnXXzweU/L2/oaz3Gge7G0qXHEcjGkdIoR4eNfbvmbt8Ov41e9/IU5qNnqZPzw
aHJfjsnL2E8VHIR0D7FCCG7IWZhtPF3PTKL8cY2JVY/tgbPbonOeD9+yRsBzSkok
lBNc2zpb1lt60qRD4OUwOWjJgnEhO87PlXzHjyqtT2Ucn250MqFlgXupQBGeWo9P
mvTNF+Qfj62pusbeJZUChG968FENgBUn7Xy3pFfCab9/2T7ZFHmgDT9QcPHUa3zL
YGm84jAm722seAAXspJTAhBi0KIHjkmCGCCvkwIDAQABAoIBAEmEcuhtZPadP3X7
JaIo7PgWmbfTEF+qAh0Xqe6vkwF3gftTIpSOri+IodmPtElpPPNE7RaMyVTrhfda
G5S4dJmWcCFINaqTFP7vL9Gkxah2Z4V8v12x23t8AeVsC27s7Y7c0FWh3RFYvjP1
hbZaXp4uCAW8PdPT/0k9zFLNZFmhlhcYeMKLQ3Rc8DuVrMLdLZWDK73nEsf/xpT7
U806xhH3D1oJFftmQK7dYYLj+VwzMDXcNW5T5undEVu84kfkFnq/fTlYLyk5JiYN
pAAVATo3pfrUyFRRxpOAOJLWROkPOjKsQgdXGUZMdzMaK6ANsUaXqtjgz5JE5bom
NbEn4ekCgYEAy7pz4eI1Wwu0z8qzSd2iFZGelpjQlmWftoCo7LiDBzHO3yQdNa1j
eJQnElp2WvEGqHlda5q7EB6xVqUi9G0pkz72CcAak8JKQ9KXfMODx2VkF2PqjCHQ
/25MAfT6RJ/TqB/dlRVO3Tg+PzgIzqPp9156YajH1pQtDEOdolz5YD8CgYEAyP/1
z2wHwSLRS0c+oUsAoVjUr2SM34PoJZ5p2LGOupIPZWrby0S4PnAHq1yewRHr5JeZ
F5gVdCN23m3Owo4cUPh4IZ1isVW25uvVT3YmPomMkHnlngc3orenarewE68ni5ic
aPFR5C6VWKFGvVw0XyJS1DfGR2ssGi1GEKyMG60CgYBB0YIgxwk/2d9XhoA36/+y
gjI/Ky2weTKJLrXkjJPgXiockzlQnyzUxuB8oHc+WEIzacpRulKXGaNnf8B0QVQ+
OwgYDFVJyWpe0QmaCDxpzgrxN5mOHlq8OzEZLMEyLISf+3OF97Vb6RDLMdo+kFxF
S+Oz62hsncCUBsBFtU3n1wKBgQCDHa08rGz2iP7cS1JIpwN3PNoou7/FgmdqOscz
Ksg/Xk4ayzUriN1jJXNrTlTk/wrRKC8em//KreO5vwm0Ej3Yd+ztiJw7r/1K76ZL
WngiLVn7WPj3OCALzh+w1rhObuCuCFRnhJv17IlRsorRtZcYQ+yiMOvv5LJ1NPlS
oSwYVQKBgAZ/scDg3GLEbcgD+dy1dcjZB3p7hVgrIfq2rWhfZRp7Q8MPDJeqr8Yw
rmxTcEVhyJQ/3bwrI+eUlxk2tSYi2tGnUhbO881ebVfXK4qghctggwu+rfRtxDuq
dpJrzUt8i5cHEaWUg3yR/uGU+HeaIt+03jjn03TEcU+5HgkksVRR
-----END RSA PRIVATE KEY-----
";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Base64url without padding (RFC 7515), for the hand-made `alg: none` token.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let block = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let bits = u32::from(block[0]) << 16 | u32::from(block[1]) << 8 | u32::from(block[2]);
        for index in 0..=chunk.len() {
            out.push(char::from(
                ALPHABET[(bits >> (18 - 6 * index) & 63) as usize],
            ));
        }
    }
    out
}

async fn send_as(app: &TestApp, token: Option<&str>, method: Method, path: &str) -> Response {
    app.request_as(token, method, path)
        .send()
        .await
        .expect("request")
}

/// A 401 `code` problem with a `WWW-Authenticate: Bearer` challenge.
async fn expect_401(response: Response, code: &str, what: &str) {
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.starts_with("Bearer"),
        "{what}: WWW-Authenticate is {challenge:?}"
    );
    let problem = expect_problem(response, StatusCode::UNAUTHORIZED, code).await;
    assert!(
        problem.to_string().len() < 1000,
        "{what}: the problem stays short: {problem}"
    );
}

async fn jwts_are_accepted_only_when_signed_with_the_pinned_algorithm_and_unexpired(app: TestApp) {
    let app = app
        .reconfigured(|settings| {
            settings.auth.jwt_hs256_secret =
                Some(promptvault_server::settings::Secret(HS256_SECRET.into()));
        })
        .await;
    let user = app.user(&["user"]).await;
    let doomed = app.user(&["user"]).await;
    let valid = hs256(&json!({"sub": user, "exp": now() + 600}), HS256_SECRET);
    let response = send_as(&app, Some(&valid), Method::GET, "/api/prompts").await;
    expect_json(response, StatusCode::OK).await;
    // A user's JWT acts as that user: a user may not list users.
    let response = send_as(&app, Some(&valid), Method::GET, "/api/users").await;
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;

    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = base64url(
        json!({"sub": user, "exp": now() + 600})
            .to_string()
            .as_bytes(),
    );
    let for_deleted = hs256(&json!({"sub": doomed, "exp": now() + 600}), HS256_SECRET);
    let response = app.delete(&format!("/api/users/{doomed}")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": user, "exp": now() + 600}),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE_KEY.as_bytes()).expect("RSA key"),
    )
    .expect("sign");
    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
    let refused = [
        ("alg none", format!("{header}.{claims}.")),
        (
            "wrong signature",
            hs256(
                &json!({"sub": user, "exp": now() + 600}),
                "another secret, just as long as the right one",
            ),
        ),
        ("tampered signature", tampered),
        (
            "expired exp",
            hs256(&json!({"sub": user, "exp": now() - 3600}), HS256_SECRET),
        ),
        ("missing exp", hs256(&json!({"sub": user}), HS256_SECRET)),
        ("deleted user", for_deleted),
        (
            "unknown user",
            hs256(
                &json!({"sub": uuid::Uuid::now_v7(), "exp": now() + 600}),
                HS256_SECRET,
            ),
        ),
        (
            "sub not a user id",
            hs256(&json!({"sub": "root", "exp": now() + 600}), HS256_SECRET),
        ),
        ("RS256 on an HS256 server", rs256),
        ("not a JWT", "garbage".to_string()),
    ];
    for (what, token) in refused {
        let response = send_as(&app, Some(&token), Method::GET, "/api/prompts").await;
        expect_401(response, "invalid_credentials", what).await;
    }
}

async fn revoked_expired_unknown_and_missing_opaque_tokens_are_refused(app: TestApp) {
    let revoked = expect_json(
        app.post("/api/tokens", &json!({"name": "revoked", "role": "user"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let secret = revoked["token"].as_str().expect("secret");
    let response = send_as(&app, Some(secret), Method::GET, "/api/prompts").await;
    expect_json(response, StatusCode::OK).await;
    let id = revoked["id"].as_str().expect("id");
    let answer = expect_json(
        app.delete(&format!("/api/tokens/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert!(answer["revoked_at"].is_string(), "{answer}");
    assert!(answer.get("token").is_none(), "the secret is shown once");
    let response = send_as(&app, Some(secret), Method::GET, "/api/prompts").await;
    expect_401(response, "invalid_credentials", "revoked").await;

    let short = app
        .token(json!({"name": "short", "role": "user", "expires_in": 1}))
        .await;
    let response = send_as(&app, Some(&short), Method::GET, "/api/prompts").await;
    expect_json(response, StatusCode::OK).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = send_as(&app, Some(&short), Method::GET, "/api/prompts").await;
    expect_401(response, "invalid_credentials", "expired").await;

    let unknown = format!("pv_{}", "0f".repeat(32));
    let response = send_as(&app, Some(&unknown), Method::GET, "/api/prompts").await;
    expect_401(response, "invalid_credentials", "unknown").await;

    let response = send_as(&app, None, Method::GET, "/api/prompts").await;
    expect_401(response, "unauthenticated", "missing").await;
    let response = app
        .request_as(None, Method::GET, "/api/prompts")
        .header("authorization", format!("Basic {unknown}"))
        .send()
        .await
        .expect("request");
    expect_401(response, "invalid_credentials", "not a bearer").await;

    // Only the hash is kept: the list of tokens never shows a secret.
    let tokens = expect_json(app.get("/api/tokens").await, StatusCode::OK).await;
    assert!(
        tokens
            .as_array()
            .expect("tokens")
            .iter()
            .all(|token| token.get("token").is_none()),
        "{tokens}"
    );
    assert!(!tokens.to_string().contains(&short), "{tokens}");
}

async fn a_tokens_role_is_capped_by_its_users_role(app: TestApp) {
    let agent_user = app.user(&["agent"]).await;
    let inflated = app
        .token(json!({"name": "inflated", "role": "admin", "user_id": agent_user}))
        .await;
    let response = send_as(&app, Some(&inflated), Method::GET, "/api/users").await;
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app
        .request_as(Some(&inflated), Method::POST, "/api/prompts")
        .json(&json!({"name": "by/agent", "content": "x"}))
        .send()
        .await
        .expect("request");
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = send_as(&app, Some(&inflated), Method::GET, "/api/prompts").await;
    expect_json(response, StatusCode::OK).await;

    // A user's admin token is a user's; an admin's agent token is an agent's.
    let user = app.user(&["user"]).await;
    let user_admin = app
        .token(json!({"name": "user admin", "role": "admin", "user_id": user}))
        .await;
    let response = send_as(&app, Some(&user_admin), Method::GET, "/api/tokens").await;
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let admin = app.user(&["admin"]).await;
    let admin_agent = app
        .token(json!({"name": "admin agent", "role": "agent", "user_id": admin}))
        .await;
    let response = app
        .request_as(Some(&admin_agent), Method::POST, "/api/prompts")
        .json(&json!({"name": "by/admin-agent", "content": "x"}))
        .send()
        .await
        .expect("request");
    expect_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let admin_admin = app
        .token(json!({"name": "admin admin", "role": "admin", "user_id": admin}))
        .await;
    let response = send_as(&app, Some(&admin_admin), Method::GET, "/api/tokens").await;
    expect_json(response, StatusCode::OK).await;
}

/// The names a credential lists (under `prefix`), with the list's total.
async fn listed(app: &TestApp, token: &str, query: &str) -> (Vec<String>, u64) {
    let response = send_as(
        app,
        Some(token),
        Method::GET,
        &format!("/api/prompts?{query}"),
    )
    .await;
    let list = expect_json(response, StatusCode::OK).await;
    let names = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().expect("name").to_string())
        .collect();
    (names, list["total"].as_u64().expect("total"))
}

async fn a_token_restricted_to_names_or_scopes_sees_only_those_prompts(app: TestApp) {
    for (name, scope) in [
        ("team/a", "global"),
        ("team/b", "agent"),
        ("other/c", "global"),
        ("other/d", "agent"),
        ("teamwork/e", "global"),
    ] {
        let mut body = json!({"name": name, "content": "x", "scope": scope});
        if scope == "agent" {
            body["agent_id"] = json!("bot");
        }
        expect_json(app.post("/api/prompts", &body).await, StatusCode::CREATED).await;
    }
    let by_name = app
        .token(json!({"name": "team", "role": "admin", "prompt_names": ["team/"]}))
        .await;
    let by_scope = app
        .token(json!({"name": "agents", "role": "admin", "scopes": ["agent"]}))
        .await;
    let both = app
        .token(json!({"name": "both", "role": "admin", "scopes": ["global"], "prompt_names": ["team/", "other/"]}))
        .await;
    let cases = [
        (&by_name, vec!["team/a", "team/b"]),
        (&by_scope, vec!["other/d", "team/b"]),
        (&both, vec!["other/c", "team/a"]),
    ];
    for (token, want) in cases {
        let (names, total) = listed(&app, token, "per_page=200").await;
        assert_eq!(names, want);
        assert_eq!(total, want.len() as u64, "the total counts only those");
        // Paging and filters do not widen it.
        let (names, total) = listed(&app, token, "per_page=1&page=2").await;
        assert_eq!((names.len() as u64, total), (1, want.len() as u64));
        let (names, _) = listed(&app, token, "name_prefix=teamwork").await;
        assert!(names.is_empty(), "{names:?}");
        for hidden in ["team/a", "team/b", "other/c", "other/d", "teamwork/e"] {
            if want.contains(&hidden) {
                continue;
            }
            let path = format!("/api/prompts/{}", hidden.replace('/', "%2F"));
            let response = send_as(&app, Some(token), Method::GET, &path).await;
            expect_problem(response, StatusCode::NOT_FOUND, "prompt_not_found").await;
            let response = app
                .request_as(Some(token), Method::POST, &format!("{path}/render"))
                .json(&json!({}))
                .send()
                .await
                .expect("request");
            expect_problem(response, StatusCode::NOT_FOUND, "prompt_not_found").await;
        }
        let exported = expect_json(
            send_as(&app, Some(token), Method::GET, "/api/export").await,
            StatusCode::OK,
        )
        .await;
        let mut names: Vec<&str> = exported["prompts"]
            .as_array()
            .expect("prompts")
            .iter()
            .filter_map(|prompt| prompt["name"].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, want, "export");
    }
}

/// SECURITY: a credential restricted to `team/` creates prompts anywhere (`Vault::create_prompt`
/// never looks at the credential's restriction).
async fn a_restricted_token_cannot_create_prompts_outside_its_restriction(app: TestApp) {
    let user = app.user(&["user"]).await;
    let team = app
        .token(json!({"name": "team", "role": "user", "user_id": user, "prompt_names": ["team/"], "scopes": ["global"]}))
        .await;
    let create = |body: Value| {
        app.request_as(Some(&team), Method::POST, "/api/prompts")
            .json(&body)
            .send()
    };
    let response = create(json!({"name": "team/inside", "content": "x"}))
        .await
        .expect("request");
    expect_json(response, StatusCode::CREATED).await;
    for body in [
        json!({"name": "elsewhere/outside", "content": "x"}),
        json!({"name": "team/agent-scope", "content": "x", "scope": "agent", "agent_id": "bot"}),
    ] {
        let response = create(body.clone()).await.expect("request");
        let status = response.status();
        assert!(
            !status.is_success(),
            "a credential restricted to team/ and global created {body}: {status}"
        );
    }
    let all = expect_json(app.get("/api/prompts").await, StatusCode::OK).await;
    assert_eq!(all["total"], 1, "{all}");
}

/// SECURITY: an admin credential restricted to `team/` adds versions to any prompt through an
/// import (`Vault::import` only asks for the admin role).
async fn a_restricted_token_cannot_import_into_prompts_outside_its_restriction(app: TestApp) {
    app.create_prompt("other/target", "Original").await;
    let team = app
        .token(json!({"name": "team", "role": "admin", "prompt_names": ["team/"]}))
        .await;
    let bundle = json!({"format": "promptvault.bundle/v1", "prompts": [{
        "name": "other/target",
        "versions": [{"version_number": 1, "content": "Overwritten by team"}],
    }]});
    let response = app
        .request_as(Some(&team), Method::POST, "/api/import")
        .json(&bundle)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let target = expect_json(app.get("/api/prompts/other%2Ftarget").await, StatusCode::OK).await;
    assert_eq!(
        target["versions"].as_array().map(Vec::len),
        Some(1),
        "an import by a credential restricted to team/ ({status}) wrote other/target: {target}"
    );
    assert!(!status.is_success(), "{status}");
}

/// SECURITY: an admin credential restricted to some prompts mints an unrestricted admin token,
/// and so escapes its restriction (`Vault::create_token` only asks for the admin role).
async fn a_restricted_admin_token_cannot_mint_an_unrestricted_token(app: TestApp) {
    let team = app
        .token(json!({"name": "team", "role": "admin", "prompt_names": ["team/"]}))
        .await;
    let response = app
        .request_as(Some(&team), Method::POST, "/api/tokens")
        .json(&json!({"name": "escape", "role": "admin"}))
        .send()
        .await
        .expect("request");
    let status = response.status();
    assert!(
        !status.is_success(),
        "a credential restricted to team/ minted an unrestricted admin token ({status})"
    );
}

async fn too_many_failures_from_one_address_are_answered_429_but_a_valid_token_still_passes(
    app: TestApp,
) {
    let app = app
        .reconfigured(|settings| settings.auth.max_failures_per_minute = 3)
        .await;
    let wrong = format!("pv_{}", "0f".repeat(32));
    for _ in 0..3 {
        let response = send_as(&app, Some(&wrong), Method::GET, "/api/prompts").await;
        expect_401(response, "invalid_credentials", "wrong token").await;
    }
    let response = send_as(&app, Some(&wrong), Method::GET, "/api/prompts").await;
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_failures").await;
    let response = send_as(&app, None, Method::GET, "/api/prompts").await;
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS, "too_many_failures").await;
    // A valid credential from the same address is not locked out.
    expect_json(app.get("/api/prompts").await, StatusCode::OK).await;
    // Health needs no credential and is never limited.
    let response = send_as(&app, None, Method::GET, "/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);

    // The failures up to the limit were audited; those past it are not, one by one.
    let failed = app
        .state
        .vault
        .store()
        .list_audit(&promptvault_store::types::AuditQuery {
            action: Some("auth.failed".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|entry| entry.entry.source.as_deref() == Some("127.0.0.1")),
        "{failed:?}"
    );
}

async fn every_answer_carries_the_security_headers(app: TestApp) {
    app.create_prompt("headers/one", "x").await;
    let user = app.user(&["user"]).await;
    let user_token = app
        .token(json!({"name": "user", "role": "user", "user_id": user}))
        .await;
    let answers = [
        ("200", app.get("/api/prompts/headers%2Fone").await),
        (
            "201",
            app.post(
                "/api/prompts",
                &json!({"name": "headers/two", "content": "x"}),
            )
            .await,
        ),
        (
            "401",
            send_as(&app, None, Method::GET, "/api/prompts").await,
        ),
        (
            "403",
            send_as(&app, Some(&user_token), Method::GET, "/api/audit").await,
        ),
        ("404", app.get("/api/prompts/headers%2Fnone").await),
        ("404 route", app.get("/api/nothing-here").await),
        ("health", send_as(&app, None, Method::GET, "/healthz").await),
        ("openapi", app.get("/api/openapi.json").await),
    ];
    for (what, response) in answers {
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|value| value.to_str().ok()),
                Some(value),
                "{what}: {name}"
            );
        }
        assert!(
            headers
                .get("content-security-policy")
                .and_then(|value| value.to_str().ok())
                .is_some_and(|policy| policy.contains("default-src 'none'")),
            "{what}: content-security-policy"
        );
    }
}

/// A fresh RSA key pair: (private key PEM, public key PEM).
fn rsa_key_pair() -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
    let private_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .expect("private PEM")
        .to_string();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public PEM");
    (private_pem, public_pem)
}

fn rs256(claims: &Value, private_pem: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA key"),
    )
    .expect("sign")
}

async fn an_rs256_server_accepts_its_keys_signature_and_refuses_others_and_hs256_confusion(
    app: TestApp,
) {
    let (private_pem, public_pem) = rsa_key_pair();
    let (other_private_pem, _) = rsa_key_pair();
    let user = app.user(&["user"]).await;
    let key_file = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key_file.path(), &public_pem).expect("write the public key");
    let path = key_file.path().to_path_buf();
    let app = app
        .reconfigured(|settings| settings.auth.jwt_rs256_public_key_file = Some(path))
        .await;

    let valid = rs256(&json!({"sub": user, "exp": now() + 600}), &private_pem);
    expect_json(
        send_as(&app, Some(&valid), Method::GET, "/api/prompts").await,
        StatusCode::OK,
    )
    .await;

    let cases = [
        (
            "signed by another key",
            rs256(
                &json!({"sub": user, "exp": now() + 600}),
                &other_private_pem,
            ),
        ),
        (
            "expired",
            rs256(&json!({"sub": user, "exp": now() - 3600}), &private_pem),
        ),
        // Algorithm confusion: an HS256 token whose secret is the server's public key.
        (
            "HS256 signed with the public key",
            hs256(&json!({"sub": user, "exp": now() + 600}), &public_pem),
        ),
    ];
    for (what, token) in cases {
        expect_401(
            send_as(&app, Some(&token), Method::GET, "/api/prompts").await,
            "invalid_credentials",
            what,
        )
        .await;
    }
}
