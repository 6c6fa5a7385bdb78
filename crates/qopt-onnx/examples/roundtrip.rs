//! Import an ONNX model and export it again with no passes in between, so that
//! `tools/check_roundtrip.py` can compare the two in ONNX Runtime:
//!
//! ```text
//! cargo run -p qopt-onnx --example roundtrip -- IN.onnx OUT.onnx
//! python tools/check_roundtrip.py IN.onnx OUT.onnx --shape x=1,3,640,640
//! ```
//!
//! Import warnings go to stderr; any error is one line and exit code 1.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: roundtrip IN.onnx OUT.onnx");
        return ExitCode::from(2);
    };
    let m = match qopt_onnx::load(input) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for w in &m.warnings {
        eprintln!("warning: {w}");
    }
    if let Err(e) = qopt_onnx::save(&m.graph, output) {
        eprintln!("error: {output}: {e}");
        return ExitCode::from(1);
    }
    eprintln!(
        "{input} -> {output}: {} nodes, opset {:?}",
        m.graph.node_count(),
        m.graph.meta.onnx_opset()
    );
    ExitCode::SUCCESS
}
