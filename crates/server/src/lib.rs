//! promptvault's application layer: the use cases ([`vault::Vault`]), their error boundary
//! ([`error::AppError`]), configuration ([`settings::Settings`]) and the HTTP server ([`http`]).
//!
//! Invariants: handlers are thin (extract → `Vault` → answer); use cases know nothing of HTTP
//! beyond status codes on errors; no SQL here (that is `promptvault-store`), no domain rules here
//! (that is `promptvault-core`).

pub mod actor;
pub mod auth;
pub mod error;
pub mod http;
pub mod metrics;
pub mod recorder;
pub mod redis_cache;
pub mod serve_cache;
pub mod settings;
pub mod telemetry;
pub mod vault;

use std::sync::Arc;

use anyhow::Context;

use promptvault_core::crypto::KeyRing;

use crate::{auth::Authenticator, http::AppState, settings::Settings, vault::Vault};

/// Opens the configured database (creating the data directory for the embedded default), runs
/// migrations and builds the state every handler shares.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                settings.data_dir.display()
            )
        })?;
    }
    let url = settings.effective_database_url();
    let keys = encryption_keys(&settings)?;
    let options = promptvault_store::ConnectOptions { keys };
    let store = promptvault_store::connect_with(&url, options)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                promptvault_store::redact_url(&url)
            )
        })?;
    let audit_key = audit_signing_key(&settings)?;
    state_with_store(store, settings, &audit_key)
}

/// The state over an already opened store (tests and benchmarks use it directly).
pub fn state_with_store(
    store: Arc<dyn promptvault_store::Store>,
    settings: Settings,
    audit_key: &[u8],
) -> anyhow::Result<AppState> {
    let auth = Authenticator::new(store.clone(), &settings.auth)?;
    let local = serve_cache::ServeCache::new(settings.serving.cache_capacity);
    // With Redis: the shared cache is the local cache's invalidation sink and its second level.
    let (serve_cache, shared) = match redis_cache::RedisCacheConfig::from_settings(&settings) {
        None => (Arc::new(local), None),
        Some(config) => {
            let shared = Arc::new(redis_cache::RedisCache::new(config)?);
            let serve_cache = Arc::new(local.with_sink(shared.clone()));
            shared.start(&serve_cache)?;
            (serve_cache, Some(shared))
        }
    };
    let vault = Vault::new(store, settings.render_limits())
        .with_deployment(settings.deployment_model)
        .with_audit_key(audit_key)
        .with_compliance(settings.compliance.clone())
        .with_lifecycle(settings.lifecycle.clone())
        .with_label_policy(settings.labels.policy()?)
        .with_approvals(settings.approvals.clone())
        .with_serve_cache(serve_cache)
        .with_shared_cache(shared)
        .with_compiled_cache_capacity(settings.serving.compiled_cache_capacity)
        .with_runs(settings.runs.clone(), settings.runs.alert_rule()?);
    Ok(AppState {
        vault: Arc::new(vault),
        auth: Arc::new(auth),
        settings: Arc::new(settings),
    })
}

/// The encryption key ring: `encryption_key`, else `encryption_key_file`, else (embedded SQLite
/// only) a key generated on first start in `<data_dir>/encryption.key`. A server on PostgreSQL
/// without keys runs, but refuses to store or read confidential and restricted content.
fn encryption_keys(settings: &Settings) -> anyhow::Result<Option<Arc<KeyRing>>> {
    let parse = |text: &str, from: &str| {
        KeyRing::parse(text.trim())
            .map(Arc::new)
            .map_err(|error| anyhow::anyhow!("{from}: {error}"))
    };
    if let Some(key) = &settings.encryption_key {
        return parse(&key.0, "PROMPTVAULT_ENCRYPTION_KEY").map(Some);
    }
    if let Some(path) = &settings.encryption_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return parse(&text, &path.display().to_string()).map(Some);
    }
    if settings.database_url.is_some() {
        return Ok(None);
    }
    let path = settings.data_dir.join("encryption.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return parse(&text, &path.display().to_string()).map(Some);
    }
    let key = auth::generate_token()?;
    let ring_text = format!(
        "k1:{}",
        key.trim_start_matches(promptvault_core::secret::TOKEN_PREFIX)
    );
    write_private(&path, ring_text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    parse(&ring_text, &path.display().to_string()).map(Some)
}

/// The key signing audit checkpoints: `audit.signing_key`, else a key kept in the data directory
/// (`audit-signing.key`, created on first start with owner-only permissions). Several servers on
/// one PostgreSQL must share `PROMPTVAULT_AUDIT__SIGNING_KEY`.
fn audit_signing_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = &settings.audit.signing_key {
        anyhow::ensure!(
            key.0.len() >= 32,
            "audit.signing_key must be at least 32 bytes"
        );
        return Ok(key.0.as_bytes().to_vec());
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let path = settings.data_dir.join("audit-signing.key");
    if let Ok(existing) = std::fs::read(&path) {
        return Ok(existing);
    }
    let key = auth::generate_token()?.into_bytes();
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// On first start, creates the admin token (`PROMPTVAULT_BOOTSTRAP_TOKEN`, or a random one) and
/// returns its secret so that `prompt serve` can print it once.
pub async fn bootstrap(state: &AppState) -> anyhow::Result<Option<String>> {
    let fixed = state
        .settings
        .bootstrap_token
        .as_ref()
        .map(|secret| secret.0.as_str());
    state
        .vault
        .bootstrap_admin_token(fixed)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))
}

/// Runs audit retention (`audit.retention_days`) once an hour for as long as the server runs.
/// Each run purges what is older than the retention behind a signed checkpoint.
pub fn spawn_audit_retention(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let days = state.settings.audit.retention_days?;
    let vault = state.vault.clone();
    Some(tokio::spawn(async move {
        let retention = time::Duration::days(i64::from(days));
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match vault.apply_audit_retention(retention).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(
                    purged,
                    "audit retention purged old entries behind a checkpoint"
                ),
                Err(error) => tracing::warn!(error = %error, "audit retention failed; will retry"),
            }
        }
    }))
}

/// Runs retention of archived versions (`lifecycle.archived_retention_days`) once an hour for as
/// long as the server runs: versions archived longer ago lose their content, config and schema
/// (audited as `version.purge` by the system); their history stays.
pub fn spawn_version_retention(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let days = state.settings.lifecycle.archived_retention_days?;
    let vault = state.vault.clone();
    Some(tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match vault.apply_version_retention(days).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "retention purged archived versions"),
                Err(error) => {
                    tracing::warn!(error = %error, "archived-version retention failed; will retry")
                }
            }
        }
    }))
}
