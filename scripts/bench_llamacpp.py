#!/usr/bin/env python3
"""llama.cpp's side of `lmscope bench`, through llama-cpp-python.

Started once by `lmscope bench`; loads the model, then answers each line on
stdin (a JSON list of prompt token ids and the decode count) with one JSON
line of timings, so that rounds of both engines can alternate in one run.
Decode feeds one token at a time, as llama-bench's tg test does.
"""
import json
import sys
import time

import llama_cpp


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
