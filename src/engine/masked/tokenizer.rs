//! A masked model's tokenizer: the folder's `tokenizer.json` run whole, its
//! post-processor included (it adds `[CLS] .. [SEP]` or `<s> .. </s>` and
//! numbers the segments of a pair), and its special tokens by role.

use std::path::Path;

use tokenizers::Tokenizer as HfTokenizer;

use crate::engine::error::{EngineError, Result};

#[derive(Clone)]
pub struct MaskTokenizer {
    inner: HfTokenizer,
    /// The mask token (`[MASK]`, `<mask>`), when the vocabulary has one.
    pub mask: Option<u32>,
    pub cls: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    special: Vec<bool>,
}

/// A text as the model reads it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Each token's segment: 0 for the first text, 1 for the pair's second.
    pub types: Vec<u32>,
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Tokenizer(e.to_string())
}

impl MaskTokenizer {
    /// `tokenizer.json` of `dir`, the roles named in `tok_config` (its
    /// `tokenizer_config.json`, Null when absent) or found by their usual
    /// names.
    pub fn load(dir: &Path, tok_config: &serde_json::Value) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(err(format!(
                "{} has no tokenizer.json (lmscope reads the fast tokenizer's file; `transformers` writes it with tokenizer.save_pretrained)",
                dir.display()
            )));
        }
        let mut inner =
            HfTokenizer::from_file(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        // Our inputs are single sequences we cut ourselves.
        inner.with_truncation(None).map_err(err)?;
        inner.with_padding(None);
        let role = |key: &str, usual: &[&str]| -> Option<u32> {
            let v = &tok_config[key];
            v.as_str()
                .or_else(|| v["content"].as_str())
                .and_then(|t| inner.token_to_id(t))
                .or_else(|| usual.iter().find_map(|t| inner.token_to_id(t)))
        };
        let n = inner.get_vocab_size(true);
        let mut special = vec![false; n];
        for (id, t) in inner.get_added_tokens_decoder() {
            if t.special && (id as usize) < n {
                special[id as usize] = true;
            }
        }
        Ok(Self {
            mask: role("mask_token", &["[MASK]", "<mask>"]),
            cls: role("cls_token", &["[CLS]", "<s>"]),
            sep: role("sep_token", &["[SEP]", "</s>"]),
            pad: role("pad_token", &["[PAD]", "<pad>"]),
            special,
            inner,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The mask token as written in a text.
    pub fn mask_text(&self) -> Option<String> {
        self.mask.and_then(|m| self.inner.id_to_token(m))
    }

    /// `text` (and `pair`, the second sentence) as the model reads them,
    /// special tokens added as the checkpoint's post-processor says.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let e = match pair {
            Some(b) => self.inner.encode((text, b), true),
            None => self.inner.encode(text, true),
        }
        .map_err(err)?;
        Ok(Encoded {
            ids: e.get_ids().to_vec(),
            types: e.get_type_ids().to_vec(),
        })
    }

    /// One token as the tokenizer writes it alone (`##ing`, ` word`).
    pub fn token_text(&self, id: u32) -> String {
        self.inner
            .decode(&[id], false)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.inner.id_to_token(id))
            .unwrap_or_default()
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// The text of a sequence, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, true).unwrap_or_default()
    }
}
