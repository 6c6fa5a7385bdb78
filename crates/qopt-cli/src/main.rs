//! `qopt`: quantize ONNX models to INT8. See `qopt --help`.

mod app;
mod cmd;
mod error;
mod progress;

use clap::Parser;

fn main() {
    let cli = app::Cli::parse();
    if let Err(e) = cmd::dispatch(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
