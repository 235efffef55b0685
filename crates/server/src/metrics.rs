//! Operational metrics in the Prometheus text format, served by `GET /metrics`.
//!
//! One recorder per process (the `metrics` crate's global recorder, installed on first use by
//! [`handle`]; a process that starts several servers — tests, benchmarks — shares it, and every
//! server's `/metrics` renders it). The exporter has no listener of its own: the axum route
//! renders [`render`]. A background thread runs the exporter's upkeep (draining histogram
//! samples) every few seconds.
//!
//! What is measured, and the one function to call for each:
//!
//! | metric | type | labels | recorded by |
//! |---|---|---|---|
//! | `promptvault_http_request_duration_seconds` | histogram | `method`, `route` (the route template, `unmatched` for 404s), `status` (`2xx`…) | [`request_finished`] (HTTP middleware) |
//! | `promptvault_http_requests_in_flight` | gauge | — | [`InFlight`] (HTTP middleware) |
//! | `promptvault_db_pool_connections` | gauge | `pool`, `state` (`open`, `idle`, `max`) | [`record_pool_stats`], at scrape time |
//! | `promptvault_cache_hits_total` / `promptvault_cache_misses_total` | counter | `cache` | [`cache_hit`] / [`cache_miss`] |
//! | `promptvault_runs_dropped_total` | counter | — | [`runs_dropped`] |
//! | `promptvault_redis_errors_total` | counter | — | [`redis_error`] (failed or timed-out Redis calls) |
//! | `promptvault_redis_connected` | gauge | — | [`redis_connected`] (1 while the invalidation subscription is up) |
//!
//! Cache names in use: `compiled` (compiled templates by version, `Vault::compiled`), `resolve`
//! (the in-process serve cache) and `redis` (the shared serve cache, looked up on a `resolve`
//! miss). The hit ratio is `rate(hits) / (rate(hits) + rate(misses))` per `cache`.
//!
//! Labels never carry request data (ids, names, raw paths): only route templates and fixed
//! words, so the number of series stays bounded.

use std::{
    collections::HashMap,
    sync::{OnceLock, PoisonError, RwLock},
    time::Duration,
};

use ::metrics::{Counter, Gauge, Histogram};
use axum::http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use promptvault_store::types::PoolStats;

const REQUEST_DURATION: &str = "promptvault_http_request_duration_seconds";
const IN_FLIGHT: &str = "promptvault_http_requests_in_flight";
const POOL_CONNECTIONS: &str = "promptvault_db_pool_connections";
const CACHE_HITS: &str = "promptvault_cache_hits_total";
const CACHE_MISSES: &str = "promptvault_cache_misses_total";
const RUNS_DROPPED: &str = "promptvault_runs_dropped_total";
const REDIS_ERRORS: &str = "promptvault_redis_errors_total";
const REDIS_CONNECTED: &str = "promptvault_redis_connected";

/// Request latency buckets, in seconds: fine below a millisecond (cache hits), then coarser up to
/// the request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The caches whose counters exist (at 0) from the start; a new cache adds its name here.
const KNOWN_CACHES: &[&str] = &["compiled", "resolve", "redis"];

/// How often the exporter's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first call. Idempotent: every
/// later call (from any server of the process) returns the same handle. If some other recorder
/// was installed first, the handle still renders (the metrics it never receives are absent)
/// and a warning is logged once.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), LATENCY_BUCKETS)
        {
            Ok(builder) => builder,
            // Only an empty bucket list is refused; ours is not empty.
            Err(error) => {
                tracing::warn!(%error, "metrics: latency buckets refused; using summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = ::metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "metrics: another recorder is installed; /metrics will be incomplete");
        }
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "metrics: cannot start the upkeep thread; rendering still drains");
        }
        handle
    })
}

/// The Prometheus text exposition of every metric of the process.
pub fn render() -> String {
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "HTTP request latency by method, route template and status class"
    );
    describe_gauge!(IN_FLIGHT, "HTTP requests being served now");
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections per pool: open, idle, and the pool's maximum (sampled at scrape time)"
    );
    describe_counter!(
        CACHE_HITS,
        "Cache lookups answered from the cache, per cache"
    );
    describe_counter!(CACHE_MISSES, "Cache lookups that missed, per cache");
    describe_counter!(
        RUNS_DROPPED,
        "Runs not recorded because the recording queue was full"
    );
    // Series that exist from the start, so that dashboards and alerts see 0 rather than nothing.
    for cache in KNOWN_CACHES {
        ::metrics::counter!(CACHE_HITS, "cache" => *cache).absolute(0);
        ::metrics::counter!(CACHE_MISSES, "cache" => *cache).absolute(0);
    }
    describe_counter!(
        REDIS_ERRORS,
        "Redis calls of the shared cache that failed or timed out (the request went on without Redis)"
    );
    describe_gauge!(
        REDIS_CONNECTED,
        "1 while the Redis invalidation subscription is connected, else 0"
    );
    ::metrics::counter!(RUNS_DROPPED).absolute(0);
    ::metrics::counter!(REDIS_ERRORS).absolute(0);
    ::metrics::gauge!(IN_FLIGHT).set(0.0);
}

/// One Redis call of the shared cache that failed or timed out.
pub fn redis_error() {
    ::metrics::counter!(REDIS_ERRORS).increment(1);
}

/// Whether the Redis invalidation subscription is connected.
pub fn redis_connected(connected: bool) {
    ::metrics::gauge!(REDIS_CONNECTED).set(if connected { 1.0 } else { 0.0 });
}

/// The hit and miss counters of the known caches, registered once: a hot path counting a hit
/// then costs one atomic add, not a registry lookup.
fn cache_counters(cache: &'static str) -> Option<&'static (Counter, Counter)> {
    static COUNTERS: OnceLock<Vec<(&'static str, (Counter, Counter))>> = OnceLock::new();
    COUNTERS
        .get_or_init(|| {
            handle();
            KNOWN_CACHES
                .iter()
                .map(|name| {
                    (
                        *name,
                        (
                            ::metrics::counter!(CACHE_HITS, "cache" => *name),
                            ::metrics::counter!(CACHE_MISSES, "cache" => *name),
                        ),
                    )
                })
                .collect()
        })
        .iter()
        .find(|(name, _)| *name == cache)
        .map(|(_, counters)| counters)
}

/// One lookup of `cache` answered from the cache.
pub fn cache_hit(cache: &'static str) {
    match cache_counters(cache) {
        Some((hits, _)) => hits.increment(1),
        None => ::metrics::counter!(CACHE_HITS, "cache" => cache).increment(1),
    }
}

/// One lookup of `cache` that missed (the caller then computes or loads the value).
pub fn cache_miss(cache: &'static str) {
    match cache_counters(cache) {
        Some((_, misses)) => misses.increment(1),
        None => ::metrics::counter!(CACHE_MISSES, "cache" => cache).increment(1),
    }
}

/// One run that was not recorded because the recorder's queue was full (serving never waits
/// for recording).
pub fn runs_dropped() {
    ::metrics::counter!(RUNS_DROPPED).increment(1);
}

/// The database pool gauges, from the store's own counts (called when `/metrics` is scraped).
pub fn record_pool_stats(pools: &[PoolStats]) {
    for stats in pools {
        for (state, value) in [
            ("open", stats.size),
            ("idle", stats.idle),
            ("max", stats.max),
        ] {
            ::metrics::gauge!(POOL_CONNECTIONS, "pool" => stats.pool, "state" => state)
                .set(f64::from(value));
        }
    }
}

/// One HTTP request answered: its latency under its method, route template and status class.
pub fn request_finished(method: &Method, route: &str, status: u16, latency: Duration) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    let method = method_label(method);
    request_histogram(method, route, class).record(latency.as_secs_f64());
}

/// The latency histogram of (method, route template, status class), registered on first use
/// and kept: routes and classes are a small fixed set, and a registry lookup per request (with
/// the route copied into a new label) cost more than the rest of the metrics together.
fn request_histogram(method: &'static str, route: &str, class: &'static str) -> Histogram {
    type ByRoute = HashMap<Box<str>, Vec<((&'static str, &'static str), Histogram)>>;
    static HISTOGRAMS: OnceLock<RwLock<ByRoute>> = OnceLock::new();
    let histograms = HISTOGRAMS.get_or_init(|| {
        handle();
        RwLock::default()
    });
    let found = |by_route: &ByRoute| {
        by_route.get(route).and_then(|registered| {
            registered
                .iter()
                .find(|(key, _)| *key == (method, class))
                .map(|(_, histogram)| histogram.clone())
        })
    };
    let read = histograms.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(histogram) = found(&read) {
        return histogram;
    }
    drop(read);
    let mut write = histograms.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(histogram) = found(&write) {
        return histogram;
    }
    let histogram = ::metrics::histogram!(
        REQUEST_DURATION,
        "method" => method,
        "route" => route.to_string(),
        "status" => class,
    );
    write
        .entry(route.into())
        .or_default()
        .push(((method, class), histogram.clone()));
    histogram
}

/// The standard methods by name; anything else is `other` (a client cannot add series).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts a request as in flight for as long as it lives (dropped when the answer is ready or
/// the request is cancelled).
pub struct InFlight(());

fn in_flight_gauge() -> &'static Gauge {
    static GAUGE: OnceLock<Gauge> = OnceLock::new();
    GAUGE.get_or_init(|| {
        handle();
        ::metrics::gauge!(IN_FLIGHT)
    })
}

impl InFlight {
    pub fn start() -> InFlight {
        in_flight_gauge().increment(1.0);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight_gauge().decrement(1.0);
    }
}
