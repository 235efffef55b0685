//! Retiring prompts (still methods of `Vault`): the deprecation a `deprecate` transition records
//! (replacement, sunset), the serving check every serve path calls (`Vault::serving_notice`:
//! notice while deprecated, 410 after the sunset or when archived), retention of archived
//! versions (`version.purge`, by the system actor), review attestations and the list of prompts
//! overdue for their periodic review. The rules themselves are `promptvault_core::retire`.

use axum::http::StatusCode;
use promptvault_api::prompts::{
    DeprecationResponse, ReviewDueItem, ReviewedRequest, ReviewedResponse, ReviewsDueResponse,
    TransitionRequest,
};
use promptvault_core::{
    access::{Action, is_visible},
    error::DomainError,
    model::{Prompt, PromptVersion},
    retire::{self, Deprecation, Replacement, Retired, SunsetSpec},
};
use promptvault_store::StoreError;
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    actor::Actor,
    error::{AppError, AppResult},
    vault::{MAX_TRANSITION_COMMENT, Vault, guard::Audited, parse_key},
};

impl Vault {
    /// The deprecation a `deprecate` transition of a version of `prompt` records at `now`: the
    /// replacement (another prompt the actor may see; 422 `invalid_replacement` otherwise) and
    /// the sunset (`period`, `sunset`, or the configured default period; 422 `invalid_field`).
    pub(crate) async fn plan_deprecation(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        request: &TransitionRequest,
        now: OffsetDateTime,
    ) -> AppResult<Deprecation> {
        let spec = match (&request.period, &request.sunset) {
            (Some(_), Some(_)) => {
                return Err(AppError::unprocessable(
                    "invalid_field",
                    "give either period or sunset, not both",
                ));
            }
            (Some(period), None) => Some(SunsetSpec::Period(retire::parse_period(period)?)),
            (None, Some(sunset)) => Some(SunsetSpec::At(
                OffsetDateTime::parse(sunset, &Rfc3339).map_err(|_| DomainError::InvalidField {
                    field: "sunset",
                    reason: format!("{sunset:?} is not an RFC 3339 time"),
                })?,
            )),
            (None, None) => None,
        };
        let default_period = Duration::days(i64::from(self.lifecycle.deprecation_period_days));
        let sunset_at = retire::sunset_at(spec, default_period, now)?;
        let replacement = match request.replacement.as_deref() {
            None => None,
            Some(raw) => Some(self.replacement(actor, prompt, raw).await?),
        };
        Ok(Deprecation {
            deprecated_at: now,
            sunset_at,
            replacement,
        })
    }

    /// The replacement a deprecation names: it must exist, be visible to the actor and be
    /// another prompt. A hidden one is answered like a missing one.
    async fn replacement(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        raw: &str,
    ) -> AppResult<Replacement> {
        let invalid = |reason: String| AppError::unprocessable("invalid_replacement", reason);
        let key = parse_key(raw)
            .map_err(|_| invalid(format!("replacement prompt {raw:?} does not exist")))?;
        let found = match self.store.find_prompt(&key).await {
            Ok(found) if is_visible(&actor.principal, &found) => found,
            Ok(_) | Err(StoreError::NotFound { .. }) => {
                return Err(invalid(format!(
                    "replacement prompt {raw:?} does not exist"
                )));
            }
            Err(other) => return Err(other.into()),
        };
        if !promptvault_core::retire::replacement_reaches_as_far(prompt, &found) {
            return Err(invalid(format!(
                "replacement prompt {raw:?} is more restricted than {:?} (classification, scope \
                 or access rules): whoever may serve this prompt must be able to see its \
                 replacement",
                prompt.name.as_str()
            )));
        }
        if found.id == prompt.id {
            return Err(invalid(format!(
                "a prompt cannot replace itself ({:?}); name another prompt, or none to deprecate \
                 this version in favour of a newer one",
                prompt.name.as_str()
            )));
        }
        Ok(Replacement {
            prompt_id: found.id,
            name: found.name.to_string(),
        })
    }

    /// Whether `version` may be served now (`promptvault_core::retire::serving`): the
    /// deprecation to announce (headers and a body field), nothing, or 410 Gone with a stable
    /// code (`version_sunset` naming the replacement, `version_archived`). Every serve path
    /// (render, resolve) calls it after authorizing.
    pub fn serving_notice(
        &self,
        version: &PromptVersion,
    ) -> AppResult<Option<DeprecationResponse>> {
        match retire::serving(
            version.version_number,
            version.status,
            &version.lifecycle,
            OffsetDateTime::now_utc(),
        ) {
            Ok(notice) => Ok(notice.map(DeprecationResponse::from)),
            Err(retired) => Err(gone(&retired)),
        }
    }

    /// Retention of archived versions (`lifecycle.archived_retention_days`): purges the content
    /// of versions archived longer ago than `retention`, each audited as `version.purge` by the
    /// system. Returns how many were purged.
    pub async fn apply_version_retention(&self, retention_days: u32) -> AppResult<usize> {
        let cutoff = retire::retention_cutoff(retention_days, OffsetDateTime::now_utc());
        let purged = self.store.purge_archived_versions(cutoff).await?;
        let system = Actor::system();
        for version in &purged {
            self.changed(crate::serve_cache::CacheEvent::Prompt(version.prompt_id));
            let prompt = match self
                .store
                .find_prompt(&promptvault_store::types::PromptKey::Id(version.prompt_id))
                .await
            {
                Ok(prompt) => prompt,
                Err(StoreError::NotFound { .. }) => continue,
                Err(other) => return Err(other.into()),
            };
            let audited = Audited::ok("version.purge", Some(&prompt))
                .hashes(Some(version.diff_hash.clone()), None)
                .detail(serde_json::json!({
                    "version": version.version_number,
                    "archived_at": version.archived_at.format(&Rfc3339).ok(),
                    "retention_days": retention_days,
                }));
            self.audit(&system, audited).await?;
        }
        Ok(purged.len())
    }

    /// `POST /api/prompts/{id}/reviewed`: the actor (who may write the prompt) attests that it
    /// was reviewed now. Audited as `prompt.reviewed` with the comment.
    pub async fn mark_reviewed(
        &self,
        actor: &Actor,
        key: &str,
        request: ReviewedRequest,
    ) -> AppResult<ReviewedResponse> {
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
        let now = OffsetDateTime::now_utc().truncate_to_microsecond();
        self.store.mark_reviewed(prompt.id, now).await?;
        self.audit(
            actor,
            Audited::ok("prompt.reviewed", Some(&prompt))
                .detail(serde_json::json!({"comment": request.comment})),
        )
        .await?;
        Ok(ReviewedResponse {
            prompt_id: prompt.id,
            name: prompt.name.to_string(),
            last_reviewed_at: now,
        })
    }

    /// `GET /api/reviews/due`: prompts the actor may see whose review interval (the prompt
    /// type's, else the classification's) has passed since their last review (the later of the
    /// last approval of a version and the last attestation; never reviewed: since creation),
    /// oldest due first, then by name. Archived prompts are not listed.
    pub async fn reviews_due(&self, actor: &Actor) -> AppResult<ReviewsDueResponse> {
        let now = OffsetDateTime::now_utc();
        let states = self.store.review_states().await?;
        let mut items: Vec<ReviewDueItem> = states
            .into_iter()
            .filter(|state| is_visible(&actor.principal, &state.prompt))
            .filter_map(|state| {
                let interval = retire::review_interval(
                    state.type_review_every_days,
                    self.lifecycle
                        .review_every_days
                        .get(&state.prompt.classification)
                        .copied(),
                )?;
                let last_reviewed = state.last_attested_at.max(state.last_approved_at);
                let due = retire::review_due(
                    Some(interval),
                    last_reviewed,
                    state.prompt.created_at,
                    now,
                )?;
                Some(ReviewDueItem {
                    prompt_id: state.prompt.id,
                    name: state.prompt.name.to_string(),
                    classification: state.prompt.classification,
                    prompt_type: state.prompt.prompt_type.clone(),
                    review_every_days: interval,
                    last_reviewed_at: last_reviewed,
                    due_since: due.due_since,
                    days_overdue: due.days_overdue,
                })
            })
            .collect();
        items.sort_by(|a, b| (a.due_since, &a.name).cmp(&(b.due_since, &b.name)));
        Ok(ReviewsDueResponse { items })
    }
}

/// 410 Gone for a version that is no longer served.
fn gone(retired: &Retired) -> AppError {
    AppError::new(StatusCode::GONE, retired.code(), retired.to_string())
}

/// 409 `version_labelled`: archiving a version that user-set labels still point at.
pub(crate) fn version_labelled(version: i64, labels: &[String]) -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "version_labelled",
        format!(
            "version {version} still carries the label(s) {}; move or remove them before \
             archiving it",
            labels.join(", ")
        ),
    )
}
