"""The batch-norm reference: backward passes against finite differences (float64), the forward and
the running statistics against torch.nn.functional.batch_norm (float64), folding against the
unfolded conv + batch norm."""

import numpy as np
import pytest

from fastlayers import reference as ref

from ..helpers import assert_grad_matches

SHAPES = [(5, 3), (3, 2, 4), (2, 3, 3, 2), (2, 2, 2, 3, 2), (1, 2, 5)]


def _affine(rng, c):
    return rng.standard_normal(c) + 1.0, rng.standard_normal(c)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_training_backward_matches_finite_differences(rng, shape, affine):
    c = shape[1]
    x = rng.standard_normal(shape) * 1.5 + 0.5
    r = rng.standard_normal(shape)  # loss = sum(y * r): grad_out = r
    w, b = _affine(rng, c) if affine else (None, None)

    def loss_x(xv):
        return float(np.sum(ref.batch_norm(xv, None, None, w, b, training=True) * r))

    gx, gw, gb = ref.batch_norm_backward(r, x, w, training=True)
    assert_grad_matches(gx, loss_x, x, f"grad_x {shape}")
    if affine:
        assert_grad_matches(gw, lambda wv: float(np.sum(ref.batch_norm(x, None, None, wv, b, training=True) * r)),
                            w, "grad_weight")
        assert_grad_matches(gb, lambda bv: float(np.sum(ref.batch_norm(x, None, None, w, bv, training=True) * r)),
                            b, "grad_bias")
    else:
        assert gw is None and gb is None
    # Saved statistics give the same gradients as recomputed ones.
    axes = (0,) + tuple(range(2, x.ndim))
    mean, invstd = x.mean(axes), 1 / np.sqrt(x.var(axes) + 1e-5)
    gx2, _, _ = ref.batch_norm_backward(r, x, w, save_mean=mean, save_invstd=invstd)
    np.testing.assert_allclose(gx2, gx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_eval_backward_matches_finite_differences(rng, shape):
    c = shape[1]
    x = rng.standard_normal(shape)
    r = rng.standard_normal(shape)
    w, b = _affine(rng, c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5

    def loss(xv=x, wv=w, bv=b):
        return float(np.sum(ref.batch_norm(xv, rm, rv, wv, bv, training=False) * r))

    gx, gw, gb = ref.batch_norm_backward(r, x, w, training=False, running_mean=rm, running_var=rv)
    assert_grad_matches(gx, lambda v: loss(xv=v), x, "grad_x eval")
    assert_grad_matches(gw, lambda v: loss(wv=v), w, "grad_weight eval")
    assert_grad_matches(gb, lambda v: loss(bv=v), b, "grad_bias eval")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_running_stats_match_torch(rng, shape, training):
    torch = pytest.importorskip("torch")
    c = shape[1]
    x = rng.standard_normal(shape) * 3 - 1
    w, b = _affine(rng, c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    y = ref.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3)
    ty = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b),
                                        training=training, momentum=0.3, eps=1e-3)
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12, atol=1e-12)


def test_backward_matches_torch_autograd(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 3, 5))
    r = rng.standard_normal(x.shape)
    w, b = _affine(rng, 3)
    tx = torch.tensor(x, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.nn.functional.batch_norm(tx, None, None, tw, tb, training=True).backward(torch.tensor(r))
    gx, gw, gb = ref.batch_norm_backward(r, x, w)
    for ours, theirs in ((gx, tx.grad), (gw, tw.grad), (gb, tb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_edges(rng):
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ref.batch_norm(np.ones((1, 3)), None, None, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ref.batch_norm(np.ones((1, 3, 1, 1)), None, None, training=True)
    # One image is fine when it has more than one pixel, and an empty batch changes nothing.
    assert ref.batch_norm(rng.standard_normal((1, 3, 2)), None, None, training=True).shape == (1, 3, 2)
    rm, rv = np.zeros(3), np.ones(3)
    assert ref.batch_norm(np.zeros((0, 3)), rm, rv, training=True).shape == (0, 3)
    np.testing.assert_array_equal(rm, 0)
    np.testing.assert_array_equal(rv, 1)


@pytest.mark.parametrize("with_opt", [True, False])
def test_fold_equals_conv_then_batch_norm(rng, with_opt):
    x = rng.standard_normal((2, 3, 6, 5))
    cw = rng.standard_normal((4, 3, 3, 3))
    cb = rng.standard_normal(4) if with_opt else None
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.2
    w, b = _affine(rng, 4) if with_opt else (None, None)
    want = ref.batch_norm(ref.conv2d(x, cw, cb, padding=1), rm, rv, w, b, training=False, eps=1e-3)
    fw, fb = ref.fold_batch_norm(cw, cb, rm, rv, w, b, eps=1e-3)
    np.testing.assert_allclose(ref.conv2d(x, fw, fb, padding=1), want, rtol=1e-10, atol=1e-10)
    # a linear layer: weight (out, in)
    lw, lb = rng.standard_normal((4, 7)), rng.standard_normal(4)
    xl = rng.standard_normal((5, 7))
    fw, fb = ref.fold_batch_norm(lw, lb, rm, rv, w, b)
    np.testing.assert_allclose(ref.linear(xl, fw, fb), ref.batch_norm(ref.linear(xl, lw, lb), rm, rv, w, b),
                               rtol=1e-10, atol=1e-10)
