#!/usr/bin/env python3
"""llama.cpp's side of `lmscope bench`, through llama-cpp-python.

Started once by `lmscope bench`; loads the model, then answers each line on
stdin with one JSON line of timings, so that rounds of both engines can
alternate in one run:

- {"tokens": [...], "decode": n}: prefill the tokens, then decode n tokens
  one at a time, as llama-bench's tg test does.
- {"tokens": [...], "decode": n, "batch": b}: prefill once, copy the cache
  to b sequences, then decode n steps of one token per sequence in one
  batch (llama_decode over b tokens), against n steps of one sequence on
  the same context: batched decode as lmscope's compare view does it.
"""
import ctypes
import json
import sys
import time

import llama_cpp


def batched(llm, params, tokens, n_decode, n_seq):
    """(one sequence's tokens/s, the batch's aggregate tokens/s)."""
    p = llama_cpp.llama_context_params.from_buffer_copy(params)
    p.n_seq_max = n_seq
    p.n_ctx = n_seq * (len(tokens) + n_decode + 16)
    p.kv_unified = True
    ctx = llama_cpp.llama_init_from_model(llm.model, p)
    try:
        mem = llama_cpp.llama_get_memory(ctx)
        batch = llama_cpp.llama_batch_init(max(len(tokens), n_seq), 0, n_seq)
        try:
            def decode(entries):
                """entries: (token, position, sequence) with logits for each."""
                batch.n_tokens = len(entries)
                for i, (tok, pos, seq) in enumerate(entries):
                    batch.token[i] = tok
                    batch.pos[i] = pos
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = seq
                    batch.logits[i] = 1
                if llama_cpp.llama_decode(ctx, batch) != 0:
                    raise RuntimeError("llama_decode failed")

            n = len(tokens)
            rates = []
            for seqs in (1, n_seq):
                llama_cpp.llama_memory_clear(mem, True)
                # Prefill in chunks of the context's batch size, logits for
                # the last token only.
                for start in range(0, n, p.n_batch):
                    chunk = tokens[start:start + p.n_batch]
                    decode([(t, start + i, 0) for i, t in enumerate(chunk)])
                for s in range(1, seqs):
                    llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
                tok = tokens[-1]
                t0 = time.perf_counter()
                for step in range(n_decode):
                    decode([(tok, n + step, s) for s in range(seqs)])
                rates.append(seqs * n_decode / (time.perf_counter() - t0))
            return rates[0], rates[1]
        finally:
            llama_cpp.llama_batch_free(batch)
    finally:
        llama_cpp.llama_free(ctx)


def main() -> None:
    model, threads = sys.argv[1], int(sys.argv[2])
    llm = llama_cpp.Llama(
        model_path=model, n_ctx=1024, n_batch=512, n_ubatch=512,
        n_threads=threads, n_threads_batch=threads, verbose=False,
    )
    print(json.dumps({"ready": True, "version": llama_cpp.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        tokens, n_decode = req["tokens"], req["decode"]
        if req.get("batch"):
            one, aggregate = batched(llm, llm.context_params, tokens, n_decode, req["batch"])
            print(json.dumps({"single_tok_s": one, "aggregate_tok_s": aggregate}), flush=True)
            continue
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(tokens)
        t1 = time.perf_counter()
        tok = tokens[-1]
        for _ in range(n_decode):
            llm.eval([tok])
        t2 = time.perf_counter()
        print(json.dumps({
            "prefill_tok_s": len(tokens) / (t1 - t0),
            "decode_tok_s": n_decode / (t2 - t1),
        }), flush=True)


if __name__ == "__main__":
    main()
