//! What both dialects share: the clock, decoding stored words back into domain values, the
//! messages that name missing things, LIKE/GLOB escaping and the mapping of constraint errors.
//! No SQL lives here.

use std::{borrow::Cow, str::FromStr};

use promptvault_core::{
    ident::{LabelName, PromptName},
    model::{Content, Prompt, PromptStatus, PromptVersion, Source, VersionStatus},
    version::{Semver, VersionDraft},
};
use serde_json::Value;
use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    error::{StoreError, StoreResult},
    types::{NewPrompt, NewVersion},
};

/// The current time, cut to microseconds: both dialects store microseconds, so a value returned
/// from a write equals the same value read back later.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().truncate_to_microsecond()
}

/// A migrator over one dialect's embedded migrations.
pub(crate) fn migrator(init_sql: &'static str) -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("init"),
        MigrationType::Simple,
        init_sql.into_sql_str(),
        false,
    )])
}

/// Parses a stored vocabulary word (scope, kind, status …); a bad word is a corrupt row.
pub(crate) fn parse_word<T>(column: &str, value: &str) -> StoreResult<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|error| StoreError::Corrupt(format!("{column}: {error}")))
}

/// A prompt row as the database returns it, before its words are parsed.
pub(crate) struct PromptRecord {
    pub id: Uuid,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub long_description_markdown: Option<String>,
    pub scope: String,
    pub agent_id: Option<String>,
    pub owner_id: Option<Uuid>,
    pub creator_id: Option<Uuid>,
    pub prompt_type: Option<String>,
    pub kind: String,
    pub tags: Vec<String>,
    pub source: String,
    pub classification: String,
    pub status: String,
    pub revision: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl PromptRecord {
    pub(crate) fn into_prompt(self) -> StoreResult<Prompt> {
        Ok(Prompt {
            access: Default::default(),
            id: self.id,
            name: PromptName::parse(&self.name)
                .map_err(|error| StoreError::Corrupt(format!("prompts.name: {error}")))?,
            title: self.title,
            description: self.description,
            long_description_markdown: self.long_description_markdown,
            scope: parse_word("prompts.scope", &self.scope)?,
            agent_id: self.agent_id,
            owner_id: self.owner_id,
            creator_id: self.creator_id,
            prompt_type: self.prompt_type,
            kind: parse_word("prompts.kind", &self.kind)?,
            tags: self.tags,
            source: Source::parse(&self.source)
                .map_err(|error| StoreError::Corrupt(format!("prompts.source: {error}")))?,
            classification: parse_word("prompts.classification", &self.classification)?,
            status: parse_word("prompts.status", &self.status)?,
            revision: self.revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A version row as the database returns it, before its words and JSON are parsed.
pub(crate) struct VersionRecord {
    pub id: Uuid,
    pub prompt_id: Uuid,
    pub version_number: i64,
    pub semver: String,
    pub content: Value,
    pub config: Value,
    pub parameter_schema: Option<Value>,
    pub diff_hash: String,
    pub notes: Option<String>,
    pub author_id: Option<Uuid>,
    pub status: String,
    pub created_at: OffsetDateTime,
}

impl VersionRecord {
    pub(crate) fn into_version(self) -> StoreResult<PromptVersion> {
        Ok(PromptVersion {
            id: self.id,
            prompt_id: self.prompt_id,
            version_number: self.version_number,
            semver: parse_word::<Semver>("prompt_versions.semver", &self.semver)?,
            content: Content::from_json(&self.content).map_err(|error| {
                StoreError::Corrupt(format!("prompt_versions.content: {error}"))
            })?,
            config: self.config,
            parameter_schema: self.parameter_schema,
            diff_hash: self.diff_hash,
            notes: self.notes,
            author_id: self.author_id,
            status: parse_word("prompt_versions.status", &self.status)?,
            created_at: self.created_at,
        })
    }
}

/// Parses a stored label name.
pub(crate) fn parse_label(value: &str) -> StoreResult<LabelName> {
    LabelName::parse(value).map_err(|error| StoreError::Corrupt(format!("labels.name: {error}")))
}

/// The labels a caller asked to set with a version: `latest` dropped (the store moves it
/// anyway), duplicates removed, order kept.
pub(crate) fn requested_labels(labels: &[LabelName]) -> Vec<LabelName> {
    let mut out: Vec<LabelName> = Vec::with_capacity(labels.len());
    for label in labels {
        if !label.is_latest() && !out.contains(label) {
            out.push(label.clone());
        }
    }
    out
}

pub(crate) fn prompt_with_id(id: Uuid) -> String {
    format!("prompt {id}")
}

pub(crate) fn version_of(version_number: i64, prompt_name: &str) -> String {
    format!("version {version_number} of prompt {prompt_name:?}")
}

pub(crate) fn label_of(label: &str, prompt_name: &str) -> String {
    format!("label {label:?} of prompt {prompt_name:?}")
}

pub(crate) fn name_taken(name: &str) -> StoreError {
    StoreError::conflict(format!("prompt name {name:?} is taken"))
}

pub(crate) fn prompt_type_not_found(key: &str) -> StoreError {
    StoreError::not_found(format!("prompt type {key:?}"))
}

pub(crate) fn prompt_type_in_use(key: &str) -> StoreError {
    StoreError::conflict(format!("prompt type {key:?} is still used by a prompt"))
}

/// A new prompt's record as it is first stored: revision 1, active, created now.
pub(crate) fn new_prompt(prompt: NewPrompt, at: OffsetDateTime) -> Prompt {
    Prompt {
        access: Default::default(),
        id: Uuid::now_v7(),
        name: prompt.name,
        title: prompt.title,
        description: prompt.description,
        long_description_markdown: prompt.long_description_markdown,
        scope: prompt.scope,
        agent_id: prompt.agent_id,
        owner_id: prompt.owner_id,
        creator_id: prompt.creator_id,
        prompt_type: prompt.prompt_type,
        kind: prompt.kind,
        tags: prompt.tags,
        source: prompt.source,
        classification: prompt.classification,
        status: PromptStatus::Active,
        revision: 1,
        created_at: at,
        updated_at: at,
    }
}

/// A new version's record as it is stored: a draft, created now.
pub(crate) fn new_version(
    prompt_id: Uuid,
    version_number: i64,
    semver: Semver,
    version: &NewVersion,
    at: OffsetDateTime,
) -> PromptVersion {
    PromptVersion {
        id: Uuid::now_v7(),
        prompt_id,
        version_number,
        semver,
        content: version.draft.content().clone(),
        config: version.draft.config().clone(),
        parameter_schema: version.draft.parameter_schema().cloned(),
        diff_hash: version.draft.diff_hash().to_string(),
        notes: version.notes.clone(),
        author_id: version.author_id,
        status: VersionStatus::Draft,
        created_at: at,
    }
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db_error) if db_error.is_unique_violation())
}

pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db_error) if db_error.is_foreign_key_violation())
}

/// Escapes `\`, `%` and `_` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escapes `*`, `?` and `[` for a SQLite `GLOB` pattern (GLOB has no escape character; a
/// one-character class matches the character literally).
pub(crate) fn escape_glob(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            other => out.push(other),
        }
    }
    out
}

/// Applies `NewVersion::carry_over` against the newest version (under the prompt's lock): the
/// draft is rebuilt with the newest version's config and/or schema.
pub(crate) fn apply_carry_over(
    version: &mut NewVersion,
    latest: Option<&PromptVersion>,
) -> StoreResult<()> {
    let carry = version.carry_over;
    let Some(latest) = latest.filter(|_| carry.config || carry.parameter_schema) else {
        return Ok(());
    };
    let config = if carry.config {
        latest.config.clone()
    } else {
        version.draft.config().clone()
    };
    let schema = if carry.parameter_schema {
        latest.parameter_schema.clone()
    } else {
        version.draft.parameter_schema().cloned()
    };
    version.draft = VersionDraft::new(
        version.draft.content().clone(),
        config,
        schema,
        version.draft.requested_bump(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_and_glob_escaping_neutralise_wildcards() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
        assert_eq!(escape_glob("a*b?c[d]"), "a[*]b[?]c[[]d]");
    }

    #[test]
    fn requested_labels_drop_latest_and_duplicates() {
        let parse = |label| LabelName::parse(label).expect("valid label");
        let labels = [
            parse("prod"),
            parse("latest"),
            parse("staging"),
            parse("prod"),
        ];
        assert_eq!(
            requested_labels(&labels),
            vec![parse("prod"), parse("staging")]
        );
    }

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(now().nanosecond() % 1_000, 0);
    }
}
