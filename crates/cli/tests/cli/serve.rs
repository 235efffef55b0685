//! `prompt serve`: the first stdout line is the bound address, and `listen` is layered
//! defaults → TOML `--config` file → `PROMPTVAULT_LISTEN` → `--listen`.

use crate::support::{Server, Vault, free_port, prompt_command};

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
