"""Training callbacks (Keras's names, main arguments and behaviour) and the History that `fit` returns.

- `EarlyStopping`: stop when a metric has stopped improving (optionally restoring the best weights).
- `ModelCheckpoint`: save the model every epoch or only when a metric improves; the file name may
  hold `{epoch}` and any log key, formatted as str.format does (`"ckpt/m-{epoch:02d}-{val_loss:.3f}.npz"`).
- `CSVLogger`: one CSV row per epoch (epoch, then every metric).
- `LearningRateScheduler`: lr = schedule(epoch, lr) before each epoch.
- `ReduceLROnPlateau`: lr × factor when a metric has not improved for `patience` epochs.

Every file a callback writes goes through `fastlayers._primary.is_primary()` (always True in one
process; rank 0 only in a data-parallel run). The callbacks that set the learning rate use
`model.optimizer.lr`, which every fastlayers.optim optimizer has; they compose with the schedules in
fastlayers.optim (StepLR, ExponentialLR, ...), which continue from whatever lr they find.

A callback may define on_train_begin(model), on_epoch_begin(model, epoch, logs),
on_epoch_end(model, epoch, logs) and on_train_end(model); `logs` holds this epoch's loss,
accuracy, val_loss, val_accuracy (None where it does not apply). Setting model.stop_training = True
in on_epoch_end ends training after that epoch.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import string
import tempfile

from .._primary import is_primary as _is_primary

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "LearningRateScheduler",
           "ReduceLROnPlateau"]


class Callback:
    """Hooks called by fit. `on_epoch_end` may set model.stop_training = True."""

    def on_train_begin(self, model):
        pass

    def on_epoch_begin(self, model, epoch: int, logs: dict | None = None):
        pass

    def on_epoch_end(self, model, epoch: int, logs: dict):
        pass

    def on_train_end(self, model):
        pass


class History:
    """Per-epoch metrics: history['loss'], history.accuracy, history.val_loss, ... (lists, one value per
    epoch; accuracy is None for regression losses). `plot()` draws them."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def append(self, epoch: int, logs: dict):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path=None, metrics=None, title: str | None = None):
        """Loss and accuracy per epoch, train and validation (one panel per metric). With a path, the
        figure is written there as a PNG (or any format matplotlib knows from the suffix); without,
        it is drawn with pyplot (shown in a notebook). Returns the matplotlib Figure. `metrics`
        chooses the panels (default: 'loss', and 'accuracy' when the loss has one)."""
        from ..viz import plot_history

        return plot_history(self, path=path, metrics=metrics, title=title)

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


# --- shared pieces --------------------------------------------------------------------------------

def _monitor_arg(monitor) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"monitor must be a metric name such as 'val_loss', got {type(monitor).__name__} {monitor!r}")
    return monitor


def _mode_arg(mode, monitor: str) -> str:
    """'min' or 'max'; 'auto' is 'max' for accuracies (a name containing 'acc', as Keras decides)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor or monitor.startswith("fmeasure") else "min"
    return mode


def _verbose_arg(verbose) -> int:
    from ._args import as_size

    return int(verbose) if isinstance(verbose, bool) else as_size(verbose, "verbose", minimum=0)


def _monitored(who: str, monitor: str, logs: dict) -> float:
    value = logs.get(monitor)
    if value is None:
        raise ValueError(f"{who} monitors {monitor!r}, which this fit does not produce "
                         f"(it has {sorted(k for k, v in logs.items() if v is not None)}); "
                         f"val_* metrics need validation_split or validation_data")
    return float(value)


def _optimizer_of(model, who: str):
    opt = getattr(model, "optimizer", None)
    lr = getattr(opt, "lr", None)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TypeError(f"{who} sets model.optimizer.lr, so the model needs an optimizer with a float lr "
                        f"(any fastlayers.optim optimizer); got {type(opt).__name__}")
    return opt


def _set_lr(opt, lr, who: str, detail: str):
    """Set the optimizer's learning rate to a finite float >= 0, or say which callback gave what."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) and not hasattr(lr, "__float__"):
        raise TypeError(f"{who}: {detail} returned {type(lr).__name__} {lr!r}; a learning rate must be a float")
    value = float(lr)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{who}: {detail} returned {lr!r}; a learning rate must be finite and >= 0")
    opt.lr = value
    return value


def _write_atomically(path: str, write):
    """write(tmp_path), then rename over path: a crash or an error never leaves a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".part")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class EarlyStopping(Callback):
    """Stop when `monitor` (default val_loss) has not improved by more than min_delta for `patience`
    epochs; with restore_best_weights, the model ends with the weights of its best epoch. mode 'auto'
    (default) maximises accuracies and minimises everything else."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 restore_best_weights: bool = False, mode: str = "auto"):
        from ._args import as_flag, as_real, as_size

        monitor = _monitor_arg(monitor)
        patience = as_size(patience, "patience", minimum=0)
        min_delta = as_real(min_delta, "min_delta", finite=True)
        mode = _mode_arg(mode, monitor)
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
        value = _monitored("EarlyStopping", self.monitor, logs)
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


class ModelCheckpoint(Callback):
    """Save the model (model.save: architecture, weights, loss) after every epoch, or with
    save_best_only only when `monitor` improved on the best value so far.

    filepath may hold `{epoch}` (counted from 1, as Keras does) and any key of the epoch's logs, in
    str.format syntax: "ckpt/model-{epoch:02d}-{val_loss:.4f}.npz". Without such fields every save
    replaces the one before. Folders are created as needed, and each file is written to a temporary
    name first and then renamed, so a crash never leaves half a checkpoint. mode 'auto' maximises
    accuracies and minimises everything else. save_freq 'epoch' is the only frequency (Keras's
    integer, a count of batches, needs a per-batch hook that fit does not have yet). The best value
    so far is `best`; the last file written `last_saved`."""

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False, *,
                 mode: str = "auto", save_freq="epoch", initial_value_threshold=None):
        from ._args import as_flag, as_real

        if not isinstance(filepath, (str, os.PathLike)):
            raise TypeError(f"filepath must be a file name (str or os.PathLike), may hold {{epoch}} and log keys; "
                            f"got {type(filepath).__name__} {filepath!r}")
        self.filepath = os.fspath(filepath)
        if not self.filepath:
            raise ValueError("filepath must not be empty")
        try:
            self._fields = {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(self.filepath)
                            if f is not None}
        except ValueError as e:
            raise ValueError(f"filepath {self.filepath!r} is not a valid format string ({e}); write a literal "
                             f"brace as '{{{{' or '}}}}'") from None
        if "" in self._fields:
            raise ValueError(f"filepath {self.filepath!r} has an empty {{}} field; name it, e.g. {{epoch}}")
        self.monitor = _monitor_arg(monitor)
        self.verbose = _verbose_arg(verbose)
        self.save_best_only = as_flag(save_best_only, "save_best_only")
        self.mode = _mode_arg(mode, self.monitor)
        if save_freq != "epoch":
            raise ValueError(f"save_freq must be 'epoch' (fastlayers' fit calls callbacks once per epoch; an "
                             f"integer count of batches is not supported), got {save_freq!r}")
        self.save_freq = save_freq
        self.initial_value_threshold = (None if initial_value_threshold is None else
                                        as_real(initial_value_threshold, "initial_value_threshold"))
        self.best = None
        self.last_saved = None

    def on_train_begin(self, model):
        if self.initial_value_threshold is not None:
            self.best = self.initial_value_threshold
        elif self.best is None:  # a second fit continues from the best of the first, as Keras does
            self.best = math.inf if self.mode == "min" else -math.inf

    def _path(self, epoch: int, logs: dict) -> str:
        missing = self._fields - set(logs) - {"epoch"}
        if missing:
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} names {sorted(missing)}, which this fit's "
                             f"logs do not have (they have epoch, {', '.join(sorted(logs))})")
        try:
            return self.filepath.format(**{**logs, "epoch": epoch + 1})
        except (TypeError, ValueError, IndexError, AttributeError, KeyError) as e:
            blank = sorted(k for k in self._fields if k != "epoch" and logs.get(k) is None)
            why = f"; {', '.join(blank)} is None in this fit" if blank else ""
            raise ValueError(f"ModelCheckpoint filepath {self.filepath!r} cannot be formatted with this epoch's "
                             f"logs ({type(e).__name__}: {e}){why}") from None

    def _better(self, value: float) -> bool:
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, model, epoch, logs):
        path = self._path(epoch, logs)
        if self.save_best_only:
            value = _monitored("ModelCheckpoint", self.monitor, logs)
            if not self._better(value):
                if self.verbose:
                    print(f"Epoch {epoch + 1:05d}: {self.monitor} did not improve from {self.best:.5f}", flush=True)
                return
            if self.verbose:
                print(f"Epoch {epoch + 1:05d}: {self.monitor} improved from {self.best:.5f} to {value:.5f}, "
                      f"saving model to {path}", flush=True)
            self.best = value
        elif self.verbose:
            print(f"Epoch {epoch + 1:05d}: saving model to {path}", flush=True)
        if _is_primary():
            _write_atomically(path, model.save)
        self.last_saved = path


class CSVLogger(Callback):
    """Stream each epoch's logs to a CSV file: a header row `epoch,<metric>,...` (the metrics this fit
    produces, sorted by name, as Keras writes them), then one row per epoch with the epoch counted
    from 0. With append=True rows go after an existing file's (the header is written only when the
    file is new or empty). The file is flushed after every row and closed when training ends."""

    def __init__(self, filename, separator: str = ",", append: bool = False):
        from ._args import as_flag

        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(f"filename must be a file name (str or os.PathLike), got {type(filename).__name__} "
                            f"{filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be a single character, got {separator!r}")
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = as_flag(append, "append")
        self.keys = None
        self._file = self._writer = None

    def on_train_begin(self, model):
        self.keys = None
        self._header = True
        if not _is_primary():
            return
        if self.append and os.path.isfile(self.filename) and os.path.getsize(self.filename) > 0:
            self._header = False
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file, delimiter=self.sep, lineterminator="\n")

    def on_epoch_end(self, model, epoch, logs):
        if self.keys is None:  # the columns: the metrics this fit produces (accuracy is None for regression)
            self.keys = sorted(k for k, v in logs.items() if v is not None)
        if self._writer is None:
            return
        if self._header:
            self._writer.writerow(["epoch", *self.keys])
            self._header = False
        self._writer.writerow([epoch, *("NA" if logs.get(k) is None else logs[k] for k in self.keys)])
        self._file.flush()

    def on_train_end(self, model):
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None


class LearningRateScheduler(Callback):
    """Before each epoch, model.optimizer.lr = schedule(epoch, lr) (epoch counted from 0, lr the current
    rate; a schedule taking one argument gets only the epoch). verbose=1 prints each change.
    Works with every fastlayers.optim optimizer, and with the schedules of fastlayers.optim in the
    same fit (each continues from the rate the other left)."""

    def __init__(self, schedule, verbose: int = 0):
        if not callable(schedule):
            raise TypeError(f"schedule must be a function schedule(epoch, lr) -> lr, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = _verbose_arg(verbose)
        self._nargs = 2
        try:
            params = [p for p in inspect.signature(schedule).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
            if len(params) == 1 and params[0].kind != params[0].VAR_POSITIONAL:
                self._nargs = 1
        except (TypeError, ValueError):  # no signature (some builtins): the two-argument form
            pass

    def on_train_begin(self, model):
        _optimizer_of(model, "LearningRateScheduler")

    def on_epoch_begin(self, model, epoch, logs=None):
        opt = _optimizer_of(model, "LearningRateScheduler")
        lr = float(opt.lr)
        new = self.schedule(epoch, lr) if self._nargs == 2 else self.schedule(epoch)
        detail = f"schedule(epoch={epoch}, lr={lr})" if self._nargs == 2 else f"schedule(epoch={epoch})"
        new = _set_lr(opt, new, "LearningRateScheduler", detail)
        if self.verbose:
            print(f"\nEpoch {epoch + 1:05d}: LearningRateScheduler setting learning rate to {new}.", flush=True)


class ReduceLROnPlateau(Callback):
    """Multiply model.optimizer.lr by `factor` (never below min_lr) when `monitor` has not improved by
    more than min_delta for `patience` epochs; then wait `cooldown` epochs before counting again.
    mode 'auto' maximises accuracies and minimises everything else. Keras's rules, step for step."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        from ._args import as_real, as_size

        self.monitor = _monitor_arg(monitor)
        self.factor = as_real(factor, "factor", 0.0, 1.0, lo_open=True, hi_open=True)
        self.patience = as_size(patience, "patience", minimum=0)
        self.verbose = _verbose_arg(verbose)
        self.mode = _mode_arg(mode, self.monitor)
        self.min_delta = abs(as_real(min_delta, "min_delta", finite=True))
        self.cooldown = as_size(cooldown, "cooldown", minimum=0)
        self.min_lr = as_real(min_lr, "min_lr", 0.0, math.inf, hi_open=True)
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, model):
        _optimizer_of(model, "ReduceLROnPlateau")
        self._reset()

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, model, epoch, logs):
        value = _monitored("ReduceLROnPlateau", self.monitor, logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:  # re-read after the countdown, as Keras does
            self.wait += 1
            if self.wait >= self.patience:
                opt = _optimizer_of(model, "ReduceLROnPlateau")
                old = float(opt.lr)
                if old > self.min_lr:
                    new = _set_lr(opt, max(old * self.factor, self.min_lr), "ReduceLROnPlateau", "lr * factor")
                    if self.verbose:
                        print(f"\nEpoch {epoch + 1:05d}: ReduceLROnPlateau reducing learning rate to {new}.",
                              flush=True)
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
