//! Progress reporting: the library never prints; callers plug in a reporter (the CLI an
//! indicatif bar on a terminal and plain lines otherwise, tests nothing or a recorder).
//! Methods take `&self` and the trait is `Sync`, so samples processed in parallel can report.

/// Receives progress events. Every method has an empty default.
pub trait Progress: Sync {
    /// A phase begins (`"calibrating"`), with the number of steps when known.
    fn start(&self, _what: &str, _total: Option<u64>) {}
    /// `n` more steps are done.
    fn advance(&self, _n: u64) {}
    /// Something the user should know that does not stop the run (a skipped sample).
    fn warn(&self, _message: &str) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// A reporter that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
