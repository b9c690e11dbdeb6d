"""Small ResNet (build("resnet"), 1x28x28) and a ResNet-18-shaped stage training step: fastlayers
with the direct conv path on and off (FASTLAYERS_CONV_DIRECT, read per call), PyTorch eager and
torch.compile, interleaved rounds in one process; then a cProfile of our step, by op.

    python benchmarks/resnet_step.py [--threads 2] [--rounds 7] [--batch 64] [--no-compile] [--profile]

The stage is two basic blocks without batch norm (64 channels, 56x56, batch 16: conv-ReLU-conv +
identity, ReLU), MSE loss against a fixed target, SGD momentum 0.9. Ratios: anchor / ours (> 1:
ours faster).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics

import numpy as np

import fastlayers as fl
from fastlayers.bench.models import training_step
from fastlayers.bench.timing import interleaved


def fl_resnet_step(batch, rng):
    from fastlayers.nn.models import build

    model = build("resnet", seed=0)
    model.compile(optimizer=fl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    return training_step(model, model.loss, model.optimizer, x, y), model, x, y


def torch_resnet(t, width=16):
    nn = t.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
            self.proj = nn.Conv2d(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None

        def forward(self, x):
            y = self.c2(t.relu(self.c1(x)))
            return y + (self.proj(x) if self.proj is not None else x)

    w = width
    return nn.Sequential(nn.Conv2d(1, w, 3, 1, 1), nn.ReLU(), Block(w, w, 1), nn.ReLU(), Block(w, 2 * w, 2), nn.ReLU(),
                         Block(2 * w, 4 * w, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, 10))


def torch_step(t, model, x, y, loss_fn, compile_):
    opt = t.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def body():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    if compile_:
        body = t.compile(body)
    return body


def fl_stage_step(rng, n=16, c=64, h=56):
    ws = [(rng.standard_normal((c, c, 3, 3)) * 0.04).astype(np.float32) for _ in range(4)]
    bs = [np.zeros(c, np.float32) for _ in range(4)]
    vs = [np.zeros_like(a) for a in ws + bs]
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    tgt = rng.standard_normal((n, c, h, h)).astype(np.float32)

    def step():
        acts, z = [], x
        for blk in range(2):
            w1, b1, w2, b2 = ws[2 * blk], bs[2 * blk], ws[2 * blk + 1], bs[2 * blk + 1]
            c1 = fl.conv2d(z, w1, b1, padding=1)
            r1 = fl.relu(c1)
            c2 = fl.conv2d(r1, w2, b2, padding=1)
            s = fl.add(c2, z)
            out = fl.relu(s)
            acts.append((z, c1, r1, s))
            z = out
        fl.mse_loss(z, tgt)
        g = fl.mse_loss_backward(z, tgt)
        grads = [None] * 8
        for blk in (1, 0):
            zin, c1, r1, s = acts[blk]
            gs = fl.relu_backward(g, s)
            gr1, gw2, gb2 = fl.conv2d_backward(gs, r1, ws[2 * blk + 1], padding=1)
            gc1 = fl.relu_backward(gr1, c1)
            gz, gw1, gb1 = fl.conv2d_backward(gc1, zin, ws[2 * blk], padding=1)
            g = fl.add(gz, gs)
            grads[2 * blk], grads[2 * blk + 1], grads[4 + 2 * blk], grads[5 + 2 * blk] = gw1, gw2, gb1, gb2
        for p, gr, v in zip(ws + bs, grads, vs):
            fl.sgd_update(p, gr, v, lr=0.01, momentum=0.9)
    return step, x, tgt


def torch_stage(t, c=64):
    nn = t.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

        def forward(self, x):
            return t.relu(self.c2(t.relu(self.c1(x))) + x)
    return nn.Sequential(Block(), Block())


def with_env(value, fn):
    def run():
        old = os.environ.get("FASTLAYERS_CONV_DIRECT")
        os.environ["FASTLAYERS_CONV_DIRECT"] = value
        try:
            fn()
        finally:
            if old is None:
                del os.environ["FASTLAYERS_CONV_DIRECT"]
            else:
                os.environ["FASTLAYERS_CONV_DIRECT"] = old
    return run


def report(title, times):
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"## {title}")
    for k, v in times.items():
        r = f"  ratio {med[k] / med['ours']:.2f}" if k != "ours" else ""
        print(f"  {k:14s} {med[k] * 1e3:8.2f} ms ({min(v) * 1e3:.2f}–{max(v) * 1e3:.2f}){r}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--only", default="resnet,stage")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    fl.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads={args.threads} load={os.getloadavg()}")
    if "resnet" in args.only:
        step, model, x, y = fl_resnet_step(args.batch, rng)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        fns = {"ours": step, "ours-nodirect": with_env("0", step),
               "torch": torch_step(torch, torch_resnet(torch), tx, ty, torch.nn.functional.cross_entropy, False)}
        if not args.no_compile:
            fns["torch.compile"] = torch_step(torch, torch_resnet(torch), tx, ty, torch.nn.functional.cross_entropy, True)
        report(f"small ResNet training step, batch {args.batch}", interleaved(fns, args.rounds, args.reps)[0])
        if args.profile:
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(10):
                step()
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(14)
    if "stage" in args.only:
        step, x, tgt = fl_stage_step(rng)
        tx, tt = torch.from_numpy(x), torch.from_numpy(tgt)
        fns = {"ours": step, "ours-nodirect": with_env("0", step),
               "torch": torch_step(torch, torch_stage(torch), tx, tt, torch.nn.functional.mse_loss, False)}
        if not args.no_compile:
            fns["torch.compile"] = torch_step(torch, torch_stage(torch), tx, tt, torch.nn.functional.mse_loss, True)
        report("ResNet-18 stage (2 blocks, 64ch 56x56, batch 16) training step", interleaved(fns, max(3, args.rounds // 2), 1)[0])
        if args.profile:
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(3):
                step()
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
