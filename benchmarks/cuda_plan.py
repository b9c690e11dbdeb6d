"""What the CUDA kernels will do on an H100 / H200, without a GPU: tiles, FLOP efficiency, waves,
and the registers, shared memory and spills that ptxas reports for sm_90.

For conv layers (a)-(f) of ANCHORS.md (each pass) and the dense training shapes (the MLP 784-256-10
at batch 256, the course CNN's 1024-200-10 head at batch 100: forward, grad_x, grad_w of every
layer), it prints the tile the launchers choose (the planners of csrc/cuda/conv_plan.h and
gemm_plan.h, through fastlayers._cuda.conv2d_plan / sgemm_plan, with 132 SMs), the issued versus
useful FLOPs of those tiles (useful: the implicit GEMM's own multiply-adds — for a strided
backward-data pass the taps of its stride phases, so the zero taps of the unsplit formulation do
not count; issued: what the launched tiles compute, padding included), blocks, blocks per SM and
waves on 132 SMs. Then, from `nvcc -Xptxas -v` on every csrc/cuda/*.cu for sm_90: each kernel's
registers, static shared memory and spill bytes, its resident blocks per SM, and whether registers
alone hold it to one block per SM. The last line is `min_tile_efficiency=<f>`, the worst case.

Exit status 0 when every tile keeps >= 85% of its FLOPs useful, no kernel spills and none is held
to one block per SM by its registers; 1 otherwise; 2 when the CUDA extension is not built.

    python benchmarks/cuda_plan.py               # plans + ptxas (about a minute of nvcc)
    python benchmarks/cuda_plan.py --no-ptxas    # plans only
    python benchmarks/cuda_plan.py --json plan.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMS = 132  # H100 SXM / H200
# sm_90 per-SM limits (CUDA occupancy calculator): registers, threads, blocks, shared memory.
SM90 = {"regs": 65536, "reg_unit": 256, "max_regs_per_thread": 255, "threads": 2048, "blocks": 32,
        "smem": 228 * 1024, "smem_reserved": 1024}
MIN_EFFICIENCY = 0.85
PASSES = ("forward", "backward_data", "backward_weight")


def conv_layers():
    from fastlayers.bench.cases import CONV_LAYERS

    out = []
    for name, n, c, h, w, k, r, s, stride, pad in CONV_LAYERS:
        p = (h + 2 * pad - r) // stride + 1
        q = (w + 2 * pad - s) // stride + 1
        out.append((name, (n, c, h, w, k, r, s, p, q, stride, stride, pad, pad, 1, 1, 1)))
    return out


def dense_shapes():
    """(label, M, N, K, trans_a, trans_b) of every GEMM of the dense training steps."""
    shapes = []
    for batch, sizes in ((256, (784, 256, 10)), (100, (1024, 200, 10))):
        for fin, fout in zip(sizes[:-1], sizes[1:]):
            shapes += [(f"b{batch} {fin}->{fout} forward", batch, fout, fin, False, True),
                       (f"b{batch} {fin}->{fout} grad_x", batch, fin, fout, False, False),
                       (f"b{batch} {fin}->{fout} grad_w", fout, fin, batch, True, False)]
    return shapes


# ------------------------------------------------------------------------------------ ptxas
def parse_ptxas(text: str) -> dict:
    """{mangled kernel name: {"arch", "regs", "smem", "spill"}} from `ptxas -v` output."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for '(sm_\d+)'", line)
        if m:
            cur = m.group(1)
            out[cur] = {"arch": m.group(2), "regs": None, "smem": 0, "spill": 0}
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            out[cur]["spill"] = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            out[cur]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            out[cur]["smem"] = int(s.group(1)) if s else 0
    return out


def demangle(names: list[str]) -> list[str]:
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if tool is None or not names:
        return list(names)
    done = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=False)
    lines = done.stdout.split("\n")
    return [re.sub(r"\(.*$", "", d).replace("fastlayers::cuda::", "") if d else n for n, d in zip(names, lines)]


def run_ptxas(arch: str = "sm_90", jobs: int = 2) -> list[dict]:
    """Compile every csrc/cuda/*.cu for `arch` with ptxas -v; one record per kernel."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise RuntimeError("nvcc is not on PATH")
    sources = sorted((ROOT / "csrc" / "cuda").glob("*.cu"))

    def one(src: Path) -> str:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [nvcc, "-std=c++17", "-O3", f"-arch={arch}", f"-I{ROOT / 'csrc'}", "-Xptxas", "-v", "-c", str(src),
                   "-o", str(Path(tmp) / "k.o")]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"nvcc failed on {src.name}:\n{done.stderr[-3000:]}")
            return done.stdout + done.stderr

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        texts = list(pool.map(one, sources))
    kernels = {}
    for src, text in zip(sources, texts):
        for name, info in parse_ptxas(text).items():
            kernels[name] = {**info, "file": src.name}
    names = list(kernels)
    return [{"mangled": n, "name": d, **kernels[n]} for n, d in zip(names, demangle(names))]


def occupancy(regs: int, smem: int, threads: int) -> dict:
    """Resident blocks per SM on sm_90 and what limits them."""
    warps = math.ceil(threads / 32)
    regs_per_warp = math.ceil(max(regs, 1) * 32 / SM90["reg_unit"]) * SM90["reg_unit"]
    by_regs = (SM90["regs"] // regs_per_warp) // warps
    by_threads = SM90["threads"] // threads
    by_smem = SM90["smem"] // (smem + SM90["smem_reserved"])
    blocks = min(by_regs, by_threads, by_smem, SM90["blocks"])
    return {"blocks_per_sm": blocks, "by_regs": by_regs, "by_threads": by_threads, "by_smem": by_smem}


def kernel_threads(name: str) -> int | None:
    """Block size of a kernel, from its template arguments (the tile kernels) or its launcher."""
    m = re.search(r"conv_gemm_kernel<[^,]+<[a-z]+>, (\d+), (\d+), (\d+), (\d+), \d+, \d+>", name)
    if m:
        bm, bn, tm, tn = map(int, m.groups())
        return (bm // tm) * (bn // tn)
    m = re.search(r"sgemm_warp<(\d+), (\d+), \d+, (\d+), (\d+),", name)
    if m:
        bm, bn, wm, wn = map(int, m.groups())
        return (bm // wm) * (bn // wn) * 32
    if "sgemm_narrow" in name or "softmax_forward_warp" in name or "softmax_backward_warp" in name:
        return 128
    return 256  # every other launcher: 256 threads (kThreadsPerBlock, the block and bias kernels)


# ------------------------------------------------------------------------------------ plans
def plans(cu) -> list[dict]:
    rows = []
    for name, shape in conv_layers():
        for pass_id, pass_name in enumerate(PASSES):
            p = cu.conv2d_plan(shape, pass_id, SMS)
            rows.append({"kind": "conv", "case": f"conv ({name}) {pass_name}", "layer": name, "pass": pass_name,
                         "shape": shape, "kernel": "conv_gemm_kernel", "tile": p["tile"],
                         "match": r"conv_gemm_kernel<conv_detail::%s<int>, %d, %d, %d, %d, %d, %d>" % (
                             {"forward": "ForwardOp", "backward_data": "BackwardDataOp",
                              "backward_weight": "BackwardWeightOp"}[pass_name],
                             p["bm"], p["bn"], p["tm"], p["tn"], p["bk"], p["min_blocks"]),
                         "threads": p["threads"], "splits": p["splits"], "sub_problems": p["z_count"],
                         "blocks": p["blocks"], "useful_flops": p["useful_flops"], "issued_flops": p["issued_flops"],
                         "efficiency": p["efficiency"], "waves_model": p["waves"]})
    for label, m, n, k, ta, tb in dense_shapes():
        p = cu.sgemm_plan(m, n, k, SMS, 0, 0)
        if p["path"] == "narrow":
            ka, kb = (not tb, not ta) if p["transposed"] else (ta, tb)
            match = r"sgemm_narrow<%s, %s, %d, %s>" % (str(ka).lower(), str(kb).lower(), p["tpr"],
                                                      str(p["transposed"]).lower())
        else:
            bm, bn, bk = p["tile"]
            match = r"sgemm_warp<%d, %d, %d, \d+, \d+, \d+, \d+, %s, %s, true," % (bm, bn, bk, str(ta).lower(),
                                                                                 str(tb).lower())
        rows.append({"kind": "dense", "case": f"dense {label}", "shape": (m, n, k, ta, tb), "kernel": p["path"],
                     "tile": p["kernel"], "match": match, "threads": p["threads"], "splits": p["splits"],
                     "sub_problems": p["splits"], "blocks": p["blocks"], "useful_flops": p["useful_flops"],
                     "issued_flops": p["issued_flops"], "efficiency": p["efficiency"], "waves_model": p["waves"]})
    return rows


def attach_ptxas(rows: list[dict], kernels: list[dict]) -> None:
    for r in rows:
        hit = [k for k in kernels if re.search(r["match"], k["name"])]
        if not hit:
            r["ptxas"] = None
            continue
        k = max(hit, key=lambda k: (k["regs"] or 0))  # the variants' worst (TA/TB/float4 flavours)
        occ = occupancy(k["regs"], k["smem"], r["threads"])
        r["ptxas"] = {"kernel": k["name"], "regs": k["regs"], "smem": k["smem"], "spill": k["spill"], **occ}
        r["waves"] = r["blocks"] / (SMS * occ["blocks_per_sm"])


# ------------------------------------------------------------------------------------ report
def report(rows: list[dict], kernels: list[dict] | None) -> tuple[list[str], list[str]]:
    """Printed lines and the problems found."""
    lines, problems = [], []
    head = (f"{'case':<34} {'tile':<44} {'useful GF':>9} {'issued GF':>9} {'eff':>6} {'blocks':>7} {'splits':>6} "
            f"{'regs':>5} {'smem':>6} {'spill':>5} {'blk/SM':>6} {'waves':>6}")
    lines += [f"Tiles on {SMS} SMs (sm_90 limits); efficiency = useful / issued FLOPs", head, "-" * len(head)]
    for r in rows:
        px = r.get("ptxas")
        regs = smem = spill = bps = "-"
        waves = f"{r['waves_model']:.2f}"
        if px:
            regs, smem, spill, bps = px["regs"], px["smem"], px["spill"], px["blocks_per_sm"]
            waves = f"{r['waves']:.2f}"
        lines.append(f"{r['case']:<34} {r['tile'][:44]:<44} {r['useful_flops'] / 1e9:>9.3f} {r['issued_flops'] / 1e9:>9.3f} "
                     f"{r['efficiency']:>6.3f} {r['blocks']:>7} {r['splits']:>6} {regs:>5} {smem:>6} {spill:>5} "
                     f"{bps:>6} {waves:>6}")
        if r["efficiency"] < MIN_EFFICIENCY:
            problems.append(f"{r['case']}: tile efficiency {r['efficiency']:.3f} < {MIN_EFFICIENCY}")
        if kernels is not None and px is None:
            problems.append(f"{r['case']}: no ptxas record matches {r['match']}")
    if kernels is not None:
        lines += ["", f"ptxas -v, sm_90: every kernel ({len(kernels)})",
                  f"{'regs':>5} {'smem':>6} {'spill':>5} {'thr':>4} {'blk/SM':>6} {'limit':>7}  kernel"]
        for k in sorted(kernels, key=lambda k: (k["file"], k["name"])):
            threads = kernel_threads(k["name"])
            occ = occupancy(k["regs"] or 0, k["smem"], threads)
            limit = min(("regs", occ["by_regs"]), ("threads", occ["by_threads"]), ("smem", occ["by_smem"]),
                        ("blocks", SM90["blocks"]), key=lambda t: t[1])[0]
            lines.append(f"{k['regs']:>5} {k['smem']:>6} {k['spill']:>5} {threads:>4} {occ['blocks_per_sm']:>6} "
                         f"{limit:>7}  {k['name'][:140]}")
            if k["spill"]:
                problems.append(f"{k['name']}: {k['spill']} bytes of register spills")
            if occ["by_regs"] <= 1:
                problems.append(f"{k['name']}: registers ({k['regs']}) allow one block per SM")
    worst = min(r["efficiency"] for r in rows)
    lines += [""] + [f"PROBLEM: {p}" for p in problems]
    lines.append(f"min_tile_efficiency={worst:.4f}")
    return lines, problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-ptxas", action="store_true", help="skip the sm_90 compile (plans only)")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), help="parallel nvcc runs")
    ap.add_argument("--json", metavar="FILE", help="also write the rows (and kernels) as JSON")
    args = ap.parse_args(argv)
    from fastlayers import _backend

    cu = _backend._cuda
    if cu is None or not hasattr(cu, "conv2d_plan"):
        print("cuda_plan: this fastlayers was built without its CUDA extension (FASTLAYERS_CUDA=OFF or no nvcc): "
              "no planner to ask", file=sys.stderr)
        return 2
    rows = plans(cu)
    kernels = None
    if not args.no_ptxas:
        kernels = run_ptxas("sm_90", args.jobs)
        attach_ptxas(rows, kernels)
    lines, problems = report(rows, kernels)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"sms": SMS, "rows": rows, "kernels": kernels, "problems": problems},
                                              indent=1, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
