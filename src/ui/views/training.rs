//! The training view's state: the run's curves, its latest step, the last
//! evaluation's probe (predictions, attention per head, head scores), and
//! the keys that pause, stop and choose the head shown.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::types::AttentionRows;
use crate::train::probe::Probe;
use crate::train::run::Event;
use crate::ui::state::Level;

/// The latest update, as the progress line shows it.
#[derive(Clone, Debug, Default)]
pub struct Latest {
    pub loss: f32,
    pub parts: Vec<(String, f32)>,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
    pub eta_s: f64,
    pub peak_rss_mib: Option<f64>,
}

#[derive(Default)]
pub struct TrainingView {
    pub title: String,
    pub total_steps: usize,
    pub step: usize,
    /// (step, loss) of every update, and of every evaluation.
    pub train_loss: Vec<(f64, f64)>,
    pub val_loss: Vec<(f64, f64)>,
    pub rate: Vec<(f64, f64)>,
    pub latest: Latest,
    pub best: Option<(usize, f64)>,
    /// The last evaluation's task measures (fine-tuning's exact match).
    pub metrics: Vec<(String, f64)>,
    pub probe: Option<Probe>,
    pub layer: usize,
    pub head: usize,
    pub paused: bool,
    /// Asked to stop: the run saves after the step in progress.
    pub stopping: bool,
    pub finished: bool,
    pub saved: Option<PathBuf>,
    pub message: Option<(Level, String)>,
}

/// What a key asks of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Pause(bool),
    Stop,
    Quit,
}

impl TrainingView {
    pub fn event(&mut self, e: &Event) {
        match e {
            Event::Started {
                arch,
                parameters,
                frozen_parameters,
                vocab_size,
                steps,
                from_step,
                out,
                ..
            } => {
                let frozen = match frozen_parameters {
                    0 => String::new(),
                    f => format!(" ({:.2}M frozen)", *f as f64 / 1e6),
                };
                self.title = format!(
                    "{} · {:.2}M parameters{frozen} · vocabulary {vocab_size} · {}",
                    arch.name(),
                    *parameters as f64 / 1e6,
                    out.display()
                );
                self.total_steps = *steps;
                self.step = *from_step;
            }
            Event::Step {
                step,
                loss,
                parts,
                lr,
                grad_norm,
                tokens_per_s,
                elapsed_s,
                eta_s,
                peak_rss_mib,
                ..
            } => {
                self.step = *step;
                self.train_loss.push((*step as f64, *loss as f64));
                self.rate.push((*step as f64, *lr));
                self.latest = Latest {
                    loss: *loss,
                    parts: parts.clone(),
                    lr: *lr,
                    grad_norm: *grad_norm,
                    tokens_per_s: *tokens_per_s,
                    elapsed_s: *elapsed_s,
                    eta_s: *eta_s,
                    peak_rss_mib: *peak_rss_mib,
                };
            }
            Event::Eval {
                step,
                val_loss,
                metrics,
                best,
                probe,
                ..
            } => {
                self.val_loss.push((*step as f64, *val_loss));
                self.metrics = metrics.clone();
                if *best {
                    self.best = Some((*step, *val_loss));
                }
                if let Some(p) = probe {
                    self.probe = Some(p.clone());
                    self.clamp_head();
                }
            }
            Event::Saved { dir, .. } => self.saved = Some(dir.clone()),
            Event::Finished {
                stopped,
                early_stopped,
                ..
            } => {
                self.finished = true;
                let how = crate::train::run::ending(*stopped, *early_stopped);
                let saved = self
                    .saved
                    .as_ref()
                    .map(|d| format!("; saved {}", d.display()))
                    .unwrap_or_default();
                self.message = Some((
                    Level::Info,
                    format!("{how} at step {}{saved} · q to leave", self.step),
                ));
            }
        }
    }

    /// The shape of the probe's attention: (layers, heads).
    fn heads(&self) -> (usize, usize) {
        self.probe.as_ref().map_or((0, 0), |p| {
            (p.attention.len(), p.attention.first().map_or(0, Vec::len))
        })
    }

    fn clamp_head(&mut self) {
        let (l, h) = self.heads();
        self.layer = self.layer.min(l.saturating_sub(1));
        self.head = self.head.min(h.saturating_sub(1));
    }

    pub fn key(&mut self, k: KeyEvent) -> Action {
        let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
        let (layers, heads) = self.heads();
        match k.code {
            _ if (ctrl_c || k.code == KeyCode::Char('q') || k.code == KeyCode::Esc)
                && self.finished =>
            {
                Action::Quit
            }
            _ if ctrl_c || k.code == KeyCode::Char('q') || k.code == KeyCode::Esc => {
                if !self.stopping {
                    self.stopping = true;
                    self.message = Some((
                        Level::Info,
                        "stopping after this step; the run is saved to resume".into(),
                    ));
                }
                Action::Stop
            }
            KeyCode::Char('p') | KeyCode::Char(' ') if !self.finished => {
                self.paused = !self.paused;
                self.message = Some((
                    Level::Info,
                    if self.paused {
                        "paused · p resumes".into()
                    } else {
                        "running".into()
                    },
                ));
                Action::Pause(self.paused)
            }
            KeyCode::PageUp => {
                self.layer = self.layer.saturating_sub(1);
                Action::None
            }
            KeyCode::PageDown => {
                self.layer = (self.layer + 1).min(layers.saturating_sub(1));
                Action::None
            }
            KeyCode::Up => {
                self.head = self.head.saturating_sub(1);
                Action::None
            }
            KeyCode::Down => {
                self.head = (self.head + 1).min(heads.saturating_sub(1));
                Action::None
            }
            _ => Action::None,
        }
    }

    /// The selected layer's attention over the probe text, as the heatmap
    /// reads it.
    pub fn attention_rows(&self) -> Option<AttentionRows> {
        let p = self.probe.as_ref()?;
        let layer = p.attention.get(self.layer)?;
        let n = layer.first().map_or(0, Vec::len);
        Some(AttentionRows {
            n_layer: 1,
            n_head: layer.len(),
            n_query: n,
            n_key: n,
            first_query: 0,
            data: layer.iter().flatten().flatten().copied().collect(),
        })
    }
}
