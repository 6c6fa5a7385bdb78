//! Number spelling in the `.qir` format.
//!
//! Floats print with the shortest decimal that reads back to the same bits, and always
//! with a `.` or an `e` (or as `inf`, `-inf`, `nan`), so a float never looks like an int.
//! A NaN other than the canonical quiet NaN of its width prints its bit pattern,
//! `nan(0x7fc00001)`, so that constants survive bit for bit. Rust's `Debug` for `f32` and
//! `f64` is already the shortest round-trip form; `f16` is searched digit by digit below
//! against the same routine the parser uses.
//!
//! Summary statistics are printed with 4 significant digits: the parser ignores them.

use half::f16;

/// Spelling of a float of some width, given its canonical-NaN test and bit pattern.
fn nan_or(is_nan: bool, canonical: bool, bits: u64, finite: impl FnOnce() -> String) -> String {
    if !is_nan {
        finite()
    } else if canonical {
        "nan".to_string()
    } else {
        format!("nan(0x{bits:x})")
    }
}

pub fn fmt_f32(x: f32) -> String {
    nan_or(
        x.is_nan(),
        x.to_bits() == f32::NAN.to_bits(),
        x.to_bits() as u64,
        || format!("{x:?}"),
    )
}

pub fn fmt_f64(x: f64) -> String {
    nan_or(
        x.is_nan(),
        x.to_bits() == f64::NAN.to_bits(),
        x.to_bits(),
        || format!("{x:?}"),
    )
}

pub fn fmt_f16(x: f16) -> String {
    nan_or(
        x.is_nan(),
        x.to_bits() == f16::NAN.to_bits(),
        x.to_bits() as u64,
        || {
            if x.is_infinite() {
                return format!("{:?}", x.to_f64());
            }
            // f16 needs at most 5 significant digits; take the fewest that read back exactly
            // through `parse_f16`, then let f64's shortest form spell that decimal.
            for prec in 0..=4 {
                let s = format!("{:.prec$e}", x.to_f64());
                if let Ok(v) = s.parse::<f64>()
                    && f16::from_f64(v).to_bits() == x.to_bits()
                {
                    return format!("{v:?}");
                }
            }
            format!("{:?}", x.to_f64())
        },
    )
}

/// A statistic with 4 significant digits (`0.5234`, `1.235e-5`, `nan`).
pub fn fmt_stat(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return format!("{x:?}");
    }
    let short: f64 = format!("{x:.3e}").parse().unwrap_or(x);
    format!("{short:?}")
}

/// A numeric literal as written: its text (`-1.5e3`, `7`, `inf`, `-nan`) or an explicit
/// NaN bit pattern (`nan(0x7fc00001)`, optionally negated as a whole by the sign bit).
#[derive(Clone, Debug, PartialEq)]
pub enum Num {
    Text(String),
    NanBits(u64),
}

impl Num {
    /// True when the literal is spelled as a float (has `.`, `e`, or is inf/nan).
    pub fn is_float(&self) -> bool {
        match self {
            Num::NanBits(_) => true,
            Num::Text(t) => {
                let body = t.trim_start_matches(['-', '+']);
                body == "inf" || body == "nan" || t.contains(['.', 'e', 'E'])
            }
        }
    }

    pub fn to_i64(&self) -> Result<i64, String> {
        match self {
            Num::Text(t) if !self.is_float() => t
                .parse::<i64>()
                .map_err(|_| format!("integer {t} is out of range or malformed")),
            _ => Err(format!("expected an integer, got {}", self.describe())),
        }
    }

    pub fn to_u64(&self) -> Result<u64, String> {
        match self {
            Num::Text(t) if !self.is_float() => t
                .parse::<u64>()
                .map_err(|_| format!("expected a non-negative integer, got {t}")),
            _ => Err(format!(
                "expected a non-negative integer, got {}",
                self.describe()
            )),
        }
    }

    /// An integer that must fit `lo..=hi` (the range of the element type `what`).
    pub fn to_int_in(&self, lo: i64, hi: i64, what: &str) -> Result<i64, String> {
        let v = self.to_i64()?;
        if v < lo || v > hi {
            return Err(format!("{v} is out of range for {what}"));
        }
        Ok(v)
    }

    pub fn to_f32(&self) -> Result<f32, String> {
        match self {
            Num::NanBits(b) => {
                let b =
                    u32::try_from(*b).map_err(|_| format!("NaN bits 0x{b:x} exceed 32 bits"))?;
                let v = f32::from_bits(b);
                if v.is_nan() {
                    Ok(v)
                } else {
                    Err(format!("0x{b:x} is not the bit pattern of an f32 NaN"))
                }
            }
            Num::Text(t) => special(t, f32::INFINITY, f32::NAN, |v| -v)
                .map_or_else(|| t.parse::<f32>().map_err(|_| bad_float(t)), Ok),
        }
    }

    pub fn to_f64(&self) -> Result<f64, String> {
        match self {
            Num::NanBits(b) => {
                let v = f64::from_bits(*b);
                if v.is_nan() {
                    Ok(v)
                } else {
                    Err(format!("0x{b:x} is not the bit pattern of an f64 NaN"))
                }
            }
            Num::Text(t) => special(t, f64::INFINITY, f64::NAN, |v| -v)
                .map_or_else(|| t.parse::<f64>().map_err(|_| bad_float(t)), Ok),
        }
    }

    /// f16 reads through f64, the route [`fmt_f16`] checks its spelling against.
    pub fn to_f16(&self) -> Result<f16, String> {
        match self {
            Num::NanBits(b) => {
                let b =
                    u16::try_from(*b).map_err(|_| format!("NaN bits 0x{b:x} exceed 16 bits"))?;
                let v = f16::from_bits(b);
                if v.is_nan() {
                    Ok(v)
                } else {
                    Err(format!("0x{b:x} is not the bit pattern of an f16 NaN"))
                }
            }
            Num::Text(t) => special(t, f16::INFINITY, f16::NAN, |v| -v)
                .map_or_else(|| Ok(f16::from_f64(self.to_f64()?)), Ok),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Num::Text(t) => t.clone(),
            Num::NanBits(b) => format!("nan(0x{b:x})"),
        }
    }
}

/// `inf`, `-inf`, `nan`, `-nan` (with an optional `+`); `None` for an ordinary number.
fn special<T>(t: &str, inf: T, nan: T, neg: impl Fn(T) -> T) -> Option<T> {
    let (negative, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = match body {
        "inf" => inf,
        "nan" => nan,
        _ => return None,
    };
    Some(if negative { neg(v) } else { v })
}

fn bad_float(t: &str) -> String {
    format!("malformed number {t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back_f32(s: &str) -> f32 {
        Num::Text(s.into()).to_f32().unwrap()
    }

    #[test]
    fn floats_always_look_like_floats() {
        for x in [
            0.0f32,
            -0.0,
            1.0,
            100.0,
            1e20,
            1e-7,
            -3.5,
            f32::MAX,
            f32::MIN_POSITIVE,
        ] {
            let s = fmt_f32(x);
            assert!(Num::Text(s.clone()).is_float(), "{s}");
            assert_eq!(back_f32(&s).to_bits(), x.to_bits(), "{s}");
        }
        assert_eq!(fmt_f32(f32::INFINITY), "inf");
        assert_eq!(fmt_f32(f32::NEG_INFINITY), "-inf");
        assert_eq!(fmt_f32(f32::NAN), "nan");
        assert_eq!(fmt_f32(-f32::NAN), "nan(0xffc00000)");
    }

    #[test]
    fn shortest_spellings_match_numpy() {
        // Reference: numpy 2.x repr, which prints the shortest round-tripping decimal
        // (Dragon4 in unique mode): np.float32(0.1) -> 0.1, np.float16(0.1) -> 0.1,
        // np.float16(1/3) -> 0.3333, np.float16(65504) -> 6.55e+04 (65500.0 here),
        // np.float16(2**-24) -> 6e-08.
        assert_eq!(fmt_f32(0.1), "0.1");
        assert_eq!(fmt_f16(f16::from_f32(0.1)), "0.1");
        assert_eq!(fmt_f16(f16::from_f64(1.0 / 3.0)), "0.3333");
        assert_eq!(fmt_f16(f16::MAX), "65500.0");
        assert_eq!(fmt_f16(f16::from_bits(1)), "6e-8");
        assert_eq!(fmt_f64(0.1), "0.1");
    }

    #[test]
    fn every_f16_round_trips() {
        for bits in 0..=u16::MAX {
            let x = f16::from_bits(bits);
            let s = fmt_f16(x);
            let n = match s.strip_prefix("nan(0x") {
                Some(h) => Num::NanBits(u64::from_str_radix(h.trim_end_matches(')'), 16).unwrap()),
                None => Num::Text(s.clone()),
            };
            assert!(n.is_float(), "{s}");
            assert_eq!(n.to_f16().unwrap().to_bits(), bits, "{s}");
        }
    }

    #[test]
    fn f64_and_nan_bits_round_trip() {
        for x in [0.1f64, -0.0, 1e300, 5e-324, std::f64::consts::PI] {
            let s = fmt_f64(x);
            assert_eq!(Num::Text(s).to_f64().unwrap().to_bits(), x.to_bits());
        }
        let odd = f64::from_bits(0x7ff0_0000_0000_0001);
        assert_eq!(fmt_f64(odd), "nan(0x7ff0000000000001)");
        assert_eq!(
            Num::NanBits(0x7ff0_0000_0000_0001)
                .to_f64()
                .unwrap()
                .to_bits(),
            odd.to_bits()
        );
        assert!(Num::NanBits(0x3f80_0000).to_f32().is_err());
        assert!(Num::NanBits(0x1_0000_0000).to_f32().is_err());
    }

    #[test]
    fn ints_are_checked() {
        assert_eq!(Num::Text("-7".into()).to_i64(), Ok(-7));
        assert!(Num::Text("1.0".into()).to_i64().is_err());
        assert!(Num::Text("300".into()).to_int_in(-128, 127, "i8").is_err());
        assert!(Num::Text("99999999999999999999".into()).to_i64().is_err());
        assert!(Num::Text("1e5x".into()).to_f32().is_err());
    }

    #[test]
    fn stats_are_short() {
        assert_eq!(fmt_stat(0.123456789), "0.1235");
        assert_eq!(fmt_stat(12345.678), "12350.0");
        assert_eq!(fmt_stat(-1.23456e-9), "-1.235e-9");
        assert_eq!(fmt_stat(0.0), "0.0");
        assert_eq!(fmt_stat(f64::NAN), "nan");
    }
}
