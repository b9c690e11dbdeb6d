"""Batch norm and the ResNet-18 block with batch norm: fastlayers vs PyTorch CPU, interleaved rounds.

    python benchmarks/batchnorm_bench.py [--threads 2] [--rounds 15] [--only bn|block] [--profile]
                                         [--out benchmarks/results] [--name STEM]

Issue 13's targets, all at N32 C64 56x56 (batch norm) or N16 C64 56x56 (the block), 2 threads:
  batch_norm forward and backward, training mode: >= 50% of STREAM (triad, measured in the same run)
    in effective bandwidth (bytes the op must move: x + y; grad_out + x + grad_x) and >= 1.5x PyTorch;
  the block conv-BN-ReLU-conv-BN + skip + ReLU: a training step (MSE loss, backward with the input's
    gradient, SGD momentum) >= 1.2x PyTorch eager; inference with the batch norms folded into the
    convs >= 1.5x PyTorch eager (eval mode, batch norms as separate ops).

Method: every function of a group is called once per round, in a fixed interleaved order (ours,
torch, ours, torch, ...), after warm-up rounds; per function the median with min and max over the
rounds, and per pair the median of the per-round ratios torch/ours ("paired", > 1: we are faster),
which is steadier than the ratio of medians when other jobs come and go. The STREAM triad is
measured at the start and at the end. Before timing, each pair is checked to compute the same thing
(outputs, gradients, updated weights). --profile times each op of our training step.

Writes OUT/STEM.json (the fastlayers.bench.records format) and OUT/STEM.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import fastlayers as fl
from fastlayers.bench import cases as K
from fastlayers.bench import probes
from fastlayers.bench import records as R


def interleaved(fns: dict, rounds: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def paired(ours: list, theirs: list) -> float:
    return statistics.median(t / o for o, t in zip(ours, theirs))


def _torch_state(torch, state):
    return {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for k, v in state.items()}


def check_bn(torch, s, t):
    """Our batch_norm / backward against PyTorch's on the benchmark's data (float32 tolerances)."""
    rm, rv = s["rm"].copy(), s["rv"].copy()
    y = fl.batch_norm(s["x"], rm, rv, s["w"], s["b"], training=True)
    trm, trv = t["rm"].clone(), t["rv"].clone()
    ty = torch.nn.functional.batch_norm(t["x"], trm, trv, t["w"], t["b"], training=True)
    err = float(np.max(np.abs(y - ty.numpy())))
    gx, gw, gb = fl.batch_norm_backward(s["g"], s["x"], s["w"])
    _, mean, invstd = torch.ops.aten.native_batch_norm(t["x"], t["w"], t["b"], None, None, True, 0.1, 1e-5)
    tg = torch.ops.aten.native_batch_norm_backward(t["g"], t["x"], t["w"], None, None, mean, invstd, True, 1e-5,
                                                   [True, True, True])
    err = max(err, float(np.max(np.abs(gx - tg[0].numpy()))),
              float(np.max(np.abs(gw - tg[1].numpy()) / np.maximum(1, np.abs(gw)))),
              float(np.max(np.abs(rm - trm.numpy()))), float(np.max(np.abs(rv - trv.numpy()))))
    if not err < 1e-3:
        sys.exit(f"batch_norm disagrees with PyTorch on the benchmark data (max error {err:.3g})")
    return err


def check_block(torch, s, t):
    """One training step of each from the same weights: same loss, same updated weights; and the
    folded inference against PyTorch's eval-mode block."""
    s1 = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
    loss = float(K.resblock_bn_train_step(fl, s1)())
    tstep = K._torch_res_bn_train(torch, _torch_state(torch, s))
    tloss = float(tstep().detach())
    if not abs(loss - tloss) <= 1e-4 * abs(tloss):
        sys.exit(f"block training step: loss {loss} vs PyTorch {tloss}")
    s2 = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()}
    s2["rm1"][:] = 0.1
    s2["rv2"][:] = 1.5  # non-trivial running statistics for the fold
    y = K.resblock_bn_folded_inference(fl, s2)()
    ty = K._torch_res_bn_eval(torch, _torch_state(torch, s2))()
    err = float(np.max(np.abs(y - ty.numpy())))
    if not err < 1e-3 * max(1.0, float(np.max(np.abs(y)))):
        sys.exit(f"folded inference disagrees with PyTorch eval (max error {err:.3g})")
    return abs(loss - tloss) / abs(tloss), err


def profile_step(s, steps: int = 5):
    """Median wall time of each op call of our training step, and its share."""
    o = fl
    x, t = s["x"], s["t"]
    acc = defaultdict(list)

    def timed(name, fn, *a, **kw):
        t0 = time.perf_counter()
        r = fn(*a, **kw)
        acc[name].append(time.perf_counter() - t0)
        return r

    for _ in range(steps + 1):
        c1 = timed("conv1 fwd", o.conv2d, x, s["w1"], padding=1)
        b1 = timed("bn1 fwd", o.batch_norm, c1, s["rm1"], s["rv1"], s["g1"], s["be1"], training=True)
        r1 = timed("relu1 fwd", o.relu, b1)
        c2 = timed("conv2 fwd", o.conv2d, r1, s["w2"], padding=1)
        b2 = timed("bn2 fwd", o.batch_norm, c2, s["rm2"], s["rv2"], s["g2"], s["be2"], training=True)
        z = timed("add fwd", o.add, b2, x)
        y = timed("relu2 fwd", o.relu, z)
        timed("loss fwd", o.mse_loss, y, t)
        gy = timed("loss bwd", o.mse_loss_backward, y, t)
        gz = timed("relu2 bwd", o.relu_backward, gy, z)
        gc2, gg2, gbe2 = timed("bn2 bwd", o.batch_norm_backward, gz, c2, s["g2"])
        gr1, gw2, _ = timed("conv2 bwd", o.conv2d_backward, gc2, r1, s["w2"], padding=1)
        gb1 = timed("relu1 bwd", o.relu_backward, gr1, b1)
        gc1, gg1, gbe1 = timed("bn1 bwd", o.batch_norm_backward, gb1, c1, s["g1"])
        gx, gw1, _ = timed("conv1 bwd", o.conv2d_backward, gc1, x, s["w1"], padding=1)
        timed("add (input grad)", o.add, gx, gz)
        t0 = time.perf_counter()
        for name, grad in zip(("w1", "g1", "be1", "w2", "g2", "be2"), (gw1, gg1, gbe1, gw2, gg2, gbe2)):
            o.sgd_update(s[name], grad, s["v_" + name], lr=0.01, momentum=0.9)
        acc["sgd"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:]) for k, v in acc.items()}
    total = sum(med.values())
    lines = [f"  {k:18s} {v * 1e3:8.2f} ms  {100 * v / total:5.1f}%" for k, v in med.items()]
    return "\n".join(lines + [f"  {'sum':18s} {total * 1e3:8.2f} ms"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--only", choices=("bn", "block"))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--name", default=None)
    args = ap.parse_args()

    import torch

    fl.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    peaks = {"cpu": probes.cpu_peaks(args.threads)}
    triad = [peaks["cpu"]["gbps_measured"]]
    records, notes, lines = [], [], []

    def add(op, case, backend, times, nbytes=None, flops=None, params=None):
        records.append(R.make_record(op, case, backend, times, params=params or {}, nbytes=nbytes, flops=flops,
                                     peaks=peaks, threads=args.threads))

    if args.only in (None, "bn"):
        cs = [c for c in K.norm_cases() if c.op != "fold_batch_norm"]
        s = cs[0].setup(np)
        t = _torch_state(torch, s)
        err = check_bn(torch, s, t)
        lines.append(f"check: batch_norm forward/backward/running stats vs PyTorch, max error {err:.2g}")
        groups = {(case.op, case.case): (case, case.ours(fl, s), case.torch_anchor(torch, t)) for case in cs}
        fns = {}
        for key, (_, ours, theirs) in groups.items():
            fns[key + ("cpu",)] = ours
            fns[key + ("torch-cpu",)] = theirs
        times = interleaved(fns, args.rounds)
        for key, (case, _, _) in groups.items():
            for backend in ("cpu", "torch-cpu"):
                add(case.op, case.case, backend, times[key + (backend,)], nbytes=case.nbytes, params=case.params)
            o, th = times[key + ("cpu",)], times[key + ("torch-cpu",)]
            gbps = case.nbytes / statistics.median(o) / 1e9
            lines.append(f"{case.op:20s} {case.case:28s} ours {statistics.median(o) * 1e3:7.2f} ms "
                         f"({min(o) * 1e3:.2f}-{max(o) * 1e3:.2f})  torch {statistics.median(th) * 1e3:7.2f} ms "
                         f"({min(th) * 1e3:.2f}-{max(th) * 1e3:.2f})  paired {paired(o, th):5.2f}x  "
                         f"{gbps:5.1f} GB/s effective")

    if args.only in (None, "block"):
        bcases = {c.op: c for c in K.resblock_bn_cases()}
        s = K._res_bn_setup(np)
        rel, err = check_block(torch, s, None)
        lines.append(f"check: block step loss vs PyTorch rel {rel:.2g}; folded inference vs PyTorch eval max error "
                     f"{err:.2g}")
        t = _torch_state(torch, s)
        ours_train, torch_train = K.resblock_bn_train_step(fl, s), K._torch_res_bn_train(torch, t)
        ours_inf, torch_inf = K.resblock_bn_folded_inference(fl, s), K._torch_res_bn_eval(torch, t)
        times = interleaved({"train cpu": ours_train, "train torch": torch_train,
                             "infer cpu": ours_inf, "infer torch": torch_inf}, args.rounds, warmup=2)
        for op, tag in (("train_step_resblock_bn", "train"), ("infer_resblock_bn", "infer")):
            case = bcases[op]
            add(op, case.case, "cpu", times[f"{tag} cpu"], flops=case.flops, params=case.params)
            add(op, case.case, "torch-cpu", times[f"{tag} torch"], flops=case.flops, params=case.params)
            o, th = times[f"{tag} cpu"], times[f"{tag} torch"]
            lines.append(f"{op:22s} ours {statistics.median(o) * 1e3:7.1f} ms ({min(o) * 1e3:.1f}-{max(o) * 1e3:.1f})"
                         f"  torch {statistics.median(th) * 1e3:7.1f} ms ({min(th) * 1e3:.1f}-{max(th) * 1e3:.1f})"
                         f"  paired {paired(o, th):5.2f}x")
        if args.profile:
            lines.append("profile of our training step (median per op over 5 steps):\n" + profile_step(s))

    triad.append(probes.cpu_triad_gbps(args.threads, 1 << 25, 6))
    lines.insert(0, f"STREAM triad at {args.threads} threads: {triad[0]:.1f} GB/s at the start, {triad[1]:.1f} GB/s "
                    f"at the end (50% target taken from the larger)")
    notes.append(f"interleaved rounds: {args.rounds}; STREAM triad {triad[0]:.1f} / {triad[1]:.1f} GB/s "
                 f"(start / end); the machine may be shared")
    R.add_ratios(records)
    stem = args.name or f"batchnorm-{args.threads}t"
    settings = {"threads": args.threads, "rounds": args.rounds, "method": "interleaved rounds, one process"}
    paths = R.write_results(Path(args.out), stem, R.machine_info(args.threads), peaks, records, notes, settings)
    print("\n".join(lines))
    print(f"wrote {paths['json']}\nwrote {paths['md']}")


if __name__ == "__main__":
    main()
