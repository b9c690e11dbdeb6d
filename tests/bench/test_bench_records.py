"""The shared results format: record arithmetic, anchors and ratios, validation, markdown."""

import json

import pytest

from fastlayers.bench import records as R

PEAKS = {"cpu": {"gflops": 100.0, "gbps": 10.0}, "cuda": {"gflops": 1000.0, "gbps": 1000.0}}


def _rec(backend, times, op="gemm", case="8x8x8", **kw):
    return R.make_record(op, case, backend, times, params={"M": 8}, flops=kw.pop("flops", 1e9),
                         nbytes=kw.pop("nbytes", None), peaks=PEAKS, **kw)


def test_make_record_figures():
    r = _rec("cpu", [0.3, 0.1, 0.2])
    assert (r["median_s"], r["min_s"], r["max_s"], r["reps"]) == (0.2, 0.1, 0.3, 3)
    assert r["gflops"] == pytest.approx(5.0)
    assert r["gbps"] is None
    assert r["pct_peak"] == pytest.approx(5.0)  # 5 of 100 GFLOP/s
    assert r["anchor"] is None and r["ratio"] is None


def test_pct_peak_uses_roofline_bound():
    # intensity 1e9 / 1e9 = 1 FLOP/B -> bound min(100, 1 * 10) = 10 GFLOP/s; 5 GFLOP/s is 50 %.
    r = _rec("cpu", [0.2], nbytes=1e9)
    assert r["pct_peak"] == pytest.approx(50.0)
    mem = R.make_record("relu", "n", "cpu", [0.5], nbytes=1e9, peaks=PEAKS)
    assert mem["gbps"] == pytest.approx(2.0) and mem["pct_peak"] == pytest.approx(20.0)
    gpu = R.make_record("relu", "n", "cuda", [0.5], nbytes=1e9, peaks=PEAKS, device="cuda:0")
    assert gpu["pct_peak"] == pytest.approx(0.2)
    assert R.make_record("relu", "n", "cpu", [0.5], nbytes=1e9, peaks=None)["pct_peak"] is None


def test_summarize_rejects_empty():
    with pytest.raises(ValueError, match="times"):
        R.summarize([])


def test_add_ratios_default_and_custom_order():
    recs = [_rec("cpu", [0.1]), _rec("numpy", [0.2]), _rec("torch-cpu", [0.05]), _rec("reference", [1.0]),
            _rec("cpu", [0.1], case="other", anchor_order=("numpy",)), _rec("numpy", [0.3], case="other")]
    R.add_ratios(recs)
    assert recs[0]["anchor"] == "torch-cpu" and recs[0]["ratio"] == pytest.approx(0.5)
    assert recs[3]["anchor"] is None  # the reference is not ratioed
    assert recs[4]["anchor"] == "numpy" and recs[4]["ratio"] == pytest.approx(3.0)
    assert all("anchor_order" not in r for r in recs)
    assert R.validate({"machine": {}, "peaks": {}, "records": recs}) == []


def test_add_ratios_without_anchor():
    recs = R.add_ratios([_rec("cuda", [0.1], device="cuda:0")])
    assert recs[0]["anchor"] is None and recs[0]["ratio"] is None


def test_validate_finds_problems():
    good = _rec("cpu", [0.1])
    bad_ratio = {**good, "anchor": "numpy", "ratio": -1.0}
    missing = {k: v for k, v in good.items() if k != "median_s"}
    half = {**good, "anchor": "numpy"}
    problems = R.validate({"machine": {}, "records": [bad_ratio, missing, half]})
    text = "\n".join(problems)
    assert "peaks" in text and "not positive" in text and "'median_s'" in text and "both set" in text


def test_write_results_roundtrip(tmp_path):
    recs = R.add_ratios([_rec("cpu", [0.1]), _rec("numpy", [0.2])])
    notes = [{"op": "conv2d", "case": "a", "backend": "cpu", "reason": "not implemented yet"},
             {"op": None, "case": None, "backend": "cuda", "reason": "no GPU"}, "plots skipped"]
    paths = R.write_results(tmp_path, "t", {"cpu": "x", "threads": 2}, PEAKS, recs, notes, {"quick": True})
    doc = json.loads(paths["json"].read_text())
    assert doc["schema"] == R.SCHEMA and R.validate(doc) == []
    assert doc["records"][0]["ratio"] == pytest.approx(2.0)
    md = paths["md"].read_text()
    assert "| op | case | backend |" in md and "**2.00×**" in md
    assert "cpu: not implemented yet — conv2d" in md and "cuda: no GPU" in md and "plots skipped" in md


def test_markdown_table_rows():
    table = R.markdown_table([_rec("cpu", [0.002]), _rec("numpy", [0.001], nbytes=4e6)])
    lines = table.strip().splitlines()
    assert len(lines) == 4
    assert "2 (2–2)" in lines[2] and "500 GFLOP/s" in lines[2]
    assert "GB/s" in lines[3]


def test_machine_info_fields():
    m = R.machine_info(threads=3)
    assert m["threads"] == 3 and m["cpu"] and m["versions"]["numpy"] and m["versions"]["fastlayers"]
    assert "date" in m and "isa" in m
