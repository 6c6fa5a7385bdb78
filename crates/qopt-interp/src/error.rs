//! Errors of the fp32 interpreter.
//!
//! Every error names what went wrong where: the node (by its description), the input (by its
//! name, with the expected and actual type), or the list of unsupported operators.

use std::fmt;

/// An operator type the interpreter cannot run, with the nodes that use it.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupportedOp {
    /// `Conv`, or `domain::OpType` outside the default domain.
    pub op_type: String,
    /// Descriptions of the nodes using it (`Foo node 'name'`).
    pub nodes: Vec<String>,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 5;
        let names: Vec<&str> = self.nodes.iter().take(SHOWN).map(String::as_str).collect();
        write!(f, "{} (used by {}", self.op_type, names.join(", "))?;
        if self.nodes.len() > SHOWN {
            write!(f, " and {} more", self.nodes.len() - SHOWN)?;
        }
        f.write_str(")")
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InterpError {
    /// Raised by `Plan::new` before anything runs.
    #[error("the interpreter does not support {}", list_unsupported(.0))]
    Unsupported(Vec<UnsupportedOp>),
    #[error("the graph has a cycle through {0}")]
    Cycle(String),
    #[error("graph output {0} is not produced by any node")]
    DanglingOutput(String),
    #[error("input '{name}': expected {expected}, got {got}")]
    InputMismatch {
        name: String,
        expected: String,
        got: String,
    },
    #[error("missing input '{0}'")]
    MissingInput(String),
    #[error("'{0}' is not an input of the graph (inputs: {1})")]
    UnknownInput(String, String),
    #[error("expected {expected} inputs, got {got}")]
    InputCount { expected: usize, got: usize },
    /// An operator failed at run time (bad shapes, bad attribute values).
    #[error("{node}: {msg}")]
    Node { node: String, msg: String },
    #[error("cannot start the thread pool: {0}")]
    ThreadPool(String),
    /// The int8 kernel family asked for cannot run here (`QOPT_KERNELS`).
    #[error("{0}")]
    Kernels(String),
}

fn list_unsupported(ops: &[UnsupportedOp]) -> String {
    ops.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The error an operator implementation returns; the caller adds the node it ran for.
#[derive(Clone, Debug, PartialEq)]
pub struct OpError(pub String);

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl OpError {
    pub fn at(self, node: impl Into<String>) -> InterpError {
        InterpError::Node {
            node: node.into(),
            msg: self.0,
        }
    }
}

/// `return Err(OpError(format!(...)))`.
macro_rules! bail {
    ($($t:tt)*) => { return Err($crate::error::OpError(format!($($t)*))) };
}
pub(crate) use bail;
