"""GPU benchmark of the fastlayers CUDA kernels (needs a CUDA build, a GPU and CuPy).

- SGEMM at 1024^3, 4096^3 and the dense-layer training shapes, every transpose the layers use,
  against cupy.matmul with CUPY_TF32=0 (cuBLAS in plain FP32); each of our kernel paths is first
  cross-checked against the one-thread-per-output reference kernel and against cuBLAS.
- Memory-bound kernels (elementwise, softmax, losses) in GB/s against a device-to-device copy of
  the same bytes.

Timing: CUDA events around each launch on CuPy's current stream, after warm-up; median (and
min/max) of --reps repeats. Writes JSON (machine + records, the project's results format) and a
markdown table. Fails with a clear message, exit status 2, when no GPU is usable.

    python benchmarks/cuda_bench.py --out benchmarks/results/cuda_<gpu>.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

os.environ["CUPY_TF32"] = "0"  # cuBLAS in FP32, not TF32: the fair anchor for an FP32 SGEMM

import numpy as np  # noqa: E402


def fail(msg: str) -> None:
    print(f"cuda_bench: {msg}", file=sys.stderr)
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
    return fl, cp


PATHS = {"auto": 0, "tile128": 1, "tile64": 2, "tile16": 3, "reference": 4}


def time_gpu(cp, fn, reps: int, warmup: int = 3):
    """Seconds per call: CUDA events around each call on the current stream."""
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


def bench_sgemm(fl, cp, reps, records):
    from fastlayers import _backend

    cu = _backend._cuda
    stream_ptr = lambda: cp.cuda.get_current_stream().ptr  # noqa: E731
    # (name, M, N, K, trans_a, trans_b): square cases, then an MLP 784-256-10 training step
    # at batch 256 and 1024 (forward x w^T, grad_x = g w, grad_w = g^T x).
    cases = [("square", 1024, 1024, 1024, False, False), ("square", 4096, 4096, 4096, False, False)]
    for batch in (256, 1024):
        cases += [
            (f"dense fwd b{batch} 784->256", batch, 256, 784, False, True),
            (f"dense grad_x b{batch} 256->784", batch, 784, 256, False, False),
            (f"dense grad_w b{batch} 256x784", 256, 784, batch, True, False),
            (f"dense fwd b{batch} 256->10", batch, 10, 256, False, True),
        ]
    rng = np.random.default_rng(0)
    for name, M, N, K, ta, tb in cases:
        A = cp.asarray(rng.standard_normal((K, M) if ta else (M, K)).astype(np.float32))
        B = cp.asarray(rng.standard_normal((N, K) if tb else (K, N)).astype(np.float32))
        C = cp.empty((M, N), cp.float32)
        lda, ldb = A.shape[1], B.shape[1]
        opA, opB = (A.T if ta else A), (B.T if tb else B)
        case = {"name": name, "M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb}
        flop = 2.0 * M * N * K

        def ours(path):
            return lambda: cu.sgemm_path(path, ta, tb, M, N, K, 1.0, A.data.ptr, lda, B.data.ptr, ldb,
                                         0.0, C.data.ptr, N, stream_ptr())

        t_blas = time_gpu(cp, lambda: cp.matmul(opA, opB, out=C), reps)
        records.append(record("sgemm", case, "cublas", t_blas, gflops=flop / t_blas[0] / 1e9))
        want = cp.matmul(opA, opB).astype(cp.float64)
        ref = cp.empty((M, N), cp.float32)
        cu.sgemm_path(PATHS["reference"], ta, tb, M, N, K, 1.0, A.data.ptr, lda, B.data.ptr, ldb, 0.0,
                      ref.data.ptr, N, stream_ptr())
        scale = float(cp.abs(want).max()) or 1.0
        for path in ("auto", "tile128", "tile64", "tile16", "reference"):
            if path == "reference" and flop > 2.0 * 1024**3:
                continue  # minutes at 4096^3; the cross-check above already ran it once
            ours(PATHS[path])()
            err_blas = float(cp.abs(C - want).max()) / scale
            err_ref = float(cp.abs(C - ref).max()) / scale
            tol = 8 * np.finfo(np.float32).eps * np.sqrt(K)
            if err_blas > tol or err_ref > tol:
                fail(f"sgemm {path} {case}: relative error {err_blas:.3g} vs cuBLAS, {err_ref:.3g} vs "
                     f"the reference kernel (tolerance {tol:.3g}): not timing a wrong kernel")
            t = time_gpu(cp, ours(PATHS[path]), reps)
            records.append(record("sgemm", dict(case, path=path), "cuda", t, gflops=flop / t[0] / 1e9,
                                  anchor="cublas", anchor_s=t_blas[0]))


def bench_memory(fl, cp, reps, records):
    from fastlayers import _backend

    be = _backend.cuda_backend()
    rng = np.random.default_rng(1)
    n = 1 << 26  # 256 MiB per float32 array: well past L2
    x = cp.asarray(rng.standard_normal(n).astype(np.float32))
    b = cp.asarray(rng.standard_normal(n).astype(np.float32))
    y = cp.empty_like(x)
    loss = cp.empty((), cp.float32)

    def copy_anchor(nbytes_in):
        # A device-to-device copy that reads and writes the same number of bytes in total.
        m = nbytes_in // 8  # floats read = floats written = half of the traffic each
        src, dst = x[:m], y[:m]
        return time_gpu(cp, lambda: cp.cuda.runtime.memcpyAsync(dst.data.ptr, src.data.ptr, m * 4,
                                                                 cp.cuda.runtime.memcpyDeviceToDevice,
                                                                 cp.cuda.get_current_stream().ptr), reps)

    # (op, kernel call, bytes moved)
    rows, dim = n // 1024, 1024
    rows10 = n // 10
    labels = cp.asarray(rng.integers(0, 10, rows10 // 4))
    cases = [
        ("relu_forward", lambda: be.run("relu_forward", x, y, n), 8 * n),
        ("sigmoid_forward", lambda: be.run("sigmoid_forward", x, y, n), 8 * n),
        ("add_forward", lambda: be.run("add_forward", x, b, y, n), 12 * n),
        ("softmax_forward rows x 1024", lambda: be.run("softmax_forward", x, y, rows, dim, 1), 8 * n),
        ("softmax_forward rows x 10", lambda: be.run("softmax_forward", x, y, rows10, 10, 1), 8 * rows10 * 10),
        ("softmax_forward axis 1 of (64, 1024, 1024)",
         lambda: be.run("softmax_forward", x, y, 64, 1024, 1024), 8 * 64 * 1024 * 1024),
        ("mse_loss_forward", lambda: be.run("mse_loss_forward", x, b, loss, n, 1.0 / n), 8 * n),
        ("softmax_cross_entropy_forward (N, 10)",
         lambda: be.run("softmax_cross_entropy_forward", x, labels, loss, labels.size, 10, 1.0),
         4 * labels.size * 10 + 8 * labels.size),
        ("sgd_update momentum", lambda: be.run("sgd_update", x, b, y, n, 1e-3, 0.9, 0.0, 0.0, False), 20 * n),
    ]
    for op, fn, nbytes in cases:
        if not be.has_kernel(op.split()[0]):
            print(f"cuda_bench: skipping {op}: no CUDA kernel in this build", file=sys.stderr)
            continue
        t = time_gpu(cp, fn, reps)
        ta = copy_anchor(nbytes)
        records.append(record(op.split()[0], {"name": op, "bytes": nbytes}, "cuda", t,
                              gbps=nbytes / t[0] / 1e9, anchor="d2d-copy", anchor_s=ta[0]))
        records.append(record("d2d-copy", {"name": op, "bytes": nbytes}, "d2d-copy", ta,
                              gbps=nbytes / ta[0] / 1e9))


def machine(cp):
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    return {
        "cpu": platform.processor() or platform.machine(),
        "gpu": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
        "driver": cp.cuda.runtime.driverGetVersion(),
        "cupy": cp.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "CUPY_TF32": os.environ.get("CUPY_TF32"),
    }


def markdown(records) -> str:
    lines = ["| op | case | backend | median ms | GFLOP/s | GB/s | ratio vs anchor |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in records:
        case = r["case"].get("name", "") + (f" [{r['case']['path']}]" if "path" in r["case"] else "")
        lines.append(
            f"| {r['op']} | {case} | {r['backend']} | {r['median_s'] * 1e3:.4f} | "
            f"{r.get('gflops', float('nan')):.0f} | {r.get('gbps', float('nan')):.0f} | "
            + (f"{r['ratio']:.2f} ({r['anchor']})" if "ratio" in r else "") + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="cuda_bench.json", help="JSON output; the .md goes beside it")
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--only", choices=["sgemm", "memory"], default=None)
    args = parser.parse_args(argv)
    fl, cp = require_gpu()
    records = []
    if args.only in (None, "sgemm"):
        bench_sgemm(fl, cp, args.reps, records)
    if args.only in (None, "memory"):
        bench_memory(fl, cp, args.reps, records)
    result = {"machine": machine(cp), "records": records}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(records)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
