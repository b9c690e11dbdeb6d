"""`fastlayers bench` end to end on a few cheap ops (seconds): files written, well formed, clear errors.
Never asserts on speed: the machine is shared."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastlayers as fl
from fastlayers.bench import main, records as R
from fastlayers.bench import cases as C
from fastlayers.bench.plots import have_matplotlib

FAST = ["--quick", "--budget", "0.005", "--no-progress"]


def _run(tmp_path, *extra):
    rc = main([*FAST, "--out", str(tmp_path), "--name", "t", *extra])
    assert rc == 0
    return json.loads((tmp_path / "t.json").read_text())


def test_quick_filter_writes_results(tmp_path, capsys):
    doc = _run(tmp_path, "--filter", "^(relu|gemm)$", "--backends", "reference,cpu,numpy")
    assert R.validate(doc) == []
    ops = {r["op"] for r in doc["records"]}
    assert ops <= {"relu", "gemm"} and "relu" in ops
    backends = {(r["op"], r["backend"]) for r in doc["records"]}
    assert ("relu", "cpu") in backends and ("relu", "reference") in backends and ("relu", "numpy") in backends
    for r in doc["records"]:
        assert r["threads"] == doc["settings"]["threads"] and r["device"] == "cpu"
    relu_cpu = next(r for r in doc["records"] if r["op"] == "relu" and r["backend"] == "cpu")
    assert relu_cpu["anchor"] == "numpy" and relu_cpu["ratio"] > 0  # torch-cpu was not asked for
    assert doc["peaks"]["cpu"]["gflops"] > 0 and doc["peaks"]["cpu"]["gbps"] > 0
    assert doc["machine"]["cpu"] and doc["machine"]["threads"] >= 1
    md = (tmp_path / "t.md").read_text()
    out = capsys.readouterr().out
    assert "| relu |" in md and "| relu |" in out and "wrote" in out
    assert (tmp_path / "t.png").exists() == have_matplotlib()  # the ratios against numpy
    assert (tmp_path / "t-throughput.png").exists() == have_matplotlib()
    if not have_matplotlib():
        assert "matplotlib not installed" in md


def test_threads_and_torch_anchor(tmp_path):
    pytest.importorskip("torch")
    before = fl.get_num_threads()
    try:
        doc = _run(tmp_path, "--filter", "^relu$", "--threads", "1", "--no-plots")
    finally:
        fl.set_num_threads(before)
    assert doc["settings"]["threads"] == 1 and doc["peaks"]["cpu"]["threads"] == 1
    cpu = next(r for r in doc["records"] if r["backend"] == "cpu")
    assert cpu["anchor"] == "torch-cpu" and cpu["ratio"] > 0
    assert not (tmp_path / "t.png").exists()
    if not fl.cuda.is_available():
        assert any(n["backend"] == "cuda" and "no GPU" in n["reason"] for n in doc["notes"] if isinstance(n, dict))


def test_unimplemented_ops_are_notes_not_crashes(tmp_path, monkeypatch):
    monkeypatch.delattr(fl, "relu")
    monkeypatch.delattr(fl.reference, "relu")
    doc = _run(tmp_path, "--filter", "^relu$", "--backends", "reference,cpu,numpy", "--no-plots")
    assert {r["backend"] for r in doc["records"]} == {"numpy"}
    reasons = {(n["backend"], n["reason"]) for n in doc["notes"] if isinstance(n, dict)}
    assert ("cpu", "not implemented yet") in reasons and ("reference", "not implemented yet") in reasons


def test_failing_kernel_is_a_note(tmp_path, monkeypatch):
    def broken(x):
        raise RuntimeError("boom")

    monkeypatch.setattr(fl, "relu", broken)
    doc = _run(tmp_path, "--filter", "^relu$", "--backends", "cpu,numpy", "--no-plots")
    assert any(n["backend"] == "cpu" and "RuntimeError: boom" in n["reason"] for n in doc["notes"])


@pytest.mark.parametrize("args, message", [
    (["--filter", "no_such_op"], "no benchmark op matches --filter 'no_such_op'"),
    (["--filter", "("], "not a valid regular expression"),
    (["--backends", "cpu,tpu"], "unknown backend(s) tpu"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_bad_arguments(tmp_path, capsys, args, message):
    assert main([*FAST, "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_list_ops(capsys):
    assert main(["--list"]) == 0
    names = capsys.readouterr().out.split()
    assert "gemm" in names and "conv2d_backward" in names and "train_step_cnn" in names


def test_python_m_help():
    done = subprocess.run([sys.executable, "-m", "fastlayers.bench", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--quick" in done.stdout and "--filter" in done.stdout


def _contract_names():
    text = (Path(__file__).resolve().parents[2] / "docs" / "ops.md").read_text()
    return set(re.findall(r"`([a-z_0-9]+)\(", text)) | {n + "_backward" for n in re.findall(r"`([a-z_0-9]+)\(", text)}


def test_cases_cover_every_family_and_use_contract_names():
    names = _contract_names()
    cases = C.all_cases()
    for case in cases:
        for n in case.needs:
            assert n in names, f"{case.op} needs {n}, which docs/ops.md does not define"
    families = {c.params["family"] for c in cases}
    assert families >= {"gemm", "linear", "conv", "pool", "activation", "elementwise", "loss", "dropout",
                        "optim", "train"}
    for c in cases:  # every case can be timed somewhere and knows what it moves or computes
        assert c.ours or c.torch_anchor or c.xp_anchor
        assert c.flops or c.nbytes


@pytest.mark.parametrize("case_op", ["train_step_cnn", "train_step_resblock"])
def test_train_steps_run_on_the_reference_and_match_cpu(case_op):
    case = next(c for c in C.all_cases() if c.op == case_op)
    missing = [n for n in case.needs if not callable(getattr(fl.reference, n, None))]
    if missing:
        pytest.skip(f"not implemented yet: {', '.join(missing)}")
    state = case.setup(np)
    before = {k: v.copy() for k, v in state.items()}
    loss = float(case.ours(fl.reference, state)())
    assert np.isfinite(loss) and loss > 0
    assert not np.array_equal(state["w1"], before["w1"])  # the update happened in place
    if all(callable(getattr(fl, n, None)) for n in case.needs):
        loss_cpu = float(case.ours(fl, before)())
        assert abs(loss_cpu - loss) <= 1e-4 * max(1.0, abs(loss))
        np.testing.assert_allclose(before["w1"], state["w1"], rtol=1e-3, atol=1e-5)


def test_quick_skips_the_full_only_cases_and_says_so():
    from fastlayers.bench import suite, timing

    big = [c for c in C.gemm_cases() if c.full_only]
    assert [c.case for c in big] == ["4096x4096x4096"]
    env = suite.Environment.detect()
    quick = suite.Runner(env=env, threads=1, budget=timing.budget_for(quick=True), quick=True, peaks={},
                         backends=("cpu", "numpy"), progress=False)
    full = suite.Runner(env=env, threads=1, budget=timing.budget_for(), quick=False, peaks={},
                        backends=("cpu", "numpy"), progress=False)
    assert quick.plan(big[0]) == []
    assert [b for b, why in full.plan(big[0]) if why is None] == ["cpu", "numpy"]
    small = next(c for c in C.gemm_cases() if c.case == "256x256x256")
    assert [b for b, _ in quick.plan(small)] == ["cpu", "numpy"]


def test_reference_is_timed_last_and_records_stay_in_case_order(tmp_path, monkeypatch):
    # The slow NumPy reference gets a pass of its own after all other timings (it perturbed the
    # kernels timed right after it); the records still come out case by case, backends in order.
    from fastlayers.bench import suite as S

    calls = []
    real = S.Runner._run_one

    def spy(self, case, backend, states):
        calls.append((case.op, case.case, backend))
        return real(self, case, backend, states)

    monkeypatch.setattr(S.Runner, "_run_one", spy)
    doc = _run(tmp_path, "--filter", "^(relu|gemm)$", "--backends", "reference,cpu,numpy", "--no-plots")
    first_reference = next(i for i, c in enumerate(calls) if c[2] == "reference")
    assert first_reference > 0 and all(c[2] == "reference" for c in calls[first_reference:])
    assert all(c[2] != "reference" for c in calls[:first_reference])
    rows = [(r["op"], r["case"], r["backend"]) for r in doc["records"]]
    cases_in_order = list(dict.fromkeys((op, case) for op, case, _ in calls[:first_reference]))
    rank = {"reference": 0, "cpu": 1, "numpy": 2}
    assert rows == sorted(rows, key=lambda t: (cases_in_order.index(t[:2]), rank[t[2]]))
    assert {r[2] for r in rows} == {"reference", "cpu", "numpy"}
