//! What a pass receives besides the graph (DESIGN.md §2): inputs only — options, the
//! target spec, the calibration data source, a progress reporter. Anything a pass
//! decides goes onto the graph, never into the context.
//!
//! Inputs are stored by type ([`PassContext::insert`] / [`PassContext::get`]) so that
//! this crate does not depend on the crates that define them (target specs live in
//! `qopt-passes`, calibration sources in `qopt-calib`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// Progress of long-running passes (calibration, EasyQuant). The CLI shows a bar on a
/// terminal and plain lines otherwise; libraries and tests use [`NoProgress`].
pub trait Progress: Send + Sync {
    fn begin(&self, _task: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn end(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

pub struct PassContext {
    inputs: HashMap<TypeId, Box<dyn Any + Send>>,
    pub progress: Arc<dyn Progress>,
    /// Worker threads for passes that compute (None: all cores).
    pub threads: Option<usize>,
    /// Emit explanatory notes (`--verbose`).
    pub verbose: bool,
    messages: Vec<Message>,
}

/// A warning or verbose note a pass emitted, with the pass that emitted it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub pass: String,
    pub warning: bool,
    pub text: String,
}

impl Default for PassContext {
    fn default() -> Self {
        PassContext {
            inputs: HashMap::new(),
            progress: Arc::new(NoProgress),
            threads: None,
            verbose: false,
            messages: Vec::new(),
        }
    }
}

impl PassContext {
    pub fn new() -> PassContext {
        PassContext::default()
    }

    /// Provide an input of type `T` (replacing any earlier one).
    pub fn insert<T: Any + Send>(&mut self, v: T) {
        self.inputs.insert(TypeId::of::<T>(), Box::new(v));
    }

    pub fn get<T: Any + Send>(&self) -> Option<&T> {
        self.inputs
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref())
    }

    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.inputs
            .get_mut(&TypeId::of::<T>())
            .and_then(|b| b.downcast_mut())
    }

    pub fn remove<T: Any + Send>(&mut self) -> Option<T> {
        self.inputs
            .remove(&TypeId::of::<T>())
            .and_then(|b| b.downcast().ok())
            .map(|b| *b)
    }

    /// Record a warning (shown to the user whatever the verbosity).
    pub fn warn(&mut self, pass: &str, text: impl Into<String>) {
        self.messages.push(Message {
            pass: pass.to_string(),
            warning: true,
            text: text.into(),
        });
    }

    /// Record a note shown with `--verbose`.
    pub fn note(&mut self, pass: &str, text: impl Into<String>) {
        if self.verbose {
            self.messages.push(Message {
                pass: pass.to_string(),
                warning: false,
                text: text.into(),
            });
        }
    }

    /// Messages recorded so far, removed from the context.
    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Target(&'static str);

    #[test]
    fn typed_inputs() {
        let mut cx = PassContext::new();
        assert!(cx.get::<Target>().is_none());
        cx.insert(Target("tflite"));
        assert_eq!(cx.get::<Target>(), Some(&Target("tflite")));
        cx.get_mut::<Target>().unwrap().0 = "tensorrt";
        assert_eq!(cx.remove::<Target>(), Some(Target("tensorrt")));
    }

    #[test]
    fn notes_only_when_verbose() {
        let mut cx = PassContext::new();
        cx.note("dce", "hidden");
        cx.warn("dce", "shown");
        cx.verbose = true;
        cx.note("dce", "now shown");
        let m = cx.take_messages();
        assert_eq!(m.len(), 2);
        assert!(m[0].warning && !m[1].warning);
        assert!(cx.messages().is_empty());
    }
}
