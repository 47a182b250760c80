#!/usr/bin/env python3
"""Native anchor for `npm run bench` (bench/anchors.ts): float32 GEMM through NumPy's BLAS.

The thread count is the caller's: it sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS
before this process starts (BLAS reads them when it loads). For each size n: C = A @ B on (n, n) float32
matrices, `--warmup` untimed calls, then `--repeats` timed ones; prints one JSON object on stdout:

  {"python": "3.11.14", "numpy": "2.4.6", "blas": "scipy-openblas 0.3.31...", "threads_env": "1",
   "sizes": [{"n": 1024, "repeats": 7, "ms": 9.1, "ms_min": 8.9, "ms_max": 9.6,
              "gflops": 236.0, "gflops_min": 223.7, "gflops_max": 241.3}, ...]}

gflops is 2 n^3 / the median time (the min and max come from the slowest and fastest call).
If NumPy is missing it prints {"error": "..."} and exits 3.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time


def blas_name(np):
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        return f"{b.get('name', '?')} {b.get('version', '?')}".strip()
    except Exception:  # older NumPy: no mode="dicts"
        return "unknown"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="1024,2048")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    try:
        import numpy as np
    except ImportError as e:
        print(json.dumps({"error": f"NumPy is not installed ({e})"}))
        sys.exit(3)
    rng = np.random.default_rng(0)
    rows = []
    for n in [int(s) for s in a.sizes.split(",") if s]:
        A = rng.standard_normal((n, n), dtype=np.float32)
        B = rng.standard_normal((n, n), dtype=np.float32)
        C = np.empty((n, n), dtype=np.float32)
        for _ in range(a.warmup):
            np.matmul(A, B, out=C)
        ms = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            np.matmul(A, B, out=C)
            ms.append((time.perf_counter() - t0) * 1e3)
        flop = 2.0 * n ** 3
        med = statistics.median(ms)
        rows.append({
            "n": n, "repeats": a.repeats, "ms": med, "ms_min": min(ms), "ms_max": max(ms),
            "gflops": flop / (med / 1e3) / 1e9, "gflops_min": flop / (max(ms) / 1e3) / 1e9, "gflops_max": flop / (min(ms) / 1e3) / 1e9,
        })
    print(json.dumps({
        "python": platform.python_version(), "numpy": np.__version__, "blas": blas_name(np),
        "threads_env": os.environ.get("OPENBLAS_NUM_THREADS"), "sizes": rows,
    }))


if __name__ == "__main__":
    main()
