"""Optimizer updates, in place: sgd_update (momentum, Nesterov, L2 and L1 decay), adam_update,
rmsprop_update and adagrad_update.

param and the state arrays (velocity, m, v) are updated where they are, so they must already be
C-contiguous float32 arrays of param's shape on the same device: a converted copy would take the
update and be thrown away, so anything else is a TypeError/ValueError rather than a silent copy.
grad is only read and is converted like any input.

No argument may share memory with an array that is updated in place (grad overlapping param,
velocity overlapping param, ...): the kernels read and write element by element, so an overlap
would silently mix updated and old values. That is a ValueError naming both arguments (NumPy:
np.shares_memory, exact for these shapes; CuPy: the arrays' address ranges), not a hidden copy.
A misaligned in-place array (a view at an odd byte offset) is updated through an aligned copy that
is written back.
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import backend_for, is_cupy_array
from .._checks import as_float, as_float32, as_int, check_shape

__all__ = ["sgd_update", "adam_update", "rmsprop_update", "adagrad_update"]

_TooHardError = getattr(np, "exceptions", np).TooHardError  # NumPy 2 moved it


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


def _overlap(be, a, b) -> bool:
    if a.base is None and b.base is None and a is not b:
        return False  # two arrays that own their memory: separate allocations (the common case, ~0.1 us)
    if be.name != "cpu":  # CuPy: compare the address ranges the two arrays span
        return bool(be.xp.may_share_memory(a, b))
    if not np.may_share_memory(a, b):  # disjoint bounds: the cheap common case
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=100_000))
    except _TooHardError:  # pragma: no cover - not reached with a contiguous operand
        return True  # undecided: refuse rather than risk it


def _no_overlap(be, inplace: dict, read: dict):
    """ValueError if an array updated in place shares memory with any other argument."""
    arrays = [*inplace.values(), *read.values()]
    if all(type(a) is np.ndarray and a.base is None for a in arrays) and len({id(a) for a in arrays}) == len(arrays):
        return  # distinct arrays that own their memory: separate allocations (the optimizers' case)
    names = list(inplace)
    for i, a_name in enumerate(names):
        a = inplace[a_name]
        others = [(n, inplace[n]) for n in names[i + 1:]] + list(read.items())
        for b_name, b in others:
            if not (isinstance(b, np.ndarray) or is_cupy_array(b)):
                continue  # a list or scalar is converted into new memory
            if _overlap(be, a, b):
                what = "are updated in place" if b_name in inplace else f"overlap; {a_name} is updated in place"
                raise ValueError(f"{a_name} and {b_name} {what} and must not share memory ({a_name}: shape "
                                 f"{tuple(a.shape)}, {b_name}: shape {tuple(b.shape)}); pass a copy of {b_name}")


def _kernel_view(a):
    """a, or an aligned copy of a misaligned in-place array (written back by _write_back)."""
    return a if not isinstance(a, np.ndarray) or a.flags.aligned else a.copy()


def _write_back(original, used):
    if used is not original:
        original[...] = used


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
    # The kernel runs in float32, where momentum=1e-50 is 0: it would skip the velocity that this
    # call asks it to update. Refused rather than silently changing meaning.
    if momentum != 0.0 and np.float32(momentum) == 0:
        raise ValueError(f"momentum must be 0 or representable in float32 (>= 1.4e-45, the kernels' "
                         f"precision), got {momentum!r}, which rounds to 0")
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
    param = _inplace(param, "param", be)
    if momentum != 0.0:
        if velocity is None:
            raise ValueError(f"velocity is required when momentum != 0 (momentum={momentum}); "
                             f"pass zeros of shape {tuple(param.shape)} before the first step")
        velocity = _inplace(velocity, "velocity", be, param.shape)
        _no_overlap(be, dict(param=param, velocity=velocity), dict(grad=grad))
    else:
        velocity = None
        _no_overlap(be, dict(param=param), dict(grad=grad))
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    p, vel = _kernel_view(param), _kernel_view(velocity)
    be.run("sgd_update", p, grad, vel if vel is not None else 0, param.size, lr,
           momentum, weight_decay, l1, nesterov)
    _write_back(param, p)
    if velocity is not None:
        _write_back(velocity, vel)


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
    if not 1 <= step <= 2**63 - 1:
        raise ValueError(f"step must be >= 1 and <= 2**63 - 1 (it counts the updates from 1), got {step}")
    lr = _in_range(lr, "lr", 0.0, math.inf)
    beta1 = _in_range(beta1, "beta1", 0.0, 1.0)
    beta2 = _in_range(beta2, "beta2", 0.0, 1.0)
    eps = _in_range(eps, "eps", 0.0, math.inf, lo_open=True)
    weight_decay = _in_range(weight_decay, "weight_decay", 0.0, math.inf)
    # In float32 (the kernel's precision) a beta below 1 may round to 1 (bias correction 1 - 1 = 0)
    # and a tiny eps to 0 (0/0 for a zero v): refused, as their float64 counterparts are.
    for name, value in (("beta1", beta1), ("beta2", beta2)):
        if np.float32(value) >= 1:
            raise ValueError(f"{name} must be < 1 in float32 (the kernels' precision), got {value!r}, which "
                             f"rounds to 1")
    if np.float32(eps) == 0:
        raise ValueError(f"eps must be > 0 in float32 (the kernels' precision), got {eps!r}, which rounds to 0")
    param = _inplace(param, "param", be)
    m = _inplace(m, "m", be, param.shape)
    v = _inplace(v, "v", be, param.shape)
    _no_overlap(be, dict(param=param, m=m, v=v), dict(grad=grad))
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    used = [_kernel_view(a) for a in (param, m, v)]
    be.run("adam_update", used[0], grad, used[1], used[2], param.size, lr, beta1, beta2, eps, weight_decay, step)
    for original, u in zip((param, m, v), used):
        _write_back(original, u)


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
    _no_overlap(be, states, {"grad": grad})
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    used = {k: _kernel_view(a) for k, a in states.items()}
    be.run("rmsprop_update", used["param"], grad, used["square_avg"], used.get("momentum_buffer", 0),
           used.get("grad_avg", 0), param.size, lr, alpha, eps, weight_decay, momentum, centered)
    for k, a in states.items():
        _write_back(a, used[k])


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
    if not 1 <= step <= 2**63 - 1:
        raise ValueError(f"step must be >= 1 and <= 2**63 - 1 (it counts the updates from 1), got {step}")
    lr = _in_range(lr, "lr", 0.0, math.inf)
    lr_decay = _in_range(lr_decay, "lr_decay", 0.0, math.inf)
    weight_decay = _in_range(weight_decay, "weight_decay", 0.0, math.inf)
    eps = _in_range(eps, "eps", 0.0, math.inf)
    param = _inplace(param, "param", be)
    state_sum = _inplace(state_sum, "state_sum", be, param.shape)
    _no_overlap(be, {"param": param, "state_sum": state_sum}, {"grad": grad})
    grad = as_float32(grad, "grad", be)
    check_shape(grad, param.shape, "grad")
    p, ss = _kernel_view(param), _kernel_view(state_sum)
    be.run("adagrad_update", p, grad, ss, param.size, lr, lr_decay, weight_decay, eps, step)
    _write_back(param, p)
    _write_back(state_sum, ss)
