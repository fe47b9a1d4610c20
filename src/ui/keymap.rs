//! Key bindings as data: defaults embedded from `assets/keymap.toml`, the
//! user's `[keys.*]` tables over them, and the help screen generated from
//! the result. A key resolves to an [`Action`] first; `App::update` then
//! executes it.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::store::config::KeyOverride;

pub const DEFAULT_KEYMAP: &str = include_str!("../../assets/keymap.toml");

/// Where a binding applies. The focused pane's context is tried first,
/// then `Global`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Context {
    Global,
    Prompt,
    Output,
    /// The probabilities pane focused (its keys, then the output's).
    Probabilities,
    Attention,
    /// The compare view.
    Compare,
    Settings,
    /// The session list.
    Sessions,
    Help,
    /// The quick check and the bias pane.
    Bias,
}

impl Context {
    pub const ALL: [Context; 10] = [
        Context::Global,
        Context::Prompt,
        Context::Output,
        Context::Probabilities,
        Context::Attention,
        Context::Compare,
        Context::Settings,
        Context::Sessions,
        Context::Help,
        Context::Bias,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Context::Global => "global",
            Context::Prompt => "prompt",
            Context::Output => "output",
            Context::Probabilities => "probabilities",
            Context::Attention => "attention",
            Context::Compare => "compare",
            Context::Sessions => "sessions",
            Context::Settings => "settings",
            Context::Help => "help",
            Context::Bias => "bias",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

macro_rules! actions {
    ($($variant:ident = $name:literal : $desc:literal,)*) => {
        /// Everything a key can do.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action { $($variant,)* }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }
            pub fn description(self) -> &'static str {
                match self { $(Action::$variant => $desc,)* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Action::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    Quit = "quit": "Quit lmscope",
    Cancel = "cancel": "Cancel the generation (else close the open view)",
    Help = "help": "Show this help",
    Settings = "settings": "Open the sampler settings",
    AttentionView = "attention_view": "Open or close the full attention view",
    FocusNext = "focus_next": "Focus the next pane",
    FocusPrev = "focus_prev": "Focus the previous pane",
    ToggleColor = "toggle_color": "Colour tokens by probability or by entropy",
    ToggleCapture = "toggle_capture": "Capture attention in the next run on/off",
    ToggleChat = "toggle_chat": "Chat mode (model's template) or plain text",
    Run = "run": "Run the prompt",
    Compare = "compare": "Compare the presets side by side (empty prompt: the last comparison)",
    Submit = "submit": "Run the prompt",
    Newline = "newline": "Insert a line break",
    HistoryPrev = "history_prev": "Previous prompt from history",
    HistoryNext = "history_next": "Next prompt from history",
    ClearPrompt = "clear_prompt": "Clear the prompt",
    TokenPrev = "token_prev": "Select the previous token",
    TokenNext = "token_next": "Select the next token",
    LineUp = "line_up": "Move up a line",
    LineDown = "line_down": "Move down a line",
    FirstToken = "first_token": "Select the first token",
    LastToken = "last_token": "Select the newest token (and follow the stream)",
    PageUp = "page_up": "Up a page",
    PageDown = "page_down": "Down a page",
    LayerPrev = "layer_prev": "Previous layer",
    LayerNext = "layer_next": "Next layer",
    HeadPrev = "head_prev": "Previous head",
    HeadNext = "head_next": "Next head",
    MeanHeads = "mean_heads": "Mean over heads on/off",
    RowScale = "row_scale": "Scale each query row by its own largest weight on/off",
    Overview = "overview": "All heads of the layer at once on/off",
    Positions = "positions": "Positional encoding of this layer and head on/off: rotary pairs, q.k against distance",
    ZoomIn = "zoom_in": "Zoom in (fewer tokens, larger cells)",
    ZoomOut = "zoom_out": "Zoom out",
    PanKeysLeft = "pan_keys_left": "Scroll the keys axis left",
    PanKeysRight = "pan_keys_right": "Scroll the keys axis right",
    CloseView = "close_view": "Close this view",
    SettingPrev = "setting_prev": "Previous setting",
    SettingNext = "setting_next": "Next setting",
    EditSetting = "edit_setting": "Edit the setting (Enter applies, Esc cancels)",
    Increase = "increase": "Increase the setting",
    Decrease = "decrease": "Decrease the setting",
    ResetSetting = "reset_setting": "Reset the setting to its default",
    QuickCheck = "quick_check": "Quick bias check: swap he/she and the like, compare the next token",
    BiasPane = "bias_pane": "Open or close the bias pane (probe suite, minimal pairs)",
    BiasRun = "bias_run": "Run the check again (quick check) or the probe suite (bias pane)",
    BiasPairs = "bias_pairs": "Score the example minimal pairs (lmeval mode)",
    BiasOpen = "bias_open": "Run a suite (built-in name or .toml path) or a pairs file (.csv)",
    BiasSort = "bias_sort": "Sort the table by the next column",
    BiasDetail = "bias_detail": "Show the selected category's items, largest difference first",
    BiasSave = "bias_save": "Save the results as JSON in the data directory",
    BiasSwaps = "bias_swaps": "Edit the quick check's swaps (X|Y or X=Y, comma-separated; empty: defaults)",
    AltPrev = "alt_prev": "Select the previous alternative token",
    AltNext = "alt_next": "Select the next alternative token",
    Branch = "branch": "Branch: go on from the selected token with the chosen alternative",
    BranchPrev = "branch_prev": "Show the previous sibling branch (same parent and token)",
    BranchNext = "branch_next": "Show the next sibling branch",
    BranchParent = "branch_parent": "Show the run this branch left",
    BranchChild = "branch_child": "Show a branch leaving at or after the selected token",
    ColumnPrev = "column_prev": "Select the token in the previous column",
    ColumnNext = "column_next": "Select the token in the next column",
    Sessions = "sessions": "Open the list of saved sessions",
    OpenSession = "open_session": "Open the selected session",
    SavePreset = "save_preset": "Save the sampler settings as a named preset (for compare)",
}

/// A key with its modifiers, as written in the keymap ("ctrl-r").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub code: KeyCodeOrd,
    pub ctrl: bool,
    pub alt: bool,
    pub shift: bool,
}

/// `KeyCode` restricted to what the keymap can name (and orderable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCodeOrd {
    Char(char),
    F(u8),
    Named(&'static str),
}

const NAMED: &[(&str, KeyCode)] = &[
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
];

impl Key {
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut key = Key {
            code: KeyCodeOrd::Char(' '),
            ctrl: false,
            alt: false,
            shift: false,
        };
        let mut rest = s;
        loop {
            let lower = rest.to_ascii_lowercase();
            if lower.starts_with("ctrl-") && rest.len() > 5 {
                key.ctrl = true;
            } else if lower.starts_with("alt-") && rest.len() > 4 {
                key.alt = true;
            } else if lower.starts_with("shift-") && rest.len() > 6 {
                key.shift = true;
            } else {
                break;
            }
            rest = &rest[rest.find('-').map_or(0, |i| i + 1)..];
        }
        let lower = rest.to_ascii_lowercase();
        key.code = if rest.chars().count() == 1 {
            let c = rest.chars().next().unwrap_or(' ');
            KeyCodeOrd::Char(if key.ctrl || key.alt {
                c.to_ascii_lowercase()
            } else {
                c
            })
        } else if lower == "space" {
            KeyCodeOrd::Char(' ')
        } else if let Some(n) = lower
            .strip_prefix('f')
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| (1..=12).contains(n))
        {
            KeyCodeOrd::F(n)
        } else if let Some((name, _)) = NAMED.iter().find(|(n, _)| *n == lower) {
            KeyCodeOrd::Named(name)
        } else {
            return Err(format!("unknown key `{s}`"));
        };
        if key.code == KeyCodeOrd::Named("backtab") {
            key.shift = false;
        }
        Ok(key)
    }

    /// The key a terminal event stands for.
    pub fn from_event(ev: &KeyEvent) -> Option<Key> {
        let m = ev.modifiers;
        let (code, shift) = match ev.code {
            KeyCode::Char(c) => {
                let c = if m.contains(KeyModifiers::CONTROL) || m.contains(KeyModifiers::ALT) {
                    c.to_ascii_lowercase()
                } else {
                    c
                };
                // Shift is already in the character itself.
                (KeyCodeOrd::Char(c), false)
            }
            KeyCode::F(n) => (KeyCodeOrd::F(n), m.contains(KeyModifiers::SHIFT)),
            KeyCode::BackTab => (KeyCodeOrd::Named("backtab"), false),
            other => {
                let (name, _) = NAMED.iter().find(|(_, c)| *c == other)?;
                (KeyCodeOrd::Named(name), m.contains(KeyModifiers::SHIFT))
            }
        };
        Some(Key {
            code,
            ctrl: m.contains(KeyModifiers::CONTROL),
            alt: m.contains(KeyModifiers::ALT),
            shift,
        })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        if self.shift {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCodeOrd::Char(' ') => f.write_str("space"),
            KeyCodeOrd::Char(c) => write!(f, "{c}"),
            KeyCodeOrd::F(n) => write!(f, "f{n}"),
            KeyCodeOrd::Named(n) => f.write_str(n),
        }
    }
}

/// Line of `action` within `[section]` of the default keymap.
fn file_order(section: &str, action: &str) -> usize {
    let mut current = "";
    for (i, line) in DEFAULT_KEYMAP.lines().enumerate() {
        let line = line.trim();
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = h;
        } else if current == section && line.split('=').next().map(str::trim) == Some(action) {
            return i;
        }
    }
    usize::MAX
}

/// Bindings per context, each action with its keys in the file's order.
#[derive(Clone, Debug, Default)]
pub struct Keymap {
    bindings: BTreeMap<Context, Vec<(Action, Vec<Key>)>>,
}

impl Keymap {
    /// The embedded defaults with `overrides` applied; problems come back
    /// as messages naming the line (bad entries are skipped).
    pub fn load(overrides: &[KeyOverride]) -> (Keymap, Vec<String>) {
        let mut warnings = duplicate_bindings(overrides);
        let mut map = Keymap::default();
        let table: toml::Table =
            toml::from_str(DEFAULT_KEYMAP).expect("the embedded keymap is valid TOML");
        // Keep the file's order of actions for the help screen.
        for (ctx_name, actions) in &table {
            let Some(ctx) = Context::parse(ctx_name) else {
                continue;
            };
            let mut order: Vec<(usize, Action, Vec<Key>)> = Vec::new();
            for (name, keys) in actions.as_table().into_iter().flatten() {
                let action = Action::parse(name).expect("default keymap names real actions");
                let keys: Vec<Key> = keys
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|k| k.as_str())
                    .map(|k| Key::parse(k).expect("default keymap names real keys"))
                    .collect();
                order.push((file_order(ctx_name, name), action, keys));
            }
            order.sort_by_key(|(at, ..)| *at);
            map.bindings
                .insert(ctx, order.into_iter().map(|(_, a, k)| (a, k)).collect());
        }
        for o in overrides {
            let at = o.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            let Some(ctx) = Context::parse(&o.context) else {
                let known: Vec<&str> = Context::ALL.iter().map(|c| c.name()).collect();
                warnings.push(format!(
                    "keys{at}: unknown context [keys.{}]; known: {}",
                    o.context,
                    known.join(", ")
                ));
                continue;
            };
            let Some(action) = Action::parse(&o.action) else {
                warnings.push(format!(
                    "keys{at}: unknown action `{}` in [keys.{}]; the help screen (F1) lists them",
                    o.action, o.context
                ));
                continue;
            };
            let mut keys = Vec::new();
            for k in &o.keys {
                match Key::parse(k) {
                    Ok(k) => keys.push(k),
                    Err(e) => warnings.push(format!(
                        "keys{at}: {e} for `{}`; keys look like \"ctrl-r\", \"f5\", \"x\"",
                        o.action
                    )),
                }
            }
            if keys.is_empty() && !o.keys.is_empty() {
                continue;
            }
            let list = map.bindings.entry(ctx).or_default();
            // A key moves to its new action.
            for (_, ks) in list.iter_mut() {
                ks.retain(|k| !keys.contains(k));
            }
            match list.iter_mut().find(|(a, _)| *a == action) {
                Some((_, ks)) => *ks = keys,
                None => list.push((action, keys)),
            }
        }
        (map, warnings)
    }

    pub fn defaults() -> Keymap {
        Self::load(&[]).0
    }

    /// The action `key` means in `ctx` (not falling back to global).
    pub fn lookup(&self, ctx: Context, key: Key) -> Option<Action> {
        self.bindings
            .get(&ctx)?
            .iter()
            .find(|(_, ks)| ks.contains(&key))
            .map(|(a, _)| *a)
    }

    /// Tries each context in turn.
    pub fn resolve(&self, contexts: &[Context], key: Key) -> Option<Action> {
        contexts.iter().find_map(|&c| self.lookup(c, key))
    }

    pub fn bindings(&self, ctx: Context) -> &[(Action, Vec<Key>)] {
        self.bindings.get(&ctx).map(Vec::as_slice).unwrap_or(&[])
    }

    /// "f1/ctrl-h" for a hint line; empty when unbound.
    pub fn keys_for(&self, ctx: Context, action: Action) -> String {
        self.bindings(ctx)
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, ks)| {
                ks.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    }
}

/// Keys the user's overrides bind to two actions in one context: one
/// warning each, naming the key and both actions (the later one wins, as
/// [`Keymap::load`] applies them in order). Unknown contexts, actions and
/// keys are left to `load`'s own warnings.
pub fn duplicate_bindings(overrides: &[KeyOverride]) -> Vec<String> {
    let mut seen: BTreeMap<(Context, Key), Action> = BTreeMap::new();
    let mut warnings = Vec::new();
    for o in overrides {
        let (Some(ctx), Some(action)) = (Context::parse(&o.context), Action::parse(&o.action))
        else {
            continue;
        };
        for key in o.keys.iter().filter_map(|k| Key::parse(k).ok()) {
            if let Some(first) = seen.insert((ctx, key), action)
                && first != action
            {
                let at = o.line.map(|l| format!(" (line {l})")).unwrap_or_default();
                warnings.push(format!(
                    "keys{at}: `{key}` is bound twice in [keys.{}]: `{}` and `{}`; `{}` wins",
                    o.context,
                    first.name(),
                    action.name(),
                    action.name()
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_key_bound_to_two_actions_in_one_context_is_warned_about() {
        let o = |ctx: &str, action: &str, key: &str, line| KeyOverride {
            context: ctx.into(),
            action: action.into(),
            keys: vec![key.into()],
            line: Some(line),
        };
        let overrides = [
            o("global", "quit", "ctrl-x", 3),
            o("global", "help", "ctrl-x", 4),
            o("output", "help", "ctrl-y", 5),
            o("prompt", "help", "ctrl-y", 6),
        ];
        let w = duplicate_bindings(&overrides);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("ctrl-x") && w[0].contains("quit") && w[0].contains("help"));
        assert!(w[0].contains("line 4"));
        let (_, warnings) = Keymap::load(&overrides);
        assert!(warnings.iter().any(|x| x.contains("bound twice")));
        assert!(duplicate_bindings(&overrides[2..]).is_empty());
    }
    use super::*;

    fn ov(ctx: &str, action: &str, keys: &[&str]) -> KeyOverride {
        KeyOverride {
            context: ctx.into(),
            action: action.into(),
            keys: keys.iter().map(|s| s.to_string()).collect(),
            line: Some(7),
        }
    }

    #[test]
    fn defaults_load_without_warnings() {
        let (map, w) = Keymap::load(&[]);
        assert!(w.is_empty());
        let q = Key::parse("ctrl-q").unwrap();
        assert_eq!(
            map.resolve(&[Context::Prompt, Context::Global], q),
            Some(Action::Quit)
        );
        assert_eq!(
            map.bindings(Context::Global)[0].0,
            Action::Quit,
            "file order is kept"
        );
    }

    #[test]
    fn keys_round_trip_and_match_events() {
        for s in [
            "ctrl-r",
            "f5",
            "G",
            "+",
            "shift-left",
            "alt-enter",
            "backtab",
            "space",
        ] {
            assert_eq!(Key::parse(s).unwrap().to_string(), s);
        }
        let ev = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(Key::from_event(&ev), Some(Key::parse("G").unwrap()));
        let ev = KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert_eq!(Key::from_event(&ev), Some(Key::parse("ctrl-r").unwrap()));
        assert!(Key::parse("hyper-x").is_err());
    }

    #[test]
    fn overrides_replace_and_bad_ones_are_reported() {
        let (map, w) = Keymap::load(&[
            ov("global", "quit", &["ctrl-x"]),
            ov("global", "fly", &["x"]),
            ov("output", "token_next", &["nope-key"]),
        ]);
        assert_eq!(
            map.lookup(Context::Global, Key::parse("ctrl-x").unwrap()),
            Some(Action::Quit)
        );
        assert_eq!(
            map.lookup(Context::Global, Key::parse("ctrl-q").unwrap()),
            None
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|m| m.contains("line 7")));
        assert_eq!(
            map.lookup(Context::Output, Key::parse("l").unwrap()),
            Some(Action::TokenNext),
            "a bad override keeps the default"
        );
    }
}
