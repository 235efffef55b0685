//! Version numbering: the semver triple, bump levels, and `plan_version`, the one function that
//! decides what adding a version to a prompt means (a new number and semver, or the existing
//! identical latest version). Storage calls it inside the transaction that holds the prompt's lock.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    contract,
    error::DomainError,
    hash,
    model::{Content, PromptVersion},
};

/// A `major.minor.patch` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Semver {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Semver {
    pub const INITIAL: Semver = Semver {
        major: 1,
        minor: 0,
        patch: 0,
    };

    pub fn bumped(self, bump: Bump) -> Semver {
        match bump {
            Bump::Major => Semver {
                major: self.major + 1,
                minor: 0,
                patch: 0,
            },
            Bump::Minor => Semver {
                major: self.major,
                minor: self.minor + 1,
                patch: 0,
            },
            Bump::Patch => Semver {
                patch: self.patch + 1,
                ..self
            },
        }
    }
}

impl fmt::Display for Semver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Semver {
    type Err = DomainError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let invalid = || DomainError::InvalidField {
            field: "semver",
            reason: format!("{value:?} is not major.minor.patch"),
        };
        let mut parts = value
            .split('.')
            .map(|part| part.parse::<u64>().map_err(|_| invalid()));
        let (Some(major), Some(minor), Some(patch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        Ok(Semver {
            major: major?,
            minor: minor?,
            patch: patch?,
        })
    }
}

impl Serialize for Semver {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Semver {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How much a version changes the prompt's contract, smallest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Bump {
    /// Text-only changes.
    Patch,
    /// Backward-compatible contract changes, new template features, config changes.
    Minor,
    /// The parameter contract breaks: a required parameter added, a parameter removed, a type
    /// narrowed.
    Major,
}

impl Bump {
    pub fn as_str(self) -> &'static str {
        match self {
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        }
    }
}

impl FromStr for Bump {
    type Err = DomainError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "patch" => Ok(Bump::Patch),
            "minor" => Ok(Bump::Minor),
            "major" => Ok(Bump::Major),
            other => Err(DomainError::InvalidField {
                field: "bump",
                reason: format!("{other:?} is not one of patch, minor, major"),
            }),
        }
    }
}

/// The fields of a version a caller supplies, already validated (`VersionDraft::new`).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionDraft {
    content: Content,
    config: Value,
    parameter_schema: Option<Value>,
    requested_bump: Option<Bump>,
    diff_hash: String,
}

impl VersionDraft {
    /// Validates a version's fields: the template compiles, the config is an object and the
    /// parameter schema is a valid JSON Schema (2020-12 unless it says otherwise).
    pub fn new(
        content: Content,
        config: Value,
        parameter_schema: Option<Value>,
        requested_bump: Option<Bump>,
    ) -> Result<Self, DomainError> {
        crate::ident::check_no_nul("content", &content.to_json())?;
        crate::ident::check_no_nul("config", &config)?;
        if let Some(schema) = &parameter_schema {
            crate::ident::check_no_nul("parameter_schema", schema)?;
        }
        crate::template::analyze(&content)?;
        if !config.is_object() {
            return Err(DomainError::InvalidConfig);
        }
        if let Some(schema) = &parameter_schema {
            crate::render::check_schema(schema)?;
        }
        let diff_hash = hash::diff_hash(&content, &config, parameter_schema.as_ref());
        Ok(VersionDraft {
            content,
            config,
            parameter_schema,
            requested_bump,
            diff_hash,
        })
    }

    pub fn content(&self) -> &Content {
        &self.content
    }

    pub fn config(&self) -> &Value {
        &self.config
    }

    pub fn parameter_schema(&self) -> Option<&Value> {
        self.parameter_schema.as_ref()
    }

    pub fn diff_hash(&self) -> &str {
        &self.diff_hash
    }

    pub fn requested_bump(&self) -> Option<Bump> {
        self.requested_bump
    }
}

/// What adding a draft to a prompt does.
#[derive(Debug, Clone, PartialEq)]
pub enum VersionPlan {
    /// The draft is identical to the latest version: return that one, create nothing.
    Unchanged,
    /// Create the next version with this semver.
    Create { semver: Semver, bump: Option<Bump> },
}

/// Decides what adding `draft` after `latest` (the prompt's newest version, if any) means.
///
/// The first version is `1.0.0`. A draft identical to the latest version (same `diff_hash`) is
/// idempotent, unless the caller explicitly asked for a bump. Otherwise the server computes the
/// bump from the two versions' contracts; the caller may ask for a larger one, never a smaller one.
pub fn plan_version(
    latest: Option<&PromptVersion>,
    draft: &VersionDraft,
) -> Result<VersionPlan, DomainError> {
    let Some(latest) = latest else {
        return Ok(VersionPlan::Create {
            semver: Semver::INITIAL,
            bump: None,
        });
    };
    if latest.diff_hash == draft.diff_hash && draft.requested_bump.is_none() {
        return Ok(VersionPlan::Unchanged);
    }
    let required = contract::classify_change(
        contract::VersionShape::of(
            &latest.content,
            &latest.config,
            latest.parameter_schema.as_ref(),
        ),
        contract::VersionShape::of(
            &draft.content,
            &draft.config,
            draft.parameter_schema.as_ref(),
        ),
    );
    let bump = match draft.requested_bump {
        Some(requested) if requested < required => {
            return Err(DomainError::BumpTooSmall {
                requested: requested.as_str(),
                required: required.as_str(),
            });
        }
        Some(requested) => requested,
        None => required,
    };
    Ok(VersionPlan::Create {
        semver: latest.semver.bumped(bump),
        bump: Some(bump),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::model::VersionStatus;

    fn stored(draft: &VersionDraft, semver: Semver) -> PromptVersion {
        PromptVersion {
            id: Uuid::nil(),
            prompt_id: Uuid::nil(),
            version_number: 1,
            semver,
            content: draft.content.clone(),
            config: draft.config.clone(),
            parameter_schema: draft.parameter_schema.clone(),
            diff_hash: draft.diff_hash.clone(),
            notes: None,
            author_id: None,
            status: VersionStatus::Draft,
            created_at: OffsetDateTime::UNIX_EPOCH,
            findings: Vec::new(),
            token_count: 0,
            lifecycle: Default::default(),
        }
    }

    fn draft(text: &str, bump: Option<Bump>) -> VersionDraft {
        VersionDraft::new(Content::Text(text.into()), json!({}), None, bump).expect("valid draft")
    }

    #[test]
    fn the_first_version_is_1_0_0() {
        assert_eq!(
            plan_version(None, &draft("hi", None)),
            Ok(VersionPlan::Create {
                semver: Semver::INITIAL,
                bump: None
            })
        );
    }

    #[test]
    fn an_identical_draft_is_unchanged() {
        let first = draft("Hello {{ name }}", None);
        let latest = stored(&first, Semver::INITIAL);
        assert_eq!(
            plan_version(Some(&latest), &draft("Hello {{ name }}", None)),
            Ok(VersionPlan::Unchanged)
        );
    }

    #[test]
    fn an_identical_draft_with_an_explicit_bump_creates_a_version() {
        let latest = stored(
            &draft("x", None),
            Semver {
                major: 1,
                minor: 2,
                patch: 3,
            },
        );
        assert_eq!(
            plan_version(Some(&latest), &draft("x", Some(Bump::Minor))),
            Ok(VersionPlan::Create {
                semver: Semver {
                    major: 1,
                    minor: 3,
                    patch: 0
                },
                bump: Some(Bump::Minor)
            })
        );
    }

    #[test]
    fn a_caller_may_ask_for_a_larger_bump_but_never_a_smaller_one() {
        let latest = stored(&draft("Hello {{ name }}", None), Semver::INITIAL);
        assert_eq!(
            plan_version(Some(&latest), &draft("Hi {{ name }}", Some(Bump::Major))),
            Ok(VersionPlan::Create {
                semver: Semver {
                    major: 2,
                    minor: 0,
                    patch: 0
                },
                bump: Some(Bump::Major)
            })
        );
        assert_eq!(
            plan_version(
                Some(&latest),
                &draft("Hi {{ name }} from {{ place }}", Some(Bump::Patch))
            ),
            Err(DomainError::BumpTooSmall {
                requested: "patch",
                required: "major"
            })
        );
    }

    #[test]
    fn semver_parses_and_prints_round_trip() {
        let cases = [
            ("1.0.0", true),
            ("10.20.30", true),
            ("1.0", false),
            ("1.0.0.0", false),
            ("a.b.c", false),
        ];
        for (text, ok) in cases {
            let parsed = text.parse::<Semver>();
            assert_eq!(parsed.is_ok(), ok, "{text}");
            if let Ok(semver) = parsed {
                assert_eq!(semver.to_string(), text);
            }
        }
    }

    #[test]
    fn bumps_reset_the_lower_fields() {
        let semver = Semver {
            major: 1,
            minor: 4,
            patch: 2,
        };
        assert_eq!(semver.bumped(Bump::Patch).to_string(), "1.4.3");
        assert_eq!(semver.bumped(Bump::Minor).to_string(), "1.5.0");
        assert_eq!(semver.bumped(Bump::Major).to_string(), "2.0.0");
    }
}
