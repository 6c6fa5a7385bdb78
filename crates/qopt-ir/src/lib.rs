//! qopt's graph IR.
//!
//! A [`Graph`] of [`Node`]s on a petgraph `StableDiGraph`; each node has an
//! [`Op`] (one table of typed operators, [`op`]) and named output values that
//! carry a type ([`TypeInfo`]) and [`Annotations`] (calibrated ranges,
//! quantization parameters). Constants hold [`Tensor`]s on ndarray.
//! The graph prints to and parses from the `.qir` text format ([`text`]),
//! checks its own invariants ([`verify()`]) and infers shapes ([`infer`]).

pub mod annot;
pub mod attr;
pub mod dim;
pub mod dtype;
pub mod fsutil;
pub mod graph;
pub mod infer;
pub mod observer;
pub mod op;
pub mod tensor;
pub mod text;
pub mod verify;

pub use annot::{Annotations, QParams, Range};
pub use attr::{Attr, AttrValue};
pub use dim::{Dim, Shape, normalize_axis};
pub use dtype::DType;
pub use graph::{Edge, Graph, ModelMeta, Node, NodeId, TypeInfo, ValueId, ValueInfo};
pub use infer::{InferError, InferReport, infer_node, infer_shapes, pin_input_shapes};
pub use observer::{EmaSums, ExactSum, Histogram, ObserverState};
pub use op::{AttrError, Custom, Op};
pub use tensor::{Element, Stats, Tensor};
pub use verify::{VerifyError, verify};
