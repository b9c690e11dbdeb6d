"""PNG plots of a results document (matplotlib, from the `bench` extra).

- `<stem>.png`: throughput per op and case, one bar per backend: GFLOP/s for ops with a flop count
  (left), GB/s for the memory-bound ones (right), log scale.
- `<stem>-speedup.png`: GPU over CPU speed-up per case (fastlayers cuda / cpu, and PyTorch's own),
  only when the run had a GPU.
- `<stem>-roofline.png`: the measured peaks as roofs (FLOP/s ceiling, bandwidth slope), each record
  with known flops and bytes placed at its arithmetic intensity.
"""

from __future__ import annotations

from pathlib import Path

COLORS = {"reference": "#9e9e9e", "cpu": "#1f77b4", "numpy": "#8c564b", "torch-cpu": "#ff7f0e",
          "cuda": "#2ca02c", "cupy": "#9467bd", "torch-cuda": "#d62728"}
ORDER = list(COLORS)


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


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
    plt = _plt()
    panels = [(compute, "gflops", "GFLOP/s (compute-counted ops)"), (memory, "gbps", "GB/s (memory-bound ops)")]
    panels = [p for p in panels if p[0]]
    rows = max(len({(r["op"], r["case"]) for r in p[0]}) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(9 * len(panels), 1.5 + 0.32 * rows), squeeze=False)
    for ax, (recs, metric, unit) in zip(axes[0], panels):
        _bar_panel(ax, recs, metric, unit)
    fig.suptitle(title or "fastlayers bench: throughput per op and backend (higher is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.3 * len(rows)))
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_roofline(records: list[dict], peaks: dict, path, title: str = "") -> Path | None:
    pts = [r for r in records if r.get("flops") and r.get("bytes") and r.get("gflops")]
    roofs = [(dev, p) for dev, p in (peaks or {}).items() if p and p.get("gflops") and p.get("gbps")]
    if not pts or not roofs:
        return None
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 6))
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def write_plots(out_dir, stem: str, records: list[dict], peaks: dict) -> list[Path]:
    """All plots that apply; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = [plot_throughput(records, out_dir / f"{stem}.png"),
            plot_speedup(records, out_dir / f"{stem}-speedup.png"),
            plot_roofline(records, peaks, out_dir / f"{stem}-roofline.png")]
    return [p for p in made if p is not None]
