//! The storage conformance suite: every behaviour of the `Store` trait, written once and run
//! against both backends. `sqlite::*` always runs (a fresh file per test); `postgres::*` runs in
//! a fresh schema of the database `PROMPTVAULT_TEST_POSTGRES_URL` names, and says on stderr that
//! it did not run when the variable is unset.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use promptvault_core::{
    error::DomainError,
    ident::{LabelName, PromptName},
    model::{Classification, Content, Kind, PromptStatus, Scope, Source},
    version::{Bump, VersionDraft},
};
use promptvault_store::{
    Store, StoreError,
    testing::TestDatabase,
    types::{
        CarryOver, LinkFilter, NewLink, NewPrompt, NewPromptType, NewVersion, PromptKey,
        PromptPatch, PromptQuery, PromptTypePatch, VersionSelector,
    },
};
use serde_json::{Value, json};
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
                    let database = TestDatabase::sqlite().await;
                    super::$store_behaviour(database.store()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $database_behaviour() {
                    let database = TestDatabase::sqlite().await;
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
                Some(TestDatabase::postgres(&url).await)
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
        linking_again_updates_the_priority_of_the_same_link,
        links_list_the_agents_own_first_then_global_ones_by_priority,
        deleting_a_link_removes_it_and_deleting_it_again_is_not_found,
        linking_a_missing_prompt_is_not_found,
        prompt_types_can_be_created_read_listed_updated_and_deleted,
        creating_a_duplicate_prompt_type_is_a_conflict,
        deleting_a_prompt_type_in_use_is_a_conflict,
        concurrent_writers_get_contiguous_version_numbers,
    ],
    database: [
        a_second_store_opened_from_the_url_sees_the_same_data,
        writers_in_two_stores_on_one_database_get_contiguous_version_numbers,
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
    };
    assert_eq!(
        ids(store.list_links(&unknown_agent).await.expect("list")),
        [global_high.id, global_low.id, global_tie.id]
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
