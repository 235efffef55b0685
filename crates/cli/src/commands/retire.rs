//! `prompt deprecate <name> <version> [--replacement X] [--period 30d | --sunset T]` and
//! `prompt archive <name> <version>`: the `deprecate` and `archive` lifecycle moves, printing the
//! version's new status (and its deprecation) or the API's JSON.

use promptvault_api::{VersionStatus, prompts::TransitionRequest};

use crate::{
    args::{ArchiveArgs, DeprecateArgs},
    backend::Backend,
    error::CliResult,
    output,
};

pub async fn deprecate(
    backend: &dyn Backend,
    args: DeprecateArgs,
    json: bool,
) -> CliResult<String> {
    let request = TransitionRequest {
        to: VersionStatus::Deprecated,
        comment: args.comment,
        replacement: args.replacement,
        period: args.period,
        sunset: args.sunset,
    };
    let version = backend
        .transition(&args.name, args.version, request)
        .await?;
    if json {
        return output::json(&version);
    }
    let mut text = format!(
        "{} v{}: {}\n",
        args.name, version.version_number, version.status
    );
    if let Some(deprecation) = &version.deprecation {
        text.push_str(&format!(
            "served until {}; replacement: {}\n",
            output::timestamp(deprecation.sunset_at),
            deprecation
                .replacement
                .as_ref()
                .map_or("none".to_string(), |replacement| replacement.name.clone())
        ));
    }
    Ok(text)
}

pub async fn archive(backend: &dyn Backend, args: ArchiveArgs, json: bool) -> CliResult<String> {
    let request = TransitionRequest {
        to: VersionStatus::Archived,
        comment: args.comment,
        replacement: None,
        period: None,
        sunset: None,
    };
    let version = backend
        .transition(&args.name, args.version, request)
        .await?;
    if json {
        return output::json(&version);
    }
    Ok(format!(
        "{} v{}: {}\n",
        args.name, version.version_number, version.status
    ))
}
