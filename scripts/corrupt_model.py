#!/usr/bin/env python3
"""Random corruptions of the real model: each run changes one byte (even runs) or four
consecutive bytes somewhere in the first 2 MiB of a copy of the GGUF (the
header, metadata, tensor table and the first weights), then runs
`lmscope info` and `lmscope generate -n 2` on it under a timeout.

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


def case(worker_copy, original, i):
    rng = random.Random(ARGS.seed * 1_000_003 + i)
    width = 1 if i % 2 == 0 else 4
    offset = rng.randrange(0, min(SPAN, len(original)) - width)
    new = bytes(rng.randrange(256) for _ in range(width))
    with open(worker_copy, "r+b") as f:
        f.seek(offset)
        f.write(new)
    try:
        results = {}
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
                tail = (proc.stderr.strip().splitlines() or [""])[-1] if proc else ""
                print(
                    f"  {name}: {results[name]} at offset {offset} bytes {new.hex()}: {tail}",
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
                out.append(case(copies[w], original, i))
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
    print(json.dumps(summary))
    bad = sum(1 for r in results for v in r.values() if v not in ("ok", "error"))
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
