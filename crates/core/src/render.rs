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
//!
//! Most prompts are plain text with `{{ name }}` placeholders. Such a message is split into its
//! literal text and variable names when it is compiled, and a render whose values are strings,
//! integers or booleans splices them in directly instead of running minijinja (the cost of a
//! render on the serve path); any other value falls back to minijinja, so outputs and errors are
//! the same either way.

use std::{
    cell::Cell,
    collections::BTreeSet,
    fmt::Write as _,
    io::{self, Write},
    sync::OnceLock,
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
    Message {
        role: String,
        /// The template's name in the environment.
        template: String,
        /// Its literal text and variables when it is plain (see [`PlainTemplate`]).
        plain: Option<PlainTemplate>,
    },
    Placeholder {
        name: String,
    },
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

    /// Validates and renders `instance`, which is always a JSON object (the params). A plain
    /// message whose values can be spliced in is not run through minijinja, and the params are
    /// only converted to minijinja values when some message needs it.
    fn render_instance(&self, instance: &Value) -> Result<Rendered, RenderError> {
        if let Some(validator) = &self.validator {
            collect_errors(validator, instance).map_err(RenderError::InvalidParams)?;
        }
        let Value::Object(params) = instance else {
            return Err(RenderError::Template("params must be a JSON object".into()));
        };
        let mut context: Option<TemplateValue> = None;
        let mut budget = self.limits.max_output_bytes;
        let mut messages = Vec::new();
        for entry in &self.entries {
            match entry {
                CompiledEntry::Message {
                    role,
                    template,
                    plain,
                } => {
                    let spliced = match plain {
                        Some(plain) => plain.splice(params, &mut budget),
                        None => Spliced::Unsupported,
                    };
                    let text = match spliced {
                        Spliced::Text(text) => text,
                        Spliced::TooLarge => {
                            return Err(RenderError::LimitExceeded {
                                limit: "output size",
                            });
                        }
                        Spliced::Unsupported => {
                            let context = context.get_or_insert_with(|| {
                                TemplateValue::from(minijinja::value::Serde(instance))
                            });
                            self.render_one(template, context, params, &mut budget)?
                        }
                    };
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

    /// For each message, whether it is plain (rendered by splicing when its values allow).
    #[cfg(test)]
    fn plain_messages(&self) -> Vec<bool> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                CompiledEntry::Message { plain, .. } => Some(plain.is_some()),
                CompiledEntry::Placeholder { .. } => None,
            })
            .collect()
    }

    /// For each message, whether rendering `params` takes the splice path.
    #[cfg(test)]
    fn spliced_messages(&self, params: &Map<String, Value>) -> Vec<bool> {
        self.entries
            .iter()
            .filter_map(|entry| match entry {
                CompiledEntry::Message { plain, .. } => Some(plain.as_ref().is_some_and(|plain| {
                    let mut unbounded = usize::MAX;
                    matches!(plain.splice(params, &mut unbounded), Spliced::Text(_))
                })),
                CompiledEntry::Placeholder { .. } => None,
            })
            .collect()
    }

    /// The same prompt with every message rendered by minijinja, as it was before plain renders.
    #[cfg(test)]
    fn without_fast_path(mut self) -> Self {
        for entry in &mut self.entries {
            if let CompiledEntry::Message { plain, .. } = entry {
                *plain = None;
            }
        }
        self
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

/// Adds one message template to the environment under a fresh name, with its plain form when
/// it has one.
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
    let plain = split_plain(source, env.syntax())
        .and_then(|segments| PlainTemplate::checked(env, &template, segments));
    Ok(CompiledEntry::Message {
        role: role.to_string(),
        template,
        plain,
    })
}

/// The most variable references a plain template may make. A plain render costs no fuel, so this
/// keeps its cost in line with what the fuel allows minijinja (a few units per reference).
const MAX_PLAIN_VARIABLES: usize = 1_000;

/// Names the parser reads as constants or special variables, never as parameters.
const RESERVED_NAMES: &[&str] = &[
    "true", "True", "false", "False", "none", "None", "loop", "self",
];

/// One piece of a plain template, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Text copied to the output as is.
    Literal(Box<str>),
    /// A `{{ name }}` reference.
    Variable(Box<str>),
}

/// A message template that is only literal text and bare `{{ name }}` references, split by
/// minijinja's own lexer. Rendering one is splicing the parameter values between the literals,
/// which costs a fraction of running the template (the hot path of serving a prompt); it is used
/// only when every value prints the same way minijinja prints it.
#[derive(Debug)]
struct PlainTemplate {
    segments: Vec<Segment>,
}

/// The outcome of splicing a plain template.
#[derive(Debug, PartialEq, Eq)]
enum Spliced {
    Text(String),
    /// The output would exceed the remaining output budget.
    TooLarge,
    /// A value is missing or is not a string, integer or boolean: minijinja must render it.
    Unsupported,
}

impl PlainTemplate {
    /// `segments` as a plain template, if splicing them renders exactly what minijinja renders
    /// for the template named `template`: both render a probe context that binds each variable to
    /// a distinct sentinel string, and must agree byte for byte. This guards against any lexer
    /// subtlety the split could miss (trailing newlines, whitespace trimming and the like); a
    /// template that fails it, or runs out of fuel, is always rendered by minijinja.
    fn checked(
        env: &Environment<'static>,
        template: &str,
        segments: Vec<Segment>,
    ) -> Option<PlainTemplate> {
        if !scalars_print_like_minijinja() {
            return None;
        }
        let plain = PlainTemplate { segments };
        let mut probe = Map::new();
        for segment in &plain.segments {
            if let Segment::Variable(name) = segment
                && !probe.contains_key(&**name)
            {
                let sentinel = format!("\u{1}var{}\u{1}", probe.len());
                probe.insert(name.to_string(), Value::String(sentinel));
            }
        }
        let expected = env
            .get_template(template)
            .ok()?
            .render(TemplateValue::from(minijinja::value::Serde(&probe)))
            .ok()?;
        let mut unbounded = usize::MAX;
        match plain.splice(&probe, &mut unbounded) {
            Spliced::Text(text) if text == expected => Some(plain),
            _ => None,
        }
    }

    /// Splices the values of `params` into the template, or says why it cannot. The output
    /// counts against `budget` as minijinja's output does: minijinja writes its output in order,
    /// so it overflows at the first piece that crosses the budget, and so does this (a value
    /// after that point cannot change the outcome).
    fn splice(&self, params: &Map<String, Value>, budget: &mut usize) -> Spliced {
        // First pass: every value printable, and the total size, before allocating anything.
        let mut size = 0usize;
        for segment in &self.segments {
            let piece = match segment {
                Segment::Literal(text) => text.len(),
                Segment::Variable(name) => match params.get(&**name).and_then(printed_len) {
                    Some(len) => len,
                    None => return Spliced::Unsupported,
                },
            };
            size = size.saturating_add(piece);
            if size > *budget {
                return Spliced::TooLarge;
            }
        }
        let mut text = String::with_capacity(size);
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => text.push_str(literal),
                Segment::Variable(name) => {
                    if let Some(value) = params.get(&**name) {
                        print_value(&mut text, value);
                    }
                }
            }
        }
        *budget -= text.len();
        Spliced::Text(text)
    }
}

/// The length of `value` as minijinja prints it, for the kinds a plain render splices: strings
/// as they are, integers in decimal, booleans as `True`/`False` (minijinja follows Python
/// there). `None` for anything else (null, floats, arrays, objects), which minijinja renders.
fn printed_len(value: &Value) -> Option<usize> {
    match value {
        Value::String(text) => Some(text.len()),
        Value::Bool(value) => Some(bool_text(*value).len()),
        Value::Number(number) => {
            if let Some(unsigned) = number.as_u64() {
                Some(decimal_len(unsigned))
            } else {
                number
                    .as_i64()
                    .map(|signed| usize::from(signed < 0) + decimal_len(signed.unsigned_abs()))
            }
        }
        _ => None,
    }
}

/// Appends `value` as [`printed_len`] measures it (nothing for a kind it refuses).
fn print_value(text: &mut String, value: &Value) {
    match value {
        Value::String(value) => text.push_str(value),
        Value::Bool(value) => text.push_str(bool_text(*value)),
        Value::Number(number) => {
            // Writing to a `String` cannot fail.
            if let Some(unsigned) = number.as_u64() {
                let _ = write!(text, "{unsigned}");
            } else if let Some(signed) = number.as_i64() {
                let _ = write!(text, "{signed}");
            }
        }
        _ => {}
    }
}

/// A boolean as minijinja prints it.
fn bool_text(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Whether this minijinja prints integers and booleans the way [`print_value`] does. The probe
/// of [`PlainTemplate::checked`] only binds strings, so a minijinja upgrade that printed them
/// differently would otherwise go unnoticed; checked once per process, at compile time.
fn scalars_print_like_minijinja() -> bool {
    static AGREES: OnceLock<bool> = OnceLock::new();
    *AGREES.get_or_init(|| {
        let Value::Object(probe) = serde_json::json!({
            "t": true, "f": false, "i": i64::MIN, "u": u64::MAX, "z": 0
        }) else {
            return false;
        };
        let source = "{{ t }}|{{ f }}|{{ i }}|{{ u }}|{{ z }}";
        let rendered = Environment::new().render_str(source, minijinja::value::Serde(&probe));
        let mut expected = String::new();
        for (index, name) in ["t", "f", "i", "u", "z"].into_iter().enumerate() {
            if index > 0 {
                expected.push('|');
            }
            if let Some(value) = probe.get(name) {
                print_value(&mut expected, value);
            }
        }
        rendered.is_ok_and(|rendered| rendered == expected)
    })
}

/// The number of decimal digits of `value`.
fn decimal_len(value: u64) -> usize {
    value
        .checked_ilog10()
        .map_or(1, |digits| digits as usize + 1)
}

/// Splits `source` into literal text and bare variable references with minijinja's lexer, or
/// `None` when it has anything else: tags, comments, raw blocks, filters, operators, attribute
/// or index access, literals, whitespace control (`{{-`, `-}}`), reserved names, or more than
/// [`MAX_PLAIN_VARIABLES`] references. The tokens must account for every byte of the source,
/// so nothing the lexer skipped or trimmed can hide between them.
fn split_plain(source: &str, syntax: &minijinja::syntax::SyntaxConfig) -> Option<Vec<Segment>> {
    use minijinja::machinery::{Token, tokenize};

    let mut tokens = tokenize(source, false, syntax.clone());
    let mut segments: Vec<Segment> = Vec::new();
    let mut covered = 0usize;
    let mut variables = 0usize;
    while let Some(next) = tokens.next() {
        let (token, span) = next.ok()?;
        let start = usize::try_from(span.start_offset).ok()?;
        let end = usize::try_from(span.end_offset).ok()?;
        if start != covered {
            return None;
        }
        match token {
            Token::TemplateData(text) => {
                if source.get(start..end)? != text {
                    return None;
                }
                if let Some(Segment::Literal(previous)) = segments.last_mut() {
                    *previous = format!("{previous}{text}").into_boxed_str();
                } else {
                    segments.push(Segment::Literal(text.into()));
                }
                covered = end;
            }
            Token::VariableStart => {
                let (Token::Ident(name), _) = tokens.next()?.ok()? else {
                    return None;
                };
                let (Token::VariableEnd, close) = tokens.next()?.ok()? else {
                    return None;
                };
                let end = usize::try_from(close.end_offset).ok()?;
                let inner = source
                    .get(start..end)?
                    .strip_prefix("{{")?
                    .strip_suffix("}}")?;
                if inner.trim_matches(|c: char| c.is_ascii_whitespace()) != name
                    || RESERVED_NAMES.contains(&name)
                {
                    return None;
                }
                variables += 1;
                if variables > MAX_PLAIN_VARIABLES {
                    return None;
                }
                segments.push(Segment::Variable(name.into()));
                covered = end;
            }
            _ => return None,
        }
    }
    (covered == source.len()).then_some(segments)
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

    /// What a bare minijinja environment set up like [`CompiledPrompt::compile`] renders.
    fn minijinja_render(
        source: &str,
        params: &Map<String, Value>,
        undefined: UndefinedMode,
    ) -> Result<String, minijinja::Error> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("syntax"),
        );
        env.set_undefined_behavior(match undefined {
            UndefinedMode::Strict => UndefinedBehavior::Strict,
            UndefinedMode::Lenient => UndefinedBehavior::Chainable,
        });
        env.render_str(source, minijinja::value::Serde(params))
    }

    #[test]
    fn plain_templates_splice_exactly_what_minijinja_renders() {
        let cases = [
            (
                "Hello {{ name }}!",
                json!({"name": "Zoë 👋 {{ not a template }} }} {% if %}\n\ttab"}),
            ),
            ("{{a}}{{b}}", json!({"a": "x", "b": -42})),
            ("{{ n }} and {{ n }} again", json!({"n": u64::MAX})),
            (
                "{{ n }}|{{ m }}|{{ z }}",
                json!({"n": i64::MIN, "m": i64::MAX, "z": 0}),
            ),
            (
                "{{   spaced\t}} / {{\nwrapped\n}}",
                json!({"spaced": 7, "wrapped": 1000}),
            ),
            (
                "yes={{ yes }} no={{ no }}",
                json!({"yes": true, "no": false}),
            ),
            ("line {{ n }}\n", json!({"n": 1})),
            ("\n\n{{ x }}\n\n", json!({"x": "mid"})),
            ("a\r\n{{ x }}\r\n", json!({"x": "crlf"})),
            ("No variables at all.\n", json!({})),
            ("", json!({})),
            ("a } b }} c { d {{ x }} %} #}", json!({"x": ""})),
            ("{{ x }}", json!({"x": "{{ y }}", "y": "never"})),
            ("<b>{{ html }}</b>", json!({"html": "<i>&amp;\"'</i>"})),
            ("{{ n }}", json!({"n": 9, "unused": [1.5, null]})),
        ];
        for (source, values) in cases {
            let params = params(values);
            let prompt = compile(Content::Text(source.into()), None, UndefinedMode::Strict);
            assert_eq!(
                prompt.plain_messages(),
                [true],
                "{source:?} should be plain"
            );
            assert_eq!(
                prompt.spliced_messages(&params),
                [true],
                "{source:?} should splice {params:?}"
            );
            let expected = minijinja_render(source, &params, UndefinedMode::Strict)
                .expect("minijinja renders");
            assert_eq!(
                prompt.render(&params),
                Ok(Rendered::Text(expected)),
                "{source:?} with {params:?}"
            );
            let slow = compile(Content::Text(source.into()), None, UndefinedMode::Strict)
                .without_fast_path();
            assert_eq!(prompt.render(&params), slow.render(&params), "{source:?}");
        }
    }

    #[test]
    fn templates_with_anything_but_bare_variables_are_rendered_by_minijinja() {
        let templates = [
            "{{ name | upper }}",
            "{{ user.name }}",
            "{{ user['name'] }}",
            "{% if name %}{{ name }}{% endif %}",
            "{# a comment #}{{ name }}",
            "{{ name }}{# a trailing comment #}",
            "{{- name }}",
            "a {{- name }}",
            "{{ name -}} b",
            "{{+ name }}",
            "{{ name ~ 'x' }}",
            "{{ 1 + 2 }}",
            "{{ 'literal' }}",
            "{{ name is defined }}",
            "{{ name() }}",
            "{% raw %}{{ name }}{% endraw %}",
            "{{ true }}",
            "{{ none }}",
            "{{ loop }}",
        ];
        let param_sets = [
            json!({"name": "Ada", "user": {"name": "Bo"}}),
            json!({"name": 3}),
            json!({}),
        ];
        for source in templates {
            for undefined in [UndefinedMode::Strict, UndefinedMode::Lenient] {
                let prompt = compile(Content::Text(source.into()), None, undefined);
                assert_eq!(prompt.plain_messages(), [false], "{source:?} is not plain");
                let slow =
                    compile(Content::Text(source.into()), None, undefined).without_fast_path();
                for values in &param_sets {
                    let params = params(values.clone());
                    assert_eq!(
                        prompt.render(&params),
                        slow.render(&params),
                        "{source:?} with {params:?} ({undefined:?})"
                    );
                }
            }
        }
    }

    #[test]
    fn values_a_splice_cannot_print_fall_back_to_minijinja_with_the_same_output_or_error() {
        let source = "Hi {{ name }} ({{ n }})\n";
        let cases = [
            (UndefinedMode::Strict, json!({"name": "x", "n": 1.5})),
            (UndefinedMode::Strict, json!({"name": "x", "n": 2.0})),
            (UndefinedMode::Strict, json!({"name": "x", "n": 1e300})),
            (UndefinedMode::Strict, json!({"name": "x", "n": null})),
            (
                UndefinedMode::Strict,
                json!({"name": "x", "n": [1, "two", null]}),
            ),
            (UndefinedMode::Strict, json!({"name": "x", "n": {"k": "v"}})),
            (UndefinedMode::Strict, json!({"name": "x"})),
            (UndefinedMode::Strict, json!({})),
            (UndefinedMode::Lenient, json!({"name": "x"})),
            (UndefinedMode::Lenient, json!({"n": null})),
            (UndefinedMode::Lenient, json!({})),
        ];
        for (undefined, values) in cases {
            let params = params(values);
            let prompt = compile(Content::Text(source.into()), None, undefined);
            assert_eq!(prompt.plain_messages(), [true]);
            assert_eq!(
                prompt.spliced_messages(&params),
                [false],
                "{params:?} must fall back"
            );
            let slow = compile(Content::Text(source.into()), None, undefined).without_fast_path();
            assert_eq!(
                prompt.render(&params),
                slow.render(&params),
                "{params:?} ({undefined:?})"
            );
        }
        let strict = compile(Content::Text(source.into()), None, UndefinedMode::Strict);
        assert_eq!(
            strict.render(&params(json!({"name": "x"}))),
            Err(RenderError::MissingParams(vec!["n".into()]))
        );
        let lenient = compile(Content::Text(source.into()), None, UndefinedMode::Lenient);
        assert_eq!(
            lenient.render(&params(json!({"name": "x"}))),
            Ok(Rendered::Text("Hi x ()\n".into()))
        );
    }

    #[test]
    fn the_output_cap_applies_to_spliced_renders_as_it_does_to_minijinja() {
        let limits = RenderLimits {
            max_output_bytes: 10,
            ..RenderLimits::STANDARD
        };
        let text = |source: &str| Content::Text(source.into());
        let chat = |first: &str, second: &str| {
            Content::from_json(&json!([
                {"role": "system", "content": first},
                {"role": "user", "content": second}
            ]))
            .expect("chat")
        };
        let cases = [
            (
                text("{{ a }}{{ b }}"),
                json!({"a": "12345", "b": "67890"}),
                true,
            ),
            (
                text("{{ a }}{{ b }}"),
                json!({"a": "12345", "b": "678901"}),
                false,
            ),
            (text("0123456789{{ a }}"), json!({"a": ""}), true),
            (text("0123456789{{ a }}"), json!({"a": 1}), false),
            (text("01234567890 {{ a }}"), json!({"a": 1}), false),
            (
                text("{{ a }}{{ missing }}"),
                json!({"a": "x".repeat(11)}),
                false,
            ),
            (
                text("{{ a }}{{ b }}"),
                json!({"a": u64::MAX, "b": 1}),
                false,
            ),
            (
                chat("{{ a }}", "{{ b }}"),
                json!({"a": "123456", "b": "7890"}),
                true,
            ),
            (
                chat("{{ a }}", "{{ b }}"),
                json!({"a": "123456", "b": "78901"}),
                false,
            ),
            (
                chat("{{ a }}", "{{ b }}"),
                json!({"a": "12345678901", "b": 1}),
                false,
            ),
        ];
        for (content, values, fits) in cases {
            let params = params(values);
            let prompt = CompiledPrompt::compile(&content, None, UndefinedMode::Strict, limits)
                .expect("compiles");
            assert!(prompt.plain_messages().iter().all(|plain| *plain));
            let slow = CompiledPrompt::compile(&content, None, UndefinedMode::Strict, limits)
                .expect("compiles")
                .without_fast_path();
            let result = prompt.render(&params);
            assert_eq!(result, slow.render(&params), "{params:?}");
            if fits {
                assert!(result.is_ok(), "{params:?}: {result:?}");
            } else {
                assert_eq!(
                    result,
                    Err(RenderError::LimitExceeded {
                        limit: "output size"
                    }),
                    "{params:?}"
                );
            }
        }
    }

    #[test]
    fn each_plain_chat_message_is_spliced_on_its_own() {
        let content = Content::from_json(&json!([
            {"role": "system", "content": "You are {{ persona }}.\n"},
            {"role": "placeholder", "name": "history"},
            {"role": "user", "content": "{{ question | trim }}"},
            {"role": "assistant", "content": "Noted: {{ question }} ({{ n }})"}
        ]))
        .expect("chat");
        let prompt = compile(content.clone(), None, UndefinedMode::Strict);
        let slow = compile(content, None, UndefinedMode::Strict).without_fast_path();
        assert_eq!(prompt.plain_messages(), [true, false, true]);
        let history = json!([{"role": "user", "content": "Hi"}]);
        let cases = [
            (
                json!({"persona": "a pirate", "question": " Where? ", "n": 2, "history": history}),
                [true, false, true],
            ),
            (
                json!({"persona": "a pirate", "question": " Where? ", "n": 2.5, "history": history}),
                [true, false, false],
            ),
            (
                json!({"persona": null, "question": "Why?", "n": 3, "history": history}),
                [false, false, true],
            ),
        ];
        for (values, spliced) in cases {
            let params = params(values);
            assert_eq!(prompt.spliced_messages(&params), spliced, "{params:?}");
            assert_eq!(prompt.render(&params), slow.render(&params), "{params:?}");
        }
        let Ok(Rendered::Chat(messages)) = prompt.render(&params(json!({
            "persona": "a pirate", "question": " Where? ", "n": 2, "history": history
        }))) else {
            panic!("chat expected");
        };
        let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(
            contents,
            ["You are a pirate.\n", "Hi", "Where?", "Noted:  Where?  (2)"]
        );
    }

    #[test]
    fn the_measured_length_of_a_spliced_value_is_the_length_printed() {
        let values = [
            json!(""),
            json!("Zoë 👋"),
            json!(true),
            json!(false),
            json!(0),
            json!(9),
            json!(10),
            json!(-1),
            json!(-10),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
        ];
        for value in values {
            let mut printed = String::new();
            print_value(&mut printed, &value);
            assert_eq!(printed_len(&value), Some(printed.len()), "{value}");
        }
        for value in [json!(null), json!(1.5), json!([]), json!({})] {
            assert_eq!(printed_len(&value), None, "{value}");
        }
        assert!(scalars_print_like_minijinja());
    }

    #[test]
    fn a_split_that_disagrees_with_minijinja_is_not_used() {
        let mut env = Environment::new();
        env.add_template_owned("t", "Hi {{ name }}!".to_string())
            .expect("adds");
        let agrees = vec![
            Segment::Literal("Hi ".into()),
            Segment::Variable("name".into()),
            Segment::Literal("!".into()),
        ];
        assert!(PlainTemplate::checked(&env, "t", agrees).is_some());
        let disagreements = [
            vec![
                Segment::Literal("Hi".into()),
                Segment::Variable("name".into()),
                Segment::Literal("!".into()),
            ],
            vec![
                Segment::Literal("Hi ".into()),
                Segment::Variable("other".into()),
                Segment::Literal("!".into()),
            ],
            vec![Segment::Literal("Hi {{ name }}!".into())],
        ];
        for segments in disagreements {
            assert!(
                PlainTemplate::checked(&env, "t", segments.clone()).is_none(),
                "{segments:?}"
            );
        }
    }

    #[test]
    fn templates_with_too_many_references_or_too_little_fuel_are_not_plain() {
        let many = "{{ x }}".repeat(MAX_PLAIN_VARIABLES + 1);
        let prompt = compile(Content::Text(many), None, UndefinedMode::Strict);
        assert_eq!(prompt.plain_messages(), [false]);
        let enough = "{{ x }}".repeat(MAX_PLAIN_VARIABLES);
        let prompt = compile(Content::Text(enough), None, UndefinedMode::Strict);
        assert_eq!(prompt.plain_messages(), [true]);
        let starved = RenderLimits {
            fuel: 3,
            ..RenderLimits::STANDARD
        };
        let content = Content::Text("{{ a }} {{ b }} {{ c }} {{ d }}".into());
        let prompt = CompiledPrompt::compile(&content, None, UndefinedMode::Strict, starved)
            .expect("compiles");
        assert_eq!(prompt.plain_messages(), [false]);
        assert_eq!(
            prompt.render(&params(json!({"a": 1, "b": 2, "c": 3, "d": 4}))),
            Err(RenderError::LimitExceeded {
                limit: "execution fuel"
            })
        );
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
