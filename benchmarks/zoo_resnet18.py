"""ResNet-18 (fastlayers.nn.zoo.resnet18 vs torchvision.models.resnet18, same weights), CPU:
inference at batch 1 and 16 and one training step at batch 16, 224x224, fastlayers vs PyTorch eager.

    python benchmarks/zoo_resnet18.py [--threads 2] [--rounds 7] [--size 224] [--infer-batches 1,16]
                                      [--train-batch 16] [--heap current|default|tuned] [--out benchmarks/results]

Both models hold the same weights (torchvision's random initialisation, loaded into the zoo model
with load_torch_state_dict) and their outputs are checked to agree first. Then each round times
ours and PyTorch's back to back (interleaved A/B in one process), after one warm-up call each; the
figures are medians over the rounds (min-max in the table), the ratio = PyTorch time / ours (> 1:
fastlayers faster), both in the results format of benchmarks/README.md; the notes add the ratio
paired per round (median, min-max: steadier when the machine drifts between rounds).

- inference: model.predict(x) (eval mode, inference pass: caches released as it goes) vs
  torch.no_grad() + model(x) in eval mode;
- training step: forward in train mode (batch statistics), softmax cross-entropy, backward
  (no input gradient), SGD momentum 0.9 update vs the same with autograd and torch.optim.SGD.

--heap: glibc's heap settings for the whole process (a child started with that environment; tuned:
MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736, see fastlayers.bench.models).
Our passes take arrays >= 1 MiB from fastlayers' block cache (fastlayers.memory); memory it keeps
is memory PyTorch's allocations in the same process cannot reuse, so with the default heap PyTorch
faults in more fresh pages than it would alone: read the tuned-heap run beside the default one.

torchvision is imported through tests/torchvision_harness.py (its compiled ops do not load with the
CPU torch). On a shared machine the figures move between runs: compare ratios from one run only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--infer-batches", default="1,16")
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--stem", default=None)
    ap.add_argument("--heap", default="current", choices=("current", "default", "tuned"))
    args = ap.parse_args(argv)
    if args.heap != "current":  # the heap is read at process start: run again in a child
        import subprocess

        from fastlayers.bench.models import HEAPS

        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env.update(HEAPS[args.heap])
        rest = list(argv if argv is not None else sys.argv[1:])
        stem = args.stem or f"zoo-resnet18-{args.threads}t-{args.heap}-heap"
        return subprocess.run([sys.executable, __file__, *rest, "--heap", "current", "--stem", stem],
                              env=env).returncode

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    import fastlayers as fl
    from fastlayers.bench import records as R
    from fastlayers.bench.models import training_step
    from fastlayers.bench.timing import interleaved, paired_ratios
    from fastlayers.nn import zoo

    sys.path.insert(0, str(ROOT / "tests"))
    from torchvision_harness import import_torchvision

    tv, reason = import_torchvision()
    if tv is None:
        print(f"torchvision unavailable: {reason}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    fl.set_num_threads(args.threads)
    torch.manual_seed(0)
    tmodel = tv.resnet18(weights=None).eval()
    model = zoo.resnet18(input_size=args.size, seed=0)
    model.load_torch_state_dict(tmodel.state_dict())
    rng = np.random.default_rng(0)
    x1 = rng.standard_normal((2, 3, args.size, args.size)).astype(np.float32)
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x1)).numpy()
    err = float(np.abs(model.predict(x1) - want).max()) / float(np.abs(want).max())
    print(f"check: max |ours - torch| / max |torch| = {err:.2e}")
    assert err < 1e-4, err

    heap = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    recs, notes = [], [f"machine shared with other jobs (load average at start: {os.getloadavg()[0]:.1f}); "
                       f"interleaved rounds, medians", f"output check: relative max difference {err:.2e}",
                       f"glibc heap: {heap or 'default settings'}; fastlayers block cache "
                       f"{'on' if fl.memory.arena_enabled() else 'off'}"]
    case_base = f"{args.size}x{args.size}"

    def bench(op, case, ours, theirs, params):
        times, _ = interleaved({"ours": ours, "theirs": theirs}, args.rounds, reps=1, warmup=1)
        ta, tb = times["ours"], times["theirs"]
        med, lo, hi = paired_ratios(tb, ta)
        print(f"{op} {case}: fastlayers {statistics.median(ta) * 1e3:.1f} ms, PyTorch "
              f"{statistics.median(tb) * 1e3:.1f} ms, ratio {statistics.median(tb) / statistics.median(ta):.2f} "
              f"(paired per round: median {med:.2f}, {lo:.2f}-{hi:.2f})", flush=True)
        notes.append(f"{op} {case}: PyTorch / ours paired per round: median {med:.2f} ({lo:.2f}-{hi:.2f})")
        recs.append(R.make_record(op, case, "cpu", ta, params=params, threads=args.threads))
        recs.append(R.make_record(op, case, "torch-cpu", tb, params=params, threads=args.threads))

    for n in [int(b) for b in args.infer_batches.split(",") if b]:
        x = rng.standard_normal((n, 3, args.size, args.size)).astype(np.float32)
        xt = torch.from_numpy(x)

        def theirs(xt=xt):
            with torch.no_grad():
                tmodel(xt)

        bench("resnet18_inference", f"N={n} {case_base}", lambda x=x: model.predict(x, batch_size=n), theirs,
              {"batch": n, "size": args.size})

    n = args.train_batch
    x = rng.standard_normal((n, 3, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 1000, n)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    tmodel.train()
    opt = fl.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = fl.nn.losses.get_loss("cross_entropy")
    tloss = torch.nn.CrossEntropyLoss()

    ours_step = training_step(model, loss_fn, opt, x, y)

    def theirs_step():
        topt.zero_grad(set_to_none=True)
        tloss(tmodel(xt), yt).backward()
        topt.step()

    bench("resnet18_train_step", f"N={n} {case_base}", ours_step, theirs_step, {"batch": n, "size": args.size})
    st = fl.memory.arena_stats()
    notes.append(f"block cache after the run: peak {st['peak_bytes'] / 2**20:.0f} MiB, {st['hits']} reuses, "
                 f"{st['misses']} new mappings")
    R.add_ratios(recs)
    machine = R.machine_info(args.threads)
    stem = args.stem or f"zoo-resnet18-{args.threads}t"
    paths = R.write_results(args.out, stem, machine, {}, recs, notes,
                            {"rounds": args.rounds, "threads": args.threads})
    print(f"wrote {paths['json']} and {paths['md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
