#!/usr/bin/env python3
"""Random corruptions of the real model: each run changes one byte (even runs) or four
consecutive bytes in the first 2 MiB of a copy of the GGUF, then runs
`lmscope info` and `lmscope generate -n 2` on it under a timeout.

Those 2 MiB hold the header, the metadata (mostly the tokenizer's token and
merge strings), the tensor table and the first weights. Uniform offsets
would seldom touch the few kilobytes that describe the model's shape, so a
third of the runs hit anywhere in the 2 MiB, a third the metadata's own
structure (counts, keys, types, lengths and scalar values: everything but
the elements of the big arrays) and a third the tensor table (names, ranks,
dimensions, types, offsets).

Every outcome must be a clean exit: success, or an error line and a non-zero
exit. A panic (exit 101 or "panicked at" on stderr), an abort or other
signal, or a run past the timeout is a failure; its offset and bytes are
printed so the case can be replayed.

    python3 scripts/corrupt_model.py [--runs 2000] [--jobs 2] [--timeout 60]
        [--bin target/release/lmscope] [--model PATH] [--seed 1]

Prints one JSON summary line (counts per outcome) at the end.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

SPAN = 2 << 20


def regions(data):
    """(structure, table): byte ranges of the metadata's structure and of the
    tensor table, found by walking the GGUF header."""
    import struct

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string(o):
        (n,) = struct.unpack_from("<Q", data, o)
        return o + 8 + n

    def value(t, o, structure):
        if t in sizes:
            structure.append((o, o + sizes[t]))
            return o + sizes[t]
        if t == 8:
            structure.append((o, string(o)))
            return string(o)
        if t == 9:
            at, n = struct.unpack_from("<IQ", data, o)
            structure.append((o, o + 12))
            o += 12
            for _ in range(n):
                o = value(at, o, []) if n > 64 else value(at, o, structure)
            return o
        raise ValueError(f"unknown GGUF value type {t}")

    _, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    structure = [(0, 24)]
    o = 24
    for _ in range(n_kv):
        key_end = string(o)
        structure.append((o, key_end + 4))
        (t,) = struct.unpack_from("<I", data, key_end)
        o = value(t, key_end + 4, structure)
    table_start = o
    for _ in range(n_tensors):
        o = string(o)
        (nd,) = struct.unpack_from("<I", data, o)
        o += 4 + 8 * nd + 4 + 8
    return structure, (table_start, o)


def pick_offset(rng, i, width, structure, table, size):
    where = ("anywhere", "metadata", "tensor table")[(i // 2) % 3]
    if where == "metadata":
        weights = [b - a for a, b in structure]
        a, b = rng.choices(structure, weights)[0]
        offset = rng.randrange(a, b)
    elif where == "tensor table":
        offset = rng.randrange(*table)
    else:
        offset = rng.randrange(0, size)
    return where, min(offset, size - width)


def default_model():
    out = subprocess.run(
        [ARGS.bin, "info", "--json"], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)["path"]


def classify(proc):
    if proc is None:
        return "hang"
    if proc.returncode < 0:
        return "abort" if proc.returncode == -6 else f"signal{-proc.returncode}"
    if proc.returncode == 101 or "panicked at" in proc.stderr:
        return "panic"
    if proc.returncode == 0:
        return "ok"
    return "error"


def run(cmd):
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, errors="replace", timeout=ARGS.timeout
        )
    except subprocess.TimeoutExpired:
        return None


def case(worker_copy, original, layout, i):
    rng = random.Random(ARGS.seed * 1_000_003 + i)
    width = 1 if i % 2 == 0 else 4
    where, offset = pick_offset(rng, i, width, *layout, min(SPAN, len(original)))
    new = bytes(rng.randrange(256) for _ in range(width))
    with open(worker_copy, "r+b") as f:
        f.seek(offset)
        f.write(new)
    try:
        results = {"where": where}
        for name, cmd in [
            ("info", [ARGS.bin, "info", "--model", worker_copy]),
            (
                "generate",
                [ARGS.bin, "generate", "--model", worker_copy, "-n", "2", "--seed", "1", "Hello"],
            ),
        ]:
            proc = run(cmd)
            results[name] = classify(proc)
            if results[name] not in ("ok", "error"):
                lines = proc.stderr.strip().splitlines() if proc else []
                at = [k for k, l in enumerate(lines) if "panicked at" in l]
                tail = " ".join(lines[at[0] : at[0] + 2]) if at else (lines or [""])[-1]
                print(
                    f"  {name}: {results[name]} at offset {offset} ({where}) bytes {new.hex()}: {tail}",
                    file=sys.stderr,
                )
        return results
    finally:
        with open(worker_copy, "r+b") as f:
            f.seek(offset)
            f.write(original[offset : offset + width])


def main():
    model = ARGS.model or default_model()
    with open(model, "rb") as f:
        original = f.read(SPAN + 16)
    layout = regions(original)
    tmp = tempfile.mkdtemp(prefix="lmscope-corrupt-")
    try:
        copies = []
        for w in range(ARGS.jobs):
            c = os.path.join(tmp, f"model{w}.gguf")
            shutil.copyfile(model, c)
            copies.append(c)

        def worker(w):
            out = []
            for i in range(w, ARGS.runs, ARGS.jobs):
                out.append(case(copies[w], original, layout, i))
                done = len(out) * ARGS.jobs
                if w == 0 and done % 100 < ARGS.jobs:
                    print(f"  {done}/{ARGS.runs}", file=sys.stderr)
            return out

        with ThreadPoolExecutor(ARGS.jobs) as pool:
            results = [r for rs in pool.map(worker, range(ARGS.jobs)) for r in rs]
    finally:
        shutil.rmtree(tmp)

    summary = {"runs": len(results), "model": os.path.basename(model)}
    for name in ("info", "generate"):
        counts = {}
        for r in results:
            counts[r[name]] = counts.get(r[name], 0) + 1
        summary[name] = counts
    by_where = {}
    for r in results:
        d = by_where.setdefault(r["where"], {})
        for name in ("info", "generate"):
            d[f"{name} {r[name]}"] = d.get(f"{name} {r[name]}", 0) + 1
    summary["by_region"] = by_where
    print(json.dumps(summary))
    bad = sum(1 for r in results for k, v in r.items() if k != "where" and v not in ("ok", "error"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--bin", default="target/release/lmscope")
    p.add_argument("--model")
    p.add_argument("--seed", type=int, default=1)
    ARGS = p.parse_args()
    main()
