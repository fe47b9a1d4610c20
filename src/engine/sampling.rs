//! The sampler chain: penalties, top-k, typical-p, top-p, min-p and
//! temperature in a user-set order, seeded, with a trace of which stage
//! removed each candidate. Semantics follow llama.cpp's samplers, so the
//! same settings mean the same thing in both tools.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::engine::error::{EngineError, Result};

/// One stage of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Penalties,
    TopK,
    TypicalP,
    TopP,
    MinP,
    Temperature,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Penalties,
        Stage::TopK,
        Stage::TypicalP,
        Stage::TopP,
        Stage::MinP,
        Stage::Temperature,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Penalties => "penalties",
            Stage::TopK => "top_k",
            Stage::TypicalP => "typical_p",
            Stage::TopP => "top_p",
            Stage::MinP => "min_p",
            Stage::Temperature => "temperature",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stage {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s || (s == "typical" && *st == Stage::TypicalP) || (s == "temp" && *st == Stage::Temperature))
            .ok_or_else(|| {
                EngineError::InvalidSampler(format!(
                    "unknown sampler `{s}`; use some of: penalties, top_k, typical_p, top_p, min_p, temperature"
                ))
            })
    }
}

/// Settings of the chain. Defaults are llama.cpp's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerSettings {
    /// 0 means greedy: only the most likely survivor is kept.
    pub temperature: f32,
    /// 0 turns top-k off.
    pub top_k: usize,
    /// 1 turns top-p off.
    pub top_p: f32,
    /// 0 turns min-p off.
    pub min_p: f32,
    /// 1 turns typical-p off.
    pub typical_p: f32,
    /// 1 turns the repetition penalty off.
    pub repeat_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// How many of the most recent tokens (prompt included) the penalties see.
    pub penalty_last_n: usize,
    pub seed: u64,
    pub order: Vec<Stage>,
}

impl Default for SamplerSettings {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 42,
            order: vec![
                Stage::Penalties,
                Stage::TopK,
                Stage::TypicalP,
                Stage::TopP,
                Stage::MinP,
                Stage::Temperature,
            ],
        }
    }
}

impl SamplerSettings {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Rejects settings that mean nothing, saying which and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::InvalidSampler(m));
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature {} must be 0 (greedy) or positive",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!(
                "top-p {} must be in (0, 1]; 1 turns it off",
                self.top_p
            ));
        }
        if !(0.0..1.0).contains(&self.min_p) {
            return bad(format!(
                "min-p {} must be in [0, 1); 0 turns it off",
                self.min_p
            ));
        }
        if !(self.typical_p > 0.0 && self.typical_p <= 1.0) {
            return bad(format!(
                "typical-p {} must be in (0, 1]; 1 turns it off",
                self.typical_p
            ));
        }
        if !self.repeat_penalty.is_finite() || self.repeat_penalty <= 0.0 {
            return bad(format!(
                "repeat penalty {} must be positive; 1 turns it off",
                self.repeat_penalty
            ));
        }
        if !self.presence_penalty.is_finite() || !self.frequency_penalty.is_finite() {
            return bad("presence and frequency penalties must be finite numbers".into());
        }
        if self.order.is_empty() {
            return bad("the sampler chain is empty; list at least one sampler".into());
        }
        if self.order == [Stage::TopK] && self.top_k == 0 {
            return bad("top-k 0 turns top-k off and the chain has nothing else; give --top-k N > 0 or more samplers".into());
        }
        let mut seen = Vec::new();
        for s in &self.order {
            if seen.contains(s) {
                return bad(format!("sampler `{s}` appears twice in the chain"));
            }
            seen.push(*s);
        }
        Ok(())
    }

    /// Parses a chain such as "top_k,top_p,temperature" (or ";" separated).
    pub fn parse_order(s: &str) -> Result<Vec<Stage>> {
        s.split([',', ';'])
            .filter(|p| !p.trim().is_empty())
            .map(Stage::from_str)
            .collect()
    }
}

/// One candidate in the sampled step's trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Candidate {
    pub token_id: u32,
    /// Softmax of the raw logits.
    pub p_raw: f32,
    /// Probability in the distribution actually sampled from (0 if removed).
    pub p_final: f32,
    /// The stage that removed it, None for survivors.
    pub removed_by: Option<Stage>,
}

/// What one sampling step decided, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sampled {
    pub token_id: u32,
    pub p_raw: f32,
    pub p_final: f32,
    /// Natural log of p_raw.
    pub logprob: f32,
    /// 1-based rank of the chosen token among the raw probabilities.
    pub rank: usize,
    /// Entropy of the raw distribution, in nats.
    pub entropy: f32,
    /// The top-N tokens by raw probability.
    pub top: Vec<Candidate>,
}

/// A seeded sampler: the same settings, seed and logits give the same
/// tokens on every run and machine (ChaCha8 is portable). The random draw
/// for a position depends only on the seed and that position, so a branch
/// or a side-by-side column with the same seed draws the same number where
/// a fresh run would: runs differ only where their distributions do.
#[derive(Clone)]
pub struct Sampler {
    settings: SamplerSettings,
}

struct Cand {
    logit: f32,
    removed: Option<Stage>,
}

/// Softmax over `logits` in f64 (stable for 10^5 entries).
fn softmax(logits: impl Iterator<Item = f32> + Clone) -> Vec<f64> {
    softmax_entropy(logits).0
}

/// Softmax over `logits` in f64 and its entropy in nats, as
/// H = ln Z - sum_i p_i (l_i - max) (with Z = sum_i e^(l_i - max)): the
/// definition -sum_i p_i ln p_i without a logarithm per entry, which over
/// a whole vocabulary costs as much as the softmax itself.
fn softmax_entropy(logits: impl Iterator<Item = f32> + Clone) -> (Vec<f64>, f64) {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut p: Vec<f64> = logits.clone().map(|l| (l as f64 - max).exp()).collect();
    let z: f64 = p.iter().sum();
    let inv = 1.0 / z;
    let mut mean_shifted = 0.0;
    for (p, l) in p.iter_mut().zip(logits) {
        *p *= inv;
        if *p > 0.0 {
            mean_shifted += *p * (l as f64 - max);
        }
    }
    (p, z.ln() - mean_shifted)
}

/// How many leading probabilities it takes to reach `mass` (all of them
/// when they never do).
fn count_to_mass(probs: impl ExactSizeIterator<Item = f64>, mass: f64) -> usize {
    let len = probs.len();
    let mut cum = 0.0;
    for (n, p) in probs.enumerate() {
        cum += p;
        if cum >= mass {
            return n + 1;
        }
    }
    len
}

impl Sampler {
    pub fn new(settings: SamplerSettings) -> Result<Self> {
        settings.validate()?;
        Ok(Self { settings })
    }

    pub fn settings(&self) -> &SamplerSettings {
        &self.settings
    }

    /// The uniform draw in [0, 1) of stream `stream` (a position, for decoders).
    fn draw(&self, stream: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(self.settings.seed);
        rng.set_stream(stream);
        rng.random::<f64>()
    }

    /// Samples the next token from `logits`, given the tokens so far
    /// (`history`: the penalties' window; its length is the new token's
    /// position), recording the `top_n` alternatives. With `forced`, that
    /// token is taken instead of a draw, and traced like any other.
    pub fn sample(
        &self,
        logits: &[f32],
        history: &[u32],
        top_n: usize,
        forced: Option<u32>,
    ) -> Sampled {
        self.sample_drawing(logits, history, top_n, forced, history.len() as u64)
    }

    /// [`Sampler::sample`] with the random draw of stream `draw` instead of
    /// the position's: a masked model fills positions in any order and may
    /// revisit one, so its steps number the draws.
    pub fn sample_drawing(
        &self,
        logits: &[f32],
        history: &[u32],
        top_n: usize,
        forced: Option<u32>,
        draw: u64,
    ) -> Sampled {
        let s = &self.settings;
        let (p_raw, entropy) = softmax_entropy(logits.iter().copied());

        let mut cands: Vec<Cand> = logits
            .iter()
            .map(|&l| Cand {
                logit: l,
                removed: None,
            })
            .collect();
        // Survivors are kept sorted by logit, most likely first.
        // Survivors, most likely first once `sorted`. Sorting 49,152
        // candidates costs more than the rest of the chain, so top-k only
        // selects its k and sorts those.
        let mut alive: Vec<usize> = (0..cands.len()).collect();
        let mut sorted = false;
        let by_logit = |cands: &[Cand], a: usize, b: usize| {
            cands[b].logit.total_cmp(&cands[a].logit).then(a.cmp(&b))
        };
        let sort = |alive: &mut [usize], cands: &[Cand]| sort_by_logit(alive, cands);

        for &stage in &s.order {
            let cuts_by_order = match stage {
                Stage::TopP => s.top_p < 1.0,
                Stage::MinP => s.min_p > 0.0,
                Stage::Temperature => s.temperature == 0.0,
                _ => false,
            };
            if cuts_by_order && !sorted {
                if stage == Stage::Temperature && !alive.is_empty() {
                    // Greedy keeps only the first in that order: bring it
                    // to the front (one pass) instead of sorting them all.
                    alive.select_nth_unstable_by(0, |&a, &b| by_logit(&cands, a, b));
                } else {
                    sort(&mut alive, &cands);
                }
                sorted = true;
            }
            let keep = match stage {
                Stage::Penalties => {
                    let window = &history[history.len().saturating_sub(s.penalty_last_n)..];
                    let active = s.repeat_penalty != 1.0
                        || s.presence_penalty != 0.0
                        || s.frequency_penalty != 0.0;
                    if active && !window.is_empty() {
                        let mut counts: HashMap<u32, usize> = HashMap::new();
                        for &t in window {
                            *counts.entry(t).or_default() += 1;
                        }
                        for (&t, &n) in &counts {
                            if let Some(c) = cands.get_mut(t as usize) {
                                c.logit = if c.logit > 0.0 {
                                    c.logit / s.repeat_penalty
                                } else {
                                    c.logit * s.repeat_penalty
                                };
                                c.logit -= n as f32 * s.frequency_penalty + s.presence_penalty;
                            }
                        }
                        sorted = false;
                    }
                    alive.len()
                }
                Stage::TopK if s.top_k > 0 => {
                    let k = s.top_k.min(alive.len());
                    if !sorted && k < alive.len() {
                        alive.select_nth_unstable_by(k - 1, |&a, &b| by_logit(&cands, a, b));
                        sort(&mut alive[..k], &cands);
                        sorted = true;
                    }
                    k
                }
                Stage::TopP if s.top_p < 1.0 => {
                    let p = softmax(alive.iter().map(|&i| cands[i].logit));
                    count_to_mass(p.iter().copied(), s.top_p as f64)
                }
                Stage::MinP if s.min_p > 0.0 => {
                    let max = cands[alive[0]].logit;
                    let floor = max + s.min_p.ln();
                    alive
                        .iter()
                        .take_while(|&&i| cands[i].logit >= floor)
                        .count()
                        .max(1)
                }
                Stage::TypicalP if s.typical_p < 1.0 => {
                    // Keep the tokens whose surprise is closest to the
                    // entropy, up to a mass of typical_p (Meister et al.).
                    let p = softmax(alive.iter().map(|&i| cands[i].logit));
                    let h: f64 = -p
                        .iter()
                        .filter(|&&x| x > 0.0)
                        .map(|x| x * x.ln())
                        .sum::<f64>();
                    let mut by_typical: Vec<usize> = (0..p.len()).collect();
                    let dev = |j: usize| (-(p[j].max(f64::MIN_POSITIVE)).ln() - h).abs();
                    by_typical.sort_by(|&a, &b| dev(a).total_cmp(&dev(b)).then(a.cmp(&b)));
                    let n_keep =
                        count_to_mass(by_typical.iter().map(|&j| p[j]), s.typical_p as f64);
                    let mut kept = vec![false; p.len()];
                    for &j in &by_typical[..n_keep] {
                        kept[j] = true;
                    }
                    for (j, &i) in alive.iter().enumerate() {
                        if !kept[j] {
                            cands[i].removed = Some(stage);
                        }
                    }
                    alive.retain(|&i| cands[i].removed.is_none());
                    alive.len()
                }
                Stage::Temperature => {
                    if s.temperature == 0.0 {
                        1
                    } else {
                        for &i in &alive {
                            cands[i].logit /= s.temperature;
                        }
                        alive.len()
                    }
                }
                _ => alive.len(),
            };
            for &i in &alive[keep..] {
                cands[i].removed = Some(stage);
            }
            alive.truncate(keep);
        }

        if !sorted {
            sort(&mut alive, &cands); // the draw walks survivors best first
        }
        let p_final_alive = softmax(alive.iter().map(|&i| cands[i].logit));
        let mut p_final = vec![0f32; cands.len()];
        for (&i, &p) in alive.iter().zip(&p_final_alive) {
            p_final[i] = p as f32;
        }
        let chosen = if let Some(f) = forced.filter(|&f| (f as usize) < cands.len()) {
            f as usize
        } else if alive.len() == 1 {
            alive[0]
        } else {
            let u = self.draw(draw);
            // The first survivor whose cumulative probability exceeds u.
            let n = count_to_mass(p_final_alive.iter().copied(), u.next_up());
            alive[n - 1]
        };

        let mut by_raw: Vec<usize> = (0..p_raw.len()).collect();
        let n = top_n.min(by_raw.len());
        let by_prob = |a: &usize, b: &usize| p_raw[*b].total_cmp(&p_raw[*a]).then(a.cmp(b));
        if n > 0 && n < by_raw.len() {
            by_raw.select_nth_unstable_by(n - 1, by_prob);
        }
        by_raw.truncate(n);
        by_raw.sort_by(by_prob);
        let top = by_raw
            .iter()
            .map(|&i| Candidate {
                token_id: i as u32,
                p_raw: p_raw[i] as f32,
                p_final: p_final[i],
                removed_by: cands[i].removed,
            })
            .collect();
        let rank = 1 + p_raw
            .iter()
            .enumerate()
            .filter(|&(i, &p)| p > p_raw[chosen] || (p == p_raw[chosen] && i < chosen))
            .count();
        Sampled {
            token_id: chosen as u32,
            p_raw: p_raw[chosen] as f32,
            p_final: p_final[chosen],
            logprob: p_raw[chosen].ln() as f32,
            rank,
            entropy: entropy as f32,
            top,
        }
    }
}

/// Sorts candidate indices most likely first (logits in `f32::total_cmp`
/// order, ties by index: `by_logit`'s order) through one integer key per
/// candidate, which sorts the whole vocabulary several times faster than
/// comparing through the candidates.
fn sort_by_logit(alive: &mut [usize], cands: &[Cand]) {
    // total_cmp's own key: the bits, with the magnitude flipped for
    // negatives, compare as signed integers; then biased to unsigned and
    // inverted for most likely first; the index breaks ties.
    let key = |i: usize| {
        let b = cands[i].logit.to_bits() as i32;
        let ordered = (b ^ (((b >> 31) as u32) >> 1) as i32) as u32 ^ 0x8000_0000;
        (u64::from(!ordered) << 32) | i as u64
    };
    let mut keys: Vec<u64> = alive.iter().map(|&i| key(i)).collect();
    keys.sort_unstable();
    for (a, k) in alive.iter_mut().zip(keys) {
        *a = (k & 0xffff_ffff) as usize;
    }
}

/// The first index of the largest value (NaN never wins; 0 for a row of
/// NaN): a greedy pick straight from logits. Sixteen running maxima, then
/// the first sixteen-value chunk that holds the maximum, so that both passes
/// vectorise (a compare and branch per value was a visible share of a
/// batched benchmark step).
pub fn argmax(row: &[f32]) -> u32 {
    let chunks = row.chunks_exact(16);
    let tail = chunks.remainder();
    let mut lanes = [f32::NEG_INFINITY; 16];
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for (k, c) in row.chunks(16).enumerate() {
        if c.iter().fold(false, |found, &v| found | (v == max)) {
            let i = c.iter().position(|&v| v == max).unwrap_or(0);
            return (k * 16 + i) as u32;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![2.0, 1.0, 0.5, 0.0, -1.0, -3.0]
    }

    #[test]
    fn the_keyed_sort_orders_as_total_cmp_then_index() {
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) as u32
        };
        let mut logits: Vec<f32> = (0..5000)
            .map(|i| match i % 7 {
                0 => f32::from_bits(next()),
                1 => (next() % 5) as f32 - 2.0, // many ties
                _ => (next() as f32 / u32::MAX as f32 - 0.5) * 40.0,
            })
            .collect();
        logits.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
        ]);
        let cands: Vec<Cand> = logits
            .iter()
            .map(|&logit| Cand {
                logit,
                removed: None,
            })
            .collect();
        let mut want: Vec<usize> = (0..cands.len()).collect();
        want.sort_by(|&a, &b| cands[b].logit.total_cmp(&cands[a].logit).then(a.cmp(&b)));
        let mut got: Vec<usize> = (0..cands.len()).collect();
        sort_by_logit(&mut got, &cands);
        assert_eq!(got, want);
    }

    fn run(settings: SamplerSettings) -> Sampled {
        Sampler::new(settings)
            .unwrap()
            .sample(&logits(), &[], 6, None)
    }

    #[test]
    fn argmax_is_the_first_largest_value() {
        let naive = |row: &[f32]| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for n in [1usize, 15, 16, 17, 100, 49152] {
            let mut row: Vec<f32> = (0..n).map(|_| rng.random_range(-3f32..3.0)).collect();
            assert_eq!(argmax(&row), naive(&row), "n = {n}");
            // Ties go to the first; NaN never wins; the tail counts.
            row[n / 2] = 9.0;
            row[n - 1] = 9.0;
            row[1.min(n - 1)] = f32::NAN;
            assert_eq!(argmax(&row), naive(&row), "n = {n}");
        }
        assert_eq!(argmax(&[f32::NAN, 1.0, 2.0]), 2);
        assert_eq!(argmax(&[f32::NAN; 20]), 0);
        assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
    }

    #[test]
    fn greedy_keeps_only_the_argmax() {
        let out = run(SamplerSettings::greedy());
        assert_eq!(out.token_id, 0);
        assert_eq!(out.p_final, 1.0);
        assert_eq!(out.rank, 1);
        assert!(
            out.top[1..]
                .iter()
                .all(|c| c.removed_by.is_some() && c.p_final == 0.0)
        );
    }

    #[test]
    fn raw_probabilities_are_the_softmax() {
        let out = run(SamplerSettings::greedy());
        let z: f64 = logits().iter().map(|&l| (l as f64).exp()).sum();
        for c in &out.top {
            let want = (logits()[c.token_id as usize] as f64).exp() / z;
            assert!((c.p_raw as f64 - want).abs() < 1e-6);
        }
        let h: f64 = logits()
            .iter()
            .map(|&l| (l as f64).exp() / z)
            .map(|p| -p * p.ln())
            .sum();
        assert!((out.entropy as f64 - h).abs() < 1e-5);
    }

    #[test]
    fn each_stage_is_named_in_the_trace() {
        let s = SamplerSettings {
            temperature: 1.0,
            top_k: 4,
            top_p: 0.8,
            min_p: 0.0,
            ..Default::default()
        };
        let out = run(s);
        let by = |id: u32| {
            out.top
                .iter()
                .find(|c| c.token_id == id)
                .unwrap()
                .removed_by
        };
        assert_eq!(by(4), Some(Stage::TopK));
        assert_eq!(by(5), Some(Stage::TopK));
        // softmax over the 4 kept: 0.547, 0.201, 0.122, 0.074 -> 0.8 needs 3
        assert_eq!(by(3), Some(Stage::TopP));
        assert_eq!(by(0), None);
        let kept: f32 = out.top.iter().map(|c| c.p_final).sum();
        assert!((kept - 1.0).abs() < 1e-5);
    }

    #[test]
    fn min_p_is_relative_to_the_best() {
        let s = SamplerSettings {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.3,
            ..Default::default()
        };
        let out = run(s);
        // p_i / p_max = e^(l_i - 2): 1, .37, .22, ...
        let survivors: Vec<u32> = out
            .top
            .iter()
            .filter(|c| c.removed_by.is_none())
            .map(|c| c.token_id)
            .collect();
        assert_eq!(survivors, vec![0, 1]);
    }

    #[test]
    fn temperature_reshapes_the_final_distribution() {
        let s = SamplerSettings {
            temperature: 2.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let out = run(s);
        let z: f64 = logits().iter().map(|&l| (l as f64 / 2.0).exp()).sum();
        let c0 = out.top.iter().find(|c| c.token_id == 0).unwrap();
        assert!((c0.p_final as f64 - (1.0f64).exp() / z).abs() < 1e-6);
    }

    #[test]
    fn penalties_follow_llama_cpp() {
        let s = SamplerSettings {
            repeat_penalty: 2.0,
            temperature: 0.0,
            ..Default::default()
        };
        // token 0: 2.0 / 2 = 1.0 ties token 1's 1.0; ties go to the lower id.
        let out = Sampler::new(s).unwrap().sample(&logits(), &[0, 0], 6, None);
        assert_eq!(out.token_id, 0);
        let s = SamplerSettings {
            frequency_penalty: 0.6,
            temperature: 0.0,
            ..Default::default()
        };
        let out = Sampler::new(s).unwrap().sample(&logits(), &[0, 0], 6, None);
        assert_eq!(out.token_id, 1, "2.0 - 2 x 0.6 = 0.8 < 1.0");
        let s = SamplerSettings {
            presence_penalty: 1.6,
            temperature: 0.0,
            ..Default::default()
        };
        let out = Sampler::new(s)
            .unwrap()
            .sample(&logits(), &[0, 0, 1], 6, None);
        assert_eq!(out.token_id, 2, "0.5 beats 2.0 - 1.6 and 1.0 - 1.6");
    }

    #[test]
    fn typical_p_keeps_the_typical_tokens() {
        let s = SamplerSettings {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            typical_p: 0.5,
            ..Default::default()
        };
        let out = run(s);
        assert!(
            out.top
                .iter()
                .any(|c| c.removed_by == Some(Stage::TypicalP))
        );
        assert!(out.p_final > 0.0);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_other_tokens() {
        let s = SamplerSettings {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let draw = |seed| {
            let sm = Sampler::new(SamplerSettings { seed, ..s.clone() }).unwrap();
            let history = vec![0u32; 64];
            (0..64)
                .map(|i| sm.sample(&logits(), &history[..i], 1, None).token_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn the_draw_depends_on_seed_and_position_only() {
        let s = SamplerSettings {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 3,
            ..Default::default()
        };
        let a = Sampler::new(s.clone()).unwrap();
        let b = Sampler::new(s).unwrap();
        // Same position, different histories and calls before: same draw.
        let _ = a.sample(&logits(), &[1, 2, 3], 1, None);
        assert_eq!(
            a.sample(&logits(), &[5, 5, 5, 5], 1, None),
            b.sample(&logits(), &[5, 5, 5, 5], 1, None)
        );
    }

    #[test]
    fn forced_tokens_are_traced_like_sampled_ones() {
        let s = SamplerSettings {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let out = Sampler::new(s).unwrap().sample(&logits(), &[], 6, Some(3));
        assert_eq!(out.token_id, 3);
        assert_eq!(out.rank, 4);
        assert_eq!(out.p_final, 0.0, "top-k had removed it");
    }

    #[test]
    fn invalid_settings_are_named() {
        let e = |s: SamplerSettings| s.validate().unwrap_err().to_string();
        assert!(
            e(SamplerSettings {
                temperature: -1.0,
                ..Default::default()
            })
            .contains("temperature")
        );
        assert!(
            e(SamplerSettings {
                top_p: 0.0,
                ..Default::default()
            })
            .contains("top-p")
        );
        assert!(
            e(SamplerSettings {
                top_p: 1.5,
                ..Default::default()
            })
            .contains("top-p")
        );
        assert!(
            e(SamplerSettings {
                order: vec![Stage::TopK],
                top_k: 0,
                ..Default::default()
            })
            .contains("top-k 0")
        );
        assert!(SamplerSettings::parse_order("top_k,bogus").is_err());
        assert_eq!(
            SamplerSettings::parse_order("top-k;temp").unwrap(),
            vec![Stage::TopK, Stage::Temperature]
        );
    }
}
