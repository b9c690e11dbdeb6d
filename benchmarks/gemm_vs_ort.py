"""SGEMM 100x784x200 (fl.gemm) against ONNX Runtime's Gemm with B a constant initialiser, in one
process, interleaved blocks of 20 calls, 15 rounds; ratio = ONNX Runtime / ours (> 1: ours faster).
Two of ours: fl.gemm(a, b), which packs B's panels on every call, and fl.gemm(a, packed) with
packed = fl.pack_gemm_b(b) made once (B constant, as ONNX Runtime's initialiser, which it prepacks
when the session is made). Each is also given as a fraction of the FMA peak (probe_peak_gflops for
the same thread count, measured between the rounds).

    python benchmarks/gemm_vs_ort.py --threads 2 [--ort-spin]

ONNX Runtime's workers do not spin after a call unless --ort-spin: interleaved with our calls their
spinning took the second core from our team (ours 0.52 ms with it, 0.19 ms without, at 2 threads).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastlayers as fl


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--ort-spin", action="store_true")
    args = ap.parse_args(argv)
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    fl.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((100, 784)).astype(np.float32)
    b = rng.standard_normal((784, 200)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["a", "b"], ["y"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [100, 784])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(b, "b")])
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    if not args.ort_spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
                                so, providers=["CPUExecutionProvider"])
    assert np.allclose(sess.run(None, {"a": a})[0], fl.gemm(a, b), rtol=1e-4, atol=1e-3)
    packed = fl.pack_gemm_b(b)
    assert np.allclose(fl.gemm(a, packed), fl.gemm(a, b), rtol=1e-4, atol=1e-3)
    fns = {"ours": lambda: fl.gemm(a, b), "ours, B packed once": lambda: fl.gemm(a, packed),
           "onnxruntime": lambda: sess.run(None, {"a": a})}
    peaks = []
    ts = {k: [] for k in fns}
    for _ in range(args.rounds):
        for k, f in fns.items():
            for _ in range(3):
                f()
            t0 = time.perf_counter()
            for _ in range(20):
                f()
            ts[k].append((time.perf_counter() - t0) / 20)
        peaks.append(fl._cpu.probe_peak_gflops("", args.threads, 1 << 20, 3))
    peak = statistics.median(peaks)
    flops = 2 * 100 * 784 * 200

    def report(k):
        paired = [o / u for o, u in zip(ts["onnxruntime"], ts[k])]
        t = statistics.median(ts[k])
        return (f"{k} {t * 1e3:.3f} ms ({flops / t / 1e9 / peak:.0%} of peak), ratio {statistics.median(paired):.2f} "
                f"({min(paired):.2f}-{max(paired):.2f})")

    t_ort = statistics.median(ts["onnxruntime"])
    print(f"threads {args.threads}, ONNX Runtime spinning {'on' if args.ort_spin else 'off'}, FMA peak {peak:.0f} GFLOP/s: "
          f"ONNX Runtime {t_ort * 1e3:.3f} ms ({flops / t_ort / 1e9 / peak:.0%} of peak); "
          + "; ".join(report(k) for k in ("ours", "ours, B packed once")))


if __name__ == "__main__":
    main()
