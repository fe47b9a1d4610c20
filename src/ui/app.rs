//! The interface's composition and routing: the views' state side by side,
//! which of them is on screen, and the one `update`. Terminal input
//! resolves to an [`Action`] through the keymap and goes to the view it
//! belongs to; engine events go to the view whose run they tag. What views
//! ask for ([`Out`]) is queued here: commands in `outbox` (the event loop
//! sends them) and file work in `effects`, so this module does no I/O.

use std::path::PathBuf;
use std::time::Instant;

use crossterm::event::{Event, KeyEvent, KeyEventKind, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::keymap::{Action, Context, Key, Keymap};
use super::layout::{self, Areas};
use super::state::{Effect, EngineState, Focus, Level, Overlay, Tok};
use super::text;
use super::theme::Theme;
use super::views::attention::{AttentionView, Sequence};
use super::views::bias::{self, BiasState, BiasView};
use super::views::compare::{CompareState, MAX_COMPARE_COLUMNS};
use super::views::output::OutputView;
use super::views::positions::PositionsView;
use super::views::probs::ProbsView;
use super::views::prompt::{self, Edge, PromptView};
use super::views::runs::{Move, RunNode, RunTree};
use super::views::sessions::SessionsView;
use super::views::settings::SettingsView;
use super::views::{self, Out};
use crate::engine::Prompt;
use crate::engine::handle::{EngineCommand, EngineEvent};
use crate::engine::sampling::SamplerSettings;
use crate::engine::types::ModelInfo;
use crate::store::config::{ColorBy, Config};
use crate::store::presets;
use crate::store::session::{ModelIdentity, Session};

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
    pub message: Option<(Level, String)>,

    // The views.
    pub prompt: PromptView,
    pub output: OutputView,
    pub probs: ProbsView,
    pub tree: RunTree,
    pub attn: AttentionView,
    pub positions: PositionsView,
    pub settings: SettingsView,
    /// The last comparison (shown in the compare view).
    pub compare: Option<CompareState>,
    pub sessions: SessionsView,
    /// The quick check and the bias pane.
    pub bias: BiasState,
    pub help_scroll: usize,

    // Which of them is on screen.
    pub focus: Focus,
    pub overlay: Overlay,
    pub attention_view: bool,
    pub compare_view: bool,

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
}

impl App {
    pub fn new(config: Config, keymap: Keymap, theme: Theme, model_label: String) -> Self {
        Self {
            theme,
            keymap,
            output: OutputView::new(config.ui.color_by),
            defaults: Config::defaults(),
            presets: presets::built_in(),
            saved_config: config.clone(),
            config,
            config_path: crate::store::config::path().display().to_string(),
            model_label,
            info: None,
            state: EngineState::Loading,
            message: None,
            prompt: PromptView::new(),
            probs: ProbsView::default(),
            tree: RunTree::default(),
            attn: AttentionView::default(),
            positions: PositionsView::default(),
            settings: SettingsView::default(),
            compare: None,
            sessions: SessionsView::default(),
            bias: BiasState::default(),
            help_scroll: 0,
            focus: Focus::Prompt,
            overlay: Overlay::None,
            attention_view: false,
            compare_view: false,
            size: Rect::new(0, 0, 80, 24),
            quit: false,
            outbox: Vec::new(),
            effects: Vec::new(),
            autosave: false,
            session_path: None,
            session_created: 0,
        }
    }

    pub fn say(&mut self, level: Level, text: impl Into<String>) {
        self.message = Some((level, text.into()));
    }

    /// Carries out what a view asked for.
    pub fn apply(&mut self, out: Out) {
        self.outbox.extend(out.commands);
        self.effects.extend(out.effects);
        if let Some(s) = out.engine {
            self.state = s;
        }
        if let Some((level, text)) = out.message {
            self.say(level, text);
        }
        if let Some(text) = out.note
            && !matches!(self.message, Some((Level::Error, _)))
        {
            self.say(Level::Info, text);
        }
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
            prompt_lines: self.prompt.editor.lines().len(),
            top_n: self.config.generation.top_n,
        }
    }

    /// What the attention view looks at: the shown run's query and length.
    pub fn sequence(&self) -> Sequence {
        self.output.sequence(self.tree.shown)
    }

    /// Whether the main view (prompt, output, probabilities and the small
    /// attention pane) is on screen.
    fn main_view(&self) -> bool {
        self.overlay == Overlay::None
            && !self.attention_view
            && !self.compare_view
            && !self.bias.is_open()
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
            Event::Paste(text) if self.focus == Focus::Prompt && self.main_view() => {
                self.prompt.editor.insert_str(text)
            }
            _ => return false,
        }
        self.after_update();
        true
    }

    fn on_key(&mut self, k: &KeyEvent) {
        // Editing a setting, naming a preset or the quick check's swaps
        // takes every key.
        if self.overlay == Overlay::Settings && self.settings.typing() {
            let mut out = Out::default();
            self.settings.key(k, &mut self.config, &mut out);
            return self.apply(out);
        }
        if self.overlay == Overlay::None && self.bias.editing() {
            let mut out = Out::default();
            let ctx = self.bias_ctx();
            self.bias.edit_key(k, &ctx, &mut out);
            return self.apply(out);
        }
        let Some(key) = Key::from_event(k) else {
            return;
        };
        if let Some(action) = self.keymap.resolve(&self.contexts(), key) {
            return self.update(action);
        }
        if self.main_view() && self.focus == Focus::Prompt {
            match self.prompt.key(k) {
                Some(Edge::Up) => self.update(Action::HistoryPrev),
                Some(Edge::Down) => self.update(Action::HistoryNext),
                None => {}
            }
        }
    }

    fn on_mouse(&mut self, m: &MouseEvent) -> bool {
        if self.overlay != Overlay::None || self.compare_view || self.bias.is_open() {
            return false;
        }
        let a = self.areas();
        let at = Position::new(m.column, m.row);
        let at_attention = a.attention.contains(at);
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if a.output.contains(at) && !at_attention {
                    self.focus = Focus::Output;
                    let inner = layout::inner(a.output);
                    if inner.contains(at)
                        && let Some(tok) = self.output.token_at(inner, m.column, m.row)
                    {
                        self.select(tok);
                    }
                } else if a.prompt.contains(at) {
                    self.focus = Focus::Prompt;
                } else if a.probs.contains(at) {
                    self.focus = Focus::Probabilities;
                } else if at_attention {
                    if !self.attention_view {
                        self.focus = Focus::Attention;
                    }
                    // A click on a heatmap row makes that token the query.
                    let rows_per_cell = if self.theme.color { 2 } else { 1 };
                    let cells = self.attn.heatmap_cells(a.attention, self.attention_view);
                    if let Some(q) = cells
                        .filter(|c| c.contains(at))
                        .and_then(|c| self.attn.query_at(self.sequence(), rows_per_cell, c, m.row))
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

    /// Selects token `tok` of the shown run (the alternative picked in
    /// the probabilities pane goes back to the first when it moves).
    fn select(&mut self, tok: usize) {
        if self.output.select(tok) {
            self.probs.reset();
        }
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
        c.ui.color_by = self.output.color_by;
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

    /// Closes the full-screen views and overlays (another one opens).
    fn close_views(&mut self) {
        self.overlay = Overlay::None;
        self.attention_view = false;
        self.compare_view = false;
    }

    /// Closes the innermost thing open: an overlay, a view, the message.
    fn close_one(&mut self, clear_message: bool) {
        if self.overlay != Overlay::None {
            self.overlay = Overlay::None;
        } else if self.bias.is_open() {
            self.bias.close();
        } else if self.compare_view {
            self.compare_view = false;
        } else if self.attention_view || !clear_message {
            self.attention_view = false;
        } else {
            self.message = None;
        }
    }

    fn toggle_overlay(&mut self, o: Overlay) {
        self.overlay = if self.overlay == o { Overlay::None } else { o };
    }

    fn dispatch(&mut self, action: Action) {
        use Action::*;
        if matches!(action, AttentionView | Compare | Run) {
            self.bias.view = BiasView::None;
        }
        let mut out = Out::default();
        if self.compare_view
            && self.overlay == Overlay::None
            && matches!(
                action,
                TokenPrev | TokenNext | FirstToken | LastToken | ColumnPrev | ColumnNext
            )
        {
            if let Some(c) = self.compare.as_mut() {
                c.select(action);
            }
            return self.after_update();
        }
        match action {
            ColumnPrev | ColumnNext => {}
            Quit => self.quit = true,
            Cancel if self.state == EngineState::Running => {
                self.outbox.push(EngineCommand::Cancel);
                self.say(Level::Info, "cancelling");
            }
            Cancel => self.close_one(true),
            CloseView => self.close_one(false),
            Help => self.toggle_overlay(Overlay::Help),
            Settings => self.toggle_overlay(Overlay::Settings),
            Sessions if self.overlay == Overlay::Sessions => self.overlay = Overlay::None,
            Sessions => {
                self.overlay = Overlay::Sessions;
                self.sessions.open();
                self.effects.push(Effect::ListSessions);
            }
            // Only the attention view binds it.
            Positions => self.positions.toggle(),
            AttentionView => {
                let open = !self.attention_view;
                self.close_views();
                self.attention_view = open;
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
                self.output.color_by = match self.output.color_by {
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
            Compare => self.compare(),
            QuickCheck => {
                self.close_views();
                let ctx = self.bias_ctx();
                self.bias.quick_check(&ctx, &mut out);
            }
            BiasPane => {
                if self.bias.view != BiasView::Pane {
                    self.close_views();
                }
                self.bias.toggle_pane(&mut out);
            }
            BiasRun | BiasPairs | BiasOpen | BiasSort | BiasDetail | BiasSave | BiasSwaps => {
                let ctx = self.bias_ctx();
                self.bias.update(action, &ctx, &mut out);
            }
            LineUp | LineDown | PageUp | PageDown if self.overlay == Overlay::Sessions => {
                self.sessions.update(action)
            }
            LineUp | LineDown | PageUp | PageDown if self.overlay == Overlay::Help => {
                self.help_scroll = match action {
                    LineUp => self.help_scroll.saturating_sub(1),
                    _ => self.help_scroll + 1,
                };
            }
            LineUp | LineDown | PageUp | PageDown
                if self.overlay == Overlay::None && self.bias.is_open() =>
            {
                let ctx = self.bias_ctx();
                self.bias.update(action, &ctx, &mut out);
            }
            LineUp | LineDown | PageUp | PageDown => {
                let inner = layout::inner(self.areas().output);
                let page = inner.height.max(1) as isize;
                let delta = match action {
                    LineUp => -1,
                    LineDown => 1,
                    PageUp => -page,
                    _ => page,
                };
                if let Some(t) = self.output.line_from_cursor(inner, delta) {
                    self.select(t);
                }
            }
            Newline => self.prompt.editor.newline(),
            HistoryPrev => self.prompt.history_step(-1),
            HistoryNext => self.prompt.history_step(1),
            ClearPrompt => self.prompt.editor.clear(),
            TokenPrev => {
                if self.output.cursor > 0 {
                    self.select(self.output.cursor - 1);
                }
            }
            TokenNext => self.select(self.output.cursor + 1),
            FirstToken => self.select(0),
            LastToken => {
                self.select(usize::MAX);
                self.output.follow = true;
            }
            LayerPrev | LayerNext | HeadPrev | HeadNext | MeanHeads | RowScale | Overview
            | ZoomIn | ZoomOut | PanKeysLeft | PanKeysRight => {
                let (n_layer, n_head) =
                    self.info.as_ref().map_or((1, 1), |i| (i.n_layer, i.n_head));
                let seq = self.sequence();
                self.attn.update(action, n_layer, n_head, seq);
            }
            SettingPrev | SettingNext | EditSetting | Increase | Decrease | ResetSetting
            | SavePreset => {
                self.settings
                    .update(action, &mut self.config, &self.defaults, &mut out)
            }
            OpenSession => self.open_session(),
            AltPrev => self.probs.prev(),
            AltNext => self.probs.next(self.output.selected_record()),
            Branch => self.branch(),
            BranchPrev => self.navigate(Move::PrevSibling),
            BranchNext => self.navigate(Move::NextSibling),
            BranchParent => self.navigate(Move::Parent),
            BranchChild => {
                let here = self.output.selected_record().map_or(0, |r| r.step);
                self.navigate(Move::Child(here))
            }
        }
        self.apply(out);
        self.after_update();
    }

    /// Queues the current sampler settings to be saved as preset `name`.
    pub fn save_preset(&mut self, name: &str) {
        let mut out = Out::default();
        self.settings.save_preset(name, &self.config, &mut out);
        self.apply(out);
    }

    /// What the bias views read: the engine's state and the prompt the
    /// quick check looks at (the one being typed, under the chat template
    /// in chat mode, else the shown run's text).
    fn bias_ctx(&self) -> bias::Ctx {
        let prompt = if !self.prompt.editor.is_blank() {
            let text = self.prompt.editor.text();
            Some((prompt::prompt_of(&text, &self.config.generation), "prompt"))
        } else if self.output.tokens.is_empty() {
            None
        } else {
            let text: String = self.output.tokens.iter().map(|t| t.text.as_str()).collect();
            Some((Prompt::Text(text), "current run"))
        };
        bias::Ctx {
            engine: self.state.clone(),
            prompt,
            top_n: self.config.generation.top_n,
        }
    }

    /// Whether a run can start now; says why not.
    fn ready(&mut self) -> bool {
        if let Some((level, why)) = views::busy(&self.state) {
            self.say(level, why);
            return false;
        }
        if self.prompt.editor.is_blank() {
            self.say(
                Level::Warn,
                "the prompt is empty; type something to continue",
            );
            return false;
        }
        true
    }

    /// Starts a run with the prompt and the current settings.
    pub fn run(&mut self) {
        if !self.ready() {
            return;
        }
        let text = self.prompt.editor.text();
        let request = prompt::request(&text, &self.config);
        let id = self.tree.next_id();
        self.tree.runs.push(RunNode::new(id, request.clone()));
        self.outbox.push(EngineCommand::Generate {
            id,
            request: Box::new(request),
        });
        self.prompt.remember(text);
        self.compare_view = false;
        self.show(id);
        self.output.restart();
        self.state = EngineState::Running;
        self.message = None;
    }

    /// Shows run `id` in the main view (its tokens, probabilities and
    /// attention); the cursor stays where it was when the run has a token
    /// there.
    pub fn show(&mut self, id: u64) {
        let Some(n) = self.tree.node(id) else {
            return;
        };
        self.output.show(n);
        self.tree.shown = id;
        self.attn.forget();
    }

    /// Forks the shown run at the selected token, taking the alternative
    /// selected in the probabilities pane; the engine goes on from there.
    pub fn branch(&mut self) {
        if let Some((_, why)) = views::busy(&self.state) {
            return self.say(Level::Warn, why);
        }
        let Some(parent) = self.tree.shown_node() else {
            return self.say(
                Level::Warn,
                "select a generated token (output pane) to branch from it",
            );
        };
        if parent.loaded {
            return self.say(
                Level::Warn,
                "this run was opened from a session file and is not in the engine; run its prompt again to branch",
            );
        }
        let Some(record) = self.output.selected_record() else {
            return self.say(
                Level::Warn,
                "select a generated token (output pane) to branch from it",
            );
        };
        let Some(alt) = record
            .top
            .get(self.probs.alt.min(record.top.len().saturating_sub(1)))
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
        let parent = parent.clone();
        let id = self.tree.next_id();
        self.tree.runs.push(RunNode::branch_of(id, &parent, step));
        self.outbox.push(EngineCommand::Branch {
            id,
            parent_id: parent.id,
            step,
            token,
        });
        self.show(id);
        self.output.follow = true;
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

    /// Moves through the run tree; the cursor goes to where the two runs part.
    fn navigate(&mut self, m: Move) {
        match self.tree.target(m) {
            Ok((target, parting)) => {
                let at = parting.map(|s| self.output.prompt_len + s);
                self.show(target);
                if let Some(at) = at {
                    self.select(at);
                }
            }
            Err(why) => self.say(Level::Info, why),
        }
    }

    /// Runs the prompt under each preset of `[compare] presets` (the first
    /// [`MAX_COMPARE_COLUMNS`]; one seed, the current token limit) and
    /// opens the compare view.
    pub fn compare(&mut self) {
        // With an empty prompt, the last comparison (one opened from a
        // session included) is shown again.
        if self.prompt.editor.is_blank() && self.compare.is_some() && self.overlay == Overlay::None
        {
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
        let text = self.prompt.editor.text();
        let request = prompt::request(&text, &self.config);
        let id = self.tree.next_id();
        self.compare = Some(CompareState::new(id, &request, &presets));
        self.outbox.push(EngineCommand::Compare {
            id,
            request: Box::new(request),
            presets,
        });
        self.prompt.remember(text);
        self.close_views();
        self.compare_view = true;
        self.state = EngineState::Running;
        self.say(Level::Info, "comparing; Esc cancels");
    }

    // ---- sessions ------------------------------------------------------

    /// Everything to see this session's runs again (None before any run).
    pub fn to_session(&self, model: ModelIdentity) -> Option<Session> {
        let template = self.info.as_ref().and_then(|i| i.chat_template.clone());
        self.tree
            .to_session(self.compare.as_ref(), model, template, self.session_created)
    }

    /// The session folder as read by the event loop.
    pub fn set_sessions(&mut self, entries: Vec<crate::store::session::SessionEntry>) {
        self.sessions.set(entries);
    }

    fn open_session(&mut self) {
        match self.sessions.chosen() {
            None => {}
            Some(Err(e)) => self.say(Level::Error, e),
            Some(Ok(_)) if self.state == EngineState::Running => {
                self.say(Level::Warn, "a generation is running; Esc cancels it")
            }
            Some(Ok(path)) => self.effects.push(Effect::LoadSession(path)),
        }
    }

    /// Shows the runs of a session read from `path` (they are not in the
    /// engine: they can be looked at, not branched; `lmscope session
    /// replay` runs them again). Later saves go to the same file.
    pub fn load_session(&mut self, path: PathBuf, session: Session) {
        self.compare = self.tree.load(&session);
        self.overlay = Overlay::None;
        self.attention_view = false;
        self.compare_view = self.tree.runs.is_empty() && self.compare.is_some();
        match self.tree.runs.last().map(|n| n.id) {
            Some(id) => {
                self.output.cursor = usize::MAX;
                self.show(id);
                self.output.follow = true;
            }
            None => {
                self.tree.shown = 0;
                self.output.clear();
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

    // ---- engine events -------------------------------------------------

    pub fn on_engine(&mut self, event: EngineEvent) {
        let shown = self.tree.shown;
        let mut out = Out::default();
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
            e if self.compare.as_ref().is_some_and(|c| c.owns(&e)) => {
                if let Some(c) = self.compare.as_mut() {
                    c.on_event(e, &mut out);
                }
            }
            EngineEvent::Prefilled {
                id,
                prompt,
                cache_len,
            } => {
                let tokens: Vec<Tok> = prompt
                    .texts
                    .into_iter()
                    .map(|text| Tok { text, record: None })
                    .collect();
                if let Some(n) = self.tree.node_mut(id) {
                    n.started = true;
                    n.prompt_ids = prompt.token_ids.clone();
                    n.prompt_len = tokens.len();
                    n.tokens = tokens.clone();
                    n.cache_len = cache_len;
                    n.timings.prompt_tokens = tokens.len();
                }
                if id == shown {
                    self.output.prefilled(tokens, cache_len);
                }
            }
            EngineEvent::Branched { id, cache_len, .. } => {
                if let Some(n) = self.tree.node_mut(id) {
                    n.started = true;
                    n.cache_len = cache_len;
                }
                if id == shown {
                    self.output.branched(cache_len);
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
                if let Some(n) = self.tree.node_mut(id) {
                    n.tokens.push(tok.clone());
                    n.cache_len = cache_len;
                    n.timings.generated += 1;
                }
                if id == shown {
                    self.output.step(tok, cache_len);
                }
            }
            EngineEvent::Finished {
                id,
                reason,
                timings,
            } => {
                let mut dropped = None;
                if let Some(n) = self.tree.node_mut(id) {
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
                    self.tree.runs.retain(|n| n.id != id);
                    if id == shown
                        && let Some((p, s)) = parent
                    {
                        self.show(p);
                        self.select(self.output.prompt_len + s);
                    }
                }
                if id == self.tree.newest {
                    self.state = EngineState::Idle;
                }
                if id == shown && dropped.is_none() {
                    self.output.finished(reason, timings);
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
                    self.positions.invalidate();
                }
            }
            EngineEvent::Attention(la) if la.id == shown => self.attn.received(la),
            EngineEvent::HeadVectors(hv) => self.positions.received(hv),
            EngineEvent::Error { id, message } if id.is_none() || id == Some(self.tree.newest) => {
                // A panic (no id) ends a comparison in flight.
                if let Some(cmp) = self.compare.as_mut().filter(|c| c.id == self.tree.newest)
                    && id.is_none()
                    && self.state == EngineState::Running
                {
                    cmp.abort();
                    self.state = EngineState::Idle;
                }
                self.say(Level::Error, message);
            }
            e @ (EngineEvent::TaskProgress { .. } | EngineEvent::TaskDone { .. }) => {
                self.bias.on_event(e, &mut out)
            }
            _ => {} // Events of a replaced run.
        }
        self.apply(out);
        self.after_update();
    }

    // ---- derived state -------------------------------------------------

    /// Keeps the output cursor visible and asks for attention as needed.
    fn after_update(&mut self) {
        self.output.scroll(layout::inner(self.areas().output));
        self.request_attention(Instant::now());
        if self.attention_view && self.output.captures && self.state != EngineState::Running {
            let run = self.sequence().run;
            if let Some(cmd) = self.positions.request(run, self.attn.layer, self.attn.head) {
                self.outbox.push(cmd);
            }
        }
        if self.compare_view
            && let Some(c) = self.compare.as_mut()
            && let Some(cmd) = c.attention_request(self.attn.layer, &self.state)
        {
            self.outbox.push(cmd);
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

    fn request_attention(&mut self, now: Instant) {
        if !self.output.captures || !self.attention_visible() || self.state == EngineState::Loading
        {
            return;
        }
        let seq = self.sequence();
        let streaming = self.state == EngineState::Running;
        if let Some(cmd) = self.attn.request(now, seq, streaming) {
            self.outbox.push(cmd);
        }
    }
}
