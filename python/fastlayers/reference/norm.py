"""NumPy reference for batch normalisation: batch_norm, batch_norm_backward, fold_batch_norm.

Same names, signatures and semantics as fastlayers.ops.norm (torch.nn.functional.batch_norm's).
Works in the dtype of x (float32 or float64; float64 is the oracle). Channels are axis 1; the
statistics are taken over every other axis. In training, running_mean / running_var (when given)
are updated in place with the unbiased batch variance, as PyTorch does.
"""

import numpy as np

__all__ = ["batch_norm", "batch_norm_backward", "fold_batch_norm"]


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    """A (C,) vector shaped to broadcast against x (N, C, ...)."""
    return np.asarray(v).reshape((1, -1) + (1,) * (x.ndim - 2))


def _count(x):
    """Values per channel: N times the spatial size."""
    return x.shape[0] * int(np.prod(x.shape[2:], dtype=np.int64))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must be (N, C, ...), got shape {x.shape}")
    m = _count(x)
    if training:
        if m == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        if m == 0:
            return x.copy()
        mean = x.mean(axis=_axes(x))
        var = x.var(axis=_axes(x))  # biased: what the batch is normalised with
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (m / (m - 1))  # unbiased, as PyTorch
    else:
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are required in eval mode (training=False)")
        mean, var = np.asarray(running_mean, x.dtype), np.asarray(running_var, x.dtype)
    y = (x - _per_channel(mean, x)) / np.sqrt(_per_channel(var, x) + eps)
    if weight is not None:
        y = y * _per_channel(weight, x)
    if bias is not None:
        y = y + _per_channel(bias, x)
    return y.astype(x.dtype, copy=False)


def batch_norm_backward(grad_out, x, weight, eps=1e-5, training=True, running_mean=None, running_var=None,
                        *, save_mean=None, save_invstd=None):
    """(grad_x, grad_weight, grad_bias); the affine gradients are None when weight is None.

    Training: the statistics are those of the batch x (recomputed), or save_mean and save_invstd
    (= 1 / sqrt(biased variance + eps)) when given. Eval: running_mean and running_var."""
    g = np.asarray(grad_out)
    x = np.asarray(x, dtype=g.dtype)
    axes = _axes(x)
    if training:
        if save_mean is not None:
            mean, invstd = np.asarray(save_mean, x.dtype), np.asarray(save_invstd, x.dtype)
        else:
            mean = x.mean(axis=axes)
            invstd = 1.0 / np.sqrt(x.var(axis=axes) + eps)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("running_mean and running_var are required in eval mode (training=False)")
        mean = np.asarray(running_mean, x.dtype)
        invstd = 1.0 / np.sqrt(np.asarray(running_var, x.dtype) + eps)
    xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    grad_bias = g.sum(axis=axes)
    grad_weight = (g * xhat).sum(axis=axes)
    w = np.ones_like(invstd) if weight is None else np.asarray(weight, x.dtype)
    if training:
        m = _count(x)
        grad_x = _per_channel(w * invstd, x) * (
            g - _per_channel(grad_bias / m, x) - xhat * _per_channel(grad_weight / m, x))
    else:
        grad_x = g * _per_channel(w * invstd, x)
    if weight is None:
        return grad_x.astype(g.dtype, copy=False), None, None
    return grad_x.astype(g.dtype, copy=False), grad_weight, grad_bias


def fold_batch_norm(conv_w, conv_b, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    """(w', b') with conv(x, w', b') == batch_norm(conv(x, conv_w, conv_b), running stats, eval)."""
    conv_w = np.asarray(conv_w)
    scale = 1.0 / np.sqrt(np.asarray(running_var, conv_w.dtype) + eps)
    if weight is not None:
        scale = scale * np.asarray(weight, conv_w.dtype)
    b = np.zeros(conv_w.shape[0], conv_w.dtype) if conv_b is None else np.asarray(conv_b, conv_w.dtype)
    new_b = (b - np.asarray(running_mean, conv_w.dtype)) * scale
    if bias is not None:
        new_b = new_b + np.asarray(bias, conv_w.dtype)
    new_w = conv_w * scale.reshape((-1,) + (1,) * (conv_w.ndim - 1))
    return new_w.astype(conv_w.dtype, copy=False), new_b.astype(conv_w.dtype, copy=False)
