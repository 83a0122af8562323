"""R3GAN's networks (gan_lab/nets/r3gan.py, gan_lab/nets/r3gan_blocks.py) against closed forms: fix-up init makes
every residual block the identity, the resamplers are the [1, 3, 3, 1] filter, the grouped convs, no
normalisation, the shapes, the class conditioning, an optimiser step, the refusals and the parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets.r3gan import NATIVE_CONDITIONING, build, fits, stage_widths
from gan_lab.nets.r3gan_blocks import ACTIVATION_GAIN, Downsample, ResidualBlock, Upsample, fixup_gain, lowpass_kernel

SMALL = {"z_dim": 8, "widths": [32, 16], "group_size": 8, "blocks": 2, "expansion": 2}  # transitions 32 -> 16


def image(side: int, channels: int = 3) -> DataSpec:
    return DataSpec("img", (channels, side, side), "image")


def blocks_of(net: nn.Module) -> list[ResidualBlock]:
    return [m for m in net.modules() if isinstance(m, ResidualBlock)]


def test_every_residual_block_is_the_identity_at_init():
    torch.manual_seed(0)
    g, d = build(image(8), **SMALL)
    assert len(blocks_of(g)) == len(blocks_of(d)) == 2 * 2  # 2 stages (4, 8 px) of 2 blocks
    for block in blocks_of(g) + blocks_of(d):
        assert not block.project.weight.any()  # the branch's last conv starts at zero
        x = torch.randn(2, block.expand.in_channels, 4, 4)
        assert torch.equal(block(x), x)
    # so G is its transitions alone: basis, (1x1 conv, 2x up) per stage, output conv
    z = torch.randn(3, 8)
    h = g.stages[0][0](z)
    for stage in g.stages[1:]:
        h = stage[0](h)
    assert torch.equal(g(z), g.out(h))
    # and D likewise: input conv, (2x down, 1x1 conv) per stage, the 4x4 basis, the head
    x = torch.randn(3, 3, 8, 8)
    h = d.extract(x)
    for stage in d.stages:
        h = stage[-1](h)
    assert torch.equal(d(x), d.head(h).flatten())


def test_fixup_scale_of_the_branch_layers():
    assert fixup_gain(16) == pytest.approx(math.sqrt(2 / 1.04) / 2, rel=1e-12)  # g_act * L^(-1/(2*3-2))
    torch.manual_seed(0)
    block = ResidualBlock(64, 8, 2, total_blocks=16)
    for conv, fan_in in ((block.expand, 64), (block.grouped, 16 * 9)):
        want = ACTIVATION_GAIN * 16 ** -0.25 / math.sqrt(fan_in)
        assert conv.weight.std().item() == pytest.approx(want, rel=0.05)  # 8192 / 18432 draws
        assert abs(conv.weight.mean().item()) < 0.05 * want
    assert not block.act1.bias.any() and not block.act2.bias.any()


def direct_up(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-insertion x2, zero padding 2 before and 1 after, then sum_ab 4K[a, b] u[p + a, q + b], by loops."""
    n, c, h, w = x.shape
    u = torch.zeros(n, c, 2 * h + 3, 2 * w + 3, dtype=x.dtype)
    u[:, :, 2:2 * h + 2:2, 2:2 * w + 2:2] = x
    y = torch.zeros(n, c, 2 * h, 2 * w, dtype=x.dtype)
    for a in range(4):
        for b in range(4):
            y += 4 * kernel[a, b] * u[:, :, a:a + 2 * h, b:b + 2 * w]
    return y


def direct_down(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero padding 1, then sum_ab K[a, b] x[2j + a, 2k + b], by loops."""
    n, c, h, w = x.shape
    p = F.pad(x, (1, 1, 1, 1))
    y = torch.zeros(n, c, h // 2, w // 2, dtype=x.dtype)
    for a in range(4):
        for b in range(4):
            y += kernel[a, b] * p[:, :, a:a + h:2, b:b + w:2]
    return y


def test_resamplers_are_the_1331_filter():
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    kernel = torch.outer(k, k) / 64
    assert torch.allclose(lowpass_kernel().double(), kernel, rtol=0, atol=1e-8)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    up, down = Upsample()(x), Downsample()(x)
    assert up.shape == (2, 3, 12, 12) and down.shape == (2, 3, 3, 3)
    assert torch.allclose(up, direct_up(x, kernel), rtol=0, atol=1e-6)  # the kernel buffer is float32
    assert torch.allclose(down, direct_down(x, kernel), rtol=0, atol=1e-6)
    # away from the border: bilinear interpolation (half-pixel centres) and antialiased bilinear halving
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(up[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1], rtol=0, atol=1e-6)
    halved = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(down[..., 1:-1, 1:-1], halved[..., 1:-1, 1:-1], rtol=0, atol=1e-6)


def test_a_constant_image_stays_constant_in_the_interior():
    up = Upsample()(torch.full((1, 2, 4, 4), 2.0))[0, 0]
    assert torch.allclose(up[1:-1, 1:-1], torch.full((6, 6), 2.0), rtol=0, atol=1e-6)
    assert torch.allclose(up[0, 1:-1], torch.full((6,), 2.0 * 3 / 4), rtol=0, atol=1e-6)  # zeros beyond the edge
    assert up[0, 0].item() == pytest.approx(2.0 * 9 / 16, abs=1e-6)
    down = Downsample()(torch.full((1, 2, 8, 8), 2.0))[0, 1]
    assert torch.allclose(down[1:-1, 1:-1], torch.full((2, 2), 2.0), rtol=0, atol=1e-6)
    assert torch.allclose(down[-1, 1:-1], torch.full((2,), 2.0 * 7 / 8), rtol=0, atol=1e-6)
    assert down[-1, -1].item() == pytest.approx(2.0 * 49 / 64, abs=1e-6)


def test_grouped_convs_have_expanded_width_over_group_size_groups():
    g, d = build(image(16), **SMALL)
    widths = set()
    for block in blocks_of(g) + blocks_of(d):
        wide = block.expand.out_channels
        assert wide == 2 * block.expand.in_channels
        assert block.grouped.groups == wide // 8 and block.grouped.weight.shape == (wide, 8, 3, 3)
        widths.add(block.expand.in_channels)
    assert widths == {32, 16}


def test_no_normalisation_anywhere():
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm, nn.RMSNorm)
    for net in build(image(16), **SMALL, n_classes=3):
        assert not [m for m in net.modules() if isinstance(m, norms)]
        assert {n.rsplit(".", 1)[-1] for n, _ in net.named_buffers()} == {"kernel"}  # the resamplers' filter only
        assert set(net.state_dict()) == {n for n, _ in net.named_parameters()}  # no running statistics saved


@pytest.mark.parametrize(("side", "channels", "stages"), [(8, 1, 2), (16, 3, 3), (32, 3, 4)])
def test_output_shapes(side, channels, stages):
    torch.manual_seed(0)
    g, d = build(image(side, channels), **SMALL)
    assert len(g.stages) == len(d.stages) == stages
    z = torch.randn(4, 8)
    x = g(z)
    assert x.shape == (4, channels, side, side)
    logits, features = d(x), d.features(x)
    assert logits.shape == (4,) and features.shape == (4, 32)  # features: the 4x4 stage's width
    assert torch.equal(d.from_features(features), logits)


def test_widths_list_is_cut_or_extended_to_the_stages():
    assert stage_widths([32, 16], 4) == [32, 16, 16, 16]
    assert stage_widths([8, 7, 6, 5, 4], 2) == [8, 7]


def test_class_conditional_networks():
    assert NATIVE_CONDITIONING == ("projection",)
    torch.manual_seed(0)
    g, d = build(image(8), **SMALL, n_classes=5)
    z = torch.randn(4, 8)
    y0, y1 = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 4, 4, 4])
    x0, x1 = g(z, y0), g(z, y1)
    assert x0.shape == (4, 3, 8, 8)
    assert (x0 - x1).abs().amax(dim=(1, 2, 3)).min() > 1e-6  # the label changes every sample
    logits, classes = d.judge(x0, y0)
    assert logits.shape == (4,) and classes is None and torch.equal(logits, d(x0, y0))
    assert (d(x0, y0) - d(x0, y1)).abs().min() > 1e-7
    # projection: <head(features), E onehot(y)>, E a linear map without bias
    projected = (d.head(d.features(x0)) * d.embed.weight[:, y0].T).sum(dim=1)
    assert torch.allclose(logits, projected, rtol=1e-5, atol=1e-7)
    assert d.head.out_features == 32 and g.embed.out_features == 8
    with pytest.raises(ValueError, match="needs labels"):
        g(z)
    with pytest.raises(ValueError, match="was given labels"):
        build(image(8), **SMALL)[1](x0, y0)


def test_adam_steps_train_both_networks():
    torch.manual_seed(0)
    g, d = build(image(8, 1), **SMALL)
    before = {n: p.detach().clone() for n, p in [*g.named_parameters(), *d.named_parameters()]}
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.0, 0.9))
    real = torch.rand(4, 1, 8, 8) * 2 - 1

    def step():
        real.requires_grad_(True)
        real_logits = d(real)
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)  # R1 needs double backward
        fake_logits = d(g(torch.randn(4, 8)).detach())
        d_loss = F.softplus(fake_logits - real_logits).mean() + 0.5 * grad.square().sum(dim=(1, 2, 3)).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(d(real.detach()) - d(g(torch.randn(4, 8)))).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        return d_loss, g_loss

    losses = step()
    after_one = dict([*g.named_parameters(), *d.named_parameters()])
    for name, p in after_one.items():
        # fix-up: the branch's last conv is zero, so nothing before it in the branch has a gradient yet
        inside = any(k in name for k in ("expand", "grouped", "act1", "act2"))
        assert torch.equal(p, before[name]) == inside, name
    losses += step()
    for name, p in [*g.named_parameters(), *d.named_parameters()]:
        assert not torch.equal(p, before[name]), name
    with torch.no_grad():
        x = g(torch.randn(4, 8))
        assert torch.isfinite(x).all() and torch.isfinite(d(x)).all()
    assert all(torch.isfinite(v) for v in losses)


def test_fits_refuses_other_sides_naming_model():
    for side in (28, 4, 24):
        refusal = fits(image(side, 1), **SMALL)
        assert isinstance(refusal, ConfigError) and (refusal.key, refusal.value) == ("model", "r3gan")
        assert f"has side {side}" in str(refusal)
    assert fits(image(32), **SMALL) is None and fits(image(8, 1), **SMALL) is None
    assert fits(DataSpec("ring", (2,), "points")).key == "model"
    assert fits(image(32), **SMALL, d_norm="layer").key == "model.d_norm"
    assert fits(image(32), d_norm="auto") is None
    assert fits(image(32), widths=[20], group_size=16).key == "model.group_size"  # 40 channels, groups of 16
    with pytest.raises(ConfigError):
        build(image(28, 1))


def cifar_count(blocks_total: int, width: int, e: int, group: int, z_in: int, head: int, classes: int, g: bool):
    """The closed-form count at constant width: blocks (W1, W2 grouped, W3, two biases), the 4x4 basis, the
    1x1 conv at the data end, the head (D) or z's linear (G), the class embedding."""
    wide = e * width
    block = width * wide + wide * group * 9 + wide * width + 2 * wide
    ends = 16 * width + z_in * width if g else 16 * width + width * head
    return blocks_total * block + ends + 3 * width + classes * (z_in // 2 if g else head)


def test_parameter_counts_at_the_authors_cifar_config():
    cifar = {"z_dim": 64, "widths": [768] * 4, "group_size": 16, "blocks": 2, "expansion": 2}
    with torch.device("meta"):
        g, d = build(image(32), **cifar)
        gc, dc = build(image(32), **cifar, n_classes=10)
    count = [sum(p.numel() for p in net.parameters()) for net in (g, d, gc, dc)]
    assert count == [20_732_160, 20_683_776, 20_781_952, 21_280_512]  # as in the module's docstring
    assert count[0] == cifar_count(8, 768, 2, 16, 64, 0, 0, g=True)
    assert count[1] == cifar_count(8, 768, 2, 16, 0, 1, 0, g=False)
    assert count[2] == cifar_count(8, 768, 2, 16, 128, 0, 10, g=True)
    assert count[3] == cifar_count(8, 768, 2, 16, 0, 768, 10, g=False)
    assert gc.stages[0][1].grouped.groups == 96  # the authors' CardinalityPerStage
