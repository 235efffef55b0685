//! `prompt review list|submit|withdraw|approve|reject`: the approval workflow from the command line, with the
//! same output on the local database and through a server.

use crate::support::Vault;

/// Runs the scenario and returns every output, for comparing the two modes.
fn review_a_version_list_approve_reject(vault: &Vault) -> Vec<String> {
    let mut outputs = Vec::new();
    vault.ok(&["create", "review/one", "--content", "First {{ topic }}"]);
    vault.ok(&[
        "create",
        "review/two",
        "--content",
        "Second {{ topic }}",
        "--classification",
        "confidential",
    ]);
    let empty = vault.as_reviewer_ok(&["review", "list"]);
    assert_eq!(empty, "no versions wait for your review\n");
    outputs.push(empty);

    let submitted = vault.ok(&["review", "submit", "review/one", "1"]);
    assert_eq!(submitted, "review/one v1: review\n");
    outputs.push(submitted);
    // The author may take it back, and submit it again.
    let withdrawn = vault.ok(&["review", "withdraw", "review/one", "1", "--comment", "typo"]);
    assert_eq!(withdrawn, "review/one v1: draft\n");
    outputs.push(withdrawn);
    vault.ok(&["review", "submit", "review/one", "1"]);
    vault.submit("review/two", 1);
    let queue = vault.as_reviewer_ok(&["review", "list"]);
    let lines: Vec<&str> = queue.lines().collect();
    assert_eq!(lines.len(), 3, "{queue}");
    assert!(lines[0].starts_with("PROMPT"), "{queue}");
    assert!(lines[1].starts_with("review/one"), "{queue}");
    assert!(lines[1].contains("0/1"), "{queue}");
    assert!(lines[2].starts_with("review/two"), "{queue}");
    assert!(lines[2].contains("0/2"), "{queue}");
    outputs.push(queue);

    let approved =
        vault.as_reviewer_ok(&["review", "approve", "review/one", "1", "--comment", "ok"]);
    assert_eq!(
        approved,
        "approved review/one v1 at step 1 (1/1 approvals): the version is now approved\n"
    );
    outputs.push(approved);
    let first = vault.as_reviewer_ok(&["review", "approve", "review/two", "1"]);
    assert_eq!(
        first,
        "approved review/two v1 at step 1 (1/2 approvals): still in review\n"
    );
    outputs.push(first);
    // The same approver counts once.
    let again = vault.as_reviewer_fail(&["review", "approve", "review/two", "1"]);
    assert!(
        again.stderr.contains("(already_approved)"),
        "{}",
        again.stderr
    );
    outputs.push(again.stderr);
    let json = vault.as_reviewer_json(&["review", "list"]);
    assert_eq!(json["items"].as_array().expect("items").len(), 0);

    // A rejection needs a comment, and sends the version back to draft.
    let usage = vault.as_reviewer_fail(&["review", "reject", "review/two", "1"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    let rejected = vault.as_reviewer_ok(&[
        "review",
        "reject",
        "review/two",
        "1",
        "--comment",
        "cite a source",
    ]);
    assert_eq!(
        rejected,
        "rejected review/two v1: back to draft (cite a source)\n"
    );
    outputs.push(rejected);
    let not_in_review = vault.as_reviewer_fail(&["review", "approve", "review/two", "1"]);
    assert!(
        not_in_review.stderr.contains("(not_in_review)"),
        "{}",
        not_in_review.stderr
    );
    outputs.push(not_in_review.stderr);
    assert_eq!(
        vault
            .as_reviewer_fail(&["review", "approve", "review/none", "1"])
            .code,
        3
    );
    outputs
}

#[test]
fn review_works_the_same_on_the_local_database_and_against_a_server() {
    let local = review_a_version_list_approve_reject(&Vault::local());
    let remote = review_a_version_list_approve_reject(&Vault::remote());
    assert_eq!(local, remote);
}
