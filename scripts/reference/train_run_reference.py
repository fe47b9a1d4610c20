#!/usr/bin/env python3
"""PyTorch's losses over a 300-step run of the tiny GPT-2 fixture: the
reference `tests/train_parity.rs` checks lmscope's optimiser, schedule and
clipping against over a whole run (not one step).

Weights: tests/fixtures/hf/tiny-gpt2 as committed. Data: its tokenizer on
tests/fixtures/ppl_text.txt, the ids cut into blocks of 32, the first 24
blocks used in order, 4 per step (so each block is seen 50 times), no
shuffling, dropout off. AdamW lr 1e-3 (betas 0.9/0.999, eps 1e-8, weight
decay 0.01), linear warm-up over 30 steps then cosine to 0.1 of the peak at
step 300 (lmscope's Schedule: rate(s) = peak (s+1)/warmup below warmup),
clip_grad_norm_ 1.0. Writes tests/fixtures/train/tiny-gpt2-300.json:
{blocks, batch, steps, optimizer, schedule, losses (every step's loss before
its update)}.

  .venv-hf/bin/python scripts/reference/train_run_reference.py
"""
import json
import math
import pathlib

import torch
from transformers import AutoModelForCausalLM
from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
FOLDER = ROOT / "tests/fixtures/hf/tiny-gpt2"
STEPS, BATCH, BLOCK, N_BLOCKS = 300, 4, 32, 24
PEAK, WARMUP, MIN_RATIO = 1e-3, 30, 0.1


def rate(step):
    if step < WARMUP:
        return PEAK * (step + 1) / WARMUP
    done = min((step - WARMUP) / max(STEPS - WARMUP, 1), 1.0)
    return PEAK * (MIN_RATIO + (1 - MIN_RATIO) * 0.5 * (1 + math.cos(math.pi * done)))


def main():
    tok = Tokenizer.from_file(str(FOLDER / "tokenizer.json"))
    ids = tok.encode((ROOT / "tests/fixtures/ppl_text.txt").read_text(), add_special_tokens=False).ids
    blocks = [ids[i * BLOCK:(i + 1) * BLOCK] for i in range(N_BLOCKS)]
    assert all(len(b) == BLOCK for b in blocks)
    model = AutoModelForCausalLM.from_pretrained(FOLDER, attn_implementation="eager")
    model.eval()  # dropout off
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    losses = []
    for step in range(STEPS):
        rows = [blocks[(step * BATCH + k) % N_BLOCKS] for k in range(BATCH)]
        x = torch.tensor(rows)
        for g in opt.param_groups:
            g["lr"] = rate(step)
        opt.zero_grad()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    out = {
        "blocks": blocks, "batch": BATCH, "steps": STEPS,
        "optimizer": {"lr": PEAK, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
        "schedule": {"peak": PEAK, "warmup": WARMUP, "total": STEPS, "min_ratio": MIN_RATIO},
        "max_norm": 1.0, "losses": losses,
        "reference": f"torch {torch.__version__}, fp32, eager attention, dropout off",
    }
    (ROOT / "tests/fixtures/train/tiny-gpt2-300.json").write_text(json.dumps(out) + "\n")
    print("first", losses[0], "last", losses[-1])


if __name__ == "__main__":
    main()
