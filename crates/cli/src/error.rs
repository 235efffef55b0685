//! The CLI's one error type. Whatever failed — the local `Vault`, the server (a problem+json
//! body), the network, a file the user named — becomes a [`CliError`] with a stable `code`, a
//! sentence and per-field items, printed as one line `error: <detail> (<code>)` plus indented
//! `  /pointer: message` lines, and mapped to an exit code.

use std::{fmt, process::ExitCode};

use promptvault_api::problem::{Problem, ProblemItem};
use promptvault_server::error::AppError;

pub type CliResult<T> = Result<T, CliError>;

/// What the process exit code says about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: an internal or otherwise unclassified failure.
    Internal = 1,
    /// 3: the prompt, version, label … does not exist.
    NotFound = 3,
    /// 4: the input was refused (validation, conflict, bad file).
    Invalid = 4,
    /// 5: the server or the database cannot be reached.
    Unreachable = 5,
}

/// A failure as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub exit: Exit,
    /// Stable machine-readable code (the API's `code` when the failure came from it).
    pub code: String,
    pub detail: String,
    pub errors: Vec<ProblemItem>,
}

impl CliError {
    pub fn new(exit: Exit, code: impl Into<String>, detail: impl Into<String>) -> Self {
        CliError {
            exit,
            code: code.into(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn invalid(code: impl Into<String>, detail: impl Into<String>) -> Self {
        CliError::new(Exit::Invalid, code, detail)
    }

    pub fn internal(code: impl Into<String>, detail: impl Into<String>) -> Self {
        CliError::new(Exit::Internal, code, detail)
    }

    pub fn unreachable(code: impl Into<String>, detail: impl Into<String>) -> Self {
        CliError::new(Exit::Unreachable, code, detail)
    }

    /// A failure the API reported with an HTTP status.
    pub fn from_status(
        status: u16,
        code: impl Into<String>,
        detail: impl Into<String>,
        errors: Vec<ProblemItem>,
    ) -> Self {
        let exit = match status {
            404 => Exit::NotFound,
            503 => Exit::Unreachable,
            400..=499 => Exit::Invalid,
            _ => Exit::Internal,
        };
        CliError {
            exit,
            code: code.into(),
            detail: detail.into(),
            errors,
        }
    }

    /// A file the user named could not be read.
    pub fn read_file(path: &std::path::Path, error: &std::io::Error) -> Self {
        let exit = if error.kind() == std::io::ErrorKind::NotFound {
            Exit::NotFound
        } else {
            Exit::Invalid
        };
        CliError::new(
            exit,
            "unreadable_file",
            format!("cannot read {}: {error}", path.display()),
        )
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }

    /// The one-line reason and the per-field lines, as printed on stderr.
    pub fn report(&self) -> String {
        let mut text = format!("error: {} ({})\n", self.detail, self.code);
        for item in &self.errors {
            text.push_str(&format!("  {}: {}\n", item.pointer, item.message));
        }
        text
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.code)
    }
}

impl std::error::Error for CliError {}

impl From<AppError> for CliError {
    fn from(error: AppError) -> Self {
        CliError::from_status(
            error.status.as_u16(),
            error.code,
            error.detail,
            error.errors,
        )
    }
}

impl From<Problem> for CliError {
    fn from(problem: Problem) -> Self {
        CliError::from_status(problem.status, problem.code, problem.detail, problem.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_exit_codes() {
        let exit = |status| CliError::from_status(status, "c", "d", Vec::new()).exit as u8;
        assert_eq!(exit(404), 3);
        assert_eq!(exit(422), 4);
        assert_eq!(exit(409), 4);
        assert_eq!(exit(400), 4);
        assert_eq!(exit(503), 5);
        assert_eq!(exit(500), 1);
    }

    #[test]
    fn the_report_is_one_line_plus_one_line_per_field() {
        let error = CliError {
            errors: vec![ProblemItem {
                pointer: "/age".into(),
                message: "must be a number".into(),
            }],
            ..CliError::invalid("invalid_params", "the params do not match the schema")
        };
        assert_eq!(
            error.report(),
            "error: the params do not match the schema (invalid_params)\n  /age: must be a number\n"
        );
    }
}
