#!/usr/bin/env python3
"""HF transformers' side of `lmscope bench` for a masked language model
(BERT, RoBERTa, DistilBERT, MiniLM).

Same protocol as bench_transformers.py: started once with the folder and the
thread count, loads the model in fp32 on the CPU (AutoModelForMaskedLM when
the checkpoint has its MLM head, else AutoModel), prints a ready line, then
answers each line on stdin with one JSON line:

- {"fill": [ids], "repeat": n}: one forward pass over the masked sentence,
  n times; {"ms": median milliseconds of one}.
- {"sentences": [[ids], ...]}: each sentence alone through the encoder and
  mean-pooled (sentence-transformers' embedding); {"sentences_s": rate}.
Token ids come from lmscope, so both sides run the same inputs.
"""
import json
import statistics
import sys
import time

import torch
import transformers


def main() -> None:
    folder, threads, has_head = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "mlm"
    torch.set_num_threads(threads)
    cls = transformers.AutoModelForMaskedLM if has_head else transformers.AutoModel
    model = cls.from_pretrained(folder, dtype=torch.float32).eval()
    encoder = model.base_model if has_head else model
    print(json.dumps({"ready": True, "version": f"transformers {transformers.__version__}"}), flush=True)
    with torch.inference_mode():
        for line in sys.stdin:
            req = json.loads(line)
            if "fill" in req:
                ids = torch.tensor([req["fill"]])
                times = []
                for _ in range(req["repeat"]):
                    t0 = time.perf_counter()
                    model(ids)
                    times.append(time.perf_counter() - t0)
                print(json.dumps({"ms": 1000 * statistics.median(times)}), flush=True)
            else:
                sents = [torch.tensor([s]) for s in req["sentences"]]
                t0 = time.perf_counter()
                for ids in sents:
                    encoder(ids).last_hidden_state[0].mean(0)
                rate = len(sents) / (time.perf_counter() - t0)
                print(json.dumps({"sentences_s": rate}), flush=True)


if __name__ == "__main__":
    main()
