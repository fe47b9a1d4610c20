use std::process::ExitCode;

fn main() -> ExitCode {
    lmscope::cli::main()
}
