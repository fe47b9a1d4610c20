//! A masked model on its own thread, for the workbench: the interface sends
//! commands and draws what comes back, so a long masked generation never
//! blocks a key press. A panic in a command is caught and reported as that
//! command's failure; the thread goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

use super::generate::{FillOrder, MaskedGeneration};
use super::{MaskFill, MaskedEngine, TokenView};
use crate::engine::handle::THREAD_NAME;
use crate::engine::sampling::{Sampler, SamplerSettings};
use crate::engine::types::{AttentionRows, StepRecord};

#[derive(Debug)]
pub enum MaskedCommand {
    /// Tokens, each mask's candidates and every layer's attention.
    Analyze { id: u64, text: String, top_k: usize },
    /// Fills the masks of `text` one at a time, streaming each step.
    Generate {
        id: u64,
        text: String,
        order: FillOrder,
        settings: Box<SamplerSettings>,
        top_k: usize,
    },
}

/// What one text is to the model.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub tokens: Vec<TokenView>,
    /// Each mask's candidates, or why there are none (no MLM head, no
    /// mask in the text).
    pub fills: Result<Vec<MaskFill>, String>,
    /// `[layer][head][query][key]`, every query over every key.
    pub attention: AttentionRows,
}

pub enum MaskedEvent {
    Analyzed {
        id: u64,
        analysis: Box<Analysis>,
    },
    Step {
        id: u64,
        record: Box<StepRecord>,
        /// The sequence after this step (special tokens included).
        tokens: Vec<TokenView>,
        text: String,
    },
    Finished {
        id: u64,
        cancelled: bool,
    },
    Failed {
        id: u64,
        message: String,
    },
}

pub struct MaskedHandle {
    commands: Sender<MaskedCommand>,
    cancel: Arc<AtomicBool>,
}

fn analyze(engine: &MaskedEngine, text: &str, top_k: usize) -> crate::engine::Result<Analysis> {
    // One pass gives the attention and, where there are masks, their
    // candidates.
    let e = engine.encode(text, None)?;
    let out = engine.forward(&e, true)?;
    let masks = engine.mask_positions(&e.ids);
    let fills = match engine.mlm_missing() {
        Some(why) => Err(why),
        None if masks.is_empty() => Err(format!(
            "no mask in the text: write {} where the model should fill in a token",
            engine.tokenizer().mask_text().unwrap_or_default()
        )),
        None => Ok(engine.fills_at(&out.hidden, &masks, top_k)?),
    };
    Ok(Analysis {
        tokens: engine.tokens(&e.ids),
        fills,
        attention: super::attention_rows(&out.attention, e.ids.len())?,
    })
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn serve(
    engine: &MaskedEngine,
    cmd: MaskedCommand,
    cancel: &AtomicBool,
    events: &Sender<MaskedEvent>,
) {
    match cmd {
        MaskedCommand::Analyze { id, text, top_k } => {
            let event = match analyze(engine, &text, top_k) {
                Ok(a) => MaskedEvent::Analyzed {
                    id,
                    analysis: Box::new(a),
                },
                Err(e) => MaskedEvent::Failed {
                    id,
                    message: e.to_string(),
                },
            };
            let _ = events.send(event);
        }
        MaskedCommand::Generate {
            id,
            text,
            order,
            settings,
            top_k,
        } => {
            let run = Sampler::new(*settings)
                .and_then(|s| MaskedGeneration::new(engine, &text, order, s, top_k));
            let mut run = match run {
                Ok(r) => r,
                Err(e) => {
                    let _ = events.send(MaskedEvent::Failed {
                        id,
                        message: e.to_string(),
                    });
                    return;
                }
            };
            loop {
                if cancel.swap(false, Ordering::Relaxed) {
                    let _ = events.send(MaskedEvent::Finished {
                        id,
                        cancelled: true,
                    });
                    return;
                }
                match run.step(engine) {
                    Ok(Some(record)) => {
                        let _ = events.send(MaskedEvent::Step {
                            id,
                            record: Box::new(record),
                            tokens: engine.tokens(run.ids()),
                            text: run.text(engine),
                        });
                    }
                    Ok(None) => {
                        let _ = events.send(MaskedEvent::Finished {
                            id,
                            cancelled: false,
                        });
                        return;
                    }
                    Err(e) => {
                        let _ = events.send(MaskedEvent::Failed {
                            id,
                            message: e.to_string(),
                        });
                        return;
                    }
                }
            }
        }
    }
}

impl MaskedHandle {
    pub fn spawn(engine: Arc<MaskedEngine>, events: Sender<MaskedEvent>) -> std::io::Result<Self> {
        let (commands, inbox): (Sender<MaskedCommand>, Receiver<MaskedCommand>) = channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        // Named as the decoder's engine thread, so the terminal's panic hook
        // logs its panics instead of printing over the screen.
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                for cmd in inbox {
                    let id = match &cmd {
                        MaskedCommand::Analyze { id, .. } | MaskedCommand::Generate { id, .. } => *id,
                    };
                    flag.store(false, Ordering::Relaxed);
                    let served = catch_unwind(AssertUnwindSafe(|| serve(&engine, cmd, &flag, &events)));
                    if let Err(p) = served {
                        let _ = events.send(MaskedEvent::Failed {
                            id,
                            message: format!(
                                "the engine thread panicked ({}); the model is still loaded, try again or report it",
                                panic_text(p)
                            ),
                        });
                    }
                }
            })?;
        Ok(Self { commands, cancel })
    }

    pub fn send(&self, cmd: MaskedCommand) {
        let _ = self.commands.send(cmd);
    }

    /// Ends a masked generation after the step in flight.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
