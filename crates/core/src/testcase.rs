//! Template test cases stored with a prompt: params plus deterministic assertions on the rendered
//! output (`contains`, `not_contains`, `regex`, `equals`, `valid_json`, `json_schema`,
//! `max_tokens`).
//!
//! Pure: [`validate`] checks a set of cases at save time (unique names, bounded counts and sizes,
//! regexes that compile under a size limit, schemas that compile); [`run`] renders a version's
//! content with [`crate::render::CompiledPrompt`] under the given limits and checks every
//! assertion; [`findings`] turns failures into compliance findings (`test_failed`, error), so a
//! failing test blocks draft → review like any other error finding.
//!
//! What the assertions see: for a text prompt, the rendered string. For a chat prompt, the
//! contents of the rendered messages (placeholders expanded) joined with a blank line (`"\n\n"`),
//! roles left out; `equals`, `valid_json` and `json_schema` apply to that joined text (so for a
//! chat prompt they are meant for one-message outputs). `max_tokens` counts with the same
//! tokenizer as the compliance token budget ([`crate::compliance::count_tokens`]).
//!
//! Reasons never echo the rendered output (it may hold confidential text): they give sizes,
//! positions, counts and the JSON pointers of schema errors.

use std::collections::BTreeSet;

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    compliance::{Finding, Severity, count_tokens},
    model::Content,
    render::{CompiledPrompt, RenderLimits, Rendered, UndefinedMode},
};

/// At most this many cases per prompt.
pub const MAX_CASES: usize = 100;
/// At most this many assertions per case.
pub const MAX_ASSERTIONS: usize = 50;
/// Longest case name, in characters.
pub const MAX_NAME: usize = 100;
/// Longest expected value or pattern, in bytes.
pub const MAX_VALUE_BYTES: usize = 10_000;
/// Largest `params` or `schema` of one case, as JSON bytes.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Compiled-size limit of a `regex` assertion (bytes of the compiled program).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One test case: render with `params`, then check every assertion on the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Unique within the prompt's tests.
    pub name: String,
    /// The render inputs.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: Map<String, Value>,
    /// Undefined variables: `strict` (default) or `lenient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undefined: Option<UndefinedMode>,
    pub assertions: Vec<Assertion>,
}

/// A deterministic check on the rendered output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Assertion {
    /// The output contains `value`.
    Contains { value: String },
    /// The output does not contain `value`.
    NotContains { value: String },
    /// The output matches `pattern` (Rust regex syntax, unanchored).
    Regex { pattern: String },
    /// The output is exactly `value`.
    Equals { value: String },
    /// The output parses as JSON.
    ValidJson,
    /// The output parses as JSON and satisfies `schema` (JSON Schema, 2020-12 by default).
    JsonSchema {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        schema: Value,
    },
    /// The output is at most `max` tokens (`o200k_base`).
    MaxTokens { max: u64 },
}

impl Assertion {
    /// The assertion's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Assertion::Contains { .. } => "contains",
            Assertion::NotContains { .. } => "not_contains",
            Assertion::Regex { .. } => "regex",
            Assertion::Equals { .. } => "equals",
            Assertion::ValidJson => "valid_json",
            Assertion::JsonSchema { .. } => "json_schema",
            Assertion::MaxTokens { .. } => "max_tokens",
        }
    }
}

/// One problem of a set of cases, with the JSON pointer of what is wrong
/// (`/cases/2/assertions/0/pattern`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCaseError {
    pub pointer: String,
    pub message: String,
}

/// Checks a set of cases before it is stored; every problem names the case and the assertion.
pub fn validate(cases: &[TestCase]) -> Result<(), Vec<TestCaseError>> {
    let mut errors = Vec::new();
    let mut error =
        |pointer: String, message: String| errors.push(TestCaseError { pointer, message });
    if cases.len() > MAX_CASES {
        error(
            "/cases".into(),
            format!("{} test cases, over the limit of {MAX_CASES}", cases.len()),
        );
    }
    let mut names = BTreeSet::new();
    for (index, case) in cases.iter().enumerate() {
        let at = format!("/cases/{index}");
        let name = case.name.trim();
        if name.is_empty() {
            error(
                format!("{at}/name"),
                format!("test case {index}: the name must not be empty"),
            );
        } else if case.name.chars().count() > MAX_NAME {
            error(
                format!("{at}/name"),
                format!("test case {index}: the name is longer than {MAX_NAME} characters"),
            );
        } else if case.name.chars().any(char::is_control) {
            error(
                format!("{at}/name"),
                format!("test case {index}: the name must not contain control characters"),
            );
        } else if !names.insert(case.name.as_str()) {
            error(
                format!("{at}/name"),
                format!(
                    "test case {:?}: the name is used by an earlier case",
                    case.name
                ),
            );
        }
        let label = format!("test case {:?}", case.name);
        if json_size(&Value::Object(case.params.clone())) > MAX_JSON_BYTES {
            error(
                format!("{at}/params"),
                format!("{label}: params are over {MAX_JSON_BYTES} bytes"),
            );
        }
        if case.assertions.is_empty() {
            error(
                format!("{at}/assertions"),
                format!("{label}: at least one assertion is required"),
            );
        }
        if case.assertions.len() > MAX_ASSERTIONS {
            error(
                format!("{at}/assertions"),
                format!(
                    "{label}: {} assertions, over the limit of {MAX_ASSERTIONS}",
                    case.assertions.len()
                ),
            );
        }
        for (position, assertion) in case.assertions.iter().enumerate() {
            let at = format!("{at}/assertions/{position}");
            let label = format!("{label}, assertion {position} ({})", assertion.kind());
            match assertion {
                Assertion::Contains { value }
                | Assertion::NotContains { value }
                | Assertion::Equals { value } => {
                    if value.len() > MAX_VALUE_BYTES {
                        error(
                            format!("{at}/value"),
                            format!("{label}: the value is over {MAX_VALUE_BYTES} bytes"),
                        );
                    } else if value.is_empty() && !matches!(assertion, Assertion::Equals { .. }) {
                        error(
                            format!("{at}/value"),
                            format!("{label}: the value must not be empty"),
                        );
                    }
                }
                Assertion::Regex { pattern } => {
                    if pattern.len() > MAX_VALUE_BYTES {
                        error(
                            format!("{at}/pattern"),
                            format!("{label}: the pattern is over {MAX_VALUE_BYTES} bytes"),
                        );
                    } else if let Err(problem) = compile_regex(pattern) {
                        error(
                            format!("{at}/pattern"),
                            format!("{label}: the pattern does not compile: {problem}"),
                        );
                    }
                }
                Assertion::ValidJson => {}
                Assertion::JsonSchema { schema } => {
                    if json_size(schema) > MAX_JSON_BYTES {
                        error(
                            format!("{at}/schema"),
                            format!("{label}: the schema is over {MAX_JSON_BYTES} bytes"),
                        );
                    } else if let Err(problem) = crate::render::check_schema(schema) {
                        error(format!("{at}/schema"), format!("{label}: {problem}"));
                    }
                }
                Assertion::MaxTokens { max } => {
                    if *max == 0 {
                        error(
                            format!("{at}/max"),
                            format!("{label}: max must be at least 1"),
                        );
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn json_size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(limit) => {
                format!("it compiles to more than {limit} bytes")
            }
            // The syntax error's text shows the pattern (from the test, not the prompt).
            other => other.to_string(),
        })
}

/// The outcome of one assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssertionResult {
    /// The assertion's `type`.
    #[serde(rename = "type")]
    pub kind: String,
    pub passed: bool,
    /// Why it failed; never quotes the rendered output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseResult {
    pub name: String,
    /// Rendered and every assertion passed.
    pub passed: bool,
    /// Why rendering failed (then no assertion was checked and `assertions` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub assertions: Vec<AssertionResult>,
}

impl CaseResult {
    fn render_failed(name: &str, reason: String) -> Self {
        CaseResult {
            name: name.to_string(),
            passed: false,
            error: Some(reason),
            assertions: Vec::new(),
        }
    }
}

/// Renders `content` for every case and checks its assertions. A template that does not compile
/// or a render error (invalid params, missing variables, a limit) fails that case.
/// The limits tests run under when a version is written: inside the write transaction, so
/// tighter than a render's (a case whose output needs more fails, saying so).
pub const WRITE_LIMITS: RenderLimits = RenderLimits {
    fuel: 50_000,
    recursion: 100,
    max_output_bytes: 64 * 1024,
};

pub fn run(
    content: &Content,
    parameter_schema: Option<&Value>,
    cases: &[TestCase],
    limits: RenderLimits,
) -> Vec<CaseResult> {
    let mut compiled: [Option<Result<CompiledPrompt, String>>; 2] = [None, None];
    cases
        .iter()
        .map(|case| {
            let mode = case.undefined.unwrap_or_default();
            let slot = &mut compiled[usize::from(mode == UndefinedMode::Lenient)];
            let prompt = slot.get_or_insert_with(|| {
                CompiledPrompt::compile(content, parameter_schema, mode, limits)
                    .map_err(|error| format!("the template does not compile: {error}"))
            });
            match prompt {
                Err(reason) => CaseResult::render_failed(&case.name, reason.clone()),
                Ok(prompt) => match prompt.render(&case.params) {
                    Err(error) => CaseResult::render_failed(
                        &case.name,
                        format!("rendering failed ({}): {error}", error.code()),
                    ),
                    Ok(rendered) => check_case(case, &output_text(&rendered)),
                },
            }
        })
        .collect()
}

/// The text assertions see (see the module docs for chat prompts).
pub fn output_text(rendered: &Rendered) -> String {
    match rendered {
        Rendered::Text(text) => text.clone(),
        Rendered::Chat(messages) => messages
            .iter()
            .map(|message| message.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
    }
}

/// Checks every assertion of `case` on an output text.
pub fn check_case(case: &TestCase, output: &str) -> CaseResult {
    // Counting tokens is the costly part: done at most once per case, however many
    // `max_tokens` assertions it has.
    let tokens = std::cell::OnceCell::new();
    let assertions: Vec<AssertionResult> = case
        .assertions
        .iter()
        .map(|assertion| {
            let reason = check(assertion, output, &tokens).err();
            AssertionResult {
                kind: assertion.kind().to_string(),
                passed: reason.is_none(),
                reason,
            }
        })
        .collect();
    CaseResult {
        name: case.name.clone(),
        passed: assertions.iter().all(|result| result.passed),
        error: None,
        assertions,
    }
}

fn check(
    assertion: &Assertion,
    output: &str,
    tokens: &std::cell::OnceCell<usize>,
) -> Result<(), String> {
    let size = |text: &str| text.chars().count();
    match assertion {
        Assertion::Contains { value } => {
            if output.contains(value.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "the output ({} characters) does not contain the expected text ({} \
                     characters)",
                    size(output),
                    size(value)
                ))
            }
        }
        // Reasons give sizes, never positions or values, so a run cannot be used to read the
        // output piece by piece.
        Assertion::NotContains { value } => match output.find(value.as_str()) {
            None => Ok(()),
            Some(_) => Err("the output contains the forbidden text".into()),
        },
        Assertion::Regex { pattern } => {
            let regex = compile_regex(pattern)
                .map_err(|problem| format!("the pattern does not compile: {problem}"))?;
            if regex.is_match(output) {
                Ok(())
            } else {
                Err("the output does not match the pattern".into())
            }
        }
        Assertion::Equals { value } => {
            if output == value {
                return Ok(());
            }
            Err(format!(
                "the output differs from the expected text (output {} characters, expected {})",
                size(output),
                size(value)
            ))
        }
        Assertion::ValidJson => parse_json(output).map(|_| ()),
        Assertion::JsonSchema { schema } => {
            let instance = parse_json(output)?;
            match crate::render::validate_against(schema, &instance) {
                Err(problem) => Err(format!("the schema is invalid: {problem}")),
                Ok(Ok(())) => Ok(()),
                // Pointers only: a validator's message can quote the offending value.
                Ok(Err(errors)) => Err(format!(
                    "the output does not match the schema at {}",
                    errors
                        .iter()
                        .take(5)
                        .map(|error| if error.pointer.is_empty() {
                            "/"
                        } else {
                            error.pointer.as_str()
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        Assertion::MaxTokens { max } => {
            let tokens = *tokens.get_or_init(|| count_tokens(output));
            if tokens as u64 <= *max {
                Ok(())
            } else {
                Err(format!(
                    "the output is {tokens} tokens, over the maximum of {max}"
                ))
            }
        }
    }
}

fn parse_json(output: &str) -> Result<Value, String> {
    // serde_json's messages give a category and a position, never the input.
    serde_json::from_str(output).map_err(|error| format!("the output is not valid JSON: {error}"))
}

/// The SHA-256 (lowercase hex) of a set of cases' canonical JSON: what the audit log records
/// about a change of tests, instead of their content.
pub fn cases_hash(cases: &[TestCase]) -> String {
    use sha2::{Digest, Sha256};
    let value = serde_json::to_value(cases).unwrap_or(Value::Null);
    crate::hash::hex(&Sha256::digest(
        crate::hash::canonical_json(&value).as_bytes(),
    ))
}

/// Whether every case passed.
pub fn all_passed(results: &[CaseResult]) -> bool {
    results.iter().all(|result| result.passed)
}

/// Failures as compliance findings: rule `test_failed`, severity `error`, located at the case
/// (and assertion). One finding per failed assertion, or one per case that did not render.
pub fn findings(results: &[CaseResult]) -> Vec<Finding> {
    let mut out = Vec::new();
    for case in results.iter().filter(|case| !case.passed) {
        if let Some(error) = &case.error {
            out.push(Finding {
                rule: "test_failed".into(),
                severity: Severity::Error,
                message: format!("test case {:?} failed: {error}", case.name),
                location: Some(format!("test {:?}", case.name)),
            });
        }
        for (position, assertion) in case.assertions.iter().enumerate() {
            if assertion.passed {
                continue;
            }
            out.push(Finding {
                rule: "test_failed".into(),
                severity: Severity::Error,
                message: format!(
                    "test case {:?} failed: {}",
                    case.name,
                    assertion.reason.as_deref().unwrap_or("assertion failed")
                ),
                location: Some(format!(
                    "test {:?}, assertion {position} ({})",
                    case.name, assertion.kind
                )),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn case(assertions: Value) -> TestCase {
        serde_json::from_value(json!({"name": "c", "assertions": assertions})).expect("case")
    }

    #[test]
    fn every_assertion_kind_passes_and_fails() {
        // (assertion, output, passes)
        let table: Vec<(Value, &str, bool)> = vec![
            (
                json!({"type": "contains", "value": "Hello"}),
                "Hello, Ada",
                true,
            ),
            (
                json!({"type": "contains", "value": "Bye"}),
                "Hello, Ada",
                false,
            ),
            (
                json!({"type": "not_contains", "value": "secret"}),
                "Hello",
                true,
            ),
            (
                json!({"type": "not_contains", "value": "Ada"}),
                "Hello, Ada",
                false,
            ),
            (
                json!({"type": "regex", "pattern": r"^Hello, \w+$"}),
                "Hello, Ada",
                true,
            ),
            (
                json!({"type": "regex", "pattern": r"^\d+$"}),
                "Hello, Ada",
                false,
            ),
            (
                json!({"type": "equals", "value": "Hello, Ada"}),
                "Hello, Ada",
                true,
            ),
            (
                json!({"type": "equals", "value": "Hello, Bob"}),
                "Hello, Ada",
                false,
            ),
            (json!({"type": "equals", "value": ""}), "", true),
            (json!({"type": "valid_json"}), r#"{"a": [1, 2]}"#, true),
            (json!({"type": "valid_json"}), "{not json", false),
            (
                json!({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}),
                r#"{"a": 1}"#,
                true,
            ),
            (
                json!({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}),
                r#"{"b": 1}"#,
                false,
            ),
            (
                json!({"type": "json_schema", "schema": {"type": "object"}}),
                "not json at all",
                false,
            ),
            (json!({"type": "max_tokens", "max": 2}), "hello world", true),
            (
                json!({"type": "max_tokens", "max": 1}),
                "hello world",
                false,
            ),
        ];
        for (assertion, output, passes) in table {
            let case = case(json!([assertion]));
            validate(std::slice::from_ref(&case)).expect("valid case");
            let result = check_case(&case, output);
            assert_eq!(result.passed, passes, "{assertion} on {output:?}");
            let only = &result.assertions[0];
            assert_eq!(only.passed, passes);
            assert_eq!(only.reason.is_some(), !passes, "{assertion}");
        }
    }

    #[test]
    fn reasons_never_echo_the_output() {
        let output = "the confidential ledger of ZEPHYR-77";
        let assertions = json!([
            {"type": "contains", "value": "nope"},
            {"type": "not_contains", "value": "ZEPHYR"},
            {"type": "regex", "pattern": "^x$"},
            {"type": "equals", "value": "the confidential"},
            {"type": "valid_json"},
            {"type": "json_schema", "schema": {"type": "object"}},
            {"type": "max_tokens", "max": 1}
        ]);
        let result = check_case(&case(assertions), output);
        assert!(!result.passed);
        for assertion in &result.assertions {
            let reason = assertion.reason.as_deref().expect("failed");
            assert!(!reason.contains("ZEPHYR"), "{reason}");
            assert!(!reason.contains("confidential"), "{reason}");
        }
        // Schema errors name the pointer, not the value.
        let result = check_case(
            &case(json!([{"type": "json_schema", "schema": {
                "type": "object", "properties": {"a": {"type": "integer"}}}}])),
            r#"{"a": "ZEPHYR"}"#,
        );
        let reason = result.assertions[0].reason.as_deref().expect("failed");
        assert!(reason.contains("/a"), "{reason}");
        assert!(!reason.contains("ZEPHYR"), "{reason}");
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        for bad in [
            json!({"name": "a", "assertions": [], "extra": 1}),
            json!({"name": "a", "assertions": [{"type": "contains", "value": "x", "x": 1}]}),
            json!({"name": "a", "assertions": [{"type": "sounds_good"}]}),
            json!({"name": "a", "assertions": [{"type": "contains"}]}),
        ] {
            assert!(
                serde_json::from_value::<TestCase>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn validation_names_the_case_and_the_assertion() {
        let cases: Vec<TestCase> = serde_json::from_value(json!([
            {"name": "ok", "assertions": [{"type": "valid_json"}]},
            {"name": "ok", "assertions": [{"type": "valid_json"}]},
            {"name": "bad regex", "assertions": [
                {"type": "contains", "value": "x"},
                {"type": "regex", "pattern": "(unclosed"}
            ]},
            {"name": "huge regex", "assertions": [{"type": "regex", "pattern": r"\w{1000}\w{1000}"}]},
            {"name": "bad schema", "assertions": [{"type": "json_schema", "schema": {"type": 7}}]},
            {"name": "", "assertions": [{"type": "valid_json"}]},
            {"name": "empty", "assertions": []},
            {"name": "zero", "assertions": [{"type": "max_tokens", "max": 0}]},
            {"name": "blank", "assertions": [{"type": "contains", "value": ""}]}
        ]))
        .expect("cases");
        let errors = validate(&cases).expect_err("invalid");
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|error| (error.pointer.as_str(), error.message.as_str()))
            .collect();
        let pointers: Vec<&str> = got.iter().map(|(pointer, _)| *pointer).collect();
        assert_eq!(
            pointers,
            vec![
                "/cases/1/name",
                "/cases/2/assertions/1/pattern",
                "/cases/3/assertions/0/pattern",
                "/cases/4/assertions/0/schema",
                "/cases/5/name",
                "/cases/6/assertions",
                "/cases/7/assertions/0/max",
                "/cases/8/assertions/0/value",
            ]
        );
        assert!(
            got[1]
                .1
                .starts_with("test case \"bad regex\", assertion 1 (regex)")
        );
        assert!(got[2].1.contains("compiles to more than"), "{}", got[2].1);
        let too_many: Vec<TestCase> = (0..=MAX_CASES)
            .map(|n| {
                serde_json::from_value(
                    json!({"name": format!("c{n}"), "assertions": [{"type": "valid_json"}]}),
                )
                .expect("case")
            })
            .collect();
        assert_eq!(
            validate(&too_many).expect_err("too many")[0].pointer,
            "/cases"
        );
    }

    #[test]
    fn running_renders_each_case_and_reports_render_errors() {
        let content = Content::Text("Hello, {{ name }}!".into());
        let cases: Vec<TestCase> = serde_json::from_value(json!([
            {"name": "greets", "params": {"name": "Ada"},
             "assertions": [{"type": "equals", "value": "Hello, Ada!"}]},
            {"name": "missing param", "assertions": [{"type": "contains", "value": "Hello"}]},
            {"name": "lenient", "undefined": "lenient",
             "assertions": [{"type": "equals", "value": "Hello, !"}]},
            {"name": "wrong", "params": {"name": "Bob"},
             "assertions": [{"type": "contains", "value": "Ada"}, {"type": "max_tokens", "max": 50}]}
        ]))
        .expect("cases");
        let results = run(&content, None, &cases, RenderLimits::STANDARD);
        let passed: Vec<bool> = results.iter().map(|result| result.passed).collect();
        assert_eq!(passed, vec![true, false, true, false]);
        assert!(!all_passed(&results));
        let error = results[1].error.as_deref().expect("render error");
        assert!(
            error.contains("missing_params") && error.contains("name"),
            "{error}"
        );
        assert_eq!(results[3].assertions.len(), 2);
        assert!(results[3].assertions[1].passed);

        let findings = findings(&results);
        let got: Vec<(&str, Severity, Option<&str>)> = findings
            .iter()
            .map(|f| (f.rule.as_str(), f.severity, f.location.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "test_failed",
                    Severity::Error,
                    Some("test \"missing param\"")
                ),
                (
                    "test_failed",
                    Severity::Error,
                    Some("test \"wrong\", assertion 0 (contains)")
                ),
            ]
        );
        assert!(crate::compliance::has_errors(&findings));
        // Parameter-schema violations fail the case too.
        let schema = json!({"type": "object", "properties": {"name": {"type": "integer"}}});
        let results = run(&content, Some(&schema), &cases[..1], RenderLimits::STANDARD);
        assert!(!results[0].passed);
        assert!(
            results[0]
                .error
                .as_deref()
                .expect("error")
                .contains("invalid_params")
        );
    }

    #[test]
    fn chat_assertions_see_the_message_contents_joined() {
        let content: Content = serde_json::from_value(json!([
            {"role": "system", "content": "You are {{ persona }}."},
            {"role": "placeholder", "name": "history"},
            {"role": "user", "content": "{\"ask\": 1}"}
        ]))
        .expect("chat");
        let cases: Vec<TestCase> = serde_json::from_value(json!([{
            "name": "joined",
            "params": {"persona": "a pirate", "history": [{"role": "assistant", "content": "arr"}]},
            "assertions": [
                {"type": "equals", "value": "You are a pirate.\n\narr\n\n{\"ask\": 1}"},
                {"type": "not_contains", "value": "system"},
                {"type": "valid_json"}
            ]
        }]))
        .expect("cases");
        let results = run(&content, None, &cases, RenderLimits::STANDARD);
        let passed: Vec<bool> = results[0].assertions.iter().map(|a| a.passed).collect();
        assert_eq!(passed, vec![true, true, false]);
    }

    #[test]
    fn a_template_that_blows_its_limits_fails_the_case() {
        let content = Content::Text("{% for i in range(100000) %}{{ i }}{% endfor %}".into());
        let cases = vec![case(json!([{"type": "valid_json"}]))];
        let results = run(&content, None, &cases, RenderLimits::STANDARD);
        assert!(!results[0].passed);
        assert!(results[0].error.is_some());
    }
}
