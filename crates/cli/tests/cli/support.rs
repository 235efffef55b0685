//! Test harness: runs the built `prompt` binary against a temporary data directory (local mode)
//! or against a `prompt serve` child process (remote mode, `--server URL`), with every
//! `PROMPTVAULT_*` variable of the test environment removed so nothing leaks in.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use promptvault_core::ident::PromptName;
use promptvault_store::types::{PromptKey, PromptPatch};
use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_prompt");

/// Variables a developer's shell may set that would change what the binary does.
const ENV_VARS: &[&str] = &[
    "PROMPTVAULT_SERVER",
    "PROMPTVAULT_CONFIG",
    "PROMPTVAULT_DATA_DIR",
    "PROMPTVAULT_DATABASE_URL",
    "PROMPTVAULT_LISTEN",
    "PROMPTVAULT_REDIS_URL",
    "PROMPTVAULT_DEPLOYMENT_MODEL",
    "PROMPTVAULT_LOG_FORMAT",
    "NO_COLOR",
    "RUST_LOG",
];

/// The first admin token of every server the tests start, and the token every client sends.
pub const TEST_TOKEN: &str = "pv_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The binary with a clean environment: servers create `TEST_TOKEN` as their first admin
/// token, and clients send it (`--server` mode; the local mode needs no credential).
pub fn prompt_command() -> Command {
    let mut command = Command::new(BIN);
    for var in ENV_VARS {
        command.env_remove(var);
    }
    command.env("PROMPTVAULT_BOOTSTRAP_TOKEN", TEST_TOKEN);
    command.env("PROMPTVAULT_TOKEN", TEST_TOKEN);
    command.stdin(Stdio::null());
    command
}

/// The outcome of one command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(args: &[&str], output: Output) -> Run {
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        eprintln!(
            "$ prompt {}\n-> {}\n{}{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }
}

/// Where commands go: a local data directory, or a running server.
pub struct Vault {
    /// Scratch space for files the test writes (and the local data directory).
    pub dir: TempDir,
    /// `--data-dir DIR` or `--server URL`, and maybe `--database-url`.
    target: Vec<String>,
    _server: Option<Server>,
    /// On a server: the token of the admin user [`Vault::as_reviewer`] acts as.
    reviewer_token: std::sync::OnceLock<String>,
}

impl Vault {
    /// A vault on a fresh local SQLite database.
    pub fn local() -> Vault {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        Vault {
            target: vec!["--data-dir".into(), data.display().to_string()],
            dir,
            _server: None,
            reviewer_token: Default::default(),
        }
    }

    /// A vault on a database URL (PostgreSQL tests).
    pub fn database(url: &str) -> Vault {
        Vault {
            dir: tempfile::tempdir().expect("temp dir"),
            target: vec!["--database-url".into(), url.to_string()],
            _server: None,
            reviewer_token: Default::default(),
        }
    }

    /// A vault behind a server someone else started (and keeps running).
    pub fn server(url: &str) -> Vault {
        Vault {
            dir: tempfile::tempdir().expect("temp dir"),
            target: vec!["--server".into(), url.to_string()],
            _server: None,
            reviewer_token: Default::default(),
        }
    }

    /// A vault behind a `prompt serve` child on a fresh data directory.
    pub fn remote() -> Vault {
        let server = Server::start(&[]);
        Vault {
            dir: tempfile::tempdir().expect("temp dir"),
            target: vec!["--server".into(), server.url.clone()],
            _server: Some(server),
            reviewer_token: Default::default(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a scratch file and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write file");
        path.display().to_string()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = prompt_command();
        command.args(&self.target).args(args);
        let output = match stdin {
            None => command.output().expect("run prompt"),
            Some(input) => {
                let mut child = command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn prompt");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(input.as_bytes())
                    .expect("write stdin");
                child.wait_with_output().expect("wait prompt")
            }
        };
        Run::from_output(args, output)
    }

    /// Runs a command that must succeed; returns its stdout.
    /// Runs with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = prompt_command();
        command.args(&self.target).args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        Run::from_output(args, command.output().expect("run prompt"))
    }

    /// [`Vault::run_with_env`] expecting success and JSON on stdout.
    pub fn json_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let run = self.run_with_env(&with_json, env);
        assert_eq!(run.code, 0, "prompt {args:?} failed: {}", run.stderr);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", run.stdout))
    }

    /// The `--data-dir` of a local vault.
    pub fn data_dir(&self) -> PathBuf {
        assert_eq!(self.target[0], "--data-dir", "a local vault");
        PathBuf::from(&self.target[1])
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "prompt {args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// Runs a command with `--json` that must succeed; returns its parsed stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"))
    }

    /// Sets a prompt's status, which no CLI command does: through the API when this vault is a
    /// server, straight in its database otherwise.
    pub fn set_status(&self, name: &str, status: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (mode, place) = (self.target[0].as_str(), self.target[1].as_str());
        if mode == "--server" {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let url = format!("{place}/api/prompts/{}", name.replace('/', "%2F"));
            let status = runtime.block_on(async {
                reqwest::Client::new()
                    .put(url)
                    .bearer_auth(TEST_TOKEN)
                    .json(&serde_json::json!({ "status": status }))
                    .send()
                    .await
                    .expect("PUT the status")
                    .status()
            });
            assert!(
                status.is_success(),
                "setting the status of {name}: {status}"
            );
            return;
        }
        let database_url = match mode {
            "--data-dir" => format!("sqlite:{place}/promptvault.db"),
            _ => place.to_string(),
        };
        runtime.block_on(async {
            let store = promptvault_store::connect(&database_url)
                .await
                .expect("open the database");
            let key = PromptKey::Name(PromptName::parse(name).expect("prompt name"));
            let prompt = store.find_prompt(&key).await.expect("find the prompt");
            let patch = PromptPatch {
                status: Some(status.parse().expect("a prompt status")),
                ..Default::default()
            };
            store
                .update_prompt(prompt.id, patch, None)
                .await
                .expect("set the status");
        });
    }

    /// Takes version `n` from draft to approved: submitted (see [`Vault::submit`]), then
    /// approved with `prompt review approve` as a reviewer (the default workflow of an internal
    /// prompt takes one approval).
    pub fn approve(&self, name: &str, n: i64) {
        self.submit(name, n);
        self.as_reviewer_ok(&["review", "approve", name, &n.to_string()]);
    }

    /// Runs a command as someone who may review what this vault's own credential wrote: locally
    /// the operator (the same as [`Vault::run`]); on a server, an admin user's token made for it
    /// (the vault's token has no user, so it may not approve versions it wrote itself).
    pub fn as_reviewer(&self, args: &[&str]) -> Run {
        if self.target[0] != "--server" {
            return self.run(args);
        }
        let token = self.reviewer_token.get_or_init(|| {
            let user = self.json(&[
                "user",
                "add",
                "--email",
                "reviewer@example.com",
                "--role",
                "admin",
            ]);
            let id = user["id"].as_str().expect("user id").to_string();
            let token = self.json(&[
                "token", "create", "--name", "reviewer", "--role", "admin", "--user", &id,
            ]);
            token["token"].as_str().expect("token secret").to_string()
        });
        self.run_with_env(args, &[("PROMPTVAULT_TOKEN", token)])
    }

    /// [`Vault::as_reviewer`] expecting failure.
    pub fn as_reviewer_fail(&self, args: &[&str]) -> Run {
        let run = self.as_reviewer(args);
        assert_ne!(run.code, 0, "prompt {args:?} succeeded: {}", run.stdout);
        run
    }

    /// [`Vault::as_reviewer`] with `--json`, expecting success; returns the parsed stdout.
    pub fn as_reviewer_json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let stdout = self.as_reviewer_ok(&with_json);
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"))
    }

    /// [`Vault::as_reviewer`] expecting success; returns stdout.
    pub fn as_reviewer_ok(&self, args: &[&str]) -> String {
        let run = self.as_reviewer(args);
        assert_eq!(run.code, 0, "prompt {args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// Submits version `n` of a prompt for review (`prompt review submit`).
    pub fn submit(&self, name: &str, n: i64) {
        self.ok(&["review", "submit", name, &n.to_string()]);
    }

    pub fn fail(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_ne!(run.code, 0, "prompt {args:?} succeeded: {}", run.stdout);
        run
    }
}

/// A `prompt serve` child process, killed when dropped.
pub struct Server {
    pub url: String,
    child: Child,
    _dir: TempDir,
}

impl Server {
    /// Starts `prompt serve --listen 127.0.0.1:0 --data-dir <temp>` plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data").display().to_string();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", &data];
        args.extend_from_slice(extra);
        Server::spawn(prompt_command().args(&args), dir)
    }

    /// Spawns a prepared `prompt serve` command and waits for its first stdout line.
    pub fn spawn(command: &mut Command, dir: TempDir) -> Server {
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path).expect("log file");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn prompt serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        let read = BufReader::new(stdout).read_line(&mut first);
        let server_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if read.map_or(true, |bytes| bytes == 0) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("prompt serve printed nothing; its log:\n{}", server_log());
        }
        let url = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}; log:\n{}", server_log()))
            .to_string();
        Server {
            url,
            child,
            _dir: dir,
        }
    }

    /// Sends SIGTERM and waits up to ten seconds for the process to exit.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// What the server wrote to stderr so far (its logs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }

    /// The port the server printed.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("free port")
}

/// Removes what differs between two otherwise identical databases: ids and timestamps.
pub fn without_ids_and_times(mut value: Value) -> Value {
    const VOLATILE: &[&str] = &[
        "id",
        "prompt_id",
        "created_at",
        "updated_at",
        "at",
        "exported_at",
        "run_id",
        "last_used",
    ];
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in VOLATILE {
                    map.remove(*key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// A JSON file's parsed contents.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read JSON file");
    serde_json::from_str(&text).expect("JSON file")
}
