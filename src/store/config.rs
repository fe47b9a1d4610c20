//! The user's settings: embedded defaults (`assets/config.toml`) overridden,
//! setting by setting, by `config.toml` in the config directory.
//!
//! A bad file never stops the program: a syntax error gives a message with
//! its line and all the defaults; a bad value gives a message naming its
//! line and the default for that value only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::sampling::SamplerSettings;

pub const DEFAULT_CONFIG: &str = include_str!("../../assets/config.toml");
pub const FILE_NAME: &str = "config.toml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    pub max_tokens: usize,
    pub top_n: usize,
    pub capture_attention: bool,
    pub chat: bool,
    pub system: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorBy {
    Probability,
    Entropy,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    pub color_by: ColorBy,
    pub max_fps: u32,
}

/// `[compare]`: the presets the interface's compare view runs, one column
/// each (the first 4 of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    pub presets: Vec<String>,
}

/// One `[keys.CONTEXT] action = ["key", ...]` entry of the user's file;
/// the interface checks the names.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyOverride {
    pub context: String,
    pub action: String,
    pub keys: Vec<String>,
    pub line: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub generation: GenerationConfig,
    pub sampler: SamplerSettings,
    pub ui: UiConfig,
    pub compare: CompareConfig,
    pub keys: Vec<KeyOverride>,
}

/// A config and what was wrong with the file it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    pub path: PathBuf,
}

pub fn path() -> PathBuf {
    super::paths::config_dir().join(FILE_NAME)
}

impl Config {
    pub fn defaults() -> Self {
        parse(None, Path::new(FILE_NAME)).config
    }
}

/// Reads the user's file (when there is one) over the defaults.
pub fn load() -> Loaded {
    let path = path();
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(Some(&text), &path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => parse(None, &path),
        Err(e) => {
            let mut loaded = parse(None, &path);
            loaded.warnings.push(format!(
                "{}: cannot be read ({e}); using the defaults",
                path.display()
            ));
            loaded
        }
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where `key` is set inside `[section]` (or `[a.b]` for a
/// dotted section), found by reading the file as lines.
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = h.trim().to_string();
            continue;
        }
        if let Some((k, _)) = line.split_once('=') {
            let k = k.trim().trim_matches('"');
            if current == section && k == key {
                return Some(i + 1);
            }
            if current.is_empty() && (k == format!("{section}.{key}") || k == section) {
                return Some(i + 1);
            }
        }
    }
    None
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(", line {l}")).unwrap_or_default()
}

/// Merges `user` over the defaults, one setting at a time.
pub fn parse(user: Option<&str>, path: &Path) -> Loaded {
    let mut warnings = Vec::new();
    let mut merged: toml::Table =
        toml::from_str(DEFAULT_CONFIG).expect("the embedded config is valid TOML");
    let mut keys = Vec::new();
    let shown = path.display();

    let user_table = match user.map(toml::from_str::<toml::Table>) {
        None => toml::Table::new(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            let line = e.span().map(|s| line_at(user.unwrap_or_default(), s.start));
            warnings.push(format!(
                "{shown}{}: {}; using the default settings",
                at_line(line),
                e.message().trim()
            ));
            toml::Table::new()
        }
    };
    let text = user.unwrap_or_default();

    for (section, value) in user_table {
        if section == "keys" {
            collect_keys(text, &shown.to_string(), value, &mut keys, &mut warnings);
            continue;
        }
        let Some(defaults) = merged.get(&section).and_then(|v| v.as_table()).cloned() else {
            warnings.push(format!(
                "{shown}{}: unknown section [{section}]; known: [generation], [sampler], [ui], [compare], [keys.*]",
                at_line(line_of(text, &section, "").or_else(|| find_header(text, &section)))
            ));
            continue;
        };
        let toml::Value::Table(values) = value else {
            warnings.push(format!(
                "{shown}{}: `{section}` should be a [{section}] table",
                at_line(line_of(text, "", &section))
            ));
            continue;
        };
        let mut accepted = defaults.clone();
        for (key, v) in values {
            let line = line_of(text, &section, &key);
            if !defaults.contains_key(&key) {
                let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
                warnings.push(format!(
                    "{shown}{}: unknown setting `{key}` in [{section}]; known: {}",
                    at_line(line),
                    known.join(", ")
                ));
                continue;
            }
            let mut trial = accepted.clone();
            trial.insert(key.clone(), v);
            match check_section(&section, trial.clone()) {
                Ok(()) => accepted = trial,
                Err(msg) => warnings.push(format!(
                    "{shown}{}: `{key}` in [{section}]: {msg}; using the default",
                    at_line(line)
                )),
            }
        }
        merged.insert(section, toml::Value::Table(accepted));
    }

    let section = |name: &str| {
        merged
            .get(name)
            .cloned()
            .unwrap_or(toml::Value::Table(toml::Table::new()))
    };
    let generation: GenerationConfig = section("generation").try_into().expect("checked section");
    let mut sampler: SamplerSettings = section("sampler").try_into().expect("checked section");
    let ui: UiConfig = section("ui").try_into().expect("checked section");
    let compare: CompareConfig = section("compare").try_into().expect("checked section");
    if let Err(e) = sampler.validate() {
        warnings.push(format!(
            "{shown}: [sampler]: {e}; using the default sampler settings"
        ));
        sampler = toml::from_str::<toml::Table>(DEFAULT_CONFIG)
            .ok()
            .and_then(|t| t.get("sampler").cloned())
            .and_then(|s| s.try_into().ok())
            .unwrap_or_default();
    }
    Loaded {
        config: Config {
            generation,
            sampler,
            ui,
            compare,
            keys,
        },
        warnings,
        path: path.to_path_buf(),
    }
}

fn find_header(text: &str, section: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.trim().trim_start_matches('[').split(']').next() == Some(section))
        .map(|i| i + 1)
}

/// Whether a section's table deserialises (and, for the sampler, makes sense
/// value by value).
fn check_section(section: &str, table: toml::Table) -> Result<(), String> {
    let v = toml::Value::Table(table);
    let clean = |e: toml::de::Error| e.message().trim().to_string();
    match section {
        "generation" => v.try_into::<GenerationConfig>().map(|_| ()).map_err(clean),
        "ui" => v.try_into::<UiConfig>().map(|_| ()).map_err(clean),
        "compare" => {
            let c: CompareConfig = v.try_into().map_err(clean)?;
            match c.presets.len() {
                2..=4 => Ok(()),
                n => Err(format!("give 2 to 4 presets, not {n}")),
            }
        }
        "sampler" => {
            let s: SamplerSettings = v.try_into().map_err(clean)?;
            s.validate().map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}

fn collect_keys(
    text: &str,
    shown: &str,
    value: toml::Value,
    out: &mut Vec<KeyOverride>,
    warnings: &mut Vec<String>,
) {
    let toml::Value::Table(contexts) = value else {
        warnings.push(format!(
            "{shown}{}: `keys` should hold tables such as [keys.global]",
            at_line(line_of(text, "", "keys"))
        ));
        return;
    };
    for (context, actions) in contexts {
        let section = format!("keys.{context}");
        let toml::Value::Table(actions) = actions else {
            warnings.push(format!(
                "{shown}{}: [keys.{context}] should be a table of action = [\"key\", ...]",
                at_line(find_header(text, &section))
            ));
            continue;
        };
        for (action, keys) in actions {
            let line = line_of(text, &section, &action);
            let list = match keys {
                toml::Value::String(s) => Some(vec![s]),
                toml::Value::Array(a) => a
                    .into_iter()
                    .map(|k| k.as_str().map(str::to_string))
                    .collect(),
                _ => None,
            };
            match list {
                Some(keys) => out.push(KeyOverride { context: context.clone(), action, keys, line }),
                None => warnings.push(format!(
                    "{shown}{}: `{action}` in [keys.{context}] should be a key or a list of keys, such as [\"ctrl-r\", \"f5\"]",
                    at_line(line)
                )),
            }
        }
    }
}

// ---- writing settings back ---------------------------------------------

/// The sections the interface edits, and so writes back.
pub const SAVED_SECTIONS: [&str; 3] = ["generation", "sampler", "ui"];

/// Why the settings could not be written back.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(
        "{path}{line}: {message}; the file was left untouched and the settings were not saved: fix the file (or move it away) and change a setting again"
    )]
    Unparsable {
        path: String,
        line: String,
        message: String,
    },
    #[error("{path}: cannot be read ({source}); the settings were not saved")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: [{section}] is not a table; the file was left untouched and the settings were not saved"
    )]
    NotATable { path: String, section: String },
    #[error(
        "{path}: the edited file would not read back as the new settings ({detail}); it was left untouched"
    )]
    Mismatch { path: String, detail: String },
    #[error("{path}: cannot be written ({source}); the settings were not saved")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("a setting cannot be written as TOML: {0}")]
    Encode(String),
}

/// What [`save_changes`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Saved {
    /// Nothing differed: the file was not touched (not even read).
    Unchanged,
    /// These `section.key`s were written.
    Written(Vec<String>),
}

/// The saved sections of `c` as TOML tables, by section name.
fn saved_tables(c: &Config) -> Result<toml::Table, SaveError> {
    let enc = |e: toml::ser::Error| SaveError::Encode(e.to_string());
    let mut t = toml::Table::new();
    t.insert(
        "generation".into(),
        toml::Value::try_from(&c.generation).map_err(enc)?,
    );
    t.insert(
        "sampler".into(),
        toml::Value::try_from(&c.sampler).map_err(enc)?,
    );
    t.insert("ui".into(), toml::Value::try_from(&c.ui).map_err(enc)?);
    Ok(t)
}

/// The settings (section, key, new value) that differ from `before` to
/// `after`, in the order of the sections.
fn changed(
    before: &Config,
    after: &Config,
) -> Result<Vec<(String, String, toml::Value)>, SaveError> {
    let (b, a) = (saved_tables(before)?, saved_tables(after)?);
    let mut out = Vec::new();
    for section in SAVED_SECTIONS {
        let (Some(bs), Some(as_)) = (
            b.get(section).and_then(|v| v.as_table()),
            a.get(section).and_then(|v| v.as_table()),
        ) else {
            continue;
        };
        for (key, value) in as_ {
            if bs.get(key) != Some(value) {
                out.push((section.to_string(), key.clone(), value.clone()));
            }
        }
    }
    Ok(out)
}

/// A float as written by hand: values that came from an `f32` keep its
/// shortest form (0.9, not 0.8999999761581421).
fn tidy_float(f: f64) -> f64 {
    let g = f as f32;
    if g as f64 == f {
        format!("{g}").parse().unwrap_or(f)
    } else {
        f
    }
}

fn edit_value(v: &toml::Value) -> toml_edit::Value {
    match v {
        toml::Value::String(s) => s.as_str().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => tidy_float(*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => toml_edit::Value::Array(a.iter().map(edit_value).collect()),
        toml::Value::Table(t) => {
            let mut it = toml_edit::InlineTable::new();
            for (k, v) in t {
                it.insert(k, edit_value(v));
            }
            toml_edit::Value::InlineTable(it)
        }
    }
}

/// Writes the settings that differ between `before` (what the file was
/// last read or saved as) and `after` into the user's file at `path`,
/// atomically. Only those keys change: every other key, comment and
/// blank line of the file stays as it was. A file that does not parse is
/// left byte for byte as it is, and so is any file whose edited text would
/// not read back as exactly the settings expected.
pub fn save_changes(path: &Path, before: &Config, after: &Config) -> Result<Saved, SaveError> {
    let changes = changed(before, after)?;
    if changes.is_empty() {
        return Ok(Saved::Unchanged);
    }
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(SaveError::Read {
                path: shown,
                source,
            });
        }
    };
    let unparsable = |line: Option<usize>, message: &str| SaveError::Unparsable {
        path: shown.clone(),
        line: at_line(line),
        message: message.trim().to_string(),
    };
    if let Err(e) = toml::from_str::<toml::Table>(&text) {
        let line = e.span().map(|s| line_at(&text, s.start));
        return Err(unparsable(line, e.message()));
    }
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let line = e.span().map(|s| line_at(&text, s.start));
        unparsable(line, e.message())
    })?;

    // What the new file must read as: the old file's settings with the
    // changed ones replaced.
    let mut expected = saved_tables(&parse(Some(&text), path).config)?;
    for (section, key, value) in &changes {
        if let Some(t) = expected.get_mut(section).and_then(|v| v.as_table_mut()) {
            t.insert(key.clone(), value.clone());
        }
    }

    let mut written = Vec::new();
    for (section, key, value) in &changes {
        if !doc.contains_key(section) {
            let mut t = toml_edit::Table::new();
            if !doc.is_empty() || !doc.trailing().as_str().unwrap_or("").is_empty() {
                t.decor_mut().set_prefix("\n");
            }
            doc.insert(section, toml_edit::Item::Table(t));
        }
        let Some(table) = doc.get_mut(section).and_then(|i| i.as_table_like_mut()) else {
            return Err(SaveError::NotATable {
                path: shown,
                section: section.clone(),
            });
        };
        let mut new = edit_value(value);
        match table.get_mut(key).and_then(|i| i.as_value_mut()) {
            Some(old) => {
                // Keep the spacing and a trailing comment.
                *new.decor_mut() = old.decor().clone();
                *old = new;
            }
            None => {
                table.insert(key, toml_edit::Item::Value(new));
            }
        }
        written.push(format!("{section}.{key}"));
    }
    let mut out = doc.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }

    let reread = parse(Some(&out), path);
    let got = saved_tables(&reread.config)?;
    if got != expected {
        let detail = SAVED_SECTIONS
            .iter()
            .flat_map(|s| {
                let (g, e) = (got.get(*s), expected.get(*s));
                let keys: Vec<String> = e
                    .and_then(|e| e.as_table())
                    .map(|t| t.keys().cloned().collect())
                    .unwrap_or_default();
                keys.into_iter().filter_map(move |k| {
                    let gv = g.and_then(|g| g.get(&k));
                    let ev = e.and_then(|e| e.get(&k));
                    (gv != ev).then(|| format!("{s}.{k}"))
                })
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(SaveError::Mismatch {
            path: shown,
            detail: format!("differs at {detail}"),
        });
    }

    // Write through a symlink to the file it points at.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    super::atomic::write(&target, out.as_bytes()).map_err(|source| SaveError::Write {
        path: shown,
        source,
    })?;
    Ok(Saved::Written(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Loaded {
        parse(Some(text), Path::new("config.toml"))
    }

    #[test]
    fn defaults_parse_cleanly() {
        let l = parse(None, Path::new("x"));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config.sampler, SamplerSettings::default());
        assert_eq!(l.config.ui.color_by, ColorBy::Probability);
        assert_eq!(l.config.compare.presets, ["greedy", "balanced", "creative"]);
    }

    #[test]
    fn compare_presets_take_2_to_4_names() {
        let l = p("[compare]\npresets = [\"precise\", \"creative\"]\n");
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config.compare.presets, ["precise", "creative"]);
        let l = p("[compare]\npresets = [\"greedy\"]\n");
        assert_eq!(l.config.compare.presets.len(), 3, "the default kept");
        assert!(
            l.warnings[0].contains("line 2") && l.warnings[0].contains("2 to 4"),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn one_bad_value_names_its_line_and_keeps_the_rest() {
        let l = p(
            "[sampler]\ntemperature = 0.3\ntop_p = 7.0\n\n[generation]\nmax_tokens = \"many\"\ntop_n = 5\n",
        );
        assert_eq!(l.config.sampler.temperature, 0.3);
        assert_eq!(
            l.config.sampler.top_p, 0.95,
            "the bad value falls back to its default"
        );
        assert_eq!(l.config.generation.top_n, 5);
        assert_eq!(l.config.generation.max_tokens, 256);
        assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
        assert!(
            l.warnings[0].contains("line 3") || l.warnings[1].contains("line 3"),
            "{:?}",
            l.warnings
        );
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("line 6") && w.contains("max_tokens")),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn syntax_error_names_the_line_and_uses_defaults() {
        let l = p("[ui]\ncolor_by = \"entropy\"\nmax_fps = = 3\n");
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].contains("line 3"), "{}", l.warnings[0]);
        assert_eq!(l.config.ui.color_by, ColorBy::Probability);
    }

    #[test]
    fn unknown_names_are_reported() {
        let l = p("[sampler]\ntemprature = 1.0\n[colors]\nx = 1\n");
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("temprature") && w.contains("line 2")),
            "{:?}",
            l.warnings
        );
        assert!(
            l.warnings
                .iter()
                .any(|w| w.contains("[colors]") && w.contains("line 3")),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn key_overrides_are_collected_with_lines() {
        let l = p("[keys.global]\nquit = [\"ctrl-x\"]\nhelp = \"f1\"\nbad = 3\n");
        assert_eq!(l.config.keys.len(), 2);
        assert_eq!(
            l.config
                .keys
                .iter()
                .find(|k| k.action == "help")
                .map(|k| k.line),
            Some(Some(3))
        );
        assert!(
            l.warnings.iter().any(|w| w.contains("line 4")),
            "{:?}",
            l.warnings
        );
    }
    fn edited() -> (Config, Config) {
        let before = Config::defaults();
        let mut after = before.clone();
        after.sampler.temperature = 0.9;
        after.generation.chat = false;
        after.ui.color_by = ColorBy::Entropy;
        (before, after)
    }

    #[test]
    fn saving_writes_only_the_changed_keys_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let user = "# my settings\n[sampler]\n# cooler\ntemperature = 0.5  # was 0.8\ntop_k = 20\n\n[keys.global]\nquit = [\"ctrl-x\"]\n";
        std::fs::write(&path, user).unwrap();
        let before = parse(Some(user), &path).config;
        let mut after = before.clone();
        after.sampler.temperature = 0.9;
        after.generation.max_tokens = 99;
        let saved = save_changes(&path, &before, &after).unwrap();
        assert_eq!(
            saved,
            Saved::Written(vec![
                "generation.max_tokens".into(),
                "sampler.temperature".into()
            ])
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(
                "# my settings\n[sampler]\n# cooler\ntemperature = 0.9  # was 0.8\ntop_k = 20\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("[keys.global]\nquit = [\"ctrl-x\"]\n"),
            "{text}"
        );
        assert!(text.contains("[generation]\nmax_tokens = 99\n"), "{text}");
        let l = parse(Some(&text), &path);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.config, after, "reads back as the edited settings");
        assert_eq!(l.config.sampler.top_k, 20, "untouched keys stay");
    }

    #[test]
    fn saving_creates_the_file_when_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        let (before, after) = edited();
        save_changes(&path, &before, &after).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("temperature = 0.9\n"), "{text}");
        assert!(text.contains("color_by = \"entropy\""), "{text}");
        assert_eq!(parse(Some(&text), &path).config, after);
    }

    #[test]
    fn nothing_changed_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let c = Config::defaults();
        assert_eq!(save_changes(&path, &c, &c).unwrap(), Saved::Unchanged);
        assert!(!path.exists());
    }

    #[test]
    fn a_broken_file_is_left_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let user = "[sampler]\ntemperature = = 0.5\n";
        std::fs::write(&path, user).unwrap();
        let (before, after) = edited();
        let e = save_changes(&path, &before, &after)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("left untouched"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), user);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_section_that_is_not_a_table_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let user = "sampler = 3\n";
        std::fs::write(&path, user).unwrap();
        let (before, after) = edited();
        assert!(save_changes(&path, &before, &after).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), user);
    }
}
