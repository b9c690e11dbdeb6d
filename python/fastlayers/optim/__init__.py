"""Optimizers on the fused in-place update ops (fastlayers.sgd_update, fastlayers.adam_update), and
learning-rate schedules.

    opt = fl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = fl.optim.StepLR(opt, step_size=5, gamma=0.5)   # sched.step() once per epoch

Frozen parameters (trainable False) and parameters without a gradient are skipped.
"""

from __future__ import annotations

import math

from .._backend import array_module
from ..nn._ops import F

__all__ = ["Optimizer", "SGD", "Adam", "LRScheduler", "StepLR", "ExponentialLR", "InverseTimeLR"]


class Optimizer:
    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty: the optimizer has nothing to update")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.lr = float(lr)
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
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        if weight_decay < 0 or l1 < 0:
            raise ValueError(f"weight_decay and l1 must be >= 0, got {weight_decay}, {l1}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay, self.l1 = float(weight_decay), float(l1)

    def step(self):
        for p in self._active():
            v = self._buffer(p, "velocity") if self.momentum else None
            F.sgd_update(p.data, p.grad, v, lr=self.lr, momentum=self.momentum,
                         weight_decay=self.weight_decay, l1=self.l1, nesterov=self.nesterov)


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {beta1}, {beta2}")
        self.beta1, self.beta2, self.eps, self.weight_decay = float(beta1), float(beta2), float(eps), float(weight_decay)

    def step(self):
        for p in self._active():
            st = self.state.setdefault(id(p), {})
            m, v = self._buffer(p, "m"), self._buffer(p, "v")
            st["step"] = st.get("step", 0) + 1
            F.adam_update(p.data, p.grad, m, v, step=st["step"], lr=self.lr, beta1=self.beta1, beta2=self.beta2,
                          eps=self.eps, weight_decay=self.weight_decay)


class LRScheduler:
    """Sets optimizer.lr = base_lr · factor(t) where t counts step() calls (one per epoch in fit, where a
    scheduler also works as a callback)."""

    def __init__(self, optimizer: Optimizer):
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
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def factor(self, t):
        return self.gamma ** (t // self.step_size)


class ExponentialLR(LRScheduler):
    """lr · gamma^t."""

    def __init__(self, optimizer, gamma: float):
        super().__init__(optimizer)
        self.gamma = float(gamma)

    def factor(self, t):
        return self.gamma ** t


class InverseTimeLR(LRScheduler):
    """lr / (1 + decay · t): the 1/t schedule of stochastic approximation (Robbins–Monro)."""

    def __init__(self, optimizer, decay: float = 1.0):
        super().__init__(optimizer)
        if decay < 0 or math.isnan(decay):
            raise ValueError(f"decay must be >= 0, got {decay}")
        self.decay = float(decay)

    def factor(self, t):
        return 1.0 / (1.0 + self.decay * t)
