"""The bench PNGs: STEM.png shows our speed against each anchor (anchor time / our time), and the bars
drawn are those ratios; the throughput chart moved to STEM-throughput.png. Synthetic records: no
timing, no speed assertion."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is a dependency of fastlayers; this installation lacks it")

from fastlayers.bench import plots  # noqa: E402
from fastlayers.bench import records as R  # noqa: E402


def _rec(op, case, backend, median_s, device="cpu", **extra):
    return R.make_record(op, case, backend, [median_s] * 3, flops=1e6, nbytes=1e5, device=device, threads=2,
                         **extra)


def _records(backends=None):
    recs = [_rec("gemm", "a", "reference", 8.0), _rec("gemm", "a", "cpu", 1.0), _rec("gemm", "a", "numpy", 2.0),
            _rec("gemm", "a", "torch-cpu", 0.5),
            _rec("relu", "big", "cpu", 2.0), _rec("relu", "big", "numpy", 6.0),
            _rec("relu", "none", "cpu", 1.0),  # no anchor measured: no row
            # a forced kernel path compared with the anchor of another case (make_record(anchor_case=...))
            _rec("conv2d", "x", "torch-cpu", 3.0), _rec("conv2d", "x/winograd", "cpu", 1.5, anchor_case="x"),
            _rec("gemm", "a", "cuda", 0.1, device="cuda"), _rec("gemm", "a", "cupy", 0.3, device="cuda"),
            _rec("gemm", "a", "torch-cuda", 0.05, device="cuda")]
    return R.add_ratios([r for r in recs if backends is None or r["backend"] in backends])


def test_anchor_ratios_are_anchor_time_over_ours():
    recs = _records()
    cpu = dict(plots.anchor_ratios(recs, "cpu"))
    assert list(cpu) == [("gemm", "a"), ("relu", "big"), ("conv2d", "x/winograd")]
    assert cpu[("gemm", "a")] == pytest.approx({"torch-cpu": 0.5, "numpy": 2.0})
    assert cpu[("relu", "big")] == pytest.approx({"numpy": 3.0})
    assert cpu[("conv2d", "x/winograd")] == pytest.approx({"torch-cpu": 2.0})
    assert dict(plots.anchor_ratios(recs, "cuda")) == {("gemm", "a"): pytest.approx({"torch-cuda": 0.5,
                                                                                     "cupy": 3.0})}
    assert plots.anchor_ratios(recs, "reference") == []


def test_ratio_figure_draws_the_ratios_around_one():
    fig = plots.ratio_figure(_records())
    cpu, cuda = fig.axes
    assert cpu.get_title() == "fastlayers cpu" and cuda.get_title() == "fastlayers cuda"
    assert cpu.get_xscale() == "log"
    # each bar starts at 1.0 and ends at its ratio; one colour per anchor
    ends = {}
    for bar in cpu.patches:
        if bar.get_height() < 1:  # the bars, not the background bands
            assert bar.get_x() == pytest.approx(1.0)
            ends.setdefault(bar.get_facecolor(), []).append(round(bar.get_x() + bar.get_width(), 6))
    import matplotlib.colors as mc

    assert sorted(ends[mc.to_rgba(plots.COLORS["torch-cpu"])]) == [0.5, 2.0]
    assert sorted(ends[mc.to_rgba(plots.COLORS["numpy"])]) == [2.0, 3.0]
    labels = [t.get_text() for t in cpu.get_legend().get_texts()]
    gm = math.sqrt(0.5 * 2.0)
    assert labels == [f"vs torch-cpu: geometric mean {gm:.2f}x over 2 case(s)",
                      f"vs numpy: geometric mean {math.sqrt(6.0):.2f}x over 2 case(s)"]
    lo, hi = cpu.get_xlim()
    assert lo < 0.5 and hi > 3.0  # every bar and its label inside, 1.0 between
    assert [t.get_text() for t in cpu.get_yticklabels()] == ["gemm a", "relu big", "conv2d x/winograd"]
    assert {t.get_text().strip() for t in cpu.texts} >= {"0.50x", "2.00x", "3.00x"}


def test_write_plots_names_and_no_anchor(tmp_path):
    made = plots.write_plots(tmp_path, "s", _records(), {"cpu": {"gflops": 100.0, "gbps": 10.0}})
    assert [p.name for p in made] == ["s.png", "s-throughput.png", "s-speedup.png", "s-roofline.png"]
    for p in made:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    only_ours = _records(backends=("cpu", "reference"))
    assert plots.ratio_figure(only_ours) is None
    made = plots.write_plots(tmp_path / "b", "s", only_ours, {})
    assert [p.name for p in made] == ["s-throughput.png"]


def test_plots_do_not_touch_pyplot(tmp_path):
    # a notebook's backend and open figures stay as they were
    code = ("import sys; from fastlayers.bench import plots, records as R; "
            "recs = R.add_ratios([R.make_record('relu', 'a', b, [t]) for b, t in (('cpu', 1.0), ('numpy', 2.0))]); "
            f"plots.write_plots({str(tmp_path)!r}, 's', recs, {{}}); print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
    assert (tmp_path / "s.png").exists()
