"""Smoke pass over the CUDA kernels for a GPU session (benchmarks/gpu_session.sh): every SGEMM
path (with and without K splits, all four transposes) and every op family once, on small shapes,
each compared with the CPU kernels (NumPy arrays). Meant to run under CUDA_LAUNCH_BLOCKING=1 (a
fault names its launch) and, with --tiny, under compute-sanitizer memcheck / racecheck.

Prints one line per check and writes them as JSON (--out); exit status 1 when a check fails, 2
when no GPU is usable.

    CUDA_LAUNCH_BLOCKING=1 python benchmarks/gpu_smoke.py --out smoke.json
    compute-sanitizer --tool memcheck python benchmarks/gpu_smoke.py --tiny
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback

import numpy as np

# _cuda.sgemm_path ids (csrc/cuda/gemm_plan.h: Path)
SGEMM_PATHS = {"auto": 0, "tile128": 1, "tile64": 2, "tile32": 3, "reference": 4, "tile16x64": 5, "tile16x8": 6,
               "narrow": 7}


def tol(k: int) -> float:
    return 8 * float(np.finfo(np.float32).eps) * math.sqrt(max(k, 1)) * 4


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return float("inf")
    ok = ~np.isnan(want)
    scale = max(float(np.abs(want[ok]).max()) if ok.any() else 1.0, 1e-30)
    return float(np.abs(got[ok] - want[ok]).max() / scale) if ok.any() else 0.0


def host(a):
    """A result as a NumPy array (CuPy arrays copied back; None as empty)."""
    if a is None:
        return np.zeros(0)
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


class Checks:
    def __init__(self):
        self.rows = []

    def run(self, name: str, fn, limit: float):
        try:
            err = fn()
            ok = err <= limit
            self.rows.append({"check": name, "max_rel_err": err, "tolerance": limit, "ok": bool(ok)})
            print(f"{'ok  ' if ok else 'FAIL'} {name}: max rel err {err:.3g} (tol {limit:.3g})", flush=True)
        except Exception as exc:  # a CUDA error or a wrong shape: recorded, the pass goes on
            self.rows.append({"check": name, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc()


def sgemm_checks(cp, checks: Checks, tiny: bool):
    from fastlayers import _backend

    cu = _backend._cuda
    rng = np.random.default_rng(0)
    sizes = [(37, 45, 70)] if tiny else [(37, 45, 70), (130, 129, 21), (257, 131, 67), (100, 10, 200), (10, 200, 100)]
    for path, pid in SGEMM_PATHS.items():
        for m, n, k in sizes:
            for ta in (False, True):
                for tb in (False, True):
                    for splits in ((0,) if path == "reference" else (0, 3)):
                        if tiny and (ta, tb) not in ((False, False), (True, True)):
                            continue
                        A = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
                        B = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
                        want = (A.T if ta else A).astype(np.float64) @ (B.T if tb else B).astype(np.float64)

                        def one(A=A, B=B, want=want, m=m, n=n, k=k, ta=ta, tb=tb, splits=splits, pid=pid):
                            Ad, Bd = cp.asarray(A), cp.asarray(B)
                            C = cp.full((m, n), cp.nan, cp.float32)
                            ws = cp.empty((max(3 * m * n, 1),), cp.float32)
                            cu.sgemm_path(pid, splits, ta, tb, m, n, k, 1.0, Ad.data.ptr, A.shape[1], Bd.data.ptr,
                                          B.shape[1], 0.0, C.data.ptr, n, ws.data.ptr, ws.size,
                                          cp.cuda.get_current_stream().ptr)
                            return rel_err(C.get(), want)

                        checks.run(f"sgemm {path} splits={splits} {m}x{n}x{k} ta={ta} tb={tb}", one, tol(k))


def op_checks(cp, checks: Checks, tiny: bool):
    import fastlayers as fl

    rng = np.random.default_rng(1)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def same(fn, *args, k=1, **kw):
        """fn on CuPy copies of args against fn on the NumPy args (the CPU kernels)."""
        def run():
            got = fn(*[cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args], **kw)
            want = fn(*args, **kw)
            got = got if isinstance(got, tuple) else (got,)
            want = want if isinstance(want, tuple) else (want,)
            return max(rel_err(host(g), host(w)) for g, w in zip(got, want))
        return run, tol(k)

    convs = [((2, 3, 9, 8), (4, 3, 3, 3), 1, 1, 1, 1), ((2, 4, 11, 10), (6, 2, 3, 2), (2, 3), (1, 0), (2, 1), 2),
             ((2, 3, 23, 21), (4, 3, 11, 11), 4, 2, 1, 1), ((1, 1, 12, 11), (5, 1, 5, 5), 1, 0, 1, 1),
             ((2, 6, 7, 7), (6, 1, 3, 3), 1, 1, 1, 6)]
    if tiny:
        convs = convs[:3]
    for xs, ws, st, pad, dil, g in convs:
        x, w, b = r(*xs), r(*ws), r(ws[0])
        y = fl.conv2d(x, w, b, st, pad, dil, g)
        gy = r(*y.shape)
        red = ws[1] * ws[2] * ws[3]
        checks.run(f"conv2d {xs} w{ws} s{st} p{pad} d{dil} g{g}", *same(fl.conv2d, x, w, b, st, pad, dil, g, k=red))
        checks.run(f"conv2d_backward {xs} w{ws} s{st} p{pad} d{dil} g{g}",
                   *same(fl.conv2d_backward, gy, x, w, st, pad, dil, g, k=max(red, y.size // ws[0])))
    p = r(33, 70)
    checks.run("linear", *same(fl.linear, p, r(20, 70), r(20), k=70))
    checks.run("linear_backward", *same(fl.linear_backward, r(33, 20), p, r(20, 70), k=70))
    for shape, axis in (((7, 10), -1), ((5, 300), -1), ((3, 2000), -1), ((4, 6, 5), 1)):
        x = r(*shape)
        checks.run(f"softmax {shape} axis={axis}", *same(fl.softmax, x, axis=axis, k=shape[axis]))
        checks.run(f"log_softmax {shape} axis={axis}", *same(fl.log_softmax, x, axis=axis, k=shape[axis]))
        yv = fl.softmax(x, axis=axis)
        checks.run(f"softmax_backward {shape}", *same(fl.softmax_backward, r(*shape), yv, axis=axis, k=shape[axis]))
    x = r(1003)
    for name in ("relu", "sigmoid", "tanh"):
        checks.run(name, *same(getattr(fl, name), x))
    checks.run("relu_backward", *same(fl.relu_backward, r(1003), x))
    checks.run("dropout", *same(fl.dropout, x, 0.3, seed=7))
    checks.run("dropout_backward", *same(fl.dropout_backward, x, 0.3, seed=7))
    xp4 = r(2, 3, 9, 9)
    checks.run("max_pool2d", *same(fl.max_pool2d, xp4, 3, 2, 1))
    checks.run("avg_pool2d", *same(fl.avg_pool2d, xp4, 3, 2, 1, k=9))
    checks.run("add", *same(fl.add, x, r(1003)))
    checks.run("mse_loss", *same(fl.mse_loss, x, r(1003), k=1003))
    z, lab = r(33, 10), rng.integers(0, 10, 33)
    checks.run("softmax_cross_entropy", *same(fl.softmax_cross_entropy, z, lab, k=330))
    checks.run("softmax_cross_entropy_backward", *same(fl.softmax_cross_entropy_backward, z, lab, k=10))

    def sgd():
        pa, ga, va = r(1000), r(1000), r(1000)
        pd, gd, vd = cp.asarray(pa), cp.asarray(ga), cp.asarray(va)
        fl.sgd_update(pa, ga, va, lr=0.1, momentum=0.9)
        fl.sgd_update(pd, gd, vd, lr=0.1, momentum=0.9)
        return max(rel_err(host(pd), pa), rel_err(host(vd), va))

    checks.run("sgd_update", sgd, tol(1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="fewest shapes (for compute-sanitizer)")
    ap.add_argument("--out", metavar="FILE", help="write the checks as JSON")
    ap.add_argument("--only", choices=["sgemm", "ops"])
    args = ap.parse_args(argv)
    import fastlayers as fl

    if not fl.cuda.is_available():
        print("gpu_smoke: no GPU (or CuPy) usable here: nothing to check", file=sys.stderr)
        return 2
    import cupy as cp

    checks = Checks()
    if args.only in (None, "sgemm"):
        sgemm_checks(cp, checks, args.tiny)
    if args.only in (None, "ops"):
        op_checks(cp, checks, args.tiny)
    cp.cuda.Device().synchronize()
    failed = [c for c in checks.rows if not c["ok"]]
    print(f"{len(checks.rows)} checks, {len(failed)} failed", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"device": fl.cuda.device_name(0), "checks": checks.rows}, fh, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
