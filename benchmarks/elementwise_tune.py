"""Elementwise / softmax / loss CPU kernels against NumPy, PyTorch CPU and a STREAM-like anchor.

    python benchmarks/elementwise_tune.py [--repeats 15] [--threads 1 2] [--quick]

Everything is measured in the same run (the machine is shared and noisy: compare ratios, not
absolute figures). For each case it prints the median time and the effective bandwidth counting
float32 bytes read + written once (labels as int64), for
  ours     the public op (allocates its output, like the NumPy and torch calls),
  kernel   our C++ kernel on a preallocated output (no allocation, no argument checks),
  numpy    the obvious NumPy expression (single-threaded),
  torch    the PyTorch CPU op,
and the ratios ours/numpy, ours/torch and kernel / STREAM-anchor. At one thread it also prints
"krn cpu": bytes / the kernel's minimum thread CPU time, which load on the shared machine barely
moves (it tells whether the kernel is compute- or memory-bound on an idle core).
STREAM anchor: triad a = b + s*c on 2**24 float64 (64 MiB each), counted as 24 bytes per element;
NumPy (one thread, two passes, so pessimistic) and torch.add(b, c, alpha=s, out=a) (one pass,
uses the thread count under test).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import fastlayers as fl
from fastlayers import _cpu

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is optional: its columns print as "-"
    torch = None


STAT = statistics.median  # --stat min: the best pass, for a machine too loaded for medians


def median_time(fn, repeats):
    fn()  # warm-up (page faults, lazy init)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return STAT(ts)


def cpu_time(fn, repeats):
    """Minimum CPU time of the calling thread: what the kernel costs when it is not descheduled
    (only meaningful at one thread, where the kernel runs on the calling thread)."""
    fn()
    return min(_thread_cpu(fn) for _ in range(repeats))


def _thread_cpu(fn):
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def ptr(a):
    return a.ctypes.data


def softmax_ce_numpy(z, y):
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return float(np.mean(lse - z[np.arange(z.shape[0]), y]))


def softmax_ce_backward_numpy(z, y):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    g = e / e.sum(axis=1, keepdims=True)
    g[np.arange(z.shape[0]), y] -= 1.0
    g /= z.shape[0]
    return g


def build_cases(n, quick):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    t01 = rng.random(n).astype(np.float32)
    y = np.empty_like(x)
    xt = torch.from_numpy(x) if torch else None
    bt = torch.from_numpy(b) if torch else None
    tt = torch.from_numpy(t01) if torch else None
    cases = []

    def add(name, nbytes, ours, kernel, npy, tch):
        cases.append((name, nbytes, ours, kernel, npy, tch))

    add("relu", 8 * n, lambda: fl.relu(x), lambda: _cpu.relu_forward(ptr(x), ptr(y), n),
        lambda: np.maximum(x, 0), (lambda: torch.relu(xt)) if torch else None)
    add("sigmoid", 8 * n, lambda: fl.sigmoid(x), lambda: _cpu.sigmoid_forward(ptr(x), ptr(y), n),
        lambda: 1.0 / (1.0 + np.exp(-x)), (lambda: torch.sigmoid(xt)) if torch else None)
    add("tanh", 8 * n, lambda: fl.tanh(x), lambda: _cpu.tanh_forward(ptr(x), ptr(y), n),
        lambda: np.tanh(x), (lambda: torch.tanh(xt)) if torch else None)
    if not quick:
        add("add", 12 * n, lambda: fl.add(x, b), lambda: _cpu.add_forward(ptr(x), ptr(b), ptr(y), n),
            lambda: x + b, (lambda: torch.add(xt, bt)) if torch else None)
        loss = np.empty(1, np.float32)
        add("bce_logits fwd", 8 * n, lambda: fl.binary_cross_entropy_with_logits(x, t01),
            lambda: _cpu.bce_with_logits_forward(ptr(x), ptr(t01), 0, 0, ptr(loss), n, 2, 0),  # 2: mean
            lambda: np.mean(np.maximum(x, 0) - x * t01 + np.log1p(np.exp(-np.abs(x)))),
            (lambda: F.binary_cross_entropy_with_logits(xt, tt)) if torch else None)
        add("bce_logits bwd", 12 * n, lambda: fl.binary_cross_entropy_with_logits_backward(x, t01),
            lambda: _cpu.bce_with_logits_backward(ptr(x), ptr(t01), 0, 0, 0, ptr(y), n, 2),
            lambda: (1.0 / (1.0 + np.exp(-x)) - t01) / n, None)

    for rows, cols in [(4096, 1000), (100, 10)]:
        z = (rng.standard_normal((rows, cols)) * 2).astype(np.float32)
        lab = rng.integers(0, cols, rows).astype(np.int64)
        g = np.empty_like(z)
        l1 = np.empty(1, np.float32)
        zt = torch.from_numpy(z) if torch else None
        lt = torch.from_numpy(lab) if torch else None
        zb = 4 * rows * cols
        add(f"softmax {rows}x{cols}", 2 * zb, lambda z=z: fl.softmax(z),
            lambda z=z, g=g, r=rows, c=cols: _cpu.softmax_forward(ptr(z), ptr(g), r, c, 1),
            lambda z=z: (lambda e: e / e.sum(axis=1, keepdims=True))(np.exp(z - z.max(axis=1, keepdims=True))),
            (lambda zt=zt: torch.softmax(zt, dim=1)) if torch else None)
        add(f"softmax CE fwd {rows}x{cols}", zb + 8 * rows, lambda z=z, lab=lab: fl.softmax_cross_entropy(z, lab),
            lambda z=z, lab=lab, l1=l1, r=rows, c=cols: _cpu.softmax_cross_entropy_forward(
                ptr(z), ptr(lab), 0, ptr(l1), r, c, 1, -100, 0.0, 2, 0, 0),
            lambda z=z, lab=lab: softmax_ce_numpy(z, lab),
            (lambda zt=zt, lt=lt: F.cross_entropy(zt, lt)) if torch else None)
        add(f"softmax CE bwd {rows}x{cols}", 2 * zb + 8 * rows,
            lambda z=z, lab=lab: fl.softmax_cross_entropy_backward(z, lab),
            lambda z=z, lab=lab, g=g, r=rows, c=cols: _cpu.softmax_cross_entropy_backward(
                ptr(z), ptr(lab), 0, 0, ptr(g), r, c, 1, -100, 0.0, 2, 0, 0),
            lambda z=z, lab=lab: softmax_ce_backward_numpy(z, lab), None)
    return cases


def stream_anchor(repeats):
    m = 1 << 24
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(m) for _ in range(3))
    s = 3.0

    def triad_np():
        np.multiply(c, s, out=a)
        np.add(a, b, out=a)

    res = {"numpy": 24 * m / median_time(triad_np, repeats) / 1e9}
    if torch:
        at, bt, ct = (torch.from_numpy(v) for v in (a, b, c))
        res["torch"] = 24 * m / median_time(lambda: torch.add(bt, ct, alpha=s, out=at), repeats) / 1e9
    return res


def fmt(v, w=8, p=1):
    return "-".rjust(w) if v is None else f"{v:{w}.{p}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n", type=int, default=32 * 64 * 56 * 56)
    ap.add_argument("--quick", action="store_true", help="relu/sigmoid/tanh and the softmax cases only")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic over the repeats (min: best pass; use when the machine is loaded)")
    args = ap.parse_args()
    global STAT
    STAT = min if args.stat == "min" else statistics.median

    print(f"load (uptime): {os.getloadavg()}  isa: {_cpu.active_isa()}  N={args.n}  repeats={args.repeats}"
          f"  stat {args.stat}  torch {torch.__version__ if torch else 'absent'}  numpy {np.__version__}")
    cases = build_cases(args.n, args.quick)
    for nt in args.threads:
        fl.set_num_threads(nt)
        if torch:
            torch.set_num_threads(nt)
        anchor = stream_anchor(max(5, args.repeats // 2))
        best_anchor = max(anchor.values())
        print(f"\n== {nt} thread(s): STREAM triad anchor GB/s: "
              + ", ".join(f"{k} {v:.1f}" for k, v in anchor.items()))
        print(f"{'case':28s} {'ours ms':>8s} {'ours':>7s} {'kernel':>7s} {'numpy':>7s} {'torch':>7s}"
              f"   (GB/s)  {'/numpy':>7s} {'/torch':>7s} {'krn/STREAM':>10s} {'krn cpu':>8s}")
        for name, nbytes, ours, kernel, npy, tch in cases:
            t_ours = median_time(ours, args.repeats)
            t_k = median_time(kernel, args.repeats)
            t_np = median_time(npy, args.repeats)
            t_t = median_time(tch, args.repeats) if tch else None
            t_cpu = cpu_time(kernel, args.repeats) if nt == 1 else None
            gb = lambda t: None if t is None else nbytes / t / 1e9  # noqa: E731
            print(f"{name:28s} {t_ours * 1e3:8.3f} {fmt(gb(t_ours), 7)} {fmt(gb(t_k), 7)} {fmt(gb(t_np), 7)} "
                  f"{fmt(gb(t_t), 7)}           {fmt(t_np / t_ours, 7, 2)} "
                  f"{fmt(None if t_t is None else t_t / t_ours, 7, 2)} {fmt(gb(t_k) / best_anchor, 10, 2)} "
                  f"{fmt(gb(t_cpu), 8)}")
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
