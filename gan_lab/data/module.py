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
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_lab.data.base import Labelled, Source


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
        if self.size is None:  # a law: the positions themselves (plain Python, ~10 µs less per batch)
            return [p for m in range(first, first + self.k) for p in range(m * b * w + self.rank * b,
                                                                             m * b * w + self.rank * b + b)]
        offsets = torch.arange(b)
        pos = torch.cat([(m * b * w + self.rank * b) + offsets for m in range(first, first + self.k)])
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


def _flipped(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) with the samples where ``flip`` holds mirrored left to right."""
    return torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


class Mirrored(Source):
    """``train.mirror``: a set of 2N images, position i < N image i, position N + i image i flipped left to right
    (StyleGAN2-ADA's and R3GAN's ``--mirror``: the training stream draws from both halves)."""

    def __init__(self, source: Source):
        self.source, self.spec, self.size = source, source.spec, 2 * source.size
        self.labels = None if source.labels is None else torch.cat([source.labels, source.labels])

    @staticmethod
    def locate(positions: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(the image each of 2·``size`` positions shows, whether it is flipped)."""
        return positions % size, positions >= size

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        images, flip = self.locate(torch.as_tensor(positions, dtype=torch.long), self.source.size)
        return _flipped(self.source.__getitems__(images.tolist()), flip)


class _Positions(Dataset):
    """The on-device path's loader yields only the minibatch's dataset indices (a LongTensor)."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        return torch.as_tensor(positions, dtype=torch.long)


ON_DEVICE_LIMIT = 1024**3  # on_device=auto: in-memory sets up to 1 GiB as stored there (MNIST 55 MB, CIFAR-10
# 154 MB as uint8; sets that are not 8-bit are stored as float32)


def _decode(codes: torch.Tensor) -> torch.Tensor:
    """8-bit codes → the lab's pixel values in [-1, 1] (every 8-bit source stores q / 127.5 − 1)."""
    return codes.float() / 127.5 - 1.0


def eight_bit(data: torch.Tensor) -> torch.Tensor | None:
    """``data`` as uint8 codes when :func:`_decode` gives it back bit for bit (8-bit images), else None."""
    if data.dtype != torch.float32:
        return None
    codes = ((data + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return codes if torch.equal(_decode(codes).view(torch.int32), data.view(torch.int32)) else None  # bits, ±0


class GANDataModule(L.LightningDataModule):
    """Serves the training stream of a :class:`Source`; rank and world size come from the trainer.

    ``on_device``: a set held in memory (``source.data``) is copied once to the training device (8-bit images as
    uint8, decoded per minibatch) and each minibatch is gathered there from indices, skipping the DataLoader's
    host-to-device copies (``auto``: when the set takes at most 1 GiB there). Other sources (toy laws, image files)
    go through the DataLoader, with ``num_workers`` processes decoding in parallel, into pinned memory on a GPU.
    Both paths serve the same minibatches.
    ``labelled``: each minibatch is (images, labels), for class-conditional models. ``channels_last``: image
    minibatches arrive in NHWC memory layout (``train.channels_last``). ``mirror``: the stream draws from the set
    and its left-right flips (:class:`Mirrored`; on the device, positions N and up gather image i − N, flipped).
    """

    def __init__(self, source: Source, batch_size: int, k: int, iterations: int, seed: int,
                 start_iteration: int = 0, num_workers: int = 0, on_device: bool | str = "auto",
                 labelled: bool = False, channels_last: bool = False, mirror: bool = False):
        super().__init__()
        self.labelled, self.channels_last, self.mirror = labelled, channels_last, mirror
        self.source, self.batch_size, self.k = source, batch_size, k
        self.iterations, self.seed, self.start_iteration = iterations, seed, start_iteration
        self.num_workers = num_workers
        data = getattr(source, "data", None)
        # 8-bit images are kept on the device as uint8 (4x less memory) and decoded per minibatch, bit for bit
        self._codes = eight_bit(data) if on_device and data is not None and source.spec.is_image else None
        stored = self._codes if self._codes is not None else data
        if on_device == "auto":
            on_device = data is not None and stored.numel() * stored.element_size() <= ON_DEVICE_LIMIT
        on_device = on_device and data is not None  # true with data not in memory: the rulebook refuses it
        self.on_device = bool(on_device)
        self._device_data: torch.Tensor | None = None
        self._device_labels: torch.Tensor | None = None

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        source = Mirrored(self.source) if self.mirror else self.source
        sampler = IterationBatchSampler(source.size, self.batch_size, self.k, self.seed,
                                        self.start_iteration, self.iterations, rank, world)
        if self.on_device:
            return DataLoader(_Positions(source.size), batch_sampler=sampler, collate_fn=_as_is)
        cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return DataLoader(Labelled(source) if self.labelled else source, batch_sampler=sampler,
                          collate_fn=_as_is, pin_memory=cuda,  # pinned host batches: an asynchronous copy
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def transfer_batch_to_device(self, batch: torch.Tensor, device: torch.device, dataloader_idx: int):
        """A minibatch tensor takes one ``to`` (Lightning's default walks a collection)."""
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=device.type != "cpu")
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: torch.Tensor, dataloader_idx: int) -> torch.Tensor:
        if self.on_device:
            if self._device_data is None or self._device_data.device != batch.device:
                stored = self._codes if self._codes is not None else self.source.data
                self._device_data = stored.to(batch.device)  # once per run and rank
                if self.labelled:
                    self._device_labels = self.source.labels.to(batch.device)
            batch, flip = Mirrored.locate(batch, self.source.size) if self.mirror else (batch, None)
            x = self._device_data[batch]
            x = _decode(x) if self._codes is not None else x
            x = _flipped(x, flip) if flip is not None else x
            batch = (x, self._device_labels[batch]) if self.labelled else x
        if not self.channels_last:
            return batch
        x, *rest = batch if isinstance(batch, (tuple, list)) else (batch,)
        x = x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
        return (x, *rest) if rest else x
