"""ConvTranspose2d, Conv3d, MaxPool3d, AvgPool3d: gradients against finite differences (float64
through the reference ops), the float32 layers against the reference, training through Sequential,
summary(), save/load, and PyTorch-compatible construction."""

from __future__ import annotations

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn

from ..helpers import assert_close, reduction_tol
from .test_layers import check_grads

LAYERS = {
    "convT": (lambda rng: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, rng=rng), (2, 2, 3, 4)),
    "convT_groups_dil": (lambda rng: nn.ConvTranspose2d(4, 2, (2, 3), groups=2, dilation=(1, 2), bias=False, rng=rng),
                         (1, 4, 3, 3)),
    "conv3d": (lambda rng: nn.Conv3d(2, 3, 3, padding=1, rng=rng), (2, 2, 3, 4, 3)),
    "conv3d_stride_groups": (lambda rng: nn.Conv3d(4, 2, (2, 3, 1), stride=(2, 1, 2), groups=2, rng=rng),
                             (1, 4, 5, 4, 3)),
    "maxpool3d": (lambda rng: nn.MaxPool3d(2), (2, 2, 4, 4, 4)),
    "maxpool3d_ceil_dil": (lambda rng: nn.MaxPool3d(3, stride=2, padding=1, dilation=(1, 2, 1), ceil_mode=True),
                           (1, 1, 5, 6, 5)),
    "avgpool3d": (lambda rng: nn.AvgPool3d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
                  (1, 2, 5, 4, 5)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_gradients(rng, name):
    make, shape = LAYERS[name]
    check_grads(make(rng), shape, rng, name)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_float32_against_reference(rng, name):
    make, shape = LAYERS[name]
    layer = make(rng)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx = layer.backward(g)
    grads = {n: p.grad for n, p in layer.named_parameters()}
    with nn.use_ops(fl.reference):
        ry = layer.forward(x.astype(np.float64), training=True)
        rgx = layer.backward(g.astype(np.float64))
        rgrads = {n: p.grad for n, p in layer.named_parameters()}
    tol = reduction_tol(int(np.prod(shape)))
    assert_close(y, ry, tol, f"{name} y")
    assert_close(gx, rgx, tol, f"{name} grad_x")
    for n in grads:
        assert_close(grads[n], rgrads[n], tol, f"{name} grad {n}")


def _volumes(rng, n=48):
    # Two classes: a bright blob in the front or the back half of an 8^3 volume.
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 1, 8, 8, 8)).astype(np.float32) * 0.3
    for i, c in enumerate(y):
        x[i, 0, 4 * c:4 * c + 4, 2:6, 2:6] += 1.5
    return x, y


@pytest.fixture
def one_thread():
    # Hundreds of tiny kernel calls: with 2 threads every OpenMP region waits for the second thread to
    # be scheduled, which on a loaded machine cost 70x (5.5 s instead of 0.08 s); the parallel
    # paths have their own tests.
    old = fl.get_num_threads()
    fl.set_num_threads(1)
    yield
    fl.set_num_threads(old)


def test_conv3d_network_trains_through_sequential(rng, tmp_path, one_thread):
    model = nn.Sequential([nn.Conv3d(1, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool3d(2),
                           nn.Conv3d(4, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.AvgPool3d(2), nn.Flatten(),
                           nn.Linear(4 * 2 * 2 * 2, 2, rng=rng)],
                          loss=nn.SoftmaxCrossEntropyLoss(), input_shape=(1, 8, 8, 8))
    x, y = _volumes(rng)
    model.compile(fl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    before = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    after = model.evaluate(x, y)
    assert after["loss"] < 0.5 * before and after["accuracy"] >= 0.9
    text = model.summary(print_fn=None)
    assert "Conv3d(1->4, k=3, padding=1)" in text and "MaxPool3d" in text and "(N, 4, 4, 4, 4)" in text
    model.save(tmp_path / "m.npz")
    loaded = nn.load_model(tmp_path / "m.npz")
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_conv_transpose_network_trains_and_round_trips(rng, tmp_path, one_thread):
    # Encoder-decoder on 8x8 images: the decoder's ConvTranspose2d restores the size; learn the identity.
    model = nn.Sequential([nn.Conv2d(1, 4, 3, stride=2, padding=1, rng=rng), nn.ReLU(),
                           nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1, rng=rng)],
                          loss=nn.MSELoss(), input_shape=(1, 8, 8))
    x = rng.standard_normal((32, 1, 8, 8)).astype(np.float32)
    model.compile(fl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    before = model.evaluate(x, x)["loss"]
    model.fit(x, x, epochs=15, batch_size=8, verbose=0)
    assert model.evaluate(x, x)["loss"] < 0.6 * before
    assert "ConvTranspose2d(4->1, k=3, s=2, p=1, op=1)" in model.summary(print_fn=None)
    model.save(tmp_path / "t.npz")
    loaded = nn.load_model(tmp_path / "t.npz")
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.layers[2].get_config() == model.layers[2].get_config()


def test_layers_match_torch_modules(rng):
    torch = pytest.importorskip("torch")
    cases = [
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=rng),
         torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 5)),
        (nn.Conv3d(2, 4, (3, 1, 2), stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1), rng=rng),
         torch.nn.Conv3d(2, 4, (3, 1, 2), stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1)), (2, 2, 5, 6, 5)),
        (nn.MaxPool3d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool3d(3, 2, 1, ceil_mode=True), (1, 2, 6, 5, 7)),
        (nn.AvgPool3d(2, 1, 1, False, False, None), torch.nn.AvgPool3d(2, 1, 1, False, False, None), (1, 2, 4, 3, 5)),
    ]
    for ours, theirs, shape in cases:
        params = list(theirs.parameters())
        for p, q in zip(ours.parameters(), params):
            assert p.shape == tuple(q.shape)
            q.data = torch.from_numpy(p.data.copy())
        x = rng.standard_normal(shape).astype(np.float32)
        assert_close(ours.forward(x), theirs(torch.from_numpy(x)).detach().numpy(), 4 * reduction_tol(100),
                     type(ours).__name__)


def test_layer_constructor_errors():
    with pytest.raises(ValueError, match=r"output_padding must be smaller than either stride or dilation"):
        nn.ConvTranspose2d(2, 2, 3, stride=1, output_padding=1)
    with pytest.raises(ValueError, match=r"padding_mode must be 'zeros'"):
        nn.Conv3d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"groups=3 must divide"):
        nn.Conv3d(2, 3, 3, groups=3)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a sequence of 3 ints"):
        nn.MaxPool3d((2, 2))
    with pytest.raises(ValueError, match=r"Conv3d: input must be \(N, 2, D, H, W\)"):
        nn.Conv3d(2, 3, 1).forward(np.zeros((1, 3, 2, 2, 2), np.float32))
    y, idx = nn.MaxPool3d(2, return_indices=True).forward(np.arange(8.0, dtype=np.float32).reshape(1, 1, 2, 2, 2))
    assert float(y.ravel()[0]) == 7 and int(idx.ravel()[0]) == 7
