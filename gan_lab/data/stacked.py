"""Stacked MNIST (Metz et al. 2017, Sec. 3.3.1; VEEGAN; PacGAN Table 2): three digits as R, G and B.

Each image stacks three mnist5k digits, drawn independently and uniformly, as its channels, so the law
has 10³ = 1,000 modes, the triples of digit classes; an image's label is its mode 100·c_R + 10·c_G + c_B.
Nothing is downloaded: the digits are the 4,500 training digits of ``mnist5k`` (its default split), the
ones its domain classifier learnt from; that classifier reads each channel for the mode metric
(:mod:`gan_lab.metrics.stacked`). Held-out images stack mnist5k's 500 held-out digits only, so no digit
of theirs is ever trained on.

Memory: the images are held as float32, 9.4 kB each (50,000 = 470 MB, PacGAN's 128,000 = 1.2 GB).
"""

from __future__ import annotations

from typing import Annotated

import torch

from gan_lab.checks import at_least
from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.data.images import mnist5k

CLASSES = 10  # digit classes per channel
CHANNELS = 3  # R, G, B: CLASSES ** CHANNELS = 1,000 modes
EVAL_SAMPLES = 26_000  # generated samples of the mode protocol (VEEGAN; PacGAN Table 2)


class StackedSource(TensorSource):
    """A TensorSource whose every channel is an image of ``channel_source``, a labelled 1-channel set:
    image metrics read each channel with that set's domain classifier (``image_metric_suites``)."""

    def __init__(self, data: torch.Tensor, spec: DataSpec, labels: torch.Tensor, heldout: torch.Tensor | None,
                 channel_source: TensorSource):
        super().__init__(data, spec, labels, heldout)
        self.channel_source = channel_source


def mode_of(classes: torch.Tensor) -> torch.Tensor:
    """(N, C) per-channel classes → (N,) mode Σ_c classes[:, c]·10^(C−1−c): the first channel is the
    most significant digit (R, G, B → 100·c_R + 10·c_G + c_B)."""
    weights = CLASSES ** torch.arange(classes.shape[1] - 1, -1, -1, device=classes.device)
    return (classes.long() * weights).sum(1)


def stack(digits: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (n, 3, H, W) whose channels are ``digits`` (M, 1, H, W) drawn uniformly with replacement,
    and the (n, 3) positions drawn."""
    picks = torch.randint(len(digits), (n, CHANNELS), generator=generator)  # (n, 3)
    return digits[:, 0][picks], picks


def stacked_mnist(size: Annotated[int, at_least(2), "training images (float32: 9.4 kB each)"] = 50_000,
                  holdout: Annotated[int, at_least(0), "held-out images, stacked from mnist5k's 500 held-out "
                                                      "digits (0: none)"] = 500,
                  seed: Annotated[int, at_least(0), "the draw of the data set (fixed, whatever the run's seed)"] = 0
                  ) -> StackedSource:
    """``size`` Stacked MNIST images (3×28×28 in [-1, 1], labels their mode) and ``holdout`` held-out ones.

    ``seed`` fixes the draw (a fixed data set, whatever the run's seed): the training images come from the
    stream seeded 2·seed, the held-out ones from 2·seed + 1, so neither count moves the other's images.
    ``holdout=0``: no held-out images (the Parzen log-likelihood is then skipped).
    """
    digits = mnist5k()  # 4,500 training digits with labels, 500 held out
    images, picks = stack(digits.data, size, torch.Generator().manual_seed(2 * seed))
    heldout = None
    if holdout:
        heldout, _ = stack(digits.heldout, holdout, torch.Generator().manual_seed(2 * seed + 1))
    spec = DataSpec("stacked_mnist", (CHANNELS, 28, 28), "image", eval_samples=EVAL_SAMPLES)
    return StackedSource(images, spec, mode_of(digits.labels[picks]), heldout, digits)
