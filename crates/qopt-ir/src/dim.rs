//! Dimensions: known sizes, named symbols (`N`, `p2o.DynamicDimension.0`) and unknowns.
//!
//! Symbols survive import, shape inference and export, so a model with a
//! dynamic batch keeps it. Arithmetic on symbols is deliberately shallow: a
//! symbol combined with anything but 1 (broadcast) or itself becomes unknown.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Known(u64),
    Sym(String),
    Unknown,
}

impl Dim {
    pub fn known(&self) -> Option<u64> {
        match self {
            Dim::Known(n) => Some(*n),
            _ => None,
        }
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Dim::Known(_))
    }

    /// Numpy-style broadcast of two dims; `None` when they are known and incompatible.
    pub fn broadcast(&self, other: &Dim) -> Option<Dim> {
        match (self, other) {
            (Dim::Known(1), d) | (d, Dim::Known(1)) => Some(d.clone()),
            (Dim::Known(a), Dim::Known(b)) => (a == b).then_some(Dim::Known(*a)),
            (Dim::Sym(a), Dim::Sym(b)) if a == b => Some(self.clone()),
            // A symbol against a known size > 1: the size wins, as a valid model needs it.
            (Dim::Known(a), _) | (_, Dim::Known(a)) => Some(Dim::Known(*a)),
            _ => Some(Dim::Unknown),
        }
    }

    /// Product of two dims; unknown when it overflows or involves a symbol other than by 1.
    pub fn mul(&self, other: &Dim) -> Dim {
        match (self, other) {
            (Dim::Known(a), Dim::Known(b)) => a.checked_mul(*b).map_or(Dim::Unknown, Dim::Known),
            (Dim::Known(0), _) | (_, Dim::Known(0)) => Dim::Known(0),
            (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
            _ => Dim::Unknown,
        }
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Dim {
        Dim::Known(n)
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Known(n as u64)
    }
}

/// True when `s` can be printed without quotes in the text format.
pub fn is_plain_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Unknown => f.write_str("?"),
            // A symbol that looks like a number or is not a plain identifier is quoted.
            Dim::Sym(s) if is_plain_ident(s) && !s.starts_with(|c: char| c.is_ascii_digit()) => {
                f.write_str(s)
            }
            Dim::Sym(s) => write!(f, "{}", crate::text::quote(s)),
        }
    }
}

/// A shape: a list of dims. Unknown rank is represented by `Option<Shape>` at the use site.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn known(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::from(d)).collect())
    }

    pub fn scalar() -> Shape {
        Shape(vec![])
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// All dims as concrete sizes, if every one is known.
    pub fn as_known(&self) -> Option<Vec<usize>> {
        self.0
            .iter()
            .map(|d| d.known().map(|n| n as usize))
            .collect()
    }

    pub fn is_fully_known(&self) -> bool {
        self.0.iter().all(Dim::is_known)
    }

    /// Number of elements when every dim is known.
    /// Number of elements when every dim is known and the product fits in `usize`.
    pub fn numel(&self) -> Option<usize> {
        self.as_known()?
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// Numpy multidirectional broadcast of several shapes.
    pub fn broadcast(shapes: &[&Shape]) -> Option<Shape> {
        let rank = shapes.iter().map(|s| s.rank()).max().unwrap_or(0);
        let mut out = vec![Dim::Known(1); rank];
        for s in shapes {
            let off = rank - s.rank();
            for (i, d) in s.0.iter().enumerate() {
                out[off + i] = out[off + i].broadcast(d)?;
            }
        }
        Some(Shape(out))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl From<Vec<Dim>> for Shape {
    fn from(v: Vec<Dim>) -> Shape {
        Shape(v)
    }
}

/// Normalise a possibly negative axis against a rank; `None` when out of range.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        let a = Shape(vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Known(1)]);
        let b = Shape::known(&[1, 4]);
        let c = Shape::broadcast(&[&a, &b]).unwrap();
        assert_eq!(c.to_string(), "[N,3,4]");
        assert!(Shape::broadcast(&[&Shape::known(&[2]), &Shape::known(&[3])]).is_none());
        let n = Dim::Sym("N".into());
        assert_eq!(n.broadcast(&Dim::Sym("M".into())), Some(Dim::Unknown));
        assert_eq!(n.broadcast(&n), Some(n.clone()));
    }

    #[test]
    fn products_do_not_overflow() {
        // Regression: a model with absurd dims must not panic in debug builds.
        let big = Dim::Known(u64::MAX);
        assert_eq!(big.mul(&Dim::Known(2)), Dim::Unknown);
        assert_eq!(Dim::Sym("N".into()).mul(&Dim::Known(0)), Dim::Known(0));
        assert_eq!(Shape(vec![big.clone(), Dim::Known(2)]).numel(), None);
        assert_eq!(Shape::known(&[2, 3]).numel(), Some(6));
    }

    #[test]
    fn display_quotes_odd_symbols() {
        let s = Shape(vec![
            Dim::Sym("p2o.DynamicDimension.0".into()),
            Dim::Sym("batch size".into()),
            Dim::Unknown,
            Dim::Known(7),
        ]);
        assert_eq!(
            s.to_string(),
            r#"[p2o.DynamicDimension.0,"batch size",?,7]"#
        );
    }

    #[test]
    fn axes() {
        assert_eq!(normalize_axis(-1, 4), Some(3));
        assert_eq!(normalize_axis(4, 4), None);
        assert_eq!(normalize_axis(-5, 4), None);
    }
}
