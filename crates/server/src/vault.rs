//! The application service: every use case of promptvault (create a prompt, add a version, move a
//! label, render, import …) as one method taking the acting [`Actor`] and wire types, returning
//! wire types. HTTP handlers and the CLI's local mode both call it, so both behave the same.
//!
//! Domain rules come from `promptvault-core`; persistence from the [`Store`]. This module only
//! orchestrates: parse and validate input, load, decide, store, convert.

use std::{collections::BTreeMap, sync::Arc};

use moka::sync::Cache;
use promptvault_api::{
    problem::ProblemItem,
    prompts::{
        CreatePromptRequest, CreatePromptTypeRequest, CreateVersionRequest, DiffQuery,
        DiffResponse, FindingsResponse, LabelEventResponse, LinkRequest, LinkResponse, LinksQuery,
        ListPromptsQuery, PromptListResponse, PromptResponse, PromptSummary, PromptTypeResponse,
        RenderRequest, RenderResponse, TransitionRequest, UpdatePromptRequest,
        UpdatePromptTypeRequest, VersionResponse,
    },
};
use promptvault_core::{
    access::{Action, credential_reaches, visibility_filter},
    audit::AuditOutcome,
    compliance::{self, ComplianceRules, Finding, Severity},
    deploy::LabelPolicy,
    diff,
    error::DomainError,
    ident::{self, LabelName, PromptName},
    lifecycle::{self, LifecycleAction, LifecycleError},
    model::{
        Classification, Content, DeploymentModel, Grantee, Prompt, PromptVersion, Role, Scope,
        Source, VersionStatus,
    },
    render::{CompiledPrompt, RenderLimits, Rendered, UndefinedMode},
    version::VersionDraft,
    workflow::ApprovalPolicy,
};
use promptvault_store::{
    Store, StoreError,
    types::{
        CarryOver, LinkFilter, NewLink, NewPrompt, NewPromptType, NewVersion, PromptKey,
        PromptListItem, PromptPatch, PromptQuery, PromptTypePatch, VersionSelector,
    },
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    actor::Actor,
    error::{AppError, AppResult},
    vault::guard::Audited,
};

mod access;
mod bundle;
mod guard;
mod labels;
mod resolve;
mod retire;
mod reviews;
mod runs;
mod testcases;

pub use access::parse_time_or_age;
pub use resolve::resolve_request;
pub(crate) use retire::version_labelled;

const MAX_TITLE: usize = 255;
const MAX_TEXT: usize = 10_000;
const MAX_LONG_TEXT: usize = 200_000;
const DEFAULT_PER_PAGE: i64 = 50;
const MAX_PER_PAGE: i64 = 200;

/// The use cases, over one store.
pub struct Vault {
    store: Arc<dyn Store>,
    limits: RenderLimits,
    /// Versions are immutable, so a compiled version never goes stale: keyed by version id.
    compiled: Cache<(Uuid, UndefinedMode), Arc<CompiledPrompt>>,
    /// Renders run on the blocking pool, at most one per core at a time, so even a template
    /// that spends its whole budget never stalls the async workers serving other requests.
    render_slots: Arc<tokio::sync::Semaphore>,
    /// How this server serves prompts (per-prompt `restricted_deployments` refer to it).
    deployment: DeploymentModel,
    /// Signs and checks the audit log's retention checkpoints.
    audit_key: Arc<[u8]>,
    /// The compliance rules every new version is checked against (SPEC §9).
    compliance: ComplianceRules,
    /// Deprecation period, archive retention and review intervals.
    lifecycle: crate::settings::LifecycleSettings,
    /// Protected labels and the roles that may move them.
    label_policy: LabelPolicy,
    /// The approval workflow of each classification (SPEC §6).
    approvals: ApprovalPolicy,
    /// What resolve serves, by what it depends on; every write that changes it invalidates it.
    serve_cache: Arc<crate::serve_cache::ServeCache>,
    /// The shared (Redis) level behind `serve_cache`, when several servers share a database.
    shared_cache: Option<Arc<crate::redis_cache::RedisCache>>,
    /// The queue runs are recorded through (none: runs are not recorded).
    runs: Option<Arc<crate::recorder::RunRecorder>>,
    run_settings: crate::settings::RunSettings,
    /// The performance-monitoring rule (none: no alerts).
    alert_rule: Option<promptvault_core::runs::AlertRule>,
    /// The (prompt, version) pairs whose alert is raised, so it is raised once per breach.
    alerting: std::sync::Mutex<std::collections::HashSet<(Uuid, i64)>>,
}

impl Vault {
    pub fn new(store: Arc<dyn Store>, limits: RenderLimits) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Vault {
            store,
            limits,
            compiled: Cache::new(10_000),
            render_slots: Arc::new(tokio::sync::Semaphore::new(cores)),
            deployment: DeploymentModel::WebApplication,
            audit_key: Arc::from(Vec::new()),
            compliance: ComplianceRules::default(),
            lifecycle: Default::default(),
            label_policy: LabelPolicy::default(),
            approvals: ApprovalPolicy::default(),
            serve_cache: Arc::new(crate::serve_cache::ServeCache::new(10_000)),
            shared_cache: None,
            runs: None,
            run_settings: Default::default(),
            alert_rule: None,
            alerting: Default::default(),
        }
    }

    /// Keeps at most `capacity` compiled templates (0: compile on every render).
    pub fn with_compiled_cache_capacity(mut self, capacity: u64) -> Self {
        self.compiled = Cache::new(capacity);
        self
    }

    pub fn with_serve_cache(mut self, cache: Arc<crate::serve_cache::ServeCache>) -> Self {
        self.serve_cache = cache;
        self
    }

    /// The resolve cache (a shared cache applies remote invalidations through it).
    pub fn serve_cache(&self) -> &Arc<crate::serve_cache::ServeCache> {
        &self.serve_cache
    }

    /// Asks `shared` on a local miss before the database (it must be `serve_cache`'s sink).
    pub fn with_shared_cache(
        mut self,
        shared: Option<Arc<crate::redis_cache::RedisCache>>,
    ) -> Self {
        self.shared_cache = shared;
        self
    }

    /// Waits (at most `within`) until this process's invalidations reached Redis, for a
    /// process about to exit; logs a warning if they could not.
    pub async fn flush_invalidations(&self, within: std::time::Duration) {
        if let Some(shared) = &self.shared_cache
            && !shared.flush(within).await
        {
            tracing::warn!(
                "redis: invalidations not published; other servers may serve earlier answers \
                 until their next change of these prompts"
            );
        }
    }

    /// The shared (Redis) cache, if configured.
    pub fn shared_cache(&self) -> Option<&Arc<crate::redis_cache::RedisCache>> {
        self.shared_cache.as_ref()
    }

    /// Every write that may change what resolve returns ends here.
    pub(crate) fn changed(&self, event: crate::serve_cache::CacheEvent) {
        self.serve_cache.invalidate(event);
    }

    /// Records runs (started on the current tokio runtime; without one, runs are not
    /// recorded) and monitors their outcomes with `rule`.
    pub fn with_runs(
        mut self,
        settings: crate::settings::RunSettings,
        rule: Option<promptvault_core::runs::AlertRule>,
    ) -> Self {
        if tokio::runtime::Handle::try_current().is_ok() {
            self.runs = Some(Arc::new(crate::recorder::RunRecorder::start(
                self.store.clone(),
                settings.queue_capacity,
                settings.batch_size,
                std::time::Duration::from_millis(settings.batch_wait_ms),
                std::time::Duration::from_millis(settings.usage_flush_ms),
            )));
        }
        self.run_settings = settings;
        self.alert_rule = rule;
        self
    }

    /// The run recorder, if runs are recorded (its counters feed monitoring).
    pub fn run_recorder(&self) -> Option<&Arc<crate::recorder::RunRecorder>> {
        self.runs.as_ref()
    }

    pub fn with_lifecycle(mut self, lifecycle: crate::settings::LifecycleSettings) -> Self {
        self.lifecycle = lifecycle;
        self
    }

    pub fn with_approvals(mut self, policy: ApprovalPolicy) -> Self {
        self.approvals = policy;
        self
    }

    pub fn with_compliance(mut self, rules: ComplianceRules) -> Self {
        self.compliance = rules;
        self
    }

    pub fn with_label_policy(mut self, policy: LabelPolicy) -> Self {
        self.label_policy = policy;
        self
    }

    pub fn with_deployment(mut self, deployment: DeploymentModel) -> Self {
        self.deployment = deployment;
        self
    }

    pub fn with_audit_key(mut self, key: &[u8]) -> Self {
        self.audit_key = Arc::from(key.to_vec());
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Readiness: the database answers.
    pub async fn ready(&self) -> AppResult<()> {
        self.store.ping().await.map_err(|error| {
            tracing::warn!(error = %error, "database not ready");
            AppError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is not reachable",
            )
        })
    }

    /// The operational metrics (`GET /metrics`) for an authenticated caller: admins only
    /// (refusals audited). Samples the database pool gauges, then renders every metric.
    pub async fn scrape_metrics(&self, actor: &Actor) -> AppResult<String> {
        self.authorize(actor, Action::ReadMetrics, None).await?;
        Ok(self.metrics_unchecked())
    }

    /// The operational metrics without a check: for a server that made `/metrics` public or
    /// a scraper that presented the metrics token.
    pub fn metrics_unchecked(&self) -> String {
        crate::metrics::record_pool_stats(&self.store.pool_stats());
        crate::metrics::render()
    }

    pub async fn create_prompt(
        &self,
        actor: &Actor,
        request: CreatePromptRequest,
    ) -> AppResult<PromptResponse> {
        let restricted_creation = match &request.prompt_type {
            Some(key) => self.store.get_prompt_type(key).await?.restricted_creation,
            None => false,
        };
        self.authorize(
            actor,
            Action::Create {
                restricted_creation,
            },
            None,
        )
        .await?;
        let admin = actor.role() == Role::Admin;
        if !admin
            && request
                .owner_id
                .is_some_and(|owner| Some(owner) != actor.user_id())
        {
            return Err(forbidden(
                "only admins can create prompts owned by someone else",
            ));
        }
        let scope = request.scope.unwrap_or(Scope::Global);
        scope.check_agent(request.agent_id.as_deref())?;
        if !credential_reaches(&actor.principal, &request.name, scope) {
            let audited = Audited {
                action: "access.denied",
                outcome: AuditOutcome::Denied,
                prompt: None,
                before_hash: None,
                after_hash: None,
                detail: serde_json::json!({"attempted": "create", "name": request.name, "reason": "outside the credential's restriction"}),
            };
            self.audit(actor, audited).await?;
            return Err(forbidden(
                "this credential may not create prompts with this name or scope",
            ));
        }
        let classification = request.classification.unwrap_or(Classification::Internal);
        let mut access = request.access.unwrap_or_default();
        // A non-admin who creates a restricted prompt keeps the right to read it.
        if !admin
            && classification == Classification::Restricted
            && let Some(user_id) = actor.user_id()
            && !access.grants.contains(&Grantee::User(user_id))
        {
            access.grants.push(Grantee::User(user_id));
        }
        let content = Content::from_json(&request.content)?;
        let kind = request.kind.unwrap_or(content.kind());
        content.check_kind(kind)?;
        let prompt = NewPrompt {
            name: PromptName::parse(&request.name)?,
            title: checked_text("title", request.title, MAX_TITLE)?,
            description: checked_text("description", request.description, MAX_TEXT)?,
            long_description_markdown: checked_text(
                "long_description_markdown",
                request.long_description_markdown,
                MAX_LONG_TEXT,
            )?,
            scope,
            agent_id: request.agent_id,
            owner_id: request.owner_id.or(actor.user_id()),
            creator_id: actor.user_id(),
            prompt_type: request.prompt_type,
            kind,
            tags: parse_tags(&request.tags)?,
            source: match &request.source {
                Some(source) => Source::parse(source)?,
                None => Source::human(),
            },
            classification,
            access,
        };
        let version = self
            .new_version(
                actor,
                prompt.prompt_type.as_deref(),
                content,
                request.config,
                request.parameter_schema,
                request.notes,
                &request.labels,
                None,
            )
            .await?;
        let detail = self.store.create_prompt(prompt, version).await?;
        self.changed(crate::serve_cache::CacheEvent::Prompt(detail.prompt.id));
        let first_hash = detail
            .versions
            .first()
            .map(|version| version.diff_hash.clone());
        self.audit(
            actor,
            Audited::ok("prompt.create", Some(&detail.prompt)).hashes(None, first_hash),
        )
        .await?;
        Ok(PromptResponse::from(&detail))
    }

    pub async fn get_prompt(&self, actor: &Actor, key: &str) -> AppResult<PromptResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let detail = self.store.get_prompt(&PromptKey::Id(prompt.id)).await?;
        self.audit_text_read(actor, &detail.prompt, "prompt")
            .await?;
        Ok(PromptResponse::from(&detail))
    }

    pub async fn list_prompts(
        &self,
        actor: &Actor,
        query: ListPromptsQuery,
    ) -> AppResult<PromptListResponse> {
        let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(AppError::unprocessable(
                "invalid_query",
                format!("per_page must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        let page = query.page.unwrap_or(1);
        if page < 1 {
            return Err(AppError::unprocessable("invalid_query", "page starts at 1"));
        }
        let after_name = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let store_query = PromptQuery {
            scope: query.scope,
            owner_id: query.owner,
            tag: query.tag,
            prompt_type: query.prompt_type,
            status: query.status,
            label: query.label.as_deref().map(LabelName::parse).transpose()?,
            q: query.q.filter(|q| !q.is_empty()),
            name_prefix: query.name_prefix.filter(|prefix| !prefix.is_empty()),
            offset: if after_name.is_some() {
                0
            } else {
                (page - 1)
                    .checked_mul(per_page)
                    .ok_or_else(|| AppError::unprocessable("invalid_query", "page is too large"))?
            },
            after_name,
            limit: per_page,
            visibility: visibility_filter(&actor.principal),
        };
        let result = self.store.list_prompts(&store_query).await?;
        let next_cursor = match result.items.last() {
            Some(last) if result.items.len() as i64 == per_page => {
                Some(encode_cursor(last.prompt.name.as_str()))
            }
            _ => None,
        };
        Ok(PromptListResponse {
            items: result.items.iter().map(summary).collect(),
            total: result.total,
            page: if store_query.after_name.is_some() {
                0
            } else {
                page
            },
            per_page,
            next_cursor,
        })
    }

    /// Updates metadata. `if_match` is the prompt's `ETag`; a stale one is `version_conflict`.
    pub async fn update_prompt(
        &self,
        actor: &Actor,
        key: &str,
        request: UpdatePromptRequest,
        if_match: Option<&str>,
    ) -> AppResult<PromptResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        let owner_or_admin = actor.role() == Role::Admin
            || (actor.user_id().is_some() && prompt.owner_id == actor.user_id());
        if !owner_or_admin
            && (request.access.is_some()
                || request.owner_id.is_some()
                || request.classification.is_some()
                || request.scope.is_some()
                || request.agent_id.is_some()
                || request.prompt_type.is_some())
        {
            return Err(forbidden(
                "only admins and the prompt's owner can change its owner, scope, agent, type, classification or access rules",
            ));
        }
        self.check_governance_change(&prompt, &request).await?;
        let expected_revision = match if_match {
            Some(header) => Some(revision_from_if_match(&prompt, header)?),
            None => None,
        };
        let scope = request.scope.unwrap_or(prompt.scope);
        if !credential_reaches(&actor.principal, prompt.name.as_str(), scope) {
            return Err(forbidden(
                "this credential may not move the prompt to that scope",
            ));
        }
        let agent_id = match &request.agent_id {
            Some(agent_id) => agent_id.clone(),
            None if scope == Scope::Agent => prompt.agent_id.clone(),
            None => None,
        };
        scope.check_agent(agent_id.as_deref())?;
        if let Some(Some(key)) = &request.prompt_type {
            let prompt_type = self.store.get_prompt_type(key).await?;
            if prompt.prompt_type.as_deref() != Some(key.as_str()) {
                // The new type's contract must hold for what the prompt serves now.
                let (_, latest) = self
                    .store
                    .resolve_version(
                        &PromptKey::Id(prompt.id),
                        &VersionSelector::Label(LabelName::latest()),
                    )
                    .await?;
                check_type_contract(
                    &prompt_type,
                    latest.parameter_schema.as_ref(),
                    &format!(
                        "the parameter_schema of the latest version ({})",
                        latest.version_number
                    ),
                )?;
            }
        }
        let patch = PromptPatch {
            title: request
                .title
                .map(|title| checked_text("title", title, MAX_TITLE))
                .transpose()?,
            description: request
                .description
                .map(|text| checked_text("description", text, MAX_TEXT))
                .transpose()?,
            long_description_markdown: request
                .long_description_markdown
                .map(|text| checked_text("long_description_markdown", text, MAX_LONG_TEXT))
                .transpose()?,
            scope: request.scope,
            agent_id: (agent_id != prompt.agent_id).then_some(agent_id),
            owner_id: request.owner_id,
            prompt_type: request.prompt_type,
            tags: request.tags.as_deref().map(parse_tags).transpose()?,
            classification: request.classification,
            status: request.status,
            access: request.access,
        };
        let updated = self
            .store
            .update_prompt(prompt.id, patch, expected_revision)
            .await?;
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        self.audit(
            actor,
            Audited::ok("prompt.update", Some(&updated))
                .detail(serde_json::json!({"revision": updated.revision})),
        )
        .await?;
        let detail = self.store.get_prompt(&PromptKey::Id(prompt.id)).await?;
        Ok(PromptResponse::from(&detail))
    }

    /// A prompt's type and classification decide its approval workflow and which of its labels
    /// are protected, so changing them must not weaken a review under way or leave a newly
    /// protected label on a version that was never approved: refused (409) while a version is
    /// in review, and when the new type protects every label (`requires_approval`) while a label
    /// points at a version that is not approved.
    async fn check_governance_change(
        &self,
        prompt: &Prompt,
        request: &UpdatePromptRequest,
    ) -> AppResult<()> {
        let new_type = match &request.prompt_type {
            Some(new) if new.as_deref() != prompt.prompt_type.as_deref() => Some(new.as_deref()),
            _ => None,
        };
        let new_classification = request
            .classification
            .filter(|classification| *classification != prompt.classification);
        if new_type.is_none() && new_classification.is_none() {
            return Ok(());
        }
        let detail = self.store.get_prompt(&PromptKey::Id(prompt.id)).await?;
        if let Some(version) = detail
            .versions
            .iter()
            .find(|version| version.status == VersionStatus::Review)
        {
            return Err(AppError::new(
                axum::http::StatusCode::CONFLICT,
                "review_in_progress",
                format!(
                    "version {} is in review; its workflow follows the prompt's type and \
                     classification, so finish or withdraw the review before changing them",
                    version.version_number
                ),
            ));
        }
        let Some(Some(type_key)) = new_type else {
            return Ok(());
        };
        if !self
            .store
            .get_prompt_type(type_key)
            .await?
            .requires_approval
        {
            return Ok(());
        }
        let status_of = |number: i64| {
            detail
                .versions
                .iter()
                .find(|version| version.version_number == number)
                .map(|version| version.status)
        };
        for (label, primary) in &detail.labels {
            if label == LabelName::latest().as_str() {
                continue;
            }
            let mut numbers = vec![*primary];
            if let Some(split) = detail.label_splits.get(label) {
                numbers.extend(split.entries().iter().map(|entry| entry.version));
            }
            for number in numbers {
                let status = status_of(number);
                if status != Some(VersionStatus::Approved) {
                    return Err(AppError::unprocessable(
                        "label_requires_approval",
                        format!(
                            "prompt type {type_key:?} protects every label, and label {label:?} \
                             points at version {number}, which is {}; move the label to an \
                             approved version first",
                            status.map_or("missing", |status| status.as_str())
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub async fn delete_prompt(&self, actor: &Actor, key: &str) -> AppResult<()> {
        let prompt = self.authorized_prompt(actor, key, Action::Delete).await?;
        self.store.delete_prompt(prompt.id).await?;
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        self.audit(actor, Audited::ok("prompt.delete", Some(&prompt)))
            .await
    }

    /// Adds a version; `created` is false when it was identical to the latest one. Absent
    /// `config` and `parameter_schema` carry over from the latest version.
    pub async fn add_version(
        &self,
        actor: &Actor,
        key: &str,
        request: CreateVersionRequest,
    ) -> AppResult<(VersionResponse, bool)> {
        // One read for the prompt and its newest version; access is decided on what was read.
        let prompt_key = parse_key(key)?;
        let (prompt, latest) = match self
            .store
            .resolve_version(&prompt_key, &VersionSelector::Label(LabelName::latest()))
            .await
        {
            Ok(pair) => pair,
            Err(StoreError::NotFound { .. }) => {
                // Missing, or hidden: answered alike.
                self.authorized_prompt(actor, key, Action::Write).await?;
                return Err(AppError::from(StoreError::not_found(
                    prompt_key.to_string(),
                )));
            }
            Err(other) => return Err(other.into()),
        };
        self.authorize(actor, Action::Write, Some(&prompt))
            .await
            .map_err(|error| guard::as_addressed(error, &prompt_key))?;
        let content = Content::from_json(&request.content)?;
        content.check_kind(prompt.kind)?;
        let before_hash = latest.diff_hash.clone();
        let carry_over = CarryOver {
            config: request.config.is_none(),
            parameter_schema: request.parameter_schema.is_none(),
        };
        // What is carried over is taken again inside the store's transaction (a concurrent
        // version may land in between); the values read here only serve validation.
        let config = request.config.unwrap_or(latest.config);
        let parameter_schema = match request.parameter_schema {
            Some(given) => given,
            None => latest.parameter_schema,
        };
        let mut version = self
            .new_version(
                actor,
                prompt.prompt_type.as_deref(),
                content,
                Some(config),
                parameter_schema,
                request.notes,
                &request.labels,
                request.bump,
            )
            .await?;
        version.carry_over = carry_over;
        // Labels sent with the version move even when the version is identical to the latest
        // one; each move is audited, so note where they pointed before.
        let labels_before = if version.labels.is_empty() {
            BTreeMap::new()
        } else {
            self.store
                .get_prompt(&PromptKey::Id(prompt.id))
                .await?
                .labels
        };
        let requested_labels = version.labels.clone();
        let added = self.store.add_version(prompt.id, version).await;
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        let added = added?;
        if added.created {
            let audited = Audited::ok("version.create", Some(&prompt))
                .hashes(Some(before_hash), Some(added.version.diff_hash.clone()))
                .detail(serde_json::json!({"version": added.version.version_number}));
            self.audit(actor, audited).await?;
        }
        let now_at = added.version.version_number;
        for label in requested_labels {
            let from = labels_before.get(label.as_str()).copied();
            if from != Some(now_at) {
                let audited = Audited::ok("label.set", Some(&prompt)).detail(
                    serde_json::json!({"label": label.as_str(), "from": from, "to": now_at}),
                );
                self.audit(actor, audited).await?;
            }
        }
        Ok((VersionResponse::from(&added.version), added.created))
    }

    /// The compliance findings of one version (read like the version itself).
    pub async fn version_findings(
        &self,
        actor: &Actor,
        key: &str,
        version_number: i64,
    ) -> AppResult<FindingsResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let version = self.store.get_version(prompt.id, version_number).await?;
        Ok(FindingsResponse {
            prompt_id: prompt.id,
            prompt_name: prompt.name.to_string(),
            version_number,
            status: version.status,
            token_count: version.token_count,
            blocking: compliance::has_errors(&version.findings),
            findings: version.findings,
        })
    }

    pub async fn get_version(
        &self,
        actor: &Actor,
        key: &str,
        version_number: i64,
    ) -> AppResult<VersionResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let version = self.store.get_version(prompt.id, version_number).await?;
        self.audit_text_read(actor, &prompt, "version").await?;
        Ok(VersionResponse::from(&version))
    }

    /// Moves a version to another status (SPEC §6): the actor must be able to write the prompt
    /// (hidden: 404), then `core::lifecycle` decides whether this move exists (422
    /// `invalid_transition`) and is theirs to make (403 `forbidden_transition`, audited as
    /// refused). The store moves it only from the status decided on (409 `status_conflict` if it
    /// changed meanwhile). Audited as `version.transition` with from, to, action and comment.
    pub async fn transition_version(
        &self,
        actor: &Actor,
        key: &str,
        version_number: i64,
        request: TransitionRequest,
    ) -> AppResult<VersionResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        if let Some(comment) = &request.comment
            && comment.chars().count() > MAX_TRANSITION_COMMENT
        {
            return Err(DomainError::InvalidField {
                field: "comment",
                reason: format!("at most {MAX_TRANSITION_COMMENT} characters"),
            }
            .into());
        }
        if request.to != promptvault_core::model::VersionStatus::Deprecated
            && (request.replacement.is_some()
                || request.period.is_some()
                || request.sunset.is_some())
        {
            return Err(AppError::unprocessable(
                "invalid_field",
                "replacement, period and sunset go only with \"to\": \"deprecated\"",
            ));
        }
        let version = self.store.get_version(prompt.id, version_number).await?;
        let from = version.status;
        // Approval goes through the workflow (steps, roles, counts), never a plain move. Like an
        // invalid move (422), this is a malformed request, not a refused permission.
        if request.to == VersionStatus::Approved {
            return Err(AppError::unprocessable(
                "approval_required",
                format!(
                    "a version is approved through its approval workflow, not a transition: \
                     POST /api/prompts/{}/versions/{version_number}/approve (prompt review \
                     approve)",
                    prompt.id
                ),
            ));
        }
        let is_author = actor.user_id().is_some() && version.author_id == actor.user_id();
        let action = match lifecycle::transition(from, request.to, actor.role(), is_author) {
            Ok(action) => action,
            Err(error) => {
                if let LifecycleError::ForbiddenTransition { .. } = error {
                    let refused = Audited {
                        action: "version.transition",
                        outcome: AuditOutcome::Denied,
                        prompt: Some(&prompt),
                        before_hash: None,
                        after_hash: None,
                        detail: serde_json::json!({
                            "version": version_number,
                            "from": from.as_str(),
                            "to": request.to.as_str(),
                            "reason": error.to_string(),
                        }),
                    };
                    self.audit(actor, refused).await?;
                }
                return Err(lifecycle_error(&error));
            }
        };
        // Submitting for review runs the compliance gate: the findings stored with the version
        // (computed when it was created); any error finding blocks it.
        if action == LifecycleAction::Submit && compliance::has_errors(&version.findings) {
            let blocking: Vec<&Finding> = version
                .findings
                .iter()
                .filter(|finding| finding.severity == Severity::Error)
                .collect();
            let refused = Audited {
                action: "version.transition",
                outcome: AuditOutcome::Denied,
                prompt: Some(&prompt),
                before_hash: None,
                after_hash: None,
                detail: serde_json::json!({
                    "version": version_number,
                    "from": from.as_str(),
                    "to": request.to.as_str(),
                    "reason": "compliance_failed",
                    "rules": blocking.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
                }),
            };
            self.audit(actor, refused).await?;
            return Err(compliance_failed(version_number, &version.findings));
        }
        let deprecation = if action == LifecycleAction::Deprecate {
            let now = time::OffsetDateTime::now_utc().truncate_to_microsecond();
            Some(self.plan_deprecation(actor, &prompt, &request, now).await?)
        } else {
            None
        };
        let moved = match &deprecation {
            Some(deprecation) => {
                self.store
                    .deprecate_version(prompt.id, version_number, from, deprecation.clone())
                    .await
            }
            None => {
                self.store
                    .set_version_status(prompt.id, version_number, from, request.to)
                    .await
            }
        };
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        let moved = match moved {
            Ok(moved) => moved,
            Err(StoreError::VersionLabelled { version, labels }) => {
                let refused = Audited {
                    action: "version.transition",
                    outcome: AuditOutcome::Denied,
                    prompt: Some(&prompt),
                    before_hash: None,
                    after_hash: None,
                    detail: serde_json::json!({
                        "version": version_number,
                        "from": from.as_str(),
                        "to": request.to.as_str(),
                        "reason": "version_labelled",
                        "labels": labels,
                    }),
                };
                self.audit(actor, refused).await?;
                return Err(retire::version_labelled(version, &labels));
            }
            Err(other) => return Err(other.into()),
        };
        let mut detail = serde_json::json!({
            "version": version_number,
            "from": from.as_str(),
            "to": moved.status.as_str(),
            "action": action.as_str(),
            "comment": request.comment,
        });
        if let Some(deprecation) = &deprecation {
            detail["sunset_at"] = serde_json::json!(
                promptvault_api::prompts::DeprecationResponse::from(deprecation)
                    .sunset_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            );
            detail["replacement"] =
                serde_json::json!(deprecation.replacement.as_ref().map(|r| r.name.as_str()));
        }
        let audited = Audited::ok("version.transition", Some(&prompt))
            .hashes(Some(moved.diff_hash.clone()), Some(moved.diff_hash.clone()))
            .detail(detail);
        self.audit(actor, audited).await?;
        self.audit_text_read(actor, &prompt, "version").await?;
        Ok(VersionResponse::from(&moved))
    }

    pub async fn diff(
        &self,
        actor: &Actor,
        key: &str,
        query: DiffQuery,
    ) -> AppResult<DiffResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let detail = self.store.get_prompt(&PromptKey::Id(prompt.id)).await?;
        self.audit_text_read(actor, &prompt, "diff").await?;
        let newest = detail
            .versions
            .first()
            .map(|version| version.version_number)
            .unwrap_or(1);
        let to = query.to.unwrap_or(newest);
        let from = query.from.unwrap_or_else(|| to.saturating_sub(1).max(1));
        let find = |number: i64| {
            detail
                .versions
                .iter()
                .find(|version| version.version_number == number)
                .ok_or_else(|| {
                    AppError::not_found(
                        "version_not_found",
                        format!(
                            "version {number} of prompt {:?} not found",
                            detail.prompt.name.as_str()
                        ),
                    )
                })
        };
        Ok(DiffResponse::from(&diff::diff_versions(
            find(from)?,
            find(to)?,
        )))
    }

    pub async fn label_history(
        &self,
        actor: &Actor,
        key: &str,
        label: &str,
    ) -> AppResult<Vec<LabelEventResponse>> {
        let label = LabelName::parse(label)?;
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let events = self.store.label_history(prompt.id, &label).await?;
        Ok(events.iter().map(LabelEventResponse::from).collect())
    }

    pub async fn link(
        &self,
        actor: &Actor,
        key: &str,
        request: LinkRequest,
    ) -> AppResult<LinkResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Link).await?;
        let link = self
            .store
            .upsert_link(NewLink {
                prompt_id: prompt.id,
                capability: ident::parse_identifier("capability", &request.capability, 128)?,
                agent_id: request
                    .agent_id
                    .as_deref()
                    .map(|agent| ident::parse_identifier("agent_id", agent, 128))
                    .transpose()?,
                priority: request.priority.unwrap_or(0),
            })
            .await?;
        self.changed(crate::serve_cache::CacheEvent::Capability(
            link.capability.clone(),
        ));
        let audited = Audited::ok("link.set", Some(&prompt)).detail(serde_json::json!({
            "capability": link.capability, "agent_id": link.agent_id, "priority": link.priority
        }));
        self.audit(actor, audited).await?;
        Ok(LinkResponse::from(&link))
    }

    pub async fn list_links(
        &self,
        actor: &Actor,
        query: LinksQuery,
    ) -> AppResult<Vec<LinkResponse>> {
        let links = self
            .store
            .list_links(&LinkFilter {
                agent_id: query.agent,
                capability: query.capability,
                ..Default::default()
            })
            .await?;
        // A link names its prompt: list only links to prompts the actor may see.
        let mut visible = Vec::with_capacity(links.len());
        for link in &links {
            let prompt = self
                .store
                .find_prompt(&PromptKey::Id(link.prompt_id))
                .await?;
            if promptvault_core::access::is_visible(&actor.principal, &prompt) {
                visible.push(LinkResponse::from(link));
            }
        }
        Ok(visible)
    }

    pub async fn delete_link(&self, actor: &Actor, id: Uuid) -> AppResult<()> {
        // Authorize on the link's own prompt: a link to a prompt the actor may not see (or link)
        // is not theirs to remove.
        let links = self
            .store
            .list_links(&LinkFilter {
                link_id: Some(id),
                ..Default::default()
            })
            .await?;
        let Some(link) = links.first() else {
            return Err(AppError::not_found(
                "link_not_found",
                format!("link {id} not found"),
            ));
        };
        let prompt = self
            .store
            .find_prompt(&PromptKey::Id(link.prompt_id))
            .await?;
        self.authorize(actor, Action::Link, Some(&prompt))
            .await
            .map_err(|error| {
                if error.code == "prompt_not_found" {
                    AppError::not_found("link_not_found", format!("link {id} not found"))
                } else {
                    error
                }
            })?;
        self.store.delete_link(id).await?;
        self.changed(crate::serve_cache::CacheEvent::Capability(
            link.capability.clone(),
        ));
        let audited = Audited::ok("link.delete", Some(&prompt)).detail(serde_json::json!({
            "link_id": id, "capability": link.capability, "agent_id": link.agent_id
        }));
        self.audit(actor, audited).await
    }

    /// Renders a version picked by number or label (default `production`, then `latest`).
    pub async fn render(
        &self,
        actor: &Actor,
        key: &str,
        request: RenderRequest,
    ) -> AppResult<RenderResponse> {
        let raw_key = key;
        let key = parse_key(raw_key)?;
        let (selector, fall_back_to_latest) = match (request.version, request.label.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(AppError::unprocessable(
                    "invalid_field",
                    "give either version or label, not both",
                ));
            }
            (Some(number), None) => (VersionSelector::Number(number), false),
            (None, Some(label)) => (VersionSelector::Label(LabelName::parse(label)?), false),
            (None, None) => (VersionSelector::Label(LabelName::production()), true),
        };
        // The hot path: one read for the prompt and its version, then the access decision on
        // what was read. Only when something is missing is the prompt checked on its own, so
        // that "label … not found" is never said about a prompt the caller may not see.
        let mut served_label = match &selector {
            VersionSelector::Label(label) => Some(label.clone()),
            VersionSelector::Number(_) => None,
        };
        let (prompt, version) = match self.store.resolve_version(&key, &selector).await {
            Ok(pair) => pair,
            Err(StoreError::NotFound { what }) => {
                let visible = self
                    .authorized_prompt(actor, raw_key, Action::Serve)
                    .await?;
                if fall_back_to_latest && what.starts_with("label") {
                    served_label = None;
                    self.store
                        .resolve_version(
                            &PromptKey::Id(visible.id),
                            &VersionSelector::Label(LabelName::latest()),
                        )
                        .await?
                } else {
                    return Err(StoreError::NotFound { what }.into());
                }
            }
            Err(other) => return Err(other.into()),
        };
        self.authorize(actor, Action::Serve, Some(&prompt))
            .await
            .map_err(|error| guard::as_addressed(error, &key))?;
        // A label that splits traffic serves the version the request's key (or chance) picks.
        let version = match &served_label {
            Some(label) => {
                self.split_pick(&prompt, label, version, request.request_key.as_deref())
                    .await?
            }
            None => version,
        };
        let deprecation = self.serving_notice(&version)?;
        self.audit_text_read(actor, &prompt, "render").await?;
        let compiled = self.compiled(&version, request.undefined.unwrap_or_default())?;
        let wish = self.run_wish(request.record, request.session_id)?;
        let (rendered, params) = self.render_compiled(compiled, request.params).await?;
        let (rendered, redactions) = if self.compliance.redact.contains(&prompt.classification) {
            redact_rendered(rendered)
        } else {
            (rendered, 0)
        };
        let mut response = render_response(&prompt, &version, rendered);
        response.redactions = redactions;
        response.deprecation = deprecation;
        response.run_id = self.note_use(actor, &prompt, &version, params, &response.rendered, wish);
        Ok(response)
    }

    /// Renders `compiled` with `params`: a straight-line template (no tags, calls or
    /// repetition: its cost is linear in the parameters and the capped output) where the request
    /// stands, anything else on the render pool. Handing a render to the pool costs more than a
    /// straight-line render itself, and most prompts are straight-line. The params come back
    /// with the result (a recorded run keeps them), so no caller copies them.
    pub(crate) async fn render_compiled(
        &self,
        compiled: Arc<CompiledPrompt>,
        params: serde_json::Map<String, Value>,
    ) -> AppResult<(Rendered, serde_json::Map<String, Value>)> {
        let (rendered, params) = if compiled.is_straight_line() {
            compiled.render_owned(params)
        } else {
            self.on_render_pool(move || compiled.render_owned(params))
                .await?
        };
        Ok((rendered?, params))
    }

    /// Runs template work (renders, template tests) on the blocking pool, at most one job per
    /// core at a time, so hostile templates never stall the async workers.
    pub(crate) async fn on_render_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> AppResult<T> {
        let slot = self
            .render_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|error| AppError::internal(&error))?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|error| AppError::internal(&error))
    }

    pub(crate) fn compiled(
        &self,
        version: &PromptVersion,
        undefined: UndefinedMode,
    ) -> AppResult<Arc<CompiledPrompt>> {
        let key = (version.id, undefined);
        if let Some(hit) = self.compiled.get(&key) {
            crate::metrics::cache_hit("compiled");
            return Ok(hit);
        }
        crate::metrics::cache_miss("compiled");
        let compiled = Arc::new(CompiledPrompt::compile(
            &version.content,
            version.parameter_schema.as_ref(),
            undefined,
            self.limits,
        )?);
        self.compiled.insert(key, compiled.clone());
        Ok(compiled)
    }

    pub async fn create_prompt_type(
        &self,
        actor: &Actor,
        request: CreatePromptTypeRequest,
    ) -> AppResult<PromptTypeResponse> {
        self.authorize(actor, Action::ManagePromptTypes, None)
            .await?;
        let prompt_type = self
            .store
            .create_prompt_type(validate_prompt_type(request)?)
            .await?;
        self.audit(
            actor,
            Audited::ok("prompt_type.create", None)
                .detail(serde_json::json!({"key": prompt_type.key})),
        )
        .await?;
        Ok(PromptTypeResponse::from(&prompt_type))
    }

    pub async fn list_prompt_types(&self, _actor: &Actor) -> AppResult<Vec<PromptTypeResponse>> {
        Ok(self
            .store
            .list_prompt_types()
            .await?
            .iter()
            .map(PromptTypeResponse::from)
            .collect())
    }

    pub async fn get_prompt_type(
        &self,
        _actor: &Actor,
        key: &str,
    ) -> AppResult<PromptTypeResponse> {
        Ok(PromptTypeResponse::from(
            &self.store.get_prompt_type(key).await?,
        ))
    }

    pub async fn update_prompt_type(
        &self,
        actor: &Actor,
        key: &str,
        request: UpdatePromptTypeRequest,
    ) -> AppResult<PromptTypeResponse> {
        self.authorize(actor, Action::ManagePromptTypes, None)
            .await?;
        if let Some(name) = &request.name {
            check_name_text(name)?;
        }
        if let Some(Some(schema)) = &request.schema {
            promptvault_core::render::check_schema(schema)?;
        }
        if let Some(days) = request.review_every_days {
            checked_review_days(days)?;
        }
        if let Some(Some(workflow)) = &request.approval_workflow {
            workflow.validate("approval_workflow")?;
        }
        let patch = PromptTypePatch {
            name: request.name,
            schema: request.schema,
            restricted_creation: request.restricted_creation,
            requires_approval: request.requires_approval,
            review_every_days: request.review_every_days,
            approval_workflow: request.approval_workflow,
        };
        let updated = self.store.update_prompt_type(key, patch).await?;
        self.audit(
            actor,
            Audited::ok("prompt_type.update", None).detail(serde_json::json!({"key": key})),
        )
        .await?;
        Ok(PromptTypeResponse::from(&updated))
    }

    pub async fn delete_prompt_type(&self, actor: &Actor, key: &str) -> AppResult<()> {
        self.authorize(actor, Action::ManagePromptTypes, None)
            .await?;
        self.store.delete_prompt_type(key).await?;
        self.audit(
            actor,
            Audited::ok("prompt_type.delete", None).detail(serde_json::json!({"key": key})),
        )
        .await
    }

    /// Validates a version's fields (and the prompt type's contract) into a storable version.
    #[allow(clippy::too_many_arguments)]
    async fn new_version(
        &self,
        actor: &Actor,
        prompt_type: Option<&str>,
        content: Content,
        config: Option<Value>,
        parameter_schema: Option<Value>,
        notes: Option<String>,
        labels: &[String],
        bump: Option<promptvault_core::version::Bump>,
    ) -> AppResult<NewVersion> {
        let notes = checked_text("notes", notes, MAX_TEXT)?;
        let labels = labels
            .iter()
            .map(|label| LabelName::parse_user_settable(label))
            .collect::<Result<Vec<_>, _>>()?;
        let draft = VersionDraft::new(
            content,
            config.unwrap_or_else(|| Value::Object(Default::default())),
            parameter_schema,
            bump,
        )?;
        let mut requires_approval = false;
        if let Some(key) = prompt_type {
            let prompt_type = self.store.get_prompt_type(key).await?;
            check_type_contract(
                &prompt_type,
                draft.parameter_schema(),
                "the parameter_schema",
            )?;
            requires_approval = prompt_type.requires_approval;
        }
        // A new version is a draft: it may not carry a protected label. Refused before
        // anything is written.
        if let Some(label) = labels
            .iter()
            .find(|label| self.label_policy.is_protected(label, requires_approval))
        {
            let refused = Audited {
                action: "label.set",
                outcome: AuditOutcome::Denied,
                prompt: None,
                before_hash: None,
                after_hash: None,
                detail: serde_json::json!({
                    "label": label.as_str(),
                    "reason": "label_requires_approval",
                    "with": "new version",
                }),
            };
            self.audit(actor, refused).await?;
            return Err(AppError::unprocessable(
                "label_requires_approval",
                format!(
                    "label {:?} is protected: only approved versions may carry it, and a new \
                     version is a draft; approve the version, then move the label",
                    label.as_str()
                ),
            ));
        }
        Ok(NewVersion {
            draft,
            notes,
            author_id: actor.user_id(),
            labels,
            carry_over: Default::default(),
            compliance: self.compliance.clone(),
        })
    }
}

fn validate_prompt_type(request: CreatePromptTypeRequest) -> AppResult<NewPromptType> {
    let key = ident::parse_identifier("prompt type key", &request.key, 64)?;
    check_name_text(&request.name)?;
    if let Some(schema) = &request.schema {
        promptvault_core::render::check_schema(schema)?;
    }
    if let Some(workflow) = &request.approval_workflow {
        workflow.validate("approval_workflow")?;
    }
    Ok(NewPromptType {
        key,
        name: request.name,
        schema: request.schema,
        restricted_creation: request.restricted_creation,
        requires_approval: request.requires_approval,
        review_every_days: checked_review_days(request.review_every_days)?,
        approval_workflow: request.approval_workflow,
    })
}

/// A review interval is a positive number of days.
fn checked_review_days(days: Option<u32>) -> Result<Option<u32>, DomainError> {
    days.map(promptvault_core::retire::check_review_interval)
        .transpose()
}

fn check_name_text(name: &str) -> AppResult<()> {
    if name.trim().is_empty() {
        return Err(DomainError::InvalidField {
            field: "name",
            reason: "must not be empty".into(),
        }
        .into());
    }
    Ok(ident::check_text("name", name, MAX_TITLE)?)
}

/// A prompt type's `schema` constrains the `parameter_schema` of every version of its prompts;
/// `subject` names the schema in the error's detail.
fn check_type_contract(
    prompt_type: &promptvault_core::model::PromptType,
    parameter_schema: Option<&Value>,
    subject: &str,
) -> AppResult<()> {
    let problems = type_contract_problems(
        prompt_type.schema.as_ref(),
        parameter_schema,
        "/parameter_schema",
    )?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(AppError::unprocessable(
        "prompt_type_mismatch",
        format!(
            "{subject} does not satisfy prompt type {:?}",
            prompt_type.key
        ),
    )
    .with_errors(problems))
}

/// Where `parameter_schema` (absent: `{}`) fails a prompt type's `type_schema` (absent: no
/// constraint), each problem's pointer under `pointer` (the schema's own place in the input).
fn type_contract_problems(
    type_schema: Option<&Value>,
    parameter_schema: Option<&Value>,
    pointer: &str,
) -> AppResult<Vec<ProblemItem>> {
    let Some(type_schema) = type_schema else {
        return Ok(Vec::new());
    };
    let empty = Value::Object(Default::default());
    let instance = parameter_schema.unwrap_or(&empty);
    Ok(
        match promptvault_core::render::validate_against(type_schema, instance)? {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .into_iter()
                .map(|error| ProblemItem {
                    pointer: format!("{pointer}{}", error.pointer),
                    message: error.message,
                })
                .collect(),
        },
    )
}

fn summary(item: &PromptListItem) -> PromptSummary {
    let prompt = &item.prompt;
    PromptSummary {
        id: prompt.id,
        name: prompt.name.to_string(),
        title: prompt.title.clone(),
        description: prompt.description.clone(),
        scope: prompt.scope,
        agent_id: prompt.agent_id.clone(),
        owner_id: prompt.owner_id,
        prompt_type: prompt.prompt_type.clone(),
        kind: prompt.kind,
        tags: prompt.tags.clone(),
        source: prompt.source.as_str().to_string(),
        classification: prompt.classification,
        status: prompt.status,
        latest_version: item.latest_version,
        labels: item.labels.clone(),
        updated_at: prompt.updated_at,
    }
}

fn render_response(prompt: &Prompt, version: &PromptVersion, rendered: Rendered) -> RenderResponse {
    RenderResponse {
        prompt_id: prompt.id,
        name: prompt.name.to_string(),
        version_number: version.version_number,
        semver: version.semver.to_string(),
        rendered: serde_json::to_value(rendered).unwrap_or(Value::Null),
        config: version.config.clone(),
        redactions: 0,
        deprecation: None,
        run_id: None,
    }
}

/// Output filtering (SPEC §9): every secret and PII match in the rendered text (each chat
/// message) replaced by `[REDACTED:<rule>]`; returns how many were.
pub(crate) fn redact_rendered(rendered: Rendered) -> (Rendered, u64) {
    let mut count = 0u64;
    let mut redact = |text: String| {
        let (text, found) = compliance::redact(&text);
        count += found as u64;
        text
    };
    let rendered = match rendered {
        Rendered::Text(text) => Rendered::Text(redact(text)),
        Rendered::Chat(messages) => Rendered::Chat(
            messages
                .into_iter()
                .map(|mut message| {
                    message.content = redact(message.content);
                    message
                })
                .collect(),
        ),
    };
    (rendered, count)
}

/// Redacts a version's content as it goes out (a text, or the `content` of every chat entry),
/// returning how many matches were replaced.
pub(crate) fn redact_content(content: &mut serde_json::Value) -> u64 {
    let mut count = 0u64;
    let mut redact = |text: &mut String| {
        let (redacted, found) = compliance::redact(text);
        count += found as u64;
        *text = redacted;
    };
    match content {
        serde_json::Value::String(text) => redact(text),
        serde_json::Value::Array(entries) => {
            for entry in entries {
                if let Some(serde_json::Value::String(text)) = entry.get_mut("content") {
                    redact(text);
                }
            }
        }
        _ => {}
    }
    count
}

fn forbidden(reason: &str) -> AppError {
    AppError::new(axum::http::StatusCode::FORBIDDEN, "forbidden", reason)
}

/// A prompt is addressed by its UUID or its name.
pub fn parse_key(raw: &str) -> AppResult<PromptKey> {
    // Only the lengths a UUID's text forms have (simple, hyphenated, braced, URN) are tried as
    // one: a failed parse builds an error, and most keys on the serve path are names.
    if matches!(raw.len(), 32 | 36 | 38 | 45)
        && let Ok(id) = Uuid::parse_str(raw)
    {
        return Ok(PromptKey::Id(id));
    }
    PromptName::parse(raw)
        .map(PromptKey::Name)
        .map_err(|_| AppError::not_found("prompt_not_found", format!("prompt {raw:?} not found")))
}

/// The prompt's entity tag: its id and revision, so it changes with every change to the prompt
/// and never matches another prompt.
pub fn etag(prompt_id: Uuid, revision: i64) -> String {
    format!("\"{}.{revision}\"", prompt_id.simple())
}

/// The revision an `If-Match` header allows the update to apply to: the current one when `*` or
/// any of its (strong) entity tags is the prompt's current ETag; otherwise 412. Weak tags never
/// match (RFC 9110 §13.1.1). The store re-checks the revision atomically, so a change racing
/// with this one still gets 412.
fn revision_from_if_match(prompt: &Prompt, header: &str) -> AppResult<i64> {
    let header = header.trim();
    if header == "*" {
        return Ok(prompt.revision);
    }
    let stale = || {
        AppError::new(
            axum::http::StatusCode::PRECONDITION_FAILED,
            "version_conflict",
            format!(
                "If-Match {header} does not match the prompt's current ETag {}",
                etag(prompt.id, prompt.revision)
            ),
        )
    };
    let current = etag(prompt.id, prompt.revision);
    if header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == current)
    {
        Ok(prompt.revision)
    } else {
        Err(stale())
    }
}

fn checked_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    if let Some(text) = &value {
        ident::check_text(field, text, max)?;
    }
    Ok(value)
}

fn parse_tags(tags: &[String]) -> Result<Vec<String>, DomainError> {
    let mut parsed: Vec<String> = tags
        .iter()
        .map(|tag| ident::parse_tag(tag))
        .collect::<Result<_, _>>()?;
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

fn encode_cursor(name: &str) -> String {
    promptvault_core::hash::hex(name.as_bytes())
}

fn decode_cursor(cursor: &str) -> AppResult<String> {
    let invalid =
        || AppError::unprocessable("invalid_query", "cursor is not one this server issued");
    if !cursor.len().is_multiple_of(2) {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(cursor.get(index..index + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// The longest comment a status change takes.
pub(crate) const MAX_TRANSITION_COMMENT: usize = 2000;

/// A refused status change: 422 when the move does not exist, 403 when it is not the actor's.
/// 422 `compliance_failed`: the version's error findings, one problem item each.
fn compliance_failed(version_number: i64, findings: &[Finding]) -> AppError {
    let errors: Vec<ProblemItem> = findings
        .iter()
        .enumerate()
        .filter(|(_, finding)| finding.severity == Severity::Error)
        .map(|(index, finding)| ProblemItem {
            pointer: format!("/findings/{index}"),
            message: match &finding.location {
                Some(location) => format!("{}: {} ({location})", finding.rule, finding.message),
                None => format!("{}: {}", finding.rule, finding.message),
            },
        })
        .collect();
    AppError::unprocessable(
        "compliance_failed",
        format!(
            "version {version_number} has {} error finding(s) from the compliance checks; fix \
             them in a new version before submitting it for review",
            errors.len()
        ),
    )
    .with_errors(errors)
}

fn lifecycle_error(error: &LifecycleError) -> AppError {
    let status = match error {
        LifecycleError::InvalidTransition { .. } => axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        LifecycleError::ForbiddenTransition { .. } => axum::http::StatusCode::FORBIDDEN,
    };
    AppError::new(status, error.code(), error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_any_name() {
        for name in ["a", "support/summarize", "ünï cödé/x"] {
            assert_eq!(decode_cursor(&encode_cursor(name)).as_deref(), Ok(name));
        }
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor("abc").is_err());
    }

    fn prompt(revision: i64) -> Prompt {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Prompt {
            id: Uuid::now_v7(),
            name: PromptName::parse("a/b").expect("valid"),
            title: None,
            description: None,
            long_description_markdown: None,
            scope: Scope::Global,
            agent_id: None,
            owner_id: None,
            creator_id: None,
            prompt_type: None,
            kind: promptvault_core::model::Kind::Text,
            tags: Vec::new(),
            source: Source::human(),
            classification: promptvault_core::model::Classification::Internal,
            status: promptvault_core::model::PromptStatus::Active,
            access: Default::default(),
            revision,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn the_compiled_cache_capacity_setting_bounds_what_renders_keep() {
        let database = promptvault_store::testing::TestDatabase::sqlite().await;
        let mut settings = crate::settings::Settings::default();
        let kept =
            crate::state_with_store(database.store(), settings.clone(), &[7; 32]).expect("state");
        settings.serving.compiled_cache_capacity = 0;
        let none = crate::state_with_store(database.store(), settings, &[7; 32]).expect("state");
        let request = serde_json::from_value(serde_json::json!({
            "name": "cache/compiled", "content": "Hello {{ name }}"
        }))
        .expect("request");
        let created = kept
            .vault
            .create_prompt(&Actor::local_cli(), request)
            .await
            .expect("created");
        let version = kept
            .vault
            .store
            .get_version(created.id, 1)
            .await
            .expect("version 1");

        let compiled = |vault: &Vault| {
            vault
                .compiled(&version, UndefinedMode::Strict)
                .expect("compiles")
        };
        assert!(
            Arc::ptr_eq(&compiled(&kept.vault), &compiled(&kept.vault)),
            "by default the second render reuses the compiled template"
        );
        assert!(
            !Arc::ptr_eq(&compiled(&none.vault), &compiled(&none.vault)),
            "with capacity 0 every render compiles again"
        );
    }

    #[test]
    fn if_match_matches_only_this_prompts_current_strong_etag() {
        let current = prompt(7);
        let other = prompt(7);
        let cases: Vec<(String, Option<i64>)> = vec![
            (etag(current.id, 7), Some(7)),
            (etag(current.id, 3), None),
            (format!("W/{}", etag(current.id, 7)), None),
            (
                format!("{}, {}", etag(current.id, 0), etag(current.id, 7)),
                Some(7),
            ),
            (
                format!("{}, {}", etag(other.id, 1), etag(current.id, 7)),
                Some(7),
            ),
            ("*".to_string(), Some(7)),
            (etag(other.id, 7), None),
            ("\"garbage\"".to_string(), None),
        ];
        for (header, expected) in cases {
            let result = revision_from_if_match(&current, &header);
            assert_eq!(result.as_ref().ok().copied(), expected, "{header}");
            if let Err(error) = result {
                assert_eq!(error.code, "version_conflict");
            }
        }
    }
}
