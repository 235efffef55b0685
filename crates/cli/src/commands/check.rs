//! `prompt check <name> [--version N]`: the compliance findings of a version (the newest by
//! default), as a table or the API's JSON. The findings are printed either way; when one is an
//! error (it blocks draft → review) the command then fails with `compliance_failed` (exit 4).

use promptvault_api::{Severity, prompts::FindingsResponse};

use crate::{
    args::CheckArgs,
    backend::Backend,
    error::{CliError, CliResult},
    output::{self, Table},
};

/// The text to print, and the failure to report after printing it (an error finding).
pub async fn check(
    backend: &dyn Backend,
    args: CheckArgs,
    json: bool,
) -> CliResult<(String, Option<CliError>)> {
    let version = match args.version {
        Some(version) => version,
        None => backend
            .get_prompt(&args.name)
            .await?
            .versions
            .first()
            .map(|version| version.version_number)
            .ok_or_else(|| CliError::invalid("no_versions", "the prompt has no versions"))?,
    };
    let response = backend.findings(&args.name, version).await?;
    let text = if json {
        output::json(&response)?
    } else {
        findings_text(&response)
    };
    let errors = response
        .findings
        .iter()
        .filter(|finding| finding.severity == Severity::Error)
        .count();
    let failure = (errors > 0).then(|| {
        CliError::invalid(
            "compliance_failed",
            format!(
                "version {} of {} has {errors} error finding(s); they block review",
                response.version_number, response.prompt_name
            ),
        )
    });
    Ok((text, failure))
}

fn findings_text(response: &FindingsResponse) -> String {
    let mut text = format!(
        "{} v{} ({}): {} tokens, {} finding(s)\n",
        response.prompt_name,
        response.version_number,
        response.status,
        response.token_count,
        response.findings.len()
    );
    if response.findings.is_empty() {
        return text;
    }
    let mut table = Table::new(&["SEVERITY", "RULE", "LOCATION", "MESSAGE"]);
    for finding in &response.findings {
        table.row(vec![
            finding.severity.to_string(),
            finding.rule.clone(),
            output::or_dash(finding.location.as_deref()),
            finding.message.clone(),
        ]);
    }
    text.push_str(&table.render());
    text
}
