"""GPU extras to `fastlayers bench`: convolution, pooling and the CNN training step against PyTorch
in plain FP32. Needs a CUDA build of fastlayers, a GPU, CuPy and, for the anchors, PyTorch with CUDA.

`fastlayers bench` on a GPU times the same conv layers and the CNN step at batch 100 against
`torch-cuda`, but with PyTorch's defaults, under which cuDNN convolutions run in TF32 (a 10-bit
mantissa): not an FP32 anchor. Here PyTorch runs with torch.backends.cudnn.allow_tf32 = False and
torch.backends.cuda.matmul.allow_tf32 = False (and cudnn.benchmark on, so cuDNN picks its fastest
FP32 algorithm). The cases are the suite's own (fastlayers.bench.cases):

- conv2d layers (a)-(f) of /work/shared/ANCHORS.md, forward and backward (`conv2d_backward`: grad_x,
  grad_w, grad_b in one call, against aten.convolution_backward with all three), plus PyTorch's
  split backward-data / backward-weight for reading the anchor table. GFLOP/s with 2*N*K*C*R*S*P*Q
  per pass. Each forward is checked against PyTorch before it is timed (max relative difference
  in the record's params; a wrong result is a note, not a time).
- Max and average pooling 3x3/2 pad 1, forward and backward (cases.window_pool_cases), in GB/s and %
  of the device copy bandwidth, against PyTorch.
- One SGD-momentum training step of the course CNN (cases.cnn_train_case) at batch 100 and 1000
  with the fastlayers op API on CuPy arrays, against the same model in PyTorch.

Dropped as redundant with the suite: pooling 2x2/2 (max, avg, forward and backward) and global
average pooling, which `fastlayers bench` measures on the same shape against the same anchors with
% of the copy bandwidth, and TF32 plays no part there.

Method and format are the suite's: timing.time_gpu (CUDA events, CuPy's for ours, PyTorch's for
PyTorch; warm-up, time budget), probes.gpu_peaks, records (JSON + markdown). Exits with status 2
and a clear message when no GPU is usable.

    python benchmarks/cuda_conv_bench.py        # -> benchmarks/results/<device>-cuda-conv-bench.json, .md
    python benchmarks/cuda_conv_bench.py --quick --only conv
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from fastlayers.bench import cases as C
from fastlayers.bench import records as R
from fastlayers.bench import timing
from fastlayers.bench.suite import require_gpu, write_checked_results

NAME = "cuda_conv_bench"
RESULTS = Path(__file__).resolve().parent / "results"
CNN_BATCHES = (100, 1000)
CHECKED = {"conv2d": lambda p: p["C"] * p["R"] * p["S"]}  # op -> reduction length of one output


def torch_fp32(torch) -> dict:
    """PyTorch in plain FP32 (no TF32 in cuDNN or cuBLAS); returns the settings for the record."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return {"torch_cudnn_allow_tf32": False, "torch_matmul_allow_tf32": False, "cudnn_benchmark": True}


def bench_cases(only: str | None = None) -> list[C.Case]:
    """conv2d (a)-(f), pooling 3x3/2 pad 1, the CNN step at each of CNN_BATCHES."""
    groups = {
        "conv": [c for c in C.conv_cases() if "layer" in c.params],  # conv1d is not one of (a)-(f)
        "pool": C.window_pool_cases(3, 2, 1),
        "cnn": [C.cnn_train_case(b) for b in CNN_BATCHES],
    }
    return [c for name, group in groups.items() if only in (None, name) for c in group]


def fp32_tolerance(length: int) -> float:
    """Max difference relative to max|reference| accepted from FP32 sums of `length` terms."""
    return 8 * float(np.finfo(np.float32).eps) * math.sqrt(length)


def case_records(case: C.Case, times: dict, peaks: dict, extra_params: dict | None = None,
                 device: str = "cuda:0") -> list[dict]:
    """Records of one case from per-call seconds per backend ('cuda', 'torch-cuda'); ours is
    compared with torch-cuda by add_ratios."""
    return [R.make_record(case.op, case.case, backend, t, params={**case.params, **(extra_params or {})},
                          flops=case.flops, nbytes=case.nbytes, peaks=peaks, device=device,
                          anchor_order=("torch-cuda",) if backend == "cuda" else None)
            for backend, t in times.items()]


def _torch_state(torch, state: dict) -> dict:
    """The same buffers as torch tensors (no copy): CuPy arrays on the GPU, NumPy ones (tests) on the CPU."""
    def tensor(v):
        if hasattr(v, "__cuda_array_interface__"):
            return torch.as_tensor(v, device="cuda")
        return torch.from_numpy(v) if isinstance(v, np.ndarray) else v
    return {k: tensor(v) for k, v in state.items()}


def run_case(case: C.Case, fl, cp, torch, budget: timing.Budget, peaks: dict, notes: list,
             timer=timing.time_gpu) -> list[dict]:
    """Check (CHECKED ops), time ours and PyTorch, and return the case's records; what cannot run
    becomes a note. cp is CuPy (NumPy and a CPU timer in the tests)."""
    def note(backend, reason):
        notes.append({"op": case.op, "case": case.case, "backend": backend, "reason": reason})

    state = case.setup(cp)
    tstate = _torch_state(torch, state) if torch is not None else None
    fns, times, extra = {}, {}, {}
    try:
        if case.ours is not None:
            fns["cuda"] = case.ours(fl, state)
        if torch is not None and case.torch_anchor is not None:
            fns["torch-cuda"] = case.torch_anchor(torch, tstate)
    except Exception as exc:  # an op missing from this build must not stop the run
        note("cuda", f"failed: {type(exc).__name__}: {str(exc)[:160]}")
        return []
    if case.op in CHECKED and len(fns) == 2:
        ours, want = cp.asarray(fns["cuda"]()), cp.asarray(fns["torch-cuda"]())
        diff = float(cp.abs(ours - want).max()) / (float(cp.abs(want).max()) or 1.0)
        extra["max_rel_diff_vs_torch"] = diff
        tol = fp32_tolerance(CHECKED[case.op](case.params))
        if not diff <= tol:
            note("cuda", f"differs from PyTorch by {diff:.3g} relative (tolerance {tol:.3g}): not timed")
            del fns["cuda"]
    for backend, fn in fns.items():
        try:
            times[backend] = timer(fn, budget, events="torch" if backend == "torch-cuda" else "cupy")
        except Exception as exc:
            note(backend, f"failed: {type(exc).__name__}: {str(exc)[:160]}")
    return case_records(case, times, peaks, extra)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(RESULTS), metavar="DIR", help="output folder (default: benchmarks/results)")
    p.add_argument("--name", metavar="STEM", help="file name stem (default: <device>-cuda-conv-bench)")
    p.add_argument("--quick", action="store_true", help="short time budget and smaller peak probes")
    p.add_argument("--budget", type=float, metavar="SECONDS", help="timing budget per measurement")
    p.add_argument("--only", choices=["conv", "pool", "cnn"], default=None)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    env = require_gpu(NAME)
    import fastlayers as fl
    from fastlayers.bench import probes
    from fastlayers.bench.cli import default_stem

    cp, torch = env.cupy, env.torch if env.torch_cuda else None
    notes = []
    settings = {"script": "benchmarks/cuda_conv_bench.py", "only": args.only}
    if torch is None:
        notes.append({"op": None, "case": None, "backend": "torch-cuda", "reason": env.unavailable["torch-cuda"]})
    else:
        settings.update(torch_fp32(torch))
    budget = timing.budget_for(args.quick, args.budget)
    settings.update(budget_s=budget.seconds, min_reps=budget.min_reps, max_reps=budget.max_reps,
                    warmup=budget.warmup, timer="CUDA events (CuPy's stream for ours, PyTorch's for PyTorch)")
    peaks = {"cuda": probes.gpu_peaks(quick=args.quick)}
    machine = R.machine_info()
    if torch is not None:
        machine["versions"]["cudnn"] = torch.backends.cudnn.version()
    records = []
    for case in bench_cases(args.only):
        print(f"{NAME}: {case.op} {case.case}", file=sys.stderr, flush=True)
        records += run_case(case, fl, cp, torch, budget, peaks, notes)
        cp.get_default_memory_pool().free_all_blocks()
    R.add_ratios(records)
    stem = args.name or default_stem(machine, machine["threads"]) + "-cuda-conv-bench"
    return write_checked_results(NAME, args.out, stem, machine, peaks, records, notes, settings)


if __name__ == "__main__":
    sys.exit(main())
