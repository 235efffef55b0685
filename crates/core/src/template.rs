//! Static analysis of templates: does it compile, which variables does it read, which template
//! features (tags, filters) does it use. Used at save time (a template that does not compile is
//! refused) and by the semver rules (new variables or features change the bump).

use std::collections::BTreeSet;

use minijinja::Environment;

use crate::{
    error::DomainError,
    model::{ChatEntry, Content},
};

/// What a template reads and uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateInfo {
    /// Top-level variables the template reads from its parameters (placeholders included).
    pub variables: BTreeSet<String>,
    /// Placeholder names of a chat prompt (each is also a variable).
    pub placeholders: BTreeSet<String>,
    /// Template features used: `tag:<name>` for block tags, `filter:<name>` for filters.
    pub features: BTreeSet<String>,
    /// No block tags, no calls (of functions, methods or filters with arguments) and no
    /// repetition: the template only prints its parameters through argument-free filters, so the
    /// cost of a render is linear in its input and output (which the render limits cap).
    pub straight_line: bool,
}

/// Names minijinja provides itself; reading them is not reading a parameter.
const BUILTIN_GLOBALS: &[&str] = &[
    "range",
    "dict",
    "debug",
    "namespace",
    "loop",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
];

/// Tags that pull in other templates. Composition across prompts is resolved by the server, so a
/// bare template may not use them on its own yet.
const COMPOSITION_TAGS: &[&str] = &["include", "extends", "import", "from"];

/// Analyzes every template of `content`; fails if one does not compile.
pub fn analyze(content: &Content) -> Result<TemplateInfo, DomainError> {
    let mut info = TemplateInfo {
        straight_line: true,
        ..TemplateInfo::default()
    };
    match content {
        Content::Text(text) => analyze_one(text, None, &mut info)?,
        Content::Chat(entries) => {
            if entries.is_empty() {
                return Err(DomainError::InvalidContent {
                    message: "a chat prompt needs at least one message".into(),
                });
            }
            for (index, entry) in entries.iter().enumerate() {
                match entry {
                    ChatEntry::Message { content, .. } => {
                        analyze_one(content, Some(index), &mut info)?
                    }
                    ChatEntry::Placeholder { name } => {
                        crate::ident::parse_identifier("placeholder name", name, 64)?;
                        info.placeholders.insert(name.clone());
                        info.variables.insert(name.clone());
                    }
                }
            }
        }
    }
    Ok(info)
}

fn analyze_one(
    source: &str,
    message_index: Option<usize>,
    info: &mut TemplateInfo,
) -> Result<(), DomainError> {
    let where_ = |message: String| match message_index {
        Some(index) => format!("message {index}: {message}"),
        None => message,
    };
    let env = Environment::new();
    let template = env
        .template_from_str(source)
        .map_err(|error| DomainError::InvalidTemplate {
            message: where_(describe(&error)),
        })?;
    info.variables.extend(
        template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| !BUILTIN_GLOBALS.contains(&name.as_str())),
    );
    let (features, straight_line) =
        scan_features(source).map_err(|message| DomainError::InvalidTemplate {
            message: where_(message),
        })?;
    for feature in features {
        if let Some(tag) = feature.strip_prefix("tag:")
            && COMPOSITION_TAGS.contains(&tag)
        {
            return Err(DomainError::InvalidTemplate {
                message: where_(format!(
                    "{{% {tag} %}} is not supported in prompt templates yet"
                )),
            });
        }
        info.features.insert(feature);
    }
    info.straight_line &= straight_line;
    Ok(())
}

/// A one-line description of a minijinja error with its line number.
pub(crate) fn describe(error: &minijinja::Error) -> String {
    let detail = error
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| error.kind().to_string());
    match error.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail,
    }
}

/// The largest literal repetition count allowed in a template (`'-' * 80` is fine).
const MAX_LITERAL_REPEAT: u64 = 1_000;

/// Scans a compiled template's tokens (comments and raw blocks are handled by the real lexer):
/// collects `{% tag %}` names and `| filter` names, and refuses repetition that a template can
/// use to build huge values in one instruction, which execution fuel cannot bound: a string or
/// list literal may only be repeated by a literal count of at most 1,000 (`'-' * 80` is fine,
/// `'x' * 100000000` and `'x' * n` are not), and no literal count or exponent may exceed 1,000.
/// Also says whether the template is straight-line (see [`TemplateInfo::straight_line`]).
fn scan_features(source: &str) -> Result<(BTreeSet<String>, bool), String> {
    use minijinja::machinery::{Token, tokenize};

    let tokens: Vec<Token<'_>> = tokenize(source, false, Default::default())
        .filter_map(|token| token.ok().map(|(token, _)| token))
        .collect();
    let mut features = BTreeSet::new();
    let straight_line = !tokens.iter().any(|token| {
        matches!(
            token,
            Token::BlockStart | Token::ParenOpen | Token::Mul | Token::Pow
        )
    });
    let is_sequence_literal = |token: Option<&Token<'_>>| {
        matches!(
            token,
            Some(Token::Str(_) | Token::String(_) | Token::BracketClose)
        )
    };
    let is_big_int = |token: Option<&Token<'_>>| match token {
        Some(Token::Int(value)) => *value > MAX_LITERAL_REPEAT,
        Some(Token::Int128(_)) => true,
        _ => false,
    };
    let is_small_int = |token: Option<&Token<'_>>| matches!(token, Some(Token::Int(value)) if *value <= MAX_LITERAL_REPEAT);
    for (index, token) in tokens.iter().enumerate() {
        let previous = index
            .checked_sub(1)
            .and_then(|previous| tokens.get(previous));
        let next = tokens.get(index + 1);
        match token {
            Token::BlockStart => {
                if let Some(Token::Ident(name)) = next
                    && !name.starts_with("end")
                    && !matches!(*name, "else" | "elif")
                {
                    features.insert(format!("tag:{name}"));
                }
            }
            Token::Pipe => {
                if let Some(Token::Ident(name)) = next {
                    features.insert(format!("filter:{name}"));
                }
            }
            Token::Mul
                if is_big_int(previous)
                    || is_big_int(next)
                    || (is_sequence_literal(previous) && !is_small_int(next))
                    || (is_sequence_literal(next) && !is_small_int(previous)) =>
            {
                return Err(format!(
                    "repeating a string or list literal, or repeating more than {MAX_LITERAL_REPEAT} times, is not allowed in prompt templates"
                ));
            }
            Token::Pow if is_big_int(next) => {
                return Err(format!(
                    "exponents above {MAX_LITERAL_REPEAT} are not allowed in prompt templates"
                ));
            }
            _ => {}
        }
    }
    Ok((features, straight_line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(source: &str) -> Result<TemplateInfo, DomainError> {
        analyze(&Content::Text(source.into()))
    }

    #[test]
    fn variables_are_the_top_level_names_a_template_reads() {
        let info = text("Hi {{ user.name }}! {% for item in items %}{{ item | upper }}{% endfor %} {{ range(3) | list }}")
            .expect("compiles");
        assert_eq!(
            info.variables,
            BTreeSet::from(["items".to_string(), "user".to_string()])
        );
        assert_eq!(
            info.features,
            BTreeSet::from([
                "filter:list".to_string(),
                "filter:upper".to_string(),
                "tag:for".to_string()
            ])
        );
    }

    #[test]
    fn only_templates_without_tags_calls_or_repetition_are_straight_line() {
        let cases = [
            ("Summarize {{ text }} in {{ n }} words", true),
            (
                "{{ user.name | upper }} from {{ user['city'] ~ '!' }}",
                true,
            ),
            ("no variables at all", true),
            ("{# a comment #}{{ a + b }}", true),
            ("{% if a %}{{ a }}{% endif %}", false),
            ("{{ range(3) | list }}", false),
            ("{{ text | truncate(10) }}", false),
            ("{{ text.upper() }}", false),
            ("{{ '-' * 80 }}", false),
            ("{{ 2 ** 8 }}", false),
        ];
        for (source, expected) in cases {
            let info = text(source).expect("compiles");
            assert_eq!(info.straight_line, expected, "{source}");
        }
        let chat = analyze(&Content::Chat(vec![
            ChatEntry::Message {
                role: "system".into(),
                content: "You are {{ persona }}".into(),
            },
            ChatEntry::Placeholder {
                name: "history".into(),
            },
            ChatEntry::Message {
                role: "user".into(),
                content: "{% for q in questions %}{{ q }}{% endfor %}".into(),
            },
        ]))
        .expect("compiles");
        assert!(
            !chat.straight_line,
            "one looping message makes the prompt loop"
        );
    }

    #[test]
    fn a_langfuse_style_template_is_a_valid_template() {
        let info = text("Summarize {{text}} in {{n}} words").expect("compiles");
        assert_eq!(
            info.variables,
            BTreeSet::from(["n".to_string(), "text".to_string()])
        );
        assert!(info.features.is_empty());
    }

    #[test]
    fn a_template_that_does_not_compile_is_refused_with_its_line() {
        let error = text("line one\n{% if x %}never closed").expect_err("syntax error");
        let DomainError::InvalidTemplate { message } = error else {
            panic!("wrong error {error:?}")
        };
        assert!(message.contains("line"), "{message}");
    }

    #[test]
    fn chat_placeholders_are_variables_and_messages_are_analyzed() {
        let content = Content::Chat(vec![
            ChatEntry::Message {
                role: "system".into(),
                content: "Be {{ tone }}".into(),
            },
            ChatEntry::Placeholder {
                name: "history".into(),
            },
        ]);
        let info = analyze(&content).expect("compiles");
        assert_eq!(
            info.variables,
            BTreeSet::from(["history".to_string(), "tone".to_string()])
        );
        assert_eq!(info.placeholders, BTreeSet::from(["history".to_string()]));
    }

    #[test]
    fn includes_are_refused_until_composition_exists() {
        assert!(matches!(
            text("{% include 'other' %}"),
            Err(DomainError::InvalidTemplate { .. })
        ));
    }

    #[test]
    fn an_include_hidden_behind_a_comment_is_still_found() {
        assert!(matches!(
            text("{# {% #}{% include 'other' %}"),
            Err(DomainError::InvalidTemplate { .. })
        ));
        assert!(
            text("{% raw %}{% include 'other' %}{% endraw %}").is_ok(),
            "raw text is not a tag"
        );
    }

    #[test]
    fn literal_amplification_is_refused_at_save_time() {
        let refused = [
            "{{ 'x' * 100000000 }}",
            "{{ 100000000 * 'x' }}",
            "{{ 'x' * n }}",
            "{{ [1, 2] * count }}",
            "{{ name * 5000 }}",
            "{{ 2 ** 100000 }}",
        ];
        for source in refused {
            assert!(
                matches!(text(source), Err(DomainError::InvalidTemplate { .. })),
                "{source}"
            );
        }
        for allowed in [
            "{{ '-' * 80 }}",
            "{{ [0] * 3 }}",
            "{{ n * 3 }}",
            "{{ price * quantity }}",
            "{{ 2 ** 10 }}",
        ] {
            assert!(text(allowed).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn an_empty_chat_is_refused() {
        assert!(matches!(
            analyze(&Content::Chat(vec![])),
            Err(DomainError::InvalidContent { .. })
        ));
    }
}
