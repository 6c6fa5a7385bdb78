//! qopt-passes
