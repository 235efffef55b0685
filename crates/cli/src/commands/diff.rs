//! `prompt diff`: what changed between two versions, section by section (content, config,
//! parameter schema; unchanged sections are skipped) as a unified line diff or, with `--word`,
//! a word diff. Red/green colour only on a terminal without `NO_COLOR`; without colour the word
//! diff marks changes as `[-deleted-]` and `{+inserted+}`.

use promptvault_api::{
    WordOp,
    prompts::{DiffQuery, DiffResponse, FieldDiff},
};

use crate::{
    args::DiffArgs,
    backend::Backend,
    error::CliResult,
    output::{self, Style, colour_enabled, paint},
};

pub async fn diff(backend: &dyn Backend, args: DiffArgs, json: bool) -> CliResult<String> {
    let response = backend
        .diff(
            &args.name,
            DiffQuery {
                from: args.from,
                to: args.to,
            },
        )
        .await?;
    if json {
        return output::json(&response);
    }
    Ok(diff_text(&response, args.word, colour_enabled()))
}

fn diff_text(response: &DiffResponse, word: bool, colour: bool) -> String {
    let sections = [
        ("content", &response.content),
        ("config", &response.config),
        ("parameter_schema", &response.parameter_schema),
    ];
    let mut text = String::new();
    for (title, field) in sections.iter().filter(|(_, field)| field.changed) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&paint(
            &format!("=== {title} (v{} → v{}) ===", response.from, response.to),
            Style::Bold,
            colour,
        ));
        text.push('\n');
        if word {
            text.push_str(&word_diff(field, colour));
        } else {
            text.push_str(&unified(&field.unified, colour));
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    if text.is_empty() {
        return format!(
            "versions {} and {} are identical\n",
            response.from, response.to
        );
    }
    text
}

fn unified(diff: &str, colour: bool) -> String {
    if !colour {
        return diff.to_string();
    }
    diff.lines()
        .map(|line| {
            let style = if line.starts_with("+++") || line.starts_with("---") {
                Some(Style::Bold)
            } else if line.starts_with("@@") {
                Some(Style::Cyan)
            } else if line.starts_with('+') {
                Some(Style::Green)
            } else if line.starts_with('-') {
                Some(Style::Red)
            } else {
                None
            };
            let mut painted = match style {
                Some(style) => paint(line, style, true),
                None => line.to_string(),
            };
            painted.push('\n');
            painted
        })
        .collect()
}

fn word_diff(field: &FieldDiff, colour: bool) -> String {
    let mut text = String::new();
    for change in &field.words {
        match (change.op, colour) {
            (WordOp::Equal, _) => text.push_str(&change.text),
            (WordOp::Delete, false) => text.push_str(&format!("[-{}-]", change.text)),
            (WordOp::Insert, false) => text.push_str(&format!("{{+{}+}}", change.text)),
            (WordOp::Delete, true) => text.push_str(&paint_lines(&change.text, Style::Red)),
            (WordOp::Insert, true) => text.push_str(&paint_lines(&change.text, Style::Green)),
        }
    }
    text
}

/// Colours each line separately so a terminal never carries a colour across a line break.
fn paint_lines(text: &str, style: Style) -> String {
    text.split('\n')
        .map(|line| {
            if line.is_empty() {
                String::new()
            } else {
                paint(line, style, true)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use promptvault_api::prompts::WordChange;

    use super::*;

    fn field(changed: bool, unified: &str, words: Vec<(WordOp, &str)>) -> FieldDiff {
        FieldDiff {
            changed,
            unified: unified.into(),
            words: words
                .into_iter()
                .map(|(op, text)| WordChange {
                    op,
                    text: text.into(),
                })
                .collect(),
        }
    }

    fn response() -> DiffResponse {
        DiffResponse {
            from: 1,
            to: 2,
            content: field(
                true,
                "--- v1\n+++ v2\n@@ -1 +1 @@\n-Hello {{ name }}\n+Hi {{ name }}\n",
                vec![
                    (WordOp::Delete, "Hello"),
                    (WordOp::Insert, "Hi"),
                    (WordOp::Equal, " {{ name }}\n"),
                ],
            ),
            config: field(false, "", vec![(WordOp::Equal, "{}\n")]),
            parameter_schema: field(false, "", vec![]),
        }
    }

    #[test]
    fn unchanged_sections_are_skipped() {
        let text = diff_text(&response(), false, false);
        assert!(text.starts_with("=== content (v1 → v2) ===\n--- v1\n"));
        assert!(!text.contains("config"));
    }

    #[test]
    fn the_plain_word_diff_marks_deletions_and_insertions() {
        assert_eq!(
            diff_text(&response(), true, false),
            "=== content (v1 → v2) ===\n[-Hello-]{+Hi+} {{ name }}\n"
        );
    }

    #[test]
    fn colour_marks_removed_lines_red_and_added_lines_green() {
        let text = diff_text(&response(), false, true);
        assert!(text.contains("\x1b[31m-Hello {{ name }}\x1b[0m"));
        assert!(text.contains("\x1b[32m+Hi {{ name }}\x1b[0m"));
    }
}
