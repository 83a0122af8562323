"""Architectures are sized from the data's shape by arithmetic."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from gan_lab.compose import check_settings
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets import dcgan, mlp
from tests.conftest import compose_cfg


@pytest.mark.parametrize(("shape", "base", "stages"), [
    ((1, 8, 8), 4, 1), ((1, 28, 28), 7, 2), ((3, 32, 32), 4, 3), ((3, 48, 48), 6, 3), ((3, 64, 64), 4, 4)])
def test_dcgan_fits_square_images(shape, base, stages):
    spec = DataSpec("x", shape, "image")
    assert dcgan.plan(spec) == (base, stages)
    g, d = dcgan.build(spec, z_dim=16, width=8, max_width=32)
    fake = g(torch.randn(5, 16))
    assert fake.shape == (5, *shape) and fake.abs().max() <= 1
    assert d(fake).shape == (5,)
    assert d.features(fake).shape[0] == 5
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == stages + 1  # projection of z to b×b, then one per 2× stage


def test_dcgan_64_has_the_papers_channel_plan():
    g, d = dcgan.build(DataSpec("x", (3, 64, 64), "image"))
    g_channels = [m.out_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_channels = [m.out_channels for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert g_channels == [512, 256, 128, 64, 3]
    assert d_channels == [64, 128, 256, 512, 1]
    # DCGAN rules: no norm on D's input layer nor G's output layer, tanh out, LeakyReLU in D.
    assert isinstance(list(d.body)[1], nn.LeakyReLU) and isinstance(list(g.net)[-1], nn.Tanh)


@pytest.mark.parametrize(("shape", "words"), [
    ((2,), "model=mlp"), ((1, 28, 32), "square"), ((1, 15, 15), "b·2ⁿ"), ((1, 6, 6), "b·2ⁿ")])
def test_dcgan_refuses_data_it_cannot_fit(shape, words):
    spec = DataSpec("x", shape, "points" if len(shape) == 1 else "image")
    refusal = dcgan.fits(spec, z_dim=100, width=64, max_width=512, d_norm="batch")
    assert isinstance(refusal, ConfigError) and re.search(words, str(refusal))
    assert refusal.key == "model"


@pytest.mark.parametrize(("shape", "kind"), [((2,), "points"), ((1,), "points"), ((1, 28, 28), "image")])
def test_mlp_runs_on_points_and_images(shape, kind):
    spec = DataSpec("x", shape, kind)
    g, d = mlp.build(spec, z_dim=8, hidden=[16, 16])
    fake = g(torch.randn(7, 8))
    assert fake.shape == (7, *shape) and d(fake).shape == (7,)
    if kind == "image":
        assert fake.abs().max() <= 1  # tanh for images, linear for points


def test_maxout_units_take_the_largest_of_their_pieces_and_pacgans_toy_d_has_its_shape():
    layer = mlp.LinearMaxout(3, 2, pieces=4)
    x = torch.randn(5, 3)
    affine = x @ layer.linear.weight.T + layer.linear.bias  # (5, 2·4): unit u owns columns 4u … 4u+3
    assert torch.equal(layer(x), affine.view(5, 2, 4).amax(dim=2))
    g, d = mlp.build(DataSpec("ring", (4,), "points"), z_dim=2, hidden=[400] * 4, g_norm="batch",
                     d_hidden=[200] * 3, d_maxout=5, init="normal")  # experiment=pacgan_toy with tricks.pack=2
    widths = [m.linear.out_features for m in d.body if isinstance(m, mlp.LinearMaxout)]
    assert widths == [1000, 1000, 1000] and d.head.in_features == 200 and d.body[0].linear.in_features == 4
    assert not any(isinstance(m, nn.LeakyReLU) for m in d.modules())
    assert sum(isinstance(m, nn.BatchNorm1d) for m in g.modules()) == 4
    weights = torch.cat([m.weight.flatten() for m in [*g.modules(), *d.modules()] if isinstance(m, nn.Linear)])
    assert 0.0195 < weights.std().item() < 0.0205  # N(0, 0.02), biases 0
    assert all(m.bias.abs().max() == 0 for m in [*g.modules(), *d.modules()] if isinstance(m, nn.Linear))


def test_orthogonal_init_is_the_unrolled_gan_references_gain_1_4_with_zero_biases():
    # experiment=ring_collapse: tf.orthogonal_initializer(gain=1.4) on every layer, slim's zero biases
    g, d = mlp.build(DataSpec("ring", (2,), "points"), z_dim=256, hidden=[128, 128], init="orthogonal",
                     activation="tanh")
    layers = [m for m in [*g.modules(), *d.modules()] if isinstance(m, nn.Linear)]
    assert len(layers) == 6
    for m in layers:
        w = m.weight.detach()
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w  # the Gram matrix of the shorter side
        assert torch.allclose(small, 1.96 * torch.eye(small.shape[0]), atol=1e-4)
        assert m.bias.abs().max() == 0


@pytest.mark.parametrize("kwargs,key", [({"d_maxout": 1}, "model.d_maxout"), ({"init": "xavier"}, "model.init"),
                                        ({"d_hidden": []}, "model.d_hidden"),
                                        ({"activation": "elu"}, "model.activation")])
def test_mlp_refuses_bad_settings_naming_the_key(kwargs, key):
    overrides = [f"model.{k}={v}" for k, v in kwargs.items()]
    with pytest.raises(ConfigError, match=key):
        check_settings(compose_cfg("model=mlp", "dataset=ring", *overrides))
