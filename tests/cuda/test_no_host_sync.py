"""No host synchronisation in the ops or in a training step on GPU arrays, proved without a GPU.

tests/cuda/fake_cupy.py stands in for CuPy (arrays whose device values can only be read on the host
through a recorded call: float(), int(), bool(), .item(), .get(), cupy.asnumpy(), np.asarray()) and
for the CUDA module (kernels recorded, nothing computed). The op API and fit (Sequential and the
graph Model: nn/training.py) then run
their whole CuPy code path; any host read of a device value shows up in the log with its stack.
A real GPU run is still needed for everything the kernels compute.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import _backend, _cpu, _device_errors

from . import fake_cupy


def _cuda_names():
    if _backend._cuda is not None:
        return [n for n in dir(_backend._cuda) if not n.startswith("_")]
    extra = ["sgemm_workspace_floats", "bias_grad_rows_workspace_floats", "sgemm_path", "sgemm_plan", "conv2d_plan"]
    return [n for n in dir(_cpu) if not n.startswith("_")] + extra


@pytest.fixture
def gpu(monkeypatch):
    """The fake CuPy module (as `cupy`) and the fake CUDA module in place."""
    cuda = fake_cupy.install(monkeypatch, _cuda_names())
    monkeypatch.setattr(_device_errors, "_status", {})  # no status word left by an earlier test
    import cupy

    return cupy, cuda


def _where(rec) -> str:
    return "\n".join(f"  {f}:{line} {fn}" for f, line, fn in rec["stack"][-8:])


def test_the_harness_sees_host_reads(gpu):
    """The fake is able to fail: each way of reading a device value on the host is recorded."""
    cp, _ = gpu
    y = fl.relu(cp.asarray(np.arange(-3, 5, dtype=np.float32)))
    assert fake_cupy.log == []
    float(y.sum()), int(y.argmax()), bool(y[0] > 0), y.get(), cp.asnumpy(y), np.asarray(y), y.max().item()
    assert [r["what"] for r in fake_cupy.log] == [
        "float()", "int()", "bool()", ".get()", "cupy.asnumpy()", "np.asarray() (implicit device-to-host copy)",
        ".item()"]


def _op_calls(cp, rng):
    """Every op family on device arrays, the losses with integer class labels included (their labels
    are checked by the CUDA kernels, not read on the host)."""
    def d(*shape):
        return cp.asarray(rng.standard_normal(shape).astype(np.float32))

    x, w, b = d(2, 3, 9, 9), d(4, 3, 3, 3), d(4)
    y = fl.conv2d(x, w, b, 1, 1)
    p = d(6, 10)
    labels = cp.asarray(rng.integers(0, 10, 6))
    signs = cp.asarray(np.sign(rng.standard_normal((6, 10))).astype(np.float32))
    return {
        "conv2d": lambda: fl.conv2d(x, w, b, stride=2, padding=1),
        "conv2d_backward": lambda: fl.conv2d_backward(y, x, w, 1, 1),
        "conv1d": lambda: fl.conv1d(d(2, 3, 11), d(5, 3, 3), None, 1, 1),
        "linear": lambda: fl.linear(p, d(7, 10), d(7)),
        "linear_backward": lambda: fl.linear_backward(d(6, 7), p, d(7, 10)),
        "gemm": lambda: fl.gemm(p, d(10, 5), alpha=0.5, beta=1.0, c=d(6, 5)),
        "gemm_backward": lambda: fl.gemm_backward(d(6, 5), p, d(5, 10), trans_b=True),
        "relu": lambda: (fl.relu(p), fl.relu_backward(p, p)),
        "leaky_relu": lambda: (fl.leaky_relu(p, 0.1), fl.leaky_relu_backward(p, p, 0.1)),
        "sigmoid": lambda: (fl.sigmoid(p), fl.sigmoid_backward(p, p)),
        "tanh": lambda: (fl.tanh(p), fl.tanh_backward(p, p)),
        "softmax": lambda: (fl.softmax(p), fl.softmax_backward(p, p), fl.softmax(x, axis=1)),
        "log_softmax": lambda: (fl.log_softmax(p), fl.log_softmax_backward(p, p)),
        "dropout": lambda: (fl.dropout(p, 0.3, seed=5), fl.dropout_backward(p, 0.3, seed=5)),
        "max_pool2d": lambda: fl.max_pool2d_backward(d(2, 3, 4, 4), x, 2, 2),
        "avg_pool2d": lambda: (fl.avg_pool2d(x, 3, 2, 1), fl.avg_pool2d_backward(d(2, 3, 5, 5), x, 3, 2, 1)),
        "add": lambda: fl.add(p, p),
        "mse_loss": lambda: (fl.mse_loss(p, p), fl.mse_loss_backward(p, p)),
        "cross_entropy": lambda: (fl.cross_entropy(p, labels), fl.cross_entropy_backward(p, labels),
                                  fl.softmax_cross_entropy(p, labels, weight=d(10), ignore_index=2)),
        "nll_loss": lambda: (fl.nll_loss(p, labels), fl.nll_loss_backward(p, labels)),
        "logistic_loss": lambda: (fl.logistic_loss(p, signs), fl.logistic_loss_backward(p, signs)),
        "hinge_loss": lambda: (fl.hinge_loss(p, signs), fl.hinge_loss_backward(p, signs)),
        "sgd_update": lambda: fl.sgd_update(d(10), d(10), d(10), lr=0.1, momentum=0.9),
        "adam_update": lambda: fl.adam_update(d(10), d(10), d(10), d(10), lr=0.1, step=3),
    }


def test_ops_on_device_arrays_never_read_the_host(gpu):
    cp, cuda = gpu
    calls = _op_calls(cp, np.random.default_rng(0))
    fake_cupy.log.clear()
    for name, call in calls.items():
        before = len(cuda.calls)
        call()
        assert len(cuda.calls) > before, f"{name}: no CUDA kernel ran (the CuPy path was not taken)"
        assert fake_cupy.log == [], f"{name} read the host:\n" + "\n".join(
            f"{r['what']}\n{_where(r)}" for r in fake_cupy.log)


def _cnn():
    L = fl.nn
    return fl.nn.Sequential([L.Conv2d(1, 4, 3, padding=1), L.ReLU(), L.MaxPool2d(2), L.Flatten(),
                             L.Linear(4 * 4 * 4, 16), L.ReLU(), L.Dropout(0.2, seed=1), L.Linear(16, 3)])


def _fit(model, loss, n, epochs=2, validation_split=0.0):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    y = np.eye(3, dtype=np.float32)[labels] if isinstance(loss, fl.nn.MSELoss) else labels
    model.to("cuda")
    fake_cupy.log.clear()
    with np.errstate(all="ignore"):  # the fake kernels compute nothing: outputs are whatever memory held
        model.fit(x, y, epochs=epochs, batch_size=4, verbose=0, loss=loss, seed=0,
                  optimizer=fl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                  validation_split=validation_split)
    return list(fake_cupy.log)


def _reads_in(log, file, function):
    return [r for r in log if any(f.endswith(file) and fn == function for f, _, fn in r["stack"])]


def _per_epoch_reads(log):
    """Host reads inside Totals.result (the one read of an epoch's loss and accuracy)."""
    return _reads_in(log, "_device_metrics.py", "result")


def _label_check_reads(log):
    """Host reads inside _device_errors.check (the bad-label status word, read once per epoch)."""
    return _reads_in(log, "_device_errors.py", "check")


def _assert_one_read_per_pass(log, passes):
    """The only host reads: Totals.result (the epoch's loss and accuracy) and _device_errors.check
    (the CUDA losses' bad-label status word: one synchronisation and one read), once per pass."""
    per_epoch, checks = _per_epoch_reads(log), _label_check_reads(log)
    stray = [r for r in log if r not in per_epoch and r not in checks]
    assert not stray, "host reads in the training loop:\n" + "\n".join(f"{r['what']}\n{_where(r)}" for r in stray)
    assert len(per_epoch) == passes, [r["what"] for r in log]
    assert len(checks) == 2 * passes, [r["what"] for r in checks]


@pytest.mark.parametrize("validation", [False, True])
def test_training_step_never_reads_the_host(gpu, validation):
    """Sequential.fit on device arrays: the only host reads are once per epoch (and once per
    validation pass), however many batches the epoch has."""
    cuda = gpu[1]
    for n in (16, 40):  # 4 and 10 training batches per epoch
        log = _fit(_cnn(), fl.nn.MSELoss(), n, epochs=2, validation_split=0.25 if validation else 0.0)
        _assert_one_read_per_pass(log, 2 * (2 if validation else 1))
    assert "sgd_update" in cuda.calls and "conv2d_backward_weight" in cuda.calls


@pytest.mark.parametrize("validation", [False, True])
def test_cross_entropy_step_reads_the_host_once_per_epoch(gpu, validation):
    """With integer labels the CUDA loss kernels check the labels on the device (no host read per
    batch); the status word they write is read once per epoch and per validation pass."""
    for n in (16, 40):
        log = _fit(_cnn(), fl.nn.SoftmaxCrossEntropyLoss(), n, epochs=2, validation_split=0.25 if validation else 0.0)
        _assert_one_read_per_pass(log, 2 * (2 if validation else 1))


def _two_input_graph():
    """A graph Model with two inputs (its training set travels as a list of device arrays)."""
    L = fl.nn
    a, b = L.Input((1, 8, 8)), L.Input((1, 8, 8))
    h = L.Add()([L.Conv2d(1, 4, 3, padding=1)(a), L.Conv2d(1, 4, 3, padding=1)(b)])
    out = L.Linear(4 * 8 * 8, 3)(L.Flatten()(L.ReLU()(h)))
    return L.Model([a, b], out)


def test_graph_model_training_step_never_reads_the_host(gpu):
    """The graph Model shares Sequential's fit (nn/training.py): with two inputs too, the only host
    reads are one per epoch and one per validation pass."""
    model = _two_input_graph().to("cuda")
    rng = np.random.default_rng(2)
    n = 20
    x = [rng.standard_normal((n, 1, 8, 8)).astype(np.float32) for _ in range(2)]
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    fake_cupy.log.clear()
    with np.errstate(all="ignore"):
        model.fit(x, y, epochs=2, batch_size=4, verbose=0, loss=fl.nn.MSELoss(), seed=0,
                  optimizer=fl.optim.SGD(model.parameters(), lr=0.01), validation_split=0.2)
    _assert_one_read_per_pass(list(fake_cupy.log), 2 * 2)
