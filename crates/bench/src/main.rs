//! Load benchmarks of promptvault over real HTTP with keep-alive connections, each printed beside
//! a baseline measured in the same run and the same process setup:
//!
//! - **serve path**: render a prompt by name + label with 3 params
//!   (`POST /api/prompts/bench%2Fgreet/render`), 64 connections, against a bare axum handler that
//!   returns a constant string;
//! - **resolve path**: `GET /api/resolve` by name + label with 3 params rendered in the same
//!   call, 64 connections, twice: served from the resolve cache (a hit after the first request),
//!   and by a second server on the same database with `serving.cache_capacity = 0`, so every
//!   request misses and reads the store (`Store::serve_candidates`) — a deterministic miss, where
//!   spreading requests over many prompts would only miss until the cache held them all;
//! - **write path**: create versions with 16 concurrent clients (each on its own prompt, and all
//!   on one prompt), reported against the 1,000/s target;
//!
//! on SQLite (a temp file) and, when `PROMPTVAULT_TEST_POSTGRES_URL` is set (or `--postgres URL`),
//! on PostgreSQL in a fresh schema. Run `bench/run.sh` (release build) — see bench/README.md.
//!
//! `--scale` runs the scale benchmarks of [`scale`] instead: latency at 1k vs 1M stored versions
//! and the RSS of `prompt serve` with 100k prompts.

mod load;
mod scale;

use std::time::Duration;

use anyhow::Context;
use axum::{Router, routing::get};
use promptvault_server::{http::router, settings::Settings, state_with_store};
use promptvault_store::testing::{TestDatabase, postgres_test_url};
use serde_json::json;

use crate::load::{LoadResult, Request};

/// The allocator `prompt` uses, so the in-process servers measure what `prompt serve` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    duration: Duration,
    connections: usize,
    writers: usize,
    postgres: Option<String>,
    /// `--no-sqlite`: PostgreSQL only.
    no_sqlite: bool,
    /// `--record-runs`: record a run of every render (`runs.record = true`); by default, as
    /// `prompt serve` does, each render only counts a use.
    record_runs: bool,
    /// `--scale`: the scale benchmarks instead (their options are in here once parsed).
    scale: Option<scale::ScaleOptions>,
    /// Only these phases (`render`, `resolve`, `miss`, `write`); all when empty.
    only: Vec<String>,
    /// `--serve-baseline`: serve only the bare axum baseline, on this address, until killed (to
    /// load it from another process, e.g. `wrk`, and compare CPU per request; bench/README.md).
    serve_baseline: Option<String>,
}

impl Options {
    fn runs(&self, phase: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == phase)
    }
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        duration: Duration::from_secs(5),
        connections: 64,
        writers: 16,
        postgres: postgres_test_url(),
        no_sqlite: false,
        record_runs: false,
        scale: None,
        only: Vec::new(),
        serve_baseline: None,
    };
    let (mut scale, mut scale_options) = (false, scale::ScaleOptions::default());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => options.duration = Duration::from_secs_f64(value()?.parse()?),
            "--connections" => options.connections = value()?.parse()?,
            "--writers" => options.writers = value()?.parse()?,
            "--postgres" => options.postgres = Some(value()?),
            "--no-postgres" => options.postgres = None,
            "--no-sqlite" => options.no_sqlite = true,
            "--record-runs" => options.record_runs = true,
            "--only" => {
                let phase = value()?;
                anyhow::ensure!(
                    ["render", "resolve", "miss", "write"].contains(&phase.as_str()),
                    "--only takes render, resolve, miss or write, not {phase}"
                );
                options.only.push(phase);
            }
            "--serve-baseline" => options.serve_baseline = Some(value()?),
            "--scale" => scale = true,
            "--scale-prompts" => scale_options.large_prompts = value()?.parse()?,
            "--versions" => scale_options.versions = value()?.parse()?,
            "--no-latency" => scale_options.skip_latency = true,
            "--rss-prompts" => scale_options.rss_prompts = value()?.parse()?,
            "--rss-seconds" => {
                scale_options.rss_duration = Duration::from_secs_f64(value()?.parse()?)
            }
            "--prompt-bin" => scale_options.prompt_bin = value()?.into(),
            other => anyhow::bail!(
                "unknown argument {other}; use --seconds N --connections N --writers N --postgres URL --no-postgres --no-sqlite --record-runs \
                 --only render|resolve|miss|write, --serve-baseline ADDRESS, \
                 or --scale [--scale-prompts N --versions N --no-latency --rss-prompts N --rss-seconds N --prompt-bin PATH]"
            ),
        }
    }
    if scale {
        options.scale = Some(scale::ScaleOptions {
            duration: options.duration,
            connections: options.connections,
            postgres: options.postgres.clone(),
            record_runs: options.record_runs,
            ..scale_options
        });
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    if let Some(scale) = &options.scale {
        return scale::run(scale).await;
    }
    if let Some(address) = &options.serve_baseline {
        let address = serve_baseline(address).await?;
        println!("bare axum baseline on http://{address}/constant (until killed)");
        return std::future::pending().await;
    }
    println!(
        "promptvault bench: {} s per run, {} connections (serve), {} writers, {} cores",
        options.duration.as_secs_f64(),
        options.connections,
        options.writers,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let baseline = serve_baseline("127.0.0.1:0").await?;
    println!("\n{}", LoadResult::header());

    let mut databases = Vec::new();
    if !options.no_sqlite {
        databases.push(("sqlite", TestDatabase::sqlite().await));
    }
    match &options.postgres {
        Some(url) => databases.push(("postgres", TestDatabase::postgres(url).await)),
        None => println!(
            "(PostgreSQL skipped: set PROMPTVAULT_TEST_POSTGRES_URL or pass --postgres URL)"
        ),
    }
    let mut settings = Settings::default();
    settings.runs.record = options.record_runs;
    let mut uncached_settings = settings.clone();
    uncached_settings.serving.cache_capacity = 0;
    for (backend, database) in &databases {
        let (address, state) = serve_promptvault(database, settings.clone()).await?;
        let (uncached_address, uncached_state) =
            serve_promptvault(database, uncached_settings.clone()).await?;
        seed(address).await?;
        // (phase, server, request, row name, what its drain note calls it)
        let serve_phases = [
            (
                "render",
                (address, &state),
                render_request(),
                "render by name+label, 3 params",
                "render",
            ),
            (
                "resolve",
                (address, &state),
                resolve_request(),
                "resolve+render by name+label, cache hit",
                "resolve",
            ),
            (
                "miss",
                (uncached_address, &uncached_state),
                resolve_request(),
                "resolve+render by name+label, cache miss",
                "uncached resolve",
            ),
        ];
        for (phase, (target, target_state), request, name, called) in serve_phases {
            if !options.runs(phase) {
                continue;
            }
            let (base, measured) =
                paired(&options, baseline, target, request, target_state).await?;
            report(&base, &measured, &format!("{backend}: {name}"));
            drain_runs(target_state, backend, called).await;
        }
        if options.runs("write") {
            let spread =
                load::run_writers(address, options.writers, options.duration, true).await?;
            println!(
                "{}   {:.2}x the 1,000/s target",
                spread.row(&format!(
                    "{backend}: create version, {} writers, own prompts",
                    options.writers
                )),
                spread.requests_per_second() / 1000.0
            );
            let one = load::run_writers(address, options.writers, options.duration, false).await?;
            println!(
                "{}   {:.2}x the 1,000/s target",
                one.row(&format!(
                    "{backend}: create version, {} writers, one prompt",
                    options.writers
                )),
                one.requests_per_second() / 1000.0
            );
        }
    }
    Ok(())
}

/// Measures `request` against `target` and the bare baseline in alternating slices of about a
/// second each (`options.duration` in all for each side), so that both see the same machine:
/// on a shared host the throughput of either drifts by tens of percent within a minute, and a
/// baseline measured once, before every phase, would carry that drift into each ratio. After
/// each slice of the target the runs it queued are written before the baseline's next slice
/// starts (that wait is measured by neither).
async fn paired(
    options: &Options,
    baseline: std::net::SocketAddr,
    target: std::net::SocketAddr,
    request: Request,
    state: &promptvault_server::http::AppState,
) -> anyhow::Result<(LoadResult, LoadResult)> {
    let slices = options.duration.as_secs_f64().round().max(1.0);
    let slice = options.duration.div_f64(slices);
    let (mut base, mut measured) = (LoadResult::empty(), LoadResult::empty());
    for _ in 0..slices as u32 {
        base.absorb(
            load::run(
                baseline,
                Request::get("/constant"),
                options.connections,
                slice,
            )
            .await?,
        );
        measured.absorb(load::run(target, request.clone(), options.connections, slice).await?);
        state.vault.flush_runs().await;
    }
    Ok((base, measured))
}

/// Prints a phase's row beside the baseline measured alongside it, and their ratio.
fn report(baseline: &LoadResult, measured: &LoadResult, name: &str) {
    println!("{}", baseline.row("  bare axum baseline, alongside"));
    println!(
        "{}   ratio {:.2}x baseline",
        measured.row(name),
        measured.requests_per_second() / baseline.requests_per_second()
    );
}

/// Waits until every run the last phase queued is written, and says how long that took and
/// how many runs the server wrote and dropped so far (a dropped run is one the queue had no
/// room for: serving went on without it).
async fn drain_runs(state: &promptvault_server::http::AppState, backend: &str, phase: &str) {
    let started = std::time::Instant::now();
    state.vault.flush_runs().await;
    let counts = match state.vault.run_recorder() {
        Some(recorder) => {
            use std::sync::atomic::Ordering::Relaxed;
            let counters = recorder.counters();
            // Uses only (no run asked for): nothing to say.
            if counters.batches.load(Relaxed) == 0 && counters.dropped.load(Relaxed) == 0 {
                return;
            }
            format!(
                "; so far {} runs written in {} transactions, {} dropped, {} failed",
                counters.recorded.load(Relaxed),
                counters.batches.load(Relaxed),
                counters.dropped.load(Relaxed),
                counters.failed.load(Relaxed)
            )
        }
        None => String::new(),
    };
    println!(
        "({backend}: the runs recorded by the {phase} phase were written {:.1} s after it ended{counts})",
        started.elapsed().as_secs_f64()
    );
}

/// A bare axum handler returning a constant string: the ceiling for this machine and client.
async fn serve_baseline(address: &str) -> anyhow::Result<std::net::SocketAddr> {
    let app = Router::new().route(
        "/constant",
        get(|| async { "Hello Ada, welcome to Paris. Summarize in 20 words." }),
    );
    let listener = tokio::net::TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(address)
}

/// Serves `database` in-process with `settings` on a port of its own; the first server on a
/// database bootstraps the benchmark's admin token.
async fn serve_promptvault(
    database: &TestDatabase,
    settings: Settings,
) -> anyhow::Result<(std::net::SocketAddr, promptvault_server::http::AppState)> {
    let state = state_with_store(
        database.store(),
        settings,
        b"bench audit signing key, 32 bytes+",
    )?;
    state
        .vault
        .bootstrap_admin_token(Some(load::TOKEN))
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let served = state.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
                std::net::SocketAddr,
            >(router(served)),
        )
        .await
    });
    Ok((address, state))
}

fn render_request() -> Request {
    Request::post_json(
        "/api/prompts/bench%2Fgreet/render",
        json!({"label": "stable", "params": {"name": "Ada", "city": "Paris", "words": 20}}),
    )
}

fn resolve_request() -> Request {
    Request::get(
        "/api/resolve?name=bench%2Fgreet&label=stable&params=%7B%22name%22%3A%22Ada%22%2C%22city%22%3A%22Paris%22%2C%22words%22%3A20%7D",
    )
}

/// The prompt the serve path renders: a schema with 3 parameters, labelled `stable` (a draft
/// cannot carry the protected `production` label).
async fn seed(address: std::net::SocketAddr) -> anyhow::Result<()> {
    let body = json!({
        "name": "bench/greet",
        "content": "Hello {{ name }}, welcome to {{ city }}. Summarize in {{ words }} words.",
        "parameter_schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "city": {"type": "string"}, "words": {"type": "integer", "minimum": 1}},
            "required": ["name", "city", "words"]
        },
        "labels": ["stable"]
    });
    let status = load::send_once(address, Request::post_json("/api/prompts", body)).await?;
    anyhow::ensure!(status == 201, "seeding the bench prompt answered {status}");
    Ok(())
}
