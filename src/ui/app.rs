//! The interface's state and its one `update`: terminal input resolves to
//! an [`Action`] through the keymap, engine events arrive as they are, and
//! everything that changes state goes through here. Rendering only reads
//! it. Commands for the engine are queued in `outbox`; the event loop sends
//! them, so this module does no I/O.

use std::ops::Range;
use std::time::{Duration, Instant};

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use super::bias_state::{BiasState, BiasView};
use super::editor::Editor;
use super::fields::{self, Field};
use super::keymap::{Action, Context, Key, Keymap};
use super::layout::{self, Areas};
use super::state::{Effect, EngineState, Focus, Level, Overlay, Tok};
use super::text;
use super::theme::Theme;
use super::widgets::heatmap::with_mean;
use crate::engine::chat::Message;
use crate::engine::handle::{EngineCommand, EngineEvent, LayerAttention, compare_column_id};
use crate::engine::sampling::SamplerSettings;
use crate::engine::types::{FinishReason, ModelInfo, StepRecord, Timings};
use crate::engine::{Prompt, Request};
use crate::store::config::{ColorBy, Config};
use crate::store::presets;
use crate::store::session::{BranchPoint, ModelIdentity, Run, Session, SessionEntry};
use std::path::PathBuf;

/// Attention rows asked for at once, at most (a window around the query).
pub const MAX_ATTENTION_ROWS: usize = 1024;
/// While the model streams, attention is refreshed at most this often.
pub const ATTENTION_REFRESH: Duration = Duration::from_millis(250);
/// A request not answered in this time is asked again.
const ATTENTION_TIMEOUT: Duration = Duration::from_secs(3);
const HISTORY_LIMIT: usize = 200;
/// Most columns the compare view shows.
pub const MAX_COMPARE_COLUMNS: usize = 4;

/// The session list overlay.
#[derive(Clone, Debug, Default)]
pub struct SessionsState {
    pub entries: Vec<SessionEntry>,
    pub selected: usize,
    /// The folder has been read since the list was opened.
    pub listed: bool,
}

#[derive(Clone, Debug, Default)]
pub struct AttnState {
    pub layer: usize,
    pub head: usize,
    pub mean: bool,
    pub overview: bool,
    /// Each heatmap row scaled by its own largest weight.
    pub per_row: bool,
    /// 1 shows the whole sequence; 2 half of it, and so on.
    pub zoom: usize,
    /// Keys axis offset from the query window, in tokens.
    pub pan: isize,
    /// One layer's rows with the mean over heads appended as head `n_head`.
    pub data: Option<LayerAttention>,
    pub in_flight: Option<(Instant, usize, Range<usize>)>,
    pub last_request: Option<Instant>,
}

/// One column of a comparison: a preset's run from the shared prefill.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompareColumn {
    pub preset: String,
    pub settings: SamplerSettings,
    pub records: Vec<StepRecord>,
    pub text: String,
    pub timings: Timings,
    pub finish: Option<FinishReason>,
}

/// A comparison run (`id` tags its events) and its columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompareState {
    pub id: u64,
    pub columns: Vec<CompareColumn>,
    /// The prompt's tokens (from the engine's prefill).
    pub prompt: Vec<String>,
    /// Whether the columns captured attention (it can be asked for once
    /// every column has finished).
    pub captures: bool,
    /// The selected token: (column, step).
    pub selected: Option<(usize, usize)>,
    /// The selected token's attention row (one query, all heads).
    pub attention: Option<LayerAttention>,
    /// The last attention request: (column, step, layer).
    pub asked: Option<(usize, usize, usize)>,
    /// The request the columns share (each with its preset's sampler).
    pub request: Option<Request>,
}

impl CompareState {
    pub fn finished(&self) -> bool {
        self.columns.iter().all(|c| c.finish.is_some())
    }
}

/// One run of the session: a prompt's generation, or a branch of a run
/// (`parent`: the run it left and the step whose token it replaced). The
/// main view shows one of them (`App::shown`) in `App::tokens` and friends.
#[derive(Clone, Debug, PartialEq)]
pub struct RunNode {
    pub id: u64,
    pub parent: Option<(u64, usize)>,
    pub request: Request,
    pub tokens: Vec<Tok>,
    pub prompt_len: usize,
    pub cache_len: usize,
    pub captures: bool,
    pub timings: Timings,
    pub finish: Option<FinishReason>,
    /// The engine has started it (a branch that could not start is dropped).
    pub started: bool,
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// Opened from a session file: the engine does not hold it.
    pub loaded: bool,
}

impl RunNode {
    /// The generated tokens' records.
    pub fn records(&self) -> impl Iterator<Item = &StepRecord> {
        self.tokens.iter().filter_map(|t| t.record.as_deref())
    }
}

/// Where the shown run sits among its siblings, for the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchPosition {
    /// 1-based index among the siblings, and how many there are.
    pub index: usize,
    pub count: usize,
    /// The run and step this branch left (None for a prompt's run).
    pub parent: Option<(u64, usize)>,
    /// How many branches leave the shown run.
    pub children: usize,
}

#[derive(Clone, Debug, Default)]
pub struct SettingsState {
    pub selected: usize,
    pub editing: Option<String>,
    /// The name being typed for a new preset.
    pub naming: Option<String>,
}

pub struct App {
    pub theme: Theme,
    pub keymap: Keymap,
    pub config: Config,
    pub defaults: Config,
    /// The settings as the user's file has them (as loaded or last saved):
    /// what differs from it is written back when the settings close.
    pub saved_config: Config,
    /// Sampler presets by name, for the compare view (built in unless the
    /// caller loads the user's too).
    pub presets: presets::Presets,
    pub config_path: String,
    pub model_label: String,
    pub info: Option<ModelInfo>,
    pub state: EngineState,
    pub editor: Editor,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    draft: String,
    /// The newest run started (generation, branch or comparison): its
    /// events move the engine state.
    pub run_id: u64,
    /// The run the main view shows (its tokens are in `tokens`).
    pub shown: u64,
    /// Every run and branch of this session, in start order.
    pub runs: Vec<RunNode>,
    /// The alternative selected in the probabilities pane (an index into
    /// the selected record's `top`).
    pub alt: usize,
    pub tokens: Vec<Tok>,
    pub prompt_len: usize,
    /// Positions the model has read in this run (attention exists below).
    pub cache_len: usize,
    pub cursor: usize,
    /// The cursor follows the newest token.
    pub follow: bool,
    pub output_top: usize,
    pub color_by: ColorBy,
    /// Whether the current run captures attention.
    pub run_captures: bool,
    pub timings: Timings,
    /// When the prompt finished running (live decode speed).
    prefilled_at: Option<Instant>,
    pub finish: Option<FinishReason>,
    pub message: Option<(Level, String)>,
    pub focus: Focus,
    pub overlay: Overlay,
    pub attention_view: bool,
    /// The compare view is open (it shows `compare`).
    pub compare_view: bool,
    pub compare: Option<CompareState>,
    /// The quick check and the bias pane (`ui::bias`).
    pub bias: BiasState,
    pub attn: AttnState,
    pub settings: SettingsState,
    pub help_scroll: usize,
    /// The terminal's area, as last seen.
    pub size: Rect,
    pub quit: bool,
    pub outbox: Vec<EngineCommand>,
    /// File work for the event loop ([`Effect`]).
    pub effects: Vec<Effect>,
    /// Whether finished runs are saved (the interface turns it on; tests
    /// and benchmarks leave it off).
    pub autosave: bool,
    /// Where this session is saved, once it has been.
    pub session_path: Option<PathBuf>,
    /// When this session began (unix seconds; 0 until the first save).
    pub session_created: u64,
    pub sessions: SessionsState,
}

impl App {
    pub fn new(config: Config, keymap: Keymap, theme: Theme, model_label: String) -> Self {
        Self {
            theme,
            keymap,
            color_by: config.ui.color_by,
            defaults: Config::defaults(),
            presets: presets::built_in(),
            saved_config: config.clone(),
            config,
            config_path: crate::store::config::path().display().to_string(),
            model_label,
            info: None,
            state: EngineState::Loading,
            editor: Editor::new(),
            history: Vec::new(),
            history_pos: None,
            draft: String::new(),
            run_id: 0,
            shown: 0,
            runs: Vec::new(),
            alt: 0,
            tokens: Vec::new(),
            prompt_len: 0,
            cache_len: 0,
            cursor: 0,
            follow: true,
            output_top: 0,
            run_captures: false,
            timings: Timings::default(),
            prefilled_at: None,
            finish: None,
            message: None,
            focus: Focus::Prompt,
            overlay: Overlay::None,
            attention_view: false,
            compare_view: false,
            compare: None,
            bias: BiasState::default(),
            attn: AttnState {
                zoom: 1,
                ..Default::default()
            },
            settings: SettingsState::default(),
            help_scroll: 0,
            size: Rect::new(0, 0, 80, 24),
            quit: false,
            outbox: Vec::new(),
            effects: Vec::new(),
            autosave: false,
            session_path: None,
            session_created: 0,
            sessions: SessionsState::default(),
        }
    }

    pub fn say(&mut self, level: Level, text: impl Into<String>) {
        self.message = Some((level, text.into()));
    }

    pub fn areas(&self) -> Areas {
        layout::areas(&self.screen(), self.size)
    }

    /// The plain facts the layout depends on.
    pub fn screen(&self) -> layout::Screen {
        layout::Screen {
            overlay: self.overlay != Overlay::None,
            bias: self.bias.is_open(),
            compare: self.compare_view,
            attention_view: self.attention_view,
            prompt_lines: self.editor.lines().len(),
            top_n: self.config.generation.top_n,
        }
    }

    /// The output's tokens wrapped into lines `width` columns wide.
    pub fn output_lines(&self, width: u16) -> Vec<Vec<text::Seg>> {
        text::layout_lines(self.tokens.iter().map(|t| t.text.as_str()), width)
    }

    /// Where the single-head heatmap's cells are in a pane at `area`.
    pub fn heatmap_cells(&self, area: Rect) -> Option<Rect> {
        layout::heatmap_cells(area, self.attn.overview, self.attention_view)
    }

    /// The query row shown at screen row `y` of the heatmap's `cells`.
    pub fn query_at(&self, cells: Rect, y: u16) -> Option<usize> {
        let rows_per_cell = if self.theme.color { 2 } else { 1 };
        layout::query_at(self.attention_window().0, rows_per_cell, cells, y)
    }

    /// Contexts tried for a key, most specific first.
    pub fn contexts(&self) -> Vec<Context> {
        let mut c = match self.overlay {
            Overlay::Help => vec![Context::Help],
            Overlay::Settings => vec![Context::Settings],
            Overlay::Sessions => vec![Context::Sessions],
            Overlay::None if self.bias.is_open() => vec![Context::Bias],
            Overlay::None if self.compare_view => vec![Context::Compare],
            Overlay::None if self.attention_view => vec![Context::Attention],
            Overlay::None => match self.focus {
                Focus::Prompt => vec![Context::Prompt],
                Focus::Output => vec![Context::Output],
                Focus::Probabilities => vec![Context::Probabilities, Context::Output],
                Focus::Attention => vec![Context::Attention],
            },
        };
        c.push(Context::Global);
        c
    }

    // ---- terminal input ------------------------------------------------

    /// Handles one terminal event; true when it may change the screen.
    pub fn on_terminal(&mut self, event: &Event) -> bool {
        match event {
            Event::Key(k) if k.kind != KeyEventKind::Release => self.on_key(k),
            Event::Key(_) => return false,
            Event::Mouse(m) => return self.on_mouse(m),
            Event::Resize(w, h) => self.size = Rect::new(0, 0, *w, *h),
            Event::Paste(text)
                if self.focus == Focus::Prompt
                    && self.overlay == Overlay::None
                    && !self.attention_view
                    && !self.compare_view
                    && !self.bias.is_open() =>
            {
                self.editor.insert_str(text)
            }
            _ => return false,
        }
        self.after_update();
        true
    }

    fn on_key(&mut self, k: &KeyEvent) {
        // Editing a setting, naming a preset or the quick check's swaps
        // takes every key.
        if self.overlay == Overlay::Settings && self.settings.naming.is_some() {
            return self.name_preset_key(k);
        }
        if self.overlay == Overlay::Settings && self.settings.editing.is_some() {
            return self.edit_setting_key(k);
        }
        if self.overlay == Overlay::None && self.bias.editing() {
            return self.bias_edit_key(k);
        }
        let Some(key) = Key::from_event(k) else {
            return;
        };
        if let Some(action) = self.keymap.resolve(&self.contexts(), key) {
            return self.update(action);
        }
        if self.overlay == Overlay::None
            && !self.attention_view
            && !self.compare_view
            && !self.bias.is_open()
            && self.focus == Focus::Prompt
        {
            self.edit_prompt_key(k);
        }
    }

    fn edit_prompt_key(&mut self, k: &KeyEvent) {
        let ctrl_or_alt = k.modifiers.intersects(
            crossterm::event::KeyModifiers::CONTROL | crossterm::event::KeyModifiers::ALT,
        );
        match k.code {
            KeyCode::Char(c) if !ctrl_or_alt => {
                self.editor.insert(c);
                self.history_pos = None;
            }
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::Up if !self.editor.up() => self.update(Action::HistoryPrev),
            KeyCode::Down if !self.editor.down() => self.update(Action::HistoryNext),
            _ => {}
        }
    }

    fn on_mouse(&mut self, m: &MouseEvent) -> bool {
        if self.overlay != Overlay::None || self.compare_view || self.bias.is_open() {
            return false;
        }
        let a = self.areas();
        let at_attention = a
            .attention
            .contains(ratatui::layout::Position::new(m.column, m.row));
        let at = ratatui::layout::Position::new(m.column, m.row);
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if a.output.contains(at) && !at_attention {
                    self.focus = Focus::Output;
                    let inner = layout::inner(a.output);
                    if inner.contains(at) {
                        let lines = self.output_lines(inner.width);
                        let row = self.output_top + (m.row - inner.y) as usize;
                        if let Some(tok) = text::token_at(&lines, row, m.column - inner.x) {
                            self.select(tok);
                        }
                    }
                } else if a.prompt.contains(at) {
                    self.focus = Focus::Prompt;
                } else if a.probs.contains(at) {
                    self.focus = Focus::Probabilities;
                } else if a.attention.contains(at) {
                    if !self.attention_view {
                        self.focus = Focus::Attention;
                    }
                    // A click on a heatmap row makes that token the query.
                    let cells = self.heatmap_cells(a.attention);
                    if let Some(q) = cells
                        .filter(|c| c.contains(at))
                        .and_then(|c| self.query_at(c, m.row))
                    {
                        self.select(q);
                    }
                } else {
                    return false;
                }
            }
            MouseEventKind::ScrollUp if a.output.contains(at) => self.update(Action::LineUp),
            MouseEventKind::ScrollDown if a.output.contains(at) => self.update(Action::LineDown),
            _ => return false,
        }
        self.after_update();
        true
    }

    fn select(&mut self, tok: usize) {
        if self.tokens.is_empty() {
            return;
        }
        let tok = tok.min(self.tokens.len() - 1);
        if tok != self.cursor {
            self.alt = 0;
        }
        self.cursor = tok;
        self.follow = self.cursor + 1 == self.tokens.len();
    }

    // ---- actions -------------------------------------------------------

    pub fn update(&mut self, action: Action) {
        let was_settings = self.overlay == Overlay::Settings;
        self.dispatch(action);
        if (was_settings && self.overlay != Overlay::Settings) || self.quit {
            self.queue_settings_save();
        }
    }

    /// The settings to keep: the edited config with the current colouring.
    pub fn settings_to_save(&self) -> Config {
        let mut c = self.config.clone();
        c.ui.color_by = self.color_by;
        c
    }

    /// Whether a setting differs from the user's file.
    pub fn settings_changed(&self) -> bool {
        let c = self.settings_to_save();
        let s = &self.saved_config;
        c.generation != s.generation || c.sampler != s.sampler || c.ui != s.ui
    }

    /// Queues writing the changed settings back (once; nothing when nothing
    /// changed).
    fn queue_settings_save(&mut self) {
        if self.settings_changed() && !self.effects.contains(&Effect::SaveSettings) {
            self.effects.push(Effect::SaveSettings);
        }
    }

    fn dispatch(&mut self, action: Action) {
        use Action::*;
        if matches!(action, AttentionView | Compare | Run) {
            self.bias.view = BiasView::None;
        }
        if self.compare_view
            && self.overlay == Overlay::None
            && matches!(
                action,
                TokenPrev | TokenNext | FirstToken | LastToken | ColumnPrev | ColumnNext
            )
        {
            self.compare_select(action);
            return self.after_update();
        }
        match action {
            ColumnPrev | ColumnNext => {}
            Quit => self.quit = true,
            Cancel => {
                if self.state == EngineState::Running {
                    self.outbox.push(EngineCommand::Cancel);
                    self.say(Level::Info, "cancelling");
                } else if self.overlay != Overlay::None {
                    self.overlay = Overlay::None;
                } else if self.bias.is_open() {
                    self.bias_close();
                } else if self.compare_view {
                    self.compare_view = false;
                } else if self.attention_view {
                    self.attention_view = false;
                } else {
                    self.message = None;
                }
            }
            Help => {
                self.overlay = if self.overlay == Overlay::Help {
                    Overlay::None
                } else {
                    Overlay::Help
                }
            }
            Settings => {
                self.overlay = if self.overlay == Overlay::Settings {
                    Overlay::None
                } else {
                    Overlay::Settings
                }
            }
            AttentionView => {
                self.overlay = Overlay::None;
                self.compare_view = false;
                self.attention_view = !self.attention_view;
            }
            CloseView => {
                if self.overlay != Overlay::None {
                    self.overlay = Overlay::None;
                } else if self.bias.is_open() {
                    self.bias_close();
                } else if self.compare_view {
                    self.compare_view = false;
                } else {
                    self.attention_view = false;
                }
            }
            FocusNext | FocusPrev => {
                let i = Focus::ORDER
                    .iter()
                    .position(|f| *f == self.focus)
                    .unwrap_or(0);
                let n = Focus::ORDER.len();
                let j = if action == FocusNext {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.focus = Focus::ORDER[j];
            }
            ToggleColor => {
                self.color_by = match self.color_by {
                    ColorBy::Probability => ColorBy::Entropy,
                    ColorBy::Entropy => ColorBy::Probability,
                };
            }
            ToggleCapture => {
                let g = &mut self.config.generation;
                g.capture_attention = !g.capture_attention;
                let on = if g.capture_attention { "on" } else { "off" };
                self.say(
                    Level::Info,
                    format!("attention capture {on} for the next run"),
                );
            }
            ToggleChat => {
                let g = &mut self.config.generation;
                g.chat = !g.chat;
                let m = if g.chat {
                    "chat (the model's template)"
                } else {
                    "plain text"
                };
                self.say(Level::Info, format!("prompt mode: {m}"));
            }
            Run | Submit => self.run(),
            QuickCheck => self.bias_quick_check(),
            BiasPane => self.bias_toggle_pane(),
            BiasRun | BiasPairs | BiasOpen | BiasSort | BiasDetail | BiasSave | BiasSwaps => {
                self.bias_update(action)
            }
            LineUp | LineDown | PageUp | PageDown
                if self.overlay == Overlay::None && self.bias.is_open() =>
            {
                self.bias_update(action)
            }
            Compare => self.compare(),
            Newline => self.editor.newline(),
            HistoryPrev => self.history_step(-1),
            HistoryNext => self.history_step(1),
            ClearPrompt => self.editor.clear(),
            TokenPrev => {
                if self.cursor > 0 {
                    self.select(self.cursor - 1);
                }
            }
            TokenNext => self.select(self.cursor + 1),
            LineUp | LineDown | PageUp | PageDown => {
                if self.overlay == Overlay::Sessions {
                    let n = self.sessions.entries.len();
                    self.sessions.selected = match action {
                        LineUp => self.sessions.selected.saturating_sub(1),
                        LineDown => (self.sessions.selected + 1).min(n.saturating_sub(1)),
                        PageUp => self.sessions.selected.saturating_sub(10),
                        _ => (self.sessions.selected + 10).min(n.saturating_sub(1)),
                    };
                } else if self.overlay == Overlay::Help {
                    self.help_scroll = match action {
                        LineUp => self.help_scroll.saturating_sub(1),
                        _ => self.help_scroll + 1,
                    };
                } else {
                    let page = layout::inner(self.areas().output).height.max(1) as isize;
                    let delta = match action {
                        LineUp => -1,
                        LineDown => 1,
                        PageUp => -page,
                        _ => page,
                    };
                    self.move_lines(delta);
                }
            }
            FirstToken => self.select(0),
            LastToken => {
                self.select(usize::MAX);
                self.follow = true;
            }
            LayerPrev | LayerNext => {
                let n = self.info.as_ref().map_or(1, |i| i.n_layer.max(1));
                self.attn.layer = if action == LayerNext {
                    (self.attn.layer + 1) % n
                } else {
                    (self.attn.layer + n - 1) % n
                };
            }
            HeadPrev | HeadNext => {
                let n = self.info.as_ref().map_or(1, |i| i.n_head.max(1));
                self.attn.mean = false;
                self.attn.head = if action == HeadNext {
                    (self.attn.head + 1) % n
                } else {
                    (self.attn.head + n - 1) % n
                };
            }
            MeanHeads => self.attn.mean = !self.attn.mean,
            RowScale => self.attn.per_row = !self.attn.per_row,
            Overview => self.attn.overview = !self.attn.overview,
            ZoomIn => self.attn.zoom = (self.attn.zoom * 2).min(256),
            ZoomOut => {
                self.attn.zoom = (self.attn.zoom / 2).max(1);
                if self.attn.zoom == 1 {
                    self.attn.pan = 0;
                }
            }
            PanKeysLeft | PanKeysRight => {
                let (q, _) = self.attention_window();
                let step = (q.len() / 4).max(1) as isize;
                self.attn.pan += if action == PanKeysRight { step } else { -step };
            }
            SettingPrev => self.settings.selected = self.settings.selected.saturating_sub(1),
            SettingNext => {
                self.settings.selected = (self.settings.selected + 1).min(fields::FIELDS.len() - 1)
            }
            EditSetting => {
                let field = fields::FIELDS[self.settings.selected.min(fields::FIELDS.len() - 1)];
                self.settings.editing = Some(fields::value_of(&self.config, field));
            }
            Increase | Decrease => {
                let field = fields::FIELDS[self.settings.selected.min(fields::FIELDS.len() - 1)];
                let up = action == Increase;
                if let Err(e) = fields::nudge(&mut self.config, field, up) {
                    self.say(Level::Error, e);
                }
            }
            Sessions => {
                if self.overlay == Overlay::Sessions {
                    self.overlay = Overlay::None;
                } else {
                    self.overlay = Overlay::Sessions;
                    self.sessions.listed = false;
                    self.effects.push(Effect::ListSessions);
                }
            }
            OpenSession => self.open_session(),
            SavePreset => self.settings.naming = Some(String::new()),
            AltPrev => self.alt = self.alt.saturating_sub(1),
            AltNext => {
                let n = self.selected_record().map_or(0, |r| r.top.len());
                self.alt = (self.alt + 1).min(n.saturating_sub(1));
            }
            Branch => self.branch(),
            BranchPrev | BranchNext | BranchParent | BranchChild => self.navigate(action),
            ResetSetting => {
                let field = fields::FIELDS[self.settings.selected.min(fields::FIELDS.len() - 1)];
                let v = fields::value_of(&self.defaults, field);
                if let Err(e) = fields::set(&mut self.config, field, &v) {
                    self.say(Level::Error, e);
                }
            }
        }
        self.after_update();
    }

    fn name_preset_key(&mut self, k: &KeyEvent) {
        let Some(name) = self.settings.naming.as_mut() else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.settings.naming = None,
            KeyCode::Enter => {
                let name = name.trim().to_string();
                self.save_preset(&name);
            }
            KeyCode::Backspace => {
                name.pop();
            }
            KeyCode::Char(c) => name.push(c),
            _ => {}
        }
    }

    /// Queues the current sampler settings to be saved as preset `name`.
    pub fn save_preset(&mut self, name: &str) {
        if !presets::valid_name(name) {
            return self.say(
                Level::Error,
                format!("`{name}` is not a preset name: use letters, digits, - and _"),
            );
        }
        self.settings.naming = None;
        self.effects.push(Effect::SavePreset {
            name: name.to_string(),
            settings: self.config.sampler.clone(),
        });
    }

    fn edit_setting_key(&mut self, k: &KeyEvent) {
        let Some(text) = self.settings.editing.as_mut() else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.settings.editing = None,
            KeyCode::Enter => {
                let field: Field =
                    fields::FIELDS[self.settings.selected.min(fields::FIELDS.len() - 1)];
                let value = text.clone();
                match fields::set(&mut self.config, field, &value) {
                    Ok(()) => {
                        self.settings.editing = None;
                        self.say(
                            Level::Info,
                            format!(
                                "{} = {}; used by the next run",
                                field.name,
                                fields::value_of(&self.config, field)
                            ),
                        );
                    }
                    Err(e) => self.say(Level::Error, e),
                }
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
    }

    fn history_step(&mut self, dir: isize) {
        if self.history.is_empty() {
            return;
        }
        let next = match (self.history_pos, dir < 0) {
            (None, true) => {
                self.draft = self.editor.text();
                Some(self.history.len() - 1)
            }
            (None, false) => return,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        self.history_pos = next;
        let text = next.map_or_else(|| self.draft.clone(), |i| self.history[i].clone());
        self.editor.set_text(&text);
    }

    fn move_lines(&mut self, delta: isize) {
        let inner = layout::inner(self.areas().output);
        let lines = self.output_lines(inner.width);
        let Some((row, col)) = text::position_of(&lines, self.cursor) else {
            return;
        };
        let target =
            (row as isize + delta).clamp(0, lines.len().saturating_sub(1) as isize) as usize;
        if let Some(t) = text::token_near(&lines, target, col) {
            self.select(t);
        }
    }

    /// Why the engine cannot take a run now, if so.
    fn busy(&self) -> Option<&'static str> {
        match self.state {
            EngineState::Loading => Some("the model is still loading"),
            EngineState::Failed => {
                Some("no model is loaded; quit and pass --model PATH to a GGUF file")
            }
            EngineState::Running => Some("a generation is running; Esc cancels it"),
            EngineState::Idle => None,
        }
    }

    /// Why no run can start now (as a message), if so.
    fn ready(&mut self) -> bool {
        match self.state {
            EngineState::Loading => {
                self.say(Level::Warn, "the model is still loading");
                return false;
            }
            EngineState::Failed => {
                self.say(
                    Level::Error,
                    "no model is loaded; quit and pass --model PATH to a GGUF file",
                );
                return false;
            }
            EngineState::Running => {
                self.say(Level::Warn, "a generation is running; Esc cancels it");
                return false;
            }
            EngineState::Idle => {}
        }
        if self.editor.is_blank() {
            self.say(
                Level::Warn,
                "the prompt is empty; type something to continue",
            );
            return false;
        }
        true
    }

    /// The request for prompt `text` under the current settings.
    fn request(&self, text: &str) -> Request {
        let g = &self.config.generation;
        let prompt = if g.chat {
            let mut messages = Vec::new();
            if !g.system.trim().is_empty() {
                messages.push(Message::new("system", g.system.clone()));
            }
            messages.push(Message::new("user", text.to_string()));
            Prompt::Chat(messages)
        } else {
            Prompt::Text(text.to_string())
        };
        Request {
            prompt,
            sampler: self.config.sampler.clone(),
            max_tokens: g.max_tokens,
            stop: Vec::new(),
            top_n: g.top_n,
            // Rows are asked for on demand, never attached to records.
            capture_attention: g.capture_attention,
            attach_attention: false,
            ignore_eos: false,
        }
    }

    /// Keeps `text` in the prompt history and empties the editor.
    fn remember(&mut self, text: String) {
        if self.history.last() != Some(&text) {
            self.history.push(text);
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        self.history_pos = None;
        self.editor.clear();
    }

    /// Starts a run with the prompt and the current settings.
    pub fn run(&mut self) {
        if !self.ready() {
            return;
        }
        let text = self.editor.text();
        let g = &self.config.generation;
        let request = self.request(&text);
        self.run_id += 1;
        self.runs.push(RunNode {
            id: self.run_id,
            parent: None,
            request: request.clone(),
            tokens: Vec::new(),
            prompt_len: 0,
            cache_len: 0,
            captures: g.capture_attention,
            timings: Timings::default(),
            finish: None,
            started: false,
            prompt_ids: Vec::new(),
            loaded: false,
        });
        self.outbox.push(EngineCommand::Generate {
            id: self.run_id,
            request: Box::new(request),
        });
        self.remember(text);
        self.compare_view = false;
        self.show(self.run_id);
        self.cursor = 0;
        self.follow = true;
        self.output_top = 0;
        self.state = EngineState::Running;
        self.message = None;
    }

    pub fn node(&self, id: u64) -> Option<&RunNode> {
        self.runs.iter().find(|n| n.id == id)
    }

    fn node_mut(&mut self, id: u64) -> Option<&mut RunNode> {
        self.runs.iter_mut().find(|n| n.id == id)
    }

    /// Shows run `id` in the main view (its tokens, probabilities and
    /// attention); the cursor stays where it was when the run has a token
    /// there.
    pub fn show(&mut self, id: u64) {
        let Some(n) = self.node(id).cloned() else {
            return;
        };
        self.shown = id;
        self.tokens = n.tokens;
        self.prompt_len = n.prompt_len;
        self.cache_len = n.cache_len;
        self.run_captures = n.captures;
        self.timings = n.timings;
        self.finish = n.finish;
        self.attn.data = None;
        self.attn.in_flight = None;
        self.attn.last_request = None;
        if !self.tokens.is_empty() {
            self.cursor = self.cursor.min(self.tokens.len() - 1);
            self.follow = self.cursor + 1 == self.tokens.len();
        }
    }

    /// Runs that left run `id`, by the step they left at (then start order).
    pub fn children(&self, id: u64) -> Vec<&RunNode> {
        let mut c: Vec<&RunNode> = self
            .runs
            .iter()
            .filter(|n| n.parent.is_some_and(|(p, _)| p == id))
            .collect();
        c.sort_by_key(|n| (n.parent.map(|(_, s)| s), n.id));
        c
    }

    /// The shown run's siblings (itself included, in start order):
    /// branches of the same run at the same step, or the prompt runs.
    pub fn siblings(&self) -> Vec<u64> {
        let parent = self.node(self.shown).map(|n| n.parent);
        match parent {
            None => Vec::new(),
            Some(p) => self
                .runs
                .iter()
                .filter(|n| n.parent == p)
                .map(|n| n.id)
                .collect(),
        }
    }

    /// Where the shown run sits in the tree (None before any run).
    pub fn branch_position(&self) -> Option<BranchPosition> {
        let node = self.node(self.shown)?;
        let siblings = self.siblings();
        Some(BranchPosition {
            index: siblings.iter().position(|&i| i == self.shown).unwrap_or(0) + 1,
            count: siblings.len(),
            parent: node.parent,
            children: self.children(self.shown).len(),
        })
    }

    /// Token indices (into `tokens`) where branches leave the shown run,
    /// and where the shown run left its parent.
    pub fn branch_marks(&self) -> Vec<usize> {
        let mut marks: Vec<usize> = self
            .children(self.shown)
            .iter()
            .filter_map(|c| c.parent.map(|(_, s)| self.prompt_len + s))
            .collect();
        if let Some((_, s)) = self.node(self.shown).and_then(|n| n.parent) {
            marks.push(self.prompt_len + s);
        }
        marks.sort_unstable();
        marks.dedup();
        marks
    }

    /// The step of the selected token, when it is a generated one.
    fn selected_step(&self) -> Option<usize> {
        self.selected_record().map(|r| r.step)
    }

    /// Forks the shown run at the selected token, taking the alternative
    /// selected in the probabilities pane; the engine goes on from there.
    pub fn branch(&mut self) {
        if let Some(why) = self.busy() {
            return self.say(Level::Warn, why);
        }
        if self.node(self.shown).is_some_and(|n| n.loaded) {
            return self.say(
                Level::Warn,
                "this run was opened from a session file and is not in the engine; run its prompt again to branch",
            );
        }
        let Some(record) = self.selected_record() else {
            return self.say(
                Level::Warn,
                "select a generated token (output pane) to branch from it",
            );
        };
        let Some(alt) = record
            .top
            .get(self.alt.min(record.top.len().saturating_sub(1)))
        else {
            return self.say(Level::Warn, "this token has no alternatives to branch to");
        };
        if alt.token_id == record.token_id {
            return self.say(
                Level::Warn,
                "that is the token the run chose; pick another alternative (up/down) to branch",
            );
        }
        let (step, token, text) = (record.step, alt.token_id, alt.text.clone());
        let Some(parent) = self.node(self.shown).cloned() else {
            return;
        };

        self.run_id += 1;
        let id = self.run_id;
        let keep = (parent.prompt_len + step).min(parent.tokens.len());
        self.runs.push(RunNode {
            id,
            parent: Some((parent.id, step)),
            request: parent.request.clone(),
            tokens: parent.tokens[..keep].to_vec(),
            prompt_len: parent.prompt_len,
            cache_len: keep.saturating_sub(1),
            captures: parent.captures,
            timings: Timings {
                prompt_tokens: parent.prompt_len,
                generated: step,
                ..Timings::default()
            },
            finish: None,
            started: false,
            prompt_ids: parent.prompt_ids.clone(),
            loaded: false,
        });
        self.outbox.push(EngineCommand::Branch {
            id,
            parent_id: parent.id,
            step,
            token,
        });
        self.show(id);
        self.follow = true;
        self.focus = Focus::Output;
        self.state = EngineState::Running;
        self.say(
            Level::Info,
            format!(
                "branching run {} at step {step} with “{}”; Esc cancels",
                parent.id,
                text::visible(&text)
            ),
        );
    }

    /// Moves through the run tree: siblings, parent, child.
    fn navigate(&mut self, action: Action) {
        let target = match action {
            Action::BranchPrev | Action::BranchNext => {
                let sib = self.siblings();
                let Some(i) = sib.iter().position(|&i| i == self.shown) else {
                    return;
                };
                if sib.len() < 2 {
                    return self.say(Level::Info, "this run has no sibling branches");
                }
                let j = if action == Action::BranchNext {
                    (i + 1) % sib.len()
                } else {
                    (i + sib.len() - 1) % sib.len()
                };
                sib[j]
            }
            Action::BranchParent => match self.node(self.shown).and_then(|n| n.parent) {
                Some((p, _)) if self.node(p).is_some() => p,
                _ => return self.say(Level::Info, "this run is not a branch"),
            },
            _ => {
                let here = self.selected_step().unwrap_or(0);
                let children = self.children(self.shown);
                let pick = children
                    .iter()
                    .find(|c| c.parent.is_some_and(|(_, s)| s >= here))
                    .or(children.first());
                match pick {
                    Some(c) => c.id,
                    None => return self.say(Level::Info, "no branch leaves this run"),
                }
            }
        };
        // The cursor goes to where the two runs part.
        let at = match action {
            Action::BranchParent => self.node(self.shown).and_then(|n| n.parent),
            _ => self.node(target).and_then(|n| n.parent),
        }
        .map(|(_, s)| self.prompt_len + s);
        self.show(target);
        if let Some(at) = at {
            self.select(at);
        }
    }

    /// Runs the prompt under each preset of `[compare] presets` (the first
    /// [`MAX_COMPARE_COLUMNS`]; one seed, the current token limit) and
    /// opens the compare view.
    pub fn compare(&mut self) {
        // With an empty prompt, the last comparison (one opened from a
        // session included) is shown again.
        if self.editor.is_blank() && self.compare.is_some() && self.overlay == Overlay::None {
            self.attention_view = false;
            self.compare_view = true;
            return;
        }
        if !self.ready() {
            return;
        }
        let names: Vec<String> = self
            .config
            .compare
            .presets
            .iter()
            .take(MAX_COMPARE_COLUMNS)
            .cloned()
            .collect();
        if let Some(unknown) = names.iter().find(|n| !self.presets.contains_key(*n)) {
            let known: Vec<&str> = self.presets.keys().map(String::as_str).collect();
            return self.say(
                Level::Error,
                format!(
                    "[compare] presets: unknown preset `{unknown}`; known: {}",
                    known.join(", ")
                ),
            );
        }
        let seed = self.config.sampler.seed;
        let presets: Vec<(String, SamplerSettings)> = names
            .into_iter()
            .filter_map(|name| {
                let s = self.presets.get(&name)?.clone();
                Some((name, SamplerSettings { seed, ..s }))
            })
            .collect();
        if presets.len() < 2 {
            return self.say(
                Level::Error,
                "[compare] presets: give 2 to 4 presets to compare",
            );
        }
        let text = self.editor.text();
        let request = self.request(&text);
        self.run_id += 1;
        self.compare = Some(CompareState {
            id: self.run_id,
            captures: request.capture_attention,
            request: Some(request.clone()),
            columns: presets
                .iter()
                .map(|(name, settings)| CompareColumn {
                    preset: name.clone(),
                    settings: settings.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        self.outbox.push(EngineCommand::Compare {
            id: self.run_id,
            request: Box::new(request),
            presets,
        });
        self.remember(text);
        self.overlay = Overlay::None;
        self.attention_view = false;
        self.compare_view = true;
        self.state = EngineState::Running;
        self.say(Level::Info, "comparing; Esc cancels");
    }

    // ---- sessions ------------------------------------------------------

    /// Everything to see this session's runs again: every started run and
    /// branch (parents by index), then the compare columns. None before
    /// any run.
    pub fn to_session(&self, model: ModelIdentity) -> Option<Session> {
        let started: Vec<&RunNode> = self.runs.iter().filter(|n| n.started).collect();
        let cmp = self
            .compare
            .as_ref()
            .filter(|c| c.columns.iter().any(|col| !col.records.is_empty()));
        let first = started
            .first()
            .map(|n| &n.request)
            .or_else(|| cmp.and_then(|c| c.request.as_ref()))?;
        let template = match first.prompt {
            Prompt::Chat(_) => self.info.as_ref().and_then(|i| i.chat_template.clone()),
            _ => None,
        };
        let prompt_tokens = started
            .first()
            .map(|n| n.prompt_ids.clone())
            .unwrap_or_default();
        let mut session = Session::new(model, first.prompt.clone(), prompt_tokens, template);
        if self.session_created > 0 {
            session.created_unix = self.session_created;
        }
        let index = |id: u64| started.iter().position(|n| n.id == id);
        for n in &started {
            let steps: Vec<StepRecord> = n.records().cloned().collect();
            session.runs.push(Run {
                label: match n.parent {
                    None => format!("run {}", n.id),
                    Some((p, s)) => format!("run {} (branch of run {p} at step {s})", n.id),
                },
                request: n.request.clone(),
                parent: n
                    .parent
                    .and_then(|(p, step)| index(p).map(|run| BranchPoint { run, step })),
                text: steps.iter().map(|s| s.text.as_str()).collect(),
                steps,
                finish: n.finish,
                timings: n.timings,
                prompt_texts: n.tokens[..n.prompt_len.min(n.tokens.len())]
                    .iter()
                    .map(|t| t.text.clone())
                    .collect(),
            });
        }
        if let Some(c) = cmp {
            let request = c.request.clone().unwrap_or_else(|| first.clone());
            for col in &c.columns {
                session.compare.push(session.runs.len());
                session.runs.push(Run {
                    label: col.preset.clone(),
                    request: Request {
                        sampler: col.settings.clone(),
                        ..request.clone()
                    },
                    parent: None,
                    steps: col.records.clone(),
                    text: col.text.clone(),
                    finish: col.finish,
                    timings: col.timings,
                    prompt_texts: c.prompt.clone(),
                });
            }
        }
        Some(session)
    }

    /// The session folder as read by the event loop.
    pub fn set_sessions(&mut self, entries: Vec<SessionEntry>) {
        self.sessions.selected = self.sessions.selected.min(entries.len().saturating_sub(1));
        self.sessions.entries = entries;
        self.sessions.listed = true;
    }

    fn open_session(&mut self) {
        let Some(entry) = self.sessions.entries.get(self.sessions.selected) else {
            return;
        };
        if let Some(e) = &entry.error {
            let e = e.clone();
            return self.say(Level::Error, e);
        }
        if self.state == EngineState::Running {
            return self.say(Level::Warn, "a generation is running; Esc cancels it");
        }
        self.effects.push(Effect::LoadSession(entry.path.clone()));
    }

    /// Shows the runs of a session read from `path` (they are not in the
    /// engine: they can be looked at, not branched; `lmscope session
    /// replay` runs them again). Later saves go to the same file.
    pub fn load_session(&mut self, path: PathBuf, session: Session) {
        self.runs.clear();
        self.compare = None;
        let mut ids: Vec<Option<u64>> = Vec::new();
        for (i, r) in session.runs.iter().enumerate() {
            if session.compare.contains(&i) {
                ids.push(None);
                continue;
            }
            self.run_id += 1;
            ids.push(Some(self.run_id));
            let mut tokens: Vec<Tok> = r
                .prompt_texts
                .iter()
                .map(|t| Tok {
                    text: t.clone(),
                    record: None,
                })
                .collect();
            let prompt_len = tokens.len();
            tokens.extend(r.steps.iter().map(|s| Tok {
                text: s.text.clone(),
                record: Some(Box::new(s.clone())),
            }));
            let parent = r
                .parent
                .and_then(|bp| ids.get(bp.run).copied().flatten().map(|p| (p, bp.step)));
            self.runs.push(RunNode {
                id: self.run_id,
                parent,
                request: r.request.clone(),
                tokens,
                prompt_len,
                cache_len: 0,
                captures: false,
                timings: r.timings,
                finish: r.finish,
                started: true,
                prompt_ids: if i == 0 {
                    session.prompt_tokens.clone()
                } else {
                    Vec::new()
                },
                loaded: true,
            });
        }
        if !session.compare.is_empty() {
            self.run_id += 1;
            let cols: Vec<&Run> = session
                .compare
                .iter()
                .filter_map(|&i| session.runs.get(i))
                .collect();
            self.compare = Some(CompareState {
                id: self.run_id,
                prompt: cols
                    .first()
                    .map(|r| r.prompt_texts.clone())
                    .unwrap_or_default(),
                request: cols.first().map(|r| r.request.clone()),
                columns: cols
                    .iter()
                    .map(|r| CompareColumn {
                        preset: r.label.clone(),
                        settings: r.request.sampler.clone(),
                        records: r.steps.clone(),
                        text: r.text.clone(),
                        timings: r.timings,
                        finish: r.finish,
                    })
                    .collect(),
                ..Default::default()
            });
        }
        self.overlay = Overlay::None;
        self.attention_view = false;
        self.compare_view = self.runs.is_empty() && self.compare.is_some();
        match self.runs.last().map(|n| n.id) {
            Some(id) => {
                self.cursor = usize::MAX;
                self.show(id);
                self.follow = true;
            }
            None => {
                self.shown = 0;
                self.tokens.clear();
                self.prompt_len = 0;
                self.cache_len = 0;
                self.finish = None;
            }
        }
        self.session_created = session.created_unix;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.session_path = Some(path);
        self.say(
            Level::Info,
            format!(
                "opened session {name}: {} runs; `lmscope session replay` runs them again",
                session.runs.len()
            ),
        );
    }

    /// Moves the compare view's token cursor and asks for its attention.
    fn compare_select(&mut self, action: Action) {
        let Some(cmp) = self.compare.as_mut() else {
            return;
        };
        let n = cmp.columns.len();
        let len = |c: usize| cmp.columns.get(c).map_or(0, |col| col.records.len());
        let Some((mut col, mut step)) = cmp
            .selected
            .or_else(|| (0..n).find(|&c| len(c) > 0).map(|c| (c, 0)))
        else {
            return;
        };
        let was = cmp.selected;
        if was.is_some() {
            match action {
                Action::ColumnPrev => col = (col + n - 1) % n,
                Action::ColumnNext => col = (col + 1) % n,
                Action::TokenPrev => step = step.saturating_sub(1),
                Action::TokenNext => step += 1,
                Action::FirstToken => step = 0,
                _ => step = usize::MAX,
            }
        }
        if len(col) == 0 {
            return;
        }
        step = step.min(len(col) - 1);
        cmp.selected = Some((col, step));
        if cmp.selected != was {
            cmp.attention = None;
        }
    }

    /// Asks for the selected compare token's attention row (the columns
    /// are kept by the engine once all have finished).
    fn request_compare_attention(&mut self) {
        let layer = self.attn.layer;
        let Some(cmp) = self.compare.as_ref() else {
            return;
        };
        let Some((col, step)) = cmp.selected else {
            return;
        };
        if !cmp.captures || !cmp.finished() || self.state == EngineState::Running {
            return;
        }
        if cmp.asked == Some((col, step, layer)) {
            return;
        }
        let Some(q) = compare_query(cmp, col, step) else {
            return;
        };
        let id = compare_column_id(cmp.id, col);
        if let Some(cmp) = self.compare.as_mut() {
            cmp.asked = Some((col, step, layer));
        }
        self.outbox.push(EngineCommand::Attention {
            id,
            layer,
            queries: q..q + 1,
        });
    }

    fn on_compare(&mut self, event: EngineEvent) {
        let Some(cmp) = self.compare.as_mut() else {
            return;
        };
        match event {
            EngineEvent::Prefilled { id, prompt, .. } if id == cmp.id => {
                cmp.prompt = prompt.texts;
            }
            EngineEvent::Attention(la)
                if cmp
                    .selected
                    .is_some_and(|(c, _)| compare_column_id(cmp.id, c) == la.id) =>
            {
                cmp.attention = Some(la);
            }
            EngineEvent::CompareStep {
                id,
                column,
                record,
                text_delta,
            } if id == cmp.id => {
                if let Some(c) = cmp.columns.get_mut(column) {
                    c.text.push_str(&text_delta);
                    c.records.push(*record);
                    c.timings.generated = c.records.len();
                }
            }
            EngineEvent::CompareFinished {
                id,
                column,
                reason,
                timings,
            } if id == cmp.id => {
                if let Some(c) = cmp.columns.get_mut(column) {
                    c.finish = Some(reason);
                    c.timings = timings;
                }
                if cmp.finished() {
                    self.effects.push(Effect::Autosave);
                    self.state = EngineState::Idle;
                    if !matches!(self.message, Some((Level::Error, _))) {
                        self.say(
                            Level::Info,
                            "comparison finished; arrows select a token (its probabilities and attention); Esc closes",
                        );
                    }
                }
            }
            _ => {}
        }
    }

    // ---- engine events -------------------------------------------------

    pub fn on_engine(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::Loaded(info) => {
                self.state = EngineState::Idle;
                // The file name says more than the GGUF's general.name
                // (quantisation included).
                if !matches!(self.message, Some((Level::Warn | Level::Error, _))) {
                    let name = self.model_label.clone();
                    self.say(
                        Level::Info,
                        format!("{name} loaded; type a prompt and press Enter"),
                    );
                }
                self.info = Some(*info);
            }
            EngineEvent::LoadFailed(e) => {
                self.state = EngineState::Failed;
                self.say(
                    Level::Error,
                    format!("{e}; quit (ctrl-q) and pass --model PATH"),
                );
            }
            EngineEvent::Prefilled {
                id,
                prompt,
                cache_len,
            } if self.compare.as_ref().is_none_or(|c| c.id != id) => {
                let tokens: Vec<Tok> = prompt
                    .texts
                    .into_iter()
                    .map(|text| Tok { text, record: None })
                    .collect();
                if let Some(n) = self.node_mut(id) {
                    n.started = true;
                    n.prompt_ids = prompt.token_ids.clone();
                    n.prompt_len = tokens.len();
                    n.tokens = tokens.clone();
                    n.cache_len = cache_len;
                    n.timings.prompt_tokens = tokens.len();
                }
                if id != self.shown {
                    return self.after_update();
                }
                self.prompt_len = tokens.len();
                self.tokens = tokens;
                self.cache_len = cache_len;
                self.timings.prompt_tokens = self.prompt_len;
                self.prefilled_at = Some(Instant::now());
                if self.follow {
                    self.select(usize::MAX);
                }
            }
            EngineEvent::Branched { id, cache_len, .. } => {
                if let Some(n) = self.node_mut(id) {
                    n.started = true;
                    n.cache_len = cache_len;
                }
                if id == self.shown {
                    self.cache_len = cache_len;
                    self.prefilled_at = Some(Instant::now());
                }
            }
            EngineEvent::Step {
                id,
                record,
                cache_len,
                ..
            } => {
                let tok = Tok {
                    text: record.text.clone(),
                    record: Some(record),
                };
                if let Some(n) = self.node_mut(id) {
                    n.tokens.push(tok.clone());
                    n.cache_len = cache_len;
                    n.timings.generated += 1;
                }
                if id != self.shown {
                    return self.after_update();
                }
                self.tokens.push(tok);
                self.cache_len = cache_len;
                self.timings.generated += 1;
                if let Some(at) = self.prefilled_at {
                    self.timings.decode_s = at.elapsed().as_secs_f64();
                }
                if self.follow {
                    self.cursor = self.tokens.len() - 1;
                }
            }
            EngineEvent::Finished {
                id,
                reason,
                timings,
            } => {
                let mut dropped = None;
                if let Some(n) = self.node_mut(id) {
                    if n.started {
                        n.finish = Some(reason);
                        n.timings = timings;
                        self.effects.push(Effect::Autosave);
                    } else {
                        // A branch that could not start (the error came first).
                        dropped = Some(n.parent);
                    }
                }
                if let Some(parent) = dropped {
                    self.runs.retain(|n| n.id != id);
                    if id == self.shown
                        && let Some((p, s)) = parent
                    {
                        self.show(p);
                        self.select(self.prompt_len + s);
                    }
                }
                if id == self.run_id {
                    self.state = EngineState::Idle;
                }
                if id != self.shown || dropped.is_some() {
                    return self.after_update();
                }
                self.timings = timings;
                self.finish = Some(reason);
                if !matches!(self.message, Some((Level::Error, _))) {
                    self.say(
                        Level::Info,
                        format!(
                            "finished ({}): {} tokens at {:.1} tok/s",
                            reason.as_str(),
                            timings.generated,
                            timings.decode_tok_s()
                        ),
                    );
                }
                // The last rows may have changed since the last refresh.
                self.attn.last_request = None;
            }
            EngineEvent::Attention(la) if la.id == self.shown => {
                self.attn.in_flight = None;
                self.attn.data = Some(LayerAttention {
                    rows: with_mean(la.rows),
                    ..la
                });
            }
            EngineEvent::Error { id, message } if id.is_none() || id == Some(self.run_id) => {
                // A panic (no id) ends a comparison in flight.
                if let Some(cmp) = self.compare.as_mut().filter(|c| c.id == self.run_id)
                    && id.is_none()
                    && self.state == EngineState::Running
                {
                    for c in &mut cmp.columns {
                        c.finish.get_or_insert(FinishReason::Cancelled);
                    }
                    self.state = EngineState::Idle;
                }
                self.say(Level::Error, message);
            }
            e @ (EngineEvent::CompareStep { .. }
            | EngineEvent::CompareFinished { .. }
            | EngineEvent::Attention(_)
            | EngineEvent::Prefilled { .. }) => self.on_compare(e),
            e @ (EngineEvent::TaskProgress { .. } | EngineEvent::TaskDone { .. }) => {
                self.bias_on_event(e)
            }
            _ => {} // Events of a replaced run.
        }
        self.after_update();
    }

    // ---- derived state -------------------------------------------------

    /// Keeps the output cursor visible and asks for attention as needed.
    fn after_update(&mut self) {
        if !self.tokens.is_empty() {
            self.cursor = self.cursor.min(self.tokens.len() - 1);
        }
        let inner = layout::inner(self.areas().output);
        if inner.height > 0 && inner.width > 0 {
            let lines = self.output_lines(inner.width);
            let h = inner.height as usize;
            let row = text::position_of(&lines, self.cursor).map_or(0, |(r, _)| r);
            if self.follow {
                self.output_top = lines.len().saturating_sub(h);
            }
            if row < self.output_top {
                self.output_top = row;
            } else if row >= self.output_top + h {
                self.output_top = row + 1 - h;
            }
        }
        self.request_attention(Instant::now());
        if self.compare_view {
            self.request_compare_attention();
        }
    }

    /// Called on each frame tick.
    pub fn tick(&mut self, now: Instant) {
        self.request_attention(now);
    }

    /// Whether any attention is on screen.
    pub fn attention_visible(&self) -> bool {
        self.overlay == Overlay::None && (self.attention_view || !self.areas().attention.is_empty())
    }

    /// The query the attention views look from: the selected token, or the
    /// newest position the model has read when the selected token has not
    /// been read yet (the newest sampled token).
    pub fn query(&self) -> Option<usize> {
        if self.cache_len == 0 || self.tokens.is_empty() {
            return None;
        }
        Some(self.cursor.min(self.cache_len - 1))
    }

    /// Query rows and key columns the heatmap shows.
    pub fn attention_window(&self) -> (Range<usize>, Range<usize>) {
        let len = self.cache_len;
        let Some(q) = self.query() else {
            return (0..0, 0..0);
        };
        let span = (len / self.attn.zoom.max(1)).max(1);
        let qs = q.saturating_sub(span / 2).min(len - span);
        let ks = (qs as isize + self.attn.pan).clamp(0, (len - span) as isize) as usize;
        (qs..qs + span, ks..ks + span)
    }

    /// The rows to ask the engine for: the visible window, widened to all
    /// queries when they fit.
    fn wanted_rows(&self) -> Option<Range<usize>> {
        let q = self.query()?;
        let len = self.cache_len;
        if len <= MAX_ATTENTION_ROWS {
            return Some(0..len);
        }
        let (window, _) = self.attention_window();
        // The visible rows when they fit, else rows centred on the query.
        let start = if window.len() <= MAX_ATTENTION_ROWS {
            window.start.min(len - MAX_ATTENTION_ROWS)
        } else {
            q.saturating_sub(MAX_ATTENTION_ROWS / 2)
                .min(len - MAX_ATTENTION_ROWS)
        };
        Some(start..start + MAX_ATTENTION_ROWS)
    }

    /// Whether rows `have` serve the view: the query's row, and every
    /// visible row when they fit in one request.
    fn rows_serve(&self, have: Range<usize>) -> bool {
        let Some(q) = self.query() else { return true };
        let (window, _) = self.attention_window();
        let needed = if window.len() <= MAX_ATTENTION_ROWS {
            window
        } else {
            q..q + 1
        };
        have.contains(&q) && have.start <= needed.start && have.end >= needed.end
    }

    fn request_attention(&mut self, now: Instant) {
        if !self.run_captures || !self.attention_visible() || self.state == EngineState::Loading {
            return;
        }
        let Some(want) = self.wanted_rows() else {
            return;
        };
        let layer = self.attn.layer;
        let covered = self.attn.data.as_ref().is_some_and(|d| {
            let r = &d.rows;
            d.id == self.shown
                && d.layer == layer
                && self.rows_serve(r.first_query..r.first_query + r.n_query)
        });
        if covered {
            return;
        }
        if let Some((at, l, ref range)) = self.attn.in_flight {
            let same = l == layer && self.rows_serve(range.clone());
            if now.duration_since(at) < ATTENTION_TIMEOUT
                && (same || now.duration_since(at) < Duration::from_millis(50))
            {
                return;
            }
        }
        // While streaming, a layer already shown is refreshed at a capped rate.
        let have_layer = self
            .attn
            .data
            .as_ref()
            .is_some_and(|d| d.id == self.shown && d.layer == layer);
        if have_layer
            && self.state == EngineState::Running
            && self
                .attn
                .last_request
                .is_some_and(|t| now.duration_since(t) < ATTENTION_REFRESH)
        {
            return;
        }
        self.attn.in_flight = Some((now, layer, want.clone()));
        self.attn.last_request = Some(now);
        self.outbox.push(EngineCommand::Attention {
            id: self.shown,
            layer,
            queries: want,
        });
    }

    /// The selected compare token's record: (column's preset, record).
    pub fn compare_selected(&self) -> Option<(&str, &StepRecord)> {
        let cmp = self.compare.as_ref()?;
        let (c, s) = cmp.selected?;
        let col = cmp.columns.get(c)?;
        Some((col.preset.as_str(), col.records.get(s)?))
    }

    /// The keys the selected compare token's query attends to most, mean
    /// over heads: (position, token text, weight), heaviest first.
    pub fn compare_attended(&self, n: usize) -> Vec<(usize, String, f32)> {
        let Some(cmp) = self.compare.as_ref() else {
            return Vec::new();
        };
        let (Some((c, s)), Some(a)) = (cmp.selected, cmp.attention.as_ref()) else {
            return Vec::new();
        };
        let Some(q) = compare_query(cmp, c, s) else {
            return Vec::new();
        };
        let r = &a.rows;
        if r.n_query != 1 || r.first_query != q || r.n_head == 0 {
            return Vec::new();
        }
        let keys = (q + 1).min(r.n_key);
        let mut mean = vec![0.0f32; keys];
        for h in 0..r.n_head {
            let row = &r.data[h * r.n_key..h * r.n_key + keys];
            for (m, w) in mean.iter_mut().zip(row) {
                *m += w / r.n_head as f32;
            }
        }
        let records = &cmp.columns[c].records;
        let text = |k: usize| {
            cmp.prompt.get(k).cloned().unwrap_or_else(|| {
                let first = records.first().map_or(0, |r| r.position);
                k.checked_sub(first)
                    .and_then(|i| records.get(i))
                    .map_or_else(String::new, |r| r.text.clone())
            })
        };
        let mut pairs: Vec<(usize, f32)> = mean
            .into_iter()
            .enumerate()
            .filter(|(_, w)| w.is_finite())
            .collect();
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
        pairs.truncate(n);
        pairs.into_iter().map(|(k, w)| (k, text(k), w)).collect()
    }

    /// The head index into the layer data (`n_head` is the mean).
    pub fn head_index(&self) -> usize {
        match (&self.attn.data, self.attn.mean) {
            (Some(d), true) => d.rows.n_head,
            _ => self.attn.head,
        }
    }

    /// The keys the query attends to most: (position, weight), heaviest first.
    pub fn top_attended(&self, n: usize) -> Vec<(usize, f32)> {
        let (Some(d), Some(q)) = (&self.attn.data, self.query()) else {
            return Vec::new();
        };
        let r = &d.rows;
        if q < r.first_query || q >= r.first_query + r.n_query {
            return Vec::new();
        }
        let start = (self.head_index() * r.n_query + (q - r.first_query)) * r.n_key;
        let Some(row) = r.data.get(start..start + (q + 1).min(r.n_key)) else {
            return Vec::new();
        };
        let mut pairs: Vec<(usize, f32)> = row
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, w)| w.is_finite())
            .collect();
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
        pairs.truncate(n);
        pairs
    }

    pub fn selected_record(&self) -> Option<&StepRecord> {
        self.tokens
            .get(self.cursor)
            .and_then(|t| t.record.as_deref())
    }
}

/// The attention query for compare column `col`'s step `step`: its own
/// position, or the newest the column's cache has read (a column's last
/// token is never fed to the model).
pub fn compare_query(cmp: &CompareState, col: usize, step: usize) -> Option<usize> {
    let records = &cmp.columns.get(col)?.records;
    let r = records.get(step)?;
    let first = records.first()?.position;
    let read = (first + records.len()).checked_sub(2)?;
    Some(r.position.min(read))
}
