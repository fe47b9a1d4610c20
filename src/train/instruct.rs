//! Instruction data for fine-tuning: a JSON object per line, a question
//! and its answer (`question`/`answer`, or `prompt`/`completion`, with an
//! optional `system`), or chat `messages` that end with the assistant's
//! turn. Each is rendered through the model's chat template and encoded
//! as inference encodes it; the loss falls on the answer's tokens and the
//! end-of-turn token that closes them, nothing else.

use std::path::Path;

use anyhow::{Context, bail};
use candle_core::{D, Tensor};
use rand::seq::SliceRandom;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::data::{ORDER, SPLIT, causal_batch, rng};
use super::nets::{Batch, labelled};
use crate::engine::chat::{ChatTemplate, Message};
use crate::engine::tokenizer::Tokenizer;

/// One rendered example: its tokens, where the answer starts, and the
/// line it came from.
#[derive(Clone, Debug)]
pub struct Example {
    pub ids: Vec<u32>,
    pub answer_from: usize,
    pub line: usize,
}

pub struct InstructData {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    batch: usize,
    seed: u64,
    pad: u32,
    /// The file's SHA-256: a resumed run checks it is the same data.
    pub sha256: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Chat {
        messages: Vec<Message>,
    },
    Pair {
        #[serde(alias = "prompt", alias = "instruction")]
        question: String,
        #[serde(alias = "completion", alias = "output", alias = "response")]
        answer: String,
        #[serde(default)]
        system: Option<String>,
    },
}

impl Line {
    fn messages(self) -> Vec<Message> {
        match self {
            Line::Chat { messages } => messages,
            Line::Pair {
                question,
                answer,
                system,
            } => system
                .map(|s| Message::new("system", s))
                .into_iter()
                .chain([
                    Message::new("user", question),
                    Message::new("assistant", answer),
                ])
                .collect(),
        }
    }
}

/// The prompt (everything before the answer, the assistant's turn
/// opened) and the whole conversation, encoded; the answer is what the
/// second adds to the first, up to its first end-of-turn token.
pub fn encode(
    messages: &[Message],
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
) -> anyhow::Result<(Vec<u32>, usize)> {
    let Some((last, before)) = messages.split_last() else {
        bail!("no messages")
    };
    if last.role != "assistant" || last.content.trim().is_empty() {
        bail!("the last message must be the assistant's answer, not empty");
    }
    let prompt = tokenizer.encode(&template.render(before, true)?, true)?;
    let mut ids = tokenizer.encode(&template.render(messages, false)?, true)?;
    if !ids.starts_with(&prompt) {
        bail!("the chat template renders the answer's turn differently from the prompt it follows");
    }
    if let Some(end) = ids[prompt.len()..]
        .iter()
        .position(|&t| tokenizer.is_end_of_generation(t))
    {
        ids.truncate(prompt.len() + end + 1);
    }
    if ids.len() == prompt.len() {
        bail!("the answer has no tokens");
    }
    Ok((ids, prompt.len()))
}

/// How `n` examples divide: (validation, training).
pub fn split(n: usize, val_fraction: f64) -> (usize, usize) {
    let val = if val_fraction > 0.0 && n >= 2 {
        ((n as f64 * val_fraction).ceil() as usize).clamp(1, n - 1)
    } else {
        0
    };
    (val, n - val)
}

impl InstructData {
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        path: &Path,
        tokenizer: &Tokenizer,
        template: &ChatTemplate,
        seq_len: usize,
        batch: usize,
        val_fraction: f64,
        seed: u64,
        pad: u32,
    ) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
        let mut all = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let at = || format!("{} line {line}", path.display());
            let parsed: Line = serde_json::from_str(raw).with_context(|| {
                format!(
                    "{}: not an example ({{\"question\", \"answer\"}} or {{\"messages\": [...]}})",
                    at()
                )
            })?;
            let (ids, answer_from) =
                encode(&parsed.messages(), tokenizer, template).with_context(at)?;
            if ids.len() > seq_len {
                bail!(
                    "{}: {} tokens is more than --seq-len {seq_len}; raise it or shorten the example",
                    at(),
                    ids.len()
                );
            }
            all.push(Example {
                ids,
                answer_from,
                line,
            });
        }
        if all.len() < 2 {
            bail!(
                "{} has {} example(s); fine-tuning needs at least two (one to train on, one to validate)",
                path.display(),
                all.len()
            );
        }
        if !(0.0..1.0).contains(&val_fraction) {
            bail!("the validation fraction {val_fraction} is not in [0, 1)");
        }
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.shuffle(&mut rng(seed, SPLIT, 0));
        let (val, train) = order.split_at(split(all.len(), val_fraction).0);
        let pick = |ix: &[usize]| ix.iter().map(|&i| all[i].clone()).collect::<Vec<_>>();
        Ok(Self {
            train: pick(train),
            val: pick(val),
            batch,
            seed,
            pad,
            sha256: crate::analysis::bias::pairs::hex(&Sha256::digest(&bytes)),
        })
    }

    pub fn examples_per_epoch(&self) -> usize {
        self.train.len()
    }

    /// The step's examples: each epoch in its own seeded order.
    pub fn train_batch(&self, step: usize) -> Batch {
        let n = self.train.len();
        let rows: Vec<&Example> = (0..self.batch)
            .map(|k| {
                let global = step * self.batch + k;
                let (epoch, at) = (global / n, global % n);
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng(self.seed, ORDER, epoch as u64));
                &self.train[order[at]]
            })
            .collect();
        self.assemble(&rows)
    }

    pub fn val_batches(&self) -> Vec<Batch> {
        self.val
            .chunks(self.batch)
            .map(|c| self.assemble(&c.iter().collect::<Vec<_>>()))
            .collect()
    }

    /// Padded to the longest; labels on the answers alone.
    fn assemble(&self, rows: &[&Example]) -> Batch {
        let mut b = causal_batch(&rows.iter().map(|r| &r.ids).collect::<Vec<_>>());
        for (r, (labels, ids)) in rows.iter().zip(b.labels.iter_mut().zip(&mut b.ids)) {
            labels[..r.answer_from].fill(-100);
            ids[r.ids.len()..].fill(self.pad);
        }
        b
    }
}

/// Exact match, read off one teacher-forced pass: a row matches when
/// the model's top guess is the answer's token at every answer position
/// (and at the end-of-turn token). That is exactly when greedy decoding
/// from the prompt writes the answer and stops, so no generation is
/// needed. Returns (rows that match, rows).
pub fn exact_matches(batch: &Batch, logits: &Tensor) -> anyhow::Result<(usize, usize)> {
    let (at, targets) = labelled(&batch.labels, true);
    let guesses: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
    let width = batch.width().max(1);
    let mut rows = vec![None::<bool>; batch.rows()];
    for ((&p, &t), &g) in at.iter().zip(&targets).zip(&guesses) {
        let row = &mut rows[p as usize / width];
        *row = Some(row.unwrap_or(true) && g == t);
    }
    let labelled_rows = rows.iter().flatten().count();
    let matched = rows.iter().flatten().filter(|&&m| m).count();
    Ok((matched, labelled_rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn a_row_matches_only_when_every_answer_token_is_the_top_guess() {
        // Two rows of width 3, answers at positions 1..3 (predicted from 0..2).
        let batch = Batch {
            ids: vec![vec![5, 1, 2], vec![5, 1, 2]],
            mask: vec![vec![1; 3]; 2],
            types: vec![vec![0; 3]; 2],
            labels: vec![vec![-100, 1, 2], vec![-100, 1, 2]],
            next: None,
        };
        // Labelled rows in order: (row 0: 1, 2), (row 1: 1, 2); vocab of 3.
        let logits = Tensor::new(
            &[
                [0f32, 9.0, 0.0],
                [0.0, 0.0, 9.0],
                [0.0, 9.0, 0.0],
                [9.0, 0.0, 0.0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(exact_matches(&batch, &logits).unwrap(), (1, 2));
    }
}
