//! `prompt list`, `prompt show`, `prompt create` and `prompt version`.

use std::collections::BTreeMap;

use promptvault_api::{
    Kind,
    prompts::{
        CreatePromptRequest, CreateVersionRequest, ListPromptsQuery, PromptListResponse,
        PromptResponse, VersionResponse,
    },
};
use promptvault_core::{diff::content_text, model::Content};
use serde::Serialize;
use serde_json::Value;

use crate::{
    args::{CreateArgs, ListArgs, ShowArgs, VersionArgs, VersionFields},
    backend::Backend,
    error::{CliError, CliResult, Exit},
    input,
    output::{self, Table, key_values, one_line, or_dash, timestamp},
};

pub async fn list(backend: &dyn Backend, args: ListArgs, json: bool) -> CliResult<String> {
    let page = backend
        .list_prompts(ListPromptsQuery {
            page: args.page,
            per_page: args.per_page,
            scope: args.scope,
            tag: args.tag,
            prompt_type: args.prompt_type,
            label: args.label,
            q: args.q,
            name_prefix: args.name_prefix,
            status: args.status,
            ..Default::default()
        })
        .await?;
    if json {
        return output::json(&page);
    }
    Ok(list_table(&page))
}

fn list_table(page: &PromptListResponse) -> String {
    if page.items.is_empty() {
        return if page.total == 0 {
            "no prompts\n".to_string()
        } else {
            format!("no prompts on page {} ({} in all)\n", page.page, page.total)
        };
    }
    let mut table = Table::new(&[
        "NAME", "KIND", "SCOPE", "LATEST", "LABELS", "TAGS", "UPDATED", "TITLE",
    ]);
    for item in &page.items {
        table.row(vec![
            item.name.clone(),
            item.kind.to_string(),
            match &item.agent_id {
                Some(agent) => format!("{}:{agent}", item.scope),
                None => item.scope.to_string(),
            },
            item.latest_version.to_string(),
            or_dash(Some(&other_labels(&item.labels))),
            or_dash(Some(&item.tags.join(","))),
            timestamp(item.updated_at),
            or_dash(
                item.title
                    .as_deref()
                    .map(|title| one_line(title, 40))
                    .as_deref(),
            ),
        ]);
    }
    let mut text = table.render();
    text.push_str(&format!("{} of {} prompt(s)", page.items.len(), page.total));
    if page.next_cursor.is_some() && page.page > 0 {
        text.push_str(&format!("; next page: --page {}", page.page + 1));
    }
    text.push('\n');
    text
}

/// `production=3,staging=4` (without `latest`, which has its own column).
fn other_labels(labels: &BTreeMap<String, i64>) -> String {
    labels
        .iter()
        .filter(|(label, _)| label.as_str() != "latest")
        .map(|(label, version)| format!("{label}={version}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn show(backend: &dyn Backend, args: ShowArgs, json: bool) -> CliResult<String> {
    let prompt = backend.get_prompt(&args.name).await?;
    let number = match (args.version, &args.label) {
        (Some(number), _) => Some(number),
        (None, Some(label)) => Some(*prompt.labels.get(label).ok_or_else(|| {
            CliError::new(
                Exit::NotFound,
                "label_not_found",
                format!("label {label:?} of prompt {:?} not found", prompt.name),
            )
        })?),
        (None, None) => None,
    };
    let Some(number) = number else {
        return if json {
            output::json(&prompt)
        } else {
            Ok(prompt_text(&prompt))
        };
    };
    let version = prompt
        .versions
        .iter()
        .find(|version| version.version_number == number)
        .ok_or_else(|| {
            CliError::new(
                Exit::NotFound,
                "version_not_found",
                format!("version {number} of prompt {:?} not found", prompt.name),
            )
        })?;
    if json {
        return output::json(version);
    }
    Ok(version_text(&prompt, version))
}

/// Labels pointing at each version number.
fn labels_by_version(prompt: &PromptResponse) -> BTreeMap<i64, Vec<&str>> {
    let mut by_version: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (label, version) in &prompt.labels {
        by_version.entry(*version).or_default().push(label);
    }
    by_version
}

fn prompt_text(prompt: &PromptResponse) -> String {
    let mut pairs = vec![
        ("name", prompt.name.clone()),
        ("title", or_dash(prompt.title.as_deref())),
        ("description", or_dash(prompt.description.as_deref())),
        ("kind", prompt.kind.to_string()),
        ("scope", prompt.scope.to_string()),
    ];
    if let Some(agent) = &prompt.agent_id {
        pairs.push(("agent", agent.clone()));
    }
    pairs.extend([
        ("type", or_dash(prompt.prompt_type.as_deref())),
        ("tags", or_dash(Some(&prompt.tags.join(", ")))),
        ("classification", prompt.classification.to_string()),
        ("source", prompt.source.clone()),
        ("status", prompt.status.to_string()),
        ("created", timestamp(prompt.created_at)),
        ("updated", timestamp(prompt.updated_at)),
    ]);
    let mut text = key_values(&pairs);
    let labels = labels_by_version(prompt);
    let mut table = Table::new(&["VERSION", "SEMVER", "STATUS", "LABELS", "CREATED", "NOTES"]);
    for version in &prompt.versions {
        table.row(vec![
            version.version_number.to_string(),
            version.semver.clone(),
            version.status.to_string(),
            or_dash(
                labels
                    .get(&version.version_number)
                    .map(|labels| labels.join(","))
                    .as_deref(),
            ),
            timestamp(version.created_at),
            or_dash(
                version
                    .notes
                    .as_deref()
                    .map(|notes| one_line(notes, 60))
                    .as_deref(),
            ),
        ]);
    }
    text.push('\n');
    text.push_str(&table.render());
    text
}

/// A version's content as people read it: the text, or `[role]` blocks for chat.
pub fn readable_content(content: &Value) -> String {
    match Content::from_json(content) {
        Ok(content) => content_text(&content),
        Err(_) => serde_json::to_string_pretty(content).unwrap_or_default(),
    }
}

fn version_text(prompt: &PromptResponse, version: &VersionResponse) -> String {
    let labels = labels_by_version(prompt);
    let mut text = key_values(&[
        ("name", prompt.name.clone()),
        ("version", version.version_number.to_string()),
        ("semver", version.semver.clone()),
        ("status", version.status.to_string()),
        (
            "labels",
            or_dash(
                labels
                    .get(&version.version_number)
                    .map(|labels| labels.join(", "))
                    .as_deref(),
            ),
        ),
        ("created", timestamp(version.created_at)),
        ("notes", or_dash(version.notes.as_deref())),
        ("variables", or_dash(Some(&version.variables.join(", ")))),
        ("diff_hash", version.diff_hash.clone()),
    ]);
    let mut section = |title: &str, body: String| {
        text.push_str(&format!("\n--- {title} ---\n"));
        text.push_str(&body);
        if !body.ends_with('\n') {
            text.push('\n');
        }
    };
    section("content", readable_content(&version.content));
    if version
        .config
        .as_object()
        .is_some_and(|config| !config.is_empty())
    {
        section("config", pretty(&version.config));
    }
    if let Some(schema) = &version.parameter_schema {
        section("parameter_schema", pretty(schema));
    }
    text
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn optional_json(flag: &str, raw: Option<&String>) -> CliResult<Option<Value>> {
    raw.map(|raw| input::json_arg(flag, raw)).transpose()
}

pub async fn create(backend: &dyn Backend, args: CreateArgs, json: bool) -> CliResult<String> {
    let kind = args.kind.unwrap_or(Kind::Text);
    let VersionFields {
        config,
        schema,
        notes,
        labels,
    } = args.version;
    let request = CreatePromptRequest {
        name: args.name,
        title: args.title,
        description: args.description,
        scope: args.scope,
        agent_id: args.agent_id,
        prompt_type: args.prompt_type,
        kind: args.kind,
        tags: args.tags,
        classification: args.classification,
        content: input::content(&args.source, kind)?,
        config: optional_json("--config", config.as_ref())?,
        parameter_schema: optional_json("--schema", schema.as_ref())?
            .filter(|schema| !schema.is_null()),
        notes,
        labels,
        ..Default::default()
    };
    let prompt = backend.create_prompt(request).await?;
    if json {
        return output::json(&prompt);
    }
    let mut text = match prompt.versions.first() {
        Some(version) => format!(
            "created {}: version {} ({})\n",
            prompt.name, version.version_number, version.semver
        ),
        None => format!("created {}\n", prompt.name),
    };
    text.push_str(&format!(
        "labels: {}\n",
        prompt.labels.keys().cloned().collect::<Vec<_>>().join(", ")
    ));
    Ok(text)
}

/// The `--json` answer of `prompt version`: the version, plus whether it is new.
#[derive(Serialize)]
struct AddedVersion<'a> {
    /// False when the content was identical to the latest version, which is returned.
    created: bool,
    #[serde(flatten)]
    version: &'a VersionResponse,
}

pub async fn version(backend: &dyn Backend, args: VersionArgs, json: bool) -> CliResult<String> {
    // The prompt's kind decides how the content is read (text, or a JSON list for chat).
    let prompt = backend.get_prompt(&args.name).await?;
    let VersionFields {
        config,
        schema,
        notes,
        labels,
    } = args.version;
    // Config and schema carry over from the latest version unless given (the server's rule);
    // `--schema null` removes the schema.
    let config = optional_json("--config", config.as_ref())?;
    let parameter_schema = match optional_json("--schema", schema.as_ref())? {
        Some(Value::Null) => Some(None),
        Some(schema) => Some(Some(schema)),
        None => None,
    };
    let request = CreateVersionRequest {
        content: input::content(&args.source, prompt.kind)?,
        config,
        parameter_schema,
        notes,
        labels,
        bump: args.bump,
    };
    let (version, created) = backend.add_version(&args.name, request).await?;
    if json {
        return output::json(&AddedVersion {
            created,
            version: &version,
        });
    }
    Ok(if created {
        format!(
            "created version {} ({}) of {}\n",
            version.version_number, version.semver, prompt.name
        )
    } else {
        format!(
            "unchanged: identical to the latest version {} ({}) of {}; no version created\n",
            version.version_number, version.semver, prompt.name
        )
    })
}
