//! qopt benches
