//! qopt's interpreters (DESIGN.md §7): an fp32 reference interpreter that runs any graph
//! of supported ops, and an INT8 interpreter that runs QDQ graphs in integer arithmetic.
//!
//! The fp32 interpreter:
//! - [`Plan::new`] compiles a [`qopt_ir::Graph`] once: it rejects unsupported ops up front
//!   (one error naming every unsupported op type and its nodes), orders the nodes, fuses
//!   Conv+BatchNormalization+activation at plan time and plans when each value dies.
//! - [`Plan::run`] / [`Plan::run_positional`] execute it; [`Plan::run_with`] also shows every
//!   value to a hook as it is produced (calibration and `verify` read layer outputs this way).
//! - [`eval_node`] evaluates one op on constants (constant folding).
//!
//! The INT8 interpreter ([`int8`], [`QPlan`]) lowers a QDQ graph into integer kernels
//! (`kernels/int8/`) and runs the rest as the fp32 ops above.
//!
//! Ops live in [`ops`] (one file per op or family), kernels in [`kernels`].

pub mod error;
pub mod eval;
pub mod fusion;
pub mod int8;
pub mod kernels;
pub mod num;
pub mod ops;
pub mod plan;
pub mod pool;

pub use error::{InterpError, UnsupportedOp};
pub use eval::{eval_node, is_supported};
pub use int8::{QPlan, QPlanOptions};
pub use plan::{Plan, PlanInput, PlanOptions, ProfileEntry};
