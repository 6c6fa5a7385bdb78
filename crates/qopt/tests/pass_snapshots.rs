//! Snapshot tests for every pass (DESIGN.md §10), in the style of MLIR's
//! `-split-input-file` tests and Cranelift's filetests.
//!
//! Each file `testdata/passes/<pass>/<case>.qir` starts with a line
//! `# RUN: --passes=PIPELINE [--target=T] [--input-shape=NAME=D0,D1,...] [--OPTION[=VALUE]...]`
//! and holds one or more graphs separated by lines `# -----`. Other options are the
//! calibration options of the CLI (`--calib=random:4{seed=1}`, `--keep-fp32=PATTERN`, ...),
//! applied by `qopt::passes::calib_inputs::apply_option`, the function the CLI uses. A value
//! may hold spaces inside braces; `%S` in a value is the case file's folder (as in LLVM lit). Every graph is parsed, run through the
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
    /// Further `--name[=value]` options, for the pass context.
    options: Vec<(String, String)>,
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
        options: vec![],
    };
    let folder = path.parent().expect("case folder").display().to_string();
    let mut words = rest.split_whitespace();
    while let Some(w) = words.next() {
        let Some(opt) = w.strip_prefix("--") else {
            panic!(
                "{}: RUN option '{w}' does not start with --",
                path.display()
            );
        };
        let (name, value) = opt.split_once('=').unwrap_or((opt, ""));
        // A value may contain spaces inside {...}: take words until braces balance.
        let mut value = value.to_string();
        while value.matches('{').count() > value.matches('}').count() {
            match words.next() {
                Some(more) => {
                    value.push(' ');
                    value.push_str(more);
                }
                None => break,
            }
        }
        let value = value.replace("%S", &folder);
        match name {
            "passes" => run.passes = value,
            "target" => run.target = value,
            "input-shape" => {
                let (name, dims) = value.rsplit_once('=').expect("NAME=dims");
                let dims = dims
                    .split(',')
                    .map(|d| {
                        d.parse()
                            .map(Dim::Known)
                            .unwrap_or_else(|_| Dim::Sym(d.to_string()))
                    })
                    .collect();
                run.shapes.push((name.to_string(), dims));
            }
            _ => run.options.push((name.to_string(), value)),
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
    for (name, value) in &run.options {
        if let Err(e) = qopt::passes::calib_inputs::apply_option(&mut cx, name, value) {
            return format!("error: --{name}: {e}\n");
        }
    }
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
