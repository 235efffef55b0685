//! `prompt export --all` and `prompt import <file|dir>`: bundles of prompts with all their
//! versions, labels and links, as JSON or YAML.
//!
//! Import reads and parses every file before writing anything, so a file that is not a bundle
//! stops the import with nothing written (every unreadable file is listed). Each bundle is then
//! imported in turn; the service validates a whole bundle before writing any of it, and importing
//! is idempotent, so after a refused file the import can be fixed and re-run safely.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promptvault_api::{
    bundle::{Bundle, ImportReport},
    problem::ProblemItem,
};
use serde::Serialize;

use crate::{
    args::{BundleFormat, ExportArgs, ImportArgs},
    backend::Backend,
    error::{CliError, CliResult},
    input,
    output::{self, key_values},
};

/// The `--json` answer of `prompt export --output FILE`.
#[derive(Serialize)]
struct ExportSummary {
    output: String,
    prompts: usize,
    prompt_types: usize,
}

pub async fn export(backend: &dyn Backend, args: ExportArgs, json: bool) -> CliResult<String> {
    let bundle = backend.export_all().await?;
    let text = match args.format {
        BundleFormat::Json => output::json(&bundle)?,
        BundleFormat::Yaml => yaml_serde::to_string(&bundle)
            .map_err(|error| CliError::internal("output_failed", error.to_string()))?,
    };
    let Some(path) = args.output else {
        return Ok(text);
    };
    std::fs::write(&path, text).map_err(|error| {
        CliError::internal(
            "write_failed",
            format!("cannot write {}: {error}", path.display()),
        )
    })?;
    let summary = ExportSummary {
        output: path.display().to_string(),
        prompts: bundle.prompts.len(),
        prompt_types: bundle.prompt_types.len(),
    };
    if json {
        return output::json(&summary);
    }
    Ok(format!(
        "exported {} prompt(s) and {} prompt type(s) to {}\n",
        summary.prompts, summary.prompt_types, summary.output
    ))
}

/// The bundle files a path names: the file itself (`-` is stdin), or a directory's
/// `.json`/`.yaml`/`.yml` files in name order.
fn bundle_files(path: &Path) -> CliResult<Vec<PathBuf>> {
    if path == Path::new("-") || !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|error| CliError::read_file(path, &error))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| CliError::read_file(path, &error))?;
        let file = entry.path();
        if file.is_file() && extension_format(&file).is_some() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(CliError::invalid(
            "no_bundle_files",
            format!("{} has no .json, .yaml or .yml files", path.display()),
        ));
    }
    Ok(files)
}

fn extension_format(path: &Path) -> Option<BundleFormat> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "json" => Some(BundleFormat::Json),
        "yaml" | "yml" => Some(BundleFormat::Yaml),
        _ => None,
    }
}

fn parse_bundle(text: &str, format: BundleFormat) -> Result<Bundle, String> {
    match format {
        BundleFormat::Json => serde_json::from_str(text).map_err(|error| error.to_string()),
        BundleFormat::Yaml => yaml_serde::from_str(text).map_err(|error| error.to_string()),
    }
}

fn add(total: &mut ImportReport, report: &ImportReport) {
    total.prompt_types_created += report.prompt_types_created;
    total.prompts_created += report.prompts_created;
    total.versions_created += report.versions_created;
    total.versions_unchanged += report.versions_unchanged;
    total.labels_moved += report.labels_moved;
    total.links_set += report.links_set;
}

pub async fn import(backend: &dyn Backend, args: ImportArgs, json: bool) -> CliResult<String> {
    let files = bundle_files(&args.path)?;
    // Read and parse everything first: a bad file anywhere means nothing is written.
    let mut bundles = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    for file in &files {
        let format = args
            .format
            .or_else(|| extension_format(file))
            .unwrap_or(BundleFormat::Json);
        let text = input::read_text(file)?;
        match parse_bundle(&text, format) {
            Ok(bundle) => bundles.push((file, bundle)),
            Err(message) => problems.push(ProblemItem {
                pointer: file.display().to_string(),
                message,
            }),
        }
    }
    if !problems.is_empty() {
        let mut error = CliError::invalid(
            "invalid_bundle_file",
            format!(
                "{} of {} file(s) cannot be read as a bundle; nothing was imported",
                problems.len(),
                files.len()
            ),
        );
        error.errors = problems;
        return Err(error);
    }
    let progress = if bundles.len() > 1 && std::io::stderr().is_terminal() {
        let bar =
            ProgressBar::with_draw_target(Some(bundles.len() as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}") {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let mut total = ImportReport::default();
    let several = bundles.len() > 1;
    for (index, (file, bundle)) in bundles.into_iter().enumerate() {
        if let Some(bar) = &progress {
            bar.set_message(file.display().to_string());
        }
        match backend.import(bundle).await {
            Ok(report) => add(&mut total, &report),
            Err(mut error) => {
                if let Some(bar) = &progress {
                    bar.abandon();
                }
                if several {
                    error.detail = format!("{}: {}", file.display(), error.detail);
                    if index > 0 {
                        error.detail.push_str(&format!(
                            " ({index} earlier file(s) were imported; re-running is safe)"
                        ));
                    }
                }
                return Err(error);
            }
        }
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    if json {
        return output::json(&total);
    }
    Ok(key_values(&[
        ("files", files.len().to_string()),
        (
            "prompt types created",
            total.prompt_types_created.to_string(),
        ),
        ("prompts created", total.prompts_created.to_string()),
        ("versions created", total.versions_created.to_string()),
        ("versions unchanged", total.versions_unchanged.to_string()),
        ("labels moved", total.labels_moved.to_string()),
        ("links set", total.links_set.to_string()),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        assert_eq!(
            extension_format(Path::new("a.YAML")),
            Some(BundleFormat::Yaml)
        );
        assert_eq!(
            extension_format(Path::new("a.yml")),
            Some(BundleFormat::Yaml)
        );
        assert_eq!(
            extension_format(Path::new("a.json")),
            Some(BundleFormat::Json)
        );
        assert_eq!(extension_format(Path::new("a.txt")), None);
    }

    #[test]
    fn a_yaml_bundle_parses() {
        let bundle = parse_bundle(
            "format: promptvault.bundle/v1\nprompts:\n- name: a\n  versions:\n  - version_number: 1\n    content: hi\n",
            BundleFormat::Yaml,
        )
        .expect("parses");
        assert_eq!(bundle.prompts[0].name, "a");
    }
}
