//! Ctrl-C for commands that stream: the signal sets a flag that the loop
//! reads between tokens, so output is never cut mid-line and the command
//! can say how it ended. The exit code is then 130 (128 + SIGINT), as a
//! shell reports for a program stopped by Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once SIGINT or SIGTERM has arrived.
#[derive(Clone)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for a loop below this layer to read.
    pub fn as_atomic(&self) -> &AtomicBool {
        &self.0
    }
}

/// From now on SIGINT and SIGTERM set the returned flag instead of ending
/// the process.
pub fn watch() -> std::io::Result<Flag> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    Ok(Flag(flag))
}

/// The command stopped early on a signal; its output is complete so far.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}
