"""Speed of the ops of the conv-options / pad / interpolate / cat work, against the STREAM triad,
PyTorch CPU and the kernel path, all measured in one process as interleaved rounds (every callable of
a group once per round, in rotating order; medians with min-max), 2 threads by default:

1. pad forward/backward, every mode, (32, 64, 56, 56) padded by 1: GB/s (input + output bytes),
   percent of STREAM, PyTorch (F.pad; its backward through autograd is not timed, it has no op).
2. conv2d with padding_mode zeros (the kernels' own padding) vs reflect/replicate/circular (the pad
   op, then the kernel with padding 0), forward and backward, ANCHORS.md layers c and d, plus
   torch.nn.Conv2d with the same padding_mode: "as fast as the kernel path" is the ratio
   time(mode) / time(zeros).
3. interpolate nearest / bilinear x2 (32, 64, 56, 56) -> 112x112 forward and backward, and cat /
   cat_backward of two (32, 64, 56, 56) along axis 1: GB/s and percent of STREAM, PyTorch. Each also
   as "kernel": the compiled kernel writing into a preallocated output. The op returns a new array,
   and first-touching 100 MB of fresh pages costs here about as much as the copy itself (a fresh
   np.empty + fill of 102 MB takes ~4x a fill of an existing one); PyTorch pays the same.
4. the default conv path A/B: fastlayers.conv2d of this checkout against the conv2d wrapper of
   another checkout (default /work/main) loaded into the same process over the same compiled
   kernels, on a batch-1 LeNet layer (where Python overhead shows) and on layer c; and the same with
   this checkout's own wrapper loaded twice (A/A), which shows the spread of a comparison of equals.

    python benchmarks/convpad_speed.py [--threads 2] [--rounds 15] [--main /work/main] [--out DIR]

Writes DIR/STEM.json and .md in the results format of fastlayers.bench (records with op, case,
backend, median_s, min_s, max_s, gbps, pct_peak, anchor, ratio) and prints a summary. The machine is
shared and loaded: only ratios inside one run mean much. OMP_WAIT_POLICY defaults to passive (a
spinning OpenMP worker on a loaded 2-core machine holds the core its partner needs).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402

import fastlayers as fl  # noqa: E402
from fastlayers.bench import probes, records  # noqa: E402


def interleaved(fns: dict, rounds: int) -> dict:
    """name -> per-call times: each round calls every fn once, the order rotating round by round."""
    names = list(fns)
    for fn in fns.values():  # warm-up: page faults, OpenMP team, caches of tables
        fn()
    times = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def load_other_conv(checkout: pathlib.Path):
    """The other checkout's ops/conv.py as a module of this package (its relative imports resolve to
    this package's _backend/_checks, and so to the same compiled kernels)."""
    path = checkout / "python" / "fastlayers" / "ops" / "conv.py"
    spec = importlib.util.spec_from_file_location("fastlayers.ops._conv_ab_other", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--main", default="/work/main", help="checkout whose conv2d wrapper is the A/B baseline")
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parent / "results" / "convpad"))
    ap.add_argument("--skip", default="", help="comma list of parts to skip: pad,conv,interp,cat,ab")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    th = args.threads
    fl.set_num_threads(th)
    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(th)
    except ImportError:  # pragma: no cover
        torch = F = None
    triad = probes.cpu_triad_gbps(th, 1 << 25, 5)
    peaks = {"cpu": {"gbps": triad, "threads": th, "source": "STREAM triad (fastlayers.bench.probes)"}}
    machine = records.machine_info(th)
    recs, summary = [], []
    rng = np.random.default_rng(0)

    def add(times, op, case, backend, nbytes=None, params=None, anchor_order=("torch-cpu",)):
        recs.append(records.make_record(op, case, backend, times, params=params, nbytes=nbytes, peaks=peaks,
                                        threads=th, anchor_order=anchor_order))
        return statistics.median(times)

    n, c, h, w = 32, 64, 56, 56
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    xt = torch.from_numpy(x) if torch else None

    # 1. pad ---------------------------------------------------------------------------------
    if "pad" not in skip:
        pads = (1, 1, 1, 1)
        g = rng.standard_normal((n, c, h + 2, w + 2)).astype(np.float32)
        nbytes = x.nbytes + g.nbytes
        for mode in ("constant", "reflect", "replicate", "circular"):
            fns = {"fwd": lambda m=mode: fl.pad(x, pads, m), "bwd": lambda m=mode: fl.pad_backward(g, x, pads, m)}
            if torch:
                fns["torch"] = lambda m=mode: F.pad(xt, pads, mode=m)
            t = interleaved(fns, args.rounds)
            case = f"{n}x{c}x{h}x{w} pad 1 {mode}"
            a = add(t["fwd"], "pad", case, "cpu", nbytes)
            b = add(t["bwd"], "pad_backward", case, "cpu", nbytes)
            line = f"pad {mode:9s}: fwd {a * 1e3:6.2f} ms {nbytes / a / 1e9:5.1f} GB/s ({100 * nbytes / a / 1e9 / triad:3.0f}% STREAM)"
            if torch:
                tt = add(t["torch"], "pad", case, "torch-cpu", nbytes)
                line += f", torch {tt * 1e3:6.2f} ms ({tt / a:.2f}x)"
            line += f"; bwd {b * 1e3:6.2f} ms {nbytes / b / 1e9:5.1f} GB/s ({100 * nbytes / b / 1e9 / triad:3.0f}% STREAM)"
            summary.append(line)

    # 2. conv padding modes vs the kernel path ------------------------------------------------
    if "conv" not in skip:
        for name, (cn, cc, ch, cw, ck) in {"c": (32, 64, 56, 56, 64), "d": (16, 128, 28, 28, 128)}.items():
            cx = rng.standard_normal((cn, cc, ch, cw)).astype(np.float32)
            cw_ = (rng.standard_normal((ck, cc, 3, 3)) * 0.05).astype(np.float32)
            cb = rng.standard_normal(ck).astype(np.float32)
            cg = rng.standard_normal((cn, ck, ch, cw)).astype(np.float32)
            for direction in ("forward", "backward"):
                fns = {}
                for mode in ("zeros", "reflect", "replicate", "circular"):
                    if direction == "forward":
                        fns[mode] = lambda m=mode: fl.conv2d(cx, cw_, cb, padding=1, padding_mode=m)
                    else:
                        fns[mode] = lambda m=mode: fl.conv2d_backward(cg, cx, cw_, padding=1, padding_mode=m)
                    if torch:
                        mod = torch.nn.Conv2d(cc, ck, 3, padding=1, padding_mode=mode)
                        with torch.no_grad():
                            mod.weight.copy_(torch.from_numpy(cw_))
                            mod.bias.copy_(torch.from_numpy(cb))
                        txx = torch.from_numpy(cx)
                        if direction == "forward":
                            def tf(mod=mod, txx=txx):
                                with torch.no_grad():
                                    return mod(txx)
                        else:
                            txg = torch.from_numpy(cg)

                            def tf(mod=mod, txx=txx, txg=txg):
                                xx = txx.detach().requires_grad_()
                                mod.zero_grad()
                                mod(xx).backward(txg)
                        fns["torch " + mode] = tf
                t = interleaved(fns, max(5, args.rounds // 3))
                zero = statistics.median(t["zeros"])
                parts = []
                for mode in ("zeros", "reflect", "replicate", "circular"):
                    op = "conv2d" if direction == "forward" else "conv2d_backward"
                    case = f"{name}: N={cn} {cc}->{ck} {ch}x{cw} 3x3 p1 padding_mode={mode}"
                    m = add(t[mode], op, case, "cpu")
                    if torch:
                        add(t["torch " + mode], op, case, "torch-cpu")
                    parts.append(f"{mode} {m * 1e3:.1f} ms ({m / zero:.3f}x zeros"
                                 + (f", torch {statistics.median(t['torch ' + mode]) / m:.2f}x)" if torch else ")"))
                summary.append(f"conv {name} {direction}: " + "; ".join(parts))

    # 3. interpolate and cat -------------------------------------------------------------------
    if "interp" not in skip:
        y2 = rng.standard_normal((n, c, 2 * h, 2 * w)).astype(np.float32)
        nbytes = x.nbytes + y2.nbytes
        for mode in ("nearest", "bilinear"):
            fns = {"fwd": lambda m=mode: fl.interpolate(x, scale_factor=2, mode=m),
                   "bwd": lambda m=mode: fl.interpolate_backward(y2, x, scale_factor=2, mode=m)}
            if torch:
                y2t = torch.from_numpy(y2)
                fns["torch fwd"] = lambda m=mode: F.interpolate(xt, scale_factor=2, mode=m)
                if mode == "nearest":
                    fns["torch bwd"] = lambda: torch.ops.aten.upsample_nearest2d_backward(
                        y2t, [2 * h, 2 * w], [n, c, h, w], 2.0, 2.0)
                else:
                    fns["torch bwd"] = lambda: torch.ops.aten.upsample_bilinear2d_backward(
                        y2t, [2 * h, 2 * w], [n, c, h, w], False, 2.0, 2.0)
            from fastlayers.ops.interpolate import plan as interp_plan

            geom = interp_plan(x.shape, scale_factor=2, mode=mode)[1]
            y_pre, gx_pre = np.empty_like(y2), np.empty_like(x)
            fns["kernel fwd"] = lambda geom=geom: fl._cpu.interpolate_forward(x, y_pre, *geom)
            fns["kernel bwd"] = lambda geom=geom: fl._cpu.interpolate_backward(y2, gx_pre, *geom)
            t = interleaved(fns, args.rounds)
            case = f"{n}x{c}x{h}x{w} x2 {mode}"
            for d in ("fwd", "bwd"):
                k = add(t["kernel " + d], "interpolate" + ("" if d == "fwd" else "_backward"),
                        case + " (kernel, preallocated output)", "cpu", nbytes, anchor_order=())
                summary.append(f"interpolate {mode:8s} {d} kernel only: {k * 1e3:6.2f} ms {nbytes / k / 1e9:5.1f} GB/s "
                               f"({100 * nbytes / k / 1e9 / triad:3.0f}% STREAM)")
            for d, op in (("fwd", "interpolate"), ("bwd", "interpolate_backward")):
                m = add(t[d], op, case, "cpu", nbytes)
                line = f"interpolate {mode:8s} {d}: {m * 1e3:6.2f} ms {nbytes / m / 1e9:5.1f} GB/s ({100 * nbytes / m / 1e9 / triad:3.0f}% STREAM)"
                if torch:
                    tt = add(t["torch " + d], op, case, "torch-cpu", nbytes)
                    line += f", torch {tt * 1e3:6.2f} ms ({tt / m:.2f}x)"
                summary.append(line)
    if "cat" not in skip:
        x2 = rng.standard_normal((n, c, h, w)).astype(np.float32)
        cat_out = np.concatenate([x, x2], 1)
        nbytes = 2 * cat_out.nbytes
        fns = {"fwd": lambda: fl.cat([x, x2], 1), "bwd": lambda: fl.cat_backward(cat_out, [c, c], 1)}
        if torch:
            x2t, cot = torch.from_numpy(x2), torch.from_numpy(cat_out)
            fns["torch fwd"] = lambda: torch.cat([xt, x2t], 1)
            fns["torch bwd"] = lambda: [p.contiguous() for p in torch.split(cot, c, 1)]
        cat_pre, p1, p2 = np.empty_like(cat_out), np.empty_like(x), np.empty_like(x2)
        widths = [c * h * w, c * h * w]
        fns["kernel fwd"] = lambda: fl._cpu.cat_forward([x, x2], widths, cat_pre, n)
        fns["kernel bwd"] = lambda: fl._cpu.cat_backward(cat_out, [p1, p2], widths, n)
        t = interleaved(fns, args.rounds)
        case = f"2 x {n}x{c}x{h}x{w} axis 1"
        for d, op in (("fwd", "cat"), ("bwd", "cat_backward")):
            k = add(t["kernel " + d], op, case + " (kernel, preallocated output)", "cpu", nbytes, anchor_order=())
            summary.append(f"{op:12s} kernel only: {k * 1e3:6.2f} ms {nbytes / k / 1e9:5.1f} GB/s "
                           f"({100 * nbytes / k / 1e9 / triad:3.0f}% STREAM)")
        for d, op in (("fwd", "cat"), ("bwd", "cat_backward")):
            m = add(t[d], op, case, "cpu", nbytes)
            line = f"{op:12s}: {m * 1e3:6.2f} ms {nbytes / m / 1e9:5.1f} GB/s ({100 * nbytes / m / 1e9 / triad:3.0f}% STREAM)"
            if torch:
                tt = add(t["torch " + d], op, case, "torch-cpu", nbytes)
                line += f", torch {tt * 1e3:6.2f} ms ({tt / m:.2f}x)"
            summary.append(line)

    # 4. the default conv path, A/B against the other checkout's wrapper, and an A/A control (this
    #    checkout's own conv.py loaded a second time: the spread a no-change comparison shows here).
    here = pathlib.Path(__file__).resolve().parents[1]
    if "ab" not in skip:
        lx = rng.standard_normal((1, 6, 14, 14)).astype(np.float32)
        lw = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
        lb = rng.standard_normal(16).astype(np.float32)
        lg = rng.standard_normal((1, 16, 10, 10)).astype(np.float32)
        cx = rng.standard_normal((32, 64, 56, 56)).astype(np.float32)
        cw_ = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
        for kind, other in (("A/B", pathlib.Path(args.main)), ("A/A control", here)):
            if not (other / "python" / "fastlayers" / "ops" / "conv.py").exists():
                summary.append(f"default path {kind}: {other} has no python/fastlayers/ops/conv.py, skipped")
                continue
            base = load_other_conv(other)
            for label, fa, fb, reps in (
                    ("LeNet conv2 batch 1 forward", lambda: base.conv2d(lx, lw, lb), lambda: fl.conv2d(lx, lw, lb), 2000),
                    ("LeNet conv2 batch 1 backward", lambda: base.conv2d_backward(lg, lx, lw),
                     lambda: fl.conv2d_backward(lg, lx, lw), 1000),
                    ("layer c forward", lambda: base.conv2d(cx, cw_, padding=1), lambda: fl.conv2d(cx, cw_, padding=1),
                     1)):
                def many(f, k=reps):
                    for _ in range(k):
                        f()
                t = interleaved({"base": lambda: many(fa), "this": lambda: many(fb)}, max(9, args.rounds))
                per = {k: [v / reps for v in vals] for k, vals in t.items()}
                tag = "A/B" if kind == "A/B" else "A/A"
                a = add(per["base"], "conv2d default path", f"{label} ({tag}: wrapper of {other})", "cpu",
                        anchor_order=())
                b = add(per["this"], "conv2d default path", f"{label} ({tag}: this checkout)", "cpu", anchor_order=())
                ratios = sorted(x_ / y_ for x_, y_ in zip(t["base"], t["this"]))
                summary.append(f"default path {kind} {label}: base {a * 1e6:.1f} us, this {b * 1e6:.1f} us, "
                               f"base/this per-round median {statistics.median(ratios):.3f} "
                               f"[{ratios[0]:.3f}-{ratios[-1]:.3f}]")

    records.add_ratios(recs)
    stem = f"cpu-{th}t"
    notes = [f"STREAM triad {triad:.1f} GB/s at {th} threads, measured at the start of this run",
             "shared, loaded machine: only the ratios inside this run mean much"] + summary
    paths = records.write_results(args.out, stem, machine, peaks, recs, notes,
                                  settings={"threads": th, "rounds": args.rounds,
                                            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")})
    print(f"STREAM triad {triad:.1f} GB/s ({th} threads)")
    print("\n".join(summary))
    print(f"wrote {paths['json']} and {paths['md']}")


if __name__ == "__main__":
    main()
