//! The storage conformance suite: every behaviour of the `Store` trait, written once and run
//! against both backends. `sqlite::*` always runs (a fresh file per test); `postgres::*` runs in
//! a fresh schema of the database `PROMPTVAULT_TEST_POSTGRES_URL` names, and says on stderr that
//! it did not run when the variable is unset.
//!
//! Each test's store is opened with the encryption key ring [`keyed`] (key `k1`), so every
//! behaviour also runs over confidential/restricted prompts whose content is sealed; the
//! encryption behaviours open further stores on the same database with other rings or none.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use promptvault_core::{
    access::{CredentialRestriction, Principal, VisibilityFilter, is_visible, visibility_filter},
    audit::{
        AuditEntry, AuditOutcome, Checkpoint, GENESIS_HASH, NewAuditEntry, VerifyReport,
        entry_hash, sign_checkpoint, verify_chain,
    },
    compliance::{ComplianceRules, Level, Severity},
    crypto::KeyRing,
    deploy::{LabelTarget, Split, SplitEntry},
    error::DomainError,
    ident::{LabelName, PromptName},
    model::{
        ApiToken, Classification, Content, DeploymentModel, Grantee, Kind, LabelAction, Prompt,
        PromptAccess, PromptStatus, PromptVersion, Role, Scope, Source, VersionStatus,
    },
    retire::{Deprecation, Replacement},
    runs::Feedback,
    testcase::TestCase,
    version::{Bump, VersionDraft},
    workflow::{
        ApprovalPolicy, ApprovalRefusal, ApprovalStep, ApprovalWorkflow, ReviewDecision, Reviewer,
    },
};
use promptvault_store::{
    ConnectOptions, Store, StoreError,
    testing::TestDatabase,
    types::{
        AuditQuery, CarryOver, LinkFilter, NewApiToken, NewLink, NewPrompt, NewPromptType,
        NewReview, NewRun, NewUser, NewVersion, PromptKey, PromptPatch, PromptQuery,
        PromptTypePatch, ServeSubject, UserPatch, VersionSelector, VersionUse,
    },
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// Generates `sqlite::<name>` and `postgres::<name>` tests for each behaviour `<name>`: an
/// `async fn(Arc<dyn Store>)` in the `store` list, an `async fn(&TestDatabase)` in the
/// `database` list.
macro_rules! conformance {
    (store: [$($store_behaviour:ident),* $(,)?], database: [$($database_behaviour:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            use promptvault_store::testing::TestDatabase;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $store_behaviour() {
                    let database = TestDatabase::sqlite_with(super::keyed()).await;
                    super::$store_behaviour(database.store()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $database_behaviour() {
                    let database = TestDatabase::sqlite_with(super::keyed()).await;
                    super::$database_behaviour(&database).await;
                }
            )*
        }
        mod postgres {
            use promptvault_store::testing::{TestDatabase, postgres_test_url};

            /// The fresh database, or `None` (said on stderr) without a PostgreSQL URL.
            async fn database(test: &str) -> Option<TestDatabase> {
                let Some(url) = postgres_test_url() else {
                    // Straight to the stream: the test harness would capture `eprintln!`.
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "postgres::{test} did not run: PROMPTVAULT_TEST_POSTGRES_URL is not set"
                    );
                    return None;
                };
                Some(TestDatabase::postgres_with(&url, super::keyed()).await)
            }
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $store_behaviour() {
                    let Some(database) = database(stringify!($store_behaviour)).await else {
                        return;
                    };
                    super::$store_behaviour(database.store()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $database_behaviour() {
                    let Some(database) = database(stringify!($database_behaviour)).await else {
                        return;
                    };
                    super::$database_behaviour(&database).await;
                }
            )*
        }
    };
}

conformance! {
    store: [
        serve_candidates_by_name_give_the_prompt_the_label_target_and_its_versions,
        serve_candidates_by_capability_follow_the_link_order_with_their_versions,
        findings_and_the_token_count_are_stored_with_the_version,
        findings_compare_the_carried_over_schema,
        the_store_answers_a_ping,
        carried_over_fields_come_from_the_newest_version_at_write_time,
        a_created_prompt_can_be_read_by_id_and_by_name,
        creating_a_prompt_with_a_taken_name_is_a_conflict,
        creating_a_prompt_with_an_unknown_type_is_not_found,
        creating_a_prompt_with_content_of_the_wrong_kind_is_a_domain_error,
        a_missing_prompt_is_not_found_by_id_or_by_name,
        listing_filters_by_scope_owner_tag_type_status_and_label,
        listing_searches_case_insensitively_and_matches_name_prefixes_literally,
        listing_pages_by_offset_and_by_name_keyset_and_counts_every_match,
        archived_prompts_are_listed_only_when_asked_for,
        list_items_carry_their_labels_and_latest_version_number,
        updating_without_an_expected_revision_applies_the_patch_and_bumps_the_revision,
        updating_with_a_stale_revision_is_refused_with_the_current_revision,
        updating_a_missing_prompt_is_not_found,
        updating_a_prompt_to_an_unknown_type_is_not_found,
        deleting_a_prompt_removes_its_versions_labels_history_and_links,
        versions_are_numbered_in_order_with_the_semver_bump_the_change_requires,
        adding_an_identical_version_returns_the_existing_one,
        an_identical_version_with_labels_moves_them_to_the_existing_version,
        an_identical_version_with_an_explicit_bump_creates_a_new_one,
        a_requested_bump_smaller_than_required_is_a_domain_error,
        adding_a_version_bumps_the_revision_and_moves_latest_without_history,
        adding_a_version_to_a_missing_prompt_is_not_found,
        adding_content_of_the_wrong_kind_is_a_domain_error,
        labels_requested_with_a_version_point_at_it_and_are_recorded,
        setting_a_label_moves_it_and_records_every_move,
        setting_a_label_to_where_it_already_points_records_nothing,
        setting_a_label_on_a_missing_version_is_not_found_naming_the_version,
        removing_a_label_records_it_and_removing_it_again_is_not_found,
        label_history_of_a_missing_prompt_is_not_found,
        a_version_can_be_read_by_number,
        resolving_by_number_and_by_label_returns_the_prompt_and_that_version,
        resolving_a_missing_label_names_the_label_and_the_prompt,
        resolving_a_missing_version_number_or_prompt_is_not_found,
        a_version_status_moves_only_from_the_expected_status_and_bumps_the_revision,
        moving_the_status_of_a_missing_version_or_prompt_is_not_found,
        concurrent_status_changes_of_one_version_let_exactly_one_win,
        linking_again_updates_the_priority_of_the_same_link,
        links_list_the_agents_own_first_then_global_ones_by_priority,
        deleting_a_link_removes_it_and_deleting_it_again_is_not_found,
        linking_a_missing_prompt_is_not_found,
        prompt_types_can_be_created_read_listed_updated_and_deleted,
        creating_a_duplicate_prompt_type_is_a_conflict,
        deleting_a_prompt_type_in_use_is_a_conflict,
        concurrent_writers_get_contiguous_version_numbers,
        users_can_be_created_read_listed_updated_and_deleted,
        creating_or_updating_a_user_to_a_taken_email_is_a_conflict,
        deleting_a_user_deletes_their_tokens,
        tokens_are_found_by_hash_listed_newest_first_and_counted,
        revoking_a_token_twice_keeps_the_first_time,
        touching_a_token_records_its_last_use,
        appended_audit_entries_form_a_chain_that_verifies,
        concurrent_audit_appends_form_one_unbroken_chain,
        listing_audit_entries_filters_by_every_field_and_pages_by_seq,
        purging_behind_a_checkpoint_keeps_the_rest_and_new_entries_verifiable,
        purging_with_a_hash_that_is_not_the_entrys_is_a_conflict,
        the_last_entry_before_a_cutoff_has_only_older_entries_before_it,
        prompt_access_rules_round_trip_and_are_replaced_by_a_patch,
        test_cases_round_trip_and_replacing_them_bumps_the_revision,
        test_cases_run_on_every_new_version_and_failures_are_error_findings,
        test_cases_of_a_missing_prompt_are_not_found,
        approving_records_when_and_deprecating_records_the_deprecation_on_the_version,
        the_prompt_status_follows_its_versions_statuses,
        archiving_a_version_a_user_label_points_at_is_refused_naming_the_labels,
        purging_archived_versions_drops_their_content_and_keeps_their_history,
        review_states_carry_the_type_interval_the_attestation_and_the_last_approval,
        a_label_can_split_traffic_and_the_prompt_shows_the_split,
        archiving_a_version_a_split_still_serves_is_refused,
        a_required_status_is_checked_inside_the_move_and_a_refusal_writes_nothing,
        promoting_ends_a_split_on_one_of_its_versions,
        rolling_back_moves_to_the_newest_earlier_approved_target,
        a_label_target_at_a_time_comes_from_the_history_and_latest_from_creation_times,
        approvals_follow_each_classifications_workflow_and_complete_it_atomically,
        refused_approvals_write_nothing_and_say_why,
        a_rejection_sends_the_version_to_draft_and_a_resubmission_starts_a_fresh_round,
        concurrent_approvals_by_different_approvers_count_exactly,
        concurrent_approvals_by_the_same_approver_count_once,
        a_prompt_types_workflow_round_trips_and_overrides_the_classification,
        the_review_queue_lists_versions_in_review_with_this_rounds_approvals,
        recorded_runs_read_back_and_count_toward_their_versions_usage,
        uses_without_runs_add_to_usage_and_skip_deleted_prompts,
        uses_of_more_versions_than_one_statement_takes_all_count,
        runs_of_a_deleted_prompt_are_skipped_and_missing_runs_are_not_found,
        feedback_merges_and_moves_the_aggregates_once_per_run,
        recent_outcomes_are_the_newest_runs_with_an_outcome_first,
        pool_stats_report_each_pool_with_open_and_idle_connections_within_its_maximum,
    ],
    database: [
        a_second_store_opened_from_the_url_sees_the_same_data,
        writers_in_two_stores_on_one_database_get_contiguous_version_numbers,
        listing_with_a_visibility_filter_returns_exactly_the_visible_prompts,
        the_review_queue_shows_only_prompts_the_principal_may_see,
        an_audit_row_edited_with_raw_sql_is_named_by_verification,
        appenders_in_two_stores_on_one_database_form_one_audit_chain,
        sealed_versions_read_back_identical_and_their_text_is_not_in_the_database,
        rotating_keys_reseals_every_version_and_keeps_every_version_readable,
        reading_sealed_content_without_its_key_is_a_clear_error,
        swapped_or_tampered_ciphertext_is_an_error_not_garbage,
        changing_the_classification_seals_or_opens_existing_versions,
        without_keys_public_and_internal_prompts_work_and_sealed_writes_are_refused,
        reencrypt_seals_versions_stored_in_clear_before_encryption,
        sealed_test_cases_are_not_in_the_database_and_follow_the_classification,
        runs_of_sealed_prompts_are_not_in_the_database_and_read_back,
    ],
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn name(name: &str) -> PromptName {
    PromptName::parse(name).expect("valid prompt name")
}

fn label(label: &str) -> LabelName {
    LabelName::parse(label).expect("valid label")
}

fn new_prompt(prompt_name: &str) -> NewPrompt {
    NewPrompt {
        name: name(prompt_name),
        title: None,
        description: None,
        long_description_markdown: None,
        scope: Scope::Global,
        agent_id: None,
        owner_id: None,
        creator_id: None,
        prompt_type: None,
        kind: Kind::Text,
        tags: Vec::new(),
        source: Source::human(),
        classification: Classification::Internal,
        access: Default::default(),
    }
}

fn draft(text: &str, config: Value, bump: Option<Bump>) -> VersionDraft {
    VersionDraft::new(Content::Text(text.into()), config, None, bump).expect("valid draft")
}

fn text(text: &str) -> NewVersion {
    version(draft(text, json!({}), None), &[])
}

fn version(draft: VersionDraft, labels: &[&str]) -> NewVersion {
    NewVersion {
        draft,
        notes: None,
        author_id: None,
        labels: labels.iter().map(|l| label(l)).collect(),
        carry_over: Default::default(),
        compliance: Default::default(),
    }
}

async fn create(store: &Arc<dyn Store>, prompt_name: &str) -> Uuid {
    store
        .create_prompt(new_prompt(prompt_name), text("Hello {{ name }}"))
        .await
        .expect("create prompt")
        .prompt
        .id
}

fn by_name(prompt_name: &str) -> PromptKey {
    PromptKey::Name(name(prompt_name))
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, expected_what: &str) {
    match result {
        Err(StoreError::NotFound { what }) => assert_eq!(what, expected_what),
        other => panic!("expected NotFound {{ {expected_what} }}, got {other:?}"),
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict { what }) => what,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

async fn names(store: &Arc<dyn Store>, query: PromptQuery) -> Vec<String> {
    store
        .list_prompts(&query)
        .await
        .expect("list prompts")
        .items
        .into_iter()
        .map(|item| item.prompt.name.to_string())
        .collect()
}

fn query() -> PromptQuery {
    PromptQuery {
        limit: 100,
        ..PromptQuery::default()
    }
}

fn labels(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(l, n)| (l.to_string(), *n)).collect()
}

// ---------------------------------------------------------------------------------------------
// Prompts.

async fn the_store_answers_a_ping(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
}

async fn a_created_prompt_can_be_read_by_id_and_by_name(store: Arc<dyn Store>) {
    let owner = Uuid::now_v7();
    let prompt = NewPrompt {
        title: Some("Summarize".into()),
        description: Some("Summarizes a ticket".into()),
        long_description_markdown: Some("# Long".into()),
        scope: Scope::Agent,
        agent_id: Some("agent-1".into()),
        owner_id: Some(owner),
        creator_id: Some(owner),
        tags: vec!["support".into(), "en".into()],
        source: Source::parse("sync:langfuse").expect("valid source"),
        classification: Classification::Confidential,
        ..new_prompt("support/summarize")
    };
    let first = NewVersion {
        draft: draft(
            "Summarize {{ ticket }}",
            json!({"model": "m", "temperature": 0.2}),
            None,
        ),
        notes: Some("first".into()),
        author_id: Some(owner),
        labels: vec![label("production")],
        carry_over: Default::default(),
        compliance: Default::default(),
    };
    let created = store.create_prompt(prompt, first).await.expect("create");

    assert_eq!(created.prompt.name.as_str(), "support/summarize");
    assert_eq!(created.prompt.revision, 1);
    assert_eq!(created.prompt.status, PromptStatus::Active);
    assert_eq!(
        created.prompt.tags,
        vec!["support".to_string(), "en".to_string()]
    );
    assert_eq!(created.versions.len(), 1);
    let v1 = &created.versions[0];
    assert_eq!(v1.version_number, 1);
    assert_eq!(v1.semver.to_string(), "1.0.0");
    assert_eq!(v1.notes.as_deref(), Some("first"));
    assert_eq!(v1.config, json!({"model": "m", "temperature": 0.2}));
    assert_eq!(created.labels, labels(&[("latest", 1), ("production", 1)]));

    let by_id = store
        .get_prompt(&PromptKey::Id(created.prompt.id))
        .await
        .expect("get by id");
    let by_name = store
        .get_prompt(&by_name("support/summarize"))
        .await
        .expect("get by name");
    assert_eq!(by_id, created);
    assert_eq!(by_name, created);
    let found = store
        .find_prompt(&PromptKey::Id(created.prompt.id))
        .await
        .expect("find");
    assert_eq!(found, created.prompt);
    // The creation of a caller-set label is history; `latest` is not.
    let history = store
        .label_history(created.prompt.id, &label("production"))
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].from_version, history[0].to_version),
        (None, Some(1))
    );
    assert_eq!(history[0].actor_id, Some(owner));
}

async fn creating_a_prompt_with_a_taken_name_is_a_conflict(store: Arc<dyn Store>) {
    create(&store, "a/b").await;
    let what = assert_conflict(store.create_prompt(new_prompt("a/b"), text("other")).await);
    assert!(what.contains("\"a/b\""), "{what}");
    // Names are case-sensitive.
    create(&store, "A/b").await;
}

async fn creating_a_prompt_with_an_unknown_type_is_not_found(store: Arc<dyn Store>) {
    let prompt = NewPrompt {
        prompt_type: Some("nope".into()),
        ..new_prompt("typed")
    };
    assert_not_found(
        store.create_prompt(prompt, text("x")).await,
        "prompt type \"nope\"",
    );
    assert_not_found(
        store.find_prompt(&by_name("typed")).await,
        "prompt \"typed\"",
    );
}

async fn creating_a_prompt_with_content_of_the_wrong_kind_is_a_domain_error(store: Arc<dyn Store>) {
    let prompt = NewPrompt {
        kind: Kind::Chat,
        ..new_prompt("chatty")
    };
    let result = store.create_prompt(prompt, text("plain text")).await;
    assert!(
        matches!(
            result,
            Err(StoreError::Domain(DomainError::KindMismatch { .. }))
        ),
        "{result:?}"
    );
}

async fn a_missing_prompt_is_not_found_by_id_or_by_name(store: Arc<dyn Store>) {
    let id = Uuid::now_v7();
    assert_not_found(
        store.get_prompt(&PromptKey::Id(id)).await,
        &format!("prompt {id}"),
    );
    assert_not_found(
        store.get_prompt(&by_name("no/such")).await,
        "prompt \"no/such\"",
    );
    assert_not_found(
        store.find_prompt(&by_name("no/such")).await,
        "prompt \"no/such\"",
    );
    assert_not_found(store.delete_prompt(id).await, &format!("prompt {id}"));
}

async fn listing_filters_by_scope_owner_tag_type_status_and_label(store: Arc<dyn Store>) {
    let owner = Uuid::now_v7();
    store
        .create_prompt_type(NewPromptType {
            key: "summary".into(),
            name: "Summary".into(),
            schema: None,
            restricted_creation: false,
            requires_approval: false,
            review_every_days: None,
            approval_workflow: None,
        })
        .await
        .expect("create type");
    let specs = [
        ("a", Scope::Global, None, vec!["x"], None),
        (
            "b",
            Scope::Agent,
            Some(owner),
            vec!["x", "y"],
            Some("summary"),
        ),
        ("c", Scope::User, Some(owner), vec!["y"], None),
        ("d", Scope::Global, None, vec![], Some("summary")),
    ];
    for (prompt_name, scope, owner_id, tags, prompt_type) in specs {
        let prompt = NewPrompt {
            scope,
            owner_id,
            tags: tags.into_iter().map(String::from).collect(),
            prompt_type: prompt_type.map(String::from),
            ..new_prompt(prompt_name)
        };
        store
            .create_prompt(prompt, text("t"))
            .await
            .expect("create");
    }
    let d = store.find_prompt(&by_name("d")).await.expect("find d").id;
    store
        .update_prompt(
            d,
            PromptPatch {
                status: Some(PromptStatus::Deprecated),
                ..PromptPatch::default()
            },
            None,
        )
        .await
        .expect("deprecate d");
    let c = store.find_prompt(&by_name("c")).await.expect("find c").id;
    store
        .set_label(c, &label("production"), 1, None)
        .await
        .expect("label c");

    assert_eq!(names(&store, query()).await, ["a", "b", "c", "d"]);
    let scope = PromptQuery {
        scope: Some(Scope::Global),
        ..query()
    };
    assert_eq!(names(&store, scope).await, ["a", "d"]);
    let owner_query = PromptQuery {
        owner_id: Some(owner),
        ..query()
    };
    assert_eq!(names(&store, owner_query).await, ["b", "c"]);
    let tag = PromptQuery {
        tag: Some("y".into()),
        ..query()
    };
    assert_eq!(names(&store, tag).await, ["b", "c"]);
    let typed = PromptQuery {
        prompt_type: Some("summary".into()),
        ..query()
    };
    assert_eq!(names(&store, typed).await, ["b", "d"]);
    let status = PromptQuery {
        status: Some(PromptStatus::Deprecated),
        ..query()
    };
    assert_eq!(names(&store, status).await, ["d"]);
    let labelled = PromptQuery {
        label: Some(label("production")),
        ..query()
    };
    assert_eq!(names(&store, labelled).await, ["c"]);
    let combined = PromptQuery {
        owner_id: Some(owner),
        tag: Some("x".into()),
        ..query()
    };
    assert_eq!(names(&store, combined).await, ["b"]);
    let nothing = PromptQuery {
        tag: Some("zzz".into()),
        ..query()
    };
    let page = store.list_prompts(&nothing).await.expect("list");
    assert!(page.items.is_empty());
    assert_eq!(page.total, 0);
}

async fn listing_searches_case_insensitively_and_matches_name_prefixes_literally(
    store: Arc<dyn Store>,
) {
    let specs = [
        ("support/summarize", Some("Ticket Summary"), None),
        ("support/triage", None, Some("Routes a TICKET")),
        ("sales/pitch", Some("Pitch"), Some("50% off")),
        ("a_b", None, None),
        ("axb", None, None),
        ("Support/upper", None, None),
        ("tools/path", Some(r"C:\Dir"), None),
    ];
    for (prompt_name, title, description) in specs {
        let prompt = NewPrompt {
            title: title.map(String::from),
            description: description.map(String::from),
            ..new_prompt(prompt_name)
        };
        store
            .create_prompt(prompt, text("t"))
            .await
            .expect("create");
    }
    let q = |q: &str| PromptQuery {
        q: Some(q.into()),
        ..query()
    };
    assert_eq!(
        names(&store, q("ticket")).await,
        ["support/summarize", "support/triage"]
    );
    assert_eq!(names(&store, q("SUMMAR")).await, ["support/summarize"]);
    assert_eq!(names(&store, q("50%")).await, ["sales/pitch"]);
    assert_eq!(names(&store, q("%")).await, ["sales/pitch"]);
    assert_eq!(names(&store, q("a_b")).await, ["a_b"]);
    assert_eq!(names(&store, q(r"c:\d")).await, ["tools/path"]);
    let prefix = |p: &str| PromptQuery {
        name_prefix: Some(p.into()),
        ..query()
    };
    assert_eq!(
        names(&store, prefix("support/")).await,
        ["support/summarize", "support/triage"]
    );
    assert_eq!(names(&store, prefix("Support/")).await, ["Support/upper"]);
    assert_eq!(names(&store, prefix("a_")).await, ["a_b"]);
    assert_eq!(
        names(&store, prefix("s")).await,
        ["sales/pitch", "support/summarize", "support/triage"]
    );
    assert!(names(&store, prefix("*")).await.is_empty());
}

async fn listing_pages_by_offset_and_by_name_keyset_and_counts_every_match(store: Arc<dyn Store>) {
    for prompt_name in ["e", "c", "a", "d", "b"] {
        create(&store, prompt_name).await;
    }
    let page = |offset, limit| PromptQuery {
        offset,
        limit,
        ..PromptQuery::default()
    };
    let first = store.list_prompts(&page(0, 2)).await.expect("page 1");
    let second = store.list_prompts(&page(2, 2)).await.expect("page 2");
    let third = store.list_prompts(&page(4, 2)).await.expect("page 3");
    let beyond = store
        .list_prompts(&page(10, 2))
        .await
        .expect("past the end");
    let names_of = |page: &promptvault_store::types::PromptPage| {
        page.items
            .iter()
            .map(|item| item.prompt.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names_of(&first), ["a", "b"]);
    assert_eq!(names_of(&second), ["c", "d"]);
    assert_eq!(names_of(&third), ["e"]);
    assert!(beyond.items.is_empty());
    for total in [first.total, second.total, third.total, beyond.total] {
        assert_eq!(total, 5);
    }

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let keyset = PromptQuery {
            after_name: after.clone(),
            // With a keyset, an offset is ignored.
            offset: if after.is_some() { 1 } else { 0 },
            limit: 2,
            ..PromptQuery::default()
        };
        let page = store.list_prompts(&keyset).await.expect("keyset page");
        assert_eq!(page.total, 5);
        if page.items.is_empty() {
            break;
        }
        after = page.items.last().map(|item| item.prompt.name.to_string());
        seen.extend(names_of(&page));
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);

    // A limit of zero means no limit.
    let all = store
        .list_prompts(&PromptQuery::default())
        .await
        .expect("all");
    assert_eq!(all.items.len(), 5);
}

async fn archived_prompts_are_listed_only_when_asked_for(store: Arc<dyn Store>) {
    create(&store, "kept").await;
    let archived = create(&store, "old").await;
    let patch = PromptPatch {
        status: Some(PromptStatus::Archived),
        ..PromptPatch::default()
    };
    store
        .update_prompt(archived, patch, None)
        .await
        .expect("archive");
    let page = store.list_prompts(&query()).await.expect("list");
    assert_eq!(page.total, 1);
    assert_eq!(names(&store, query()).await, ["kept"]);
    let asked = PromptQuery {
        status: Some(PromptStatus::Archived),
        ..query()
    };
    assert_eq!(names(&store, asked).await, ["old"]);
}

async fn list_items_carry_their_labels_and_latest_version_number(store: Arc<dyn Store>) {
    let a = create(&store, "a").await;
    let b = create(&store, "b").await;
    store.add_version(a, text("v2")).await.expect("a v2");
    store.add_version(a, text("v3")).await.expect("a v3");
    store
        .set_label(a, &label("production"), 2, None)
        .await
        .expect("label a");
    let page = store.list_prompts(&query()).await.expect("list");
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.items[0].prompt.id, a);
    assert_eq!(page.items[0].latest_version, 3);
    assert_eq!(
        page.items[0].labels,
        labels(&[("latest", 3), ("production", 2)])
    );
    assert_eq!(page.items[1].prompt.id, b);
    assert_eq!(page.items[1].latest_version, 1);
    assert_eq!(page.items[1].labels, labels(&[("latest", 1)]));
    let detail = store.get_prompt(&PromptKey::Id(a)).await.expect("get a");
    assert_eq!(page.items[0].prompt, detail.prompt);
}

async fn updating_without_an_expected_revision_applies_the_patch_and_bumps_the_revision(
    store: Arc<dyn Store>,
) {
    let prompt = NewPrompt {
        title: Some("Old".into()),
        description: Some("keep me".into()),
        agent_id: Some("agent-1".into()),
        ..new_prompt("p")
    };
    let created = store
        .create_prompt(prompt, text("t"))
        .await
        .expect("create")
        .prompt;
    let owner = Uuid::now_v7();
    let patch = PromptPatch {
        title: Some(Some("New".into())),
        agent_id: Some(None),
        owner_id: Some(Some(owner)),
        scope: Some(Scope::User),
        tags: Some(vec!["t1".into()]),
        classification: Some(Classification::Restricted),
        long_description_markdown: Some(Some("## more".into())),
        ..PromptPatch::default()
    };
    let updated = store
        .update_prompt(created.id, patch, None)
        .await
        .expect("update");
    assert_eq!(updated.revision, 2);
    assert_eq!(updated.title.as_deref(), Some("New"));
    assert_eq!(updated.description.as_deref(), Some("keep me"));
    assert_eq!(updated.agent_id, None);
    assert_eq!(updated.owner_id, Some(owner));
    assert_eq!(updated.scope, Scope::User);
    assert_eq!(updated.tags, vec!["t1".to_string()]);
    assert_eq!(updated.classification, Classification::Restricted);
    assert_eq!(
        updated.long_description_markdown.as_deref(),
        Some("## more")
    );
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at >= created.updated_at);
    let read = store
        .find_prompt(&PromptKey::Id(created.id))
        .await
        .expect("find");
    assert_eq!(read, updated);
}

async fn updating_with_a_stale_revision_is_refused_with_the_current_revision(
    store: Arc<dyn Store>,
) {
    let id = create(&store, "p").await;
    let title = |t: &str| PromptPatch {
        title: Some(Some(t.into())),
        ..PromptPatch::default()
    };
    let updated = store
        .update_prompt(id, title("one"), Some(1))
        .await
        .expect("fresh revision");
    assert_eq!(updated.revision, 2);
    match store.update_prompt(id, title("two"), Some(1)).await {
        Err(StoreError::PreconditionFailed { expected, current }) => {
            assert_eq!((expected, current), (1, 2));
        }
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    let read = store.find_prompt(&PromptKey::Id(id)).await.expect("find");
    assert_eq!(read.title.as_deref(), Some("one"));
    assert_eq!(read.revision, 2);
}

async fn updating_a_missing_prompt_is_not_found(store: Arc<dyn Store>) {
    let id = Uuid::now_v7();
    let what = format!("prompt {id}");
    assert_not_found(
        store.update_prompt(id, PromptPatch::default(), None).await,
        &what,
    );
    assert_not_found(
        store
            .update_prompt(id, PromptPatch::default(), Some(1))
            .await,
        &what,
    );
}

async fn updating_a_prompt_to_an_unknown_type_is_not_found(store: Arc<dyn Store>) {
    let id = create(&store, "p").await;
    let patch = PromptPatch {
        prompt_type: Some(Some("ghost".into())),
        ..PromptPatch::default()
    };
    assert_not_found(
        store.update_prompt(id, patch, None).await,
        "prompt type \"ghost\"",
    );
    let read = store.find_prompt(&PromptKey::Id(id)).await.expect("find");
    assert_eq!(read.revision, 1);
}

async fn deleting_a_prompt_removes_its_versions_labels_history_and_links(store: Arc<dyn Store>) {
    let id = create(&store, "doomed").await;
    let other = create(&store, "other").await;
    store.add_version(id, text("v2")).await.expect("v2");
    store
        .set_label(id, &label("production"), 2, None)
        .await
        .expect("label");
    for prompt_id in [id, other] {
        store
            .upsert_link(NewLink {
                prompt_id,
                capability: "summarize".into(),
                agent_id: None,
                priority: 0,
            })
            .await
            .expect("link");
    }
    store.delete_prompt(id).await.expect("delete");

    assert_not_found(
        store.get_prompt(&PromptKey::Id(id)).await,
        &format!("prompt {id}"),
    );
    assert_not_found(store.get_version(id, 1).await, &format!("prompt {id}"));
    assert_not_found(
        store.label_history(id, &label("production")).await,
        &format!("prompt {id}"),
    );
    let links = store
        .list_links(&LinkFilter::default())
        .await
        .expect("links");
    assert_eq!(
        links.iter().map(|l| l.prompt_id).collect::<Vec<_>>(),
        [other]
    );
    assert_not_found(store.delete_prompt(id).await, &format!("prompt {id}"));

    // The name is free again, and the new prompt starts from scratch.
    let again = store
        .create_prompt(new_prompt("doomed"), text("fresh"))
        .await
        .expect("recreate");
    assert_eq!(again.labels, labels(&[("latest", 1)]));
    let history = store
        .label_history(again.prompt.id, &label("production"))
        .await
        .expect("history");
    assert!(history.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Versions.

async fn versions_are_numbered_in_order_with_the_semver_bump_the_change_requires(
    store: Arc<dyn Store>,
) {
    let id = create(&store, "p").await; // "Hello {{ name }}", 1.0.0
    let steps = [
        (draft("Hi {{ name }}", json!({}), None), 2, "1.0.1"),
        (
            draft("Hi {{ name }}", json!({"temperature": 0.5}), None),
            3,
            "1.1.0",
        ),
        (
            draft(
                "Hi {{ name }} from {{ place }}",
                json!({"temperature": 0.5}),
                None,
            ),
            4,
            "2.0.0",
        ),
        (
            draft(
                "Hey {{ name }} from {{ place }}",
                json!({"temperature": 0.5}),
                Some(Bump::Minor),
            ),
            5,
            "2.1.0",
        ),
    ];
    for (step_draft, number, semver) in steps {
        let added = store
            .add_version(id, version(step_draft, &[]))
            .await
            .expect("add");
        assert!(added.created);
        assert_eq!(added.version.version_number, number);
        assert_eq!(added.version.semver.to_string(), semver);
        assert_eq!(added.version.status.as_str(), "draft");
        let read = store.get_version(id, number).await.expect("read back");
        assert_eq!(read, added.version);
    }
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    let numbers: Vec<i64> = detail.versions.iter().map(|v| v.version_number).collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
}

async fn carried_over_fields_come_from_the_newest_version_at_write_time(store: Arc<dyn Store>) {
    let id = create(&store, "carry/over").await;
    // Another writer lands a version with a new config after this draft was prepared.
    let configured = VersionDraft::new(
        Content::Text("Hello {{ name }}".into()),
        serde_json::json!({"model": "m2"}),
        None,
        None,
    )
    .expect("draft");
    store
        .add_version(id, version(configured, &[]))
        .await
        .expect("v2");
    let carried = NewVersion {
        carry_over: CarryOver {
            config: true,
            parameter_schema: true,
        },
        ..text("Hi {{ name }}")
    };
    let added = store.add_version(id, carried).await.expect("v3");
    assert_eq!(added.version.version_number, 3);
    assert_eq!(
        added.version.config,
        serde_json::json!({"model": "m2"}),
        "the newest config, not the draft's"
    );
    assert_eq!(
        added.version.semver.to_string(),
        "1.1.1",
        "a text edit on top of 1.1.0"
    );
}

async fn adding_an_identical_version_returns_the_existing_one(store: Arc<dyn Store>) {
    let id = create(&store, "p").await;
    let v2 = store.add_version(id, text("second")).await.expect("v2");
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    let again = store.add_version(id, text("second")).await.expect("again");
    assert!(!again.created);
    assert_eq!(again.version, v2.version);
    let after = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(after.prompt.revision, revision);
    assert_eq!(after.versions.len(), 2);
    // Identical to an older version (not the latest) is a real change.
    let back = store
        .add_version(id, text("Hello {{ name }}"))
        .await
        .expect("back to v1 text");
    assert!(back.created);
    assert_eq!(back.version.version_number, 3);
}

async fn an_identical_version_with_labels_moves_them_to_the_existing_version(
    store: Arc<dyn Store>,
) {
    let id = create(&store, "p").await;
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    let same = version(draft("Hello {{ name }}", json!({}), None), &["production"]);
    let added = store
        .add_version(id, same.clone())
        .await
        .expect("identical with label");
    assert!(!added.created);
    assert_eq!(added.version.version_number, 1);
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.labels, labels(&[("latest", 1), ("production", 1)]));
    assert_eq!(detail.prompt.revision, revision + 1);
    // Retrying changes nothing more.
    store.add_version(id, same).await.expect("retry");
    let retried = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(retried.prompt.revision, revision + 1);
    let history = store
        .label_history(id, &label("production"))
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
}

async fn an_identical_version_with_an_explicit_bump_creates_a_new_one(store: Arc<dyn Store>) {
    let id = create(&store, "p").await;
    let bumped = version(draft("Hello {{ name }}", json!({}), Some(Bump::Major)), &[]);
    let added = store.add_version(id, bumped).await.expect("bumped");
    assert!(added.created);
    assert_eq!(added.version.version_number, 2);
    assert_eq!(added.version.semver.to_string(), "2.0.0");
}

async fn a_requested_bump_smaller_than_required_is_a_domain_error(store: Arc<dyn Store>) {
    let id = create(&store, "p").await;
    let too_small = version(
        draft(
            "Hello {{ name }} from {{ place }}",
            json!({}),
            Some(Bump::Patch),
        ),
        &[],
    );
    let result = store.add_version(id, too_small).await;
    assert!(
        matches!(
            result,
            Err(StoreError::Domain(DomainError::BumpTooSmall {
                requested: "patch",
                required: "major"
            }))
        ),
        "{result:?}"
    );
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.versions.len(), 1);
    assert_eq!(detail.prompt.revision, 1);
}

async fn adding_a_version_bumps_the_revision_and_moves_latest_without_history(
    store: Arc<dyn Store>,
) {
    let created = store
        .create_prompt(new_prompt("p"), text("one"))
        .await
        .expect("create")
        .prompt;
    let added = store
        .add_version(created.id, text("two"))
        .await
        .expect("v2");
    let detail = store
        .get_prompt(&PromptKey::Id(created.id))
        .await
        .expect("get");
    assert_eq!(detail.prompt.revision, 2);
    assert_eq!(detail.prompt.updated_at, added.version.created_at);
    assert!(detail.prompt.updated_at >= created.updated_at);
    assert_eq!(detail.labels, labels(&[("latest", 2)]));
    let history = store
        .label_history(created.id, &LabelName::latest())
        .await
        .expect("history");
    assert!(history.is_empty());
    let (_, latest) = store
        .resolve_version(
            &PromptKey::Id(created.id),
            &VersionSelector::Label(LabelName::latest()),
        )
        .await
        .expect("resolve latest");
    assert_eq!(latest, added.version);
}

async fn adding_a_version_to_a_missing_prompt_is_not_found(store: Arc<dyn Store>) {
    let id = Uuid::now_v7();
    assert_not_found(
        store.add_version(id, text("x")).await,
        &format!("prompt {id}"),
    );
}

async fn adding_content_of_the_wrong_kind_is_a_domain_error(store: Arc<dyn Store>) {
    let id = create(&store, "p").await;
    let chat = VersionDraft::new(
        Content::from_json(&json!([{"role": "user", "content": "hi"}])).expect("chat content"),
        json!({}),
        None,
        None,
    )
    .expect("valid chat draft");
    let result = store.add_version(id, version(chat, &[])).await;
    assert!(
        matches!(
            result,
            Err(StoreError::Domain(DomainError::KindMismatch { .. }))
        ),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Labels.

async fn labels_requested_with_a_version_point_at_it_and_are_recorded(store: Arc<dyn Store>) {
    let author = Uuid::now_v7();
    let first = NewVersion {
        labels: vec![label("staging")],
        ..text("one")
    };
    let id = store
        .create_prompt(new_prompt("p"), first)
        .await
        .expect("create")
        .prompt
        .id;
    let second = NewVersion {
        author_id: Some(author),
        // `latest` and duplicates in the request are ignored.
        labels: vec![
            label("staging"),
            label("production"),
            label("staging"),
            LabelName::latest(),
        ],
        ..text("two")
    };
    store.add_version(id, second).await.expect("v2");
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(
        detail.labels,
        labels(&[("latest", 2), ("production", 2), ("staging", 2)])
    );
    let staging = store
        .label_history(id, &label("staging"))
        .await
        .expect("staging history");
    let moves: Vec<_> = staging
        .iter()
        .map(|e| (e.from_version, e.to_version))
        .collect();
    assert_eq!(moves, [(None, Some(1)), (Some(1), Some(2))]);
    assert_eq!(staging[1].actor_id, Some(author));
    let production = store
        .label_history(id, &label("production"))
        .await
        .expect("history");
    let moves: Vec<_> = production
        .iter()
        .map(|e| (e.from_version, e.to_version))
        .collect();
    assert_eq!(moves, [(None, Some(2))]);
}

async fn setting_a_label_moves_it_and_records_every_move(store: Arc<dyn Store>) {
    let id = create(&store, "p").await;
    store.add_version(id, text("two")).await.expect("v2");
    let actor = Uuid::now_v7();
    let production = label("production");
    let mut revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    for (to, from) in [(1, None), (2, Some(1)), (1, Some(2))] {
        let event = store
            .set_label(id, &production, to, Some(actor))
            .await
            .expect("set label")
            .expect("a move");
        assert_eq!((event.from_version, event.to_version), (from, Some(to)));
        assert_eq!(event.actor_id, Some(actor));
        assert_eq!(event.label, production);
        let prompt = store.find_prompt(&PromptKey::Id(id)).await.expect("find");
        assert_eq!(prompt.revision, revision + 1);
        revision = prompt.revision;
    }
    let history = store.label_history(id, &production).await.expect("history");
    let moves: Vec<_> = history
        .iter()
        .map(|e| (e.from_version, e.to_version))
        .collect();
    assert_eq!(
        moves,
        [(None, Some(1)), (Some(1), Some(2)), (Some(2), Some(1))]
    );
    assert!(history.windows(2).all(|pair| pair[0].at <= pair[1].at));
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.labels, labels(&[("latest", 2), ("production", 1)]));
}

async fn setting_a_label_to_where_it_already_points_records_nothing(store: Arc<dyn Store>) {
    let id = create(&store, "p").await;
    store
        .set_label(id, &label("production"), 1, None)
        .await
        .expect("first");
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    let again = store
        .set_label(id, &label("production"), 1, None)
        .await
        .expect("again");
    assert_eq!(again, None);
    assert_eq!(
        store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .revision,
        revision
    );
    let history = store
        .label_history(id, &label("production"))
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
}

async fn setting_a_label_on_a_missing_version_is_not_found_naming_the_version(
    store: Arc<dyn Store>,
) {
    let id = create(&store, "a/b").await;
    assert_not_found(
        store.set_label(id, &label("production"), 9, None).await,
        "version 9 of prompt \"a/b\"",
    );
    let missing = Uuid::now_v7();
    assert_not_found(
        store
            .set_label(missing, &label("production"), 1, None)
            .await,
        &format!("prompt {missing}"),
    );
    let history = store
        .label_history(id, &label("production"))
        .await
        .expect("history");
    assert!(history.is_empty());
    assert_eq!(
        store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .revision,
        1
    );
}

async fn removing_a_label_records_it_and_removing_it_again_is_not_found(store: Arc<dyn Store>) {
    let id = create(&store, "a/b").await;
    store
        .set_label(id, &label("staging"), 1, None)
        .await
        .expect("set");
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    let actor = Uuid::now_v7();
    let event = store
        .remove_label(id, &label("staging"), Some(actor))
        .await
        .expect("remove");
    assert_eq!((event.from_version, event.to_version), (Some(1), None));
    assert_eq!(event.actor_id, Some(actor));
    assert_eq!(
        store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .revision,
        revision + 1
    );
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.labels, labels(&[("latest", 1)]));
    let history = store
        .label_history(id, &label("staging"))
        .await
        .expect("history");
    let moves: Vec<_> = history
        .iter()
        .map(|e| (e.from_version, e.to_version))
        .collect();
    assert_eq!(moves, [(None, Some(1)), (Some(1), None)]);
    assert_not_found(
        store.remove_label(id, &label("staging"), None).await,
        "label \"staging\" of prompt \"a/b\"",
    );
}

async fn label_history_of_a_missing_prompt_is_not_found(store: Arc<dyn Store>) {
    let id = Uuid::now_v7();
    assert_not_found(
        store.label_history(id, &label("production")).await,
        &format!("prompt {id}"),
    );
    assert_not_found(
        store.remove_label(id, &label("production"), None).await,
        &format!("prompt {id}"),
    );
}

// ---------------------------------------------------------------------------------------------
// Reading versions.

async fn a_version_can_be_read_by_number(store: Arc<dyn Store>) {
    let created = store
        .create_prompt(new_prompt("a/b"), text("one"))
        .await
        .expect("create");
    let id = created.prompt.id;
    assert_eq!(
        store.get_version(id, 1).await.expect("v1"),
        created.versions[0]
    );
    assert_not_found(
        store.get_version(id, 2).await,
        "version 2 of prompt \"a/b\"",
    );
}

async fn resolving_by_number_and_by_label_returns_the_prompt_and_that_version(
    store: Arc<dyn Store>,
) {
    let created = store
        .create_prompt(new_prompt("a/b"), text("one"))
        .await
        .expect("create");
    let id = created.prompt.id;
    let v2 = store
        .add_version(id, text("two"))
        .await
        .expect("v2")
        .version;
    store
        .set_label(id, &label("production"), 1, None)
        .await
        .expect("label");
    let prompt = store.find_prompt(&PromptKey::Id(id)).await.expect("find");

    for key in [PromptKey::Id(id), by_name("a/b")] {
        let (p, v) = store
            .resolve_version(&key, &VersionSelector::Number(2))
            .await
            .expect("by number");
        assert_eq!((p, v), (prompt.clone(), v2.clone()));
        let (p, v) = store
            .resolve_version(&key, &VersionSelector::Label(label("production")))
            .await
            .expect("by label");
        assert_eq!((p, v), (prompt.clone(), created.versions[0].clone()));
        let (_, v) = store
            .resolve_version(&key, &VersionSelector::Label(LabelName::latest()))
            .await
            .expect("latest");
        assert_eq!(v, v2);
    }
}

async fn resolving_a_missing_label_names_the_label_and_the_prompt(store: Arc<dyn Store>) {
    let id = create(&store, "a/b").await;
    for key in [PromptKey::Id(id), by_name("a/b")] {
        assert_not_found(
            store
                .resolve_version(&key, &VersionSelector::Label(label("production")))
                .await,
            "label \"production\" of prompt \"a/b\"",
        );
    }
}

async fn resolving_a_missing_version_number_or_prompt_is_not_found(store: Arc<dyn Store>) {
    let id = create(&store, "a/b").await;
    assert_not_found(
        store
            .resolve_version(&PromptKey::Id(id), &VersionSelector::Number(7))
            .await,
        "version 7 of prompt \"a/b\"",
    );
    assert_not_found(
        store
            .resolve_version(&by_name("c/d"), &VersionSelector::Number(1))
            .await,
        "prompt \"c/d\"",
    );
    let missing = Uuid::now_v7();
    assert_not_found(
        store
            .resolve_version(
                &PromptKey::Id(missing),
                &VersionSelector::Label(LabelName::latest()),
            )
            .await,
        &format!("prompt {missing}"),
    );
}

// ---------------------------------------------------------------------------------------------
// Links.

// ---------------------------------------------------------------------------------------------
// Version status.

async fn a_version_status_moves_only_from_the_expected_status_and_bumps_the_revision(
    store: Arc<dyn Store>,
) {
    // A sealed prompt too: the returned version is opened like any read.
    for (prompt_name, classification) in [
        ("status/internal", Classification::Internal),
        ("status/confidential", Classification::Confidential),
    ] {
        let created = store
            .create_prompt(classified(prompt_name, classification), text("v1 text"))
            .await
            .expect("create");
        let id = created.prompt.id;
        store.add_version(id, text("v2 text")).await.expect("add");
        let before = store.get_version(id, 1).await.expect("v1");
        assert_eq!(before.status, VersionStatus::Draft);
        let revision = store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .revision;

        let moved = store
            .set_version_status(id, 1, VersionStatus::Draft, VersionStatus::Review)
            .await
            .expect("draft → review");
        assert_eq!(moved.status, VersionStatus::Review);
        assert_eq!(
            moved,
            PromptVersion {
                status: VersionStatus::Review,
                ..before.clone()
            },
            "only the status changes"
        );
        assert_eq!(store.get_version(id, 1).await.expect("v1"), moved);
        assert_eq!(
            store.get_version(id, 2).await.expect("v2").status,
            VersionStatus::Draft,
            "other versions keep theirs"
        );
        let after = store.find_prompt(&PromptKey::Id(id)).await.expect("find");
        assert_eq!(after.revision, revision + 1);

        // A stale expectation writes nothing and names the current status.
        match store
            .set_version_status(id, 1, VersionStatus::Draft, VersionStatus::Review)
            .await
        {
            Err(StoreError::StatusChanged {
                version,
                expected,
                current,
            }) => assert_eq!(
                (version, expected, current),
                (1, VersionStatus::Draft, VersionStatus::Review)
            ),
            other => panic!("expected StatusChanged, got {other:?}"),
        }
        assert_eq!(
            store
                .find_prompt(&PromptKey::Id(id))
                .await
                .expect("find")
                .revision,
            revision + 1
        );
        // The store does not judge the move itself (the core's lifecycle does): any word goes.
        for (from, to) in [
            (VersionStatus::Review, VersionStatus::Approved),
            (VersionStatus::Approved, VersionStatus::Deprecated),
            (VersionStatus::Deprecated, VersionStatus::Archived),
        ] {
            let moved = store
                .set_version_status(id, 1, from, to)
                .await
                .expect("move");
            assert_eq!(moved.status, to);
        }
        let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
        assert_eq!(detail.versions[1].status, VersionStatus::Archived);
        assert_eq!(detail.versions[1].content, Content::Text("v1 text".into()));
        assert_eq!(detail.prompt.revision, revision + 4);
    }
}

async fn moving_the_status_of_a_missing_version_or_prompt_is_not_found(store: Arc<dyn Store>) {
    let id = create(&store, "status/p").await;
    assert_not_found(
        store
            .set_version_status(id, 9, VersionStatus::Draft, VersionStatus::Review)
            .await,
        "version 9 of prompt \"status/p\"",
    );
    let missing = Uuid::now_v7();
    assert_not_found(
        store
            .set_version_status(missing, 1, VersionStatus::Draft, VersionStatus::Review)
            .await,
        &format!("prompt {missing}"),
    );
    assert_eq!(
        store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .revision,
        1
    );
}

async fn concurrent_status_changes_of_one_version_let_exactly_one_win(store: Arc<dyn Store>) {
    let id = create(&store, "status/race").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .set_version_status(id, 1, VersionStatus::Draft, VersionStatus::Review)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(version) => {
                assert_eq!(version.status, VersionStatus::Review);
                won += 1;
            }
            Err(StoreError::StatusChanged { current, .. }) => {
                assert_eq!(current, VersionStatus::Review)
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one writer moves the status");
    assert_eq!(
        store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .revision,
        2
    );
}

fn link(prompt_id: Uuid, capability: &str, agent_id: Option<&str>, priority: i32) -> NewLink {
    NewLink {
        prompt_id,
        capability: capability.into(),
        agent_id: agent_id.map(String::from),
        priority,
    }
}

async fn linking_again_updates_the_priority_of_the_same_link(store: Arc<dyn Store>) {
    let id = create(&store, "a/b").await;
    let global = store
        .upsert_link(link(id, "summarize", None, 1))
        .await
        .expect("global");
    assert_eq!(global.prompt_name.as_str(), "a/b");
    assert_eq!(global.agent_id, None);
    let global_again = store
        .upsert_link(link(id, "summarize", None, 5))
        .await
        .expect("again");
    assert_eq!(global_again.id, global.id);
    assert_eq!(global_again.priority, 5);
    assert_eq!(global_again.created_at, global.created_at);
    let own = store
        .upsert_link(link(id, "summarize", Some("agent-1"), 2))
        .await
        .expect("own");
    assert_ne!(own.id, global.id);
    let own_again = store
        .upsert_link(link(id, "summarize", Some("agent-1"), 3))
        .await
        .expect("own");
    assert_eq!(own_again.id, own.id);
    let other_capability = store
        .upsert_link(link(id, "triage", None, 0))
        .await
        .expect("other");
    assert_ne!(other_capability.id, global.id);

    let all = store
        .list_links(&LinkFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 3);
    let found = all
        .iter()
        .find(|l| l.id == global.id)
        .expect("global link listed");
    assert_eq!(found, &global_again);
}

async fn links_list_the_agents_own_first_then_global_ones_by_priority(store: Arc<dyn Store>) {
    let a = create(&store, "a").await;
    let b = create(&store, "b").await;
    let c = create(&store, "c").await;
    let global_low = store
        .upsert_link(link(a, "summarize", None, 1))
        .await
        .expect("link");
    let global_high = store
        .upsert_link(link(b, "summarize", None, 9))
        .await
        .expect("link");
    let global_tie = store
        .upsert_link(link(c, "summarize", None, 1))
        .await
        .expect("link");
    let own_low = store
        .upsert_link(link(c, "summarize", Some("agent-1"), 0))
        .await
        .expect("link");
    let own_high = store
        .upsert_link(link(a, "summarize", Some("agent-1"), 5))
        .await
        .expect("link");
    let someone_else = store
        .upsert_link(link(b, "summarize", Some("agent-2"), 100))
        .await
        .expect("link");
    let other_capability = store
        .upsert_link(link(a, "triage", Some("agent-1"), 50))
        .await
        .expect("link");

    let ids = |links: Vec<promptvault_core::model::Link>| {
        links.into_iter().map(|l| l.id).collect::<Vec<_>>()
    };
    let for_agent = LinkFilter {
        agent_id: Some("agent-1".into()),
        capability: Some("summarize".into()),
        prompt_id: None,
        link_id: None,
    };
    assert_eq!(
        ids(store.list_links(&for_agent).await.expect("list")),
        [
            own_high.id,
            own_low.id,
            global_high.id,
            global_low.id,
            global_tie.id
        ]
    );
    let agent_everything = LinkFilter {
        agent_id: Some("agent-1".into()),
        ..LinkFilter::default()
    };
    assert_eq!(
        ids(store.list_links(&agent_everything).await.expect("list")),
        [
            other_capability.id,
            own_high.id,
            own_low.id,
            global_high.id,
            global_low.id,
            global_tie.id
        ]
    );
    let by_prompt = LinkFilter {
        prompt_id: Some(b),
        ..LinkFilter::default()
    };
    assert_eq!(
        ids(store.list_links(&by_prompt).await.expect("list")),
        [someone_else.id, global_high.id]
    );
    let unknown_agent = LinkFilter {
        agent_id: Some("agent-9".into()),
        capability: Some("summarize".into()),
        prompt_id: None,
        link_id: None,
    };
    assert_eq!(
        ids(store.list_links(&unknown_agent).await.expect("list")),
        [global_high.id, global_low.id, global_tie.id]
    );
    let all = store
        .list_links(&LinkFilter::default())
        .await
        .expect("all links");
    let one = store
        .list_links(&LinkFilter {
            link_id: Some(all[0].id),
            ..Default::default()
        })
        .await
        .expect("one link");
    assert_eq!(
        one,
        vec![all[0].clone()],
        "the link_id filter picks exactly that link"
    );
}

async fn deleting_a_link_removes_it_and_deleting_it_again_is_not_found(store: Arc<dyn Store>) {
    let id = create(&store, "a").await;
    let created = store
        .upsert_link(link(id, "summarize", None, 0))
        .await
        .expect("link");
    store.delete_link(created.id).await.expect("delete");
    assert!(
        store
            .list_links(&LinkFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
    assert_not_found(
        store.delete_link(created.id).await,
        &format!("link {}", created.id),
    );
}

async fn linking_a_missing_prompt_is_not_found(store: Arc<dyn Store>) {
    let missing = Uuid::now_v7();
    assert_not_found(
        store.upsert_link(link(missing, "summarize", None, 0)).await,
        &format!("prompt {missing}"),
    );
}

// ---------------------------------------------------------------------------------------------
// Prompt types.

fn prompt_type(key: &str) -> NewPromptType {
    NewPromptType {
        key: key.into(),
        name: format!("{key} prompts"),
        schema: Some(json!({"type": "object", "required": ["topic"]})),
        restricted_creation: true,
        requires_approval: false,
        review_every_days: None,
        approval_workflow: None,
    }
}

async fn prompt_types_can_be_created_read_listed_updated_and_deleted(store: Arc<dyn Store>) {
    let created = store
        .create_prompt_type(prompt_type("summary"))
        .await
        .expect("create");
    assert_eq!(created.key, "summary");
    assert!(created.restricted_creation);
    store
        .create_prompt_type(prompt_type("agent.tool"))
        .await
        .expect("create second");
    assert_eq!(
        store.get_prompt_type("summary").await.expect("get"),
        created
    );
    let keys: Vec<String> = store
        .list_prompt_types()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(keys, ["agent.tool", "summary"]);

    let patch = PromptTypePatch {
        name: Some("Summaries".into()),
        schema: Some(None),
        requires_approval: Some(true),
        restricted_creation: None,
        review_every_days: None,
        approval_workflow: None,
    };
    let updated = store
        .update_prompt_type("summary", patch)
        .await
        .expect("update");
    assert_eq!(updated.name, "Summaries");
    assert_eq!(updated.schema, None);
    assert!(updated.requires_approval);
    assert!(updated.restricted_creation);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        store.get_prompt_type("summary").await.expect("get"),
        updated
    );

    store.delete_prompt_type("summary").await.expect("delete");
    assert_not_found(
        store.get_prompt_type("summary").await,
        "prompt type \"summary\"",
    );
    assert_not_found(
        store.delete_prompt_type("summary").await,
        "prompt type \"summary\"",
    );
    assert_not_found(
        store
            .update_prompt_type("summary", PromptTypePatch::default())
            .await,
        "prompt type \"summary\"",
    );
}

async fn creating_a_duplicate_prompt_type_is_a_conflict(store: Arc<dyn Store>) {
    store
        .create_prompt_type(prompt_type("summary"))
        .await
        .expect("create");
    let what = assert_conflict(store.create_prompt_type(prompt_type("summary")).await);
    assert!(what.contains("\"summary\""), "{what}");
}

async fn deleting_a_prompt_type_in_use_is_a_conflict(store: Arc<dyn Store>) {
    store
        .create_prompt_type(prompt_type("summary"))
        .await
        .expect("create type");
    let prompt = NewPrompt {
        prompt_type: Some("summary".into()),
        ..new_prompt("p")
    };
    let id = store
        .create_prompt(prompt, text("t"))
        .await
        .expect("create prompt")
        .prompt
        .id;
    let what = assert_conflict(store.delete_prompt_type("summary").await);
    assert!(what.contains("\"summary\""), "{what}");
    // Once no prompt uses it, it can go.
    let patch = PromptPatch {
        prompt_type: Some(None),
        ..PromptPatch::default()
    };
    store.update_prompt(id, patch, None).await.expect("untype");
    store.delete_prompt_type("summary").await.expect("delete");
}

// ---------------------------------------------------------------------------------------------
// Users and tokens.

fn new_user(email: Option<&str>) -> NewUser {
    NewUser {
        email: email.map(String::from),
        external_user_id: None,
        did: None,
        at_protocol_handle: None,
        first_name: None,
        last_name: None,
        roles: vec![Role::User],
        permissions: Vec::new(),
        data: json!({}),
    }
}

fn new_token(token_name: &str, token_hash: &str, user_id: Option<Uuid>) -> NewApiToken {
    NewApiToken {
        name: token_name.into(),
        token_hash: token_hash.into(),
        token_prefix: "pv_abcd".into(),
        role: Role::User,
        user_id,
        agent_id: None,
        scopes: None,
        prompt_names: None,
        expires_at: None,
        created_by: None,
    }
}

async fn users_can_be_created_read_listed_updated_and_deleted(store: Arc<dyn Store>) {
    let ada = store
        .create_user(NewUser {
            external_user_id: Some("ext-1".into()),
            did: Some("did:plc:ada".into()),
            at_protocol_handle: Some("ada.example.com".into()),
            first_name: Some("Ada".into()),
            last_name: Some("Byron".into()),
            roles: vec![Role::Admin, Role::User],
            permissions: vec!["link".into()],
            data: json!({"team": "core", "n": [1, 2.5]}),
            ..new_user(Some("ada@example.com"))
        })
        .await
        .expect("create ada");
    assert_eq!(ada.email.as_deref(), Some("ada@example.com"));
    assert_eq!(ada.roles, vec![Role::Admin, Role::User]);
    assert_eq!(ada.permissions, vec!["link".to_string()]);
    assert_eq!(ada.data, json!({"team": "core", "n": [1, 2.5]}));
    assert_eq!(ada.created_at, ada.updated_at);
    // Two users without an email do not collide.
    let bob = store.create_user(new_user(None)).await.expect("create bob");
    let carol = store
        .create_user(new_user(None))
        .await
        .expect("create carol");

    assert_eq!(store.get_user(ada.id).await.expect("get ada"), ada);
    assert_eq!(
        store.list_users().await.expect("list"),
        vec![ada.clone(), bob.clone(), carol.clone()]
    );

    let patch = UserPatch {
        email: Some(None),
        last_name: Some(Some("Lovelace".into())),
        roles: Some(vec![Role::Agent]),
        permissions: Some(Vec::new()),
        data: Some(json!({"team": "ops"})),
        ..UserPatch::default()
    };
    let updated = store.update_user(ada.id, patch).await.expect("update");
    assert_eq!(updated.email, None);
    assert_eq!(updated.first_name.as_deref(), Some("Ada"));
    assert_eq!(updated.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(updated.roles, vec![Role::Agent]);
    assert!(updated.permissions.is_empty());
    assert_eq!(updated.data, json!({"team": "ops"}));
    assert_eq!(updated.created_at, ada.created_at);
    assert!(updated.updated_at >= ada.updated_at);
    assert_eq!(store.get_user(ada.id).await.expect("get updated"), updated);

    store.delete_user(bob.id).await.expect("delete bob");
    let what = format!("user {}", bob.id);
    assert_not_found(store.get_user(bob.id).await, &what);
    assert_not_found(store.delete_user(bob.id).await, &what);
    assert_not_found(store.update_user(bob.id, UserPatch::default()).await, &what);
    assert_eq!(
        store.list_users().await.expect("list"),
        vec![updated, carol]
    );
}

async fn creating_or_updating_a_user_to_a_taken_email_is_a_conflict(store: Arc<dyn Store>) {
    store
        .create_user(new_user(Some("a@example.com")))
        .await
        .expect("create a");
    let what = assert_conflict(store.create_user(new_user(Some("a@example.com"))).await);
    assert!(what.contains("a@example.com"), "{what}");
    let b = store
        .create_user(new_user(Some("b@example.com")))
        .await
        .expect("create b");
    let patch = UserPatch {
        email: Some(Some("a@example.com".into())),
        ..UserPatch::default()
    };
    assert_conflict(store.update_user(b.id, patch).await);
    assert_eq!(store.get_user(b.id).await.expect("get b"), b);
    assert_eq!(store.list_users().await.expect("list").len(), 2);
}

async fn deleting_a_user_deletes_their_tokens(store: Arc<dyn Store>) {
    let user = store.create_user(new_user(None)).await.expect("user");
    for (token_name, token_hash) in [("one", "hash-1"), ("two", "hash-2")] {
        store
            .create_token(new_token(token_name, token_hash, Some(user.id)))
            .await
            .expect("user token");
    }
    let agent_token = store
        .create_token(NewApiToken {
            role: Role::Agent,
            agent_id: Some("bot".into()),
            ..new_token("agent", "hash-3", None)
        })
        .await
        .expect("agent token");
    assert_eq!(store.count_tokens().await.expect("count"), 3);

    store.delete_user(user.id).await.expect("delete user");
    for token_hash in ["hash-1", "hash-2"] {
        assert_eq!(
            store.find_token_by_hash(token_hash).await.expect("find"),
            None,
            "{token_hash}"
        );
    }
    assert_eq!(
        store.list_tokens().await.expect("list"),
        vec![agent_token.clone()]
    );
    assert_eq!(store.count_tokens().await.expect("count"), 1);
    // A token for a user that does not exist (any more) is refused.
    assert_not_found(
        store
            .create_token(new_token("late", "hash-4", Some(user.id)))
            .await,
        &format!("user {}", user.id),
    );
}

async fn tokens_are_found_by_hash_listed_newest_first_and_counted(store: Arc<dyn Store>) {
    assert_eq!(store.count_tokens().await.expect("count"), 0);
    let creator = store.create_user(new_user(None)).await.expect("creator");
    let expires_at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let first = store
        .create_token(NewApiToken {
            role: Role::Agent,
            agent_id: Some("bot".into()),
            scopes: Some(vec![Scope::Global, Scope::Agent]),
            prompt_names: Some(vec!["support/".into()]),
            expires_at: Some(expires_at),
            created_by: Some(creator.id),
            ..new_token("first", "hash-first", None)
        })
        .await
        .expect("first token");
    assert_eq!(first.name, "first");
    assert_eq!(first.role, Role::Agent);
    assert_eq!(first.scopes, Some(vec![Scope::Global, Scope::Agent]));
    assert_eq!(first.prompt_names, Some(vec!["support/".to_string()]));
    assert_eq!(
        first.expires_at,
        Some(expires_at.truncate_to_microsecond()),
        "stored times keep microseconds"
    );
    assert_eq!((first.revoked_at, first.last_used_at), (None, None));
    let second = store
        .create_token(new_token("second", "hash-second", Some(creator.id)))
        .await
        .expect("second token");

    assert_eq!(
        store.find_token_by_hash("hash-first").await.expect("find"),
        Some(first.clone())
    );
    assert_eq!(
        store.find_token_by_hash("hash-second").await.expect("find"),
        Some(second.clone())
    );
    assert_eq!(store.find_token_by_hash("nope").await.expect("find"), None);
    assert_eq!(
        store.list_tokens().await.expect("list"),
        vec![second, first]
    );
    assert_eq!(store.count_tokens().await.expect("count"), 2);

    // A taken hash is a conflict whose message does not repeat the hash.
    let what = assert_conflict(
        store
            .create_token(new_token("again", "hash-first", None))
            .await,
    );
    assert!(!what.contains("hash-first"), "{what}");
    assert_eq!(store.count_tokens().await.expect("count"), 2);
}

async fn revoking_a_token_twice_keeps_the_first_time(store: Arc<dyn Store>) {
    let token = store
        .create_token(new_token("t", "hash-t", None))
        .await
        .expect("token");
    let revoked = store.revoke_token(token.id).await.expect("revoke");
    let first_time = revoked.revoked_at.expect("revoked");
    assert!(first_time >= token.created_at);
    assert_eq!(
        ApiToken {
            revoked_at: None,
            ..revoked.clone()
        },
        ApiToken {
            revoked_at: None,
            ..token.clone()
        }
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = store.revoke_token(token.id).await.expect("revoke again");
    assert_eq!(again.revoked_at, Some(first_time));
    assert_eq!(
        store.find_token_by_hash("hash-t").await.expect("find"),
        Some(revoked)
    );
    let missing = Uuid::now_v7();
    assert_not_found(
        store.revoke_token(missing).await,
        &format!("token {missing}"),
    );
}

async fn touching_a_token_records_its_last_use(store: Arc<dyn Store>) {
    let token = store
        .create_token(new_token("t", "hash-t", None))
        .await
        .expect("token");
    store.touch_token(token.id).await.expect("touch");
    let used = store
        .find_token_by_hash("hash-t")
        .await
        .expect("find")
        .expect("exists");
    let last_used = used.last_used_at.expect("last use recorded");
    assert!(last_used >= token.created_at);
    // Touching again soon after may be coalesced, never goes back in time.
    store.touch_token(token.id).await.expect("touch again");
    let again = store
        .find_token_by_hash("hash-t")
        .await
        .expect("find")
        .expect("exists");
    assert!(again.last_used_at.expect("still recorded") >= last_used);
    // Best effort: touching a token that does not exist is not an error.
    store
        .touch_token(Uuid::now_v7())
        .await
        .expect("touch missing");
}

// ---------------------------------------------------------------------------------------------
// The audit log.

const AUDIT_KEY: &[u8] = b"conformance audit signing key";

fn audit(action: &str) -> NewAuditEntry {
    NewAuditEntry {
        id: Uuid::now_v7(),
        // Nanosecond precision on Linux: the store must keep every digit (the hash covers them).
        at: OffsetDateTime::now_utc(),
        actor_kind: "user".into(),
        actor_id: Some("u1".into()),
        actor_role: Some(Role::User),
        action: action.into(),
        outcome: AuditOutcome::Ok,
        prompt_id: None,
        prompt_name: None,
        prompt_scope: None,
        classification: None,
        before_hash: None,
        after_hash: None,
        detail: json!({}),
        source: None,
        request_id: None,
    }
}

async fn append_all(store: &Arc<dyn Store>, actions: &[&str]) -> Vec<AuditEntry> {
    let mut appended = Vec::with_capacity(actions.len());
    for action in actions {
        appended.push(store.append_audit(audit(action)).await.expect("append"));
    }
    appended
}

async fn whole_chain(store: &Arc<dyn Store>) -> Vec<AuditEntry> {
    store.audit_chain(0, i64::MAX).await.expect("audit chain")
}

fn signed_checkpoint(up_to: &AuditEntry, purged: i64) -> Checkpoint {
    let at = OffsetDateTime::now_utc();
    Checkpoint {
        up_to_seq: up_to.seq,
        up_to_hash: up_to.hash.clone(),
        purged,
        at,
        signature: sign_checkpoint(AUDIT_KEY, up_to.seq, &up_to.hash, purged, at),
    }
}

fn seqs(entries: &[AuditEntry]) -> Vec<i64> {
    entries.iter().map(|entry| entry.seq).collect()
}

async fn appended_audit_entries_form_a_chain_that_verifies(store: Arc<dyn Store>) {
    let prompt_id = Uuid::now_v7();
    let full = NewAuditEntry {
        // Not UTC, with nanoseconds: the hash covers the instant, whatever the offset.
        at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
            .expect("valid time")
            .to_offset(time::UtcOffset::from_hms(2, 0, 0).expect("valid offset")),
        actor_kind: "token".into(),
        actor_id: Some("bot".into()),
        actor_role: Some(Role::Agent),
        outcome: AuditOutcome::Denied,
        prompt_id: Some(prompt_id),
        prompt_name: Some("support/summarize".into()),
        prompt_scope: Some(Scope::Agent),
        classification: Some(Classification::Restricted),
        before_hash: Some("b".repeat(64)),
        after_hash: Some("a".repeat(64)),
        // Values a JSON column could normalise: the hash needs them back exactly.
        detail: json!({
            "negative_zero": -0.0,
            "tenth": 0.1,
            "tiny": 1e-7,
            "huge": u64::MAX,
            "nested": {"z": [1, "x", null, true], "a": "ünïcödé \u{0}"}
        }),
        source: Some("203.0.113.9".into()),
        request_id: Some("req-1".into()),
        ..audit("prompt.read_text")
    };
    let mut appended = Vec::new();
    for entry in [audit("prompt.create"), full.clone(), audit("label.set")] {
        let given = entry.clone();
        let stored = store.append_audit(entry).await.expect("append");
        assert_eq!(stored.entry, given, "the entry comes back as given");
        appended.push(stored);
    }
    assert_eq!(seqs(&appended), [1, 2, 3]);
    assert_eq!(appended[0].prev_hash, GENESIS_HASH);
    for pair in appended.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for entry in &appended {
        assert_eq!(
            entry.hash,
            entry_hash(entry.seq, &entry.prev_hash, &entry.entry)
        );
    }

    let chain = whole_chain(&store).await;
    assert_eq!(chain, appended, "read back exactly as stored");
    assert_eq!(
        chain[1].entry.at.unix_timestamp_nanos(),
        1_700_000_000_123_456_789
    );
    assert_eq!(
        verify_chain(AUDIT_KEY, None, &chain),
        VerifyReport {
            ok: true,
            checked: 3,
            first_broken: None
        }
    );
    assert_eq!(
        seqs(&store.audit_chain(1, 1).await.expect("page")),
        [2],
        "audit_chain pages by seq"
    );
    assert_eq!(store.latest_checkpoint().await.expect("checkpoint"), None);
    assert!(matches!(
        store.audit_chain(0, 0).await,
        Err(StoreError::Domain(DomainError::InvalidField {
            field: "limit",
            ..
        }))
    ));
}

async fn concurrent_audit_appends_form_one_unbroken_chain(store: Arc<dyn Store>) {
    const APPENDERS: usize = 16;
    const ENTRIES_EACH: usize = 10;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(APPENDERS);
    for appender in 0..APPENDERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(ENTRIES_EACH);
            for n in 0..ENTRIES_EACH {
                let entry = NewAuditEntry {
                    detail: json!({"appender": appender, "n": n}),
                    ..audit("prompt.update")
                };
                let stored = store
                    .append_audit(entry)
                    .await
                    .map_err(|error| format!("appender {appender} entry {n}: {error}"))?;
                seqs.push(stored.seq);
            }
            Ok::<_, String>(seqs)
        }));
    }
    let mut all = Vec::with_capacity(APPENDERS * ENTRIES_EACH);
    for task in futures::future::join_all(tasks).await {
        all.extend(task.expect("task did not panic").expect("no errors"));
    }
    eprintln!(
        "{}: {} appends from {APPENDERS} concurrent appenders took {:?}",
        std::thread::current().name().unwrap_or("this test"),
        APPENDERS * ENTRIES_EACH,
        started.elapsed()
    );
    all.sort_unstable();
    let total = (APPENDERS * ENTRIES_EACH) as i64;
    assert_eq!(all, (1..=total).collect::<Vec<_>>());
    let chain = whole_chain(&store).await;
    assert_eq!(seqs(&chain), (1..=total).collect::<Vec<_>>());
    let report = verify_chain(AUDIT_KEY, None, &chain);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, total);
}

async fn listing_audit_entries_filters_by_every_field_and_pages_by_seq(store: Arc<dyn Store>) {
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
    let at = |seconds: i64| t0 + time::Duration::seconds(seconds);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let on_prompt =
        |entry: NewAuditEntry, id: Uuid, prompt_name: &str, scope: Scope| NewAuditEntry {
            prompt_id: Some(id),
            prompt_name: Some(prompt_name.into()),
            prompt_scope: Some(scope),
            ..entry
        };
    let entries = [
        // 1
        on_prompt(
            NewAuditEntry {
                at: at(0),
                ..audit("prompt.create")
            },
            a,
            "a",
            Scope::Global,
        ),
        // 2
        on_prompt(
            NewAuditEntry {
                at: at(1),
                ..audit("label.set")
            },
            a,
            "a",
            Scope::Global,
        ),
        // 3
        on_prompt(
            NewAuditEntry {
                at: at(2),
                actor_kind: "agent".into(),
                actor_id: Some("bot".into()),
                actor_role: Some(Role::Agent),
                ..audit("prompt.read_text")
            },
            b,
            "b",
            Scope::Agent,
        ),
        // 4
        NewAuditEntry {
            at: at(3),
            actor_kind: "anonymous".into(),
            actor_id: None,
            actor_role: None,
            outcome: AuditOutcome::Failed,
            ..audit("auth.login")
        },
        // 5
        on_prompt(
            NewAuditEntry {
                at: at(4),
                actor_id: Some("u2".into()),
                outcome: AuditOutcome::Denied,
                ..audit("label.remove")
            },
            b,
            "b",
            Scope::Agent,
        ),
        // 6, 7: not in the `label.` family.
        NewAuditEntry {
            at: at(5),
            ..audit("label")
        },
        NewAuditEntry {
            at: at(6),
            ..audit("labels.move")
        },
    ];
    for entry in entries {
        store.append_audit(entry).await.expect("append");
    }
    let list = |query: AuditQuery| {
        let store = Arc::clone(&store);
        async move { seqs(&store.list_audit(&query).await.expect("list audit")) }
    };
    let all = || AuditQuery {
        limit: 100,
        ..AuditQuery::default()
    };
    assert_eq!(list(all()).await, [1, 2, 3, 4, 5, 6, 7]);
    let actor = AuditQuery {
        actor_id: Some("u1".into()),
        ..all()
    };
    assert_eq!(list(actor).await, [1, 2, 6, 7]);
    let role = AuditQuery {
        actor_role: Some(Role::Agent),
        ..all()
    };
    assert_eq!(list(role).await, [3]);
    let by_prompt = AuditQuery {
        prompt_id: Some(a),
        ..all()
    };
    assert_eq!(list(by_prompt).await, [1, 2]);
    let by_name = AuditQuery {
        prompt_name: Some("b".into()),
        ..all()
    };
    assert_eq!(list(by_name).await, [3, 5]);
    let family = AuditQuery {
        action: Some("label.".into()),
        ..all()
    };
    assert_eq!(list(family).await, [2, 5]);
    let exact = AuditQuery {
        action: Some("label".into()),
        ..all()
    };
    assert_eq!(list(exact).await, [6]);
    let denied = AuditQuery {
        outcome: Some(AuditOutcome::Denied),
        ..all()
    };
    assert_eq!(list(denied).await, [5]);
    let failed = AuditQuery {
        outcome: Some(AuditOutcome::Failed),
        ..all()
    };
    assert_eq!(list(failed).await, [4]);
    let scope = AuditQuery {
        prompt_scope: Some(Scope::Agent),
        ..all()
    };
    assert_eq!(list(scope).await, [3, 5]);
    // `since` is inclusive, `until` exclusive.
    let window = AuditQuery {
        since: Some(at(1)),
        until: Some(at(3)),
        ..all()
    };
    assert_eq!(list(window).await, [2, 3]);
    let combined = AuditQuery {
        actor_id: Some("u1".into()),
        action: Some("label.".into()),
        since: Some(at(1)),
        ..all()
    };
    assert_eq!(list(combined).await, [2]);
    let page = AuditQuery {
        after_seq: Some(2),
        limit: 2,
        ..AuditQuery::default()
    };
    assert_eq!(list(page).await, [3, 4]);
    let far = AuditQuery {
        since: Some(t0 + time::Duration::days(365 * 1000)),
        ..all()
    };
    assert!(
        list(far).await.is_empty(),
        "a bound past 2262 matches nothing"
    );
    let no_limit = AuditQuery::default();
    assert!(matches!(
        store.list_audit(&no_limit).await,
        Err(StoreError::Domain(DomainError::InvalidField {
            field: "limit",
            ..
        }))
    ));
}

async fn purging_behind_a_checkpoint_keeps_the_rest_and_new_entries_verifiable(
    store: Arc<dyn Store>,
) {
    let appended = append_all(&store, &["a", "b", "c", "d", "e", "f"]).await;
    let checkpoint = signed_checkpoint(&appended[3], 4);
    store
        .purge_audit(checkpoint.clone())
        .await
        .expect("purge up to 4");
    let latest = store.latest_checkpoint().await.expect("checkpoint");
    assert_eq!(
        latest.as_ref(),
        Some(&checkpoint),
        "stored to the nanosecond"
    );
    let rest = whole_chain(&store).await;
    assert_eq!(rest, appended[4..]);
    let report = verify_chain(AUDIT_KEY, latest.as_ref(), &rest);
    assert!(report.ok && report.checked == 2, "{report:?}");

    append_all(&store, &["g", "h"]).await;
    let rest = whole_chain(&store).await;
    assert_eq!(seqs(&rest), [5, 6, 7, 8]);
    let report = verify_chain(AUDIT_KEY, latest.as_ref(), &rest);
    assert!(report.ok && report.checked == 4, "{report:?}");

    // Purging everything: the next entry chains onto the checkpoint.
    let everything = signed_checkpoint(&rest[3], 4);
    store
        .purge_audit(everything.clone())
        .await
        .expect("purge the rest");
    assert!(whole_chain(&store).await.is_empty());
    let next = store.append_audit(audit("i")).await.expect("append");
    assert_eq!(
        (next.seq, next.prev_hash.as_str()),
        (9, everything.up_to_hash.as_str())
    );
    let latest = store.latest_checkpoint().await.expect("checkpoint");
    assert_eq!(latest.as_ref(), Some(&everything));
    let report = verify_chain(AUDIT_KEY, latest.as_ref(), &whole_chain(&store).await);
    assert!(report.ok && report.checked == 1, "{report:?}");

    // An entry already purged cannot be checkpointed again.
    let what = assert_conflict(store.purge_audit(checkpoint).await);
    assert!(what.contains('4'), "{what}");
}

async fn purging_with_a_hash_that_is_not_the_entrys_is_a_conflict(store: Arc<dyn Store>) {
    let appended = append_all(&store, &["a", "b", "c"]).await;
    let wrong = Checkpoint {
        up_to_hash: appended[0].hash.clone(),
        ..signed_checkpoint(&appended[1], 2)
    };
    assert_conflict(store.purge_audit(wrong).await);
    let missing = Checkpoint {
        up_to_seq: 10,
        ..signed_checkpoint(&appended[2], 10)
    };
    assert_conflict(store.purge_audit(missing).await);
    // Nothing happened.
    assert_eq!(whole_chain(&store).await, appended);
    assert_eq!(store.latest_checkpoint().await.expect("checkpoint"), None);
}

async fn the_last_entry_before_a_cutoff_has_only_older_entries_before_it(store: Arc<dyn Store>) {
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
    let at = |seconds: i64| t0 + time::Duration::seconds(seconds);
    assert_eq!(store.last_audit_before(at(100)).await.expect("empty"), None);
    // The fourth entry's writer has a clock behind the others.
    let mut appended = Vec::new();
    for seconds in [0, 10, 20, 5] {
        let entry = NewAuditEntry {
            at: at(seconds),
            ..audit("prompt.update")
        };
        appended.push(store.append_audit(entry).await.expect("append"));
    }
    let last_before = |seconds: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .last_audit_before(at(seconds))
                .await
                .expect("last before")
        }
    };
    let named = |index: usize| Some((appended[index].seq, appended[index].hash.clone()));
    assert_eq!(
        last_before(0).await,
        None,
        "nothing is older than the first"
    );
    assert_eq!(last_before(1).await, named(0));
    assert_eq!(last_before(11).await, named(1));
    // Entry 4 is older than 15 s, but entry 3 (20 s) is not, so only 1 and 2 may go.
    assert_eq!(last_before(15).await, named(1));
    assert_eq!(last_before(30).await, named(3));
}

// ---------------------------------------------------------------------------------------------
// Prompt access rules and visibility.

async fn prompt_access_rules_round_trip_and_are_replaced_by_a_patch(store: Arc<dyn Store>) {
    let user = Uuid::now_v7();
    let access = PromptAccess {
        owner_only: true,
        allowed_roles: vec![Role::User, Role::Agent],
        restricted_deployments: vec![DeploymentModel::ElectronLocal],
        grants: vec![Grantee::User(user), Grantee::Agent("bot".into())],
    };
    let prompt = NewPrompt {
        access: access.clone(),
        ..new_prompt("guarded")
    };
    let created = store
        .create_prompt(prompt, text("t"))
        .await
        .expect("create");
    assert_eq!(created.prompt.access, access);
    let key = PromptKey::Id(created.prompt.id);
    assert_eq!(
        store.get_prompt(&key).await.expect("get").prompt.access,
        access
    );
    assert_eq!(store.find_prompt(&key).await.expect("find").access, access);
    let (resolved, _) = store
        .resolve_version(&key, &VersionSelector::Number(1))
        .await
        .expect("resolve");
    assert_eq!(resolved.access, access);
    let listed = store.list_prompts(&query()).await.expect("list");
    assert_eq!(listed.items[0].prompt.access, access);
    let plain = create(&store, "plain").await;
    let plain = store
        .find_prompt(&PromptKey::Id(plain))
        .await
        .expect("find");
    assert_eq!(plain.access, PromptAccess::default());

    let replaced = PromptAccess {
        grants: vec![Grantee::Agent("other-bot".into())],
        ..PromptAccess::default()
    };
    let patch = PromptPatch {
        access: Some(replaced.clone()),
        ..PromptPatch::default()
    };
    let updated = store
        .update_prompt(created.prompt.id, patch, Some(1))
        .await
        .expect("patch access");
    assert_eq!(updated.access, replaced);
    assert_eq!(updated.revision, 2);
    assert_eq!(
        store.find_prompt(&key).await.expect("find").access,
        replaced
    );
    // A patch without `access` leaves the rules alone.
    let title = PromptPatch {
        title: Some(Some("Guarded".into())),
        ..PromptPatch::default()
    };
    let retitled = store
        .update_prompt(created.prompt.id, title, None)
        .await
        .expect("patch title");
    assert_eq!(retitled.access, replaced);
}

const OWNER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
const OTHER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);

fn principal(role: Role, user_id: Option<Uuid>, agent_id: Option<&str>) -> Principal {
    Principal {
        role,
        user_id,
        agent_id: agent_id.map(String::from),
        permissions: Vec::new(),
        restriction: CredentialRestriction::default(),
    }
}

fn restricted(
    principal: Principal,
    scopes: Option<Vec<Scope>>,
    name_prefixes: Option<Vec<&str>>,
) -> Principal {
    Principal {
        restriction: CredentialRestriction {
            scopes,
            name_prefixes: name_prefixes
                .map(|prefixes| prefixes.into_iter().map(String::from).collect()),
        },
        ..principal
    }
}

/// The principal a filter stands for (what the store was asked to apply).
fn principal_of(filter: &VisibilityFilter) -> Principal {
    Principal {
        role: filter.role,
        user_id: filter.user_id,
        agent_id: filter.agent_id.clone(),
        permissions: Vec::new(),
        restriction: CredentialRestriction {
            scopes: filter.scopes.clone(),
            name_prefixes: filter.name_prefixes.clone(),
        },
    }
}

/// Every scope × classification × `owner_only` × `allowed_roles` (none, agents) × grants (none,
/// a user, an agent), with owners and agents varied; listed by a cast of principals, each list
/// must be exactly what `is_visible` accepts, with a `total` that counts nothing else. Prompts
/// without rules are stored as `{}` (as rows from before the access migration are), so the
/// absent-key paths of the SQL run too.
async fn listing_with_a_visibility_filter_returns_exactly_the_visible_prompts(
    database: &TestDatabase,
) {
    let store = database.store();
    let owners = [Some(OWNER), Some(OTHER), None];
    let agents = ["bot", "bot-2"];
    let mut prompts = Vec::new();
    let mut index = 0;
    for &scope in Scope::ALL {
        for &classification in Classification::ALL {
            for owner_only in [false, true] {
                for agents_only in [false, true] {
                    for grant in ["none", "user", "agent"] {
                        let grants = match grant {
                            "user" => vec![Grantee::User(OTHER)],
                            "agent" => vec![Grantee::Agent("bot".into())],
                            _ => Vec::new(),
                        };
                        let access = PromptAccess {
                            owner_only,
                            allowed_roles: if agents_only {
                                vec![Role::Agent]
                            } else {
                                Vec::new()
                            },
                            grants,
                            ..PromptAccess::default()
                        };
                        let prompt_name = format!(
                            "v/{scope}/{classification}/{}/{}/{grant}/{index:03}",
                            if owner_only { "owner-only" } else { "open" },
                            if agents_only { "agents" } else { "any-role" },
                        );
                        let prompt = NewPrompt {
                            scope,
                            agent_id: (scope == Scope::Agent)
                                .then(|| agents[index % agents.len()].to_string()),
                            owner_id: owners[index % owners.len()],
                            classification,
                            access,
                            ..new_prompt(&prompt_name)
                        };
                        let created = store
                            .create_prompt(prompt, text("t"))
                            .await
                            .expect("create");
                        prompts.push(created.prompt);
                        index += 1;
                    }
                }
            }
        }
    }
    let emptied = database
        .execute("UPDATE prompts SET access = '{}' WHERE name LIKE 'v/%/open/any-role/none/%'")
        .await;
    assert_eq!(
        emptied, 12,
        "one prompt without rules per scope and classification"
    );

    let cast = [
        ("admin", principal(Role::Admin, Some(OTHER), None)),
        ("owner", principal(Role::User, Some(OWNER), None)),
        ("other user", principal(Role::User, Some(OTHER), None)),
        ("user without an id", principal(Role::User, None, None)),
        ("agent bot", principal(Role::Agent, None, Some("bot"))),
        (
            "agent bot-2 for the owner",
            principal(Role::Agent, Some(OWNER), Some("bot-2")),
        ),
        (
            "stranger agent",
            principal(Role::Agent, None, Some("stranger")),
        ),
        (
            "owner restricted to global",
            restricted(
                principal(Role::User, Some(OWNER), None),
                Some(vec![Scope::Global]),
                None,
            ),
        ),
        (
            "owner restricted to no scope",
            restricted(
                principal(Role::User, Some(OWNER), None),
                Some(Vec::new()),
                None,
            ),
        ),
        (
            "admin restricted to v/agent/",
            restricted(
                principal(Role::Admin, None, None),
                None,
                Some(vec!["v/agent/"]),
            ),
        ),
        (
            "agent bot restricted to two prefixes and two scopes",
            restricted(
                principal(Role::Agent, None, Some("bot")),
                Some(vec![Scope::Agent, Scope::Global]),
                Some(vec!["v/agent/internal/", "v/global/"]),
            ),
        ),
    ];
    let mut counts = Vec::new();
    for (who, principal) in &cast {
        let filter = visibility_filter(principal);
        let judge = filter
            .as_ref()
            .map_or_else(|| principal.clone(), principal_of);
        let mut expected: Vec<String> = prompts
            .iter()
            .filter(|prompt| is_visible(&judge, prompt))
            .map(|prompt| prompt.name.to_string())
            .collect();
        expected.sort();
        let by_principal: Vec<&Prompt> = prompts
            .iter()
            .filter(|prompt| is_visible(principal, prompt))
            .collect();
        assert_eq!(
            by_principal.len(),
            expected.len(),
            "{who}: the filter stands for the principal"
        );

        let page = store
            .list_prompts(&PromptQuery {
                visibility: filter.clone(),
                ..PromptQuery::default()
            })
            .await
            .expect("list");
        let got: Vec<String> = page
            .items
            .iter()
            .map(|item| item.prompt.name.to_string())
            .collect();
        assert_eq!(got, expected, "{who}");
        assert_eq!(page.total, expected.len() as i64, "{who}: total");
        counts.push((*who, expected.len()));

        // Paged, the total still counts only visible prompts and the pages add up.
        let mut paged = Vec::new();
        let mut after_name = None;
        loop {
            let page = store
                .list_prompts(&PromptQuery {
                    visibility: filter.clone(),
                    after_name: after_name.clone(),
                    limit: 10,
                    ..PromptQuery::default()
                })
                .await
                .expect("list page");
            assert_eq!(page.total, expected.len() as i64, "{who}: paged total");
            let Some(last) = page.items.last() else {
                break;
            };
            after_name = Some(last.prompt.name.to_string());
            paged.extend(page.items.iter().map(|item| item.prompt.name.to_string()));
        }
        assert_eq!(paged, expected, "{who}: pages");
    }
    eprintln!(
        "{} prompts x {} principals; visible: {counts:?}",
        prompts.len(),
        cast.len()
    );
    assert_eq!(counts[0].1, prompts.len(), "the admin sees everything");
    assert_eq!(counts[8].1, 0, "no scope allowed, nothing visible");
    assert!(
        counts[1..].iter().all(|(_, count)| *count < prompts.len()),
        "every other principal sees less: {counts:?}"
    );
}

async fn appenders_in_two_stores_on_one_database_form_one_audit_chain(database: &TestDatabase) {
    // Two stores stand for two processes: only the database's lock serializes them.
    const APPENDERS_PER_STORE: usize = 4;
    const ENTRIES_EACH: usize = 10;
    let second = promptvault_store::connect(&database.url())
        .await
        .expect("second store");
    let mut tasks = Vec::new();
    for (store_index, store) in [database.store(), second].into_iter().enumerate() {
        for appender in 0..APPENDERS_PER_STORE {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for n in 0..ENTRIES_EACH {
                    let entry = NewAuditEntry {
                        detail: json!({"store": store_index, "appender": appender, "n": n}),
                        ..audit("prompt.update")
                    };
                    store.append_audit(entry).await.map_err(|error| {
                        format!("store {store_index} appender {appender}: {error}")
                    })?;
                }
                Ok::<_, String>(())
            }));
        }
    }
    for task in futures::future::join_all(tasks).await {
        task.expect("task did not panic").expect("no errors");
    }
    let chain = whole_chain(&database.store()).await;
    let total = (2 * APPENDERS_PER_STORE * ENTRIES_EACH) as i64;
    assert_eq!(seqs(&chain), (1..=total).collect::<Vec<_>>());
    let report = verify_chain(AUDIT_KEY, None, &chain);
    assert!(report.ok && report.checked == total, "{report:?}");
}

// ---------------------------------------------------------------------------------------------
// Raw SQL behind the store's back.

async fn an_audit_row_edited_with_raw_sql_is_named_by_verification(database: &TestDatabase) {
    let store = database.store();
    append_all(&store, &["a", "b", "c", "d"]).await;
    assert!(verify_chain(AUDIT_KEY, None, &whole_chain(&store).await).ok);

    let changed = database
        .execute("UPDATE audit_log SET action = 'forged' WHERE seq = 3")
        .await;
    assert_eq!(changed, 1);
    let report = verify_chain(AUDIT_KEY, None, &whole_chain(&store).await);
    assert!(!report.ok);
    assert_eq!(report.first_broken.map(|broken| broken.seq), Some(3));

    database
        .execute("DELETE FROM audit_log WHERE seq = 2")
        .await;
    let report = verify_chain(AUDIT_KEY, None, &whole_chain(&store).await);
    assert_eq!(report.first_broken.map(|broken| broken.seq), Some(2));
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

async fn concurrent_writers_get_contiguous_version_numbers(store: Arc<dyn Store>) {
    const CLIENTS: usize = 32;
    const VERSIONS_EACH: usize = 20;
    let id = create(&store, "contended").await;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::with_capacity(VERSIONS_EACH);
            for n in 0..VERSIONS_EACH {
                let added = store
                    .add_version(
                        id,
                        text(&format!("client {client} version {n} for {{{{ name }}}}")),
                    )
                    .await
                    .map_err(|error| format!("client {client} version {n}: {error}"))?;
                if !added.created {
                    return Err(format!("client {client} version {n} was not created"));
                }
                numbers.push(added.version.version_number);
            }
            Ok::<_, String>(numbers)
        }));
    }
    let mut numbers = Vec::with_capacity(CLIENTS * VERSIONS_EACH);
    for task in futures::future::join_all(tasks).await {
        numbers.extend(task.expect("task did not panic").expect("no errors"));
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{}: {} add_version calls from {CLIENTS} concurrent clients took {elapsed:?} ({:.0}/s)",
        std::thread::current().name().unwrap_or("this test"),
        CLIENTS * VERSIONS_EACH,
        (CLIENTS * VERSIONS_EACH) as f64 / elapsed.as_secs_f64()
    );
    numbers.sort_unstable();
    let expected: Vec<i64> = (2..=(CLIENTS * VERSIONS_EACH + 1) as i64).collect();
    assert_eq!(numbers, expected);

    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    let mut stored: Vec<i64> = detail.versions.iter().map(|v| v.version_number).collect();
    stored.reverse();
    let all: Vec<i64> = (1..=(CLIENTS * VERSIONS_EACH + 1) as i64).collect();
    assert_eq!(stored, all);
    assert_eq!(detail.labels.get("latest"), all.last());
    assert_eq!(detail.prompt.revision, (CLIENTS * VERSIONS_EACH + 1) as i64);
}

// ---------------------------------------------------------------------------------------------
// The database URL.

async fn a_second_store_opened_from_the_url_sees_the_same_data(database: &TestDatabase) {
    let id = create(&database.store(), "shared").await;
    let second = promptvault_store::connect(&database.url())
        .await
        .expect("connect by URL");
    let found = second
        .find_prompt(&by_name("shared"))
        .await
        .expect("seen through the URL");
    assert_eq!(found.id, id);
    second
        .add_version(id, text("from the second store"))
        .await
        .expect("write through it");
    let detail = database
        .store()
        .get_prompt(&PromptKey::Id(id))
        .await
        .expect("get");
    assert_eq!(detail.versions.len(), 2);
}

async fn writers_in_two_stores_on_one_database_get_contiguous_version_numbers(
    database: &TestDatabase,
) {
    // Two stores stand for two processes: only the database's lock serializes them.
    const CLIENTS_PER_STORE: usize = 4;
    const VERSIONS_EACH: usize = 10;
    let first = database.store();
    let second = promptvault_store::connect(&database.url())
        .await
        .expect("second store");
    let id = create(&first, "shared").await;
    let mut tasks = Vec::new();
    for (store_index, store) in [first, second].into_iter().enumerate() {
        for client in 0..CLIENTS_PER_STORE {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut numbers = Vec::with_capacity(VERSIONS_EACH);
                for n in 0..VERSIONS_EACH {
                    let content = format!("store {store_index} client {client} version {n}");
                    let added = store
                        .add_version(id, text(&content))
                        .await
                        .map_err(|error| format!("{content}: {error}"))?;
                    numbers.push(added.version.version_number);
                }
                Ok::<_, String>(numbers)
            }));
        }
    }
    let mut numbers = Vec::new();
    for task in futures::future::join_all(tasks).await {
        numbers.extend(task.expect("task did not panic").expect("no errors"));
    }
    numbers.sort_unstable();
    let total = 2 * CLIENTS_PER_STORE * VERSIONS_EACH;
    assert_eq!(numbers, (2..=(total + 1) as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_in_memory_sqlite_store_keeps_its_data_between_calls() {
    let store = promptvault_store::connect("sqlite::memory:")
        .await
        .expect("in-memory store");
    let id = create(&store, "memory").await;
    store.add_version(id, text("two")).await.expect("v2");
    let detail = store.get_prompt(&by_name("memory")).await.expect("get");
    assert_eq!(detail.versions.len(), 2);
}

#[tokio::test]
async fn opening_sqlite_in_a_missing_directory_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite:{}",
        dir.path().join("missing/promptvault.db").display()
    );
    let result = promptvault_store::connect(&url).await;
    assert!(
        matches!(result, Err(StoreError::Config(_))),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn an_unsupported_database_url_is_a_configuration_error() {
    let result = promptvault_store::connect("mysql://user:secret@host/db").await;
    match result {
        Err(StoreError::Config(message)) => {
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("expected a configuration error, got {:?}", other.err()),
    }
}

// ---------------------------------------------------------------------------------------------
// Encryption at rest.

const KEY_1: [u8; 32] = [0x11; 32];
const KEY_2: [u8; 32] = [0x22; 32];
const KEY_9: [u8; 32] = [0x99; 32];
/// Text that must never be found in clear in the database once sealed.
const MARKER: &str = "SWORDFISH-marker-7f3a";

fn ring(keys: &[(&str, [u8; 32])]) -> ConnectOptions {
    ConnectOptions {
        keys: Some(Arc::new(
            KeyRing::from_keys(keys.iter().map(|(id, key)| (*id, *key))).expect("valid ring"),
        )),
    }
}

/// The ring every conformance test's store is opened with.
fn keyed() -> ConnectOptions {
    ring(&[("k1", KEY_1)])
}

fn classified(prompt_name: &str, classification: Classification) -> NewPrompt {
    NewPrompt {
        classification,
        ..new_prompt(prompt_name)
    }
}

fn chat(entries: Value) -> NewVersion {
    version(
        VersionDraft::new(
            Content::from_json(&entries).expect("chat content"),
            json!({"model": "m"}),
            None,
            None,
        )
        .expect("valid draft"),
        &[],
    )
}

/// Every prompt with all its versions (newest first), as one store reads them.
async fn read_all(store: &Arc<dyn Store>, prompt_names: &[&str]) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for prompt_name in prompt_names {
        let detail = store
            .get_prompt(&by_name(prompt_name))
            .await
            .unwrap_or_else(|error| panic!("read {prompt_name}: {error}"));
        out.push((
            prompt_name.to_string(),
            detail
                .versions
                .iter()
                .map(|v| json!([v.version_number, v.content.to_json(), v.diff_hash]))
                .collect(),
        ));
    }
    out
}

/// The stored `content` column of every version as text, and its key id, by prompt name.
async fn raw_versions(database: &TestDatabase) -> Vec<(String, i64, String, Option<String>)> {
    let rows = database
        .query_text(
            "SELECT p.name || '|' || CAST(v.version_number AS TEXT) || '|' || \
             coalesce(v.key_id, '-') || '|' || CAST(v.content AS TEXT) \
             FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
             ORDER BY p.name, v.version_number",
        )
        .await;
    rows.into_iter()
        .map(|row| {
            let row = row.expect("not null");
            let mut parts = row.splitn(4, '|');
            let prompt_name = parts.next().unwrap_or_default().to_string();
            let number = parts.next().unwrap_or_default().parse().expect("number");
            let key_id = parts.next().unwrap_or_default();
            let content = parts.next().unwrap_or_default().to_string();
            (
                prompt_name,
                number,
                content,
                (key_id != "-").then(|| key_id.to_string()),
            )
        })
        .collect()
}

/// Every version row rendered whole as text: PostgreSQL's row-to-text, or SQLite's columns
/// quoted (BLOBs as hex literals).
async fn raw_rows_text(database: &TestDatabase) -> String {
    let sql = if database.file_bytes().is_some() {
        "SELECT quote(id) || quote(content) || quote(config) || quote(parameter_schema) || \
         quote(diff_hash) || quote(notes) || quote(key_id) || quote(nonce) || quote(ciphertext) \
         FROM prompt_versions"
    } else {
        "SELECT v::text FROM prompt_versions v"
    };
    database
        .query_text(sql)
        .await
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect::<Vec<_>>()
        .join("\n")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn assert_encryption_error<T: std::fmt::Debug>(result: Result<T, StoreError>, names: &str) {
    match result {
        Err(StoreError::Encryption(message)) => {
            assert!(message.contains(names), "{message:?} should name {names:?}");
            assert!(!message.contains(MARKER), "{message:?} leaks content");
        }
        other => panic!("expected an Encryption error naming {names:?}, got {other:?}"),
    }
}

fn assert_key_required<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(error @ StoreError::EncryptionKeyRequired) => {
            assert!(
                error.to_string().contains("encryption key required"),
                "{error}"
            );
        }
        other => panic!("expected EncryptionKeyRequired, got {other:?}"),
    }
}

async fn sealed_versions_read_back_identical_and_their_text_is_not_in_the_database(
    database: &TestDatabase,
) {
    let store = database.store();
    let secret = format!("Restricted: {MARKER} for {{{{ name }}}}");
    let created = store
        .create_prompt(
            classified("sec/text", Classification::Restricted),
            version(draft(&secret, json!({"model": "m"}), None), &["production"]),
        )
        .await
        .expect("create restricted");
    assert_eq!(
        created.versions[0].content,
        Content::Text(secret.clone()),
        "returned as given"
    );
    let second_text = format!("{secret} v2");
    let second_draft = draft(&second_text, json!({"model": "m"}), None);
    let expected_hash = second_draft.diff_hash().to_string();
    let second = store
        .add_version(created.prompt.id, version(second_draft, &["staging"]))
        .await
        .expect("add sealed version");
    assert!(second.created);
    assert_eq!(
        second.version.diff_hash, expected_hash,
        "diff_hash of the plaintext"
    );
    // An identical draft is recognised against the sealed latest.
    let again = store
        .add_version(
            created.prompt.id,
            version(draft(&second_text, json!({"model": "m"}), None), &[]),
        )
        .await
        .expect("identical");
    assert!(!again.created);
    assert_eq!(again.version.version_number, 2);

    let chat_entries = json!([
        {"role": "system", "content": format!("You keep {MARKER} secret")},
        {"role": "user", "content": "{{ question }}"}
    ]);
    store
        .create_prompt(
            NewPrompt {
                kind: Kind::Chat,
                ..classified("sec/chat", Classification::Confidential)
            },
            chat(chat_entries.clone()),
        )
        .await
        .expect("create confidential chat");
    // A clear prompt carrying the marker: proves the raw checks below would find clear text.
    store
        .create_prompt(
            classified("open/internal", Classification::Internal),
            text(&format!("Internal {MARKER}")),
        )
        .await
        .expect("create internal");

    // Read back through every read path: identical.
    let detail = store.get_prompt(&by_name("sec/text")).await.expect("get");
    assert_eq!(
        detail
            .versions
            .iter()
            .map(|v| v.content.clone())
            .collect::<Vec<_>>(),
        vec![
            Content::Text(second_text.clone()),
            Content::Text(secret.clone())
        ]
    );
    assert_eq!(detail.versions[0].diff_hash, expected_hash);
    let v1 = store
        .get_version(created.prompt.id, 1)
        .await
        .expect("get version");
    assert_eq!(v1, created.versions[0]);
    let (_, production) = store
        .resolve_version(
            &by_name("sec/text"),
            &VersionSelector::Label(label("production")),
        )
        .await
        .expect("resolve label");
    assert_eq!(production, created.versions[0]);
    let (_, by_number) = store
        .resolve_version(
            &PromptKey::Id(created.prompt.id),
            &VersionSelector::Number(2),
        )
        .await
        .expect("resolve number");
    assert_eq!(by_number, second.version);
    let chat_detail = store.get_prompt(&by_name("sec/chat")).await.expect("chat");
    assert_eq!(chat_detail.versions[0].content.to_json(), chat_entries);

    // The stored rows: sealed under k1 with a JSON null placeholder; the clear one as is.
    let raw = raw_versions(database).await;
    assert_eq!(raw.len(), 4);
    for (prompt_name, number, content, key_id) in &raw {
        if prompt_name.starts_with("sec/") {
            assert_eq!(key_id.as_deref(), Some("k1"), "{prompt_name} v{number}");
            assert_eq!(content, "null", "{prompt_name} v{number}");
        } else {
            assert_eq!(key_id, &None);
            assert!(content.contains(MARKER));
        }
    }
    // The whole rows as text: the marker appears once, in the internal prompt's row.
    let rows = raw_rows_text(database).await;
    assert_eq!(rows.matches(MARKER).count(), 1, "{rows}");
    // The raw database file (SQLite): the marker is there only for the internal prompt.
    if let Some(bytes) = database.file_bytes() {
        let internal = format!("Internal {MARKER}");
        let occurrences = bytes
            .windows(MARKER.len())
            .enumerate()
            .filter(|(_, window)| *window == MARKER.as_bytes())
            .map(|(at, _)| at)
            .collect::<Vec<_>>();
        assert!(!occurrences.is_empty(), "the clear prompt is in the file");
        for at in occurrences {
            let start = at.saturating_sub("Internal ".len());
            assert_eq!(
                &bytes[start..at + MARKER.len()],
                internal.as_bytes(),
                "the marker at byte {at} of the file is not the internal prompt's"
            );
        }
        assert!(!contains(&bytes, "Restricted: "));
        assert!(!contains(&bytes, "You keep "));
    }
}

async fn rotating_keys_reseals_every_version_and_keeps_every_version_readable(
    database: &TestDatabase,
) {
    let old = database.store();
    // More sealed versions than one rotation batch holds.
    let many = old
        .create_prompt(
            classified("rot/many", Classification::Restricted),
            text(&format!("{MARKER} 0")),
        )
        .await
        .expect("create");
    for n in 1..=104 {
        old.add_version(many.prompt.id, text(&format!("{MARKER} {n}")))
            .await
            .expect("add");
    }
    old.create_prompt(
        NewPrompt {
            kind: Kind::Chat,
            ..classified("rot/chat", Classification::Confidential)
        },
        chat(json!([{"role": "user", "content": MARKER}])),
    )
    .await
    .expect("create chat");
    old.create_prompt(
        classified("rot/public", Classification::Public),
        text("public text"),
    )
    .await
    .expect("create public");
    let all = ["rot/chat", "rot/many", "rot/public"];
    let before = read_all(&old, &all).await;

    // Every server gets the new ring (new key first, old kept) before the rotation runs.
    let rotating = database
        .open_store(ring(&[("k2", KEY_2), ("k1", KEY_1)]))
        .await;
    assert_eq!(read_all(&rotating, &all).await, before, "old seals open");
    let added = rotating
        .add_version(many.prompt.id, text(&format!("{MARKER} new")))
        .await
        .expect("add under k2");
    let key_of = |raw: &[(String, i64, String, Option<String>)], name: &str, number: i64| {
        raw.iter()
            .find(|(n, v, _, _)| n == name && *v == number)
            .and_then(|(_, _, _, key)| key.clone())
    };
    let raw = raw_versions(database).await;
    assert_eq!(
        key_of(&raw, "rot/many", added.version.version_number).as_deref(),
        Some("k2")
    );
    let before = read_all(&rotating, &all).await;

    let resealed = rotating.reencrypt().await.expect("reencrypt");
    assert_eq!(resealed, 105 + 1, "every version sealed under k1");
    let raw = raw_versions(database).await;
    for (prompt_name, number, content, key_id) in &raw {
        if prompt_name == "rot/public" {
            assert_eq!(key_id, &None);
        } else {
            assert_eq!(key_id.as_deref(), Some("k2"), "{prompt_name} v{number}");
            assert_eq!(content, "null");
        }
    }
    assert_eq!(read_all(&rotating, &all).await, before, "after rotation");
    assert_eq!(rotating.reencrypt().await.expect("again"), 0, "idempotent");

    // The old key can go: a ring with only k2 reads everything.
    let rotated = database.open_store(ring(&[("k2", KEY_2)])).await;
    assert_eq!(read_all(&rotated, &all).await, before, "k2 alone");
    // The store that still has only k1 can no longer read sealed content, clearly.
    assert_encryption_error(old.get_prompt(&by_name("rot/many")).await, "\"k2\"");
    let rows = raw_rows_text(database).await;
    assert!(!rows.contains(MARKER));
}

async fn reading_sealed_content_without_its_key_is_a_clear_error(database: &TestDatabase) {
    let store = database.store();
    let created = store
        .create_prompt(
            classified("miss/restricted", Classification::Restricted),
            version(draft(MARKER, json!({}), None), &["production"]),
        )
        .await
        .expect("create");
    store
        .create_prompt(
            classified("miss/internal", Classification::Internal),
            text("internal"),
        )
        .await
        .expect("create internal");

    for (options, names) in [
        (ring(&[("k9", KEY_9)]), "\"k1\" is not configured"),
        (
            ConnectOptions::default(),
            "no encryption keys are configured",
        ),
        // The right id with the wrong key bytes: authentication fails.
        (ring(&[("k1", KEY_9)]), "authentication failed"),
    ] {
        let other = database.open_store(options).await;
        assert_encryption_error(other.get_prompt(&by_name("miss/restricted")).await, names);
        assert_encryption_error(other.get_version(created.prompt.id, 1).await, names);
        assert_encryption_error(
            other
                .resolve_version(
                    &by_name("miss/restricted"),
                    &VersionSelector::Label(label("production")),
                )
                .await,
            names,
        );
        // Metadata, lists and clear prompts are unaffected.
        assert_eq!(
            other
                .find_prompt(&by_name("miss/restricted"))
                .await
                .expect("metadata")
                .classification,
            Classification::Restricted
        );
        assert_eq!(
            names_of(&other).await,
            vec!["miss/internal", "miss/restricted"]
        );
        other
            .get_prompt(&by_name("miss/internal"))
            .await
            .expect("clear prompt reads");
        // A new version needs the latest opened: refused, nothing written.
        assert!(
            other
                .add_version(created.prompt.id, text("next"))
                .await
                .is_err()
        );
    }
    let detail = store
        .get_prompt(&by_name("miss/restricted"))
        .await
        .expect("read");
    assert_eq!(detail.versions.len(), 1);
    assert_eq!(detail.versions[0].content, Content::Text(MARKER.into()));
}

async fn names_of(store: &Arc<dyn Store>) -> Vec<String> {
    names(store, query()).await
}

async fn swapped_or_tampered_ciphertext_is_an_error_not_garbage(database: &TestDatabase) {
    let store = database.store();
    let created = store
        .create_prompt(
            classified("swap/one", Classification::Restricted),
            text("first secret"),
        )
        .await
        .expect("create");
    store
        .add_version(created.prompt.id, text("second secret"))
        .await
        .expect("add");
    // Version 1 gets version 2's nonce and ciphertext (valid under the same key).
    let changed = database
        .execute(
            "UPDATE prompt_versions SET \
             nonce = (SELECT o.nonce FROM prompt_versions o WHERE o.version_number = 2), \
             ciphertext = (SELECT o.ciphertext FROM prompt_versions o WHERE o.version_number = 2) \
             WHERE version_number = 1",
        )
        .await;
    assert_eq!(changed, 1);
    assert_encryption_error(
        store.get_version(created.prompt.id, 1).await,
        "authentication",
    );
    store
        .get_version(created.prompt.id, 2)
        .await
        .expect("the untouched row still reads");
    // A key id changed behind the store's back: named as missing, not opened with another key.
    let changed = database
        .execute("UPDATE prompt_versions SET key_id = 'k9' WHERE version_number = 2")
        .await;
    assert_eq!(changed, 1);
    assert_encryption_error(store.get_version(created.prompt.id, 2).await, "\"k9\"");
}

async fn changing_the_classification_seals_or_opens_existing_versions(database: &TestDatabase) {
    let store = database.store();
    let created = store
        .create_prompt(
            classified("cls/p", Classification::Internal),
            text(&format!("{MARKER} one")),
        )
        .await
        .expect("create");
    let id = created.prompt.id;
    store
        .add_version(id, text(&format!("{MARKER} two")))
        .await
        .expect("add");
    let before = read_all(&store, &["cls/p"]).await;
    let keys = |raw: Vec<(String, i64, String, Option<String>)>| {
        raw.into_iter()
            .map(|(_, _, content, key)| (content.contains(MARKER), key))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(raw_versions(database).await),
        vec![(true, None), (true, None)]
    );

    // Without keys, raising the classification is refused and nothing changes.
    let keyless = database.open_store(ConnectOptions::default()).await;
    let patch = |classification| PromptPatch {
        classification: Some(classification),
        ..PromptPatch::default()
    };
    assert_key_required(
        keyless
            .update_prompt(id, patch(Classification::Confidential), None)
            .await,
    );
    let unchanged = store.find_prompt(&PromptKey::Id(id)).await.expect("find");
    assert_eq!(unchanged.classification, Classification::Internal);
    assert_eq!(unchanged.revision, created.prompt.revision + 1);

    // Raising it seals the existing versions in the same update.
    let updated = store
        .update_prompt(id, patch(Classification::Restricted), None)
        .await
        .expect("seal");
    assert_eq!(updated.classification, Classification::Restricted);
    let sealed = Some("k1".to_string());
    assert_eq!(
        keys(raw_versions(database).await),
        vec![(false, sealed.clone()), (false, sealed.clone())]
    );
    assert!(!raw_rows_text(database).await.contains(MARKER));
    assert_eq!(read_all(&store, &["cls/p"]).await, before);
    // Restricted → confidential: both sealed, nothing to do.
    store
        .update_prompt(id, patch(Classification::Confidential), None)
        .await
        .expect("still sealed");
    store
        .add_version(id, text(&format!("{MARKER} three")))
        .await
        .expect("a new version is sealed");
    assert_eq!(
        keys(raw_versions(database).await),
        vec![
            (false, sealed.clone()),
            (false, sealed.clone()),
            (false, sealed.clone())
        ]
    );
    let before = read_all(&store, &["cls/p"]).await;

    // Without the key, lowering it is refused (the content cannot be opened).
    let rotated = database.open_store(ring(&[("k9", KEY_9)])).await;
    assert_encryption_error(
        rotated
            .update_prompt(id, patch(Classification::Public), None)
            .await,
        "\"k1\"",
    );
    assert_eq!(
        store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .classification,
        Classification::Confidential
    );

    // Lowering it opens every version back into clear.
    store
        .update_prompt(id, patch(Classification::Public), None)
        .await
        .expect("open");
    assert_eq!(
        keys(raw_versions(database).await),
        vec![(true, None), (true, None), (true, None)]
    );
    assert_eq!(read_all(&keyless, &["cls/p"]).await, before);
}

async fn without_keys_public_and_internal_prompts_work_and_sealed_writes_are_refused(
    database: &TestDatabase,
) {
    let keyless = database.open_store(ConnectOptions::default()).await;
    for (prompt_name, classification) in [
        ("clear/public", Classification::Public),
        ("clear/internal", Classification::Internal),
    ] {
        let created = keyless
            .create_prompt(classified(prompt_name, classification), text("v1 text"))
            .await
            .expect("create clear");
        let added = keyless
            .add_version(created.prompt.id, text("v2 text"))
            .await
            .expect("add clear");
        assert_eq!(added.version.version_number, 2);
        let detail = keyless
            .get_prompt(&by_name(prompt_name))
            .await
            .expect("get");
        assert_eq!(detail.versions[1].content, Content::Text("v1 text".into()));
        keyless
            .update_prompt(
                created.prompt.id,
                PromptPatch {
                    classification: Some(Classification::Public),
                    ..PromptPatch::default()
                },
                None,
            )
            .await
            .expect("a classification change between clear classes");
    }
    for (_, _, content, key_id) in raw_versions(database).await {
        assert_eq!(key_id, None);
        assert!(content.contains(" text"));
    }

    // Sealed classes need keys: refused, nothing written.
    for classification in [Classification::Confidential, Classification::Restricted] {
        assert_key_required(
            keyless
                .create_prompt(classified("clear/secret", classification), text(MARKER))
                .await,
        );
        assert_not_found(
            keyless.find_prompt(&by_name("clear/secret")).await,
            "prompt \"clear/secret\"",
        );
    }
    let sealed = database
        .store()
        .create_prompt(
            classified("clear/sealed", Classification::Confidential),
            text("sealed v1"),
        )
        .await
        .expect("create with keys");
    assert!(
        keyless
            .add_version(sealed.prompt.id, text("sealed v2"))
            .await
            .is_err()
    );
    assert_eq!(
        database
            .store()
            .get_prompt(&by_name("clear/sealed"))
            .await
            .expect("get")
            .versions
            .len(),
        1
    );
    assert_key_required(keyless.reencrypt().await);
    assert!(!raw_rows_text(database).await.contains(MARKER));
}

async fn reencrypt_seals_versions_stored_in_clear_before_encryption(database: &TestDatabase) {
    let store = database.store();
    let created = store
        .create_prompt(
            classified("legacy/p", Classification::Internal),
            text(&format!("{MARKER} old")),
        )
        .await
        .expect("create");
    store
        .add_version(created.prompt.id, text(&format!("{MARKER} older")))
        .await
        .expect("add");
    // As a release before encryption left it: confidential, content in clear.
    database
        .execute("UPDATE prompts SET classification = 'confidential'")
        .await;
    let before = read_all(&store, &["legacy/p"]).await;
    assert_eq!(store.reencrypt().await.expect("reencrypt"), 2);
    for (_, _, content, key_id) in raw_versions(database).await {
        assert_eq!((content.as_str(), key_id.as_deref()), ("null", Some("k1")));
    }
    assert_eq!(read_all(&store, &["legacy/p"]).await, before);
    assert_eq!(store.reencrypt().await.expect("again"), 0);
}

// ---------------------------------------------------------------------------------------------
// Compliance findings.

async fn findings_and_the_token_count_are_stored_with_the_version(store: Arc<dyn Store>) {
    let created = store
        .create_prompt(new_prompt("comply/one"), text("Hello {{ name }}, world"))
        .await
        .expect("create");
    let v1 = &created.versions[0];
    assert!(v1.findings.is_empty());
    assert!(v1.token_count > 0);
    let id = created.prompt.id;
    let leaky = NewVersion {
        compliance: ComplianceRules {
            pii_email: Level::Info,
            ..ComplianceRules::default()
        },
        ..text("Mail jane@example.com with key AKIAIOSFODNN7EXAMPLE")
    };
    let added = store.add_version(id, leaky).await.expect("v2");
    let got: Vec<(&str, Severity)> = added
        .version
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.severity))
        .collect();
    assert_eq!(
        got,
        vec![("secret", Severity::Error), ("pii_email", Severity::Info)],
        "checked with the rules given"
    );
    // Read back exactly as written, by every read path.
    assert_eq!(store.get_version(id, 2).await.expect("v2"), added.version);
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("detail");
    assert_eq!(detail.versions[0], added.version);
    let (_, resolved) = store
        .resolve_version(&PromptKey::Id(id), &VersionSelector::Number(2))
        .await
        .expect("resolve");
    assert_eq!(resolved, added.version);
    // A status change keeps them.
    let moved = store
        .set_version_status(id, 2, VersionStatus::Draft, VersionStatus::Review)
        .await
        .expect("to review");
    assert_eq!(moved.findings, added.version.findings);
    assert_eq!(moved.token_count, added.version.token_count);
}

async fn findings_compare_the_carried_over_schema(store: Arc<dyn Store>) {
    let id = create(&store, "comply/schema").await;
    let with_schema = VersionDraft::new(
        Content::Text("Hello {{ name }}".into()),
        json!({}),
        Some(json!({"type": "object", "properties": {"name": {"type": "string"}}})),
        None,
    )
    .expect("draft");
    let v2 = store
        .add_version(id, version(with_schema, &[]))
        .await
        .expect("v2");
    assert!(v2.version.findings.is_empty(), "{:?}", v2.version.findings);
    // A later draft without a schema takes the newest one, and is compared against it.
    let carried = NewVersion {
        carry_over: CarryOver {
            config: true,
            parameter_schema: true,
        },
        ..text("Hello {{ name }} about {{ topic }}")
    };
    let v3 = store.add_version(id, carried).await.expect("v3");
    let got: Vec<&str> = v3
        .version
        .findings
        .iter()
        .map(|f| f.rule.as_str())
        .collect();
    assert_eq!(got, vec!["undeclared_variable"]);
}

// ---------------------------------------------------------------------------------------------
// Template test cases.

fn cases(value: Value) -> Vec<TestCase> {
    serde_json::from_value(value).expect("valid test cases")
}

async fn test_cases_round_trip_and_replacing_them_bumps_the_revision(store: Arc<dyn Store>) {
    let id = create(&store, "tests/roundtrip").await;
    assert!(store.get_tests(id).await.expect("none yet").is_empty());
    let set = cases(json!([
        {"name": "greets", "params": {"name": "Ada"},
         "assertions": [{"type": "contains", "value": "Ada"}, {"type": "max_tokens", "max": 10}]},
        {"name": "lenient", "undefined": "lenient",
         "assertions": [{"type": "json_schema", "schema": {"type": "string"}}]}
    ]));
    let before = store.find_prompt(&PromptKey::Id(id)).await.expect("prompt");
    let updated = store.replace_tests(id, set.clone()).await.expect("replace");
    assert_eq!(updated.revision, before.revision + 1);
    assert_eq!(store.get_tests(id).await.expect("read back"), set);
    // Replacing replaces; an empty set removes them (and still bumps the revision).
    let one = cases(json!([{"name": "only", "assertions": [{"type": "valid_json"}]}]));
    store.replace_tests(id, one.clone()).await.expect("again");
    assert_eq!(store.get_tests(id).await.expect("read back"), one);
    let cleared = store.replace_tests(id, Vec::new()).await.expect("clear");
    assert_eq!(cleared.revision, before.revision + 3);
    assert!(store.get_tests(id).await.expect("cleared").is_empty());
    // Deleting the prompt deletes its tests.
    store.replace_tests(id, one).await.expect("set");
    store.delete_prompt(id).await.expect("delete");
    assert_not_found(store.get_tests(id).await, &format!("prompt {id}"));
}

async fn test_cases_run_on_every_new_version_and_failures_are_error_findings(
    store: Arc<dyn Store>,
) {
    let id = create(&store, "tests/run").await;
    store
        .replace_tests(
            id,
            cases(json!([
                {"name": "greets Ada", "params": {"name": "Ada"},
                 "assertions": [{"type": "contains", "value": "Hello Ada"}]},
                {"name": "no secrets", "params": {"name": "Ada"},
                 "assertions": [{"type": "not_contains", "value": "password"}]}
            ])),
        )
        .await
        .expect("set tests");
    // Passing: no findings from the tests.
    let v2 = store
        .add_version(id, text("Hello {{ name }}!"))
        .await
        .expect("v2");
    assert!(v2.version.findings.is_empty(), "{:?}", v2.version.findings);
    // Failing: one error finding per failed assertion, located at the case.
    let v3 = store
        .add_version(id, text("Hi {{ name }}, your password is safe"))
        .await
        .expect("v3");
    let got: Vec<(&str, Severity, Option<&str>)> = v3
        .version
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.severity, f.location.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "test_failed",
                Severity::Error,
                Some("test \"greets Ada\", assertion 0 (contains)")
            ),
            (
                "test_failed",
                Severity::Error,
                Some("test \"no secrets\", assertion 0 (not_contains)")
            ),
        ]
    );
    assert_eq!(store.get_version(id, 3).await.expect("v3"), v3.version);
    // A render error fails the case: the carried-over schema is the one the version gets.
    let schema = VersionDraft::new(
        Content::Text("Hello {{ name }}!".into()),
        json!({}),
        Some(json!({"type": "object", "properties": {"name": {"type": "integer"}}})),
        None,
    )
    .expect("draft");
    let v4 = store
        .add_version(id, version(schema, &[]))
        .await
        .expect("v4");
    let carried = NewVersion {
        carry_over: CarryOver {
            config: true,
            parameter_schema: true,
        },
        ..text("Hello {{ name }}!!")
    };
    let v5 = store.add_version(id, carried).await.expect("v5");
    for added in [&v4, &v5] {
        let failed: Vec<&str> = added
            .version
            .findings
            .iter()
            .filter(|f| f.rule == "test_failed")
            .filter_map(|f| f.location.as_deref())
            .collect();
        assert_eq!(failed, vec!["test \"greets Ada\"", "test \"no secrets\""]);
    }
    // An identical draft creates nothing and runs nothing.
    let again = store
        .add_version(
            id,
            NewVersion {
                carry_over: CarryOver {
                    config: true,
                    parameter_schema: true,
                },
                ..text("Hello {{ name }}!!")
            },
        )
        .await
        .expect("identical");
    assert!(!again.created);
}

async fn test_cases_of_a_missing_prompt_are_not_found(store: Arc<dyn Store>) {
    let id = Uuid::now_v7();
    assert_not_found(store.get_tests(id).await, &format!("prompt {id}"));
    assert_not_found(
        store.replace_tests(id, Vec::new()).await,
        &format!("prompt {id}"),
    );
}

async fn sealed_test_cases_are_not_in_the_database_and_follow_the_classification(
    database: &TestDatabase,
) {
    let store = database.store();
    let created = store
        .create_prompt(
            classified("sec/tests", Classification::Confidential),
            text("Hello {{ name }}"),
        )
        .await
        .expect("create confidential");
    let id = created.prompt.id;
    let set = cases(json!([{"name": "secret param", "params": {"name": MARKER},
        "assertions": [{"type": "contains", "value": MARKER}]}]));
    store.replace_tests(id, set.clone()).await.expect("set");
    assert_eq!(store.get_tests(id).await.expect("opened"), set);
    let raw = "SELECT cases || coalesce(key_id, '') FROM prompt_tests";
    let raw_pg = "SELECT cases::text || coalesce(key_id, '') FROM prompt_tests";
    let stored = |rows: Vec<Option<String>>| rows.into_iter().flatten().collect::<Vec<_>>();
    let sql = if database.file_bytes().is_some() {
        raw
    } else {
        raw_pg
    };
    assert_eq!(
        stored(database.query_text(sql).await),
        vec!["nullk1".to_string()]
    );
    if let Some(bytes) = database.file_bytes() {
        let marker = MARKER.as_bytes();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker));
    }
    // The tests still run on a new version (opened inside the transaction).
    let v2 = store
        .add_version(id, text("Hello {{ name }}!"))
        .await
        .expect("v2");
    assert!(v2.version.findings.is_empty(), "{:?}", v2.version.findings);
    // Without keys they cannot be read, and the error names the key, not the content.
    let keyless = database.open_store(ConnectOptions::default()).await;
    match keyless.get_tests(id).await {
        Err(StoreError::Encryption(message)) => {
            assert!(
                message.contains("k1") && !message.contains(MARKER),
                "{message}"
            )
        }
        other => panic!("expected an encryption error, got {other:?}"),
    }
    // Lowering the classification opens them; raising it seals them again.
    let lower = PromptPatch {
        classification: Some(Classification::Internal),
        ..PromptPatch::default()
    };
    store.update_prompt(id, lower, None).await.expect("lower");
    let clear = stored(database.query_text(sql).await);
    assert!(clear[0].contains(MARKER), "{clear:?}");
    assert_eq!(keyless.get_tests(id).await.expect("clear now"), set);
    let raise = PromptPatch {
        classification: Some(Classification::Restricted),
        ..PromptPatch::default()
    };
    store.update_prompt(id, raise, None).await.expect("raise");
    assert_eq!(
        stored(database.query_text(sql).await),
        vec!["nullk1".to_string()]
    );
    // Key rotation re-seals them under the new current key.
    let rotated = database
        .open_store(ring(&[("k2", KEY_2), ("k1", KEY_1)]))
        .await;
    rotated.reencrypt().await.expect("rotate");
    assert_eq!(
        stored(database.query_text(sql).await),
        vec!["nullk2".to_string()]
    );
    assert_eq!(rotated.get_tests(id).await.expect("opened with k2"), set);
}
// Deprecation, archive, retention, periodic review.

/// Walks version `n` along draft → review → approved → deprecated → archived up to `to`
/// (deprecating without a recorded deprecation).
async fn walk(store: &Arc<dyn Store>, id: Uuid, n: i64, to: VersionStatus) {
    use VersionStatus::{Approved, Archived, Deprecated, Draft, Review};
    let path = [Draft, Review, Approved, Deprecated, Archived];
    let current = store.get_version(id, n).await.expect("version").status;
    let start = path
        .iter()
        .position(|s| *s == current)
        .expect("on the path");
    let end = path.iter().position(|s| *s == to).expect("on the path");
    for step in start..end {
        store
            .set_version_status(id, n, path[step], path[step + 1])
            .await
            .expect("move along the lifecycle");
    }
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).expect("valid time")
}

async fn approving_records_when_and_deprecating_records_the_deprecation_on_the_version(
    store: Arc<dyn Store>,
) {
    let successor = store
        .create_prompt(new_prompt("dep/new"), text("new"))
        .await
        .expect("create");
    let created = store
        .create_prompt(new_prompt("dep/old"), text("old"))
        .await
        .expect("create");
    let id = created.prompt.id;
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    walk(&store, id, 1, VersionStatus::Approved).await;
    let approved = store.get_version(id, 1).await.expect("v1");
    let approved_at = approved
        .lifecycle
        .approved_at
        .expect("approved_at recorded");
    assert!(approved_at >= before, "{approved_at}");
    assert_eq!(approved.lifecycle.deprecation, None);

    let deprecation = Deprecation {
        deprecated_at: at(1_700_000_000),
        sunset_at: at(1_702_592_000),
        replacement: Some(Replacement {
            prompt_id: successor.prompt.id,
            name: "dep/new".into(),
        }),
    };
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    let moved = store
        .deprecate_version(id, 1, VersionStatus::Approved, deprecation.clone())
        .await
        .expect("deprecate");
    assert_eq!(moved.status, VersionStatus::Deprecated);
    assert_eq!(moved.lifecycle.deprecation.as_ref(), Some(&deprecation));
    assert_eq!(moved.lifecycle.approved_at, Some(approved_at), "kept");
    assert_eq!(store.get_version(id, 1).await.expect("v1"), moved);
    let (_, resolved) = store
        .resolve_version(
            &PromptKey::Id(id),
            &VersionSelector::Label(LabelName::latest()),
        )
        .await
        .expect("resolve");
    assert_eq!(resolved, moved, "the serve path reads the deprecation too");
    let prompt = store.find_prompt(&PromptKey::Id(id)).await.expect("find");
    assert_eq!(prompt.revision, revision + 1);
    assert_eq!(prompt.status, PromptStatus::Deprecated);

    // Without a replacement; and only from the expected status.
    let other = store
        .create_prompt(new_prompt("dep/plain"), text("plain"))
        .await
        .expect("create");
    walk(&store, other.prompt.id, 1, VersionStatus::Approved).await;
    let plain = Deprecation {
        replacement: None,
        ..deprecation.clone()
    };
    match store
        .deprecate_version(other.prompt.id, 1, VersionStatus::Review, plain.clone())
        .await
    {
        Err(StoreError::StatusChanged { current, .. }) => {
            assert_eq!(current, VersionStatus::Approved)
        }
        other => panic!("expected StatusChanged, got {other:?}"),
    }
    let moved = store
        .deprecate_version(other.prompt.id, 1, VersionStatus::Approved, plain.clone())
        .await
        .expect("deprecate");
    assert_eq!(moved.lifecycle.deprecation, Some(plain));
}

async fn the_prompt_status_follows_its_versions_statuses(store: Arc<dyn Store>) {
    let created = store
        .create_prompt(new_prompt("status/p"), text("one"))
        .await
        .expect("create");
    let id = created.prompt.id;
    let status = |store: Arc<dyn Store>| async move {
        store
            .find_prompt(&PromptKey::Id(id))
            .await
            .expect("find")
            .status
    };
    walk(&store, id, 1, VersionStatus::Deprecated).await;
    assert_eq!(status(store.clone()).await, PromptStatus::Deprecated);
    walk(&store, id, 1, VersionStatus::Archived).await;
    assert_eq!(status(store.clone()).await, PromptStatus::Archived);
    store.add_version(id, text("two")).await.expect("add");
    assert_eq!(
        status(store.clone()).await,
        PromptStatus::Active,
        "a new draft makes the prompt active again"
    );
    walk(&store, id, 2, VersionStatus::Archived).await;
    assert_eq!(status(store.clone()).await, PromptStatus::Archived);
}

async fn archiving_a_version_a_user_label_points_at_is_refused_naming_the_labels(
    store: Arc<dyn Store>,
) {
    let created = store
        .create_prompt(
            new_prompt("arch/p"),
            version(draft("one", json!({}), None), &["staging", "beta"]),
        )
        .await
        .expect("create");
    let id = created.prompt.id;
    walk(&store, id, 1, VersionStatus::Deprecated).await;
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    match store
        .set_version_status(id, 1, VersionStatus::Deprecated, VersionStatus::Archived)
        .await
    {
        Err(StoreError::VersionLabelled { version, labels }) => {
            assert_eq!(version, 1);
            assert_eq!(labels, vec!["beta".to_string(), "staging".to_string()]);
        }
        other => panic!("expected VersionLabelled, got {other:?}"),
    }
    let unchanged = store.find_prompt(&PromptKey::Id(id)).await.expect("find");
    assert_eq!(unchanged.revision, revision, "nothing written");
    assert_eq!(
        store.get_version(id, 1).await.expect("v1").status,
        VersionStatus::Deprecated
    );
    store
        .remove_label(id, &label("staging"), None)
        .await
        .expect("remove");
    store
        .remove_label(id, &label("beta"), None)
        .await
        .expect("remove");
    // `latest` still points at it: that does not stop archiving.
    let archived = store
        .set_version_status(id, 1, VersionStatus::Deprecated, VersionStatus::Archived)
        .await
        .expect("archive");
    assert!(archived.lifecycle.archived_at.is_some());
    let page = store
        .list_prompts(&PromptQuery::default())
        .await
        .expect("list");
    assert!(page.items.iter().all(|item| item.prompt.id != id), "hidden");
    let page = store
        .list_prompts(&PromptQuery {
            status: Some(PromptStatus::Archived),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].prompt.id, id);
    let detail = store
        .get_prompt(&PromptKey::Id(id))
        .await
        .expect("history stays");
    assert_eq!(detail.versions.len(), 1);
}

async fn purging_archived_versions_drops_their_content_and_keeps_their_history(
    store: Arc<dyn Store>,
) {
    let plain = store
        .create_prompt(
            new_prompt("purge/plain"),
            version(draft("old {{ x }}", json!({"model": "m"}), None), &[]),
        )
        .await
        .expect("create");
    let sealed = store
        .create_prompt(
            classified("purge/sealed", Classification::Confidential),
            text("secret"),
        )
        .await
        .expect("create");
    let kept = store
        .create_prompt(new_prompt("purge/kept"), text("kept"))
        .await
        .expect("create");
    for id in [plain.prompt.id, sealed.prompt.id] {
        walk(&store, id, 1, VersionStatus::Archived).await;
    }
    walk(&store, kept.prompt.id, 1, VersionStatus::Deprecated).await;
    let before = store.get_version(plain.prompt.id, 1).await.expect("v1");
    let archived_at = before.lifecycle.archived_at.expect("archived_at");

    // The injected "now": a cutoff at or before the archive time purges nothing.
    let none = store
        .purge_archived_versions(archived_at)
        .await
        .expect("purge");
    assert_eq!(none, vec![]);
    let cutoff = archived_at + time::Duration::days(1);
    let purged = store.purge_archived_versions(cutoff).await.expect("purge");
    let mut names: Vec<_> = purged.iter().map(|p| p.prompt_name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["purge/plain", "purge/sealed"]);
    let entry = purged
        .iter()
        .find(|p| p.prompt_name == "purge/plain")
        .expect("plain purged");
    assert_eq!(entry.version_number, 1);
    assert_eq!(entry.diff_hash, before.diff_hash);
    assert_eq!(entry.archived_at, archived_at);

    let after = store
        .get_version(plain.prompt.id, 1)
        .await
        .expect("history stays");
    assert!(after.lifecycle.purged_at.is_some());
    assert_eq!(after.content, Content::Text(String::new()));
    assert_eq!(after.config, json!({}));
    assert_eq!(after.parameter_schema, None);
    assert_eq!(
        (
            after.version_number,
            &after.semver,
            &after.diff_hash,
            after.author_id,
            after.status
        ),
        (
            1,
            &before.semver,
            &before.diff_hash,
            before.author_id,
            VersionStatus::Archived
        )
    );
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.lifecycle.archived_at, Some(archived_at));
    let sealed_after = store
        .get_version(sealed.prompt.id, 1)
        .await
        .expect("readable");
    assert!(sealed_after.lifecycle.purged_at.is_some());
    // Key rotation leaves purged versions alone (nothing to seal).
    assert_eq!(store.reencrypt().await.expect("reencrypt"), 0);
    // Not archived: untouched. Purging again finds nothing.
    let kept_after = store.get_version(kept.prompt.id, 1).await.expect("v1");
    assert_eq!(kept_after.content, Content::Text("kept".into()));
    assert_eq!(
        store.purge_archived_versions(cutoff).await.expect("purge"),
        vec![]
    );
}

async fn review_states_carry_the_type_interval_the_attestation_and_the_last_approval(
    store: Arc<dyn Store>,
) {
    let created_type = store
        .create_prompt_type(NewPromptType {
            review_every_days: Some(30),
            schema: None,
            ..prompt_type("audited")
        })
        .await
        .expect("create type");
    assert_eq!(created_type.review_every_days, Some(30));
    assert_eq!(
        store
            .get_prompt_type("audited")
            .await
            .expect("get")
            .review_every_days,
        Some(30)
    );
    let typed = store
        .create_prompt(
            NewPrompt {
                prompt_type: Some("audited".into()),
                ..new_prompt("rev/typed")
            },
            text("typed"),
        )
        .await
        .expect("create");
    let plain = store
        .create_prompt(new_prompt("rev/plain"), text("plain"))
        .await
        .expect("create");
    let gone = store
        .create_prompt(new_prompt("rev/gone"), text("gone"))
        .await
        .expect("create");
    walk(&store, gone.prompt.id, 1, VersionStatus::Archived).await;
    walk(&store, plain.prompt.id, 1, VersionStatus::Approved).await;
    store
        .mark_reviewed(typed.prompt.id, at(1_700_000_000))
        .await
        .expect("attest");

    let states = store.review_states().await.expect("states");
    let names: Vec<_> = states.iter().map(|s| s.prompt.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["rev/plain", "rev/typed"],
        "archived prompts are left out"
    );
    let typed_state = &states[1];
    assert_eq!(typed_state.type_review_every_days, Some(30));
    assert_eq!(typed_state.last_attested_at, Some(at(1_700_000_000)));
    assert_eq!(typed_state.last_approved_at, None);
    let plain_state = &states[0];
    assert_eq!(plain_state.type_review_every_days, None);
    assert_eq!(plain_state.last_attested_at, None);
    assert_eq!(
        plain_state.last_approved_at,
        store
            .get_version(plain.prompt.id, 1)
            .await
            .expect("v1")
            .lifecycle
            .approved_at
    );

    // The type's interval can be changed and cleared.
    let patched = store
        .update_prompt_type(
            "audited",
            PromptTypePatch {
                review_every_days: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("patch");
    assert_eq!(patched.review_every_days, None);
    let missing = Uuid::now_v7();
    assert_not_found(
        store.mark_reviewed(missing, at(0)).await,
        &format!("prompt {missing}"),
    );
}
// Deploying through labels: splits, required statuses, promote, rollback, time travel.

fn split_of(entries: &[(i64, u32)]) -> Split {
    Split::new(
        entries
            .iter()
            .map(|&(version, weight)| SplitEntry { version, weight })
            .collect(),
    )
    .expect("valid split")
}

async fn approve(store: &Arc<dyn Store>, id: Uuid, version: i64) {
    store
        .set_version_status(id, version, VersionStatus::Draft, VersionStatus::Review)
        .await
        .expect("to review");
    store
        .set_version_status(id, version, VersionStatus::Review, VersionStatus::Approved)
        .await
        .expect("to approved");
}

/// A prompt with versions 1..=n (all drafts).
async fn with_versions(store: &Arc<dyn Store>, prompt_name: &str, n: i64) -> Uuid {
    let id = create(store, prompt_name).await;
    for number in 2..=n {
        store
            .add_version(id, text(&format!("version {number}")))
            .await
            .expect("add version");
    }
    id
}

async fn a_label_can_split_traffic_and_the_prompt_shows_the_split(store: Arc<dyn Store>) {
    let id = with_versions(&store, "deploy/split", 3).await;
    let staging = label("staging");
    let actor = Uuid::now_v7();
    let split = split_of(&[(2, 70), (3, 30)]);
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    let event = store
        .set_label_target(
            id,
            &staging,
            &LabelTarget::Split(split.clone()),
            None,
            Some(actor),
        )
        .await
        .expect("split")
        .expect("a move");
    assert_eq!(event.action, LabelAction::Split);
    assert_eq!((event.from_version, event.to_version), (None, Some(2)));
    assert_eq!(event.split.as_ref(), Some(&split));
    assert_eq!(event.actor_id, Some(actor));
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.labels, labels(&[("latest", 3), ("staging", 2)]));
    assert_eq!(
        detail.label_splits,
        BTreeMap::from([("staging".to_string(), split.clone())])
    );
    assert_eq!(detail.prompt.revision, revision + 1);
    assert_eq!(
        store
            .label_target(id, &staging, None)
            .await
            .expect("target"),
        Some(LabelTarget::Split(split.clone()))
    );
    // The same split again changes nothing.
    let again = store
        .set_label_target(id, &staging, &LabelTarget::Split(split.clone()), None, None)
        .await
        .expect("same split");
    assert_eq!(again, None);
    // Pointing at the primary version alone ends the split: that is a move.
    let plain = store
        .set_label_target(id, &staging, &LabelTarget::Version(2), None, None)
        .await
        .expect("plain")
        .expect("a move");
    assert_eq!((plain.action, plain.split), (LabelAction::Set, None));
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert!(detail.label_splits.is_empty());
    // A plain `set_label` or a version's labels also end a split.
    store
        .set_label_target(id, &staging, &LabelTarget::Split(split.clone()), None, None)
        .await
        .expect("split again");
    let moved = store
        .set_label(id, &staging, 2, None)
        .await
        .expect("set label")
        .expect("a move");
    assert_eq!(moved.split, None);
    assert!(
        store
            .get_prompt(&PromptKey::Id(id))
            .await
            .expect("get")
            .label_splits
            .is_empty()
    );
    let history = store.label_history(id, &staging).await.expect("history");
    let actions: Vec<_> = history.iter().map(|event| event.action).collect();
    assert_eq!(
        actions,
        [
            LabelAction::Split,
            LabelAction::Set,
            LabelAction::Split,
            LabelAction::Set
        ]
    );
    assert_eq!(history[2].split.as_ref(), Some(&split));
    // A split naming a missing version is not found, naming it.
    assert_not_found(
        store
            .set_label_target(
                id,
                &staging,
                &LabelTarget::Split(split_of(&[(1, 50), (9, 50)])),
                None,
                None,
            )
            .await,
        "version 9 of prompt \"deploy/split\"",
    );
}

async fn a_required_status_is_checked_inside_the_move_and_a_refusal_writes_nothing(
    store: Arc<dyn Store>,
) {
    let id = with_versions(&store, "deploy/required", 2).await;
    let production = label("production");
    let refused = store
        .set_label_target(
            id,
            &production,
            &LabelTarget::Version(1),
            Some(VersionStatus::Approved),
            None,
        )
        .await;
    match refused {
        Err(StoreError::Domain(DomainError::LabelRequiresApproval {
            label,
            version,
            status,
        })) => {
            assert_eq!(
                (label.as_str(), version, status),
                ("production", 1, "draft")
            );
        }
        other => panic!("expected label_requires_approval, got {other:?}"),
    }
    assert!(
        store
            .label_history(id, &production)
            .await
            .expect("history")
            .is_empty()
    );
    approve(&store, id, 1).await;
    // A split needs every version approved; the refusal names the one that is not.
    let split = LabelTarget::Split(split_of(&[(1, 90), (2, 10)]));
    match store
        .set_label_target(id, &production, &split, Some(VersionStatus::Approved), None)
        .await
    {
        Err(StoreError::Domain(DomainError::LabelRequiresApproval { version, .. })) => {
            assert_eq!(version, 2)
        }
        other => panic!("expected label_requires_approval, got {other:?}"),
    }
    approve(&store, id, 2).await;
    store
        .set_label_target(id, &production, &split, Some(VersionStatus::Approved), None)
        .await
        .expect("both approved")
        .expect("a move");
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.labels.get("production"), Some(&1));
    let missing = Uuid::now_v7();
    assert_not_found(
        store
            .set_label_target(missing, &production, &LabelTarget::Version(1), None, None)
            .await,
        &format!("prompt {missing}"),
    );
}

async fn promoting_ends_a_split_on_one_of_its_versions(store: Arc<dyn Store>) {
    let id = with_versions(&store, "deploy/promote", 3).await;
    let staging = label("staging");
    // No label yet: not found; a plain label: nothing to promote.
    assert_not_found(
        store.promote_label(id, &staging, None, None, None).await,
        "label \"staging\" of prompt \"deploy/promote\"",
    );
    store.set_label(id, &staging, 1, None).await.expect("plain");
    assert_conflict(store.promote_label(id, &staging, None, None, None).await);
    store
        .set_label_target(
            id,
            &staging,
            &LabelTarget::Split(split_of(&[(1, 90), (2, 10)])),
            None,
            None,
        )
        .await
        .expect("split");
    let actor = Uuid::now_v7();
    let promoted = store
        .promote_label(id, &staging, None, None, Some(actor))
        .await
        .expect("promote");
    assert_eq!(promoted.action, LabelAction::Promote);
    assert_eq!(
        (promoted.from_version, promoted.to_version),
        (Some(1), Some(2))
    );
    assert_eq!((promoted.split, promoted.actor_id), (None, Some(actor)));
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.labels.get("staging"), Some(&2));
    assert!(detail.label_splits.is_empty());
    // Three versions: the caller must say which; a version outside the split is refused.
    store
        .set_label_target(
            id,
            &staging,
            &LabelTarget::Split(split_of(&[(1, 80), (2, 10), (3, 10)])),
            None,
            None,
        )
        .await
        .expect("split of three");
    for asked in [None, Some(4)] {
        match store.promote_label(id, &staging, asked, None, None).await {
            Err(StoreError::Domain(error)) => assert_eq!(error.code(), "invalid_field"),
            other => panic!("expected a domain error, got {other:?}"),
        }
    }
    // The required status applies to the promoted version.
    match store
        .promote_label(id, &staging, Some(3), Some(VersionStatus::Approved), None)
        .await
    {
        Err(StoreError::Domain(DomainError::LabelRequiresApproval { version, .. })) => {
            assert_eq!(version, 3)
        }
        other => panic!("expected label_requires_approval, got {other:?}"),
    }
    let promoted = store
        .promote_label(id, &staging, Some(3), None, None)
        .await
        .expect("promote 3");
    assert_eq!(promoted.to_version, Some(3));
}

async fn rolling_back_moves_to_the_newest_earlier_approved_target(store: Arc<dyn Store>) {
    let id = with_versions(&store, "deploy/rollback", 4).await;
    let production = label("production");
    for number in [1, 2, 3] {
        approve(&store, id, number).await;
    }
    // Nothing to roll back to without history.
    assert_conflict(store.rollback_label(id, &production, None).await);
    store.set_label(id, &production, 1, None).await.expect("1");
    // Only the current target in the history: still nothing.
    let what = assert_conflict(store.rollback_label(id, &production, None).await);
    assert!(what.contains("no earlier approved version"), "{what}");
    for to in [2, 4, 3] {
        store
            .set_label(id, &production, to, None)
            .await
            .expect("move");
    }
    let actor = Uuid::now_v7();
    // Newest first: 3 is current, 4 is not approved, 2 is.
    let rolled = store
        .rollback_label(id, &production, Some(actor))
        .await
        .expect("rollback");
    assert_eq!(rolled.action, LabelAction::Rollback);
    assert_eq!((rolled.from_version, rolled.to_version), (Some(3), Some(2)));
    assert_eq!(rolled.actor_id, Some(actor));
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert_eq!(detail.labels.get("production"), Some(&2));
    // A rollback from a split clears it.
    store
        .set_label_target(
            id,
            &production,
            &LabelTarget::Split(split_of(&[(3, 90), (2, 10)])),
            None,
            None,
        )
        .await
        .expect("split");
    let rolled = store
        .rollback_label(id, &production, None)
        .await
        .expect("rollback from split");
    assert_eq!(
        (rolled.from_version, rolled.to_version, rolled.split),
        (Some(3), Some(2), None)
    );
    let detail = store.get_prompt(&PromptKey::Id(id)).await.expect("get");
    assert!(detail.label_splits.is_empty());
    let history = store.label_history(id, &production).await.expect("history");
    assert_eq!(
        history.last().map(|event| event.action),
        Some(LabelAction::Rollback)
    );
}

async fn a_label_target_at_a_time_comes_from_the_history_and_latest_from_creation_times(
    store: Arc<dyn Store>,
) {
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(20));
    let before = OffsetDateTime::now_utc();
    pause().await;
    let id = create(&store, "deploy/travel").await;
    let staging = label("staging");
    store.set_label(id, &staging, 1, None).await.expect("1");
    pause().await;
    let at_one = OffsetDateTime::now_utc();
    pause().await;
    store.add_version(id, text("two")).await.expect("v2");
    let split = split_of(&[(2, 50), (1, 50)]);
    store
        .set_label_target(id, &staging, &LabelTarget::Split(split.clone()), None, None)
        .await
        .expect("split");
    pause().await;
    let at_split = OffsetDateTime::now_utc();
    pause().await;
    store
        .remove_label(id, &staging, None)
        .await
        .expect("remove");
    pause().await;
    let after_removal = OffsetDateTime::now_utc();
    let at = |time| store.label_target(id, &staging, Some(time));
    assert_eq!(at(before).await.expect("before"), None);
    assert_eq!(
        at(at_one).await.expect("one"),
        Some(LabelTarget::Version(1))
    );
    assert_eq!(
        at(at_split).await.expect("split"),
        Some(LabelTarget::Split(split))
    );
    assert_eq!(at(after_removal).await.expect("removed"), None);
    assert_eq!(
        store.label_target(id, &staging, None).await.expect("now"),
        None
    );
    let latest = LabelName::latest();
    let latest_at = |time| store.label_target(id, &latest, Some(time));
    assert_eq!(latest_at(before).await.expect("before"), None);
    assert_eq!(
        latest_at(at_one).await.expect("one"),
        Some(LabelTarget::Version(1))
    );
    assert_eq!(
        latest_at(at_split).await.expect("two"),
        Some(LabelTarget::Version(2))
    );
    assert_not_found(
        store.label_target(Uuid::nil(), &staging, None).await,
        &format!("prompt {}", Uuid::nil()),
    );
}

async fn archiving_a_version_a_split_still_serves_is_refused(store: Arc<dyn Store>) {
    let id = with_versions(&store, "deploy/split-archive", 3).await;
    store
        .set_label_target(
            id,
            &label("staging"),
            &LabelTarget::Split(split_of(&[(2, 90), (1, 10)])),
            None,
            None,
        )
        .await
        .expect("split");
    walk(&store, id, 1, VersionStatus::Deprecated).await;
    match store
        .set_version_status(id, 1, VersionStatus::Deprecated, VersionStatus::Archived)
        .await
    {
        Err(StoreError::VersionLabelled { version, labels }) => {
            assert_eq!(version, 1);
            assert_eq!(labels, vec!["staging".to_string()]);
        }
        other => panic!("expected VersionLabelled, got {other:?}"),
    }
    store
        .set_label_target(id, &label("staging"), &LabelTarget::Version(2), None, None)
        .await
        .expect("the split ends");
    let archived = store
        .set_version_status(id, 1, VersionStatus::Deprecated, VersionStatus::Archived)
        .await
        .expect("no label serves it any more");
    assert_eq!(archived.status, VersionStatus::Archived);
}

// --- Approval workflows --------------------------------------------------------------------

const AUTHOR: Uuid = Uuid::from_u128(0xa0);

/// A prompt whose version 1 (written by [`AUTHOR`]) is in review.
async fn in_review(store: &Arc<dyn Store>, prompt: NewPrompt) -> Uuid {
    let first = NewVersion {
        author_id: Some(AUTHOR),
        ..text("Please review {{ topic }}")
    };
    let id = store
        .create_prompt(prompt, first)
        .await
        .expect("create")
        .prompt
        .id;
    store
        .set_version_status(id, 1, VersionStatus::Draft, VersionStatus::Review)
        .await
        .expect("submit");
    id
}

fn by(role: Role, user: u128) -> NewReview {
    NewReview {
        reviewer: Reviewer::new(role, Some(Uuid::from_u128(user)), None),
        comment: Some(format!("looked at it as {role}")),
        policy: ApprovalPolicy::default(),
    }
}

fn refusal<T: std::fmt::Debug>(result: Result<T, StoreError>) -> ApprovalRefusal {
    match result {
        Err(StoreError::Approval(refusal)) => refusal,
        other => panic!("expected an approval refusal, got {other:?}"),
    }
}

async fn approvals_follow_each_classifications_workflow_and_complete_it_atomically(
    store: Arc<dyn Store>,
) {
    // (classification, the approvals that complete its default workflow, in order)
    let cases: [(Classification, &[(Role, u128)]); 3] = [
        (Classification::Internal, &[(Role::User, 1)]),
        (
            Classification::Confidential,
            &[(Role::User, 1), (Role::Admin, 2)],
        ),
        (
            Classification::Restricted,
            &[(Role::User, 1), (Role::Admin, 2)],
        ),
    ];
    for (classification, approvals) in cases {
        let id = in_review(
            &store,
            classified(&format!("wf/{classification}"), classification),
        )
        .await;
        for (index, (role, user)) in approvals.iter().enumerate() {
            let revision = store
                .find_prompt(&PromptKey::Id(id))
                .await
                .expect("find")
                .revision;
            let outcome = store
                .approve_version(id, 1, by(*role, *user))
                .await
                .expect("approval recorded");
            let last = index + 1 == approvals.len();
            assert_eq!(outcome.complete, last, "{classification} approval {index}");
            assert_eq!(outcome.record.decision, ReviewDecision::Approve);
            assert_eq!(outcome.record.round, 1);
            assert_eq!(outcome.round.len(), index + 1);
            let expected_status = if last {
                VersionStatus::Approved
            } else {
                VersionStatus::Review
            };
            assert_eq!(outcome.version.status, expected_status);
            assert_eq!(
                store.get_version(id, 1).await.expect("v1").status,
                expected_status
            );
            let after = store
                .find_prompt(&PromptKey::Id(id))
                .await
                .expect("find")
                .revision;
            assert_eq!(after, revision + 1, "every decision bumps the revision");
        }
        let reviews = store.list_reviews(id, 1).await.expect("reviews").reviews;
        assert_eq!(reviews.len(), approvals.len());
        for (review, (role, user)) in reviews.iter().zip(approvals.iter()) {
            assert_eq!(review.reviewer_id, Uuid::from_u128(*user).to_string());
            assert_eq!(review.reviewer_role, *role);
            assert_eq!(
                review.comment.as_deref(),
                Some(format!("looked at it as {role}").as_str())
            );
        }
        if classification == Classification::Restricted {
            assert_eq!(
                reviews.iter().map(|review| review.step).collect::<Vec<_>>(),
                vec![0, 1],
                "the second approval counts toward the second step"
            );
        }
        // Approved: no further approvals.
        assert_eq!(
            refusal(store.approve_version(id, 1, by(Role::Admin, 9)).await),
            ApprovalRefusal::NotInReview {
                status: VersionStatus::Approved
            }
        );
    }
}

async fn refused_approvals_write_nothing_and_say_why(store: Arc<dyn Store>) {
    let id = in_review(&store, classified("wf/refused", Classification::Restricted)).await;
    let revision = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    assert_eq!(
        refusal(store.approve_version(id, 1, by(Role::Admin, 0xa0)).await),
        ApprovalRefusal::SelfApproval
    );
    assert_eq!(
        refusal(store.approve_version(id, 1, by(Role::Agent, 3)).await).code(),
        "approver_role_not_allowed"
    );
    assert_eq!(
        refusal(store.reject_version(id, 1, by(Role::User, 0xa0)).await),
        ApprovalRefusal::SelfApproval
    );
    store
        .approve_version(id, 1, by(Role::User, 1))
        .await
        .expect("step 1");
    assert_eq!(
        refusal(store.approve_version(id, 1, by(Role::User, 2)).await),
        ApprovalRefusal::RoleNotAllowed {
            step: 1,
            role: Role::User,
            allowed: vec![Role::Admin]
        }
    );
    assert_eq!(
        refusal(store.approve_version(id, 1, by(Role::Admin, 1)).await),
        ApprovalRefusal::AlreadyApproved { step: 0 }
    );
    let after = store
        .find_prompt(&PromptKey::Id(id))
        .await
        .expect("find")
        .revision;
    assert_eq!(
        after,
        revision + 1,
        "only the recorded approval bumped the revision"
    );
    assert_eq!(
        store
            .list_reviews(id, 1)
            .await
            .expect("reviews")
            .reviews
            .len(),
        1
    );
    assert_eq!(
        store.get_version(id, 1).await.expect("v1").status,
        VersionStatus::Review
    );

    let draft = create(&store, "wf/draft").await;
    assert_eq!(
        refusal(store.approve_version(draft, 1, by(Role::Admin, 1)).await),
        ApprovalRefusal::NotInReview {
            status: VersionStatus::Draft
        }
    );
    assert!(matches!(
        store.approve_version(draft, 7, by(Role::Admin, 1)).await,
        Err(StoreError::NotFound { what }) if what.contains("version 7")
    ));
    assert!(matches!(
        store.list_reviews(Uuid::now_v7(), 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.list_reviews(draft, 7).await,
        Err(StoreError::NotFound { what }) if what.contains("version 7")
    ));
}

async fn a_rejection_sends_the_version_to_draft_and_a_resubmission_starts_a_fresh_round(
    store: Arc<dyn Store>,
) {
    let id = in_review(
        &store,
        classified("wf/reject", Classification::Confidential),
    )
    .await;
    store
        .approve_version(id, 1, by(Role::User, 1))
        .await
        .expect("first approval");
    let rejected = store
        .reject_version(
            id,
            1,
            NewReview {
                comment: Some("the tone is off".into()),
                ..by(Role::Admin, 2)
            },
        )
        .await
        .expect("rejected");
    assert_eq!(rejected.version.status, VersionStatus::Draft);
    assert_eq!(rejected.record.decision, ReviewDecision::Reject);
    assert_eq!(rejected.record.comment.as_deref(), Some("the tone is off"));
    assert_eq!(
        refusal(store.reject_version(id, 1, by(Role::Admin, 2)).await).code(),
        "not_in_review"
    );

    store
        .set_version_status(id, 1, VersionStatus::Draft, VersionStatus::Review)
        .await
        .expect("resubmit");
    assert_eq!(
        store
            .list_reviews(id, 1)
            .await
            .expect("reviews")
            .current_round,
        2
    );
    // The first round's approval no longer counts: two new approvals are needed, and the
    // earlier approver may approve again.
    let again = store
        .approve_version(id, 1, by(Role::User, 1))
        .await
        .expect("round 2");
    assert_eq!(again.record.round, 2);
    assert!(!again.complete);
    assert_eq!(again.round.len(), 1);
    let done = store
        .approve_version(id, 1, by(Role::User, 3))
        .await
        .expect("round 2, second");
    assert!(done.complete);
    let reviews = store.list_reviews(id, 1).await.expect("reviews").reviews;
    assert_eq!(
        reviews
            .iter()
            .map(|review| (review.round, review.decision))
            .collect::<Vec<_>>(),
        vec![
            (1, ReviewDecision::Approve),
            (1, ReviewDecision::Reject),
            (2, ReviewDecision::Approve),
            (2, ReviewDecision::Approve),
        ],
        "every decision of every round is kept"
    );
}

/// A type whose workflow takes `count` approvals by admins or users.
async fn many_approvals_type(store: &Arc<dyn Store>, key: &str, count: u32) {
    store
        .create_prompt_type(NewPromptType {
            schema: None,
            restricted_creation: false,
            approval_workflow: Some(ApprovalWorkflow::one_step(
                &[Role::Admin, Role::User],
                count,
            )),
            ..prompt_type(key)
        })
        .await
        .expect("type");
}

async fn concurrent_approvals_by_different_approvers_count_exactly(store: Arc<dyn Store>) {
    many_approvals_type(&store, "five", 5).await;
    let id = in_review(
        &store,
        NewPrompt {
            prompt_type: Some("five".into()),
            ..new_prompt("wf/concurrent")
        },
    )
    .await;
    let tasks: Vec<_> = (0..12u128)
        .map(|user| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .approve_version(id, 1, by(Role::User, 100 + user))
                    .await
            })
        })
        .collect();
    let mut recorded = 0;
    let mut completed = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(outcome) => {
                recorded += 1;
                completed += usize::from(outcome.complete);
            }
            Err(StoreError::Approval(ApprovalRefusal::NotInReview { status })) => {
                assert_eq!(status, VersionStatus::Approved)
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(recorded, 5, "exactly the five approvals the workflow takes");
    assert_eq!(completed, 1, "exactly one approval completes it");
    assert_eq!(
        store
            .list_reviews(id, 1)
            .await
            .expect("reviews")
            .reviews
            .len(),
        5
    );
    assert_eq!(
        store.get_version(id, 1).await.expect("v1").status,
        VersionStatus::Approved
    );
}

async fn concurrent_approvals_by_the_same_approver_count_once(store: Arc<dyn Store>) {
    many_approvals_type(&store, "three", 3).await;
    let id = in_review(
        &store,
        NewPrompt {
            prompt_type: Some("three".into()),
            ..new_prompt("wf/same")
        },
    )
    .await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.approve_version(id, 1, by(Role::Admin, 7)).await })
        })
        .collect();
    let mut recorded = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => recorded += 1,
            Err(StoreError::Approval(ApprovalRefusal::AlreadyApproved { step: 0 })) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(
        store
            .list_reviews(id, 1)
            .await
            .expect("reviews")
            .reviews
            .len(),
        1
    );
    assert_eq!(
        store.get_version(id, 1).await.expect("v1").status,
        VersionStatus::Review
    );
}

async fn a_prompt_types_workflow_round_trips_and_overrides_the_classification(
    store: Arc<dyn Store>,
) {
    let workflow = ApprovalWorkflow {
        steps: vec![
            ApprovalStep {
                roles: vec![Role::User],
                count: 1,
            },
            ApprovalStep {
                roles: vec![Role::Admin],
                count: 2,
            },
        ],
    };
    let created = store
        .create_prompt_type(NewPromptType {
            approval_workflow: Some(workflow.clone()),
            schema: None,
            ..prompt_type("gated")
        })
        .await
        .expect("type");
    assert_eq!(created.approval_workflow.as_ref(), Some(&workflow));
    assert_eq!(
        store
            .get_prompt_type("gated")
            .await
            .expect("read")
            .approval_workflow,
        Some(workflow.clone())
    );
    assert_eq!(
        store.list_prompt_types().await.expect("list")[0].approval_workflow,
        Some(workflow.clone())
    );
    // A public prompt of this type follows the type's three-approval workflow.
    let id = in_review(
        &store,
        NewPrompt {
            prompt_type: Some("gated".into()),
            ..classified("wf/typed", Classification::Public)
        },
    )
    .await;
    assert_eq!(
        refusal(store.approve_version(id, 1, by(Role::Admin, 1)).await).code(),
        "approver_role_not_allowed",
        "step 1 takes a user"
    );
    let first = store
        .approve_version(id, 1, by(Role::User, 1))
        .await
        .expect("step 1");
    assert_eq!(first.workflow, workflow);
    assert!(
        !store
            .approve_version(id, 1, by(Role::Admin, 2))
            .await
            .expect("2")
            .complete
    );
    assert!(
        store
            .approve_version(id, 1, by(Role::Admin, 3))
            .await
            .expect("3")
            .complete
    );

    // Patching leaves it alone unless asked; clearing it restores the classification's.
    let renamed = store
        .update_prompt_type(
            "gated",
            PromptTypePatch {
                name: Some("Gated".into()),
                ..Default::default()
            },
        )
        .await
        .expect("rename");
    assert_eq!(renamed.approval_workflow, Some(workflow));
    let cleared = store
        .update_prompt_type(
            "gated",
            PromptTypePatch {
                approval_workflow: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("clear");
    assert_eq!(cleared.approval_workflow, None);
    let second = store
        .add_version(
            id,
            NewVersion {
                author_id: Some(AUTHOR),
                ..text("Second {{ topic }}")
            },
        )
        .await
        .expect("v2");
    assert_eq!(second.version.version_number, 2);
    store
        .set_version_status(id, 2, VersionStatus::Draft, VersionStatus::Review)
        .await
        .expect("submit v2");
    assert!(
        store
            .approve_version(id, 2, by(Role::User, 1))
            .await
            .expect("one")
            .complete,
        "public: one approval by a user"
    );
}

async fn the_review_queue_lists_versions_in_review_with_this_rounds_approvals(
    store: Arc<dyn Store>,
) {
    assert!(
        store
            .review_queue(None)
            .await
            .expect("empty queue")
            .is_empty()
    );
    let second = in_review(&store, classified("queue/b", Classification::Confidential)).await;
    let first = in_review(&store, classified("queue/a", Classification::Internal)).await;
    create(&store, "queue/draft-only").await;
    store
        .approve_version(second, 1, by(Role::User, 1))
        .await
        .expect("one of two");
    // An earlier round's decisions are not this round's.
    store
        .add_version(
            second,
            NewVersion {
                author_id: Some(AUTHOR),
                ..text("B two {{ topic }}")
            },
        )
        .await
        .expect("v2");
    store
        .set_version_status(second, 2, VersionStatus::Draft, VersionStatus::Review)
        .await
        .expect("submit v2");
    store
        .reject_version(second, 2, by(Role::User, 1))
        .await
        .expect("reject v2");
    store
        .set_version_status(second, 2, VersionStatus::Draft, VersionStatus::Review)
        .await
        .expect("resubmit v2");

    let queue = store.review_queue(None).await.expect("queue");
    let rows: Vec<(String, i64, i64, usize)> = queue
        .iter()
        .map(|item| {
            (
                item.prompt.name.to_string(),
                item.version_number,
                item.round,
                item.approvals.len(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("queue/a".to_string(), 1, 1, 0),
            ("queue/b".to_string(), 1, 1, 1),
            ("queue/b".to_string(), 2, 2, 0),
        ]
    );
    assert_eq!(queue[0].prompt.id, first);
    assert_eq!(queue[1].author_id, Some(AUTHOR));
    assert_eq!(queue[1].semver, "1.0.0");
    assert_eq!(
        queue[1].approvals[0].reviewer_id,
        Uuid::from_u128(1).to_string()
    );
    assert_eq!(queue[1].type_workflow, None);

    // Approved versions leave the queue; archived prompts are not in it.
    store
        .approve_version(first, 1, by(Role::User, 1))
        .await
        .expect("approve a");
    store
        .update_prompt(
            second,
            PromptPatch {
                status: Some(PromptStatus::Archived),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("archive b");
    assert!(store.review_queue(None).await.expect("queue").is_empty());
}

async fn the_review_queue_shows_only_prompts_the_principal_may_see(database: &TestDatabase) {
    let store = database.store();
    let owner = Uuid::from_u128(0x51);
    let mut expected_for_owner = Vec::new();
    let mut expected_for_stranger = Vec::new();
    for (prompt_name, scope, classification) in [
        (
            "vis/global-internal",
            Scope::Global,
            Classification::Internal,
        ),
        (
            "vis/global-restricted",
            Scope::Global,
            Classification::Restricted,
        ),
        ("vis/user-owned", Scope::User, Classification::Internal),
    ] {
        let prompt = NewPrompt {
            scope,
            owner_id: Some(owner),
            ..classified(prompt_name, classification)
        };
        let created = in_review(&store, prompt).await;
        let detail = store
            .get_prompt(&PromptKey::Id(created))
            .await
            .expect("read");
        for (principal, expected) in [
            (
                principal(Role::User, Some(owner), None),
                &mut expected_for_owner,
            ),
            (
                principal(Role::User, Some(Uuid::from_u128(0x52)), None),
                &mut expected_for_stranger,
            ),
        ] {
            if is_visible(&principal, &detail.prompt) {
                expected.push(prompt_name.to_string());
            }
        }
    }
    for (principal, expected) in [
        (principal(Role::User, Some(owner), None), expected_for_owner),
        (
            principal(Role::User, Some(Uuid::from_u128(0x52)), None),
            expected_for_stranger,
        ),
    ] {
        let filter = visibility_filter(&principal).expect("a user is filtered");
        let names: Vec<String> = store
            .review_queue(Some(&filter))
            .await
            .expect("queue")
            .iter()
            .map(|item| item.prompt.name.to_string())
            .collect();
        assert_eq!(names, expected, "{principal:?}");
    }
    assert_eq!(
        store.review_queue(None).await.expect("all").len(),
        3,
        "no filter: everything"
    );
}

async fn serve_candidates_by_name_give_the_prompt_the_label_target_and_its_versions(
    store: Arc<dyn Store>,
) {
    let id = with_versions(&store, "serve/one", 3).await;
    let staging = label("staging");
    store
        .set_label_target(
            id,
            &staging,
            &LabelTarget::Split(split_of(&[(2, 70), (3, 30)])),
            None,
            None,
        )
        .await
        .expect("split");
    let subject = ServeSubject::Prompt(by_name("serve/one"));
    let found = store
        .serve_candidates(&subject, &VersionSelector::Label(staging.clone()))
        .await
        .expect("candidates");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].prompt.id, id);
    assert_eq!(
        found[0].target,
        Some(LabelTarget::Split(split_of(&[(2, 70), (3, 30)])))
    );
    let mut numbers: Vec<i64> = found[0].versions.iter().map(|v| v.version_number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [2, 3]);
    assert_eq!(
        found[0].version(3).map(|v| v.content.clone()),
        Some(Content::Text("version 3".into()))
    );
    // By id, a missing label: the prompt, no target, no versions.
    let by_id = ServeSubject::Prompt(PromptKey::Id(id));
    let missing = store
        .serve_candidates(&by_id, &VersionSelector::Label(label("production")))
        .await
        .expect("candidates");
    assert_eq!(missing.len(), 1);
    assert_eq!(
        (missing[0].target.as_ref(), missing[0].versions.len()),
        (None, 0)
    );
    // By number: that version, or none.
    let second = store
        .serve_candidates(&by_id, &VersionSelector::Number(2))
        .await
        .expect("candidates");
    assert_eq!(second[0].versions.len(), 1);
    assert_eq!(second[0].versions[0].version_number, 2);
    let none = store
        .serve_candidates(&by_id, &VersionSelector::Number(9))
        .await
        .expect("candidates");
    assert!(none[0].versions.is_empty());
    // A missing prompt is NotFound.
    assert_not_found(
        store
            .serve_candidates(
                &ServeSubject::Prompt(by_name("serve/none")),
                &VersionSelector::Label(label("latest")),
            )
            .await,
        "prompt \"serve/none\"",
    );
}

async fn serve_candidates_by_capability_follow_the_link_order_with_their_versions(
    store: Arc<dyn Store>,
) {
    let a = with_versions(&store, "serve/a", 2).await;
    let b = create(&store, "serve/b").await;
    let c = create(&store, "serve/c").await;
    let other = create(&store, "serve/other").await;
    for new in [
        link(a, "summarize", None, 1),
        link(b, "summarize", None, 9),
        link(c, "summarize", Some("agent-1"), 0),
        link(other, "summarize", Some("agent-2"), 100),
        link(other, "triage", Some("agent-1"), 100),
    ] {
        store.upsert_link(new).await.expect("link");
    }
    let latest = VersionSelector::Label(label("latest"));
    let ids = |found: &[promptvault_store::types::ServeCandidate]| {
        found.iter().map(|c| c.prompt.id).collect::<Vec<_>>()
    };
    let for_agent = store
        .serve_candidates(
            &ServeSubject::Capability {
                agent_id: Some("agent-1".into()),
                capability: "summarize".into(),
            },
            &latest,
        )
        .await
        .expect("candidates");
    assert_eq!(ids(&for_agent), [c, b, a]);
    assert_eq!(for_agent[2].target, Some(LabelTarget::Version(2)));
    assert_eq!(
        for_agent
            .iter()
            .map(|c| c
                .versions
                .iter()
                .map(|v| v.version_number)
                .collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [vec![1], vec![1], vec![2]]
    );
    let global_only = store
        .serve_candidates(
            &ServeSubject::Capability {
                agent_id: None,
                capability: "summarize".into(),
            },
            &latest,
        )
        .await
        .expect("candidates");
    assert_eq!(ids(&global_only), [b, a]);
    let nothing = store
        .serve_candidates(
            &ServeSubject::Capability {
                agent_id: Some("agent-1".into()),
                capability: "nothing".into(),
            },
            &latest,
        )
        .await
        .expect("candidates");
    assert!(nothing.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Runs, feedback and usage.

fn new_run(prompt_id: Uuid, version_number: i64, at: OffsetDateTime) -> NewRun {
    NewRun {
        id: Uuid::now_v7(),
        prompt_id,
        version_number,
        classification: Classification::Internal,
        params: json!({"name": "Ann"}),
        rendered: json!("Hello Ann"),
        sender: Some("agent-7".into()),
        session_id: Some("s-1".into()),
        request_id: Some("r-1".into()),
        agent_id: Some("agent-7".into()),
        deployment_model: DeploymentModel::WebApplication,
        created_at: at.truncate_to_microsecond(),
    }
}

fn outcome(success: Option<bool>, score: Option<f64>) -> Feedback {
    Feedback {
        success,
        score,
        comment: None,
    }
}

async fn recorded_runs_read_back_and_count_toward_their_versions_usage(store: Arc<dyn Store>) {
    let id = create(&store, "runs/usage").await;
    store
        .add_version(id, text("Hi {{ name }}"))
        .await
        .expect("v2");
    let t0 = OffsetDateTime::now_utc();
    let later = t0 + time::Duration::seconds(5);
    let first = new_run(id, 1, later);
    let runs = vec![
        first.clone(),
        new_run(id, 1, t0),
        new_run(id, 1, t0),
        new_run(id, 2, t0),
    ];
    assert_eq!(store.insert_runs(runs).await.expect("insert"), 4);
    assert_eq!(store.insert_runs(vec![]).await.expect("nothing"), 0);

    let run = store.get_run(first.id).await.expect("run");
    assert_eq!(run.params, first.params);
    assert_eq!(run.rendered, first.rendered);
    assert_eq!(run.head.version_number, 1);
    assert_eq!(run.head.sender.as_deref(), Some("agent-7"));
    assert_eq!(run.head.session_id.as_deref(), Some("s-1"));
    assert_eq!(run.head.request_id.as_deref(), Some("r-1"));
    assert_eq!(run.head.deployment_model, DeploymentModel::WebApplication);
    assert_eq!(run.head.created_at, first.created_at);
    assert_eq!(run.head.feedback, None);

    let usage = store.version_usage(id).await.expect("usage");
    let numbers: Vec<i64> = usage.iter().map(|u| u.version_number).collect();
    assert_eq!(numbers, vec![2, 1], "every version, newest first");
    assert_eq!(usage[1].usage.times_used, 3);
    assert_eq!(usage[1].usage.last_used, Some(first.created_at));
    assert_eq!(usage[0].usage.times_used, 1);

    // A second batch adds up; an older run does not move last_used back.
    store
        .insert_runs(vec![new_run(id, 1, t0 - time::Duration::hours(1))])
        .await
        .expect("second batch");
    let usage = store.version_usage(id).await.expect("usage");
    assert_eq!(usage[1].usage.times_used, 4);
    assert_eq!(usage[1].usage.last_used, Some(first.created_at));
}

async fn uses_without_runs_add_to_usage_and_skip_deleted_prompts(store: Arc<dyn Store>) {
    let id = create(&store, "uses/counted").await;
    let gone = create(&store, "uses/gone").await;
    store.delete_prompt(gone).await.expect("delete");
    let t0 = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("whole second");
    let later = t0 + time::Duration::seconds(5);
    let one = |prompt_id, count, last_used| VersionUse {
        prompt_id,
        version_number: 1,
        count,
        last_used,
    };
    store
        .add_usage(vec![one(id, 3, later), one(id, 2, t0), one(gone, 7, t0)])
        .await
        .expect("uses");
    store.add_usage(vec![]).await.expect("nothing");
    // A run counts beside the uses; an older use does not move last_used back.
    store
        .insert_runs(vec![new_run(id, 1, t0)])
        .await
        .expect("run");
    store
        .add_usage(vec![one(id, 1, t0 - time::Duration::hours(1))])
        .await
        .expect("older use");
    let usage = store.version_usage(id).await.expect("usage");
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].usage.times_used, 7);
    assert_eq!(usage[0].usage.last_used, Some(later));
    assert!(matches!(
        store.version_usage(gone).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn uses_of_more_versions_than_one_statement_takes_all_count(store: Arc<dyn Store>) {
    // More versions than a SQLite statement's rows (500), each with its own count.
    let mut ids = Vec::new();
    for n in 0..520 {
        ids.push(create(&store, &format!("uses/many-{n:03}")).await);
    }
    let at = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("whole second");
    let uses = ids
        .iter()
        .enumerate()
        .map(|(n, &prompt_id)| VersionUse {
            prompt_id,
            version_number: 1,
            count: n as i64 + 1,
            last_used: at,
        })
        .collect();
    store.add_usage(uses).await.expect("uses");
    for (n, &id) in ids.iter().enumerate() {
        let usage = store.version_usage(id).await.expect("usage");
        assert_eq!(usage[0].usage.times_used, n as i64 + 1, "prompt {n}");
        assert_eq!(usage[0].usage.last_used, Some(at), "prompt {n}");
    }
}

async fn runs_of_a_deleted_prompt_are_skipped_and_missing_runs_are_not_found(
    store: Arc<dyn Store>,
) {
    let kept = create(&store, "runs/kept").await;
    let gone = create(&store, "runs/gone").await;
    store.delete_prompt(gone).await.expect("delete");
    let now = OffsetDateTime::now_utc();
    let orphan = new_run(gone, 1, now);
    let written = store
        .insert_runs(vec![new_run(kept, 1, now), orphan.clone()])
        .await
        .expect("batch");
    assert_eq!(written, 1);
    let missing = Uuid::now_v7();
    assert_not_found(
        store.run_head(orphan.id).await,
        &format!("run {}", orphan.id),
    );
    assert_not_found(store.get_run(missing).await, &format!("run {missing}"));
    assert_not_found(
        store
            .upsert_feedback(missing, outcome(Some(true), None), now)
            .await,
        &format!("run {missing}"),
    );
    assert!(matches!(
        store.version_usage(gone).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn feedback_merges_and_moves_the_aggregates_once_per_run(store: Arc<dyn Store>) {
    let id = create(&store, "runs/feedback").await;
    let now = OffsetDateTime::now_utc();
    let runs: Vec<NewRun> = (0..3).map(|_| new_run(id, 1, now)).collect();
    store.insert_runs(runs.clone()).await.expect("insert");
    let at = now.truncate_to_microsecond();

    let head = store
        .upsert_feedback(runs[0].id, outcome(Some(false), Some(0.25)), at)
        .await
        .expect("first feedback");
    assert_eq!(head.feedback, Some(outcome(Some(false), Some(0.25))));
    assert_eq!(head.feedback_at, Some(at));
    // A correction of the same run replaces its contribution, it does not add a second one.
    let head = store
        .upsert_feedback(
            runs[0].id,
            Feedback {
                success: Some(true),
                score: None,
                comment: Some("fixed on retry".into()),
            },
            at,
        )
        .await
        .expect("correction");
    assert_eq!(
        head.feedback,
        Some(Feedback {
            success: Some(true),
            score: Some(0.25),
            comment: Some("fixed on retry".into()),
        })
    );
    store
        .upsert_feedback(runs[1].id, outcome(Some(false), Some(0.75)), at)
        .await
        .expect("second run");
    store
        .upsert_feedback(runs[2].id, outcome(None, Some(1.0)), at)
        .await
        .expect("score only");

    let usage = &store.version_usage(id).await.expect("usage")[0].usage;
    assert_eq!(usage.times_used, 3);
    assert_eq!((usage.outcomes, usage.successes), (2, 1));
    assert_eq!(usage.success_rate(), Some(0.5));
    assert_eq!(usage.scored, 3);
    assert_eq!(usage.mean_score(), Some((0.25 + 0.75 + 1.0) / 3.0));
    let read = store.run_head(runs[0].id).await.expect("head");
    assert_eq!(read.feedback, head.feedback);
}

async fn recent_outcomes_are_the_newest_runs_with_an_outcome_first(store: Arc<dyn Store>) {
    let id = create(&store, "runs/recent").await;
    let t0 = OffsetDateTime::now_utc();
    let runs: Vec<NewRun> = (0..4)
        .map(|i| new_run(id, 1, t0 + time::Duration::seconds(i)))
        .collect();
    store.insert_runs(runs.clone()).await.expect("insert");
    for (run, success) in [(0, true), (1, false), (3, false)] {
        store
            .upsert_feedback(runs[run].id, outcome(Some(success), None), t0)
            .await
            .expect("feedback");
    }
    // Run 2 has no feedback and run 3 only the newest: newest run first.
    assert_eq!(
        store.recent_outcomes(id, 1, 10).await.expect("recent"),
        vec![false, false, true]
    );
    assert_eq!(
        store.recent_outcomes(id, 1, 2).await.expect("limited"),
        vec![false, false]
    );
    assert!(
        store
            .recent_outcomes(id, 2, 10)
            .await
            .expect("other")
            .is_empty()
    );
    assert!(matches!(
        store.recent_outcomes(id, 1, 0).await,
        Err(StoreError::Domain(_))
    ));
}

async fn runs_of_sealed_prompts_are_not_in_the_database_and_read_back(database: &TestDatabase) {
    let store = database.store();
    let created = store
        .create_prompt(
            classified("sec/runs", Classification::Restricted),
            text("Hello {{ name }}"),
        )
        .await
        .expect("create restricted");
    let mut run = new_run(created.prompt.id, 1, OffsetDateTime::now_utc());
    run.classification = Classification::Restricted;
    run.params = json!({"name": MARKER});
    run.rendered = json!(format!("Hello {MARKER}"));
    store.insert_runs(vec![run.clone()]).await.expect("insert");
    let read = store.get_run(run.id).await.expect("opened");
    assert_eq!((&read.params, &read.rendered), (&run.params, &run.rendered));
    let sql = if database.file_bytes().is_some() {
        "SELECT params || rendered || coalesce(key_id, '') FROM runs"
    } else {
        "SELECT params::text || rendered::text || coalesce(key_id, '') FROM runs"
    };
    let stored: Vec<String> = database
        .query_text(sql)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(stored, vec!["nullnullk1".to_string()]);
    if let Some(bytes) = database.file_bytes() {
        let marker = MARKER.as_bytes();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker));
    }
    // Without keys the metadata still reads, the payload is a clear error, and sealed runs
    // cannot be written.
    let keyless = database.open_store(ConnectOptions::default()).await;
    assert!(keyless.run_head(run.id).await.is_ok());
    assert!(matches!(
        keyless.get_run(run.id).await,
        Err(StoreError::Encryption(_))
    ));
    let mut another = run.clone();
    another.id = Uuid::now_v7();
    assert!(matches!(
        keyless.insert_runs(vec![another]).await,
        Err(StoreError::EncryptionKeyRequired)
    ));
}
async fn pool_stats_report_each_pool_with_open_and_idle_connections_within_its_maximum(
    store: Arc<dyn Store>,
) {
    create(&store, "pool/stats").await;
    store.ping().await.expect("ping");
    let pools = store.pool_stats();
    assert!(!pools.is_empty(), "at least one pool");
    let names: Vec<&str> = pools.iter().map(|stats| stats.pool).collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique, "each pool once");
    for stats in &pools {
        assert!(stats.max >= 1, "{stats:?}");
        assert!(
            stats.size >= 1,
            "a used pool has a connection open: {stats:?}"
        );
        assert!(stats.size <= stats.max, "{stats:?}");
        assert!(stats.idle <= stats.size, "{stats:?}");
    }
}
