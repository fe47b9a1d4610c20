//! The settings the settings pane edits: each field's name, its value as
//! text, and how a typed value or a nudge changes the config.

use crate::engine::sampling::SamplerSettings;
use crate::store::config::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub help: &'static str,
}

const fn f(name: &'static str, help: &'static str) -> Field {
    Field { name, help }
}

pub const FIELDS: &[Field] = &[
    f("temperature", "0 = greedy"),
    f("top_k", "keep the K most likely (0 = off)"),
    f("top_p", "smallest set reaching P (1 = off)"),
    f("min_p", "drop below P x best (0 = off)"),
    f("typical_p", "locally typical mass (1 = off)"),
    f("repeat_penalty", "1 = off"),
    f("presence_penalty", "0 = off"),
    f("frequency_penalty", "0 = off"),
    f("penalty_last_n", "tokens the penalties look at"),
    f("seed", "same seed, same tokens"),
    f("order", "the chain, comma-separated"),
    f("max_tokens", "most tokens per run"),
    f("top_n", "alternatives recorded per token"),
    f(
        "capture_attention",
        "keep queries for attention (true/false)",
    ),
    f("chat", "apply the chat template (true/false)"),
    f("system", "system message in chat mode (empty = default)"),
];

pub fn value_of(c: &Config, field: Field) -> String {
    let s = &c.sampler;
    let g = &c.generation;
    match field.name {
        "temperature" => format!("{}", s.temperature),
        "top_k" => s.top_k.to_string(),
        "top_p" => format!("{}", s.top_p),
        "min_p" => format!("{}", s.min_p),
        "typical_p" => format!("{}", s.typical_p),
        "repeat_penalty" => format!("{}", s.repeat_penalty),
        "presence_penalty" => format!("{}", s.presence_penalty),
        "frequency_penalty" => format!("{}", s.frequency_penalty),
        "penalty_last_n" => s.penalty_last_n.to_string(),
        "seed" => s.seed.to_string(),
        "order" => s
            .order
            .iter()
            .map(|st| st.name())
            .collect::<Vec<_>>()
            .join(","),
        "max_tokens" => g.max_tokens.to_string(),
        "top_n" => g.top_n.to_string(),
        "capture_attention" => g.capture_attention.to_string(),
        "chat" => g.chat.to_string(),
        "system" => g.system.clone(),
        _ => String::new(),
    }
}

fn num<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{name}: `{}` is not a valid number", text.trim()))
}

fn boolean(name: &str, text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        other => Err(format!("{name}: `{other}` is not true or false")),
    }
}

/// Sets `field` from text, keeping the old value when the result would be
/// invalid; the error says why.
pub fn set(c: &mut Config, field: Field, text: &str) -> Result<(), String> {
    let mut s: SamplerSettings = c.sampler.clone();
    let mut g = c.generation.clone();
    let n = field.name;
    match n {
        "temperature" => s.temperature = num(n, text)?,
        "top_k" => s.top_k = num(n, text)?,
        "top_p" => s.top_p = num(n, text)?,
        "min_p" => s.min_p = num(n, text)?,
        "typical_p" => s.typical_p = num(n, text)?,
        "repeat_penalty" => s.repeat_penalty = num(n, text)?,
        "presence_penalty" => s.presence_penalty = num(n, text)?,
        "frequency_penalty" => s.frequency_penalty = num(n, text)?,
        "penalty_last_n" => s.penalty_last_n = num(n, text)?,
        "seed" => s.seed = num(n, text)?,
        "order" => s.order = SamplerSettings::parse_order(text).map_err(|e| e.to_string())?,
        "max_tokens" => {
            g.max_tokens = num(n, text)?;
            if g.max_tokens == 0 {
                return Err("max_tokens must be at least 1".into());
            }
        }
        "top_n" => g.top_n = num::<usize>(n, text)?.min(100),
        "capture_attention" => g.capture_attention = boolean(n, text)?,
        "chat" => g.chat = boolean(n, text)?,
        "system" => g.system = text.to_string(),
        _ => return Err(format!("unknown setting {n}")),
    }
    s.validate().map_err(|e| e.to_string())?;
    c.sampler = s;
    c.generation = g;
    Ok(())
}

/// Steps a value up or down by a sensible amount (booleans flip).
pub fn nudge(c: &mut Config, field: Field, up: bool) -> Result<(), String> {
    let cur = value_of(c, field);
    let sign = if up { 1.0 } else { -1.0 };
    let next = match field.name {
        "temperature" | "repeat_penalty" | "presence_penalty" | "frequency_penalty" => {
            let v: f64 = num(field.name, &cur)?;
            format!("{:.2}", (v + 0.1 * sign).max(0.0))
        }
        "top_p" | "typical_p" => {
            let v: f64 = num(field.name, &cur)?;
            format!("{:.2}", (v + 0.05 * sign).clamp(0.05, 1.0))
        }
        "min_p" => {
            let v: f64 = num(field.name, &cur)?;
            format!("{:.2}", (v + 0.01 * sign).clamp(0.0, 0.99))
        }
        "top_k" | "penalty_last_n" | "seed" | "max_tokens" | "top_n" => {
            let v: i64 = num(field.name, &cur)?;
            let step = match field.name {
                "top_k" | "top_n" | "seed" => 1,
                _ => 16,
            };
            (v + step * sign as i64).max(0).to_string()
        }
        "capture_attention" | "chat" => (!boolean(field.name, &cur)?).to_string(),
        _ => return Err(format!("{}: press Enter to edit it", field.name)),
    };
    set(c, field, &next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> Field {
        *FIELDS.iter().find(|f| f.name == name).unwrap()
    }

    #[test]
    fn invalid_values_are_refused_and_leave_the_old_one() {
        let mut c = Config::defaults();
        assert!(
            set(&mut c, field("top_p"), "1.5")
                .unwrap_err()
                .contains("top-p")
        );
        assert_eq!(c.sampler.top_p, 0.95);
        assert!(set(&mut c, field("temperature"), "hot").is_err());
        set(&mut c, field("order"), "top_k,temperature").unwrap();
        assert_eq!(value_of(&c, field("order")), "top_k,temperature");
        nudge(&mut c, field("chat"), true).unwrap();
        assert!(!c.generation.chat);
        nudge(&mut c, field("temperature"), false).unwrap();
        assert!((c.sampler.temperature - 0.7).abs() < 1e-6);
        for f in FIELDS {
            let v = value_of(&c, *f);
            set(&mut c, *f, &v).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        }
    }
}
