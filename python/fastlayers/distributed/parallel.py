"""DataParallel: data-parallel training of a Sequential or graph Model, one process per rank.

    # train.py, started with: mpiexec -n 4 python train.py
    import fastlayers as fl
    model = fl.nn.models.mnist_cnn(seed=0)
    opt = fl.optim.SGD(model.parameters(), lr=0.04, momentum=0.9)
    model.fit(x, y, epochs=5, batch_size=256, optimizer=opt, distributed=True)   # or:
    dp = fl.distributed.DataParallel(model); dp.fit(x, y, epochs=5, batch_size=256, optimizer=opt)

Semantics (the single-process run is the reference):
- `batch_size` is the GLOBAL batch (all ranks together), so the same command on 1, 2 or N ranks
  takes the same steps: every rank draws the same permutation of the training set from `seed` (as a
  single-process fit does, epoch after epoch), each global batch is cut into one contiguous shard
  per rank (sizes differ by at most one; see sampler.shard), and the gradients are averaged with
  each rank weighted by its share, so the parameters equal the single-process ones to float32
  reduction tolerance (PyTorch's DDP takes a per-process batch size instead; multiply by the world
  size to compare).
- At the start of fit, rank 0's parameters, buffers, learning rate and optimizer state are broadcast
  to every rank; buffers (batch-norm running statistics, per rank while training unless
  sync_batchnorm=True) are broadcast from rank 0 again at the end of every epoch, so evaluation and
  saving see rank 0's.
- Gradients travel in buckets during backward (reducer.Reducer); frozen parameters are not sent.
- Loss and accuracy are summed over ranks, so every rank's History holds the global figures;
  callbacks therefore decide alike, and the stop flag (early stopping) is rank 0's on every rank.
  Only rank 0 prints and shows a progress bar; files go through fastlayers._primary.is_primary().
- An exception on one rank prints its traceback and aborts the whole job (MPI_Abort), never a hang.
- Dropout draws its mask from the layer's seed and the element's index within the rank's shard,
  so masks differ from a single-process run (and ranks' masks at the same local position agree, as
  with one torch.manual_seed on every rank).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .. import _backend
from ..nn import _args
from ..nn.callbacks import History
from . import _comm
from .collectives import broadcast, broadcast_object
from ._comm import S
from .reducer import Reducer
from .sampler import shard

__all__ = ["DataParallel", "broadcast_parameters", "broadcast_optimizer_state"]


def _to_host(a):
    return a.get() if _backend.is_cupy_array(a) else a


def broadcast_parameters(model, root: int = 0) -> None:
    """Every rank gets root's parameters and buffers (in place; the architecture must agree)."""
    _comm.ensure_init()
    if S.world_size == 1:
        return
    shapes = [tuple(p.shape) for p in model.parameters()]
    root_shapes = broadcast_object(shapes, root)
    if root_shapes != shapes:
        raise ValueError(f"the model differs between ranks: rank {S.rank} has parameter shapes {shapes}, "
                         f"rank {root} {root_shapes}")
    for p in model.parameters():
        if not p.data.flags.c_contiguous:
            p.data = _backend.array_module(p.data).ascontiguousarray(p.data)
        broadcast(p.data, root)
    for _, owner, name in model.named_buffers():
        buf = owner._buffers[name]
        if not buf.flags.c_contiguous:
            buf = owner._buffers[name] = _backend.array_module(buf).ascontiguousarray(buf)
        broadcast(buf, root)


def broadcast_optimizer_state(optimizer, root: int = 0) -> None:
    """Every rank gets root's learning rate and per-parameter state (momentum, Adam moments, step)."""
    _comm.ensure_init()
    if S.world_size == 1 or optimizer is None:
        return
    index = {id(p): i for i, p in enumerate(optimizer.params)}
    mine = {"lr": optimizer.lr,
            "state": {index[k]: {n: (_to_host(v) if hasattr(v, "shape") else v) for n, v in st.items()}
                      for k, st in optimizer.state.items() if k in index}}
    theirs = broadcast_object(mine if S.rank == root else None, root)
    optimizer.lr = theirs["lr"]
    optimizer.state.clear()
    for i, st in theirs["state"].items():
        p = optimizer.params[i]
        xp = _backend.array_module(p.data)
        optimizer.state[id(p)] = {n: (xp.asarray(v) if hasattr(v, "shape") else v) for n, v in st.items()}


class DataParallel:
    """Wraps a model (Sequential or nn.Model) for data-parallel training over the ranks of
    fastlayers.distributed (see the module's docstring for the semantics). Attributes not defined
    here (evaluate's metrics aside: predict, summary, layers, ...) are the model's."""

    def __init__(self, model, bucket_cap_mb: float = 4.0, sync_batchnorm: bool = False, overlap: bool = True):
        from ..nn.training import TrainableModel

        if not isinstance(model, TrainableModel):
            raise TypeError(f"model must be a fastlayers model (Sequential or nn.Model), got {type(model).__name__}")
        self.bucket_cap_mb = _args.as_real(bucket_cap_mb, "bucket_cap_mb", 0.0, 1e6, lo_open=True)
        self.overlap = _args.as_flag(overlap, "overlap")  # False: reduce after backward (for comparison)
        _comm.ensure_init()
        self.sync_batchnorm = _args.as_flag(sync_batchnorm, "sync_batchnorm")
        if self.sync_batchnorm:
            try:
                from . import sync_bn  # noqa: F401
            except ImportError as e:
                raise RuntimeError(f"sync_batchnorm=True needs fastlayers' batch norm layers, which this "
                                   f"installation lacks ({e})") from None
        self.model = model
        self.stats = {}
        try:
            broadcast_parameters(model)
        except BaseException as e:
            _comm.abort_on_exception(e)
            raise

    def __getattr__(self, name):
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    @property
    def rank(self) -> int:
        return S.rank

    @property
    def world_size(self) -> int:
        return S.world_size

    # --- training -------------------------------------------------------------------------------
    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, callbacks=(), verbose: int = 1, seed=None,
            optimizer=None, loss=None, initial_epoch: int = 0) -> History:
        """TrainableModel.fit over all ranks; batch_size is the global batch. initial_epoch (as in
        Keras) resumes a run: the shuffling continues as if epochs 0..initial_epoch-1 had run."""
        try:
            return self._fit(x, y, epochs, batch_size, validation_split, validation_data, shuffle, callbacks,
                             verbose, seed, optimizer, loss, initial_epoch)
        except BaseException as e:  # one failing rank must not leave the others in a collective
            if not isinstance(e, KeyboardInterrupt):
                _comm.abort_on_exception(e)
            raise

    def _fit(self, x, y, epochs, batch_size, validation_split, validation_data, shuffle, callbacks, verbose, seed,
             optimizer, loss, initial_epoch):
        from ..nn.training import _report_epoch

        model = self.model
        epochs, batch_size, validation_split, validation_data, shuffle, callbacks, verbose, seed = \
            _args.check_fit_args(epochs, batch_size, validation_split, validation_data, shuffle, callbacks,
                                 verbose, seed)
        initial_epoch = _args.as_size(initial_epoch, "initial_epoch", minimum=0)
        if initial_epoch >= epochs:
            raise ValueError(f"initial_epoch={initial_epoch} must be < epochs={epochs}")
        loss_fn, x, t, x_val, y_val = model._fit_setup(x, y, optimizer, loss, validation_split, validation_data)
        n = len(x)
        lens = broadcast_object(n)
        if lens != n:
            raise ValueError(f"every rank must pass the whole training set (the same x, y): rank {S.rank} has {n} "
                             f"samples, rank 0 {lens}")

        # The same shuffling on every rank: rank 0's seed (drawn from its generator if need be).
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(2**63))
        if seed is None and S.world_size > 1:
            seed = int(np.random.SeedSequence().entropy % 2**63)
        seed = broadcast_object(seed)
        rng = np.random.default_rng(seed)
        if shuffle:
            for _ in range(initial_epoch):  # resume: the permutations a run from epoch 0 would have drawn
                rng.permutation(n)

        broadcast_parameters(model)
        broadcast_optimizer_state(model.optimizer)
        primary = S.rank == 0
        verbose = verbose if primary else 0
        history = History()
        model.stop_training = False
        model._has_validation = x_val is not None
        for cb in callbacks:
            cb.on_train_begin(model)
        n_batches = (n + batch_size - 1) // batch_size
        use_bar = verbose == 1 and sys.stderr.isatty()
        from ..nn._device_metrics import Batches, Totals

        batches = Batches(x, t, model._put, model._put_target, model.device)
        sbn = None
        if self.sync_batchnorm:
            from . import sync_bn as sbn

            sbn.convert_sync_batchnorm(model)  # for this fit; reverted below
        reducer = Reducer(model.parameters(), self.bucket_cap_mb)
        reducer.overlap = self.overlap
        reducer.skew_barrier = bool(getattr(self, "_skew_barrier", False))  # benchmarks/scaling.py
        weight_mean = loss_fn.reduction == "mean"
        step_s = 0.0
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in callbacks:  # the same hook, and call, as TrainableModel.fit's
                    if callable(getattr(cb, "on_epoch_begin", None)):
                        cb.on_epoch_begin(model, epoch, {})
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
                    lo, hi = shard(start, stop, S.rank, S.world_size)
                    ts = time.perf_counter()
                    if hi > lo:
                        weight = (hi - lo) / (stop - start) if weight_mean else 1.0
                        if sbn is not None:
                            sbn.G.weight = weight
                        xb, tb = batches.batch(lo, hi)
                        out = model.forward(xb, training=True)
                        lval = loss_fn(out, tb)
                        reducer.start_step(weight)
                        model.backward(loss_fn.backward(), need_input_grad=False)
                        reducer.finish()
                        totals.add(lval, hi - lo, loss_fn.reduction, loss_fn.correct(out, tb))
                    else:
                        if sbn is not None:
                            sbn.idle_step(model)
                        reducer.zero_step()
                    model.optimizer.step()
                    step_s += time.perf_counter() - ts
                    if bar is not None:
                        bar.update(1)
                logs = self._epoch_logs(totals, n)
                if x_val is not None:
                    val = self.evaluate(x_val, y_val, batch_size=max(batch_size, 256),
                                        _prepared=validation_data is None)
                    logs["val_loss"], logs["val_accuracy"] = val["loss"], val["accuracy"]
                self._sync_buffers()
                _report_epoch(bar, verbose, logs, f"epoch {epoch + 1}/{epochs}",
                              f"{time.perf_counter() - t0:.1f} s, {S.world_size} ranks")
                history.append(epoch, logs)
                for cb in callbacks:
                    cb.on_epoch_end(model, epoch, logs)
                model.stop_training = bool(broadcast_object(bool(model.stop_training)))  # rank 0 decides
                if model.stop_training:
                    break
            for cb in callbacks:
                cb.on_train_end(model)
        finally:
            reducer.detach()
            if sbn is not None:
                sbn.revert_sync_batchnorm(model)
            self.stats = {"steps": reducer.steps, "step_s": step_s, "wait_s": reducer.wait_s, "skew_s": reducer.skew_s,
                          "buckets": len(reducer.buckets), "bytes_per_step": reducer.bytes_per_step}
        return history

    def _epoch_logs(self, totals, n: int) -> dict:
        loss_sum, correct = totals.result()
        has_acc = totals.has_accuracy
        if S.world_size > 1:
            both = np.array([loss_sum, float(correct), float(has_acc)], np.float64)
            S.comm.Allreduce(S.MPI.IN_PLACE, both, op=S.MPI.SUM)
            both = broadcast(both)  # rank 0's bits everywhere: the same decisions on every rank
            loss_sum, correct, has_acc = float(both[0]), int(round(both[1])), both[2] > 0
        return {"loss": loss_sum / n, "accuracy": correct / n if has_acc else None}

    def _sync_buffers(self) -> None:
        if S.world_size > 1:
            for _, owner, name in self.model.named_buffers():
                broadcast(owner._buffers[name])

    # --- evaluation and persistence ---------------------------------------------------------------
    def evaluate(self, x, y, batch_size: int = 256, _prepared: bool = False) -> dict:
        """The model's evaluate over all ranks: each rank evaluates a contiguous shard of x and the
        sums are reduced, so every rank returns the metrics of the whole set."""
        try:
            return self._evaluate(x, y, batch_size, _prepared)
        except BaseException as e:
            if not isinstance(e, KeyboardInterrupt):
                _comm.abort_on_exception(e)
            raise

    def _evaluate(self, x, y, batch_size, _prepared):
        from ..nn._device_metrics import Totals
        from ..nn.training import inference

        model = self.model
        loss_fn = model._require_loss()
        batch_size = _args.as_size(batch_size, "batch_size", minimum=1)
        if _prepared:
            x, t = model._as_input(x), y
        else:
            if y is None:
                raise TypeError("y must be an array of targets, got None (evaluate needs the targets)")
            x, t = model._check_xy(x, y)
        lo, hi = shard(0, len(x), S.rank, S.world_size)
        totals = Totals()
        with inference():
            for s in range(lo, hi, batch_size):
                e = min(s + batch_size, hi)
                xb, tb = model._put(x[s:e]), model._put_target(t[s:e])
                out = model.forward(xb, training=False)
                totals.add(loss_fn(out, tb), e - s, loss_fn.reduction, loss_fn.correct(out, tb))
        return self._epoch_logs(totals, len(x))

    def save(self, path) -> None:
        """Rank 0 saves the model (the others return at once; parameters agree on every rank)."""
        if S.rank == 0:
            self.model.save(path)
