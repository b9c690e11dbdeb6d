"""`fastlayers run MODEL.onnx`: run an ONNX model on fastlayers' kernels (and, when installed, on
ONNX Runtime for comparison): load, read or draw the input, time, print the top classes, save."""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np


def add_parser(sub):
    r = sub.add_parser("run", help="run an ONNX model on fastlayers' kernels",
                       description="Run an ONNX model on input from a .npy file, an image or random numbers; "
                                   "print the top classes and the latency (against ONNX Runtime when it is "
                                   "installed) and save the output as .npy.")
    r.add_argument("model", metavar="MODEL.onnx", help="the ONNX file")
    r.add_argument("--input", metavar="PATH", help="input: a .npy file (the whole batch, or one sample) or an image "
                                                   "(.png/.jpg; needs Pillow); default: random normal numbers")
    r.add_argument("--batch", type=int, default=1, help="batch size of the random input (default 1)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    r.add_argument("--input-shape", metavar="C,H,W", help="per-sample input shape, if the file leaves it symbolic")
    r.add_argument("--output", metavar="PATH", help="where to save the output (.npy; default MODEL.output.npy)")
    r.add_argument("--top", type=int, default=5, help="top classes to print for (N, classes) output (default 5)")
    r.add_argument("--repeat", type=int, default=10, help="timed runs for the latency medians (default 10)")
    r.add_argument("--no-compare", action="store_true", help="do not run ONNX Runtime")
    r.add_argument("--threads", type=int, help="CPU threads for the kernels")
    return r


def _read_input(args, shape):
    if args.input is None:
        rng = np.random.default_rng(args.seed)
        return rng.standard_normal((args.batch,) + tuple(shape)).astype(np.float32), "random normal"
    path = args.input
    if not os.path.exists(path):
        raise ValueError(f"--input {path!r}: no such file")
    if path.endswith(".npy"):
        x = np.load(path, allow_pickle=False)
    elif path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            x = z[z.files[0]]
    else:
        try:
            from PIL import Image
        except ImportError:
            raise ValueError(f"--input {path!r}: reading images needs Pillow (pip install pillow); "
                             f"or pass a .npy file") from None
        c, h, w = shape if len(shape) == 3 else (1,) + tuple(shape)
        img = Image.open(path).convert("L" if c == 1 else "RGB").resize((w, h))
        x = np.asarray(img, np.float32) / 255.0
        x = x[None] if c == 1 else x.transpose(2, 0, 1)
    x = np.asarray(x, np.float32)
    if x.shape == tuple(shape):
        x = x[None]
    if x.shape[1:] != tuple(shape):
        raise ValueError(f"--input {path!r}: the model takes per-sample shape {tuple(shape)}, the file holds "
                         f"{x.shape}")
    return x, path


def _median_ms(fn, repeat):
    fn()  # warm-up (first-touch page faults, plan caches)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, min(times) * 1e3, max(times) * 1e3


def run(args) -> int:
    from .. import set_num_threads
    from . import load

    if args.threads:
        set_num_threads(args.threads)
    if args.batch < 1 or args.repeat < 1 or args.top < 0:
        raise ValueError("--batch and --repeat must be >= 1, --top >= 0")
    shape = tuple(int(s) for s in args.input_shape.split(",")) if args.input_shape else None
    if not os.path.exists(args.model):
        raise ValueError(f"{args.model!r}: no such file")
    model = load(args.model, input_shape=shape)
    if isinstance(model.input, list):
        raise ValueError(f"{args.model}: models with several inputs are not supported by `fastlayers run`")
    x, source = _read_input(args, model.input_shape)
    print(f"model {args.model}: input {tuple(x.shape)} ({source})")
    y = model.predict(x)
    ys = y if isinstance(y, list) else [y]
    med, lo, hi = _median_ms(lambda: model.predict(x), args.repeat)
    print(f"fastlayers: {med:.3f} ms median ({lo:.3f}-{hi:.3f}) over {args.repeat} runs")
    if not args.no_compare:
        try:
            import onnxruntime as ort
        except ImportError:
            print("onnxruntime: not installed (pip install onnxruntime to compare)")
        else:
            so = ort.SessionOptions()
            if args.threads:
                so.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: x}
            ref = sess.run(None, feed)
            omed, olo, ohi = _median_ms(lambda: sess.run(None, feed), args.repeat)
            diff = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(ys, ref))
            print(f"onnxruntime {ort.__version__}: {omed:.3f} ms median ({olo:.3f}-{ohi:.3f}); "
                  f"ratio {omed / med:.2f} (> 1: fastlayers faster); max |difference| {diff:.3g}")
    out = ys[0]
    if args.top and out.ndim == 2:
        k = min(args.top, out.shape[1])
        for i, row in enumerate(out[:8]):
            top = np.argsort(-row, kind="stable")[:k]
            print(f"sample {i}: top {k} classes " + ", ".join(f"{c} ({row[c]:.4g})" for c in top))
        if len(out) > 8:
            print(f"... ({len(out) - 8} more samples)")
    path = args.output or os.path.splitext(args.model)[0] + ".output.npy"
    np.save(path, out)
    print(f"saved the output {tuple(out.shape)} to {path}")
    return 0


def main(args) -> int:
    try:
        return run(args)
    except ImportError as e:
        print(f"fastlayers run: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"fastlayers run: error: {e}", file=sys.stderr)
        return 2
