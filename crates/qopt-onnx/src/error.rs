//! Import and export errors.
//!
//! Every message names the file, and where it applies the node, tensor or value, so
//! that the CLI can print one line that points the user at the problem (DESIGN.md §9).
//! `file` is the path given to [`crate::load`], or the label in
//! [`crate::ImportOptions::label`] for in-memory imports.

/// Why a model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: the file is empty, not an ONNX model")]
    Empty { file: String },
    #[error("{file}: not a valid ONNX model (truncated or corrupt protobuf): {msg}")]
    Decode { file: String, msg: String },
    /// A problem with the model as a whole (no graph, missing opset import, ...).
    #[error("{file}: {msg}")]
    Model { file: String, msg: String },
    /// A problem with one node; `node` describes it (`Conv node 'conv1'`).
    #[error("{file}: {node}: {msg}")]
    Node {
        file: String,
        node: String,
        msg: String,
    },
    /// A tensor (initializer, `Constant` value, tensor attribute) that cannot be decoded.
    #[error("{file}: tensor '{tensor}': {msg}")]
    Tensor {
        file: String,
        tensor: String,
        msg: String,
    },
    /// A node or graph output reads a value that no input, initializer or node defines.
    #[error("{file}: {user} reads value '{value}', which no input, initializer or node defines")]
    Undefined {
        file: String,
        user: String,
        value: String,
    },
}

/// Why a graph could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the graph has a cycle through {node}")]
    Cycle { node: String },
    /// A node that has no ONNX form at the graph's opset; `node` describes it.
    #[error("{node}: {msg}")]
    Node { node: String, msg: String },
    /// A problem with the graph as a whole (duplicate value names, untyped inputs, ...).
    #[error("{0}")]
    Graph(String),
    #[error("cannot encode the ONNX model: {0}")]
    Encode(#[source] protobuf::Error),
    #[error(
        "the model holds {bytes} bytes of tensor data, more than a 2 GiB protobuf file can; \
         save it with qopt_onnx::save, which writes the tensors to an external data file"
    )]
    TooLarge { bytes: u64 },
    #[error("{file}: cannot write: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}
