//! TEMPORARY STUB (not committed).
#![allow(unused_variables)]
use super::*;
use crate::types::*;
pub struct PgStore;
impl PgStore {
    pub async fn connect(_u: &str) -> StoreResult<Self> {
        Err(StoreError::Config("stub".into()))
    }
}
#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        Err(StoreError::Config("stub".into()))
    }
    async fn create_prompt(
        &self,
        prompt: NewPrompt,
        first: NewVersion,
    ) -> StoreResult<PromptDetail> {
        Err(StoreError::Config("stub".into()))
    }
    async fn get_prompt(&self, key: &PromptKey) -> StoreResult<PromptDetail> {
        Err(StoreError::Config("stub".into()))
    }
    async fn find_prompt(&self, key: &PromptKey) -> StoreResult<Prompt> {
        Err(StoreError::Config("stub".into()))
    }
    async fn list_prompts(&self, query: &PromptQuery) -> StoreResult<PromptPage> {
        Err(StoreError::Config("stub".into()))
    }
    async fn update_prompt(
        &self,
        id: Uuid,
        patch: PromptPatch,
        expected_revision: Option<i64>,
    ) -> StoreResult<Prompt> {
        Err(StoreError::Config("stub".into()))
    }
    async fn delete_prompt(&self, id: Uuid) -> StoreResult<()> {
        Err(StoreError::Config("stub".into()))
    }
    async fn add_version(&self, prompt_id: Uuid, version: NewVersion) -> StoreResult<AddedVersion> {
        Err(StoreError::Config("stub".into()))
    }
    async fn get_version(
        &self,
        prompt_id: Uuid,
        version_number: i64,
    ) -> StoreResult<PromptVersion> {
        Err(StoreError::Config("stub".into()))
    }
    async fn resolve_version(
        &self,
        key: &PromptKey,
        selector: &VersionSelector,
    ) -> StoreResult<(Prompt, PromptVersion)> {
        Err(StoreError::Config("stub".into()))
    }
    async fn set_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        version_number: i64,
        actor_id: Option<Uuid>,
    ) -> StoreResult<Option<LabelEvent>> {
        Err(StoreError::Config("stub".into()))
    }
    async fn remove_label(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
        actor_id: Option<Uuid>,
    ) -> StoreResult<LabelEvent> {
        Err(StoreError::Config("stub".into()))
    }
    async fn label_history(
        &self,
        prompt_id: Uuid,
        label: &LabelName,
    ) -> StoreResult<Vec<LabelEvent>> {
        Err(StoreError::Config("stub".into()))
    }
    async fn upsert_link(&self, link: NewLink) -> StoreResult<Link> {
        Err(StoreError::Config("stub".into()))
    }
    async fn list_links(&self, filter: &LinkFilter) -> StoreResult<Vec<Link>> {
        Err(StoreError::Config("stub".into()))
    }
    async fn delete_link(&self, id: Uuid) -> StoreResult<()> {
        Err(StoreError::Config("stub".into()))
    }
    async fn create_prompt_type(&self, prompt_type: NewPromptType) -> StoreResult<PromptType> {
        Err(StoreError::Config("stub".into()))
    }
    async fn get_prompt_type(&self, key: &str) -> StoreResult<PromptType> {
        Err(StoreError::Config("stub".into()))
    }
    async fn list_prompt_types(&self) -> StoreResult<Vec<PromptType>> {
        Err(StoreError::Config("stub".into()))
    }
    async fn update_prompt_type(
        &self,
        key: &str,
        patch: PromptTypePatch,
    ) -> StoreResult<PromptType> {
        Err(StoreError::Config("stub".into()))
    }
    async fn delete_prompt_type(&self, key: &str) -> StoreResult<()> {
        Err(StoreError::Config("stub".into()))
    }
}
