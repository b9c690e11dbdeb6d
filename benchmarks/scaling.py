"""Data-parallel scaling on this machine (fastlayers.distributed over MPI).

    python benchmarks/scaling.py [--rounds 3] [--limit 2000] [--epochs 1] [--out benchmarks/results]

Two measurements, each launched with the mpiexec next to this Python (as root the OMPI_ALLOW_RUN_AS_ROOT
variables are set for it):

1. All-reduce bandwidth (2 ranks): float32 buffers from 4 KB to 64 MB, through our bucketed path
   (fastlayers.distributed.reducer.Reducer: the buffer's worth of gradients in 8 parameters, packed
   into 4 MB buckets and reduced with MPI_Iallreduce, as in training) against a raw
   `comm.Allreduce` of one buffer of the same size, interleaved round by round in one job; medians
   (min-max) of per-call times; bus bandwidth 2(n-1)/n x bytes / time.
2. The course CNN (nn.models.mnist_cnn) for `--epochs` epochs on the embedded MNIST subset
   (`--limit` images, global batch 64): 1 rank x 2 threads, 1 rank x 1 thread, and 2 ranks x 1
   thread with and without overlap (`--bucket-mb` buckets; the gradients are 1 MB), one launch each
   per round, the order rotated over `--rounds` rounds. Reported per configuration: median seconds per epoch, the
   time the optimizer step waited for communication (Reducer.wait_s), and, measured in the same
   job right after, one step's gradients all-reduced alone (blocking, same buckets): when the wait
   is shorter than that, communication overlapped backward.

Results: benchmarks/results/scaling-<cpu>.json and .md (fastlayers.bench.records format).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.abspath(__file__)
SIZES = [4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]


def _mpiexec():
    for c in (os.path.join(os.path.dirname(sys.executable), "mpiexec"),
              os.path.join(os.path.dirname(os.path.realpath(sys.executable)), "mpiexec")):
        if os.path.exists(c):
            return c
    import shutil

    return shutil.which("mpiexec")


def launch(n, threads, args, timeout=1800):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS=str(threads))
    cmd = [_mpiexec(), "-n", str(n), "--oversubscribe", "--bind-to", "none", sys.executable, HERE, "--worker"] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, start_new_session=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


# --- workers (run under mpiexec) -------------------------------------------------------------------
def worker_allreduce(out, reps):
    from fastlayers import distributed as dist
    from fastlayers.distributed.reducer import Reducer
    from fastlayers.nn.layers import Parameter

    dist.init()  # before mpi4py's import: init picks libnbc's ring schedule (see distributed/_comm.py)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    res = {}
    for nbytes in SIZES:
        n = nbytes // 4
        parts = np.array_split(np.arange(n), 8)
        params = [Parameter(np.zeros(len(p), np.float32), f"p{i}") for i, p in enumerate(parts) if len(p)]
        grads = [np.random.default_rng(i).standard_normal(p.size).astype(np.float32) for i, p in enumerate(params)]
        red = Reducer(params, bucket_cap_mb=4.0)
        flat = np.random.default_rng(9).standard_normal(n).astype(np.float32)
        k = max(3, min(reps, int(2e8 // max(nbytes, 1))))
        t_ours, t_raw, t_nb = [], [], []
        for _ in range(k):  # interleaved A/B
            comm.Barrier()
            t0 = time.perf_counter()
            red.start_step(1.0)
            for p, g in zip(reversed(params), reversed(grads)):
                p.grad = g
            red.finish()
            t_ours.append(time.perf_counter() - t0)
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
            t_raw.append(time.perf_counter() - t0)
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM).Wait()
            t_nb.append(time.perf_counter() - t0)
        red.detach()
        res[nbytes] = {"ours": t_ours, "raw": t_raw, "raw_nb": t_nb}
    if comm.rank == 0:
        with open(out, "w") as fh:
            json.dump({"world": comm.size, "res": res,
                       "nbc_alg": os.environ.get("OMPI_MCA_coll_libnbc_iallreduce_algorithm")}, fh)


def worker_cnn(out, limit, epochs, bucket_mb, overlap, seed=0):
    import fastlayers as fl
    from fastlayers import distributed as dist

    dist.init()
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    (x, y), _ = fl.data.load_mnist_embedded()
    x, y = x[:limit, None].astype(np.float32) / 255.0, np.asarray(y[:limit])
    model = fl.nn.models.mnist_cnn(seed=seed)
    opt = fl.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    dp = dist.DataParallel(model, bucket_cap_mb=bucket_mb, overlap=overlap)
    dp._skew_barrier = True  # a barrier before the final wait: rank skew apart from communication
    dp.fit(x[:256], y[:256], epochs=1, batch_size=64, optimizer=opt, seed=seed, verbose=0)  # warm-up
    epoch_s, wait_s, skew_s, steps = [], 0.0, 0.0, 0
    for e in range(epochs):
        comm.Barrier()
        t0 = time.perf_counter()
        dp.fit(x, y, epochs=1, batch_size=64, optimizer=opt, seed=seed + e, verbose=0)
        epoch_s.append(time.perf_counter() - t0)
        wait_s += dp.stats["wait_s"]
        skew_s += dp.stats["skew_s"]
        steps += dp.stats["steps"]
    # one step's gradients, all-reduced alone (blocking), in the same buckets
    from fastlayers.distributed.reducer import Reducer

    red = Reducer(model.parameters(), bucket_cap_mb=bucket_mb)
    red.detach()
    alone = []
    for _ in range(30):
        comm.Barrier()
        t0 = time.perf_counter()
        for b in red.buckets:
            comm.Allreduce(MPI.IN_PLACE, b.buffer, op=MPI.SUM)
        alone.append(time.perf_counter() - t0)
    waits = comm.gather(wait_s / max(steps, 1), root=0)
    skews = comm.gather(skew_s / max(steps, 1), root=0)
    epochs_all = comm.gather(epoch_s, root=0)
    if comm.rank == 0:
        with open(out, "w") as fh:
            json.dump({"world": comm.size, "threads": fl.get_num_threads(), "limit": len(x),
                       "epoch_s": [max(v) for v in zip(*epochs_all)], "wait_per_step_s": max(waits), "skew_per_step_s": max(skews),
                       "steps_per_epoch": steps // epochs, "alone_per_step_s": statistics.median(alone),
                       "grad_bytes": red.bytes_per_step, "buckets": len(red.buckets)}, fh)


# --- driver ------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--bucket-mb", type=float, default=0.25, help="bucket size for the CNN (its gradients are 1 MB)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "results"))
    ap.add_argument("--only", choices=["allreduce", "cnn"], help="run one of the two measurements")
    ap.add_argument("--worker", nargs="*")
    a = ap.parse_args()
    if a.worker is not None:
        kind, out = a.worker[0], a.worker[1]
        if kind == "allreduce":
            worker_allreduce(out, int(a.worker[2]))
        else:
            worker_cnn(out, int(a.worker[2]), int(a.worker[3]), float(a.worker[4]), a.worker[5] == "1")
        return

    from fastlayers.bench import records as R

    tmp = tempfile.mkdtemp()
    recs, notes = [], []
    lines, cnn_lines = [], []
    if a.only != "cnn":
        lines = allreduce_part(a, tmp, R, recs)
    if a.only != "allreduce":
        cnn_lines = cnn_part(a, tmp, R, recs)
    notes += ["2-core machine shared with other jobs (loaded): timings are noisy; medians (min-max) of interleaved "
              "rounds", "all-reduce: 2 ranks on one machine (shared memory); gbps is bus bandwidth 2(n-1)/n x bytes / s"]
    R.add_ratios(recs)
    machine = R.machine_info(threads=2)
    stem = "scaling-" + R.cpu_model().split()[0].lower() + "-2core" + (f"-{a.only}" if a.only else "")
    paths = R.write_results(a.out, stem, machine, {}, recs, notes=notes,
                            settings={"rounds": a.rounds, "limit": a.limit, "epochs": a.epochs, "reps": a.reps,
                                      "bucket_mb": a.bucket_mb,
                                      "command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:])})
    with open(paths["md"], "a") as fh:
        if lines:
            fh.write("\n## All-reduce (2 ranks)\n\n" + "\n".join(lines) + "\n")
        if cnn_lines:
            fh.write("\n## Course CNN epoch\n\n" + "\n".join(cnn_lines) + "\n")
    print("wrote", paths)


def allreduce_part(a, tmp, R, recs):
    print("all-reduce bandwidth, 2 ranks ...", flush=True)
    launch(2, 1, ["allreduce", f"{tmp}/ar.json", str(a.reps)])
    ar = json.load(open(f"{tmp}/ar.json"))
    bus = 2 * (ar["world"] - 1) / ar["world"]
    lines = [f"OMPI_MCA_coll_libnbc_iallreduce_algorithm={ar.get('nbc_alg')}", "",
             "| buffer | ours median ms (min-max) | raw Allreduce median ms (min-max) | raw Iallreduce+Wait median ms | "
             "ours / raw bandwidth (medians) | (minima) |", "|---:|---:|---:|---:|---:|---:|"]
    for nbytes in SIZES:
        r = ar["res"][str(nbytes)]
        case = f"{nbytes // 1024} KB float32, 2 ranks"
        recs.append(R.make_record("allreduce", case, "cpu", r["ours"], params={"bytes": nbytes, "ranks": 2},
                                  nbytes=bus * nbytes, anchor_order=("mpi-allreduce",),
                                  note="bucketed Reducer (4 MB buckets, Iallreduce)"))
        recs.append(R.make_record("allreduce", case, "mpi-allreduce", r["raw"], params={"bytes": nbytes, "ranks": 2},
                                  nbytes=bus * nbytes))
        recs.append(R.make_record("allreduce", case, "mpi-iallreduce", r["raw_nb"],
                                  params={"bytes": nbytes, "ranks": 2}, nbytes=bus * nbytes))
        mo, mr = statistics.median(r["ours"]), statistics.median(r["raw"])
        lines.append(f"| {nbytes // 1024} KB | {mo * 1e3:.3f} ({min(r['ours']) * 1e3:.3f}-{max(r['ours']) * 1e3:.3f}) | "
                     f"{mr * 1e3:.3f} ({min(r['raw']) * 1e3:.3f}-{max(r['raw']) * 1e3:.3f}) | "
                     f"{statistics.median(r['raw_nb']) * 1e3:.3f} | {mr / mo:.2f} | {min(r['raw']) / min(r['ours']):.2f} |")
    print("\n".join(lines), flush=True)
    return lines


def cnn_part(a, tmp, R, recs):
    configs = {"1x2": (1, 2, "1", "1 rank x 2 threads"), "1x1": (1, 1, "1", "1 rank x 1 thread"),
               "2x1": (2, 1, "1", f"2 ranks x 1 thread, overlap ({a.bucket_mb} MB buckets)"),
               "2x1-no-overlap": (2, 1, "0", f"2 ranks x 1 thread, reduce after backward ({a.bucket_mb} MB buckets)")}
    runs = {k: [] for k in configs}
    keys = list(configs)
    for rnd in range(a.rounds):  # interleaved, the order rotated each round
        for key in keys[rnd % len(keys):] + keys[:rnd % len(keys)]:
            n, t, ov, label = configs[key]
            print(f"CNN round {rnd + 1}/{a.rounds}: {label} ...", flush=True)
            launch(n, t, ["cnn", f"{tmp}/cnn.json", str(a.limit), str(a.epochs), str(a.bucket_mb), ov])
            runs[key].append(json.load(open(f"{tmp}/cnn.json")))
    cnn_lines = ["| configuration | s / epoch median (min-max) | steps / epoch | communication wait / step ms median "
                 "(min-max) | waiting for the slower rank / step ms | all-reduce alone / step ms | communication wait "
                 "share of epoch |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, (n, t, ov, label) in configs.items():
        ep = [s for r in runs[key] for s in r["epoch_s"]]
        waits = [r["wait_per_step_s"] for r in runs[key]]
        alone = statistics.median(r["alone_per_step_s"] for r in runs[key])
        steps = runs[key][0]["steps_per_epoch"]
        recs.append(R.make_record("train_epoch", f"mnist_cnn, {a.limit} images, global batch 64, {key}", "cpu", ep,
                                  params={"ranks": n, "threads": t, "limit": a.limit, "overlap": ov == "1",
                                          "bucket_mb": a.bucket_mb, "wait_per_step_s": statistics.median(waits),
                                          "skew_per_step_s": statistics.median(r["skew_per_step_s"] for r in runs[key]),
                                          "allreduce_alone_per_step_s": alone},
                                  threads=t, note=label))
        med = statistics.median(ep)
        wait = statistics.median(waits)
        skew = statistics.median(r["skew_per_step_s"] for r in runs[key])
        cnn_lines.append(f"| {label} | {med:.2f} ({min(ep):.2f}-{max(ep):.2f}) | {steps} | {wait * 1e3:.2f} "
                         f"({min(waits) * 1e3:.2f}-{max(waits) * 1e3:.2f}) | {skew * 1e3:.2f} | {alone * 1e3:.2f} | "
                         f"{100 * wait * steps / med:.1f}% |")
    s1 = statistics.median(s for r in runs["1x2"] for s in r["epoch_s"])
    s2 = statistics.median(s for r in runs["2x1"] for s in r["epoch_s"])
    cnn_lines.append(f"\nspeed-up of 2 ranks x 1 thread over 1 rank x 2 threads: {s1 / s2:.2f}x; gradient bytes per "
                     f"step {runs['2x1'][0]['grad_bytes']:,} in {runs['2x1'][0]['buckets']} bucket(s)")
    print("\n".join(cnn_lines), flush=True)
    return cnn_lines


if __name__ == "__main__":
    main()
