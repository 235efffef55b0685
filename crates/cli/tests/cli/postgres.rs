//! PostgreSQL mode: the same create → version → render scenario on a fresh PostgreSQL schema
//! (`promptvault_store::testing::TestDatabase::postgres`), directly with `--database-url` and
//! through a server started with it. Runs only when `PROMPTVAULT_TEST_POSTGRES_URL` is set;
//! otherwise each test passes after saying it was skipped.

use promptvault_store::testing::{POSTGRES_URL_VAR, TestDatabase, postgres_test_url};

use crate::support::{Server, Vault};

/// A fresh schema, and the runtime its store's pool lives on (kept until the schema is gone).
fn fresh_database() -> Option<(TestDatabase, tokio::runtime::Runtime)> {
    let Some(base) = postgres_test_url() else {
        eprintln!("skipped: {POSTGRES_URL_VAR} is not set");
        return None;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(TestDatabase::postgres(&base));
    Some((database, runtime))
}

fn create_version_render(vault: &Vault) {
    vault.ok(&[
        "create",
        "pg/greet",
        "--content",
        "Hello {{ name }}",
        "--schema",
        r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#,
    ]);
    assert_eq!(
        vault.ok(&["version", "pg/greet", "--content", "Hi {{ name }}"]),
        "created version 2 (1.0.1) of pg/greet\n"
    );
    assert_eq!(
        vault.ok(&["render", "pg/greet", "--param", "name=Ada"]),
        "Hi Ada\n"
    );
    let invalid = vault.fail(&["render", "pg/greet", "--param", "name=7"]);
    assert_eq!(invalid.code, 4, "{}", invalid.stderr);
    let chat = vault.write(
        "chat.json",
        r#"[{"role": "user", "content": "Hey {{ who }}"}]"#,
    );
    vault.ok(&["create", "pg/chat", "--kind", "chat", "--file", &chat]);
    assert_eq!(
        vault.ok(&["render", "pg/chat", "--param", "who=you"]),
        "[user]\nHey you\n"
    );
    assert_eq!(vault.json(&["list"])["total"], 2);
}

#[test]
fn create_and_render_work_on_postgresql() {
    let Some((database, runtime)) = fresh_database() else {
        return;
    };
    create_version_render(&Vault::database(&database.url()));
    drop(database);
    drop(runtime);
}

#[test]
fn create_and_render_work_through_a_server_on_postgresql() {
    let Some((database, runtime)) = fresh_database() else {
        return;
    };
    let url = database.url();
    let server = Server::start(&["--database-url", &url]);
    create_version_render(&Vault::server(&server.url));
    drop(server);
    drop(database);
    drop(runtime);
}
