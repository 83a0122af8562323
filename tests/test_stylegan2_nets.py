"""model=stylegan2: StyleGAN2's layers and networks (Karras et al. 2020; −ADA's settings) against closed forms and
direct computations, at tiny sizes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets import stylegan2
from gan_lab.nets.stylegan2_d import MinibatchStd
from gan_lab.nets.stylegan_ops import (
    Conv2dLayer,
    FullyConnected,
    bias_act,
    downsample2d,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

TINY = {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channel_max": 16}


def _spec(side: int = 8, channels: int = 1) -> DataSpec:
    return DataSpec("x", (channels, side, side), "image")


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _fir_2x_up(x: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Zero insertion (x at even positions), zero padding (before, after), the 4×4 FIR times 4: by hand."""
    n, c, h, w = x.shape
    u = torch.zeros(n, c, 2 * h, 2 * w, dtype=x.dtype)
    u[:, :, ::2, ::2] = x
    u = F.pad(u, [pad[0], pad[1], pad[0], pad[1]])
    f = 4 * setup_filter().to(x.dtype)  # symmetric: correlation = convolution
    return F.conv2d(u, f[None, None].expand(c, 1, 4, 4), groups=c)


# ---------------------------------------------------------------- the FIR resampler


def test_filter_is_the_normalised_outer_product():
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    torch.testing.assert_close(setup_filter(), torch.outer(taps, taps) / 64)


def test_downsample_is_a_strided_convolution_with_the_filter_and_keeps_constants():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    f = setup_filter().double()
    direct = F.conv2d(F.pad(x, [1, 1, 1, 1]), f[None, None].expand(3, 1, 4, 4), stride=2, groups=3)
    torch.testing.assert_close(downsample2d(x, setup_filter()), direct)
    const = downsample2d(torch.full((1, 1, 8, 8), 0.7), setup_filter())
    assert const.shape == (1, 1, 4, 4)
    torch.testing.assert_close(const[..., 1:-1, 1:-1], torch.full((1, 1, 2, 2), 0.7))  # interior
    assert const[0, 0, 0, 0] < 0.7  # the zero padding leaks in at the border


def test_upsample_is_zero_insertion_then_the_filter_times_four_and_keeps_constants():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(upsample2d(x, setup_filter()), _fir_2x_up(x, (2, 1)))
    const = upsample2d(torch.full((1, 1, 4, 4), -1.5), setup_filter())
    assert const.shape == (1, 1, 8, 8)
    torch.testing.assert_close(const[..., 1:-1, 1:-1], torch.full((1, 1, 6, 6), -1.5))
    # upfirdn2d's crop (negative padding) and downsampling: keep pixels 1, 3, 5 of the padded-by-(-1) signal
    y = upfirdn2d(x, torch.ones(1, 1), down=2, padding=[-1, 0, -1, 0])
    torch.testing.assert_close(y, x[:, :, 1::2, 1::2])


# ---------------------------------------------------------------- equalized learning rate


def test_fully_connected_uses_the_equalized_weight_and_bias():
    torch.manual_seed(2)
    fc = FullyConnected(5, 3, lr_multiplier=0.01, bias_init=0.5)
    torch.testing.assert_close(fc.effective_weight(), fc.weight * 0.01 / math.sqrt(5))
    x = torch.randn(4, 5)
    torch.testing.assert_close(fc(x), x @ (fc.weight * 0.01 / math.sqrt(5)).t() + 0.5 * 0.01)
    act = FullyConnected(5, 3, activation="lrelu")
    expected = F.leaky_relu(x @ (act.weight / math.sqrt(5)).t() + act.bias, 0.2) * math.sqrt(2)
    torch.testing.assert_close(act(x), expected)
    big = FullyConnected(512, 512, lr_multiplier=0.01)  # stored N(0, 1)/λ: std 100, used with std 1/√512
    assert 98 < big.weight.std().item() < 102
    assert 0.98 < big.effective_weight().std().item() * math.sqrt(512) < 1.02


def test_conv_layer_uses_the_equalized_weight_gain_and_clamp():
    torch.manual_seed(3)
    conv = Conv2dLayer(4, 6, 3, activation="lrelu", conv_clamp=0.5)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 4, 5, 5)
    pre = F.conv2d(x, conv.weight / math.sqrt(4 * 9), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), (F.leaky_relu(pre, 0.2) * math.sqrt(2)).clamp(-0.5, 0.5))
    torch.testing.assert_close(conv(x, gain=0.5), (F.leaky_relu(pre, 0.2) * math.sqrt(2) * 0.5).clamp(-0.25, 0.25))
    # 3×3 with 2× downsampling: FIR on the padded input, then a stride-2 convolution
    down = Conv2dLayer(4, 6, 3, down=2)
    f = setup_filter()
    filtered = F.conv2d(F.pad(x[..., :4, :4], [2, 2, 2, 2]), f[None, None].expand(4, 1, 4, 4), groups=4)
    torch.testing.assert_close(down(x[..., :4, :4]), F.conv2d(filtered, down.weight / 6, stride=2))
    torch.testing.assert_close(bias_act(torch.tensor([[-1.0, 2.0]]), act="lrelu"),
                               torch.tensor([[-0.2, 2.0]]) * math.sqrt(2))


# ---------------------------------------------------------------- modulated convolution


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_equals_the_per_sample_convolution(up, demodulate):
    torch.manual_seed(4)
    n, i, o, side = 3, 4, 5, 6
    x = torch.randn(n, i, side, side, dtype=torch.float64)
    weight = torch.randn(o, i, 3, 3, dtype=torch.float64)
    styles = torch.randn(n, i, dtype=torch.float64)
    expected = []
    for k in range(n):  # the definition, one sample at a time
        w = weight * styles[k].reshape(1, i, 1, 1)
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        xk = x[k: k + 1]
        # up 2: FIR-upsampled on its full support (padding 1 + the filter's 2, 1), then a valid 3×3 correlation
        expected.append(F.conv2d(_fir_2x_up(xk, (3, 2)), w) if up == 2 else F.conv2d(xk, w, padding=1))
    expected = torch.cat(expected)
    assert expected.shape == (n, o, side * up, side * up)
    f = setup_filter()
    for fused in (True, False):
        got = modulated_conv2d(x, weight, styles, demodulate=demodulate, up=up, padding=1, resample_filter=f,
                               fused=fused)
        torch.testing.assert_close(got, expected)


def test_inference_fuses_while_the_per_sample_weights_stay_small():
    """The reference fuses at inference; here only while the (N, O, I, k, k) weights stay under 1 GiB: its metric
    batch of 64 at 512 channels fuses, the evaluation's 500 (4.7 GB a layer) takes the shared-weight path, training
    never fuses, and an explicit choice wins."""
    from gan_lab.nets.stylegan_ops import fuse_here

    wide = torch.empty(512, 512, 3, 3)
    assert fuse_here(False, 64, wide) and not fuse_here(False, 500, wide)
    assert not fuse_here(True, 1, wide) and fuse_here(False, 500, torch.empty(64, 64, 3, 3))
    assert fuse_here(False, 500, wide, fused=True) and not fuse_here(False, 1, wide, fused=False)


def test_demodulated_outputs_have_unit_variance():
    """Unit-variance i.i.d. inputs, N(0, 1) weights and any styles: each output has second moment exactly 1 away
    from the zero padding. 16·32·14·14 ≈ 100k outputs (spatially correlated): the estimate lies in [0.95, 1.05];
    without demodulation it is Σ_i s_i² Σ_k w_oik² ≈ 9·64·E[s²] ≫ 1."""
    torch.manual_seed(5)
    x = torch.randn(16, 64, 16, 16)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.randn(16, 64).exp()  # far from 1
    y = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)[..., 1:-1, 1:-1]
    assert 0.95 < y.square().mean().item() < 1.05
    assert abs(y.mean().item()) < 0.02
    raw = modulated_conv2d(x, weight, styles, demodulate=False, padding=1)[..., 1:-1, 1:-1]
    assert raw.square().mean().item() > 100


# ---------------------------------------------------------------- the mapping network, mixing and truncation


def test_style_mixing_takes_the_ws_after_a_cutoff_from_a_second_z():
    g, _ = stylegan2.build(_spec(16), **TINY, style_mixing=1.0)
    assert g.num_ws == 6 and g.mapping(torch.randn(2, 16)).shape == (2, 6, 16)
    z = torch.randn(5, 16)
    cutoffs = set()
    for seed in range(6):
        g.train()
        torch.manual_seed(seed)
        ws = g.styles(z)
        torch.manual_seed(seed)  # the documented draws: the cutoff, the coin, then z₂
        torch.empty([], dtype=torch.int64).random_(1, g.num_ws)
        torch.rand([])
        z2 = torch.randn_like(z)
        g.eval()
        first, second = g.mapping(z), g.mapping(z2)
        same = [torch.equal(ws[:, k], first[:, k]) for k in range(g.num_ws)]
        cutoff = same.index(False)
        assert 1 <= cutoff < g.num_ws and all(same[:cutoff]) and not any(same[cutoff:])
        torch.testing.assert_close(ws[:, cutoff:], second[:, cutoff:])
        cutoffs.add(cutoff)
    assert len(cutoffs) > 1  # the cutoff is drawn
    for mixing, mode in ((0.0, "train"), (1.0, "eval")):  # no mixing: the same w everywhere
        g.style_mixing = mixing
        g.train(mode == "train")
        ws = g.styles(z)
        torch.testing.assert_close(ws, ws[:, :1].expand_as(ws))
    g.eval()
    torch.testing.assert_close(g(z, noise_mode="const"), g.synthesis(g.mapping(z), noise_mode="const"))


def test_truncation_and_the_tracked_w_average():
    torch.manual_seed(6)
    g, _ = stylegan2.build(_spec(8), **TINY)
    z = torch.randn(8, 16)
    g.eval()
    w = g.mapping(z)
    assert torch.equal(g.mapping.w_avg, torch.zeros(16))  # eval mode does not track
    g.train()
    g.mapping(z)  # one training call: w̄ ← 0.995·w̄ + 0.005·mean_batch w
    torch.testing.assert_close(g.mapping.w_avg, 0.005 * w[:, 0].mean(dim=0))
    before = g.mapping.w_avg.clone()
    g.mapping(z)
    torch.testing.assert_close(g.mapping.w_avg, 0.995 * before + 0.005 * w[:, 0].mean(dim=0))
    g.eval()
    w_avg = g.mapping.w_avg
    torch.testing.assert_close(g.mapping(z, psi=0.0), w_avg.expand(8, g.num_ws, 16))
    torch.testing.assert_close(g.mapping(z, psi=1.0), w)
    torch.testing.assert_close(g.mapping(z, psi=0.5), w_avg + 0.5 * (w - w_avg))
    cut = g.mapping(z, psi=0.0, cutoff=2)
    torch.testing.assert_close(cut[:, :2], w_avg.expand(8, 2, 16))
    torch.testing.assert_close(cut[:, 2:], w[:, 2:])
    torch.testing.assert_close(g(z, psi=0.0, noise_mode="const"), g(z[:1], psi=0.0, noise_mode="const").expand(8, -1,
                                                                                                                -1, -1))


def test_conditional_networks_read_the_labels():
    torch.manual_seed(7)
    g, d = stylegan2.build(_spec(8, 3), **TINY, n_classes=4)
    g.eval()
    z = torch.randn(1, 16).expand(4, 16)
    ws = g.mapping(z, torch.arange(4))
    assert all(not torch.allclose(ws[0], ws[k]) for k in range(1, 4))
    torch.testing.assert_close(g.mapping(z, torch.full((4,), 2)), ws[2:3].expand(4, -1, -1))
    x = g(z, torch.arange(4), noise_mode="const")
    assert x.shape == (4, 3, 8, 8)
    logits = d(x, torch.arange(4))
    assert logits.shape == (4,)
    judged, aux = d.judge(x, torch.arange(4))
    assert aux is None and torch.equal(judged, logits)
    out, cmap = d.b4.out(d.features(x)), d.mapping(None, torch.arange(4))
    assert cmap.shape == (4, 16) and d.cmap_dim == 16
    torch.testing.assert_close(logits, (out * cmap).sum(dim=1) / 4.0)  # ⟨o, cmap⟩/√cmap_dim
    assert not torch.allclose(d(x, torch.zeros(4, dtype=torch.long)), logits)
    with pytest.raises(ValueError, match="labels"):
        g(z)
    assert stylegan2.NATIVE_CONDITIONING == ("projection",)


# ---------------------------------------------------------------- the discriminator


def test_minibatch_stddev_is_the_groups_standard_deviation():
    x = torch.randn(1, 4, 3, 3).expand(8, -1, -1, -1)
    out = MinibatchStd(4, 1)(x)
    assert out.shape == (8, 5, 3, 3)
    torch.testing.assert_close(out[:, 4], torch.full((8, 3, 3), 1e-4))  # √(0 + 1e-8): identical samples
    torch.testing.assert_close(out[:, :4], x)
    # groups are samples i, i + N/G, …: here {0, 2} and {1, 3} of ±a, std a (population), a = 1 and 3
    a = torch.tensor([1.0, 3.0, -1.0, -3.0]).reshape(4, 1, 1, 1).expand(4, 2, 2, 2)
    got = MinibatchStd(2, 2)(a)[:, 2:]
    expected = torch.tensor([1.0, 3.0, 1.0, 3.0]).reshape(4, 1, 1, 1).expand(4, 2, 2, 2)
    torch.testing.assert_close(got, expected)
    assert MinibatchStd(4)(torch.randn(6, 4, 2, 2)).shape == (6, 5, 2, 2)  # 4 does not divide 6: groups of 2


def test_discriminator_shapes_features_and_residual_blocks():
    torch.manual_seed(8)
    g, d = stylegan2.build(_spec(16, 3), **TINY)
    x = torch.randn(4, 3, 16, 16)
    assert d.block_resolutions == [16, 8] and d(x).shape == (4,)
    features = d.features(x)
    assert features.shape == (4, 16)
    torch.testing.assert_close(d.from_features(features), d(x))
    block = d.b16
    h = block.fromrgb(x)
    torch.testing.assert_close(block(x), (block.skip(h) + block.conv1(block.conv0(h))) * math.sqrt(0.5))
    assert block.skip.bias is None and g(torch.randn(4, 16)).shape == (4, 3, 16, 16)


def test_initialisation_follows_the_reference():
    g, d = stylegan2.build(_spec(8), **TINY)
    layers = [g.synthesis.b4.conv1, g.synthesis.b8.conv0, g.synthesis.b8.conv1]
    assert all(torch.equal(layer.noise_strength, torch.zeros([])) for layer in layers)
    assert all(torch.equal(m.affine.bias, torch.ones_like(m.affine.bias)) for m in [*layers, g.synthesis.b8.torgb])
    assert all(not layer.bias.any() for layer in layers) and not d.b8.conv0.bias.any()
    z = torch.randn(3, 16)
    g.eval()
    torch.testing.assert_close(g(z, noise_mode="random"), g(z, noise_mode="const"))  # strength 0: no noise yet


# ---------------------------------------------------------------- training, sizes and refusals


def test_an_adam_step_on_each_network_changes_it_and_r1_double_backward_works():
    torch.manual_seed(9)
    g, d = stylegan2.build(_spec(8, 3), **TINY)
    opt_g = torch.optim.Adam(g.parameters(), lr=0.0025, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=0.0025, betas=(0.0, 0.99))
    real = torch.rand(8, 3, 8, 8) * 2 - 1
    real.requires_grad_(True)
    before_d = [p.detach().clone() for p in d.parameters()]
    real_logits, fake_logits = d(real), d(g(torch.randn(8, 16)).detach())
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    r1 = 0.5 * grad.square().sum(dim=[1, 2, 3]).mean()
    d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean() + r1
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    before_g = [p.detach().clone() for p in g.parameters()]
    fake = g(torch.randn(8, 16))
    g_loss = F.softplus(-d(fake)).mean()  # non-saturating
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and torch.isfinite(fake).all()
    changed_d = sum(not torch.equal(a, b) for a, b in zip(before_d, d.parameters()))
    changed_g = sum(not torch.equal(a, b) for a, b in zip(before_g, g.parameters()))
    assert changed_d == len(before_d) and changed_g == len(before_g)  # every parameter had a gradient


def test_parameter_counts_at_the_reference_cifar10_configuration():
    """Counted on the reference code (NVlabs/stylegan2-ada-pytorch, --cfg cifar widths, 32 px RGB): G 19,947,539
    unconditional and 20,215,315 with 10 classes; its residual D 21,507,073 and 23,876,096 (the cifar config's
    'orig' D, without the skips, has 20,720,641)."""
    spec = _spec(32, 3)
    g, d = stylegan2.build(spec, mapping_layers=2)
    assert (_params(g), _params(d)) == (19_947_539, 21_507_073)
    assert g.num_ws == 8 and stylegan2.channels(32, 16384, 512) == {4: 512, 8: 512, 16: 512, 32: 512}
    g, d = stylegan2.build(spec, mapping_layers=2, channel_base=32768, n_classes=10)
    assert (_params(g), _params(d)) == (20_215_315, 23_876_096)


def test_fits_refuses_sides_that_are_not_powers_of_two():
    assert stylegan2.fits(_spec(32, 3)) is None and stylegan2.fits(_spec(8)) is None
    refusal = stylegan2.fits(DataSpec("mnist", (1, 28, 28), "image"))
    assert isinstance(refusal, ConfigError) and (refusal.key, refusal.value) == ("model", "stylegan2")
    assert "dataset=mnist" in str(refusal) and "dataset.pad_to=32" in str(refusal)  # the 28 px sets pad in place
    other = str(stylegan2.fits(DataSpec("folder", (3, 28, 28), "image")))
    assert "--pad-to" in other and "dataset.size" in other
    assert stylegan2.fits(_spec(4)).key == "model"
    assert stylegan2.fits(DataSpec("ring", (2,), "points")).key == "model"
    assert stylegan2.fits(_spec(8), d_norm="batch").key == "model.d_norm"  # auto resolved to batch
    assert stylegan2.fits(_spec(8), d_norm="auto") is None
    assert stylegan2.fits(_spec(8), mbstd_channels=3, channel_max=16).key == "model.mbstd_channels"
    with pytest.raises(ConfigError):
        stylegan2.build(_spec(28), **TINY)
