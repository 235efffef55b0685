//! Validated identifiers: prompt names, labels, prompt-type keys, capabilities and agent ids.
//!
//! Each is parsed once at the edge (`parse`) and is valid by construction afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// The label the system keeps on the newest version of every prompt.
pub const LATEST: &str = "latest";
/// The label served when a caller names neither a label nor a version.
pub const PRODUCTION: &str = "production";

/// A prompt's unique name: a `/`-separated path such as `support/summarize`.
///
/// Rules (a superset of Langfuse's, so every Langfuse name that is not a UUID is accepted):
/// 1–255 characters; no leading, trailing or doubled `/`; no segment that is `.` or `..` or has
/// leading/trailing whitespace; no control characters; none of `| < > # @ ? % \`; and not
/// parseable as a UUID, because a path segment that parses as a UUID addresses a prompt by id.
/// `#` and `@` are reserved for include references (`name#3`, `name@label`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PromptName(String);

impl PromptName {
    pub const MAX_LEN: usize = 255;

    pub fn parse(name: &str) -> Result<Self, DomainError> {
        let fail = |reason| {
            Err(DomainError::InvalidName {
                name: name.to_string(),
                reason,
            })
        };
        if name.is_empty() {
            return fail("a name must not be empty");
        }
        // One pass over the characters (names are parsed on every resolve); the checks below
        // keep their order, so a name breaking several rules is refused for the same one.
        let (mut length, mut control, mut reserved) = (0usize, false, false);
        for c in name.chars() {
            length += 1;
            control |= c.is_control();
            reserved |= matches!(c, '|' | '<' | '>' | '#' | '@' | '?' | '%' | '\\');
        }
        if length > Self::MAX_LEN {
            return fail("a name has at most 255 characters");
        }
        if name.starts_with('/') || name.ends_with('/') {
            return fail("a name must not start or end with '/'");
        }
        if name.contains("//") {
            return fail("a name must not contain '//'");
        }
        if control {
            return fail("a name must not contain control characters");
        }
        if reserved {
            return fail("a name must not contain any of | < > # @ ? % \\");
        }
        for segment in name.split('/') {
            if segment == "." || segment == ".." {
                return fail("a name segment must not be '.' or '..'");
            }
            if segment.trim() != segment {
                return fail("a name segment must not start or end with whitespace");
            }
        }
        if uuid::Uuid::parse_str(name).is_ok() {
            return fail("a name must not be a UUID (UUIDs address prompts by id)");
        }
        Ok(PromptName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PromptName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        PromptName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A label name (`production`, `staging`, `latest` …): `^[a-z0-9_.-]{1,36}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LabelName(String);

impl LabelName {
    /// `.` and `..` match the regex but cannot be addressed in a URL path (clients collapse them
    /// as dot segments), so they are refused too.
    pub fn parse(label: &str) -> Result<Self, DomainError> {
        let valid = (1..=36).contains(&label.len())
            && label != "."
            && label != ".."
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if valid {
            Ok(LabelName(label.to_string()))
        } else {
            Err(DomainError::InvalidLabel {
                label: label.to_string(),
            })
        }
    }

    /// Parses a label that a caller wants to set or remove: `latest` is the system's.
    pub fn parse_user_settable(label: &str) -> Result<Self, DomainError> {
        let parsed = Self::parse(label)?;
        if parsed.is_latest() {
            return Err(DomainError::ReservedLabel {
                label: label.to_string(),
            });
        }
        Ok(parsed)
    }

    pub fn latest() -> Self {
        LabelName(LATEST.to_string())
    }

    pub fn production() -> Self {
        LabelName(PRODUCTION.to_string())
    }

    pub fn is_latest(&self) -> bool {
        self.0 == LATEST
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LabelName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        LabelName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Validates a short machine identifier (prompt-type key, capability, agent id, tag):
/// 1–`max` characters of `[A-Za-z0-9_.:-]`, starting with a letter or digit.
pub fn parse_identifier(
    what: &'static str,
    value: &str,
    max: usize,
) -> Result<String, DomainError> {
    let fail = |reason| {
        Err(DomainError::InvalidIdentifier {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() || value.len() > max {
        return fail("must have between 1 and the allowed maximum of characters");
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return fail("must start with a letter or a digit");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
    {
        return fail("may only contain letters, digits and _ . : -");
    }
    Ok(value.to_string())
}

/// Validates a tag: 1–64 characters, no control characters, no surrounding whitespace.
pub fn parse_tag(tag: &str) -> Result<String, DomainError> {
    let valid = !tag.is_empty()
        && tag.chars().count() <= 64
        && tag.trim() == tag
        && !tag.chars().any(char::is_control);
    if valid {
        Ok(tag.to_string())
    } else {
        Err(DomainError::InvalidField {
            field: "tags",
            reason: format!(
                "{tag:?} is not a tag: 1-64 characters, no control characters, no surrounding whitespace"
            ),
        })
    }
}

/// Validates free text (`title`, `description` …): at most `max` characters, no NUL.
pub fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.contains('\0') {
        return Err(DomainError::InvalidField {
            field,
            reason: "must not contain NUL characters".into(),
        });
    }
    if value.chars().count() > max {
        return Err(DomainError::InvalidField {
            field,
            reason: format!("at most {max} characters"),
        });
    }
    Ok(())
}

/// Refuses NUL characters anywhere in a JSON value (keys included): databases cannot store them
/// in text (PostgreSQL refuses them), so they are refused at the edge, the same on every backend.
pub fn check_no_nul(field: &'static str, value: &serde_json::Value) -> Result<(), DomainError> {
    let has_nul = |text: &str| text.contains('\0');
    let found = match value {
        serde_json::Value::String(text) => has_nul(text),
        serde_json::Value::Array(items) => {
            return items.iter().try_for_each(|item| check_no_nul(field, item));
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                if has_nul(key) {
                    return Err(DomainError::InvalidField {
                        field,
                        reason: "must not contain NUL characters".into(),
                    });
                }
                check_no_nul(field, item)?;
            }
            false
        }
        _ => false,
    };
    if found {
        return Err(DomainError::InvalidField {
            field,
            reason: "must not contain NUL characters".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_names_follow_the_path_rules() {
        let cases: &[(&str, bool)] = &[
            ("summarize", true),
            ("support/summarize", true),
            ("team a/Greeting v2", true),
            ("a.b-c_d/e", true),
            ("", false),
            ("/leading", false),
            ("trailing/", false),
            ("double//slash", false),
            ("pipe|name", false),
            ("<b>html</b>", false),
            ("name@label", false),
            ("name#3", false),
            ("what?", false),
            ("per%cent", false),
            ("back\\slash", false),
            ("a/../b", false),
            ("a/./b", false),
            ("a/ padded /b", false),
            ("tab\there", false),
            ("0191d5a0-8f7e-7c3a-9b1e-2f4a5b6c7d8e", false),
        ];
        for (name, ok) in cases {
            assert_eq!(PromptName::parse(name).is_ok(), *ok, "name {name:?}");
        }
        assert!(PromptName::parse(&"x".repeat(255)).is_ok());
        assert!(PromptName::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn labels_match_the_spec_regex() {
        let cases: &[(&str, bool)] = &[
            ("production", true),
            ("v1.2-rc_3", true),
            ("latest", true),
            ("Production", false),
            ("", false),
            ("with space", false),
            ("slash/label", false),
            (".", false),
            ("..", false),
            ("...", true),
        ];
        for (label, ok) in cases {
            assert_eq!(LabelName::parse(label).is_ok(), *ok, "label {label:?}");
        }
        assert!(LabelName::parse(&"a".repeat(36)).is_ok());
        assert!(LabelName::parse(&"a".repeat(37)).is_err());
    }

    #[test]
    fn latest_cannot_be_set_by_callers() {
        assert_eq!(
            LabelName::parse_user_settable("latest"),
            Err(DomainError::ReservedLabel {
                label: "latest".into()
            })
        );
        assert!(LabelName::parse_user_settable("staging").is_ok());
    }

    #[test]
    fn nul_characters_are_refused_in_text_and_json() {
        assert!(check_text("title", "a\0b", 10).is_err());
        assert!(check_text("title", "ab", 10).is_ok());
        assert!(check_no_nul("config", &serde_json::json!({"a": ["x\0"]})).is_err());
        assert!(check_no_nul("config", &serde_json::json!({"k\0": 1})).is_err());
        assert!(check_no_nul("config", &serde_json::json!({"a": ["x"], "b": 2})).is_ok());
    }

    #[test]
    fn tags_are_short_trimmed_text() {
        assert!(parse_tag("customer support").is_ok());
        assert!(parse_tag(" padded").is_err());
        assert!(parse_tag("").is_err());
        assert!(parse_tag(&"t".repeat(65)).is_err());
    }

    #[test]
    fn identifiers_are_short_and_plain() {
        assert!(parse_identifier("capability", "summarize", 64).is_ok());
        assert!(parse_identifier("agent_id", "agent:support-1", 64).is_ok());
        assert!(parse_identifier("capability", "-x", 64).is_err());
        assert!(parse_identifier("capability", "a b", 64).is_err());
        assert!(parse_identifier("capability", "", 64).is_err());
        assert!(parse_identifier("capability", &"a".repeat(65), 64).is_err());
    }
}
