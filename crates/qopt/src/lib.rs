//! qopt
