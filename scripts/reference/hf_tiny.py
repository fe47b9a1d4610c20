#!/usr/bin/env python3
"""Tiny random-initialised Hugging Face checkpoints and transformers' numbers
for them: the fixtures that check lmscope's safetensors path per architecture.

Writes, for each of tiny-gpt2 and tiny-llama, a model folder under
tests/fixtures/hf/NAME/ (config.json, model.safetensors in f32,
tokenizer.json, tokenizer_config.json, generation_config.json; a few hundred
KB each, seeded, so the same every run) and tests/fixtures/hf/NAME.json with
transformers' (fp32, eager attention, CPU) token ids, logits at every
position, hidden states after every layer, attention probabilities of every
layer and head, and a greedy continuation, for a few prompts; plus token ids
of 30+ strings.

The tokenizer is a byte-level BPE of 512 tokens trained (with the
`tokenizers` trainer) on tests/fixtures/ppl_text.txt, this project's own essay.

Usage (torch and transformers in .venv-hf: python3 -m venv .venv-hf &&
.venv-hf/bin/pip install torch transformers safetensors numpy):
    .venv-hf/bin/python scripts/reference/hf_tiny.py
"""
import json
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = "tests/fixtures/hf"
SEED = 1234
VOCAB = 512
GREEDY = 12
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")

PROMPTS = [
    "The model reads the prompt",
    "Attention weighs every earlier token, and",
    "1 2 3 4 5 6 7",
]

STRINGS = [
    "", "Hello world", " leading space", "trailing space ", "multiple   spaces",
    "line one\nline two\n\nline four", "tab\tseparated", "12345 and 3.14159",
    "don't I'll we've", "def add(a, b):\n    return a + b\n", "🙂👍🏽", "大型语言模型",
    "naïve café", "Ελληνικά Русский", "<|im_start|>user\nhi<|im_end|>", "a<|endoftext|>b",
    "URL: https://example.com/?q=1", "CamelCase snake_case", "x = 0x1F; y = 1e-5",
    "“Quoted” — dash…", "The attention of a transformer", "positional encoding",
    "masked language model", "next sentence prediction", "fine-tuning on a task",
    "   ", "\n\n\n", "ALL CAPS TEXT", "mixed123numbers456", "end.",
]


def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train(["tests/fixtures/ppl_text.txt"], trainer)
    return tok


def configs():
    common = dict(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0)
    gpt2 = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=128,
                                   activation_function="gelu_new", **common)
    llama = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2,
                                     max_position_embeddings=128, rope_theta=10000.0,
                                     rms_norm_eps=1e-5, tie_word_embeddings=True, **common)
    return [("tiny-gpt2", transformers.GPT2LMHeadModel, gpt2),
            ("tiny-llama", transformers.LlamaForCausalLM, llama)]


def r(x):
    return [round(float(v), 7) for v in x]


def main():
    tok = tokenizer()
    for name, cls, cfg in configs():
        torch.manual_seed(SEED)
        cfg._attn_implementation = "eager"
        model = cls(cfg).eval()
        # Random init keeps the residual tiny; widen the weights so the
        # numbers are not all near zero (still seeded, still the model's).
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() >= 2:
                    p.mul_(10.0)
        folder = os.path.join(OUT, name)
        model.save_pretrained(folder, safe_serialization=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                       "chat_template": CHATML, "tokenizer_class": "PreTrainedTokenizerFast"}, f,
                      indent=1)
        cases = []
        for text in PROMPTS:
            ids = tok.encode(text).ids
            x = torch.tensor([ids])
            with torch.no_grad():
                out = model(x, output_hidden_states=True, output_attentions=True)
                gen = model.generate(x, max_new_tokens=GREEDY, do_sample=False,
                                     eos_token_id=None, pad_token_id=0)
            cases.append({
                "text": text, "ids": ids,
                "logits": [r(row) for row in out.logits[0]],
                # hidden_states[0] is the embedding, [l + 1] after layer l
                # (the last one after the final norm, as transformers returns it).
                "hidden_last": [r(h[0, -1]) for h in out.hidden_states],
                # attentions[l]: (heads, queries, keys)
                "attention": [[[r(q) for q in head] for head in a[0]] for a in out.attentions],
                "greedy": gen[0, len(ids):].tolist(),
            })
        fx = {"generator": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                           "fp32, eager attention, CPU",
              "script": "scripts/reference/hf_tiny.py", "seed": SEED,
              "tokenizer": [{"text": s, "ids": tok.encode(s).ids} for s in STRINGS],
              "cases": cases}
        path = os.path.join(OUT, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fx, f, ensure_ascii=False, separators=(",", ":"))
        size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
        print(f"{name}: folder {size} bytes, fixture {os.path.getsize(path)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
