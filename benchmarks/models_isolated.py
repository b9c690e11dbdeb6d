"""The model cases of `fastlayers bench --models`, each backend in its own process.

    python benchmarks/models_isolated.py [--threads 2] [--rounds 15] [--filter REGEX] [--out NAME]

Why: `fastlayers bench --models` interleaves the backends in one process. At 2 threads on this
2-vCPU machine that measures the thread pools as much as the kernels: after ONNX Runtime's calls
its workers spin and take the second core from libgomp's team, and the other way round. One
SGEMM 100x784x200, 2 threads, the two interleaved 20 calls at a time in one process: ours
0.52 ms with ONNX Runtime's spinning on, 0.19 ms with it off (`session.intra_op.allow_spinning`
0; ONNX Runtime then 0.24 ms).

Here every backend of a case (fastlayers' plan "cpu", ONNX Runtime, PyTorch eager, torch.compile
for the training steps) is built in its own child process (spawn), and the parent takes them in
turn, round by round in a rotating order, with a pause between turns: one process runs at a time,
each with its own library's thread pool. A turn is about round_s / backends seconds of calls;
each child reports the mean per call. The table gives medians over rounds, and the ratios
anchor / ours paired per round (median, min-max). Writes benchmarks/results/NAME.json and .md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import time
from pathlib import Path


def _serve(conn, case: dict, backend: str, threads: int):
    """Child: build `backend` for `case`, then time `k` calls whenever the parent sends k (None ends)."""
    import fastlayers as fl
    from fastlayers.bench.models import ModelCase, build_backends

    fl.set_num_threads(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    notes: list = []
    fns = build_backends(ModelCase(**case), threads, notes, want=(backend,))
    if backend not in fns:
        conn.send(("skip", "; ".join(n["reason"] for n in notes) or "not built"))
        return
    fn = fns[backend]
    for _ in range(3):
        fn()
    conn.send(("ready", ""))
    while True:
        k = conn.recv()
        if k is None:
            return
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        conn.send((time.perf_counter() - t0) / k)


def run_case(case, backends, threads, rounds, round_s, gap_s):
    ctx = mp.get_context("spawn")
    kids = {}
    for b in backends:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_serve, args=(child, vars(case), b, threads), daemon=True)
        p.start()
        kids[b] = (p, parent)
    live, skipped = {}, {}
    for b, (p, conn) in kids.items():
        status, why = conn.recv()
        if status == "ready":
            live[b] = conn
        else:
            skipped[b] = why
            p.join()
    reps = {}
    for b, conn in live.items():  # one call each, for the number of calls per turn
        conn.send(1)
        reps[b] = max(1, min(2000, int(round_s / max(len(live), 1) / max(conn.recv(), 1e-7))))
    times = {b: [] for b in live}
    names = list(live)
    for r in range(rounds):
        for b in names[r % len(names):] + names[:r % len(names)]:
            time.sleep(gap_s)
            live[b].send(reps[b])
            times[b].append(live[b].recv())
    for b, conn in live.items():
        conn.send(None)
        kids[b][0].join()
    return times, skipped


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--round-s", type=float, default=0.6, help="seconds of calls per round, all backends")
    ap.add_argument("--gap-s", type=float, default=0.05, help="pause before each turn")
    ap.add_argument("--filter", default=r"^(infer|train)_(cnn|lenet5|resnet)$", help="op names (re.search)")
    ap.add_argument("--out", default=None, help="results stem under benchmarks/results (default: print only)")
    args = ap.parse_args(argv)
    from fastlayers.bench.models import model_cases

    # One process runs at a time here, so ONNX Runtime keeps its default: workers spinning after a
    # call (the children inherit this).
    os.environ["FASTLAYERS_BENCH_ORT_SPIN"] = "1"

    rows, records = [], []
    for case in model_cases():
        if not re.search(args.filter, case.op):
            continue
        backends = ["cpu", "torch-cpu", "torch-compile"] if case.train else ["cpu", "onnxruntime", "torch-cpu"]
        times, skipped = run_case(case, backends, args.threads, args.rounds, args.round_s, args.gap_s)
        if "cpu" not in times:
            print(f"{case.op} {case.case}: ours not built ({skipped.get('cpu')})")
            continue
        ours = times["cpu"]
        line = f"| {case.op} | {case.case} | {statistics.median(ours) * 1e3:.3g} ({min(ours) * 1e3:.3g}-{max(ours) * 1e3:.3g}) |"
        for b in backends[1:]:
            if b not in times:
                line += f" not run: {skipped.get(b, '')[:60]} |"
                continue
            paired = [a / o for a, o in zip(times[b], ours)]
            line += (f" {statistics.median(times[b]) * 1e3:.3g} ms; **{statistics.median(paired):.2f}** "
                     f"({min(paired):.2f}-{max(paired):.2f}) |")
        print(line, flush=True)
        rows.append(line)
        records.append({"op": case.op, "case": case.case, "threads": args.threads,
                        "seconds": {b: t for b, t in times.items()}, "skipped": skipped})
    head = (f"# Model cases, each backend in its own process, {args.threads} thread(s), {args.rounds} rounds\n\n"
            f"`python benchmarks/models_isolated.py --threads {args.threads} --rounds {args.rounds}` on "
            f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
            "Ours: median ms (min-max over rounds). Anchors: median ms; **anchor / ours** paired per round, "
            "median (min-max); > 1: fastlayers faster.\n\n"
            "| op | case | ours ms | anchor 1 | anchor 2 |\n|---|---|---|---|---|\n"
            "| | | | inference: ONNX Runtime; training: PyTorch eager | inference: PyTorch eager; "
            "training: torch.compile |\n")
    text = head + "\n".join(rows) + "\n"
    if args.out:
        out = Path(__file__).resolve().parent / "results" / "models"
        (out / f"{args.out}.md").write_text(text)
        (out / f"{args.out}.json").write_text(json.dumps({"loadavg": os.getloadavg(), "records": records}, indent=1))
        print(f"wrote {out / args.out}.md/.json")


if __name__ == "__main__":
    main()
