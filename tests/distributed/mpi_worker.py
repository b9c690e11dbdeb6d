"""Run by tests/distributed/test_mpi.py under mpiexec (one process per rank); never collected by
pytest. Usage: python mpi_worker.py MODE OUTDIR [CHECKPOINT]

Modes:
- train:  the course CNN (mnist_cnn) trained data-parallel for 1 epoch of 20 global batches of 20
          (the last one of 2 samples: with 3 ranks one rank has none), SGD momentum 0.9, a
          learning-rate schedule, a Checkpoint callback, small buckets (several per step); every
          rank writes its parameters (rank<r>.npz) so the test can check they agree bit for bit.
- resume: load CHECKPOINT (written by a 'train' run on another number of ranks) and train epoch 2.
- raise:  rank 1 raises in the middle of training (the job must end, non-zero, traceback printed).
- kill:   rank 1 SIGKILLs itself in the middle of training (the job must end).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

import fastlayers as fl
from fastlayers import distributed as dist

N, BATCH, SEED = 382, 20, 3
LR, MOMENTUM, GAMMA = 0.02, 0.9, 0.5


def data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, N)
    return x, y


def build():
    model = fl.nn.models.mnist_cnn(seed=SEED)
    opt = fl.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    return model, opt


def bn_model():
    """A small CNN with batch norm (for SyncBatchNorm), or None where batch norm is missing."""
    if not hasattr(fl.nn, "BatchNorm2d"):
        return None
    rng = np.random.default_rng(11)
    return fl.nn.Sequential([fl.nn.Conv2d(1, 4, 5, stride=3, rng=rng), fl.nn.BatchNorm2d(4), fl.nn.ReLU(),
                             fl.nn.Flatten(), fl.nn.Linear(256, 16, rng=rng), fl.nn.BatchNorm1d(16), fl.nn.ReLU(),
                             fl.nn.Linear(16, 10, rng=rng)], loss="cross_entropy")


def bn_state(model):
    out = {f"p{i}": p.data for i, p in enumerate(model.parameters())}
    out.update({f"b{i}": owner._buffers[name] for i, (_, owner, name) in enumerate(model.named_buffers())})
    return out


def save_params(outdir, model, history=None):
    arrays = {f"p{i}": p.data for i, p in enumerate(model.parameters())}
    np.savez(os.path.join(outdir, f"rank{dist.rank()}.npz"), **arrays)
    if history is not None and dist.rank() == 0:
        with open(os.path.join(outdir, "history.json"), "w") as fh:
            json.dump({"loss": history["loss"], "accuracy": history["accuracy"],
                       "val_loss": history.history.get("val_loss")}, fh)


class Fail(fl.nn.callbacks.Callback):
    """Fails on rank 1 after the first epoch, while the others go on to their next collective."""

    def __init__(self, how):
        self.how = how

    def on_epoch_end(self, model, epoch, logs):
        if dist.rank() == 1:
            if self.how == "raise":
                raise RuntimeError("injected failure on rank 1")
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    mode, outdir = sys.argv[1], sys.argv[2]
    rank, world = dist.init()
    fl.set_num_threads(1)
    x, y = data()
    if mode == "train":
        model, opt = build()
        if rank != 0:  # rank 0's weights must win
            for p in model.parameters():
                p.data = p.data + 1.0
        sched = fl.optim.ExponentialLR(opt, GAMMA)
        ckpt = dist.Checkpoint(os.path.join(outdir, "ckpt.npz"), schedulers=[sched])
        h = dist.DataParallel(model, bucket_cap_mb=0.05).fit(
            x, y, epochs=1, batch_size=BATCH, optimizer=opt, callbacks=[sched, ckpt], seed=SEED, verbose=0)
        save_params(outdir, model, h)
        bn = bn_model()
        if bn is not None:  # SyncBatchNorm: the statistics of the global batch
            opt = fl.optim.SGD(bn.parameters(), lr=0.05, momentum=0.9)
            dist.DataParallel(bn, sync_batchnorm=True).fit(x, y, epochs=1, batch_size=BATCH, optimizer=opt,
                                                           seed=SEED, verbose=0)
            assert type(bn.layers[1]) is fl.nn.BatchNorm2d  # reverted after fit
            np.savez(os.path.join(outdir, f"bn_rank{rank}.npz"), **bn_state(bn))
    elif mode == "resume":
        state = dist.load_checkpoint(sys.argv[3])
        sched = fl.optim.ExponentialLR(state.optimizer, GAMMA)
        state.restore(sched)
        h = dist.DataParallel(state.model).fit(x, y, epochs=2, batch_size=BATCH, optimizer=state.optimizer,
                                               callbacks=[sched], seed=SEED, verbose=0, initial_epoch=state.epoch)
        save_params(outdir, state.model, h)
    elif mode in ("raise", "kill"):
        model, opt = build()
        model.fit(x[:80], y[:80], epochs=50, batch_size=BATCH, optimizer=opt, callbacks=[Fail(mode)], seed=SEED,
                  verbose=0, distributed=True)
        print("rank", rank, "finished training, which it must not", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
