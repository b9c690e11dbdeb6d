"""The model-level benchmark cases (fastlayers/bench/models.py): the PyTorch twins compute what our
models compute, the anchors build and run, records carry the paired ratios. Never asserts on speed."""

import numpy as np
import pytest

from fastlayers import nn
from fastlayers.bench import main
from fastlayers.bench import models as M


@pytest.mark.parametrize("name", ["cnn", "lenet5", "resnet"])
def test_torch_twin_matches(name):
    torch = pytest.importorskip("torch")
    model = nn.models.build(name, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        ref = M.to_torch(torch, model).eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), ref, rtol=1e-4, atol=1e-5)


def test_inference_case_with_onnxruntime_records_paired_ratios():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    case = M.ModelCase("infer_lenet5", "lenet5", 2, False)
    notes = []
    fns = M.build_backends(case, 1, notes, want=("cpu", "cpu-layers", "torch-cpu", "onnxruntime"))
    assert set(fns) == {"cpu", "cpu-layers", "torch-cpu", "onnxruntime"}, notes
    assert not notes  # every anchor agreed with our output
    times = M.interleaved(fns, rounds=3, round_s=0.02, warmup=1)
    assert all(len(t) == 3 and min(t) > 0 for t in times.values())


def test_run_cases_and_ratio_table(monkeypatch):
    pytest.importorskip("torch")
    real = M.build_backends
    monkeypatch.setattr(M, "build_backends", lambda case, threads, notes, want=None: real(case, threads, notes,
                                                                              want=("cpu", "torch-cpu")))
    cases = [M.ModelCase("infer_cnn", "cnn", 1, False), M.ModelCase("train_lenet5", "lenet5", 4, True)]
    records, notes = M.run_cases(cases, 1, rounds=2, round_s=0.02)
    ours = [r for r in records if r["backend"] == "cpu"]
    assert len(ours) == 2
    for r in ours:
        q = r["ratios"]["torch-cpu"]
        assert 0 < q["min"] <= q["median"] <= q["max"]
        assert r["anchor"] == "torch-cpu" and r["ratio"] > 0 and r["gflops"] > 0
    table = M.ratio_table(records)
    assert "| infer_cnn | cnn, batch 1 |" in table and "| train_lenet5 |" in table


def test_cli_lists_model_ops_and_checks_rounds(tmp_path, capsys):
    assert main(["--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "infer_resnet" in names and "train_cnn_scaling" in names
    assert main(["--models", "--rounds", "0", "--out", str(tmp_path)]) == 2
    assert "--rounds must be at least 1" in capsys.readouterr().err


def test_cases_cover_the_issue():
    ops = {(c.op, c.batch) for c in M.model_cases()}
    for name in ("cnn", "lenet5", "resnet"):
        assert (f"infer_{name}", 1) in ops and (f"infer_{name}", 64) in ops
        assert any(op == f"train_{name}" for op, _ in ops)
    assert sorted(b for op, b in ops if op == "train_cnn_scaling") == [16, 32, 64, 128, 256, 512]
