"""Per-step profile of the inference plan (nn/plan.py): where a model's eval pass spends its time.

    python benchmarks/plan_profile.py                  # cnn, lenet5, resnet at batch 1 and 64, 1 and 2 threads
    python benchmarks/plan_profile.py --models resnet --batches 1 --threads 1 --reps 50
    python benchmarks/plan_profile.py --models zoo:resnet18 --batches 1 --threads 2 --reps 10   # 3x224x224

For each (model, batch, threads): the plan's steps (what was fused), its arena / workspace bytes, and
the median seconds of every step over --reps runs (Plan.run_profiled: the same C++ walk as run, with
a clock read around each step), plus the median of a whole model(x) call for the Python overhead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastlayers as fl
from fastlayers import nn
from fastlayers.nn import plan as P


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="cnn,lenet5,resnet")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    for threads in [int(t) for t in args.threads.split(",")]:
        fl.set_num_threads(threads)
        for name in args.models.split(","):
            if name.startswith("zoo:"):  # a torchvision-shaped model on 3x224x224 images
                model, image = getattr(nn.zoo, name[4:])(seed=0).eval(), (3, 224, 224)
            else:
                model, image = nn.models.build(name, seed=0).eval(), (1, 28, 28)
            for batch in [int(b) for b in args.batches.split(",")]:
                x = np.random.default_rng(0).standard_normal((batch, *image)).astype(np.float32)
                plan = P.get(model, x.shape)
                if plan is None:
                    print(f"{name} batch {batch}: {P.explain(model, x.shape)}")
                    continue
                y = np.empty(plan.output_shape, np.float32)
                for _ in range(3):
                    plan.run(x, y)
                steps = np.median([plan.run_profiled(x, y) for _ in range(args.reps)], axis=0)
                calls = []
                for _ in range(args.reps):
                    t0 = time.perf_counter()
                    model(x)
                    calls.append(time.perf_counter() - t0)
                how = "1 thread" if plan.threads == 1 else "all"
                if plan.chunk < batch:
                    how += f", chunks of {plan.chunk}" + (" per thread: step seconds summed over the threads"
                                                         if plan.per_thread else "")
                print(f"\n{name}, batch {batch}, fl threads {threads} (plan runs on {how}): model(x) "
                      f"{np.median(calls) * 1e3:.3f} ms, "
                      f"steps sum {steps.sum() * 1e3:.3f} ms; arena {plan.arena_bytes / 1024:.0f} KiB, "
                      f"workspace {plan.workspace_bytes / 1024:.0f} KiB, weights {plan.weight_bytes / 1024:.0f} KiB")
                for s, t in zip(plan.steps, steps):
                    print(f"  {s:<28} {t * 1e3:8.3f} ms  {100 * t / steps.sum():5.1f}%")


if __name__ == "__main__":
    main()
