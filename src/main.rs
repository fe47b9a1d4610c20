#![deny(unsafe_code)]

use std::process::ExitCode;

use lmscope::cli::{self, Parsed};

/// The one place that sees both front ends: the command line is parsed,
/// then the workbench or the subcommand runs.
fn main() -> ExitCode {
    match cli::parse() {
        Parsed::Workbench(launch) => cli::finish(lmscope::ui::run(&launch)),
        Parsed::Command(cli::Command::Train(t)) if t.watched() => {
            cli::finish(cli::train::prepare(*t).and_then(lmscope::ui::training::run))
        }
        Parsed::Command(command) => cli::finish(cli::run_command(command)),
        Parsed::Exit(code) => code,
    }
}
