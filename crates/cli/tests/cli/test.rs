//! `prompt test <name> [--version N | --label L]` runs a prompt's template tests (exit 4 when a
//! case fails, like `prompt check`); `prompt test <name> --set FILE` sets them from YAML or
//! JSON. Locally and through a server, with the same output.

use crate::support::Vault;

const TESTS_YAML: &str = "\
- name: greets by name
  params: {name: Ada}
  assertions:
    - {type: contains, value: 'Hello, Ada'}
    - {type: max_tokens, max: 50}
- name: stays calm
  params: {name: Ada}
  assertions:
    - {type: not_contains, value: '!'}
";

fn test_sets_runs_and_fails_on_a_failed_case(vault: &Vault) {
    vault.ok(&["create", "tests/greet", "--content", "Hello, {{ name }}."]);
    let file = vault.write("tests.yaml", TESTS_YAML);
    assert_eq!(
        vault.ok(&["test", "tests/greet", "--set", &file]),
        "set 2 test case(s) on tests/greet\n"
    );
    // Passing: a per-case report, exit 0.
    let passed = vault.ok(&["test", "tests/greet"]);
    assert_eq!(
        passed,
        "tests/greet v1: 2 of 2 test case(s) passed\n\
         PASS greets by name\n  ok   0 contains\n  ok   1 max_tokens\n\
         PASS stays calm\n  ok   0 not_contains\n"
    );
    // A version that fails: the report, then exit 4 with tests_failed.
    vault.ok(&["version", "tests/greet", "--content", "HELLO {{ name }}!"]);
    let run = vault.fail(&["test", "tests/greet"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("tests/greet v2: 0 of 2 test case(s) passed\nFAIL greets by name\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  fail 0 contains: "), "{}", run.stdout);
    assert!(run.stderr.contains("(tests_failed)"), "{}", run.stderr);
    // The failures are also the version's findings.
    let check = vault.fail(&["check", "tests/greet"]);
    assert!(check.stdout.contains("test_failed"), "{}", check.stdout);
    // --version and --json.
    let json = vault.json(&["test", "tests/greet", "--version", "1"]);
    assert_eq!(
        (&json["passed"], &json["total"]),
        (&serde_json::json!(true), &serde_json::json!(2))
    );
    // A bad file is invalid input (4) and names the problem; nothing changes.
    let bad = vault.write(
        "bad.json",
        r#"[{"name": "x", "assertions": [{"type": "regex", "pattern": "("}]}]"#,
    );
    let run = vault.fail(&["test", "tests/greet", "--set", &bad]);
    assert_eq!(run.code, 4);
    assert!(run.stderr.contains("(invalid_tests)"), "{}", run.stderr);
    assert_eq!(vault.fail(&["test", "tests/none"]).code, 3);
}

#[test]
fn test_works_on_the_local_database() {
    test_sets_runs_and_fails_on_a_failed_case(&Vault::local());
}

#[test]
fn test_works_against_a_server() {
    test_sets_runs_and_fails_on_a_failed_case(&Vault::remote());
}
