//! qopt's shape inference on the real models against ONNX's and ONNX Runtime's shapes.
//!
//! `testdata/infer/real_models.json` is written by `tools/gen_infer_reference.py`: for each real
//! model, the types `onnx.shape_inference.infer_shapes(strict_mode=True, data_prop=True)` gives
//! every value with the inputs pinned (`pinned`) and as shipped (`symbolic`), and the shapes
//! ONNX Runtime actually produces for the pinned input (`runtime`), which the script has checked
//! against ONNX's inference.
//!
//! With pinned inputs, every dim ONNX knows must be qopt's too, every dim qopt knows must be
//! ONNX Runtime's, and (on these models) qopt must know every shape completely, including the
//! ones ONNX leaves open (paddle2onnx's `Shape -> Cast -> Slice -> Concat -> Reshape` chains).
//! With symbolic inputs, qopt must agree with ONNX on every known dim and carry the input
//! symbols (`p2o.DynamicDimension.0`, `N`) wherever ONNX does.
//!
//! The models live outside the repository: a missing one is skipped with a `SKIP:` line.

use qopt_ir::{Dim, Graph, TypeInfo, infer_shapes, pin_input_shapes};
use qopt_onnx::testing::{real_models, workspace_root};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;

fn fixture() -> Value {
    let p = workspace_root().join("testdata/infer/real_models.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One dim of the fixture: a size, a symbol name, or null.
#[derive(Debug, PartialEq)]
enum RefDim {
    Known(u64),
    Sym(String),
    Open,
}

fn ref_dims(v: &Value) -> Option<Vec<RefDim>> {
    let a = v.as_array()?;
    Some(
        a.iter()
            .map(|d| match d {
                Value::Number(n) => RefDim::Known(n.as_u64().expect("a size")),
                Value::String(s) => RefDim::Sym(s.clone()),
                _ => RefDim::Open,
            })
            .collect(),
    )
}

fn show(t: &TypeInfo) -> String {
    qopt_ir::infer::type_string(t)
}

#[derive(Default)]
struct Tally {
    values: usize,
    /// Values whose every dim ONNX knows, and qopt matches.
    onnx_known_matched: usize,
    /// Values ONNX leaves (partly) open that qopt knows completely, checked against ORT.
    beyond_onnx: usize,
    /// Values qopt leaves (partly) open.
    open: Vec<String>,
    errors: Vec<String>,
}

fn types_by_name(g: &Graph) -> HashMap<String, TypeInfo> {
    let mut m = HashMap::new();
    for n in g.node_ids() {
        for v in &g.node(n).outputs {
            m.insert(v.name.clone(), v.ty.clone());
        }
    }
    m
}

fn check_pinned(name: &str, model: &Value, g: &Graph) -> Tally {
    let types = types_by_name(g);
    let runtime = model["runtime"].as_object().expect("runtime");
    let mut t = Tally::default();
    for (v, want) in model["pinned"].as_object().expect("pinned") {
        t.values += 1;
        let Some(got) = types.get(v) else {
            t.errors
                .push(format!("{name}: value '{v}' is not in the imported graph"));
            continue;
        };
        let want_dtype = want["dtype"].as_str().unwrap_or("?");
        if got.dtype.map(|d| d.name()) != Some(want_dtype) {
            t.errors.push(format!(
                "{name}: '{v}': qopt {} vs ONNX dtype {want_dtype}",
                show(got)
            ));
        }
        let onnx = ref_dims(&want["shape"]);
        let ort: Option<Vec<u64>> = runtime.get(v).and_then(|r| {
            r["shape"]
                .as_array()
                .map(|a| a.iter().map(|d| d.as_u64().expect("size")).collect())
        });
        let Some(mine) = &got.shape else {
            t.open.push(format!(
                "'{v}': qopt {} (ONNX {})",
                show(got),
                want["shape"]
            ));
            continue;
        };
        // Against ONNX: every dim ONNX knows.
        if let Some(onnx) = &onnx {
            if onnx.len() != mine.rank() {
                t.errors.push(format!(
                    "{name}: '{v}': qopt {} vs ONNX {}",
                    show(got),
                    want["shape"]
                ));
                continue;
            }
            for (a, b) in mine.0.iter().zip(onnx) {
                if let RefDim::Known(k) = b
                    && *a != Dim::Known(*k)
                {
                    t.errors.push(format!(
                        "{name}: '{v}': qopt {} vs ONNX {}",
                        show(got),
                        want["shape"]
                    ));
                    break;
                }
            }
        }
        // Against ONNX Runtime: every dim qopt knows.
        if let Some(ort) = &ort {
            let agrees = ort.len() == mine.rank()
                && mine
                    .0
                    .iter()
                    .zip(ort)
                    .all(|(a, b)| a.known().is_none_or(|k| k == *b));
            if !agrees {
                t.errors.push(format!(
                    "{name}: '{v}': qopt {} vs ONNX Runtime {ort:?}",
                    show(got)
                ));
                continue;
            }
        }
        let onnx_full = onnx
            .as_ref()
            .is_some_and(|o| o.iter().all(|d| matches!(d, RefDim::Known(_))));
        if !mine.is_fully_known() {
            t.open.push(format!(
                "'{v}': qopt {} (ONNX {})",
                show(got),
                want["shape"]
            ));
        } else if onnx_full {
            t.onnx_known_matched += 1;
        } else if ort.is_some() {
            t.beyond_onnx += 1;
        }
    }
    t
}

fn check_symbolic(name: &str, model: &Value, g: &Graph) -> Tally {
    let types = types_by_name(g);
    let mut t = Tally::default();
    for (v, want) in model["symbolic"].as_object().expect("symbolic") {
        t.values += 1;
        let Some(got) = types.get(v) else {
            t.errors
                .push(format!("{name}: value '{v}' is not in the imported graph"));
            continue;
        };
        let Some(onnx) = ref_dims(&want["shape"]) else {
            continue;
        };
        let Some(mine) = &got.shape else {
            t.open.push(format!(
                "'{v}': qopt {} (ONNX {})",
                show(got),
                want["shape"]
            ));
            continue;
        };
        if mine.rank() != onnx.len() {
            t.errors.push(format!(
                "{name}: '{v}': qopt {} vs ONNX {}",
                show(got),
                want["shape"]
            ));
            continue;
        }
        let mut less = false;
        for (a, b) in mine.0.iter().zip(&onnx) {
            match (a, b) {
                (Dim::Known(x), RefDim::Known(y)) if x != y => {
                    t.errors.push(format!(
                        "{name}: '{v}': qopt {} vs ONNX {}",
                        show(got),
                        want["shape"]
                    ));
                }
                (Dim::Known(_), _) => {}
                (_, RefDim::Known(_)) => less = true,
                // ONNX's own derived symbols (`unk__N`) say nothing; an input's symbol must stay.
                (Dim::Sym(x), RefDim::Sym(y)) if x == y || y.starts_with("unk__") => {}
                (_, RefDim::Sym(y)) if !y.starts_with("unk__") => less = true,
                _ => {}
            }
        }
        if less {
            t.open.push(format!(
                "'{v}': qopt {} (ONNX {})",
                show(got),
                want["shape"]
            ));
        } else {
            t.onnx_known_matched += 1;
        }
    }
    t
}

#[test]
fn inferred_shapes_match_onnx_and_onnx_runtime() {
    let fx = fixture();
    let models = fx["models"].as_object().expect("models");
    let mut report = String::new();
    let mut errors = Vec::new();
    let mut checked = 0;
    for rm in real_models() {
        let Some(model) = models.get(&rm.name) else {
            eprintln!(
                "SKIP: {} has no reference in testdata/infer/real_models.json",
                rm.name
            );
            continue;
        };
        let size = std::fs::metadata(&rm.path).map(|m| m.len()).unwrap_or(0);
        if Some(size) != model["file_size"].as_u64() {
            eprintln!(
                "SKIP: {} is {size} bytes, the reference was made from a {}-byte file \
                 (rerun tools/gen_infer_reference.py)",
                rm.path.display(),
                model["file_size"]
            );
            continue;
        }
        let load = || {
            qopt_onnx::load(&rm.path)
                .unwrap_or_else(|e| panic!("{e}"))
                .graph
        };

        // Pinned inputs.
        let mut g = load();
        let pins: Vec<(String, Vec<Dim>)> = model["input_shapes"]
            .as_object()
            .expect("input_shapes")
            .iter()
            .map(|(k, v)| {
                let dims = v.as_array().expect("dims").iter();
                (
                    k.clone(),
                    dims.map(|d| Dim::Known(d.as_u64().expect("size")))
                        .collect(),
                )
            })
            .collect();
        pin_input_shapes(&mut g, &pins).unwrap_or_else(|e| panic!("{}: {e}", rm.name));
        let rep = infer_shapes(&mut g).unwrap_or_else(|e| panic!("{}: {e}", rm.name));
        assert!(rep.unknown.is_empty(), "{}: {rep}", rm.name);
        let p = check_pinned(&rm.name, model, &g);
        writeln!(
            report,
            "{:34} pinned:   {:4} values; {:4} as ONNX infers them, {:3} more that ONNX leaves \
             open (= ONNX Runtime), {:3} left open by qopt",
            rm.name,
            p.values,
            p.onnx_known_matched,
            p.beyond_onnx,
            p.open.len()
        )
        .unwrap();
        errors.extend(p.errors);
        errors.extend(
            p.open
                .iter()
                .map(|o| format!("{}: pinned: left open: {o}", rm.name)),
        );

        // As shipped, with symbolic dims.
        let mut g = load();
        infer_shapes(&mut g).unwrap_or_else(|e| panic!("{}: {e}", rm.name));
        let s = check_symbolic(&rm.name, model, &g);
        writeln!(
            report,
            "{:34} symbolic: {:4} values; {:4} at least as precise as ONNX, {:3} less precise \
             (ONNX has no shape for the rest)",
            rm.name,
            s.values,
            s.onnx_known_matched,
            s.open.len()
        )
        .unwrap();
        errors.extend(s.errors);
        errors.extend(
            s.open
                .iter()
                .map(|o| format!("{}: symbolic: less precise than ONNX: {o}", rm.name)),
        );
        checked += 1;
    }
    eprint!("{report}");
    assert!(
        errors.is_empty(),
        "{} problems:\n{}",
        errors.len(),
        errors.join("\n")
    );
    if checked == 0 {
        eprintln!("SKIP: no real model present; shape inference was not compared");
    }
}
