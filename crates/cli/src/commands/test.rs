//! `prompt test <name> [--version N | --label L]`: runs the prompt's template tests on one
//! version (default `latest`) and prints per case and per assertion whether it passed and why
//! not, as a table or the API's JSON. The results are printed either way; when a case failed the
//! command then fails with `tests_failed` (exit 4), like `prompt check`.
//!
//! `prompt test <name> --set FILE` replaces the prompt's tests with the cases of a YAML or JSON
//! file (a list of cases, or `{cases: [...]}`; `-` reads stdin).

use promptvault_api::testcases::{RunTestsRequest, RunTestsResponse, SetTestsRequest};
use serde_json::Value;

use crate::{
    args::TestArgs,
    backend::Backend,
    error::{CliError, CliResult},
    input, output,
};

/// The text to print, and the failure to report after printing it (a failed case).
pub async fn test(
    backend: &dyn Backend,
    args: TestArgs,
    json: bool,
) -> CliResult<(String, Option<CliError>)> {
    if let Some(path) = &args.set {
        let request = parse_cases(&input::read_text(path)?).map_err(|reason| {
            CliError::invalid("invalid_tests", format!("{}: {reason}", path.display()))
        })?;
        let response = backend.set_tests(&args.name, request).await?;
        let text = if json {
            output::json(&response)?
        } else {
            format!(
                "set {} test case(s) on {}\n",
                response.cases.len(),
                response.prompt_name
            )
        };
        return Ok((text, None));
    }
    let response = backend
        .run_tests(
            &args.name,
            RunTestsRequest {
                version: args.version,
                label: args.label,
            },
        )
        .await?;
    let text = if json {
        output::json(&response)?
    } else {
        results_text(&response)
    };
    let failure = (!response.passed).then(|| {
        CliError::invalid(
            "tests_failed",
            format!(
                "{} of {} test case(s) failed on version {} of {}",
                response.failed, response.total, response.version_number, response.prompt_name
            ),
        )
    });
    Ok((text, failure))
}

/// A tests file: YAML or JSON (JSON is YAML), a list of cases or `{cases: [...]}`.
fn parse_cases(text: &str) -> Result<SetTestsRequest, String> {
    let value: Value = yaml_serde::from_str(text).map_err(|error| error.to_string())?;
    let value = match value {
        Value::Array(cases) => serde_json::json!({ "cases": cases }),
        other => other,
    };
    serde_json::from_value(value).map_err(|error| error.to_string())
}

fn results_text(response: &RunTestsResponse) -> String {
    let mut text = format!(
        "{} v{}: {} of {} test case(s) passed\n",
        response.prompt_name,
        response.version_number,
        response.total - response.failed,
        response.total
    );
    for case in &response.results {
        let mark = if case.passed { "PASS" } else { "FAIL" };
        text.push_str(&format!("{mark} {}\n", case.name));
        if let Some(error) = &case.error {
            text.push_str(&format!("  error: {error}\n"));
        }
        for (index, assertion) in case.assertions.iter().enumerate() {
            match &assertion.reason {
                None => text.push_str(&format!("  ok   {index} {}\n", assertion.kind)),
                Some(reason) => {
                    text.push_str(&format!("  fail {index} {}: {reason}\n", assertion.kind))
                }
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tests_file_is_a_list_or_an_object_in_yaml_or_json() {
        let yaml = "- name: greets\n  params: {name: Ada}\n  assertions:\n    - type: contains\n      value: Ada\n";
        let object = r#"{"cases": [{"name": "greets", "params": {"name": "Ada"},
            "assertions": [{"type": "contains", "value": "Ada"}]}]}"#;
        let parsed = parse_cases(yaml).expect("yaml list");
        assert_eq!(parsed, parse_cases(object).expect("json object"));
        assert_eq!(parsed.cases[0].name, "greets");
        assert!(parse_cases("- name: x\n  assertions: [{type: nope}]\n").is_err());
    }
}
