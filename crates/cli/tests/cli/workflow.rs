//! The everyday workflow, in local mode and against a server: create → version → label →
//! render (text and chat) → diff → show → list, plus links and label history.

use serde_json::json;

use crate::support::Vault;

const SCHEMA: &str =
    r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#;

fn create_version_label_render_diff_show_list(vault: &Vault) {
    let created = vault.ok(&[
        "create",
        "support/summarize",
        "--content",
        "Hello {{ name }}",
        "--schema",
        SCHEMA,
        "--title",
        "Summarize a ticket",
        "--tag",
        "support",
        "--label",
        "staging",
    ]);
    assert!(
        created.starts_with("created support/summarize: version 1 (1.0.0)\n"),
        "{created}"
    );

    let added = vault.ok(&[
        "version",
        "support/summarize",
        "--content",
        "Hi {{ name }}!",
        "--notes",
        "shorter greeting",
    ]);
    assert_eq!(added, "created version 2 (1.0.1) of support/summarize\n");
    let same = vault.ok(&[
        "version",
        "support/summarize",
        "--content",
        "Hi {{ name }}!",
    ]);
    assert!(
        same.starts_with("unchanged: identical to the latest version 2 (1.0.1)"),
        "{same}"
    );

    let labelled = vault.ok(&["label", "support/summarize", "live", "1"]);
    assert_eq!(
        labelled,
        "live of support/summarize now points at version 1\n"
    );

    assert_eq!(
        vault.ok(&[
            "render",
            "support/summarize",
            "--label",
            "live",
            "--param",
            "name=Ada"
        ]),
        "Hello Ada\n"
    );
    assert_eq!(
        vault.ok(&[
            "render",
            "support/summarize",
            "--label",
            "latest",
            "--param",
            "name=Ada"
        ]),
        "Hi Ada!\n"
    );
    let rendered = vault.json(&[
        "render",
        "support/summarize",
        "--version",
        "2",
        "--param",
        "name=Ada",
    ]);
    assert_eq!(rendered["version_number"], 2);
    assert_eq!(rendered["semver"], "1.0.1");
    assert_eq!(rendered["rendered"], "Hi Ada!");

    let diff = vault.ok(&["diff", "support/summarize"]);
    assert!(
        diff.starts_with("=== content (v1 → v2) ===\n--- v1\n+++ v2\n"),
        "{diff}"
    );
    assert!(diff.contains("\n-Hello {{ name }}\n"), "{diff}");
    assert!(diff.contains("\n+Hi {{ name }}!\n"), "{diff}");
    assert!(
        !diff.contains("config"),
        "unchanged sections are skipped: {diff}"
    );
    assert!(
        !diff.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let words = vault.ok(&[
        "diff",
        "support/summarize",
        "--from",
        "1",
        "--to",
        "2",
        "--word",
    ]);
    assert!(words.contains("[-Hello-]{+Hi+}"), "{words}");

    let shown = vault.ok(&["show", "support/summarize"]);
    assert!(
        shown.contains("title:           Summarize a ticket\n"),
        "{shown}"
    );
    assert!(
        shown.contains("\nVERSION  SEMVER  STATUS  LABELS"),
        "{shown}"
    );
    let v1_row = shown
        .lines()
        .find(|line| line.starts_with("1 "))
        .expect("a row for version 1");
    assert!(v1_row.contains("live,staging"), "{v1_row}");
    let content = vault.ok(&["show", "support/summarize", "--label", "live"]);
    assert!(
        content.contains("--- content ---\nHello {{ name }}\n"),
        "{content}"
    );
    assert!(content.contains("--- parameter_schema ---\n"), "{content}");
    let version = vault.json(&["show", "support/summarize", "--version", "2"]);
    assert_eq!(version["notes"], "shorter greeting");
    let prompt = vault.json(&["show", "support/summarize"]);
    assert_eq!(
        prompt["labels"],
        json!({"latest": 2, "live": 1, "staging": 1})
    );
    assert_eq!(prompt["versions"].as_array().map(Vec::len), Some(2));

    let listed = vault.ok(&["list"]);
    assert!(listed.starts_with("NAME "), "{listed}");
    assert!(listed.contains("support/summarize  text"), "{listed}");
    assert!(listed.ends_with("1 of 1 prompt(s)\n"), "{listed}");
    let page = vault.json(&["list", "--tag", "support", "--label", "live"]);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "support/summarize");
    assert_eq!(vault.json(&["list", "--name-prefix", "other/"])["total"], 0);

    vault.ok(&["label", "support/summarize", "staging", "--delete"]);
    let history = vault.json(&["label", "support/summarize", "staging", "--history"]);
    let moves: Vec<_> = history
        .as_array()
        .expect("a list")
        .iter()
        .map(|event| (event["from_version"].clone(), event["to_version"].clone()))
        .collect();
    assert_eq!(
        moves,
        vec![(json!(null), json!(1)), (json!(1), json!(null))]
    );
    assert!(
        vault.json(&["show", "support/summarize"])["labels"]
            .get("staging")
            .is_none()
    );

    let linked = vault.ok(&[
        "link",
        "support/summarize",
        "--capability",
        "summarize",
        "--agent",
        "bot-1",
        "--priority",
        "5",
    ]);
    assert_eq!(
        linked,
        "linked support/summarize to capability summarize for agent bot-1 (priority 5)\n"
    );
    let links = vault.ok(&["link", "--list", "--agent", "bot-1"]);
    assert!(
        links.starts_with("CAPABILITY  AGENT  PRIORITY  PROMPT"),
        "{links}"
    );
    assert!(
        links.contains("summarize   bot-1  5         support/summarize"),
        "{links}"
    );
}

fn chat_prompts_render_as_role_blocks(vault: &Vault) {
    let file = vault.write(
        "greet.json",
        r#"[{"role": "system", "content": "You are {{ persona }}."},
            {"role": "user", "content": "Hello {{ name }}"}]"#,
    );
    let created = vault.json(&["create", "chat/greet", "--kind", "chat", "--file", &file]);
    assert_eq!(created["kind"], "chat");
    let rendered = vault.ok(&[
        "render",
        "chat/greet",
        "--param",
        "persona=kind",
        "--param",
        "name=Ada",
    ]);
    assert_eq!(rendered, "[system]\nYou are kind.\n\n[user]\nHello Ada\n");
    let params = vault.write("params.json", r#"{"persona": "terse", "name": "Bob"}"#);
    let json = vault.json(&[
        "render",
        "chat/greet",
        "--params-file",
        &params,
        "--param",
        "name=Eve",
    ]);
    assert_eq!(
        json["rendered"],
        json!([
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hello Eve"}
        ])
    );
    // A new chat version is read as a JSON list because the prompt is a chat prompt.
    let next = vault.write(
        "greet2.json",
        r#"[{"role": "user", "content": "Hey {{ name }}"}]"#,
    );
    let added = vault.json(&["version", "chat/greet", "--file", &next, "--bump", "major"]);
    assert_eq!(added["created"], true);
    assert_eq!(added["semver"], "2.0.0");
}

#[test]
fn the_workflow_works_on_the_local_database() {
    let vault = Vault::local();
    create_version_label_render_diff_show_list(&vault);
}

#[test]
fn the_workflow_works_against_a_server() {
    let vault = Vault::remote();
    create_version_label_render_diff_show_list(&vault);
}

#[test]
fn chat_prompts_render_locally() {
    chat_prompts_render_as_role_blocks(&Vault::local());
}

#[test]
fn chat_prompts_render_through_a_server() {
    chat_prompts_render_as_role_blocks(&Vault::remote());
}

#[test]
fn content_can_come_from_stdin() {
    let vault = Vault::local();
    let run = vault.run_with_stdin(
        &["create", "from/stdin", "--file", "-"],
        Some("Piped {{ thing }}\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        vault.ok(&["render", "from/stdin", "--param", "thing=in"]),
        "Piped in\n"
    );
}

#[test]
fn lenient_rendering_leaves_undefined_variables_empty() {
    let vault = Vault::local();
    vault.ok(&["create", "lenient", "--content", "A{{ missing }}B"]);
    let strict = vault.fail(&["render", "lenient"]);
    assert_eq!(strict.code, 4, "{}", strict.stderr);
    assert_eq!(vault.ok(&["render", "lenient", "--lenient"]), "AB\n");
}

fn canary_split_then_promote_and_protected_labels(vault: &Vault) {
    vault.ok(&["create", "deploy/cli", "--content", "one"]);
    vault.ok(&["version", "deploy/cli", "--content", "two"]);
    // Versions start as drafts: production, protected by default, refuses them.
    let refused = vault.fail(&["label", "deploy/cli", "production", "1"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("(label_requires_approval)"),
        "{}",
        refused.stderr
    );
    let split = vault.ok(&["label", "deploy/cli", "canary", "--split", "1=90,2=10"]);
    assert_eq!(
        split,
        "canary of deploy/cli now splits traffic: version 1 90%, version 2 10%\n"
    );
    let shown = vault.json(&["show", "deploy/cli"]);
    assert_eq!(
        shown["label_splits"]["canary"],
        json!([{"version": 1, "weight": 90}, {"version": 2, "weight": 10}])
    );
    let promoted = vault.ok(&["label", "deploy/cli", "canary", "--promote"]);
    assert_eq!(promoted, "canary of deploy/cli now points at version 2\n");
    let history = vault.json(&["label", "deploy/cli", "canary", "--history"]);
    let actions: Vec<&str> = history
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|event| event["action"].as_str())
        .collect();
    assert_eq!(actions, ["split", "promote"]);
    // No approved version in the history: nothing to roll back to.
    let rollback = vault.fail(&["label", "deploy/cli", "canary", "--rollback"]);
    assert!(
        rollback.stderr.contains("(no_rollback_target)"),
        "{}",
        rollback.stderr
    );
    let bad = vault.fail(&["label", "deploy/cli", "canary", "--split", "1=90,2"]);
    assert!(bad.stderr.contains("(invalid_split)"), "{}", bad.stderr);
}

#[test]
fn canary_labels_work_on_the_local_database() {
    canary_split_then_promote_and_protected_labels(&Vault::local());
}

#[test]
fn canary_labels_work_against_a_server() {
    canary_split_then_promote_and_protected_labels(&Vault::remote());
}
