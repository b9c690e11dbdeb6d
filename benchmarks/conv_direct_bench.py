"""The direct conv path (csrc/cpu/conv_direct.h) against the paths it replaced, PyTorch and ONNX Runtime.

    python benchmarks/conv_direct_bench.py [--threads 2] [--rounds 7] [--set resnet,r18,anchors] [--batches 1,64] [--out NAME]

For each case, in one process and interleaved round by round: fastlayers with the rule as built
("cpu"), fastlayers with the direct path switched off (FASTLAYERS_CONV_DIRECT=0: the path taken
before, "cpu-nodirect"), torch.nn.functional.conv2d and ONNX Runtime's Conv (CPUExecutionProvider,
all graph optimisations, weights and bias as initialisers). Backward-data / backward-weight (+ bias): ours,
ours without direct, and aten.convolution_backward with the matching output mask. Each round times a batch of calls and
keeps the mean per call; the table shows the median over rounds and the min-max. Ratios are anchor
time / ours (> 1: ours faster), computed from the medians. Writes benchmarks/results/NAME.json (the
results format of DESIGN.md) and NAME.md.

Cases: the small ResNet's convolutions (build("resnet"), 1x28x28) at batch 1 and 64, a
ResNet-18-shaped stage (64 channels, 56x56, batch 16), and the anchor layers a-f.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import fastlayers as fl
from fastlayers._backend import CPU
from fastlayers.bench.timing import interleaved
from fastlayers.ops import conv as conv_ops

# name: (N, C, H, W, K, R, S, stride, padding)
RESNET = {
    "res 16->16 28x28": (16, 28, 28, 16, 3, 3, 1, 1),
    "res 16->32 28x28 s2": (16, 28, 28, 32, 3, 3, 2, 1),
    "res 32->32 14x14": (32, 14, 14, 32, 3, 3, 1, 1),
    "res 32->64 14x14 s2": (32, 14, 14, 64, 3, 3, 2, 1),
    "res 64->64 7x7": (64, 7, 7, 64, 3, 3, 1, 1),
}
ANCHORS = {
    "a": (100, 1, 28, 28, 32, 5, 5, 1, 0),
    "b": (100, 32, 12, 12, 64, 5, 5, 1, 0),
    "c": (32, 64, 56, 56, 64, 3, 3, 1, 1),
    "d": (16, 128, 28, 28, 128, 3, 3, 1, 1),
    "e": (8, 3, 224, 224, 64, 11, 11, 4, 2),
    "f": (32, 256, 28, 28, 64, 1, 1, 1, 0),
}


def cases(sets, batches=(1, 64)):
    out = []
    if "resnet" in sets:
        for n in batches:
            for name, (C, H, W, K, R, S, st, pad) in RESNET.items():
                out.append((f"{name} N={n}", (n, C, H, W, K, R, S, st, pad)))
        if "r18" in sets:
            out.append(("r18 stage 64->64 56x56 N=16", (16, 64, 56, 56, 64, 3, 3, 1, 1)))
    if "anchors" in sets:
        for name, g in ANCHORS.items():
            out.append((f"{name}: N={g[0]} {g[1]}->{g[4]} {g[2]}x{g[3]} {g[5]}x{g[6]} s{g[7]} p{g[8]}", g))
    return out


def ort_conv(x, w, b, stride, pad, threads, spinning=True):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride] * 2, pads=[pad] * 4)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spinning:  # its workers block at once after a call instead of spinning on the cores
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"x": x})


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--set", default="resnet,r18,anchors")
    ap.add_argument("--passes", default="fwd,bwd_data,bwd_weight")
    ap.add_argument("--batches", default="1,64", help="batches of the small ResNet's cases")
    ap.add_argument("--out", default=None)
    ap.add_argument("--ort-no-spin", action="store_true",
                    help="ONNX Runtime's workers do not spin after a call (session.intra_op.allow_spinning "
                         "0): at 2 threads in one process their spinning took the second core from our "
                         "calls (benchmarks/models_isolated.py); this costs ONNX Runtime a little")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    fl.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    sets = args.set.split(",")
    passes = args.passes.split(",")
    records, lines = [], []
    hdr = "| case | pass | ours | ours, no direct | torch | ONNX Runtime | torch/ours | ORT/ours | old/ours |"
    lines += [hdr, "|---|---|---|---|---|---|---|---|---|"]
    print(hdr, flush=True)
    for name, (N, C, H, W, K, R, S, st, pad) in cases(sets, [int(b) for b in args.batches.split(",")]):
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = (rng.standard_normal((K, C, R, S)) * 0.1).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        shape = conv_ops._geometry(x, w, st, pad, 1, 1)
        P, Q = shape[7], shape[8]
        flops = 2.0 * N * K * C * R * S * P * Q
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        g = rng.standard_normal((N, K, P, Q)).astype(np.float32)
        tg = torch.from_numpy(g)
        for pass_ in passes:
            if pass_ == "fwd":
                op = "conv2d"
                y = np.empty((N, K, P, Q), np.float32)

                def ours(y=y):
                    ws, n = conv_ops._workspace(CPU, 0, shape)
                    CPU.run("conv2d_forward", x, w, b, y, ws, n, shape)

                fns = {"cpu": ours, "cpu-nodirect": with_env("0", ours),
                       "torch-cpu": lambda: torch.nn.functional.conv2d(tx, tw, tb, st, pad)}
                try:
                    fns["onnxruntime"] = ort_conv(x, w, b, st, pad, args.threads, not args.ort_no_spin)
                except ImportError:
                    pass
            elif pass_ == "bwd_weight":
                op = "conv2d_backward_weight"
                gw_, gb_ = np.empty_like(w), np.empty_like(b)

                def ours(gw_=gw_, gb_=gb_):
                    ws, n = conv_ops._workspace(CPU, 2, shape)
                    CPU.run("conv2d_backward_weight", g, x, gw_, gb_, ws, n, shape)

                bwd = torch.ops.aten.convolution_backward
                fns = {"cpu": ours, "cpu-nodirect": with_env("0", ours),
                       "torch-cpu": lambda: bwd(tg, tx, tw, [K], [st] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
                                                [False, True, True])}
            else:
                op = "conv2d_backward_data"
                gx = np.empty_like(x)

                def ours(gx=gx):
                    ws, n = conv_ops._workspace(CPU, 1, shape)
                    CPU.run("conv2d_backward_data", g, w, gx, ws, n, shape)

                bwd = torch.ops.aten.convolution_backward
                fns = {"cpu": ours, "cpu-nodirect": with_env("0", ours),
                       "torch-cpu": lambda: bwd(tg, tx, tw, [K], [st] * 2, [pad] * 2, [1, 1], False, [0, 0], 1,
                                                [True, False, False])}
            times, reps = interleaved(fns, args.rounds)
            med = {k: statistics.median(v) for k, v in times.items()}
            for k, v in times.items():
                rec = dict(op=op, case=name, params=dict(family="conv", N=N, C=C, H=H, W=W, K=K, R=R, S=S, stride=st,
                                                          padding=pad),
                           backend=k, device="cpu", threads=args.threads, median_s=med[k], min_s=min(v), max_s=max(v),
                           reps=reps[k] * args.rounds, flops=flops, gflops=flops / med[k] / 1e9, anchor=None, ratio=None)
                if k == "cpu":
                    rec["anchors"] = {a: med[a] / med["cpu"] for a in med if a != "cpu"}
                    rec["anchor"] = "onnxruntime" if "onnxruntime" in med else "torch-cpu"
                    rec["ratio"] = med[rec["anchor"]] / med["cpu"]
                records.append(rec)

            def cell(k):
                if k not in med:
                    return "—"
                v = times[k]
                return f"{med[k] * 1e3:.3f} ms ({min(v) * 1e3:.3f}–{max(v) * 1e3:.3f})"

            def ratio(k):
                return f"{med[k] / med['cpu']:.2f}" if k in med else "—"

            row = (f"| {name} | {pass_} | {cell('cpu')} | {cell('cpu-nodirect')} | {cell('torch-cpu')} | "
                   f"{cell('onnxruntime')} | {ratio('torch-cpu')} | {ratio('onnxruntime')} | {ratio('cpu-nodirect')} |")
            lines.append(row)
            print(row, flush=True)
    if args.out:
        res = Path(__file__).resolve().parent / "results"
        import onnxruntime
        import torch as _t

        machine = dict(cpu=platform.processor() or platform.machine(), logical_cpus=os.cpu_count(),
                       threads=args.threads, isa=fl._cpu.active_isa(), platform=platform.platform(),
                       python=platform.python_version(),
                       versions=dict(numpy=np.__version__, torch=_t.__version__, onnxruntime=onnxruntime.__version__,
                                     fastlayers=getattr(fl, "__version__", None)),
                       date=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                       load=os.getloadavg())
        (res / f"{args.out}.json").write_text(json.dumps(dict(schema=1, machine=machine, records=records), indent=1))
        (res / f"{args.out}.md").write_text(
            f"# conv_direct_bench, {args.threads} thread(s), {machine['date']}, load average {machine['load']}\n\n"
            f"`python benchmarks/conv_direct_bench.py --threads {args.threads} --rounds {args.rounds} --set {args.set}"
            f" --batches {args.batches} --passes {args.passes}`"
            f"\n\nMedian per call over interleaved rounds (min–max). Ratios: anchor / ours, > 1 means ours is faster.\n"
            "'ours, no direct' is the same build with FASTLAYERS_CONV_DIRECT=0 (the path taken before).\n\n"
            + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
