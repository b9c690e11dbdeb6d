"""A/B of an inference-plan build switch, step by step, in one process: two plans of the same model
and input shape, one built with the switch set to the given value, one without it, run in
interleaved rounds (this VM's speed moves by 1.5x between minutes, so separate runs compare minutes,
not code). Prints each step's median ms under both, and the whole run.

    python benchmarks/plan_ab.py FASTLAYERS_PLAN_PIXCONV=0 --models resnet,lenet5,cnn --batch 64 --threads 1

The switches are read when a plan is built (docs/ops.md lists them): FASTLAYERS_PLAN_WINO16,
FASTLAYERS_PLAN_PIXCONV, FASTLAYERS_PLAN_HWC.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import fastlayers as fl
from fastlayers import nn
from fastlayers.nn import plan as P


def build(name, shape, env, value):
    old = os.environ.get(env)
    if value is None:
        os.environ.pop(env, None)
    else:
        os.environ[env] = value
    try:
        model = nn.models.build(name, seed=0).eval()
        plan = P.get(model, shape)
    finally:
        if old is None:
            os.environ.pop(env, None)
        else:
            os.environ[env] = old
    return plan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("switch", help="NAME=VALUE for plan A; plan B is built without NAME")
    ap.add_argument("--models", default="cnn,lenet5,resnet")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args(argv)
    env, value = args.switch.split("=", 1)
    fl.set_num_threads(args.threads)
    for name in args.models.split(","):
        shape = (args.batch, 1, 28, 28)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        plans = {"A": build(name, shape, env, value), "B": build(name, shape, env, None)}
        ys = {k: np.empty(p.output_shape, np.float32) for k, p in plans.items()}
        times = {k: [] for k in plans}
        for k, p in plans.items():
            for _ in range(3):
                p.run(x, ys[k])
        for _ in range(args.rounds):
            for k, p in plans.items():
                times[k].append(p.run_profiled(x, ys[k]))
        med = {k: np.median(np.array(v), axis=0) for k, v in times.items()}
        whole = {k: np.median(np.array(v).sum(axis=1)) for k, v in times.items()}
        err = float(np.max(np.abs(ys["A"] - ys["B"])))
        print(f"\n{name}, batch {args.batch}, {args.threads} thread(s); A: {env}={value}, B: without it; "
              f"whole run A {whole['A'] * 1e3:.3f} ms, B {whole['B'] * 1e3:.3f} ms (A/B {whole['A'] / whole['B']:.2f}); "
              f"max |yA - yB| {err:.2e}")
        algos = {k: p._c.conv_algorithms for k, p in plans.items()}
        for i, step in enumerate(plans["B"].steps):
            tag = "" if algos["A"][i] == algos["B"][i] else f"  ({algos['A'][i]} -> {algos['B'][i]})"
            print(f"  {step:<28} A {med['A'][i] * 1e3:8.3f}  B {med['B'][i] * 1e3:8.3f} ms{tag}")


if __name__ == "__main__":
    main()
