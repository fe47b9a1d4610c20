#!/usr/bin/env python3
"""HF transformers' side of `lmscope bench` for a Hugging Face folder.

Speaks the protocol of bench_llamacpp.py: started once, loads the model in
fp32 on the CPU with the threads given, prints a ready line, then answers
each line on stdin with one JSON line of timings:

- {"tokens": [...], "decode": n}: prefill the tokens, then decode n tokens
  one at a time through the KV cache (the last prompt token fed again each
  step, as llama-bench's tg test does).
- {"tokens": [...], "decode": n, "batch": b}: the same decode for one
  sequence, and for b copies of the prompt decoded together in one batch.
"""
import json
import sys
import time

import torch
import transformers


def decode_rate(model, tokens, n_decode, n_seq):
    """Aggregate decode tokens/s of n_seq copies of the prompt."""
    ids = torch.tensor([tokens] * n_seq)
    out = model(ids, use_cache=True)
    past = out.past_key_values
    step = torch.tensor([[tokens[-1]]] * n_seq)
    t0 = time.perf_counter()
    for _ in range(n_decode):
        out = model(step, past_key_values=past, use_cache=True)
        past = out.past_key_values
    return n_seq * n_decode / (time.perf_counter() - t0)


def main() -> None:
    folder, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    print(json.dumps({"ready": True, "version": f"transformers {transformers.__version__}"}), flush=True)
    with torch.inference_mode():
        for line in sys.stdin:
            req = json.loads(line)
            tokens, n_decode = req["tokens"], req["decode"]
            if req.get("batch"):
                one = decode_rate(model, tokens, n_decode, 1)
                aggregate = decode_rate(model, tokens, n_decode, req["batch"])
                print(json.dumps({"single_tok_s": one, "aggregate_tok_s": aggregate}), flush=True)
                continue
            ids = torch.tensor([tokens])
            t0 = time.perf_counter()
            out = model(ids, use_cache=True)
            t1 = time.perf_counter()
            past = out.past_key_values
            step = torch.tensor([[tokens[-1]]])
            for _ in range(n_decode):
                out = model(step, past_key_values=past, use_cache=True)
                past = out.past_key_values
            t2 = time.perf_counter()
            print(json.dumps({
                "prefill_tok_s": len(tokens) / (t1 - t0),
                "decode_tok_s": n_decode / (t2 - t1),
            }), flush=True)


if __name__ == "__main__":
    main()
