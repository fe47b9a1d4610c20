//! Bad inputs from a survey of the command line: each gives one clear line
//! and a non-zero exit (a closed pipe: a quiet exit), never a panic.

mod common;

use std::process::{Command, Output, Stdio};

use common::{assert_clean_error, lmscope, model_path, stderr, stdout};

fn model() -> &'static str {
    model_path().to_str().unwrap()
}

fn bin() -> Command {
    model_path();
    Command::new(env!("CARGO_BIN_EXE_lmscope"))
}

/// Six tokens of "Rivers carry" saved as a session at `p`.
fn generate_saved(p: &str) {
    let out = lmscope(&[
        "generate",
        "Rivers carry",
        "-n",
        "6",
        "--temperature",
        "0.9",
        "--seed",
        "5",
        "--save",
        p,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The command with stdout on /dev/full (every write: ENOSPC).
fn to_dev_full(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap()
}

/// The command with stdout on a pipe whose reading end is already closed.
fn to_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    bin().args(args).stdout(writer).output().unwrap()
}

fn assert_write_error(out: &Output) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("lmscope: cannot write output: No space left on device"),
        "{err}"
    );
}

#[test]
fn output_to_a_full_disk_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("s.json");
    let s = session.to_str().unwrap();
    generate_saved(s);
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "The quick brown fox jumps over the lazy dog.").unwrap();
    for args in [
        vec!["info"],
        vec!["info", "--json"],
        vec!["score", text.to_str().unwrap(), "--json"],
        vec!["session", "export", s],
        vec!["session", "show", s],
        vec!["generate", "Hi", "-n", "2", "--json"],
    ] {
        let out = to_dev_full(&args);
        assert_write_error(&out);
    }
}

#[test]
fn a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("s.json");
    let s = session.to_str().unwrap();
    generate_saved(s);
    for args in [
        vec!["info"],
        vec!["session", "export", s, "--format", "csv"],
        vec!["generate", "Hi", "-n", "3", "--json"],
    ] {
        let out = to_closed_pipe(&args);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: no message");
    }
}
