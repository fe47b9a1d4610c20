//! Sampler presets: built in (assets/presets.toml), extended or overridden
//! by presets.toml in the user's config directory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::sampling::SamplerSettings;

const BUILT_IN: &str = include_str!("../../assets/presets.toml");

pub type Presets = BTreeMap<String, SamplerSettings>;

fn parse(text: &str, origin: &str) -> anyhow::Result<Presets> {
    let presets: Presets = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    for (name, s) in &presets {
        s.validate()
            .map_err(|e| anyhow::anyhow!("{origin}: preset `{name}`: {e}"))?;
    }
    Ok(presets)
}

pub fn built_in() -> Presets {
    parse(BUILT_IN, "assets/presets.toml").expect("built-in presets are valid")
}

/// The user's presets file, in the config directory.
pub const USER_FILE: &str = "presets.toml";

/// Built-in presets plus the user's (theirs win on a name clash).
pub fn load() -> anyhow::Result<Presets> {
    let mut all = built_in();
    let path = super::paths::config_dir().join(USER_FILE);
    if path.is_file() {
        let text = std::fs::read_to_string(&path)?;
        all.extend(parse(&text, &path.display().to_string())?);
    }
    Ok(all)
}

/// Whether `name` can be a preset name (a bare TOML key).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Saves `settings` as preset `name` in the presets file at `path`,
/// keeping the rest of it as it was (comments, other presets, their
/// order): the preset's table is replaced where it stands, or appended.
/// The result is checked by parsing it again, then written atomically; a
/// file that does not parse is left untouched.
pub fn save_user(path: &Path, name: &str, settings: &SamplerSettings) -> anyhow::Result<()> {
    anyhow::ensure!(
        valid_name(name),
        "`{name}` is not a preset name: use letters, digits, - and _"
    );
    settings.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let origin = path.display().to_string();
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(anyhow::anyhow!("reading {origin}: {e}")),
    };
    let before =
        parse(&old, &origin).map_err(|e| anyhow::anyhow!("{e}; the file was left untouched"))?;
    let text = replace_table(&old, name, settings)?;
    let mut expected = before;
    expected.insert(name.to_string(), settings.clone());
    let after = parse(&text, &origin)?;
    anyhow::ensure!(
        after == expected,
        "{origin} could not be edited safely (is [{name}] written in an unusual way?); the file was left untouched"
    );
    super::atomic::write(path, text.as_bytes())?;
    Ok(())
}

/// `text` with the table `[name]` replaced by `settings` where it stands
/// (its header's comments kept), or appended; everything else as it was.
fn replace_table(text: &str, name: &str, settings: &SamplerSettings) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    let fresh: toml_edit::DocumentMut = toml::to_string(settings)?.parse()?;
    let mut table = fresh.as_table().clone();
    table.set_implicit(false);
    match doc.get_mut(name).and_then(toml_edit::Item::as_table_mut) {
        Some(old) => {
            *table.decor_mut() = old.decor().clone();
            *old = table;
        }
        None => {
            doc.insert(name, toml_edit::Item::Table(table));
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_presets_exist_and_differ() {
        let p = built_in();
        for name in ["greedy", "precise", "balanced", "creative"] {
            assert!(p.contains_key(name), "{name}");
        }
        assert_eq!(p["greedy"].temperature, 0.0);
        assert_eq!(p["creative"].repeat_penalty, 1.1);
        assert_eq!(p["greedy"].order, SamplerSettings::default().order);
    }

    #[test]
    fn saving_a_preset_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presets.toml");
        let original = "# my presets\n\n[hot]\ntemperature = 1.5 # very\n\n# the calm one\n[calm]\ntemperature = 0.2\n";
        std::fs::write(&path, original).unwrap();
        let s = SamplerSettings {
            temperature: 0.5,
            top_k: 7,
            ..Default::default()
        };
        save_user(&path, "mine", &s).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(original), "{text}");
        let p = parse(&text, "t").unwrap();
        assert_eq!(p["mine"], s);
        assert_eq!(p["hot"].temperature, 1.5);

        // Saving it again replaces the table in place.
        let s2 = SamplerSettings {
            temperature: 0.9,
            ..s.clone()
        };
        save_user(&path, "hot", &s2).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my presets\n\n[hot]\n"), "{text}");
        assert!(
            text.contains("# the calm one\n[calm]\ntemperature = 0.2"),
            "{text}"
        );
        assert!(!text.contains("# very"), "the old table is gone: {text}");
        let p = parse(&text, "t").unwrap();
        assert_eq!((p["hot"].clone(), p["mine"].clone()), (s2, s));
        assert_eq!(p["calm"].temperature, 0.2);
    }

    #[test]
    fn a_broken_presets_file_or_a_bad_name_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presets.toml");
        std::fs::write(&path, "[hot\ntemperature = ").unwrap();
        let e = save_user(&path, "mine", &SamplerSettings::default()).unwrap_err();
        assert!(e.to_string().contains("untouched"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[hot\ntemperature = "
        );
        assert!(save_user(&path, "my preset", &SamplerSettings::default()).is_err());
        // No file yet: it is made.
        let fresh = dir.path().join("new/presets.toml");
        save_user(&fresh, "a", &SamplerSettings::default()).unwrap();
        assert_eq!(
            parse(&std::fs::read_to_string(&fresh).unwrap(), "t").unwrap()["a"],
            SamplerSettings::default()
        );
    }

    #[test]
    fn invalid_user_preset_names_the_file_and_preset() {
        let e = parse("[hot]\ntemperature = -2\n", "presets.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("presets.toml") && e.contains("`hot`") && e.contains("temperature"),
            "{e}"
        );
    }
}
