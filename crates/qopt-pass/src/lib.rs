//! qopt-pass
