//! The application boundary's error type. Every failure a caller can see has an HTTP status and
//! a stable `code`; it becomes an `application/problem+json` body over HTTP and a one-line reason
//! in the CLI. Internal failures are logged with their cause and answered with an opaque 500.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use promptvault_api::problem::{PROBLEM_JSON, Problem, ProblemItem};
use promptvault_core::{error::DomainError, render::RenderError};
use promptvault_store::StoreError;

pub type AppResult<T> = Result<T, AppError>;

/// A failure with everything a caller needs: status, stable code, a sentence, per-field items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<ProblemItem>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<ProblemItem>) -> Self {
        self.errors = errors;
        self
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// An unexpected failure: the cause is logged here, the caller sees nothing of it.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error.cause_chain = ?cause, error.message = %cause, "internal error");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an internal error occurred",
        )
    }

    pub fn to_problem(&self, request_id: Option<String>) -> Problem {
        Problem {
            kind: format!("urn:promptvault:problem:{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_string(),
            errors: self.errors.clone(),
            request_id,
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.detail, self.code)
    }
}

impl std::error::Error for AppError {}

impl From<DomainError> for AppError {
    fn from(error: DomainError) -> Self {
        match error {
            // Who may deploy is an authorization question: 403, with its own code.
            DomainError::DeployForbidden { .. } => {
                AppError::new(StatusCode::FORBIDDEN, error.code(), error.to_string())
            }
            _ => AppError::unprocessable(error.code(), error.to_string()),
        }
    }
}

impl From<RenderError> for AppError {
    fn from(error: RenderError) -> Self {
        let errors = match &error {
            RenderError::InvalidParams(params) => params
                .iter()
                .map(|param| ProblemItem {
                    pointer: param.pointer.clone(),
                    message: param.message.clone(),
                })
                .collect(),
            RenderError::MissingParams(names) => names
                .iter()
                .map(|name| ProblemItem {
                    pointer: format!("/{name}"),
                    message: "required by the template".into(),
                })
                .collect(),
            _ => Vec::new(),
        };
        AppError::unprocessable(error.code(), error.to_string()).with_errors(errors)
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { what } => {
                let code = if what.starts_with("label") {
                    "label_not_found"
                } else if what.starts_with("version") {
                    "version_not_found"
                } else if what.starts_with("link") {
                    "link_not_found"
                } else if what.starts_with("prompt type") {
                    "prompt_type_not_found"
                } else if what.starts_with("run ") {
                    "run_not_found"
                } else {
                    "prompt_not_found"
                };
                AppError::not_found(code, format!("{what} not found"))
            }
            StoreError::Conflict { what } => AppError::new(StatusCode::CONFLICT, "conflict", what),
            StoreError::PreconditionFailed { expected, current } => AppError::new(
                StatusCode::PRECONDITION_FAILED,
                "version_conflict",
                format!(
                    "the prompt changed since revision {expected} (now {current}); reload and retry"
                ),
            ),
            StoreError::StatusChanged { .. } => AppError::new(
                StatusCode::CONFLICT,
                "status_conflict",
                format!("{error}; reload and retry"),
            ),
            StoreError::VersionLabelled { version, labels } => {
                crate::vault::version_labelled(version, &labels)
            }
            StoreError::Domain(domain) => domain.into(),
            // Misconfigured keys: a clear answer (never garbage, never key material).
            StoreError::EncryptionKeyRequired => AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "encryption_key_required",
                StoreError::EncryptionKeyRequired.to_string(),
            ),
            StoreError::Encryption(what) => {
                tracing::error!(error = %what, "cannot open encrypted content");
                AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "encryption_error",
                    format!("encrypted content cannot be read: {what}"),
                )
            }
            StoreError::Approval(refusal) => refusal.into(),
            other => AppError::internal(&other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_problem(None)).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"promptvault\""),
            );
        }
        response
    }
}

/// A refused review decision: 403 when it is not this reviewer's to make (their own version, a
/// role the step does not admit), 409 when the version's state says no (not in review, already
/// approved by them this round).
impl From<promptvault_core::workflow::ApprovalRefusal> for AppError {
    fn from(refusal: promptvault_core::workflow::ApprovalRefusal) -> Self {
        use promptvault_core::workflow::ApprovalRefusal;
        let status = match refusal {
            ApprovalRefusal::SelfApproval
            | ApprovalRefusal::UnidentifiedApprover
            | ApprovalRefusal::RoleNotAllowed { .. } => StatusCode::FORBIDDEN,
            ApprovalRefusal::NotInReview { .. } | ApprovalRefusal::AlreadyApproved { .. } => {
                StatusCode::CONFLICT
            }
        };
        AppError::new(status, refusal.code(), refusal.to_string())
    }
}
