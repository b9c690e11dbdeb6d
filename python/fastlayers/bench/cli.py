"""`fastlayers bench` / `python -m fastlayers.bench`: run the suite, write JSON, markdown and plots."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

from . import records as R
from . import timing

DESCRIPTION = """Benchmark fastlayers (NumPy reference, CPU kernels, CUDA kernels) against NumPy, PyTorch
and CuPy, with the machine's measured peak FLOP/s and memory bandwidth. Writes DIR/STEM.json (every
figure), DIR/STEM.md (the table, also printed) and PNG plots: DIR/STEM.png, our speed against each
anchor (anchor time / our time per case), STEM-throughput.png, STEM-roofline.png and, with a GPU,
STEM-speedup.png."""


def build_parser() -> argparse.ArgumentParser:
    from .suite import BACKENDS

    p = argparse.ArgumentParser(prog="fastlayers bench", description=DESCRIPTION)
    p.add_argument("--out", default="bench-results", metavar="DIR", help="output folder (default: ./bench-results)")
    p.add_argument("--quick", action="store_true",
                   help="small repeat counts, NumPy reference skipped on the slow cases (about 2 minutes)")
    p.add_argument("--filter", metavar="REGEX", help="only ops whose name matches (re.search), e.g. 'gemm|relu'")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for fastlayers, PyTorch and NumPy "
                   "(default: fastlayers' current count, i.e. OMP_NUM_THREADS or all cores)")
    p.add_argument("--backends", metavar="LIST", help=f"comma-separated subset of {','.join(BACKENDS)}")
    p.add_argument("--name", metavar="STEM", help="file name stem (default: from the CPU/GPU model and threads)")
    p.add_argument("--budget", type=float, metavar="SECONDS", help="timing budget per measurement "
                   f"(default {timing.FULL.seconds}, {timing.QUICK.seconds} with --quick)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--models", action="store_true",
                   help="run the model-level cases only (CNN / LeNet-5 / small ResNet inference and training "
                   "steps, CNN batch scaling) against PyTorch eager, torch.compile and ONNX Runtime, in "
                   "interleaved rounds; --filter narrows them (e.g. 'infer_')")
    p.add_argument("--heap", default="current", choices=("current", "default", "tuned", "both"),
                   help="model cases: glibc heap setting, each in a child process (tuned: "
                   "MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=68719476736; both: one run "
                   "each); current: this process as started (default)")
    p.add_argument("--compile-inference", action="store_true",
                   help="model cases: time torch.compile on the inference cases too (compiling each takes minutes "
                   "on 2 cores; training cases always include it)")
    p.add_argument("--rounds", type=int, default=15, metavar="N", help="model cases: interleaved rounds (default 15)")
    p.add_argument("--ort-spin", default="off", choices=("off", "on"),
                   help="model cases: ONNX Runtime's intra-op workers spinning after a call (its "
                   "session.intra_op.allow_spinning). Default off: interleaved in one process, its spinning "
                   "workers took the second core from our 2-thread calls (conv layers a-f 2x slower), "
                   "and measured no faster on ONNX Runtime's own calls here")
    p.add_argument("--list", action="store_true", help="list the op names and exit")
    return p


def default_stem(machine: dict, threads: int) -> str:
    """e.g. cpu-amd-epyc-2t, or gpu-nvidia-h100-80gb-hbm3-cpu-intel-xeon-platinum-8480-16t."""
    def slug(text: str, words: int) -> str:
        text = re.sub(r"\((r|tm|c)\)|\bprocessor\b|\bcpu\b|@.*$|\d+-core", " ", text, flags=re.I)
        parts = re.findall(r"[a-z0-9]+", text.lower())
        return "-".join(parts[:words]) or "unknown"

    stem = f"cpu-{slug(machine.get('cpu') or '', 4)}-{threads}t"
    if machine.get("gpu"):
        stem = f"gpu-{slug(machine['gpu'], 3)}-" + stem
    return stem


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return int(exc.code or 0)

    import fastlayers as fl

    from . import plots, probes
    from .cases import all_cases
    from .suite import BACKENDS, Environment, Runner, op_names, select, set_threads

    from . import models as M

    cases = all_cases()
    if args.list:
        print("\n".join(op_names(cases) + M.model_op_names()))
        return 0
    try:
        chosen = [] if args.models else select(cases, args.filter)
        mcases = M.model_cases()
        if args.models or args.filter:
            rx = re.compile(args.filter) if args.filter else None
            mcases = [c for c in mcases if rx is None or rx.search(c.op)]
        else:
            mcases = []
    except (ValueError, re.error) as exc:
        print(f"fastlayers bench: --filter: {exc}", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print(f"fastlayers bench: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    if not chosen and not mcases:
        print(f"fastlayers bench: no benchmark op matches --filter {args.filter!r}; the ops are:\n  "
              + ", ".join(op_names(cases)), file=sys.stderr)
        return 2
    backends = BACKENDS
    if args.backends:
        backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            print(f"fastlayers bench: unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}",
                  file=sys.stderr)
            return 2
    if args.threads is not None and args.threads < 1:
        print(f"fastlayers bench: --threads must be at least 1, got {args.threads}", file=sys.stderr)
        return 2
    if args.budget is not None and not args.budget > 0:
        print(f"fastlayers bench: --budget must be positive, got {args.budget}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    env = Environment.detect()
    threads = args.threads or fl.get_num_threads()
    numpy_threads = set_threads(threads, env)
    budget = timing.QUICK if args.quick else timing.FULL
    if args.budget:
        budget = timing.Budget(args.budget, budget.min_reps, budget.max_reps, budget.warmup)

    log = sys.stderr
    print(f"fastlayers bench: measuring peaks ({threads} thread(s))…", file=log, flush=True)
    peaks = {"cpu": probes.cpu_peaks(threads, quick=args.quick)}
    if env.gpu:
        peaks["cuda"] = probes.gpu_peaks(quick=args.quick)
    machine = R.machine_info(threads)
    print(f"fastlayers bench: {len(chosen)} case(s) on {', '.join(backends)}", file=log, flush=True)
    runner = Runner(env=env, threads=threads, budget=budget, quick=args.quick, peaks=peaks, backends=backends,
                    progress=not args.no_progress)
    records, notes = runner.run(chosen) if chosen else ([], [])
    if mcases:
        os.environ["FASTLAYERS_BENCH_ORT_SPIN"] = "1" if args.ort_spin == "on" else "0"  # children inherit it
        print(f"fastlayers bench: {len(mcases)} model case(s), {args.rounds} interleaved rounds, heap {args.heap}, "
              f"ONNX Runtime spinning {args.ort_spin}", file=log, flush=True)
        rounds, round_s = (3, 0.1) if args.quick else (args.rounds, budget.seconds / 4)
        show = (lambda m: print(f"  {m}", file=log, flush=True)) if not args.no_progress else None
        if args.heap == "current":
            mrec, mnotes = M.run_cases(mcases, threads, rounds, round_s, progress=show,
                                       compile_inference=args.compile_inference)
        else:
            heaps = ("default", "tuned") if args.heap == "both" else (args.heap,)
            mrec, mnotes = M.run_heaps(mcases, threads, heaps, rounds, round_s, progress=show,
                                       compile_inference=args.compile_inference)
        records += mrec
        notes += mnotes

    settings = {"quick": args.quick, "filter": args.filter, "threads": threads, "numpy_threads": numpy_threads,
                "budget_s": budget.seconds, "min_reps": budget.min_reps, "max_reps": budget.max_reps,
                "warmup": budget.warmup, "timer": "perf_counter (CPU), CUDA events (GPU)",
                "elapsed_s": None}
    stem = args.name or default_stem(machine, threads) + ("-quick" if args.quick else "")
    out = Path(args.out)
    plot_files = []
    if args.no_plots:
        pass
    elif not plots.have_matplotlib():
        notes.append("plots skipped: matplotlib not installed (a dependency of fastlayers: pip install matplotlib)")
    else:
        try:
            plot_files = plots.write_plots(out, stem, records, peaks)
        except Exception as exc:  # a plot must never cost the figures
            notes.append(f"plots failed: {type(exc).__name__}: {exc}")
        if plot_files and out / f"{stem}.png" not in plot_files:
            notes.append(f"{stem}.png (speed against the anchors) skipped: no anchor "
                         f"({', '.join(a for v in R.DEFAULT_ANCHORS.values() for a in v)}) was measured")
    settings["elapsed_s"] = round(time.perf_counter() - started, 1)
    settings["heap"] = args.heap if mcases else None
    paths = R.write_results(out, stem, machine, peaks, records, notes, settings)
    print(R.markdown_report(machine, peaks, records, notes, settings))
    if mcases:
        table = M.ratio_table(records)
        paths["ratios"] = out / f"{stem}-model-ratios.md"
        paths["ratios"].write_text("# Model cases: ours vs each anchor (paired ratio median (min–max) over "
                                   "interleaved rounds; > 1: fastlayers faster)\n\n" + table)
        print(table)
    for p in [*paths.values(), *plot_files]:
        print(f"wrote {p}")
    return 0
