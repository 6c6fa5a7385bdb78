//! `Einsum`: output shape from the equation (`einsumShapeInference` in
//! math/defs.cc, numpy.einsum semantics).
//!
//! Each input term names its axes with letters, optionally with one `...` for
//! broadcast dims. The output is the explicit term after `->`, or in implicit
//! mode the `...` dims followed by the letters used exactly once, in character
//! order (uppercase before lowercase, as ONNX's and numpy's implementations
//! order them). A letter's size is shared by every axis it names (a size of 1
//! broadcasts); the `...` dims broadcast across inputs.

use super::InferError;
use super::ctx::{Ctx, Out, ty};
use super::dims::broadcast;
use crate::dim::{Dim, Shape};
use std::collections::BTreeMap;

struct Term {
    letters: Vec<char>,
    /// Position of `...` among the letters, if present.
    ellipsis: Option<usize>,
}

fn parse_term(cx: &Ctx, s: &str) -> Result<Term, InferError> {
    let mut letters = Vec::new();
    let mut ellipsis = None;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("...") {
            if ellipsis.is_some() {
                return Err(cx.err(format!("equation term '{s}' has two '...'")));
            }
            ellipsis = Some(letters.len());
            rest = &rest[3..];
        } else if c.is_ascii_alphabetic() {
            letters.push(c);
            rest = &rest[1..];
        } else {
            return Err(cx.err(format!(
                "equation term '{s}' has the character '{c}'; only letters and '...' are allowed"
            )));
        }
    }
    Ok(Term { letters, ellipsis })
}

pub(crate) fn einsum(cx: &Ctx, equation: &str) -> Out {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<Term> = lhs
        .split(',')
        .map(|t| parse_term(cx, t))
        .collect::<Result<_, _>>()?;
    let n_in = cx.n_inputs();
    if terms.len() != n_in {
        return Err(cx.err(format!(
            "equation '{equation}' has {} input terms for {n_in} inputs",
            terms.len()
        )));
    }
    let mut dtype = None;
    let mut sizes: BTreeMap<char, Dim> = BTreeMap::new();
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    let mut ell: Vec<Shape> = Vec::new();
    let mut all_known = true;
    for (i, t) in terms.iter().enumerate() {
        let ti = cx.req(i, "Inputs")?;
        dtype = dtype.or(ti.dtype);
        for &c in &t.letters {
            *counts.entry(c).or_default() += 1;
        }
        let Some(s) = &ti.shape else {
            all_known = false;
            continue;
        };
        let n_ell = match t.ellipsis {
            None if s.rank() != t.letters.len() => {
                return Err(cx.err(format!(
                    "input {i} has shape {s} but term '{}' names {} axes",
                    t.letters.iter().collect::<String>(),
                    t.letters.len()
                )));
            }
            None => 0,
            Some(_) if s.rank() < t.letters.len() => {
                return Err(cx.err(format!(
                    "input {i} has shape {s}, fewer axes than its term names"
                )));
            }
            Some(_) => s.rank() - t.letters.len(),
        };
        let at = t.ellipsis.unwrap_or(t.letters.len());
        ell.push(Shape(s.0[at..at + n_ell].to_vec()));
        for (j, &c) in t.letters.iter().enumerate() {
            let d = &s.0[if j < at { j } else { j + n_ell }];
            let merged = match sizes.get(&c) {
                None => d.clone(),
                Some(prev) => prev
                    .broadcast(d)
                    .ok_or_else(|| cx.err(format!("label '{c}' has sizes {prev} and {d}")))?,
            };
            sizes.insert(c, merged);
        }
    }
    let ell_shape = if all_known {
        let refs: Vec<&Shape> = ell.iter().collect();
        Some(broadcast(&refs).map_err(|m| cx.err(format!("'...' dims: {m}")))?)
    } else {
        None
    };
    let out_term = match rhs {
        Some(r) => {
            let t = parse_term(cx, r)?;
            for &c in &t.letters {
                if !counts.contains_key(&c) {
                    return Err(cx.err(format!("output label '{c}' does not appear in the inputs")));
                }
            }
            t
        }
        None => Term {
            letters: counts
                .iter()
                .filter(|(_, n)| **n == 1)
                .map(|(c, _)| *c)
                .collect(),
            ellipsis: Some(0),
        },
    };
    let has_ellipsis_input = terms.iter().any(|t| t.ellipsis.is_some());
    let shape = match (&ell_shape, out_term.ellipsis) {
        (None, Some(_)) if has_ellipsis_input => None,
        _ => {
            let mut d: Vec<Dim> = out_term
                .letters
                .iter()
                .map(|c| sizes.get(c).cloned().unwrap_or(Dim::Unknown))
                .collect();
            if let Some(at) = out_term.ellipsis {
                let e = ell_shape.map(|s| s.0).unwrap_or_default();
                d.splice(at..at, e);
            }
            Some(Shape(d))
        }
    };
    Ok(vec![ty(dtype, shape)])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;

    fn es(eq: &str, inputs: &[&[crate::dim::Dim]]) -> Result<String, String> {
        let mut t = T::new();
        let ins: Vec<_> = inputs
            .iter()
            .enumerate()
            .map(|(i, d)| t.input(&format!("x{i}"), DType::F32, d))
            .collect();
        let y = t.named(
            "es",
            op::Einsum {
                equation: eq.into(),
            },
            &ins,
        );
        match super::super::infer_shapes(&mut t.g) {
            Ok(_) => Ok(t.ty(y)),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn einsum_shapes() {
        // numpy.einsum results (the ONNX backend tests test_einsum_* use these equations):
        // batch matmul 'bij,bjk->bik' [5,2,3] [5,3,4] -> [5,2,4]; transpose 'ij->ji';
        // sum 'ij->i'; implicit 'ij,jk' -> 'ik'; inner product 'i,i' -> scalar;
        // ellipsis '...ii->...i' on [3,5,5] -> [3,5].
        assert_eq!(
            es("bij,bjk->bik", &[&[k(5), k(2), k(3)], &[k(5), k(3), k(4)]]).unwrap(),
            "f32[5,2,4]"
        );
        assert_eq!(es("ij->ji", &[&[k(3), k(4)]]).unwrap(), "f32[4,3]");
        assert_eq!(es("ij->i", &[&[n(), k(4)]]).unwrap(), "f32[N]");
        assert_eq!(
            es("ij,jk", &[&[k(2), k(3)], &[k(3), k(4)]]).unwrap(),
            "f32[2,4]"
        );
        assert_eq!(es("i,i", &[&[k(5)], &[k(5)]]).unwrap(), "f32[]");
        assert_eq!(
            es("...ii ->...i", &[&[k(3), k(5), k(5)]]).unwrap(),
            "f32[3,5]"
        );
        assert_eq!(
            es("...ij,...jk->...ik", &[&[n(), k(2), k(3)], &[k(3), k(4)]]).unwrap(),
            "f32[N,2,4]"
        );
    }

    #[test]
    fn einsum_errors() {
        assert!(
            es("ij,jk->ik", &[&[k(2), k(3)], &[k(4), k(5)]])
                .unwrap_err()
                .contains("label 'j' has sizes 3 and 4")
        );
        assert!(
            es("ijk->i", &[&[k(2), k(3)]])
                .unwrap_err()
                .contains("names 3 axes")
        );
        assert!(
            es("ij->z", &[&[k(2), k(3)]])
                .unwrap_err()
                .contains("output label 'z'")
        );
        assert!(
            es("ij,jk->ik", &[&[k(2), k(3)]])
                .unwrap_err()
                .contains("2 input terms for 1 inputs")
        );
        assert!(
            es("i1->i", &[&[k(2)]])
                .unwrap_err()
                .contains("character '1'")
        );
    }
}
