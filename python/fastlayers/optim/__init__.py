"""Optimizers on the fused in-place update ops (fastlayers.sgd_update, adam_update, rmsprop_update,
adagrad_update), and learning-rate schedules.

    opt = fl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = fl.optim.StepLR(opt, step_size=5, gamma=0.5)   # sched.step() once per epoch

Frozen parameters (trainable False) and parameters without a gradient are skipped.
"""

from __future__ import annotations

import math

from .._backend import array_module
from ..nn._args import as_flag, as_real, as_size
from ..nn._ops import F

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "Adagrad", "LRScheduler", "StepLR", "ExponentialLR", "InverseTimeLR"]


def _params(params) -> list:
    from ..nn.layers import Parameter

    if isinstance(params, Parameter):
        params = [params]
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"params must be a list of Parameters (model.parameters()), got {type(params).__name__}") \
            from None
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] must be a fastlayers Parameter (from model.parameters()), "
                            f"got {type(p).__name__}")
    if not params:
        raise ValueError("params is empty: the optimizer has nothing to update")
    return params


class Optimizer:
    def __init__(self, params, lr: float):
        self.params = _params(params)
        self.lr = as_real(lr, "lr", 0.0, math.inf, lo_open=True, hi_open=True)
        self.state: dict[int, dict] = {}

    def _active(self):
        for p in self.params:
            if p.trainable and p.grad is not None:
                yield p

    def _buffer(self, p, key):
        """A zero-initialised state array like p.data, re-made if p moved to another device."""
        st = self.state.setdefault(id(p), {})
        buf = st.get(key)
        if buf is None or type(buf) is not type(p.data) or buf.shape != p.data.shape:
            buf = st[key] = array_module(p.data).zeros(p.data.shape, dtype=p.data.dtype)
        return buf

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    """g = grad + weight_decay·w + l1·sign(w); v = momentum·v + g; w -= lr·(nesterov ? g + momentum·v : v)."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, l1: float = 0.0):
        super().__init__(params, lr)
        momentum = as_real(momentum, "momentum", 0.0, 1.0, hi_open=True)
        nesterov = as_flag(nesterov, "nesterov")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        weight_decay = as_real(weight_decay, "weight_decay", 0.0, math.inf, hi_open=True)
        l1 = as_real(l1, "l1", 0.0, math.inf, hi_open=True)
        self.momentum, self.nesterov = momentum, nesterov
        self.weight_decay, self.l1 = weight_decay, l1

    def step(self):
        for p in self._active():
            v = self._buffer(p, "velocity") if self.momentum else None
            F.sgd_update(p.data, p.grad, v, lr=self.lr, momentum=self.momentum,
                         weight_decay=self.weight_decay, l1=self.l1, nesterov=self.nesterov)


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.beta1 = as_real(beta1, "beta1", 0.0, 1.0, hi_open=True)
        self.beta2 = as_real(beta2, "beta2", 0.0, 1.0, hi_open=True)
        self.eps = as_real(eps, "eps", 0.0, math.inf, lo_open=True, hi_open=True)
        self.weight_decay = as_real(weight_decay, "weight_decay", 0.0, math.inf, hi_open=True)

    def step(self):
        for p in self._active():
            st = self.state.setdefault(id(p), {})
            m, v = self._buffer(p, "m"), self._buffer(p, "v")
            st["step"] = st.get("step", 0) + 1
            F.adam_update(p.data, p.grad, m, v, step=st["step"], lr=self.lr, beta1=self.beta1, beta2=self.beta2,
                          eps=self.eps, weight_decay=self.weight_decay)


def _at_least(value, name: str, lo: float = 0.0) -> float:
    value = float(value)
    if not value >= lo:  # also rejects NaN
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return value


class RMSprop(Optimizer):
    """torch.optim.RMSprop: g = grad + weight_decay·w; square_avg = alpha·square_avg + (1 - alpha)·g²;
    centered: grad_avg = alpha·grad_avg + (1 - alpha)·g, avg = sqrt(square_avg - grad_avg²) + eps, else
    avg = sqrt(square_avg) + eps; momentum > 0: buf = momentum·buf + g/avg, w -= lr·buf; else w -= lr·g/avg.
    State per parameter (self.state[id(p)], as the other optimizers): square_avg, momentum_buffer,
    grad_avg (zeros when first needed) and step."""

    def __init__(self, params, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        super().__init__(params, lr)
        self.alpha, self.eps = _at_least(alpha, "alpha"), _at_least(eps, "eps")
        self.weight_decay, self.momentum = _at_least(weight_decay, "weight_decay"), _at_least(momentum, "momentum")
        self.centered = bool(centered)

    def step(self):
        for p in self._active():
            st = self.state.setdefault(id(p), {})
            square_avg = self._buffer(p, "square_avg")
            buf = self._buffer(p, "momentum_buffer") if self.momentum > 0 else None
            grad_avg = self._buffer(p, "grad_avg") if self.centered else None
            st["step"] = st.get("step", 0) + 1
            F.rmsprop_update(p.data, p.grad, square_avg, lr=self.lr, alpha=self.alpha, eps=self.eps,
                             weight_decay=self.weight_decay, momentum=self.momentum, momentum_buffer=buf,
                             centered=self.centered, grad_avg=grad_avg)


class Adagrad(Optimizer):
    """torch.optim.Adagrad (dense gradients): g = grad + weight_decay·w; sum += g²;
    w -= lr / (1 + (step - 1)·lr_decay) · g / (sqrt(sum) + eps). State per parameter: sum (starting at
    initial_accumulator_value) and step."""

    def __init__(self, params, lr: float = 0.01, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10):
        super().__init__(params, lr)
        self.lr_decay, self.weight_decay = _at_least(lr_decay, "lr_decay"), _at_least(weight_decay, "weight_decay")
        self.initial_accumulator_value = _at_least(initial_accumulator_value, "initial_accumulator_value")
        self.eps = _at_least(eps, "eps")

    def step(self):
        for p in self._active():
            st = self.state.setdefault(id(p), {})
            s = st.get("sum")
            if s is None or type(s) is not type(p.data) or s.shape != p.data.shape:
                s = st["sum"] = array_module(p.data).full(p.data.shape, self.initial_accumulator_value,
                                                          dtype=p.data.dtype)
            st["step"] = st.get("step", 0) + 1
            F.adagrad_update(p.data, p.grad, s, step=st["step"], lr=self.lr, lr_decay=self.lr_decay,
                             weight_decay=self.weight_decay, eps=self.eps)


class LRScheduler:
    """Sets optimizer.lr = base_lr · factor(t) where t counts step() calls (one per epoch in fit, where a
    scheduler also works as a callback)."""

    def __init__(self, optimizer: Optimizer):
        if not isinstance(getattr(optimizer, "lr", None), float):
            raise TypeError(f"optimizer must be a fastlayers optimizer (with a float lr), got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.t = 0

    def factor(self, t: int) -> float:
        raise NotImplementedError

    def step(self):
        self.t += 1
        self.optimizer.lr = self.base_lr * self.factor(self.t)
        return self.optimizer.lr

    # callback interface (see fastlayers.nn.callbacks)
    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, model, epoch, logs):
        self.step()

    def on_train_end(self, model):
        pass


class StepLR(LRScheduler):
    """lr · gamma^floor(t / step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        self.step_size = as_size(step_size, "step_size", minimum=1)
        self.gamma = as_real(gamma, "gamma", 0.0, math.inf, lo_open=True, hi_open=True)

    def factor(self, t):
        return self.gamma ** (t // self.step_size)


class ExponentialLR(LRScheduler):
    """lr · gamma^t."""

    def __init__(self, optimizer, gamma: float):
        super().__init__(optimizer)
        self.gamma = as_real(gamma, "gamma", 0.0, math.inf, lo_open=True, hi_open=True)

    def factor(self, t):
        return self.gamma ** t


class InverseTimeLR(LRScheduler):
    """lr / (1 + decay · t): the 1/t schedule of stochastic approximation (Robbins–Monro)."""

    def __init__(self, optimizer, decay: float = 1.0):
        super().__init__(optimizer)
        self.decay = as_real(decay, "decay", 0.0, math.inf, hi_open=True)

    def factor(self, t):
        return 1.0 / (1.0 + self.decay * t)
