//! Parse errors that point at a line and column, rendered like a compiler's:
//!
//! ```text
//! model.qir:12:7: expected ')' after the inputs of Conv
//!   %y = Conv(%x, %w {pads=[1,1,1,1]}
//!                    ^
//! ```

use std::fmt;

/// A `.qir` syntax or semantic error at a position in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file the text came from, when the caller knows it ([`ParseError::in_file`]).
    pub file: Option<String>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
    /// The offending source line (shortened around the column when very long).
    pub source_line: String,
    /// Column of the caret within `source_line` (1-based, in characters).
    caret: usize,
}

/// Longest excerpt of a source line shown under an error (blob lines can be megabytes).
const MAX_EXCERPT: usize = 160;

impl ParseError {
    /// An error at byte offset `offset` of `src`.
    pub(crate) fn at(src: &str, offset: usize, message: impl Into<String>) -> ParseError {
        let offset = src.floor_char_boundary(offset.min(src.len()));
        let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
        let line = src[..line_start].matches('\n').count() + 1;
        let text = src[line_start..line_end].trim_end_matches('\r');
        let column = src[line_start..offset].chars().count() + 1;

        // Keep the excerpt short: a window of characters around the column.
        let chars: Vec<char> = text.chars().collect();
        let (source_line, caret) = if chars.len() <= MAX_EXCERPT {
            (text.to_string(), column)
        } else {
            let from = column.saturating_sub(MAX_EXCERPT / 2).min(chars.len());
            let to = (from + MAX_EXCERPT).min(chars.len());
            let mut s: String = if from > 0 {
                "...".into()
            } else {
                String::new()
            };
            let shift = s.chars().count();
            s.extend(&chars[from..to]);
            if to < chars.len() {
                s.push_str("...");
            }
            (s, column - from + shift)
        };
        ParseError {
            file: None,
            line,
            column,
            message: message.into(),
            source_line,
            caret,
        }
    }

    /// Name the file the text was read from, for the rendered message.
    pub fn in_file(mut self, file: impl Into<String>) -> ParseError {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<input>");
        writeln!(f, "{file}:{}:{}: {}", self.line, self.column, self.message)?;
        writeln!(f, "{}", self.source_line)?;
        // Copy tabs so the caret lines up with the source whatever the tab width.
        let pad: String = self
            .source_line
            .chars()
            .take(self.caret.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{pad}^")
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_line_and_column() {
        let src = "graph g() -> () {\n\t%y = Relu(%x\n}\n";
        let off = src.find("%x").unwrap();
        let e = ParseError::at(src, off, "unknown value %x").in_file("m.qir");
        assert_eq!((e.line, e.column), (2, 12));
        assert_eq!(
            e.to_string(),
            "m.qir:2:12: unknown value %x\n\t%y = Relu(%x\n\t          ^"
        );
    }

    #[test]
    fn long_lines_are_shortened_around_the_column() {
        let src = format!("{}X{}", "a".repeat(1000), "b".repeat(1000));
        let e = ParseError::at(&src, 1000, "here");
        assert_eq!(e.column, 1001);
        assert!(e.source_line.len() < 200, "{}", e.source_line);
        let caret_line = e.to_string().lines().nth(2).unwrap().to_string();
        let at = e.source_line.chars().nth(caret_line.len() - 1);
        assert_eq!(at, Some('X'));
    }

    #[test]
    fn offsets_past_the_end_and_inside_chars_are_clamped() {
        let src = "é";
        let e = ParseError::at(src, 1, "mid-char");
        assert_eq!((e.line, e.column), (1, 1));
        let e = ParseError::at(src, 99, "eof");
        assert_eq!((e.line, e.column), (1, 2));
    }
}
