//! `prompt review list|approve|reject`: the approval workflow (SPEC §6). `list` shows the
//! versions in review the caller could approve now; `approve` and `reject` decide on one.

use promptvault_api::reviews::{
    ApproveRequest, RejectRequest, ReviewOutcomeResponse, ReviewQueueResponse,
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
