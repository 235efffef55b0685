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
    let settings = load_settings(global.config.as_deref(), &overrides)?;
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
    output::emit(&format!("listening on http://{address}\n"))?;
    tracing::info!(%address, "listening");
    http::serve(listener, state, shutdown_signal())
        .await
        .map_err(|error| {
            CliError::internal("server_failed", format!("the server stopped: {error}"))
        })?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}
