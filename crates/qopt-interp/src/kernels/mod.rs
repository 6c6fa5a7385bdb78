//! Compute kernels. `scalar` code is the oracle that every SIMD path is tested against.

pub mod int8;
