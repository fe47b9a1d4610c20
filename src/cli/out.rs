//! Command output on stdout, with write errors returned instead of the
//! panic `println!` gives. Rust ignores SIGPIPE, so a reader that goes away
//! (`lmscope bias ... | head -1`) shows up as a `BrokenPipe` error here:
//! `finish` turns that into a quiet exit (code 141, as a tool killed by
//! SIGPIPE), and any other failure (a full disk) into one line.

use std::fmt;
use std::io::Write;

/// Writing to stdout failed.
#[derive(Debug)]
pub struct OutputError(pub std::io::Error);

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write output: {}", self.0)
    }
}

impl std::error::Error for OutputError {}

impl OutputError {
    /// The reader closed its end (`| head`): not worth a message.
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes formatted text to stdout.
pub fn write(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(OutputError)
}

/// Pushes out what stdout still buffers, so a failure is seen before exit
/// (the runtime's own flush at exit drops it silently).
pub fn flush() -> Result<(), OutputError> {
    std::io::stdout().lock().flush().map_err(OutputError)
}

/// `print!` that returns (with `?`) an `OutputError` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))?
    };
}

/// `println!` that returns (with `?`) an `OutputError` instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::out::write(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))?
    };
}
