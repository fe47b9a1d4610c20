#!/usr/bin/env python3
"""PyTorch's numbers for one training step of the tiny fixture models: the
reference `tests/train_parity.rs` checks lmscope's trainer against.

For each of tests/fixtures/hf/tiny-{bert,gpt2,llama} (weights as committed,
f32, dropout off: the model in eval mode, gradients still on) and a fixed
batch of two padded sequences, writes tests/fixtures/train/NAME-step.json:

  batch           input ids, attention mask, token types and labels (-100 =
                  no loss), and for BERT the next-sentence labels
  loss            the batch loss as transformers computes it (BERT:
                  masked-LM mean + next-sentence mean, as BertForPreTraining;
                  decoders: the shifted next-token mean)
  grad_norms      every parameter's gradient L2 norm, by checkpoint name
                  (tied weights once, under the embedding's name)
  clipped_norm    the total gradient norm before clipping to max_norm
  after_step      the loss on the same batch after one torch.optim.AdamW
                  step (lr, betas, eps, weight_decay as written) with
                  clip_grad_norm_(max_norm)

Run with the .venv-hf environment (scripts/reference/setup.sh):
  .venv-hf/bin/python scripts/reference/train_step_reference.py
"""
import json
import pathlib

import torch
from transformers import AutoModelForCausalLM, BertForPreTraining

ROOT = pathlib.Path(__file__).resolve().parents[2]
HF = ROOT / "tests" / "fixtures" / "hf"
OUT = ROOT / "tests" / "fixtures" / "train"
OPTIM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
MAX_NORM = 1.0


def batch_for(name, vocab):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(5, vocab, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 9:] = 0  # the second sequence is padded
    b = {"input_ids": ids, "attention_mask": mask}
    if name == "tiny-bert":
        ids[:, 0] = 2  # [CLS]
        ids[0, 6] = 3  # [SEP] between the segments
        ids[0, 11] = 3
        ids[1, 8] = 3
        ids[1, 9:] = 0  # [PAD]
        types = torch.zeros(2, 12, dtype=torch.long)
        types[0, 7:] = 1
        labels = torch.full((2, 12), -100, dtype=torch.long)
        for row, col in [(0, 2), (0, 8), (1, 3), (1, 5)]:
            labels[row, col] = ids[row, col].item()
            ids[row, col] = 4  # [MASK]
        b.update(token_type_ids=types, labels=labels,
                 next_sentence_label=torch.tensor([0, 1]))
    else:
        ids[1, 9:] = 0
        labels = ids.clone()
        labels[mask == 0] = -100
        b["labels"] = labels
    return b


def loss_of(model, b):
    return model(**b).loss


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name in ["tiny-bert", "tiny-gpt2", "tiny-llama"]:
        folder = HF / name
        if name == "tiny-bert":
            model = BertForPreTraining.from_pretrained(folder, attn_implementation="eager")
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
        model.eval()  # dropout off; gradients are still computed
        b = batch_for(name, model.config.vocab_size)
        loss = loss_of(model, b)
        loss.backward()
        norms = {n: p.grad.norm().item() for n, p in model.named_parameters() if p.grad is not None}
        total = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM).item()
        opt = torch.optim.AdamW(model.parameters(), **OPTIM)
        opt.step()
        with torch.no_grad():
            after = loss_of(model, b).item()
        record = {
            "model": name,
            "batch": {k: v.tolist() for k, v in b.items()},
            "loss": loss.item(),
            "grad_norms": norms,
            "clipped_norm": total,
            "max_norm": MAX_NORM,
            "optimizer": {"lr": OPTIM["lr"], "beta1": 0.9, "beta2": 0.999,
                          "eps": OPTIM["eps"], "weight_decay": OPTIM["weight_decay"]},
            "after_step": after,
            "reference": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, fp32, eager attention, eval mode",
        }
        (OUT / f"{name}-step.json").write_text(json.dumps(record, indent=1) + "\n")
        print(name, "loss", round(loss.item(), 6), "after", round(after, 6), "params", len(norms))


if __name__ == "__main__":
    main()
