//! promptvault's application layer: the use cases ([`vault::Vault`]), their error boundary
//! ([`error::AppError`]), configuration ([`settings::Settings`]) and the HTTP server ([`http`]).
//!
//! Invariants: handlers are thin (extract → `Vault` → answer); use cases know nothing of HTTP
//! beyond status codes on errors; no SQL here (that is `promptvault-store`), no domain rules here
//! (that is `promptvault-core`).

pub mod actor;
pub mod error;
pub mod http;
pub mod settings;
pub mod telemetry;
pub mod vault;

use std::sync::Arc;

use anyhow::Context;

use crate::{http::AppState, settings::Settings, vault::Vault};

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
    let store = promptvault_store::connect(&url).await.with_context(|| {
        format!(
            "cannot open the database {}",
            promptvault_store::redact_url(&url)
        )
    })?;
    let vault = Vault::new(store, settings.render_limits());
    Ok(AppState {
        vault: Arc::new(vault),
        settings: Arc::new(settings),
    })
}
