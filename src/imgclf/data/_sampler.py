"""ResumableSampler: a seeded epoch order that can start mid-epoch and shard across DDP ranks."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

_MASK = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (splitmix64 chain): nearby inputs give unrelated seeds.

    >>> mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(1, 0)
    True
    """
    h = 0
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK))
    return h >> 1


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, item_seed)`` in an order fixed by ``(seed, epoch)``; can skip into an epoch and shard.

    The epoch's global order is a ``torch.Generator`` permutation seeded from ``(seed, epoch)`` (identity when
    ``shuffle=False``; with ``balanced=True``, ``len(labels)`` draws with replacement weighted by 1/class count).
    For ``world_size > 1`` the order is padded to a multiple of ``world_size`` by repeating its start (like
    DistributedSampler) and rank ``r`` takes positions ``r::world_size``. ``item_seed`` depends only on
    ``(seed, epoch, position in the global order)``, so augmentation does not depend on workers or ranks.
    ``skip(n)`` makes the next iteration start after this rank's first ``n`` samples (for mid-epoch resume);
    it applies to one iteration only. ``len()`` is always this rank's full epoch.

    >>> s = ResumableSampler([0, 0, 1, 1], seed=1)
    >>> s.set_epoch(3); full = list(s); s.skip(2); list(s) == full[2:]
    True
    """

    def __init__(self, labels: Sequence[int], *, seed: int, shuffle: bool = True, balanced: bool = False,
                 rank: int = 0, world_size: int = 1) -> None:  # fmt: skip
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed, self.shuffle, self.balanced = int(seed), shuffle, balanced
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` from the next iteration on."""
        self.epoch = int(epoch)

    def skip(self, n: int) -> None:
        """Start the next iteration after the first ``n`` samples of this rank's order of the current epoch."""
        if n < 0:
            raise ValueError(f"skip({n}): n must be >= 0")
        self._skip = int(n)

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.world_size) if len(self.labels) else 0

    def global_order(self) -> list[int]:
        """The epoch's order over all ranks, padded to ``len(self) * world_size``."""
        n = len(self.labels)
        if n == 0:
            return []
        g = torch.Generator()
        g.manual_seed(mix_seed(self.seed, self.epoch))
        if self.balanced:
            counts = np.bincount(self.labels)
            weights = torch.as_tensor(1.0 / counts[self.labels], dtype=torch.float64)  # (N,)
            order = torch.multinomial(weights, n, replacement=True, generator=g).tolist()
        elif self.shuffle:
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        total = len(self) * self.world_size
        return (order * math.ceil(total / n))[:total]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start, self._skip = self._skip, 0
        order = self.global_order()
        positions = range(self.rank, len(order), self.world_size)[start:]
        seed, epoch = self.seed, self.epoch
        return ((order[p], mix_seed(seed, epoch, p)) for p in positions)
