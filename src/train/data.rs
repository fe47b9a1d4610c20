//! The corpus and the batches cut from it. A corpus is a text file in the
//! layout BERT's pre-training data uses: one sentence per line, a blank
//! line between documents. Every batch is a pure function of the seed and
//! the step (the epoch's order, the sentence pairs and the masks are all
//! drawn from generators seeded by them), so a resumed run sees exactly
//! the batches an uninterrupted one would.

use std::path::Path;

use anyhow::{Context, bail};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::nets::Batch;

/// Documents of sentences, split into training and validation.
pub struct Corpus {
    pub train: Vec<Vec<String>>,
    pub val: Vec<Vec<String>>,
    /// The file's SHA-256: a resumed run checks it is the same text.
    pub sha256: String,
}

/// Fewer documents than this and the corpus is cut into pieces of at most
/// `PIECE` sentences, so that a validation split can exist.
const MIN_DOCUMENTS: usize = 10;
const PIECE: usize = 8;

pub(crate) fn rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.rotate_left(32) ^ index,
    )
}

/// Streams of randomness, so that no two uses share a generator.
pub(crate) const SPLIT: u64 = 1;
pub(crate) const ORDER: u64 = 2;
const PAIRS: u64 = 3;
const MASKS: u64 = 4;
const VALIDATION: u64 = 5;

impl Corpus {
    pub fn read(path: &Path, val_fraction: f64, seed: u64) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))?;
        let mut docs: Vec<Vec<String>> = Vec::new();
        let mut current = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() {
                if !current.is_empty() {
                    docs.push(std::mem::take(&mut current));
                }
            } else {
                current.push(line.to_string());
            }
        }
        if !current.is_empty() {
            docs.push(current);
        }
        let sentences: usize = docs.iter().map(Vec::len).sum();
        if sentences < 2 {
            bail!(
                "{} has {sentences} sentence(s); a corpus is one sentence per line, a blank line between documents",
                path.display()
            );
        }
        if docs.len() < MIN_DOCUMENTS {
            let piece = (sentences / MIN_DOCUMENTS).clamp(1, PIECE);
            docs = docs
                .iter()
                .flat_map(|d| d.chunks(piece).map(<[String]>::to_vec))
                .collect();
        }
        if !(0.0..1.0).contains(&val_fraction) {
            bail!("the validation fraction {val_fraction} is not in [0, 1)");
        }
        let mut order: Vec<usize> = (0..docs.len()).collect();
        order.shuffle(&mut rng(seed, SPLIT, 0));
        let n_val = if val_fraction > 0.0 {
            ((docs.len() as f64 * val_fraction).ceil() as usize).clamp(1, docs.len() - 1)
        } else {
            0
        };
        let (val, train) = order.split_at(n_val);
        let pick = |ix: &[usize]| ix.iter().map(|&i| docs[i].clone()).collect::<Vec<_>>();
        Ok(Self {
            train: pick(train),
            val: pick(val),
            sha256: crate::analysis::bias::pairs::hex(&Sha256::digest(&bytes)),
        })
    }

    /// The training sentences (what a tokenizer learns from).
    pub fn train_sentences(&self) -> Vec<String> {
        self.train.iter().flatten().cloned().collect()
    }
}

fn encode(tok: &Tokenizer, text: &str) -> anyhow::Result<Vec<u32>> {
    Ok(tok
        .encode(text, false)
        .map_err(|e| anyhow::anyhow!("tokenizing the corpus: {e}"))?
        .get_ids()
        .to_vec())
}

/// Masked-LM + next-sentence batches, as BERT's pre-training makes them.
pub struct MaskedData {
    train: Vec<Vec<Vec<u32>>>,
    val: Vec<Vec<Vec<u32>>>,
    ids: MaskIds,
    seq_len: usize,
    batch: usize,
    seed: u64,
    mask_prob: f64,
    epoch_cache: Option<(usize, Vec<Pair>)>,
}

#[derive(Clone, Copy)]
struct MaskIds {
    cls: u32,
    sep: u32,
    pad: u32,
    mask: u32,
    /// Ids below this are special (never masked, never drawn at random).
    first_plain: u32,
    vocab: u32,
}

/// Sentence A, sentence B and whether B was drawn at random.
#[derive(Clone)]
struct Pair {
    a: Vec<u32>,
    b: Vec<u32>,
    random: bool,
}

impl MaskedData {
    pub fn new(
        corpus: &Corpus,
        tok: &Tokenizer,
        seq_len: usize,
        batch: usize,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let id = |t: &str| {
            tok.token_to_id(t).with_context(|| {
                format!(
                    "the tokenizer has no {t}: masked-LM training needs [CLS] [SEP] [PAD] [MASK]"
                )
            })
        };
        let ids = MaskIds {
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            pad: id("[PAD]")?,
            mask: id("[MASK]")?,
            first_plain: 0,
            vocab: tok.get_vocab_size(true) as u32,
        };
        let specials = [ids.cls, ids.sep, ids.pad, ids.mask];
        let ids = MaskIds {
            first_plain: specials.iter().max().unwrap() + 1,
            ..ids
        };
        let enc = |docs: &[Vec<String>]| -> anyhow::Result<Vec<Vec<Vec<u32>>>> {
            docs.iter()
                .map(|d| d.iter().map(|s| encode(tok, s)).collect())
                .collect()
        };
        if seq_len < 8 {
            bail!("a sequence of {seq_len} tokens is too short for a sentence pair (at least 8)");
        }
        Ok(Self {
            train: enc(&corpus.train)?,
            val: enc(&corpus.val)?,
            ids,
            seq_len,
            batch,
            seed,
            mask_prob: 0.15,
            epoch_cache: None,
        })
    }

    /// One pair per sentence of `docs`: half with the sentence that follows
    /// it, half (and every last sentence) with one drawn at random.
    fn pairs(docs: &[Vec<Vec<u32>>], rng: &mut ChaCha8Rng) -> Vec<Pair> {
        let mut out = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            for (i, a) in doc.iter().enumerate() {
                let follows = i + 1 < doc.len() && rng.random_bool(0.5);
                let b = if follows {
                    doc[i + 1].clone()
                } else {
                    Self::random_sentence(docs, d, i, rng)
                };
                out.push(Pair {
                    a: a.clone(),
                    b,
                    random: !follows,
                });
            }
        }
        out
    }

    /// A sentence from another document when there is one (else any but
    /// the one after `i`); a few draws, then whatever the last one was.
    fn random_sentence(
        docs: &[Vec<Vec<u32>>],
        d: usize,
        i: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<u32> {
        let mut pick = (d, i);
        for _ in 0..16 {
            pick = (rng.random_range(0..docs.len()), 0);
            pick.1 = rng.random_range(0..docs[pick.0].len());
            let other_doc = pick.0 != d || docs.len() == 1;
            if other_doc && pick != (d, i + 1) {
                break;
            }
        }
        docs[pick.0][pick.1].clone()
    }

    fn epoch(&mut self, epoch: usize) -> &[Pair] {
        if self.epoch_cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut r = rng(self.seed, PAIRS, epoch as u64);
            let mut pairs = Self::pairs(&self.train, &mut r);
            pairs.shuffle(&mut rng(self.seed, ORDER, epoch as u64));
            self.epoch_cache = Some((epoch, pairs));
        }
        &self.epoch_cache.as_ref().unwrap().1
    }

    pub fn examples_per_epoch(&self) -> usize {
        self.train.iter().map(Vec::len).sum()
    }

    pub fn train_batch(&mut self, step: usize) -> Batch {
        let per_epoch = self.examples_per_epoch();
        let mut chosen = Vec::with_capacity(self.batch);
        for k in 0..self.batch {
            let global = step * self.batch + k;
            let pairs = self.epoch(global / per_epoch);
            chosen.push(pairs[global % per_epoch].clone());
        }
        let mut r = rng(self.seed, MASKS, step as u64);
        self.assemble(&chosen, &mut r)
    }

    /// The validation batches: the same pairs and masks at every evaluation.
    pub fn val_batches(&self) -> Vec<Batch> {
        let mut r = rng(self.seed, VALIDATION, 0);
        let pairs = Self::pairs(&self.val, &mut r);
        pairs
            .chunks(self.batch)
            .map(|c| self.assemble(c, &mut r))
            .collect()
    }

    /// `[CLS] A [SEP] B [SEP]`, the longer sentence cut first to fit,
    /// padded to the batch's longest, 15% of the plain tokens chosen for
    /// prediction (80% of those become [MASK], 10% a random token, 10%
    /// stay).
    fn assemble(&self, pairs: &[Pair], r: &mut ChaCha8Rng) -> Batch {
        let ids = self.ids;
        let mut rows = Vec::new();
        for p in pairs {
            let (mut a, mut b) = (p.a.clone(), p.b.clone());
            while a.len() + b.len() > self.seq_len - 3 {
                if a.len() >= b.len() {
                    a.pop()
                } else {
                    b.pop()
                };
            }
            let mut seq = vec![ids.cls];
            seq.extend(&a);
            seq.push(ids.sep);
            let types_a = seq.len();
            seq.extend(&b);
            seq.push(ids.sep);
            let types: Vec<u32> = (0..seq.len()).map(|i| u32::from(i >= types_a)).collect();
            let mut labels = vec![-100i64; seq.len()];
            let plain: Vec<usize> = (0..seq.len())
                .filter(|&i| seq[i] >= ids.first_plain)
                .collect();
            let n = ((plain.len() as f64 * self.mask_prob).round() as usize)
                .max(1)
                .min(plain.len());
            let mut chosen = plain;
            chosen.shuffle(r);
            for &i in &chosen[..n] {
                labels[i] = seq[i] as i64;
                let roll: f64 = r.random();
                if roll < 0.8 {
                    seq[i] = ids.mask;
                } else if roll < 0.9 {
                    seq[i] = r.random_range(ids.first_plain..ids.vocab);
                }
            }
            rows.push((seq, types, labels, u32::from(p.random)));
        }
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let pad = |v: &[u32], with: u32| {
            let mut v = v.to_vec();
            v.resize(width, with);
            v
        };
        Batch {
            ids: rows.iter().map(|r| pad(&r.0, ids.pad)).collect(),
            mask: rows.iter().map(|r| pad(&vec![1; r.0.len()], 0)).collect(),
            types: rows.iter().map(|r| pad(&r.1, 0)).collect(),
            labels: rows
                .iter()
                .map(|r| {
                    let mut l = r.2.clone();
                    l.resize(width, -100);
                    l
                })
                .collect(),
            next: Some(rows.iter().map(|r| r.3).collect()),
        }
    }
}

/// Next-token batches: the documents' tokens end to end (an end-of-text
/// token after each), cut into blocks of the sequence length.
pub struct CausalData {
    train: Vec<Vec<u32>>,
    val: Vec<Vec<u32>>,
    batch: usize,
    seed: u64,
    /// Blocks in file order (for a run compared against another
    /// implementation step by step) rather than shuffled each epoch.
    pub in_order: bool,
}

impl CausalData {
    pub fn new(
        corpus: &Corpus,
        tok: &Tokenizer,
        end: u32,
        seq_len: usize,
        batch: usize,
        seed: u64,
    ) -> anyhow::Result<Self> {
        if seq_len < 2 {
            bail!("a sequence needs at least 2 tokens to predict one");
        }
        let blocks = |docs: &[Vec<String>]| -> anyhow::Result<Vec<Vec<u32>>> {
            let mut stream = Vec::new();
            for d in docs {
                stream.extend(encode(tok, &d.join("\n"))?);
                stream.push(end);
            }
            Ok(stream
                .chunks(seq_len)
                .filter(|c| c.len() >= 2)
                .map(<[u32]>::to_vec)
                .collect())
        };
        let train = blocks(&corpus.train)?;
        if train.is_empty() {
            bail!("the training split has too few tokens for one sequence of 2");
        }
        Ok(Self {
            train,
            val: blocks(&corpus.val)?,
            batch,
            seed,
            in_order: false,
        })
    }

    pub fn from_blocks(train: Vec<Vec<u32>>, val: Vec<Vec<u32>>, batch: usize, seed: u64) -> Self {
        Self {
            train,
            val,
            batch,
            seed,
            in_order: true,
        }
    }

    pub fn examples_per_epoch(&self) -> usize {
        self.train.len()
    }

    pub fn train_batch(&self, step: usize) -> Batch {
        let n = self.train.len();
        let rows: Vec<&Vec<u32>> = (0..self.batch)
            .map(|k| {
                let global = step * self.batch + k;
                let (epoch, at) = (global / n, global % n);
                if self.in_order {
                    &self.train[at]
                } else {
                    let mut order: Vec<usize> = (0..n).collect();
                    order.shuffle(&mut rng(self.seed, ORDER, epoch as u64));
                    &self.train[order[at]]
                }
            })
            .collect();
        causal_batch(&rows)
    }

    pub fn val_batches(&self) -> Vec<Batch> {
        self.val
            .chunks(self.batch)
            .map(|c| causal_batch(&c.iter().collect::<Vec<_>>()))
            .collect()
    }
}

/// Blocks padded to the longest with labels -100 past each one's end.
pub fn causal_batch(rows: &[&Vec<u32>]) -> Batch {
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut batch = Batch {
        ids: vec![],
        mask: vec![],
        types: vec![],
        labels: vec![],
        next: None,
    };
    for r in rows {
        let mut ids = r.to_vec();
        let mut labels: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let mut mask = vec![1; ids.len()];
        ids.resize(width, 0);
        labels.resize(width, -100);
        mask.resize(width, 0);
        batch.types.push(vec![0; width]);
        batch.ids.push(ids);
        batch.labels.push(labels);
        batch.mask.push(mask);
    }
    batch
}

/// A batch of random tokens of full length, for measuring speed: every
/// seventh position labelled for masked LM (about BERT's 15%) with random
/// next-sentence labels, or every position for next-token.
pub fn synthetic_batch(
    masked: bool,
    vocab: usize,
    batch: usize,
    seq_len: usize,
    seed: u64,
) -> Batch {
    let mut r = rng(seed, 0, 0);
    let ids: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            (0..seq_len)
                .map(|_| r.random_range(5..vocab as u32))
                .collect()
        })
        .collect();
    let labels = ids
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, &t)| {
                    if !masked || i % 7 == 3 {
                        t as i64
                    } else {
                        -100
                    }
                })
                .collect()
        })
        .collect();
    Batch {
        mask: vec![vec![1; seq_len]; batch],
        types: vec![vec![0; seq_len]; batch],
        next: masked.then(|| (0..batch).map(|_| r.random_range(0..2)).collect()),
        labels,
        ids,
    }
}
