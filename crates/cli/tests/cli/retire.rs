//! `prompt deprecate` and `prompt archive`, and `prompt list --status archived`: the same
//! results locally and through a server.

use crate::support::Vault;

fn deprecating_and_archiving_a_version(vault: &Vault) {
    vault.ok(&["create", "old/summarize", "--content", "Old {{ text }}"]);
    vault.ok(&["create", "new/summarize", "--content", "New {{ text }}"]);
    vault.approve("old/summarize", 1);

    let text = vault.ok(&[
        "deprecate",
        "old/summarize",
        "1",
        "--replacement",
        "new/summarize",
        "--period",
        "14d",
    ]);
    assert!(
        text.starts_with("old/summarize v1: deprecated\nserved until "),
        "{text}"
    );
    assert!(text.ends_with("; replacement: new/summarize\n"), "{text}");
    let shown = vault.json(&["show", "old/summarize"]);
    assert_eq!(
        shown["versions"][0]["deprecation"]["replacement"]["name"],
        "new/summarize"
    );
    // Still served before the sunset.
    let rendered = vault.json(&["render", "old/summarize", "--param", "text=x"]);
    assert_eq!(
        rendered["deprecation"]["replacement"]["name"],
        "new/summarize"
    );

    // A bad replacement is invalid input (4).
    vault.ok(&["create", "other/p", "--content", "Other"]);
    vault.approve("other/p", 1);
    let run = vault.fail(&["deprecate", "other/p", "1", "--replacement", "no/such"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("(invalid_replacement)"),
        "{}",
        run.stderr
    );

    let archived = vault.json(&["archive", "old/summarize", "1"]);
    assert_eq!(archived["status"], "archived");
    assert!(archived["archived_at"].is_string());
    let run = vault.fail(&["render", "old/summarize", "--param", "text=x"]);
    assert!(run.stderr.contains("(version_archived)"), "{}", run.stderr);

    let listed = vault.ok(&["list"]);
    assert!(!listed.contains("old/summarize"), "{listed}");
    let archived = vault.json(&["list", "--status", "archived"]);
    assert_eq!(archived["total"], 1);
    assert_eq!(archived["items"][0]["name"], "old/summarize");
}

#[test]
fn deprecate_and_archive_work_on_the_local_database() {
    deprecating_and_archiving_a_version(&Vault::local());
}

#[test]
fn deprecate_and_archive_work_against_a_server() {
    deprecating_and_archiving_a_version(&Vault::remote());
}
