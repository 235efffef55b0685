//! The test harness: `TestApp::sqlite()` / `TestApp::postgres()` start a server on port 0 over a
//! fresh database, with one helper per endpoint used often.

use promptvault_server::{
    http::{AppState, serve},
    settings::Settings,
    state_with_store,
};
use promptvault_store::testing::{TestDatabase, postgres_test_url};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    /// Sends the bootstrap admin token with every request.
    pub client: Client,
    /// The bootstrap admin token.
    pub admin_token: String,
    /// The state the server runs with (its `Vault`, authenticator and settings).
    pub state: AppState,
    /// Whether this server runs on PostgreSQL (so `fresh` starts another one like it).
    postgres: bool,
    /// Shared by [`TestApp::sibling`]s (dropped, with its schema, after the last of them).
    database: std::sync::Arc<TestDatabase>,
    _shutdown: oneshot::Sender<()>,
}

/// Generates one `#[tokio::test]` per backend for each listed scenario `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::TestApp::postgres().await else { return };
                    super::$name(app).await;
                }
            )+
        }
    };
}

/// Store options with the test encryption key ring (confidential and restricted content is
/// sealed at rest, as in production).
pub fn keyed() -> promptvault_store::ConnectOptions {
    let ring = promptvault_core::crypto::KeyRing::parse(&format!("test:{}", "ab".repeat(32)))
        .expect("key ring");
    promptvault_store::ConnectOptions {
        keys: Some(std::sync::Arc::new(ring)),
    }
}

impl TestApp {
    /// A SQLite server whose store has no encryption keys.
    pub async fn sqlite_without_keys() -> TestApp {
        Self::start(TestDatabase::sqlite().await, false, test_settings()).await
    }

    pub async fn sqlite() -> TestApp {
        Self::sqlite_configured(|_| {}).await
    }

    /// A SQLite server with the test settings `configure` changed.
    pub async fn sqlite_configured(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings();
        configure(&mut settings);
        Self::start(TestDatabase::sqlite_with(keyed()).await, false, settings).await
    }

    /// `None` (with one line on stderr) when no test PostgreSQL is configured.
    pub async fn postgres() -> Option<TestApp> {
        Self::postgres_configured(|_| {}).await
    }

    /// [`TestApp::postgres`] with the test settings `configure` changed.
    pub async fn postgres_configured(configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
        let Some(url) = postgres_test_url() else {
            eprintln!(
                "PROMPTVAULT_TEST_POSTGRES_URL is not set: the PostgreSQL variant of this test did not run"
            );
            return None;
        };
        let mut settings = test_settings();
        configure(&mut settings);
        Some(
            Self::start(
                TestDatabase::postgres_with(&url, keyed()).await,
                true,
                settings,
            )
            .await,
        )
    }

    /// A second server on this server's database (its own store, as another process would
    /// open), with the test settings `configure` changed. Both keep running.
    pub async fn sibling(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = test_settings();
        configure(&mut settings);
        let store = self.database.open_store(keyed()).await;
        Self::start_on(self.database.clone(), store, self.postgres, settings).await
    }

    /// Another server over a fresh, empty database on the same backend as this one.
    pub async fn fresh(&self) -> TestApp {
        match (self.postgres, postgres_test_url()) {
            (true, Some(url)) => {
                Self::start(
                    TestDatabase::postgres_with(&url, keyed()).await,
                    true,
                    test_settings(),
                )
                .await
            }
            _ => Self::sqlite().await,
        }
    }

    /// This server's database behind a new server whose settings `configure` changed (the old
    /// server stops; the bootstrap admin token stays valid).
    pub async fn reconfigured(self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let TestApp {
            postgres,
            database,
            _shutdown,
            ..
        } = self;
        drop(_shutdown);
        let mut settings = test_settings();
        configure(&mut settings);
        Self::start(database, postgres, settings).await
    }

    /// The database under this server (for raw SQL with `execute`).
    pub fn database(&self) -> &TestDatabase {
        &self.database
    }

    async fn start(
        database: impl Into<std::sync::Arc<TestDatabase>>,
        postgres: bool,
        settings: Settings,
    ) -> TestApp {
        let database = database.into();
        let store = database.store();
        Self::start_on(database, store, postgres, settings).await
    }

    async fn start_on(
        database: std::sync::Arc<TestDatabase>,
        store: std::sync::Arc<dyn promptvault_store::Store>,
        postgres: bool,
        settings: Settings,
    ) -> TestApp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let state = state_with_store(store, settings, AUDIT_KEY).expect("state");
        let admin_token = format!("pv_{}", "a1".repeat(32));
        state
            .vault
            .bootstrap_admin_token(Some(&admin_token))
            .await
            .expect("bootstrap token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let address = listener.local_addr().expect("bound address");
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, state.clone(), async move {
            let _ = shutdown_signal.await;
        }));
        TestApp {
            base: format!("http://{address}"),
            client: client_for(&admin_token),
            admin_token,
            state,
            postgres,
            database,
            _shutdown: shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Creates a text prompt and returns its JSON.
    pub async fn create_prompt(&self, name: &str, content: &str) -> Value {
        let response = self
            .post("/api/prompts", &json!({"name": name, "content": content}))
            .await;
        expect_json(response, StatusCode::CREATED).await
    }

    pub async fn add_version(&self, name: &str, body: &Value) -> Response {
        self.post(&format!("/api/prompts/{}/version", encode(name)), body)
            .await
    }

    /// Takes version `n` of a prompt from draft to approved under whatever approval workflow
    /// applies: the admin submits it for review, then fresh approvers (each a new user with a
    /// token: an admin, or a user where the current step takes no admin) approve it until the
    /// workflow is complete. The one place tests make a version approved, so a change to how
    /// approval works changes only this.
    pub async fn approve(&self, name: &str, n: i64) {
        let path = |action: &str| format!("/api/prompts/{}/versions/{n}/{action}", encode(name));
        let status = expect_json(
            self.get(&format!("/api/prompts/{}/versions/{n}", encode(name)))
                .await,
            StatusCode::OK,
        )
        .await;
        if status["status"] == "draft" {
            let response = self
                .post(&path("transition"), &json!({ "to": "review" }))
                .await;
            expect_json(response, StatusCode::OK).await;
        }
        for _ in 0..50 {
            let approvals = expect_json(self.get(&path("approvals")).await, StatusCode::OK).await;
            if approvals["status"] == "approved" {
                return;
            }
            let step = approvals["progress"]["current_step"]
                .as_u64()
                .expect("a current step") as usize;
            let roles = &approvals["progress"]["steps"][step - 1]["roles"];
            let role = if roles.as_array().expect("roles").contains(&json!("admin")) {
                "admin"
            } else {
                "user"
            };
            let user = self.user(&[role]).await;
            let token = self
                .token(json!({"name": format!("approver {user}"), "role": role, "user_id": user}))
                .await;
            let response = client_for(&token)
                .post(self.url(&path("approve")))
                .json(&json!({"comment": "approved by the test harness"}))
                .send()
                .await
                .expect("request");
            expect_json(response, StatusCode::OK).await;
        }
        panic!("version {n} of {name} was not approved after 50 approvals");
    }
}

/// The settings of every test server unless changed: small bodies, a generous timeout.
fn test_settings() -> Settings {
    Settings {
        http: promptvault_server::settings::HttpSettings {
            body_limit_bytes: 64 * 1024,
            request_timeout_secs: 30,
        },
        ..Settings::default()
    }
}

/// The key signing audit checkpoints in tests.
pub const AUDIT_KEY: &[u8] = b"the audit signing key of the test servers";

/// An HTTP client that sends `token` with every request.
pub fn client_for(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

impl TestApp {
    /// Creates an API token (as the admin) and returns its secret.
    pub async fn token(&self, body: serde_json::Value) -> String {
        let created = expect_json(self.post("/api/tokens", &body).await, StatusCode::CREATED).await;
        created["token"].as_str().expect("token secret").to_string()
    }

    /// A user with `role` and a token bound to them: their client, and their id.
    pub async fn member(&self, role: &str) -> (Client, String) {
        let id = self.user(&[role]).await;
        let token = self
            .token(json!({"name": format!("{role} {id}"), "role": role, "user_id": id}))
            .await;
        (client_for(&token), id)
    }

    /// Creates a user (as the admin) and returns its id.
    pub async fn user(&self, roles: &[&str]) -> String {
        let created = expect_json(
            self.post("/api/users", &json!({"roles": roles})).await,
            StatusCode::CREATED,
        )
        .await;
        created["id"].as_str().expect("user id").to_string()
    }

    /// A request with another credential (or none).
    pub fn request_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let request = Client::new().request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

/// Percent-encodes a prompt name for a path segment, `/` included.
pub fn encode(name: &str) -> String {
    name.replace('%', "%25")
        .replace('/', "%2F")
        .replace(' ', "%20")
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Asserts a problem+json answer with this status and code; returns the problem.
pub async fn expect_problem(response: Response, status: StatusCode, code: &str) -> Value {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    let problem = expect_json(response, status).await;
    assert_eq!(
        content_type, "application/problem+json",
        "problem: {problem}"
    );
    assert_eq!(problem["code"], code, "problem: {problem}");
    assert_eq!(problem["status"], status.as_u16(), "problem: {problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| !detail.is_empty()),
        "problem: {problem}"
    );
    problem
}
