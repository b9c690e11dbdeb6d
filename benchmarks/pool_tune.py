"""Pooling speed on the CPU, in one process, as interleaved rounds (medians and min-max):

1. The default paths, this build against a baseline build (--baseline DIR: a directory holding an
   older fastlayers package renamed `fl_base`, its _cpu extension inside) and torch CPU: 2x2/2 and
   3x3/2 pad 1 max/avg forward and backward on N=32, C=64, 56x56, plus a batch-1 call (Python
   overhead). The options must not slow these.
2. The new paths (ceil_mode, dilation, return_indices, backward from indices, adaptive pools) as
   effective GB/s against the STREAM triad measured in the same run (fastlayers.bench.probes); the
   max-pool rows with ceil_mode/dilation must keep >= 50% of it.

GB/s counts the float32 (and int64 index) bytes each op must move once: forward x + y (+ indices);
max backward from x: grad_out + x + grad_in; from indices: grad_out + indices + grad_in; avg
backward grad_out + grad_in.

    python benchmarks/pool_tune.py [--rounds 15] [--threads 2] [--baseline /tmp/pool_base]

To make a baseline: `git archive <commit> python/fastlayers | tar -x -C DIR`, move DIR/python/fastlayers
to DIR/fl_base and copy that commit's built _cpu*.so into it. OMP_WAIT_POLICY defaults to passive
here (set it to override): on a loaded 2-core machine a spinning OpenMP worker holds a core the other
worker needs. Both libraries' OpenMP runtimes read it at start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402

import fastlayers as fl  # noqa: E402
from fastlayers.bench import probes  # noqa: E402


def once(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def interleaved(fns: dict, rounds: int, reps: int = 1) -> dict:
    """{name: [seconds per call, one per round]}, the functions taking turns within each round."""
    for fn in fns.values():
        fn()  # warm up (page faults, thread pool)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(once(fn, reps))
    return times


def fmt(ts):
    return f"{statistics.median(ts) * 1e3:8.3f} ms [{min(ts) * 1e3:.3f}-{max(ts) * 1e3:.3f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", default="", help="directory holding a baseline package named fl_base")
    ap.add_argument("--part", choices=("all", "default", "new"), default="all")
    args = ap.parse_args()
    fl.set_num_threads(args.threads)
    base = None
    if args.baseline:
        sys.path.insert(0, args.baseline)
        import fl_base as base

        base.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
        F = torch.nn.functional
    except ImportError:
        torch = None

    n, c, h, w = 32, 64, 56, 56
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    g2 = rng.standard_normal((n, c, 28, 28)).astype(np.float32)
    x1 = rng.standard_normal((1, 6, 28, 28)).astype(np.float32)  # batch-1 inference: Python overhead
    print(f"isa={fl._cpu.active_isa()} threads={args.threads} OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} "
          f"rounds={args.rounds}")

    # ---------------------------------------------------------------- 1. default paths, A/B
    cases = {
        "max 2x2 fwd": lambda m: lambda: m.max_pool2d(x, 2),
        "max 2x2 bwd": lambda m: lambda: m.max_pool2d_backward(g2, x, 2),
        "avg 2x2 fwd": lambda m: lambda: m.avg_pool2d(x, 2),
        "avg 2x2 bwd": lambda m: lambda: m.avg_pool2d_backward(g2, x, 2),
        "max 3x3/2p1 fwd": lambda m: lambda: m.max_pool2d(x, 3, 2, 1),
        "max 3x3/2p1 bwd": lambda m: lambda: m.max_pool2d_backward(g2, x, 3, 2, 1),
        "avg 3x3/2p1 fwd": lambda m: lambda: m.avg_pool2d(x, 3, 2, 1),
        "avg 3x3/2p1 bwd": lambda m: lambda: m.avg_pool2d_backward(g2, x, 3, 2, 1),
        "lp2 2x2 fwd": lambda m: lambda: m.lp_pool2d(x, 2.0, 2),
        "gap fwd": lambda m: lambda: m.global_avg_pool2d(x),
    }
    small = {
        "max 2x2 fwd b1": lambda m: lambda: m.max_pool2d(x1, 2),
        "avg 2x2 fwd b1": lambda m: lambda: m.avg_pool2d(x1, 2),
    }
    if torch is not None:
        tx, tg2, tx1 = torch.from_numpy(x), torch.from_numpy(g2), torch.from_numpy(x1)
        _, idx2 = F.max_pool2d(tx, 2, return_indices=True)
        _, idx3 = F.max_pool2d(tx, 3, 2, 1, return_indices=True)
        aten = torch.ops.aten
        torch_cases = {
            "max 2x2 fwd": lambda: F.max_pool2d(tx, 2),
            "max 2x2 bwd": lambda: aten.max_pool2d_with_indices_backward(tg2, tx, [2, 2], [2, 2], [0, 0], [1, 1],
                                                                         False, idx2),
            "avg 2x2 fwd": lambda: F.avg_pool2d(tx, 2),
            "avg 2x2 bwd": lambda: aten.avg_pool2d_backward(tg2, tx, [2, 2], [2, 2], [0, 0], False, True, None),
            "max 3x3/2p1 fwd": lambda: F.max_pool2d(tx, 3, 2, 1),
            "max 3x3/2p1 bwd": lambda: aten.max_pool2d_with_indices_backward(tg2, tx, [3, 3], [2, 2], [1, 1], [1, 1],
                                                                             False, idx3),
            "avg 3x3/2p1 fwd": lambda: F.avg_pool2d(tx, 3, 2, 1),
            "avg 3x3/2p1 bwd": lambda: aten.avg_pool2d_backward(tg2, tx, [3, 3], [2, 2], [1, 1], False, True, None),
            "lp2 2x2 fwd": lambda: F.lp_pool2d(tx, 2.0, 2),
            "gap fwd": lambda: F.adaptive_avg_pool2d(tx, 1),
            "max 2x2 fwd b1": lambda: F.max_pool2d(tx1, 2),
            "avg 2x2 fwd b1": lambda: F.avg_pool2d(tx1, 2),
        }
    if args.part != "new":
        default_paths(args, base, torch, cases, small, torch_cases if torch is not None else {})
    if args.part != "default":
        new_paths(args, rng, x)


def default_paths(args, base, torch, cases, small, torch_cases):
    print("\n1. default paths: this build vs baseline (vs torch), medians [min-max] over interleaved rounds")
    print(f"{'case':18} {'this build':>30} {'baseline':>30} {'new/base':>9} {'torch':>30}")
    ctx = torch.no_grad() if torch is not None else _Null()
    with ctx:
        for group, reps in ((cases, 1), (small, 200)):
            for name, make in group.items():
                fns = {"new": make(fl)}
                if base is not None:
                    fns["base"] = make(base)
                if torch is not None and name in torch_cases:
                    fns["torch"] = torch_cases[name]
                t = interleaved(fns, args.rounds, reps)
                line = f"{name:18} {fmt(t['new']):>30}"
                if "base" in t:
                    ratio = statistics.median(t["new"]) / statistics.median(t["base"])
                    line += f" {fmt(t['base']):>30} {ratio:9.3f}"
                else:
                    line += f" {'-':>30} {'-':>9}"
                if "torch" in t:
                    line += f" {fmt(t['torch']):>30}"
                print(line, flush=True)



def new_paths(args, rng, x):
    n, c = x.shape[:2]
    triad = probes.cpu_triad_gbps(threads=args.threads)
    print(f"\n2. new paths vs the STREAM triad ({triad:.1f} GB/s, {args.threads} threads, this run)")
    xo = rng.standard_normal((n, c, 55, 55)).astype(np.float32)  # odd: ceil_mode adds a window per axis
    y_c, i_c = fl.max_pool2d(xo, 2, ceil_mode=True, return_indices=True)
    y_3c, i_3c = fl.max_pool2d(xo, 3, 2, 0, ceil_mode=True, return_indices=True)
    y_d, i_d = fl.max_pool2d(x, 3, 1, 1, 2, return_indices=True)
    y_2, i_2 = fl.max_pool2d(x, 2, return_indices=True)
    y_a, i_a = fl.adaptive_max_pool2d(xo, 7, return_indices=True)
    f4, i8 = 4, 8

    def nb(*arrays, idx=()):
        return sum(a.size * f4 for a in arrays) + sum(a.size * i8 for a in idx)

    new_cases = {
        "max 2x2 ceil fwd (55)": (lambda: fl.max_pool2d(xo, 2, ceil_mode=True), nb(xo, y_c), True),
        "max 2x2 ceil bwd (55)": (lambda: fl.max_pool2d_backward(y_c, xo, 2, ceil_mode=True), nb(y_c, xo, xo), True),
        "max 3x3/2 ceil fwd (55)": (lambda: fl.max_pool2d(xo, 3, 2, ceil_mode=True), nb(xo, y_3c), True),
        "max 3x3/2 ceil bwd (55)": (lambda: fl.max_pool2d_backward(y_3c, xo, 3, 2, ceil_mode=True),
                                    nb(y_3c, xo, xo), True),
        "max 3x3 d2 p1 fwd": (lambda: fl.max_pool2d(x, 3, 1, 1, 2), nb(x, y_d), True),
        "max 3x3 d2 p1 bwd": (lambda: fl.max_pool2d_backward(y_d, x, 3, 1, 1, 2), nb(y_d, x, x), True),
        "max 3x3/2 ceil bwd(indices)": (lambda: fl.max_pool2d_backward(y_3c, xo, 3, 2, ceil_mode=True, indices=i_3c),
                                        nb(y_3c, xo, idx=(i_3c,)), True),
        "max 3x3 d2 p1 bwd(indices)": (lambda: fl.max_pool2d_backward(y_d, x, 3, 1, 1, 2, indices=i_d),
                                       nb(y_d, x, idx=(i_d,)), True),
        "max 2x2 +indices fwd": (lambda: fl.max_pool2d(x, 2, return_indices=True), nb(x, y_2, idx=(i_2,)), False),
        "max 2x2 bwd(indices)": (lambda: fl.max_pool2d_backward(y_2, x, 2, indices=i_2), nb(y_2, x, idx=(i_2,)),
                                 False),
        "avg 2x2 ceil fwd (55)": (lambda: fl.avg_pool2d(xo, 2, ceil_mode=True), nb(xo, y_c), False),
        "avg 3x3/2p1 ceil div fwd": (lambda: fl.avg_pool2d(xo, 3, 2, 1, True, False, 7), nb(xo, y_c), False),
        "adaptive avg 55->7": (lambda: fl.adaptive_avg_pool2d(xo, 7), nb(xo, y_a), False),
        "adaptive max 55->7": (lambda: fl.adaptive_max_pool2d(xo, 7), nb(xo, y_a), False),
        "adaptive max bwd 55->7": (lambda: fl.adaptive_max_pool2d_backward(y_a, xo, 7, indices=i_a),
                                   nb(y_a, xo, idx=(i_a,)), False),
        "max_unpool 2x2": (lambda: fl.max_unpool2d(y_2, i_2, 2), nb(y_2, x, idx=(i_2,)), False),
    }
    fns = {name: fn for name, (fn, _, _) in new_cases.items()}
    t = interleaved(fns, args.rounds)
    print(f"{'case':26} {'time':>30} {'GB/s':>6} {'%STREAM':>8}")
    for name, (_, nbytes, target) in new_cases.items():
        gbps = nbytes / statistics.median(t[name]) / 1e9
        mark = ("  (target >= 50%: " + ("met" if gbps >= 0.5 * triad else "MISSED") + ")") if target else ""
        print(f"{name:26} {fmt(t[name]):>30} {gbps:6.1f} {100 * gbps / triad:7.0f}%{mark}", flush=True)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


if __name__ == "__main__":
    main()
