//! The approval use cases (SPEC §6): approve and reject a version in review, show who approved
//! what, and the caller's review queue. The store decides each approval atomically with
//! `promptvault_core::workflow` under the prompt's lock; this module authorizes, checks the
//! comment, and audits every decision (`version.approve`, `version.reject`) and every refusal
//! (as denied).

use promptvault_api::{
    prompts::VersionResponse,
    reviews::{
        ApprovalResponse, ApprovalsResponse, ApproveRequest, RejectRequest, ReviewOutcomeResponse,
        ReviewProgress, ReviewQueueItem, ReviewQueueResponse,
    },
};
use promptvault_core::{
    access::{Action, decide, visibility_filter},
    audit::AuditOutcome,
    error::DomainError,
    model::{Prompt, VersionStatus},
    workflow::{ApprovalWorkflow, ReviewRecord, Reviewer, decide_approval},
};
use promptvault_store::{
    StoreError,
    types::{NewReview, ReviewOutcome},
};
use serde_json::json;

use crate::{
    actor::Actor,
    error::AppResult,
    vault::{MAX_TRANSITION_COMMENT, Vault, guard::Audited},
};

/// Approve or reject.
#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Reject,
}

impl Decision {
    fn audit_action(self) -> &'static str {
        match self {
            Decision::Approve => "version.approve",
            Decision::Reject => "version.reject",
        }
    }
}

impl Vault {
    /// Approves version `n` (SPEC §6): the actor must be able to write the prompt; the workflow
    /// decides (403 `self_approval` / `approver_role_not_allowed`, 409 `not_in_review` /
    /// `already_approved`, each audited as denied). The approval that completes the workflow
    /// makes the version approved.
    pub async fn approve_version(
        &self,
        actor: &Actor,
        key: &str,
        version_number: i64,
        request: ApproveRequest,
    ) -> AppResult<ReviewOutcomeResponse> {
        let comment = checked_comment(request.comment, false)?;
        self.review(actor, key, version_number, comment, Decision::Approve)
            .await
    }

    /// Rejects version `n`: back to draft with the reviewer's comment (required), which ends
    /// the review round. Who may reject is who could approve at the current step.
    pub async fn reject_version(
        &self,
        actor: &Actor,
        key: &str,
        version_number: i64,
        request: RejectRequest,
    ) -> AppResult<ReviewOutcomeResponse> {
        let comment = checked_comment(Some(request.comment), true)?;
        self.review(actor, key, version_number, comment, Decision::Reject)
            .await
    }

    /// Who approved or rejected version `n`, every round, and where the current round stands.
    pub async fn version_approvals(
        &self,
        actor: &Actor,
        key: &str,
        version_number: i64,
    ) -> AppResult<ApprovalsResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Read).await?;
        let version = self.store.get_version(prompt.id, version_number).await?;
        let reviews = self.store.list_reviews(prompt.id, version_number).await?;
        let workflow = self.workflow_of(&prompt).await?;
        let round: Vec<ReviewRecord> = reviews
            .reviews
            .iter()
            .filter(|record| record.round == reviews.current_round)
            .cloned()
            .collect();
        Ok(ApprovalsResponse {
            prompt_id: prompt.id,
            prompt_name: prompt.name.to_string(),
            version_number,
            status: version.status,
            progress: ReviewProgress::of(
                &workflow,
                &round,
                version.status == VersionStatus::Review,
            ),
            approvals: reviews.reviews.iter().map(ApprovalResponse::from).collect(),
        })
    }

    /// The caller's review queue: versions in review of prompts they can see and write, that
    /// they could approve now (their role fits the current step, they are not the author, they
    /// have not approved in this round).
    pub async fn review_queue(&self, actor: &Actor) -> AppResult<ReviewQueueResponse> {
        let filter = visibility_filter(&actor.principal);
        let queue = self.store.review_queue(filter.as_ref()).await?;
        let reviewer = reviewer_of(actor);
        let mut items = Vec::new();
        for item in queue {
            if decide(
                &actor.principal,
                Action::Write,
                Some(&item.prompt),
                self.deployment,
            )
            .is_err()
            {
                continue;
            }
            let workflow = self
                .approvals
                .workflow_for(item.prompt.classification, item.type_workflow.as_ref());
            if decide_approval(
                workflow,
                VersionStatus::Review,
                &item.approvals,
                &reviewer,
                item.author_id,
            )
            .is_err()
            {
                continue;
            }
            items.push(ReviewQueueItem {
                prompt_id: item.prompt.id,
                prompt_name: item.prompt.name.to_string(),
                version_number: item.version_number,
                semver: item.semver,
                author_id: item.author_id,
                created_at: item.created_at,
                round: item.round,
                progress: ReviewProgress::of(workflow, &item.approvals, true),
                approvals: item.approvals.iter().map(ApprovalResponse::from).collect(),
            });
        }
        Ok(ReviewQueueResponse { items })
    }

    async fn review(
        &self,
        actor: &Actor,
        key: &str,
        version_number: i64,
        comment: Option<String>,
        decision: Decision,
    ) -> AppResult<ReviewOutcomeResponse> {
        let prompt = self.authorized_prompt(actor, key, Action::Write).await?;
        let review = NewReview {
            reviewer: reviewer_of(actor),
            comment,
            policy: self.approvals.clone(),
        };
        let decided = match decision {
            Decision::Approve => {
                self.store
                    .approve_version(prompt.id, version_number, review)
                    .await
            }
            Decision::Reject => {
                self.store
                    .reject_version(prompt.id, version_number, review)
                    .await
            }
        };
        self.changed(crate::serve_cache::CacheEvent::Prompt(prompt.id));
        let outcome = match decided {
            Ok(outcome) => outcome,
            Err(StoreError::Approval(refusal)) => {
                let refused = Audited {
                    action: decision.audit_action(),
                    outcome: AuditOutcome::Denied,
                    prompt: Some(&prompt),
                    before_hash: None,
                    after_hash: None,
                    detail: json!({
                        "version": version_number,
                        "reason": refusal.code(),
                        "message": refusal.to_string(),
                    }),
                };
                self.audit(actor, refused).await?;
                return Err(refusal.into());
            }
            Err(other) => return Err(other.into()),
        };
        let progress = ReviewProgress::of(
            &outcome.workflow,
            &outcome.round,
            outcome.version.status == VersionStatus::Review,
        );
        let detail = match decision {
            Decision::Approve => json!({
                "version": version_number,
                "round": outcome.record.round,
                "step": outcome.record.step + 1,
                "completed": outcome.complete,
                "status": outcome.version.status.as_str(),
                "approvals": progress.approvals,
                "required": progress.required,
                "comment": outcome.record.comment,
            }),
            Decision::Reject => json!({
                "version": version_number,
                "round": outcome.record.round,
                "step": outcome.record.step + 1,
                "status": outcome.version.status.as_str(),
                "comment": outcome.record.comment,
            }),
        };
        let audited = Audited::ok(decision.audit_action(), Some(&prompt))
            .hashes(
                Some(outcome.version.diff_hash.clone()),
                Some(outcome.version.diff_hash.clone()),
            )
            .detail(detail);
        self.audit(actor, audited).await?;
        self.audit_text_read(actor, &prompt, "version").await?;
        Ok(outcome_response(&outcome, progress))
    }

    /// The workflow that applies to the prompt's versions now.
    async fn workflow_of(&self, prompt: &Prompt) -> AppResult<ApprovalWorkflow> {
        let type_workflow = match &prompt.prompt_type {
            Some(key) => self.store.get_prompt_type(key).await?.approval_workflow,
            None => None,
        };
        Ok(self
            .approvals
            .workflow_for(prompt.classification, type_workflow.as_ref())
            .clone())
    }
}

fn outcome_response(outcome: &ReviewOutcome, progress: ReviewProgress) -> ReviewOutcomeResponse {
    ReviewOutcomeResponse {
        version: VersionResponse::from(&outcome.version),
        decision: ApprovalResponse::from(&outcome.record),
        complete: outcome.complete,
        progress,
    }
}

/// The reviewer an actor is: their role, and their user id, else their token, else the operator.
fn reviewer_of(actor: &Actor) -> Reviewer {
    Reviewer::new(actor.role(), actor.user_id(), actor.token_id)
}

/// A review comment: trimmed, at most [`MAX_TRANSITION_COMMENT`] characters, and present when
/// `required`.
fn checked_comment(comment: Option<String>, required: bool) -> AppResult<Option<String>> {
    let comment = comment
        .map(|comment| comment.trim().to_string())
        .filter(|comment| !comment.is_empty());
    match &comment {
        None if required => Err(DomainError::InvalidField {
            field: "comment",
            reason: "a rejection says what must change: give a non-empty comment".into(),
        }
        .into()),
        Some(text) if text.chars().count() > MAX_TRANSITION_COMMENT => {
            Err(DomainError::InvalidField {
                field: "comment",
                reason: format!("at most {MAX_TRANSITION_COMMENT} characters"),
            }
            .into())
        }
        _ => Ok(comment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_trimmed_bounded_and_required_for_rejections() {
        assert_eq!(checked_comment(None, false), Ok(None));
        assert_eq!(checked_comment(Some("  ".into()), false), Ok(None));
        assert_eq!(
            checked_comment(Some(" fine ".into()), true),
            Ok(Some("fine".into()))
        );
        for (comment, required) in [(None, true), (Some(" ".to_string()), true)] {
            let error = checked_comment(comment, required).expect_err("required");
            assert_eq!(error.code, "invalid_field");
            assert!(error.detail.contains("comment"), "{}", error.detail);
        }
        let long = "x".repeat(MAX_TRANSITION_COMMENT + 1);
        let error = checked_comment(Some(long), false).expect_err("too long");
        assert!(error.detail.contains("at most 2000"), "{}", error.detail);
    }
}
