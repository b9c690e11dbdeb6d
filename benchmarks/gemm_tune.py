"""Quick SGEMM tuning check: fastlayers.gemm vs numpy.matmul (OpenBLAS), interleaved in one run.

    python benchmarks/gemm_tune.py --threads 1 [--kernel]   # and again with --threads 2 (a separate
                                                            # process: OpenBLAS fixes its threads at import)
Prints GFLOP/s (median over --passes passes of each pass's fastest call; numpy and ours alternate
pass by pass) and the ratio ours / numpy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

SHAPES = [  # (M, K, N, trans_a, trans_b, label)
    (256, 256, 256, False, False, "256^3"),
    (512, 512, 512, False, False, "512^3"),
    (1024, 1024, 1024, False, False, "1024^3"),
    (2048, 2048, 2048, False, False, "2048^3"),
    (4096, 4096, 4096, False, False, "4096^3"),
    (100, 784, 200, False, True, "100x784 * (200x784)^T  dense fwd"),
    (784, 100, 200, True, False, "(100x784)^T * 100x200  dense dW^T"),
    (200, 100, 784, True, False, "(100x200)^T * 100x784  dense dW"),
    (100, 200, 784, False, False, "100x200 * 200x784      dense dX"),
    (100, 1024, 200, False, True, "100x1024 * (200x1024)^T"),
    (100, 200, 10, False, True, "100x200 * (10x200)^T   dense 200->10 fwd"),
    (100, 10, 200, False, False, "100x10 * 10x200        200->10 dX"),
    (10, 100, 200, True, False, "(100x10)^T * 100x200   200->10 dW"),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--passes", type=int, default=5)
    p.add_argument("--only", default="", help="substring filter on the label")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: process CPU time / threads, which time-slicing by other jobs on a shared "
                        "machine does not inflate (spin-waiting in barriers still counts)")
    p.add_argument("--stat", choices=["median", "best"], default="median",
                   help="median over passes of each pass's fastest call, or the fastest call of all "
                        "passes (for 2 threads when other jobs load the machine)")
    p.add_argument("--kernel", action="store_true",
                   help="time the raw kernels into a preallocated output (no Python op overhead)")
    args = p.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np

    import fastlayers as fl

    fl.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    if args.clock == "cpu":
        def clock():
            return time.process_time() / args.threads
    else:
        clock = time.perf_counter
    print(f"threads={args.threads} isa={fl._cpu.active_isa()} passes={args.passes} "
          f"mode={'kernel (out=)' if args.kernel else 'op (allocating)'} clock={args.clock} stat={args.stat}")
    print(f"{'shape':40s} {'numpy GF/s':>10s} {'ours GF/s':>10s} {'ratio':>6s}")
    for m, k, n, ta, tb, label in SHAPES:
        if args.only and args.only not in label:
            continue
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        flops = 2.0 * m * n * k
        reps = max(1, min(50, int(2e8 / flops)))
        out = np.empty((m, n), np.float32)

        at, bt = (a.T if ta else a), (b.T if tb else b)
        if args.kernel:  # both write into a preallocated output: the kernels alone
            def theirs():
                np.matmul(at, bt, out=out)

            pa, pb, pc = (x.__array_interface__["data"][0] for x in (a, b, out))

            def ours():
                fl._cpu.sgemm(ta, tb, m, n, k, 1.0, pa, a.shape[1], pb, b.shape[1], 0.0, pc, n)
        else:  # the public calls, both allocating their result
            def theirs():
                np.matmul(at, bt)

            def ours():
                fl.gemm(a, b, trans_a=ta, trans_b=tb)

        runs = {"numpy": [], "ours": []}
        fns = {"numpy": theirs, "ours": ours}
        for f in fns.values():
            f()
        for _ in range(args.passes):
            for name, f in fns.items():  # interleaved: both see the same machine load
                # Let the other library's worker threads stop spinning (OpenBLAS keeps them busy
                # for a while after a call) before timing this one: on 2 cores they would steal one.
                time.sleep(0.2)
                best = float("inf")  # the fastest single call of the pass: on a shared machine,
                for _ in range(3 * reps):  # a call that ran while no other job held our cores
                    t0 = clock()
                    f()
                    best = min(best, clock() - t0)
                runs[name].append(flops / best / 1e9)
        stat = np.median if args.stat == "median" else np.max
        gn, go = float(stat(runs["numpy"])), float(stat(runs["ours"]))
        print(f"{label:40s} {gn:10.1f} {go:10.1f} {go / gn:6.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
