//! The local backend: the application service ([`Vault`]) on the database the settings name
//! (by default the SQLite file in the data directory), acting as [`Actor::local_cli`].

use std::{path::Path, sync::Arc};

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
use promptvault_server::{
    actor::Actor,
    settings::{Overrides, Settings},
    vault::Vault,
};

use super::Backend;
use crate::error::{CliError, CliResult};

pub struct LocalBackend {
    vault: Arc<Vault>,
    actor: Actor,
}

impl LocalBackend {
    /// Loads the settings (defaults → TOML → environment → `overrides`) and opens the database,
    /// running its migrations.
    pub async fn open(config: Option<&Path>, overrides: &Overrides) -> CliResult<Self> {
        let settings = load_settings(config, overrides)?;
        let state = promptvault_server::build_state(settings)
            .await
            .map_err(|error| CliError::unreachable("database_unavailable", format!("{error:#}")))?;
        Ok(LocalBackend {
            vault: state.vault,
            actor: Actor::local_cli(),
        })
    }
}

/// The settings, or an `invalid_config` error naming what is wrong.
pub fn load_settings(config: Option<&Path>, overrides: &Overrides) -> CliResult<Settings> {
    Settings::load(config, overrides)
        .map_err(|error| CliError::invalid("invalid_config", error.to_string()))
}

#[async_trait]
impl Backend for LocalBackend {
    async fn finish(&self) {
        // With Redis, servers on this database learn of this command's writes.
        self.vault
            .flush_invalidations(std::time::Duration::from_secs(2))
            .await;
    }

    async fn list_prompts(&self, query: ListPromptsQuery) -> CliResult<PromptListResponse> {
        Ok(self.vault.list_prompts(&self.actor, query).await?)
    }

    async fn get_prompt(&self, prompt: &str) -> CliResult<PromptResponse> {
        Ok(self.vault.get_prompt(&self.actor, prompt).await?)
    }

    async fn create_prompt(&self, request: CreatePromptRequest) -> CliResult<PromptResponse> {
        Ok(self.vault.create_prompt(&self.actor, request).await?)
    }

    async fn add_version(
        &self,
        prompt: &str,
        request: CreateVersionRequest,
    ) -> CliResult<(VersionResponse, bool)> {
        Ok(self.vault.add_version(&self.actor, prompt, request).await?)
    }

    async fn render(&self, prompt: &str, request: RenderRequest) -> CliResult<RenderResponse> {
        let rendered = self.vault.render(&self.actor, prompt, request).await?;
        // The process ends after the command: write the run now.
        self.vault.flush_runs().await;
        Ok(rendered)
    }

    async fn set_label(
        &self,
        prompt: &str,
        label: &str,
        request: SetLabelRequest,
    ) -> CliResult<LabelResponse> {
        Ok(self
            .vault
            .set_label(&self.actor, prompt, label, request)
            .await?)
    }

    async fn remove_label(&self, prompt: &str, label: &str) -> CliResult<()> {
        Ok(self.vault.remove_label(&self.actor, prompt, label).await?)
    }

    async fn label_history(&self, prompt: &str, label: &str) -> CliResult<Vec<LabelEventResponse>> {
        Ok(self.vault.label_history(&self.actor, prompt, label).await?)
    }

    async fn link(&self, prompt: &str, request: LinkRequest) -> CliResult<LinkResponse> {
        Ok(self.vault.link(&self.actor, prompt, request).await?)
    }

    async fn list_links(&self, query: LinksQuery) -> CliResult<Vec<LinkResponse>> {
        Ok(self.vault.list_links(&self.actor, query).await?)
    }

    async fn findings(&self, prompt: &str, version: i64) -> CliResult<FindingsResponse> {
        Ok(self
            .vault
            .version_findings(&self.actor, prompt, version)
            .await?)
    }

    async fn diff(&self, prompt: &str, query: DiffQuery) -> CliResult<DiffResponse> {
        Ok(self.vault.diff(&self.actor, prompt, query).await?)
    }

    async fn export_all(&self) -> CliResult<Bundle> {
        Ok(self.vault.export_all(&self.actor).await?)
    }

    async fn import(&self, bundle: Bundle) -> CliResult<ImportReport> {
        Ok(self.vault.import(&self.actor, bundle).await?)
    }

    async fn create_user(&self, request: CreateUserRequest) -> CliResult<UserResponse> {
        Ok(self.vault.create_user(&self.actor, request).await?)
    }

    async fn list_users(&self) -> CliResult<Vec<UserResponse>> {
        Ok(self.vault.list_users(&self.actor).await?)
    }

    async fn delete_user(&self, id: uuid::Uuid) -> CliResult<()> {
        Ok(self.vault.delete_user(&self.actor, id).await?)
    }

    async fn create_token(&self, request: CreateTokenRequest) -> CliResult<TokenResponse> {
        Ok(self.vault.create_token(&self.actor, request).await?)
    }

    async fn list_tokens(&self) -> CliResult<Vec<TokenResponse>> {
        Ok(self.vault.list_tokens(&self.actor).await?)
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> CliResult<TokenResponse> {
        Ok(self.vault.revoke_token(&self.actor, id).await?)
    }

    async fn list_audit(&self, query: AuditQuery) -> CliResult<AuditListResponse> {
        Ok(self.vault.list_audit(&self.actor, query).await?)
    }

    async fn verify_audit(&self) -> CliResult<AuditVerifyResponse> {
        Ok(self.vault.verify_audit(&self.actor).await?)
    }

    async fn rotate_keys(&self) -> CliResult<KeysRotatedResponse> {
        Ok(self.vault.rotate_keys(&self.actor).await?)
    }

    async fn set_tests(&self, prompt: &str, request: SetTestsRequest) -> CliResult<TestsResponse> {
        Ok(self.vault.set_tests(&self.actor, prompt, request).await?)
    }

    async fn run_tests(
        &self,
        prompt: &str,
        request: RunTestsRequest,
    ) -> CliResult<RunTestsResponse> {
        Ok(self.vault.run_tests(&self.actor, prompt, request).await?)
    }

    async fn transition(
        &self,
        prompt: &str,
        version: i64,
        request: TransitionRequest,
    ) -> CliResult<VersionResponse> {
        Ok(self
            .vault
            .transition_version(&self.actor, prompt, version, request)
            .await?)
    }

    async fn promote_label(
        &self,
        prompt: &str,
        label: &str,
        request: PromoteRequest,
    ) -> CliResult<LabelResponse> {
        Ok(self
            .vault
            .promote_label(&self.actor, prompt, label, request)
            .await?)
    }

    async fn rollback_label(&self, prompt: &str, label: &str) -> CliResult<LabelResponse> {
        Ok(self
            .vault
            .rollback_label(&self.actor, prompt, label)
            .await?)
    }

    async fn review_queue(&self) -> CliResult<ReviewQueueResponse> {
        Ok(self.vault.review_queue(&self.actor).await?)
    }

    async fn approve(
        &self,
        prompt: &str,
        version: i64,
        request: ApproveRequest,
    ) -> CliResult<ReviewOutcomeResponse> {
        Ok(self
            .vault
            .approve_version(&self.actor, prompt, version, request)
            .await?)
    }

    async fn reject(
        &self,
        prompt: &str,
        version: i64,
        request: RejectRequest,
    ) -> CliResult<ReviewOutcomeResponse> {
        Ok(self
            .vault
            .reject_version(&self.actor, prompt, version, request)
            .await?)
    }

    async fn metrics(&self, prompt: &str) -> CliResult<promptvault_api::runs::MetricsResponse> {
        Ok(self.vault.metrics(&self.actor, prompt).await?)
    }
}
