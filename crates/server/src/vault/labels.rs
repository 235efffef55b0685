//! Deploying through labels (use cases of [`Vault`]): moving a label to a version or a traffic
//! split, removing it, promoting a split, rolling back, and resolving what a label serves — now,
//! at a past time, or for a sticky `request_key`.
//!
//! The protected-label rule is `promptvault_core::deploy::check_move`: the statuses the vault
//! reads decide the answer, and the store checks the required status again inside the
//! transaction that moves the label, so a status change cannot race the move. Every move is
//! audited (`label.set`, `label.split`, `label.remove`, `label.promote`, `label.rollback`);
//! refusals by the protected-label rule are audited as denied.

use promptvault_api::{
    convert::split_entries,
    prompts::{LabelResponse, PromoteRequest, SetLabelRequest, SplitPick},
};
use promptvault_core::{
    access::Action,
    audit::AuditOutcome,
    deploy::{self, LabelTarget, Split, SplitEntry},
    error::DomainError,
    ident::LabelName,
    model::{LabelEvent, Prompt, PromptVersion, VersionStatus},
};
use promptvault_store::StoreError;
use serde_json::json;

use crate::{
    actor::Actor,
    error::{AppError, AppResult},
    vault::{Vault, guard::Audited},
};

impl Vault {
    /// `PUT …/labels/{label}`: points the label at one version or a split.
    pub async fn set_label(
        &self,
        actor: &Actor,
        key: &str,
        label: &str,
        request: SetLabelRequest,
    ) -> AppResult<LabelResponse> {
        let label = LabelName::parse_user_settable(label)?;
        let target = match (request.version, request.split) {
            (Some(version), None) => LabelTarget::Version(version),
            (None, Some(entries)) => LabelTarget::Split(Split::new(
                entries
                    .iter()
                    .map(|entry| SplitEntry {
                        version: entry.version,
                        weight: entry.weight,
                    })
                    .collect(),
            )?),
            _ => {
                return Err(AppError::unprocessable(
                    "invalid_field",
                    "give either version or split (exactly one)",
                ));
            }
        };
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        let protected = self.is_protected(&prompt, &label).await?;
        if protected {
            let mut statuses = Vec::new();
            for version in target.versions() {
                statuses.push((
                    version,
                    self.store.get_version(prompt.id, version).await?.status,
                ));
            }
            self.check_deploy(actor, &prompt, &label, &statuses, "set")
                .await?;
        }
        let required = protected.then_some(VersionStatus::Approved);
        let moved = self
            .store
            .set_label_target(prompt.id, &label, &target, required, actor.user_id())
            .await;
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        let moved = self
            .audit_refusal(actor, &prompt, &label, "set", moved)
            .await?;
        if let Some(event) = moved {
            self.audit_move(actor, &prompt, &event).await?;
        }
        Ok(LabelResponse {
            label: label.to_string(),
            version: target.primary(),
            split: target.split().map(split_entries),
        })
    }

    /// `DELETE …/labels/{label}`.
    pub async fn remove_label(&self, actor: &Actor, key: &str, label: &str) -> AppResult<()> {
        let label = LabelName::parse_user_settable(label)?;
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        if self.is_protected(&prompt, &label).await? {
            self.check_deploy(actor, &prompt, &label, &[], "remove")
                .await?;
        }
        let event = self
            .store
            .remove_label(prompt.id, &label, actor.user_id())
            .await?;
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        let audited = Audited::ok("label.remove", Some(&prompt))
            .detail(json!({"label": label.as_str(), "from": event.from_version}));
        self.audit(actor, audited).await
    }

    /// `POST …/labels/{label}/promote`: ends the label's split on one of its versions.
    pub async fn promote_label(
        &self,
        actor: &Actor,
        key: &str,
        label: &str,
        request: PromoteRequest,
    ) -> AppResult<LabelResponse> {
        let label = LabelName::parse_user_settable(label)?;
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        let protected = self.is_protected(&prompt, &label).await?;
        if protected {
            self.check_deploy(actor, &prompt, &label, &[], "promote")
                .await?;
        }
        let required = protected.then_some(VersionStatus::Approved);
        let promoted = self
            .store
            .promote_label(
                prompt.id,
                &label,
                request.version,
                required,
                actor.user_id(),
            )
            .await;
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        let promoted = match promoted {
            Err(StoreError::Conflict { what }) => {
                return Err(AppError::new(
                    axum::http::StatusCode::CONFLICT,
                    "label_not_split",
                    what,
                ));
            }
            other => other,
        };
        let event = self
            .audit_refusal(actor, &prompt, &label, "promote", promoted)
            .await?;
        self.audit_move(actor, &prompt, &event).await?;
        Ok(label_response(&event))
    }

    /// `POST …/labels/{label}/rollback`: back to the previous approved target in the history.
    pub async fn rollback_label(
        &self,
        actor: &Actor,
        key: &str,
        label: &str,
    ) -> AppResult<LabelResponse> {
        let label = LabelName::parse_user_settable(label)?;
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        if self.is_protected(&prompt, &label).await? {
            self.check_deploy(actor, &prompt, &label, &[], "rollback")
                .await?;
        }
        let rolled = match self
            .store
            .rollback_label(prompt.id, &label, actor.user_id())
            .await
            .inspect(|_| self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id)))
        {
            Err(StoreError::Conflict { what }) => {
                let refused = Audited {
                    action: "label.rollback",
                    outcome: AuditOutcome::Denied,
                    prompt: Some(&prompt),
                    before_hash: None,
                    after_hash: None,
                    detail: json!({"label": label.as_str(), "reason": "no_rollback_target"}),
                };
                self.audit(actor, refused).await?;
                return Err(AppError::new(
                    axum::http::StatusCode::CONFLICT,
                    "no_rollback_target",
                    what,
                ));
            }
            other => other,
        };
        let event = self
            .audit_refusal(actor, &prompt, &label, "rollback", rolled)
            .await?;
        self.audit_move(actor, &prompt, &event).await?;
        Ok(label_response(&event))
    }

    /// The version a render by label serves when the label splits traffic: `version` itself
    /// (the primary) otherwise.
    pub(crate) async fn split_pick(
        &self,
        prompt: &Prompt,
        label: &LabelName,
        version: PromptVersion,
        request_key: Option<&str>,
    ) -> AppResult<PromptVersion> {
        let Some(target) = self.store.label_target(prompt.id, label, None).await? else {
            return Ok(version);
        };
        let (number, _) = pick(prompt, label, &target, request_key)?;
        if number == version.version_number {
            Ok(version)
        } else {
            Ok(self.store.get_version(prompt.id, number).await?)
        }
    }

    /// Whether `label` is protected on this prompt (the deployment's list, or every label of a
    /// prompt whose type requires approval).
    pub(crate) async fn is_protected(&self, prompt: &Prompt, label: &LabelName) -> AppResult<bool> {
        if label.is_latest() {
            return Ok(false);
        }
        if self.label_policy.is_protected(label, false) {
            return Ok(true);
        }
        self.type_requires_approval(prompt.prompt_type.as_deref())
            .await
    }

    pub(crate) async fn type_requires_approval(
        &self,
        prompt_type: Option<&str>,
    ) -> AppResult<bool> {
        Ok(match prompt_type {
            Some(key) => self.store.get_prompt_type(key).await?.requires_approval,
            None => false,
        })
    }

    /// The protected-label rule for this actor (targets: version and status; empty for moves
    /// whose target the store picks); a refusal is audited as denied.
    async fn check_deploy(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        label: &LabelName,
        targets: &[(i64, VersionStatus)],
        attempted: &str,
    ) -> AppResult<()> {
        // `is_protected` already said yes: decide as for a protected label.
        match deploy::check_move(&self.label_policy, label, true, targets, actor.role()) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.audit_denied(actor, prompt, label, attempted, &error)
                    .await?;
                Err(error.into())
            }
        }
    }

    /// Passes a store answer through, auditing a protected-label refusal found inside the
    /// store's transaction.
    async fn audit_refusal<T>(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        label: &LabelName,
        attempted: &str,
        result: Result<T, StoreError>,
    ) -> AppResult<T> {
        match result {
            Err(StoreError::Domain(error @ DomainError::LabelRequiresApproval { .. })) => {
                self.audit_denied(actor, prompt, label, attempted, &error)
                    .await?;
                Err(error.into())
            }
            other => Ok(other?),
        }
    }

    async fn audit_denied(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        label: &LabelName,
        attempted: &str,
        error: &DomainError,
    ) -> AppResult<()> {
        let refused = Audited {
            action: match attempted {
                "remove" => "label.remove",
                "promote" => "label.promote",
                "rollback" => "label.rollback",
                _ => "label.set",
            },
            outcome: AuditOutcome::Denied,
            prompt: Some(prompt),
            before_hash: None,
            after_hash: None,
            detail: json!({
                "label": label.as_str(),
                "reason": error.code(),
                "message": error.to_string(),
            }),
        };
        self.audit(actor, refused).await
    }

    async fn audit_move(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        event: &LabelEvent,
    ) -> AppResult<()> {
        let action = match event.action {
            promptvault_core::model::LabelAction::Set => "label.set",
            promptvault_core::model::LabelAction::Split => "label.split",
            promptvault_core::model::LabelAction::Remove => "label.remove",
            promptvault_core::model::LabelAction::Promote => "label.promote",
            promptvault_core::model::LabelAction::Rollback => "label.rollback",
        };
        let audited = Audited::ok(action, Some(prompt)).detail(json!({
            "label": event.label.as_str(),
            "from": event.from_version,
            "to": event.to_version,
            "split": event.split.as_ref().map(split_entries),
        }));
        self.audit(actor, audited).await
    }
}

fn label_response(event: &LabelEvent) -> LabelResponse {
    LabelResponse {
        label: event.label.to_string(),
        version: event.to_version.unwrap_or_default(),
        split: event.split.as_ref().map(split_entries),
    }
}

/// The version a target serves for this request, and which split entry that was.
pub(crate) fn pick(
    prompt: &Prompt,
    label: &LabelName,
    target: &LabelTarget,
    request_key: Option<&str>,
) -> AppResult<(i64, Option<SplitPick>)> {
    let Some(split) = target.split() else {
        return Ok((target.primary(), None));
    };
    let (bucket, by) = match request_key {
        Some(key) => (deploy::bucket(prompt.id, label, key), "key"),
        None => (random_bucket()?, "random"),
    };
    let (index, entry) = split.pick(bucket);
    Ok((
        entry.version,
        Some(SplitPick {
            index,
            version: entry.version,
            weight: entry.weight,
            by: by.to_string(),
        }),
    ))
}

/// A uniformly random bucket for a request without a key.
fn random_bucket() -> AppResult<u32> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| {
        AppError::internal(&std::io::Error::other(format!("no randomness: {error}")))
    })?;
    Ok((u64::from_le_bytes(bytes) % u64::from(deploy::BUCKETS)) as u32)
}
