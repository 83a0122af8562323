"""model=resnet: SN-GAN's ResNet G and D (Miyato 2018), sized from the data's shape by arithmetic."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from gan_lab.compose import build_components, check_settings
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets import resnet
from gan_lab.nets.minibatch import MinibatchDiscriminator
from gan_lab.nets.vbn import VirtualBatchNorm, VirtualBatchNormGenerator
from gan_lab.regularizers import GradientPenalty, SpectralNorm
from gan_lab.regularizers.base import Judged, input_gradients
from gan_lab.train import train
from tests.conftest import compose_cfg

SMALL = {"z_dim": 16, "g_width": 16, "g_max_width": 32, "d_width": 16, "d_max_width": 32}


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _spec(side: int, channels: int = 3) -> DataSpec:
    return DataSpec("x", (channels, side, side), "image")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("side", "base", "stages", "d_pooled"), [
    (8, 4, 1, 4), (28, 7, 2, 14), (32, 4, 3, 8), (48, 6, 3, 12), (64, 4, 4, 8)])
def test_resnet_fits_square_images(side, base, stages, d_pooled, channels):
    spec = _spec(side, channels)
    assert resnet.plan(spec) == (base, stages)
    g, d = resnet.build(spec, **SMALL)
    assert g.z_dim == 16 and g.base == base
    assert len(g.blocks) == stages and all(isinstance(b, resnet.UpBlock) for b in g.blocks)
    fake = g(torch.randn(3, 16))
    assert fake.shape == (3, channels, side, side) and fake.abs().max() <= 1
    assert d(fake).shape == (3,)
    assert d.features(fake).shape == (3, 32)
    # D pools down to 2b (at least once), then two blocks without pooling.
    assert d.blocks(fake).shape[-1] == d_pooled
    assert [b.down for b in d.blocks][-2:] == [False, False]


def test_default_is_the_papers_cifar10_resnet():
    """SN-GAN CIFAR-10 ResNet: G ≈ 4.3M, D ≈ 1.0M parameters (measured 4,276,739 and 1,053,825)."""
    g, d = resnet.build(_spec(32))
    assert _params(g) == 4_276_739 and _params(g) == pytest.approx(4.3e6, rel=0.02)
    assert _params(d) == 1_053_825 and _params(d) == pytest.approx(1.0e6, rel=0.06)
    assert g.linear.in_features == 128 and g.linear.out_features == 256 * 4 * 4
    assert [b.conv2.out_channels for b in g.blocks] == [256, 256, 256] and g.out.out_channels == 3
    assert [(b.conv2.out_channels, b.down, b.optimized) for b in d.blocks] == [
        (128, True, True), (128, True, False), (128, False, False), (128, False, False)]
    # Identity shortcuts where neither the channels nor the size change.
    assert [b.shortcut is None for b in d.blocks] == [False, False, True, True]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in d.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 2 * 3 + 1
    x = torch.randn(2, 3, 32, 32)
    assert d.blocks(x).shape == (2, 128, 8, 8)


def test_stl10_plan_is_an_override_of_the_same_rule():
    """STL-10 48 px: G 512→256→128→64 from 6×6, D 64→…→1024 pooling 48 → 3 (here at 1/8 width)."""
    g, d = resnet.build(_spec(48), z_dim=16, g_width=8, g_max_width=64, d_width=8, d_max_width=128,
                        d_down=4, d_plain=1)
    assert g.linear.out_features == 64 * 6 * 6
    assert [b.conv2.out_channels for b in g.blocks] == [32, 16, 8]
    assert [b.conv2.out_channels for b in d.blocks] == [8, 16, 32, 64, 128]
    assert [b.down for b in d.blocks] == [True, True, True, True, False]
    fake = g(torch.randn(2, 16))
    assert fake.shape == (2, 3, 48, 48)
    assert d.blocks(fake).shape == (2, 128, 3, 3) and d(fake).shape == (2,)
    assert resnet.g_widths(64, 512, 3) == [512, 256, 128, 64]
    assert resnet.g_widths(64, 1024, 4) == [1024, 512, 256, 128, 64]
    assert resnet.d_widths(64, 1024, 5) == [64, 128, 256, 512, 1024]


@pytest.mark.parametrize(("shape", "kind", "words"), [
    ((2,), "points", "model=mlp"), ((1, 28, 32), "image", "square"), ((1, 15, 15), "image", "b·2ⁿ"),
    ((1, 6, 6), "image", "b·2ⁿ"), ((3, 36, 36), "image", "4 ≤ b ≤ 7")])
def test_resnet_refuses_data_it_cannot_fit(shape, kind, words):
    refusal = resnet.fits(DataSpec("x", shape, kind), **SMALL)
    assert isinstance(refusal, ConfigError) and re.search(words, str(refusal))
    assert refusal.key == "model" and refusal.value == "resnet"


def test_resnet_refuses_poolings_that_do_not_divide_the_side():
    refusal = resnet.fits(_spec(28, 1), **SMALL, d_down=3)  # 28 px: 28/2³ is not whole
    assert isinstance(refusal, ConfigError) and refusal.key == "model.d_down" and "divides the side 28" in str(refusal)
    assert resnet.fits(_spec(28, 1), **SMALL, d_down=2) is None and resnet.fits(_spec(28, 1), **SMALL) is None


@pytest.mark.parametrize(("key", "value"), [
    ("d_down", 0), ("d_plain", -1), ("g_width", 0), ("d_norm", "instance"), ("z_dim", 1.5)])
def test_resnet_refuses_bad_settings(key, value):
    with pytest.raises(ConfigError) as info:
        check_settings(compose_cfg("model=resnet", "dataset=mnist5k", f"model.{key}={value}"))
    assert info.value.key == f"model.{key}"


def test_d_down_and_d_plain_set_the_pooling():
    g, d = resnet.build(_spec(28, 1), **SMALL, d_down=2, d_plain=0)
    assert d.blocks(g(torch.randn(2, 16))).shape == (2, 32, 7, 7)


@pytest.mark.parametrize(("norm", "layer"), [("batch", nn.BatchNorm2d), ("layer", nn.GroupNorm),
                                             ("none", None), ("auto", None)])
def test_d_norm_choices(norm, layer):
    _, d = resnet.build(_spec(32), **SMALL, d_norm=norm)
    norms = [m for m in d.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm))]
    if layer is None:
        assert norms == []  # auto (outside the lab) is the paper's: none
    else:
        # Before each ReLU inside the blocks: one in the optimized block, two in each other block.
        assert len(norms) == 1 + 2 * 3 and all(isinstance(m, layer) for m in norms)
    assert d(torch.randn(4, 3, 32, 32)).shape == (4,)


def test_initialisation_is_sngans_xavier_uniform():
    g, d = resnet.build(_spec(32), **SMALL)

    def bound(w: torch.Tensor, gain: float) -> float:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
        return gain * math.sqrt(6.0 / (fan_in + fan_out))

    for block in [*g.blocks, *d.blocks]:
        for conv in (block.conv1, block.conv2):
            b = bound(conv.weight, math.sqrt(2))
            # Within gain √2's bound, and beyond gain 1's (b/√2): the √2 of the reference code.
            assert b / math.sqrt(2) < conv.weight.abs().max() <= b
            assert conv.bias.abs().max() == 0
        if block.shortcut is not None:
            assert block.shortcut.weight.abs().max() <= bound(block.shortcut.weight, 1.0)
    for layer in (g.linear, g.out, d.head):
        assert layer.weight.abs().max() <= bound(layer.weight, 1.0) and layer.bias.abs().max() == 0


def test_features_feed_the_head():
    _, d = resnet.build(_spec(28, 1), **SMALL)
    x = torch.randn(5, 1, 28, 28)
    f = d.features(x)
    assert f.shape == (5, 32) and (f >= 0).all()  # ReLU then global sum pooling
    torch.testing.assert_close(d(x), d.head(f).flatten())


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_gradient_penalty_double_backward(norm):
    g, d = resnet.build(_spec(32), **SMALL, d_norm=norm)
    real = torch.rand(6, 3, 32, 32) * 2 - 1
    fake = g(torch.randn(6, 16))
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    assert grad.shape == x.shape and grad.flatten(1).norm(dim=1).gt(0).all()
    (grad.flatten(1).norm(dim=1) - 1).pow(2).mean().backward()
    for name, p in d.named_parameters():
        if name == "head.bias":  # ∇ₓD does not depend on D's output bias
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name.endswith("weight"):
            assert p.grad.abs().sum() > 0, name
    # The lab's own penalty on the same D, and a second penalty (the graph is rebuilt each time).
    d.zero_grad()
    penalty = GradientPenalty(10.0).penalty(Judged.of(d, real, fake, 0))
    penalty.backward()
    assert torch.isfinite(penalty) and penalty > 0
    assert all(p.grad is None for p in g.parameters())  # the penalty sees G's samples detached
    assert input_gradients(d, real).shape == (6, 3 * 32 * 32)


def test_spectral_norm_wraps_every_layer():
    _, d = resnet.build(_spec(32), **SMALL)
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    d = SpectralNorm(1).wrap(d)
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert len(layers) == 2 * 4 + 2 + 1  # 2 convs per block, 2 shortcuts (32 px), the head
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    for _ in range(10):  # power iterations converge on the head's σ
        d(x)
    with torch.no_grad():
        assert torch.linalg.matrix_norm(d.head.weight, ord=2) == pytest.approx(1.0, abs=1e-3)
    out = d(x)
    out.sum().backward()
    orig = [m.parametrizations.weight.original for m in layers]
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in orig)
    # SN and a gradient penalty together (SN-GAN + GP): double backward through the parametrisation.
    d.zero_grad()
    GradientPenalty(10.0).penalty(Judged.of(d, x.detach(), torch.randn(4, 3, 32, 32), 0)).backward()
    assert all(w.grad is not None and torch.isfinite(w.grad).all() for w in orig)


def test_one_d_step_changes_d_only():
    g, d = resnet.build(_spec(28, 1), **SMALL)
    g_before = [p.detach().clone() for p in g.parameters()]
    d_before = [p.detach().clone() for p in d.parameters()]
    opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    fake = g(torch.randn(8, 16)).detach()
    loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()  # D's cross-entropy
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(not torch.equal(a, b) for a, b in zip(d_before, d.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(g_before, g.parameters()))
    assert all(p.grad is None for p in g.parameters())


def test_tricks_wrap_resnet():
    spec = _spec(8, 1)
    g, d = resnet.build(spec, **SMALL)
    mbd = MinibatchDiscriminator(d, spec, kernels=5, kernel_dim=3)
    assert d.head is None and mbd(torch.randn(4, 1, 8, 8)).shape == (4,)
    vbn = VirtualBatchNormGenerator(g, 16, reference_size=4)
    assert sum(isinstance(m, VirtualBatchNorm) for m in vbn.modules()) == 2 * 1 + 1
    assert vbn(torch.randn(3, 16)).shape == (3, 1, 8, 8)


def test_lab_resolves_d_norm_and_z_dim():
    cfg = compose_cfg("debug=tiny", "model=resnet", "dataset=digits", "regularizer=gp", "model.d_norm=auto",
                      "model.z_dim=32", "model.g_width=8", "model.d_width=8")
    c = build_components(cfg)
    assert c.generator.z_dim == cfg.model.z_dim == 32
    assert any(isinstance(m, nn.GroupNorm) for m in c.discriminator.modules())  # gp prefers layer
    cfg = compose_cfg("debug=tiny", "model=resnet", "dataset=ring")
    with pytest.raises(ConfigError) as info:
        build_components(cfg)
    assert info.value.key == "model"


@pytest.mark.parametrize("overrides", [("regularizer=sn", "loss=hinge"), ("regularizer=gp", "loss=wasserstein")])
def test_resnet_trains_through_the_lab(overrides, tmp_path):
    cfg = compose_cfg("debug=tiny", "model=resnet", "dataset=digits", "model.g_width=16", "model.g_max_width=16",
                      "model.d_width=16", "model.d_max_width=16", *overrides)
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["iterations"] == cfg.train.iterations
    assert (tmp_path / "samples" / "final.png").is_file()


@pytest.mark.parametrize(("g_norm", "kind"), [("batch", nn.BatchNorm2d), ("layer", nn.GroupNorm), ("none", None)])
def test_g_norm_sets_every_normalisation_of_the_resnet_generator(g_norm, kind):
    """model.g_norm=none gives a ResNet G without normalisation (as R3GAN's, whose own networks, experiment=r3gan,
    tests/test_r3gan_nets.py checks); SN-GAN's has batch norm."""
    g, _ = resnet.build(DataSpec("x", (3, 32, 32), "image"), g_width=16, g_max_width=16, d_width=8, d_max_width=8,
                        g_norm=g_norm)
    norms = [m for m in g.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    if kind is None:
        assert not norms
    else:  # 3 up-blocks of two norms each (4 → 8 → 16 → 32 px), then the one before the output convolution
        assert len(norms) == 2 * 3 + 1 and all(isinstance(m, kind) for m in norms)
    assert g(torch.randn(4, 128)).shape == (4, 3, 32, 32)


def test_projection_keeps_the_resnet_generators_last_batch_norm_unconditional():
    """As the reference sngan_projection does: its blocks' batch norms take the class, the one before the output
    convolution (its b7) does not."""
    from gan_lab.nets.conditional import ConditionalBatchNorm

    c = build_components(compose_cfg("model=resnet", "dataset=digits", "model.g_width=8", "model.g_max_width=8",
                                     "model.d_width=8", "model.d_max_width=8", "model.conditional=projection"))
    net = c.generator.net
    assert isinstance(net.bn, nn.BatchNorm2d) and not isinstance(net.bn, ConditionalBatchNorm)
    assert c.generator.norms == 2 * len(net.blocks) and all(
        isinstance(b.bn1, ConditionalBatchNorm) and isinstance(b.bn2, ConditionalBatchNorm) for b in net.blocks)
