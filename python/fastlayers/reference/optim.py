"""NumPy reference for the in-place optimizer updates. Same names, signatures and semantics as
fastlayers.ops.optim: param and the state arrays are updated in place (in their own dtype, so a
float64 run is the exact oracle); returns None."""

import math

import numpy as np

__all__ = ["sgd_update", "adam_update", "rmsprop_update", "adagrad_update"]


def sgd_update(param, grad, velocity=None, *, lr, momentum=0.0, weight_decay=0.0, l1=0.0,
               nesterov=False):
    g = np.array(grad, dtype=param.dtype)
    if weight_decay != 0:
        g += weight_decay * param
    if l1 != 0:
        g += l1 * np.sign(param)
    if momentum != 0:
        if velocity is None:
            raise ValueError("velocity is required when momentum != 0")
        velocity *= momentum
        velocity += g
        step = g + momentum * velocity if nesterov else velocity
    else:
        if nesterov:
            raise ValueError("nesterov=True needs momentum > 0")
        step = g
    param -= lr * step


def adam_update(param, grad, m, v, *, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0):
    if step < 1:
        raise ValueError("step must be >= 1")
    g = np.array(grad, dtype=param.dtype)
    if weight_decay != 0:
        g += weight_decay * param
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    bc1 = 1 - beta1 ** step
    bc2 = 1 - beta2 ** step
    param -= (lr / bc1) * m / (np.sqrt(v) / math.sqrt(bc2) + eps)


def rmsprop_update(param, grad, square_avg, *, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                   momentum_buffer=None, centered=False, grad_avg=None):
    """torch.optim.RMSprop's step: square_avg (and grad_avg when centered, momentum_buffer when
    momentum > 0) and param updated in place."""
    g = np.array(grad, dtype=param.dtype)
    if weight_decay != 0:
        g += weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if centered:
        if grad_avg is None:
            raise ValueError("grad_avg is required when centered=True")
        grad_avg *= alpha
        grad_avg += (1 - alpha) * g
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        if momentum_buffer is None:
            raise ValueError("momentum_buffer is required when momentum > 0")
        momentum_buffer *= momentum
        momentum_buffer += g / avg
        param -= lr * momentum_buffer
    else:
        param -= lr * g / avg


def adagrad_update(param, grad, state_sum, *, step, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10):
    """torch.optim.Adagrad's step (dense gradients): step counts the updates from 1."""
    if step < 1:
        raise ValueError("step must be >= 1")
    g = np.array(grad, dtype=param.dtype)
    if weight_decay != 0:
        g += weight_decay * param
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += g * g
    param -= clr * g / (np.sqrt(state_sum) + eps)
