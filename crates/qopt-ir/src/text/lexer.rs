//! Tokens of the `.qir` format, lexed on demand by the parser.
//!
//! Lexing on demand lets the two context-dependent pieces stay unambiguous without
//! complicating the rest: a `#` starts a comment everywhere except in the payload position
//! of a tensor literal, where the parser reads it as a content hash ([`Lexer::hash`]); and
//! the body of `raw<...>` is base64, read as raw characters ([`Lexer::raw_until`]).

use super::error::ParseError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// `[A-Za-z_.][A-Za-z0-9_.]*`: keywords, op types, dtypes, symbols.
    Ident(String),
    /// A number-like word: optional sign, then a digit (or `inf`/`nan`), then word characters
    /// (`12`, `-0.5`, `1e-5`, `8f3a2b4c5d6e7f80`); or `nan(..)`, a NaN's bits. The parser
    /// decides what it means.
    Num(String),
    /// A quoted string, unescaped.
    Str(String),
    /// `%name` or `%"quoted name"`.
    Value(String),
    /// `->`
    Arrow,
    /// `::`
    ColonColon,
    /// One of `( ) [ ] { } < > , = : @ * ?`.
    Punct(char),
    Eof,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Num(s) => format!("number {s}"),
            Tok::Str(_) => "a string".into(),
            Tok::Value(v) => format!("%{v}"),
            Tok::Arrow => "'->'".into(),
            Tok::ColonColon => "'::'".into(),
            Tok::Punct(c) => format!("'{c}'"),
            Tok::Eof => "end of input".into(),
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

pub struct Lexer<'a> {
    pub src: &'a str,
    /// Byte offset of the next unread character.
    pos: usize,
    /// The token after `pos` (start, token, end), when already lexed by `peek`.
    peeked: Option<(usize, Tok, usize)>,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            // Editors on some systems start files with a byte-order mark.
            pos: if src.starts_with('\u{feff}') { 3 } else { 0 },
            peeked: None,
        }
    }

    pub fn error(&self, offset: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.src, offset, msg)
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    /// Skip whitespace and `#` comments.
    fn skip_trivia(&mut self) {
        loop {
            let r = self.rest();
            let t = r.trim_start();
            self.pos += r.len() - t.len();
            if t.starts_with('#') {
                self.pos += t.find('\n').unwrap_or(t.len());
            } else {
                return;
            }
        }
    }

    /// The next token and its start offset, without consuming it.
    pub fn peek(&mut self) -> Result<(usize, &Tok), ParseError> {
        if self.peeked.is_none() {
            let save = self.pos;
            self.skip_trivia();
            let start = self.pos;
            let tok = self.lex();
            let end = self.pos;
            self.pos = save;
            self.peeked = Some((start, tok?, end));
        }
        let (start, tok, _) = self.peeked.as_ref().expect("just filled");
        Ok((*start, tok))
    }

    /// Consume and return the next token with its start offset.
    pub fn next(&mut self) -> Result<(usize, Tok), ParseError> {
        self.peek()?;
        let (start, tok, end) = self.peeked.take().expect("peeked");
        self.pos = end;
        Ok((start, tok))
    }

    /// Offset where the next token starts (after trivia).
    pub fn offset(&mut self) -> usize {
        let here = self.pos;
        self.peek().map_or(here, |(o, _)| o)
    }

    fn lex(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let r = self.rest();
        let Some(c) = r.chars().next() else {
            return Ok(Tok::Eof);
        };
        let mut it = r.chars();
        it.next();
        let c2 = it.next();
        match c {
            '"' => {
                let s = self.string()?;
                Ok(Tok::Str(s))
            }
            '%' => {
                self.pos += 1;
                match self.rest().chars().next() {
                    Some('"') => Ok(Tok::Value(self.string()?)),
                    Some(c) if is_word(c) => Ok(Tok::Value(self.word().to_string())),
                    _ => Err(self.error(
                        start,
                        "expected a value name after '%' (quote names with other characters: %\"a/b\")",
                    )),
                }
            }
            '-' if c2 == Some('>') => {
                self.pos += 2;
                Ok(Tok::Arrow)
            }
            ':' if c2 == Some(':') => {
                self.pos += 2;
                Ok(Tok::ColonColon)
            }
            '-' | '+' | '0'..='9' => self.number(start),
            c if is_word(c) => {
                let w = self.word();
                // `nan(0x7fc00001)` is one token, so that a `nan` ending one statement cannot
                // swallow a `() = ..` statement on the next line.
                if w == "nan" && self.rest().starts_with('(') {
                    let r = self.rest();
                    return match r.find([')', '\n']) {
                        Some(n) if r[n..].starts_with(')') => {
                            self.pos += n + 1;
                            Ok(Tok::Num(self.src[start..self.pos].to_string()))
                        }
                        _ => Err(self.error(start, "unterminated nan(..)")),
                    };
                }
                Ok(Tok::Ident(w.to_string()))
            }
            '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | ',' | '=' | ':' | '@' | '*' | '?' => {
                self.pos += 1;
                Ok(Tok::Punct(c))
            }
            _ => Err(self.error(start, format!("unexpected character {c:?}"))),
        }
    }

    fn word(&mut self) -> &'a str {
        let r = self.rest();
        let n = r.find(|c| !is_word(c)).unwrap_or(r.len());
        self.pos += n;
        &r[..n]
    }

    /// A number-like word. An exponent sign is part of it when what precedes the `e` is a
    /// decimal number (`1.5e-3`), so hex words (`8e3f...`) and exponents both lex whole.
    fn number(&mut self, start: usize) -> Result<Tok, ParseError> {
        let b = self.src.as_bytes();
        let mut i = self.pos;
        if b[i] == b'-' || b[i] == b'+' {
            i += 1;
        }
        let body = i;
        if i >= b.len() || !(b[i].is_ascii_digit() || self.src[i..].starts_with(['i', 'n'])) {
            return Err(self.error(start, "expected a number after the sign"));
        }
        while i < b.len() {
            let c = b[i];
            let word = c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
            let exponent_sign = (c == b'-' || c == b'+')
                && matches!(b[i - 1], b'e' | b'E')
                && b[body..i - 1]
                    .iter()
                    .all(|c| c.is_ascii_digit() || *c == b'.')
                && b.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(word || exponent_sign) {
                break;
            }
            i += 1;
        }
        self.pos = i;
        Ok(Tok::Num(self.src[start..i].to_string()))
    }

    /// A quoted string at `pos`, with `\" \\ \n \t \r \u{..}` escapes. Strings end on their
    /// line: a missing quote is reported at the opening one.
    fn string(&mut self) -> Result<String, ParseError> {
        let s = self.src;
        let open = self.pos;
        // Fast path for strings without escapes (blob lines are megabytes of base64).
        let body = &s[open + 1..];
        if let Some(n) = body.find(['"', '\\', '\n'])
            && body[n..].starts_with('"')
        {
            self.pos = open + 1 + n + 1;
            return Ok(body[..n].to_string());
        }
        let mut out = String::new();
        let mut i = open + 1;
        while let Some(c) = s[i..].chars().next() {
            match c {
                '"' => {
                    self.pos = i + 1;
                    return Ok(out);
                }
                '\n' => break,
                '\\' => {
                    let Some(e) = s[i + 1..].chars().next() else {
                        break;
                    };
                    let at = i;
                    i += 1 + e.len_utf8();
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'u' => {
                            // `{` 1 to 6 hex digits `}`, a Unicode scalar value.
                            let r = &s[i..];
                            let code = r
                                .strip_prefix('{')
                                .and_then(|r| r.find('}').map(|end| &r[..end]))
                                .filter(|h| (1..=6).contains(&h.len()))
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error(at, "bad \\u{..} escape"))?;
                            out.push(code);
                            i += r.find('}').expect("checked") + 1;
                        }
                        '\n' => break,
                        _ => {
                            return Err(self
                                .error(at, "unknown escape (use \\\" \\\\ \\n \\t \\r \\u{..})"));
                        }
                    }
                }
                c => {
                    out.push(c);
                    i += c.len_utf8();
                }
            }
        }
        Err(self.error(open, "unterminated string"))
    }

    // ---- context-dependent pieces ----------------------------------------------------------

    /// Skip whitespace only (not comments), dropping any peeked token.
    fn skip_ws(&mut self) {
        self.peeked = None;
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    /// In a payload position: `#` followed by 16 hex digits is a content hash. Returns
    /// `None` (consuming nothing) when the next character is not `#`.
    pub fn hash(&mut self) -> Option<Result<(usize, u64), ParseError>> {
        let save = self.pos;
        self.skip_ws();
        if !self.rest().starts_with('#') {
            self.pos = save;
            return None;
        }
        let start = self.pos;
        self.pos += 1;
        let w = self.word();
        Some(
            if w.len() == 16 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok((start, u64::from_str_radix(w, 16).expect("16 hex digits")))
            } else {
                Err(self.error(
                start,
                "expected a content hash (# and 16 hex digits) here; a comment cannot stand where a tensor's value is expected",
            ))
            },
        )
    }

    /// Raw characters up to (not including) `end`, which is consumed; for `raw<base64>`.
    pub fn raw_until(&mut self, end: char) -> Result<(usize, &'a str), ParseError> {
        self.skip_ws();
        let start = self.pos;
        let r = self.rest();
        match r.find([end, '\n']) {
            Some(n) if r[n..].starts_with(end) => {
                self.pos += n + end.len_utf8();
                Ok((start, r[..n].trim_end()))
            }
            _ => Err(self.error(start, format!("expected '{end}' on this line"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let mut l = Lexer::new(src);
        let mut v = vec![];
        loop {
            let (_, t) = l.next().unwrap();
            if t == Tok::Eof {
                return v;
            }
            v.push(t);
        }
    }

    #[test]
    fn lexes_the_pieces() {
        use Tok::*;
        assert_eq!(
            toks(
                r#"%a, %"b/c" = com.microsoft::Op(%0) -> # comment
                   [1e-5, -inf, 8f3a, p2o.Dim.0] "q\"\u{41}\n""#
            ),
            vec![
                Value("a".into()),
                Punct(','),
                Value("b/c".into()),
                Punct('='),
                Ident("com.microsoft".into()),
                ColonColon,
                Ident("Op".into()),
                Punct('('),
                Value("0".into()),
                Punct(')'),
                Arrow,
                Punct('['),
                Num("1e-5".into()),
                Punct(','),
                Num("-inf".into()),
                Punct(','),
                Num("8f3a".into()),
                Punct(','),
                Ident("p2o.Dim.0".into()),
                Punct(']'),
                Str("q\"A\n".into()),
            ]
        );
    }

    #[test]
    fn strings_with_several_escapes() {
        assert_eq!(
            toks(r#""\u{1}x\u{2}\\y\u{10ffff}""#),
            vec![Tok::Str("\u{1}x\u{2}\\y\u{10ffff}".into())]
        );
    }

    #[test]
    fn string_errors_point_at_the_quote() {
        let mut l = Lexer::new("  \"abc\n\"");
        let e = l.next().unwrap_err();
        assert_eq!(
            (e.line, e.column, e.message.as_str()),
            (1, 3, "unterminated string")
        );
        let mut l = Lexer::new(r#""\q""#);
        assert!(l.next().unwrap_err().message.contains("escape"));
        let mut l = Lexer::new(r#""\u{110000}""#);
        assert!(l.next().unwrap_err().message.contains("\\u"));
        let mut l = Lexer::new(r#""\u{41""#);
        assert!(l.next().is_err());
    }

    #[test]
    fn hashes_only_where_asked() {
        let mut l = Lexer::new(" #0123456789abcdef rest");
        assert_eq!(l.hash().unwrap().unwrap().1, 0x0123_4567_89ab_cdef);
        assert_eq!(l.next().unwrap().1, Tok::Ident("rest".into()));
        let mut l = Lexer::new("#0123456789abcdef\nx");
        assert_eq!(l.next().unwrap().1, Tok::Ident("x".into()));
        let mut l = Lexer::new("#abc");
        assert!(l.hash().unwrap().is_err());
        let mut l = Lexer::new("x");
        assert!(l.hash().is_none());
    }
}
