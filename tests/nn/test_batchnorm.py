"""BatchNorm1d/2d/3d layers against torch.nn.BatchNorm*d (train/eval, momentum, momentum=None,
affine, track_running_stats, backward), freezing, summary, save/load, a conv-BN-ReLU net trained
through Sequential.fit against PyTorch, and the RMSprop / Adagrad optimizers in fit."""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn, optim

from ..helpers import assert_close, reduction_tol

LAYERS = [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (4, 3, 5)), (nn.BatchNorm2d, (3, 3, 4, 5)),
          (nn.BatchNorm3d, (2, 3, 2, 3, 4))]


def _torch_bn(torch, cls, **kw):
    return getattr(torch.nn, cls.__name__)(3, **kw).double()


@pytest.mark.parametrize("cls, shape", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("kw", [dict(), dict(momentum=None), dict(momentum=0.5, eps=1e-3), dict(affine=False),
                                dict(track_running_stats=False)], ids=str)
def test_layer_matches_torch_train_then_eval(rng, cls, shape, kw):
    torch = pytest.importorskip("torch")
    layer, tlayer = cls(3, **kw), _torch_bn(torch, cls, **kw)
    if layer.affine:  # non-trivial affine parameters, the same on both sides
        w, b = (rng.standard_normal(3) + 1).astype(np.float32), rng.standard_normal(3).astype(np.float32)
        layer.weight.data[...] = w
        layer.bias.data[...] = b
        with torch.no_grad():
            tlayer.weight.copy_(torch.tensor(w))
            tlayer.bias.copy_(torch.tensor(b))
    m = shape[0] * int(np.prod(shape[2:]))
    tol = reduction_tol(m)
    for step in range(3):
        for training in (True, False):
            x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
            g = rng.standard_normal(shape).astype(np.float32)
            tlayer.train(training)
            tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            ty = tlayer(tx)
            ty.backward(torch.tensor(g, dtype=torch.float64))
            layer.train(training)
            y = layer.forward(x)
            gx = layer.backward(g)
            assert_close(y, ty.detach().numpy(), tol, f"y step {step} training={training}")
            assert_close(gx, tx.grad.numpy(), tol, f"grad_x step {step} training={training}")
            if layer.affine:
                assert_close(layer.weight.grad, tlayer.weight.grad.numpy(), tol, "grad weight")
                assert_close(layer.bias.grad, tlayer.bias.grad.numpy(), tol, "grad bias")
                tlayer.weight.grad = tlayer.bias.grad = None
            if layer.track_running_stats:
                assert_close(layer.running_mean, tlayer.running_mean.numpy(), tol, "running_mean")
                assert_close(layer.running_var, tlayer.running_var.numpy(), tol, "running_var")
                assert layer.num_batches_tracked == int(tlayer.num_batches_tracked)
    if layer.track_running_stats:
        assert layer.num_batches_tracked == 3


def test_layer_on_every_backend(device, rng):
    # The same layer on the backend under test (after .to()) and on the CPU: outputs, gradients,
    # running statistics and the batch count (momentum=None reads it back each training step).
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    cpu, dev = nn.BatchNorm2d(3, momentum=None), nn.BatchNorm2d(3, momentum=None).to(device.name)
    tol = reduction_tol(100)
    for training in (True, True, False):
        y0, y1 = cpu.forward(x, training=training), dev.forward(device.put(x), training=training)
        gx0, gx1 = cpu.backward(g), dev.backward(device.put(g))
        assert_close(y1, y0, tol, f"y training={training}")
        assert_close(gx1, gx0, tol, f"grad_x training={training}")
        assert_close(dev.weight.grad, cpu.weight.grad, tol, "grad weight")
    assert_close(dev.running_mean, cpu.running_mean, tol, "running_mean")
    assert_close(dev.running_var, cpu.running_var, tol, "running_var")
    assert dev.num_batches_tracked == cpu.num_batches_tracked == 2


def test_parameters_buffers_and_bad_input():
    layer = nn.BatchNorm2d(4)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [n for n, _, _ in layer.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(layer.weight.data, 1)
    np.testing.assert_array_equal(layer.running_var, 1)
    assert nn.BatchNorm1d(4, affine=False, track_running_stats=False).parameters() == []
    with pytest.raises(ValueError, match=r"BatchNorm2d: input must be \(N, C, H, W\) with C = num_features = 4"):
        layer.forward(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="BatchNorm1d: input must be"):
        nn.BatchNorm1d(4).forward(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(4).forward(np.zeros((1, 4), np.float32), training=True)
    for kw, msg in [(dict(num_features=0), "num_features"), (dict(num_features=4, eps=0), "eps"),
                    (dict(num_features=4, momentum=1.5), "momentum"), (dict(num_features=2.5), "num_features")]:
        with pytest.raises(ValueError, match=msg):
            nn.BatchNorm2d(**kw)


def test_frozen_layer_is_in_eval_mode(rng):
    layer = nn.BatchNorm2d(3)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32) * 2 + 1
    layer.forward(x, training=True)  # some running statistics
    layer.freeze()
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    want = layer.forward(x, training=False)
    g = rng.standard_normal(x.shape).astype(np.float32)
    want_gx = layer.backward(g)
    y = layer.forward(x, training=True)  # as inside fit
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(layer.running_mean, rm)
    np.testing.assert_array_equal(layer.running_var, rv)
    assert layer.num_batches_tracked == 1
    np.testing.assert_array_equal(layer.backward(g), want_gx)
    assert layer.weight.grad is None and layer.bias.grad is None
    assert [p.trainable for p in layer.parameters()] == [False, False]
    layer.unfreeze()
    layer.forward(x, training=True)
    assert layer.num_batches_tracked == 2 and not np.array_equal(layer.running_mean, rm)


def _conv_bn_net(seed=0):
    # No conv bias before a batch norm (as ResNet): its gradient is 0 up to rounding, and RMSprop /
    # Adagrad would turn that rounding noise into steps of size lr in arbitrary directions.
    rng = np.random.default_rng(seed)
    return nn.Sequential([nn.Conv2d(2, 4, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(4, momentum=0.3),
                          nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3, rng=rng)], loss="softmax_cross_entropy")


def _torch_copy(torch, model):
    tn = torch.nn
    tm = tn.Sequential(tn.Conv2d(2, 4, 3, padding=1, bias=False), tn.BatchNorm2d(4), tn.ReLU(),
                       tn.Conv2d(4, 4, 3, padding=1, bias=False), tn.BatchNorm2d(4, momentum=0.3), tn.ReLU(),
                       tn.Flatten(),
                       tn.Linear(4 * 6 * 6, 3))
    with torch.no_grad():
        for tp, p in zip(tm.parameters(), model.parameters()):
            tp.copy_(torch.from_numpy(p.data))
    return tm


@pytest.mark.parametrize("opt_name", ["SGD", "RMSprop", "Adagrad"])
def test_conv_bn_relu_fit_matches_torch(rng, opt_name):
    """Sequential.fit on a conv-BN-ReLU-conv-BN-ReLU-dense net, shuffle off, same initial weights as a
    PyTorch copy trained with the same optimizer: after 2 epochs of 3 batches the weights, running
    statistics and losses agree."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((24, 2, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    model = _conv_bn_net()
    tmodel = _torch_copy(torch, model)
    kw = {"SGD": dict(lr=0.05, momentum=0.9), "RMSprop": dict(lr=0.003, momentum=0.5, centered=True),
          "Adagrad": dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)}[opt_name]
    opt = getattr(optim, opt_name)(model.parameters(), **kw)
    topt = getattr(torch.optim, opt_name)(tmodel.parameters(), **kw)
    hist = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, optimizer=opt, verbose=0)
    tmodel.train()
    tlosses = []
    for epoch in range(2):
        total = 0.0
        for b in range(3):
            xb, yb = torch.from_numpy(x[b * 8:(b + 1) * 8]), torch.from_numpy(y[b * 8:(b + 1) * 8])
            loss = torch.nn.functional.cross_entropy(tmodel(xb), yb)
            topt.zero_grad()
            loss.backward()
            topt.step()
            total += loss.item() * 8
        tlosses.append(total / 24)
    np.testing.assert_allclose(hist.history["loss"], tlosses, rtol=1e-4)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p.data, tp.detach().numpy(), 1e-4, f"{opt_name} {p.name}")
    for i in (1, 4):
        assert_close(model[i].running_mean, tmodel[i].running_mean.numpy(), 1e-4, "running_mean")
        assert_close(model[i].running_var, tmodel[i].running_var.numpy(), 1e-4, "running_var")
        assert model[i].num_batches_tracked == int(tmodel[i].num_batches_tracked) == 6
    # Eval mode uses the running statistics: predictions agree too.
    tmodel.eval()
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    assert_close(model.predict(x), want, 1e-4, "predict after fit")
    # The optimizers keep their state where SGD and Adam keep theirs.
    first = model.parameters()[0]
    key = {"SGD": "velocity", "RMSprop": "square_avg", "Adagrad": "sum"}[opt_name]
    assert opt.state[id(first)][key].shape == first.shape


def test_summary_save_load(tmp_path, rng):
    model = _conv_bn_net()
    x = rng.standard_normal((16, 2, 6, 6)).astype(np.float32)
    model.fit(x, rng.integers(0, 3, 16), epochs=1, batch_size=8, verbose=0)
    model[4].freeze()
    text = model.summary(input_shape=(2, 6, 6), print_fn=None)
    assert "BatchNorm2d(4)" in text and "BatchNorm2d(4, momentum=0.3)" in text
    assert "(N, 4, 6, 6)" in text
    row = [line for line in text.splitlines() if "BatchNorm2d(4, momentum=0.3)" in line][0]
    assert row.split()[-2:] == ["8", "(frozen)"]  # weight + bias, frozen
    path = tmp_path / "bn.npz"
    model.save(path)
    loaded = nn.load_model(path)
    assert isinstance(loaded[1], nn.BatchNorm2d) and loaded[4].momentum == 0.3 and not loaded[4].trainable
    for i in (1, 4):
        np.testing.assert_array_equal(loaded[i].running_mean, model[i].running_mean)
        np.testing.assert_array_equal(loaded[i].running_var, model[i].running_var)
        assert loaded[i].num_batches_tracked == model[i].num_batches_tracked == 2
        assert loaded[i]._buffers["num_batches_tracked"].dtype == np.int64
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # trainable survives; the frozen layer keeps its statistics through more training
    rm = loaded[4].running_mean.copy()
    loaded.fit(x, rng.integers(0, 3, 16), epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(loaded[4].running_mean, rm)
    assert not np.array_equal(loaded[1].running_mean, model[1].running_mean)


def test_reference_ops_run_the_layer_in_float64(rng):
    # The layer goes through the op namespace: with use_ops(reference) it runs on the NumPy oracle.
    layer = nn.BatchNorm1d(3)
    x = rng.standard_normal((5, 3, 4))
    with nn.use_ops(fl.reference):
        y = layer.forward(x, training=True)
        gx = layer.backward(np.ones_like(x))
    assert y.dtype == np.float64
    assert_close(y.mean(axis=(0, 2)), np.zeros(3), 1e-12, "normalised mean")
    assert_close(gx, np.zeros_like(x), 1e-12, "a constant upstream gradient gives none")


def test_optimizer_arguments():
    p = nn.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match="alpha"):
        optim.RMSprop(p, alpha=-1)
    with pytest.raises(ValueError, match="momentum"):
        optim.RMSprop(p, momentum=-0.1)
    with pytest.raises(ValueError, match="lr_decay"):
        optim.Adagrad(p, lr_decay=-1)
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        optim.Adagrad(p, initial_accumulator_value=-1)
