"""Sequential: a stack of layers that is also a trainable model (compile / fit / evaluate / predict,
summary, save / load, PyTorch state_dict import)."""

from __future__ import annotations

import json
import os
import sys
import time
import zipfile
import zlib

import numpy as np

from .. import _backend
from . import _args
from . import layers as _layers
from . import losses as _losses
from .callbacks import History
from .layers import Layer, to_device

__all__ = ["Sequential", "load_model", "FORMAT_VERSION"]

# Version 2 added buffers (non-trained state such as batch-norm statistics); version 1 files load.
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)


def _to_numpy(a):
    return a.get() if _backend.is_cupy_array(a) else np.asarray(a)


class Sequential(Layer):
    def __init__(self, layers=(), loss=None, input_shape=None):
        super().__init__()
        if isinstance(layers, Layer):
            layers = [layers]
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list of fastlayers.nn Layers, got {type(layers).__name__}")
        self.layers: list[Layer] = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fastlayers.nn Layer, got {type(layer).__name__}")
        self.loss = None if loss is None else _losses.get_loss(loss)
        self.optimizer = None
        self.input_shape = None if input_shape is None else _shape_arg(input_shape, "input_shape")
        self.device = "cpu"
        self.stop_training = False

    def add(self, layer: Layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a fastlayers.nn Layer, got {type(layer).__name__}")
        self.layers.append(layer)
        return self

    def children(self):
        return self.layers

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def describe(self, width: int = 44) -> str:
        return f"Sequential({len(self.layers)} layers)"

    def __repr__(self):
        inner = "".join(f"\n  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"

    # --- the pass -------------------------------------------------------------------------------
    def forward(self, x, training=None):
        training = self._is_training(training)
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad_out, need_input_grad: bool = True):
        """Backpropagate grad_out through every layer; returns the input's gradient. With
        need_input_grad=False (training) a first convolution skips its backward-data pass and
        None is returned."""
        first = self.layers[0] if self.layers else None
        for layer in reversed(self.layers):
            if layer is first and not need_input_grad and isinstance(layer, (_layers.Conv2d, _layers.Conv1d)):
                grad_out = layer.backward(grad_out, need_input_grad=False)
            else:
                grad_out = layer.backward(grad_out)
        return grad_out

    def to(self, device: str):
        super().to(device)
        self.device = device
        return self

    # --- training -------------------------------------------------------------------------------
    def compile(self, optimizer=None, loss=None):
        """Set the optimizer (default: SGD lr 0.01) and the loss used by fit/evaluate."""
        if loss is not None:
            self.loss = _losses.get_loss(loss)
        if optimizer is not None:
            self.optimizer = _args.check_optimizer(optimizer)
        return self

    def _require_loss(self):
        if self.loss is None:
            raise ValueError("no loss: pass loss= to Sequential(...), compile() or fit()")
        return self.loss

    def _put(self, a):
        return to_device(a, "cuda") if self.device == "cuda" else a

    def _put_target(self, t):
        if self.device == "cuda":
            import cupy

            return cupy.asarray(t)
        return t

    def _check_xy(self, x, y):
        x = _args.as_samples(x, "x")
        if y is None:
            return x, None
        y = np.asarray(_to_numpy(y))
        if y.ndim == 0:
            raise ValueError("y must hold one target per sample (N, ...), got a 0-D array")
        if len(y) != len(x):
            raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")
        out_shape = tuple(self.forward(self._put(x[:1]), training=False).shape[1:])
        return x, self._require_loss().prepare_target(y, out_shape)

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, callbacks=(), verbose: int = 1, seed=None,
            optimizer=None, loss=None) -> History:
        """Mini-batch training; returns a History (loss, accuracy, val_loss, val_accuracy per epoch)."""
        from ..optim import SGD

        epochs, batch_size, validation_split, validation_data, shuffle, callbacks, verbose, seed = \
            _args.check_fit_args(epochs, batch_size, validation_split, validation_data, shuffle, callbacks,
                                 verbose, seed)
        self.compile(optimizer, loss)
        loss_fn = self._require_loss()
        if y is None:
            raise TypeError("y must be an array of targets, got None (fit needs the targets)")
        if self.optimizer is None:
            self.optimizer = SGD(self.parameters(), lr=0.01)
        x, t = self._check_xy(x, y)
        self.input_shape = tuple(x.shape[1:])
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (x_val, y_val)")
            x_val, y_val = validation_data
        elif validation_split > 0:
            n_val = int(round(len(x) * validation_split))
            if not 0 < n_val < len(x):
                raise ValueError(f"validation_split={validation_split} leaves {n_val} of {len(x)} samples "
                                 f"for validation")
            x, x_val, t, y_val = x[:-n_val], x[-n_val:], t[:-n_val], t[-n_val:]
        else:
            x_val = y_val = None

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
        for epoch in range(epochs):
            for cb in callbacks:  # optional hook (LearningRateScheduler sets the epoch's lr here)
                if callable(getattr(cb, "on_epoch_begin", None)):
                    cb.on_epoch_begin(self, epoch, {})
            t0 = time.perf_counter()
            order = rng.permutation(n) if shuffle else np.arange(n)
            total_loss, total_correct, seen, has_acc = 0.0, 0, 0, False
            bar = None
            if use_bar:
                from tqdm.auto import tqdm

                bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=True,
                           file=sys.stderr, dynamic_ncols=True)
            for b in range(n_batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, tb = self._put(x[idx]), self._put_target(t[idx])
                out = self.forward(xb, training=True)
                lval = loss_fn(out, tb)
                self.backward(loss_fn.backward(), need_input_grad=False)
                self.optimizer.step()
                nb = len(idx)
                total_loss += float(lval) * (nb if loss_fn.reduction == "mean" else 1)
                c = loss_fn.correct(out, tb)
                has_acc = c is not None
                if has_acc:
                    total_correct += int(c)
                seen += nb
                if bar is not None:
                    post = {"loss": f"{total_loss / seen:.4f}"}
                    if c is not None:
                        post["acc"] = f"{total_correct / seen:.4f}"
                    bar.set_postfix(post, refresh=False)
                    bar.update(1)
            logs = {"loss": total_loss / seen,
                    "accuracy": total_correct / seen if has_acc else None}
            if x_val is not None:
                val = self.evaluate(x_val, y_val, batch_size=max(batch_size, 256), _prepared=validation_data is None)
                logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
            if bar is not None:
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if v is not None})
                bar.close()
            elif verbose:
                parts = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if v is not None)
                print(f"epoch {epoch + 1}/{epochs}: {parts} ({time.perf_counter() - t0:.1f} s)", flush=True)
            history.append(epoch, logs)
            for cb in callbacks:
                cb.on_epoch_end(self, epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end(self)
        return history

    def evaluate(self, x, y, batch_size: int = 256, _prepared: bool = False) -> dict:
        """{'loss': mean loss per sample, 'accuracy': fraction correct (None for regression)}."""
        loss_fn = self._require_loss()
        batch_size = _args.as_size(batch_size, "batch_size", minimum=1)
        if _prepared:
            x, t = np.asarray(x, dtype=np.float32), y
        else:
            if y is None:
                raise TypeError("y must be an array of targets, got None (evaluate needs the targets)")
            x, t = self._check_xy(x, y)
        total_loss, total_correct, has_acc = 0.0, 0, True
        for s in range(0, len(x), batch_size):
            xb, tb = self._put(x[s:s + batch_size]), self._put_target(t[s:s + batch_size])
            out = self.forward(xb, training=False)
            lval = float(loss_fn(out, tb))
            total_loss += lval * (len(xb) if loss_fn.reduction == "mean" else 1)
            c = loss_fn.correct(out, tb)
            has_acc = c is not None
            if has_acc:
                total_correct += int(c)
        return {"loss": total_loss / len(x), "accuracy": total_correct / len(x) if has_acc else None}

    def predict(self, x, batch_size: int = 256):
        """The model's outputs (raw logits for classifiers) in eval mode; NumPy in, NumPy out."""
        was_numpy = not _backend.is_cupy_array(x)
        batch_size = _args.as_size(batch_size, "batch_size", minimum=1)
        x = _args.as_samples(x, "x", allow_empty=True)
        outs = [_to_numpy(self.forward(self._put(x[s:s + batch_size]), training=False))
                for s in range(0, len(x), batch_size)]
        if outs:
            out = np.concatenate(outs)
        else:  # no samples: the output shape of one (zero) sample, with N = 0
            one = self.forward(self._put(np.zeros((1,) + x.shape[1:], np.float32)), training=False)
            out = np.zeros((0,) + tuple(one.shape[1:]), np.float32)
        return out if was_numpy else to_device(out, "cuda")

    # --- description ----------------------------------------------------------------------------
    def summary(self, input_shape=None, print_fn=print) -> str:
        """A table of layers, output shapes and parameter counts (needs the per-sample input shape,
        given here, to the constructor, or remembered from fit)."""
        shape = _shape_arg(input_shape, "input_shape") if input_shape is not None else self.input_shape
        rows = []
        if shape is not None:
            x = self._put(np.zeros((1,) + tuple(shape), np.float32))
            for i, layer in enumerate(self.layers):
                x = layer.forward(x, training=False)
                rows.append((i, layer, "(N, " + ", ".join(str(s) for s in x.shape[1:]) + ")"))
        else:
            rows = [(i, layer, "?") for i, layer in enumerate(self.layers)]
        head = f"{'#':>3}  {'layer':<44} {'output shape':<20} {'params':>10}"
        lines = [head, "-" * len(head)]
        for i, layer, out in rows:
            desc = layer.describe()
            frozen = "" if layer.trainable else "  (frozen)"
            lines.append(f"{i:>3}  {desc:<44} {out:<20} {layer.num_parameters():>10,}{frozen}")
        lines.append("-" * len(head))
        total, trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        lines.append(f"input shape: {'(N, ' + ', '.join(map(str, shape)) + ')' if shape else 'unknown'}")
        lines.append(f"parameters: {total:,} total, {trainable:,} trainable, {total - trainable:,} frozen")
        if self.loss is not None:
            lines.append(f"loss: {self.loss!r}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    # --- persistence ----------------------------------------------------------------------------
    def save(self, path):
        """One .npz: format version, the architecture (JSON) and every parameter array."""
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError(f"path must be a file name (str or os.PathLike), got {type(path).__name__} {path!r}")
        arrays = {f"param_{i}": _to_numpy(p.data) for i, p in enumerate(self.parameters())}
        buffers = list(self.named_buffers())
        arrays.update({f"buffer_{i}": _to_numpy(owner._buffers[name]) for i, (_, owner, name) in enumerate(buffers)})
        config = {"model": _layer_to_config(self),
                  "loss": None if self.loss is None else {"class": type(self.loss).__name__,
                                                          "config": self.loss.get_config()},
                  "input_shape": self.input_shape,
                  "param_names": [n for n, _ in self.named_parameters()],
                  "buffer_names": [n for n, _, _ in buffers]}
        with open(path, "wb") as fh:  # a file object keeps numpy from appending .npz to the name
            np.savez_compressed(fh, format_version=np.array(FORMAT_VERSION), config=np.array(json.dumps(config)),
                                **arrays)

    @classmethod
    def load(cls, path) -> Sequential:
        return load_model(path)

    def load_torch_state_dict(self, state_dict, strict: bool = True):
        """Copy weights from a PyTorch state_dict with the same layer order and layouts (conv
        (K, C, R, S), linear (out, in)). Buffers (BatchNorm statistics) are not supported."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict must be a mapping of names to tensors (model.state_dict()), "
                            f"got {type(state_dict).__name__}")
        items = [(k, v) for k, v in state_dict.items() if not str(k).endswith("num_batches_tracked")]
        params = self.parameters()
        if strict and len(items) != len(params):
            raise ValueError(f"state_dict has {len(items)} tensors ({', '.join(k for k, _ in items)}) but the "
                             f"model has {len(params)} parameters")
        for (key, value), p in zip(items, params):
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            try:
                value = np.ascontiguousarray(value, dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise TypeError(f"state_dict[{key!r}] must be a numeric tensor or array, got "
                                f"{type(value).__name__} ({e})") from None
            if value.shape != p.shape:
                raise ValueError(f"state_dict[{key!r}] has shape {value.shape}, the model's parameter "
                                 f"{p.name!r} has shape {p.shape}")
            p.data = to_device(value, self.device) if self.device == "cuda" else value
        return self


def _shape_arg(shape, name: str) -> tuple:
    """A per-sample shape: a tuple/list of sizes >= 1."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of sizes (the shape of one sample), got {type(shape).__name__} "
                        f"{shape!r}")
    return tuple(_args.as_size(d, name, minimum=1) for d in shape)


def _layer_to_config(layer: Layer) -> dict:
    d = {"class": type(layer).__name__, "config": layer.get_config(), "trainable": layer.trainable}
    if isinstance(layer, Sequential):
        d["layers"] = [_layer_to_config(child) for child in layer.layers]
    elif isinstance(layer, _layers.Residual):
        d["body"] = _layer_to_config(layer.body)
        d["projection"] = None if layer.projection is None else _layer_to_config(layer.projection)
    return d


def _layer_from_config(d: dict) -> Layer:
    name = d["class"]
    if name == "Sequential":
        layer = Sequential([_layer_from_config(c) for c in d["layers"]])
    elif name == "Residual":
        proj = None if d["projection"] is None else _layer_from_config(d["projection"])
        cfg = d["config"]
        layer = _layers.Residual(_layer_from_config(d["body"]), cfg["in_channels"], cfg["out_channels"],
                                 cfg["stride"], projection=proj)
    else:
        cls = getattr(_layers, name, None)
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
    return layer


class _ModelFileError(ValueError):
    """A model-file problem load_model already described (passed through unchanged)."""


def load_model(path) -> Sequential:
    """Load a model written by Sequential.save (architecture, weights, loss).

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


def _load_model(path) -> Sequential:
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
        cls = getattr(_losses, config["loss"]["class"], None)
        if not (isinstance(cls, type) and issubclass(cls, _losses.Loss)):
            raise _ModelFileError(f"{path}: unknown loss class {config['loss']['class']!r} in the saved model")
        model.loss = cls(**config["loss"]["config"])
    if config.get("input_shape"):
        model.input_shape = tuple(config["input_shape"])
    return model
