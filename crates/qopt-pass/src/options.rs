//! Typed pass options: each pass declares its options ([`OptionSpec`]); the pipeline
//! parser checks values against them and hands the pass a [`PassOptions`] with every
//! declared option present (defaults filled in).

use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptKind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Float {
        min: f64,
        max: f64,
    },
    Str,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: OptKind,
    /// Default value in the pipeline syntax; `None`: the option is unset unless given.
    pub default: Option<&'static str>,
    pub help: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OptValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for OptValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptValue::Bool(b) => write!(f, "{b}"),
            OptValue::Int(i) => write!(f, "{i}"),
            OptValue::Float(x) => write!(f, "{x}"),
            OptValue::Str(s) => f.write_str(s),
        }
    }
}

impl OptKind {
    /// A short description for `--list-passes` and error messages.
    pub fn describe(&self) -> String {
        match self {
            OptKind::Bool => "true|false".into(),
            OptKind::Int { min, max } if *max == i64::MAX => format!("integer >= {min}"),
            OptKind::Int { min, max } => format!("integer in {min}..={max}"),
            OptKind::Float { min, max } if max.is_infinite() => format!("number >= {min}"),
            OptKind::Float { min, max } => format!("number in [{min}, {max}]"),
            OptKind::Str => "string".into(),
            OptKind::Enum(words) => words.join("|"),
        }
    }
}

impl OptionSpec {
    /// Check and convert a value written in a pipeline.
    pub fn parse(&self, raw: &str) -> Result<OptValue, String> {
        let bad = || {
            format!(
                "bad value '{raw}' for option '{}': expected {}",
                self.name,
                self.kind.describe()
            )
        };
        match self.kind {
            OptKind::Bool => match raw {
                "true" | "1" | "yes" => Ok(OptValue::Bool(true)),
                "false" | "0" | "no" => Ok(OptValue::Bool(false)),
                _ => Err(bad()),
            },
            OptKind::Int { min, max } => {
                let v: i64 = raw.parse().map_err(|_| bad())?;
                if v < min || v > max {
                    return Err(bad());
                }
                Ok(OptValue::Int(v))
            }
            OptKind::Float { min, max } => {
                let v: f64 = raw.parse().map_err(|_| bad())?;
                if !(v >= min && v <= max) {
                    return Err(bad());
                }
                Ok(OptValue::Float(v))
            }
            OptKind::Str => Ok(OptValue::Str(raw.to_string())),
            OptKind::Enum(words) => {
                if words.contains(&raw) {
                    Ok(OptValue::Str(raw.to_string()))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

/// The options a pass instance runs with: every declared option with a default is present.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassOptions {
    values: BTreeMap<String, OptValue>,
}

impl PassOptions {
    /// Options with every default from `specs` filled in.
    pub fn defaults(specs: &[OptionSpec]) -> PassOptions {
        let mut values = BTreeMap::new();
        for s in specs {
            if let Some(d) = s.default {
                let v = s
                    .parse(d)
                    .unwrap_or_else(|e| panic!("bad default in pass option table: {e}"));
                values.insert(s.name.to_string(), v);
            }
        }
        PassOptions { values }
    }

    pub fn set(&mut self, name: &str, v: OptValue) {
        self.values.insert(name.to_string(), v);
    }

    pub fn get(&self, name: &str) -> Option<&OptValue> {
        self.values.get(name)
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(OptValue::Bool(true)))
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(OptValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(OptValue::Float(v)) => Some(*v),
            Some(OptValue::Int(v)) => Some(*v as f64),
            _ => None,
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(OptValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &OptValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// `{k=v k2=v2}` in pipeline syntax (empty when there are no options).
impl fmt::Display for PassOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.values.is_empty() {
            return Ok(());
        }
        f.write_str("{")?;
        for (i, (k, v)) in self.values.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec {
            name: "method",
            kind: OptKind::Enum(&["minmax", "kl"]),
            default: Some("minmax"),
            help: "",
        },
        OptionSpec {
            name: "bins",
            kind: OptKind::Int {
                min: 8,
                max: 1 << 20,
            },
            default: Some("2048"),
            help: "",
        },
        OptionSpec {
            name: "p",
            kind: OptKind::Float {
                min: 0.0,
                max: 100.0,
            },
            default: None,
            help: "",
        },
    ];

    #[test]
    fn defaults_and_parsing() {
        let o = PassOptions::defaults(SPECS);
        assert_eq!(o.str("method"), Some("minmax"));
        assert_eq!(o.int("bins"), Some(2048));
        assert!(!o.is_set("p"));
        assert_eq!(SPECS[2].parse("99.9"), Ok(OptValue::Float(99.9)));
        let e = SPECS[0].parse("entropy").unwrap_err();
        assert!(e.contains("minmax|kl"), "{e}");
        assert!(SPECS[1].parse("4").is_err());
        assert!(SPECS[2].parse("nan").is_err());
        assert_eq!(o.to_string(), "{bins=2048 method=minmax}");
    }
}
