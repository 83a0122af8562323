"""Stacked MNIST: the data set (shape, labels, determinism)."""

from __future__ import annotations

import pytest
import torch

from gan_lab.data.stacked import mode_of, stacked_mnist
from gan_lab.errors import ConfigError


@pytest.fixture(scope="module")
def stacked():
    return stacked_mnist(size=300, holdout=20, seed=0)


def _find(channels: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """The index in ``pool`` (M, 1, H, W) of each of ``channels`` (N, H, W), which must each be one of them."""
    index = torch.cdist(channels.flatten(1), pool.flatten(1)).argmin(dim=1)
    assert torch.equal(pool[index, 0], channels), "a channel is not one of the digits"
    return index


def test_stacked_images_are_three_training_digits_labelled_by_their_classes(stacked):
    digits = stacked.channel_source
    assert stacked.spec.shape == (3, 28, 28) and stacked.spec.eval_samples == 26_000
    assert stacked.data.shape == (300, 3, 28, 28) and stacked.data.dtype == torch.float32
    assert stacked.data.min() >= -1 and stacked.data.max() <= 1
    assert digits.spec.name == "mnist5k" and len(digits) == 4500  # mnist5k's training digits, its classifier's
    index = _find(stacked.data[:50].flatten(0, 1), digits.data).view(50, 3)
    classes = digits.labels[index]  # (50, 3): R, G, B
    assert stacked.labels[:50].tolist() == (100 * classes[:, 0] + 10 * classes[:, 1] + classes[:, 2]).tolist()
    assert 0 <= stacked.labels.min() and stacked.labels.max() <= 999
    assert stacked.heldout.shape == (20, 3, 28, 28)
    _find(stacked.heldout.flatten(0, 1), digits.heldout)  # held-out images stack held-out digits only


def test_mode_encoding_puts_red_first():
    classes = torch.tensor([[1, 2, 3], [9, 0, 0], [0, 0, 7], [9, 9, 9]])
    assert mode_of(classes).tolist() == [123, 900, 7, 999]


def test_stacked_mnist_is_fixed_by_its_seed(stacked):
    again = stacked_mnist(size=300, holdout=20, seed=0)
    assert torch.equal(again.data, stacked.data) and torch.equal(again.labels, stacked.labels)
    assert torch.equal(again.heldout, stacked.heldout)
    no_holdout = stacked_mnist(size=300, holdout=0, seed=0)
    assert torch.equal(no_holdout.data, stacked.data) and no_holdout.heldout is None  # the holdout moves nothing
    other = stacked_mnist(size=300, holdout=20, seed=1)
    assert (other.labels != stacked.labels).float().mean() > 0.9


@pytest.mark.parametrize(("key", "kwargs"), [("dataset.size", {"size": 1}), ("dataset.holdout", {"holdout": -1}),
                                             ("dataset.seed", {"seed": True})])
def test_bad_settings_are_refused_by_name(key, kwargs):
    with pytest.raises(ConfigError, match=key):
        stacked_mnist(**kwargs)
