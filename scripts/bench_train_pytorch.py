#!/usr/bin/env python3
"""Training speed, lmscope against PyTorch in one run: the same net
(transformers' BertForPreTraining / GPT2LMHeadModel / LlamaForCausalLM with
lmscope's `--size` shapes), the same random full-length batch shape, the
same threads, dropout off, one update = loss + backward + clip_grad_norm_ +
AdamW step. Prints both tokens/s, their ratio, and each one's peak memory
(each measured in its own process).

  .venv-hf/bin/python scripts/bench_train_pytorch.py [--arch bert] [--size tiny]
      [--batch 16] [--seq-len 128] [--steps 10] [--threads 2] [--runs 3]

lmscope is run as `target/release/lmscope train bench ... --json`
(build it first: cargo build --release).
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES = {"tiny": (128, 2, 4, 512, 128), "small": (256, 4, 4, 1024, 256)}


def pytorch(a):
    import torch
    from transformers import BertConfig, BertForPreTraining, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, layers, heads, ff, pos = SIZES[a.size]
    v = a.vocab_size
    if a.arch == "bert":
        cfg = BertConfig(vocab_size=v, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=ff, max_position_embeddings=pos, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, attn_implementation="eager")
        model = BertForPreTraining(cfg)
    elif a.arch == "gpt2":
        cfg = GPT2Config(vocab_size=v, n_embd=d, n_layer=layers, n_head=heads, n_inner=ff, n_positions=pos,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")
        model = GPT2LMHeadModel(cfg)
    else:
        cfg = LlamaConfig(vocab_size=v, hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=heads // 2, intermediate_size=ff, max_position_embeddings=pos,
                          tie_word_embeddings=True, attn_implementation="eager")
        model = LlamaForCausalLM(cfg)
    model.train()
    ids = torch.randint(5, v, (a.batch, a.seq_len))
    batch = {"input_ids": ids}
    if a.arch == "bert":
        labels = torch.full_like(ids, -100)
        labels[:, 3::7] = ids[:, 3::7]
        batch.update(labels=labels, next_sentence_label=torch.randint(0, 2, (a.batch,)))
    else:
        batch["labels"] = ids
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def update():
        opt.zero_grad()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    update()
    update()
    t = time.perf_counter()
    for _ in range(a.steps):
        update()
    s = (time.perf_counter() - t) / a.steps
    return {"step_ms": s * 1e3, "tokens_per_s": a.batch * a.seq_len / s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="bert", choices=["bert", "gpt2", "llama"])
    p.add_argument("--size", default="tiny", choices=list(SIZES))
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--pytorch-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.pytorch_only:
        print(json.dumps(pytorch(a)))
        return
    common = ["--arch", a.arch, "--size", a.size, "--vocab-size", str(a.vocab_size), "--batch", str(a.batch),
              "--seq-len", str(a.seq_len), "--steps", str(a.steps)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    for run in range(a.runs):
        ours = json.loads(subprocess.check_output(
            [str(ROOT / "target/release/lmscope"), "train", "bench", *common, "--json"], env=env))
        theirs = json.loads(subprocess.check_output(
            [sys.executable, __file__, *common, "--threads", str(a.threads), "--pytorch-only"]))
        print(f"run {run + 1}: lmscope {ours['tokens_per_s']:.0f} tok/s ({ours['step_ms']:.1f} ms, peak {ours['peak_rss_mib']:.0f} MiB)"
              f"  PyTorch {theirs['torch']} {theirs['tokens_per_s']:.0f} tok/s ({theirs['step_ms']:.1f} ms, peak {theirs['peak_rss_mib']:.0f} MiB)"
              f"  ratio {ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
