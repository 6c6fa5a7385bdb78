//! qopt's passes, one file each, and [`registry()`]: the table of every pass with its
//! name, summary and options (DESIGN.md §4).

pub mod dce;
pub mod shape_infer;
pub mod target;

/// The `--calib SOURCE` argument, as given; the calibration passes interpret it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibSourceArg(pub String);

use qopt_pass::{PassInfo, Registry};

/// Every registered pass and alias.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(PassInfo {
        name: "dce",
        summary: "remove nodes that no graph output depends on",
        options: &[],
        create: |_| Ok(Box::new(dce::Dce)),
    });
    r.register(PassInfo {
        name: "shape-infer",
        summary: "infer every value's element type and shape (symbolic dims carried through)",
        options: &[],
        create: |_| Ok(Box::new(shape_infer::ShapeInfer)),
    });
    r
}
