"""Hostile-user calls across layers, models, fit/evaluate/predict, save/load, the data loaders and
the optimizers (issue #17): each is a TypeError or ValueError naming the argument (or the file),
never an AttributeError, ZeroDivisionError, IndexError or struct.error from inside; and the
reproducers' right answers (predict on 0 samples, real label values in messages)."""

import gzip
import json
import os

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn, optim


def o(*s):
    return np.ones(s, np.float32)


def _model():
    return nn.Sequential([nn.Linear(4, 3)], loss=nn.SoftmaxCrossEntropyLoss())


X, Y = o(8, 4), np.arange(8) % 3


def _fit(**kw):
    return _model().fit(X, Y, **{"verbose": 0, **kw})


LAYERS = [
    (lambda: nn.Linear(2.5, 3), ValueError, r"in_features must be an integer, got 2\.5"),
    (lambda: nn.Linear(4.0, 3), ValueError, r"in_features must be an integer"),
    (lambda: nn.Linear("4", 3), TypeError, r"in_features must be an integer, got str"),
    (lambda: nn.Linear(None, 3), TypeError, r"in_features must be an integer, got NoneType"),
    (lambda: nn.Linear(True, 3), TypeError, r"in_features must be an integer, got bool"),
    (lambda: nn.Linear(4, 0), ValueError, r"out_features must be >= 1, got 0"),
    (lambda: nn.Linear(2**70, 3), ValueError, r"in_features must be at most 2\*\*63 - 1"),
    (lambda: nn.Linear(2**30, 2**30), ValueError, r"weight tensor \(1073741824, 1073741824\)"),
    (lambda: nn.Linear(4, 3, bias="no"), TypeError, r"bias must be a bool"),
    (lambda: nn.Conv1d(3, 4, 2.5), ValueError, r"kernel_size must be an integer, got 2\.5"),
    (lambda: nn.Conv1d(3, 4, 3, stride=(1, 1)), ValueError, r"stride must be an int or a 1-tuple"),
    (lambda: nn.Conv2d(3, 4, 0), ValueError, r"kernel_size must be >= 1, got 0"),
    (lambda: nn.Conv2d(3, 4, (3, 0)), ValueError, r"kernel_size must be >= 1, got 0"),
    (lambda: nn.Conv2d(0, 4, 3), ValueError, r"in_channels must be >= 1, got 0"),
    (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, r"stride must be >= 1, got 0"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError, r"padding must be >= 0, got -1"),
    (lambda: nn.Conv2d(3, 4, 3, dilation=1.5), ValueError, r"dilation must be an integer"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, r"groups=2 must divide in_channels=3"),
    (lambda: nn.Conv2d(3, 4, "3"), TypeError, r"kernel_size must be an integer, got str"),
    (lambda: nn.Conv2d(3, 4, (3,)), ValueError, r"kernel_size must be an int or a pair"),
    (lambda: nn.MaxPool2d(2.5), TypeError, r"kernel_size must be an int(eger)?, got float 2\.5"),
    (lambda: nn.LeakyReLU("a"), TypeError, r"negative_slope must be a real number"),
    (lambda: nn.Softmax(axis=1.5), ValueError, r"axis must be an integer"),
    (lambda: nn.Dropout(1.0), ValueError, r"p must be in \[0\.0, 1\.0\)"),
    (lambda: nn.Dropout("a"), TypeError, r"p must be a real number"),
    (lambda: nn.Dropout(0.5, seed=-1), ValueError, r"seed must be an int in \[0, 2\*\*64\)"),
    (lambda: nn.Dropout(0.5, seed=1.5), TypeError, r"seed must be an int"),
    (lambda: nn.Linear(4, 3)(None), TypeError, r"x must be an array, got None"),
    (lambda: nn.Linear(4, 3)("abcd"), TypeError, r"x must be a numeric array"),
    (lambda: nn.Linear(4, 3)(o(2, 5)), ValueError, r"in_features=4"),
    (lambda: nn.Conv2d(1, 2, 3)(None), TypeError, r"x must be an array, got None"),
    (lambda: nn.Conv2d(3, 4, 0 + 1)(o(1, 2, 5, 5)), ValueError, r"input must be \(N, 3, H, W\)"),
    (lambda: nn.Conv1d(1, 2, 3)(None), TypeError, r"x must be an array, got None"),
    (lambda: nn.Flatten()(None), TypeError, r"x must be an array, got None"),
    (lambda: nn.Flatten()(np.float32(1)), ValueError, r"Flatten: x must have a batch dimension"),
    (lambda: nn.Dropout(0.5)(None, training=False), TypeError, r"x must be an array, got None"),
    (lambda: nn.Residual([nn.ReLU()], projection=3), TypeError, r"projection must be a Layer"),
]

BACKWARD_FIRST = [nn.Linear(4, 3), nn.Conv2d(1, 2, 3), nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Sigmoid(), nn.Tanh(),
                  nn.Softmax(), nn.LeakyReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.GlobalAvgPool2d(),
                  nn.Flatten(), nn.Residual([nn.ReLU()]), nn.Sequential([nn.Linear(4, 3)])]

MODELS = [
    (lambda: nn.Sequential(None), TypeError, r"layers must be a list"),
    (lambda: nn.Sequential([3]), TypeError, r"layers\[0\] must be a fastlayers.nn Layer"),
    (lambda: nn.Sequential([], input_shape="ab"), TypeError, r"input_shape must be a tuple of sizes"),
    (lambda: nn.Sequential([], input_shape=(0, 2)), ValueError, r"input_shape must be >= 1, got 0"),
    (lambda: nn.Sequential([]).add(3), TypeError, r"layer must be a fastlayers.nn Layer"),
    (lambda: _model().compile(optimizer="sgd"), TypeError, r"optimizer must be an optimizer.*got str 'sgd'"),
    (lambda: _model().predict(None), TypeError, r"x must be an array of samples, got None"),
    (lambda: _model().predict(np.zeros(4, np.float32)), ValueError, r"x must have a batch dimension"),
    (lambda: _model().predict(np.array([["a"] * 4])), TypeError, r"x must be a numeric array of samples"),
    (lambda: _model().predict(X, batch_size=0), ValueError, r"batch_size must be >= 1, got 0"),
    (lambda: _model().predict(X, batch_size=1.5), ValueError, r"batch_size must be an integer, got 1\.5"),
    (lambda: _fit(epochs=1.5), ValueError, r"epochs must be an integer, got 1\.5"),
    (lambda: _fit(epochs="2"), TypeError, r"epochs must be an integer, got str"),
    (lambda: _fit(epochs=0), ValueError, r"epochs must be >= 1, got 0"),
    (lambda: _fit(batch_size=None), TypeError, r"batch_size must be an integer, got NoneType"),
    (lambda: _fit(optimizer="sgd"), TypeError, r"optimizer must be an optimizer.*got str 'sgd'"),
    (lambda: _fit(loss="foo"), ValueError, r"loss must be a Loss or one of"),
    (lambda: _fit(validation_split=float("nan")), ValueError, r"validation_split must be in \[0\.0, 1\.0\), got nan"),
    (lambda: _fit(validation_split="a"), TypeError, r"validation_split must be a real number"),
    (lambda: _fit(validation_data=3), ValueError, r"validation_data must be a pair"),
    (lambda: _fit(callbacks=[3]), TypeError, r"callbacks\[0\] must be a callback"),
    (lambda: _fit(callbacks="x"), TypeError, r"callbacks must be a list"),
    (lambda: _fit(seed="a"), TypeError, r"seed must be an integer, got str"),
    (lambda: _fit(shuffle="a"), TypeError, r"shuffle must be a bool"),
    (lambda: _fit(verbose="a"), TypeError, r"verbose must be an integer"),
    (lambda: _model().fit(X, None, verbose=0), TypeError, r"y must be an array of targets, got None"),
    (lambda: _model().fit(None, Y, verbose=0), TypeError, r"x must be an array of samples, got None"),
    (lambda: _model().fit([[1, 2], [3]], Y[:2], verbose=0), TypeError, r"x must be a numeric array of samples"),
    (lambda: _model().fit(X, np.full(8, 2**64 - 1, np.uint64), verbose=0), ValueError, r"18446744073709551615"),
    (lambda: _model().evaluate(X, Y, batch_size=0), ValueError, r"batch_size must be >= 1, got 0"),
    (lambda: _model().evaluate(X, None), TypeError, r"y must be an array of targets, got None"),
    (lambda: _model().summary(input_shape="a", print_fn=None), TypeError, r"input_shape must be a tuple"),
    (lambda: _model().save(None), TypeError, r"path must be a file name"),
    (lambda: nn.load_model(None), TypeError, r"path must be a file name or an open binary file"),
    (lambda: _model().load_torch_state_dict(None), TypeError, r"state_dict must be a mapping"),
    (lambda: _model().load_torch_state_dict({"a": "b", "c": 1}), TypeError, r"state_dict\['a'\] must be a numeric"),
    (lambda: nn.models.mlp([4, 2.5]), ValueError, r"sizes\[1\] must be an integer, got 2\.5"),
    (lambda: nn.models.mlp(4), TypeError, r"sizes must be a list"),
    (lambda: nn.EarlyStopping(patience=1.5), ValueError, r"patience must be an integer"),
    (lambda: nn.EarlyStopping(monitor=3), TypeError, r"monitor must be a metric name"),
]

OPTIMIZERS = [
    (lambda: optim.SGD(None), TypeError, r"params must be a list of Parameters"),
    (lambda: optim.SGD([1, 2]), TypeError, r"params\[0\] must be a fastlayers Parameter"),
    (lambda: optim.SGD(_model().parameters(), lr="a"), TypeError, r"lr must be a real number"),
    (lambda: optim.SGD(_model().parameters(), lr=float("inf")), ValueError, r"lr must be in \(0\.0, inf\)"),
    (lambda: optim.SGD(_model().parameters(), momentum="a"), TypeError, r"momentum must be a real number"),
    (lambda: optim.SGD(_model().parameters(), nesterov=1), TypeError, r"nesterov must be a bool"),
    (lambda: optim.Adam(_model().parameters(), eps=0), ValueError, r"eps must be in \(0\.0, inf\)"),
    (lambda: optim.Adam(_model().parameters(), weight_decay=-1), ValueError, r"weight_decay must be in"),
    (lambda: optim.Adam(_model().parameters(), beta1="a"), TypeError, r"beta1 must be a real number"),
    (lambda: optim.StepLR(optim.SGD(_model().parameters()), step_size=1.5), ValueError, r"step_size must be an int"),
    (lambda: optim.StepLR(None, 2), TypeError, r"optimizer must be a fastlayers optimizer"),
    (lambda: optim.ExponentialLR(optim.SGD(_model().parameters()), "a"), TypeError, r"gamma must be a real"),
    (lambda: optim.InverseTimeLR(optim.SGD(_model().parameters()), -1), ValueError, r"decay must be in"),
]

DATA = [
    (lambda: list(fl.data.batches(X, Y, batch_size=1.5)), TypeError, r"batch_size must be an int, got float"),
    (lambda: list(fl.data.batches(None)), TypeError, r"x must be an array of samples"),
    (lambda: list(fl.data.batches(X, seed="a")), TypeError, r"seed must be an int"),
    (lambda: fl.data.standardize(None), TypeError, r"x_train must be a numeric array, got None"),
    (lambda: fl.data.standardize(np.array(["a"])), TypeError, r"x_train must be a numeric array"),
    (lambda: fl.data.rosenbrock_classification(n=-1), ValueError, r"n must be >= 0, got -1"),
    (lambda: fl.data.rosenbrock_classification(n=1.5), TypeError, r"n must be an int, got float"),
    (lambda: fl.data.rosenbrock_regression(box=3), TypeError, r"box must be"),
    (lambda: fl.data.read_idx(None), TypeError, r"path must be a file or folder name"),
    (lambda: fl.data.load_mnist(3, download=False), TypeError, r"root must be a file or folder name"),
]

OPS = [
    (lambda: fl.softmax_cross_entropy(o(2, 3), np.array([0, 2**64 - 1], np.uint64)), ValueError,
     r"labels must lie in \[0, 3\) or equal ignore_index \(-100\), got a label 18446744073709551615"),
    (lambda: fl.adam_update(o(3), o(3), np.zeros(3, np.float32), np.zeros(3, np.float32), step=2**64), ValueError,
     r"step must be >= 1 and <= 2\*\*63 - 1"),
    (lambda: fl.dropout_mask((2**62, 2**62), 0.5, seed=1), ValueError, r"shape .* more than the 2\*\*48"),
]


@pytest.mark.parametrize("call, err, match", LAYERS + MODELS + OPTIMIZERS + DATA + OPS,
                         ids=[f"case{i}" for i in range(len(LAYERS + MODELS + OPTIMIZERS + DATA + OPS))])
def test_bad_call_is_a_clear_error(call, err, match):
    with pytest.raises(err, match=match) as info:
        call()
    assert type(info.value) in (TypeError, ValueError) or isinstance(info.value, nn.BackwardBeforeForward)


@pytest.mark.parametrize("layer", BACKWARD_FIRST, ids=lambda layer: type(layer).__name__)
def test_backward_before_forward(layer):
    with pytest.raises(ValueError, match=r"backward called before forward"):
        layer.backward(o(1, 3))
    assert not hasattr(nn.Linear(2, 2), "_x")  # still an AttributeError for hasattr / copy


def test_predict_on_zero_samples_has_the_output_shape():
    assert _model().predict(np.zeros((0, 4), np.float32)).shape == (0, 3)
    cnn = nn.models.mnist_cnn(seed=0)
    assert cnn.predict(np.zeros((0, 1, 28, 28), np.float32)).shape == (0, 10)
    assert nn.Flatten()(np.zeros((0, 2, 3), np.float32)).shape == (0, 6)


def test_fit_accepts_bool_verbose_and_generator_seed(capsys):
    _fit(verbose=False, seed=np.random.default_rng(1), epochs=1)


# ---- files ---------------------------------------------------------------------------------------

def _write(path, data: bytes):
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_load_model_on_random_bytes_and_damaged_files(tmp_path):
    rng = np.random.default_rng(0)
    cases = {
        "random": _write(tmp_path / "r.bin", rng.bytes(300)),
        "empty": _write(tmp_path / "e.bin", b""),
        "npy": tmp_path / "a.npy",
        "other npz": _npz(tmp_path / "o.npz", a=np.ones(3)),
        "bad json": _npz(tmp_path / "j.npz", format_version=np.array(2), config=np.array("{not json")),
        "bad version": _npz(tmp_path / "v.npz", format_version=np.array(["x"]), config=np.array("{}")),
        "future version": _npz(tmp_path / "f.npz", format_version=np.array(99), config=np.array("{}")),
        "negative size": _npz(tmp_path / "n.npz", format_version=np.array(2), config=np.array(json.dumps(
            {"model": {"class": "Linear", "config": {"in_features": -3, "out_features": 2}}}))),
        "unknown key": _npz(tmp_path / "k.npz", format_version=np.array(2), config=np.array(json.dumps(
            {"model": {"class": "Linear", "config": {"in_features": 4, "out_features": 3, "bogus": 1}}}))),
        "unknown class": _npz(tmp_path / "c.npz", format_version=np.array(2), config=np.array(json.dumps(
            {"model": {"class": "to_device", "config": {}}}))),
        "unknown loss": _npz(tmp_path / "l.npz", format_version=np.array(2), config=np.array(json.dumps(
            {"model": {"class": "Sequential", "config": {}, "layers": []}, "loss": {"class": "np", "config": {}}}))),
    }
    np.save(cases["npy"], np.ones(3))
    good = tmp_path / "good.npz"
    _model().save(good)
    raw = good.read_bytes()
    cases["truncated"] = _write(tmp_path / "t.npz", raw[: len(raw) // 2])
    for what, path in cases.items():
        with pytest.raises(ValueError, match=r"not a fastlayers model file|not supported|damaged|unknown loss") as info:
            nn.load_model(path)
        assert str(path) in str(info.value), what
    assert nn.load_model(good).predict(X).shape == (8, 3)
    # Random damage: a clean load (a harmless byte, e.g. a timestamp) or a ValueError naming the file.
    for i in range(300):
        b = bytearray(raw)
        for pos in rng.integers(0, len(b), rng.integers(1, 4)):
            b[pos] = rng.integers(256)
        if i % 5 == 0:
            b = b[: rng.integers(len(b))]
        damaged = _write(tmp_path / "d.npz", bytes(b))
        try:
            nn.load_model(damaged)
        except ValueError as e:
            assert str(damaged) in str(e)


def test_file_system_errors_stay_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        nn.load_model(tmp_path / "missing.npz")
    with pytest.raises(IsADirectoryError):
        _model().save(tmp_path)


def test_read_idx_truncated_and_damaged_files_name_the_file(tmp_path):
    header_only = _write(tmp_path / "h.idx", bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match=r"h\.idx: truncated IDX file: the header announces 3 dimensions"):
        fl.data.read_idx(header_only)
    short_data = _write(tmp_path / "s.idx", bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match=r"s\.idx: header says \(5,\)"):
        fl.data.read_idx(short_data)
    gz = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    cut = _write(tmp_path / "c.idx.gz", gz[:-6])
    with pytest.raises(ValueError, match=r"c\.idx\.gz: not a readable gzip-compressed IDX file"):
        fl.data.read_idx(cut)
    not_gz = _write(tmp_path / "n.idx.gz", b"plain bytes")
    with pytest.raises(ValueError, match=r"n\.idx\.gz: not a readable gzip"):
        fl.data.read_idx(not_gz)
    ok = _write(tmp_path / "ok.idx.gz", gz)
    assert fl.data.read_idx(ok).tolist() == [7, 9]
    assert os.path.exists(ok)
