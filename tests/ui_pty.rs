//! End to end: the real binary in a pseudo-terminal on the real model.
//! Types a prompt, waits for tokens, cancels with Esc, moves the cursor,
//! opens the attention view and quits; the terminal must be restored.
//!
//! Every wait is for something on the screen, with a generous timeout; no
//! assertion is about time (these machines are shared and slow).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const COLS: u16 = 120;
const ROWS: u16 = 36;
const WAIT: Duration = Duration::from_secs(240);

struct Screen {
    parser: Mutex<vt100::Parser>,
    raw: Mutex<Vec<u8>>,
}

impl Screen {
    fn text(&self) -> String {
        self.parser
            .lock()
            .map(|p| p.screen().contents())
            .unwrap_or_default()
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.text();
            if cond(&text) {
                return text;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; the screen:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// "N generated" from the output pane's title.
fn generated(text: &str) -> usize {
    text.split(" generated")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The binary in a pseudo-terminal: its screen, its keyboard, the process
/// and the terminal's master side (the terminal lives while it is held).
type Session = (
    Arc<Screen>,
    Box<dyn Write + Send>,
    Box<dyn portable_pty::Child + Send + Sync>,
    Box<dyn portable_pty::MasterPty + Send>,
);

/// The binary on `model` in a pseudo-terminal.
fn start(model: &std::path::Path, data: &std::path::Path, config: &std::path::Path) -> Session {
    spawn(&["--model".as_ref(), model.as_os_str()], data, config)
}

/// The binary with `args` in a pseudo-terminal.
fn spawn(args: &[&std::ffi::OsStr], data: &std::path::Path, config: &std::path::Path) -> Session {
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_lmscope"));
    cmd.args(args);
    cmd.env("LMSCOPE_DATA_DIR", data);
    cmd.env("LMSCOPE_CONFIG_DIR", config);
    cmd.env("TERM", "xterm-256color");
    cmd.env_remove("NO_COLOR");
    let child = pty.slave.spawn_command(cmd).unwrap();
    drop(pty.slave);

    let screen = Arc::new(Screen {
        parser: Mutex::new(vt100::Parser::new(ROWS, COLS, 0)),
        raw: Mutex::new(Vec::new()),
    });
    let mut reader = pty.master.try_clone_reader().unwrap();
    let s = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut p) = s.parser.lock() {
                p.process(&buf[..n]);
            }
            if let Ok(mut r) = s.raw.lock() {
                r.extend_from_slice(&buf[..n]);
            }
        }
    });
    let keys = pty.master.take_writer().unwrap();
    // The master is returned: the terminal lives as long as the caller holds it.
    (screen, keys, child, pty.master)
}

/// Waits for a clean exit, checks the alternate screen was left, and
/// returns all the program wrote.
fn exits_restored(
    child: &mut Box<dyn portable_pty::Child + Send + Sync>,
    screen: &Screen,
) -> String {
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < WAIT, "lmscope did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status:?}");
    std::thread::sleep(Duration::from_millis(300));
    let raw = screen.raw.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&raw).contains("\x1b[?1049l"),
        "the alternate screen was left"
    );
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn drives_the_interface_on_the_real_model() {
    let model =
        lmscope::store::models::resolve(None).expect("the default model (fetched when missing)");
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    // Enough tokens to cancel a run in flight.
    std::fs::write(
        config.path().join("config.toml"),
        "[generation]\nmax_tokens = 200\n",
    )
    .unwrap();

    let (screen, mut keys, mut child, _master) = start(&model, data.path(), config.path());
    let mut send = |bytes: &[u8]| {
        keys.write_all(bytes).unwrap();
        keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };

    screen.wait_for("the model to load", |t| {
        t.contains("loaded; type a prompt") && t.contains(" ready ")
    });
    // A prompt with a long answer, so that the run is still going when Esc
    // arrives (a fast machine writes a short one before it does).
    send(b"Write a long story about a brave knight.");
    screen.wait_for("the typed prompt", |t| t.contains("a brave knight."));
    send(b"\r");
    screen.wait_for("a few tokens", |t| generated(t) >= 3);
    send(b"\x1b"); // Esc cancels
    // The run ends cancelled; had it ended on its own first, Esc only
    // cleared the message and the engine is ready again.
    let t = screen.wait_for("the run to end", |t| {
        t.contains("finished (") || (t.contains(" ready ") && !t.contains("generating"))
    });
    assert!(
        !t.contains("finished (")
            || t.contains("finished (cancelled)")
            || t.contains("finished (eos)"),
        "{t}"
    );
    let n = generated(&t);
    assert!(n < 200, "cancelled before the limit: {n}");

    // Focus the output, move the cursor two tokens back.
    send(b"\t");
    send(b"h");
    send(b"h");
    let t = screen.wait_for("the probabilities of the selected token", |t| {
        t.contains("rank") && t.contains("removed by")
    });
    assert!(t.contains("Probabilities"));

    // The attention view, with the rows computed by the engine.
    send(b"a");
    screen.wait_for("the attention view", |t| {
        t.contains("most attended") && t.contains("rows 0") && !t.contains("computing attention")
    });
    send(b"o"); // all heads
    screen.wait_for("the overview", |t| {
        t.contains("all heads") && t.contains("head 9")
    });
    send(b"]"); // next layer
    screen.wait_for("layer 2", |t| {
        t.contains("layer 2/30") && !t.contains("computing attention")
    });

    // The quick bias check (ctrl-k) on a typed prompt, on the engine thread.
    send(b"\x1b"); // close the attention view
    send(b"\x1b[Z"); // back to the prompt
    send(b"The doctor said that he");
    send(b"\x0b"); // ctrl-k
    let t = screen.wait_for("the quick check", |t| {
        t.contains("Quick check · prompt · 1 replacement") && t.contains("moved most")
    });
    assert!(t.contains("said·that·she"), "{t}");
    // The bias pane (ctrl-b): the suite runs with progress; Esc cancels it.
    send(b"\x02");
    send(b"r");
    screen.wait_for("the suite's progress", |t| t.contains("running: "));
    send(b"\x1b");
    screen.wait_for("the suite to stop", |t| {
        t.contains("partial results (cancelled)") || t.contains("finished")
    });
    send(b"\x1b"); // close the pane

    // Branch at the selected token: the probabilities pane, the next
    // alternative (the one after it if that is the chosen token), b.
    send(b"\t"); // from the prompt to the output
    send(b"\t"); // the probabilities pane
    send(b"j");
    send(b"b");
    let t = screen.wait_for("the branch to start", |t| {
        t.contains("branch 1/1 of run 1") || t.contains("pick another")
    });
    if t.contains("pick another") {
        send(b"j");
        send(b"b");
        screen.wait_for("the branch to start", |t| t.contains("branch 1/1 of run 1"));
    }
    send(b"\x1b"); // Esc cancels the branch (or it has finished)
    // (Esc after an early end only clears the message: wait for the state.)
    screen.wait_for("the branch to end", |t| t.contains(" ready "));

    // The session was saved: f10 lists it with both runs.
    send(b"\x1b[21~"); // f10
    screen.wait_for("the session list", |t| {
        t.contains("Sessions · newest first") && t.contains(" 2 runs ")
    });
    send(b"\x1b"); // closes the list

    send(b"\x11"); // ctrl-q
    let raw = exits_restored(&mut child, &screen);
    let left = raw
        .rfind("\x1b[?1049l")
        .expect("the alternate screen was left");
    assert!(
        left > raw.rfind("\x1b[?1049h").unwrap_or(0),
        "left after entering"
    );
    assert!(
        raw.contains("\x1b[?1000l") || raw.contains("\x1b[?1006l"),
        "mouse capture was turned off"
    );
    assert!(
        std::fs::read_dir(data.path().join("logs"))
            .map(|d| d.count() > 0)
            .unwrap_or(false),
        "a log file in the data directory"
    );
    let sessions: Vec<_> = std::fs::read_dir(data.path().join("sessions"))
        .expect("a sessions folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(sessions.len(), 1, "one autosaved session: {sessions:?}");
    let s = lmscope::store::session::Session::load(&sessions[0]).unwrap();
    assert_eq!(s.runs.len(), 2, "the run and its branch");
    let parent = s.runs[1].parent.expect("the branch's parent");
    assert_eq!(parent.run, 0);
    assert_eq!(
        s.runs[1].steps[..parent.step]
            .iter()
            .map(|r| r.token_id)
            .collect::<Vec<_>>(),
        s.runs[0].steps[..parent.step]
            .iter()
            .map(|r| r.token_id)
            .collect::<Vec<_>>(),
        "the branch keeps its parent's tokens before the branch point"
    );
    assert_ne!(
        s.runs[1].steps[parent.step].token_id,
        s.runs[0].steps[parent.step].token_id
    );
}

#[test]
fn opens_the_encoder_mode_on_a_masked_model() {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-bert");
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let (screen, mut keys, mut child, _master) = start(&model, data.path(), config.path());
    let mut send = |bytes: &[u8]| {
        keys.write_all(bytes).unwrap();
        keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };
    // The example text runs at start: tokens, the mask's candidates.
    screen.wait_for("the encoder mode", |t| {
        t.contains("bert encoder") && t.contains("[CLS]") && t.contains("mask at token")
    });
    send(b"\x07"); // ctrl-g: masked generation
    screen.wait_for("the masked generation", |t| {
        t.contains("masked generation: 1 steps")
    });
    send(b"\x13"); // ctrl-s
    screen.wait_for("the session saved", |t| t.contains("saved "));
    let saved: Vec<_> = std::fs::read_dir(data.path().join("sessions/masked"))
        .expect("the masked sessions folder")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(saved.len(), 1);
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(["session", "replay"])
        .arg(saved[0].path())
        .env("LMSCOPE_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&replay.stdout).contains("same 1 steps"),
        "{}{}",
        String::from_utf8_lossy(&replay.stdout),
        String::from_utf8_lossy(&replay.stderr)
    );
    send(b"\x11"); // ctrl-q
    let _ = exits_restored(&mut child, &screen);
}

#[test]
fn watches_a_training_run_pauses_stops_it_saved() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let size = data.path().join("mini.toml");
    std::fs::write(
        &size,
        "d_model = 32\nn_layer = 2\nn_head = 2\nd_ff = 64\nmax_positions = 64\n",
    )
    .unwrap();
    let out = data.path().join("run");
    let corpus = root.join("assets/corpus/primer.txt");
    let args: Vec<&std::ffi::OsStr> = vec![
        "train".as_ref(),
        "pretrain".as_ref(),
        corpus.as_os_str(),
        "--size".as_ref(),
        size.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--steps".as_ref(),
        "100000".as_ref(),
        "--eval-every".as_ref(),
        "20".as_ref(),
        "--batch".as_ref(),
        "4".as_ref(),
        "--seq-len".as_ref(),
        "32".as_ref(),
        "--vocab-size".as_ref(),
        "300".as_ref(),
        "--probe".as_ref(),
        "the [MASK] sat on the mat .".as_ref(),
        "--watch".as_ref(),
    ];
    let (screen, mut keys, mut child, _master) = spawn(&args, data.path(), config.path());
    let mut send = |bytes: &[u8]| {
        keys.write_all(bytes).unwrap();
        keys.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    };
    screen.wait_for("the training view with an evaluation", |t| {
        t.contains("lmscope train bert") && t.contains("learning rate") && t.contains("L1 H1")
    });
    send(b"p");
    screen.wait_for("paused", |t| t.contains("paused"));
    send(b"p");
    screen.wait_for("running again", |t| t.contains("running"));
    send(b"q");
    screen.wait_for("the run stopped and saved", |t| {
        t.contains("stopped at step") && t.contains("saved")
    });
    send(b"q");
    let _ = exits_restored(&mut child, &screen);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("last/trainer.json")).unwrap()).unwrap();
    let step = state["step"].as_u64().unwrap();
    assert!(
        (20..100000).contains(&step),
        "stopped and saved at step {step}"
    );
}
