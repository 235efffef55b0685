//! Presentation helpers: aligned text tables, key/value blocks, JSON output, timestamps, and
//! ANSI colour (only when stdout is a terminal and `NO_COLOR` is not set). Commands build their
//! output as a `String` and hand it to [`emit`], which tolerates a closed pipe (`prompt list |
//! head`).

use std::io::{IsTerminal, Write};

use serde::Serialize;
use time::{OffsetDateTime, macros::format_description};

use crate::error::{CliError, CliResult};

/// Writes command output to stdout. A reader that went away (broken pipe) is not an error.
pub fn emit(text: &str) -> CliResult<()> {
    let mut stdout = std::io::stdout().lock();
    let result = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    match result {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::internal(
            "output_failed",
            format!("cannot write to stdout: {error}"),
        )),
        _ => Ok(()),
    }
}

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> CliResult<String> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::internal("output_failed", error.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// A timestamp as people read it: `2025-01-31 14:05:09Z` (UTC, seconds).
pub fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_else(|_| at.to_string())
}

/// `-` for nothing.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => "-".to_string(),
    }
}

/// One line of a free text cell: the first line, shortened to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut line: String = first.chars().take(max).collect();
    if first.chars().count() > max || text.lines().nth(1).is_some() {
        line.push('…');
    }
    line
}

/// A table with a header row and left-aligned columns separated by two spaces.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|cell| cell.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|cell| width(cell)).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(width(cell));
            }
        }
        let mut text = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate().take(columns) {
                if index > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if index + 1 < columns {
                    line.push_str(&" ".repeat(widths[index].saturating_sub(width(cell))));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// `key: value` lines with the values aligned.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let key_width = pairs.iter().map(|(key, _)| width(key)).max().unwrap_or(0);
    let mut text = String::new();
    for (key, value) in pairs {
        let padding = " ".repeat(key_width - width(key));
        text.push_str(&format!("{key}:{padding}  {value}\n"));
    }
    text
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// Colours for terminal output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Red,
    Green,
    Cyan,
    Bold,
}

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset or empty (no-color.org).
pub fn colour_enabled() -> bool {
    let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_colour && std::io::stdout().is_terminal()
}

/// `text` wrapped in the style's ANSI codes when `colour` is on.
pub fn paint(text: &str, style: Style, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    let code = match style {
        Style::Red => "31",
        Style::Green => "32",
        Style::Cyan => "36",
        Style::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let mut table = Table::new(&["NAME", "V"]);
        table.row(vec!["a/long-name".into(), "1".into()]);
        table.row(vec!["b".into(), "12".into()]);
        assert_eq!(
            table.render(),
            "NAME         V\na/long-name  1\nb            12\n"
        );
    }

    #[test]
    fn key_values_align_values() {
        assert_eq!(
            key_values(&[
                ("name", "a".into()),
                ("kind", "text".into()),
                ("classification", "x".into())
            ]),
            "name:            a\nkind:            text\nclassification:  x\n"
        );
    }

    #[test]
    fn paint_is_plain_without_colour() {
        assert_eq!(paint("x", Style::Red, false), "x");
        assert_eq!(paint("x", Style::Red, true), "\x1b[31mx\x1b[0m");
    }
}
