"""Quick conv2d timing against PyTorch CPU on the anchor layers (a)-(f) of ANCHORS.md.

    python benchmarks/conv_tune.py [--layers abcdef] [--reps 5] [--threads 2]

Times each pass of fastlayers' CPU kernels (forward, backward-data, backward-weight + bias) and the
same passes of torch (aten.convolution_backward with the matching output mask) in the same run,
interleaved, and prints medians and ratios (torch time / ours, > 1 means ours is faster). The
machine is shared: read ratios, not absolute times. A tuning aid, not the benchmark suite.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

import fastlayers as fl
from fastlayers._backend import CPU
from fastlayers.bench.timing import interleaved
from fastlayers.ops import conv as conv_ops

# name: (N, C, H, W, K, R, S, stride, padding)
LAYERS = {
    "a": (100, 1, 28, 28, 32, 5, 5, 1, 0),
    "b": (100, 32, 12, 12, 64, 5, 5, 1, 0),
    "c": (32, 64, 56, 56, 64, 3, 3, 1, 1),
    "d": (16, 128, 28, 28, 128, 3, 3, 1, 1),
    "e": (8, 3, 224, 224, 64, 11, 11, 4, 2),
    "f": (32, 256, 28, 28, 64, 1, 1, 1, 0),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="abcdef")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    fl.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads={args.threads} torch={torch.__version__} isa={fl._cpu.active_isa()}")
    print(f"{'layer':5} {'pass':6} {'ours ms':>9} {'torch ms':>9} {'ratio':>6} {'ours GF/s':>9}")
    for name in args.layers:
        N, C, H, W, K, R, S, stride, pad = LAYERS[name]
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal((K, C, R, S)).astype(np.float32) * 0.1
        b = rng.standard_normal(K).astype(np.float32)
        shape = conv_ops._geometry(x, w, stride, pad, 1, 1)
        P, Q = shape[7], shape[8]
        g = rng.standard_normal((N, K, P, Q)).astype(np.float32)
        y, gx, gw, gb = (np.empty(s, np.float32) for s in ((N, K, P, Q), x.shape, w.shape, (K,)))
        flops = 2.0 * N * K * C * R * S * P * Q

        def ours(pass_):
            ws, n = conv_ops._workspace(CPU, pass_, shape)
            if pass_ == 0:
                return lambda: CPU.run("conv2d_forward", x, w, b, y, ws, n, shape)
            if pass_ == 1:
                return lambda: CPU.run("conv2d_backward_data", g, w, gx, ws, n, shape)
            return lambda: CPU.run("conv2d_backward_weight", g, x, gw, gb, ws, n, shape)

        tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
        conv_bwd = torch.ops.aten.convolution_backward
        common = ([K], [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1)
        theirs = [
            lambda: torch.nn.functional.conv2d(tx, tw, tb, stride, pad),
            lambda: conv_bwd(tg, tx, tw, *common, [True, False, False]),
            lambda: conv_bwd(tg, tx, tw, *common, [False, True, True]),
        ]
        with torch.no_grad():
            for pass_, label in enumerate(("fwd", "bwd-d", "bwd-w")):
                times, _ = interleaved({"ours": ours(pass_), "theirs": theirs[pass_]}, max(2, args.reps), reps=1,
                                       warmup=1)
                mine_t, theirs_t = times["ours"], times["theirs"]
                m, t = statistics.median(mine_t), statistics.median(theirs_t)
                print(f"{name:5} {label:6} {m * 1e3:9.2f} {t * 1e3:9.2f} {t / m:6.2f} {flops / m / 1e9:9.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
