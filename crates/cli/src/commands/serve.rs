//! `prompt serve`: loads the settings (defaults → TOML → `PROMPTVAULT_*` → flags), opens the
//! database, binds, prints `listening on http://<bound address>` as the first line on stdout
//! (so port 0 reveals the real port) and serves until SIGINT or SIGTERM, then drains in-flight
//! requests. Logs go to stderr.

use promptvault_server::{http, settings::Overrides, telemetry};
use tokio::net::TcpListener;

use crate::{
    args::{GlobalArgs, ServeArgs},
    backend::local::load_settings,
    error::{CliError, CliResult},
    output,
};

pub async fn serve(global: &GlobalArgs, args: ServeArgs) -> CliResult<()> {
    let overrides = Overrides {
        listen: args.listen,
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
        redis_url: args.redis_url,
        deployment_model: args.deployment_model.map(Into::into),
        log_format: args.log_format.map(Into::into),
    };
    let config = args.config.as_deref().or(global.config.as_deref());
    let settings = load_settings(config, &overrides)?;
    telemetry::init(settings.log_format);
    let listen = settings.listen;
    let state = promptvault_server::build_state(settings)
        .await
        .map_err(|error| CliError::unreachable("database_unavailable", format!("{error:#}")))?;
    let listener = TcpListener::bind(listen).await.map_err(|error| {
        CliError::internal(
            "cannot_listen",
            format!("cannot listen on {listen}: {error}"),
        )
    })?;
    let address = listener.local_addr().map_err(|error| {
        CliError::internal(
            "cannot_listen",
            format!("cannot listen on {listen}: {error}"),
        )
    })?;
    // Install the signal handlers before announcing the address: a supervisor may signal as
    // soon as it reads the line.
    let shutdown = shutdown_signal()?;
    let bootstrap = promptvault_server::bootstrap(&state)
        .await
        .map_err(|error| CliError::invalid("bootstrap_failed", format!("{error:#}")))?;
    output::emit(&format!("listening on http://{address}\n"))?;
    if let Some(token) = bootstrap {
        // Shown once: only its hash is stored.
        output::emit(&format!(
            "admin token (shown once, store it now): {token}\n"
        ))?;
    }
    tracing::info!(%address, "listening");
    let retention = promptvault_server::spawn_audit_retention(&state);
    let version_retention = promptvault_server::spawn_version_retention(&state);
    let vault = state.vault.clone();
    http::serve(listener, state, shutdown)
        .await
        .map_err(|error| {
            CliError::internal("server_failed", format!("the server stopped: {error}"))
        })?;
    // Runs still queued are written before the process ends.
    vault.flush_runs().await;
    if let Some(retention) = retention {
        retention.abort();
    }
    if let Some(retention) = version_retention {
        retention.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM; the handlers are installed now.
#[cfg(unix)]
fn shutdown_signal() -> CliResult<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind| {
        signal(kind).map_err(|error| {
            CliError::internal(
                "signal",
                format!("cannot install a signal handler: {error}"),
            )
        })
    };
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: draining in-flight requests");
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> CliResult<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: draining in-flight requests");
    })
}
