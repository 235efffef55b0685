//! `prompt user`, `prompt token`, `prompt audit` and the first-start admin token.

use std::io::{BufRead, BufReader};

use crate::support::{Server, TEST_TOKEN, Vault, prompt_command};

#[test]
fn users_tokens_and_the_audit_log_work_locally_and_through_a_server() {
    for vault in [Vault::local(), Vault::remote()] {
        let user = vault.json(&[
            "user",
            "add",
            "--email",
            "ada@example.com",
            "--role",
            "user",
            "--permission",
            "link",
        ]);
        assert_eq!(user["roles"], serde_json::json!(["user"]));
        let users = vault.json(&["user", "list"]);
        assert!(
            users
                .as_array()
                .is_some_and(|users| users.iter().any(|u| u["email"] == "ada@example.com"))
        );

        let user_id = user["id"].as_str().expect("user id");
        let token = vault.json(&[
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "user",
            "--user",
            user_id,
            "--prompt-prefix",
            "team/",
        ]);
        let secret = token["token"].as_str().expect("the secret is shown once");
        assert!(secret.starts_with("pv_"));
        let listed = vault.json(&["token", "list"]);
        assert!(
            listed
                .as_array()
                .is_some_and(|tokens| tokens.iter().all(|t| t.get("token").is_none())),
            "lists never show secrets: {listed}"
        );
        let token_id = token["id"].as_str().expect("token id");
        let revoked = vault.json(&["token", "revoke", token_id]);
        assert!(revoked["revoked_at"].is_string());

        vault.ok(&["create", "team/audited", "--content", "Hi"]);
        let entries = vault.json(&["audit", "--action", "prompt.", "--since", "1h"]);
        let actions: Vec<&str> = entries["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert_eq!(actions, vec!["prompt.create"]);
        let verified = vault.json(&["audit", "verify"]);
        assert_eq!(verified["ok"], true, "{verified}");
        assert!(vault.ok(&["audit", "verify"]).contains("intact"));
    }
}

#[test]
fn a_bad_role_is_a_usage_error_naming_the_flag() {
    let vault = Vault::local();
    let failed = vault.fail(&["token", "create", "--name", "x", "--role", "root"]);
    assert_eq!(failed.code, 4);
    assert!(failed.stderr.contains("--role"), "{}", failed.stderr);
}

#[test]
fn a_client_without_a_token_is_refused_by_the_server() {
    let server = Server::start(&[]);
    let output = prompt_command()
        .env_remove("PROMPTVAULT_TOKEN")
        .args(["--server", &server.url, "list"])
        .output()
        .expect("run prompt");
    assert_eq!(output.status.code(), Some(4), "401 is invalid input");
    assert!(String::from_utf8_lossy(&output.stderr).contains("unauthenticated"));
}

#[test]
fn serve_prints_the_first_admin_token_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data").display().to_string();
    let second_line = |data: &str| {
        let mut child = prompt_command()
            .env_remove("PROMPTVAULT_BOOTSTRAP_TOKEN")
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("first line");
        let address = first
            .trim_end()
            .strip_prefix("listening on http://")
            .expect("address")
            .to_string();
        // An answer proves the server is serving, which it starts only after printing the token
        // line (if any); then whatever it printed is in the pipe.
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        std::io::Write::write_all(&mut stream, b"GET /healthz HTTP/1.0\r\n\r\n").expect("request");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).expect("answer");
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "{answer}"
        );
        let _ = child.kill();
        let _ = child.wait();
        let mut second = String::new();
        let _ = reader.read_line(&mut second);
        second
    };
    let first_start = second_line(&data);
    assert!(
        first_start.contains("admin token") && first_start.contains("pv_"),
        "{first_start:?}"
    );
    assert!(
        !first_start.contains(TEST_TOKEN),
        "a random token when none is configured"
    );
    assert_eq!(second_line(&data), "", "only on first start");
}

#[test]
fn rotating_keys_keeps_restricted_prompts_readable_and_a_missing_key_is_a_clear_error() {
    let vault = Vault::local();
    vault.ok(&[
        "create",
        "vault/secret",
        "--content",
        "launch code 0000",
        "--classification",
        "restricted",
    ]);
    let data_dir = vault.data_dir();
    let generated =
        std::fs::read_to_string(data_dir.join("encryption.key")).expect("generated key file");
    let old = generated.trim().to_string();
    assert!(old.starts_with("k1:"), "{old}");

    let new_key = format!("k2:{}", "cd".repeat(32));
    let rotated = vault.json_with_env(
        &["keys", "rotate"],
        &[("PROMPTVAULT_ENCRYPTION_KEY", &format!("{new_key},{old}"))],
    );
    assert_eq!(rotated["reencrypted"], 1);

    let shown = vault.json_with_env(
        &["show", "vault/secret"],
        &[("PROMPTVAULT_ENCRYPTION_KEY", &new_key)],
    );
    assert_eq!(
        shown["versions"][0]["content"], "launch code 0000",
        "readable with the new key alone"
    );

    let failed = vault.run_with_env(
        &["show", "vault/secret"],
        &[("PROMPTVAULT_ENCRYPTION_KEY", &old)],
    );
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("encryption") && !failed.stdout.contains("launch code"),
        "{}",
        failed.stderr
    );
}
