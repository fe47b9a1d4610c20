#!/usr/bin/env python3
"""Op-by-op comparison of lmscope's quantised forward pass with llama.cpp's.

  dump     run llama.cpp (llama-cpp-python, the fixtures' settings) on token ids
           with a graph callback (cb_eval) and write every intermediate tensor
           as lmscope probe files (raw f32, lmscope's row layout) under OUT
  compare  compare two probe directories (llama.cpp's and lmscope's, written by
           `LMSCOPE_PROBE_DUMP=DIR cargo run --example probe_forward -- MODEL IDS`)
           op by op: how many elements differ and by how much

Forcing llama.cpp's values into lmscope (`LMSCOPE_PROBE_FORCE=DIR`) makes each
op start from llama.cpp's inputs, so `compare` then shows which ops differ on
their own. See scripts/reference/FIDELITY.md.

    .venv-ref/bin/python scripts/reference/llamacpp_probe.py dump --model M --ids 504,3575,282 --out /tmp/lc
    .venv-ref/bin/python scripts/reference/llamacpp_probe.py dump ... --decode 7042   # a one-token step after the prompt
    .venv-ref/bin/python scripts/reference/llamacpp_probe.py compare /tmp/lc /tmp/ours
"""
import argparse
import ctypes
import os

import numpy as np

ORDER = ["attn_norm", "Qcur_mm", "Kcur_mm", "Vcur", "Qcur", "Kcur", "kq_soft_max", "kqv_out",
         "attn_out", "ffn_inp", "ffn_norm", "ffn_gate", "ffn_up", "ffn_swiglu", "ffn_out", "l_out"]
PLAIN = {"attn_norm", "attn_out", "ffn_inp", "ffn_norm", "ffn_gate", "ffn_up", "ffn_swiglu",
         "ffn_out", "l_out", "result_norm", "result_output"}


def probe_name(name, op):
    """lmscope's probe name for a llama.cpp graph tensor, or None."""
    base = name.split("-")[0]
    # Gemma 3's graph names the residual after attention and the GeGLU
    # product otherwise.
    renamed = {"sa_out": "ffn_inp", "ffn_geglu": "ffn_swiglu"}
    if base in renamed and " " not in name:
        return name.replace(base, renamed[base])
    if base in ("Qcur", "Kcur"):
        return {"MUL_MAT": name.replace("cur", "cur_mm"), "ROPE": name}.get(op)
    if base == "Vcur" and op == "MUL_MAT":
        return name
    if base == "kqv_out" and op == "CONT":
        return name
    if base == "kq_soft_max" and op == "SOFT_MAX":
        return name
    if base in PLAIN and " " not in name:
        return name
    return None


def dump(args):
    import llama_cpp
    from llama_cpp import llama_cpp as L
    from llama_cpp._internals import LlamaBatch, LlamaContext

    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    for fn, res in (("ggml_get_name", ctypes.c_char_p), ("ggml_op_desc", ctypes.c_char_p),
                    ("ggml_get_data", ctypes.c_void_p)):
        getattr(lib, fn).restype = res
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    lib.ggml_type_name.restype = ctypes.c_char_p
    lib.ggml_type_name.argtypes = [ctypes.c_int]
    ids = [int(t) for t in args.ids.split(",")]
    n_q = 1 if args.decode is not None else len(ids)
    n_k = len(ids) + (1 if args.decode is not None else 0)
    state = {"on": args.decode is None}
    os.makedirs(args.out, exist_ok=True)

    def cb(t, ask, _ud):
        if ask:
            return True
        if not state["on"]:
            return True
        name = lib.ggml_get_name(t).decode()
        key = probe_name(name, lib.ggml_op_desc(t).decode())
        if key is None:
            return True
        # struct ggml_tensor: type (int, padded to 8), buffer*, ne[4] at 16, nb[4] at 48.
        ty = lib.ggml_type_name(ctypes.cast(t, ctypes.POINTER(ctypes.c_int32))[0]).decode()
        ne = list(ctypes.cast(t + 16, ctypes.POINTER(ctypes.c_int64))[0:4])
        nb = list(ctypes.cast(t + 48, ctypes.POINTER(ctypes.c_uint64))[0:4])
        if ty != "f32":
            return True
        size = sum((ne[i] - 1) * nb[i] for i in range(4)) + 4
        buf = bytes((ctypes.c_char * size).from_address(lib.ggml_get_data(t)))
        a = np.ndarray(shape=tuple(ne[::-1]), dtype=np.float32, buffer=buf, strides=tuple(nb[::-1]))
        if key.startswith("kq_soft_max"):
            a = a[0, :, :, :n_k]  # (heads, queries, keys) without llama.cpp's padding
        np.ascontiguousarray(a, dtype=np.float32).tofile(os.path.join(args.out, key + ".f32"))
        return True

    cbf = L.ggml_backend_sched_eval_callback(cb)
    if args.no_repack:
        defaults = llama_cpp.llama_model_default_params

        def no_repack():
            p = defaults()
            p.use_extra_bufts = False
            return p

        llama_cpp.llama_model_default_params = no_repack
        llama_cpp.llama.llama_cpp.llama_model_default_params = no_repack
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                          n_threads_batch=2, seed=1234, logits_all=True, verbose=False)
    llm.context_params.cb_eval = cbf
    llm._ctx = LlamaContext(model=llm._model, params=llm.context_params, verbose=False)
    llm._batch = LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)
    llm.reset()
    llm.eval(ids)
    if args.decode is not None:
        state["on"] = True
        llm.eval([args.decode])
    print(f"{args.out}: {len(os.listdir(args.out))} tensors ({n_q} queries over {n_k} keys)")


def compare(args):
    names = [f"{b}-{l}" for l in range(args.layers) for b in ORDER] + ["result_norm", "result_output"]
    first = None
    for nm in names:
        a, b = (os.path.join(d, nm + ".f32") for d in (args.ref, args.ours))
        if not (os.path.exists(a) and os.path.exists(b)):
            continue
        x, y = np.fromfile(a, np.float32), np.fromfile(b, np.float32)
        if x.size != y.size:
            print(f"{nm}: sizes {x.size} vs {y.size}")
            continue
        d = np.abs(x.astype(np.float64) - y)
        neq = int((x != y).sum())
        if neq and first is None:
            first = nm
        if neq or args.all:
            print(f"{nm:18s} differ {neq:7d}/{x.size:<7d} max|d| {d.max():.3e}")
    print("first difference:", first or "none (bit-identical)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--model", required=True)
    d.add_argument("--ids", required=True, help="comma-separated prompt token ids")
    d.add_argument("--decode", type=int, help="then one step with this token; dump only that step")
    d.add_argument("--out", required=True)
    d.add_argument("--no-repack", action="store_true",
                   help="keep weights as stored (no CPU_REPACK buffer): K-quants through ggml_vec_dot")
    c = sub.add_parser("compare")
    c.add_argument("ref")
    c.add_argument("ours")
    c.add_argument("--layers", type=int, default=30)
    c.add_argument("--all", action="store_true", help="list identical ops too")
    args = ap.parse_args()
    {"dump": dump, "compare": compare}[args.cmd](args)


if __name__ == "__main__":
    main()
