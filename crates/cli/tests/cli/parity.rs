//! The same commands give the same `--json` output on the local database and through a server
//! (after removing ids and timestamps, which differ between any two databases), and the same
//! human output where it carries no timestamps.

use serde_json::Value;

use crate::support::{Vault, without_ids_and_times};

/// Every command of the session, in order, each with `--json`.
fn session(vault: &Vault) -> Vec<Value> {
    let chat = vault.write(
        "chat.json",
        r#"[{"role": "system", "content": "Be {{ tone }}."}, {"role": "user", "content": "{{ question }}"}]"#,
    );
    let schema = r#"{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}"#;
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "create",
            "team/summarize",
            "--content",
            "Summarize {{ text }}",
            "--schema",
            schema,
            "--tag",
            "a",
            "--tag",
            "b",
            "--classification",
            "public",
        ],
        vec![
            "version",
            "team/summarize",
            "--content",
            "Summarize {{ text }} in one line",
            "--notes",
            "one line",
        ],
        vec![
            "version",
            "team/summarize",
            "--content",
            "Summarize {{ text }} in one line",
        ],
        vec![
            "version",
            "team/summarize",
            "--content",
            "{{ text }}: summary",
            "--bump",
            "minor",
            "--label",
            "beta",
        ],
        vec!["label", "team/summarize", "live", "2"],
        vec!["label", "team/summarize", "beta", "--delete"],
        vec!["label", "team/summarize", "beta", "--history"],
        vec![
            "create",
            "team/chat",
            "--kind",
            "chat",
            "--file",
            &chat,
            "--scope",
            "agent",
            "--agent-id",
            "bot-9",
        ],
        vec!["render", "team/summarize", "--param", "text=the news"],
        vec![
            "render",
            "team/summarize",
            "--version",
            "3",
            "--param",
            "text=the news",
        ],
        vec![
            "render",
            "team/chat",
            "--param",
            "tone=calm",
            "--param",
            "question=why?",
        ],
        vec!["diff", "team/summarize", "--from", "1", "--to", "3"],
        vec!["show", "team/summarize"],
        vec!["show", "team/summarize", "--label", "live"],
        vec!["list"],
        vec!["list", "--scope", "agent"],
        vec![
            "link",
            "team/summarize",
            "--capability",
            "summarize",
            "--priority",
            "2",
        ],
        vec![
            "link",
            "team/chat",
            "--capability",
            "summarize",
            "--agent",
            "bot-9",
        ],
        vec!["link", "--list", "--agent", "bot-9"],
        vec!["export", "--all"],
        vec!["stats", "team/summarize"],
    ];
    commands
        .iter()
        .map(|args| without_ids_and_times(vault.json(args)))
        .collect()
}

#[test]
fn the_same_commands_give_the_same_json_locally_and_through_a_server() {
    let local = session(&Vault::local());
    let remote = session(&Vault::remote());
    assert_eq!(local.len(), remote.len());
    for (index, (local, remote)) in local.iter().zip(&remote).enumerate() {
        assert_eq!(local, remote, "command #{index} differs");
    }
}

#[test]
fn errors_read_the_same_locally_and_through_a_server() {
    let local = Vault::local();
    let remote = Vault::remote();
    for vault in [&local, &remote] {
        vault.ok(&[
            "create",
            "x",
            "--content",
            "{{ a }}",
            "--schema",
            r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#,
        ]);
    }
    let cases: Vec<Vec<&str>> = vec![
        vec!["show", "missing/prompt"],
        vec!["render", "x", "--param", "a=text"],
        vec!["label", "x", "production", "5"],
        vec!["label", "x", "BAD LABEL", "1"],
        vec!["diff", "x", "--from", "1", "--to", "4"],
    ];
    for args in cases {
        let left = local.fail(&args);
        let right = remote.fail(&args);
        assert_eq!(
            (left.code, &left.stderr),
            (right.code, &right.stderr),
            "{args:?}"
        );
    }
}

#[test]
fn stats_count_the_renders_of_each_version_in_either_mode() {
    for vault in [Vault::local(), Vault::remote()] {
        vault.ok(&["create", "s/one", "--content", "Hi {{ name }}"]);
        vault.ok(&["version", "s/one", "--content", "Hello {{ name }}"]);
        for version in ["1", "2", "2"] {
            vault.ok(&[
                "render",
                "s/one",
                "--version",
                version,
                "--param",
                "name=Ann",
            ]);
        }
        let stats = vault.json(&["stats", "s/one"]);
        let used: Vec<(i64, i64)> = stats["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|version| {
                (
                    version["version_number"].as_i64().expect("number"),
                    version["times_used"].as_i64().expect("times_used"),
                )
            })
            .collect();
        assert_eq!(used, vec![(2, 2), (1, 1)], "{stats}");
        let table = vault.ok(&["stats", "s/one"]);
        assert!(table.starts_with("VERSION"), "{table}");
    }
}
