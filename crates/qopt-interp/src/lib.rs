//! qopt's interpreters (DESIGN.md §7): an fp32 reference interpreter that runs any graph
//! of supported ops, and an INT8 interpreter that runs QDQ graphs in integer arithmetic.

pub mod kernels;
