//! `prompt render`: renders a version with parameters and prints the text (chat prompts as
//! `[role]` blocks), or the API's `RenderResponse` with `--json`.

use promptvault_api::{
    UndefinedMode,
    prompts::{RenderRequest, RenderResponse},
};
use serde_json::Value;

use crate::{args::RenderArgs, backend::Backend, error::CliResult, input, output};

pub async fn render(backend: &dyn Backend, args: RenderArgs, json: bool) -> CliResult<String> {
    let request = RenderRequest {
        request_key: None,
        version: args.version,
        label: args.label,
        params: input::params(&args.params, args.params_file.as_ref())?,
        undefined: args.lenient.then_some(UndefinedMode::Lenient),
        ..RenderRequest::default()
    };
    let response = backend.render(&args.name, request).await?;
    if json {
        return output::json(&response);
    }
    Ok(rendered_text(&response))
}

fn rendered_text(response: &RenderResponse) -> String {
    let mut text = match &response.rendered {
        Value::String(text) => text.clone(),
        Value::Array(messages) => messages
            .iter()
            .map(|message| {
                let role = message.get("role").and_then(Value::as_str).unwrap_or("?");
                let content = message
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                format!("[{role}]\n{content}\n")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn response(rendered: Value) -> RenderResponse {
        RenderResponse {
            deprecation: None,
            prompt_id: Uuid::nil(),
            name: "a".into(),
            version_number: 1,
            semver: "1.0.0".into(),
            rendered,
            config: json!({}),
            redactions: 0,
            run_id: None,
        }
    }

    #[test]
    fn chat_renders_as_role_blocks() {
        let text = rendered_text(&response(json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi Ada"}
        ])));
        assert_eq!(text, "[system]\nBe brief.\n\n[user]\nHi Ada\n");
    }

    #[test]
    fn text_ends_with_a_newline() {
        assert_eq!(rendered_text(&response(json!("Hello"))), "Hello\n");
    }
}
