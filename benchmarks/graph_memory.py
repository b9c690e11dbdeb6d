"""Peak memory of one training step of a ResNet-shaped graph model: fastlayers vs PyTorch CPU.

    python benchmarks/graph_memory.py [--batch 32] [--size 224] [--threads 2]
                                      [--model resnet18-nobn | zoo:resnet18] [--out benchmarks/results]

The model: ResNet-18's layout (7x7/2 stem, 3x3/2 max-pool, four stages of two basic blocks at 64, 128,
256, 512 channels with 1x1/2 projections, global average pooling, a 1000-way dense head) written
with the functional API (nn.Input / nn.Model / nn.Add). Until batch norm lands it has no batch
norm (`resnet18-nobn`); PyTorch runs the same layers. `--model zoo:NAME` takes
`fastlayers.nn.zoo.NAME(num_classes=...)` instead, against the same network in PyTorch (torchvision's
when it imports, else the ResNet below with batch norm), once the zoo exists.

Method (each measurement in a fresh process, one after the other, so that they do not share an
allocator): build the model and a random batch, run one warm-up training step (forward, softmax
cross-entropy, backward, SGD-momentum update), which leaves the one-time state behind (momentum
buffers, kernel workspaces, in both frameworks), drop what a step leaves (weight gradients, cached
activations), then measure a second step from there:
- peak RSS: the kernel's high-water mark VmHWM during the step, reset just before it
  (/proc/self/clear_refs "5"), minus VmRSS at that point: every allocation of the step, ours or
  PyTorch's, C++ workspaces included. fastlayers' block cache (fastlayers.memory) is off here
  (FASTLAYERS_ARENA=0): with it, the blocks a step frees stay resident for the next step, up to
  that peak. The processes run with MALLOC_MMAP_THRESHOLD_=65536, so
  that glibc maps every buffer of 64 KiB or more on its own and unmaps it when freed (no pooled
  free memory that a second step would reuse unseen): RSS follows the live large buffers of both
  frameworks alike (NumPy and PyTorch's CPU allocator both allocate through malloc);
- fastlayers only, tracemalloc's peak during the step: the NumPy arrays it allocated (activations,
  caches, gradients), excluding the C++ kernels' own workspaces;
- saved for backward: after a training forward, the distinct buffers the layers keep for backward
  (fastlayers: arrays in the layers' private attributes; PyTorch: the tensors autograd saves,
  through saved_tensors_hooks), parameters excluded;
- the same for an inference pass (predict / torch.no_grad) at the same batch.
The fastlayers Sequential + Residual version of the same network runs too (resnet18-nobn), to show
what the graph executor adds or saves. Step times are single steps on a shared machine: context,
not a speed figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tracemalloc

STAGES = (64, 128, 256, 512)


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --- the networks -----------------------------------------------------------------------------------

def fl_resnet18_graph(num_classes, size, nn):
    inp = nn.Input((3, size, size))
    x = nn.ReLU()(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False, init="he_normal")(inp))
    x = nn.MaxPool2d(3, stride=2, padding=1)(x)
    c = 64
    for stage, width in enumerate(STAGES):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = nn.Conv2d(c, width, 3, stride=stride, padding=1, bias=False, init="he_normal")(x)
            y = nn.Conv2d(width, width, 3, padding=1, bias=False, init="he_normal")(nn.ReLU()(y))
            skip = x if stride == 1 and c == width else nn.Conv2d(c, width, 1, stride=stride, bias=False)(x)
            x = nn.ReLU()(nn.Add()([y, skip]))
            c = width
    out = nn.Linear(512, num_classes)(nn.GlobalAvgPool2d()(x))
    return nn.Model(inp, out, loss="cross_entropy")


def fl_resnet18_sequential(num_classes, size, nn):
    layers = [nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False, init="he_normal"), nn.ReLU(),
              nn.MaxPool2d(3, stride=2, padding=1)]
    c = 64
    for stage, width in enumerate(STAGES):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            body = nn.Sequential([nn.Conv2d(c, width, 3, stride=stride, padding=1, bias=False, init="he_normal"),
                                  nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, bias=False, init="he_normal")])
            layers += [nn.Residual(body, c, width, stride), nn.ReLU()]
            c = width
    layers += [nn.GlobalAvgPool2d(), nn.Linear(512, num_classes)]
    return nn.Sequential(layers, loss="cross_entropy", input_shape=(3, size, size))


def torch_resnet18(num_classes, bn: bool):
    import torch.nn as tnn

    def norm(c):
        return tnn.BatchNorm2d(c) if bn else tnn.Identity()

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = norm(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = norm(cout)
            self.downsample = (tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False), norm(cout))
                               if stride != 1 or cin != cout else None)

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    blocks, c = [], 64
    for stage, width in enumerate(STAGES):
        for block in range(2):
            blocks.append(Block(c, width, 2 if stage > 0 and block == 0 else 1))
            c = width
    return tnn.Sequential(tnn.Conv2d(3, 64, 7, 2, 3, bias=False), norm(64), tnn.ReLU(), tnn.MaxPool2d(3, 2, 1),
                          *blocks, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(512, num_classes))


# --- one process per measurement --------------------------------------------------------------------

def _fl_saved_bytes(model) -> int:
    """Distinct buffers the layers hold in private attributes (their caches), parameters excluded."""
    import numpy as np

    seen, total = set(), 0
    stack, layers = [model], []
    while stack:
        la = stack.pop()
        if id(la) in {id(x) for x in layers}:
            continue
        layers.append(la)
        stack.extend(la.children())
    params = {id(p.data) for p in model.parameters()}
    for la in layers:
        for k, v in la.__dict__.items():
            vals = v if isinstance(v, (list, tuple)) else [v]
            for a in vals:
                if isinstance(a, np.ndarray) and id(a) not in params:
                    base = a
                    while isinstance(base.base, np.ndarray):
                        base = base.base
                    key = base.__array_interface__["data"][0]
                    if key not in seen:
                        seen.add(key)
                        total += base.nbytes
    return total


def child(kind: str, args) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, args.classes, args.batch)
    res = {"kind": kind}
    if kind.startswith("torch"):
        import torch

        torch.set_num_threads(args.threads)
        bn = args.model.startswith("zoo:")
        model = None
        if bn:
            try:
                import torchvision

                model = getattr(torchvision.models, args.model[4:])(num_classes=args.classes)
            except Exception:  # noqa: BLE001 - torchvision may not import with the CPU torch
                model = None
        if model is None:
            model = torch_resnet18(args.classes, bn)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}

        def step():
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(xt), yt)
            loss.backward()
            opt.step()

        def infer():
            with torch.no_grad():
                model(xt)

        def clear():
            opt.zero_grad(set_to_none=True)

        def saved():
            seen = {}

            def pack(t):
                st = t.untyped_storage()
                if st.data_ptr() not in params:
                    seen[st.data_ptr()] = st.nbytes()
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                model(xt)
            return sum(seen.values())
        model.train()
    else:
        import fastlayers as fl
        from fastlayers import nn, optim
        from fastlayers.bench.models import training_step

        fl.set_num_threads(args.threads)
        if args.model.startswith("zoo:"):
            from fastlayers.nn import zoo  # noqa: PLC0415 - arrives with the model zoo

            model = getattr(zoo, args.model[4:])(num_classes=args.classes)
        elif kind.startswith("fl-seq"):
            model = fl_resnet18_sequential(args.classes, args.size, nn)
        else:
            model = fl_resnet18_graph(args.classes, args.size, nn)
        loss_fn = nn.SoftmaxCrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        step = training_step(model, loss_fn, opt, x, y)

        def infer():
            model.predict(x, batch_size=args.batch)

        def clear():
            model.zero_grad()
            model.release_cache()

        def saved():
            model.forward(x, training=True)
            n = _fl_saved_bytes(model)
            model.backward(np.zeros((args.batch, args.classes), np.float32))  # consume (releases the caches)
            return n

    import gc

    work = infer if kind.endswith("-infer") else step
    work()  # warm-up: one-time state (momentum buffers, kernel workspaces) comes to exist, in both frameworks
    clear()  # and what a step leaves behind goes: weight gradients, cached activations
    gc.collect()
    rss0 = _status_kb("VmRSS")
    res["hwm_reset"] = _reset_hwm()
    traced = not kind.startswith("torch")
    if traced:
        tracemalloc.start()
    t0 = time.perf_counter()
    work()
    res["step_s"] = time.perf_counter() - t0
    if traced:
        res["peak_traced_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    res["peak_rss_delta_bytes"] = (_status_kb("VmHWM") - rss0) * 1024
    res["rss_before_bytes"] = rss0 * 1024
    if not kind.endswith("-infer"):
        gc.collect()
        res["saved_for_backward_bytes"] = saved()
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="resnet18-nobn")
    ap.add_argument("--kinds", default="fl-graph,fl-seq,torch,fl-graph-infer,fl-seq-infer,torch-infer")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)), flush=True)
        return 0

    kinds = [k for k in args.kinds.split(",") if k]
    if args.model.startswith("zoo:"):
        kinds = [k for k in kinds if not k.startswith("fl-seq")]
    results = []
    for kind in kinds:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--batch", str(args.batch), "--size",
               str(args.size), "--classes", str(args.classes), "--threads", str(args.threads), "--model", args.model]
        # Every allocation of 64 KiB or more straight from mmap and back on free (glibc; a fixed threshold
        # also stops glibc from raising it): RSS then follows the live large buffers of either framework.
        # fastlayers' block cache off (FASTLAYERS_ARENA=0): it keeps freed blocks for the next step
        # by design, so RSS before the measured step would already hold them and the step's
        # increment would hide its needs. Its kept memory equals the step's peak of live arrays.
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MALLOC_MMAP_THRESHOLD_="65536",
                   MALLOC_TRIM_THRESHOLD_="131072", FASTLAYERS_ARENA="0")
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            print(f"{kind}: failed\n{p.stderr[-2000:]}", file=sys.stderr)
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(json.dumps(r), flush=True)
        results.append(r)

    from fastlayers.bench.records import machine_info

    case = f"{args.model} N={args.batch} {args.size}x{args.size} classes={args.classes}"
    records = []
    for r in results:
        backend = "torch-cpu" if r["kind"].startswith("torch") else "cpu"
        variant = ("graph" if "graph" in r["kind"] else "sequential" if "seq" in r["kind"] else "torch")
        records.append({"op": "inference_memory" if r["kind"].endswith("-infer") else "train_step_memory",
                        "case": case, "backend": backend, "variant": variant, "threads": args.threads,
                        "median_s": r["step_s"], "min_s": r["step_s"], "max_s": r["step_s"], "reps": 1,
                        **{k: r[k] for k in ("peak_rss_delta_bytes", "peak_traced_bytes", "saved_for_backward_bytes",
                                             "rss_before_bytes", "hwm_reset") if k in r}})
    for rec in records:  # ratio against PyTorch's figure for the same op (> 1: we use less)
        anchor = next((a for a in records if a["op"] == rec["op"] and a["backend"] == "torch-cpu"), None)
        if anchor and rec["backend"] == "cpu":
            rec["anchor"] = "torch-cpu"
            rec["ratio"] = anchor["peak_rss_delta_bytes"] / max(rec["peak_rss_delta_bytes"], 1)
    os.makedirs(args.out, exist_ok=True)
    stem = f"graph-memory-{args.model.replace(':', '-')}-n{args.batch}-{args.size}"
    doc = {"machine": machine_info(args.threads), "method": __doc__.split("Method")[1].strip(), "records": records}
    with open(os.path.join(args.out, stem + ".json"), "w") as fh:
        json.dump(doc, fh, indent=1)
    mib = 1 << 20
    lines = [f"# Peak memory, {case}, {args.threads} threads", "",
             "| pass | framework | peak RSS during the step (MiB) | NumPy arrays, tracemalloc peak (MiB) | "
             "saved for backward (MiB) | PyTorch RSS / ours | time of that one step (s) |",
             "|---|---|---|---|---|---|---|"]
    for rec in records:
        name = {"graph": "fastlayers nn.Model", "sequential": "fastlayers Sequential+Residual",
                "torch": "PyTorch"}[rec["variant"]]
        traced = rec.get("peak_traced_bytes")
        saved = rec.get("saved_for_backward_bytes")
        ratio = rec.get("ratio")
        what = "training step" if rec["op"] == "train_step_memory" else "inference"
        cells = [what, name, f"{rec['peak_rss_delta_bytes'] / mib:,.0f}",
                 "" if traced is None else f"{traced / mib:,.0f}", "" if saved is None else f"{saved / mib:,.0f}",
                 "" if ratio is None else f"{ratio:.2f}", f"{rec['median_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Method: see benchmarks/graph_memory.py (a fresh process per row, glibc mapping every buffer "
              ">= 64 KiB on its own; after a warm-up step, peak RSS = VmHWM of the measured step, reset just before "
              "it, minus VmRSS then; tracemalloc over the same step; saved for backward = distinct buffers kept "
              "by a training forward, parameters excluded)."]
    with open(os.path.join(args.out, stem + ".md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
