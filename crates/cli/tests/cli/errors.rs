//! Failures: one line `error: <detail> (<code>)` on stderr (plus `  /pointer: message` lines),
//! nothing on stdout, and an exit code that says what kind of failure it was.

use crate::support::{Vault, prompt_command};

const SCHEMA: &str =
    r#"{"type":"object","properties":{"age":{"type":"integer","minimum":0}},"required":["age"]}"#;

fn schema_violations_and_unknown_prompts(vault: &Vault) {
    vault.ok(&[
        "create",
        "people/age",
        "--content",
        "Age {{ age }}",
        "--schema",
        SCHEMA,
    ]);

    let invalid = vault.fail(&["render", "people/age", "--param", "age=-3"]);
    assert_eq!(invalid.code, 4, "{}", invalid.stderr);
    assert!(invalid.stdout.is_empty());
    let mut lines = invalid.stderr.lines();
    let first = lines.next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{first}");
    assert!(first.ends_with(" (invalid_params)"), "{first}");
    let field = lines.next().unwrap_or_default();
    assert!(field.starts_with("  /age: "), "{}", invalid.stderr);

    let missing = vault.fail(&["show", "no/such-prompt"]);
    assert_eq!(missing.code, 3);
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    assert!(
        missing.stderr.starts_with("error: ") && missing.stderr.ends_with("(prompt_not_found)\n"),
        "{}",
        missing.stderr
    );

    let no_version = vault.fail(&["render", "people/age", "--version", "9", "--param", "age=1"]);
    assert_eq!(no_version.code, 3, "{}", no_version.stderr);

    let taken = vault.fail(&["create", "people/age", "--content", "again"]);
    assert_eq!(taken.code, 4, "{}", taken.stderr);

    let bad_name = vault.fail(&["create", "bad//name", "--content", "x"]);
    assert_eq!(bad_name.code, 4);
    assert!(
        bad_name.stderr.ends_with("(invalid_name)\n"),
        "{}",
        bad_name.stderr
    );

    let reserved = vault.fail(&["label", "people/age", "latest", "1"]);
    assert_eq!(reserved.code, 4);
    assert!(
        reserved.stderr.ends_with("(reserved_label)\n"),
        "{}",
        reserved.stderr
    );
}

#[test]
fn errors_give_one_line_and_the_right_exit_code_locally() {
    schema_violations_and_unknown_prompts(&Vault::local());
}

#[test]
fn errors_give_one_line_and_the_right_exit_code_through_a_server() {
    schema_violations_and_unknown_prompts(&Vault::remote());
}

#[test]
fn an_unreachable_server_exits_with_code_5() {
    let port = crate::support::free_port();
    let output = prompt_command()
        .args(["--server", &format!("http://127.0.0.1:{port}"), "list"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot reach the server"),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with("(server_unreachable)"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_with_code_2() {
    let output = prompt_command()
        .args(["label", "a/b", "production"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn invalid_input_files_are_refused_before_anything_is_sent() {
    let vault = Vault::local();
    let missing = vault.fail(&["create", "a", "--file", "/no/such/file.txt"]);
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert!(missing.stderr.ends_with("(unreadable_file)\n"));
    let bad_config = vault.fail(&["create", "a", "--content", "x", "--config", "{nope"]);
    assert_eq!(bad_config.code, 4);
    assert!(
        bad_config.stderr.ends_with("(invalid_json)\n"),
        "{}",
        bad_config.stderr
    );
    let bad_chat = vault.fail(&["create", "a", "--kind", "chat", "--content", "not json"]);
    assert_eq!(bad_chat.code, 4);
    assert_eq!(vault.json(&["list"])["total"], 0);
}
