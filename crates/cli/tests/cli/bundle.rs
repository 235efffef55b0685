//! Export and import: a round trip into a fresh data directory keeps prompts (archived and
//! deprecated ones too, with their status), every version (a reverted A, B, A history included),
//! labels and links — checked with `prompt show`, not only by comparing exports; importing twice
//! creates nothing the second time; an invalid bundle (or any unparsable file of a directory)
//! writes nothing.

use serde_json::{Value, json};

use crate::support::{Vault, read_json, without_ids_and_times};

/// Two text prompts and a chat prompt with several versions, labels and links.
pub fn populate(vault: &Vault) {
    vault.ok(&[
        "create",
        "support/summarize",
        "--content",
        "Summarize: {{ text }}",
        "--tag",
        "support",
        "--config",
        r#"{"model": "small", "temperature": 0.2}"#,
    ]);
    vault.ok(&[
        "version",
        "support/summarize",
        "--content",
        "Summarize briefly: {{ text }}",
        "--notes",
        "briefer",
    ]);
    vault.ok(&["label", "support/summarize", "live", "1"]);
    vault.ok(&["link", "support/summarize", "--capability", "summarize"]);
    vault.ok(&[
        "link",
        "support/summarize",
        "--capability",
        "summarize",
        "--agent",
        "bot-1",
        "--priority",
        "3",
    ]);
    vault.ok(&[
        "create",
        "greeting",
        "--content",
        "Hello {{ name }}",
        "--label",
        "staging",
    ]);
    let chat = vault.write(
        "chat.json",
        r#"[{"role": "system", "content": "Be {{ tone }}."}, {"role": "placeholder", "name": "history"}]"#,
    );
    vault.ok(&["create", "chat/helper", "--kind", "chat", "--file", &chat]);

    // A history that went back: versions A, B, A, labels on the first and the last A.
    vault.ok(&["create", "reverted", "--content", "Answer: {{ q }}"]);
    vault.ok(&[
        "version",
        "reverted",
        "--content",
        "Answer briefly: {{ q }}",
    ]);
    vault.ok(&[
        "version",
        "reverted",
        "--content",
        "Answer: {{ q }}",
        "--notes",
        "revert",
    ]);
    vault.ok(&["label", "reverted", "live", "3"]);
    vault.ok(&["label", "reverted", "stable", "1"]);

    vault.ok(&["create", "old/archived", "--content", "Old {{ x }}"]);
    vault.set_status("old/archived", "archived");
    vault.ok(&[
        "create",
        "old/deprecated",
        "--content",
        "Deprecated {{ x }}",
        "--label",
        "staging",
    ]);
    vault.set_status("old/deprecated", "deprecated");
}

/// Every prompt `populate` makes.
const PROMPTS: &[&str] = &[
    "chat/helper",
    "greeting",
    "old/archived",
    "old/deprecated",
    "reverted",
    "support/summarize",
];

/// What `prompt show --json` says about every prompt, without what differs between two databases
/// (ids, times, the revision counter).
fn shown(vault: &Vault) -> Value {
    let mut shown = serde_json::Map::new();
    for name in PROMPTS {
        let mut prompt = without_ids_and_times(vault.json(&["show", name]));
        if let Some(map) = prompt.as_object_mut() {
            map.remove("revision");
        }
        shown.insert(name.to_string(), prompt);
    }
    Value::Object(shown)
}

/// What an export says about a vault, without ids and times.
fn exported(vault: &Vault) -> Value {
    without_ids_and_times(vault.json(&["export", "--all"]))
}

#[test]
fn export_then_import_into_a_fresh_data_dir_keeps_everything() {
    let source = Vault::local();
    populate(&source);
    let file = source.path("bundle.json");
    let file_arg = file.display().to_string();
    let summary = source.ok(&["export", "--all", "--output", &file_arg]);
    assert_eq!(
        summary,
        format!("exported 6 prompt(s) and 0 prompt type(s) to {file_arg}\n")
    );
    let bundle = read_json(&file);
    assert_eq!(bundle["format"], "promptvault.bundle/v1");

    let target = Vault::local();
    let report = target.json(&["import", &file_arg]);
    assert_eq!(report["prompts_created"], 6);
    assert_eq!(report["versions_created"], 9);
    assert_eq!(report["labels_moved"], 5);
    assert_eq!(report["links_set"], 2);

    let before = shown(&source);
    assert_eq!(before["old/archived"]["status"], "archived");
    assert_eq!(before["old/deprecated"]["status"], "deprecated");
    assert_eq!(
        before["reverted"]["labels"],
        json!({"latest": 3, "live": 3, "stable": 1})
    );
    let after = shown(&target);
    assert_eq!(after, before);
    let reverted: Vec<(Value, Value)> = after["reverted"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|version| {
            (
                version["version_number"].clone(),
                version["content"].clone(),
            )
        })
        .collect();
    assert_eq!(
        reverted,
        vec![
            (json!(3), json!("Answer: {{ q }}")),
            (json!(2), json!("Answer briefly: {{ q }}")),
            (json!(1), json!("Answer: {{ q }}")),
        ]
    );
    assert_eq!(exported(&target), exported(&source));
    let summarize = target.json(&["show", "support/summarize"]);
    assert_eq!(summarize["labels"], json!({"latest": 2, "live": 1}));
    assert_eq!(
        target
            .json(&["link", "--list", "--agent", "bot-1"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        target.ok(&[
            "render",
            "support/summarize",
            "--label",
            "live",
            "--param",
            "text=x"
        ]),
        "Summarize: x\n"
    );
}

#[test]
fn a_yaml_export_imports_the_same_as_json() {
    let source = Vault::local();
    populate(&source);
    let yaml = source.ok(&["export", "--all", "--format", "yaml"]);
    assert!(yaml.contains("format: promptvault.bundle/v1"), "{yaml}");
    let target = Vault::local();
    let file = target.write("bundle.yaml", &yaml);
    target.ok(&["import", &file]);
    assert_eq!(exported(&target), exported(&source));
    assert_eq!(shown(&target), shown(&source));
}

#[test]
fn importing_the_same_bundle_twice_creates_nothing_the_second_time() {
    let source = Vault::local();
    populate(&source);
    let file = source.path("bundle.json").display().to_string();
    source.ok(&["export", "--all", "--output", &file]);

    let target = Vault::local();
    target.ok(&["import", &file]);
    let before = exported(&target);
    let again = target.json(&["import", &file]);
    assert_eq!(again["prompt_types_created"], 0);
    assert_eq!(again["prompts_created"], 0);
    assert_eq!(again["versions_created"], 0);
    assert_eq!(again["versions_unchanged"], 9);
    assert_eq!(again["labels_moved"], 0);
    assert_eq!(exported(&target), before);
    assert_eq!(shown(&target), shown(&source));
    let human = target.ok(&["import", &file]);
    assert!(human.contains("prompts created:       0\n"), "{human}");
}

#[test]
fn an_invalid_bundle_writes_nothing() {
    let vault = Vault::local();
    let bundle = json!({
        "format": "promptvault.bundle/v1",
        "prompts": [
            {"name": "fine", "versions": [{"version_number": 1, "content": "ok"}]},
            {
                "name": "broken",
                "versions": [{"version_number": 1, "content": "{% if %}"}],
                "labels": {"production": 7}
            }
        ]
    });
    let file = vault.write("bad.json", &bundle.to_string());
    let run = vault.fail(&["import", &file]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(first.ends_with("(invalid_bundle)"), "{}", run.stderr);
    assert!(run.stderr.contains("\n  /prompts/1/"), "{}", run.stderr);
    assert_eq!(vault.json(&["list"])["total"], 0);
}

#[test]
fn a_directory_imports_every_bundle_file_in_it() {
    let source = Vault::local();
    populate(&source);
    let mut bundle = source.json(&["export", "--all"]);
    let prompts = bundle["prompts"].as_array().cloned().unwrap_or_default();
    assert_eq!(prompts.len(), 6);
    let target = Vault::local();
    bundle["prompts"] = json!([prompts[0].clone()]);
    target.write("in/a.json", &bundle.to_string());
    bundle["prompts"] = json!(prompts[1..]);
    let yaml = yaml_text(&bundle);
    target.write("in/b.yml", &yaml);
    target.write("in/notes.txt", "not a bundle, ignored");
    let dir = target.path("in").display().to_string();
    let report = target.json(&["import", &dir]);
    assert_eq!(report["prompts_created"], 6);
    assert_eq!(exported(&target), exported(&source));
    assert_eq!(shown(&target), shown(&source));
}

#[test]
fn one_unparsable_file_in_a_directory_means_nothing_is_written() {
    let source = Vault::local();
    populate(&source);
    let bundle = source.ok(&["export", "--all"]);
    let target = Vault::local();
    target.write("in/a.json", &bundle);
    target.write(
        "in/b.json",
        "{\"format\": \"promptvault.bundle/v1\", \"prompts\": [",
    );
    target.write("in/c.yaml", "format: [unclosed");
    let dir = target.path("in").display().to_string();
    let run = target.fail(&["import", &dir]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(
            "error: 2 of 3 file(s) cannot be read as a bundle; nothing was imported (invalid_bundle_file)\n"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("b.json: "), "{}", run.stderr);
    assert!(run.stderr.contains("c.yaml: "), "{}", run.stderr);
    assert_eq!(target.json(&["list"])["total"], 0);
}

#[test]
fn export_and_import_work_through_a_server() {
    let source = Vault::remote();
    populate(&source);
    let file = source.path("bundle.json").display().to_string();
    source.ok(&["export", "--all", "--output", &file]);
    let target = Vault::remote();
    let report = target.json(&["import", &file]);
    assert_eq!(report["prompts_created"], 6);
    assert_eq!(exported(&target), exported(&source));
    assert_eq!(shown(&target), shown(&source));
    assert_eq!(target.json(&["import", &file])["versions_created"], 0);
}

fn yaml_text(value: &Value) -> String {
    yaml_serde::to_string(value).expect("YAML")
}
