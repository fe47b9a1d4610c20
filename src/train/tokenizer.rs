//! A tokenizer learned from the training corpus with `tokenizers`' own
//! trainers: WordPiece with BERT's normaliser, pre-tokeniser and
//! `[CLS] A [SEP] B [SEP]` template for the encoder; byte-level BPE (as
//! GPT-2's) for the decoders. Ties between equally frequent merges are
//! broken by the trainer, so two trainings of one corpus can differ in a
//! few rare tokens: a run saves the tokenizer it used and a resumed run
//! reads that one.

use std::collections::HashSet;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

/// BERT's special tokens, at ids 0..5 in this order.
pub const BERT_SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
/// The decoders' one special token (id 0): document end, also used as
/// the beginning and for padding.
pub const END_OF_TEXT: &str = "<|endoftext|>";

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("training the tokenizer: {e}")
}

/// A WordPiece tokenizer of about `vocab_size` tokens learned from `texts`.
pub fn train_wordpiece(texts: &[String], vocab_size: usize) -> anyhow::Result<Tokenizer> {
    let specials = BERT_SPECIALS
        .iter()
        .map(|s| AddedToken::from(*s, true))
        .collect();
    let mut trainer: TrainerWrapper = WordPieceTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials)
        .build()
        .into();
    let mut tok = Tokenizer::new(WordPiece::default());
    tok.with_normalizer(Some(BertNormalizer::default()))
        .map_err(err)?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    tok.train(&mut trainer, texts.iter()).map_err(err)?;
    let id = |t: &str| {
        tok.token_to_id(t)
            .ok_or_else(|| err(format!("{t} is not in the vocabulary")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    let template = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .map_err(err)?
        .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
        .map_err(err)?
        .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
        .build()
        .map_err(err)?;
    tok.with_post_processor(Some(template));
    Ok(tok)
}

/// A byte-level BPE of about `vocab_size` tokens learned from `texts`.
pub fn train_bpe(texts: &[String], vocab_size: usize) -> anyhow::Result<Tokenizer> {
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let mut trainer: TrainerWrapper = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(alphabet)
        .build()
        .into();
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    tok.with_post_processor(Some(ByteLevel::new(false, true, true)));
    tok.train(&mut trainer, texts.iter()).map_err(err)?;
    Ok(tok)
}

/// The `tokenizer_config.json` that names a trained tokenizer's roles.
pub fn tokenizer_config(masked: bool) -> serde_json::Value {
    if masked {
        serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
            "sep_token": "[SEP]", "mask_token": "[MASK]",
            "model_max_length": 512,
        })
    } else {
        serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT,
            "unk_token": END_OF_TEXT, "pad_token": END_OF_TEXT,
            "add_bos_token": false,
        })
    }
}
