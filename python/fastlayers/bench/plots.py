"""PNG plots of a results document (matplotlib, a dependency of fastlayers).

- `<stem>.png`: the speed ratios at a glance: for each of our backends (cpu; cuda with a GPU), every
  case grouped by op, one bar per anchor (numpy, torch-cpu; cupy, torch-cuda), anchor time / our
  time on a log axis around a line at 1.0 (> 1: fastlayers is faster), the geometric mean per anchor
  in the legend.
- `<stem>-throughput.png`: throughput per op and case, one bar per backend: GFLOP/s for ops with a
  flop count (left), GB/s for the memory-bound ones (right), log scale.
- `<stem>-speedup.png`: GPU over CPU speed-up per case (fastlayers cuda / cpu, and PyTorch's own),
  only when the run had a GPU.
- `<stem>-roofline.png`: the measured peaks as roofs (FLOP/s ceiling, bandwidth slope), each record
  with known flops and bytes placed at its arithmetic intensity.
"""

from __future__ import annotations

import math
from pathlib import Path

from .records import DEFAULT_ANCHORS

COLORS = {"reference": "#9e9e9e", "cpu": "#1f77b4", "numpy": "#8c564b", "torch-cpu": "#ff7f0e",
          "cuda": "#2ca02c", "cupy": "#9467bd", "torch-cuda": "#d62728"}
ORDER = list(COLORS)


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(ncols: int, width: float, height: float):
    """A plain matplotlib Figure (no pyplot: no display, no global backend switch, no figure to
    close) and its row of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def _label(op: str, case: str) -> str:
    case = case if len(case) <= 30 else case[:28] + "…"
    return f"{op} {case}"


def _bar_panel(ax, records, metric: str, unit: str):
    groups: dict = {}
    for r in records:
        groups.setdefault((r["op"], r["case"]), {})[r["backend"]] = r[metric]
    backends = [b for b in ORDER if any(b in g for g in groups.values())]
    height = 0.8 / max(1, len(backends))
    keys = list(groups)
    for j, b in enumerate(backends):
        ys = [i + (j - (len(backends) - 1) / 2) * height for i, k in enumerate(keys) if b in groups[k]]
        xs = [groups[k][b] for k in keys if b in groups[k]]
        ax.barh(ys, xs, height=height, color=COLORS.get(b), label=b)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([_label(*k) for k in keys], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(unit)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def plot_throughput(records: list[dict], path, title: str = "") -> Path | None:
    compute = [r for r in records if r.get("gflops")]
    memory = [r for r in records if not r.get("gflops") and r.get("gbps")]
    if not compute and not memory:
        return None
    panels = [(compute, "gflops", "GFLOP/s (compute-counted ops)"), (memory, "gbps", "GB/s (memory-bound ops)")]
    panels = [p for p in panels if p[0]]
    rows = max(len({(r["op"], r["case"]) for r in p[0]}) for p in panels)
    fig, axes = _figure(len(panels), 9 * len(panels), 1.5 + 0.32 * rows)
    for ax, (recs, metric, unit) in zip(axes, panels):
        _bar_panel(ax, recs, metric, unit)
    fig.suptitle(title or "fastlayers bench: throughput per op and backend (higher is better)")
    fig.savefig(path, dpi=110)
    return Path(path)


def anchor_ratios(records: list[dict], backend: str) -> list[tuple[tuple[str, str], dict]]:
    """For each record of our `backend`, in record order: ((op, case), {anchor: anchor time / our
    time}) for every anchor of that device measured in the same case (and the record's own anchor
    and ratio when that anchor was measured in another case, see make_record(anchor_case=...))."""
    anchors = DEFAULT_ANCHORS.get(backend, ())
    times: dict = {}
    for r in records:
        times.setdefault((r["op"], r["case"]), {})[r["backend"]] = r["median_s"]
    rows = []
    for r in records:
        if r["backend"] != backend or not r.get("median_s"):
            continue
        key = (r["op"], r["case"])
        ratios = {a: times[key][a] / r["median_s"] for a in anchors if times[key].get(a)}
        if r.get("anchor") in anchors and r.get("ratio") and r["anchor"] not in ratios:
            ratios[r["anchor"]] = r["ratio"]
        if ratios:
            rows.append((key, ratios))
    return rows


def _geomean(values) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _ratio_panel(ax, rows, backend: str):
    anchors = [a for a in DEFAULT_ANCHORS[backend] if any(a in r for _, r in rows)]
    height = 0.8 / max(1, len(anchors))
    ops = []
    for (op, _), _ in rows:
        if op not in ops:
            ops.append(op)
    for k, op in enumerate(ops):  # every other op on a grey band: the cases of one op stay together
        ys = [i for i, ((o, _), _) in enumerate(rows) if o == op]
        if k % 2 == 0:
            ax.axhspan(min(ys) - 0.5, max(ys) + 0.5, color="#000000", alpha=0.045, lw=0)
    values = [v for _, r in rows for v in r.values()]
    # room for the value labels beyond the longest bars; 1.0 always in the middle third or so
    lo, hi = min(0.5, min(values) / 3.0), max(2.0, max(values) * 3.0)
    ax.axvspan(1, hi, color="#2ca02c", alpha=0.05, lw=0)
    ax.axvspan(lo, 1, color="#d62728", alpha=0.05, lw=0)
    for j, a in enumerate(anchors):
        sel = [(i, r[a]) for i, (_, r) in enumerate(rows) if a in r]
        ys = [i + (j - (len(anchors) - 1) / 2) * height for i, _ in sel]
        xs = [v for _, v in sel]
        ax.barh(ys, [x - 1 for x in xs], left=1, height=height, color=COLORS.get(a),
                label=f"vs {a}: geometric mean {_geomean(xs):.2f}x over {len(xs)} case(s)")
        for y, x in zip(ys, xs):
            ax.text(x, y, f" {x:.2f}x ", va="center", ha="left" if x >= 1 else "right", fontsize=6)
    ax.axvline(1.0, color="k", lw=1.0)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_label(*k) for k, _ in rows], fontsize=7)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("anchor time / fastlayers time (log scale; > 1: fastlayers faster)")
    ax.text(0.99, 1.0, "fastlayers faster \u2192", transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            color="#2ca02c")
    ax.text(0.01, 1.0, "\u2190 anchor faster", transform=ax.transAxes, ha="left", va="bottom", fontsize=8,
            color="#d62728")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    ax.set_title(f"fastlayers {backend}", pad=14)


def ratio_figure(records: list[dict], title: str = ""):
    """The ratio chart (see the module doc) as a matplotlib Figure, a panel per backend of ours with
    an anchor (cpu, then cuda); None when no record of ours has an anchor."""
    panels = [(b, anchor_ratios(records, b)) for b in DEFAULT_ANCHORS]
    panels = [(b, rows) for b, rows in panels if rows]
    if not panels:
        return None
    n = max(len(rows) for _, rows in panels)
    fig, axes = _figure(len(panels), 9 * len(panels), 2.0 + 0.3 * n)
    for ax, (backend, rows) in zip(axes, panels):
        _ratio_panel(ax, rows, backend)
    fig.suptitle(title or "fastlayers bench: speed against each anchor, measured in the same run")
    return fig


def plot_ratios(records: list[dict], path, title: str = "") -> Path | None:
    """ratio_figure written to path; None (nothing written) when no record of ours has an anchor."""
    fig = ratio_figure(records, title)
    if fig is None:
        return None
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_speedup(records: list[dict], path, title: str = "") -> Path | None:
    by = {}
    for r in records:
        by.setdefault((r["op"], r["case"]), {})[r["backend"]] = r["median_s"]
    pairs = [("cuda", "cpu", "fastlayers cuda / cpu"), ("torch-cuda", "torch-cpu", "PyTorch cuda / cpu")]
    rows = []
    for key, times in by.items():
        vals = [times[c] / times[g] if g in times and c in times else None for g, c, _ in pairs]
        if any(v is not None for v in vals):
            rows.append((key, vals))
    if not rows:
        return None
    fig, (ax,) = _figure(1, 10, 1.5 + 0.3 * len(rows))
    h = 0.4
    for j, (_, _, name) in enumerate(pairs):
        ys = [i + (j - 0.5) * h for i, (_, v) in enumerate(rows) if v[j] is not None]
        xs = [v[j] for _, v in rows if v[j] is not None]
        ax.barh(ys, xs, height=h, label=name, color=["#2ca02c", "#d62728"][j])
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([_label(*k) for k, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("GPU speed-up over CPU (CPU time / GPU time)")
    ax.legend(fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.set_title(title or "GPU over CPU")
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_roofline(records: list[dict], peaks: dict, path, title: str = "") -> Path | None:
    pts = [r for r in records if r.get("flops") and r.get("bytes") and r.get("gflops")]
    roofs = [(dev, p) for dev, p in (peaks or {}).items() if p and p.get("gflops") and p.get("gbps")]
    if not pts or not roofs:
        return None
    import numpy as np

    fig, (ax,) = _figure(1, 9, 6)
    ai = [r["flops"] / r["bytes"] for r in pts]
    lo, hi = min(ai + [0.1]) / 2, max(ai + [100.0]) * 2
    xs = np.logspace(np.log10(lo), np.log10(hi), 200)
    for (dev, p), style in zip(roofs, ("-", "--")):
        ax.plot(xs, np.minimum(p["gflops"], xs * p["gbps"]), "k" + style, lw=1.5,
                label=f"{dev} roof: {p['gflops']:.0f} GFLOP/s, {p['gbps']:.0f} GB/s")
    for b in ORDER:
        sel = [r for r in pts if r["backend"] == b]
        if sel:
            ax.scatter([r["flops"] / r["bytes"] for r in sel], [r["gflops"] for r in sel], s=18,
                       color=COLORS[b], label=b, alpha=0.8, marker="o" if not b.endswith("cuda") and b != "cupy" else "^")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved at least)")
    ax.set_ylabel("GFLOP/s")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "Roofline with the peaks measured in this run")
    fig.savefig(path, dpi=110)
    return Path(path)


def write_plots(out_dir, stem: str, records: list[dict], peaks: dict) -> list[Path]:
    """All plots that apply; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = [plot_ratios(records, out_dir / f"{stem}.png"),
            plot_throughput(records, out_dir / f"{stem}-throughput.png"),
            plot_speedup(records, out_dir / f"{stem}-speedup.png"),
            plot_roofline(records, peaks, out_dir / f"{stem}-roofline.png")]
    return [p for p in made if p is not None]
