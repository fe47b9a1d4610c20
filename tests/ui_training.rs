//! The training view on a real (small) run: the events of a BERT trained
//! for a few steps drawn as the loss and rate charts, the progress bar,
//! the probe's predictions and head scores and the selected head's
//! attention; keys pause, choose heads and stop; a tiny terminal is told.
//! Timings vary from run to run, so the screen is checked for what it
//! shows, not snapshotted.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lmscope::train::nets::{Arch, NetConfig};
use lmscope::train::run::{TrainConfig, Trainer};
use lmscope::ui::panes::training::render;
use lmscope::ui::theme::Theme;
use lmscope::ui::views::training::{Action, TrainingView};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn screen(view: &TrainingView, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(&Theme { color: false }, view, f.area(), f.buffer_mut()))
        .unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                + "\n"
        })
        .collect()
}

fn key(view: &mut TrainingView, code: KeyCode) -> Action {
    view.key(KeyEvent::new(code, KeyModifiers::NONE))
}

#[test]
fn a_run_is_drawn_as_it_learns() {
    let dir = tempfile::tempdir().unwrap();
    let train = TrainConfig {
        corpus: root().join("assets/corpus/primer.txt"),
        out: dir.path().join("run"),
        steps: 6,
        batch: 4,
        seq_len: 32,
        lr: 2e-3,
        warmup: 2,
        min_lr_ratio: 0.1,
        weight_decay: 0.01,
        clip: 1.0,
        seed: 1,
        eval_every: 3,
        val_fraction: 0.1,
        vocab_size: 300,
        probe: Some("the model reads the [MASK] one token at a time .".into()),
        finetune: None,
    };
    let net = NetConfig {
        d_model: 32,
        n_layer: 2,
        n_head: 2,
        d_ff: 64,
        max_positions: 64,
        ..NetConfig::preset(Arch::Bert, "tiny").unwrap()
    };
    let tok = root().join("tests/fixtures/hf/tiny-bert/tokenizer.json");
    let mut trainer = Trainer::pretrain(train, net, Some(&tok)).unwrap();
    let mut view = TrainingView::default();
    trainer
        .run(&mut |e| view.event(e), &AtomicBool::new(false))
        .unwrap();

    assert_eq!((view.step, view.total_steps), (6, 6));
    assert_eq!(view.train_loss.len(), 6);
    assert_eq!(view.val_loss.len(), 2);
    let s = screen(&view, 110, 36);
    for want in [
        "lmscope train bert",
        "step 6/6",
        "tok/s",
        "loss",
        "learning rate",
        "• val 6.",
        "best 6.",
        "@7:",
        "L0 H0  prev",
        "L1 H1  prev",
        "attention · layer 0 head 0",
        "finished at step 6",
    ] {
        assert!(s.contains(want), "`{want}` on screen:\n{s}");
    }

    key(&mut view, KeyCode::Down);
    key(&mut view, KeyCode::PageDown);
    assert!(screen(&view, 110, 36).contains("attention · layer 1 head 1"));
    key(&mut view, KeyCode::Down);
    key(&mut view, KeyCode::PageDown);
    assert_eq!((view.layer, view.head), (1, 1), "held at the last head");
    assert_eq!(
        key(&mut view, KeyCode::Char('q')),
        Action::Quit,
        "a finished run leaves at once"
    );
}

#[test]
fn keys_pause_and_stop_a_running_run() {
    let mut view = TrainingView {
        total_steps: 10,
        ..Default::default()
    };
    assert_eq!(key(&mut view, KeyCode::Char('p')), Action::Pause(true));
    assert!(screen(&view, 100, 30).contains("paused"));
    assert_eq!(key(&mut view, KeyCode::Char('p')), Action::Pause(false));
    assert_eq!(
        key(&mut view, KeyCode::Char('q')),
        Action::Stop,
        "a running run is stopped, not left"
    );
    assert!(screen(&view, 100, 30).contains("stopping after this step"));
}

#[test]
fn a_tiny_terminal_is_told_the_size_needed() {
    let view = TrainingView::default();
    assert!(screen(&view, 40, 10).contains("needs 60x20"));
}

#[test]
fn a_finetuning_run_shows_its_exact_match_and_why_it_stopped() {
    use lmscope::train::checkpoint::Best;
    use lmscope::train::run::Event;
    let mut view = TrainingView::default();
    let events = [
        Event::Started {
            arch: Arch::Llama,
            parameters: 460_800,
            frozen_parameters: 134_515_008,
            vocab_size: 49152,
            train_examples: 227,
            val_batches: 4,
            steps: 87,
            from_step: 0,
            out: "runs/finetune".into(),
        },
        Event::Eval {
            step: 0,
            val_loss: 7.44,
            parts: vec![],
            metrics: vec![("exact_match".into(), 0.0)],
            best: true,
            probe: None,
        },
        Event::Eval {
            step: 29,
            val_loss: 1.32,
            parts: vec![],
            metrics: vec![("exact_match".into(), 0.423)],
            best: true,
            probe: None,
        },
        Event::Finished {
            step: 29,
            best: Some(Best {
                step: 29,
                val_loss: 1.32,
            }),
            stopped: true,
            early_stopped: true,
        },
    ];
    for e in &events {
        view.event(e);
    }
    let s = screen(&view, 140, 36);
    for want in [
        "0.46M parameters (134.52M frozen)",
        "exact match 42.3%",
        "best 1.320 @29",
        "stopped early",
    ] {
        assert!(s.contains(want), "`{want}` on screen:\n{s}");
    }
}
