"""Models: summary, fit/evaluate/predict, history, early stopping, save/load, the ready-made models,
PyTorch state_dict import and training parity, the Rosenbrock MLP, bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fastlayers import data, nn, optim

from ..helpers import assert_close


def _blobs(rng, n=60, classes=3, dim=4):
    """Well-separated Gaussian blobs: a problem any classifier here solves."""
    centers = rng.standard_normal((classes, dim)) * 4
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.standard_normal((n, dim))).astype(np.float32)
    return x, y


def test_summary_shapes_and_counts():
    model = nn.models.mnist_cnn(seed=0)
    text = model.summary(print_fn=None)
    expected = [(32, 24, 24), (32, 12, 12), (32, 12, 12), (64, 8, 8), (64, 4, 4), (64, 4, 4), (1024,), (200,),
                (200,), (10,)]
    for shape in expected:
        assert "(N, " + ", ".join(map(str, shape)) + ")" in text
    counts = [32 * 1 * 5 * 5 + 32, 64 * 32 * 5 * 5 + 64, 1024 * 200 + 200, 200 * 10 + 10]
    assert model.num_parameters() == sum(counts)
    assert f"{sum(counts):,} total" in text
    model[0].freeze()
    assert f"{sum(counts) - counts[0]:,} trainable" in model.summary(print_fn=None)
    assert "(frozen)" in model.summary(print_fn=None)


@pytest.mark.parametrize("name, out", [("cnn", 10), ("lenet5", 10), ("resnet", 10), ("mlp", 10),
                                       ("perceptron", 10), ("logreg", 10)])
def test_ready_made_models_shapes(name, out, rng):
    model = nn.models.build(name, seed=0)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    y = model.forward(x)
    assert y.shape == (2, out)
    gx = model.backward(np.ones_like(y))
    assert gx.shape == x.shape
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        nn.models.build("vgg")


def test_fit_history_evaluate_predict(rng):
    x, y = _blobs(rng, n=90)
    model = nn.models.mlp([4, 16, 3], seed=1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    h = model.fit(x, y, epochs=8, batch_size=10, validation_split=0.2, optimizer=opt, verbose=0, seed=0)
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(h.loss) == len(h.val_accuracy) == 8 and h.epoch == list(range(8))
    assert h.loss[-1] < h.loss[0]
    assert h.accuracy[-1] >= 0.9
    ev = model.evaluate(x, y)
    logits = model.predict(x)
    assert logits.shape == (90, 3)
    assert ev["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == y)))
    # the reported loss is the mean softmax cross-entropy, computed here independently
    z = logits.astype(np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    assert ev["loss"] == pytest.approx(float(np.mean(lse - z[np.arange(90), y])), rel=1e-4)


def test_fit_regression_has_no_accuracy(rng):
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5], np.float32)
    model = nn.Sequential([nn.Linear(3, 1, rng=rng)], loss=nn.MSELoss())
    h = model.fit(x, y, epochs=30, batch_size=8, optimizer=optim.SGD(model.parameters(), lr=0.05), verbose=0)
    assert h.accuracy[-1] is None
    assert h.loss[-1] < 1e-3 < h.loss[0]


def test_perceptron_and_logistic_regression_separate_two_blobs(rng):
    x, y = _blobs(rng, n=80, classes=2, dim=2)
    for model in (nn.models.perceptron(2, seed=0), nn.models.logistic_regression(2, seed=0)):
        model.fit(x, y, epochs=20, batch_size=8, optimizer=optim.SGD(model.parameters(), lr=0.1), verbose=0)
        assert model.evaluate(x, y)["accuracy"] >= 0.95, model


def test_early_stopping_restores_best_weights(rng):
    x, y = _blobs(rng, n=60)
    x_val, y_val = x.copy(), rng.permutation(y)  # labels unrelated to x: val loss rises as training fits x
    model = nn.models.mlp([4, 32, 3], seed=0)
    stop = nn.EarlyStopping(patience=2, restore_best_weights=True)
    weights = {}

    class Snapshot(nn.Callback):
        def on_epoch_end(self, m, epoch, logs):
            weights[epoch] = [p.data.copy() for p in m.parameters()]

    h = model.fit(x, y, epochs=50, batch_size=6, validation_data=(x_val, y_val), verbose=0,
                  optimizer=optim.SGD(model.parameters(), lr=0.2, momentum=0.9), callbacks=[Snapshot(), stop])
    best = int(np.argmin(h.val_loss))
    assert len(h.loss) < 50 and len(h.loss) == best + 1 + 2  # stopped after `patience` epochs without progress
    assert stop.best_epoch == best
    for p, w in zip(model.parameters(), weights[best]):
        np.testing.assert_array_equal(p.data, w)


def test_early_stopping_needs_validation(rng):
    x, y = _blobs(rng)
    model = nn.models.mlp([4, 3], seed=0)
    with pytest.raises(ValueError, match="val_loss"):
        model.fit(x, y, epochs=2, callbacks=[nn.EarlyStopping()], verbose=0)


def test_fit_bad_labels(rng):
    x, y = _blobs(rng, n=10)
    model = nn.models.mlp([4, 3], seed=0)
    with pytest.raises(ValueError, match=r"class labels \(N,\) or probabilities \(N, 3\)"):
        model.fit(x, np.zeros((10, 2)), verbose=0)
    with pytest.raises(ValueError, match="same number of samples, got 10 and 9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        model.fit(x, y + 5, verbose=0)
    reg = nn.Sequential([nn.Linear(4, 2)], loss="mse")
    with pytest.raises(ValueError, match=r"shape \(N,\) \+ \(2,\)"):
        reg.fit(x, np.zeros((10, 3), np.float32), verbose=0)
    with pytest.raises(ValueError, match="no loss"):
        nn.Sequential([nn.Linear(4, 2)]).fit(x, y, verbose=0)


def test_save_load_round_trip(tmp_path, rng):
    model = nn.Sequential([nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(),
                           nn.Residual([nn.Conv2d(4, 6, 3, stride=2, padding=1, rng=rng), nn.LeakyReLU(0.2)],
                                       4, 6, stride=2, rng=rng),
                           nn.Dropout(0.25, seed=3), nn.GlobalAvgPool2d(), nn.Linear(6, 3, rng=rng)],
                          loss=nn.HingeLoss(margin=0.5), input_shape=(1, 8, 8))
    model[0].freeze()
    model.forward(np.zeros((1, 1, 8, 8), np.float32), training=True)  # advance the dropout seed
    path = tmp_path / "model.fl"
    model.save(path)
    loaded = nn.load_model(path)
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [p.name for p in loaded.parameters()] == [p.name for p in model.parameters()]
    assert isinstance(loaded.loss, nn.HingeLoss) and loaded.loss.margin == 0.5
    assert not loaded[0].trainable and loaded[2].trainable
    assert loaded[3].seed == model[3].seed == 4
    assert loaded.input_shape == (1, 8, 8)
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)


def test_load_rejects_unknown_version_and_foreign_files(tmp_path):
    model = nn.models.mlp([3, 2], seed=0)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as z:
        entries = dict(z)
    entries["format_version"] = np.array(99)
    np.savez(tmp_path / "future.npz", **entries)
    with pytest.raises(ValueError, match="format version 99 is not supported"):
        nn.load_model(tmp_path / "future.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastlayers model"):
        nn.load_model(tmp_path / "other.npz")


# --- PyTorch --------------------------------------------------------------------------------------

def _torch_cnn(torch):
    t = torch.nn
    return t.Sequential(t.Conv2d(1, 32, 5), t.MaxPool2d(2), t.ReLU(), t.Conv2d(32, 64, 5), t.MaxPool2d(2), t.ReLU(),
                        t.Flatten(), t.Linear(1024, 200), t.ReLU(), t.Linear(200, 10))


def test_torch_state_dict_import_gives_torch_outputs(rng):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: the state_dict import is not compared")
    torch.manual_seed(0)
    t = torch.nn
    cases = [
        (_torch_cnn(torch), nn.models.mnist_cnn(seed=1), (3, 1, 28, 28)),
        (t.Sequential(t.Conv2d(1, 6, 5, padding=2), t.ReLU(), t.AvgPool2d(2), t.Conv2d(6, 16, 5), t.ReLU(),
                      t.AvgPool2d(2), t.Flatten(), t.Linear(400, 120), t.ReLU(), t.Linear(120, 84), t.ReLU(),
                      t.Linear(84, 10)), nn.models.lenet5(seed=1), (2, 1, 28, 28)),
        (t.Sequential(t.Conv1d(2, 4, 3, stride=2, padding=1), t.Tanh(), t.Flatten(), t.Linear(20, 3)),
         nn.Sequential([nn.Conv1d(2, 4, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(20, 3)]),
         (2, 2, 10)),
    ]
    for tmodel, model, shape in cases:
        model.load_torch_state_dict(tmodel.state_dict())
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = tmodel(torch.from_numpy(x)).numpy()
        # float32 on both sides, different summation orders over up to 1024-term reductions in 3-5 layers
        assert_close(model.predict(x), expected, 1e-4, f"{type(model[0]).__name__} model vs torch")
    with pytest.raises(ValueError, match="has shape"):
        nn.models.lenet5().load_torch_state_dict(_torch_cnn(torch).state_dict(), strict=False)
    with pytest.raises(ValueError, match="tensors"):
        nn.models.mlp([3, 2]).load_torch_state_dict(_torch_cnn(torch).state_dict())


def test_cnn_training_parity_with_torch():
    """The course CNN, same initial weights, same batches, 50 SGD-momentum steps: the per-step losses of
    fastlayers and PyTorch agree to 1e-3 relative."""
    torch = pytest.importorskip("torch", reason="PyTorch not installed: no training parity check")
    torch.manual_seed(0)
    (x, y), _ = data.load_mnist_embedded()
    x = data.standardize(x[:200])[:, None]
    y = y[:200]
    model = nn.models.mnist_cnn(seed=3)
    tmodel = _torch_cnn(torch)
    with torch.no_grad():
        for tp, p in zip(tmodel.parameters(), model.parameters()):
            tp.copy_(torch.from_numpy(p.data))
    opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.02, momentum=0.9)
    loss_fn = nn.SoftmaxCrossEntropyLoss()
    order = np.random.default_rng(0).permutation(200)
    ours, theirs = [], []
    for step in range(50):
        idx = order[(step * 4) % 200:(step * 4) % 200 + 4]
        out = model.forward(x[idx], training=True)
        ours.append(float(loss_fn(out, y[idx])))
        model.backward(loss_fn.backward())
        opt.step()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        theirs.append(tloss.item())
    ours, theirs = np.array(ours), np.array(theirs)
    rel = np.abs(ours - theirs) / np.abs(theirs)
    assert rel.max() <= 1e-3, f"step {rel.argmax()}: fastlayers {ours[rel.argmax()]} vs torch {theirs[rel.argmax()]}"
    assert theirs[-10:].mean() < theirs[:10].mean()  # it did train


# --- the course's synthetic set -------------------------------------------------------------------

def test_mlp_learns_rosenbrock_region():
    x, y = data.rosenbrock_classification(3000, seed=0)
    x_test, y_test = data.rosenbrock_classification(1000, seed=1)
    assert 0.05 < y.mean() < 0.95
    model = nn.models.mlp([2, 64, 64, 1], seed=0)
    opt = optim.Adam(model.parameters(), lr=0.01)
    model.fit(x, y, epochs=40, batch_size=32, optimizer=opt, verbose=0, seed=0,
              callbacks=[optim.ExponentialLR(opt, 0.93)])
    acc = model.evaluate(x_test, y_test)["accuracy"]
    assert acc >= 0.95
    assert acc > max(y_test.mean(), 1 - y_test.mean()) + 0.02  # better than always guessing the majority


def test_progress_output(rng, capsys, monkeypatch):
    x, y = _blobs(rng, n=20)
    model = nn.models.mlp([4, 3], seed=0)
    model.fit(x, y, epochs=2, batch_size=5, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=5, verbose=1)  # not a tty: one line per epoch
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith("epoch 2/2: loss=") and "accuracy=" in out[1]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: a tqdm bar per epoch on stderr
    model.fit(x, y, epochs=2, batch_size=5, verbose=1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err and "4/4" in captured.err
    assert "loss=" in captured.err and "accuracy=" in captured.err


def test_training_backward_skips_only_the_first_convs_input_gradient():
    # fit() calls backward(..., need_input_grad=False): the first conv skips its backward-data
    # pass, and every parameter gradient stays exactly what the full backward gives.
    from fastlayers import nn

    rng = np.random.default_rng(3)
    model = nn.models.mnist_cnn(seed=1)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    g = rng.standard_normal((3, 10)).astype(np.float32)
    model.forward(x, training=True)
    full_input_grad = model.backward(g)
    full = [p.grad.copy() for p in model.parameters()]
    model.forward(x, training=True)
    assert model.backward(g, need_input_grad=False) is None
    assert full_input_grad.shape == x.shape
    for p, expected in zip(model.parameters(), full):
        np.testing.assert_array_equal(p.grad, expected)
    assert model.layers[0].need_input_grad  # the layer's own default is untouched


@pytest.mark.parametrize("first", ["conv3d", "conv_transpose2d"])
def test_training_backward_skips_a_first_conv3d_or_conv_transpose2d_input_gradient(first):
    """The first-layer rule covers Conv3d and ConvTranspose2d too: None, same parameter gradients."""
    from fastlayers import nn

    rng = np.random.default_rng(4)
    if first == "conv3d":
        model = nn.Sequential([nn.Conv3d(2, 3, 3, padding=1, rng=rng), nn.ReLU(), nn.Flatten()])
        x = rng.standard_normal((2, 2, 4, 5, 6)).astype(np.float32)
    else:
        model = nn.Sequential([nn.ConvTranspose2d(2, 3, 3, stride=2, rng=rng), nn.ReLU(), nn.Flatten()])
        x = rng.standard_normal((2, 2, 5, 4)).astype(np.float32)
    y = model.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    full_input_grad = model.backward(g)
    full = [p.grad.copy() for p in model.parameters()]
    model.forward(x, training=True)
    assert model.backward(g, need_input_grad=False) is None
    assert full_input_grad.shape == x.shape
    for p, expected in zip(model.parameters(), full):
        np.testing.assert_array_equal(p.grad, expected)


# --- buffers (non-trained state saved with the model) ---------------------------------------------

class _Counter(nn.Layer):
    """A layer with a buffer: counts the training batches it has seen (like num_batches_tracked)."""

    def __init__(self):
        super().__init__()
        self._buffers["seen"] = np.zeros(2, np.float32)

    def forward(self, x, training=None):
        if self._is_training(training):
            self._buffers["seen"] = self._buffers["seen"] + 1
        return x

    def backward(self, grad_out):
        return grad_out


def test_buffers_are_listed_saved_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(nn, "_Counter", _Counter, raising=False)
    monkeypatch.setattr(nn.layers, "_Counter", _Counter, raising=False)
    model = nn.Sequential([nn.Linear(3, 2, rng=0), _Counter()])
    model.forward(np.ones((1, 3), np.float32), training=True)
    assert [(q, n) for q, _, n in model.named_buffers()] == [("1.seen", "seen")]
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = nn.load_model(path)
    np.testing.assert_array_equal(loaded[1]._buffers["seen"], [1, 1])
    # A file whose buffer has the wrong shape is refused, naming the buffer.
    with np.load(path) as z:
        entries = dict(z)
    entries["buffer_0"] = np.zeros(3, np.float32)
    np.savez(tmp_path / "bad.npz", **entries)
    with pytest.raises(ValueError, match="buffer '1.seen' has shape"):
        nn.load_model(tmp_path / "bad.npz")


def test_version_1_files_still_load(tmp_path):
    model = nn.models.mlp([3, 2], seed=0)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as z:
        entries = dict(z)
    entries["format_version"] = np.array(1)
    np.savez(tmp_path / "v1.npz", **entries)
    loaded = nn.load_model(tmp_path / "v1.npz")
    np.testing.assert_array_equal(loaded.parameters()[0].data, model.parameters()[0].data)


@pytest.mark.parametrize("name", ["cnn", "lenet5", "resnet", "mlp", "logreg", "perceptron"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (2, 20, 24)])
def test_builders_adapt_to_the_input_shape(name, shape):
    model = nn.models.build(name, seed=0, num_classes=10, input_shape=shape)
    x = np.random.default_rng(0).standard_normal((2,) + shape).astype(np.float32)
    assert model.predict(x).shape == (2, 10)
    assert tuple(model.input_shape) == shape


def test_cnn_for_mnist_is_unchanged_and_bad_shapes_are_named():
    a, b = nn.models.mnist_cnn(seed=3), nn.models.build("cnn", seed=3, input_shape=(1, 28, 28))
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert a[7].weight.shape == (200, 1024) and nn.models.mnist_cnn(input_shape=(3, 32, 32))[7].weight.shape == (200, 1600)
    with pytest.raises(ValueError, match=r"mnist_cnn needs images of at least 16x16, got input_shape \(1, 8, 8\)"):
        nn.models.mnist_cnn(input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"lenet5 takes images: input_shape must be \(channels, height, width\)"):
        nn.models.lenet5(input_shape=(784,))
