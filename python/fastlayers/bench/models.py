"""Model-level cases: whole-model inference and training steps against the strongest CPU anchors.

Inference (eval mode): fastlayers' `model(x)` (the inference plan, nn/plan.py) and, for reading the
plan's effect, the same model layer by layer (backend `cpu-layers`), against PyTorch eager
(`torch-cpu`, under no_grad), optionally `torch-compile` (inductor, default mode; --compile-inference) and ONNX Runtime
(`onnxruntime`: the PyTorch model exported to ONNX, CPUExecutionProvider, all graph optimisations).
Training: one SGD-momentum step with softmax cross-entropy, fastlayers (forward, loss, backward,
update) against PyTorch eager and torch.compile. Every anchor runs the same weights as ours (copied),
and the outputs are compared before timing (a note says when they differ).

Measuring: the backends of one case are timed in interleaved rounds in one process (each round runs
every backend for about the same wall time, in rotating order), so that the machine's noise hits
them alike; a record's median_s / min_s / max_s are over the rounds, and for ours `ratios` holds,
per anchor, the median of the per-round paired ratios (anchor time / ours in the same round) with
their min and max. `anchor` / `ratio` name the primary anchor: ONNX Runtime for inference,
torch.compile for training (else PyTorch eager).

glibc's heap settings change PyTorch's times at large batches (the issue that asked for this suite
measured torch.compile CNN inference at batch 100 at 8.9-10.7 ms with the default heap and 3.2-4.7 ms
with MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736). They are read at
process start, so `run_heaps` runs the cases once per setting in a child process and tags every
record with params["heap"].
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

HEAPS = {
    "default": {},
    "tuned": {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"},
}


@dataclass
class ModelCase:
    op: str  # infer_cnn, train_resnet, train_cnn_scaling, ...
    model: str  # nn.models.build name
    batch: int
    train: bool

    @property
    def case(self) -> str:
        return f"{self.model}, batch {self.batch}"


def model_cases() -> list[ModelCase]:
    cases = []
    for name in ("cnn", "lenet5", "resnet"):
        batches = (1, 64, 100) if name == "cnn" else (1, 64)
        cases += [ModelCase(f"infer_{name}", name, b, False) for b in batches]
    cases += [ModelCase("train_cnn", "cnn", 100, True), ModelCase("train_lenet5", "lenet5", 64, True),
              ModelCase("train_resnet", "resnet", 64, True)]
    cases += [ModelCase("train_cnn_scaling", "cnn", b, True) for b in (16, 32, 64, 128, 256, 512)]
    return cases


def model_op_names() -> list[str]:
    seen = []
    for c in model_cases():
        if c.op not in seen:
            seen.append(c.op)
    return seen


# ------------------------------------------------------------------------------ PyTorch twins
def to_torch(torch, layer):
    """A torch.nn module computing what the fastlayers layer computes, with its weights copied."""
    from fastlayers import nn

    tnn = torch.nn
    if isinstance(layer, nn.Sequential):
        return tnn.Sequential(*[to_torch(torch, la) for la in layer.layers])
    if isinstance(layer, nn.Residual):
        body = to_torch(torch, layer.body)
        proj = None if layer.projection is None else to_torch(torch, layer.projection)

        class Residual(tnn.Module):
            def __init__(self):
                super().__init__()
                self.body, self.proj = body, proj

            def forward(self, x):
                return self.body(x) + (x if self.proj is None else self.proj(x))

        return Residual()
    if isinstance(layer, nn.Conv2d):
        m = tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                       layer.dilation, layer.groups, bias=layer.bias is not None)
    elif isinstance(layer, nn.Linear):
        m = tnn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    elif isinstance(layer, nn.ReLU):
        return tnn.ReLU()
    elif isinstance(layer, nn.MaxPool2d):
        return tnn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    elif isinstance(layer, nn.AvgPool2d):
        return tnn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding,
                             count_include_pad=layer.count_include_pad)
    elif isinstance(layer, nn.GlobalAvgPool2d):
        return tnn.Sequential(tnn.AdaptiveAvgPool2d(1), tnn.Flatten())
    elif isinstance(layer, nn.Flatten):
        return tnn.Flatten()
    else:
        raise NotImplementedError(f"no PyTorch twin for {type(layer).__name__}")
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.data)))
        if layer.bias is not None:
            m.bias.copy_(torch.from_numpy(np.ascontiguousarray(layer.bias.data)))
    return m


def training_step(model, loss_fn, optimizer, x, t):
    """One training step of a fastlayers model on (x, t) as a callable returning the loss: forward
    in training mode, loss, backward without the input gradient, optimizer step. The step every
    benchmark times for "ours" (the model bench, benchmarks/zoo_resnet18.py, resnet_step.py,
    unet_demo.py, graph_memory.py)."""

    def step():
        loss = loss_fn(model.forward(x, training=True), t)
        model.backward(loss_fn.backward(), need_input_grad=False)
        optimizer.step()
        return loss

    return step


def export_torch_onnx(torch, module, example) -> bytes:
    """The ONNX bytes of a PyTorch module (eval mode, TorchScript exporter: no onnxscript needed),
    input "x" and output "y" with a dynamic batch dimension, opset 17. `example`: an input array
    or tensor of the right shape. Shared by the model bench, benchmarks/interop_bench.py and the
    ONNX import tests."""
    import warnings

    module.eval()
    xt = torch.from_numpy(example) if isinstance(example, np.ndarray) else example
    buf = io.BytesIO()
    kw = dict(input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter warns about itself and its constant folding
        try:
            torch.onnx.export(module, (xt,), buf, dynamo=False, **kw)
        except TypeError:  # an older torch without the dynamo switch
            torch.onnx.export(module, (xt,), buf, **kw)
    return buf.getvalue()


def ort_session(model_bytes: bytes, threads: int):
    """An ONNX Runtime CPU session with every graph optimisation, `threads` intra-op threads. Its
    workers spin after a call only with FASTLAYERS_BENCH_ORT_SPIN=1 (`fastlayers bench --ort-spin
    on`): interleaved with our calls in one process, spinning workers take the cores our next call
    needs (benchmarks/README.md)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if os.environ.get("FASTLAYERS_BENCH_ORT_SPIN", "0") != "1":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def onnx_session(torch, module, x, threads: int):
    """An ONNX Runtime session for the PyTorch module (exported with a dynamic batch)."""
    return ort_session(export_torch_onnx(torch, module, x), threads)


# ------------------------------------------------------------------------------ builders
def _data(case: ModelCase):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, case.batch).astype(np.int64)
    return x, y


# The anchors of the targets: ONNX Runtime for inference, torch.compile for training. torch.compile
# for inference is optional (compile_inference): compiling every inference case took minutes on the
# loaded 2-core machine.
INFER_BACKENDS = ("cpu", "cpu-layers", "torch-cpu", "onnxruntime")
TRAIN_BACKENDS = ("cpu", "torch-cpu", "torch-compile")


def build_backends(case: ModelCase, threads: int, notes: list, want=None) -> dict:
    """backend name -> zero-argument callable, for the backends that can run here (the others get
    a note saying why). want: the backends to build (default INFER_BACKENDS / TRAIN_BACKENDS)."""
    if want is None:
        want = TRAIN_BACKENDS if case.train else INFER_BACKENDS
    import fastlayers as fl
    from fastlayers import nn
    from fastlayers.nn import plan as _plan

    x, y = _data(case)
    model = nn.models.build(case.model, seed=0)
    fns = {}
    try:
        import torch
    except Exception as exc:  # not installed
        torch = None
        notes.append({"op": case.op, "case": case.case, "backend": "torch-cpu", "reason": f"torch not installed ({exc})"})
    tmodel = to_torch(torch, model) if torch is not None else None

    def note(backend, reason):
        notes.append({"op": case.op, "case": case.case, "backend": backend, "reason": reason})

    if not case.train:
        model.eval()
        if "cpu" in want:
            fns["cpu"] = lambda: model(x)
        if "cpu-layers" in want:
            def layers():
                with _plan.disabled():
                    return model(x)
            fns["cpu-layers"] = layers
        ref = model(x)
        if tmodel is not None:
            tmodel.eval()
            xt = torch.from_numpy(x)

            def check(backend, fn):
                try:
                    out = fn()
                    out = out[0] if isinstance(out, list) else out
                    out = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
                    if not np.allclose(out, ref, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(ref).max()))):
                        note(backend, f"output differs from fastlayers' by {float(np.abs(out - ref).max()):.3g}")
                    fns[backend] = fn
                except Exception as exc:  # an anchor that cannot run here must not stop the suite
                    note(backend, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}")

            if "torch-cpu" in want:
                def eager():
                    with torch.no_grad():
                        return tmodel(xt)
                check("torch-cpu", eager)
            if "torch-compile" in want:
                try:
                    cm = torch.compile(tmodel)

                    def compiled():
                        with torch.no_grad():
                            return cm(xt)
                    check("torch-compile", compiled)
                except Exception as exc:
                    note("torch-compile", f"failed: {type(exc).__name__}: {str(exc)[:160]}")
            if "onnxruntime" in want:
                try:
                    sess = onnx_session(torch, tmodel, x, threads)
                    check("onnxruntime", lambda: sess.run(None, {"x": x})[0])
                except ImportError as exc:
                    note("onnxruntime", f"not installed ({exc}; pip install 'fastlayers[bench]')")
                except Exception as exc:
                    note("onnxruntime", f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        return fns

    # training: one SGD-momentum step with softmax cross-entropy
    model.train()
    opt = fl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = model.loss
    _, t = model._check_xy(x, y)

    ours = training_step(model, loss_fn, opt, x, t)
    if "cpu" in want:
        fns["cpu"] = ours
    if tmodel is not None:
        tmodel.train()
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def torch_step(m, o):
            def step():
                o.zero_grad(set_to_none=False)
                loss = torch.nn.functional.cross_entropy(m(xt), yt)
                loss.backward()
                o.step()
                return loss
            return step

        if "torch-cpu" in want:
            fns["torch-cpu"] = torch_step(tmodel, torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9))
        if "torch-compile" in want:
            try:
                tm2 = to_torch(torch, nn.models.build(case.model, seed=0)).train()
                cm = torch.compile(tm2)
                fn = torch_step(cm, torch.optim.SGD(tm2.parameters(), lr=0.01, momentum=0.9))
                fn()  # compile now (minutes on a loaded 2-core machine), outside the timing
                fns["torch-compile"] = fn
            except Exception as exc:
                note("torch-compile", f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    return fns


# ------------------------------------------------------------------------------ timing
def interleaved(fns: dict, rounds: int = 15, round_s: float = 0.25, warmup: int = 3, gap_s: float = 0.02) -> dict:
    """backend -> list of per-round seconds per call. Each round times every backend for about
    round_s / len(fns) seconds (at least one call), in an order that rotates from round to round.
    Before each backend's turn the process idles gap_s: the previous backend's pool (libgomp's team,
    ONNX Runtime's workers) keeps spinning for a while after its last call and would take the
    cores from the next one (benchmarks/omp_wait_policy.py, quiet, 2 threads: ONNX Runtime's gemm
    took 0.32 ms right after our calls, 0.18 ms after a pause). It does not remove the 2-thread
    round-to-round spread of this 2-vCPU machine (min-max often 2-5x): read medians."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    est = {}
    for name in names:
        t0 = time.perf_counter()
        fns[name]()
        est[name] = max(time.perf_counter() - t0, 1e-7)
    share = round_s / max(len(names), 1)
    reps = {n: max(1, min(1000, int(share / est[n]))) for n in names}
    out = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn, k = fns[name], reps[name]
            time.sleep(gap_s)
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            out[name].append((time.perf_counter() - t0) / k)
    return out


PRIMARY = {False: ("onnxruntime", "torch-compile", "torch-cpu"), True: ("torch-compile", "torch-cpu")}
ANCHOR_BACKENDS = ("torch-cpu", "torch-compile", "onnxruntime", "cpu-layers")


def _flops(case: ModelCase) -> float:
    """Forward multiply-adds x 2 of the model at this batch (x 3 for a training step)."""
    from fastlayers import nn

    model = nn.models.build(case.model, seed=0)
    total, shape = 0.0, (case.batch, 1, 28, 28)

    def walk(layer, shape):
        nonlocal total
        if isinstance(layer, nn.Sequential):
            for la in layer.layers:
                shape = walk(la, shape)
            return shape
        if isinstance(layer, nn.Residual):
            out = walk(layer.body, shape)
            if layer.projection is not None:
                walk(layer.projection, shape)
            return out
        if isinstance(layer, nn.Conv2d):
            n, c, h, w = shape
            (r, s), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            p, q = (h + 2 * ph - r) // sh + 1, (w + 2 * pw - s) // sw + 1
            total += 2.0 * n * layer.out_channels * c // layer.groups * r * s * p * q
            return (n, layer.out_channels, p, q)
        if isinstance(layer, nn.Linear):
            total += 2.0 * shape[0] * layer.in_features * layer.out_features
            return (shape[0], layer.out_features)
        if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            n, c, h, w = shape
            (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
            return (n, c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
        if isinstance(layer, nn.GlobalAvgPool2d):
            return shape[:2]
        if isinstance(layer, nn.Flatten):
            return (shape[0], int(np.prod(shape[1:])))
        return shape

    walk(model, shape)
    return total * (3 if case.train else 1)


def run_cases(cases: list[ModelCase], threads: int, rounds: int = 15, round_s: float = 0.25, heap: str = "current",
              progress=None, compile_inference: bool = False) -> tuple[list[dict], list]:
    """Records (the results format of records.py, plus `ratios`) and notes for the model cases."""
    from . import records as R

    records, notes = [], []
    for case in cases:
        if progress:
            progress(f"{case.op} {case.case}")
        want = None if case.train or not compile_inference else INFER_BACKENDS + ("torch-compile",)
        fns = build_backends(case, threads, notes, want)
        if not fns:
            continue
        times = interleaved(fns, rounds, round_s)
        params = {"family": "model", "model": case.model, "batch": case.batch, "train": case.train,
                  "heap": heap, "rounds": rounds}
        flops = _flops(case)
        recs = {}
        for name, ts in times.items():
            rec = R.make_record(case.op, case.case + ("" if heap == "current" else f", heap {heap}"), name, ts,
                                params=params, flops=flops, threads=threads)
            rec["per_image_ms"] = rec["median_s"] * 1e3 / case.batch
            recs[name] = rec
        if "cpu" in recs and not case.train:  # what the plan did, and its memory (the peak of a run)
            from fastlayers import nn
            from fastlayers.nn import plan as _plan

            pl = _plan.get(nn.models.build(case.model, seed=0).eval(), (case.batch, 1, 28, 28))
            if pl is not None:
                recs["cpu"]["plan"] = {"steps": pl.steps, "threads": "one" if pl.threads == 1 else "all",
                                       "arena_bytes": pl.arena_bytes, "workspace_bytes": pl.workspace_bytes,
                                       "peak_bytes": pl.peak_bytes, "weight_bytes": pl.weight_bytes}
        if "cpu" in recs:
            ours = np.array(times["cpu"])
            ratios = {}
            for a in ANCHOR_BACKENDS:
                if a in times:
                    paired = np.array(times[a]) / ours
                    ratios[a] = {"median": float(np.median(paired)), "min": float(paired.min()),
                                 "max": float(paired.max()),
                                 "of_medians": float(np.median(times[a]) / np.median(ours))}
            recs["cpu"]["ratios"] = ratios
            for a in PRIMARY[case.train]:
                if a in times:
                    recs["cpu"]["anchor"] = a
                    recs["cpu"]["ratio"] = float(np.median(times[a]) / np.median(ours))
                    break
        records += list(recs.values())
    return records, notes


def run_heaps(cases: list[ModelCase], threads: int, heaps=("default", "tuned"), rounds: int = 15,
              round_s: float = 0.25, progress=None, compile_inference: bool = False) -> tuple[list[dict], list]:
    """run_cases once per glibc heap setting, each in a child process started with that environment."""
    records, notes = [], []
    for heap in heaps:
        env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
        env.update(HEAPS[heap])
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.json")
            spec = {"ops": [[c.op, c.model, c.batch, c.train] for c in cases], "threads": threads,
                    "rounds": rounds, "round_s": round_s, "heap": heap, "out": out,
                    "compile_inference": compile_inference}
            if progress:
                progress(f"heap {heap}: child process")
            subprocess.run([sys.executable, "-m", "fastlayers.bench.models", json.dumps(spec)], env=env, check=True)
            with open(out) as fh:
                doc = json.load(fh)
        records += doc["records"]
        notes += doc["notes"]
    return records, notes


def _child(spec: dict) -> None:
    import fastlayers as fl

    fl.set_num_threads(spec["threads"])
    try:
        import torch

        torch.set_num_threads(spec["threads"])
    except ImportError:
        pass
    cases = [ModelCase(*c) for c in spec["ops"]]
    records, notes = run_cases(cases, spec["threads"], spec["rounds"], spec["round_s"], spec["heap"],
                               progress=lambda s: print(f"  [{spec['heap']}] {s}", file=sys.stderr, flush=True),
                               compile_inference=spec.get("compile_inference", False))
    with open(spec["out"], "w") as fh:
        json.dump({"records": records, "notes": notes}, fh)


def ratio_table(records: list[dict]) -> str:
    """A markdown table of our records: time, and per anchor the paired ratio median (min–max)."""
    lines = ["| op | case | ours ms (min–max) | per image ms | vs " + " | vs ".join(ANCHOR_BACKENDS) + " |",
             "|---|---|---|---|" + "---|" * len(ANCHOR_BACKENDS)]
    for r in records:
        if r["backend"] != "cpu":
            continue
        cells = []
        for a in ANCHOR_BACKENDS:
            q = (r.get("ratios") or {}).get(a)
            cells.append("—" if q is None else f"{q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f})")
        lines.append(f"| {r['op']} | {r['case']} | {r['median_s'] * 1e3:.3g} ({r['min_s'] * 1e3:.3g}–"
                     f"{r['max_s'] * 1e3:.3g}) | {r['per_image_ms']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
