//! The encoder mode's view, for a masked language model: the text with its
//! masks, the tokens as the model reads them (`[CLS]`/`[SEP]` marked), each
//! mask's candidates, every layer's and head's bidirectional attention, and
//! masked generation streaming step by step. Keys come in, commands for the
//! masked engine go out ([`MaskedOut`]).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::masked::generate::FillOrder;
use crate::engine::masked::handle::{Analysis, MaskedCommand, MaskedEvent};
use crate::engine::masked::{MaskFill, TokenView};
use crate::engine::sampling::SamplerSettings;
use crate::engine::types::{AttentionRows, StepRecord};
use crate::store::masked_session::MaskedRun;
use crate::ui::editor::Editor;
use crate::ui::state::Level;

/// Candidates shown per mask.
pub const TOP_K: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Text,
    Tokens,
}

/// What the model is, as the header shows it.
#[derive(Clone, Debug, Default)]
pub struct ModelLine {
    pub name: String,
    pub architecture: String,
    pub layers: usize,
    pub heads: usize,
    pub width: usize,
    pub mlm_head: bool,
    pub nsp_head: bool,
}

impl ModelLine {
    pub fn of(i: &crate::engine::masked::EncoderInfo) -> Self {
        Self {
            name: i.name.clone(),
            architecture: i.architecture.clone(),
            layers: i.config.n_layer,
            heads: i.config.n_head,
            width: i.config.d_model,
            mlm_head: i.mlm_head,
            nsp_head: i.nsp_head,
        }
    }
}

#[derive(Debug, Default)]
pub struct MaskedOut {
    pub commands: Vec<MaskedCommand>,
    pub cancel: bool,
    pub quit: bool,
    /// Save the masked generation on screen as a session.
    pub save: Option<(String, MaskedRun)>,
}

pub struct MaskedView {
    pub model: ModelLine,
    pub editor: Editor,
    pub focus: Focus,
    pub tokens: Vec<TokenView>,
    pub fills: Result<Vec<MaskFill>, String>,
    pub attention: Option<AttentionRows>,
    /// The token whose row is shown (the query), and whose candidates when
    /// it is a mask.
    pub selected: usize,
    pub layer: usize,
    /// A head, or `n_head` for the mean over heads.
    pub head: usize,
    pub order: FillOrder,
    pub settings: SamplerSettings,
    /// The masked generation's steps so far, its text and sequence.
    pub steps: Vec<StepRecord>,
    pub generated: Option<String>,
    pub generating: bool,
    /// The last masked generation was stopped before its end.
    pub cancelled: bool,
    /// The text the masked generation started from.
    pub generation_text: String,
    pub busy: bool,
    pub message: Option<(Level, String)>,
    /// The analysis in flight refreshes a generation's attention: keep its
    /// message and the masked text's candidates.
    keep_message: bool,
    next_id: u64,
    current: u64,
}

impl MaskedView {
    pub fn new(model: ModelLine, mask: &str) -> Self {
        let mut editor = Editor::new();
        editor.set_text(&format!("The capital of France is {mask}."));
        Self {
            model,
            editor,
            focus: Focus::Text,
            tokens: Vec::new(),
            fills: Err("press Enter to run the text".into()),
            attention: None,
            selected: 0,
            layer: 0,
            head: 0,
            order: FillOrder::Confident,
            settings: SamplerSettings::default(),
            steps: Vec::new(),
            generated: None,
            generating: false,
            cancelled: false,
            generation_text: String::new(),
            busy: false,
            message: None,
            keep_message: false,
            next_id: 1,
            current: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.current = self.next_id;
        self.next_id += 1;
        self.current
    }

    /// The text in the editor, as one line (a masked model reads one
    /// sequence).
    pub fn text(&self) -> String {
        self.editor.text().replace('\n', " ")
    }

    /// Runs the editor's text: tokens, candidates, attention.
    pub fn analyze(&mut self, out: &mut MaskedOut) {
        let text = self.text();
        if text.trim().is_empty() {
            self.message = Some((Level::Warn, "the text is empty".into()));
            return;
        }
        let id = self.next();
        self.busy = true;
        out.commands.push(MaskedCommand::Analyze {
            id,
            text,
            top_k: TOP_K,
        });
    }

    fn generate(&mut self, out: &mut MaskedOut) {
        if !self.model.mlm_head {
            self.message = Some((
                Level::Warn,
                "masked generation needs an MLM head, which this checkpoint lacks".into(),
            ));
            return;
        }
        let id = self.next();
        self.steps.clear();
        self.generated = None;
        self.generating = true;
        self.generation_text = self.text();
        self.busy = true;
        out.commands.push(MaskedCommand::Generate {
            id,
            text: self.text(),
            order: self.order,
            settings: Box::new(self.settings.clone()),
            top_k: TOP_K,
        });
    }

    fn heads(&self) -> usize {
        self.model.heads
    }

    /// Applies a key; what the engine should do goes into the answer.
    pub fn key(&mut self, k: KeyEvent) -> MaskedOut {
        let mut out = MaskedOut::default();
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('c') | KeyCode::Char('q') if ctrl => out.quit = true,
            KeyCode::Char('g') if ctrl => self.generate(&mut out),
            KeyCode::Char('o') if ctrl => {
                self.order = match self.order {
                    FillOrder::Confident => FillOrder::LeftToRight,
                    FillOrder::LeftToRight => FillOrder::Gibbs { sweeps: 2 },
                    FillOrder::Gibbs { .. } => FillOrder::Confident,
                };
                self.message = Some((
                    Level::Info,
                    format!("fill order: {}", order_name(self.order)),
                ));
            }
            KeyCode::Char('t') if ctrl => {
                self.settings.temperature = if self.settings.temperature == 0.0 {
                    0.8
                } else {
                    0.0
                };
                self.message = Some((
                    Level::Info,
                    format!("temperature {} (0 = greedy)", self.settings.temperature),
                ));
            }
            KeyCode::Esc if self.generating => out.cancel = true,
            KeyCode::Char('s') if ctrl => match self.run_record() {
                Some(r) if !self.generating => out.save = Some((self.generation_text.clone(), r)),
                Some(_) => {
                    self.message = Some((
                        Level::Warn,
                        "wait for the generation to end (or Esc)".into(),
                    ))
                }
                None => {
                    self.message = Some((
                        Level::Warn,
                        "nothing to save yet: Ctrl-G fills the masks first".into(),
                    ))
                }
            },
            KeyCode::Tab | KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::Text if !self.tokens.is_empty() => Focus::Tokens,
                    _ => Focus::Text,
                };
            }
            _ if self.focus == Focus::Text => self.edit(k, &mut out),
            _ => self.browse(k),
        }
        out
    }

    fn edit(&mut self, k: KeyEvent, out: &mut MaskedOut) {
        match k.code {
            KeyCode::Enter => self.analyze(out),
            KeyCode::Char(c) => self.editor.insert(c),
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            _ => {}
        }
    }

    fn browse(&mut self, k: KeyEvent) {
        let n = self.tokens.len();
        let layers = self.model.layers.max(1);
        match k.code {
            KeyCode::Left => self.selected = self.selected.saturating_sub(1),
            KeyCode::Right if n > 0 => self.selected = (self.selected + 1).min(n - 1),
            KeyCode::Up => self.head = (self.head + self.heads()) % (self.heads() + 1),
            KeyCode::Down => self.head = (self.head + 1) % (self.heads() + 1),
            KeyCode::PageUp | KeyCode::Char('[') => self.layer = (self.layer + layers - 1) % layers,
            KeyCode::PageDown | KeyCode::Char(']') => self.layer = (self.layer + 1) % layers,
            KeyCode::Char('m') => {
                // Jump to the next mask.
                if let Ok(fills) = &self.fills {
                    let next = fills
                        .iter()
                        .map(|f| f.position)
                        .find(|&p| p > self.selected)
                        .or_else(|| fills.first().map(|f| f.position));
                    if let Some(p) = next {
                        self.selected = p;
                    }
                }
            }
            _ => {}
        }
    }

    /// Applies what the engine answered (events of older commands are
    /// dropped); a finished generation asks for the filled text's attention.
    pub fn event(&mut self, e: MaskedEvent) -> MaskedOut {
        let mut out = MaskedOut::default();
        match e {
            MaskedEvent::Analyzed { id, analysis } if id == self.current => {
                let Analysis {
                    tokens,
                    fills,
                    attention,
                } = *analysis;
                self.busy = false;
                self.selected = match &fills {
                    Ok(f) if !f.is_empty() => f[0].position,
                    _ => self.selected.min(tokens.len().saturating_sub(1)),
                };
                // After a generation the filled text has no masks: the
                // candidates stay those of the masked text.
                if !self.keep_message {
                    self.fills = fills;
                    self.message = None;
                }
                self.keep_message = false;
                self.tokens = tokens;
                self.attention = Some(attention);
            }
            MaskedEvent::Step {
                id,
                record,
                tokens,
                text,
            } if id == self.current => {
                // Follow the generation: the token just drawn is selected,
                // its step's trace shown.
                self.selected = record.position;
                self.steps.push(*record);
                self.tokens = tokens;
                self.generated = Some(text);
            }
            MaskedEvent::Finished { id, cancelled } if id == self.current => {
                self.busy = false;
                self.generating = false;
                self.cancelled = cancelled;
                // The filled text's attention (and its tokens), under the
                // same id: the steps stay, the trace of each drawn token too.
                if let Some(text) = self.generated.clone() {
                    self.analysis_keeping_steps(text, &mut out);
                }
                self.message = Some((
                    Level::Info,
                    if cancelled {
                        format!(
                            "masked generation cancelled after {} steps",
                            self.steps.len()
                        )
                    } else {
                        format!(
                            "masked generation: {} steps ({}); Ctrl-S saves it, Enter runs the text again",
                            self.steps.len(),
                            order_name(self.order)
                        )
                    },
                ));
            }
            MaskedEvent::Failed { id, message } if id == self.current => {
                self.busy = false;
                self.generating = false;
                self.message = Some((Level::Error, message));
            }
            _ => {}
        }
        out
    }

    /// Asks for `text`'s tokens and attention without touching the
    /// generation's steps or message (the candidates of its masks are gone:
    /// it has none).
    fn analysis_keeping_steps(&mut self, text: String, out: &mut MaskedOut) {
        let id = self.next();
        self.keep_message = true;
        self.busy = true;
        out.commands.push(MaskedCommand::Analyze {
            id,
            text,
            top_k: TOP_K,
        });
    }

    /// The masked generation on screen, as a session's run.
    pub fn run_record(&self) -> Option<MaskedRun> {
        if self.steps.is_empty() {
            return None;
        }
        Some(MaskedRun {
            label: "run 0".into(),
            order: self.order,
            settings: self.settings.clone(),
            parent: None,
            steps: self.steps.clone(),
            text: self.generated.clone().unwrap_or_default(),
            token_ids: self.tokens.iter().map(|t| t.token_id).collect(),
            finished: !self.cancelled,
        })
    }

    /// The latest step of the masked generation that drew the selected
    /// token.
    pub fn selected_step(&self) -> Option<&StepRecord> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.position == self.selected)
    }

    /// The candidates of the selected token, when it is a mask.
    pub fn selected_fill(&self) -> Option<&MaskFill> {
        self.fills
            .as_ref()
            .ok()?
            .iter()
            .find(|f| f.position == self.selected)
    }
}

pub fn order_name(order: FillOrder) -> String {
    order.describe()
}
