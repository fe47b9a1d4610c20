#!/usr/bin/env python3
"""Tiny random-initialised Hugging Face *encoder* (masked-LM) checkpoints and
transformers' numbers for them: the sibling of hf_tiny.py for BERT-style
models.

Writes three model folders under tests/fixtures/hf/ (config.json,
model.safetensors in f32, tokenizer.json, tokenizer_config.json; well under
1 MB each, seeded, so the same every run):

  tiny-bert        BertForPreTraining: MLM head tied to the word embeddings
                   plus the next-sentence (NSP) head; vocab ~512, hidden 64,
                   2 layers, 4 heads, intermediate 128, 128 positions,
                   type_vocab_size 2, exact (erf) GELU, layer_norm_eps 1e-12.
  tiny-roberta     RobertaForMaskedLM (lm_head tied), same sizes;
                   pad_token_id 1 and position ids counted from
                   padding_idx + 1 = 2, so max_position_embeddings is 130
                   for 128 usable positions; type_vocab_size 1; eps 1e-5.
  tiny-distilbert  DistilBertForMaskedLM (vocab_projector tied), dim 64,
                   2 layers, 4 heads, hidden_dim 128, GELU.

Tokenizers (trained on
tests/fixtures/ppl_text.txt, this project's own essay):
  * tiny-bert and tiny-distilbert share a WordPiece tokenizer (512 tokens,
    learned as the WordPieceTrainer learns them but with ties broken by
    string, so that it is the same every run: see wordpiece_vocab;
    BertNormalizer lowercase, BertPreTokenizer, WordPiece decoder, specials
    [PAD] [UNK] [CLS] [SEP] [MASK] = ids 0..4, TemplateProcessing
    "[CLS] $A [SEP]" / "[CLS] $A [SEP] $B:1 [SEP]:1").
  * tiny-roberta has a byte-level BPE (as hf_tiny.py's) with specials
    <s> <pad> </s> <unk> <mask> = ids 0..4 and the RobertaProcessing
    post-processor ("<s> A </s>" / "<s> A </s></s> B </s>", type ids all 0).
    As in roberta-base, <mask> is an added token with lstrip=True, so the
    space before "<mask>" is absorbed into it.

As hf_tiny.py does, every >=2-D weight is multiplied by SCALE after the
seeded init (random init leaves the MLM softmax almost uniform); the script
prints the MLM softmax max-probability / entropy at the mask positions so
the scale can be seen to give neither a uniform nor a one-hot distribution.

And tests/fixtures/hf/NAME.json with transformers' (fp32, eager attention,
CPU) numbers:
  "tokenizer": [{"text","ids"}] for 30+ single strings (encoded WITH the
      special tokens the post-processor adds) and [{"text","pair","ids",
      "type_ids"}] for a few sentence pairs;
  "cases": [{"text", "pair" (null or the second sentence), "ids",
      "type_ids", "mask_positions", "mlm_logits" [position][vocab],
      "hidden_last" [position][hidden] (the last layer's output, before the
      MLM head), "attention" [layer][head][query][key], and for tiny-bert
      "nsp_probs" [p_isnext, p_notnext] (softmax of seq_relationship_logits;
      HF index 0 = IsNext)}], floats rounded to 7 decimals.
The model is fed exactly "ids" (and "type_ids" as token_type_ids for BERT;
zeros for RoBERTa; none for DistilBERT), no attention mask (no padding).

Usage (from the repo root; torch, transformers, tokenizers, safetensors in
.venv-hf, see hf_tiny.py):
    .venv-hf/bin/python scripts/reference/hf_tiny_encoders.py
"""
import json
import math
import os
import sys

import tokenizers
import torch
import transformers
from tokenizers import (AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers,
                        processors, trainers)

OUT = "tests/fixtures/hf"
CORPUS = "tests/fixtures/ppl_text.txt"
SEED = 1234
VOCAB = 512
SCALE = 10.0
WP_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]

STRINGS = [
    "", "Hello world", " leading space", "trailing space ", "multiple   spaces",
    "line one\nline two\n\nline four", "tab\tseparated", "12345 and 3.14159",
    "don't I'll we've", "def add(a, b):\n    return a + b\n", "🙂👍🏽", "大型语言模型",
    "naïve café", "Ελληνικά Русский", "The attention of a transformer", "positional encoding",
    "masked language model", "next sentence prediction", "fine-tuning on a task",
    "URL: https://example.com/?q=1", "CamelCase snake_case", "x = 0x1F; y = 1e-5",
    "“Quoted” — dash…", "   ", "\n\n\n", "ALL CAPS TEXT", "mixed123numbers456", "end.",
    "unbelievably tokenization-heavy words", "[CLS] and <s> as plain text",
]
# Model-specific strings: {M} becomes the model's mask token.
MASK_STRINGS = ["the {M} reads", "{M}{M} at the start", "a token {M}, then {M}."]

PAIRS = [
    ("The model reads the prompt.", "It writes an answer."),
    ("Hello world", "hello WORLD"),
    ("attention weighs every token", "x"),
    ("One sentence here.", "And a second, longer sentence follows it."),
    ("numbers 1 2 3", "naïve café 🙂"),
]

# Mask cases: {M} is the model's own mask token string.
CASES = [
    ("the model reads the {M} and writes", None),
    ("{M} attention weighs every earlier token.", None),
    ("a language model predicts the next {M} from the {M} before it", None),
    ("Perplexity is the exponential of the mean {M} log-probability.", None),
]
NSP_CASES = [
    ("the model reads the {M}.", "then it writes an answer."),
    ("attention weighs every token.", "the {M} is blue and the grass is green."),
]


def wordpiece_vocab(tok):
    """The WordPiece vocabulary, learned as the `tokenizers` WordPieceTrainer
    learns it (BPE merges over words split into a first character and
    "##"-prefixed continuation characters, most frequent pair first), but
    with every tie broken by the pair's strings. The library's trainer is not
    repeatable: it numbers the "##x" tokens in hash-map order and breaks
    equal-count merges by those numbers, so two runs give different
    vocabularies. Order: specials, the characters (sorted), the "##"
    characters (sorted), then the merged tokens in the order learned."""
    counts = {}
    with open(CORPUS, encoding="utf-8") as f:
        for line in f:
            for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(line)):
                counts[w] = counts.get(w, 0) + 1
    words = {w: [w[0]] + ["##" + c for c in w[1:]] for w in counts}
    firsts = sorted({p[0] for p in words.values()})
    conts = sorted({t for p in words.values() for t in p[1:]})
    vocab = WP_SPECIALS + firsts + conts
    seen = set(vocab)
    while len(vocab) < VOCAB:
        pairs = {}
        for w, parts in words.items():
            for a, b in zip(parts, parts[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + counts[w]
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merged = a + b[2:]
        for w, parts in words.items():
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            words[w] = out
        if merged not in seen:
            seen.add(merged)
            vocab.append(merged)
    return {t: i for i, t in enumerate(vocab)}


def wordpiece():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok = Tokenizer(models.WordPiece(wordpiece_vocab(tok), unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(WP_SPECIALS)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def bytelevel_bpe():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(s, lstrip=(s == "<mask>"), special=True, normalized=False)
                for s in BPE_SPECIALS]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([CORPUS], trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
        trim_offsets=True, add_prefix_space=False)
    return tok


def models_and_tokenizers():
    wp, bpe = wordpiece(), bytelevel_bpe()
    for t, specials in ((wp, WP_SPECIALS), (bpe, BPE_SPECIALS)):
        assert [t.token_to_id(s) for s in specials] == list(range(5)), specials
    wp_cfg = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
              "unk_token": "[UNK]", "mask_token": "[MASK]", "do_lower_case": True,
              "model_max_length": 128}
    bert = transformers.BertConfig(
        vocab_size=wp.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, max_position_embeddings=128,
        type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12, pad_token_id=0,
        tie_word_embeddings=True)
    roberta = transformers.RobertaConfig(
        vocab_size=bpe.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, max_position_embeddings=130,
        type_vocab_size=1, hidden_act="gelu", layer_norm_eps=1e-5, pad_token_id=1,
        bos_token_id=0, eos_token_id=2, tie_word_embeddings=True)
    distil = transformers.DistilBertConfig(
        vocab_size=wp.get_vocab_size(), dim=64, n_layers=2, n_heads=4, hidden_dim=128,
        activation="gelu", max_position_embeddings=128, sinusoidal_pos_embds=False,
        pad_token_id=0, tie_word_embeddings=True)
    return [
        ("tiny-bert", transformers.BertForPreTraining, bert, wp, "[MASK]",
         dict(wp_cfg, tokenizer_class="BertTokenizerFast")),
        ("tiny-roberta", transformers.RobertaForMaskedLM, roberta, bpe, "<mask>",
         {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
          "pad_token": "<pad>", "unk_token": "<unk>", "mask_token": "<mask>",
          "add_prefix_space": False, "trim_offsets": True, "model_max_length": 128,
          "tokenizer_class": "RobertaTokenizerFast"}),
        ("tiny-distilbert", transformers.DistilBertForMaskedLM, distil, wp, "[MASK]",
         dict(wp_cfg, tokenizer_class="DistilBertTokenizerFast",
              model_input_names=["input_ids", "attention_mask"])),
    ]


def r(x):
    return [round(float(v), 7) for v in x]


def forward(name, model, ids, type_ids):
    x = torch.tensor([ids])
    kw = dict(output_hidden_states=True, output_attentions=True, return_dict=True)
    if name == "tiny-bert":
        kw["token_type_ids"] = torch.tensor([type_ids])
    elif name == "tiny-roberta":
        kw["token_type_ids"] = torch.zeros_like(x)
    with torch.no_grad():
        out = model(x, **kw)
    logits = out.prediction_logits if name == "tiny-bert" else out.logits
    return out, logits[0]


def main():
    for name, cls, cfg, tok, mask, tok_cfg in models_and_tokenizers():
        torch.manual_seed(SEED)
        cfg._attn_implementation = "eager"
        model = cls(cfg).eval()
        # Random init keeps the residual tiny and the MLM softmax near uniform;
        # widen the weights (still seeded, still the model's). Tied weights are
        # one parameter, so they are scaled once.
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() >= 2:
                    p.mul_(SCALE)
        folder = os.path.join(OUT, name)
        model.save_pretrained(folder, safe_serialization=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(tok_cfg, f, indent=1)
        mask_id = tok.token_to_id(mask)

        cases, stats = [], []
        specs = CASES + (NSP_CASES if name == "tiny-bert" else [])
        for text, pair in specs:
            text = text.replace("{M}", mask)
            pair = pair.replace("{M}", mask) if pair is not None else None
            enc = tok.encode(text, pair) if pair is not None else tok.encode(text)
            ids, type_ids = enc.ids, enc.type_ids
            out, logits = forward(name, model, ids, type_ids)
            mpos = [i for i, t in enumerate(ids) if t == mask_id]
            assert mpos, text
            for p in mpos:
                pr = torch.softmax(logits[p], -1)
                stats.append((float(pr.max()), float(-(pr * pr.log()).sum())))
            case = {
                "text": text, "pair": pair, "ids": ids, "type_ids": type_ids,
                "mask_positions": mpos,
                "mlm_logits": [r(row) for row in logits],
                # hidden_states[-1]: the last layer's output (BERT and DistilBERT
                # have no extra final norm), the MLM head's input.
                "hidden_last": [r(h) for h in out.hidden_states[-1][0]],
                # attentions[l]: (heads, queries, keys)
                "attention": [[[r(q) for q in head] for head in a[0]] for a in out.attentions],
            }
            if name == "tiny-bert":
                case["nsp_probs"] = r(torch.softmax(out.seq_relationship_logits[0], -1))
            cases.append(case)

        singles = STRINGS + [s.replace("{M}", mask) for s in MASK_STRINGS]
        tok_fx = [{"text": s, "ids": tok.encode(s).ids} for s in singles]
        for a, b in PAIRS:
            enc = tok.encode(a, b)
            tok_fx.append({"text": a, "pair": b, "ids": enc.ids, "type_ids": enc.type_ids})
        fx = {"generator": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                           f"tokenizers {tokenizers.__version__}, fp32, eager attention, CPU",
              "script": "scripts/reference/hf_tiny_encoders.py", "seed": SEED,
              "weight_scale": SCALE, "mask_token": mask, "mask_id": mask_id,
              "tokenizer": tok_fx, "cases": cases}
        path = os.path.join(OUT, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fx, f, ensure_ascii=False, separators=(",", ":"))
        size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
        pmax = [s[0] for s in stats]
        ent = [s[1] for s in stats]
        print(f"{name}: vocab {tok.get_vocab_size()}, folder {size} bytes, fixture "
              f"{os.path.getsize(path)} bytes; mask softmax max-prob {min(pmax):.3f}..{max(pmax):.3f}, "
              f"entropy {min(ent):.2f}..{max(ent):.2f} nats (uniform {math.log(cfg.vocab_size):.2f})",
              file=sys.stderr)


if __name__ == "__main__":
    main()
