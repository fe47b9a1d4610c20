#!/usr/bin/env python3
"""A Hugging Face folder (fp32 safetensors) from a GGUF file, through
transformers' own GGUF reader (dequantised weights, Q and K un-permuted,
its tokenizer and config): a real-size model to run lmscope's safetensors
path on and to benchmark against transformers (`lmscope bench -m DIR`).
Nothing it writes is committed.

    .venv-hf/bin/pip install gguf accelerate
    .venv-hf/bin/python scripts/reference/hf_from_gguf.py MODEL.gguf OUT_DIR
"""
import os
import sys

import safetensors.torch
import torch
import transformers


def main() -> None:
    gguf, out = sys.argv[1], sys.argv[2]
    folder, name = os.path.dirname(os.path.abspath(gguf)), os.path.basename(gguf)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32)
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # save_pretrained refuses a model read from GGUF: write the parts.
    os.makedirs(out, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    safetensors.torch.save_file(state, os.path.join(out, "model.safetensors"),
                                metadata={"format": "pt"})
    model.config.quantization_config = None
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
