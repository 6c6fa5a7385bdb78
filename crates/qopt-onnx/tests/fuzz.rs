//! Property tests of the loader on bad bytes: arbitrary bytes, and committed and real models
//! with bytes flipped, inserted, deleted or cut off. The importer must never panic; when it
//! accepts a model, export must not panic either, and what export writes must import again to
//! the same graph.
//!
//! Long runs: `QOPT_FUZZ_CASES=100000 cargo test -p qopt-onnx --release
//! --test fuzz` runs a long campaign. Inputs that found bugs are kept in `testdata/fuzz/onnx/`
//! and replayed by `regression_corpus` (see the README there).

use proptest::prelude::*;
use qopt_onnx::testing::{graph_diff, real_models, workspace_root};
use qopt_onnx::{ExportOptions, ImportOptions, export_bytes, import};
use std::path::PathBuf;
use std::sync::OnceLock;

fn opts() -> ImportOptions {
    ImportOptions {
        // External data of the committed models resolves; anything else is refused cleanly.
        base_dir: Some(workspace_root().join("testdata/onnx")),
        label: Some("fuzz.onnx".into()),
    }
}

/// Import, and for an accepted model check export -> import gives the same graph.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(a) = import(bytes, opts()) else {
        return Ok(());
    };
    let Ok(out) = export_bytes(&a.graph, ExportOptions::default()) else {
        return Ok(());
    };
    let b = import(&out, opts()).map_err(|e| {
        TestCaseError::fail(format!("export of an accepted model does not import: {e}"))
    })?;
    if let Some(d) = graph_diff(&a.graph, &b.graph) {
        return Err(TestCaseError::fail(format!("round trip differs: {d}")));
    }
    Ok(())
}

fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = workspace_root().join("testdata/onnx");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
            .collect();
        paths.sort();
        // The smallest real model keeps each case fast; the others are too slow to mutate often.
        paths.extend(
            real_models()
                .into_iter()
                .filter(|m| m.name == "ppocr/cls" || m.name == "shared/mnist_cnn_bn")
                .map(|m| m.path),
        );
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        1 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        let n = b.len();
        match *m {
            Mutation::Set(p, v) => b[p % n] = v,
            Mutation::Insert(p, v) => b.insert(p % (n + 1), v),
            Mutation::Delete(p) => {
                b.remove(p % n);
            }
            Mutation::Truncate(p) => b.truncate(p % n),
        }
    }
    b
}

fn cases() -> u32 {
    std::env::var("QOPT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_models_never_panic(
        seed in any::<prop::sample::Index>(),
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let s = seeds();
        let bytes = apply(s[seed.index(s.len())].clone(), &muts);
        check(&bytes)?;
    }
}

/// Inputs that once found a bug: each is refused with an error (a file named `ok_*` must be
/// accepted instead), and none panics.
#[test]
fn regression_corpus() {
    let dir = workspace_root().join("testdata/fuzz/onnx");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for p in paths {
        let bytes = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let r = import(&bytes, opts());
        if name.starts_with("ok_") {
            let m = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            check(&bytes).unwrap_or_else(|e| panic!("{name}: {e} ({:?})", m.warnings));
        } else {
            let e = r.err().unwrap_or_else(|| panic!("{name} was accepted"));
            eprintln!("{name}: {e}");
        }
    }
}
