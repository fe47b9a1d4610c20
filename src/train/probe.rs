//! What each evaluation shows of the net: a probe text's predictions and
//! attention, and two scores per head that tell learned heads apart. The
//! previous-token score is the attention a position pays to the one just
//! before it; the induction score, on a random sequence repeated twice, is
//! the attention a token in the second copy pays to the token that
//! followed its first occurrence (the head that copies what came next).

use candle_core::{D, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokenizers::Tokenizer;

use super::nets::Net;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Probe {
    pub text: String,
    pub tokens: Vec<String>,
    /// The position predicted (a `[MASK]`, or the last token for a decoder)
    /// and its five most probable tokens.
    pub predictions: Vec<(usize, Vec<(String, f32)>)>,
    /// Per layer, per head `(time, time)` attention over the probe text.
    pub attention: Vec<Vec<Vec<Vec<f32>>>>,
    pub heads: Vec<HeadScore>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HeadScore {
    pub layer: usize,
    pub head: usize,
    pub previous_token: f32,
    pub induction: f32,
}

/// Half the length of the repeated random sequence.
const REPEAT: usize = 12;

fn top(tok: &Tokenizer, row: &Tensor, k: usize) -> anyhow::Result<Vec<(String, f32)>> {
    let lp: Vec<f32> = row.to_vec1()?;
    let mut ix: Vec<usize> = (0..lp.len()).collect();
    ix.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
    Ok(ix
        .into_iter()
        .take(k)
        .map(|i| {
            let t = tok.id_to_token(i as u32).unwrap_or_default();
            (t, lp[i].exp())
        })
        .collect())
}

pub fn probe(net: &dyn Net, tok: &Tokenizer, text: &str) -> anyhow::Result<Probe> {
    let masked = net.config().arch.is_masked();
    let enc = tok
        .encode(text, masked)
        .map_err(|e| anyhow::anyhow!("tokenizing the probe: {e}"))?;
    let max = net.config().max_positions;
    let ids: Vec<u32> = enc.get_ids().iter().copied().take(max).collect();
    if ids.is_empty() {
        anyhow::bail!("the probe text has no tokens");
    }
    let (attention, logp) = net.probe(&ids)?;
    let at: Vec<usize> = if masked {
        let mask = tok.token_to_id("[MASK]");
        ids.iter()
            .enumerate()
            .filter(|(_, i)| Some(**i) == mask)
            .map(|(p, _)| p)
            .collect()
    } else {
        vec![ids.len() - 1]
    };
    let predictions = at
        .into_iter()
        .map(|p| Ok((p, top(tok, &logp.get(p)?, 5)?)))
        .collect::<anyhow::Result<_>>()?;
    let attention_rows = attention
        .iter()
        .map(|a| Ok(a.to_vec3::<f32>()?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Probe {
        text: text.to_string(),
        tokens: ids
            .iter()
            .map(|&i| tok.id_to_token(i).unwrap_or_default())
            .collect(),
        predictions,
        attention: attention_rows,
        heads: head_scores(net, tok)?,
    })
}

/// Both scores for every head, on a fixed random sequence repeated.
pub fn head_scores(net: &dyn Net, tok: &Tokenizer) -> anyhow::Result<Vec<HeadScore>> {
    let cfg = net.config();
    let n = REPEAT.min(cfg.max_positions / 2);
    let mut rng = ChaCha8Rng::seed_from_u64(0x1d0c);
    let first_plain = (0..cfg.vocab_size as u32)
        .find(|&i| {
            !tok.id_to_token(i)
                .is_some_and(|t| t.starts_with('[') || t.starts_with('<'))
        })
        .unwrap_or(0);
    let half: Vec<u32> = (0..n)
        .map(|_| rng.random_range(first_plain..cfg.vocab_size as u32))
        .collect();
    let ids = [half.clone(), half].concat();
    let (attention, _) = net.probe(&ids)?;
    let mut out = Vec::new();
    for (layer, a) in attention.iter().enumerate() {
        // (heads, t, t)
        let prev = a.narrow(1, 1, 2 * n - 1)?.narrow(2, 0, 2 * n - 1)?;
        let prev = diagonal_mean(&prev)?;
        // Position n + i (second copy) to position i + 1: the token after
        // this token's first occurrence.
        let ind = a.narrow(1, n, n - 1)?.narrow(2, 1, n - 1)?;
        let ind = diagonal_mean(&ind)?;
        for head in 0..prev.len() {
            out.push(HeadScore {
                layer,
                head,
                previous_token: prev[head],
                induction: ind[head],
            });
        }
    }
    Ok(out)
}

/// The mean of each head's diagonal of a `(heads, k, k)` block.
fn diagonal_mean(block: &Tensor) -> anyhow::Result<Vec<f32>> {
    let (h, k, _) = block.dims3()?;
    let eye = Tensor::eye(k, block.dtype(), block.device())?;
    let sum = block.broadcast_mul(&eye)?.sum(D::Minus1)?.sum(D::Minus1)?;
    let v: Vec<f32> = sum.to_vec1()?;
    debug_assert_eq!(v.len(), h);
    Ok(v.into_iter().map(|s| s / k as f32).collect())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Result, Tensor};

    use super::{REPEAT, head_scores};
    use crate::train::nets::{Arch, Batch, Losses, Net, NetConfig};
    use crate::train::ops::Dropout;

    /// A net whose head 0 attends exactly to the previous token and head 1
    /// exactly to the token after the current one's first occurrence.
    struct Pattern(NetConfig);

    impl Net for Pattern {
        fn config(&self) -> &NetConfig {
            &self.0
        }

        fn loss(&self, _: &Batch, _: &mut Dropout) -> Result<Losses> {
            unreachable!()
        }

        fn probe(&self, ids: &[u32]) -> Result<(Vec<Tensor>, Tensor)> {
            let (t, n) = (ids.len(), ids.len() / 2);
            let mut a = vec![0f32; 2 * t * t];
            for q in 0..t {
                a[q * t + q.saturating_sub(1)] = 1.0;
                let k = if q >= n { q - n + 1 } else { q };
                a[t * t + q * t + k] = 1.0;
            }
            let att = Tensor::from_vec(a, (2, t, t), &Device::Cpu)?;
            Ok((
                vec![att],
                Tensor::zeros((t, 4), candle_core::DType::F32, &Device::Cpu)?,
            ))
        }
    }

    #[test]
    fn previous_token_and_induction_heads_score_one() {
        let cfg = NetConfig {
            vocab_size: 50,
            ..NetConfig::preset(Arch::Gpt2, "tiny").unwrap()
        };
        let tok = tokenizers::Tokenizer::new(tokenizers::models::wordlevel::WordLevel::default());
        let s = head_scores(&Pattern(cfg), &tok).unwrap();
        assert_eq!(s.len(), 2);
        assert!(
            (s[0].previous_token - 1.0).abs() < 1e-6 && s[0].induction < 0.2,
            "{:?}",
            s[0]
        );
        assert!((s[1].induction - 1.0).abs() < 1e-6, "{:?}", s[1]);
        assert!(
            s[1].previous_token < 1.0 / REPEAT as f32 + 0.6,
            "{:?}",
            s[1]
        );
    }
}
