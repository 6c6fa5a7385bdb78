//! What the calibration passes (`observe`, `collect`, `thresholds`) read from the
//! [`PassContext`] besides their own options: the calibration source and how to read it
//! ([`CalibSettings`]), and the per-layer rules a user steers them with ([`LayerRules`]:
//! `--override PATTERN=METHOD`, `--keep-fp32 PATTERN`).
//!
//! The CLI and the snapshot harness fill these in through one function, [`apply_option`],
//! which takes the command-line spelling (`calib-limit`, `8`), so the two can never parse an
//! option differently. Library users may also insert the structs directly.
//!
//! Patterns are regular expressions (the `regex` crate's syntax) matched against the whole
//! name of the observed value or of the node that produces it: `backbone\..*` selects every
//! value whose name starts with `backbone.`; `.*conv.*` selects names containing `conv`.

use std::path::PathBuf;

use qopt_calib::methods::Method;
use qopt_calib::source::{Preprocess, SourceSpec};
use qopt_ir::{Graph, ValueId};
use qopt_pass::PassContext;
use regex::Regex;

use crate::CalibSourceArg;
use crate::target::{Target, TargetSpec};

/// How to read the calibration source, and where statistics go to and come from.
#[derive(Clone, Debug, Default)]
pub struct CalibSettings {
    /// `--calib-limit N`: use only the first N samples.
    pub limit: Option<usize>,
    /// `--calib-shard I/K`: of the samples collect counts, only those with index = I mod K
    /// (for splitting one source across processes; see README "Calibration").
    pub shard: Option<(usize, usize)>,
    /// `--preprocess`: image preprocessing (default `imagenet`).
    pub preprocess: Option<Preprocess>,
    /// `--strict`: a sample with NaN/Inf is an error instead of being skipped.
    pub strict: bool,
    /// `--save-stats FILE`: write the observers' statistics after `collect`.
    pub save_stats: Option<PathBuf>,
    /// `--load-stats FILE...`: merge these statistics into the observers in `collect`.
    pub load_stats: Vec<PathBuf>,
}

/// A name pattern: a regex that must match the whole name.
#[derive(Clone, Debug)]
pub struct NamePattern {
    /// As the user wrote it, for messages.
    pub text: String,
    re: Regex,
}

impl NamePattern {
    pub fn new(text: &str) -> Result<NamePattern, String> {
        let re = Regex::new(&format!("^(?:{text})$"))
            .map_err(|e| format!("bad pattern '{text}': {e}"))?;
        Ok(NamePattern {
            text: text.to_string(),
            re,
        })
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.re.is_match(name)
    }
}

/// `--override PATTERN=METHOD`.
#[derive(Clone, Debug)]
pub struct MethodOverride {
    pub pattern: NamePattern,
    pub method: Method,
}

impl MethodOverride {
    /// Parse `PATTERN=METHOD`; the method may carry options (`conv.*=percentile{p=99.9}`),
    /// so the split is at the last `=` outside braces.
    pub fn parse(s: &str) -> Result<MethodOverride, String> {
        let mut depth = 0i32;
        let mut split = None;
        for (i, c) in s.char_indices().rev() {
            match c {
                '}' => depth += 1,
                '{' => depth -= 1,
                '=' if depth == 0 => {
                    split = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let i = split.ok_or_else(|| format!("--override '{s}': expected PATTERN=METHOD"))?;
        let (pat, method) = (&s[..i], &s[i + 1..]);
        if pat.is_empty() {
            return Err(format!("--override '{s}': empty pattern"));
        }
        let method = Method::parse(method).map_err(|e| format!("--override '{s}': {e}"))?;
        Ok(MethodOverride {
            pattern: NamePattern::new(pat).map_err(|e| format!("--override '{s}': {e}"))?,
            method,
        })
    }
}

/// Per-layer steering: method overrides (first match wins) and values kept in fp32.
#[derive(Clone, Debug, Default)]
pub struct LayerRules {
    pub overrides: Vec<MethodOverride>,
    pub keep_fp32: Vec<NamePattern>,
}

/// The names a pattern is matched against for a value: its own and its producer's.
fn names_of(g: &Graph, v: ValueId) -> [&str; 2] {
    [g.value_name(v), g.node(v.node).name.as_str()]
}

impl LayerRules {
    /// The override for value `v`, if a pattern matches its name or its producer's name.
    pub fn override_for(&self, g: &Graph, v: ValueId) -> Option<&MethodOverride> {
        let names = names_of(g, v);
        self.overrides
            .iter()
            .find(|o| names.iter().any(|n| o.pattern.is_match(n)))
    }

    /// Whether `--keep-fp32` leaves value `v` unobserved (and so unquantized).
    pub fn keeps_fp32(&self, g: &Graph, v: ValueId) -> bool {
        let names = names_of(g, v);
        self.keep_fp32
            .iter()
            .any(|p| names.iter().any(|n| p.is_match(n)))
    }
}

/// The target in the context (ONNX Runtime when none is given).
pub fn target_spec(cx: &PassContext) -> &'static TargetSpec {
    cx.get::<Target>().copied().unwrap_or_default().spec()
}

/// The calibration method a pass uses for values without an override: its `method` option,
/// or the target's default.
pub fn pass_method(option: Option<&str>, cx: &PassContext) -> Result<Method, String> {
    let text = option.unwrap_or(target_spec(cx).default_method);
    Method::parse(text).map_err(|e| e.to_string())
}

/// `--preprocess` as the CLI takes it: `PRESET`, `PRESET{key=value ...}`, or a comma list
/// `[PRESET,]key=value,...` whose values may themselves hold commas (`mean=0.5,0.5,0.5`).
pub fn parse_preprocess(s: &str) -> Result<Preprocess, String> {
    let s = s.trim();
    if s.contains('{') || !s.contains('=') {
        return Preprocess::parse(s).map_err(|e| e.to_string());
    }
    let mut preset = String::new();
    let mut pairs: Vec<String> = Vec::new();
    for (i, tok) in s.split(',').enumerate() {
        let tok = tok.trim();
        if tok.contains('=') {
            pairs.push(tok.to_string());
        } else if i == 0 {
            preset = tok.to_string();
        } else if let Some(last) = pairs.last_mut() {
            // A further value of a list (`mean=0.5,0.5,0.5`).
            last.push(',');
            last.push_str(tok);
        } else {
            return Err(format!("--preprocess '{s}': '{tok}' is not key=value"));
        }
    }
    Preprocess::parse(&format!("{preset}{{{}}}", pairs.join(" "))).map_err(|e| e.to_string())
}

/// The command-line options the calibration passes read, by their long names.
pub const OPTION_NAMES: &[&str] = &[
    "calib",
    "calib-limit",
    "calib-shard",
    "preprocess",
    "strict",
    "save-stats",
    "load-stats",
    "override",
    "keep-fp32",
];

/// Apply one command-line option (`name` without the leading `--`) to the context.
/// Repeatable options (`load-stats`, `override`, `keep-fp32`) add to what is there.
pub fn apply_option(cx: &mut PassContext, name: &str, value: &str) -> Result<(), String> {
    fn settings(cx: &mut PassContext) -> &mut CalibSettings {
        if cx.get::<CalibSettings>().is_none() {
            cx.insert(CalibSettings::default());
        }
        cx.get_mut::<CalibSettings>().expect("inserted")
    }
    fn rules(cx: &mut PassContext) -> &mut LayerRules {
        if cx.get::<LayerRules>().is_none() {
            cx.insert(LayerRules::default());
        }
        cx.get_mut::<LayerRules>().expect("inserted")
    }
    match name {
        "calib" => {
            // A missing folder or a malformed random: spec fails here, before the model loads.
            SourceSpec::parse(value).map_err(|e| e.to_string())?;
            cx.insert(CalibSourceArg(value.to_string()))
        }
        "calib-limit" => {
            let n: usize = value
                .parse()
                .map_err(|_| format!("--calib-limit '{value}': expected a number of samples"))?;
            if n == 0 {
                return Err("--calib-limit 0 leaves no calibration samples".into());
            }
            settings(cx).limit = Some(n);
        }
        "calib-shard" => {
            let bad = || format!("--calib-shard '{value}': expected I/K with 0 <= I < K");
            let (i, k) = value.split_once('/').ok_or_else(bad)?;
            let (i, k): (usize, usize) = (
                i.trim().parse().map_err(|_| bad())?,
                k.trim().parse().map_err(|_| bad())?,
            );
            if i >= k {
                return Err(bad());
            }
            settings(cx).shard = Some((i, k));
        }
        "preprocess" => {
            settings(cx).preprocess =
                Some(parse_preprocess(value).map_err(|e| format!("--preprocess: {e}"))?)
        }
        "strict" => {
            settings(cx).strict = match value {
                "" | "true" => true,
                "false" => false,
                _ => return Err(format!("--strict '{value}': expected true or false")),
            }
        }
        "save-stats" => settings(cx).save_stats = Some(PathBuf::from(value)),
        "load-stats" => settings(cx).load_stats.push(PathBuf::from(value)),
        "override" => {
            let o = MethodOverride::parse(value)?;
            rules(cx).overrides.push(o);
        }
        "keep-fp32" => {
            let p = NamePattern::new(value).map_err(|e| format!("--keep-fp32: {e}"))?;
            rules(cx).keep_fp32.push(p);
        }
        other => return Err(format!("unknown calibration option --{other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_calib::source::images::Layout;
    use qopt_ir::op::Relu;
    use qopt_ir::{DType, Shape, TypeInfo};

    #[test]
    fn overrides_split_outside_braces_and_match_whole_names() {
        let o = MethodOverride::parse("conv{1,2}=percentile{p=99.9}").unwrap();
        assert_eq!(o.pattern.text, "conv{1,2}");
        assert_eq!(o.method, Method::Percentile { p: 99.9, abs: None });
        assert!(o.pattern.is_match("convv") && !o.pattern.is_match("xconvv"));
        assert!(MethodOverride::parse("nomethod").is_err());
        assert!(MethodOverride::parse("=kl").is_err());
        let e = MethodOverride::parse("a=entropy").unwrap_err();
        assert!(e.contains("unknown calibration method"), "{e}");
        let e = MethodOverride::parse("a(=kl").unwrap_err();
        assert!(e.contains("bad pattern"), "{e}");
    }

    #[test]
    fn rules_match_value_or_producer_names() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[2])));
        let r = g.add_simple("backbone.relu", Relu {}, &[x], "r_out");
        let mut cx = PassContext::new();
        apply_option(&mut cx, "override", "backbone\\..*=kl").unwrap();
        apply_option(&mut cx, "override", ".*=mse").unwrap();
        apply_option(&mut cx, "keep-fp32", "x").unwrap();
        let rules = cx.get::<LayerRules>().unwrap();
        assert_eq!(rules.override_for(&g, r).unwrap().method.to_string(), "kl");
        assert_eq!(rules.override_for(&g, x).unwrap().method.to_string(), "mse");
        assert!(rules.keeps_fp32(&g, x) && !rules.keeps_fp32(&g, r));
    }

    #[test]
    fn options_parse_and_accumulate() {
        let mut cx = PassContext::new();
        apply_option(&mut cx, "calib", "random:4{seed=1}").unwrap();
        apply_option(&mut cx, "calib-limit", "3").unwrap();
        apply_option(&mut cx, "calib-shard", "1/4").unwrap();
        apply_option(&mut cx, "load-stats", "a.json").unwrap();
        apply_option(&mut cx, "load-stats", "b.json").unwrap();
        apply_option(&mut cx, "strict", "").unwrap();
        let s = cx.get::<CalibSettings>().unwrap();
        assert_eq!((s.limit, s.shard, s.strict), (Some(3), Some((1, 4)), true));
        assert_eq!(s.load_stats.len(), 2);
        assert_eq!(
            cx.get::<CalibSourceArg>().unwrap().0,
            "random:4{seed=1}".to_string()
        );
        for (k, v) in [
            ("calib-limit", "x"),
            ("calib-limit", "0"),
            ("calib-shard", "4/4"),
            ("calib-shard", "1"),
            ("preprocess", "nosuch"),
            ("keep-fp32", "("),
            ("bogus", "1"),
        ] {
            assert!(apply_option(&mut cx, k, v).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn preprocess_comma_lists() {
        let p = parse_preprocess("imagenet,order=bgr,mean=0.5,0.4,0.3,layout=nhwc").unwrap();
        assert!(p.bgr);
        assert_eq!(p.mean, [0.5, 0.4, 0.3]);
        assert_eq!(p.layout, Layout::Nhwc);
        assert_eq!(
            parse_preprocess("ppocr").unwrap(),
            Preprocess::parse("ppocr").unwrap()
        );
        assert_eq!(
            parse_preprocess("imagenet{order=bgr}").unwrap(),
            parse_preprocess("imagenet,order=bgr").unwrap()
        );
        // No preset: from no preprocessing.
        assert_eq!(parse_preprocess("scale=2").unwrap().scale, 2.0);
        assert!(parse_preprocess("imagenet,bogus=1").is_err());
    }
}
