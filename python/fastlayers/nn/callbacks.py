"""Training callbacks and the History that `fit` returns."""

from __future__ import annotations

import math

__all__ = ["Callback", "History", "EarlyStopping"]


class Callback:
    """Hooks called by Sequential.fit. `on_epoch_end` may set model.stop_training = True."""

    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, model, epoch: int, logs: dict):
        pass

    def on_train_end(self, model):
        pass


class History:
    """Per-epoch metrics: history['loss'], history.accuracy, history.val_loss, ... (lists, one value per
    epoch; accuracy is None for regression losses)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __getattr__(self, key):
        if key.startswith("_") or key in ("history", "epoch"):
            raise AttributeError(key)
        try:
            return self.history[key]
        except KeyError:
            raise AttributeError(f"History has no metric {key!r}; it has {sorted(self.history)}") from None

    def __contains__(self, key):
        return key in self.history

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, metrics={sorted(self.history)})"


class EarlyStopping(Callback):
    """Stop when `monitor` (default val_loss) has not improved by more than min_delta for `patience`
    epochs; with restore_best_weights, the model ends with the weights of its best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 restore_best_weights: bool = False, mode: str = "min"):
        from ._args import as_flag, as_real, as_size

        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a metric name such as 'val_loss', got {type(monitor).__name__}")
        patience = as_size(patience, "patience", minimum=0)
        min_delta = as_real(min_delta, "min_delta", finite=True)
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.restore_best_weights, self.mode = as_flag(restore_best_weights, "restore_best_weights"), mode

    def on_train_begin(self, model):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.wait = 0
        self.stopped_epoch = None
        self._best_weights = None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, model, epoch, logs):
        if logs.get(self.monitor) is None:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which this fit does not produce "
                             f"(it has {sorted(k for k, v in logs.items() if v is not None)}); "
                             f"val_* metrics need validation_split or validation_data")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = [p.data.copy() for p in model.parameters()]
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                model.stop_training = True

    def on_train_end(self, model):
        if self.restore_best_weights and self._best_weights is not None:
            for p, w in zip(model.parameters(), self._best_weights):
                p.data = w
