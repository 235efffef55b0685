//! The command line: global options, every subcommand and its arguments (clap derive).
//!
//! Settings-backed options (`--data-dir`, `--database-url`, `--listen`, `--redis-url`,
//! `--deployment-model`, `--log-format`) deliberately have no clap `env` attribute: their
//! `PROMPTVAULT_*` twins are read by `Settings::load`, which layers defaults → TOML file →
//! environment → these flags. `--config` and `--server` are not settings, so clap reads their
//! environment variables.

use std::{net::SocketAddr, path::PathBuf};

use clap::{
    Args, Parser, Subcommand, ValueEnum,
    builder::{PossibleValuesParser, TypedValueParser},
};
use promptvault_api::{Bump, Classification, Kind, PromptStatus, Scope};
use promptvault_server::settings::{DeploymentModel, LogFormat};

/// promptvault: versioned, labelled, rendered prompt templates.
///
/// Works on the local database by default (`--data-dir`, `--database-url`), or on a running
/// server with `--server URL`; the same command gives the same output either way.
///
/// Exit codes: 0 success, 1 internal error, 2 usage, 3 not found, 4 invalid input or conflict,
/// 5 cannot reach the server or the database.
#[derive(Debug, Parser)]
#[command(name = "prompt", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Directory of the embedded SQLite database [env: PROMPTVAULT_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL, `sqlite:…` or `postgres://…` [env: PROMPTVAULT_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// TOML configuration file. Give it before the command (`prompt --config FILE list`) or as
    /// `prompt serve --config FILE`: in `create` and `version`, `--config` is the model config
    #[arg(long, value_name = "FILE", env = "PROMPTVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Work on this promptvault server instead of the local database
    #[arg(long, global = true, value_name = "URL", env = "PROMPTVAULT_SERVER")]
    pub server: Option<String>,
    /// The API token (or JWT) to send to `--server`
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "PROMPTVAULT_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print results as JSON (the API's types) instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server until SIGINT/SIGTERM
    Serve(ServeArgs),
    /// List prompts
    List(ListArgs),
    /// Show a prompt with its labels and versions, or one version's content
    Show(ShowArgs),
    /// Create a prompt with its first version
    Create(CreateArgs),
    /// Add a version to a prompt
    Version(VersionArgs),
    /// Render a prompt version with parameters
    Render(RenderArgs),
    /// Point a label at a version, remove it, or show its history
    Label(LabelArgs),
    /// Link a prompt to an agent capability, or list links
    Link(LinkArgs),
    /// Show what changed between two versions
    Diff(DiffArgs),
    /// Show a version's compliance findings; exits 4 when one is an error
    Check(CheckArgs),
    /// Run a prompt's template tests (exits 4 when one fails), or set them from a file
    Test(TestArgs),
    /// Export prompts with all versions, labels and links as a bundle
    Export(ExportArgs),
    /// Import bundles from a file or every .json/.yaml/.yml file of a directory
    Import(ImportArgs),
    /// Manage users (admins)
    User(UserArgs),
    /// Manage API tokens (admins)
    Token(TokenArgs),
    /// List audit log entries (`prompt audit --scope agent --since 7d`), or verify the chain
    Audit(AuditArgs),
    /// Encryption keys: `prompt keys rotate` re-encrypts under the current key
    Keys(KeysArgs),
    /// Deprecate an approved version: still served (with a notice) until its sunset, then gone
    Deprecate(DeprecateArgs),
    /// Archive a deprecated version: no longer served; its history stays
    Archive(ArchiveArgs),
    /// Approval workflows: the versions waiting for your review, approve, reject
    Review(ReviewArgs),
    /// Usage per version: times used, last used, success rate, mean score
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The prompt's name (or id)
    pub name: String,
}

#[derive(Debug, Args)]
pub struct DeprecateArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// The version number
    pub version: i64,
    /// The prompt (name or id) that replaces it
    #[arg(long)]
    pub replacement: Option<String>,
    /// How long it is still served: 30d, 2w, 12h (default: lifecycle.deprecation_period_days)
    #[arg(long, conflicts_with = "sunset")]
    pub period: Option<String>,
    /// Served until this RFC 3339 time
    #[arg(long)]
    pub sunset: Option<String>,
    /// Why (recorded in the audit log)
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// The version number
    pub version: i64,
    /// Why (recorded in the audit log)
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every sealed version under the current key (the first of
    /// PROMPTVAULT_ENCRYPTION_KEY); run it after adding a new key in front, then drop the old one
    Rotate,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user
    Add {
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        /// admin, user or agent (repeatable)
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// An extra permission, e.g. `link` (repeatable)
        #[arg(long = "permission")]
        permissions: Vec<String>,
    },
    /// List users
    List,
    /// Delete a user and every token of the user
    Delete { id: uuid::Uuid },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once
    Create {
        #[arg(long)]
        name: String,
        /// admin, user or agent
        #[arg(long)]
        role: String,
        /// The user the token acts for
        #[arg(long)]
        user: Option<uuid::Uuid>,
        /// The agent the token is for
        #[arg(long)]
        agent: Option<String>,
        /// Lifetime in seconds
        #[arg(long)]
        expires_in: Option<i64>,
        /// Only prompts of this scope (repeatable)
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Only prompts whose name starts with this (repeatable)
        #[arg(long = "prompt-prefix")]
        prompt_prefixes: Vec<String>,
    },
    /// List tokens (never their secrets)
    List,
    /// Revoke a token
    Revoke { id: uuid::Uuid },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// User id, agent id or token:<id>
    #[arg(long)]
    pub actor: Option<String>,
    /// admin, user or agent
    #[arg(long)]
    pub actor_role: Option<String>,
    /// Prompt name or id
    #[arg(long)]
    pub prompt: Option<String>,
    /// Exact action, or a prefix ending in `.` (e.g. `label.`)
    #[arg(long)]
    pub action: Option<String>,
    /// ok, denied or failed
    #[arg(long)]
    pub outcome: Option<String>,
    /// The scope of the prompts concerned: global, agent or user
    #[arg(long)]
    pub scope: Option<String>,
    /// An RFC 3339 time or an age: 30m, 12h, 7d
    #[arg(long)]
    pub since: Option<String>,
    /// An RFC 3339 time
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many entries (1-1000, default 100)
    #[arg(long)]
    pub limit: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first broken entry
    Verify,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (same as `prompt --config FILE serve`) [env: PROMPTVAULT_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port [env: PROMPTVAULT_LISTEN]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Redis URL for a shared cache [env: PROMPTVAULT_REDIS_URL]
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Deployment model [env: PROMPTVAULT_DEPLOYMENT_MODEL]
    #[arg(long, value_enum)]
    pub deployment_model: Option<DeploymentModelArg>,
    /// Log format on stderr [env: PROMPTVAULT_LOG_FORMAT]
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeploymentModelArg {
    WebApplication,
    ElectronRemote,
    ElectronLocal,
}

impl From<DeploymentModelArg> for DeploymentModel {
    fn from(model: DeploymentModelArg) -> Self {
        match model {
            DeploymentModelArg::WebApplication => DeploymentModel::WebApplication,
            DeploymentModelArg::ElectronRemote => DeploymentModel::ElectronRemote,
            DeploymentModelArg::ElectronLocal => DeploymentModel::ElectronLocal,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = scope_parser())]
    pub scope: Option<Scope>,
    #[arg(long)]
    pub tag: Option<String>,
    /// Prompt type key
    #[arg(long = "type", value_name = "TYPE")]
    pub prompt_type: Option<String>,
    /// Only prompts carrying this label
    #[arg(long)]
    pub label: Option<String>,
    /// Case-insensitive text in name, title or description
    #[arg(long)]
    pub q: Option<String>,
    #[arg(long, value_name = "PREFIX")]
    pub name_prefix: Option<String>,
    /// Only prompts with this status: active, deprecated or archived (archived prompts are
    /// listed only when asked for)
    #[arg(long, value_parser = status_parser())]
    pub status: Option<PromptStatus>,
    /// 1-based page
    #[arg(long)]
    pub page: Option<i64>,
    /// Page size, 1–200 (default 50)
    #[arg(long)]
    pub per_page: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// Show this version's content
    #[arg(long, conflicts_with = "label")]
    pub version: Option<i64>,
    /// Show the content of the version this label points at
    #[arg(long)]
    pub label: Option<String>,
}

/// Where a version's content comes from.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ContentSource {
    /// The template text (for a chat prompt: a JSON list of messages)
    #[arg(long, value_name = "TEXT")]
    pub content: Option<String>,
    /// Read the template from a file (`-` reads stdin); chat prompts: a JSON list of
    /// `{role, content}` messages
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A unique path such as `support/summarize`
    pub name: String,
    #[command(flatten)]
    pub source: ContentSource,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// `text` (default) or `chat`
    #[arg(long, value_parser = kind_parser())]
    pub kind: Option<Kind>,
    /// Default `global`
    #[arg(long, value_parser = scope_parser())]
    pub scope: Option<Scope>,
    /// The agent an agent-scoped prompt belongs to
    #[arg(long, value_name = "AGENT")]
    pub agent_id: Option<String>,
    /// A tag (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Default `internal`
    #[arg(long, value_parser = classification_parser())]
    pub classification: Option<Classification>,
    /// Prompt type key
    #[arg(long = "type", value_name = "TYPE")]
    pub prompt_type: Option<String>,
    #[command(flatten)]
    pub version: VersionFields,
}

/// The fields every new version takes besides its content.
#[derive(Debug, Args)]
pub struct VersionFields {
    /// Model settings: a JSON object, or @FILE (`prompt version`: default the latest version's)
    #[arg(long, value_name = "JSON|@FILE")]
    pub config: Option<String>,
    /// JSON Schema of the render parameters: JSON, or @FILE (`prompt version`: default the
    /// latest version's; `null` removes it)
    #[arg(long, value_name = "JSON|@FILE")]
    pub schema: Option<String>,
    /// What changed
    #[arg(long)]
    pub notes: Option<String>,
    /// A label to point at the new version (repeatable)
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// The prompt's name (or id)
    pub name: String,
    #[command(flatten)]
    pub source: ContentSource,
    #[command(flatten)]
    pub version: VersionFields,
    /// Ask for at least this semver bump
    #[arg(long, value_parser = bump_parser())]
    pub bump: Option<Bump>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// Render this version (default: `production`, then `latest`)
    #[arg(long, conflicts_with = "label")]
    pub version: Option<i64>,
    /// Render the version this label points at
    #[arg(long)]
    pub label: Option<String>,
    /// A parameter `key=value` (repeatable); the value is JSON if it parses, else a string
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A JSON object of parameters (`--param` entries override its keys)
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// Render undefined variables as empty instead of failing
    #[arg(long)]
    pub lenient: bool,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "prompt label <NAME> <LABEL> <VERSION>\n       prompt label <NAME> <LABEL> --split 7=90,8=10\n       prompt label <NAME> <LABEL> --promote [--to <VERSION>]\n       prompt label <NAME> <LABEL> --rollback\n       prompt label <NAME> <LABEL> --delete\n       prompt label <NAME> <LABEL> --history"
)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["version", "split", "promote", "rollback", "delete", "history"]))]
pub struct LabelArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// The label, e.g. `production`
    pub label: String,
    /// The version number to point the label at
    pub version: Option<i64>,
    /// Remove the label
    #[arg(long)]
    pub delete: bool,
    /// Show every move of the label
    #[arg(long)]
    pub history: bool,
    /// Split the label's traffic by weight, `VERSION=WEIGHT,…` (weights sum to 100; the first
    /// is the primary version), e.g. `7=90,8=10`
    #[arg(long, value_name = "SPLIT")]
    pub split: Option<String>,
    /// End the label's split (on the non-primary version of a two-version split, or --to)
    #[arg(long)]
    pub promote: bool,
    /// With --promote: the version to keep
    #[arg(long, value_name = "VERSION", requires = "promote")]
    pub to: Option<i64>,
    /// Move the label back to the previous approved version of its history
    #[arg(long)]
    pub rollback: bool,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "prompt link <NAME> --capability <CAPABILITY> [--agent <AGENT>] [--priority <N>]\n       prompt link --list [--agent <AGENT>] [--capability <CAPABILITY>]"
)]
pub struct LinkArgs {
    /// The prompt to link (not with --list)
    #[arg(required_unless_present = "list", conflicts_with = "list")]
    pub name: Option<String>,
    /// The capability, e.g. `summarize` (a filter with --list)
    #[arg(long, required_unless_present = "list")]
    pub capability: Option<String>,
    /// The agent (absent: every agent); a filter with --list
    #[arg(long)]
    pub agent: Option<String>,
    /// Higher wins (default 0)
    #[arg(long, conflicts_with = "list")]
    pub priority: Option<i32>,
    /// List links (with --agent: in that agent's resolution order)
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// The version to check (default: the newest)
    #[arg(long)]
    pub version: Option<i64>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// The version to test (default: latest)
    #[arg(long, conflicts_with_all = ["label", "set"])]
    pub version: Option<i64>,
    /// The label whose version to test
    #[arg(long, conflicts_with = "set")]
    pub label: Option<String>,
    /// Replace the prompt's tests with the cases of a YAML or JSON file (`-` for stdin): a
    /// list of cases, or `{cases: [...]}`
    #[arg(long, value_name = "FILE")]
    pub set: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The prompt's name (or id)
    pub name: String,
    /// Default: the version before --to
    #[arg(long)]
    pub from: Option<i64>,
    /// Default: the newest version
    #[arg(long)]
    pub to: Option<i64>,
    /// Show a word diff instead of a unified line diff
    #[arg(long)]
    pub word: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BundleFormat {
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Export every prompt (required: exporting a selection is not supported yet)
    #[arg(long, required = true)]
    pub all: bool,
    #[arg(long, value_enum, default_value_t = BundleFormat::Json)]
    pub format: BundleFormat,
    /// Write to this file instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A bundle file (`-` reads stdin), or a directory whose .json/.yaml/.yml files are imported
    pub path: PathBuf,
    /// Bundle format (default: by extension; .yaml/.yml is YAML, anything else JSON)
    #[arg(long, value_enum)]
    pub format: Option<BundleFormat>,
}

/// A parser for one of the domain's closed vocabularies, listing the values in `--help`.
fn vocabulary<T>(values: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    PossibleValuesParser::new(values).try_map(|value| value.parse::<T>())
}

fn status_parser() -> impl TypedValueParser<Value = PromptStatus> {
    vocabulary(&["active", "deprecated", "archived"])
}

fn scope_parser() -> impl TypedValueParser<Value = Scope> {
    vocabulary(&["global", "agent", "user"])
}

fn kind_parser() -> impl TypedValueParser<Value = Kind> {
    vocabulary(&["text", "chat"])
}

fn classification_parser() -> impl TypedValueParser<Value = Classification> {
    vocabulary(&["public", "internal", "confidential", "restricted"])
}

fn bump_parser() -> impl TypedValueParser<Value = Bump> {
    vocabulary(&["patch", "minor", "major"])
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_settings_file_and_the_model_config_are_different_options() {
        let cli = Cli::try_parse_from([
            "prompt",
            "--config",
            "pv.toml",
            "create",
            "a",
            "--content",
            "x",
            "--config",
            "{}",
        ])
        .expect("parses");
        assert_eq!(cli.global.config, Some(PathBuf::from("pv.toml")));
        let Command::Create(create) = cli.command else {
            panic!("not create");
        };
        assert_eq!(create.version.config.as_deref(), Some("{}"));
        let cli = Cli::try_parse_from(["prompt", "serve", "--config", "pv.toml"]).expect("parses");
        let Command::Serve(serve) = cli.command else {
            panic!("not serve");
        };
        assert_eq!(serve.config, Some(PathBuf::from("pv.toml")));
    }

    #[test]
    fn vocabularies_parse_into_domain_values() {
        let cli = Cli::try_parse_from([
            "prompt",
            "create",
            "a/b",
            "--content",
            "x",
            "--kind",
            "chat",
            "--scope",
            "agent",
        ])
        .expect("parses");
        let Command::Create(create) = cli.command else {
            panic!("not create");
        };
        assert_eq!(create.kind, Some(Kind::Chat));
        assert_eq!(create.scope, Some(Scope::Agent));
        assert!(Cli::try_parse_from(["prompt", "list", "--scope", "nope"]).is_err());
    }
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    #[command(subcommand)]
    pub command: ReviewCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// The versions in review you could approve now
    List,
    /// Submit a draft for review (runs the compliance gate: an error finding blocks it)
    Submit {
        /// The prompt's name (or id)
        name: String,
        /// The version number
        version: i64,
        /// A note for the reviewers (recorded in the audit log)
        #[arg(long)]
        comment: Option<String>,
    },
    /// Take your own version back from review to draft
    Withdraw {
        /// The prompt's name (or id)
        name: String,
        /// The version number
        version: i64,
        /// Why (recorded in the audit log)
        #[arg(long)]
        comment: Option<String>,
    },
    /// Approve a version in review (counts toward the first incomplete step of its workflow)
    Approve {
        /// The prompt's name (or id)
        name: String,
        /// The version number
        version: i64,
        /// Why (kept with the approval)
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a version in review: back to draft with your comment
    Reject {
        /// The prompt's name (or id)
        name: String,
        /// The version number
        version: i64,
        /// What must change (required)
        #[arg(long)]
        comment: String,
    },
}
