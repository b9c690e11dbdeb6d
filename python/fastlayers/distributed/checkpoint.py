"""Checkpoints that resume on any number of ranks.

A checkpoint holds only global state: the model (its save() file, embedded), the optimizer's class,
settings and per-parameter state, the number of epochs done and the learning-rate schedules'
counters. Nothing in it depends on the world size: data-parallel fit shuffles from the seed and the
epoch (the permutations are those of a single-process run), so a run resumed from epoch k on a
different number of ranks takes the same steps as an uninterrupted one.

    ckpt = fl.distributed.Checkpoint("run.ckpt", schedulers=[sched])   # a callback: after each epoch
    model.fit(x, y, epochs=10, distributed=True, optimizer=opt, callbacks=[sched, ckpt], seed=0)
    ...
    state = fl.distributed.load_checkpoint("run.ckpt")                 # on every rank
    sched = fl.optim.ExponentialLR(state.optimizer, 0.7); state.restore(sched)
    state.model.fit(x, y, epochs=10, distributed=True, optimizer=state.optimizer, callbacks=[sched],
                    seed=0, initial_epoch=state.epoch)

Only rank 0 writes (fastlayers._primary.is_primary()), to a temporary file renamed into place, so
a job killed while writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import inspect
import io
import json
import os

import numpy as np

from .. import _backend
from .._primary import is_primary
from ..nn.callbacks import Callback

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointState"]

_FORMAT = 1


def _host(a):
    return a.get() if _backend.is_cupy_array(a) else np.asarray(a)


def _optimizer_config(opt) -> dict:
    sig = inspect.signature(type(opt).__init__)
    cfg = {}
    for name in list(sig.parameters)[2:]:  # self, params
        if hasattr(opt, name):
            v = getattr(opt, name)
            if isinstance(v, (bool, int, float, str)) or v is None:
                cfg[name] = v
    return cfg


def save_checkpoint(path, model, optimizer=None, epoch: int = 0, schedulers=()) -> bool:
    """Write a checkpoint (rank 0 only; returns whether this process wrote it)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name, got {type(path).__name__}")
    if not is_primary():
        return False
    tmp_model = f"{os.fspath(path)}.model{os.getpid()}.npz"
    try:
        model.save(tmp_model)  # (save takes a file name)
        with open(tmp_model, "rb") as fh:
            arrays = {"model": np.frombuffer(fh.read(), np.uint8)}
    finally:
        if os.path.exists(tmp_model):
            os.remove(tmp_model)
    meta = {"format": _FORMAT, "epoch": int(epoch), "optimizer": None, "schedulers": []}
    if optimizer is not None:
        index = {id(p): i for i, p in enumerate(model.parameters())}
        state = {}
        for k, st in optimizer.state.items():
            if k not in index:
                continue
            entry = {}
            for name, v in st.items():
                if hasattr(v, "shape"):
                    arrays[f"opt_{index[k]}_{name}"] = _host(v)
                    entry[name] = "array"
                else:
                    entry[name] = v
            state[str(index[k])] = entry
        meta["optimizer"] = {"class": type(optimizer).__name__, "config": _optimizer_config(optimizer),
                             "lr": float(optimizer.lr), "state": state}
    for s in schedulers:
        meta["schedulers"].append({"class": type(s).__name__, "base_lr": float(s.base_lr), "t": int(s.t)})
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return True


class CheckpointState:
    """What load_checkpoint returns: .model, .optimizer (or None), .epoch (epochs done), and
    restore(*schedulers) to set the schedules' counters as they were."""

    def __init__(self, model, optimizer, epoch, schedulers):
        self.model, self.optimizer, self.epoch, self._schedulers = model, optimizer, epoch, schedulers

    def restore(self, *schedulers):
        if len(schedulers) != len(self._schedulers):
            raise ValueError(f"the checkpoint holds {len(self._schedulers)} learning-rate schedules, got "
                             f"{len(schedulers)}")
        for s, saved in zip(schedulers, self._schedulers):
            if type(s).__name__ != saved["class"]:
                raise ValueError(f"schedule {type(s).__name__} given where the checkpoint has {saved['class']}")
            s.base_lr, s.t = saved["base_lr"], saved["t"]  # the optimizer's lr came with the checkpoint
        return self


def load_checkpoint(path, device: str = "cpu") -> CheckpointState:
    """Read a checkpoint written by save_checkpoint / Checkpoint (on any number of ranks)."""
    from .. import optim
    from ..nn.training import load_model

    with np.load(path, allow_pickle=False) as z:
        if "meta" not in z.files or "model" not in z.files:
            raise ValueError(f"{path}: not a fastlayers.distributed checkpoint")
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: checkpoint format {meta.get('format')} is not supported (this reads {_FORMAT})")
        model = load_model(io.BytesIO(z["model"].tobytes()))
        if device != "cpu":
            model.to(device)
        opt = None
        if meta["optimizer"] is not None:
            o = meta["optimizer"]
            cls = getattr(optim, o["class"], None)
            if not (isinstance(cls, type) and issubclass(cls, optim.Optimizer)):
                raise ValueError(f"{path}: unknown optimizer class {o['class']!r}")
            opt = cls(model.parameters(), **o["config"])
            opt.lr = o["lr"]
            params = model.parameters()
            for i, entry in o["state"].items():
                p = params[int(i)]
                xp = _backend.array_module(p.data)
                opt.state[id(p)] = {name: (xp.asarray(z[f"opt_{i}_{name}"]) if v == "array" else v)
                                    for name, v in entry.items()}
        return CheckpointState(model, opt, int(meta["epoch"]), meta["schedulers"])


class Checkpoint(Callback):
    """A fit callback: after every `every` epochs (and at the end), rank 0 writes model, optimizer,
    epochs done and the given schedules' counters to `path`."""

    def __init__(self, path, every: int = 1, schedulers=()):
        from ..nn._args import as_size

        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file name, got {type(path).__name__}")
        self.path, self.every, self.schedulers = path, as_size(every, "every", minimum=1), list(schedulers)
        self.epochs_done = 0

    def on_epoch_end(self, model, epoch, logs):
        self.epochs_done = epoch + 1
        if self.epochs_done % self.every == 0:
            save_checkpoint(self.path, model, model.optimizer, self.epochs_done, self.schedulers)
