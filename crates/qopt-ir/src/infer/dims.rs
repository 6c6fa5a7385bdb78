//! Arithmetic on dimensions that may be symbolic.
//!
//! A product of dims is kept as a coefficient times a multiset of symbols, so
//! that `N*16*W / (N*16)` cancels to `W` (Reshape's `-1`, Flatten). Anything
//! that does not cancel to a plain number or a single symbol is
//! [`Dim::Unknown`]: qopt does not invent derived symbol names (see `mod.rs`).

use crate::dim::{Dim, Shape};

/// `coef * syms[0] * syms[1] * ...` with `syms` sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Product {
    pub coef: u64,
    pub syms: Vec<String>,
}

impl Product {
    /// The product of dims; `None` when one is unknown (or the product overflows).
    pub fn of(dims: &[Dim]) -> Option<Product> {
        let mut coef: u64 = 1;
        let mut syms = Vec::new();
        for d in dims {
            match d {
                Dim::Known(n) => coef = coef.checked_mul(*n)?,
                Dim::Sym(s) => syms.push(s.clone()),
                Dim::Unknown => return None,
            }
        }
        if coef == 0 {
            // Zero elements whatever the symbols are.
            syms.clear();
        }
        syms.sort();
        Some(Product { coef, syms })
    }

    /// `self / other` when it divides exactly; `None` when it does not or is undecidable.
    pub fn div(&self, other: &Product) -> Option<Product> {
        if other.coef == 0 || !self.coef.is_multiple_of(other.coef) {
            return None;
        }
        let mut syms = self.syms.clone();
        for s in &other.syms {
            let i = syms.iter().position(|x| x == s)?;
            syms.remove(i);
        }
        Some(Product {
            coef: self.coef / other.coef,
            syms,
        })
    }

    /// As a single dim: a number, a lone symbol, or unknown.
    pub fn to_dim(&self) -> Dim {
        match (self.coef, self.syms.as_slice()) {
            (c, []) => Dim::Known(c),
            (1, [s]) => Dim::Sym(s.clone()),
            _ => Dim::Unknown,
        }
    }
}

/// The product of dims as one dim.
pub(crate) fn product(dims: &[Dim]) -> Dim {
    Product::of(dims).map_or(Dim::Unknown, |p| p.to_dim())
}

/// The sum of dims as one dim: known when all are, the one non-zero term when the
/// others are known zeros, unknown otherwise.
pub(crate) fn sum(dims: &[Dim]) -> Dim {
    let mut total: u64 = 0;
    let mut other: Option<&Dim> = None;
    for d in dims {
        match d {
            Dim::Known(n) => match total.checked_add(*n) {
                Some(t) => total = t,
                None => return Dim::Unknown,
            },
            d if other.is_none() => other = Some(d),
            _ => return Dim::Unknown,
        }
    }
    match other {
        None => Dim::Known(total),
        Some(d) if total == 0 => d.clone(),
        Some(_) => Dim::Unknown,
    }
}

/// Numpy multidirectional broadcast, with a message naming the shapes on failure.
pub(crate) fn broadcast(shapes: &[&Shape]) -> Result<Shape, String> {
    Shape::broadcast(shapes).ok_or_else(|| {
        let s: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
        format!("shapes {} cannot be broadcast together", s.join(", "))
    })
}

/// Unidirectional broadcast: `from` must broadcast to `to` (Gemm's C, PRelu's slope).
pub(crate) fn check_unidirectional(from: &Shape, to: &Shape) -> Result<(), String> {
    let bad = || format!("shape {from} cannot be broadcast to {to}");
    if from.rank() > to.rank() {
        return Err(bad());
    }
    let off = to.rank() - from.rank();
    for (i, d) in from.0.iter().enumerate() {
        if let (Dim::Known(a), Dim::Known(b)) = (d, &to.0[off + i])
            && *a != 1
            && a != b
        {
            return Err(bad());
        }
    }
    Ok(())
}

/// Whether two dims can be the same size (equal, or not both known).
pub(crate) fn compatible(a: &Dim, b: &Dim) -> bool {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => x == y,
        _ => true,
    }
}

/// The more precise of two dims that must be equal (`compatible` first).
pub(crate) fn unify(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(_), _) => a.clone(),
        (_, Dim::Known(_)) => b.clone(),
        (Dim::Sym(_), _) => a.clone(),
        _ => b.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Dim {
        Dim::Sym(x.into())
    }

    #[test]
    fn products_cancel_symbols() {
        let a = Product::of(&[s("N"), Dim::Known(16), Dim::Known(1), s("W")]).unwrap();
        let b = Product::of(&[s("N"), Dim::Known(16)]).unwrap();
        assert_eq!(a.div(&b).unwrap().to_dim(), s("W"));
        assert_eq!(b.div(&a), None);
        assert_eq!(product(&[s("N"), Dim::Known(2)]), Dim::Unknown);
        assert_eq!(product(&[s("N"), Dim::Known(0)]), Dim::Known(0));
        assert_eq!(product(&[Dim::Known(3), Dim::Unknown]), Dim::Unknown);
        assert_eq!(product(&[]), Dim::Known(1));
    }

    #[test]
    fn sums() {
        assert_eq!(sum(&[Dim::Known(2), Dim::Known(3)]), Dim::Known(5));
        assert_eq!(sum(&[Dim::Known(0), s("N")]), s("N"));
        assert_eq!(sum(&[Dim::Known(1), s("N")]), Dim::Unknown);
        assert_eq!(sum(&[s("N"), s("N")]), Dim::Unknown);
    }

    #[test]
    fn unidirectional() {
        let to = Shape(vec![s("N"), Dim::Known(3), Dim::Known(4)]);
        assert!(check_unidirectional(&Shape::known(&[3, 1]), &to).is_ok());
        assert!(check_unidirectional(&Shape::known(&[2, 4]), &to).is_err());
        assert!(check_unidirectional(&Shape::known(&[1, 1, 1, 1]), &to).is_err());
    }
}
