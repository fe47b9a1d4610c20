//! Sampler presets: built in (assets/presets.toml), extended or overridden
//! by presets.toml in the user's config directory.

use std::collections::BTreeMap;

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

/// Built-in presets plus the user's (theirs win on a name clash).
pub fn load() -> anyhow::Result<Presets> {
    let mut all = built_in();
    let path = super::paths::config_dir().join("presets.toml");
    if path.is_file() {
        let text = std::fs::read_to_string(&path)?;
        all.extend(parse(&text, &path.display().to_string())?);
    }
    Ok(all)
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
