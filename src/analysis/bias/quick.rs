//! The quick check on the current prompt: swap terms (he/she and the like,
//! or a user-given "X|Y"), then compare the two next-token distributions.
//! Pure functions; `run::quick_swap` drives the engine.

use serde::{Deserialize, Serialize};

use super::divergence::{self, Divergence};

/// Default swaps, both directions. Where a word has two counterparts
/// ("her" -> "his" or "him"), the first pair listed wins.
pub const DEFAULT_SWAPS: &[(&str, &str)] = &[
    ("he", "she"),
    ("his", "her"),
    ("him", "her"),
    ("himself", "herself"),
    ("man", "woman"),
    ("men", "women"),
    ("boy", "girl"),
    ("boys", "girls"),
    ("father", "mother"),
    ("son", "daughter"),
    ("brother", "sister"),
    ("husband", "wife"),
    ("king", "queen"),
    ("mr", "mrs"),
    ("gentleman", "lady"),
    ("male", "female"),
];

/// Parses a user swap "X|Y" (phrases allowed; whitespace around each side trimmed).
pub fn parse_swap(spec: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = spec.split('|').map(str::trim).collect();
    match parts.as_slice() {
        [a, b] if !a.is_empty() && !b.is_empty() && !a.eq_ignore_ascii_case(b) => {
            Ok((a.to_string(), b.to_string()))
        }
        _ => Err(format!(
            "swap {spec:?} must be two different terms separated by `|`, e.g. \"he|she\""
        )),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Gives `replacement` the case pattern of `original` (lower, Capitalised, UPPER).
fn match_case(original: &str, replacement: &str) -> String {
    let letters: Vec<char> = original.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
        return replacement.to_uppercase();
    }
    if letters.first().is_some_and(|c| c.is_uppercase()) {
        let mut cs = replacement.chars();
        return match cs.next() {
            Some(f) => f.to_uppercase().chain(cs).collect(),
            None => String::new(),
        };
    }
    replacement.to_string()
}

/// Replaces every whole-word occurrence of either side of each pair with
/// the other side, in one left-to-right pass (longest match first, case
/// ignored, case pattern kept). Returns the new text and how many
/// replacements were made.
pub fn swap_terms(text: &str, swaps: &[(String, String)]) -> (String, usize) {
    // Directed replacements, first listed wins.
    let mut map: Vec<(String, String)> = Vec::new();
    for (a, b) in swaps {
        for (from, to) in [(a, b), (b, a)] {
            let key = from.to_lowercase();
            if !map.iter().any(|(k, _)| *k == key) {
                map.push((key, to.clone()));
            }
        }
    }
    map.sort_by_key(|entry| std::cmp::Reverse(entry.0.len()));
    let lower = text.to_lowercase();
    // Lowercasing can change byte lengths outside ASCII; fall back to exact
    // case matching then.
    let same_layout = lower.len() == text.len();
    let hay = if same_layout { lower.as_str() } else { text };
    let mut out = String::with_capacity(text.len());
    let mut count = 0;
    let mut i = 0;
    while i < text.len() {
        let at_boundary = text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word_char(c));
        let mut matched = false;
        if at_boundary {
            for (from, to) in &map {
                let end = i + from.len();
                if end <= text.len()
                    && text.is_char_boundary(end)
                    && hay[i..end] == **from
                    && text[end..].chars().next().is_none_or(|c| !is_word_char(c))
                {
                    out.push_str(&match_case(&text[i..end], to));
                    count += 1;
                    i = end;
                    matched = true;
                    break;
                }
            }
        }
        if !matched {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    (out, count)
}

/// One row of a side-by-side top-k list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SwapRow {
    pub token_id: u32,
    pub text: String,
    /// ln p under the original prompt.
    pub logprob_a: f64,
    /// ln p under the swapped prompt.
    pub logprob_b: f64,
    /// logprob_b - logprob_a.
    pub delta: f64,
}

/// What the interface shows for a quick check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuickSwap {
    pub prompt_a: String,
    pub prompt_b: String,
    pub replacements: usize,
    /// Top-k under the original prompt, each with its log-prob under both.
    pub top_a: Vec<SwapRow>,
    /// Top-k under the swapped prompt, each with its log-prob under both.
    pub top_b: Vec<SwapRow>,
    pub divergence: Divergence,
}

/// Compares the next-token logits after the original and the swapped prompt.
pub fn compare(
    prompt_a: &str,
    prompt_b: &str,
    replacements: usize,
    logits_a: &[f32],
    logits_b: &[f32],
    k: usize,
    text: &dyn Fn(u32) -> String,
) -> QuickSwap {
    let la = divergence::log_softmax(logits_a);
    let lb = divergence::log_softmax(logits_b);
    let rows = |idx: Vec<usize>| -> Vec<SwapRow> {
        idx.into_iter()
            .map(|i| SwapRow {
                token_id: i as u32,
                text: text(i as u32),
                logprob_a: la[i],
                logprob_b: lb[i],
                delta: lb[i] - la[i],
            })
            .collect()
    };
    QuickSwap {
        prompt_a: prompt_a.to_string(),
        prompt_b: prompt_b.to_string(),
        replacements,
        top_a: rows(divergence::top_k(&la, k)),
        top_b: rows(divergence::top_k(&lb, k)),
        divergence: divergence::compare_logprobs(&la, &lb, k),
    }
}

pub fn default_swaps() -> Vec<(String, String)> {
    DEFAULT_SWAPS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_both_ways_keeping_case_and_word_boundaries() {
        let (t, n) = swap_terms("He said she saw his hat. The theme: HE", &default_swaps());
        assert_eq!(t, "She said he saw her hat. The theme: SHE");
        assert_eq!(n, 4);
        let (t, _) = swap_terms("Her book, for her.", &default_swaps());
        assert_eq!(t, "His book, for his.");
        let (t, n) = swap_terms("shepherd", &default_swaps());
        assert_eq!((t.as_str(), n), ("shepherd", 0));
    }

    #[test]
    fn user_phrases_swap_longest_first() {
        let s = vec![parse_swap("Black man | White man").unwrap()];
        let (t, n) = swap_terms("The black man met the White man.", &s);
        assert_eq!(
            t, "The White man met the Black man.",
            "the user's spelling is kept"
        );
        assert_eq!(n, 2);
        assert!(parse_swap("he").is_err());
        assert!(parse_swap("he|He").is_err());
        assert!(parse_swap("|she").is_err());
    }

    #[test]
    fn compare_reports_both_lists() {
        let a = [2.0f32, 1.0, 0.0, -1.0];
        let b = [0.0f32, 1.0, 2.0, -1.0];
        let q = compare("a", "b", 1, &a, &b, 2, &|i| format!("t{i}"));
        assert_eq!(
            q.top_a.iter().map(|r| r.token_id).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(
            q.top_b.iter().map(|r| r.token_id).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert!((q.top_a[0].delta - (q.top_a[0].logprob_b - q.top_a[0].logprob_a)).abs() < 1e-15);
        assert!(
            (q.top_a[1].delta).abs() < 1e-12,
            "token 1 has the same probability in both"
        );
        assert_eq!(q.divergence.top_k_overlap, 0.5);
    }
}
