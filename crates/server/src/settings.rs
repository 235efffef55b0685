//! Configuration: one typed [`Settings`] built in layers — defaults, then a TOML file, then
//! `PROMPTVAULT_*` environment variables, then command-line flags — and passed explicitly to
//! whatever needs it. Nothing reads configuration from a global.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Every setting of a promptvault process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where the embedded SQLite database lives when no `database_url` is set.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite:…`; default: `sqlite:<data_dir>/promptvault.db`.
    pub database_url: Option<String>,
    /// Redis (`redis://[user:password@]host:port[/db]`) for the shared serve cache and pub/sub
    /// invalidation between servers on one database (`--redis-url`, `PROMPTVAULT_REDIS_URL`);
    /// none: each server caches alone. Its key prefix, TTL and timeout are in `[serving]`.
    pub redis_url: Option<String>,
    pub deployment_model: DeploymentModel,
    pub log_format: LogFormat,
    pub http: HttpSettings,
    pub render: RenderSettings,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
    /// The first admin token's secret, instead of a random one (`PROMPTVAULT_BOOTSTRAP_TOKEN`).
    pub bootstrap_token: Option<Secret>,
    /// The keys encrypting confidential and restricted content at rest, `id:key[,id:key…]`
    /// (first = current; key = 64 hex digits or base64 of 32 bytes) — `PROMPTVAULT_ENCRYPTION_KEY`.
    pub encryption_key: Option<Secret>,
    /// A file holding the same (`PROMPTVAULT_ENCRYPTION_KEY_FILE`). With neither, the embedded
    /// SQLite database gets a key generated in `<data_dir>/encryption.key` on first start.
    pub encryption_key_file: Option<PathBuf>,
    /// The static compliance checks on every new version (SPEC §9): each rule's level (`off`,
    /// `info`, `warning`, `error`), the injection phrases, the size and token budgets —
    /// `[compliance]` in TOML, `PROMPTVAULT_COMPLIANCE__<FIELD>`. Only the fields given change.
    #[serde(default)]
    pub compliance: ComplianceRules,
    /// Deprecation, retention of archived versions and periodic review — `[lifecycle]` in TOML,
    /// `PROMPTVAULT_LIFECYCLE__<FIELD>`.
    #[serde(default)]
    pub lifecycle: LifecycleSettings,
    /// Protected labels and who may move them — `[labels]` in TOML,
    /// `PROMPTVAULT_LABELS__PROTECTED` / `PROMPTVAULT_LABELS__DEPLOY_ROLES` (comma-separated).
    #[serde(default)]
    pub labels: LabelSettings,
    /// The approval workflow of each classification (SPEC §6): `[approvals.<classification>]`
    /// with `steps = [{ roles = ["admin", "user"], count = 1 }, …]` in TOML,
    /// `PROMPTVAULT_APPROVALS__<CLASSIFICATION>='{steps=[{roles=["admin"],count=2}]}'` in the
    /// environment. Defaults: public and internal one approval by an admin or a user,
    /// confidential two, restricted one by an admin or a user then one by an admin. A prompt
    /// type's own workflow overrides its prompts' classification's.
    #[serde(default)]
    pub approvals: ApprovalPolicy,
    /// The resolve cache and HTTP caching of serve answers — `[serving]` in TOML,
    /// `PROMPTVAULT_SERVING__<FIELD>`.
    #[serde(default)]
    pub serving: ServingSettings,
    /// Recording runs and monitoring their outcomes — `[runs]` in TOML,
    /// `PROMPTVAULT_RUNS__<FIELD>`.
    #[serde(default)]
    pub runs: RunSettings,
    /// Who may scrape `GET /metrics` — `[metrics]` in TOML, `PROMPTVAULT_METRICS__<FIELD>`.
    #[serde(default)]
    pub metrics: MetricsSettings,
}

/// Serving: the in-process caches (resolve answers, compiled templates) and what clients may
/// cache. The caches count entries, not bytes, and an entry's cost grows with its prompt: for a
/// ~700-byte template with a 3-parameter schema, about 20 KB per resolve answer and 20–30 KB
/// per compiled template. The defaults keep a server with 100,000 prompts under 150 MB while it
/// serves (`promptvault-bench --scale`); raise them when the hot set is larger and memory allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServingSettings {
    /// How many resolve answers (prompt + label/version + versions) the in-process cache keeps;
    /// 0 disables it. Default 2000.
    pub cache_capacity: u64,
    /// How many compiled templates (one per version and undefined mode) renders keep; 0 compiles
    /// on every render. Default 1000.
    pub compiled_cache_capacity: u64,
    /// Under `electron_remote` (and `electron_local`), how long a client may reuse a resolve
    /// answer before revalidating it with its `ETag` (`Cache-Control: private, max-age=<ttl>,
    /// must-revalidate`). Default 60.
    pub client_ttl_secs: u64,
    /// With `redis_url`: the prefix of every Redis key and of the invalidation channel
    /// (`<prefix>:invalidate`), so that several deployments can share one Redis. Servers on one
    /// database must use the same prefix. Default `promptvault`.
    pub redis_prefix: String,
    /// With `redis_url`: how long a resolve answer stays in Redis (seconds). Default 300.
    pub redis_ttl_secs: u64,
    /// With `redis_url`: the longest a request waits on Redis (milliseconds) before going to
    /// the database instead. Default 100.
    pub redis_timeout_ms: u64,
}

impl Default for ServingSettings {
    fn default() -> Self {
        ServingSettings {
            cache_capacity: 2_000,
            compiled_cache_capacity: 1_000,
            client_ttl_secs: 60,
            redis_prefix: "promptvault".into(),
            redis_ttl_secs: 300,
            redis_timeout_ms: 100,
        }
    }
}

/// Runs (SPEC §1): whether renders are recorded, the recording queue, and the performance
/// monitoring rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSettings {
    /// Record a run for every render and resolve with params, unless the request says
    /// otherwise (`"record": false`); off by default: a run is recorded when a request asks
    /// for one (`"record": true`). Every use counts toward the version's usage either way.
    pub record: bool,
    /// Runs waiting to be written; when full, further runs are dropped (and counted), never
    /// waited for.
    pub queue_capacity: usize,
    /// At most this many runs per write transaction.
    pub batch_size: usize,
    /// After the first run of a round arrives, how long the writer collects more before it
    /// writes (milliseconds; 0 writes whatever is waiting at once). A flush — feedback on a run
    /// still queued, a metrics read, shutdown — writes at once.
    pub batch_wait_ms: u64,
    /// How long uses (times used, last used) are tallied in memory after the first one before
    /// they are written: one row per version used in that time (milliseconds, 1 to 60000; a
    /// flush writes them at once).
    pub usage_flush_ms: u64,
    /// Alert when the success rate over the last `alert_window` runs with an outcome falls
    /// below this (0 to 1); none: no alerts.
    pub alert_below: Option<f64>,
    pub alert_window: u32,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            record: false,
            queue_capacity: 10_000,
            batch_size: 500,
            batch_wait_ms: 50,
            usage_flush_ms: 5_000,
            alert_below: Some(0.5),
            alert_window: 20,
        }
    }
}

impl RunSettings {
    /// The monitoring rule, if alerts are on.
    pub fn alert_rule(&self) -> Result<Option<promptvault_core::runs::AlertRule>, SettingsError> {
        self.alert_below
            .map(|min_success_rate| {
                promptvault_core::runs::AlertRule {
                    min_success_rate,
                    window: self.alert_window,
                }
                .validate()
                .map_err(|error| SettingsError(format!("runs.alert_below / alert_window: {error}")))
            })
            .transpose()
    }
}

/// Access to `GET /metrics`. By default only an admin credential may scrape it; a `token` lets
/// a scraper in with that secret and nothing else; `public = true` needs no credential at all
/// (for a metrics port reachable only from the monitoring network).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Anyone may scrape, without a credential.
    pub public: bool,
    /// A bearer secret that opens `/metrics` only (`PROMPTVAULT_METRICS__TOKEN`); at least 32
    /// characters.
    pub token: Option<Secret>,
}

/// Deprecation, archive retention and periodic review (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleSettings {
    /// How long a deprecated version is still served when the deprecation gives no period or
    /// sunset.
    pub deprecation_period_days: u32,
    /// Archived versions archived longer ago than this lose their content, config and schema
    /// (history stays); none: keep them forever.
    pub archived_retention_days: Option<u32>,
    /// Prompts of a classification need a review every this many days
    /// (`review_every_days = { confidential = 90 }`); a prompt type's own interval wins.
    pub review_every_days: BTreeMap<Classification, u32>,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            deprecation_period_days: 30,
            archived_retention_days: None,
            review_every_days: BTreeMap::new(),
        }
    }
}

/// Protected labels (SPEC §6): only approved versions may carry them, and only the deploy roles
/// may move or remove them. A prompt type with `requires_approval` protects every label of its
/// prompts on top of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelSettings {
    /// Default `["production"]`.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub protected: Vec<String>,
    /// Default `["admin"]`.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub deploy_roles: Vec<Role>,
}

impl Default for LabelSettings {
    fn default() -> Self {
        LabelSettings {
            protected: vec!["production".into()],
            deploy_roles: vec![Role::Admin],
        }
    }
}

pub use promptvault_core::model::Classification;

impl LabelSettings {
    /// The policy the vault enforces (the labels were checked by `Settings::load`; an invalid
    /// one given some other way is an error here).
    pub fn policy(&self) -> Result<LabelPolicy, SettingsError> {
        let protected = self
            .protected
            .iter()
            .map(|label| {
                LabelName::parse_user_settable(label).map_err(|error| {
                    SettingsError(format!(
                        "labels.protected (PROMPTVAULT_LABELS__PROTECTED): {error}"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelPolicy {
            protected,
            deploy_roles: self.deploy_roles.clone(),
        })
    }
}

/// A list given as a TOML array or, from the environment, as one comma-separated string.
fn list_or_comma_separated<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        List(Vec<String>),
        Text(String),
    }
    let items = match Given::deserialize(deserializer)? {
        Given::List(items) => items,
        Given::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect(),
    };
    items
        .iter()
        .map(|item| item.parse::<T>().map_err(serde::de::Error::custom))
        .collect()
}

use promptvault_core::{deploy::LabelPolicy, ident::LabelName, model::Role};

pub use promptvault_core::{
    compliance::{ComplianceRules, Level as ComplianceLevel},
    workflow::ApprovalPolicy,
};

/// A secret setting: never printed (`Debug` shows `***`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How callers authenticate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Accept JWTs signed with HS256 and this shared secret (`PROMPTVAULT_AUTH__JWT_HS256_SECRET`).
    pub jwt_hs256_secret: Option<Secret>,
    /// Accept JWTs signed with RS256, verified with this PEM public key file.
    pub jwt_rs256_public_key_file: Option<PathBuf>,
    /// If set, a JWT's `iss` must equal it.
    pub jwt_issuer: Option<String>,
    /// Failed authentications allowed per client address per minute before answering 429.
    pub max_failures_per_minute: u32,
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Entries older than this many days are purged behind a signed checkpoint; none: keep all.
    pub retention_days: Option<u32>,
    /// The key signing retention checkpoints (`PROMPTVAULT_AUDIT__SIGNING_KEY`); default: a key
    /// generated on first start and kept in the data directory (`audit-signing.key`).
    pub signing_key: Option<Secret>,
}

pub use promptvault_core::model::DeploymentModel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest accepted request body; larger ones get 413.
    pub body_limit_bytes: usize,
    /// A request still running after this many seconds gets 503 with code `timeout`.
    pub request_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderSettings {
    pub fuel: u64,
    pub recursion: usize,
    pub max_output_bytes: usize,
}

/// Values given on the command line; each overrides every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub deployment_model: Option<DeploymentModel>,
    pub log_format: Option<LogFormat>,
}

/// The environment variables read, each `PROMPTVAULT_<NAME>` (nested: `PROMPTVAULT_HTTP__BODY_LIMIT_BYTES`).
const ENV_KEYS: &[&str] = &[
    "runs",
    "listen",
    "data_dir",
    "database_url",
    "redis_url",
    "deployment_model",
    "log_format",
    "http",
    "render",
    "auth",
    "audit",
    "bootstrap_token",
    "encryption_key",
    "encryption_key_file",
    "compliance",
    "lifecycle",
    "labels",
    "approvals",
    "serving",
    "metrics",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("promptvault-data"),
            database_url: None,
            redis_url: None,
            deployment_model: DeploymentModel::WebApplication,
            log_format: LogFormat::Text,
            http: HttpSettings {
                body_limit_bytes: 1024 * 1024,
                request_timeout_secs: 30,
            },
            render: RenderSettings {
                fuel: 200_000,
                recursion: 100,
                max_output_bytes: 1024 * 1024,
            },
            auth: AuthSettings {
                jwt_hs256_secret: None,
                jwt_rs256_public_key_file: None,
                jwt_issuer: None,
                max_failures_per_minute: 20,
            },
            audit: AuditSettings {
                retention_days: None,
                signing_key: None,
            },
            bootstrap_token: None,
            encryption_key: None,
            encryption_key_file: None,
            compliance: ComplianceRules::default(),
            lifecycle: LifecycleSettings::default(),
            labels: LabelSettings::default(),
            runs: RunSettings::default(),
            approvals: ApprovalPolicy::default(),
            serving: ServingSettings::default(),
            metrics: MetricsSettings::default(),
        }
    }
}

impl Settings {
    /// Builds settings from defaults, the TOML file (if any), the environment and the overrides.
    /// `config_file` comes from `--config` or `PROMPTVAULT_CONFIG`; a named file must exist.
    pub fn load(
        config_file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(SettingsError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("PROMPTVAULT_")
                .filter(|key| {
                    // `http__body_limit_bytes` belongs to `http`: filter on the first segment,
                    // before `split` turns the key into a path.
                    let top = key.as_str().split("__").next().unwrap_or_default();
                    ENV_KEYS.iter().any(|known| top.eq_ignore_ascii_case(known))
                })
                .split("__"),
        );
        let mut settings: Settings = figment
            .extract()
            .map_err(|error| SettingsError(describe(&error)))?;
        if let Some(listen) = overrides.listen {
            settings.listen = listen;
        }
        if let Some(data_dir) = &overrides.data_dir {
            settings.data_dir = data_dir.clone();
        }
        if let Some(url) = &overrides.database_url {
            settings.database_url = Some(url.clone());
        }
        if let Some(url) = &overrides.redis_url {
            settings.redis_url = Some(url.clone());
        }
        if let Some(model) = overrides.deployment_model {
            settings.deployment_model = model;
        }
        if let Some(format) = overrides.log_format {
            settings.log_format = format;
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if self.http.body_limit_bytes == 0 {
            return Err(SettingsError(
                "http.body_limit_bytes (PROMPTVAULT_HTTP__BODY_LIMIT_BYTES) must be > 0".into(),
            ));
        }
        if self.http.request_timeout_secs == 0 {
            return Err(SettingsError(
                "http.request_timeout_secs (PROMPTVAULT_HTTP__REQUEST_TIMEOUT_SECS) must be > 0"
                    .into(),
            ));
        }
        if self.lifecycle.deprecation_period_days == 0
            || i64::from(self.lifecycle.deprecation_period_days)
                > promptvault_core::retire::MAX_PERIOD_DAYS
        {
            return Err(SettingsError(format!(
                "lifecycle.deprecation_period_days must be between 1 and {}",
                promptvault_core::retire::MAX_PERIOD_DAYS
            )));
        }
        if self
            .lifecycle
            .review_every_days
            .values()
            .any(|days| promptvault_core::retire::check_review_interval(*days).is_err())
        {
            return Err(SettingsError(format!(
                "lifecycle.review_every_days: every interval must be between 1 and {} days",
                promptvault_core::retire::MAX_REVIEW_INTERVAL_DAYS
            )));
        }
        if self.render.fuel == 0 || self.render.max_output_bytes == 0 || self.render.recursion == 0
        {
            return Err(SettingsError(
                "render.fuel, render.recursion and render.max_output_bytes must be > 0".into(),
            ));
        }
        if self
            .metrics
            .token
            .as_ref()
            .is_some_and(|token| token.0.len() < 32)
        {
            return Err(SettingsError(
                "metrics.token (PROMPTVAULT_METRICS__TOKEN) must be at least 32 characters".into(),
            ));
        }
        self.labels.policy()?;
        if self.runs.queue_capacity == 0
            || !(1..=5_000).contains(&self.runs.batch_size)
            || self.runs.batch_wait_ms > 10_000
            || !(1..=60_000).contains(&self.runs.usage_flush_ms)
        {
            return Err(SettingsError(
                "runs.queue_capacity must be > 0, runs.batch_size between 1 and 5000, \
                 runs.batch_wait_ms at most 10000 and runs.usage_flush_ms between 1 and 60000"
                    .into(),
            ));
        }
        self.runs.alert_rule()?;
        let prefix = &self.serving.redis_prefix;
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            return Err(SettingsError(
                "serving.redis_prefix (PROMPTVAULT_SERVING__REDIS_PREFIX) must be 1 to 64 of \
                 A-Z a-z 0-9 _ - . :"
                    .into(),
            ));
        }
        if self.serving.redis_ttl_secs == 0 || self.serving.redis_timeout_ms == 0 {
            return Err(SettingsError(
                "serving.redis_ttl_secs and serving.redis_timeout_ms must be > 0".into(),
            ));
        }
        self.approvals
            .validate()
            .map_err(|error| SettingsError(error.to_string()))?;
        Ok(())
    }

    /// The database to open: `database_url`, or the SQLite file in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite:{}", self.data_dir.join("promptvault.db").display()),
        }
    }

    pub fn render_limits(&self) -> promptvault_core::render::RenderLimits {
        promptvault_core::render::RenderLimits {
            fuel: self.render.fuel,
            recursion: self.render.recursion,
            max_output_bytes: self.render.max_output_bytes,
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // `figment::Jail` closures return figment's own (large) error.
mod tests {
    use std::net::SocketAddr;

    use figment::Jail;

    use super::*;

    #[test]
    fn run_settings_out_of_range_are_refused_and_the_bounds_are_accepted() {
        type Change = fn(&mut RunSettings);
        let cases: [(Change, bool); 8] = [
            (|_| {}, true),
            (|runs| runs.queue_capacity = 0, false),
            (|runs| runs.batch_size = 0, false),
            (|runs| runs.batch_size = 5_001, false),
            (|runs| runs.batch_wait_ms = 10_001, false),
            (|runs| runs.usage_flush_ms = 0, false),
            (|runs| runs.usage_flush_ms = 60_001, false),
            (|runs| runs.usage_flush_ms = 60_000, true),
        ];
        for (n, (change, valid)) in cases.into_iter().enumerate() {
            let mut settings = Settings::default();
            change(&mut settings.runs);
            let result = settings.validate();
            assert_eq!(result.is_ok(), valid, "case {n}: {result:?}");
            if let Err(error) = result {
                assert!(error.0.contains("runs."), "case {n}: {}", error.0);
            }
        }
    }

    #[test]
    fn layers_apply_in_order_defaults_file_environment_flags() {
        Jail::expect_with(|jail| {
            jail.create_file("pv.toml", "listen = \"127.0.0.1:1111\"\n[http]\nbody_limit_bytes = 10\nrequest_timeout_secs = 5\n")?;
            let from_file = Settings::load(Some(Path::new("pv.toml")), &Overrides::default())
                .map_err(|e| e.0)?;
            assert_eq!(from_file.listen, SocketAddr::from(([127, 0, 0, 1], 1111)));
            assert_eq!(from_file.http.body_limit_bytes, 10);

            jail.set_env("PROMPTVAULT_LISTEN", "127.0.0.1:2222");
            jail.set_env("PROMPTVAULT_HTTP__BODY_LIMIT_BYTES", "50");
            jail.set_env("PROMPTVAULT_RENDER__FUEL", "1234");
            jail.set_env("PROMPTVAULT_TEST_POSTGRES_URL", "not a setting, ignored");
            let from_env = Settings::load(Some(Path::new("pv.toml")), &Overrides::default())
                .map_err(|e| e.0)?;
            assert_eq!(from_env.listen, SocketAddr::from(([127, 0, 0, 1], 2222)));
            assert_eq!(
                from_env.http.body_limit_bytes, 50,
                "nested variables reach nested settings"
            );
            assert_eq!(
                from_env.http.request_timeout_secs, 5,
                "the file's other nested values stay"
            );
            assert_eq!(from_env.render.fuel, 1234);

            let overrides = Overrides {
                listen: Some(SocketAddr::from(([127, 0, 0, 1], 3333))),
                ..Overrides::default()
            };
            let from_flags =
                Settings::load(Some(Path::new("pv.toml")), &overrides).map_err(|e| e.0)?;
            assert_eq!(from_flags.listen, SocketAddr::from(([127, 0, 0, 1], 3333)));
            Ok(())
        });
    }

    #[test]
    fn approval_workflows_come_from_the_file_and_the_environment_and_are_validated() {
        Jail::expect_with(|jail| {
            let defaults = Settings::load(None, &Overrides::default()).map_err(|e| e.0)?;
            assert_eq!(defaults.approvals, ApprovalPolicy::default());
            jail.create_file(
                "pv.toml",
                "[approvals.internal]\nsteps = [{ roles = [\"admin\"], count = 2 }]\n",
            )?;
            let from_file = Settings::load(Some(Path::new("pv.toml")), &Overrides::default())
                .map_err(|e| e.0)?;
            assert_eq!(from_file.approvals.internal.required(), 2);
            assert_eq!(
                from_file.approvals.restricted,
                ApprovalPolicy::default().restricted,
                "the other classifications keep their defaults"
            );
            jail.set_env(
                "PROMPTVAULT_APPROVALS__PUBLIC",
                "{steps=[{roles=[\"user\"],count=1},{roles=[\"admin\"],count=1}]}",
            );
            let from_env = Settings::load(Some(Path::new("pv.toml")), &Overrides::default())
                .map_err(|e| e.0)?;
            assert_eq!(from_env.approvals.public.steps.len(), 2);
            jail.set_env(
                "PROMPTVAULT_APPROVALS__PUBLIC",
                "{steps=[{roles=[\"agent\"],count=1}]}",
            );
            let error =
                Settings::load(None, &Overrides::default()).expect_err("agents never approve");
            assert!(error.0.contains("approvals.public"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn invalid_nested_values_are_refused_naming_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("PROMPTVAULT_RENDER__FUEL", "0");
            let error = Settings::load(None, &Overrides::default()).expect_err("fuel 0 is invalid");
            assert!(error.0.contains("render.fuel"), "{error}");
            jail.set_env("PROMPTVAULT_RENDER__FUEL", "lots");
            let error = Settings::load(None, &Overrides::default()).expect_err("not a number");
            assert!(error.0.contains("PROMPTVAULT_RENDER__FUEL"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn protected_labels_and_deploy_roles_come_from_the_file_or_the_environment() {
        Jail::expect_with(|jail| {
            let defaults = Settings::load(None, &Overrides::default()).map_err(|e| e.0)?;
            assert_eq!(defaults.labels, LabelSettings::default());
            jail.create_file(
                "pv.toml",
                "[labels]\nprotected = [\"production\", \"prod-eu\"]\ndeploy_roles = [\"admin\", \"user\"]\n",
            )?;
            let from_file = Settings::load(Some(Path::new("pv.toml")), &Overrides::default())
                .map_err(|e| e.0)?;
            assert_eq!(from_file.labels.protected, ["production", "prod-eu"]);
            assert_eq!(from_file.labels.deploy_roles, [Role::Admin, Role::User]);
            jail.set_env("PROMPTVAULT_LABELS__PROTECTED", "live, canary");
            let from_env = Settings::load(Some(Path::new("pv.toml")), &Overrides::default())
                .map_err(|e| e.0)?;
            assert_eq!(from_env.labels.protected, ["live", "canary"]);
            jail.set_env("PROMPTVAULT_LABELS__PROTECTED", "Not A Label");
            let error = Settings::load(None, &Overrides::default()).expect_err("invalid label");
            assert!(error.0.contains("labels.protected"), "{error}");
            jail.set_env("PROMPTVAULT_LABELS__PROTECTED", "latest");
            assert!(Settings::load(None, &Overrides::default()).is_err());
            jail.set_env("PROMPTVAULT_LABELS__PROTECTED", "production");
            jail.set_env("PROMPTVAULT_LABELS__DEPLOY_ROLES", "root");
            let error = Settings::load(None, &Overrides::default()).expect_err("invalid role");
            assert!(error.0.contains("deploy_roles"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_shared_cache_settings_come_from_the_environment_and_are_checked() {
        Jail::expect_with(|jail| {
            let defaults = Settings::load(None, &Overrides::default()).map_err(|e| e.0)?;
            assert_eq!(defaults.redis_url, None);
            assert_eq!(defaults.serving.redis_prefix, "promptvault");
            assert_eq!(defaults.serving.redis_ttl_secs, 300);
            assert_eq!(defaults.serving.redis_timeout_ms, 100);
            jail.set_env("PROMPTVAULT_REDIS_URL", "redis://cache:6379");
            jail.set_env("PROMPTVAULT_SERVING__REDIS_PREFIX", "pv-eu");
            jail.set_env("PROMPTVAULT_SERVING__REDIS_TTL_SECS", "60");
            jail.set_env("PROMPTVAULT_SERVING__CACHE_CAPACITY", "10");
            let from_env = Settings::load(None, &Overrides::default()).map_err(|e| e.0)?;
            assert_eq!(from_env.redis_url.as_deref(), Some("redis://cache:6379"));
            assert_eq!(from_env.serving.redis_prefix, "pv-eu");
            assert_eq!(from_env.serving.redis_ttl_secs, 60);
            assert_eq!(from_env.serving.cache_capacity, 10);
            jail.set_env("PROMPTVAULT_SERVING__REDIS_PREFIX", "two words");
            let error = Settings::load(None, &Overrides::default()).expect_err("a space");
            assert!(error.0.contains("serving.redis_prefix"), "{error}");
            jail.set_env("PROMPTVAULT_SERVING__REDIS_PREFIX", "pv");
            jail.set_env("PROMPTVAULT_SERVING__REDIS_TTL_SECS", "0");
            let error = Settings::load(None, &Overrides::default()).expect_err("no TTL");
            assert!(error.0.contains("redis_ttl_secs"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn every_top_level_setting_can_be_given_in_the_environment() {
        let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
        let keys = defaults.as_object().expect("settings are an object").keys();
        for key in keys {
            assert!(
                ENV_KEYS.contains(&key.as_str()),
                "PROMPTVAULT_{} would be ignored",
                key.to_uppercase()
            );
        }
        Jail::expect_with(|jail| {
            jail.set_env("PROMPTVAULT_SERVING__CACHE_CAPACITY", "0");
            let from_env = Settings::load(None, &Overrides::default()).map_err(|e| e.0)?;
            assert_eq!(from_env.serving.cache_capacity, 0);
            Ok(())
        });
    }

    #[test]
    fn metrics_access_comes_from_the_environment_and_a_short_token_is_refused() {
        Jail::expect_with(|jail| {
            let defaults = Settings::load(None, &Overrides::default()).map_err(|e| e.0)?;
            assert_eq!(defaults.metrics, MetricsSettings::default());
            assert!(!defaults.metrics.public, "admins only by default");
            jail.set_env("PROMPTVAULT_METRICS__PUBLIC", "true");
            jail.set_env("PROMPTVAULT_METRICS__TOKEN", "m".repeat(32));
            let from_env = Settings::load(None, &Overrides::default()).map_err(|e| e.0)?;
            assert!(from_env.metrics.public);
            assert_eq!(
                from_env.metrics.token.map(|token| token.0),
                Some("m".repeat(32))
            );
            jail.set_env("PROMPTVAULT_METRICS__TOKEN", "short");
            let error = Settings::load(None, &Overrides::default()).expect_err("short token");
            assert!(error.0.contains("PROMPTVAULT_METRICS__TOKEN"), "{error}");
            assert!(
                !error.0.contains("short"),
                "the secret is not repeated: {error}"
            );
            Ok(())
        });
    }
}

/// A configuration error, naming the setting (and its environment variable) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(pub String);

fn describe(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|error| {
            let path = error.path.join(".");
            if path.is_empty() {
                error.kind.to_string()
            } else {
                format!(
                    "{path} (PROMPTVAULT_{}): {}",
                    path.to_uppercase().replace('.', "__"),
                    error.kind
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}
