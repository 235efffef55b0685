//! `prompt label` (point, remove, history) and `prompt link` (attach, list).

use promptvault_api::prompts::{
    LabelResponse, LinkRequest, LinkResponse, LinksQuery, PromoteRequest, SetLabelRequest,
    SplitEntry,
};
use serde::Serialize;

use crate::{
    args::{LabelArgs, LinkArgs},
    backend::Backend,
    error::{CliError, CliResult},
    output::{self, Table, or_dash, timestamp},
};

/// The `--json` answer of `prompt label … --delete`.
#[derive(Serialize)]
struct RemovedLabel<'a> {
    label: &'a str,
    removed: bool,
}

pub async fn label(backend: &dyn Backend, args: LabelArgs, json: bool) -> CliResult<String> {
    if args.history {
        let events = backend.label_history(&args.name, &args.label).await?;
        if json {
            return output::json(&events);
        }
        if events.is_empty() {
            return Ok(format!("label {} has never moved\n", args.label));
        }
        let mut table = Table::new(&["AT", "FROM", "TO", "ACTOR"]);
        for event in &events {
            table.row(vec![
                timestamp(event.at),
                event
                    .from_version
                    .map_or_else(|| "-".to_string(), |version| version.to_string()),
                event
                    .to_version
                    .map_or_else(|| "(removed)".to_string(), |version| version.to_string()),
                or_dash(event.actor_id.map(|id| id.to_string()).as_deref()),
            ]);
        }
        return Ok(table.render());
    }
    if args.delete {
        backend.remove_label(&args.name, &args.label).await?;
        if json {
            return output::json(&RemovedLabel {
                label: &args.label,
                removed: true,
            });
        }
        return Ok(format!("removed label {} from {}\n", args.label, args.name));
    }
    let label = if args.promote {
        backend
            .promote_label(&args.name, &args.label, PromoteRequest { version: args.to })
            .await?
    } else if args.rollback {
        backend.rollback_label(&args.name, &args.label).await?
    } else if let Some(split) = &args.split {
        let request = SetLabelRequest {
            version: None,
            split: Some(parse_split(split)?),
        };
        backend.set_label(&args.name, &args.label, request).await?
    } else {
        let Some(version) = args.version else {
            return Err(CliError::invalid(
                "missing_version",
                "give a version number, --split, --promote, --rollback, --delete or --history",
            ));
        };
        backend
            .set_label(&args.name, &args.label, SetLabelRequest::version(version))
            .await?
    };
    if json {
        return output::json(&label);
    }
    Ok(describe(&label, &args.name))
}

fn describe(label: &LabelResponse, name: &str) -> String {
    match &label.split {
        Some(entries) => {
            let shares: Vec<String> = entries
                .iter()
                .map(|entry| format!("version {} {}%", entry.version, entry.weight))
                .collect();
            format!(
                "{} of {name} now splits traffic: {}\n",
                label.label,
                shares.join(", ")
            )
        }
        None => format!(
            "{} of {name} now points at version {}\n",
            label.label, label.version
        ),
    }
}

/// Parses `7=90,8=10` into split entries (the server checks the weights).
fn parse_split(text: &str) -> CliResult<Vec<SplitEntry>> {
    text.split(',')
        .map(|part| {
            let invalid = || {
                CliError::invalid(
                    "invalid_split",
                    format!("--split takes VERSION=WEIGHT,… (e.g. 7=90,8=10), not {part:?}"),
                )
            };
            let (version, weight) = part.trim().split_once('=').ok_or_else(invalid)?;
            Ok(SplitEntry {
                version: version.trim().parse().map_err(|_| invalid())?,
                weight: weight.trim().parse().map_err(|_| invalid())?,
            })
        })
        .collect()
}

pub async fn link(backend: &dyn Backend, args: LinkArgs, json: bool) -> CliResult<String> {
    if args.list {
        let links = backend
            .list_links(LinksQuery {
                agent: args.agent,
                capability: args.capability,
            })
            .await?;
        if json {
            return output::json(&links);
        }
        if links.is_empty() {
            return Ok("no links\n".to_string());
        }
        return Ok(links_table(&links));
    }
    let (Some(name), Some(capability)) = (args.name, args.capability) else {
        return Err(CliError::invalid(
            "missing_argument",
            "give the prompt and --capability, or --list",
        ));
    };
    let link = backend
        .link(
            &name,
            LinkRequest {
                capability,
                agent_id: args.agent,
                priority: args.priority,
            },
        )
        .await?;
    if json {
        return output::json(&link);
    }
    Ok(format!(
        "linked {} to capability {} for {} (priority {})\n",
        link.prompt_name,
        link.capability,
        link.agent_id.as_deref().map_or_else(
            || "every agent".to_string(),
            |agent| format!("agent {agent}")
        ),
        link.priority
    ))
}

fn links_table(links: &[LinkResponse]) -> String {
    let mut table = Table::new(&["CAPABILITY", "AGENT", "PRIORITY", "PROMPT", "CREATED"]);
    for link in links {
        table.row(vec![
            link.capability.clone(),
            link.agent_id.clone().unwrap_or_else(|| "*".to_string()),
            link.priority.to_string(),
            link.prompt_name.clone(),
            timestamp(link.created_at),
        ]);
    }
    table.render()
}
