"""GPU benchmark of the fastlayers CUDA convolution and pooling (needs a CUDA build, a GPU, CuPy and,
for the anchors, PyTorch with CUDA).

- conv2d layers (a)-(f) of /work/shared/ANCHORS.md: forward, backward-data + backward-weight (one
  fl.conv2d_backward call) against PyTorch/cuDNN in plain FP32 (cudnn.allow_tf32 and
  cuda.matmul.allow_tf32 off); GFLOP/s with GFLOP = 2*N*K*(C/groups)*R*S*P*Q per pass.
- Pooling (max/avg 2x2/2 and 3x3/2 pad 1, global average), forward and backward, in GB/s (float32 in
  + out) against a device-to-device copy of the same bytes.
- One training step of the course CNN (1x28x28 -> conv 32@5x5 -> max-pool 2 -> ReLU -> conv 64@5x5
  -> max-pool 2 -> ReLU -> dense 200 -> ReLU -> dense 10 -> softmax cross-entropy, SGD momentum 0.9)
  at batch 100 and 1000 with the fastlayers op API on CuPy arrays, against the same step in PyTorch.

Timing: CUDA events on the current stream after warm-up, median (min/max) of --reps repeats. Writes
JSON (machine + records, the project's results format) and a markdown table beside it. Exits with
status 2 and a clear message when no GPU is usable.

    python benchmarks/cuda_conv_bench.py --out benchmarks/results/cuda_conv_<gpu>.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

import numpy as np

LAYERS = {  # name: (N, C, H, W, K, R, S, stride, padding)
    "a": (100, 1, 28, 28, 32, 5, 5, 1, 0),
    "b": (100, 32, 12, 12, 64, 5, 5, 1, 0),
    "c": (32, 64, 56, 56, 64, 3, 3, 1, 1),
    "d": (16, 128, 28, 28, 128, 3, 3, 1, 1),
    "e": (8, 3, 224, 224, 64, 11, 11, 4, 2),
    "f": (32, 256, 28, 28, 64, 1, 1, 1, 0),
}


def fail(msg: str) -> None:
    print(f"cuda_conv_bench: {msg}", file=sys.stderr)
    sys.exit(2)


def require_gpu():
    try:
        import fastlayers as fl
    except ImportError as exc:
        fail(f"cannot import fastlayers ({exc}); build it first")
    if not fl.cuda.is_built():
        fail("this fastlayers was built without CUDA: reinstall with FASTLAYERS_CUDA=ON")
    if fl.cuda.device_count() == 0:
        fail("no CUDA GPU is visible on this machine: nothing to benchmark")
    try:
        import cupy as cp
    except Exception as exc:  # noqa: BLE001 - any import failure means no GPU arrays
        fail(f"CuPy is not importable ({exc}): install cupy-cuda13x")
    for name in ("conv2d", "conv2d_backward", "max_pool2d", "linear"):
        if not hasattr(fl, name):
            fail(f"fastlayers has no {name} op in this build (branch not merged yet?)")
    return fl, cp


def optional_torch():
    """torch with CUDA and TF32 off, or None (the anchors are then skipped, not faked)."""
    try:
        import torch
    except Exception:  # noqa: BLE001
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def time_gpu(cp, fn, reps: int, warmup: int = 3):
    """Seconds per call: CUDA events around each call on CuPy's current stream."""
    for _ in range(warmup):
        fn()
    stream = cp.cuda.get_current_stream()
    times = []
    for _ in range(reps):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        fn()
        stop.record(stream)
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return statistics.median(times), min(times), max(times)


def time_torch(torch, fn, reps: int, warmup: int = 3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times), min(times), max(times)


def record(op, case, backend, t, *, gflops=None, gbps=None, anchor=None, anchor_s=None):
    r = {"op": op, "case": case, "backend": backend, "median_s": t[0], "min_s": t[1], "max_s": t[2]}
    if gflops is not None:
        r["gflops"] = gflops
    if gbps is not None:
        r["gbps"] = gbps
    if anchor is not None:
        r["anchor"] = anchor
        r["ratio"] = anchor_s / t[0]  # > 1: we are faster
    return r


def bench_conv(fl, cp, torch, reps, records):
    rng = np.random.default_rng(0)
    for name, (N, C, H, W, K, R, S, st, pad) in LAYERS.items():
        x = cp.asarray(rng.standard_normal((N, C, H, W), dtype=np.float32))
        w = cp.asarray(rng.standard_normal((K, C, R, S), dtype=np.float32) * 0.1)
        b = cp.asarray(rng.standard_normal(K, dtype=np.float32))
        y = fl.conv2d(x, w, b, stride=st, padding=pad)
        P, Q = y.shape[2], y.shape[3]
        g = cp.asarray(rng.standard_normal(y.shape, dtype=np.float32))
        flop = 2.0 * N * K * C * R * S * P * Q
        case = {"name": name, "N": N, "C": C, "H": H, "W": W, "K": K, "R": R, "S": S, "stride": st, "padding": pad}
        anchors = {}
        if torch is not None:
            tx, tw, tb = (torch.as_tensor(a, device="cuda") for a in (x, w, b))
            tx.requires_grad_(True)
            tw.requires_grad_(True)
            tg = torch.as_tensor(g, device="cuda")
            ty_ = torch.nn.functional.conv2d(tx, tw, tb, stride=st, padding=pad)
            err = float((torch.as_tensor(y, device="cuda") - ty_).abs().max())
            case["max_abs_diff_vs_torch"] = err
            anchors["forward"] = time_torch(torch, lambda: torch.nn.functional.conv2d(tx, tw, tb, stride=st,
                                                                                     padding=pad), reps)
            anchors["backward"] = time_torch(torch, lambda: torch.autograd.grad(
                torch.nn.functional.conv2d(tx, tw, tb, stride=st, padding=pad), (tx, tw), tg), reps)
            # The torch backward timing includes its forward (autograd needs the graph): subtract it.
            fwd = anchors["forward"]
            anchors["backward"] = tuple(max(a - fwd[0], 1e-9) for a in anchors["backward"])
            records.append(record("conv2d_forward", case, "cudnn", anchors["forward"],
                                  gflops=flop / anchors["forward"][0] / 1e9))
            records.append(record("conv2d_backward", case, "cudnn", anchors["backward"],
                                  gflops=2 * flop / anchors["backward"][0] / 1e9))
        t = time_gpu(cp, lambda: fl.conv2d(x, w, b, stride=st, padding=pad), reps)
        records.append(record("conv2d_forward", case, "cuda", t, gflops=flop / t[0] / 1e9,
                              **({"anchor": "cudnn", "anchor_s": anchors["forward"][0]} if anchors else {})))
        t = time_gpu(cp, lambda: fl.conv2d_backward(g, x, w, stride=st, padding=pad), reps)
        records.append(record("conv2d_backward", case, "cuda", t, gflops=2 * flop / t[0] / 1e9,
                              **({"anchor": "cudnn", "anchor_s": anchors["backward"][0]} if anchors else {})))


def bench_pool(fl, cp, torch, reps, records):
    rng = np.random.default_rng(1)
    x = cp.asarray(rng.standard_normal((32, 64, 56, 56), dtype=np.float32))
    copy_dst = cp.empty_like(x)
    cases = [("max", 2, 2, 0), ("avg", 2, 2, 0), ("max", 3, 2, 1), ("avg", 3, 2, 1)]
    for kind, k, s, p in cases:
        fwd = getattr(fl, f"{kind}_pool2d")
        bwd = getattr(fl, f"{kind}_pool2d_backward")
        y = fwd(x, k, s, p)
        g = cp.asarray(rng.standard_normal(y.shape, dtype=np.float32))
        case = {"name": f"{kind} {k}x{k}/{s} pad {p}", "x": list(x.shape)}
        for op, fn, nbytes, tfn in (
            (f"{kind}_pool2d_forward", lambda: fwd(x, k, s, p), 4 * (x.size + y.size), "forward"),
            (f"{kind}_pool2d_backward", lambda: bwd(g, x, k, s, p),
             4 * (g.size + x.size * (2 if kind == "max" else 1)), "backward"),
        ):
            n = nbytes // 8  # copy the same number of bytes (read + write)
            src, dst = x.ravel()[:n], copy_dst.ravel()[:n]
            tc = time_gpu(cp, lambda: dst.__setitem__(slice(None), src), reps)
            records.append(record(op, case, "d2d-copy", tc, gbps=nbytes / tc[0] / 1e9))
            t = time_gpu(cp, fn, reps)
            records.append(record(op, case, "cuda", t, gbps=nbytes / t[0] / 1e9, anchor="d2d-copy",
                                  anchor_s=tc[0]))
    t = time_gpu(cp, lambda: fl.global_avg_pool2d(x), reps)
    records.append(record("global_avg_pool2d_forward", {"name": "global", "x": list(x.shape)}, "cuda", t,
                          gbps=4 * x.size / t[0] / 1e9))


def cnn_params(rng, xp):
    def init(shape, fan_in):
        return xp.asarray(rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in)))

    return {"w1": init((32, 1, 5, 5), 25), "b1": xp.zeros(32, np.float32),
            "w2": init((64, 32, 5, 5), 800), "b2": xp.zeros(64, np.float32),
            "w3": init((200, 1024), 1024), "b3": xp.zeros(200, np.float32),
            "w4": init((10, 200), 200), "b4": xp.zeros(10, np.float32)}


def fl_train_step(fl, params, vel, x, labels):
    """Forward, backward and SGD (momentum 0.9) through the fastlayers op API."""
    p = params
    c1 = fl.conv2d(x, p["w1"], p["b1"])
    m1 = fl.max_pool2d(c1, 2)
    a1 = fl.relu(m1)
    c2 = fl.conv2d(a1, p["w2"], p["b2"])
    m2 = fl.max_pool2d(c2, 2)
    a2 = fl.relu(m2)
    f = a2.reshape(a2.shape[0], -1)
    h = fl.linear(f, p["w3"], p["b3"])
    a3 = fl.relu(h)
    logits = fl.linear(a3, p["w4"], p["b4"])
    loss = fl.softmax_cross_entropy(logits, labels)
    g = fl.softmax_cross_entropy_backward(logits, labels)
    g, gw4, gb4 = fl.linear_backward(g, a3, p["w4"])
    g = fl.relu_backward(g, h)
    g, gw3, gb3 = fl.linear_backward(g, f, p["w3"])
    g = fl.relu_backward(g.reshape(a2.shape), m2)
    g = fl.max_pool2d_backward(g, c2, 2)
    g, gw2, gb2 = fl.conv2d_backward(g, a1, p["w2"])
    g = fl.relu_backward(g, m1)
    g = fl.max_pool2d_backward(g, c1, 2)
    _, gw1, gb1 = fl.conv2d_backward(g, x, p["w1"])
    grads = {"w1": gw1, "b1": gb1, "w2": gw2, "b2": gb2, "w3": gw3, "b3": gb3, "w4": gw4, "b4": gb4}
    for k in params:
        fl.sgd_update(params[k], grads[k], vel[k], lr=0.01, momentum=0.9)
    return loss


def bench_cnn(fl, cp, torch, reps, records):
    for batch in (100, 1000):
        rng = np.random.default_rng(2)
        params = cnn_params(rng, cp)
        vel = {k: cp.zeros_like(v) for k, v in params.items()}
        x = cp.asarray(rng.standard_normal((batch, 1, 28, 28), dtype=np.float32))
        labels = cp.asarray(rng.integers(0, 10, batch).astype(np.int64))
        case = {"name": f"course CNN training step, batch {batch}"}
        anchor = {}
        if torch is not None:
            tnn = torch.nn
            model = tnn.Sequential(tnn.Conv2d(1, 32, 5), tnn.MaxPool2d(2), tnn.ReLU(), tnn.Conv2d(32, 64, 5),
                                   tnn.MaxPool2d(2), tnn.ReLU(), tnn.Flatten(), tnn.Linear(1024, 200), tnn.ReLU(),
                                   tnn.Linear(200, 10)).cuda()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            tx = torch.as_tensor(x, device="cuda")
            tl = torch.as_tensor(labels, device="cuda")

            def torch_step():
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(tx), tl)
                loss.backward()
                opt.step()

            tt = time_torch(torch, torch_step, reps)
            records.append(record("cnn_train_step", case, "torch-cuda", tt))
            anchor = {"anchor": "torch-cuda", "anchor_s": tt[0]}
        t = time_gpu(cp, lambda: fl_train_step(fl, params, vel, x, labels), reps)
        records.append(record("cnn_train_step", case, "cuda", t, **anchor))


def machine(cp, torch):
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    return {
        "cpu": platform.processor() or platform.machine(),
        "gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "driver": cp.cuda.runtime.driverGetVersion(),
        "cupy": cp.__version__,
        "torch": getattr(torch, "__version__", None),
        "cudnn": torch.backends.cudnn.version() if torch is not None else None,
        "tf32": False,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def markdown(records) -> str:
    lines = ["| op | case | backend | median ms | GFLOP/s | GB/s | ratio vs anchor |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in records:
        lines.append(
            f"| {r['op']} | {r['case'].get('name', '')} | {r['backend']} | {r['median_s'] * 1e3:.4f} | "
            f"{r.get('gflops', float('nan')):.0f} | {r.get('gbps', float('nan')):.0f} | "
            + (f"{r['ratio']:.2f} ({r['anchor']})" if "ratio" in r else "") + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="cuda_conv_bench.json", help="JSON output; the .md goes beside it")
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--only", choices=["conv", "pool", "cnn"], default=None)
    args = parser.parse_args(argv)
    fl, cp = require_gpu()
    torch = optional_torch()
    if torch is None:
        print("cuda_conv_bench: PyTorch with CUDA not available: the cuDNN/torch anchors are skipped",
              file=sys.stderr)
    records = []
    if args.only in (None, "conv"):
        bench_conv(fl, cp, torch, args.reps, records)
    if args.only in (None, "pool"):
        bench_pool(fl, cp, torch, args.reps, records)
    if args.only in (None, "cnn"):
        bench_cnn(fl, cp, torch, args.reps, records)
    result = {"machine": machine(cp, torch), "records": records}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(records)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
