//! `prompt review list|submit|withdraw|approve|reject`: the approval workflow (SPEC §6). `list`
//! shows the versions in review the caller could approve now; `submit` and `withdraw` move a
//! version into and out of review (lifecycle transitions); `approve` and `reject` decide on one.

use promptvault_api::{
    VersionStatus,
    prompts::TransitionRequest,
    reviews::{ApproveRequest, RejectRequest, ReviewOutcomeResponse, ReviewQueueResponse},
};

use crate::{
    args::{ReviewArgs, ReviewCommand},
    backend::Backend,
    error::CliResult,
    output::{self, Table},
};

pub async fn review(backend: &dyn Backend, args: ReviewArgs, json: bool) -> CliResult<String> {
    match args.command {
        ReviewCommand::List => {
            let queue = backend.review_queue().await?;
            if json {
                output::json(&queue)
            } else {
                Ok(queue_text(&queue))
            }
        }
        ReviewCommand::Submit {
            name,
            version,
            comment,
        } => {
            move_to(
                backend,
                &name,
                version,
                VersionStatus::Review,
                comment,
                json,
            )
            .await
        }
        ReviewCommand::Withdraw {
            name,
            version,
            comment,
        } => move_to(backend, &name, version, VersionStatus::Draft, comment, json).await,
        ReviewCommand::Approve {
            name,
            version,
            comment,
        } => {
            let outcome = backend
                .approve(&name, version, ApproveRequest { comment })
                .await?;
            if json {
                output::json(&outcome)
            } else {
                Ok(outcome_text(&name, &outcome))
            }
        }
        ReviewCommand::Reject {
            name,
            version,
            comment,
        } => {
            let outcome = backend
                .reject(&name, version, RejectRequest { comment })
                .await?;
            if json {
                output::json(&outcome)
            } else {
                Ok(outcome_text(&name, &outcome))
            }
        }
    }
}

/// A lifecycle transition of one version (into review, or back to draft).
async fn move_to(
    backend: &dyn Backend,
    name: &str,
    version: i64,
    to: VersionStatus,
    comment: Option<String>,
    json: bool,
) -> CliResult<String> {
    let request = TransitionRequest {
        to,
        comment,
        replacement: None,
        period: None,
        sunset: None,
    };
    let moved = backend.transition(name, version, request).await?;
    if json {
        return output::json(&moved);
    }
    Ok(format!(
        "{name} v{}: {}\n",
        moved.version_number, moved.status
    ))
}

fn queue_text(queue: &ReviewQueueResponse) -> String {
    if queue.items.is_empty() {
        return "no versions wait for your review\n".to_string();
    }
    let mut table = Table::new(&["PROMPT", "VERSION", "SEMVER", "STEP", "APPROVALS", "AUTHOR"]);
    for item in &queue.items {
        table.row(vec![
            item.prompt_name.clone(),
            item.version_number.to_string(),
            item.semver.clone(),
            match item.progress.current_step {
                Some(step) => format!("{step}/{}", item.progress.steps.len()),
                None => "-".to_string(),
            },
            format!("{}/{}", item.progress.approvals, item.progress.required),
            output::or_dash(item.author_id.map(|id| id.to_string()).as_deref()),
        ]);
    }
    table.render()
}

fn outcome_text(name: &str, outcome: &ReviewOutcomeResponse) -> String {
    let version = outcome.version.version_number;
    let progress = &outcome.progress;
    match outcome.decision.decision {
        promptvault_api::ReviewDecision::Approve => format!(
            "approved {name} v{version} at step {} ({}/{} approvals): {}\n",
            outcome.decision.step,
            progress.approvals,
            progress.required,
            if outcome.complete {
                "the version is now approved"
            } else {
                "still in review"
            }
        ),
        promptvault_api::ReviewDecision::Reject => format!(
            "rejected {name} v{version}: back to draft ({})\n",
            outcome.decision.comment.as_deref().unwrap_or("")
        ),
    }
}
