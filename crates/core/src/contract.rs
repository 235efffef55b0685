//! The parameter contract of a version and the semver bump a change to it requires (SPEC §3).
//!
//! A version's contract is its declared parameters (the `properties` of its `parameter_schema`,
//! with `required`) plus every variable the template reads that the schema does not declare (those
//! are required: rendering is strict). Comparing two contracts:
//! - **major**: a parameter removed, a parameter newly required, a type narrowed (the new type set
//!   no longer accepts every type the old one did), an `enum` narrowed, or extra parameters
//!   forbidden where they were allowed;
//! - **minor**: any other contract change (an optional parameter added, a type widened, a
//!   parameter made optional, other keywords changed), new template features (tags, filters), or
//!   a config change;
//! - **patch**: only the text changed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::{model::Content, template, version::Bump};

/// What the bump rules look at in one version.
#[derive(Debug, Clone, Copy)]
pub struct VersionShape<'a> {
    pub content: &'a Content,
    pub config: &'a Value,
    pub parameter_schema: Option<&'a Value>,
}

impl<'a> VersionShape<'a> {
    pub fn of(
        content: &'a Content,
        config: &'a Value,
        parameter_schema: Option<&'a Value>,
    ) -> Self {
        VersionShape {
            content,
            config,
            parameter_schema,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Param {
    required: bool,
    /// `None`: any type.
    types: Option<BTreeSet<String>>,
    enum_values: Option<Vec<Value>>,
    schema: Value,
}

#[derive(Debug, Clone, PartialEq)]
struct Contract {
    params: BTreeMap<String, Param>,
    additional_allowed: bool,
    /// The schema without `properties`/`required`/`additionalProperties` (other keywords).
    rest: Value,
}

fn contract_of(shape: &VersionShape<'_>, variables: &BTreeSet<String>) -> Contract {
    let schema = shape.parameter_schema.cloned().unwrap_or(Value::Null);
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let required: BTreeSet<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut params: BTreeMap<String, Param> = properties
        .iter()
        .map(|(name, property)| {
            let param = Param {
                required: required.contains(name),
                types: types_of(property),
                enum_values: property.get("enum").and_then(Value::as_array).cloned(),
                schema: property.clone(),
            };
            (name.clone(), param)
        })
        .collect();
    for name in variables {
        params.entry(name.clone()).or_insert(Param {
            required: true,
            types: None,
            enum_values: None,
            schema: Value::Null,
        });
    }
    let additional_allowed =
        !matches!(schema.get("additionalProperties"), Some(Value::Bool(false)));
    let mut rest = schema;
    if let Some(object) = rest.as_object_mut() {
        for key in ["properties", "required", "additionalProperties"] {
            object.remove(key);
        }
    }
    Contract {
        params,
        additional_allowed,
        rest,
    }
}

fn types_of(property: &Value) -> Option<BTreeSet<String>> {
    match property.get("type") {
        Some(Value::String(single)) => Some(BTreeSet::from([single.clone()])),
        Some(Value::Array(many)) => Some(
            many.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// Whether a parameter typed `new` accepts every value a parameter typed `old` accepted.
fn accepts_all(new: &Option<BTreeSet<String>>, old: &Option<BTreeSet<String>>) -> bool {
    match (new, old) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(new), Some(old)) => old
            .iter()
            .all(|ty| new.contains(ty) || (ty == "integer" && new.contains("number"))),
    }
}

fn enum_narrowed(new: &Option<Vec<Value>>, old: &Option<Vec<Value>>) -> bool {
    match (new, old) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(new), Some(old)) => old.iter().any(|value| !new.contains(value)),
    }
}

/// The smallest bump that going from `previous` to `next` requires.
pub fn classify_change(previous: VersionShape<'_>, next: VersionShape<'_>) -> Bump {
    // Templates were validated when stored; a template that no longer analyzes counts as empty.
    let previous_info = template::analyze(previous.content).unwrap_or_default();
    let next_info = template::analyze(next.content).unwrap_or_default();
    let old = contract_of(&previous, &previous_info.variables);
    let new = contract_of(&next, &next_info.variables);

    let mut bump = Bump::Patch;
    for (name, old_param) in &old.params {
        let Some(new_param) = new.params.get(name) else {
            return Bump::Major;
        };
        if (new_param.required && !old_param.required)
            || !accepts_all(&new_param.types, &old_param.types)
            || enum_narrowed(&new_param.enum_values, &old_param.enum_values)
        {
            return Bump::Major;
        }
        if new_param != old_param {
            bump = Bump::Minor;
        }
    }
    for (name, new_param) in &new.params {
        if !old.params.contains_key(name) {
            if new_param.required {
                return Bump::Major;
            }
            bump = Bump::Minor;
        }
    }
    if old.additional_allowed && !new.additional_allowed {
        return Bump::Major;
    }
    if old.additional_allowed != new.additional_allowed
        || old.rest != new.rest
        || !next_info.features.is_subset(&previous_info.features)
        || previous.config != next.config
    {
        bump = Bump::Minor;
    }
    bump
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn shape<'a>(
        content: &'a Content,
        config: &'a Value,
        schema: Option<&'a Value>,
    ) -> VersionShape<'a> {
        VersionShape::of(content, config, schema)
    }

    /// (what, previous template, previous schema, next template, next schema, expected bump).
    type BumpCase = (
        &'static str,
        &'static str,
        Option<Value>,
        &'static str,
        Option<Value>,
        Bump,
    );

    #[test]
    fn the_bump_follows_the_contract_table() {
        let object = |properties: Value, required: Value| {
            Some(json!({"type": "object", "properties": properties, "required": required}))
        };
        let cases: Vec<BumpCase> = vec![
            (
                "text only",
                "Hello {{ name }}",
                None,
                "Hi {{ name }}",
                None,
                Bump::Patch,
            ),
            (
                "new variable without schema is required",
                "Hello {{ name }}",
                None,
                "Hello {{ name }} from {{ place }}",
                None,
                Bump::Major,
            ),
            (
                "variable removed",
                "Hello {{ name }} from {{ place }}",
                None,
                "Hello {{ name }}",
                None,
                Bump::Major,
            ),
            (
                "optional parameter added",
                "Hello {{ name }}",
                object(json!({"name": {"type": "string"}}), json!(["name"])),
                "Hello {{ name }}",
                object(
                    json!({"name": {"type": "string"}, "tone": {"type": "string"}}),
                    json!(["name"]),
                ),
                Bump::Minor,
            ),
            (
                "required parameter added",
                "Hello {{ name }}",
                object(json!({"name": {"type": "string"}}), json!(["name"])),
                "Hello {{ name }}",
                object(
                    json!({"name": {"type": "string"}, "tone": {"type": "string"}}),
                    json!(["name", "tone"]),
                ),
                Bump::Major,
            ),
            (
                "optional parameter made required",
                "x",
                object(json!({"n": {"type": "integer"}}), json!([])),
                "x",
                object(json!({"n": {"type": "integer"}}), json!(["n"])),
                Bump::Major,
            ),
            (
                "required parameter made optional",
                "x",
                object(json!({"n": {"type": "integer"}}), json!(["n"])),
                "x",
                object(json!({"n": {"type": "integer"}}), json!([])),
                Bump::Minor,
            ),
            (
                "type narrowed from number to integer",
                "x",
                object(json!({"n": {"type": "number"}}), json!(["n"])),
                "x",
                object(json!({"n": {"type": "integer"}}), json!(["n"])),
                Bump::Major,
            ),
            (
                "type widened from integer to number",
                "x",
                object(json!({"n": {"type": "integer"}}), json!(["n"])),
                "x",
                object(json!({"n": {"type": "number"}}), json!(["n"])),
                Bump::Minor,
            ),
            (
                "type changed to a disjoint one",
                "x",
                object(json!({"n": {"type": "string"}}), json!(["n"])),
                "x",
                object(json!({"n": {"type": "integer"}}), json!(["n"])),
                Bump::Major,
            ),
            (
                "enum narrowed",
                "x",
                object(json!({"t": {"enum": ["a", "b"]}}), json!(["t"])),
                "x",
                object(json!({"t": {"enum": ["a"]}}), json!(["t"])),
                Bump::Major,
            ),
            (
                "enum widened",
                "x",
                object(json!({"t": {"enum": ["a"]}}), json!(["t"])),
                "x",
                object(json!({"t": {"enum": ["a", "b"]}}), json!(["t"])),
                Bump::Minor,
            ),
            (
                "description of a parameter changed",
                "x",
                object(json!({"t": {"type": "string"}}), json!(["t"])),
                "x",
                object(
                    json!({"t": {"type": "string", "description": "tone"}}),
                    json!(["t"]),
                ),
                Bump::Minor,
            ),
            (
                "extra parameters forbidden",
                "x",
                Some(json!({"type": "object", "properties": {}})),
                "x",
                Some(json!({"type": "object", "properties": {}, "additionalProperties": false})),
                Bump::Major,
            ),
            (
                "new template feature",
                "Hello {{ name }}",
                None,
                "Hello {{ name | upper }}",
                None,
                Bump::Minor,
            ),
            (
                "feature removed is text only",
                "Hello {{ name | upper }}",
                None,
                "Hello {{ name }}",
                None,
                Bump::Patch,
            ),
            (
                "declared optional variable used in the template",
                "x",
                object(json!({"tone": {"type": "string"}}), json!([])),
                "x {{ tone }}",
                object(json!({"tone": {"type": "string"}}), json!([])),
                Bump::Patch,
            ),
        ];
        let config = json!({});
        for (label, old_text, old_schema, new_text, new_schema, expected) in cases {
            let old_content = Content::Text(old_text.into());
            let new_content = Content::Text(new_text.into());
            let bump = classify_change(
                shape(&old_content, &config, old_schema.as_ref()),
                shape(&new_content, &config, new_schema.as_ref()),
            );
            assert_eq!(bump, expected, "{label}");
        }
    }

    #[test]
    fn a_config_change_is_minor() {
        let content = Content::Text("x".into());
        let bump = classify_change(
            shape(&content, &json!({"temperature": 0.1}), None),
            shape(&content, &json!({"temperature": 0.7}), None),
        );
        assert_eq!(bump, Bump::Minor);
    }
}
