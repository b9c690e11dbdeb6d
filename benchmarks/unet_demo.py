"""The U-Net segmentation demo's target (issue 14: mean IoU >= 0.9 on held-out images in under
3 minutes on a 2-core machine, the whole `fastlayers train --model unet` command), and where its
training step spends its time.

    python benchmarks/unet_demo.py [--seeds 0,1,2] [--step-rounds 7] [--threads 1] [--out benchmarks/results]

1. The whole command, once per seed (`python -m fastlayers.cli train --model unet --seed S`, the
   CLI's defaults otherwise): wall time of the process (data generation, training, evaluation,
   interpreter start) and its last line `test_miou=<f>`; each checked against the target.
2. One training step of the demo's U-Net (depth 3, width 16, batch norm, batch 16, 32x32, Adam) on
   --threads threads, fastlayers vs the same architecture in PyTorch eager (interleaved rounds,
   medians, ratio = PyTorch / ours), and a cProfile of our step grouped by kernel: the share of the
   step each C++ kernel takes, the rest being Python (layers, graph walk, argument checks).

Results in the format of benchmarks/README.md (unet-demo-<threads>t.json / .md). The machine is
shared: wall times are upper bounds of what a quiet machine gives; the notes hold the load average.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_MIOU, TARGET_S = 0.9, 180.0


def run_demo(seed: int, env: dict) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fastlayers.cli", "train", "--model", "unet", "--seed", str(seed)],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"the demo failed (seed {seed}):\n{r.stderr}")
    lines = r.stdout.strip().splitlines()
    m = re.fullmatch(r"test_miou=([0-9.]+)", lines[-1])
    if not m:
        raise SystemExit(f"unexpected last line {lines[-1]!r}")
    per_class = next((ln for ln in lines if ln.startswith("per-class IoU")), "")
    return wall, float(m.group(1)), per_class


def torch_unet(depth=3, width=16, k=4, cin=1):
    import torch
    import torch.nn as tnn

    def double(ci, co):
        return tnn.Sequential(tnn.Conv2d(ci, co, 3, 1, 1, bias=False), tnn.BatchNorm2d(co), tnn.ReLU(),
                              tnn.Conv2d(co, co, 3, 1, 1, bias=False), tnn.BatchNorm2d(co), tnn.ReLU())

    class UNet(tnn.Module):  # the layers of fastlayers.nn.zoo.unet(batch_norm=True), in order
        def __init__(self):
            super().__init__()
            self.down, c = tnn.ModuleList(), cin
            for lvl in range(depth):
                self.down.append(double(c, width * 2 ** lvl))
                c = width * 2 ** lvl
            self.bottleneck = double(c, width * 2 ** depth)
            c = width * 2 ** depth
            self.upconv, self.up = tnn.ModuleList(), tnn.ModuleList()
            for lvl in range(depth - 1, -1, -1):
                w = width * 2 ** lvl
                self.upconv.append(tnn.ConvTranspose2d(c, w, 2, 2))
                self.up.append(double(2 * w, w))
                c = w
            self.head = tnn.Conv2d(c, k, 1)

        def forward(self, x):
            skips = []
            for d in self.down:
                x = d(x)
                skips.append(x)
                x = torch.nn.functional.max_pool2d(x, 2)
            x = self.bottleneck(x)
            for u, d in zip(self.upconv, self.up):
                x = d(torch.cat([skips.pop(), u(x)], 1))
            return self.head(x)

    return UNet()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="one whole demo run per seed ('' for none)")
    ap.add_argument("--step-rounds", type=int, default=7, help="rounds of the step comparison (0: skip it)")
    ap.add_argument("--threads", type=int, default=1, help="threads of the step comparison (the demo runs "
                                                            "as the CLI chooses: 1 unless OMP_NUM_THREADS)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default=None)
    args = ap.parse_args(argv)

    import fastlayers as fl
    from fastlayers import nn, optim
    from fastlayers.bench import records as R
    from fastlayers.bench.models import training_step
    from fastlayers.bench.timing import interleaved
    from fastlayers.data.synthetic import shapes_segmentation

    recs = []
    notes = [f"machine shared with other jobs (load average at start: {os.getloadavg()[0]:.1f})"]
    env = dict(os.environ)
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        load = os.getloadavg()[0]
        wall, miou, per_class = run_demo(seed, env)
        ok = miou >= TARGET_MIOU and wall < TARGET_S
        print(f"fastlayers train --model unet --seed {seed}: {wall:.1f} s wall, test_miou={miou:.4f} "
              f"({'meets' if ok else 'MISSES'} the target; load {load:.1f}); {per_class}", flush=True)
        recs.append(R.make_record("unet_demo", f"seed={seed}", "cpu", [wall],
                                  params={"seed": seed, "test_miou": miou, "meets_target": ok},
                                  note=f"test_miou={miou:.4f}; load average {load:.1f} at start"))
        notes.append(f"seed {seed}: test_miou={miou:.4f}, {wall:.1f} s wall (target: >= {TARGET_MIOU} in "
                     f"< {TARGET_S:.0f} s); {per_class}")

    if args.step_rounds > 0:
        import torch

        torch.set_num_threads(args.threads)
        fl.set_num_threads(args.threads)
        x, y = shapes_segmentation(16, size=32, max_shapes=2, seed=0)
        model = nn.zoo.unet(num_classes=4, in_channels=1, input_size=(32, 32), depth=3, width=16,
                            batch_norm=True, seed=0)
        opt = optim.Adam(model.parameters(), lr=1e-4)
        loss_fn = nn.losses.get_loss("cross_entropy")
        tmodel = torch_unet().train()
        topt = torch.optim.Adam(tmodel.parameters(), lr=1e-4)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        ours = training_step(model, loss_fn, opt, x, y)

        def theirs():
            topt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(tmodel(xt), yt).backward()
            topt.step()

        times, _ = interleaved({"ours": ours, "theirs": theirs}, args.step_rounds, reps=5, warmup=3)
        ta, tb = times["ours"], times["theirs"]  # interleaved A/B, 5 steps per sample
        case = "N=16 32x32 depth=3 width=16 bn"
        params = {"batch": 16, "size": 32, "depth": 3, "width": 16}
        recs.append(R.make_record("unet_train_step", case, "cpu", ta, params=params, threads=args.threads))
        recs.append(R.make_record("unet_train_step", case, "torch-cpu", tb, params=params, threads=args.threads))
        print(f"training step: fastlayers {np.median(ta) * 1e3:.1f} ms, PyTorch {np.median(tb) * 1e3:.1f} ms "
              f"(medians of {args.step_rounds})", flush=True)

        prof = cProfile.Profile()
        prof.enable()
        for _ in range(10):
            ours()
        prof.disable()
        st = pstats.Stats(prof)
        total = sum(v[2] for v in st.stats.values())  # tottime over every function = the profiled time
        kernels = {}
        for (fname, _, func), v in st.stats.items():
            if fname == "~" and "fastlayers._cpu." in func:
                name = func.split("fastlayers._cpu.")[1].rstrip(">").strip("}")
                kernels[name] = kernels.get(name, 0.0) + v[2]
        shares = sorted(kernels.items(), key=lambda kv: -kv[1])
        in_kernels = sum(kernels.values())
        text = ", ".join(f"{k} {v / total:.0%}" for k, v in shares if v / total >= 0.01)
        line = (f"profile of 10 training steps ({total / 10 * 1e3:.0f} ms per step under cProfile): C++ kernels "
                f"{in_kernels / total:.0%} of the time ({text}); the rest Python")
        print(line, flush=True)
        notes.append(line)

    R.add_ratios(recs)
    stem = args.stem or f"unet-demo-{args.threads}t"
    paths = R.write_results(args.out, stem, R.machine_info(args.threads), {}, recs, notes,
                            {"seeds": args.seeds, "step_rounds": args.step_rounds, "threads": args.threads})
    print(f"wrote {paths['json']} and {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
