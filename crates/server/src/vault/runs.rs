//! Runs, feedback and usage (SPEC §1 "run"): [`Vault::note_use`] — the one call every serve
//! path makes after rendering (render; resolve with params) — queues a run on the
//! [`RunRecorder`](crate::recorder::RunRecorder) without waiting when one is asked for, and
//! otherwise counts the use (every use counts toward `times_used`/`last_used`); feedback is
//! written at once (acknowledged = durable) and feeds the performance monitor (`core::runs::AlertRule`: an
//! `alert.raised` audit entry by the system and a warning, once per breach); metrics read the
//! per-version aggregates.
//!
//! Who may give feedback: the run's sender, or an admin, among those who may still see the
//! prompt (a run of a prompt the caller cannot see is "not found"). Outcomes steer metrics,
//! alerts and later the enrichment bandit, so other callers who merely may serve the prompt
//! cannot write them.

use promptvault_api::runs::{FeedbackRequest, FeedbackResponse, MetricsResponse, VersionMetrics};
use promptvault_core::{
    access::Action,
    audit::AuditOutcome,
    model::{Prompt, PromptVersion, Role},
    runs::{self, AlertTransition, Feedback},
};
use promptvault_store::{StoreError, types::NewRun};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    actor::Actor,
    error::{AppError, AppResult},
    vault::{Vault, guard::Audited},
};

/// The longest `session_id` kept with a run.
const MAX_SESSION_ID: usize = 255;

/// Whether a use is to be recorded as a run, and the session to keep with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunWish {
    pub record: bool,
    pub session_id: Option<String>,
}

impl Vault {
    /// What a use asked for (`record`, `session_id` of a render or resolve) makes of it, after
    /// checking the run fields: a run when asked for (or `runs.record` when not said), else a
    /// count toward the version's usage.
    pub(crate) fn run_wish(
        &self,
        record: Option<bool>,
        session_id: Option<String>,
    ) -> AppResult<RunWish> {
        if let Some(session) = &session_id
            && (session.is_empty() || session.chars().count() > MAX_SESSION_ID)
        {
            return Err(AppError::unprocessable(
                "invalid_field",
                format!("session_id must be 1 to {MAX_SESSION_ID} characters"),
            ));
        }
        Ok(RunWish {
            record: record.unwrap_or(self.run_settings.record),
            session_id,
        })
    }

    /// Notes one use of `version` as served to `actor` (`rendered` as it left the server,
    /// already filtered), never waiting: a run queued when `wish` asks for one, otherwise (and
    /// when the queue has no room) a count toward the version's usage. A run's params are
    /// filtered like output for the classifications in `compliance.redact`; the store seals
    /// params and output for confidential and restricted prompts. Returns the run's id, or
    /// `None` when no run was queued.
    pub fn note_use(
        &self,
        actor: &Actor,
        prompt: &Prompt,
        version: &PromptVersion,
        params: serde_json::Map<String, Value>,
        rendered: &Value,
        wish: RunWish,
    ) -> Option<Uuid> {
        let recorder = self.runs.as_ref()?;
        let now = OffsetDateTime::now_utc().truncate_to_microsecond();
        if !wish.record {
            recorder.count_use(prompt.id, version.version_number, now);
            return None;
        }
        let params = Value::Object(params);
        let params = if self.compliance.redact.contains(&prompt.classification) {
            runs::redact_value(&params)
        } else {
            params
        };
        let run = NewRun {
            id: Uuid::now_v7(),
            prompt_id: prompt.id,
            version_number: version.version_number,
            classification: prompt.classification,
            params,
            rendered: rendered.clone(),
            sender: actor.audit_id(),
            session_id: wish.session_id,
            request_id: actor.request_id.clone(),
            agent_id: actor.principal.agent_id.clone(),
            deployment_model: self.deployment,
            created_at: now,
        };
        let id = run.id;
        if recorder.record(run) {
            Some(id)
        } else {
            recorder.count_use(prompt.id, version.version_number, now);
            None
        }
    }

    /// Waits until every run queued so far is written (shutdown; the CLI's local mode).
    pub async fn flush_runs(&self) {
        if let Some(recorder) = &self.runs {
            recorder.flush().await;
        }
    }

    /// `POST /api/runs/{id}/feedback`.
    pub async fn run_feedback(
        &self,
        actor: &Actor,
        run_id: Uuid,
        request: FeedbackRequest,
    ) -> AppResult<FeedbackResponse> {
        let feedback = Feedback {
            success: request.success,
            score: request.score,
            comment: request.comment,
        }
        .validate()?;
        let head = match self.store.run_head(run_id).await {
            // The run may still be queued: wait for the queue, then look again.
            Err(StoreError::NotFound { .. }) => {
                self.flush_runs().await;
                self.store.run_head(run_id).await?
            }
            other => other?,
        };
        let prompt = self
            .store
            .find_prompt(&promptvault_store::types::PromptKey::Id(head.prompt_id))
            .await?;
        self.authorize(actor, Action::Read, Some(&prompt))
            .await
            .map_err(|error| {
                if error.code == "prompt_not_found" {
                    run_not_found(run_id)
                } else {
                    error
                }
            })?;
        let is_sender = head.sender.is_some() && head.sender == actor.audit_id();
        if !is_sender && actor.role() != Role::Admin {
            let denied = Audited {
                action: "access.denied",
                outcome: AuditOutcome::Denied,
                prompt: Some(&prompt),
                before_hash: None,
                after_hash: None,
                detail: json!({"attempted": "run.feedback", "run_id": run_id,
                    "reason": "not the run's sender"}),
            };
            self.audit(actor, denied).await?;
            return Err(AppError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "only the run's sender or an admin may give feedback on it",
            ));
        }
        let at = OffsetDateTime::now_utc().truncate_to_microsecond();
        let head = self.store.upsert_feedback(run_id, feedback, at).await?;
        let stored = head.feedback.clone().unwrap_or_default();
        self.audit(
            actor,
            Audited::ok("run.feedback", Some(&prompt)).detail(json!({
                "run_id": run_id,
                "version": head.version_number,
                "success": stored.success,
                "score": stored.score,
            })),
        )
        .await?;
        self.monitor(&prompt, head.version_number).await?;
        Ok(FeedbackResponse {
            run_id,
            prompt_id: head.prompt_id,
            version_number: head.version_number,
            success: stored.success,
            score: stored.score,
            comment: stored.comment,
            at,
        })
    }

    /// The performance monitor after an outcome on `version`: raises an alert once when the
    /// rule starts to hold (a warning, and `alert.raised` in the audit log by the system).
    async fn monitor(&self, prompt: &Prompt, version: i64) -> AppResult<()> {
        let Some(rule) = self.alert_rule else {
            return Ok(());
        };
        let recent = self
            .store
            .recent_outcomes(prompt.id, version, i64::from(rule.window))
            .await?;
        let transition = {
            let mut alerting = self
                .alerting
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = (prompt.id, version);
            let transition = runs::alert_transition(&rule, alerting.contains(&key), &recent);
            match transition {
                AlertTransition::Raise { .. } => {
                    alerting.insert(key);
                }
                AlertTransition::Clear => {
                    alerting.remove(&key);
                }
                AlertTransition::Stay => {}
            }
            transition
        };
        if let AlertTransition::Raise { rate } = transition {
            tracing::warn!(
                prompt = %prompt.name,
                version,
                success_rate = rate,
                window = rule.window,
                threshold = rule.min_success_rate,
                "alert: success rate below the threshold"
            );
            self.audit(
                &Actor::system(),
                Audited::ok("alert.raised", Some(prompt)).detail(json!({
                    "rule": "success_rate",
                    "version": version,
                    "success_rate": rate,
                    "window": rule.window,
                    "threshold": rule.min_success_rate,
                })),
            )
            .await?;
        }
        Ok(())
    }

    /// `GET /api/prompts/{id}/metrics`: usage of every version, newest first. Runs queued
    /// before the call are written first, so a caller sees its own renders counted.
    pub async fn metrics(&self, actor: &Actor, key: &str) -> AppResult<MetricsResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        self.flush_runs().await;
        let versions = self
            .store
            .version_usage(prompt.id)
            .await?
            .into_iter()
            .map(|version| VersionMetrics {
                version_number: version.version_number,
                times_used: version.usage.times_used,
                last_used: version.usage.last_used,
                outcomes: version.usage.outcomes,
                success_rate: version.usage.success_rate(),
                scored: version.usage.scored,
                mean_score: version.usage.mean_score(),
            })
            .collect();
        Ok(MetricsResponse {
            prompt_id: prompt.id,
            name: prompt.name.to_string(),
            versions,
        })
    }
}

fn run_not_found(run_id: Uuid) -> AppError {
    AppError::not_found("run_not_found", format!("run {run_id} not found"))
}
