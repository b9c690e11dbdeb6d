"""The course MNIST CNN: one training step (batch 100) and batch-1 inference, fastlayers vs PyTorch CPU.

    python benchmarks/cnn_step.py [--threads 1,2] [--steps 30] [--profile]

1x28x28 -> conv 32@5x5 -> max-pool 2 -> ReLU -> conv 64@5x5 -> max-pool 2 -> ReLU -> dense 1024->200
-> ReLU -> dense 200->10 -> softmax cross-entropy -> SGD momentum 0.9, written with the fastlayers op
API and, from the same initial weights, with torch.nn.functional + autograd + torch.optim.SGD.

Sanity first: both take one step on the same batch and must give the same loss (and the same
updated weights, to float32 accuracy). Then each case is timed interleaved (ours, torch, ours,
...) and the medians reported, with the median of the per-round ratios ("paired"), for each
thread count. --profile also times each op call of our
step (median per op over the steps) and prints its share.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np

import fastlayers as fl

LR, MOMENTUM = 0.01, 0.9


def init_params(seed=0):
    rng = np.random.default_rng(seed)

    def u(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    return {
        "w1": u((32, 1, 5, 5), 25), "b1": u((32,), 25),
        "w2": u((64, 32, 5, 5), 800), "b2": u((64,), 800),
        "w3": u((200, 1024), 1024), "b3": u((200,), 1024),
        "w4": u((10, 200), 200), "b4": u((10,), 200),
    }


class _NoTimer:
    def __call__(self, name):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _OpTimer:
    """Accumulates the wall time of each named op call of one step."""

    def __init__(self):
        self.times = defaultdict(list)
        self._name = None

    def __call__(self, name):
        self._name = name
        return self

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.times[self._name].append(time.perf_counter() - self._t0)
        return False


def ours_forward(p, x, t=_NoTimer()):
    with t("conv1 fwd"):
        c1 = fl.conv2d(x, p["w1"], p["b1"])
    with t("pool1 fwd"):
        m1 = fl.max_pool2d(c1, 2)
    with t("relu1 fwd"):
        a1 = fl.relu(m1)
    with t("conv2 fwd"):
        c2 = fl.conv2d(a1, p["w2"], p["b2"])
    with t("pool2 fwd"):
        m2 = fl.max_pool2d(c2, 2)
    with t("relu2 fwd"):
        a2 = fl.relu(m2)
    f = a2.reshape(a2.shape[0], -1)
    with t("dense1 fwd"):
        h = fl.linear(f, p["w3"], p["b3"])
    with t("relu3 fwd"):
        a3 = fl.relu(h)
    with t("dense2 fwd"):
        z = fl.linear(a3, p["w4"], p["b4"])
    return z, (c1, m1, a1, c2, m2, a2, f, h, a3)


def ours_step(p, vel, x, y, t=_NoTimer()):
    z, (c1, m1, a1, c2, m2, a2, f, h, a3) = ours_forward(p, x, t)
    with t("loss fwd"):
        loss = fl.softmax_cross_entropy(z, y)
    with t("loss bwd"):
        gz = fl.softmax_cross_entropy_backward(z, y)
    g = {}
    with t("dense2 bwd"):
        ga3, g["w4"], g["b4"] = fl.linear_backward(gz, a3, p["w4"])
    with t("relu3 bwd"):
        gh = fl.relu_backward(ga3, h)
    with t("dense1 bwd"):
        gf, g["w3"], g["b3"] = fl.linear_backward(gh, f, p["w3"])
    ga2 = gf.reshape(a2.shape)
    with t("relu2 bwd"):
        gm2 = fl.relu_backward(ga2, m2)
    with t("pool2 bwd"):
        gc2 = fl.max_pool2d_backward(gm2, c2, 2)
    with t("conv2 bwd"):
        ga1, g["w2"], g["b2"] = fl.conv2d_backward(gc2, a1, p["w2"])
    with t("relu1 bwd"):
        gm1 = fl.relu_backward(ga1, m1)
    with t("pool1 bwd"):
        gc1 = fl.max_pool2d_backward(gm1, c1, 2)
    with t("conv1 bwd"):
        _, g["w1"], g["b1"] = conv1_backward(gc1, x, p["w1"])
    with t("sgd"):
        for k in p:
            fl.sgd_update(p[k], g[k], vel[k], lr=LR, momentum=MOMENTUM)
    return loss


def conv1_backward(gc1, x, w1):
    """The input layer's conv backward: its grad_x is never used, so skip it when the op allows."""
    try:
        return fl.conv2d_backward(gc1, x, w1, need_grad_x=False)
    except TypeError:  # an older fastlayers without need_grad_x
        return fl.conv2d_backward(gc1, x, w1)


def torch_model(params):
    import torch

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    F = torch.nn.functional

    def forward(x):
        a = F.relu(F.max_pool2d(F.conv2d(x, tp["w1"], tp["b1"]), 2))
        a = F.relu(F.max_pool2d(F.conv2d(a, tp["w2"], tp["b2"]), 2))
        a = F.relu(F.linear(a.reshape(a.shape[0], -1), tp["w3"], tp["b3"]))
        return F.linear(a, tp["w4"], tp["b4"])

    opt = torch.optim.SGD(list(tp.values()), lr=LR, momentum=MOMENTUM)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()
        return loss

    return tp, forward, step


def _interleaved(fns, reps, warmup=5):
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    # Also the median of the per-pair ratios (torch / ours of the same round): steadier than the
    # ratio of medians when other work comes and goes on the machine.
    pair = statistics.median(t / o for o, t in zip(times[0], times[1]))
    return [statistics.median(t) for t in times] + [pair]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    import torch

    rng = np.random.default_rng(1)
    x = rng.standard_normal((100, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 100).astype(np.int64)
    x1 = x[:1].copy()
    xt, yt, xt1 = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x1)

    # Sanity: one step from the same weights gives the same loss and the same updated weights.
    params = init_params()
    ours = {k: v.copy() for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in params.items()}
    tp, tforward, tstep = torch_model(params)
    l_ours, l_torch = float(ours_step(ours, vel, x, y)), float(tstep(xt, yt))
    w_err = max(float(np.max(np.abs(ours[k] - tp[k].detach().numpy()))) for k in ours)
    print(f"sanity: loss ours {l_ours:.6f} torch {l_torch:.6f}  max |w_ours - w_torch| after one step {w_err:.2e}")
    assert abs(l_ours - l_torch) <= 1e-4 * max(1.0, abs(l_torch)), "losses differ"
    assert w_err <= 1e-4, "updated weights differ"

    print(f"torch {torch.__version__}, isa {fl._cpu.active_isa()}, median of {args.steps} interleaved runs")
    print(f"{'case':26} {'threads':>7} {'ours ms':>9} {'torch ms':>9} {'torch/ours':>10} {'paired':>7}")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        fl.set_num_threads(threads)
        with torch.no_grad():
            t_inf1 = lambda: tforward(xt1)  # noqa: E731
            t_inf100 = lambda: tforward(xt)  # noqa: E731
            cases = [
                ("training step, batch 100", lambda: ours_step(ours, vel, x, y), lambda: tstep(xt, yt)),
                ("inference, batch 1", lambda: ours_forward(ours, x1), t_inf1),
                ("inference, batch 100", lambda: ours_forward(ours, x), t_inf100),
            ]
            for name, fo, ft in cases:
                if name.startswith("training"):
                    torch.set_grad_enabled(True)
                reps = args.steps if name != "inference, batch 1" else 10 * args.steps
                to, tt, pair = _interleaved([fo, ft], reps)
                torch.set_grad_enabled(False)
                print(f"{name:26} {threads:7d} {to * 1e3:9.3f} {tt * 1e3:9.3f} {tt / to:10.2f} {pair:7.2f}")
        if args.profile:
            timer = _OpTimer()
            for _ in range(5):
                ours_step(ours, vel, x, y)
            for _ in range(args.steps):
                ours_step(ours, vel, x, y, timer)
            med = {k: statistics.median(v) for k, v in timer.times.items()}
            total = sum(med.values())
            print(f"  per-op profile of our step, {threads} thread(s) (median ms per step; sum {total * 1e3:.2f} ms)")
            for k, v in sorted(med.items(), key=lambda kv: -kv[1]):
                print(f"    {k:12} {v * 1e3:7.3f} {100 * v / total:5.1f}%")


if __name__ == "__main__":
    main()
