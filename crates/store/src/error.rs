//! The storage boundary's error type: callers branch on what a failure means (not found,
//! conflict, stale revision, a domain rule) without seeing SQL.

use promptvault_core::{error::DomainError, model::VersionStatus, workflow::ApprovalRefusal};
use thiserror::Error;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The thing named does not exist (`what` says which, e.g. `prompt "a/b"`, `label "prod"`).
    #[error("{what} not found")]
    NotFound { what: String },
    /// A uniqueness rule would be broken (a taken name, a type still in use).
    #[error("{what}")]
    Conflict { what: String },
    /// `If-Match` named a revision that is no longer current.
    #[error("the prompt changed since revision {expected} (now {current})")]
    PreconditionFailed { expected: i64, current: i64 },
    /// A version's status was no longer the one the caller expected (someone changed it
    /// meanwhile); nothing was written.
    #[error("version {version} is {current}, no longer {expected}")]
    StatusChanged {
        version: i64,
        expected: VersionStatus,
        current: VersionStatus,
    },
    /// A domain rule refused the write (e.g. a bump smaller than required).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Misconfiguration (unsupported URL, unreadable data directory).
    #[error("{0}")]
    Config(String),
    /// Anything else the database said; never shown to API callers.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row that does not decode into a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Sealed content cannot be opened: its key is not configured (or no keys are), or it does
    /// not authenticate (wrong key under that id, tampered row). The message names the record
    /// and the key id, never key material or content. A server answers 500/503 with a clear
    /// code; the data is intact and readable again once the key is configured.
    #[error("encryption: {0}")]
    Encryption(String),
    /// Confidential or restricted content must be sealed or opened, and no keys are
    /// configured; nothing was written.
    #[error(
        "encryption key required: the content of confidential and restricted prompts is encrypted at rest, and no encryption keys are configured"
    )]
    EncryptionKeyRequired,
    /// A version cannot be archived while labels set by users (not `latest`) point at it;
    /// nothing was written.
    #[error("version {version} still carries the label(s) {}; move them first", labels.join(", "))]
    VersionLabelled { version: i64, labels: Vec<String> },
    /// The approval workflow refused a review decision (self-approval, a role the step does not
    /// admit, a second approval by the same approver, a version not in review); nothing was
    /// written.
    #[error(transparent)]
    Approval(ApprovalRefusal),
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        StoreError::NotFound { what: what.into() }
    }

    pub fn conflict(what: impl Into<String>) -> Self {
        StoreError::Conflict { what: what.into() }
    }
}

/// The safety net for database errors the implementations do not map with more context:
/// `RowNotFound` is `NotFound` and a unique violation is `Conflict`; everything else is
/// `Database`. Call sites that know what they were writing map these themselves, with a message
/// naming the thing (`prompt name "a/b" is taken`).
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::RowNotFound => StoreError::not_found("record"),
            sqlx::Error::Database(db_error) if db_error.is_unique_violation() => {
                StoreError::conflict("a record with the same key already exists")
            }
            other => StoreError::Database(other),
        }
    }
}
