//! `prompt check <name> [--version N]`: a version's compliance findings as a table or JSON; exit
//! code 4 when one of them is an error (it would block review). Locally and through a server.

use crate::support::Vault;

fn check_prints_findings_and_fails_on_errors(vault: &Vault) {
    vault.ok(&[
        "create",
        "comply/leaky",
        "--content",
        "Use AKIAIOSFODNN7EXAMPLE and mail ops@example.com",
    ]);
    // The newest version by default: a table, then exit 4 with compliance_failed.
    let run = vault.fail(&["check", "comply/leaky"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("comply/leaky v1 (draft): "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("SEVERITY  RULE"), "{}", run.stdout);
    assert!(run.stdout.contains("error     secret"), "{}", run.stdout);
    assert!(run.stdout.contains("warning   pii_email"), "{}", run.stdout);
    assert!(!run.stdout.contains("AKIAIOSFODNN7EXAMPLE"), "masked");
    assert!(run.stderr.contains("(compliance_failed)"), "{}", run.stderr);

    // A fixed version passes; the old one can still be checked with --version.
    vault.ok(&[
        "version",
        "comply/leaky",
        "--content",
        "Use the configured key and mail the team",
    ]);
    let clean = vault.ok(&["check", "comply/leaky"]);
    assert!(
        clean.starts_with("comply/leaky v2 (draft): ") && clean.ends_with("0 finding(s)\n"),
        "{clean}"
    );
    let run = vault.run(&["--json", "check", "comply/leaky", "--version", "1"]);
    assert_eq!(run.code, 4);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(json["version_number"], 1);
    assert_eq!(json["blocking"], true);
    assert_eq!(json["findings"][0]["rule"], "secret");
    assert!(json["token_count"].as_i64().expect("tokens") > 0);
    let json = vault.json(&["check", "comply/leaky", "--version", "2"]);
    assert_eq!(json["blocking"], false);

    // A missing prompt or version is "not found" (3).
    assert_eq!(vault.fail(&["check", "comply/none"]).code, 3);
    assert_eq!(
        vault
            .fail(&["check", "comply/leaky", "--version", "9"])
            .code,
        3
    );
}

#[test]
fn check_works_on_the_local_database() {
    check_prints_findings_and_fails_on_errors(&Vault::local());
}

#[test]
fn check_works_against_a_server() {
    check_prints_findings_and_fails_on_errors(&Vault::remote());
}
