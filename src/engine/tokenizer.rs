//! The model's tokenizer: a `tokenizers::Tokenizer` built from the GGUF
//! metadata (byte-level BPE from its tokens and merges, `gpt2`; or
//! SentencePiece BPE from its tokens and scores, `llama`, with byte
//! fallback), or read from a `tokenizer.json` beside the model; plus exact
//! per-token bytes and a streaming decoder that never splits a UTF-8
//! character.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer as HfTokenizer,
};

use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
const TOKEN_TYPE_BYTE: i64 = 6;

/// SentencePiece's word-boundary mark (a space).
const SPM_SPACE: char = '\u{2581}';

#[derive(Clone)]
pub struct Tokenizer {
    /// Splits control tokens written in the text (`<|im_start|>`) out as
    /// special tokens, as llama.cpp does with `parse_special`.
    special: HfTokenizer,
    /// Treats all text as text.
    plain: HfTokenizer,
    /// The exact bytes each token stands for.
    bytes: Vec<Vec<u8>>,
    control: Vec<bool>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Tokens that end generation: EOS and end-of-turn markers.
    pub end_of_generation: Vec<u32>,
    pub add_bos: bool,
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Tokenizer(e.to_string())
}

/// GPT-2's byte-level alphabet: each byte is written as a printable char.
fn byte_level_chars() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::new();
    let mut next = 0u32;
    for b in 0u32..=255 {
        let c = if printable.contains(&b) {
            b
        } else {
            next += 1;
            255 + next
        };
        map.insert(char::from_u32(c).expect("valid char"), b as u8);
    }
    map
}

/// The pre-tokenizer llama.cpp uses for each `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let regex_then_bytes = |re: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(
            SplitPattern::Regex(re.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(err)?;
        Ok(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])
        .into())
    };
    Ok(match pre {
        // SmolLM / StarCoder: every digit alone, then GPT-2's split.
        "smollm" | "starcoder" | "refact" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "llama3" | "llama-bpe" | "smaug-bpe" | "dbrx" => regex_then_bytes(LLAMA3)?,
        "qwen2" | "deepseek-r1-qwen" => regex_then_bytes(QWEN2)?,
        _ => ByteLevel::new(false, true, true).into(),
    })
}

/// Byte-level BPE from the GGUF's tokens and merges.
fn bpe_tokenizer(gguf: &GgufFile, tokens: &[&str]) -> Result<HfTokenizer> {
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect();
    let merges = gguf
        .meta_strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| err(format!("malformed merge `{m}`")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(err)?;
    let mut t = HfTokenizer::new(bpe);
    let pre = gguf.meta_str("tokenizer.ggml.pre").unwrap_or("default");
    t.with_pre_tokenizer(Some(pre_tokenizer(pre)?));
    t.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    Ok(t)
}

/// SentencePiece BPE from the GGUF's tokens and scores: llama.cpp's SPM
/// tokenizer merges the adjacent pair whose joined piece scores highest,
/// which is BPE with a merge for every way of splitting each piece in two,
/// ranked by the piece's score; characters outside the vocabulary fall back
/// to byte tokens. Spaces become U+2581 (and a leading one is added when the
/// file asks for it).
fn spm_tokenizer(
    gguf: &GgufFile,
    tokens: &[&str],
    types: &[i64],
    scores: &[f32],
) -> Result<HfTokenizer> {
    use tokenizers::normalizers::{Prepend, Replace, Sequence as Normalizers};
    if scores.len() != tokens.len() {
        return Err(EngineError::corrupt(
            gguf.path(),
            format!("{} token scores for {} tokens", scores.len(), tokens.len()),
        ));
    }
    let ids: HashMap<&str, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, i as u32))
        .collect();
    let mut ranked: Vec<(f32, u32, &str, &str)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if types.get(id).is_some_and(|&t| t != 1) {
            continue; // only normal pieces are made by merging
        }
        for (at, _) in piece.char_indices().skip(1) {
            let (a, b) = piece.split_at(at);
            if ids.contains_key(a) && ids.contains_key(b) {
                ranked.push((scores[id], id as u32, a, b));
            }
        }
    }
    // Highest score first; ties by id, then by the left part's id.
    ranked.sort_by(|x, y| {
        y.0.total_cmp(&x.0)
            .then(x.1.cmp(&y.1))
            .then(ids[x.2].cmp(&ids[y.2]))
    });
    let merges = ranked
        .into_iter()
        .map(|(_, _, a, b)| (a.to_string(), b.to_string()))
        .collect();
    let vocab: tokenizers::models::bpe::Vocab =
        ids.iter().map(|(t, &i)| (t.to_string(), i)).collect();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true);
    if let Ok(unk) = gguf.meta_usize("tokenizer.ggml.unknown_token_id")
        && let Some(t) = tokens.get(unk)
    {
        builder = builder.unk_token(t.to_string());
    }
    let mut t = HfTokenizer::new(builder.build().map_err(err)?);
    let space = Replace::new(" ", SPM_SPACE.to_string()).map_err(err)?;
    let normalizer = if gguf
        .meta_bool("tokenizer.ggml.add_space_prefix")
        .unwrap_or(true)
    {
        Normalizers::new(vec![
            Prepend::new(SPM_SPACE.to_string()).into(),
            space.into(),
        ])
        .into()
    } else {
        space.into()
    };
    t.with_normalizer(Some::<tokenizers::NormalizerWrapper>(normalizer))
        .map_err(err)?;
    Ok(t)
}

/// The bytes a SentencePiece piece stands for: `<0xNN>` for a byte token,
/// else its text with U+2581 as a space.
fn spm_bytes(piece: &str, byte_token: bool) -> Vec<u8> {
    if byte_token
        && let Some(hex) = piece.strip_prefix("<0x").and_then(|p| p.strip_suffix('>'))
        && let Ok(b) = u8::from_str_radix(hex, 16)
    {
        return vec![b];
    }
    piece.replace(SPM_SPACE, " ").into_bytes()
}

/// The bytes a token's text stands for: a control token's text as is, a
/// byte-level token through GPT-2's alphabet, else a SentencePiece piece.
fn text_bytes(
    t: &str,
    control: bool,
    byte_level: bool,
    alphabet: &HashMap<char, u8>,
    byte_token: bool,
) -> Vec<u8> {
    if control {
        t.as_bytes().to_vec()
    } else if byte_level {
        t.chars()
            .map(|c| alphabet.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
            .unwrap_or_else(|| t.as_bytes().to_vec())
    } else {
        spm_bytes(t, byte_token)
    }
}

impl Tokenizer {
    /// Uses `tokenizer.json` beside the model when there is one, else the
    /// GGUF metadata.
    pub fn load(gguf: &GgufFile) -> Result<Self> {
        let sidecar = gguf.path().with_file_name("tokenizer.json");
        let hf = if sidecar.is_file() {
            Some(Self::read_json(&sidecar)?)
        } else {
            None
        };
        Self::from_gguf(gguf, hf)
    }

    fn read_json(path: &Path) -> Result<HfTokenizer> {
        HfTokenizer::from_file(path).map_err(|e| err(format!("{}: {e}", path.display())))
    }

    fn from_gguf(gguf: &GgufFile, hf: Option<HfTokenizer>) -> Result<Self> {
        let model = gguf.meta_str("tokenizer.ggml.model")?;
        let spm = match model {
            "gpt2" => false,
            "llama" => true,
            _ => {
                return Err(err(format!(
                    "tokenizer model `{model}` is not supported (byte-level BPE, `gpt2`, and SentencePiece, `llama`, are); put a tokenizer.json beside the model"
                )));
            }
        };
        let tokens = gguf.meta_strings("tokenizer.ggml.tokens")?;
        let types = gguf
            .meta_ints("tokenizer.ggml.token_type")
            .unwrap_or_default();
        let is = |i: usize, t: i64| types.get(i) == Some(&t);
        // A SentencePiece vocabulary's user-defined tokens ("\n\n", tab
        // runs) are text, split out wherever they occur, as llama.cpp does.
        let control: Vec<bool> = (0..tokens.len())
            .map(|i| is(i, TOKEN_TYPE_CONTROL) || (!spm && is(i, TOKEN_TYPE_USER_DEFINED)))
            .collect();
        let mut special = match hf {
            Some(t) => t,
            None => {
                let mut t = if spm {
                    let scores = gguf.meta_f32s("tokenizer.ggml.scores")?;
                    spm_tokenizer(gguf, &tokens, &types, &scores)?
                } else {
                    bpe_tokenizer(gguf, &tokens)?
                };
                let added: Vec<AddedToken> = (0..tokens.len())
                    .filter(|&i| control[i])
                    .map(|i| AddedToken::from(tokens[i].to_string(), true))
                    .collect();
                t.add_special_tokens(added).map_err(err)?;
                if spm {
                    let text: Vec<AddedToken> = (0..tokens.len())
                        .filter(|&i| is(i, TOKEN_TYPE_USER_DEFINED))
                        .map(|i| AddedToken::from(tokens[i].to_string(), false).normalized(false))
                        .collect();
                    t.add_tokens(text).map_err(err)?;
                }
                t
            }
        };
        special.set_encode_special_tokens(false);
        let mut plain = special.clone();
        plain.set_encode_special_tokens(true);

        let alphabet = byte_level_chars();
        let bytes = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| text_bytes(t, control[i], !spm, &alphabet, is(i, TOKEN_TYPE_BYTE)))
            .collect();

        // Special ids must name tokens: a corrupt one would index past the
        // vocabulary wherever it is shown or fed to the model.
        let id = |key: &str| -> Result<Option<u32>> {
            match gguf.meta_usize(key) {
                Ok(v) if v < tokens.len() => Ok(Some(v as u32)),
                Ok(v) => Err(EngineError::corrupt(
                    gguf.path(),
                    format!(
                        "`{key}` is {v} but the vocabulary has {} tokens",
                        tokens.len()
                    ),
                )),
                Err(EngineError::MissingMetadata(_)) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let eos = id("tokenizer.ggml.eos_token_id")?;
        for key in [
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id",
        ] {
            id(key)?;
        }
        let mut end_of_generation: Vec<u32> = eos.into_iter().collect();
        for (i, t) in tokens.iter().enumerate() {
            let ends = matches!(
                *t,
                "<|im_end|>" | "<|endoftext|>" | "<|eot_id|>" | "<end_of_turn>" | "</s>"
            );
            if control[i] && ends && !end_of_generation.contains(&(i as u32)) {
                end_of_generation.push(i as u32);
            }
        }
        Ok(Self {
            special,
            plain,
            bytes,
            control,
            bos,
            eos,
            end_of_generation,
            add_bos: gguf
                .meta_bool("tokenizer.ggml.add_bos_token")
                .unwrap_or(false),
        })
    }

    /// From a Hugging Face folder: `tokenizer.json`, with the special
    /// tokens named in `tok_config` (its `tokenizer_config.json`; or the
    /// ids in `config`) and the end-of-generation ids of `generation` (its
    /// `generation_config.json`); Null for a file the folder lacks.
    pub fn from_hf_folder(
        dir: &Path,
        config: &serde_json::Value,
        tok_config: &serde_json::Value,
        generation: &serde_json::Value,
    ) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(err(format!(
                "{} has no tokenizer.json (lmscope reads the fast tokenizer's file)",
                dir.display()
            )));
        }
        // Read once: the tokenizer, and its decoder's type (how token text
        // maps to bytes).
        let text =
            std::fs::read_to_string(&path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let mut special: HfTokenizer = text
            .parse()
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        let file: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let n = special.get_vocab_size(true);
        let mut texts = vec![String::new(); n];
        for (t, id) in special.get_vocab(true) {
            if let Some(slot) = texts.get_mut(id as usize) {
                *slot = t;
            }
        }
        let mut control = vec![false; n];
        for (id, t) in special.get_added_tokens_decoder() {
            if t.special && (id as usize) < n {
                control[id as usize] = true;
            }
        }
        let byte_level =
            file["decoder"]["type"] == "ByteLevel" || file["pre_tokenizer"]["type"] == "ByteLevel";
        let alphabet = byte_level_chars();
        let bytes = texts
            .iter()
            .enumerate()
            .map(|(i, t)| text_bytes(t, control[i], byte_level, &alphabet, true))
            .collect();
        // A special token is named (`"<s>"` or `{"content": "<s>"}`) in
        // tokenizer_config.json, or given by id in config.json.
        let named = |key: &str| -> Option<u32> {
            let v = &tok_config[key];
            let text = v.as_str().or_else(|| v["content"].as_str())?;
            special.token_to_id(text)
        };
        let id_in =
            |v: &serde_json::Value| v.as_u64().filter(|&i| (i as usize) < n).map(|i| i as u32);
        let bos = named("bos_token").or_else(|| id_in(&config["bos_token_id"]));
        let eos = named("eos_token").or_else(|| id_in(&config["eos_token_id"]));
        let mut end_of_generation: Vec<u32> = eos.into_iter().collect();
        let listed = &generation["eos_token_id"];
        let listed: Vec<u32> = match listed.as_array() {
            Some(ids) => ids.iter().filter_map(id_in).collect(),
            None => id_in(listed).into_iter().collect(),
        };
        for id in listed {
            if !end_of_generation.contains(&id) {
                end_of_generation.push(id);
            }
        }
        for (i, t) in texts.iter().enumerate() {
            let ends = matches!(
                t.as_str(),
                "<|im_end|>" | "<|endoftext|>" | "<|eot_id|>" | "</s>"
            );
            if control[i] && ends && !end_of_generation.contains(&(i as u32)) {
                end_of_generation.push(i as u32);
            }
        }
        // The BOS is ours to add (we encode without the post-processor):
        // where the config asks for it, or the post-processor adds it.
        let add_bos = tok_config["add_bos_token"].as_bool().unwrap_or_else(|| {
            let with = special.encode_fast("a", true).map(|e| e.get_ids().to_vec());
            let without = special.encode_fast("a", false).map(|e| e.get_ids().to_vec());
            matches!((with, without, bos), (Ok(w), Ok(wo), Some(b)) if w.len() == wo.len() + 1 && w[0] == b)
        });
        special.set_encode_special_tokens(false);
        let mut plain = special.clone();
        plain.set_encode_special_tokens(true);
        Ok(Self {
            special,
            plain,
            bytes,
            control,
            bos,
            eos,
            end_of_generation,
            add_bos,
        })
    }

    /// The `tokenizers` tokenizer behind this one (special tokens parsed),
    /// what a `tokenizer.json` saves.
    pub fn hf(&self) -> &HfTokenizer {
        &self.special
    }

    /// The id of the token written `text`, if the vocabulary has it.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.special.token_to_id(text)
    }

    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// Token ids of `text`. With `parse_special`, control tokens written in
    /// the text become their ids; the model's BOS is prepended when its
    /// metadata asks for one.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let t = if parse_special {
            &self.special
        } else {
            &self.plain
        };
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        if self.add_bos {
            ids.extend(self.bos);
        }
        if !text.is_empty() {
            ids.extend_from_slice(t.encode_fast(text, false).map_err(err)?.get_ids());
        }
        Ok(ids)
    }

    /// The exact bytes of one token (a piece of a UTF-8 character for some).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// One token as display text (invalid UTF-8 pieces as U+FFFD).
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.token_bytes(id)).into_owned()
    }

    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }

    /// The text of a whole sequence.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Turns a stream of tokens into text, holding back the bytes of a
/// character that is not complete yet.
#[derive(Default, Clone, Debug)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// Feeds one token's bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked"));
                    match e.error_len() {
                        // An incomplete character at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never be valid: show them as U+FFFD.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_is_a_bijection() {
        let m = byte_level_chars();
        assert_eq!(m.len(), 256);
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'A'], b'A');
    }

    #[test]
    fn stream_decoder_holds_split_characters() {
        let text = "a🙂b大";
        let bytes = text.as_bytes();
        let mut d = StreamDecoder::default();
        let mut out = String::new();
        for b in bytes {
            let piece = d.push(&[*b]);
            assert!(!piece.contains('\u{FFFD}'));
            out += &piece;
        }
        out += &d.finish();
        assert_eq!(out, text);
    }

    #[test]
    fn stream_decoder_replaces_invalid_bytes() {
        let mut d = StreamDecoder::default();
        assert_eq!(d.push(&[b'x', 0xFF, b'y']), "x\u{FFFD}y");
    }
}
