//! The shared serve cache (Redis, `redis_url`): two servers on one PostgreSQL see each other's
//! writes through pub/sub, an answer one server loaded is served by the other from Redis,
//! confidential content never reaches Redis, and a server whose Redis dies (a `redis-server`
//! this test starts and kills) keeps answering from the database and uses its caches again once
//! Redis is back.
//!
//! Redis: `PROMPTVAULT_TEST_REDIS_URL`, default `redis://127.0.0.1:6379` (CI starts it); each
//! test uses a prefix of its own and deletes its keys at the end.

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use promptvault_server::{redis_cache::RedisCache, serve_cache::CacheEvent, settings::Settings};
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{TestApp, encode, expect_json},
    resolve::link,
};

fn redis_url() -> String {
    std::env::var("PROMPTVAULT_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

fn unique_prefix() -> String {
    format!("pvtest-{}", uuid::Uuid::now_v7().simple())
}

fn with_redis(url: String, prefix: &str) -> impl FnOnce(&mut Settings) {
    let prefix = prefix.to_string();
    move |settings| {
        settings.redis_url = Some(url);
        settings.serving.redis_prefix = prefix;
    }
}

fn shared(app: &TestApp) -> &Arc<RedisCache> {
    app.state
        .vault
        .shared_cache()
        .expect("a server with redis_url has a shared cache")
}

/// Polls `check` every 5 ms until it holds, failing after `within`.
async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < within,
            "{what}: still not the case after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the server's subscription is up (its local cache trusted).
async fn connected(app: &TestApp) {
    eventually(
        "the server subscribes to Redis",
        Duration::from_secs(10),
        async || shared(app).is_connected() && app.state.vault.serve_cache().is_trusted(),
    )
    .await;
}

/// The version number `GET /api/resolve?name=…&label=…` serves.
async fn served_version(app: &TestApp, name: &str, label: &str) -> i64 {
    let response = app
        .get(&format!("/api/resolve?name={}&label={label}", encode(name)))
        .await;
    let body = expect_json(response, StatusCode::OK).await;
    body["version"]["version_number"]
        .as_i64()
        .expect("a version number")
}

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the test Redis")
}

async fn keys(url: &str, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut redis_connection(url).await)
        .await
        .expect("KEYS")
}

/// Deletes every key of `prefix`.
async fn delete_prefix(url: &str, prefix: &str) {
    let found = keys(url, &format!("{prefix}:*")).await;
    if !found.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(found)
            .query_async(&mut redis_connection(url).await)
            .await
            .expect("DEL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_moved_through_one_server_is_served_by_the_other_within_100_ms() {
    let url = redis_url();
    let prefix = unique_prefix();
    let Some(a) = TestApp::postgres_configured(with_redis(url.clone(), &prefix)).await else {
        return;
    };
    let b = a.sibling(with_redis(url.clone(), &prefix)).await;
    connected(&a).await;
    connected(&b).await;

    let name = "shared/greeting";
    let label_path = format!("/api/prompts/{}/labels/production", encode(name));
    a.create_prompt(name, "Hello, version one").await;
    a.approve(name, 1).await;
    expect_json(
        a.put(&label_path, &json!({"version": 1})).await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        a.add_version(name, &json!({"content": "Hello, version two"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    a.approve(name, 2).await;

    // B loads the answer from the database and writes it to Redis; A then answers from Redis.
    assert_eq!(served_version(&b, name, "production").await, 1);
    eventually(
        "B's entry reaches Redis",
        Duration::from_secs(5),
        async || !keys(&url, &format!("{prefix}:serve:*")).await.is_empty(),
    )
    .await;
    eventually("A answers from Redis", Duration::from_secs(5), async || {
        // Forget A's own copy, so that only Redis or the database can answer.
        a.state.vault.serve_cache().apply(&CacheEvent::All);
        served_version(&a, name, "production").await == 1 && shared(&a).stats().hits >= 1
    })
    .await;
    // B's next answer comes from B's own cache: Redis is not even asked.
    let asked = shared(&b).stats();
    assert_eq!(served_version(&b, name, "production").await, 1);
    assert_eq!(shared(&b).stats(), asked, "a local hit does not ask Redis");

    let epoch = b.state.vault.serve_cache().epoch();
    let response = a.put(&label_path, &json!({"version": 2})).await;
    let moved = Instant::now();
    expect_json(response, StatusCode::OK).await;
    let mut polls = 0;
    loop {
        let served = served_version(&b, name, "production").await;
        polls += 1;
        if served == 2 {
            break;
        }
        println!(
            "poll {polls} at {:?}: still {served}; B's epoch moved: {}",
            moved.elapsed(),
            b.state.vault.serve_cache().epoch() != epoch
        );
        assert!(
            moved.elapsed() <= Duration::from_millis(100),
            "B still serves version {served} {:?} after A answered the move",
            moved.elapsed()
        );
    }
    let propagation = moved.elapsed();
    println!("label move through A served by B after {propagation:?}");
    assert!(propagation <= Duration::from_millis(100), "{propagation:?}");
    // And B has not re-cached the old answer from Redis meanwhile.
    assert_eq!(served_version(&b, name, "production").await, 2);
    delete_prefix(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confidential_and_restricted_answers_are_never_written_to_redis() {
    let url = redis_url();
    let prefix = unique_prefix();
    let app = TestApp::sqlite_configured(with_redis(url.clone(), &prefix)).await;
    connected(&app).await;
    for (name, content, classification) in [
        ("secret/notes", "the confidential text", "confidential"),
        ("locked/notes", "the restricted text", "restricted"),
        ("open/notes", "the public text", "public"),
    ] {
        let response = app
            .post(
                "/api/prompts",
                &json!({"name": name, "content": content, "classification": classification}),
            )
            .await;
        expect_json(response, StatusCode::CREATED).await;
    }
    // A capability whose candidates mix classifications is all-or-nothing: kept local.
    link(&app, "secret/notes", "mixed", None, 9).await;
    link(&app, "open/notes", "mixed", None, 1).await;

    let queries = [
        "name=secret%2Fnotes&version=1",
        "name=locked%2Fnotes&version=1",
        "capability=mixed&version=1",
        // Last: once its entry is in Redis, the ones before had their chance to be written.
        "name=open%2Fnotes&version=1",
    ];
    eventually(
        "the public answer reaches Redis",
        Duration::from_secs(5),
        async || {
            for query in queries {
                app.state.vault.serve_cache().apply(&CacheEvent::All);
                let response = app.get(&format!("/api/resolve?{query}")).await;
                expect_json(response, StatusCode::OK).await;
            }
            !keys(&url, &format!("{prefix}:serve:*")).await.is_empty()
        },
    )
    .await;

    let entries = keys(&url, &format!("{prefix}:serve:*")).await;
    assert_eq!(entries.len(), 1, "only the public answer: {entries:?}");
    assert!(entries[0].contains("open/notes"), "{entries:?}");
    let mut connection = redis_connection(&url).await;
    for key in keys(&url, &format!("{prefix}:*")).await {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .expect("TYPE");
        if kind != "string" {
            continue;
        }
        let value: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .expect("GET");
        let value = String::from_utf8_lossy(&value);
        for secret in ["the confidential text", "the restricted text"] {
            assert!(!value.contains(secret), "{key} holds {secret:?}");
        }
    }
    delete_prefix(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_the_next_resolve_still_sees_every_kind_of_write() {
    let url = redis_url();
    let prefix = unique_prefix();
    let app = TestApp::sqlite_configured(with_redis(url.clone(), &prefix)).await;
    connected(&app).await;
    crate::resolve::the_next_resolve_sees_every_kind_of_write(app).await;
    delete_prefix(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_redis_is_unreachable_serves_from_the_database() {
    let port = free_port();
    let app = TestApp::sqlite_configured(with_redis(
        format!("redis://127.0.0.1:{port}"),
        &unique_prefix(),
    ))
    .await;
    app.create_prompt("alone/p", "v1").await;
    let path = format!("/api/prompts/{}/labels/staging", encode("alone/p"));
    expect_json(app.put(&path, &json!({"version": 1})).await, StatusCode::OK).await;
    assert_eq!(served_version(&app, "alone/p", "staging").await, 1);
    expect_json(
        app.add_version("alone/p", &json!({"content": "v2"})).await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(app.put(&path, &json!({"version": 2})).await, StatusCode::OK).await;
    assert_eq!(served_version(&app, "alone/p", "staging").await, 2);
    assert!(!shared(&app).is_connected());
    assert!(
        !app.state.vault.serve_cache().is_trusted(),
        "without the invalidations of other servers, the local cache serves nothing"
    );
}

/// A `redis-server` of the test's own, killed when dropped.
struct RedisServer {
    child: Child,
}

impl RedisServer {
    async fn start(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (package redis-server) must be installed");
        let server = RedisServer { child };
        eventually(
            "redis-server accepts connections",
            Duration::from_secs(10),
            async || {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            },
        )
        .await;
        server
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_mid_load_fails_no_request_and_the_caches_come_back_with_it() {
    let port = free_port();
    let mut redis = RedisServer::start(port).await;
    let app = TestApp::sqlite_configured(with_redis(
        format!("redis://127.0.0.1:{port}"),
        &unique_prefix(),
    ))
    .await;
    connected(&app).await;
    let name = "load/p";
    let path = format!("/api/prompts/{}/labels/staging", encode(name));
    app.create_prompt(name, "v1").await;
    expect_json(app.put(&path, &json!({"version": 1})).await, StatusCode::OK).await;

    // 8 clients resolving in a loop until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let url = app.url(&format!("/api/resolve?name={}&label=staging", encode(name)));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (app.client.clone(), url.clone());
            let (stop, answered, failures) = (stop.clone(), answered.clone(), failures.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match client.get(&url).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(response) => {
                            let status = response.status();
                            let body = response.text().await.unwrap_or_default();
                            failures
                                .lock()
                                .expect("failures")
                                .push(format!("{status}: {body}"));
                        }
                        Err(error) => failures.lock().expect("failures").push(error.to_string()),
                    }
                }
            })
        })
        .collect();
    let answered_at_least = async |count: u64| {
        let target = answered.load(Ordering::SeqCst) + count;
        eventually("the load goes on", Duration::from_secs(30), async || {
            answered.load(Ordering::SeqCst) >= target
        })
        .await;
    };
    answered_at_least(200).await;

    redis.kill();
    let killed = Instant::now();
    eventually(
        "the server notices Redis is gone",
        Duration::from_secs(10),
        async || !app.state.vault.serve_cache().is_trusted(),
    )
    .await;
    println!("Redis loss noticed after {:?}", killed.elapsed());
    answered_at_least(200).await;
    // Writes work without Redis, and this server serves them at once.
    expect_json(
        app.add_version(name, &json!({"content": "v2"})).await,
        StatusCode::CREATED,
    )
    .await;
    expect_json(app.put(&path, &json!({"version": 2})).await, StatusCode::OK).await;
    assert_eq!(served_version(&app, name, "staging").await, 2);
    answered_at_least(200).await;

    let mut redis = RedisServer::start(port).await;
    let restarted = Instant::now();
    connected(&app).await;
    println!(
        "caches trusted again {:?} after Redis restarted",
        restarted.elapsed()
    );
    answered_at_least(200).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("load task");
    }
    let failures = failures.lock().expect("failures").clone();
    println!(
        "{} resolves answered, {} failed",
        answered.load(Ordering::SeqCst),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    // The shared level is used again: an answer loaded once is then served from Redis.
    let hits = shared(&app).stats().hits;
    eventually(
        "answers come from Redis again",
        Duration::from_secs(10),
        async || {
            app.state.vault.serve_cache().apply(&CacheEvent::All);
            served_version(&app, name, "staging").await == 2 && shared(&app).stats().hits > hits
        },
    )
    .await;
    // And the local level: a second resolve is a local hit (Redis not asked).
    assert_eq!(served_version(&app, name, "staging").await, 2);
    let asked = shared(&app).stats();
    assert_eq!(served_version(&app, name, "staging").await, 2);
    assert_eq!(
        shared(&app).stats(),
        asked,
        "a local hit does not ask Redis"
    );
    redis.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reads_its_own_write_even_while_redis_has_not_taken_the_invalidation_yet() {
    let port = free_port();
    let redis = RedisServer::start(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::sqlite_configured(with_redis(url.clone(), &unique_prefix())).await;
    connected(&app).await;
    let name = "own/p";
    let path = format!("/api/prompts/{}/labels/staging", encode(name));
    app.create_prompt(name, "v1").await;
    expect_json(app.put(&path, &json!({"version": 1})).await, StatusCode::OK).await;
    expect_json(
        app.add_version(name, &json!({"content": "v2"})).await,
        StatusCode::CREATED,
    )
    .await;
    // Version 1 is in Redis (served from there once).
    let hits = shared(&app).stats().hits;
    eventually(
        "the answer is served from Redis",
        Duration::from_secs(5),
        async || {
            app.state.vault.serve_cache().apply(&CacheEvent::All);
            served_version(&app, name, "staging").await == 1 && shared(&app).stats().hits > hits
        },
    )
    .await;

    // Redis holds every write command (the invalidation's INCR and PUBLISH) for a while; reads
    // (the shared entry, its generations) still answer.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1000)
        .arg("WRITE")
        .query_async(&mut redis_connection(&url).await)
        .await
        .expect("CLIENT PAUSE");
    expect_json(app.put(&path, &json!({"version": 2})).await, StatusCode::OK).await;
    assert_eq!(
        served_version(&app, name, "staging").await,
        2,
        "the stale shared entry is not served while this server's own invalidation is in flight"
    );
    drop(redis);
}
