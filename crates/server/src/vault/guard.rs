//! The one place use cases ask for permission: [`Vault::authorize`] applies
//! `promptvault_core::access::decide` to the acting principal, answers a hidden prompt with 404
//! (never revealing it) and a visible-but-forbidden one with 403, and writes every refusal to the
//! audit log. [`Vault::audit`] appends the entries every mutation and every read of confidential
//! or restricted text leaves behind.

use promptvault_core::{
    access::{Action, Denial, decide},
    audit::{AuditOutcome, NewAuditEntry},
    model::{Classification, Prompt},
};
use promptvault_store::types::PromptKey;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    actor::Actor,
    error::{AppError, AppResult},
    vault::{Vault, parse_key},
};

/// What an audit entry says beyond who and when.
pub(crate) struct Audited<'a> {
    pub action: &'a str,
    pub outcome: AuditOutcome,
    pub prompt: Option<&'a Prompt>,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    pub detail: Value,
}

impl<'a> Audited<'a> {
    pub fn ok(action: &'a str, prompt: Option<&'a Prompt>) -> Self {
        Audited {
            action,
            outcome: AuditOutcome::Ok,
            prompt,
            before_hash: None,
            after_hash: None,
            detail: json!({}),
        }
    }

    pub fn hashes(mut self, before: Option<String>, after: Option<String>) -> Self {
        self.before_hash = before;
        self.after_hash = after;
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

impl Vault {
    /// Decides `action` for the actor (on `prompt`, if any). Refusals are audited; a prompt the
    /// actor may not see is "not found", exactly like a prompt that does not exist.
    pub(crate) async fn authorize(
        &self,
        actor: &Actor,
        action: Action,
        prompt: Option<&Prompt>,
    ) -> AppResult<()> {
        let denial = match decide(&actor.principal, action, prompt, self.deployment) {
            Ok(()) => return Ok(()),
            Err(denial) => denial,
        };
        let reason = match &denial {
            Denial::NotVisible => "not visible to this principal",
            Denial::Forbidden(reason) => reason,
        };
        let audited = Audited {
            action: "access.denied",
            outcome: AuditOutcome::Denied,
            prompt,
            before_hash: None,
            after_hash: None,
            detail: json!({"attempted": format!("{action:?}"), "reason": reason}),
        };
        self.audit(actor, audited).await?;
        Err(match denial {
            // Callers that addressed the prompt reword this exactly as for a missing prompt.
            Denial::NotVisible => AppError::not_found("prompt_not_found", "prompt not found"),
            Denial::Forbidden(reason) => {
                AppError::new(axum::http::StatusCode::FORBIDDEN, "forbidden", reason)
            }
        })
    }

    /// Loads the prompt `key` names and authorizes `action` on it.
    pub(crate) async fn authorized_prompt(
        &self,
        actor: &Actor,
        key: &str,
        action: Action,
    ) -> AppResult<Prompt> {
        let key = parse_key(key)?;
        let prompt = self.store.find_prompt(&key).await?;
        self.authorize(actor, action, Some(&prompt))
            .await
            .map_err(|error| as_addressed(error, &key))?;
        Ok(prompt)
    }

    /// Like [`Vault::authorized_prompt`] for a prompt addressed by id.
    pub(crate) async fn authorized_prompt_by_id(
        &self,
        actor: &Actor,
        id: Uuid,
        action: Action,
    ) -> AppResult<Prompt> {
        let key = PromptKey::Id(id);
        let prompt = self.store.find_prompt(&key).await?;
        self.authorize(actor, action, Some(&prompt))
            .await
            .map_err(|error| as_addressed(error, &key))?;
        Ok(prompt)
    }

    /// Audits a read of the prompt's text when its classification asks for it.
    pub(crate) async fn audit_text_read(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        what: &str,
    ) -> AppResult<()> {
        if matches!(
            prompt.classification,
            Classification::Confidential | Classification::Restricted
        ) {
            self.audit(
                actor,
                Audited::ok("prompt.read_text", Some(prompt)).detail(json!({"read": what})),
            )
            .await?;
        }
        Ok(())
    }

    /// Appends an entry to the audit log.
    pub(crate) async fn audit(&self, actor: &Actor, audited: Audited<'_>) -> AppResult<()> {
        let entry = NewAuditEntry {
            id: Uuid::now_v7(),
            at: OffsetDateTime::now_utc(),
            actor_kind: actor.kind.as_str().to_string(),
            actor_id: actor.audit_id(),
            actor_role: Some(actor.role()),
            action: audited.action.to_string(),
            outcome: audited.outcome,
            prompt_id: audited.prompt.map(|prompt| prompt.id),
            prompt_name: audited.prompt.map(|prompt| prompt.name.to_string()),
            prompt_scope: audited.prompt.map(|prompt| prompt.scope),
            classification: audited.prompt.map(|prompt| prompt.classification),
            before_hash: audited.before_hash,
            after_hash: audited.after_hash,
            detail: audited.detail,
            source: actor.source.map(|address| address.to_string()),
            request_id: actor.request_id.clone(),
        };
        self.store.append_audit(entry).await?;
        Ok(())
    }

    /// Audits a failed authentication (there is no principal yet).
    pub async fn audit_failed_authentication(
        &self,
        source: &str,
        request_id: Option<String>,
        reason: &str,
    ) -> AppResult<()> {
        let entry = NewAuditEntry {
            id: Uuid::now_v7(),
            at: OffsetDateTime::now_utc(),
            actor_kind: "anonymous".into(),
            actor_id: None,
            actor_role: None,
            action: "auth.failed".into(),
            outcome: AuditOutcome::Failed,
            prompt_id: None,
            prompt_name: None,
            prompt_scope: None,
            classification: None,
            before_hash: None,
            after_hash: None,
            detail: json!({"reason": reason}),
            source: Some(source.to_string()),
            request_id,
        };
        self.store.append_audit(entry).await?;
        Ok(())
    }
}

/// A hidden prompt answers exactly like a missing one, in the caller's own words: never its name
/// when it was addressed by id (the store's message for a missing prompt is `<key> not found`).
pub(crate) fn as_addressed(error: AppError, key: &PromptKey) -> AppError {
    if error.code == "prompt_not_found" {
        AppError::from(promptvault_store::StoreError::not_found(key.to_string()))
    } else {
        error
    }
}
