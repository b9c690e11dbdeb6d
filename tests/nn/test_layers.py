"""Layers: backward against finite differences (float64, through the reference ops), the float32
public-op path against the float64 reference, frozen layers, dropout's seeding, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlayers as fl
from fastlayers import nn

from ..helpers import assert_close, assert_grad_matches, reduction_tol


def _to64(layer):
    for p in layer.parameters():
        p.data = p.data.astype(np.float64)
    return layer


def check_grads(layer, x_shape, rng, what):
    """Every gradient of sum(layer(x) * r) — input and parameters — against central differences,
    in float64 through the reference ops (rtol 1e-6, see tests/helpers.py)."""
    with nn.use_ops(fl.reference):
        _to64(layer)
        x = rng.standard_normal(x_shape)
        y = layer.forward(x, training=True)
        r = rng.standard_normal(y.shape)
        gx = layer.backward(r)
        assert gx.shape == x.shape
        assert_grad_matches(gx, lambda v: float(np.sum(layer.forward(v, training=True) * r)), x, f"{what}: grad_x")
        for name, p in layer.named_parameters():
            grad = p.grad

            def f(v, p=p):
                old, p.data = p.data, v
                try:
                    return float(np.sum(layer.forward(x, training=True) * r))
                finally:
                    p.data = old

            assert grad is not None, f"{what}: {name} got no gradient"
            assert_grad_matches(grad, f, p.data, f"{what}: grad {name}")


LAYERS = {
    "linear": (lambda rng: nn.Linear(5, 3, rng=rng), (4, 5)),
    "linear_nobias_batch1": (lambda rng: nn.Linear(3, 2, bias=False, rng=rng), (1, 3)),
    "conv2d": (lambda rng: nn.Conv2d(2, 3, 3, rng=rng), (2, 2, 5, 6)),
    "conv2d_stride2_pad_dil": (lambda rng: nn.Conv2d(2, 2, (3, 2), stride=2, padding=1, dilation=(2, 1), rng=rng),
                               (1, 2, 7, 6)),
    "conv2d_groups_stride3": (lambda rng: nn.Conv2d(4, 2, 2, stride=3, groups=2, rng=rng), (2, 4, 7, 5)),
    "conv2d_1x1": (lambda rng: nn.Conv2d(3, 2, 1, bias=False, rng=rng), (1, 3, 1, 1)),
    "conv1d": (lambda rng: nn.Conv1d(2, 3, 3, stride=2, padding=1, rng=rng), (2, 2, 9)),
    "maxpool": (lambda rng: nn.MaxPool2d(2), (2, 3, 4, 6)),
    "maxpool_s2_p1": (lambda rng: nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 5, 7)),
    "avgpool": (lambda rng: nn.AvgPool2d(2, stride=1), (2, 2, 3, 5)),
    "avgpool_pad_exclude": (lambda rng: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 2, 5, 4)),
    "lppool": (lambda rng: nn.LpPool2d(2.0, 2), (2, 2, 4, 4)),
    "lppool_p3": (lambda rng: nn.LpPool2d(3.0, (2, 3), stride=(1, 2)), (1, 2, 3, 7)),
    "globalavg": (lambda rng: nn.GlobalAvgPool2d(), (2, 3, 3, 2)),
    "maxpool_ceil_dilation": (lambda rng: nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True), (1, 2, 9, 8)),
    "maxpool_unbatched": (lambda rng: nn.MaxPool2d(2, ceil_mode=True), (3, 5, 4)),
    "avgpool_ceil_divisor": (lambda rng: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False,
                                                      divisor_override=5), (1, 2, 6, 7)),
    "lppool_ceil": (lambda rng: nn.LPPool2d(2.0, 2, ceil_mode=True), (1, 2, 5, 5)),
    "adaptive_avg": (lambda rng: nn.AdaptiveAvgPool2d((3, None)), (2, 2, 7, 5)),
    "adaptive_max": (lambda rng: nn.AdaptiveMaxPool2d((2, 3)), (2, 2, 5, 7)),
    "flatten": (lambda rng: nn.Flatten(), (2, 3, 2, 2)),
    "relu": (lambda rng: nn.ReLU(), (3, 7)),
    "leaky_relu": (lambda rng: nn.LeakyReLU(0.1), (3, 7)),
    "sigmoid": (lambda rng: nn.Sigmoid(), (3, 7)),
    "tanh": (lambda rng: nn.Tanh(), (3, 7)),
    "softmax": (lambda rng: nn.Softmax(), (3, 7)),
    "softmax_axis1": (lambda rng: nn.Softmax(axis=1), (2, 4, 3)),
    "residual_identity": (lambda rng: nn.Residual([nn.Conv2d(2, 2, 3, padding=1, rng=rng), nn.Tanh()]),
                          (2, 2, 4, 4)),
    "residual_projection": (lambda rng: nn.Residual([nn.Conv2d(2, 3, 3, stride=2, padding=1, rng=rng), nn.ReLU(),
                                                     nn.Conv2d(3, 3, 3, padding=1, rng=rng)], 2, 3, stride=2,
                                                    rng=rng), (2, 2, 5, 5)),
    "sequential": (lambda rng: nn.Sequential([nn.Conv2d(1, 2, 3, rng=rng), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                                              nn.Linear(8, 3, rng=rng)]), (2, 1, 6, 6)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_backward_matches_finite_differences(name, rng):
    make, shape = LAYERS[name]
    check_grads(make(rng), shape, rng, name)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_backward_leaves_grad_out_alone(name, rng):
    """No layer writes into the gradient it is given (Residual hands one grad_out to both of its
    branches on that promise), nor returns it as its input gradient."""
    make, shape = LAYERS[name]
    layer = make(rng)
    y = layer.forward(rng.standard_normal(shape).astype(np.float32), training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    before = g.copy()
    gx = layer.backward(g)
    np.testing.assert_array_equal(g, before)
    assert not np.shares_memory(gx, g) or name == "flatten"  # Flatten's backward is a reshape view


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_public_ops_float32_match_reference_float64(name, rng):
    """The same layer through the public (CPU-kernel) ops in float32 and through the reference in float64.
    Tolerance: reduction_tol over the longest reduction in the layer (at most a few hundred terms here)."""
    make, shape = LAYERS[name]
    layer = make(rng)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer.forward(x, training=True)
    r = rng.standard_normal(y.shape).astype(np.float32)
    gx = layer.backward(r)
    grads32 = [p.grad for p in layer.parameters()]
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    with nn.use_ops(fl.reference):
        _to64(layer)
        y64 = layer.forward(x.astype(np.float64), training=True)
        gx64 = layer.backward(r.astype(np.float64))
        grads64 = [p.grad for p in layer.parameters()]
    tol = reduction_tol(int(np.prod(shape)))
    assert_close(y, y64, tol, f"{name}: forward")
    assert_close(gx, gx64, tol, f"{name}: grad_x")
    for g32, g64, p in zip(grads32, grads64, layer.parameters()):
        assert_close(g32, g64, tol, f"{name}: grad {p.name}")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), k=st.integers(1, 4), h=st.integers(3, 9), w=st.integers(3, 9),
       ksize=st.integers(1, 3), stride=st.integers(1, 3), pad=st.integers(0, 1), seed=st.integers(0, 2**31))
def test_conv_layer_random_geometry_matches_reference(n, c, k, h, w, ksize, stride, pad, seed):
    rng = np.random.default_rng(seed)
    layer = nn.Conv2d(c, k, ksize, stride=stride, padding=pad, rng=rng)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape).astype(np.float32)
    gx = layer.backward(g)
    gw, gb = layer.weight.grad, layer.bias.grad
    with nn.use_ops(fl.reference):
        _to64(layer)
        y64 = layer.forward(x.astype(np.float64))
        gx64 = layer.backward(g.astype(np.float64))
    tol = reduction_tol(n * h * w * k)
    assert_close(y, y64, tol, "forward")
    assert_close(gx, gx64, tol, "grad_x")
    assert_close(gw, layer.weight.grad, tol, "grad_w")
    assert_close(gb, layer.bias.grad, tol, "grad_b")


def test_inputs_not_modified(rng):
    model = nn.Sequential([nn.Conv2d(1, 2, 3, rng=rng), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2, rng=rng)])
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    x0 = x.copy()
    y = model.forward(x)
    g = np.ones_like(y)
    g0 = g.copy()
    model.backward(g)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


def test_frozen_layer_keeps_weights_and_passes_gradient(rng):
    body = nn.Linear(4, 3, rng=rng)
    head = nn.Linear(3, 2, rng=rng)
    model = nn.Sequential([body, nn.Tanh(), head], loss=nn.SoftmaxCrossEntropyLoss())
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 1, 0, 1, 1, 0])
    out = model.forward(x)
    model.loss(out, y)
    gx_trainable = model.backward(model.loss.backward())

    body.trainable = False
    assert not any(p.trainable for p in body.parameters())
    w0, b0, h0 = body.weight.data.copy(), body.bias.data.copy(), head.weight.data.copy()
    out = model.forward(x)
    model.loss(out, y)
    gx_frozen = model.backward(model.loss.backward())
    np.testing.assert_array_equal(gx_frozen, gx_trainable)  # the input gradient still flows
    assert body.weight.grad is None and body.bias.grad is None
    assert head.weight.grad is not None

    model.fit(x, y, epochs=3, batch_size=2, optimizer=fl.optim.SGD(model.parameters(), lr=0.5, momentum=0.9,
                                                                     weight_decay=0.1), verbose=0)
    np.testing.assert_array_equal(body.weight.data, w0)
    np.testing.assert_array_equal(body.bias.data, b0)
    assert not np.array_equal(head.weight.data, h0)
    assert model.num_parameters(trainable_only=True) == head.num_parameters()


def test_dropout_seed_advances_and_backward_reuses_mask(rng):
    drop = nn.Dropout(0.5, seed=7)
    x = rng.standard_normal((4, 50)).astype(np.float32)
    y1 = drop.forward(x, training=True)
    np.testing.assert_array_equal(y1, fl.dropout(x, 0.5, seed=7))
    g = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(drop.backward(g), fl.dropout_backward(g, 0.5, seed=7))
    y2 = drop.forward(x, training=True)
    assert drop.seed == 9
    assert not np.array_equal(y1, y2)  # a new mask for the next batch
    np.testing.assert_array_equal(drop.backward(g), fl.dropout_backward(g, 0.5, seed=8))
    # backward is consistent with the forward's mask: zero exactly where the output was dropped
    assert np.array_equal(drop.backward(np.ones_like(x)) == 0, (y2 == 0) & (x != 0))
    np.testing.assert_array_equal(drop.forward(x, training=False), x)
    drop.eval()
    np.testing.assert_array_equal(drop.forward(x), x)
    np.testing.assert_array_equal(drop.backward(g), g)


def test_train_eval_modes_propagate():
    model = nn.Sequential([nn.Linear(2, 2), nn.Sequential([nn.Dropout(0.3)])])
    model.eval()
    assert not model.training and not model[1][0].training
    model.train()
    assert model[1][0].training


@pytest.mark.parametrize("make, x_shape, match", [
    (lambda: nn.Linear(4, 2), (3, 5), "in_features=4"),
    (lambda: nn.Conv2d(3, 2, 3), (1, 2, 5, 5), r"\(N, 3, H, W\)"),
    (lambda: nn.Conv2d(3, 2, 3), (5, 5), r"\(N, 3, H, W\)"),  # (3, 5, 5) is an unbatched input
    (lambda: nn.Conv1d(2, 2, 3), (1, 3, 5), r"\(N, 2, L\)"),
])
def test_bad_input_shape_raises(make, x_shape, match):
    with pytest.raises(ValueError, match=match):
        make().forward(np.zeros(x_shape, np.float32))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.0)
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match="layers\\[1\\]"):
        nn.Sequential([nn.ReLU(), "relu"])
    with pytest.raises(ValueError, match="shortcut"):
        nn.Residual([nn.Conv2d(2, 3, 1)]).forward(np.zeros((1, 2, 3, 3), np.float32))


def test_to_cuda_without_cuda_is_a_clear_error():
    if fl.cuda.is_available():
        pytest.skip("CUDA is usable here; the error path is for machines without it")
    with pytest.raises(RuntimeError, match="CUDA is not usable"):
        nn.Linear(2, 2).to("cuda")
    with pytest.raises(ValueError, match="device must be"):
        nn.Linear(2, 2).to("tpu")


@pytest.mark.skipif(not fl.cuda.is_available(), reason="no usable CUDA GPU (or CuPy) on this machine")
def test_model_on_cuda_matches_cpu(rng):  # pragma: no cover - needs a GPU
    model = nn.models.mnist_cnn(seed=1)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    cpu = model.predict(x)
    model.to("cuda")
    gpu = model.predict(x)
    assert_close(gpu, cpu, reduction_tol(800), "cnn on cuda vs cpu")


def test_pool_layers_summary_save_load(tmp_path, rng):
    model = nn.Sequential([nn.Conv2d(1, 4, 3, rng=rng), nn.MaxPool2d(3, 2, 1, dilation=1, ceil_mode=True),
                           nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False, divisor_override=3),
                           nn.LPPool2d(2.0, 2, ceil_mode=True, padding=1), nn.AdaptiveMaxPool2d((2, None)),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3, rng=rng)], input_shape=(1, 15, 13))
    text = model.summary(print_fn=None)
    for name in ("MaxPool2d", "AvgPool2d", "LpPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool2d"):
        assert name in text
    assert "(N, 4, 1, 1)" in text  # the adaptive (1, 1) output
    x = rng.standard_normal((2, 1, 15, 13)).astype(np.float32)
    path = tmp_path / "pools.npz"
    model.save(path)
    loaded = nn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    # an LpPool2d saved with the former keyword p= still loads
    assert nn.LpPool2d(p=3.0, kernel_size=2).norm_type == 3.0


def test_max_unpool_layer_and_indices(rng):
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, idx = pool(x)
    assert idx.dtype == np.int64 and y.shape == idx.shape == (2, 3, 4, 3)
    u = unpool(y, idx, output_size=x.shape)
    assert u.shape == x.shape
    np.testing.assert_array_equal(np.sort(u[u != 0]), np.sort(y.ravel()))
    g = rng.standard_normal(u.shape).astype(np.float32)
    np.testing.assert_array_equal(unpool.backward(g), fl.max_unpool2d_backward(g, y, idx, 2, output_size=x.shape))
    np.testing.assert_array_equal(pool.backward(y), fl.max_pool2d_backward(y, x, 2, indices=idx))
    with pytest.raises(TypeError, match="needs the indices"):
        unpool(y)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.MaxPool2d(2.5), "kernel_size must be an int"),
    (lambda: nn.MaxPool2d(2, ceil_mode=1), "ceil_mode must be a bool"),
    (lambda: nn.AvgPool2d(2, divisor_override=0), "divisor_override must be a non-zero int"),
    (lambda: nn.LPPool2d(-1.0, 2), "norm_type must be a positive"),
    (lambda: nn.AdaptiveAvgPool2d((1, 2, 3)), "output_size must be an int or a pair"),
    (lambda: nn.AdaptiveMaxPool2d(2.0), "output_size must be an int"),
])
def test_pool_layer_constructor_errors(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_max_pool_layer_backward_path(rng):
    """Tiling windows recompute the winners from x; other geometries keep the training forward's
    indices (and give the same gradient as the recomputing op)."""
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    tiled, overlapping = nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1, ceil_mode=True)
    for layer, keeps in ((tiled, False), (overlapping, True)):
        y = layer.forward(x, training=True)
        assert (layer._indices is not None) == keeps
        g = rng.standard_normal(y.shape).astype(np.float32)
        np.testing.assert_array_equal(layer.backward(g), fl.max_pool2d_backward(g, x, *layer._geometry()))
        layer.forward(x, training=False)
        assert layer._indices is None  # inference keeps nothing
