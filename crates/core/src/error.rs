//! The domain's error type: every rule violation has a stable machine-readable code, which the
//! HTTP layer and the CLI surface unchanged.

use thiserror::Error;

/// A violated domain rule. `code()` is stable and part of the public API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("invalid prompt name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid label {label:?}: labels match ^[a-z0-9_.-]{{1,36}}$")]
    InvalidLabel { label: String },
    #[error("label {label:?} is managed by the system and cannot be set or removed")]
    ReservedLabel { label: String },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidIdentifier {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid template: {message}")]
    InvalidTemplate { message: String },
    #[error("invalid parameter_schema: {message}")]
    InvalidSchema { message: String },
    #[error("invalid content: {message}")]
    InvalidContent { message: String },
    #[error("invalid config: config must be a JSON object")]
    InvalidConfig,
    #[error("requested bump {requested} is smaller than the {required} bump this change requires")]
    BumpTooSmall {
        requested: &'static str,
        required: &'static str,
    },
    #[error("this prompt is a {expected} prompt; the content given is {given}")]
    KindMismatch {
        expected: &'static str,
        given: &'static str,
    },
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error(
        "label {label:?} is protected: only approved versions may carry it, and version {version} is {status}"
    )]
    LabelRequiresApproval {
        label: String,
        version: i64,
        status: &'static str,
    },
    #[error("label {label:?} is protected: the {role} role may not move or remove it")]
    DeployForbidden { label: String, role: &'static str },
}

impl DomainError {
    /// The stable code of this error (snake_case), as returned in problem+json bodies.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidName { .. } => "invalid_name",
            DomainError::InvalidLabel { .. } => "invalid_label",
            DomainError::ReservedLabel { .. } => "reserved_label",
            DomainError::InvalidIdentifier { .. } => "invalid_identifier",
            DomainError::InvalidTemplate { .. } => "invalid_template",
            DomainError::InvalidSchema { .. } => "invalid_schema",
            DomainError::InvalidContent { .. } => "invalid_content",
            DomainError::InvalidConfig => "invalid_config",
            DomainError::BumpTooSmall { .. } => "bump_too_small",
            DomainError::KindMismatch { .. } => "kind_mismatch",
            DomainError::InvalidField { .. } => "invalid_field",
            DomainError::LabelRequiresApproval { .. } => "label_requires_approval",
            DomainError::DeployForbidden { .. } => "deploy_forbidden",
        }
    }
}
