"""The training and persistence machinery shared by every trainable model (Sequential, and the graph
Model of the functional API): compile / fit / evaluate / predict, callbacks and the progress bar,
summary() plumbing, save / load_model (one versioned .npz: architecture as JSON, weights, buffers),
PyTorch state_dict import and device handling.

A model class derives from TrainableModel and supplies the pass (forward / backward, as every Layer)
plus small hooks:
- `_summary_table(shape)` -> (header line, row lines) for summary();
- `_ordered_layers()` -> its top-level layers in execution order (get_layer, freeze(up_to=...));
- for persistence, `_children_to_config(to_config)` -> dict of the extra JSON entries that describe
  its children, and the classmethod `_from_children_config(d, from_config)` that rebuilds it;
- for several inputs or outputs (the graph Model): `_as_input`, `_set_input_shape`, `_get_loss`,
  `_put`, `_put_target` (lists of arrays travel as `_Arrays`, which index and slice together).
Every Layer subclass registers by class name, so `load_model` finds it without importing upward.

Inference passes (predict, evaluate) run inside `inference()`: containers then call each layer's
release_cache() as soon as its output exists, so that only activations still to be read stay alive.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time
import zipfile
import zlib

import numpy as np

from .. import _backend, _device_errors
from . import _args
from . import layers as _layers
from . import losses as _losses
from ._device_metrics import Batches, Totals
from .callbacks import History
from .layers import Layer, to_device

__all__ = ["TrainableModel", "load_model", "FORMAT_VERSION"]

# Version 2 added buffers (non-trained state such as batch-norm statistics); version 3 graph models
# (nn.Model) and layer names. A file carries the lowest version that can read it (a Sequential is
# still written as version 2); versions 1, 2 and 3 load.
FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)

class _Local(threading.local):
    # Per-thread counters, 0 by default. Class attributes, so reading one never misses: a
    # getattr(..., default) miss cost ~0.4 us on every model(x).
    depth = 0    # inference() blocks open
    allowed = 0  # nn.plan.allowed() blocks open (model(x) opens one)
    off = 0      # nn.plan.disabled() blocks open


_local = _Local()  # shared with nn/plan.py


@contextlib.contextmanager
def inference():
    """Within the block (in this thread), eval-mode passes need no backward: containers release each
    layer's cache as soon as the layer has run (see Layer.release_cache)."""
    _local.depth += 1
    try:
        yield
    finally:
        _local.depth -= 1


def in_inference() -> bool:
    return _local.depth > 0


def _inference_pass(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with inference():
            return method(self, *args, **kwargs)
    return run


def _to_numpy(a):
    return a.get() if _backend.is_cupy_array(a) else np.asarray(a)


class _Arrays:
    """Several arrays with one row per sample (a multi-input model's inputs, a multi-output
    model's targets) that index, slice and count samples together."""

    def __init__(self, arrays):
        self.arrays = list(arrays)

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, idx):
        return _Arrays([a[idx] for a in self.arrays])

    @property
    def ndim(self) -> int:
        return min(a.ndim for a in self.arrays)


class _MultiOutputLoss:
    """One loss per output of a multi-output model, used by fit/evaluate as one loss: the value is
    the sum of the per-output losses, backward() the list of per-output gradients, `correct` None
    for several outputs (no single accuracy) and the loss's own for a list of one."""

    def __init__(self, losses):
        self.losses = list(losses)
        reductions = {lf.reduction for lf in self.losses}
        if len(reductions) != 1:
            raise ValueError(f"the losses of a multi-output model must share one reduction, got {sorted(reductions)}")
        self.reduction = reductions.pop()

    def __call__(self, outs, targets):
        total = None
        for lf, o, t in zip(self.losses, outs, targets):
            v = lf(o, t)
            total = v if total is None else total + v
        return total

    def backward(self):
        return [lf.backward() for lf in self.losses]

    def correct(self, outs, targets):
        return self.losses[0].correct(outs[0], targets[0]) if len(self.losses) == 1 else None

    def prepare_target(self, ys, out_shapes):
        return [lf.prepare_target(y, s) for lf, y, s in zip(self.losses, ys, out_shapes)]


def _shape_text(shape) -> str:
    if not shape:
        return "unknown"
    if isinstance(shape[0], (tuple, list)):  # several inputs
        return ", ".join(_shape_text(tuple(s)) for s in shape)
    return "(N, " + ", ".join(map(str, shape)) + ")"


def _report_epoch(bar, verbose, logs: dict, title: str, tail: str) -> None:
    """An epoch's end for fit: its figures on the progress bar (then closed) or, with verbose and no
    bar, one printed line "title: loss=... (tail)". Shared with distributed.DataParallel.fit."""
    if bar is not None:
        bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if v is not None})
        bar.close()
    elif verbose:
        parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if v is not None)
        print(f"{title}: {parts} ({tail})", flush=True)


class TrainableModel(Layer):
    """Base of Sequential and the graph Model: a Layer that also trains, evaluates, predicts,
    describes and saves itself. State: loss, optimizer, input_shape (per sample, no batch), device."""

    # Eval-mode passes run through the inference plan (nn/plan.py) where the model has one; False:
    # layer by layer. A class attribute, so that the plan's per-call check finds it without a miss
    # through Layer.__getattr__ (~1 us of a 30 us LeNet-5 call).
    use_plan = True

    def __init__(self, loss=None, input_shape=None):
        super().__init__()
        self.loss = None if loss is None else self._get_loss(loss)
        self.optimizer = None
        self.input_shape = None if input_shape is None else _shape_arg(input_shape, "input_shape")
        self.device = "cpu"
        self.stop_training = False

    def to(self, device: str):
        super().to(device)
        self.device = device
        return self

    def __call__(self, x, training=None):
        """model(x): forward; in eval mode on a NumPy float32 array through the model's inference
        plan where it has one (nn/plan.py: the whole model in one C++ call)."""
        if self._is_training(training) or hasattr(x, "_apply_layer") or isinstance(x, (list, tuple)):
            return super().__call__(x, training)
        _local.allowed += 1  # plan.allowed(), without a context manager's cost
        try:
            return self.forward(x, training)
        finally:
            _local.allowed -= 1

    # --- training -------------------------------------------------------------------------------
    def compile(self, optimizer=None, loss=None):
        """Set the optimizer (default: SGD lr 0.01) and the loss used by fit/evaluate."""
        if loss is not None:
            self.loss = self._get_loss(loss)
        if optimizer is not None:
            self.optimizer = _args.check_optimizer(optimizer)
        return self

    def _require_loss(self):
        if self.loss is None:
            raise ValueError(f"no loss: pass loss= to {type(self).__name__}(...), compile() or fit()")
        return self.loss

    # --- hooks for models with several inputs or outputs (see the graph Model) ------------------------
    def _get_loss(self, loss):
        return _losses.get_loss(loss)

    def _as_input(self, x, name: str = "x"):
        """User input -> what the batching below slices (one float32 NumPy array with a batch
        dimension here; 0 samples allowed, fit/evaluate refuse them in _check_xy)."""
        return _args.as_samples(x, name, allow_empty=True)

    def _set_input_shape(self, x):
        self.input_shape = tuple(x.shape[1:])

    def _put(self, a):
        return to_device(a, "cuda") if self.device == "cuda" else a

    def _put_target(self, t):
        if self.device == "cuda":
            import cupy

            return cupy.asarray(t)
        return t

    def _check_xy(self, x, y):
        x = self._as_input(x)
        if x.ndim < 2:
            raise ValueError(f"x must have a batch dimension, got shape {x.shape}")
        if len(x) == 0:
            raise ValueError("x is empty (0 samples)")
        if y is None:
            return x, None
        y = np.asarray(_to_numpy(y))
        if y.ndim == 0:
            raise ValueError("y must hold one target per sample (N, ...), got a 0-D array")
        if len(y) != len(x):
            raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")
        out_shape = self._output_shape(x)
        return x, self._require_loss().prepare_target(y, out_shape)

    def _output_shape(self, x):
        """The per-sample output shape for inputs like x (a probe on its first sample here, or on
        one zero sample when x has none)."""
        probe = x[:1] if len(x) else np.zeros((1,) + tuple(x.shape[1:]), np.float32)
        from . import plan as _plan

        with _plan.disabled():  # a one-sample probe: not worth compiling a plan for
            return tuple(self.forward(self._put(probe), training=False).shape[1:])

    def _fit_setup(self, x, y, optimizer, loss, validation_split, validation_data):
        """What fit does before its first epoch (here and in distributed.DataParallel.fit, after
        _args.check_fit_args): the optimizer and loss (SGD lr 0.01 by default), x and y checked, the
        input shape recorded, the validation set taken. Returns (loss_fn, x, t, x_val, y_val), the
        last two None without validation."""
        from ..optim import SGD

        self.compile(optimizer, loss)
        loss_fn = self._require_loss()
        if y is None:
            raise TypeError("y must be an array of targets, got None (fit needs the targets)")
        if self.optimizer is None:
            self.optimizer = SGD(self.parameters(), lr=0.01)
        x, t = self._check_xy(x, y)
        self._set_input_shape(x)
        if validation_data is not None:  # a pair: check_fit_args says so
            x_val, y_val = validation_data
        elif validation_split > 0:
            n_val = int(round(len(x) * validation_split))
            if not 0 < n_val < len(x):
                raise ValueError(f"validation_split={validation_split} leaves {n_val} of {len(x)} samples "
                                 f"for validation")
            x, x_val, t, y_val = x[:-n_val], x[-n_val:], t[:-n_val], t[-n_val:]
        else:
            x_val = y_val = None
        return loss_fn, x, t, x_val, y_val

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, callbacks=(), verbose: int = 1, seed=None,
            optimizer=None, loss=None, distributed: bool = False) -> History:
        """Mini-batch training; returns a History (loss, accuracy, val_loss, val_accuracy per epoch).
        distributed=True trains data-parallel over the ranks of an MPI job, batch_size being the
        global batch (fastlayers.distributed.DataParallel)."""
        if distributed:
            from ..distributed import DataParallel

            return DataParallel(self).fit(x, y, epochs=epochs, batch_size=batch_size,
                                          validation_split=validation_split, validation_data=validation_data,
                                          shuffle=shuffle, callbacks=callbacks, verbose=verbose, seed=seed,
                                          optimizer=optimizer, loss=loss)

        epochs, batch_size, validation_split, validation_data, shuffle, callbacks, verbose, seed = \
            _args.check_fit_args(epochs, batch_size, validation_split, validation_data, shuffle, callbacks,
                                 verbose, seed)
        loss_fn, x, t, x_val, y_val = self._fit_setup(x, y, optimizer, loss, validation_split, validation_data)

        rng = np.random.default_rng(seed)
        history = History()
        callbacks = list(callbacks)
        self.stop_training = False
        self._has_validation = x_val is not None
        for cb in callbacks:
            cb.on_train_begin(self)
        n = len(x)
        n_batches = (n + batch_size - 1) // batch_size
        use_bar = verbose == 1 and sys.stderr.isatty()
        # On the GPU: the training set is copied to the device once, a batch is a device gather,
        # and the epoch's loss and accuracy are summed on the device and read once per epoch
        # (nn/_device_metrics.py): no host synchronisation inside the batch loop.
        batches = Batches(x, t, self._put, self._put_target, self.device)
        for epoch in range(epochs):
            for cb in callbacks:  # optional hook (LearningRateScheduler sets the epoch's lr here)
                if callable(getattr(cb, "on_epoch_begin", None)):
                    cb.on_epoch_begin(self, epoch, {})
            t0 = time.perf_counter()
            batches.epoch(rng.permutation(n) if shuffle else np.arange(n))
            totals = Totals()
            bar = None
            if use_bar:
                from tqdm.auto import tqdm

                bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=True,
                           file=sys.stderr, dynamic_ncols=True)
            for b in range(n_batches):
                start, stop = b * batch_size, min((b + 1) * batch_size, n)
                xb, tb = batches.batch(start, stop)
                out = self.forward(xb, training=True)
                lval = loss_fn(out, tb)
                self.backward(loss_fn.backward(), need_input_grad=False)
                self.optimizer.step()
                totals.add(lval, stop - start, loss_fn.reduction, loss_fn.correct(out, tb))
                if bar is not None:
                    if self.device != "cuda":  # on the GPU the running figures wait for the epoch's end
                        loss_sum, correct = totals.result()
                        post = {"loss": f"{loss_sum / totals.seen:.4f}"}
                        if totals.has_accuracy:
                            post["acc"] = f"{correct / totals.seen:.4f}"
                        bar.set_postfix(post, refresh=False)
                    bar.update(1)
            if self.device == "cuda":  # bad labels met by the CUDA loss kernels this epoch (one sync)
                _device_errors.check()
            loss_sum, correct = totals.result()
            logs = {"loss": loss_sum / totals.seen,
                    "accuracy": correct / totals.seen if totals.has_accuracy else None}
            if x_val is not None:
                val = self.evaluate(x_val, y_val, batch_size=max(batch_size, 256), _prepared=validation_data is None)
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            _report_epoch(bar, verbose, logs, f"epoch {epoch + 1}/{epochs}", f"{time.perf_counter() - t0:.1f} s")
            history.append(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end(self)
        return history

    @_inference_pass
    def evaluate(self, x, y, batch_size: int = 256, _prepared: bool = False) -> dict:
        """{'loss': mean loss per sample, 'accuracy': fraction correct (None for regression)}."""
        loss_fn = self._require_loss()
        batch_size = _args.as_size(batch_size, "batch_size", minimum=1)
        if _prepared:
            x, t = self._as_input(x), y
        else:
            if y is None:
                raise TypeError("y must be an array of targets, got None (evaluate needs the targets)")
            x, t = self._check_xy(x, y)
        totals = Totals()  # summed on the device for CuPy outputs, read once below
        for s in range(0, len(x), batch_size):
            xb, tb = self._put(x[s:s + batch_size]), self._put_target(t[s:s + batch_size])
            out = self.forward(xb, training=False)
            totals.add(loss_fn(out, tb), min(batch_size, len(x) - s), loss_fn.reduction, loss_fn.correct(out, tb))
        if self.device == "cuda":
            _device_errors.check()
        loss_sum, correct = totals.result()
        return {"loss": loss_sum / len(x), "accuracy": correct / len(x) if totals.has_accuracy else None}

    @_inference_pass
    def predict(self, x, batch_size: int = 256):
        """The model's outputs (raw logits for classifiers) in eval mode; NumPy in, NumPy out."""
        was_numpy = not _backend.is_cupy_array(x)
        batch_size = _args.as_size(batch_size, "batch_size", minimum=1)
        x = self._as_input(x)
        outs = [_to_numpy(self.forward(self._put(x[s:s + batch_size]), training=False))
                for s in range(0, len(x), batch_size)]
        # no samples: the per-sample output shape, with N = 0
        out = np.concatenate(outs) if outs else np.zeros((0,) + tuple(self._output_shape(x)), np.float32)
        return out if was_numpy else to_device(out, "cuda")

    # --- description ----------------------------------------------------------------------------
    def summary(self, input_shape=None, print_fn=print) -> str:
        """A table of layers, output shapes and parameter counts (needs the per-sample input shape,
        given here, to the constructor, or remembered from fit)."""
        if input_shape is None:
            shape = self.input_shape
        elif isinstance(input_shape, (tuple, list)) and input_shape and isinstance(input_shape[0], (tuple, list)):
            shape = [_shape_arg(s, "input_shape") for s in input_shape]  # one per input of a graph Model
        else:
            shape = _shape_arg(input_shape, "input_shape")
        head, rows = self._summary_table(shape)
        lines = [head, "-" * len(head)] + rows
        lines.append("-" * len(head))
        total, trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        lines.append(f"input shape: {_shape_text(shape)}")
        lines.append(f"parameters: {total:,} total, {trainable:,} trainable, {total - trainable:,} frozen")
        if self.loss is not None:
            lines.append(f"loss: {self.loss!r}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def _summary_table(self, shape):
        """(header line, row lines) of summary()'s table for per-sample input shape `shape` (or None)."""
        raise NotImplementedError

    # --- layers by name, freezing -----------------------------------------------------------------
    def _ordered_layers(self) -> list[Layer]:
        """The top-level layers in execution order."""
        return list(self.children())

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The top-level layer called `name` (see Layer.name), or the one at position `index` in
        execution order. A nested model's layers: model.get_layer("inner").get_layer("conv2d")."""
        layers = self._ordered_layers()
        if (name is None) == (index is None):
            raise ValueError("get_layer needs exactly one of name= or index=")
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"index {index} is out of range for a model with {len(layers)} layers")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r} in this model; its layers are: "
                         f"{', '.join(repr(la.name) for la in layers)}")

    def freeze(self, up_to=None):
        """Freeze the whole model, or, with up_to (a layer name or Layer), every top-level layer up to
        and including that one in execution order (the rest keep their flags): the transfer-learning
        step "freeze the body, train the new head"."""
        if up_to is None:
            return super().freeze()
        layers = self._ordered_layers()
        last = self.get_layer(up_to) if isinstance(up_to, str) else up_to
        if not any(la is last for la in layers):
            raise ValueError(f"up_to={getattr(last, 'name', last)!r} is not a top-level layer of this model")
        for layer in layers:
            layer.trainable = False
            if layer is last:
                break
        return self

    # --- persistence hooks ----------------------------------------------------------------------
    def _children_to_config(self, to_config) -> dict:
        """The JSON entries (besides class, config and trainable) that describe the children;
        `to_config(layer)` serialises one child."""
        raise NotImplementedError

    @classmethod
    def _from_children_config(cls, d: dict, from_config):
        """Rebuild the model from what _children_to_config wrote; `from_config(entry)` builds a child."""
        raise NotImplementedError

    # --- persistence ----------------------------------------------------------------------------
    def save(self, path):
        """One .npz: format version, the architecture (JSON) and every parameter array."""
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError(f"path must be a file name (str or os.PathLike), got {type(path).__name__} {path!r}")
        arrays = {f"param_{i}": _to_numpy(p.data) for i, p in enumerate(self.parameters())}
        buffers = list(self.named_buffers())
        arrays.update({f"buffer_{i}": _to_numpy(owner._buffers[name]) for i, (_, owner, name) in enumerate(buffers)})
        config = {"model": _layer_to_config(self),
                  "loss": _loss_to_config(self.loss),
                  "input_shape": self.input_shape,
                  "param_names": [n for n, _ in self.named_parameters()],
                  "buffer_names": [n for n, _, _ in buffers]}
        with open(path, "wb") as fh:  # a file object keeps numpy from appending .npz to the name
            np.savez_compressed(fh, format_version=np.array(_format_version(self)),
                                config=np.array(json.dumps(config)), **arrays)

    @classmethod
    def load(cls, path) -> TrainableModel:
        return load_model(path)

    def export_onnx(self, path, input_shape=None, **kwargs):
        """Write this model as ONNX (fastlayers.onnx.export; needs the onnx package)."""
        from ..onnx import export

        return export(self, path, input_shape, **kwargs)

    def torch_state_dict_keys(self) -> list[str]:
        """The keys a PyTorch state_dict of this model has (parameters, then buffers, num_batches_tracked
        included; as a set, PyTorch's order interleaves them by module), in the names load_torch_state_dict matches: "<layer name>.<parameter>" in a graph
        Model (the zoo names its layers after torchvision's modules), "<index>.<parameter>" in a
        Sequential (torch.nn.Sequential's keys)."""
        return [n for n, _ in self.named_parameters()] + [n for n, _, _ in self.named_buffers()]

    def load_torch_state_dict(self, state_dict, strict: bool = True):
        """Copy parameters and buffers (batch-norm running statistics) from a PyTorch state_dict, matched
        by key (see torch_state_dict_keys): conv weights (K, C/groups, R, S), linear (out, in) and
        transposed-conv (C, K/groups, R, S) have PyTorch's layouts, so values are copied as they are.

        strict=True (PyTorch's default): a key the model lacks (unexpected), a key of the model the
        state_dict lacks (missing) or a tensor of another shape is a ValueError that names them all,
        and nothing is copied. strict=False copies the keys both have and ignores the others (a shape
        mismatch is still an error, as in PyTorch). `num_batches_tracked` is never required (copied
        when both sides have it). Returns the model."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict must be a mapping of names to tensors (model.state_dict()), "
                            f"got {type(state_dict).__name__}")
        targets = {}
        for name, p in self.named_parameters():
            targets[name] = ("param", p, p.shape)
        for name, owner, bname in self.named_buffers():
            targets[name] = ("buffer", (owner, bname), tuple(owner._buffers[bname].shape))
        given = {}
        for key, value in state_dict.items():
            key = str(key)
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            try:
                value = np.asarray(value)
                if value.dtype.kind not in "fiub":
                    raise TypeError(f"dtype {value.dtype}")
            except (TypeError, ValueError) as e:
                raise TypeError(f"state_dict[{key!r}] must be a numeric tensor or array, got "
                                f"{type(value).__name__} ({e})") from None
            given[key] = value
        optional = lambda k: k.endswith("num_batches_tracked")  # noqa: E731
        missing = [k for k in targets if k not in given and not optional(k)]
        unexpected = [k for k in given if k not in targets and not optional(k)]
        mismatched = []
        for key, value in given.items():
            if key not in targets:
                continue
            want = targets[key][2]
            got = tuple(value.shape)
            if optional(key):
                if value.size != 1:
                    mismatched.append(f"{key} has shape {got}, the model's {want}")
            elif got != want:
                mismatched.append(f"{key} has shape {got}, the model's {want}")
        problems = []
        if mismatched:
            problems.append("tensors of another shape: " + "; ".join(mismatched))
        if strict and missing:
            problems.append(f"missing keys (in the model, not in the state_dict): {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys (in the state_dict, not in the model): {', '.join(unexpected)}")
        if problems:
            raise ValueError(f"load_torch_state_dict: the state_dict does not match model {self.name!r} "
                             f"({len(given)} tensors given, {len(targets)} in the model): " + " | ".join(problems) +
                             ("" if mismatched else "; the model's keys are listed by torch_state_dict_keys()"))
        for key, (kind, target, want) in targets.items():
            if key not in given:
                continue
            if kind == "param":
                value = np.ascontiguousarray(given[key], dtype=np.float32)
                target.data = to_device(value, "cuda") if self.device == "cuda" else value
                target.grad = None
            else:
                owner, bname = target
                old = owner._buffers[bname]
                value = np.ascontiguousarray(given[key].reshape(want), dtype=old.dtype)
                owner._buffers[bname] = _backend.array_module(old).asarray(value)
        return self


def _shape_arg(shape, name: str) -> tuple:
    """A per-sample shape: a tuple/list of sizes >= 1."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of sizes (the shape of one sample), got {type(shape).__name__} "
                        f"{shape!r}")
    return tuple(_args.as_size(d, name, minimum=1) for d in shape)


def _loss_to_config(loss):
    if loss is None:
        return None
    if isinstance(loss, (list, tuple)):  # one per output of a multi-output model
        return [_loss_to_config(lf) for lf in loss]
    return {"class": type(loss).__name__, "config": loss.get_config()}


def _loss_from_config(c):
    if isinstance(c, list):
        return [_loss_from_config(lf) for lf in c]
    cls = getattr(_losses, c["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, _losses.Loss)):
        raise ValueError(f"unknown loss class {c['class']!r} in the saved model")
    return cls(**c["config"])


def _walk(layer: Layer):
    yield layer
    for child in layer.children():
        yield from _walk(child)


def _format_version(model: Layer) -> int:
    """The lowest format version that can read this model (containers may need a newer one)."""
    return max([2] + [getattr(la, "_min_format_version", 2) for la in _walk(model)])


def _layer_to_config(layer: Layer) -> dict:
    d = {"class": type(layer).__name__, "config": layer.get_config(), "trainable": layer.trainable,
         "name": layer.name}
    if isinstance(layer, TrainableModel):
        d.update(layer._children_to_config(_layer_to_config))
    elif isinstance(layer, _layers.Residual):
        d["body"] = _layer_to_config(layer.body)
        d["projection"] = None if layer.projection is None else _layer_to_config(layer.projection)
    return d


def _layer_from_config(d: dict) -> Layer:
    name = d["class"]
    cls = getattr(_layers, name, None) or _layers._LAYER_CLASSES.get(name)
    if isinstance(cls, type) and issubclass(cls, TrainableModel):
        layer = cls._from_children_config(d, _layer_from_config)
    elif name == "Residual":
        proj = None if d["projection"] is None else _layer_from_config(d["projection"])
        cfg = d["config"]
        layer = _layers.Residual(_layer_from_config(d["body"]), cfg["in_channels"], cfg["out_channels"],
                                 cfg["stride"], projection=proj)
    else:
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise ValueError(f"unknown layer class {name!r} in the saved model")
        cfg = dict(d["config"])
        if issubclass(cls, _layers._Weighted):
            cfg["init"] = "zeros"  # the saved weights replace them
        layer = cls(**cfg)
    if layer.children():  # a container: its children carry their own flags (a frozen part stays frozen)
        layer._trainable = d.get("trainable", True)
    else:
        layer.trainable = d.get("trainable", True)
    if d.get("name"):
        layer.name = _layers._check_name(d["name"])
    return layer


class _ModelFileError(ValueError):
    """A model-file problem load_model already described (passed through unchanged)."""


def load_model(path) -> TrainableModel:
    """Load a model written by save() (architecture, weights, buffers, loss).

    A file that is not one (random bytes, another .npz, a damaged or hand-edited file) is a
    ValueError saying so and naming the file; file-system errors stay OSErrors (FileNotFoundError,
    IsADirectoryError, ...), which name the path."""
    if not (isinstance(path, (str, bytes, os.PathLike)) or hasattr(path, "read")):
        raise TypeError(f"path must be a file name or an open binary file, got {type(path).__name__} {path!r}")
    try:
        return _load_model(path)
    except (_ModelFileError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError, RecursionError, UnicodeError,
            OSError, NotImplementedError, RuntimeError, zipfile.BadZipFile, zlib.error) as e:
        # (zipfile reports damaged headers as NotImplementedError, RuntimeError or an OSError from a seek)
        raise ValueError(f"{path}: not a fastlayers model file, or a damaged one ({type(e).__name__}: {e})") from e


def _load_model(path) -> TrainableModel:
    with np.load(path, allow_pickle=False) as z:
        if not isinstance(z, np.lib.npyio.NpzFile) or "format_version" not in z.files or "config" not in z.files:
            raise _ModelFileError(f"{path}: not a fastlayers model file (no format_version/config entries)")
        version = int(z["format_version"])
        if version not in _READABLE_VERSIONS:
            raise _ModelFileError(f"{path}: model format version {version} is not supported "
                                  f"(this fastlayers reads versions {', '.join(map(str, _READABLE_VERSIONS))})")
        config = json.loads(str(z["config"]))
        model = _layer_from_config(config["model"])
        params = model.parameters()
        n = len([k for k in z.files if k.startswith("param_")])
        if n != len(params):
            raise _ModelFileError(f"{path}: {n} weight arrays for an architecture with {len(params)} parameters")
        for i, p in enumerate(params):
            w = z[f"param_{i}"]
            if w.shape != p.shape:
                raise _ModelFileError(f"{path}: weight {i} has shape {w.shape}, expected {p.shape}")
            p.data = np.ascontiguousarray(w, dtype=np.float32)
        buffers = list(model.named_buffers())
        n = len([k for k in z.files if k.startswith("buffer_")])
        if n != len(buffers):
            raise _ModelFileError(f"{path}: {n} buffer arrays for an architecture with {len(buffers)} buffers")
        for i, (qualified, owner, name) in enumerate(buffers):
            b = z[f"buffer_{i}"]
            if b.shape != tuple(owner._buffers[name].shape):
                raise _ModelFileError(f"{path}: buffer {qualified!r} has shape {b.shape}, "
                                      f"expected {tuple(owner._buffers[name].shape)}")
            owner._buffers[name] = np.ascontiguousarray(b, dtype=owner._buffers[name].dtype)
    if config.get("loss"):
        model.loss = _loss_from_config(config["loss"])
    if config.get("input_shape"):
        model.input_shape = tuple(config["input_shape"])
    return model
