"""The small ResNet's convolutions one call at a time (batch 64, 1x28x28 input), forward and
backward, fastlayers against PyTorch eager in interleaved rounds in one process; with --ab NAME the
fastlayers side also runs with that per-call switch set to 0 (e.g. FASTLAYERS_CONV_HWC,
FASTLAYERS_CONV_WINO16, FASTLAYERS_CONV_PIXELS: conv.cpp reads them per call), to show what a kernel
gives. Medians of the rounds, ms; ratio = PyTorch / ours (> 1: ours faster).

    python benchmarks/resnet_layers.py [--threads 1] [--rounds 15] [--ab FASTLAYERS_CONV_HWC]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import fastlayers as fl

# (C, H, K, R, stride, pad): the first conv, the 3x3 layers of the three stages, the stride-2 layers
# and their 1x1 projections.
LAYERS = [(1, 28, 16, 3, 1, 1), (16, 28, 16, 3, 1, 1), (16, 28, 32, 3, 2, 1), (16, 28, 32, 1, 2, 0),
          (32, 14, 32, 3, 1, 1), (32, 14, 64, 3, 2, 1), (32, 14, 64, 1, 2, 0), (64, 7, 64, 3, 1, 1)]


def main(argv=None):
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ab", default=None, help="a per-call switch to also run at 0")
    args = ap.parse_args(argv)
    fl.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, {args.threads} thread(s), ISA {fl._cpu.active_isa()}, medians of {args.rounds} rounds (ms)")
    for C, H, K, R, st, pad in LAYERS:
        x = rng.standard_normal((args.batch, C, H, H), dtype=np.float32)
        w = (rng.standard_normal((K, C, R, R)) * 0.1).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        g = rng.standard_normal(fl.conv2d(x, w, b, stride=st, padding=pad).shape).astype(np.float32)
        xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, g))
        xr, wr = xt.clone().requires_grad_(), wt.clone().requires_grad_()

        def torch_bwd():
            xr.grad = wr.grad = None
            torch.nn.functional.conv2d(xr, wr, bt, st, pad).backward(gt)

        cases = {
            "fl fwd": lambda: fl.conv2d(x, w, b, stride=st, padding=pad),
            "torch fwd": lambda: torch.nn.functional.conv2d(xt, wt, bt, st, pad),
            "fl bwd": lambda: fl.conv2d_backward(g, x, w, stride=st, padding=pad),
            "torch bwd": torch_bwd,
        }
        if args.ab:
            def off(f):
                def run():
                    os.environ[args.ab] = "0"
                    try:
                        f()
                    finally:
                        del os.environ[args.ab]
                return run
            cases["fl fwd, switch 0"] = off(cases["fl fwd"])
        times = {k: [] for k in cases}
        for f in cases.values():  # warm-up
            f()
        for i in range(args.rounds):  # every other round in reverse: no case always follows the same one
            for k, f in (list(cases.items()) if i % 2 == 0 else list(cases.items())[::-1]):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        med = {k: np.median(v) * 1e3 for k, v in times.items()}
        extra = f", with {args.ab}=0 {med['fl fwd, switch 0']:.3f}" if args.ab else ""
        print(f"  {C:>2}->{K:<2} {R}x{R} stride {st} on {H}x{H}: fwd {med['fl fwd']:.3f} vs {med['torch fwd']:.3f} "
              f"({med['torch fwd'] / med['fl fwd']:.2f}x){extra}; bwd {med['fl bwd']:.3f} vs {med['torch bwd']:.3f} "
              f"({med['torch bwd'] / med['fl bwd']:.2f}x)")


if __name__ == "__main__":
    main()
