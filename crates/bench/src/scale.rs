//! Scale benchmarks (`promptvault-bench --scale`): does serving stay fast when the store is big,
//! and does a server stay small while it serves many prompts?
//!
//! **Latency at 1k vs 1M stored versions**, per backend (SQLite; PostgreSQL when a URL is
//! given). Two databases are seeded side by side — by default 10 prompts × 100 versions (1k) and
//! 10,000 prompts × 100 versions (1M) — each served in-process over real HTTP twice: once with a
//! resolve cache and once with `serving.cache_capacity = 0` (both caches large enough for every
//! prompt of the database, unlike the defaults). Every run spreads its requests over all the
//! prompts of its database (a fixed pseudo-random sequence per connection), so the bigger store
//! also has the bigger working set:
//!
//! - resolve+render, **cache hit**: `GET /api/resolve?name=…&label=production&params=…` after one
//!   sweep over every prompt filled the cache;
//! - resolve+render, **cache miss**: the same requests on the server without a cache, so every
//!   one reads the store (`Store::serve_candidates`);
//! - render by label: `POST /api/prompts/{name}/render` (this path has no answer cache: every
//!   request reads the prompt, its label and the version).
//!
//! Each run is measured at 1k and then at 1M back to back and printed with the ratio 1M/1k (the
//! target: latency within 1.5×). At 1M, the plans of the serve-path statements (the two
//! statements of `serve_candidates`, by name and by capability; the render-by-label read; the
//! label lookup of a split pick; the token lookup) are printed from `EXPLAIN QUERY PLAN`
//! (SQLite) / `EXPLAIN` (PostgreSQL, after `ANALYZE`), each checked for a full scan. These
//! statements are written here after the store's own (crates/store/src/{sqlite,postgres}.rs):
//! keep them in step.
//!
//! **RSS with 100k prompts**: a data directory with 100,000 prompts (one version each, labelled
//! `production`) is served by `prompt serve` as a separate process (the release binary beside
//! this one, or `--prompt-bin`), started with `PROMPTVAULT_BOOTSTRAP_TOKEN` so the benchmark
//! knows its admin token; the template was created beforehand by `prompt create`, so the server
//! has written nothing. Every prompt is resolved once without params (filling the resolve cache
//! to its capacity), then once with params (rendered: the compiled-template cache fills too),
//! then random prompts for `--rss-seconds`; the process's `VmRSS` and `VmHWM` (from
//! `/proc/<pid>/status`) are printed after each step, and after one version written at the end
//! (the first write loads the compliance tokenizer), against 150 MB. The server runs with the
//! default settings unless `PROMPTVAULT_*` variables say otherwise (they are passed on).
//!
//! **Seeding** bypasses the API and the audit log: one template prompt is created through the
//! HTTP API (`prompt create` for the RSS run), so every column has the store's own encoding,
//! then copied in bulk SQL — a recursive
//! CTE on SQLite, `generate_series` on PostgreSQL — in transactions of about 100,000 versions.
//! Ids are sequential (as UUID v7 ids made over time would be); each version's content is the
//! template's plus its revision and prompt name; the newest version is a draft labelled `latest`,
//! the one before it is approved and labelled `production`, older ones are approved; each prompt
//! has one global link to its own capability (`task-<n>`). Label history, runs, findings beyond
//! the template's, and audit entries are not seeded.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, Instant},
};

use anyhow::Context;
use promptvault_server::{http::AppState, settings::Settings};
use promptvault_store::testing::TestDatabase;
use serde_json::json;
use sqlx::{Connection, PgConnection, Row, SqliteConnection, sqlite::SqliteConnectOptions};
use tokio::io::AsyncBufReadExt;

use crate::load::{self, LoadResult, Request};

/// What `--scale` runs.
pub struct ScaleOptions {
    pub duration: Duration,
    pub connections: usize,
    pub postgres: Option<String>,
    pub record_runs: bool,
    /// Prompts of the small and of the large database.
    pub small_prompts: u64,
    pub large_prompts: u64,
    /// Versions per prompt in both.
    pub versions: u64,
    /// Skip the latency comparison.
    pub skip_latency: bool,
    /// Prompts of the RSS run (0: skip it).
    pub rss_prompts: u64,
    pub rss_duration: Duration,
    /// The `prompt` binary the RSS run starts.
    pub prompt_bin: PathBuf,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            duration: Duration::from_secs(5),
            connections: 64,
            postgres: None,
            record_runs: false,
            small_prompts: 10,
            large_prompts: 10_000,
            versions: 100,
            skip_latency: false,
            rss_prompts: 100_000,
            rss_duration: Duration::from_secs(20),
            prompt_bin: std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("prompt")))
                .unwrap_or_else(|| PathBuf::from("target/release/prompt")),
        }
    }
}

/// The RSS target of the issue.
const RSS_TARGET_MB: f64 = 150.0;
/// Versions written per seeding transaction (bounds the SQLite WAL and PostgreSQL's memory).
const VERSIONS_PER_TRANSACTION: u64 = 100_000;
const TEMPLATE_NAME: &str = "scale/template";

/// The params every request renders with.
const PARAMS_QUERY: &str =
    "%7B%22name%22%3A%22Ada%22%2C%22city%22%3A%22Paris%22%2C%22words%22%3A20%7D";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

pub async fn run(options: &ScaleOptions) -> anyhow::Result<()> {
    println!(
        "promptvault scale bench: {} s per run, {} connections, {} vs {} stored versions; RSS with {} prompts",
        options.duration.as_secs_f64(),
        options.connections,
        options.small_prompts * options.versions,
        options.large_prompts * options.versions,
        options.rss_prompts,
    );
    if !options.skip_latency {
        let mut backends = vec![Dialect::Sqlite];
        match &options.postgres {
            Some(_) => backends.push(Dialect::Postgres),
            None => println!(
                "(PostgreSQL skipped: set PROMPTVAULT_TEST_POSTGRES_URL or pass --postgres URL)"
            ),
        }
        for dialect in backends {
            latency(options, dialect).await?;
        }
    }
    if options.rss_prompts > 0 {
        rss(options).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Latency at 1k vs 1M stored versions.

/// One seeded database served twice: with a resolve cache that holds every prompt, and without.
struct Scenario {
    label: String,
    prompts: u64,
    database: TestDatabase,
    cached: (SocketAddr, AppState),
    uncached: (SocketAddr, AppState),
}

/// One measured run: which server (with or without the resolve cache) and which request.
struct Run {
    name: &'static str,
    cached: bool,
    request: fn(u64) -> Request,
}

async fn latency(options: &ScaleOptions, dialect: Dialect) -> anyhow::Result<()> {
    println!(
        "\n== {}: latency at {} vs {} stored versions",
        dialect.name(),
        count_label(options.small_prompts * options.versions),
        count_label(options.large_prompts * options.versions),
    );
    let small = Scenario::prepare(options, dialect, options.small_prompts).await?;
    let large = Scenario::prepare(options, dialect, options.large_prompts).await?;
    explain(dialect, &large).await?;

    println!("\n{}", LoadResult::header());
    let runs = [
        Run {
            name: "resolve+render, cache hit",
            cached: true,
            request: resolve_request,
        },
        Run {
            name: "resolve+render, cache miss",
            cached: false,
            request: resolve_request,
        },
        Run {
            name: "render by label",
            cached: true,
            request: render_request,
        },
    ];
    for Run {
        name,
        cached,
        request,
    } in runs
    {
        let mut results = Vec::new();
        for scenario in [&small, &large] {
            let (address, state) = if cached {
                &scenario.cached
            } else {
                &scenario.uncached
            };
            let before = CacheCounts::now();
            let result = spread(
                *address,
                scenario.prompts,
                options.connections,
                options.duration,
                request,
            )
            .await?;
            println!(
                "{}   {}",
                result.row(&format!(
                    "{}: {name}, {} versions",
                    dialect.name(),
                    scenario.label
                )),
                CacheCounts::now().since(&before)
            );
            state.vault.flush_runs().await;
            results.push(result);
        }
        let (small_result, large_result) = (&results[0], &results[1]);
        println!(
            "{:<52} p50 {:.2}x   p99 {:.2}x   req/s {:.2}x   (target: latency within 1.5x)",
            format!("  ratio {}/{}, {name}", large.label, small.label),
            large_result.percentile(0.50) / small_result.percentile(0.50),
            large_result.percentile(0.99) / small_result.percentile(0.99),
            large_result.requests_per_second() / small_result.requests_per_second(),
        );
    }
    Ok(())
}

impl Scenario {
    async fn prepare(
        options: &ScaleOptions,
        dialect: Dialect,
        prompts: u64,
    ) -> anyhow::Result<Self> {
        let database = match (dialect, &options.postgres) {
            (Dialect::Postgres, Some(url)) => TestDatabase::postgres(url).await,
            _ => TestDatabase::sqlite().await,
        };
        let label = count_label(prompts * options.versions);
        // Both caches hold every prompt of either database, so 1k and 1M differ only in what
        // the store holds (the defaults are sized for memory, not for this working set).
        let mut settings = Settings::default();
        settings.runs.record = options.record_runs;
        settings.serving.cache_capacity = settings.serving.cache_capacity.max(prompts);
        settings.serving.compiled_cache_capacity =
            settings.serving.compiled_cache_capacity.max(prompts);
        let cached = crate::serve_promptvault(&database, settings.clone()).await?;
        settings.serving.cache_capacity = 0;
        let uncached = crate::serve_promptvault(&database, settings).await?;
        create_template(cached.0).await?;

        let started = Instant::now();
        seed(dialect, &database.url(), prompts, options.versions).await?;
        println!(
            "seeded {label} versions ({prompts} prompts x {}) in {:.1} s",
            options.versions,
            started.elapsed().as_secs_f64()
        );
        check_seeded(cached.0, prompts, options.versions).await?;

        // Both servers compile every production version once; the cached one also caches every
        // resolve answer.
        let started = Instant::now();
        for (address, _) in [&cached, &uncached] {
            let sweep = load::sweep(
                *address,
                (1..=prompts).map(resolve_request).collect(),
                options.connections,
            )
            .await?;
            anyhow::ensure!(
                sweep.failed == 0 && sweep.ok == prompts,
                "warming up {label} versions: {} of {prompts} resolves failed",
                sweep.failed
            );
        }
        cached.1.vault.flush_runs().await;
        uncached.1.vault.flush_runs().await;
        println!(
            "warmed {label} versions (every prompt resolved once per server) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Scenario {
            label,
            prompts,
            database,
            cached,
            uncached,
        })
    }
}

/// The process's cache hits and misses (every in-process server counts into the same
/// metrics), by cache: the difference across a run says whether its "hit" really hit.
struct CacheCounts(std::collections::BTreeMap<(String, &'static str), f64>);

impl CacheCounts {
    fn now() -> Self {
        let mut counts = std::collections::BTreeMap::new();
        for line in promptvault_server::metrics::render().lines() {
            for (prefix, kind) in [
                ("promptvault_cache_hits_total{cache=\"", "hits"),
                ("promptvault_cache_misses_total{cache=\"", "misses"),
            ] {
                let Some(rest) = line.strip_prefix(prefix) else {
                    continue;
                };
                if let Some((cache, value)) = rest.split_once("\"} ")
                    && let Ok(value) = value.trim().parse::<f64>()
                {
                    counts.insert((cache.to_string(), kind), value);
                }
            }
        }
        CacheCounts(counts)
    }

    /// `hit ratio resolve 100.0%, compiled 99.9%` over the caches used since `before`.
    fn since(&self, before: &CacheCounts) -> String {
        let delta = |cache: &str, kind: &'static str| {
            let key = (cache.to_string(), kind);
            self.0.get(&key).copied().unwrap_or(0.0) - before.0.get(&key).copied().unwrap_or(0.0)
        };
        let caches: std::collections::BTreeSet<&String> =
            self.0.keys().map(|(cache, _)| cache).collect();
        let ratios: Vec<String> = caches
            .into_iter()
            .filter_map(|cache| {
                let (hits, misses) = (delta(cache, "hits"), delta(cache, "misses"));
                (hits + misses > 0.0)
                    .then(|| format!("{cache} {:.1}%", 100.0 * hits / (hits + misses)))
            })
            .collect();
        if ratios.is_empty() {
            "no cache used".to_string()
        } else {
            format!("hit ratio {}", ratios.join(", "))
        }
    }
}

/// `1k`, `1M`, `12.5k`, `100`.
fn count_label(count: u64) -> String {
    let count = count as f64;
    let (value, unit) = if count >= 1e6 {
        (count / 1e6, "M")
    } else if count >= 1e3 {
        (count / 1e3, "k")
    } else {
        (count, "")
    };
    let text = format!("{value:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// The last seeded prompt resolves by `production` to the version before its newest, rendered.
async fn check_seeded(address: SocketAddr, prompts: u64, versions: u64) -> anyhow::Result<()> {
    let production = if versions > 1 { versions - 1 } else { 1 };
    let (status, body) = load::exchange(address, resolve_request(prompts)).await?;
    let expected = format!("(revision {production} of {})", prompt_name(prompts));
    anyhow::ensure!(
        status == 200 && body.contains(&expected) && body.contains("a trip to Paris"),
        "the seeded data does not resolve as expected ({status}): {body}"
    );
    Ok(())
}

/// Closed-loop load spread over prompts 1..=prompts (a fixed pseudo-random order per connection).
async fn spread(
    address: SocketAddr,
    prompts: u64,
    connections: usize,
    duration: Duration,
    request: fn(u64) -> Request,
) -> anyhow::Result<LoadResult> {
    load::run_with(
        address,
        connections,
        Some(duration),
        200,
        move |connection, iteration| {
            let pick = mix(((connection as u64) << 40) ^ iteration) % prompts + 1;
            Some(request(pick))
        },
    )
    .await
}

/// splitmix64: a cheap, well-spread hash of a counter.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn prompt_name(index: u64) -> String {
    format!("scale/p{index:06}")
}

fn resolve_request(index: u64) -> Request {
    Request::get(&format!(
        "/api/resolve?name=scale%2Fp{index:06}&label=production&params={PARAMS_QUERY}"
    ))
}

/// Resolve by `production` without params: answered from the resolve cache, nothing rendered.
fn resolve_only_request(index: u64) -> Request {
    Request::get(&format!(
        "/api/resolve?name=scale%2Fp{index:06}&label=production"
    ))
}

fn render_request(index: u64) -> Request {
    Request::post_json(
        &format!("/api/prompts/scale%2Fp{index:06}/render"),
        json!({"label": "production", "params": {"name": "Ada", "city": "Paris", "words": 20}}),
    )
}

/// The template every seeded prompt copies: a system prompt of about 700 bytes, with a schema of
/// three parameters ([`template_schema`]).
const TEMPLATE_CONTENT: &str = "You are a travel assistant for {{ name }}, who is planning a trip \
    to {{ city }}. Answer in a warm, concise tone and never invent opening hours, prices or \
    addresses: when you are not sure, say so and suggest where to check. Start with a \
    one-sentence overview of the city, then list three neighbourhoods worth a visit with one \
    reason each, then two dishes to try and where they are typically served. If the traveller \
    mentions dates, mention seasonal events only when they are well known. Keep the whole answer \
    under {{ words }} words, use plain sentences without markdown headings, and end with one \
    question that helps you tailor the next answer to {{ name }}'s interests.";

fn template_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "city": {"type": "string"},
            "words": {"type": "integer", "minimum": 1}
        },
        "required": ["name", "city", "words"]
    })
}

/// Creates the template through the HTTP API.
async fn create_template(address: SocketAddr) -> anyhow::Result<()> {
    let body = json!({
        "name": TEMPLATE_NAME,
        "content": TEMPLATE_CONTENT,
        "parameter_schema": template_schema(),
        "tags": ["travel", "scale"]
    });
    let status = load::send_once(address, Request::post_json("/api/prompts", body)).await?;
    anyhow::ensure!(
        status == 201,
        "creating the template prompt answered {status}"
    );
    Ok(())
}

/// Creates the template with `prompt create` on the data directory (local mode), so the server
/// measured afterwards has written nothing itself.
async fn create_template_locally(binary: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["create", TEMPLATE_NAME, "--content", TEMPLATE_CONTENT])
        .arg("--schema")
        .arg(template_schema().to_string())
        .args(["--tag", "travel", "--tag", "scale"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run {}", binary.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "prompt create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Seeding.

/// Copies the template into prompts 1..=prompts with `versions` versions each (see the module
/// documentation), in transactions of about [`VERSIONS_PER_TRANSACTION`] versions.
async fn seed(dialect: Dialect, url: &str, prompts: u64, versions: u64) -> anyhow::Result<()> {
    let per_transaction = (VERSIONS_PER_TRANSACTION / versions).max(1);
    let production = if versions > 1 { versions - 1 } else { 1 };
    let chunks = (1..=prompts)
        .step_by(per_transaction as usize)
        .map(|first| {
            let last = (first + per_transaction - 1).min(prompts);
            (first as i64, last as i64)
        });
    let value = |param: Param, (first, last): (i64, i64)| match param {
        Param::Template => Err(TEMPLATE_NAME),
        Param::First => Ok(first),
        Param::Last => Ok(last),
        Param::Versions => Ok(versions as i64),
        Param::Production => Ok(production as i64),
    };
    match dialect {
        Dialect::Sqlite => {
            let options = SqliteConnectOptions::from_str(url)?
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true);
            let mut conn = SqliteConnection::connect_with(&options).await?;
            for chunk in chunks {
                let mut tx = conn.begin().await?;
                for (statement, params) in SQLITE_SEED {
                    let mut query = sqlx::query(*statement);
                    for param in *params {
                        query = match value(*param, chunk) {
                            Ok(number) => query.bind(number),
                            Err(text) => query.bind(text),
                        };
                    }
                    query
                        .execute(&mut *tx)
                        .await
                        .with_context(|| format!("seeding prompts {chunk:?}"))?;
                }
                tx.commit().await?;
            }
            conn.close().await?;
        }
        Dialect::Postgres => {
            let mut conn = PgConnection::connect(url).await?;
            for chunk in chunks {
                let mut tx = conn.begin().await?;
                for (statement, params) in POSTGRES_SEED {
                    let mut query = sqlx::query(*statement);
                    for param in *params {
                        query = match value(*param, chunk) {
                            Ok(number) => query.bind(number),
                            Err(text) => query.bind(text),
                        };
                    }
                    query
                        .execute(&mut *tx)
                        .await
                        .with_context(|| format!("seeding prompts {chunk:?}"))?;
                }
                tx.commit().await?;
            }
            // What autovacuum would have done by the time a database holds this much.
            sqlx::query("ANALYZE prompts, prompt_versions, labels, links")
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
    }
    Ok(())
}

/// A seeding statement's parameters, in order ($1, $2, …): the template's name, the first and
/// last prompt of the transaction, the versions per prompt, the version labelled `production`.
#[derive(Clone, Copy)]
enum Param {
    Template,
    First,
    Last,
    Versions,
    Production,
}

// Prompt n has id 01900000-…-<n in hex>, version v of it 01910000-<n in hex, 16 digits><v in
// hex, 8 digits>, its link 01920000-…-<n in hex>.

const SQLITE_SEED: &[(&str, &[Param])] = &[
    (
        "INSERT INTO prompts (id, name, title, description, long_description_markdown, scope, \
         agent_id, owner_id, creator_id, prompt_type, kind, tags, source, classification, \
         status, revision, created_at, updated_at, access) \
         WITH RECURSIVE i(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM i WHERE x < $3) \
         SELECT unhex(printf('01900000%024x', x)), printf('scale/p%06d', x), t.title, \
         t.description, t.long_description_markdown, t.scope, t.agent_id, t.owner_id, \
         t.creator_id, t.prompt_type, t.kind, t.tags, t.source, 'public', 'active', $4, \
         strftime('%Y-%m-%dT%H:%M:%S', 1735689600 + x * 60, 'unixepoch') || '.000000Z', \
         strftime('%Y-%m-%dT%H:%M:%S', 1735689600 + x * 60 + $4, 'unixepoch') || '.000000Z', \
         t.access \
         FROM i CROSS JOIN prompts t WHERE t.name = $1",
        &[Param::Template, Param::First, Param::Last, Param::Versions],
    ),
    (
        "INSERT INTO prompt_versions (id, prompt_id, version_number, semver, content, config, \
         parameter_schema, diff_hash, notes, author_id, status, created_at, findings, \
         token_count, approved_at) \
         WITH RECURSIVE i(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM i WHERE x < $3), \
         n(y) AS (SELECT 1 UNION ALL SELECT y + 1 FROM n WHERE y < $4), \
         t AS (SELECT v.* FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
               WHERE p.name = $1 AND v.version_number = 1) \
         SELECT unhex(printf('01910000%016x%08x', x, y)), unhex(printf('01900000%024x', x)), y, \
         printf('1.%d.0', y - 1), \
         json_quote(json_extract(t.content, '$') || printf(' (revision %d of scale/p%06d)', y, x)), \
         t.config, t.parameter_schema, printf('%064x', x * 100000 + y), \
         printf('revision %d', y), t.author_id, \
         CASE WHEN y > $5 THEN 'draft' ELSE 'approved' END, \
         strftime('%Y-%m-%dT%H:%M:%S', 1735689600 + x * 60 + y, 'unixepoch') || '.000000Z', \
         t.findings, t.token_count, \
         CASE WHEN y > $5 THEN NULL \
         ELSE strftime('%Y-%m-%dT%H:%M:%S', 1735689600 + x * 60 + y, 'unixepoch') || '.000000Z' \
         END \
         FROM i CROSS JOIN n CROSS JOIN t",
        &[
            Param::Template,
            Param::First,
            Param::Last,
            Param::Versions,
            Param::Production,
        ],
    ),
    (
        "INSERT INTO labels (prompt_id, name, version_number, updated_at) \
         WITH RECURSIVE i(x) AS (SELECT $1 UNION ALL SELECT x + 1 FROM i WHERE x < $2) \
         SELECT unhex(printf('01900000%024x', x)), label.name, label.version, \
         strftime('%Y-%m-%dT%H:%M:%S', 1735689600 + x * 60 + $3, 'unixepoch') || '.000000Z' \
         FROM i CROSS JOIN (SELECT 'latest' AS name, $3 AS version \
                            UNION ALL SELECT 'production', $4) AS label",
        &[
            Param::First,
            Param::Last,
            Param::Versions,
            Param::Production,
        ],
    ),
    (
        "INSERT INTO links (id, prompt_id, capability, agent_id, priority, created_at) \
         WITH RECURSIVE i(x) AS (SELECT $2 UNION ALL SELECT x + 1 FROM i WHERE x < $3) \
         SELECT unhex(printf('01920000%024x', x)), unhex(printf('01900000%024x', x)), \
         printf('task-%06d', x), NULL, 0, p.created_at \
         FROM i CROSS JOIN prompts p WHERE p.name = $1",
        &[Param::Template, Param::First, Param::Last],
    ),
];

const POSTGRES_SEED: &[(&str, &[Param])] = &[
    (
        "INSERT INTO prompts (id, name, title, description, long_description_markdown, scope, \
         agent_id, owner_id, creator_id, prompt_type, kind, tags, source, classification, \
         status, revision, created_at, updated_at, access) \
         SELECT ('01900000' || lpad(to_hex(x), 24, '0'))::uuid, \
         'scale/p' || lpad(x::text, 6, '0'), t.title, t.description, \
         t.long_description_markdown, t.scope, t.agent_id, t.owner_id, t.creator_id, \
         t.prompt_type, t.kind, t.tags, t.source, 'public', 'active', $4::bigint, \
         to_timestamp(1735689600 + x * 60), to_timestamp(1735689600 + x * 60 + $4::bigint), \
         t.access \
         FROM generate_series($2::bigint, $3::bigint) AS x CROSS JOIN prompts t \
         WHERE t.name = $1",
        &[Param::Template, Param::First, Param::Last, Param::Versions],
    ),
    (
        "INSERT INTO prompt_versions (id, prompt_id, version_number, semver, content, config, \
         parameter_schema, diff_hash, notes, author_id, status, created_at, findings, \
         token_count, approved_at) \
         SELECT ('01910000' || lpad(to_hex(x), 16, '0') || lpad(to_hex(y), 8, '0'))::uuid, \
         ('01900000' || lpad(to_hex(x), 24, '0'))::uuid, y, '1.' || (y - 1) || '.0', \
         to_jsonb((t.content #>> '{}') || ' (revision ' || y || ' of scale/p' \
                  || lpad(x::text, 6, '0') || ')'), \
         t.config, t.parameter_schema, lpad(to_hex(x * 100000 + y), 64, '0'), \
         'revision ' || y, t.author_id, CASE WHEN y > $5 THEN 'draft' ELSE 'approved' END, \
         to_timestamp(1735689600 + x * 60 + y), t.findings, t.token_count, \
         CASE WHEN y > $5 THEN NULL ELSE to_timestamp(1735689600 + x * 60 + y) END \
         FROM generate_series($2::bigint, $3::bigint) AS x \
         CROSS JOIN generate_series(1::bigint, $4::bigint) AS y \
         CROSS JOIN (SELECT v.* FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id \
                     WHERE p.name = $1 AND v.version_number = 1) AS t",
        &[
            Param::Template,
            Param::First,
            Param::Last,
            Param::Versions,
            Param::Production,
        ],
    ),
    (
        "INSERT INTO labels (prompt_id, name, version_number, updated_at) \
         SELECT ('01900000' || lpad(to_hex(x), 24, '0'))::uuid, label.name, label.version, \
         to_timestamp(1735689600 + x * 60 + $3::bigint) \
         FROM generate_series($1::bigint, $2::bigint) AS x \
         CROSS JOIN (VALUES ('latest', $3::bigint), ('production', $4::bigint)) \
              AS label (name, version)",
        &[
            Param::First,
            Param::Last,
            Param::Versions,
            Param::Production,
        ],
    ),
    (
        "INSERT INTO links (id, prompt_id, capability, agent_id, priority, created_at) \
         SELECT ('01920000' || lpad(to_hex(x), 24, '0'))::uuid, \
         ('01900000' || lpad(to_hex(x), 24, '0'))::uuid, 'task-' || lpad(x::text, 6, '0'), \
         NULL, 0, p.created_at \
         FROM generate_series($2::bigint, $3::bigint) AS x CROSS JOIN prompts p \
         WHERE p.name = $1",
        &[Param::Template, Param::First, Param::Last],
    ),
];

// ---------------------------------------------------------------------------------------------
// Plans.

/// Prints the plan of each serve-path statement on the large database and whether it scans a
/// whole table.
async fn explain(dialect: Dialect, scenario: &Scenario) -> anyhow::Result<()> {
    let middle = scenario.prompts / 2 + 1;
    let name = prompt_name(middle);
    let id = format!("{:032x}", (0x0190_0000_u128 << 96) | u128::from(middle));
    let production = scenario
        .database
        .query_text(&format!(
            "SELECT CAST(version_number AS TEXT) FROM labels WHERE name = 'production' \
             AND prompt_id = {}",
            id_literal(dialect, &id)
        ))
        .await
        .into_iter()
        .flatten()
        .next()
        .context("the seeded prompt has no production label")?;
    let prompt_id = id_literal(dialect, &id);
    let statements = [
        (
            "serve_candidates 1 (by name + label)",
            format!(
                "SELECT p.*, lb.version_number, lb.split FROM prompts p LEFT JOIN labels lb \
                 ON lb.prompt_id = p.id AND lb.name = 'production' WHERE p.name = '{name}'"
            ),
        ),
        (
            "serve_candidates 1 (by capability)",
            format!(
                "SELECT p.*, lb.version_number, lb.split FROM links k JOIN prompts p \
                 ON p.id = k.prompt_id LEFT JOIN labels lb ON lb.prompt_id = p.id \
                 AND lb.name = 'production' WHERE k.capability = 'task-{middle:06}' \
                 AND (k.agent_id = 'agent-1' OR k.agent_id IS NULL) \
                 ORDER BY k.agent_id IS NULL, k.priority DESC, k.created_at, k.id"
            ),
        ),
        (
            "serve_candidates 2 (versions)",
            format!(
                "SELECT v.* FROM prompt_versions v WHERE (v.prompt_id = {prompt_id} \
                 AND v.version_number IN ({production}))"
            ),
        ),
        (
            "render: resolve_version (by name + label)",
            format!(
                "SELECT p.*, v.* FROM prompts p LEFT JOIN labels l ON l.prompt_id = p.id \
                 AND l.name = 'production' LEFT JOIN prompt_versions v ON v.prompt_id = p.id \
                 AND v.version_number = l.version_number WHERE p.name = '{name}'"
            ),
        ),
        (
            "render: label_target (prompt)",
            format!("SELECT name FROM prompts WHERE id = {prompt_id}"),
        ),
        (
            "render: label_target (label)",
            format!(
                "SELECT version_number, split FROM labels WHERE prompt_id = {prompt_id} \
                 AND name = 'production'"
            ),
        ),
        (
            "auth: token by hash",
            "SELECT * FROM api_tokens WHERE token_hash = 'x'".to_string(),
        ),
    ];
    println!(
        "\nplans at {} versions ({}):",
        scenario.label,
        match dialect {
            Dialect::Sqlite => "EXPLAIN QUERY PLAN",
            Dialect::Postgres => "EXPLAIN, after ANALYZE",
        }
    );
    let mut scans = Vec::new();
    for (what, sql) in statements {
        let lines: Vec<String> = match dialect {
            Dialect::Sqlite => {
                let options = SqliteConnectOptions::from_str(&scenario.database.url())?;
                let mut conn = SqliteConnection::connect_with(&options).await?;
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&mut conn)
                    .await?;
                conn.close().await?;
                rows.iter()
                    .map(|row| row.try_get::<String, _>(3))
                    .collect::<Result<_, _>>()?
            }
            Dialect::Postgres => scenario
                .database
                .query_text(&format!("EXPLAIN {sql}"))
                .await
                .into_iter()
                .flatten()
                .collect(),
        };
        // Small tables (api_tokens holds one row) may be scanned; the big ones never.
        let full_scan = lines.iter().any(|line| {
            let line = line.trim_start_matches(['-', '>', ' ']);
            let scanned = match dialect {
                Dialect::Sqlite => line.starts_with("SCAN "),
                Dialect::Postgres => line.starts_with("Seq Scan"),
            };
            scanned && !line.contains("api_tokens")
        });
        if full_scan {
            scans.push(what);
        }
        println!(
            "  {what}: {}",
            if full_scan { "FULL SCAN" } else { "index" }
        );
        for line in lines {
            println!("      {line}");
        }
    }
    if scans.is_empty() {
        println!("every serve-path statement is index-backed");
    } else {
        println!("NOT index-backed: {}", scans.join(", "));
    }
    Ok(())
}

/// A literal for the UUID with these 32 hex digits.
fn id_literal(dialect: Dialect, hex: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("x'{hex}'"),
        Dialect::Postgres => format!("'{hex}'::uuid"),
    }
}

// ---------------------------------------------------------------------------------------------
// RSS of `prompt serve` with 100k prompts.

/// A `prompt serve` process on a data directory; terminated on drop.
struct ServerProcess {
    child: tokio::process::Child,
    address: SocketAddr,
}

impl ServerProcess {
    async fn start(binary: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PROMPTVAULT_BOOTSTRAP_TOKEN", load::TOKEN)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("prompt serve printed nothing within 30 s")??
            .context("prompt serve exited before printing its address")?;
        let address = first
            .rsplit("http://")
            .next()
            .context("no address in the first line")?
            .parse()
            .with_context(|| format!("cannot read the address in {first:?}"))?;
        // The rest of stdout (the bootstrap token line) is read and dropped in the background.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ServerProcess { child, address })
    }

    /// (VmRSS, VmHWM) in MB.
    fn memory(&self) -> anyhow::Result<(f64, f64)> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
            let kb: f64 = line
                .trim_start_matches(name)
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()?;
            Ok(kb / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM (the server drains and writes its queued runs), then SIGKILL after 30 s.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await?;
            if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
                .await
                .is_err()
            {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

async fn rss(options: &ScaleOptions) -> anyhow::Result<()> {
    let prompts = options.rss_prompts;
    println!(
        "\n== RSS of `prompt serve` (SQLite data directory) with {prompts} prompts: {}",
        options.prompt_bin.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("promptvault-scale-")
        .tempdir()?;
    let data_dir = dir.path().join("data");
    create_template_locally(&options.prompt_bin, &data_dir).await?;
    let url = format!("sqlite:{}", data_dir.join("promptvault.db").display());
    let started = Instant::now();
    seed(Dialect::Sqlite, &url, prompts, 1).await?;
    println!(
        "seeded {prompts} prompts (1 version each, labelled production) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let server = ServerProcess::start(&options.prompt_bin, &data_dir).await?;
    let address = server.address;
    let report = |what: &str| -> anyhow::Result<(f64, f64)> {
        let (rss, hwm) = server.memory()?;
        println!(
            "{what:<52} VmRSS {rss:>7.1} MB   VmHWM {hwm:>7.1} MB   ({:.2}x the {RSS_TARGET_MB} MB target)",
            hwm / RSS_TARGET_MB
        );
        Ok((rss, hwm))
    };
    check_seeded(address, prompts, 1).await?;
    let (idle, _) = report("started, one prompt resolved")?;

    // Without params first: fills the resolve cache only; then with params, which also compiles
    // every version (the compiled-template cache keeps at most 10,000).
    println!("{}", LoadResult::header());
    let sweep = load::sweep(
        address,
        (1..=prompts).map(resolve_only_request).collect(),
        options.connections,
    )
    .await?;
    println!(
        "{}",
        sweep.row(&format!(
            "sweep: resolve each of {prompts} once (no params)"
        ))
    );
    let (resolved, _) = report("after the resolve sweep")?;
    let sweep = load::sweep(
        address,
        (1..=prompts).map(resolve_request).collect(),
        options.connections,
    )
    .await?;
    println!(
        "{}",
        sweep.row(&format!("sweep: resolve+render each of {prompts} once"))
    );
    let (rendered, _) = report("after the resolve+render sweep")?;
    let random = spread(
        address,
        prompts,
        options.connections,
        options.rss_duration,
        resolve_request,
    )
    .await?;
    println!(
        "{}",
        random.row(&format!(
            "resolve+render, random prompts of {prompts}, {} s",
            options.rss_duration.as_secs_f64()
        ))
    );
    let (loaded, peak) = report("after the random load")?;
    // The first version this server writes loads the compliance checks' tokenizer.
    let status = load::send_once(
        address,
        Request::post_json(
            "/api/prompts/scale%2Fp000001/version",
            json!({"content": format!("{TEMPLATE_CONTENT} Be brief.")}),
        ),
    )
    .await?;
    anyhow::ensure!(status == 201, "writing a version answered {status}");
    let (written, peak_written) = report("after one version written")?;
    if let Ok((200, text)) = load::exchange(address, Request::get("/metrics")).await {
        for line in text
            .lines()
            .filter(|line| line.starts_with("promptvault_cache_"))
        {
            println!("  {line}");
        }
    }
    // The server reads the same settings (no file; this process's environment is passed on).
    let serving = Settings::load(None, &Default::default())
        .map(|settings| settings.serving)
        .unwrap_or_default();
    let (answers, templates) = (
        prompts.min(serving.cache_capacity).max(1),
        prompts.min(serving.compiled_cache_capacity).max(1),
    );
    println!(
        "growth: resolve sweep {:.1} MB ({answers} answers cached: {:.1} KB each), resolve+render \
         sweep {:.1} MB ({templates} templates compiled and kept: {:.1} KB each), first write \
         {:.1} MB (growth includes what churn leaves behind)",
        resolved - idle,
        (resolved - idle) * 1024.0 / answers as f64,
        rendered - resolved,
        (rendered - resolved) * 1024.0 / templates as f64,
        written - loaded,
    );
    let verdict = |peak: f64| {
        if peak < RSS_TARGET_MB {
            "under the 150 MB target"
        } else {
            "OVER the 150 MB target"
        }
    };
    println!(
        "RSS peak serving {prompts} prompts: {peak:.1} MB, {}; after a write too: {peak_written:.1} MB, {}",
        verdict(peak),
        verdict(peak_written)
    );
    server.stop().await?;
    Ok(())
}
