//! qopt as a library, for compilers that embed it (DESIGN.md §1).
//!
//! ```no_run
//! let mut model = qopt::load("model.onnx".as_ref())?;
//! let pipeline = qopt::Pipeline::parse("dce")?;
//! pipeline.run(&mut model.graph, &mut qopt::PassContext::new())?;
//! qopt::save(&model.graph, "out.onnx".as_ref())?;
//! # Ok::<(), qopt::Error>(())
//! ```

pub use qopt_calib as calib;
pub use qopt_interp as interp;
pub use qopt_ir as ir;
pub use qopt_onnx as onnx;
pub use qopt_pass as pass;
pub use qopt_passes as passes;

pub mod verify;

pub use qopt_ir::Graph;
pub use qopt_pass::{Instrumentation, PassContext, PassManager};

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the library's high-level API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {msg}")]
    Read { path: PathBuf, msg: String },
    #[error("{0}")]
    Parse(String),
    #[error("{path}: {msg}")]
    Write { path: PathBuf, msg: String },
    #[error("{0}")]
    Pipeline(#[from] qopt_pass::PipelineError),
    #[error("{0}")]
    Run(#[from] qopt_pass::manager::RunError),
    #[error("{0}")]
    Usage(String),
}

/// Model file formats, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Onnx,
    Qir,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format, Error> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("onnx") => Ok(Format::Onnx),
            Some(e) if e.eq_ignore_ascii_case("qir") => Ok(Format::Qir),
            _ => Err(Error::Usage(format!(
                "{}: unknown model format (expected a .onnx or .qir file)",
                path.display()
            ))),
        }
    }
}

/// A loaded model and the warnings its import produced.
pub struct Model {
    pub graph: Graph,
    pub warnings: Vec<String>,
}

/// Load a `.onnx` or `.qir` model.
pub fn load(path: &Path) -> Result<Model, Error> {
    let format = Format::of(path)?;
    let read_err = |msg: String| Error::Read {
        path: path.to_path_buf(),
        msg,
    };
    match format {
        Format::Onnx => {
            let imported = qopt_onnx::load(path).map_err(|e| read_err(e.to_string()))?;
            Ok(Model {
                graph: imported.graph,
                warnings: imported.warnings.iter().map(|w| w.to_string()).collect(),
            })
        }
        Format::Qir => {
            let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
            let graph = qopt_ir::text::parse(&text)
                .map_err(|e| Error::Parse(e.in_file(path.display().to_string()).to_string()))?;
            Ok(Model {
                graph,
                warnings: vec![],
            })
        }
    }
}

/// Save a model as `.onnx` or `.qir` (with blobs, so nothing is lost), atomically.
pub fn save(g: &Graph, path: &Path) -> Result<(), Error> {
    let write_err = |msg: String| Error::Write {
        path: path.to_path_buf(),
        msg,
    };
    match Format::of(path)? {
        Format::Onnx => qopt_onnx::save(g, path).map_err(|e| write_err(e.to_string())),
        Format::Qir => {
            let text = qopt_ir::text::print(g, &qopt_ir::text::PrintOptions { blobs: true });
            qopt_ir::fsutil::write_atomic(path, |w| w.write_all(text.as_bytes()))
                .map_err(|e| write_err(e.to_string()))
        }
    }
}

/// A parsed and resolved pipeline.
pub struct Pipeline {
    registry: qopt_pass::Registry,
    spec: qopt_pass::PipelineSpec,
}

impl Pipeline {
    /// Parse a pipeline against qopt's registry.
    pub fn parse(text: &str) -> Result<Pipeline, Error> {
        let registry = qopt_passes::registry();
        let spec = qopt_pass::pipeline::parse_and_resolve(text, &registry)?;
        Ok(Pipeline { registry, spec })
    }

    pub fn spec(&self) -> &qopt_pass::PipelineSpec {
        &self.spec
    }

    pub fn registry(&self) -> &qopt_pass::Registry {
        &self.registry
    }

    /// A pass manager for this pipeline, dumping graphs in the text format.
    pub fn manager(&self, instr: Instrumentation) -> Result<PassManager, Error> {
        for name in instr.names() {
            if self.registry.get(name).is_none() && self.registry.alias(name).is_none() {
                return Err(Error::Usage(format!(
                    "unknown pass '{name}' in an instrumentation option (qopt --list-passes lists them)"
                )));
            }
        }
        Ok(PassManager::new(&self.registry, &self.spec, instr)
            .map_err(Error::Usage)?
            .with_printer(|g: &Graph| g.to_string()))
    }

    /// Run with verification after every pass and no other instrumentation.
    pub fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<(), Error> {
        let mut pm = self.manager(Instrumentation {
            verify_each: true,
            ..Default::default()
        })?;
        pm.run(g, cx)?;
        Ok(())
    }
}
