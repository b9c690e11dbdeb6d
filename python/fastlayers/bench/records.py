"""The one results format of every fastlayers benchmark: JSON with every figure, and a markdown table.

Any benchmark script can reuse it::

    from fastlayers.bench import records as R

    machine = R.machine_info(threads=2)
    peaks = {"cpu": {"gflops": 375.0, "gbps": 28.4}}           # e.g. from fastlayers.bench.probes
    recs = [R.make_record("gemm", "1024x1024x1024", "cpu", times, params={"M": 1024, ...},
                          flops=2 * 1024**3, nbytes=3 * 4 * 1024**2, peaks=peaks)]
    R.add_ratios(recs)                       # fills anchor / ratio for our backends
    R.write_results("out", "mybench", machine, peaks, recs, notes=[])  # out/mybench.json, .md

A JSON file holds ``{"schema", "machine", "peaks", "settings", "records", "notes"}``. Each record:

- ``op``, ``case`` (shape and parameters as a string), ``params`` (the same as a dict), ``backend``
  (``reference`` | ``cpu`` | ``cuda`` | an anchor: ``numpy``, ``torch-cpu``, ``cupy``, ``torch-cuda``),
  ``device`` (``cpu`` or ``cuda:0``), ``threads`` (CPU threads, None on the GPU);
- ``median_s``, ``min_s``, ``max_s``, ``reps``: wall (CPU) or CUDA-event (GPU) seconds per call;
- ``gflops`` (when the op's flop count is known) and/or ``gbps`` (bytes it must move at least);
- ``pct_peak``: percent of the roofline bound at the record's arithmetic intensity,
  min(peak FLOP/s, intensity x peak bandwidth), or of the one peak that applies when only flops
  or only bytes are known; None without a measured peak;
- ``anchor``, ``ratio`` for our backends (cpu, cuda): the anchor's backend name and anchor time /
  our time (> 1 means fastlayers is faster); None when no anchor ran.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
from pathlib import Path

SCHEMA = "fastlayers-bench/1"
OUR_BACKENDS = ("reference", "cpu", "cuda")
REQUIRED_KEYS = ("op", "case", "params", "backend", "median_s", "min_s", "max_s", "gflops", "gbps",
                 "pct_peak", "anchor", "ratio")
# Which anchor a backend of ours is compared against, first present wins. The caller can pass
# another order per record (make_record(anchor_order=...)).
DEFAULT_ANCHORS = {"cpu": ("torch-cpu", "numpy"), "cuda": ("torch-cuda", "cupy")}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "unknown")
    except Exception:
        return None


def machine_info(threads: int | None = None) -> dict:
    """What ran the benchmark: CPU, threads, ISA, GPU and driver when present, library versions, date."""
    import fastlayers as fl
    from fastlayers import _cpu

    info = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "threads": threads if threads is not None else fl.get_num_threads(),
        "isa": _cpu.active_isa(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": None,
        "gpu_driver": None,
        "cuda_runtime": fl.cuda.runtime_version(),
        "versions": {name: _version(name) for name in ("numpy", "torch", "cupy", "onnxruntime", "onnx")},
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    info["versions"]["fastlayers"] = fl.__version__
    if fl.cuda.is_available():
        info["gpu"] = fl.cuda.device_name(0)
        try:
            import cupy

            driver = cupy.cuda.runtime.driverGetVersion()
            info["gpu_driver"] = f"{driver // 1000}.{driver % 1000 // 10}"
        except Exception:
            pass
    return info


def summarize(times) -> dict:
    """median / min / max seconds and the repetition count of a list of per-call times."""
    times = [float(t) for t in times]
    if not times:
        raise ValueError("times must hold at least one measurement, got none")
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "reps": len(times)}


def _peak_for(peaks: dict | None, device: str) -> dict:
    if not peaks:
        return {}
    return peaks.get("cuda" if device.startswith("cuda") else "cpu") or {}


def pct_of_peak(gflops, gbps, flops, nbytes, peak: dict) -> float | None:
    """Percent of the roofline bound (see the module doc); None when no peak applies."""
    peak_f, peak_b = peak.get("gflops"), peak.get("gbps")
    if gflops is not None and peak_f:
        bound = peak_f
        if nbytes and peak_b:
            bound = min(peak_f, flops / nbytes * peak_b)
        return 100.0 * gflops / bound
    if gbps is not None and peak_b:
        return 100.0 * gbps / peak_b
    return None


def make_record(op: str, case: str, backend: str, times, *, params: dict | None = None,
                flops: float | None = None, nbytes: float | None = None, peaks: dict | None = None,
                device: str = "cpu", threads: int | None = None, anchor_order=None,
                anchor_case: str | None = None, note: str | None = None) -> dict:
    """One record from per-call times (seconds). flops / nbytes are per call; GFLOP/s and GB/s come
    from the median time. anchor/ratio stay None until add_ratios(). anchor_case: the case whose
    anchor this record is compared with when it is not the record's own (e.g. one cuBLAS time for
    several forced kernel paths, each its own case)."""
    rec = {"op": op, "case": case, "params": dict(params or {}), "backend": backend, "device": device,
           "threads": threads, **summarize(times)}
    med = rec["median_s"]
    rec["flops"] = flops
    rec["bytes"] = nbytes
    rec["gflops"] = flops / med * 1e-9 if flops and med > 0 else None
    rec["gbps"] = nbytes / med * 1e-9 if nbytes and med > 0 else None
    rec["pct_peak"] = pct_of_peak(rec["gflops"], rec["gbps"], flops, nbytes, _peak_for(peaks, device))
    rec["anchor"] = None
    rec["ratio"] = None
    if anchor_order is not None:
        rec["anchor_order"] = list(anchor_order)
    if anchor_case is not None:
        rec["anchor_case"] = anchor_case
    if note:
        rec["note"] = note
    return rec


def add_ratios(records: list[dict]) -> list[dict]:
    """Fill `anchor` and `ratio` of our cpu / cuda records from the anchors of the same op and case
    (or of the record's `anchor_case`): the first present in the record's `anchor_order` (else
    DEFAULT_ANCHORS). In place; returns records."""
    by_case: dict = {}
    for r in records:
        by_case.setdefault((r["op"], r["case"]), {})[r["backend"]] = r
    for r in records:
        order = r.pop("anchor_order", None) or DEFAULT_ANCHORS.get(r["backend"], ())
        anchor_case = r.pop("anchor_case", None) or r["case"]
        if r["backend"] not in DEFAULT_ANCHORS:
            continue
        for name in order:
            a = by_case.get((r["op"], anchor_case), {}).get(name)
            if a is not None and r["median_s"] > 0:
                r["anchor"] = name
                r["ratio"] = a["median_s"] / r["median_s"]
                break
    return records


def write_json(path, machine: dict, peaks: dict, records: list[dict], notes: list | None = None,
               settings: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schema": SCHEMA, "machine": machine, "peaks": peaks, "settings": settings or {},
           "records": records, "notes": list(notes or [])}
    path.write_text(json.dumps(doc, indent=1, default=_json_default) + "\n")
    return path


def _json_default(value):
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load(path) -> dict:
    """Read a results JSON file back."""
    return json.loads(Path(path).read_text())


def validate(doc: dict) -> list[str]:
    """Problems in a results document (empty when well formed): missing keys, bad times or ratios."""
    problems = []
    for key in ("machine", "peaks", "records"):
        if key not in doc:
            problems.append(f"missing top-level key '{key}'")
    for i, r in enumerate(doc.get("records", [])):
        where = f"record {i} ({r.get('op')}, {r.get('case')}, {r.get('backend')})"
        for key in REQUIRED_KEYS:
            if key not in r:
                problems.append(f"{where}: missing '{key}'")
        if not (0 < r.get("min_s", 0) <= r.get("median_s", 0) <= r.get("max_s", 0)):
            problems.append(f"{where}: times not 0 < min <= median <= max")
        if r.get("gflops") is None and r.get("gbps") is None:
            problems.append(f"{where}: neither gflops nor gbps")
        ratio = r.get("ratio")
        if ratio is not None and not (ratio > 0 and math.isfinite(ratio)):
            problems.append(f"{where}: ratio {ratio} not positive")
        if (ratio is None) != (r.get("anchor") is None):
            problems.append(f"{where}: anchor and ratio must be both set or both None")
    return problems


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _fmt_rate(r: dict) -> str:
    parts = []
    if r.get("gflops") is not None:
        parts.append(f"{r['gflops']:.3g} GFLOP/s")
    if r.get("gbps") is not None:
        parts.append(f"{r['gbps']:.3g} GB/s")
    return ", ".join(parts) or "—"


def markdown_table(records: list[dict]) -> str:
    """The records as a markdown table: op, case, backend, median ms (min–max), GFLOP/s or GB/s,
    % of peak, anchor, ratio (anchor time / ours, > 1: we are faster)."""
    lines = ["| op | case | backend | median ms (min–max) | GFLOP/s or GB/s | % peak | anchor | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        ms = f"{r['median_s'] * 1e3:.3g} ({r['min_s'] * 1e3:.3g}–{r['max_s'] * 1e3:.3g})"
        ratio = "—" if r.get("ratio") is None else f"**{r['ratio']:.2f}×**"
        lines.append(f"| {r['op']} | {r['case']} | {r['backend']} | {ms} | {_fmt_rate(r)} | "
                     f"{_fmt(r.get('pct_peak'), '.0f')} | {r.get('anchor') or '—'} | {ratio} |")
    return "\n".join(lines) + "\n"


def markdown_report(machine: dict, peaks: dict, records: list[dict], notes: list | None = None,
                    settings: dict | None = None, title: str = "fastlayers benchmark") -> str:
    """A whole markdown page: machine, peaks, the table, and the notes on what was skipped."""
    out = [f"# {title}", ""]
    gpu = f", GPU {machine['gpu']} (driver {machine.get('gpu_driver')})" if machine.get("gpu") else ", no GPU"
    out.append(f"Machine: {machine.get('cpu')}, {machine.get('threads')} thread(s) of "
               f"{machine.get('logical_cpus')}, ISA {machine.get('isa')}{gpu}. {machine.get('date')}.")
    versions = ", ".join(f"{k} {v}" for k, v in (machine.get("versions") or {}).items() if v)
    out.append(f"Versions: {versions}.")
    if settings:
        out.append("Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + ".")
    out += ["", "Peaks measured in this run:", ""]
    for dev, p in (peaks or {}).items():
        out.append(f"- {dev}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in p.items()))
    out += ["", markdown_table(records)]
    if notes:
        out += ["Skipped or failed:", ""]
        for n in group_notes(notes):
            out.append(f"- {n}")
        out.append("")
    return "\n".join(out)


def group_notes(notes: list) -> list[str]:
    """Notes ({'backend', 'reason', 'op', 'case'} dicts or plain strings) merged by (backend, reason)
    into one line each that lists the ops concerned."""
    grouped: dict = {}
    plain = []
    for n in notes:
        if isinstance(n, str):
            plain.append(n)
            continue
        key = (n.get("backend"), n.get("reason"))
        grouped.setdefault(key, [])
        if n.get("op") is not None and n["op"] not in grouped[key]:  # op None: a global note
            grouped[key].append(n["op"])
    lines = list(plain)
    for (backend, reason), ops in grouped.items():
        if not ops:
            lines.append(f"{backend}: {reason}")
            continue
        shown = ", ".join(ops)
        lines.append(f"{backend}: {reason} — {shown}")
    return lines


def write_markdown(path, machine: dict, peaks: dict, records: list[dict], notes: list | None = None,
                   settings: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_report(machine, peaks, records, notes, settings))
    return path


def write_results(out_dir, stem: str, machine: dict, peaks: dict, records: list[dict],
                  notes: list | None = None, settings: dict | None = None) -> dict:
    """out_dir/stem.json and out_dir/stem.md; returns {'json': path, 'md': path}."""
    out_dir = Path(out_dir)
    return {"json": write_json(out_dir / f"{stem}.json", machine, peaks, records, notes, settings),
            "md": write_markdown(out_dir / f"{stem}.md", machine, peaks, records, notes, settings)}
