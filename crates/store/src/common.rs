//! What both dialects share: the clock, decoding stored words back into domain values, the
//! messages that name missing things, LIKE/GLOB escaping, the mapping of constraint errors and
//! the audit chain's arithmetic (times as Unix nanoseconds, the next link). No SQL lives here.

use std::{borrow::Cow, str::FromStr};

use promptvault_core::{
    audit::{AuditEntry, AuditOutcome, Checkpoint, GENESIS_HASH, NewAuditEntry, entry_hash},
    crypto::{CryptoError, KeyRing, Sealed},
    error::DomainError,
    ident::{LabelName, PromptName},
    model::{
        ApiToken, Classification, Content, Prompt, PromptAccess, PromptStatus, PromptVersion, Role,
        Scope, Source, User, VersionStatus,
    },
    retire::{Deprecation, Replacement, VersionLifecycle},
    testcase::TestCase,
    version::{Semver, VersionDraft},
    workflow::{
        self, ApprovalWorkflow, Recorded, ReviewDecision, ReviewRecord, decide_approval,
        decide_rejection,
    },
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
    types::{NewApiToken, NewPrompt, NewReview, NewUser, NewVersion},
};

/// The current time, cut to microseconds: both dialects store microseconds, so a value returned
/// from a write equals the same value read back later.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().truncate_to_microsecond()
}

/// A stored review interval in days (positive by a CHECK constraint).
pub(crate) fn review_days(stored: Option<i64>) -> StoreResult<Option<u32>> {
    stored
        .map(|days| {
            u32::try_from(days)
                .map_err(|_| StoreError::Corrupt(format!("review_every_days {days}")))
        })
        .transpose()
}

/// A migrator over one dialect's embedded migrations, given as (version, description, SQL) in
/// order. Versions and descriptions of applied migrations must never change (sqlx checks them).
pub(crate) fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
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
    /// The `PromptAccess` JSON (absent keys are defaults).
    pub access: Value,
}

impl PromptRecord {
    pub(crate) fn into_prompt(self) -> StoreResult<Prompt> {
        Ok(Prompt {
            access: serde_json::from_value::<PromptAccess>(self.access)
                .map_err(|error| StoreError::Corrupt(format!("prompts.access: {error}")))?,
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
    /// The seal (all three set) when the content is encrypted; `content` is then JSON null.
    pub key_id: Option<String>,
    pub nonce: Option<Vec<u8>>,
    pub ciphertext: Option<Vec<u8>>,
    pub findings: Vec<promptvault_core::compliance::Finding>,
    pub token_count: i64,
    pub approved_at: Option<OffsetDateTime>,
    pub deprecated_at: Option<OffsetDateTime>,
    pub sunset_at: Option<OffsetDateTime>,
    pub replacement_prompt_id: Option<Uuid>,
    pub replacement_name: Option<String>,
    pub archived_at: Option<OffsetDateTime>,
    pub purged_at: Option<OffsetDateTime>,
}

impl VersionRecord {
    /// The domain version, its content opened with `keys` when it is sealed.
    pub(crate) fn into_version(self, keys: Option<&KeyRing>) -> StoreResult<PromptVersion> {
        let content = match stored_seal(self.key_id, self.nonce, self.ciphertext)? {
            Some(sealed) => open_content(keys, self.id, &sealed)?,
            // Retention dropped the text: an empty text stands in (`lifecycle.purged_at` says).
            None if self.purged_at.is_some() => Value::String(String::new()),
            None => self.content,
        };
        let deprecation = match (self.deprecated_at, self.sunset_at) {
            (Some(deprecated_at), Some(sunset_at)) => Some(Deprecation {
                deprecated_at,
                sunset_at,
                replacement: match (self.replacement_prompt_id, self.replacement_name) {
                    (Some(prompt_id), Some(name)) => Some(Replacement { prompt_id, name }),
                    _ => None,
                },
            }),
            _ => None,
        };
        Ok(PromptVersion {
            id: self.id,
            prompt_id: self.prompt_id,
            version_number: self.version_number,
            semver: parse_word::<Semver>("prompt_versions.semver", &self.semver)?,
            content: Content::from_json(&content).map_err(|error| {
                StoreError::Corrupt(format!("prompt_versions.content: {error}"))
            })?,
            config: self.config,
            parameter_schema: self.parameter_schema,
            diff_hash: self.diff_hash,
            notes: self.notes,
            author_id: self.author_id,
            status: parse_word("prompt_versions.status", &self.status)?,
            findings: self.findings,
            token_count: self.token_count,
            created_at: self.created_at,
            lifecycle: VersionLifecycle {
                approved_at: self.approved_at,
                deprecation,
                archived_at: self.archived_at,
                purged_at: self.purged_at,
            },
        })
    }
}

/// The associated data of a version's sealed content: a purpose tag and the version id, so a
/// ciphertext copied into another row (or another column, later) does not open there.
pub(crate) fn content_aad(version_id: Uuid) -> Vec<u8> {
    let mut aad = b"promptvault/prompt_versions.content/".to_vec();
    aad.extend_from_slice(version_id.as_bytes());
    aad
}

/// The error for a write that must seal but has no keys (nothing is written).
pub(crate) fn encryption_key_required() -> StoreError {
    StoreError::EncryptionKeyRequired
}

/// A crypto failure as a store error; names the version, never content or key material.
fn crypto_error(version_id: Uuid, error: CryptoError) -> StoreError {
    match error {
        CryptoError::InvalidKeyRing(message) => StoreError::Config(message),
        other => StoreError::Encryption(format!("version {version_id}: {other}")),
    }
}

/// The seal columns of a row: all NULL (clear) or all set; anything else is corrupt.
pub(crate) fn stored_seal(
    key_id: Option<String>,
    nonce: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
) -> StoreResult<Option<Sealed>> {
    match (key_id, nonce, ciphertext) {
        (None, None, None) => Ok(None),
        (Some(key_id), Some(nonce), Some(ciphertext)) => Ok(Some(Sealed {
            key_id,
            nonce,
            ciphertext,
        })),
        _ => Err(StoreError::Corrupt(
            "prompt_versions: key_id, nonce and ciphertext must be all set or all NULL".into(),
        )),
    }
}

/// Seals a version's content JSON under the current key (`Config` error without keys).
pub(crate) fn seal_content(
    keys: Option<&KeyRing>,
    version_id: Uuid,
    content: &Value,
) -> StoreResult<Sealed> {
    let keys = keys.ok_or_else(encryption_key_required)?;
    let plaintext = serde_json::to_vec(content)
        .map_err(|error| StoreError::Corrupt(format!("content does not serialize: {error}")))?;
    keys.seal(&plaintext, &content_aad(version_id))
        .map_err(|error| crypto_error(version_id, error))
}

/// Opens a version's sealed content back into its JSON.
pub(crate) fn open_content(
    keys: Option<&KeyRing>,
    version_id: Uuid,
    sealed: &Sealed,
) -> StoreResult<Value> {
    let keys = keys.ok_or_else(|| {
        StoreError::Encryption(format!(
            "version {version_id} is encrypted with key {:?}, but no encryption keys are \
             configured",
            sealed.key_id
        ))
    })?;
    let plaintext = keys
        .open(sealed, &content_aad(version_id))
        .map_err(|error| crypto_error(version_id, error))?;
    serde_json::from_slice(&plaintext).map_err(|error| {
        StoreError::Corrupt(format!(
            "prompt_versions: sealed content of version {version_id} is not JSON: {error}"
        ))
    })
}

/// A version's content as its row stores it: in clear, or JSON null plus the seal.
pub(crate) struct StoredContent {
    pub content: Value,
    pub key_id: Option<String>,
    pub nonce: Option<Vec<u8>>,
    pub ciphertext: Option<Vec<u8>>,
}

impl StoredContent {
    /// Sealed when the prompt's classification asks for it (needs keys), clear otherwise.
    pub(crate) fn of(
        keys: Option<&KeyRing>,
        classification: Classification,
        version: &PromptVersion,
    ) -> StoreResult<Self> {
        let content = version.content.to_json();
        if classification.is_sealed_at_rest() {
            Ok(StoredContent::sealed(seal_content(
                keys, version.id, &content,
            )?))
        } else {
            Ok(StoredContent::clear(content))
        }
    }

    pub(crate) fn sealed(sealed: Sealed) -> Self {
        StoredContent {
            content: Value::Null,
            key_id: Some(sealed.key_id),
            nonce: Some(sealed.nonce),
            ciphertext: Some(sealed.ciphertext),
        }
    }

    pub(crate) fn clear(content: Value) -> Self {
        StoredContent {
            content,
            key_id: None,
            nonce: None,
            ciphertext: None,
        }
    }
}

/// The associated data of a prompt's sealed test cases: the prompt id, under its own prefix (a
/// sealed test document never opens as version content, nor under another prompt).
pub(crate) fn tests_aad(prompt_id: Uuid) -> Vec<u8> {
    let mut aad = b"promptvault/prompt_tests.cases/".to_vec();
    aad.extend_from_slice(prompt_id.as_bytes());
    aad
}

/// A prompt's test cases as their row stores them: sealed when the prompt's classification asks
/// for it (needs keys), clear otherwise.
pub(crate) fn stored_tests(
    keys: Option<&KeyRing>,
    classification: Classification,
    prompt_id: Uuid,
    cases: &[TestCase],
) -> StoreResult<StoredContent> {
    let value = serde_json::to_value(cases)
        .map_err(|error| StoreError::Corrupt(format!("test cases do not serialize: {error}")))?;
    if classification.is_sealed_at_rest() {
        Ok(StoredContent::sealed(seal_tests(keys, prompt_id, &value)?))
    } else {
        Ok(StoredContent::clear(value))
    }
}

/// Seals a prompt's test cases JSON under the current key (`EncryptionKeyRequired` without keys).
pub(crate) fn seal_tests(
    keys: Option<&KeyRing>,
    prompt_id: Uuid,
    cases: &Value,
) -> StoreResult<Sealed> {
    let keys = keys.ok_or_else(encryption_key_required)?;
    let plaintext = serde_json::to_vec(cases)
        .map_err(|error| StoreError::Corrupt(format!("test cases do not serialize: {error}")))?;
    keys.seal(&plaintext, &tests_aad(prompt_id))
        .map_err(|error| tests_crypto_error(prompt_id, error))
}

/// Opens a prompt's sealed test cases back into their JSON.
pub(crate) fn open_tests(
    keys: Option<&KeyRing>,
    prompt_id: Uuid,
    sealed: &Sealed,
) -> StoreResult<Value> {
    let keys = keys.ok_or_else(|| {
        StoreError::Encryption(format!(
            "the test cases of prompt {prompt_id} are encrypted with key {:?}, but no encryption \
             keys are configured",
            sealed.key_id
        ))
    })?;
    let plaintext = keys
        .open(sealed, &tests_aad(prompt_id))
        .map_err(|error| tests_crypto_error(prompt_id, error))?;
    serde_json::from_slice(&plaintext).map_err(|error| {
        StoreError::Corrupt(format!(
            "prompt_tests: sealed cases of prompt {prompt_id} are not JSON: {error}"
        ))
    })
}

fn tests_crypto_error(prompt_id: Uuid, error: CryptoError) -> StoreError {
    match error {
        CryptoError::InvalidKeyRing(message) => StoreError::Config(message),
        other => StoreError::Encryption(format!("test cases of prompt {prompt_id}: {other}")),
    }
}

/// Decodes a `prompt_tests` row (clear JSON, or sealed) into the cases.
pub(crate) fn decode_tests(
    keys: Option<&KeyRing>,
    prompt_id: Uuid,
    cases: Value,
    seal: Option<Sealed>,
) -> StoreResult<Vec<TestCase>> {
    let value = match seal {
        Some(sealed) => open_tests(keys, prompt_id, &sealed)?,
        None => cases,
    };
    serde_json::from_value(value)
        .map_err(|error| StoreError::Corrupt(format!("prompt_tests.cases: {error}")))
}

/// How many versions one `reencrypt` transaction handles.
pub(crate) const REENCRYPT_BATCH: i64 = 100;

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

/// Decodes a stored split (JSON list of entries); an invalid one is a corrupt row.
pub(crate) fn decode_split(
    stored: Option<Vec<promptvault_core::deploy::SplitEntry>>,
) -> StoreResult<Option<promptvault_core::deploy::Split>> {
    stored
        .map(|entries| {
            promptvault_core::deploy::Split::new(entries)
                .map_err(|error| StoreError::Corrupt(format!("labels.split: {error}")))
        })
        .transpose()
}

/// What a label served at `at`, from its history (oldest first): the target of the newest move
/// made at or before `at`; `None` if it did not exist then (never set, or removed).
pub(crate) fn target_at(
    history: &[promptvault_core::model::LabelEvent],
    at: time::OffsetDateTime,
) -> Option<promptvault_core::deploy::LabelTarget> {
    let event = history.iter().rev().find(|event| event.at <= at)?;
    let version = event.to_version?;
    Some(promptvault_core::deploy::LabelTarget::from_parts(
        version,
        event.split.clone(),
    ))
}

/// Where `latest` pointed at `at`: the newest version created at or before it.
pub(crate) fn latest_at(
    versions: &[(i64, time::OffsetDateTime)],
    at: time::OffsetDateTime,
) -> Option<promptvault_core::deploy::LabelTarget> {
    versions
        .iter()
        .filter(|(_, created_at)| *created_at <= at)
        .map(|(number, _)| *number)
        .max()
        .map(promptvault_core::deploy::LabelTarget::Version)
}

/// The rollback target: walking the label's past targets newest first, the first that differs
/// from the current one and is approved.
pub(crate) fn rollback_target(
    past_targets_newest_first: &[i64],
    current: Option<i64>,
    is_approved: impl Fn(i64) -> bool,
) -> Option<i64> {
    past_targets_newest_first
        .iter()
        .copied()
        .find(|&version| Some(version) != current && is_approved(version))
}

/// Which version a promote ends a split on: the one asked for (it must be in the split), or,
/// when none is given and the split has exactly two entries, the non-primary one.
pub(crate) fn promote_choice(
    split: &promptvault_core::deploy::Split,
    asked: Option<i64>,
    label: &str,
    prompt_name: &str,
) -> StoreResult<i64> {
    match asked {
        Some(version) if split.contains(version) => Ok(version),
        Some(version) => Err(StoreError::Domain(DomainError::InvalidField {
            field: "version",
            reason: format!(
                "version {version} is not part of the split of {}",
                label_of(label, prompt_name)
            ),
        })),
        None if split.entries().len() == 2 => Ok(split.entries()[1].version),
        None => Err(StoreError::Domain(DomainError::InvalidField {
            field: "version",
            reason: format!(
                "the split of {} has {} versions: say which one to promote",
                label_of(label, prompt_name),
                split.entries().len()
            ),
        })),
    }
}

/// Checks the statuses of a label's target versions (number, status or `None` if missing)
/// against the status required of them.
pub(crate) fn check_target_statuses(
    label: &LabelName,
    prompt_name: &str,
    statuses: &[(i64, Option<VersionStatus>)],
    required: Option<VersionStatus>,
) -> StoreResult<()> {
    for &(version, status) in statuses {
        let Some(status) = status else {
            return Err(StoreError::not_found(version_of(version, prompt_name)));
        };
        if let Some(required) = required
            && status != required
        {
            return Err(StoreError::Domain(DomainError::LabelRequiresApproval {
                label: label.to_string(),
                version,
                status: status.as_str(),
            }));
        }
    }
    Ok(())
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
        access: prompt.access,
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

/// A new version's record as it is stored: a draft, created now, with the findings of the
/// compliance checks and of the prompt's template `tests` (rendered under
/// `RenderLimits::STANDARD`).
pub(crate) fn new_version(
    prompt_id: Uuid,
    version_number: i64,
    semver: Semver,
    version: &NewVersion,
    tests: &[TestCase],
    at: OffsetDateTime,
) -> PromptVersion {
    let mut report = promptvault_core::compliance::check(
        version.draft.content(),
        version.draft.parameter_schema(),
        &version.compliance,
    );
    // The prompt's template tests run on every new version; failures are error findings.
    if !tests.is_empty() {
        let results = promptvault_core::testcase::run(
            version.draft.content(),
            version.draft.parameter_schema(),
            tests,
            promptvault_core::testcase::WRITE_LIMITS,
        );
        report
            .findings
            .extend(promptvault_core::testcase::findings(&results));
    }
    PromptVersion {
        id: Uuid::now_v7(),
        prompt_id,
        version_number,
        semver,
        // The draft after carry-over: the schema compared is the one the version will have.
        content: version.draft.content().clone(),
        config: version.draft.config().clone(),
        parameter_schema: version.draft.parameter_schema().cloned(),
        diff_hash: version.draft.diff_hash().to_string(),
        notes: version.notes.clone(),
        author_id: version.author_id,
        status: VersionStatus::Draft,
        created_at: at,
        findings: report.findings,
        token_count: report.token_count,
        lifecycle: Default::default(),
    }
}

/// A user row as the database returns it, before its roles are parsed.
pub(crate) struct UserRecord {
    pub id: Uuid,
    pub email: Option<String>,
    pub external_user_id: Option<String>,
    pub did: Option<String>,
    pub at_protocol_handle: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub data: Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl UserRecord {
    pub(crate) fn into_user(self) -> StoreResult<User> {
        Ok(User {
            id: self.id,
            email: self.email,
            external_user_id: self.external_user_id,
            did: self.did,
            at_protocol_handle: self.at_protocol_handle,
            first_name: self.first_name,
            last_name: self.last_name,
            roles: self
                .roles
                .iter()
                .map(|role| parse_word("users.roles", role))
                .collect::<StoreResult<_>>()?,
            permissions: self.permissions,
            data: self.data,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A new user's record as it is first stored.
pub(crate) fn new_user(user: NewUser, at: OffsetDateTime) -> User {
    User {
        id: Uuid::now_v7(),
        email: user.email,
        external_user_id: user.external_user_id,
        did: user.did,
        at_protocol_handle: user.at_protocol_handle,
        first_name: user.first_name,
        last_name: user.last_name,
        roles: user.roles,
        permissions: user.permissions,
        data: user.data,
        created_at: at,
        updated_at: at,
    }
}

pub(crate) fn role_words(roles: &[Role]) -> Vec<String> {
    roles.iter().map(|role| role.as_str().to_string()).collect()
}

pub(crate) fn scope_words(scopes: &[Scope]) -> Vec<String> {
    scopes
        .iter()
        .map(|scope| scope.as_str().to_string())
        .collect()
}

pub(crate) fn user_with_id(id: Uuid) -> String {
    format!("user {id}")
}

pub(crate) fn token_with_id(id: Uuid) -> String {
    format!("token {id}")
}

pub(crate) fn email_taken(email: Option<&str>) -> StoreError {
    StoreError::conflict(format!(
        "email {:?} is taken by another user",
        email.unwrap_or_default()
    ))
}

/// The message never names the hash: token hashes stay out of errors and logs.
pub(crate) fn token_hash_taken() -> StoreError {
    StoreError::conflict("a token with the same secret already exists")
}

/// An API token row as the database returns it, before its words are parsed (the hash is never
/// read back).
pub(crate) struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub token_prefix: String,
    pub role: String,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub prompt_names: Option<Vec<String>>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub created_by: Option<Uuid>,
    pub last_used_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    pub(crate) fn into_token(self) -> StoreResult<ApiToken> {
        Ok(ApiToken {
            id: self.id,
            name: self.name,
            token_prefix: self.token_prefix,
            role: parse_word("api_tokens.role", &self.role)?,
            user_id: self.user_id,
            agent_id: self.agent_id,
            scopes: self
                .scopes
                .map(|scopes| {
                    scopes
                        .iter()
                        .map(|scope| parse_word("api_tokens.scopes", scope))
                        .collect::<StoreResult<_>>()
                })
                .transpose()?,
            prompt_names: self.prompt_names,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            created_at: self.created_at,
            created_by: self.created_by,
            last_used_at: self.last_used_at,
        })
    }
}

/// A new token's record as it is first stored: not revoked, never used.
pub(crate) fn new_token(token: &NewApiToken, at: OffsetDateTime) -> ApiToken {
    ApiToken {
        id: Uuid::now_v7(),
        name: token.name.clone(),
        token_prefix: token.token_prefix.clone(),
        role: token.role,
        user_id: token.user_id,
        agent_id: token.agent_id.clone(),
        scopes: token.scopes.clone(),
        prompt_names: token.prompt_names.clone(),
        // Stored with microsecond precision, so returned that way too.
        expires_at: token
            .expires_at
            .map(OffsetDateTime::truncate_to_microsecond),
        revoked_at: None,
        created_at: at,
        created_by: token.created_by,
        last_used_at: None,
    }
}

/// `touch_token` writes at most once per this interval per token: it runs on every
/// authenticated request, and the last use only needs to be roughly right.
pub(crate) const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);

/// An audit time as stored: Unix nanoseconds, the value `entry_hash` and checkpoint signatures
/// cover. Times outside what 64 bits of nanoseconds hold (1677–2262) are refused.
pub(crate) fn unix_nanos(field: &'static str, at: OffsetDateTime) -> StoreResult<i64> {
    i64::try_from(at.unix_timestamp_nanos()).map_err(|_| {
        StoreError::Domain(DomainError::InvalidField {
            field,
            reason: format!("{at} is outside the years 1677 to 2262"),
        })
    })
}

/// The inverse of [`unix_nanos`], in UTC.
pub(crate) fn from_unix_nanos(column: &str, nanos: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|error| StoreError::Corrupt(format!("{column}: {error}")))
}

/// An entry to append, with its fields in their stored form, before it has a place in the
/// chain (prepared before taking the log's lock, so the lock is held only for the chaining).
#[derive(Debug, Clone)]
pub(crate) struct PendingAudit {
    entry: NewAuditEntry,
    pub at_ns: i64,
    pub detail: String,
}

pub(crate) fn pending_audit(entry: NewAuditEntry) -> StoreResult<PendingAudit> {
    let at_ns = unix_nanos("at", entry.at)?;
    let detail = serde_json::to_string(&entry.detail)
        .map_err(|error| StoreError::Corrupt(format!("audit detail: {error}")))?;
    Ok(PendingAudit {
        entry: NewAuditEntry {
            // In range: `unix_nanos` accepted it.
            at: entry.at.to_offset(time::UtcOffset::UTC),
            ..entry
        },
        at_ns,
        detail,
    })
}

impl PendingAudit {
    /// Chains the entry after the newest stored entry (`last`, as `seq` and hash), or after the
    /// newest checkpoint when the log was purged empty, or after the genesis.
    pub(crate) fn chain(
        self,
        last: Option<(i64, String)>,
        checkpoint: Option<(i64, String)>,
    ) -> AuditEntry {
        let (last_seq, prev_hash) = last
            .or(checkpoint)
            .unwrap_or_else(|| (0, GENESIS_HASH.to_string()));
        let seq = last_seq + 1;
        let hash = entry_hash(seq, &prev_hash, &self.entry);
        AuditEntry {
            seq,
            entry: self.entry,
            prev_hash,
            hash,
        }
    }
}

/// A time bound of an audit query as Unix nanoseconds, clamped to what 64 bits hold (a bound
/// beyond them matches everything or nothing, as it would with wider numbers).
pub(crate) fn clamped_unix_nanos(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// An audit row as the database returns it, before its words and JSON are parsed.
pub(crate) struct AuditRecord {
    pub seq: i64,
    pub id: Uuid,
    pub at_ns: i64,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub outcome: String,
    pub prompt_id: Option<Uuid>,
    pub prompt_name: Option<String>,
    pub prompt_scope: Option<String>,
    pub classification: Option<String>,
    pub before_hash: Option<String>,
    pub after_hash: Option<String>,
    pub detail: String,
    pub source: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    pub(crate) fn into_entry(self) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            seq: self.seq,
            entry: NewAuditEntry {
                id: self.id,
                at: from_unix_nanos("audit_log.at_ns", self.at_ns)?,
                actor_kind: self.actor_kind,
                actor_id: self.actor_id,
                actor_role: self
                    .actor_role
                    .map(|role| parse_word("audit_log.actor_role", &role))
                    .transpose()?,
                action: self.action,
                outcome: AuditOutcome::parse(&self.outcome).ok_or_else(|| {
                    StoreError::Corrupt(format!("audit_log.outcome: {:?}", self.outcome))
                })?,
                prompt_id: self.prompt_id,
                prompt_name: self.prompt_name,
                prompt_scope: self
                    .prompt_scope
                    .map(|scope| parse_word("audit_log.prompt_scope", &scope))
                    .transpose()?,
                classification: self
                    .classification
                    .map(|classification| parse_word("audit_log.classification", &classification))
                    .transpose()?,
                before_hash: self.before_hash,
                after_hash: self.after_hash,
                detail: serde_json::from_str(&self.detail)
                    .map_err(|error| StoreError::Corrupt(format!("audit_log.detail: {error}")))?,
                source: self.source,
                request_id: self.request_id,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// A checkpoint as stored (`at` as Unix nanoseconds, so its signature still verifies).
pub(crate) fn decode_checkpoint(
    up_to_seq: i64,
    up_to_hash: String,
    purged: i64,
    at_ns: i64,
    signature: String,
) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        up_to_seq,
        up_to_hash,
        purged,
        at: from_unix_nanos("audit_checkpoints.at_ns", at_ns)?,
        signature,
    })
}

/// Why a purge cannot happen: entry `up_to_seq` is gone or has another hash.
pub(crate) fn checkpoint_mismatch(checkpoint: &Checkpoint, found: Option<&str>) -> StoreError {
    match found {
        None => StoreError::conflict(format!(
            "audit entry {} does not exist (already purged, or never written)",
            checkpoint.up_to_seq
        )),
        Some(_) => StoreError::conflict(format!(
            "audit entry {} does not have the checkpoint's hash",
            checkpoint.up_to_seq
        )),
    }
}

/// How `list_audit` matches `action`: exactly, or every action in a `.`-terminated family.
pub(crate) enum ActionMatch {
    Exact(String),
    /// `[from, to)` in byte order: the actions that start with `from` (a prefix ending in `.`;
    /// `to` is the prefix with its `.` replaced by the next byte, `/`).
    Range {
        from: String,
        to: String,
    },
}

pub(crate) fn action_match(action: &str) -> ActionMatch {
    match action.strip_suffix('.') {
        Some(stem) => ActionMatch::Range {
            from: action.to_string(),
            to: format!("{stem}/"),
        },
        None => ActionMatch::Exact(action.to_string()),
    }
}

/// `limit` must be positive (the trait's contract); a caller bug, reported as a field error.
pub(crate) fn check_audit_limit(limit: i64) -> StoreResult<()> {
    if limit > 0 {
        Ok(())
    } else {
        Err(StoreError::Domain(DomainError::InvalidField {
            field: "limit",
            reason: format!("must be positive, not {limit}"),
        }))
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

/// What a review decision's transaction read about the version, under the prompt's lock.
pub(crate) struct ReviewSubject {
    pub name: String,
    pub classification: Classification,
    pub type_workflow: Option<ApprovalWorkflow>,
    pub status: VersionStatus,
    pub round: i64,
    pub author_id: Option<Uuid>,
}

/// Decides an approval or a rejection against the round read under the lock (the core decides;
/// a refusal is `StoreError::Approval`). Returns the workflow, the decision and the record to
/// insert.
pub(crate) fn decide_review(
    subject: &ReviewSubject,
    round: &[ReviewRecord],
    review: &NewReview,
    decision: ReviewDecision,
    at: OffsetDateTime,
) -> StoreResult<(ApprovalWorkflow, Recorded, ReviewRecord)> {
    let workflow = review
        .policy
        .workflow_for(subject.classification, subject.type_workflow.as_ref())
        .clone();
    let decide = match decision {
        ReviewDecision::Approve => decide_approval,
        ReviewDecision::Reject => decide_rejection,
    };
    let recorded = decide(
        &workflow,
        subject.status,
        round,
        &review.reviewer,
        subject.author_id,
    )
    .map_err(StoreError::Approval)?;
    let record = ReviewRecord {
        round: subject.round,
        step: u32::try_from(recorded.step).unwrap_or(u32::MAX),
        reviewer_id: review.reviewer.id.clone(),
        reviewer_role: review.reviewer.role,
        decision,
        comment: review.comment.clone(),
        at,
    };
    Ok((workflow, recorded, record))
}

/// The status a version moves to after a review decision, if it moves.
pub(crate) fn status_after(decision: ReviewDecision, recorded: Recorded) -> Option<VersionStatus> {
    match decision {
        ReviewDecision::Approve if recorded.complete => Some(VersionStatus::Approved),
        ReviewDecision::Approve => None,
        ReviewDecision::Reject => Some(VersionStatus::Draft),
    }
}

/// A stored review row's words, parsed.
pub(crate) fn review_record(
    round: i64,
    step: i64,
    reviewer_id: String,
    role: &str,
    decision: &str,
    comment: Option<String>,
    at: OffsetDateTime,
) -> StoreResult<ReviewRecord> {
    Ok(ReviewRecord {
        round,
        step: u32::try_from(step)
            .map_err(|_| StoreError::Corrupt(format!("version_approvals.step: {step}")))?,
        reviewer_id,
        reviewer_role: parse_word("version_approvals.approver_role", role)?,
        decision: workflow::ReviewDecision::parse(decision)
            .map_err(|error| StoreError::Corrupt(format!("version_approvals.decision: {error}")))?,
        comment,
        at,
    })
}

/// The associated data of a run's sealed params and output: a purpose tag and the run id.
pub(crate) fn run_aad(run_id: Uuid) -> Vec<u8> {
    let mut aad = b"promptvault/runs.payload/".to_vec();
    aad.extend_from_slice(run_id.as_bytes());
    aad
}

fn run_crypto_error(run_id: Uuid, error: CryptoError) -> StoreError {
    match error {
        CryptoError::InvalidKeyRing(message) => StoreError::Config(message),
        other => StoreError::Encryption(format!("run {run_id}: {other}")),
    }
}

/// How a run's params and output are stored: `(params, rendered, seal)`, sealed together as
/// `{"params", "rendered"}` (the columns then hold JSON `null`) when the classification asks.
pub(crate) fn stored_run(
    keys: Option<&KeyRing>,
    run: &crate::types::NewRun,
) -> StoreResult<(Value, Value, Option<Sealed>)> {
    if !run.classification.is_sealed_at_rest() {
        return Ok((run.params.clone(), run.rendered.clone(), None));
    }
    let keys = keys.ok_or_else(encryption_key_required)?;
    let payload = serde_json::json!({"params": run.params, "rendered": run.rendered});
    let plaintext = serde_json::to_vec(&payload)
        .map_err(|error| StoreError::Corrupt(format!("run does not serialize: {error}")))?;
    let sealed = keys
        .seal(&plaintext, &run_aad(run.id))
        .map_err(|error| run_crypto_error(run.id, error))?;
    Ok((Value::Null, Value::Null, Some(sealed)))
}

/// A run's params and output from its row, opened if sealed.
pub(crate) fn open_run(
    keys: Option<&KeyRing>,
    run_id: Uuid,
    params: Value,
    rendered: Value,
    seal: Option<Sealed>,
) -> StoreResult<(Value, Value)> {
    let Some(sealed) = seal else {
        return Ok((params, rendered));
    };
    let keys = keys.ok_or_else(|| {
        StoreError::Encryption(format!(
            "run {run_id} is encrypted with key {:?}, but no encryption keys are configured",
            sealed.key_id
        ))
    })?;
    let plaintext = keys
        .open(&sealed, &run_aad(run_id))
        .map_err(|error| run_crypto_error(run_id, error))?;
    let mut payload: Value = serde_json::from_slice(&plaintext).map_err(|error| {
        StoreError::Corrupt(format!("runs: sealed payload of run {run_id}: {error}"))
    })?;
    Ok((payload["params"].take(), payload["rendered"].take()))
}

/// The message naming a missing run.
pub(crate) fn run_with_id(id: Uuid) -> String {
    format!("run {id}")
}

/// A stored feedback from its columns (none when no field was ever given).
pub(crate) fn feedback_of(
    success: Option<bool>,
    score: Option<f64>,
    comment: Option<String>,
    at: Option<OffsetDateTime>,
) -> (
    Option<promptvault_core::runs::Feedback>,
    Option<OffsetDateTime>,
) {
    match at {
        None => (None, None),
        Some(at) => (
            Some(promptvault_core::runs::Feedback {
                success,
                score,
                comment,
            }),
            Some(at),
        ),
    }
}

/// A batch's runs as uses per version (see [`merge_uses`]).
pub(crate) fn uses_per_version<'a>(
    runs: impl IntoIterator<Item = &'a crate::types::NewRun>,
) -> Vec<crate::types::VersionUse> {
    merge_uses(runs.into_iter().map(|run| {
        crate::types::VersionUse::one(run.prompt_id, run.version_number, run.created_at)
    }))
}

/// Uses summed per version (latest `last_used`), in (prompt, version) order: the order rows
/// are locked in, so concurrent writers never wait on each other in a cycle.
pub(crate) fn merge_uses(
    uses: impl IntoIterator<Item = crate::types::VersionUse>,
) -> Vec<crate::types::VersionUse> {
    let mut merged = std::collections::BTreeMap::new();
    for one in uses {
        match merged.entry((one.prompt_id, one.version_number)) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(one);
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => slot.get_mut().absorb(one),
        }
    }
    merged.into_values().collect()
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
    fn action_families_are_byte_ranges() {
        match action_match("label.") {
            ActionMatch::Range { from, to } => {
                assert_eq!((from.as_str(), to.as_str()), ("label.", "label/"));
                for inside in ["label.", "label.set", "label.remove"] {
                    assert!(inside >= from.as_str() && inside < to.as_str(), "{inside}");
                }
                for outside in ["label", "labels", "label/x", "labe", "version.create"] {
                    assert!(
                        !(outside >= from.as_str() && outside < to.as_str()),
                        "{outside}"
                    );
                }
            }
            ActionMatch::Exact(_) => panic!("a prefix ending in . is a range"),
        }
        assert!(
            matches!(action_match("label.set"), ActionMatch::Exact(action) if action == "label.set")
        );
    }

    #[test]
    fn audit_times_round_trip_through_nanoseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
            .expect("valid time");
        let nanos = unix_nanos("at", at).expect("in range");
        assert_eq!(from_unix_nanos("at", nanos).expect("decodes"), at);
        let far = OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 400);
        assert!(matches!(
            unix_nanos("at", far),
            Err(StoreError::Domain(DomainError::InvalidField {
                field: "at",
                ..
            }))
        ));
    }

    #[test]
    fn now_has_microsecond_precision() {
        assert_eq!(now().nanosecond() % 1_000, 0);
    }
}
