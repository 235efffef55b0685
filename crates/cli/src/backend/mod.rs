//! Where commands send their work: one object-safe [`Backend`] trait with two implementations,
//! [`local::LocalBackend`] (the `Vault` on the local database, acting as `Actor::local_cli()`) and
//! [`http::HttpBackend`] (the native HTTP API of a server given with `--server`). Both take and
//! return the API's wire types and fail with [`CliError`], so every command is written once and
//! prints the same thing in either mode.

pub mod http;
pub mod local;

use async_trait::async_trait;
use promptvault_api::{
    access::{
        AuditListResponse, AuditQuery, AuditVerifyResponse, CreateTokenRequest, CreateUserRequest,
        KeysRotatedResponse, TokenResponse, UserResponse,
    },
    bundle::{Bundle, ImportReport},
    prompts::{
        CreatePromptRequest, CreateVersionRequest, DiffQuery, DiffResponse, FindingsResponse,
        LabelEventResponse, LabelResponse, LinkRequest, LinkResponse, LinksQuery, ListPromptsQuery,
        PromoteRequest, PromptListResponse, PromptResponse, RenderRequest, RenderResponse,
        SetLabelRequest, TransitionRequest, VersionResponse,
    },
    reviews::{ApproveRequest, RejectRequest, ReviewOutcomeResponse, ReviewQueueResponse},
    testcases::{RunTestsRequest, RunTestsResponse, SetTestsRequest, TestsResponse},
};

use crate::error::CliResult;

/// The use cases the CLI needs. `prompt` is a prompt's name (or id), unencoded.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Called once the command is done, before the process ends.
    async fn finish(&self) {}

    async fn list_prompts(&self, query: ListPromptsQuery) -> CliResult<PromptListResponse>;

    /// The prompt with its versions (newest first) and labels.
    async fn get_prompt(&self, prompt: &str) -> CliResult<PromptResponse>;

    async fn create_prompt(&self, request: CreatePromptRequest) -> CliResult<PromptResponse>;

    /// Adds a version; the flag is false when it was identical to the latest one (which is
    /// returned).
    async fn add_version(
        &self,
        prompt: &str,
        request: CreateVersionRequest,
    ) -> CliResult<(VersionResponse, bool)>;

    async fn render(&self, prompt: &str, request: RenderRequest) -> CliResult<RenderResponse>;

    /// The compliance findings of one version.
    async fn findings(&self, prompt: &str, version: i64) -> CliResult<FindingsResponse>;

    async fn set_label(
        &self,
        prompt: &str,
        label: &str,
        request: SetLabelRequest,
    ) -> CliResult<LabelResponse>;

    async fn remove_label(&self, prompt: &str, label: &str) -> CliResult<()>;

    /// Every move of the label, oldest first.
    async fn label_history(&self, prompt: &str, label: &str) -> CliResult<Vec<LabelEventResponse>>;

    async fn link(&self, prompt: &str, request: LinkRequest) -> CliResult<LinkResponse>;

    async fn list_links(&self, query: LinksQuery) -> CliResult<Vec<LinkResponse>>;

    async fn diff(&self, prompt: &str, query: DiffQuery) -> CliResult<DiffResponse>;

    /// Every prompt with all versions, labels and links, and every prompt type.
    async fn export_all(&self) -> CliResult<Bundle>;

    /// Imports one bundle: all of it is validated before anything is written.
    async fn import(&self, bundle: Bundle) -> CliResult<ImportReport>;
    async fn create_user(&self, request: CreateUserRequest) -> CliResult<UserResponse>;
    async fn list_users(&self) -> CliResult<Vec<UserResponse>>;
    async fn delete_user(&self, id: uuid::Uuid) -> CliResult<()>;
    /// Creates a token; the answer carries its secret, shown once.
    async fn create_token(&self, request: CreateTokenRequest) -> CliResult<TokenResponse>;
    async fn list_tokens(&self) -> CliResult<Vec<TokenResponse>>;
    async fn revoke_token(&self, id: uuid::Uuid) -> CliResult<TokenResponse>;
    async fn list_audit(&self, query: AuditQuery) -> CliResult<AuditListResponse>;
    async fn verify_audit(&self) -> CliResult<AuditVerifyResponse>;
    /// Re-encrypts every sealed version under the current key.
    async fn rotate_keys(&self) -> CliResult<KeysRotatedResponse>;
    /// Replaces a prompt's template test cases.
    async fn set_tests(&self, prompt: &str, request: SetTestsRequest) -> CliResult<TestsResponse>;
    /// Runs a prompt's test cases on one version, storing nothing.
    async fn run_tests(
        &self,
        prompt: &str,
        request: RunTestsRequest,
    ) -> CliResult<RunTestsResponse>;
    /// Moves a version to another status (deprecate, archive …).
    async fn transition(
        &self,
        prompt: &str,
        version: i64,
        request: TransitionRequest,
    ) -> CliResult<VersionResponse>;
    /// Ends a label's traffic split on one version.
    async fn promote_label(
        &self,
        prompt: &str,
        label: &str,
        request: PromoteRequest,
    ) -> CliResult<LabelResponse>;
    /// Moves a label back to the previous approved target of its history.
    async fn rollback_label(&self, prompt: &str, label: &str) -> CliResult<LabelResponse>;
    /// The versions in review the caller could approve now.
    async fn review_queue(&self) -> CliResult<ReviewQueueResponse>;
    async fn approve(
        &self,
        prompt: &str,
        version: i64,
        request: ApproveRequest,
    ) -> CliResult<ReviewOutcomeResponse>;
    async fn reject(
        &self,
        prompt: &str,
        version: i64,
        request: RejectRequest,
    ) -> CliResult<ReviewOutcomeResponse>;
    /// Usage per version, newest first.
    async fn metrics(&self, prompt: &str) -> CliResult<promptvault_api::runs::MetricsResponse>;
}
