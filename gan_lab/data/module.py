"""Minibatches as a pure function of (seed, iteration, rank).

One item of the training stream is one generator iteration of Algorithm 1: k real minibatches
(k D steps, plus K for an unrolled D when tricks.unroll_steps=K)
of ``batch_size`` stacked as (k·B, *shape). Minibatch m = iteration·k + j of rank r takes the
positions [m·B·W + r·B, … + B) of an endless stream; a finite set maps stream positions onto a
fresh permutation per epoch. Nothing depends on how many batches were drawn before, so a run
restarted at any iteration, on any number of ranks, sees exactly the data it would have seen.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from gan_lab.data.base import Source


class IterationBatchSampler(Sampler[list[int]]):
    """Yields, for iterations ``start .. stop-1``, the k·B dataset indices of this rank."""

    def __init__(self, size: int | None, batch_size: int, k: int, seed: int, start: int, stop: int,
                 rank: int = 0, world_size: int = 1):
        self.size, self.batch_size, self.k, self.seed = size, batch_size, k, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size
        self._perms: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:  # positions only move forward: keep the newest few
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perms[epoch] = torch.randperm(self.size, generator=g)
        return self._perms[epoch]

    def indices(self, iteration: int) -> list[int]:
        b, w = self.batch_size, self.world_size
        first = iteration * self.k
        offsets = torch.arange(b)
        pos = torch.cat([(m * b * w + self.rank * b) + offsets for m in range(first, first + self.k)])
        if self.size is None:
            return pos.tolist()
        epochs, within = pos // self.size, pos % self.size
        out = torch.empty_like(pos)
        for e in epochs.unique().tolist():
            sel = epochs == e
            out[sel] = self._permutation(e)[within[sel]]
        return out.tolist()

    def __iter__(self):
        for it in range(self.start, self.stop):
            yield self.indices(it)


def _as_is(batch: torch.Tensor) -> torch.Tensor:
    return batch


class GANDataModule(L.LightningDataModule):
    """Serves the training stream of a :class:`Source`; rank and world size come from the trainer."""

    def __init__(self, source: Source, batch_size: int, k: int, iterations: int, seed: int,
                 start_iteration: int = 0, num_workers: int = 0):
        super().__init__()
        self.source, self.batch_size, self.k = source, batch_size, k
        self.iterations, self.seed, self.start_iteration = iterations, seed, start_iteration
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = IterationBatchSampler(self.source.size, self.batch_size, self.k, self.seed,
                                        self.start_iteration, self.iterations, rank, world)
        return DataLoader(self.source, batch_sampler=sampler, collate_fn=_as_is,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
