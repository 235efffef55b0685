//! Rendering: parameters are validated against the version's JSON Schema, then each template is
//! rendered with minijinja under hard limits (execution fuel, recursion depth, output size).
//! Fuel counts instructions, not bytes, so the single instructions that could build huge values
//! (repeating a literal string or list, big literal counts) are refused when a template is saved
//! (`crate::template`); the server also runs renders on its blocking pool, so even a slow render
//! never stalls other requests. Known gap: a template can still double a value with
//! `{% set a = a ~ a %}` a bounded number of times (each doubling costs fuel); see ARCHITECTURE.md.
//!
//! A [`CompiledPrompt`] is compiled once and rendered many times (it is `Send + Sync`), which is
//! what a cache of hot prompts holds.

use std::{
    cell::Cell,
    collections::BTreeSet,
    io::{self, Write},
};

use minijinja::{Environment, ErrorKind, UndefinedBehavior, value::Value as TemplateValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::{
    error::DomainError,
    model::{ChatEntry, Content},
    template,
};

/// How undefined variables behave.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndefinedMode {
    /// Reading a variable that was not passed is an error (the default).
    #[default]
    Strict,
    /// Undefined variables render as empty and can be chained (`{{ a.b.c }}`).
    Lenient,
}

/// The bounds every render runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// minijinja execution fuel (about one unit per instruction).
    pub fuel: u64,
    /// Nesting depth of loops, macros and calls.
    pub recursion: usize,
    /// Bytes of output across all messages.
    pub max_output_bytes: usize,
}

impl RenderLimits {
    /// Limits that let real prompts through and stop hostile ones within milliseconds.
    pub const STANDARD: RenderLimits = RenderLimits {
        fuel: 200_000,
        recursion: 100,
        max_output_bytes: 1024 * 1024,
    };
}

/// A rendered chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedMessage {
    pub role: String,
    pub content: String,
}

/// The result of a render: a string for text prompts, messages for chat prompts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rendered {
    Text(String),
    Chat(Vec<RenderedMessage>),
}

/// One parameter that fails the parameter schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamError {
    /// JSON pointer into the params (`/user/age`; empty for the whole object).
    pub pointer: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    #[error("params do not match the parameter schema ({} error(s))", .0.len())]
    InvalidParams(Vec<ParamError>),
    #[error("the template reads variables that were not passed: {}", .0.join(", "))]
    MissingParams(Vec<String>),
    #[error("rendering exceeded its {limit} limit")]
    LimitExceeded { limit: &'static str },
    #[error("placeholder {name:?}: {reason}")]
    InvalidPlaceholder { name: String, reason: String },
    #[error("rendering failed: {0}")]
    Template(String),
}

impl RenderError {
    pub fn code(&self) -> &'static str {
        match self {
            RenderError::InvalidParams(_) => "invalid_params",
            RenderError::MissingParams(_) => "missing_params",
            RenderError::LimitExceeded { .. } => "render_limit_exceeded",
            RenderError::InvalidPlaceholder { .. } => "invalid_placeholder",
            RenderError::Template(_) => "render_failed",
        }
    }
}

/// Checks a parameter schema is a JSON object and a valid JSON Schema (2020-12 by default).
pub fn check_schema(schema: &Value) -> Result<(), DomainError> {
    if !schema.is_object() {
        return Err(DomainError::InvalidSchema {
            message: "parameter_schema must be a JSON object".into(),
        });
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|error| DomainError::InvalidSchema {
            message: error.masked().to_string(),
        })
}

/// Validates `instance` against `schema`; every failure comes back with its JSON pointer. Messages
/// never quote the offending value (it may be confidential).
pub fn validate_against(
    schema: &Value,
    instance: &Value,
) -> Result<Result<(), Vec<ParamError>>, DomainError> {
    check_schema(schema)?;
    let validator =
        jsonschema::validator_for(schema).map_err(|error| DomainError::InvalidSchema {
            message: error.masked().to_string(),
        })?;
    Ok(collect_errors(&validator, instance))
}

/// Every schema error of `instance`. Valid params are the common case on the serve path, and
/// `is_valid` stops early and builds no error values, so it answers those first; the errors are
/// only collected for params that fail it.
fn collect_errors(
    validator: &jsonschema::Validator,
    instance: &Value,
) -> Result<(), Vec<ParamError>> {
    if validator.is_valid(instance) {
        return Ok(());
    }
    let errors: Vec<ParamError> = validator
        .iter_errors(instance)
        .map(|error| ParamError {
            pointer: error.instance_path().as_str().to_string(),
            message: error.masked().to_string(),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

enum CompiledEntry {
    Message { role: String, template: String },
    Placeholder { name: String },
}

/// A prompt's templates and schema, compiled once, rendered many times.
pub struct CompiledPrompt {
    env: Environment<'static>,
    entries: Vec<CompiledEntry>,
    is_chat: bool,
    validator: Option<jsonschema::Validator>,
    variables: BTreeSet<String>,
    straight_line: bool,
    limits: RenderLimits,
}

impl std::fmt::Debug for CompiledPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPrompt")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl CompiledPrompt {
    pub fn compile(
        content: &Content,
        parameter_schema: Option<&Value>,
        undefined: UndefinedMode,
        limits: RenderLimits,
    ) -> Result<Self, DomainError> {
        let info = template::analyze(content)?;
        let mut env = Environment::new();
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.recursion);
        // Prompt text is kept byte for byte, final newline included (Jinja drops it by default).
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_undefined_behavior(match undefined {
            UndefinedMode::Strict => UndefinedBehavior::Strict,
            UndefinedMode::Lenient => UndefinedBehavior::Chainable,
        });
        let mut entries = Vec::new();
        let is_chat = matches!(content, Content::Chat(_));
        match content {
            Content::Text(text) => entries.push(add_message(&mut env, "", text)?),
            Content::Chat(messages) => {
                for entry in messages {
                    entries.push(match entry {
                        ChatEntry::Message { role, content } => {
                            add_message(&mut env, role, content)?
                        }
                        ChatEntry::Placeholder { name } => {
                            CompiledEntry::Placeholder { name: name.clone() }
                        }
                    });
                }
            }
        }
        let validator = match parameter_schema {
            Some(schema) => {
                check_schema(schema)?;
                Some(jsonschema::validator_for(schema).map_err(|error| {
                    DomainError::InvalidSchema {
                        message: error.masked().to_string(),
                    }
                })?)
            }
            None => None,
        };
        Ok(CompiledPrompt {
            env,
            entries,
            is_chat,
            validator,
            variables: info.variables,
            straight_line: info.straight_line,
            limits,
        })
    }

    /// The top-level variables the templates read.
    pub fn variables(&self) -> &BTreeSet<String> {
        &self.variables
    }

    /// Whether every template is straight-line ([`template::TemplateInfo::straight_line`]): a
    /// render then costs time linear in its parameters and output, never more, so a server may
    /// run it where it stands instead of handing it to a pool for untrusted work.
    pub fn is_straight_line(&self) -> bool {
        self.straight_line
    }

    /// Validates `params` against the schema, then renders every template. Copies the params
    /// once (validation needs them as a JSON value); a caller that owns them should use
    /// [`CompiledPrompt::render_owned`], which does not.
    pub fn render(&self, params: &Map<String, Value>) -> Result<Rendered, RenderError> {
        self.render_owned(params.clone()).0
    }

    /// [`CompiledPrompt::render`] for a caller that owns the params: they are moved into the JSON
    /// value the schema validates rather than deep-copied (a copy is a sizeable share of a render
    /// on the serve path), and handed back with the result so the caller can still keep them
    /// (a recorded run does).
    pub fn render_owned(
        &self,
        params: Map<String, Value>,
    ) -> (Result<Rendered, RenderError>, Map<String, Value>) {
        let instance = Value::Object(params);
        let result = self.render_instance(&instance);
        let params = match instance {
            Value::Object(params) => params,
            // Unreachable: `instance` is the object built above.
            _ => Map::new(),
        };
        (result, params)
    }

    /// Validates and renders `instance`, which is always a JSON object (the params).
    fn render_instance(&self, instance: &Value) -> Result<Rendered, RenderError> {
        if let Some(validator) = &self.validator {
            collect_errors(validator, instance).map_err(RenderError::InvalidParams)?;
        }
        let Value::Object(params) = instance else {
            return Err(RenderError::Template("params must be a JSON object".into()));
        };
        let context = TemplateValue::from(minijinja::value::Serde(instance));
        let mut budget = self.limits.max_output_bytes;
        let mut messages = Vec::new();
        for entry in &self.entries {
            match entry {
                CompiledEntry::Message { role, template } => {
                    let text = self.render_one(template, &context, params, &mut budget)?;
                    messages.push(RenderedMessage {
                        role: role.clone(),
                        content: text,
                    });
                }
                CompiledEntry::Placeholder { name } => {
                    messages.extend(expand_placeholder(name, params.get(name), &mut budget)?);
                }
            }
        }
        if self.is_chat {
            Ok(Rendered::Chat(messages))
        } else {
            Ok(Rendered::Text(
                messages
                    .pop()
                    .map(|message| message.content)
                    .unwrap_or_default(),
            ))
        }
    }

    fn render_one(
        &self,
        template_name: &str,
        context: &TemplateValue,
        params: &Map<String, Value>,
        budget: &mut usize,
    ) -> Result<String, RenderError> {
        let template = self
            .env
            .get_template(template_name)
            .map_err(|error| RenderError::Template(template::describe(&error)))?;
        let overflowed = Cell::new(false);
        let mut writer = CappedWriter {
            buffer: Vec::new(),
            remaining: *budget,
            overflowed: &overflowed,
        };
        let result = template.render_captured_to(context.clone(), &mut writer);
        if overflowed.get() {
            return Err(RenderError::LimitExceeded {
                limit: "output size",
            });
        }
        if let Err(error) = result {
            return Err(self.classify(&error, params));
        }
        *budget = writer.remaining;
        String::from_utf8(writer.buffer)
            .map_err(|_| RenderError::Template("output is not UTF-8".into()))
    }

    fn classify(&self, error: &minijinja::Error, params: &Map<String, Value>) -> RenderError {
        match error.kind() {
            ErrorKind::OutOfFuel => RenderError::LimitExceeded {
                limit: "execution fuel",
            },
            ErrorKind::UndefinedError => {
                let missing: Vec<String> = self
                    .variables
                    .iter()
                    .filter(|name| !params.contains_key(*name))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    RenderError::Template(template::describe(error))
                } else {
                    RenderError::MissingParams(missing)
                }
            }
            _ if template::describe(error).contains("recursion") => RenderError::LimitExceeded {
                limit: "recursion depth",
            },
            _ if template::describe(error).contains("too large") => RenderError::LimitExceeded {
                limit: "output size",
            },
            _ => RenderError::Template(template::describe(error)),
        }
    }
}

/// Adds one message template to the environment under a fresh name.
fn add_message(
    env: &mut Environment<'static>,
    role: &str,
    source: &str,
) -> Result<CompiledEntry, DomainError> {
    let template = format!("message-{}", env.templates().count());
    env.add_template_owned(template.clone(), source.to_string())
        .map_err(|error| DomainError::InvalidTemplate {
            message: template::describe(&error),
        })?;
    Ok(CompiledEntry::Message {
        role: role.to_string(),
        template,
    })
}

/// A placeholder's value must be a list of `{role, content}` messages; they are passed through
/// as given (not rendered as templates).
fn expand_placeholder(
    name: &str,
    value: Option<&Value>,
    budget: &mut usize,
) -> Result<Vec<RenderedMessage>, RenderError> {
    let invalid = |reason: &str| RenderError::InvalidPlaceholder {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let Some(value) = value else {
        return Err(RenderError::MissingParams(vec![name.to_string()]));
    };
    let messages: Vec<RenderedMessage> = serde_json::from_value(value.clone())
        .map_err(|_| invalid("expected a list of {\"role\", \"content\"} messages"))?;
    let size: usize = messages
        .iter()
        .map(|message| message.role.len() + message.content.len())
        .sum();
    if size > *budget {
        return Err(RenderError::LimitExceeded {
            limit: "output size",
        });
    }
    *budget -= size;
    Ok(messages)
}

/// An output sink that refuses to grow past its budget.
struct CappedWriter<'a> {
    buffer: Vec<u8>,
    remaining: usize,
    overflowed: &'a Cell<bool>,
}

impl Write for CappedWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() > self.remaining {
            self.overflowed.set(true);
            return Err(io::Error::other("output size limit reached"));
        }
        self.remaining -= bytes.len();
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;

    fn compile(
        content: Content,
        schema: Option<Value>,
        undefined: UndefinedMode,
    ) -> CompiledPrompt {
        CompiledPrompt::compile(&content, schema.as_ref(), undefined, RenderLimits::STANDARD)
            .expect("compiles")
    }

    fn params(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn a_text_prompt_renders_its_params() {
        let prompt = compile(
            Content::Text("Summarize {{ text }} in {{ n }} words".into()),
            None,
            UndefinedMode::Strict,
        );
        let rendered = prompt
            .render(&params(json!({"text": "the memo", "n": 20})))
            .expect("renders");
        assert_eq!(
            rendered,
            Rendered::Text("Summarize the memo in 20 words".into())
        );
    }

    #[test]
    fn the_final_newline_is_kept() {
        let prompt = compile(
            Content::Text("line {{ n }}\n".into()),
            None,
            UndefinedMode::Strict,
        );
        assert_eq!(
            prompt.render(&params(json!({"n": 1}))),
            Ok(Rendered::Text("line 1\n".into()))
        );
    }

    #[test]
    fn strict_rendering_names_every_missing_variable() {
        let prompt = compile(
            Content::Text("{{ a }} {{ b }} {{ c }}".into()),
            None,
            UndefinedMode::Strict,
        );
        assert_eq!(
            prompt.render(&params(json!({"b": 1}))),
            Err(RenderError::MissingParams(vec!["a".into(), "c".into()]))
        );
    }

    #[test]
    fn lenient_rendering_leaves_missing_variables_empty() {
        let prompt = compile(
            Content::Text("[{{ a }}][{{ b.c }}]".into()),
            None,
            UndefinedMode::Lenient,
        );
        assert_eq!(
            prompt.render(&Map::new()),
            Ok(Rendered::Text("[][]".into()))
        );
    }

    #[test]
    fn params_are_validated_against_the_schema_with_pointers() {
        let schema = json!({
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}, "user": {"type": "object", "properties": {"age": {"type": "integer"}}}},
            "required": ["n", "tone"]
        });
        let prompt = compile(
            Content::Text("{{ n }}".into()),
            Some(schema),
            UndefinedMode::Strict,
        );
        let Err(RenderError::InvalidParams(errors)) =
            prompt.render(&params(json!({"n": 0, "user": {"age": "old"}})))
        else {
            panic!("expected invalid params");
        };
        let pointers: BTreeSet<&str> = errors.iter().map(|error| error.pointer.as_str()).collect();
        assert_eq!(pointers, BTreeSet::from(["", "/n", "/user/age"]));
        assert!(
            errors.iter().all(|error| !error.message.contains("old")),
            "messages must not echo values: {errors:?}"
        );
    }

    #[test]
    fn checking_validity_first_reports_the_same_errors_as_collecting_them_all() {
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
            },
            "required": ["n"],
            "additionalProperties": false
        });
        let validator = jsonschema::validator_for(&schema).expect("schema");
        let instances = [
            json!({"n": 1}),
            json!({"n": 5, "tags": ["a", "b"]}),
            json!({}),
            json!({"n": 0, "tags": ["a", 2, "c"], "other": true}),
            json!("not an object"),
        ];
        for instance in instances {
            let every: Vec<ParamError> = validator
                .iter_errors(&instance)
                .map(|error| ParamError {
                    pointer: error.instance_path().as_str().to_string(),
                    message: error.masked().to_string(),
                })
                .collect();
            let expected = if every.is_empty() { Ok(()) } else { Err(every) };
            assert_eq!(
                collect_errors(&validator, &instance),
                expected,
                "{instance}"
            );
        }
    }

    #[test]
    fn chat_prompts_render_each_message_and_expand_placeholders() {
        let content = Content::from_json(&json!([
            {"role": "system", "content": "You are {{ persona }}."},
            {"role": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question }}"}
        ]))
        .expect("chat");
        let prompt = compile(content, None, UndefinedMode::Strict);
        let rendered = prompt
            .render(&params(json!({
                "persona": "a pirate",
                "question": "Where?",
                "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Arr"}]
            })))
            .expect("renders");
        let expected = [
            ("system", "You are a pirate."),
            ("user", "Hi"),
            ("assistant", "Arr"),
            ("user", "Where?"),
        ];
        let Rendered::Chat(messages) = rendered else {
            panic!("chat expected")
        };
        let got: Vec<(&str, &str)> = messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn rendering_owned_params_gives_the_same_result_and_hands_the_params_back() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let prompt = compile(
            Content::Text("{{ text }} x{{ n }}".into()),
            Some(schema),
            UndefinedMode::Strict,
        );
        let cases = [
            json!({"text": "memo", "n": 3, "extra": {"kept": [1, 2]}}),
            json!({"text": "memo", "n": "three"}),
            json!({"n": 3}),
        ];
        for case in cases {
            let given = params(case);
            let (result, returned) = prompt.render_owned(given.clone());
            assert_eq!(result, prompt.render(&given), "{given:?}");
            assert_eq!(returned, given);
        }
    }

    #[test]
    fn a_placeholder_must_be_given_a_list_of_messages() {
        let content =
            Content::from_json(&json!([{"role": "placeholder", "name": "history"}])).expect("chat");
        let prompt = compile(content, None, UndefinedMode::Strict);
        assert!(matches!(
            prompt.render(&params(json!({"history": "nope"}))),
            Err(RenderError::InvalidPlaceholder { .. })
        ));
        assert_eq!(
            prompt.render(&Map::new()),
            Err(RenderError::MissingParams(vec!["history".into()]))
        );
    }

    #[test]
    fn hostile_templates_hit_a_limit_instead_of_running_away() {
        let cases = [
            (
                "infinite loop",
                "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
                "execution fuel",
            ),
            (
                "deep recursion",
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                "recursion depth",
            ),
            (
                "huge output",
                "{% for i in range(10000) %}{{ 'y' * 1000 }}{% endfor %}",
                "output size",
            ),
            (
                "many small writes",
                &format!(
                    "{{% for i in range(10000) %}}{}{{% endfor %}}",
                    "z".repeat(500)
                ),
                "output size",
            ),
        ];
        for (label, source, limit) in cases {
            let prompt = compile(
                Content::Text(source.to_string()),
                None,
                UndefinedMode::Strict,
            );
            let started = Instant::now();
            let result = prompt.render(&Map::new());
            assert_eq!(
                result,
                Err(RenderError::LimitExceeded { limit }),
                "{label} ({:?})",
                started.elapsed()
            );
        }
    }

    #[test]
    fn an_invalid_schema_is_refused_at_compile_time() {
        let cases = [
            json!("string"),
            json!({"type": "not-a-type"}),
            json!({"prefixItems": []}),
        ];
        for schema in cases {
            let result = CompiledPrompt::compile(
                &Content::Text("x".into()),
                Some(&schema),
                UndefinedMode::Strict,
                RenderLimits::STANDARD,
            );
            assert!(
                matches!(result, Err(DomainError::InvalidSchema { .. })),
                "{schema}"
            );
        }
    }
}
