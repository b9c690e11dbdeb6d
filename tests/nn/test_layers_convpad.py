"""Conv1d/Conv2d with padding strings and padding_mode, unbatched input, and Upsample: gradients
against finite differences (float64 through the reference ops), the kernels against the reference,
PyTorch's layers, save/load and the constructor errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastlayers as fl
from fastlayers import nn

from ..helpers import assert_close, reduction_tol
from .test_layers import _to64, check_grads

LAYERS = {
    "conv2d_same_reflect": (lambda rng: nn.Conv2d(2, 3, 4, padding="same", padding_mode="reflect", rng=rng),
                            (2, 2, 5, 6)),
    "conv2d_pad_circular": (lambda rng: nn.Conv2d(2, 2, 3, padding=(1, 2), padding_mode="circular", rng=rng),
                            (1, 2, 4, 5)),
    "conv2d_valid_replicate": (lambda rng: nn.Conv2d(2, 2, 3, stride=2, padding="valid", padding_mode="replicate",
                                                     rng=rng), (1, 2, 7, 5)),
    "conv2d_unbatched": (lambda rng: nn.Conv2d(2, 3, 3, padding=1, rng=rng), (2, 5, 4)),
    "conv1d_same_circular": (lambda rng: nn.Conv1d(2, 3, 4, padding="same", padding_mode="circular", rng=rng),
                             (2, 2, 7)),
    "conv1d_unbatched_reflect": (lambda rng: nn.Conv1d(2, 2, 3, padding=2, padding_mode="reflect", rng=rng), (2, 6)),
    "upsample_nearest": (lambda rng: nn.Upsample(scale_factor=2), (2, 2, 3, 4)),
    "upsample_bilinear": (lambda rng: nn.Upsample(size=(5, 7), mode="bilinear"), (1, 2, 3, 4)),
    "upsample_bilinear_corners": (lambda rng: nn.Upsample(scale_factor=(1.5, 0.5), mode="bilinear",
                                                          align_corners=True), (1, 2, 4, 6)),
    "upsample_linear": (lambda rng: nn.Upsample(scale_factor=2.5, mode="linear"), (2, 2, 5)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_backward_matches_finite_differences(name, rng):
    make, shape = LAYERS[name]
    check_grads(make(rng), shape, rng, name)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_kernels_float32_match_reference_float64(name, rng):
    make, shape = LAYERS[name]
    layer = make(rng)
    x = rng.standard_normal(shape).astype(np.float32)
    y = layer.forward(x, training=True)
    r = rng.standard_normal(y.shape).astype(np.float32)
    gx = layer.backward(r)
    grads32 = [p.grad for p in layer.parameters()]
    with nn.use_ops(fl.reference):
        _to64(layer)
        y64 = layer.forward(x.astype(np.float64), training=True)
        gx64 = layer.backward(r.astype(np.float64))
        grads64 = [p.grad for p in layer.parameters()]
    tol = reduction_tol(int(np.prod(shape)))
    assert_close(y, y64, tol, f"{name}: forward")
    assert_close(gx, gx64, tol, f"{name}: grad_x")
    for g32, g64 in zip(grads32, grads64):
        assert_close(g32, g64, tol, f"{name}: grad")


def test_layers_match_torch(rng):
    torch = pytest.importorskip("torch")
    pairs = [
        (nn.Conv2d(3, 4, (3, 4), padding="same", padding_mode="reflect", dilation=(1, 2), rng=rng),
         torch.nn.Conv2d(3, 4, (3, 4), padding="same", padding_mode="reflect", dilation=(1, 2)), (2, 3, 9, 10)),
        (nn.Conv1d(3, 4, 5, padding=3, padding_mode="circular", rng=rng),
         torch.nn.Conv1d(3, 4, 5, padding=3, padding_mode="circular"), (2, 3, 11)),
        (nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate", rng=rng),
         torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate"), (3, 6, 7)),  # unbatched
        (nn.Upsample(scale_factor=2, mode="bilinear"), torch.nn.Upsample(scale_factor=2, mode="bilinear"),
         (2, 3, 5, 6)),
        (nn.Upsample(size=9), torch.nn.Upsample(size=9), (2, 3, 4)),
    ]
    for ours, theirs, shape in pairs:
        if ours.parameters():
            with torch.no_grad():
                theirs.weight.copy_(torch.from_numpy(ours.weight.data))
                theirs.bias.copy_(torch.from_numpy(ours.bias.data))
        x = rng.standard_normal(shape).astype(np.float32)
        xt = torch.from_numpy(x).requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yt = theirs(xt)
        g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.from_numpy(g))
        tol = reduction_tol(4 * int(np.prod(shape[1:])))
        assert_close(ours.forward(x), yt.detach().numpy(), tol, f"{ours!r} forward")
        assert_close(ours.backward(g), xt.grad.numpy(), tol, f"{ours!r} grad_x")
        if ours.parameters():
            assert_close(ours.weight.grad, theirs.weight.grad.numpy(), tol, f"{ours!r} grad_w")


def test_save_and_load_keep_the_options(tmp_path, rng):
    model = nn.Sequential([nn.Conv2d(1, 2, 4, padding="same", padding_mode="circular", rng=rng), nn.ReLU(),
                           nn.Upsample(scale_factor=(2, 1.5), mode="bilinear", align_corners=True),
                           nn.Flatten(), nn.Linear(2 * 10 * 9, 3, rng=rng)])
    x = rng.standard_normal((2, 1, 5, 6)).astype(np.float32)
    y = model.predict(x)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = nn.load_model(path)
    conv, up = loaded.layers[0], loaded.layers[2]
    assert conv.padding == "same" and conv.padding_mode == "circular"
    assert up.scale_factor == (2, 1.5) and up.mode == "bilinear" and up.align_corners is True
    np.testing.assert_array_equal(loaded.predict(x), y)
    assert "padding_mode=circular" in conv.describe(80)


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv2d(1, 2, 3, padding="full"), "Invalid padding string 'full'"),
    (lambda: nn.Conv2d(1, 2, 3, padding="same", stride=2), "padding='same' is not supported for strided"),
    (lambda: nn.Conv1d(1, 2, 3, padding="same", stride=2), "padding='same' is not supported for strided"),
    (lambda: nn.Conv2d(1, 2, 3, padding_mode="mirror"), "padding_mode must be one of"),
    (lambda: nn.Upsample(scale_factor=2, mode="bicubic"), "mode must be"),
    (lambda: nn.Upsample(scale_factor=2, align_corners=True), "align_corners option"),
    (lambda: nn.Upsample(), "exactly one of size and scale_factor"),
    (lambda: nn.Upsample(size=3, scale_factor=2), "exactly one of size and scale_factor"),
])
def test_constructor_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
