//! Diffs between two versions: a unified line diff and a word diff of the content, the config
//! and the parameter schema (JSON is pretty-printed with sorted keys first, so key order never
//! shows up as a change).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use crate::{
    hash::canonical_json,
    model::{ChatEntry, Content, PromptVersion},
};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOp {
    Equal,
    Insert,
    Delete,
}

/// A run of words that were kept, inserted or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordChange {
    pub op: WordOp,
    pub text: String,
}

/// The diff of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub changed: bool,
    /// A unified diff (empty when unchanged).
    pub unified: String,
    pub words: Vec<WordChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDiff {
    pub from: i64,
    pub to: i64,
    pub content: FieldDiff,
    pub config: FieldDiff,
    pub parameter_schema: FieldDiff,
}

/// The text a person reads for a version's content: the text itself, or each chat entry as a
/// `[role]` line followed by its content.
pub fn content_text(content: &Content) -> String {
    match content {
        Content::Text(text) => text.clone(),
        Content::Chat(entries) => entries
            .iter()
            .map(|entry| match entry {
                ChatEntry::Message { role, content } => format!("[{role}]\n{content}\n"),
                ChatEntry::Placeholder { name } => format!("[placeholder: {name}]\n"),
            })
            .collect(),
    }
}

/// Pretty JSON with sorted keys (empty for no value).
pub fn json_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(value) => {
            let sorted: Value = serde_json::from_str(&canonical_json(value)).unwrap_or(Value::Null);
            let mut pretty = serde_json::to_string_pretty(&sorted).unwrap_or_default();
            pretty.push('\n');
            pretty
        }
    }
}

/// Diffs two texts; `old_name`/`new_name` head the unified diff.
pub fn diff_text(old: &str, new: &str, old_name: &str, new_name: &str) -> FieldDiff {
    if old == new {
        return FieldDiff {
            changed: false,
            unified: String::new(),
            words: vec![WordChange {
                op: WordOp::Equal,
                text: old.to_string(),
            }],
        };
    }
    let lines = TextDiff::from_lines(old, new);
    let unified = lines
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string();
    let mut words: Vec<WordChange> = Vec::new();
    for change in TextDiff::from_words(old, new).iter_all_changes() {
        let op = match change.tag() {
            ChangeTag::Equal => WordOp::Equal,
            ChangeTag::Insert => WordOp::Insert,
            ChangeTag::Delete => WordOp::Delete,
        };
        match words.last_mut() {
            Some(last) if last.op == op => last.text.push_str(change.value()),
            _ => words.push(WordChange {
                op,
                text: change.value().to_string(),
            }),
        }
    }
    FieldDiff {
        changed: true,
        unified,
        words,
    }
}

/// Diffs two versions of one prompt.
pub fn diff_versions(from: &PromptVersion, to: &PromptVersion) -> VersionDiff {
    let old_name = format!("v{}", from.version_number);
    let new_name = format!("v{}", to.version_number);
    VersionDiff {
        from: from.version_number,
        to: to.version_number,
        content: diff_text(
            &content_text(&from.content),
            &content_text(&to.content),
            &old_name,
            &new_name,
        ),
        config: diff_text(
            &json_text(Some(&from.config)),
            &json_text(Some(&to.config)),
            &old_name,
            &new_name,
        ),
        parameter_schema: diff_text(
            &json_text(from.parameter_schema.as_ref()),
            &json_text(to.parameter_schema.as_ref()),
            &old_name,
            &new_name,
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_changed_line_shows_in_the_unified_and_word_diffs() {
        let diff = diff_text(
            "Hello {{ name }}\nBye\n",
            "Hi {{ name }}\nBye\n",
            "v1",
            "v2",
        );
        assert!(diff.changed);
        insta::assert_snapshot!(diff.unified, @r"
        --- v1
        +++ v2
        @@ -1,2 +1,2 @@
        -Hello {{ name }}
        +Hi {{ name }}
         Bye
        ");
        let ops: Vec<(WordOp, &str)> = diff.words.iter().map(|w| (w.op, w.text.as_str())).collect();
        assert_eq!(ops[0], (WordOp::Delete, "Hello"));
        assert_eq!(ops[1], (WordOp::Insert, "Hi"));
    }

    #[test]
    fn json_key_order_is_not_a_change() {
        let old = json_text(Some(&json!({"a": 1, "b": 2})));
        let new = json_text(Some(&json!({"b": 2, "a": 1})));
        assert!(!diff_text(&old, &new, "v1", "v2").changed);
    }

    #[test]
    fn chat_content_reads_as_role_headed_blocks() {
        let content = Content::from_json(&json!([{"role": "system", "content": "Be brief"}, {"role": "placeholder", "name": "h"}])).expect("chat");
        assert_eq!(
            content_text(&content),
            "[system]\nBe brief\n[placeholder: h]\n"
        );
    }
}
