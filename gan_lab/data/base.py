"""What every data source offers: its shape, and a way to fetch a minibatch by positions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class DataSpec:
    """Describes one sample. Models are sized from it, plots and metrics chosen by it."""

    name: str
    shape: tuple[int, ...]  # (D,) for points, (C, H, W) for images
    kind: str  # "points" or "image"
    # Images live in [-1, 1] (the generator ends in tanh); points are unbounded.
    eval_samples: int | None = None  # the evaluation's default sample count where a protocol fixes it
    # (Stacked MNIST: PacGAN's 26,000); None: 5,000 images or 2,500 points (gan_lab.measure.default_samples)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


class Source(Dataset):
    """A map-style dataset fetched a whole minibatch at a time (``__getitems__``).

    ``size`` is the number of examples of a finite set, or None for a law sampled afresh
    (the toy distributions): then the positions are only a counter that seeds the draw.
    """

    spec: DataSpec
    size: int | None = None
    labels: torch.Tensor | None = None  # (size,) class indices of a labelled set (model.conditional reads them)

    @property
    def num_classes(self) -> int:
        """The number of classes of a labelled set (0: no labels)."""
        return 0 if self.labels is None else int(self.labels.max()) + 1

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError(f"{self.spec.name} is a distribution, not a finite set")
        return self.size

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` real examples for plots and metrics, drawn with ``generator``."""
        raise NotImplementedError


def sample_positions(size: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n positions of a set of ``size`` examples for plots and metrics: distinct when n ≤ size, else with repeats."""
    if n <= size:
        return torch.randperm(size, generator=generator)[:n]
    return torch.randint(size, (n,), generator=generator)


class TensorSource(Source):
    """A finite data set held in memory as one tensor (N, *shape).

    ``heldout``: real examples of the same law that training never sees (a test split, or a seeded
    holdout of the set), for held-out metrics such as the Parzen log-likelihood; None if there are none.
    """

    def __init__(self, data: torch.Tensor, spec: DataSpec, labels: torch.Tensor | None = None,
                 heldout: torch.Tensor | None = None, heldout_labels: torch.Tensor | None = None):
        if tuple(data.shape[1:]) != spec.shape:
            raise ValueError(f"data of shape {tuple(data.shape)} does not match spec {spec.shape}")
        if heldout is not None and tuple(heldout.shape[1:]) != spec.shape:
            raise ValueError(f"held-out data of shape {tuple(heldout.shape)} does not match spec {spec.shape}")
        self.data = data.contiguous()
        self.labels = None if labels is None else torch.as_tensor(labels).long()
        self.heldout = heldout
        self.heldout_labels = None if heldout_labels is None else torch.as_tensor(heldout_labels).long()
        self.spec = spec
        self.size = data.shape[0]

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        return self.data[torch.as_tensor(positions, dtype=torch.long)]

    def sample_indices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The positions :meth:`sample` draws (distinct when n ≤ size)."""
        return sample_positions(self.size, n, generator)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.data[self.sample_indices(n, generator)]


class Labelled(Source):
    """A labelled source served as (images, labels) minibatches (``model.conditional``)."""

    def __init__(self, source: Source):
        self.source, self.spec, self.size, self.labels = source, source.spec, source.size, source.labels

    def __getitems__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.source.__getitems__(positions), self.labels[torch.as_tensor(positions, dtype=torch.long)]


def with_holdout(data: torch.Tensor, spec: DataSpec, labels: torch.Tensor | None, holdout: int,
                 seed: int = 0) -> TensorSource:
    """A TensorSource training on all but ``holdout`` examples of ``data``; those (a fixed draw,
    ``seed``) become its ``heldout`` set. ``holdout=0`` keeps everything for training; the caller's signature
    declares the range (0 … len(data) − 2)."""
    if holdout == 0:
        return TensorSource(data, spec, labels)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    train, held = order[:-holdout].sort().values, order[-holdout:].sort().values
    return TensorSource(data[train], spec, None if labels is None else labels[train], heldout=data[held],
                        heldout_labels=None if labels is None else labels[held])
