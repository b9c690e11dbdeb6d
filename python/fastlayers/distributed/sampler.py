"""Which samples each rank reads.

`DistributedSampler` is PyTorch's (torch.utils.data.DistributedSampler) for people who write their
own loop: every rank draws the same permutation from (seed + epoch) — call set_epoch() each epoch —
and takes every num_replicas-th index from position `rank`. Without drop_last the permutation is
padded by repeating its first indices until it divides evenly (a few samples are then seen twice
per epoch, as in PyTorch); with drop_last the tail is dropped instead. The permutation comes from
NumPy's default_rng, not torch's randperm, so the orders differ from PyTorch's (the rules do not).

`shard(start, stop, rank, world_size)` is what fit(distributed=True) uses instead: the global batch
[start, stop) of the shared permutation, split into world_size contiguous shards whose sizes differ
by at most one (the first `(stop - start) % world_size` ranks take one more). Nothing is padded or
dropped, so every sample is seen exactly once per epoch, and the union of the shards is the batch a
single process would take: the gradient each rank contributes is weighted by its share of the
batch, so the average is the single-process gradient even for uneven shards (a rank may even have
no sample in a short last batch; it then contributes zeros).
"""

from __future__ import annotations

import math

import numpy as np

from ..nn._args import as_flag, as_size

__all__ = ["DistributedSampler", "shard"]


def shard(start: int, stop: int, rank: int, world_size: int) -> tuple[int, int]:
    """This rank's [lo, hi) of the global batch [start, stop) (contiguous, sizes differ by <= 1)."""
    n = stop - start
    base, extra = divmod(n, world_size)
    lo = start + rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class DistributedSampler:
    """Indices of one rank's part of a dataset of `num_samples` items (PyTorch's rules, above).

        sampler = DistributedSampler(len(x), seed=0)    # num_replicas, rank from fl.distributed
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for idx in sampler.batches(batch_size): ... x[idx] ...
    """

    def __init__(self, num_samples: int, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        from . import _comm

        if num_replicas is None or rank is None:
            _comm.ensure_init()
        self.dataset_size = as_size(num_samples, "num_samples", minimum=0)
        self.num_replicas = _comm.S.world_size if num_replicas is None else as_size(num_replicas, "num_replicas",
                                                                                     minimum=1)
        self.rank = _comm.S.rank if rank is None else as_size(rank, "rank", minimum=0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={self.num_replicas}), got {self.rank}")
        self.shuffle = as_flag(shuffle, "shuffle")
        if seed is None or isinstance(seed, np.random.Generator):
            raise TypeError(f"seed must be an int (every rank must draw the same permutation), got "
                            f"{type(seed).__name__}")
        self.seed = as_size(seed, "seed", minimum=0)
        self.drop_last = as_flag(drop_last, "drop_last")
        self.epoch = 0
        n, r = self.dataset_size, self.num_replicas
        if self.drop_last and n % r:
            self.num_samples = math.ceil((n - r) / r)
        else:
            self.num_samples = math.ceil(n / r)
        self.total_size = self.num_samples * r

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of this epoch (the same on every rank for the same seed and epoch)."""
        self.epoch = as_size(epoch, "epoch", minimum=0)

    def indices(self) -> np.ndarray:
        n = self.dataset_size
        if self.shuffle:
            idx = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            idx = np.arange(n)
        if not self.drop_last:
            pad = self.total_size - n
            if pad > 0:
                idx = np.concatenate([idx, np.resize(idx, pad)]) if n else idx
        else:
            idx = idx[:self.total_size]
        return idx[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def batches(self, batch_size: int, drop_last: bool = False):
        """This rank's indices in batches of batch_size (the local batch size, as a DataLoader's)."""
        batch_size = as_size(batch_size, "batch_size", minimum=1)
        idx = self.indices()
        stop = len(idx) - len(idx) % batch_size if drop_last else len(idx)
        for s in range(0, stop, batch_size):
            yield idx[s:s + batch_size]
