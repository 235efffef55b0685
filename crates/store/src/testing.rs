//! Fresh, isolated databases for tests (this crate's conformance suite, the server's and the
//! CLI's tests).
//!
//! - [`TestDatabase::sqlite`]: a new SQLite file in a temporary directory that lives as long as
//!   the value.
//! - [`TestDatabase::postgres`]: a new schema `pvtest_<uuid v7>` in the database a base URL
//!   names. The URL [`TestDatabase::url`] returns carries `options=-c search_path=<schema>`,
//!   which sqlx's `PgConnectOptions` passes to the server as the startup `options` parameter
//!   (checked here after connecting), so any process that opens that URL with
//!   [`crate::connect`] lands in the same schema.
//!
//! Cleanup of PostgreSQL schemas happens twice: dropping a `TestDatabase` drops its schema (on a
//! helper thread with its own runtime and connection, waited for), and creating one first drops
//! every `pvtest_` schema whose UUID v7 timestamp is more than an hour old, which catches schemas
//! left behind by killed test runs.
//!
//! [`TestDatabase::execute`] runs raw SQL on the database behind the store's back, for tests
//! that tamper with rows (the audit chain's tests edit, insert and delete `audit_log` rows);
//! [`TestDatabase::query_text`] reads raw values as text and [`TestDatabase::file_bytes`] the
//! SQLite file itself (encryption at rest: no restricted text in clear).
//!
//! [`TestDatabase::sqlite_with`] / [`TestDatabase::postgres_with`] open the fixture's store with
//! [`ConnectOptions`] (encryption keys); [`TestDatabase::open_store`] opens another store on the
//! same database with other options (e.g. a rotated key ring).
//!
//! Setup failures panic with a message: these are test fixtures.

use std::{
    path::PathBuf,
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::{
    AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection,
    sqlite::SqliteConnectOptions,
};
use tempfile::TempDir;
use uuid::Uuid;

use crate::{ConnectOptions, Store, StoreResult, postgres::PgStore, sqlite::SqliteStore};

/// The environment variable naming the PostgreSQL database tests may create schemas in.
pub const POSTGRES_URL_VAR: &str = "PROMPTVAULT_TEST_POSTGRES_URL";

const SCHEMA_PREFIX: &str = "pvtest_";
/// Schemas older than this are assumed abandoned by a killed run.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The PostgreSQL URL from `PROMPTVAULT_TEST_POSTGRES_URL`, if set and not empty.
#[tracing::instrument(skip_all)]
pub fn postgres_test_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A fresh database with a store open on it; dropping it removes the database.
pub struct TestDatabase {
    store: Arc<dyn Store>,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite {
        /// Deleted on drop.
        _dir: TempDir,
        /// The database file.
        file: PathBuf,
    },
    Postgres {
        base_url: String,
        schema: String,
    },
}

impl TestDatabase {
    /// A new SQLite database file in a new temporary directory.
    ///
    /// # Panics
    /// If the directory or the database cannot be created.
    #[tracing::instrument(skip_all)]
    pub async fn sqlite() -> Self {
        Self::sqlite_with(ConnectOptions::default()).await
    }

    /// [`TestDatabase::sqlite`], its store opened with `options`.
    ///
    /// # Panics
    /// If the directory or the database cannot be created.
    #[tracing::instrument(skip_all)]
    pub async fn sqlite_with(options: ConnectOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("promptvault-test-")
            .tempdir()
            .unwrap_or_else(|error| panic!("cannot create a temporary directory: {error}"));
        let file = dir.path().join("promptvault.db");
        let url = format!("sqlite:{}", file.display());
        let store = SqliteStore::connect_with(&url, options)
            .await
            .unwrap_or_else(|error| panic!("cannot open test database {url}: {error}"));
        TestDatabase {
            store: Arc::new(store),
            url,
            cleanup: Cleanup::Sqlite { _dir: dir, file },
        }
    }

    /// A new schema in the PostgreSQL database `base_url` names, with a store whose connections
    /// use it as their `search_path`.
    ///
    /// # Panics
    /// If the database cannot be reached or the schema cannot be created.
    #[tracing::instrument(skip_all)]
    pub async fn postgres(base_url: &str) -> Self {
        Self::postgres_with(base_url, ConnectOptions::default()).await
    }

    /// [`TestDatabase::postgres`], its store opened with `options`.
    ///
    /// # Panics
    /// If the database cannot be reached or the schema cannot be created.
    #[tracing::instrument(skip_all)]
    pub async fn postgres_with(base_url: &str, options: ConnectOptions) -> Self {
        let redacted = crate::redact_url(base_url);
        let mut maintenance = PgConnection::connect(base_url)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to {redacted}: {error}"));
        drop_stale_schemas(&mut maintenance).await;
        let schema = format!("{SCHEMA_PREFIX}{}", Uuid::now_v7().simple());
        sqlx::query(AssertSqlSafe(format!(
            "CREATE SCHEMA {}",
            quote_identifier(&schema)
        )))
        .execute(&mut maintenance)
        .await
        .unwrap_or_else(|error| panic!("cannot create schema {schema} in {redacted}: {error}"));
        // Best effort: the connection is dropped either way.
        let _ = maintenance.close().await;

        let url = with_search_path(base_url, &schema);
        let cleanup = Cleanup::Postgres {
            base_url: base_url.to_string(),
            schema: schema.clone(),
        };
        let store = match PgStore::connect_with(&url, options).await {
            Ok(store) => store,
            Err(error) => {
                drop_schema(base_url, &schema);
                panic!("cannot open a store in schema {schema} of {redacted}: {error}");
            }
        };
        let current: Result<String, _> = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(store.pool())
            .await;
        if current.as_deref().ok() != Some(schema.as_str()) {
            drop_schema(base_url, &schema);
            panic!(
                "the URL's options=-c search_path={schema} was not applied (current schema: \
                 {current:?})"
            );
        }
        TestDatabase {
            store: Arc::new(store),
            url,
            cleanup,
        }
    }

    /// The store open on this database.
    #[tracing::instrument(skip_all)]
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Another store on this same database, opened with `options` (e.g. other encryption
    /// keys); errors are returned, so tests can check them.
    #[tracing::instrument(skip_all)]
    pub async fn try_open_store(&self, options: ConnectOptions) -> StoreResult<Arc<dyn Store>> {
        crate::connect_with(&self.url, options).await
    }

    /// [`TestDatabase::try_open_store`] for tests that expect it to work.
    ///
    /// # Panics
    /// If the store cannot be opened.
    #[tracing::instrument(skip_all)]
    pub async fn open_store(&self, options: ConnectOptions) -> Arc<dyn Store> {
        self.try_open_store(options).await.unwrap_or_else(|error| {
            panic!(
                "cannot open another store on {}: {error}",
                crate::redact_url(&self.url)
            )
        })
    }

    /// The bytes of the SQLite database file followed by those of its write-ahead log (what
    /// someone copying the files would have); `None` for PostgreSQL.
    ///
    /// # Panics
    /// If the database file cannot be read.
    #[tracing::instrument(skip_all)]
    pub fn file_bytes(&self) -> Option<Vec<u8>> {
        let Cleanup::Sqlite { file, .. } = &self.cleanup else {
            return None;
        };
        let mut bytes = std::fs::read(file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        let mut wal = file.clone().into_os_string();
        wal.push("-wal");
        if let Ok(log) = std::fs::read(PathBuf::from(wal)) {
            bytes.extend_from_slice(&log);
        }
        Some(bytes)
    }

    /// Runs one raw query over a connection of its own and returns its first column as text,
    /// one string per row (NULL as `None`). Cast in the SQL (`::text`, `quote()`, `hex()`) as
    /// needed, e.g. `SELECT v::text FROM prompt_versions v` on PostgreSQL.
    ///
    /// # Panics
    /// If the database cannot be reached or the SQL fails.
    #[tracing::instrument(skip_all)]
    pub async fn query_text(&self, sql: &str) -> Vec<Option<String>> {
        let redacted = crate::redact_url(&self.url);
        let text = || AssertSqlSafe(sql.to_string());
        let result = match &self.cleanup {
            Cleanup::Sqlite { .. } => {
                let options = SqliteConnectOptions::from_str(&self.url)
                    .unwrap_or_else(|error| panic!("invalid SQLite URL {redacted}: {error}"))
                    .busy_timeout(Duration::from_secs(10));
                let mut conn = SqliteConnection::connect_with(&options)
                    .await
                    .unwrap_or_else(|error| panic!("cannot connect to {redacted}: {error}"));
                let result = sqlx::query_scalar(text()).fetch_all(&mut conn).await;
                let _ = conn.close().await;
                result
            }
            Cleanup::Postgres { .. } => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .unwrap_or_else(|error| panic!("cannot connect to {redacted}: {error}"));
                let result = sqlx::query_scalar(text()).fetch_all(&mut conn).await;
                let _ = conn.close().await;
                result
            }
        };
        result.unwrap_or_else(|error| panic!("SQL failed on {redacted}: {error}\n{sql}"))
    }

    /// A URL that [`crate::connect`] (or a separately started server) opens onto this same
    /// database.
    #[tracing::instrument(skip_all)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Runs raw SQL (one or more statements, no parameters) on this database over a connection
    /// of its own, outside the store, and returns how many rows it changed. For tests that must
    /// change what the store wrote, e.g. `UPDATE audit_log SET action = 'x' WHERE seq = 2`.
    ///
    /// # Panics
    /// If the database cannot be reached or the SQL fails.
    #[tracing::instrument(skip_all)]
    pub async fn execute(&self, sql: &str) -> u64 {
        let redacted = crate::redact_url(&self.url);
        let statement = sqlx::raw_sql(AssertSqlSafe(sql.to_string()));
        let result = match &self.cleanup {
            Cleanup::Sqlite { .. } => {
                let options = SqliteConnectOptions::from_str(&self.url)
                    .unwrap_or_else(|error| panic!("invalid SQLite URL {redacted}: {error}"))
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                let mut conn = SqliteConnection::connect_with(&options)
                    .await
                    .unwrap_or_else(|error| panic!("cannot connect to {redacted}: {error}"));
                let result = conn
                    .execute(statement)
                    .await
                    .map(|done| done.rows_affected());
                let _ = conn.close().await;
                result
            }
            Cleanup::Postgres { .. } => {
                // The URL carries the schema as the search_path.
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .unwrap_or_else(|error| panic!("cannot connect to {redacted}: {error}"));
                let result = conn
                    .execute(statement)
                    .await
                    .map(|done| done.rows_affected());
                let _ = conn.close().await;
                result
            }
        };
        result.unwrap_or_else(|error| panic!("SQL failed on {redacted}: {error}\n{sql}"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { base_url, schema } = &self.cleanup {
            drop_schema(base_url, schema);
        }
    }
}

/// `base_url` with `options=-c search_path=<schema>` added to its query string.
fn with_search_path(base_url: &str, schema: &str) -> String {
    let separator = if base_url.contains('?') { '&' } else { '?' };
    format!("{base_url}{separator}options=-c%20search_path%3D{schema}")
}

/// `"name"`, with inner quotes doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Drops `schema` from a helper thread with its own runtime (this may run inside, or outside,
/// any runtime), and waits for it. Failures are reported, not raised: the stale sweep retries.
fn drop_schema(base_url: &str, schema: &str) {
    let base_url = base_url.to_string();
    let schema = schema.to_string();
    let cleanup = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => return Err(format!("cannot start a runtime: {error}")),
        };
        runtime.block_on(async {
            let mut conn = PgConnection::connect(&base_url)
                .await
                .map_err(|error| error.to_string())?;
            sqlx::query("SET lock_timeout = '10s'")
                .execute(&mut conn)
                .await
                .map_err(|error| error.to_string())?;
            sqlx::query(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_identifier(&schema)
            )))
            .execute(&mut conn)
            .await
            .map_err(|error| error.to_string())?;
            let _ = conn.close().await;
            Ok(())
        })
    });
    match cleanup.join() {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("promptvault test cleanup: cannot drop schema: {error}"),
        Err(_) => eprintln!("promptvault test cleanup: the cleanup thread panicked"),
    }
}

/// Drops `pvtest_` schemas whose UUID v7 says they were made more than an hour ago.
async fn drop_stale_schemas(conn: &mut PgConnection) {
    let schemas: Vec<String> = match sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, 'pvtest_')",
    )
    .fetch_all(&mut *conn)
    .await
    {
        Ok(schemas) => schemas,
        Err(error) => {
            eprintln!("promptvault test cleanup: cannot list schemas: {error}");
            return;
        }
    };
    let cutoff = SystemTime::now()
        .checked_sub(STALE_AFTER)
        .and_then(|cutoff| cutoff.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |cutoff| cutoff.as_secs());
    for schema in schemas {
        let created = schema
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|suffix| Uuid::parse_str(suffix).ok())
            .and_then(|id| id.get_timestamp())
            .map(|timestamp| timestamp.to_unix().0);
        // Only names this module made (a valid v7 suffix) are touched.
        if created.is_some_and(|created| created < cutoff) {
            let dropped = sqlx::query(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                quote_identifier(&schema)
            )))
            .execute(&mut *conn)
            .await;
            if let Err(error) = dropped {
                eprintln!("promptvault test cleanup: cannot drop stale schema {schema}: {error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_path_is_added_as_a_startup_option() {
        assert_eq!(
            with_search_path("postgres://u@h/db", "pvtest_x"),
            "postgres://u@h/db?options=-c%20search_path%3Dpvtest_x"
        );
        assert_eq!(
            with_search_path("postgres://u@h/db?sslmode=disable", "pvtest_x"),
            "postgres://u@h/db?sslmode=disable&options=-c%20search_path%3Dpvtest_x"
        );
    }
}
