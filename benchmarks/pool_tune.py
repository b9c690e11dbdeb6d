"""Quick measurement of the 2x2 stride-2 pool (N=32, C=64, 56x56), forward and backward, max and avg:
fastlayers CPU vs torch CPU in the same run, with a NumPy copy as the bandwidth anchor. Rows
"max3"/"avg3" are the 3x3 stride-2 padding-1 pool on the same input (the general kernels). Torch's
max backward is given its argmax indices (it does not recompute them as ours does).

GB/s counts the float32 bytes each op must move once: forward x + y; max backward grad_out + x +
grad_in; avg backward grad_out + grad_in. The machine is shared: figures use the fastest repetition (least disturbed by the other
processes; medians are quantised by the scheduler tick), and only the ratios mean much.

    python benchmarks/pool_tune.py [--reps 25] [--threads 2]

OMP_WAIT_POLICY defaults to passive here (set it to override): on a loaded 2-core machine a
spinning OpenMP worker holds a core the other worker needs, and a 1 ms pool takes 12-30 ms.
Both libraries' OpenMP runtimes read it at start-up, so it applies to both columns.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402

import fastlayers as fl  # noqa: E402


def bench(fn, reps):
    fn()  # warm up (page faults, thread pool)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    fl.set_num_threads(args.threads)
    n, c, h, w = 32, 64, 56, 56
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    g = rng.standard_normal((n, c, h // 2, w // 2)).astype(np.float32)
    big, small = x.nbytes, g.nbytes

    src = np.ones(64 * 2**20 // 4, np.float32)  # 64 MiB, well past the caches
    dst = np.empty_like(src)
    _, t_copy = bench(lambda: np.copyto(dst, src), args.reps)
    copy_gbps = 2 * src.nbytes / t_copy / 1e9
    # The pool's own working set (x is 25.7 MB) partly fits a 32 MB L3: a copy of that size says
    # what "as fast as memory allows" means for it.
    xcopy = np.empty_like(x)
    _, t_xcopy = bench(lambda: np.copyto(xcopy, x), args.reps)
    print(f"isa={fl._cpu.active_isa()} threads={args.threads} OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"numpy copy, 64 MiB (STREAM-like anchor): {copy_gbps:.1f} GB/s; "
          f"copy of x (25.7 MB): {2 * x.nbytes / t_xcopy / 1e9:.1f} GB/s")

    # The 3x3 stride-2 padding-1 pool of a ResNet stem on the same input: the general kernels.
    g3 = rng.standard_normal((n, c, 28, 28)).astype(np.float32)
    cases = {
        "max fwd": (lambda: fl.max_pool2d(x, 2), big + small),
        "avg fwd": (lambda: fl.avg_pool2d(x, 2), big + small),
        "max bwd": (lambda: fl.max_pool2d_backward(g, x, 2), 2 * big + small),
        "avg bwd": (lambda: fl.avg_pool2d_backward(g, x, 2), big + small),
        "max3 fwd": (lambda: fl.max_pool2d(x, 3, 2, 1), big + small),
        "max3 bwd": (lambda: fl.max_pool2d_backward(g3, x, 3, 2, 1), 2 * big + small),
        "avg3 fwd": (lambda: fl.avg_pool2d(x, 3, 2, 1), big + small),
        "avg3 bwd": (lambda: fl.avg_pool2d_backward(g3, x, 3, 2, 1), big + small),
    }
    torch_cases = {}
    try:
        import torch

        torch.set_num_threads(args.threads)
        tx, tg = torch.from_numpy(x), torch.from_numpy(g)
        _, idx = torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
        tg3 = torch.from_numpy(g3)
        _, idx3 = torch.nn.functional.max_pool2d(tx, 3, 2, 1, return_indices=True)
        aten = torch.ops.aten
        torch_cases = {
            "max fwd": lambda: torch.nn.functional.max_pool2d(tx, 2),
            "avg fwd": lambda: torch.nn.functional.avg_pool2d(tx, 2),
            "max bwd": lambda: aten.max_pool2d_with_indices_backward(tg, tx, [2, 2], [2, 2], [0, 0], [1, 1],
                                                                     False, idx),
            "avg bwd": lambda: aten.avg_pool2d_backward(tg, tx, [2, 2], [2, 2], [0, 0], False, True, None),
            "max3 fwd": lambda: torch.nn.functional.max_pool2d(tx, 3, 2, 1),
            "max3 bwd": lambda: aten.max_pool2d_with_indices_backward(tg3, tx, [3, 3], [2, 2], [1, 1], [1, 1],
                                                                      False, idx3),
            "avg3 fwd": lambda: torch.nn.functional.avg_pool2d(tx, 3, 2, 1),
            "avg3 bwd": lambda: aten.avg_pool2d_backward(tg3, tx, [3, 3], [2, 2], [1, 1], False, True, None),
        }
    except ImportError:
        print("torch not installed: no torch column")

    print(f"{'op':8} {'ours ms':>8} {'GB/s':>6} {'%copy':>6} {'torch ms':>9} {'GB/s':>6} {'speedup':>8}")
    with torch_inference() if torch_cases else _null():
        for name, (fn, nbytes) in cases.items():
            _, t = bench(fn, args.reps)
            gbps = nbytes / t / 1e9
            line = f"{name:8} {t * 1e3:8.2f} {gbps:6.1f} {100 * gbps / copy_gbps:5.0f}%"
            if name in torch_cases:
                _, tt = bench(torch_cases[name], args.reps)
                line += f" {tt * 1e3:9.2f} {nbytes / tt / 1e9:6.1f} {tt / t:7.1f}x"
            print(line)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def torch_inference():
    import torch

    return torch.no_grad()


if __name__ == "__main__":
    main()
