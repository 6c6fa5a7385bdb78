//! Snapshot tests for every pass (DESIGN.md §10), in the style of MLIR's
//! `-split-input-file` tests and Cranelift's filetests.
//!
//! Each file `testdata/passes/<pass>/<case>.qir` starts with a line
//! `# RUN: --passes=PIPELINE [--target=T] [--input-shape NAME=D0,D1,...]` and holds one or
//! more graphs separated by lines `# -----`. Every graph is parsed, run through the
//! pipeline and printed; the text (or `error: ...` when the pipeline fails) is compared
//! with the insta snapshot `testdata/passes/<pass>/snapshots/<case>@<n>.snap`.
//! Adding a case needs no Rust code. Review changes with `cargo insta review`; accept
//! new ones with `INSTA_UPDATE=always cargo test -p qopt --test pass_snapshots`.

use qopt::ir::Dim;
use qopt::{PassContext, Pipeline};
use std::path::{Path, PathBuf};

struct RunLine {
    passes: String,
    target: String,
    shapes: Vec<(String, Vec<Dim>)>,
}

fn parse_run_line(path: &Path, line: &str) -> RunLine {
    let rest = line.strip_prefix("# RUN:").unwrap_or_else(|| {
        panic!(
            "{}: first line must be '# RUN: --passes=...'",
            path.display()
        )
    });
    let mut run = RunLine {
        passes: String::new(),
        target: "onnxruntime".into(),
        shapes: vec![],
    };
    let mut words = rest.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if let Some(p) = w.strip_prefix("--passes=") {
            // A pipeline may contain spaces inside {...}: take words until braces balance.
            let mut p = p.to_string();
            while p.matches('{').count() > p.matches('}').count() {
                match words.next() {
                    Some(more) => {
                        p.push(' ');
                        p.push_str(more);
                    }
                    None => break,
                }
            }
            run.passes = p;
        } else if let Some(t) = w.strip_prefix("--target=") {
            run.target = t.to_string();
        } else if let Some(s) = w.strip_prefix("--input-shape=") {
            let (name, dims) = s.rsplit_once('=').expect("NAME=dims");
            let dims = dims
                .split(',')
                .map(|d| {
                    d.parse()
                        .map(Dim::Known)
                        .unwrap_or_else(|_| Dim::Sym(d.to_string()))
                })
                .collect();
            run.shapes.push((name.to_string(), dims));
        } else {
            panic!("{}: unknown RUN option '{w}'", path.display());
        }
    }
    assert!(
        !run.passes.is_empty(),
        "{}: RUN line has no --passes=",
        path.display()
    );
    run
}

/// Split a case file at `# -----` lines, keeping line numbers for error messages.
fn split_cases(text: &str) -> Vec<(usize, String)> {
    let mut cases = vec![(1usize, String::new())];
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("# -----") {
            cases.push((i + 2, String::new()));
        } else {
            let c = &mut cases.last_mut().expect("one case").1;
            c.push_str(line);
            c.push('\n');
        }
    }
    cases.retain(|(_, c)| {
        c.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    cases
}

fn run_case(path: &Path, run: &RunLine, first_line: usize, src: &str) -> String {
    let mut g = match qopt::ir::text::parse(src) {
        Ok(g) => g,
        Err(e) => panic!(
            "{}: case at line {first_line} does not parse:\n{}",
            path.display(),
            e.in_file(path.display().to_string())
        ),
    };
    if !run.shapes.is_empty()
        && let Err(e) = qopt::ir::infer::pin_input_shapes(&mut g, &run.shapes)
    {
        return format!("error: --input-shape: {e}\n");
    }
    let pipeline = match Pipeline::parse(&run.passes) {
        Ok(p) => p,
        Err(e) => return format!("error: {e}\n"),
    };
    let mut cx = PassContext::new();
    cx.insert(qopt::passes::target::Target::from_name(&run.target).expect("known target"));
    match pipeline.run(&mut g, &mut cx) {
        Ok(()) => g.to_string(),
        Err(e) => format!("error: {e}\n"),
    }
}

fn case_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    for dir in std::fs::read_dir(root).expect("testdata/passes") {
        let dir = dir.expect("dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("pass folder") {
            let f = f.expect("dir entry").path();
            if f.extension().is_some_and(|e| e == "qir") {
                files.push(f);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn pass_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/passes");
    let files = case_files(&root);
    assert!(!files.is_empty(), "no cases under {}", root.display());
    let mut failures = vec![];
    let mut count = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read case file");
        let run = parse_run_line(path, text.lines().next().unwrap_or(""));
        let stem = path
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        for (i, (line, src)) in split_cases(&text).into_iter().enumerate() {
            count += 1;
            let out = run_case(path, &run, line, &src);
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path(path.parent().expect("folder").join("snapshots"));
            settings.set_prepend_module_to_snapshot(false);
            settings.set_input_file(path);
            settings.set_description(format!(
                "{} (case {i}, line {line})",
                text.lines().next().unwrap_or("")
            ));
            settings.set_omit_expression(true);
            let name = format!("{stem}@{i}");
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                settings.bind(|| insta::assert_snapshot!(name.clone(), out));
            }));
            if r.is_err() {
                failures.push(format!("{}:{line} ({name})", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} snapshot cases differ:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    eprintln!("{count} snapshot cases checked");
}
