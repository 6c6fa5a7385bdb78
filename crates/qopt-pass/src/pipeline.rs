//! Pipeline text: `fuse,calib{method=kl},eq{rounds=2},qdq`.
//!
//! Grammar (whitespace allowed between tokens):
//! ```text
//! pipeline := element (',' element)*
//! element  := NAME options?
//! options  := '{' (KEY '=' VALUE)* '}'        -- options separated by spaces, MLIR style
//! NAME/KEY := [a-z0-9][a-z0-9_-]*
//! VALUE    := bare | '"' chars '"'            -- bare: no space , { } = "
//! ```
//! Parsing is two-phase, as in MLIR's `PassRegistry.cpp`: [`parse`] checks structure
//! only; [`PipelineAst::resolve`] then looks names up in a [`Registry`] and checks
//! option values. Every error carries the byte span it is about and renders with a caret.

use crate::Pass;
use crate::options::{OptionSpec, PassOptions};
use crate::registry::Registry;
use std::fmt;

/// An error in a pipeline string, pointing at `span` (byte offsets).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct PipelineError {
    pub pipeline: String,
    pub start: usize,
    pub len: usize,
    pub msg: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let col = self.pipeline[..self.start.min(self.pipeline.len())]
            .chars()
            .count();
        writeln!(f, "{} (at column {} of the pipeline)", self.msg, col + 1)?;
        writeln!(f, "  {}", self.pipeline)?;
        let width = self.pipeline[self.start.min(self.pipeline.len())..]
            .chars()
            .take(self.len.max(1))
            .count()
            .max(1);
        write!(f, "  {}{}", " ".repeat(col), "^".repeat(width))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct OptAst {
    pub key: String,
    pub key_start: usize,
    pub value: String,
    pub value_start: usize,
    pub value_len: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ElementAst {
    pub name: String,
    pub start: usize,
    pub options: Vec<OptAst>,
}

/// Phase one: the structure of a pipeline, names not yet looked up.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineAst {
    pub text: String,
    pub elements: Vec<ElementAst>,
}

/// One pass to run: its registered name and checked options.
#[derive(Clone, Debug, PartialEq)]
pub struct PassSpec {
    pub name: &'static str,
    pub options: PassOptions,
    /// The alias this pass came from, if any.
    pub alias: Option<&'static str>,
}

/// Phase two: a resolved pipeline.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PipelineSpec {
    pub passes: Vec<PassSpec>,
}

impl PipelineSpec {
    /// Create the pass instances.
    pub fn instantiate(&self, reg: &Registry) -> Result<Vec<Box<dyn Pass>>, String> {
        self.passes
            .iter()
            .map(|p| {
                let info = reg.get(p.name).expect("resolved against this registry");
                (info.create)(&p.options).map_err(|e| format!("pass '{}': {e}", p.name))
            })
            .collect()
    }

    /// The canonical text of the resolved pipeline (aliases expanded, options explicit).
    pub fn to_text(&self) -> String {
        self.passes
            .iter()
            .map(|p| format!("{}{}", p.name, p.options))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Parse and resolve in one step.
pub fn parse_and_resolve(text: &str, reg: &Registry) -> Result<PipelineSpec, PipelineError> {
    parse(text)?.resolve(reg)
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, start: usize, len: usize, msg: impl Into<String>) -> PipelineError {
        PipelineError {
            pipeline: self.text.to_string(),
            start,
            len,
            msg: msg.into(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn ident(&mut self, what: &str) -> Result<(String, usize), PipelineError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
            Some(c) => {
                return Err(self.err(start, c.len_utf8(), format!("expected {what}, found '{c}'")));
            }
            None => {
                return Err(self.err(
                    start,
                    0,
                    format!("expected {what} at the end of the pipeline"),
                ));
            }
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok((self.text[start..self.pos].to_string(), start))
    }

    fn value(&mut self) -> Result<(String, usize, usize), PipelineError> {
        self.skip_ws();
        let start = self.pos;
        if self.peek() == Some('"') {
            self.pos += 1;
            let mut out = String::new();
            loop {
                match self.peek() {
                    None => return Err(self.err(start, self.pos - start, "unterminated string")),
                    Some('"') => {
                        self.pos += 1;
                        break;
                    }
                    Some('\\') => {
                        self.pos += 1;
                        match self.peek() {
                            Some(c) => {
                                out.push(c);
                                self.pos += c.len_utf8();
                            }
                            None => {
                                return Err(self.err(
                                    start,
                                    self.pos - start,
                                    "unterminated string",
                                ));
                            }
                        }
                    }
                    Some(c) => {
                        out.push(c);
                        self.pos += c.len_utf8();
                    }
                }
            }
            return Ok((out, start, self.pos - start));
        }
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | '{' | '}' | '=' | '"') {
                break;
            }
            self.pos += c.len_utf8();
        }
        if self.pos == start {
            let found = self
                .peek()
                .map(|c| format!("'{c}'"))
                .unwrap_or_else(|| "the end".into());
            return Err(self.err(start, 1, format!("expected an option value, found {found}")));
        }
        Ok((
            self.text[start..self.pos].to_string(),
            start,
            self.pos - start,
        ))
    }
}

/// Phase one: check the structure of a pipeline string.
pub fn parse(text: &str) -> Result<PipelineAst, PipelineError> {
    let mut lx = Lexer { text, pos: 0 };
    let mut elements = Vec::new();
    lx.skip_ws();
    if lx.peek().is_none() {
        return Err(lx.err(0, 0, "empty pipeline"));
    }
    loop {
        let (name, start) = lx.ident("a pass name")?;
        let mut options = Vec::new();
        lx.skip_ws();
        if lx.peek() == Some('{') {
            let open = lx.pos;
            lx.pos += 1;
            loop {
                lx.skip_ws();
                match lx.peek() {
                    Some('}') => {
                        lx.pos += 1;
                        break;
                    }
                    None => return Err(lx.err(open, 1, "unclosed '{'")),
                    Some(',') => {
                        return Err(lx.err(
                            lx.pos,
                            1,
                            "options are separated by spaces, not commas: {a=1 b=2}",
                        ));
                    }
                    _ => {}
                }
                let (key, key_start) = lx.ident("an option name")?;
                lx.skip_ws();
                if lx.peek() != Some('=') {
                    return Err(lx.err(
                        key_start,
                        key.len(),
                        format!("expected '=' after option '{key}'"),
                    ));
                }
                lx.pos += 1;
                let (value, value_start, value_len) = lx.value()?;
                if options.iter().any(|o: &OptAst| o.key == key) {
                    return Err(lx.err(
                        key_start,
                        key.len(),
                        format!("option '{key}' given twice"),
                    ));
                }
                options.push(OptAst {
                    key,
                    key_start,
                    value,
                    value_start,
                    value_len,
                });
            }
        }
        elements.push(ElementAst {
            name,
            start,
            options,
        });
        lx.skip_ws();
        match lx.peek() {
            None => break,
            Some(',') => lx.pos += 1,
            Some(c) => {
                return Err(lx.err(
                    lx.pos,
                    c.len_utf8(),
                    format!("expected ',' between passes, found '{c}'"),
                ));
            }
        }
    }
    Ok(PipelineAst {
        text: text.to_string(),
        elements,
    })
}

impl PipelineAst {
    fn err(&self, start: usize, len: usize, msg: String) -> PipelineError {
        PipelineError {
            pipeline: self.text.clone(),
            start,
            len,
            msg,
        }
    }

    /// Phase two: look every name up and check every option.
    pub fn resolve(&self, reg: &Registry) -> Result<PipelineSpec, PipelineError> {
        let mut passes = Vec::new();
        for el in &self.elements {
            if let Some(info) = reg.get(&el.name) {
                let options = self.check_options(el, info.options.iter().collect(), &el.name)?;
                passes.push(PassSpec {
                    name: info.name,
                    options,
                    alias: None,
                });
            } else if let Some(alias) = reg.alias(&el.name) {
                // Check every option against the union first, so an option no expanded pass
                // takes is reported at its position.
                self.check_options(el, reg.alias_options(alias), &el.name)?;
                for p in alias.expansion {
                    let info = reg.get(p).expect("alias checked at registration");
                    let mine: Vec<&OptAst> = el
                        .options
                        .iter()
                        .filter(|o| info.options.iter().any(|s| s.name == o.key))
                        .collect();
                    let sub = ElementAst {
                        name: info.name.to_string(),
                        start: el.start,
                        options: mine.into_iter().cloned().collect(),
                    };
                    let options =
                        self.check_options(&sub, info.options.iter().collect(), &el.name)?;
                    passes.push(PassSpec {
                        name: info.name,
                        options,
                        alias: Some(alias.name),
                    });
                }
            } else {
                let hint = reg
                    .suggest(&el.name)
                    .map(|s| format!("; did you mean '{s}'?"))
                    .unwrap_or_default();
                return Err(self.err(
                    el.start,
                    el.name.len(),
                    format!(
                        "unknown pass '{}'{hint} (qopt --list-passes lists them)",
                        el.name
                    ),
                ));
            }
        }
        Ok(PipelineSpec { passes })
    }

    fn check_options(
        &self,
        el: &ElementAst,
        specs: Vec<&OptionSpec>,
        shown_name: &str,
    ) -> Result<PassOptions, PipelineError> {
        let owned: Vec<OptionSpec> = specs.iter().map(|s| **s).collect();
        let mut opts = PassOptions::defaults(&owned);
        for o in &el.options {
            let Some(spec) = specs.iter().find(|s| s.name == o.key) else {
                let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
                let hint = if known.is_empty() {
                    "it takes no options".to_string()
                } else {
                    format!("it takes {}", known.join(", "))
                };
                return Err(self.err(
                    o.key_start,
                    o.key.len(),
                    format!("pass '{shown_name}' has no option '{}'; {hint}", o.key),
                ));
            };
            let v = spec.parse(&o.value).map_err(|m| {
                self.err(
                    o.value_start,
                    o.value_len,
                    format!("pass '{shown_name}': {m}"),
                )
            })?;
            opts.set(&o.key, v);
        }
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::OptKind;
    use crate::registry::{AliasInfo, PassInfo};
    use crate::{Changed, PassContext, PassError};
    use qopt_ir::Graph;

    struct Nop(&'static str);
    impl Pass for Nop {
        fn name(&self) -> &str {
            self.0
        }
        fn run(&mut self, _: &mut Graph, _: &mut PassContext) -> Result<Changed, PassError> {
            Ok(Changed::No)
        }
    }

    const THRESH_OPTS: &[OptionSpec] = &[OptionSpec {
        name: "method",
        kind: OptKind::Enum(&["minmax", "kl"]),
        default: Some("minmax"),
        help: "",
    }];
    const OBSERVE_OPTS: &[OptionSpec] = &[OptionSpec {
        name: "bins",
        kind: OptKind::Int { min: 8, max: 65536 },
        default: Some("2048"),
        help: "",
    }];

    fn reg() -> Registry {
        let mut r = Registry::new();
        for (name, options) in [
            ("fuse", &[][..]),
            ("observe", OBSERVE_OPTS),
            ("collect", &[][..]),
            ("thresholds", THRESH_OPTS),
            ("qdq", &[][..]),
            ("dce", &[][..]),
        ] {
            r.register(PassInfo {
                name,
                summary: "test",
                options,
                create: |_| Ok(Box::new(Nop("x"))),
            });
        }
        r.register_alias(AliasInfo {
            name: "calib",
            summary: "calibrate",
            expansion: &["observe", "collect", "thresholds"],
        });
        r
    }

    #[test]
    fn parses_structure() {
        let ast = parse(" fuse , calib{method=kl bins=\"4096\"},qdq").unwrap();
        assert_eq!(ast.elements.len(), 3);
        assert_eq!(ast.elements[1].options[1].value, "4096");
        assert_eq!(ast.elements[2].start, 37);
    }

    #[test]
    fn aliases_route_options_to_the_passes_that_declare_them() {
        let spec = parse_and_resolve("fuse,calib{method=kl bins=4096},qdq", &reg()).unwrap();
        assert_eq!(
            spec.to_text(),
            "fuse,observe{bins=4096},collect,thresholds{method=kl},qdq"
        );
        assert_eq!(spec.passes[1].alias, Some("calib"));
    }

    #[test]
    fn unknown_pass_points_at_its_position() {
        let e = parse_and_resolve("fuse,nosuch,qdq", &reg()).unwrap_err();
        assert_eq!((e.start, e.len), (5, 6));
        assert_eq!(
            e.to_string(),
            "unknown pass 'nosuch' (qopt --list-passes lists them) (at column 6 of the pipeline)\n  fuse,nosuch,qdq\n       ^^^^^^"
        );
        let e = parse_and_resolve("fuse,qdd", &reg()).unwrap_err();
        assert!(e.msg.contains("did you mean 'qdq'"), "{}", e.msg);
    }

    #[test]
    fn bad_options_point_at_key_or_value() {
        let e = parse_and_resolve("calib{method=entropy}", &reg()).unwrap_err();
        assert_eq!((e.start, e.len), (13, 7));
        assert!(e.msg.contains("minmax|kl"), "{}", e.msg);
        let e = parse_and_resolve("calib{nbins=3}", &reg()).unwrap_err();
        assert_eq!(e.start, 6);
        assert!(e.msg.contains("it takes bins, method"), "{}", e.msg);
        let e = parse_and_resolve("dce{x=1}", &reg()).unwrap_err();
        assert!(e.msg.contains("takes no options"), "{}", e.msg);
    }

    #[test]
    fn structural_errors() {
        for (text, at, needle) in [
            ("", 0, "empty pipeline"),
            ("fuse,", 5, "expected a pass name at the end"),
            ("fuse;qdq", 4, "expected ','"),
            ("calib{method=kl", 5, "unclosed"),
            ("calib{method=kl, bins=3}", 15, "separated by spaces"),
            ("calib{method}", 6, "expected '='"),
            ("calib{method=}", 13, "expected an option value"),
            ("calib{method=\"kl}", 13, "unterminated"),
            ("Fuse", 0, "expected a pass name, found 'F'"),
            ("calib{bins=1 bins=2}", 13, "given twice"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.start, at, "{text}: {e}");
            assert!(e.msg.contains(needle), "{text}: {}", e.msg);
        }
    }

    #[test]
    fn errors_never_panic_on_odd_text() {
        for text in ["{", "}", "a{b=c}}", ",,", "a{=}", "é", "a{b=\"\\", "a{b=é}"] {
            let r = parse(text).and_then(|a| a.resolve(&reg()));
            if let Err(e) = r {
                let _ = e.to_string();
            }
        }
    }
}
