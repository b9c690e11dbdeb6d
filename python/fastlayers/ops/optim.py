"""Optimizer updates, in place: sgd_update (momentum, Nesterov, L2 and L1 decay), adam_update,
rmsprop_update and adagrad_update.

param and the state arrays (velocity, m, v) are updated where they are, so they must already be
C-contiguous float32 arrays of param's shape on the same device: a converted copy would take the
update and be thrown away, so anything else is a TypeError/ValueError rather than a silent copy.
grad is only read and is converted like any input.
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import backend_for, is_cupy_array
from .._checks import as_float, as_float32, as_int, check_shape

__all__ = ["sgd_update", "adam_update", "rmsprop_update", "adagrad_update"]


def _inplace(a, name: str, be, shape=None):
    """a itself, if it can be updated in place: a float32, C-contiguous, writeable array."""
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    if be.name == "cpu" and not isinstance(a, np.ndarray):
        raise TypeError(f"{name} is updated in place and must be a numpy.ndarray (float32), "
                        f"got {type(a).__name__}")
    if be.name == "cuda" and not is_cupy_array(a):
        raise TypeError(f"{name} is updated in place and must be a cupy.ndarray, got {type(a).__name__}")
    if a.dtype != be.xp.float32:
        raise TypeError(f"{name} is updated in place and must be float32, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} is updated in place and must be C-contiguous, got a strided view "
                         f"of shape {tuple(a.shape)}")
    if be.name == "cpu" and not a.flags.writeable:
        raise ValueError(f"{name} is updated in place and must be writeable, got a read-only array")
    if shape is not None:
        check_shape(a, shape, name)
    return a


def _distinct(be, **arrays):
    names = list(arrays)
    for i, a_name in enumerate(names):
        for b_name in names[i + 1:]:
            if be.xp.may_share_memory(arrays[a_name], arrays[b_name]):
                raise ValueError(f"{a_name} and {b_name} are updated in place and must not share memory")


def _in_range(value, name: str, lo: float, hi: float, *, lo_open=False, hi_open=True) -> float:
    value = as_float(value, name)
    ok = (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {lb}{lo}, {hi}{rb}, got {value!r}")
    return value


def sgd_update(param, grad, velocity=None, *, lr, momentum=0.0, weight_decay=0.0, l1=0.0,
               nesterov=False):
    """One SGD step, in place on param (and velocity).

        g = grad + weight_decay * param + l1 * sign(param)
        momentum == 0:  param -= lr * g
        otherwise:      velocity = momentum * velocity + g
                        param   -= lr * (g + momentum * velocity if nesterov else velocity)

    (as torch.optim.SGD with dampening 0; a weight_decay or l1 of 0 adds nothing.)

    The course writes momentum as W(t+1) = W(t) - lr * grad(t) + mu * (W(t) - W(t-1)). The two
    are the same recursion for a constant lr: here the step is D(t) = W(t+1) - W(t) = -lr * v(t),
    and v(t) = mu * v(t-1) + g(t) gives D(t) = mu * D(t-1) - lr * g(t), which is the course's
    update with D(t-1) = W(t) - W(t-1). Start velocity at zeros (the first step is then plain
    SGD, as there is no W(t-1) yet). If lr changes between steps, this form (PyTorch's) scales the
    whole accumulated velocity by the new lr, the course's form keeps the old steps as taken.

    param, velocity: C-contiguous float32 arrays of the same shape, updated in place (velocity is
    required when momentum != 0 and ignored when it is 0). grad: any array of param's shape (read
    only). lr >= 0, momentum in [0, 1), weight_decay >= 0, l1 >= 0; nesterov needs momentum > 0.
    Returns None.
    """
    be = backend_for(param=param, grad=grad, velocity=velocity)
    lr = _in_range(lr, "lr", 0.0, math.inf)
    momentum = _in_range(momentum, "momentum", 0.0, 1.0)
    weight_decay = _in_range(weight_decay, "weight_decay", 0.0, math.inf)
    l1 = _in_range(l1, "l1", 0.0, math.inf)
    if not isinstance(nesterov, bool):
        raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__} {nesterov!r}")
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
    param = _inplace(param, "param", be)
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    if momentum != 0.0:
        if velocity is None:
            raise ValueError(f"velocity is required when momentum != 0 (momentum={momentum}); "
                             f"pass zeros of shape {tuple(param.shape)} before the first step")
        velocity = _inplace(velocity, "velocity", be, param.shape)
        _distinct(be, param=param, velocity=velocity)
    else:
        velocity = None
    be.run("sgd_update", param, grad, velocity if velocity is not None else 0, param.size, lr,
           momentum, weight_decay, l1, nesterov)


def adam_update(param, grad, m, v, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    """One Adam step, in place on param, m and v (as torch.optim.Adam, L2 weight decay):

        g = grad + weight_decay * param
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        param -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)

    step counts the updates from 1 (the bias corrections); m and v start at zeros. param, m, v:
    C-contiguous float32 arrays of the same shape, distinct; grad: any array of param's shape.
    lr >= 0, beta1 and beta2 in [0, 1), eps > 0, weight_decay >= 0. Returns None.
    """
    be = backend_for(param=param, grad=grad, m=m, v=v)
    step = as_int(step, "step")
    if step < 1:
        raise ValueError(f"step must be >= 1 (it counts the updates from 1), got {step}")
    lr = _in_range(lr, "lr", 0.0, math.inf)
    beta1 = _in_range(beta1, "beta1", 0.0, 1.0)
    beta2 = _in_range(beta2, "beta2", 0.0, 1.0)
    eps = _in_range(eps, "eps", 0.0, math.inf, lo_open=True)
    weight_decay = _in_range(weight_decay, "weight_decay", 0.0, math.inf)
    param = _inplace(param, "param", be)
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    m = _inplace(m, "m", be, param.shape)
    v = _inplace(v, "v", be, param.shape)
    _distinct(be, param=param, m=m, v=v)
    be.run("adam_update", param, grad, m, v, param.size, lr, beta1, beta2, eps, weight_decay, step)


def _no_alias(be, inplace: dict, read: dict):
    """Each array updated in place shares memory with no other argument (another state array, param
    or grad): an overlap would make the fused update read values it has already overwritten."""
    names = list(inplace)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if be.xp.may_share_memory(inplace[a], inplace[b]):
                raise ValueError(f"{a} and {b} are updated in place and must not share memory")
        for b, arr in read.items():
            if be.xp.may_share_memory(inplace[a], arr):
                raise ValueError(f"{a} is updated in place and must not share memory with {b}")


def _as_bool(value, name: str) -> bool:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def rmsprop_update(param, grad, square_avg, *, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                   momentum_buffer=None, centered=False, grad_avg=None):
    """One RMSprop step, in place, as torch.optim.RMSprop:

        g = grad + weight_decay * param
        square_avg = alpha * square_avg + (1 - alpha) * g^2
        centered:  grad_avg = grad_avg + (1 - alpha) * (g - grad_avg)
                   avg = sqrt(square_avg - grad_avg^2) + eps
        else:      avg = sqrt(square_avg) + eps
        momentum > 0:  momentum_buffer = momentum * momentum_buffer + g / avg;  param -= lr * momentum_buffer
        else:          param -= lr * g / avg

    square_avg, momentum_buffer (required when momentum > 0, else ignored) and grad_avg (required when
    centered, else ignored) start at zeros; they and param are C-contiguous float32 arrays of param's
    shape, updated in place, sharing memory with no other argument. grad: any array of param's shape
    (read only). lr, alpha, eps, weight_decay, momentum >= 0 (torch.optim's checks). Returns None.
    """
    be = backend_for(param=param, grad=grad, square_avg=square_avg, momentum_buffer=momentum_buffer,
                     grad_avg=grad_avg)
    lr = _in_range(lr, "lr", 0.0, math.inf)
    alpha = _in_range(alpha, "alpha", 0.0, math.inf)
    eps = _in_range(eps, "eps", 0.0, math.inf)
    weight_decay = _in_range(weight_decay, "weight_decay", 0.0, math.inf)
    momentum = _in_range(momentum, "momentum", 0.0, math.inf)
    centered = _as_bool(centered, "centered")
    param = _inplace(param, "param", be)
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    states = {"param": param, "square_avg": _inplace(square_avg, "square_avg", be, param.shape)}
    if momentum > 0:
        if momentum_buffer is None:
            raise ValueError(f"momentum_buffer is required when momentum > 0 (momentum={momentum}); pass "
                             f"zeros of shape {tuple(param.shape)} before the first step")
        states["momentum_buffer"] = _inplace(momentum_buffer, "momentum_buffer", be, param.shape)
    if centered:
        if grad_avg is None:
            raise ValueError(f"grad_avg is required when centered=True; pass zeros of shape "
                             f"{tuple(param.shape)} before the first step")
        states["grad_avg"] = _inplace(grad_avg, "grad_avg", be, param.shape)
    _no_alias(be, states, {"grad": grad})
    be.run("rmsprop_update", param, grad, states["square_avg"], states.get("momentum_buffer", 0),
           states.get("grad_avg", 0), param.size, lr, alpha, eps, weight_decay, momentum, centered)


def adagrad_update(param, grad, state_sum, *, step, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10):
    """One Adagrad step, in place, as torch.optim.Adagrad (dense gradients):

        g = grad + weight_decay * param
        state_sum += g^2
        param -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(state_sum) + eps)

    step counts the updates from 1. state_sum starts at torch's initial_accumulator_value (0 by
    default). param and state_sum: C-contiguous float32 arrays of the same shape, distinct, updated
    in place; grad: any array of param's shape (read only). lr, lr_decay, weight_decay, eps >= 0.
    Returns None.
    """
    be = backend_for(param=param, grad=grad, state_sum=state_sum)
    step = as_int(step, "step")
    if step < 1:
        raise ValueError(f"step must be >= 1 (it counts the updates from 1), got {step}")
    lr = _in_range(lr, "lr", 0.0, math.inf)
    lr_decay = _in_range(lr_decay, "lr_decay", 0.0, math.inf)
    weight_decay = _in_range(weight_decay, "weight_decay", 0.0, math.inf)
    eps = _in_range(eps, "eps", 0.0, math.inf)
    param = _inplace(param, "param", be)
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    state_sum = _inplace(state_sum, "state_sum", be, param.shape)
    _no_alias(be, {"param": param, "state_sum": state_sum}, {"grad": grad})
    be.run("adagrad_update", param, grad, state_sum, param.size, lr, lr_decay, weight_decay, eps, step)
