"""The measured reason to use the bridges: a PyTorch training step with fastlayers layers swapped in
(fastlayers.torch.convert) against plain PyTorch, and ONNX models on fastlayers (fastlayers.onnx.load)
against ONNX Runtime; same process, interleaved rounds, medians.

    python benchmarks/interop_bench.py [--threads 2] [--rounds 7] [--out benchmarks/results] [--quick]

Training step (forward, cross-entropy, backward, SGD step) of
- the course MNIST CNN (batch 64, 1x28x28),
- a torchvision-style ResNet-18 (BasicBlocks [2, 2, 2, 2], width 64, batch 8, 3x64x64 input; its
  BatchNorm layers stay native when this fastlayers has no batch_norm op),
as torch with every supported layer swapped (backend "cpu", ours) and plain torch ("torch-cpu").
ONNX inference (batch 1 and 32) of the course CNN, LeNet-5 and that ResNet-18, exported by
torch.onnx.export: fastlayers.onnx.load(...).predict ("cpu") against onnxruntime ("onnxruntime").
Sanity first: the swapped model's loss equals torch's after one step, and our ONNX outputs equal
onnxruntime's within 1e-4. ratio = anchor time / our time (> 1: fastlayers faster).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn as tnn

import fastlayers as fl
import fastlayers.onnx as flx
import fastlayers.torch as flt
from fastlayers.bench import records as R


def course_cnn():
    return tnn.Sequential(tnn.Conv2d(1, 32, 5), tnn.MaxPool2d(2), tnn.ReLU(), tnn.Conv2d(32, 64, 5), tnn.MaxPool2d(2),
                          tnn.ReLU(), tnn.Flatten(), tnn.Linear(1024, 200), tnn.ReLU(), tnn.Linear(200, 10))


def lenet5():
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.AvgPool2d(2), tnn.Conv2d(6, 16, 5), tnn.ReLU(),
                          tnn.AvgPool2d(2), tnn.Flatten(), tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84),
                          tnn.ReLU(), tnn.Linear(84, 10))


class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.relu1 = tnn.ReLU()
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.relu2 = tnn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.down is None else self.down(x)))


def resnet18(width=64, classes=10):
    w, blocks, cin = width, [], width
    for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
        blocks += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
        cin = cout
    return tnn.Sequential(tnn.Conv2d(3, w, 7, 2, 3, bias=False), tnn.BatchNorm2d(w), tnn.ReLU(), tnn.MaxPool2d(3, 2, 1),
                          *blocks, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(cin, classes))


def _step(model, opt, loss_fn, x, y):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def bench_training(name, make, x, y, rounds, threads, recs, notes):
    torch.manual_seed(0)
    ref = make()
    ours = copy.deepcopy(ref)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flt.convert(ours)
    for w in caught:
        notes.append(f"{name}: {w.message}")
    opt_a = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    opt_b = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9)
    la = _step(ours, opt_a, flt.CrossEntropyLoss(), x, y)
    lb = _step(ref, opt_b, tnn.CrossEntropyLoss(), x, y)
    if abs(la - lb) > 1e-4 * max(1, abs(lb)):
        raise SystemExit(f"{name}: the swapped model's loss {la} differs from torch's {lb}")
    ta, tb = [], []
    for _ in range(rounds):
        t = time.perf_counter(); _step(ours, opt_a, flt.CrossEntropyLoss(), x, y); ta.append(time.perf_counter() - t)
        t = time.perf_counter(); _step(ref, opt_b, tnn.CrossEntropyLoss(), x, y); tb.append(time.perf_counter() - t)
    case = f"{name} batch {x.shape[0]} {'x'.join(map(str, x.shape[1:]))}"
    recs.append(R.make_record("torch_train_step", case, "cpu", ta, threads=threads, anchor_order=["torch-cpu"],
                              note="torch with fastlayers.torch.convert"))
    recs.append(R.make_record("torch_train_step", case, "torch-cpu", tb, threads=threads))
    return case, statistics.median(tb) / statistics.median(ta)


def bench_onnx(name, make, shape, batches, rounds, threads, recs):
    from fastlayers.bench.models import export_torch_onnx, ort_session

    torch.manual_seed(0)
    data = export_torch_onnx(torch, make(), torch.zeros(1, *shape))
    model = flx.load(data)
    sess = ort_session(data, threads)
    out = []
    for n in batches:
        x = np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)
        diff = float(np.max(np.abs(model.predict(x) - sess.run(None, {"x": x})[0])))
        if diff > 1e-4:
            raise SystemExit(f"{name}: fastlayers and onnxruntime differ by {diff}")
        ta, tb = [], []
        for _ in range(rounds):
            t = time.perf_counter(); model.predict(x); ta.append(time.perf_counter() - t)
            t = time.perf_counter(); sess.run(None, {"x": x}); tb.append(time.perf_counter() - t)
        case = f"{name} batch {n}"
        recs.append(R.make_record("onnx_inference", case, "cpu", ta, threads=threads, anchor_order=["onnxruntime"],
                                  note="fastlayers.onnx.load(...).predict"))
        recs.append(R.make_record("onnx_inference", case, "onnxruntime", tb, threads=threads))
        out.append((case, statistics.median(tb) / statistics.median(ta), diff))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--stem", default=None)
    p.add_argument("--quick", action="store_true", help="ResNet-18 at width 16 (a smoke run)")
    a = p.parse_args(argv)
    fl.set_num_threads(a.threads)
    torch.set_num_threads(a.threads)
    recs, notes = [], []
    g = torch.Generator().manual_seed(0)
    width = 16 if a.quick else 64
    for name, make, shape, n in (("course CNN", course_cnn, (1, 28, 28), 64),
                                 (f"ResNet-18 width {width}", lambda: resnet18(width), (3, 64, 64), 8)):
        x = torch.randn(n, *shape, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        case, ratio = bench_training(name, make, x, y, a.rounds, a.threads, recs, notes)
        print(f"train step {case}: ratio {ratio:.2f} (torch time / swapped time)", flush=True)
    for name, make, shape in (("course CNN", course_cnn, (1, 28, 28)), ("LeNet-5", lenet5, (1, 28, 28)),
                              (f"ResNet-18 width {width} 64x64", lambda: resnet18(width), (3, 64, 64))):
        for case, ratio, diff in bench_onnx(name, make, shape, (1, 32), a.rounds, a.threads, recs):
            print(f"onnx {case}: ratio {ratio:.2f} (onnxruntime time / ours), max |diff| {diff:.2g}", flush=True)
    R.add_ratios(recs)
    machine = R.machine_info(a.threads)
    import onnxruntime

    machine["versions"]["onnxruntime"] = onnxruntime.__version__
    notes.append("shared 2-vCPU machine with other jobs running: timings are noisy; rounds interleaved "
                 "(ours, anchor, ours, ...) and medians reported")
    stem = a.stem or f"interop-{a.threads}t"
    paths = R.write_results(a.out, stem, machine, {}, recs, notes, {"rounds": a.rounds, "threads": a.threads})
    print(f"wrote {paths['json']} and {paths['md']}")


if __name__ == "__main__":
    sys.exit(main())
