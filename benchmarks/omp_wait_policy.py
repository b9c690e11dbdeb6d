"""How libgomp's waiting threads affect our 2-thread calls, quiet and on a loaded machine.

    python benchmarks/omp_wait_policy.py [--threads 2] [--rounds 9] [--out benchmarks/results]
                                         [--load N]

libgomp reads OMP_WAIT_POLICY / GOMP_SPINCOUNT once, when it loads: a thread that reaches the end
of a parallel region (or waits for the next one) spins for a while before it sleeps. On a quiet
machine the spin saves a futex wake-up per region; when other processes want the CPUs, a spinning
thread takes the time slice the thread still working (or the other processes) needed, and a
region of 100 us can take milliseconds. ONNX Runtime's own pool is the anchor here: its caller
runs the shards no worker has claimed, so it never waits for a descheduled thread.

Each setting runs in its own child process (the variables only act at load); the children take
turns, one round each with 50 ms between them, so that they see the same machine but not each
other's spinning threads. Per round and workload, a child reports
the median of a few timed calls; the table gives per-setting medians over rounds, and the ratio
ONNX Runtime / ours where ONNX Runtime is installed (> 1: fastlayers faster). --load N starts N
busy-looping processes for the run, to show the shared-machine case on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "passive"},
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
}

CHILD = r"""
import json, sys, time
import numpy as np
import fastlayers as fl
from fastlayers import nn
threads = int(sys.argv[1])
fl.set_num_threads(threads)
rng = np.random.default_rng(0)
a = rng.standard_normal((100, 784), np.float32); b = rng.standard_normal((784, 200), np.float32)
xc = rng.standard_normal((32, 64, 56, 56), np.float32) * 0 + 1
xs = rng.standard_normal((8, 64, 28, 28), np.float32); ws = rng.standard_normal((64, 64, 3, 3), np.float32) * 0.05
cnn = nn.models.build("cnn", seed=0).eval(); x1 = rng.standard_normal((1, 1, 28, 28), np.float32)
x100 = rng.standard_normal((100, 1, 28, 28), np.float32)
relu_x = rng.standard_normal(1 << 16, np.float32)
work = {
    "gemm 100x784x200": lambda: fl.gemm(a, b),
    "conv 8x64->64 28x28 3x3": lambda: fl.conv2d(xs, ws, None, 1, 1),
    "relu 64k": lambda: fl.relu(relu_x),
    "cnn predict b1": lambda: cnn(x1),
    "cnn predict b100": lambda: cnn(x100),
}
try:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    g = helper.make_graph([helper.make_node("Gemm", ["a", "b"], ["y"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, a.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(b, "b")])
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    sess = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString(),
                                so, providers=["CPUExecutionProvider"])
    work["ORT gemm 100x784x200"] = lambda: sess.run(None, {"a": a})
except ImportError:
    pass
for f in work.values():
    for _ in range(3): f()
print("ready", flush=True)
for line in sys.stdin:
    out = {}
    for name, f in work.items():
        f()  # after another workload (ORT's pool and ours share the CPUs)
        ts = []
        for _ in range(7):
            t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
        out[name] = sorted(ts)[3]
    print(json.dumps(out), flush=True)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--load", type=int, default=0, help="busy-looping processes to start for the run")
    ap.add_argument("--out", default=None, help="folder for the .json/.md results (default: print only)")
    args = ap.parse_args()

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    kids = {}
    try:
        for name, extra in SETTINGS.items():
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
            env.update(extra)
            p = subprocess.Popen([sys.executable, "-c", CHILD, str(args.threads)], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert p.stdout.readline().strip() == "ready", f"{name}: child failed to start"
            kids[name] = p
        times = {name: [] for name in kids}
        load_at_start = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, p in kids.items():
                time.sleep(0.05)  # the previous child's threads stop spinning (libgomp: well under 50 ms)
                p.stdin.write("go\n")
                p.stdin.flush()
                times[name].append(json.loads(p.stdout.readline()))
    finally:
        for p in kids.values():
            p.kill()
        for h in hogs:
            h.kill()

    work = list(next(iter(times.values()))[0])
    med = {s: {w: statistics.median(r[w] for r in times[s]) for w in work} for s in times}
    rows = [f"# libgomp wait policy, {args.threads} threads, {args.load} busy processes started, "
            f"load average at start {load_at_start:.1f}", "",
            "| workload | " + " | ".join(f"{s} (ms)" for s in times) + " |",
            "|---|" + "---|" * len(times)]
    for w in work:
        rows.append(f"| {w} | " + " | ".join(f"{med[s][w] * 1e3:.3f}" for s in times) + " |")
    if "ORT gemm 100x784x200" in work:
        rows.append("| ORT / ours, gemm | " + " | ".join(
            f"{med[s]['ORT gemm 100x784x200'] / med[s]['gemm 100x784x200']:.2f}" for s in times) + " |")
    text = "\n".join(rows) + "\n\nMedians over rounds of the median of 7 calls; settings: " + ", ".join(
        f"{s} = {SETTINGS[s] or 'no variable'}" for s in SETTINGS) + ".\n"
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"omp-wait-policy-{args.threads}t-load{args.load}"
        (out / f"{stem}.md").write_text(text)
        (out / f"{stem}.json").write_text(json.dumps({"settings": SETTINGS, "threads": args.threads,
                                                      "load": args.load, "load_average": load_at_start,
                                                      "times_s": times}, indent=1))
        print(f"wrote {out / stem}.md/.json")


if __name__ == "__main__":
    main()
