//! Reading what the user hands in: template content (`--content`, `--file PATH`, `--file -` for
//! stdin), JSON arguments (`--config`, `--schema`: inline JSON or `@FILE`) and render parameters
//! (`--param k=v`, `--params-file`). Every failure names the flag or file at fault.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use promptvault_api::Kind;
use serde_json::{Map, Value};

use crate::{
    args::ContentSource,
    error::{CliError, CliResult},
};

/// Reads a file, or stdin for `-`.
pub fn read_text(path: &Path) -> CliResult<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|error| CliError::read_file(path, &error))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|error| CliError::read_file(path, &error))
}

/// The raw template text of `--content` or `--file`.
fn source_text(source: &ContentSource) -> CliResult<(String, String)> {
    match (&source.content, &source.file) {
        (Some(text), _) => Ok((text.clone(), "--content".to_string())),
        (None, Some(path)) => Ok((read_text(path)?, path.display().to_string())),
        (None, None) => Err(CliError::invalid(
            "missing_content",
            "give the template with --content TEXT or --file PATH",
        )),
    }
}

/// The version content as the API takes it: a string for text prompts, a JSON list of messages
/// for chat prompts.
pub fn content(source: &ContentSource, kind: Kind) -> CliResult<Value> {
    let (text, origin) = source_text(source)?;
    match kind {
        Kind::Text => Ok(Value::String(text)),
        Kind::Chat => match serde_json::from_str::<Value>(&text) {
            Ok(list @ Value::Array(_)) => Ok(list),
            Ok(_) => Err(CliError::invalid(
                "invalid_content",
                format!(
                    "{origin}: a chat prompt's content is a JSON list of {{role, content}} messages"
                ),
            )),
            Err(error) => Err(CliError::invalid(
                "invalid_content",
                format!(
                    "{origin}: a chat prompt's content is a JSON list of messages, but this is not JSON: {error}"
                ),
            )),
        },
    }
}

/// A JSON argument given inline or as `@FILE`.
pub fn json_arg(flag: &str, raw: &str) -> CliResult<Value> {
    let (text, origin) = match raw.strip_prefix('@') {
        Some(path) => (read_text(Path::new(path))?, path.to_string()),
        None => (raw.to_string(), flag.to_string()),
    };
    serde_json::from_str(&text).map_err(|error| {
        CliError::invalid(
            "invalid_json",
            format!("{origin} is not valid JSON: {error}"),
        )
    })
}

/// The render parameters: the `--params-file` object, then each `--param key=value` on top.
/// A value is JSON if it parses as JSON (`3`, `true`, `[1,2]`, `"quoted"`), otherwise the
/// string as written.
pub fn params(pairs: &[String], file: Option<&PathBuf>) -> CliResult<Map<String, Value>> {
    let mut params = match file {
        Some(path) => match serde_json::from_str::<Value>(&read_text(path)?) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(CliError::invalid(
                    "invalid_params_file",
                    format!("{} must hold a JSON object", path.display()),
                ));
            }
            Err(error) => {
                return Err(CliError::invalid(
                    "invalid_params_file",
                    format!("{} is not valid JSON: {error}", path.display()),
                ));
            }
        },
        None => Map::new(),
    };
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CliError::invalid(
                "invalid_param",
                format!("--param {pair:?} is not KEY=VALUE"),
            ));
        };
        if key.is_empty() {
            return Err(CliError::invalid(
                "invalid_param",
                format!("--param {pair:?} has an empty key"),
            ));
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        params.insert(key.to_string(), value);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn param_values_are_json_when_they_parse_and_strings_otherwise() {
        let params = params(
            &[
                "name=Ada".into(),
                "n=3".into(),
                "flag=true".into(),
                "list=[1,2]".into(),
                "quoted=\"3\"".into(),
                "eq=a=b".into(),
                "empty=".into(),
            ],
            None,
        )
        .expect("valid");
        assert_eq!(
            Value::Object(params),
            json!({"name": "Ada", "n": 3, "flag": true, "list": [1, 2], "quoted": "3", "eq": "a=b", "empty": ""})
        );
    }

    #[test]
    fn a_param_without_equals_is_refused() {
        let error = params(&["oops".into()], None).expect_err("invalid");
        assert_eq!(error.code, "invalid_param");
    }

    #[test]
    fn chat_content_must_be_a_json_list() {
        let source = |text: &str| ContentSource {
            content: Some(text.into()),
            file: None,
        };
        assert!(content(&source(r#"[{"role":"user","content":"hi"}]"#), Kind::Chat).is_ok());
        assert!(content(&source("hello"), Kind::Chat).is_err());
        assert_eq!(
            content(&source("[1]"), Kind::Text).expect("text"),
            json!("[1]")
        );
    }
}
