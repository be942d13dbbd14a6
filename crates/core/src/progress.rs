//! Progress of long work (scanning and decoding a series, resampling, decimating), told to
//! whoever listens: the tools draw a bar on a terminal; the core never draws or prints. With no
//! listener a task costs one atomic load per call.

use std::sync::OnceLock;

/// Receives the progress of one task at a time (tasks do not nest in ctprep's tools).
pub trait Listener: Send + Sync {
    /// A task starts: `what` is shown to the user, `total` counts its units (0 if unknown).
    fn start(&self, what: &str, total: u64);
    /// `n` more units are done (called from any thread).
    fn advance(&self, n: u64);
    /// The task ended, finished or not.
    fn finish(&self);
}

static LISTENER: OnceLock<Box<dyn Listener>> = OnceLock::new();

/// Install the process's listener (once; later calls are ignored).
pub fn listen(l: Box<dyn Listener>) {
    let _ = LISTENER.set(l);
}

/// A running task; dropping it finishes it. Its units are counted with [`advance`], from any
/// thread and any depth of the computation.
#[must_use = "the task finishes when this is dropped"]
pub struct Task;

/// Start a task of `total` units.
pub fn task(what: &str, total: u64) -> Task {
    if let Some(l) = LISTENER.get() {
        l.start(what, total);
    }
    Task
}

/// `n` more units of the running task are done.
pub fn advance(n: u64) {
    if let Some(l) = LISTENER.get() {
        l.advance(n);
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(l) = LISTENER.get() {
            l.finish();
        }
    }
}
