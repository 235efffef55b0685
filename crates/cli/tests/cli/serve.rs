//! `prompt serve`: the first stdout line is the bound address, and `listen` is layered
//! defaults → TOML `--config` file → `PROMPTVAULT_LISTEN` → `--listen`.

use crate::support::{Server, TEST_TOKEN, Vault, free_port, prompt_command};

fn serve_with(config_port: u16, env_port: Option<u16>, flag: Option<&str>) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("promptvault.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{config_port}\"\ndata_dir = \"{}\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let mut command = prompt_command();
    command.arg("--config").arg(&config).arg("serve");
    if let Some(port) = env_port {
        command.env("PROMPTVAULT_LISTEN", format!("127.0.0.1:{port}"));
    }
    if let Some(listen) = flag {
        command.args(["--listen", listen]);
    }
    Server::spawn(&mut command, dir)
}

#[test]
fn serve_prints_the_real_port_when_asked_for_port_zero() {
    let server = Server::start(&[]);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert_ne!(server.port(), 0);
}

#[test]
fn the_config_file_sets_the_listen_address() {
    let config_port = free_port();
    let server = serve_with(config_port, None, None);
    assert_eq!(server.url, format!("http://127.0.0.1:{config_port}"));
}

#[test]
fn the_environment_overrides_the_config_file() {
    let (config_port, env_port) = (free_port(), free_port());
    let server = serve_with(config_port, Some(env_port), None);
    assert_eq!(server.url, format!("http://127.0.0.1:{env_port}"));
}

#[test]
fn the_listen_flag_overrides_the_environment_and_the_config_file() {
    let (config_port, env_port) = (free_port(), free_port());
    let server = serve_with(config_port, Some(env_port), Some("127.0.0.1:0"));
    assert_ne!(server.port(), config_port);
    assert_ne!(server.port(), env_port);
    assert_ne!(server.port(), 0);
}

#[test]
fn the_config_file_is_read_from_promptvault_config_too() {
    let vault = Vault::local();
    let missing = vault.path("nope.toml");
    let output = prompt_command()
        .env("PROMPTVAULT_CONFIG", &missing)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.trim_end().ends_with("(invalid_config)"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn serve_stops_cleanly_on_sigterm() {
    let mut server = Server::start(&[]);
    let status = server
        .terminate()
        .expect("the server exits within ten seconds");
    assert!(status.success(), "{status}");
}

#[test]
fn json_logs_are_one_object_per_line_and_each_request_s_lines_carry_its_request_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data").display().to_string();
    let mut command = prompt_command();
    command
        .env("RUST_LOG", "info,promptvault::request=debug")
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &data])
        .args(["--log-format", "json"]);
    let server = Server::spawn(&mut command, dir);
    let client = Vault::server(&server.url);
    client.run(&[
        "create",
        "logs/greeting",
        "--content",
        "Top secret greeting",
    ]);
    client.run(&["show", "logs/greeting"]);
    client.run(&["show", "logs/missing"]);

    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON object ({error}): {line}"))
        })
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["target"] == "promptvault::access")
        .collect();
    assert!(access.len() >= 3, "one access line per request:\n{log}");
    for line in &access {
        let id = line["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{line}");
        assert!(
            line["route"]
                .as_str()
                .is_some_and(|route| route.starts_with('/')),
            "{line}"
        );
        assert!(
            line["method"].is_string() && line["status"].is_u64(),
            "{line}"
        );
        assert!(line["latency_ms"].is_f64(), "{line}");
        let started = lines
            .iter()
            .filter(|other| other["request_id"] == id && other["target"] != "promptvault::access")
            .count();
        assert!(
            started >= 1,
            "the request's other lines carry {id} too:\n{log}"
        );
    }
    assert!(
        access
            .iter()
            .any(|line| line["route"] == "/api/prompts/{id}" && line["status"] == 404),
        "the route template, not the path:\n{log}"
    );
    for secret in [TEST_TOKEN, "Bearer", "Top secret greeting"] {
        assert!(!log.contains(secret), "{secret:?} was logged:\n{log}");
    }
}
