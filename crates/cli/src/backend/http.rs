//! The remote backend: promptvault's native HTTP API (`/api`) on the server given with
//! `--server`. Prompt names and labels are percent-encoded as one path segment (`/` becomes
//! `%2F`); non-2xx answers are read as problem+json and become [`CliError`]s with the server's
//! `code`, `detail` and per-field items; a server that cannot be reached is exit code 5.

use std::time::Duration;

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use promptvault_api::{
    access::{
        AuditListResponse, AuditQuery, AuditVerifyResponse, CreateTokenRequest, CreateUserRequest,
        KeysRotatedResponse, TokenResponse, UserResponse,
    },
    bundle::{Bundle, ImportReport},
    problem::Problem,
    prompts::{
        CreatePromptRequest, CreateVersionRequest, DiffQuery, DiffResponse, FindingsResponse,
        LabelEventResponse, LabelResponse, LinkRequest, LinkResponse, LinksQuery, ListPromptsQuery,
        PromoteRequest, PromptListResponse, PromptResponse, RenderRequest, RenderResponse,
        SetLabelRequest, TransitionRequest, VersionResponse,
    },
    reviews::{ApproveRequest, RejectRequest, ReviewOutcomeResponse, ReviewQueueResponse},
    testcases::{RunTestsRequest, RunTestsResponse, SetTestsRequest, TestsResponse},
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::Backend;
use crate::error::{CliError, CliResult};

/// Everything but RFC 3986 unreserved characters is encoded, `/` included, so a name is always
/// exactly one path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment, percent-encoded.
pub fn segment(raw: &str) -> String {
    utf8_percent_encode(raw, SEGMENT).to_string()
}

pub struct HttpBackend {
    client: reqwest::Client,
    /// The server's base URL without a trailing slash.
    base: String,
}

impl HttpBackend {
    pub fn new(server: &str, token: Option<&str>) -> CliResult<Self> {
        let base = server.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|error| {
            CliError::invalid(
                "invalid_server_url",
                format!("--server {server:?}: {error}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CliError::invalid(
                "invalid_server_url",
                format!("--server {server:?}: use an http:// or https:// URL"),
            ));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    CliError::invalid(
                        "invalid_token",
                        "--token contains characters a header cannot carry",
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("promptvault-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| CliError::internal("http_client", chain(&error)))?;
        Ok(HttpBackend { client, base })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    fn prompt_path(prompt: &str, rest: &str) -> String {
        format!("/api/prompts/{}{rest}", segment(prompt))
    }

    /// Sends the request and returns the response if it is a success.
    async fn send(&self, request: RequestBuilder) -> CliResult<Response> {
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(problem(response).await)
    }

    async fn send_json<T: DeserializeOwned>(&self, request: RequestBuilder) -> CliResult<T> {
        let response = self.send(request).await?;
        decode(response).await
    }

    fn transport_error(&self, error: &reqwest::Error) -> CliError {
        if error.is_connect() || error.is_timeout() {
            CliError::unreachable(
                "server_unreachable",
                format!("cannot reach the server at {}: {}", self.base, chain(error)),
            )
        } else {
            CliError::unreachable(
                "server_unreachable",
                format!("request to {} failed: {}", self.base, chain(error)),
            )
        }
    }
}

/// A non-2xx answer as a [`CliError`]: the problem+json body when there is one.
async fn problem(response: Response) -> CliError {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Problem>(&body) {
        Ok(problem) => problem.into(),
        Err(_) => {
            let text = String::from_utf8_lossy(&body);
            let snippet: String = text.trim().chars().take(200).collect();
            CliError::from_status(
                status.as_u16(),
                "http_error",
                if snippet.is_empty() {
                    format!("the server answered {status}")
                } else {
                    format!("the server answered {status}: {snippet}")
                },
                Vec::new(),
            )
        }
    }
}

async fn decode<T: DeserializeOwned>(response: Response) -> CliResult<T> {
    let body = response.bytes().await.map_err(|error| {
        CliError::unreachable(
            "server_unreachable",
            format!("reading the answer failed: {}", chain(&error)),
        )
    })?;
    serde_json::from_slice(&body).map_err(|error| {
        CliError::internal(
            "invalid_response",
            format!("the server's answer is not what this CLI expects: {error}"),
        )
    })
}

/// An error with its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[async_trait]
impl Backend for HttpBackend {
    async fn list_prompts(&self, query: ListPromptsQuery) -> CliResult<PromptListResponse> {
        self.send_json(self.request(Method::GET, "/api/prompts").query(&query))
            .await
    }

    async fn get_prompt(&self, prompt: &str) -> CliResult<PromptResponse> {
        self.send_json(self.request(Method::GET, &Self::prompt_path(prompt, "")))
            .await
    }

    async fn create_prompt(&self, request: CreatePromptRequest) -> CliResult<PromptResponse> {
        self.send_json(self.request(Method::POST, "/api/prompts").json(&request))
            .await
    }

    async fn add_version(
        &self,
        prompt: &str,
        request: CreateVersionRequest,
    ) -> CliResult<(VersionResponse, bool)> {
        let response = self
            .send(
                self.request(Method::POST, &Self::prompt_path(prompt, "/version"))
                    .json(&request),
            )
            .await?;
        let created = response.status() == StatusCode::CREATED;
        Ok((decode(response).await?, created))
    }

    async fn findings(&self, prompt: &str, version: i64) -> CliResult<FindingsResponse> {
        self.send_json(self.request(
            Method::GET,
            &Self::prompt_path(prompt, &format!("/versions/{version}/findings")),
        ))
        .await
    }

    async fn render(&self, prompt: &str, request: RenderRequest) -> CliResult<RenderResponse> {
        self.send_json(
            self.request(Method::POST, &Self::prompt_path(prompt, "/render"))
                .json(&request),
        )
        .await
    }

    async fn set_label(
        &self,
        prompt: &str,
        label: &str,
        request: SetLabelRequest,
    ) -> CliResult<LabelResponse> {
        let path = Self::prompt_path(prompt, &format!("/labels/{}", segment(label)));
        self.send_json(self.request(Method::PUT, &path).json(&request))
            .await
    }

    async fn remove_label(&self, prompt: &str, label: &str) -> CliResult<()> {
        let path = Self::prompt_path(prompt, &format!("/labels/{}", segment(label)));
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    async fn label_history(&self, prompt: &str, label: &str) -> CliResult<Vec<LabelEventResponse>> {
        let path = Self::prompt_path(prompt, &format!("/labels/{}/history", segment(label)));
        self.send_json(self.request(Method::GET, &path)).await
    }

    async fn link(&self, prompt: &str, request: LinkRequest) -> CliResult<LinkResponse> {
        self.send_json(
            self.request(Method::POST, &Self::prompt_path(prompt, "/link"))
                .json(&request),
        )
        .await
    }

    async fn list_links(&self, query: LinksQuery) -> CliResult<Vec<LinkResponse>> {
        self.send_json(self.request(Method::GET, "/api/links").query(&query))
            .await
    }

    async fn diff(&self, prompt: &str, query: DiffQuery) -> CliResult<DiffResponse> {
        self.send_json(
            self.request(Method::GET, &Self::prompt_path(prompt, "/diff"))
                .query(&query),
        )
        .await
    }

    async fn export_all(&self) -> CliResult<Bundle> {
        self.send_json(self.request(Method::GET, "/api/export"))
            .await
    }

    async fn import(&self, bundle: Bundle) -> CliResult<ImportReport> {
        self.send_json(self.request(Method::POST, "/api/import").json(&bundle))
            .await
    }

    async fn create_user(&self, request: CreateUserRequest) -> CliResult<UserResponse> {
        self.send_json(self.request(Method::POST, "/api/users").json(&request))
            .await
    }

    async fn list_users(&self) -> CliResult<Vec<UserResponse>> {
        self.send_json(self.request(Method::GET, "/api/users"))
            .await
    }

    async fn delete_user(&self, id: uuid::Uuid) -> CliResult<()> {
        self.send(self.request(Method::DELETE, &format!("/api/users/{id}")))
            .await?;
        Ok(())
    }

    async fn create_token(&self, request: CreateTokenRequest) -> CliResult<TokenResponse> {
        self.send_json(self.request(Method::POST, "/api/tokens").json(&request))
            .await
    }

    async fn list_tokens(&self) -> CliResult<Vec<TokenResponse>> {
        self.send_json(self.request(Method::GET, "/api/tokens"))
            .await
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> CliResult<TokenResponse> {
        self.send_json(self.request(Method::DELETE, &format!("/api/tokens/{id}")))
            .await
    }

    async fn list_audit(&self, query: AuditQuery) -> CliResult<AuditListResponse> {
        self.send_json(self.request(Method::GET, "/api/audit").query(&query))
            .await
    }

    async fn verify_audit(&self) -> CliResult<AuditVerifyResponse> {
        self.send_json(self.request(Method::GET, "/api/audit/verify"))
            .await
    }

    async fn promote_label(
        &self,
        prompt: &str,
        label: &str,
        request: PromoteRequest,
    ) -> CliResult<LabelResponse> {
        let path = Self::prompt_path(prompt, &format!("/labels/{}/promote", segment(label)));
        self.send_json(self.request(Method::POST, &path).json(&request))
            .await
    }

    async fn rollback_label(&self, prompt: &str, label: &str) -> CliResult<LabelResponse> {
        let path = Self::prompt_path(prompt, &format!("/labels/{}/rollback", segment(label)));
        self.send_json(self.request(Method::POST, &path)).await
    }

    async fn rotate_keys(&self) -> CliResult<KeysRotatedResponse> {
        self.send_json(self.request(Method::POST, "/api/keys/rotate"))
            .await
    }

    async fn set_tests(&self, prompt: &str, request: SetTestsRequest) -> CliResult<TestsResponse> {
        self.send_json(
            self.request(Method::PUT, &Self::prompt_path(prompt, "/tests"))
                .json(&request),
        )
        .await
    }

    async fn run_tests(
        &self,
        prompt: &str,
        request: RunTestsRequest,
    ) -> CliResult<RunTestsResponse> {
        self.send_json(
            self.request(Method::POST, &Self::prompt_path(prompt, "/tests/run"))
                .json(&request),
        )
        .await
    }

    async fn transition(
        &self,
        prompt: &str,
        version: i64,
        request: TransitionRequest,
    ) -> CliResult<VersionResponse> {
        self.send_json(
            self.request(
                Method::POST,
                &Self::prompt_path(prompt, &format!("/versions/{version}/transition")),
            )
            .json(&request),
        )
        .await
    }

    async fn review_queue(&self) -> CliResult<ReviewQueueResponse> {
        self.send_json(self.request(Method::GET, "/api/reviews"))
            .await
    }

    async fn approve(
        &self,
        prompt: &str,
        version: i64,
        request: ApproveRequest,
    ) -> CliResult<ReviewOutcomeResponse> {
        self.send_json(
            self.request(
                Method::POST,
                &Self::prompt_path(prompt, &format!("/versions/{version}/approve")),
            )
            .json(&request),
        )
        .await
    }

    async fn reject(
        &self,
        prompt: &str,
        version: i64,
        request: RejectRequest,
    ) -> CliResult<ReviewOutcomeResponse> {
        self.send_json(
            self.request(
                Method::POST,
                &Self::prompt_path(prompt, &format!("/versions/{version}/reject")),
            )
            .json(&request),
        )
        .await
    }

    async fn metrics(&self, prompt: &str) -> CliResult<promptvault_api::runs::MetricsResponse> {
        self.send_json(self.request(Method::GET, &Self::prompt_path(prompt, "/metrics")))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_one_path_segment() {
        assert_eq!(segment("support/summarize"), "support%2Fsummarize");
        assert_eq!(segment("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(segment("v1.2_x-y~z"), "v1.2_x-y~z");
    }
}
