"""Progressive growing (Karras 2018): phase plan, shapes, fade-in continuity, minibatch stddev."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from gan_lab.compose import check_settings
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.nets import progressive
from gan_lab.nets.progressive import MinibatchStdDev, downsample_to, phase_at
from tests.conftest import compose_cfg

Z = 8
TINY = {"z_dim": Z, "width": 4, "max_width": 8}
EXACT = {"rtol": 0.0, "atol": 0.0}


def image_spec(shape):
    return DataSpec("x", shape, "image")


def tiny_pair(shape, seed=0, **kwargs):
    torch.manual_seed(seed)
    return progressive.build(image_spec(shape), **{**TINY, **kwargs})


@pytest.mark.parametrize(("side", "resolutions"), [
    (4, [4]), (8, [4, 8]), (28, [7, 14, 28]), (32, [4, 8, 16, 32]), (64, [4, 8, 16, 32, 64])])
def test_plan_grows_from_the_base_side(side, resolutions):
    assert progressive.plan(image_spec((1, side, side))) == resolutions


@pytest.mark.parametrize(("shape", "words"), [
    ((2,), "model=mlp"), ((1, 28, 32), "square"), ((1, 15, 15), "b·2ⁿ"), ((1, 3, 3), "b·2ⁿ"),
    ((1, 36, 36), "b·2ⁿ")])
def test_plan_refuses_data_it_cannot_fit(shape, words):
    spec = DataSpec("x", shape, "points" if len(shape) == 1 else "image")
    refusal = progressive.fits(spec, **TINY, d_norm="none")
    assert isinstance(refusal, ConfigError) and re.search(words, str(refusal))
    assert (refusal.key, refusal.value) == ("model", "progressive")


def test_build_refuses_batch_norm_and_starts_at_phase_0():
    # d_norm as the lab passes it, resolved: auto with the default regularizer becomes batch
    refusal = progressive.fits(image_spec((1, 8, 8)), d_norm="batch", **TINY)
    assert isinstance(refusal, ConfigError) and "no batch norm" in str(refusal)
    assert refusal.key == "model.d_norm"
    assert progressive.fits(image_spec((1, 8, 8)), d_norm="layer", **TINY) is None
    with pytest.raises(ConfigError, match="model.d_norm='batch'"):
        check_settings(compose_cfg("model=progressive", "dataset=digits", "model.d_norm=batch"))
    g, d = progressive.build(image_spec((1, 8, 8)), d_norm="layer", **TINY)
    assert (g.phase, g.alpha, d.phase, d.alpha) == (0, 1.0, 0, 1.0)
    assert g.resolution == d.resolution == 4


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shapes_at_every_phase(shape):
    g, d = tiny_pair(shape)
    x = torch.rand(5, *shape) * 2 - 1
    features = min(TINY["width"] * 2 ** (len(g.resolutions) - 1), TINY["max_width"])
    for phase, r in enumerate(progressive.plan(image_spec(shape))):
        for alpha in (0.0, 0.5, 1.0):
            g.set_phase(phase, alpha)
            d.set_phase(phase, alpha)
            fake = g(torch.randn(5, Z))
            assert fake.shape == (5, shape[0], r, r) and fake.abs().max() <= 1
            assert g.resolution == d.resolution == r
            assert d(fake).shape == (5,)
            assert d(downsample_to(x, r)).shape == (5,)
            assert d.features(downsample_to(x, r)).shape == (5, features)
    with pytest.raises(ValueError, match="downsample_to"):
        d(x[:, :, :-2, :-2])


@pytest.mark.parametrize(("iteration", "expected"), [
    (0, (0, 1.0)), (99, (0, 1.0)),         # phase 0: no fade
    (100, (1, 0.0)), (125, (1, 0.5)),      # phase 1 fades over its first 50 iterations
    (150, (1, 1.0)), (199, (1, 1.0)),      # then alpha stays 1
    (200, (2, 0.0)), (210, (2, 0.2)),      # last phase fades in too
    (250, (2, 1.0)), (10_000, (2, 1.0)),   # and lasts forever
])
def test_phase_at_schedule(iteration, expected):
    phase, alpha = phase_at(iteration, phase_iterations=100, n_phases=3, fade_fraction=0.5)
    assert phase == expected[0] and alpha == pytest.approx(expected[1])


def test_phase_at_edge_settings():
    assert phase_at(100, 100, 3, fade_fraction=0.0) == (1, 1.0)  # no fade: switch at once
    assert phase_at(150, 100, 3, fade_fraction=1.0) == (1, 0.5)
    assert phase_at(500, 100, 1) == (0, 1.0)
    with pytest.raises(ConfigError, match="model.system.phase_iterations=0"):
        check_settings(compose_cfg("model=progressive", "model.system.phase_iterations=0"))
    with pytest.raises(ConfigError, match="model.system.fade_fraction=1.5"):
        check_settings(compose_cfg("model=progressive", "model.system.fade_fraction=1.5"))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_generator_is_continuous_across_a_phase_change(shape):
    g, _ = tiny_pair(shape)
    z = torch.randn(4, Z)
    for p in range(1, len(g.resolutions)):
        g.set_phase(p - 1, 1.0)
        before = F.interpolate(g(z), scale_factor=2, mode="nearest")
        g.set_phase(p, 0.0)
        assert_close(g(z), before, **EXACT)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_discriminator_is_continuous_across_a_phase_change(shape):
    _, d = tiny_pair(shape)
    x = torch.rand(4, *shape) * 2 - 1
    for p, r in enumerate(d.resolutions[1:], start=1):
        d.set_phase(p - 1, 1.0)
        before = d(downsample_to(x, r // 2))
        d.set_phase(p, 0.0)
        assert_close(d(downsample_to(x, r)), before, **EXACT)


def test_outputs_change_continuously_with_alpha():
    g, d = tiny_pair((3, 32, 32))
    z, x = torch.randn(4, Z), torch.rand(4, 3, 16, 16) * 2 - 1
    for net, inp in ((g, z), (d, x)):
        diffs = []
        for step in (1e-2, 1e-3, 1e-4):
            net.set_phase(2, 0.5)
            a = net(inp)
            net.set_phase(2, 0.5 + step)
            diffs.append((net(inp) - a).abs().max().item())
        assert 0 < diffs[0] < 0.1
        assert diffs[1] < diffs[0] / 5 and diffs[2] < diffs[1] / 5  # shrinks with the step


def loop_mbstd(x: torch.Tensor, group: int, eps: float = 1e-8) -> list[float]:
    """The statistic each sample gets, from the formula with plain Python loops."""
    n, c, h, w = x.shape
    m = n // group
    stats = []
    for k in range(m):
        members = [x[i * m + k] for i in range(group)]  # sample n is in group n mod M
        stds = []
        for ci in range(c):
            for hi in range(h):
                for wi in range(w):
                    vals = [float(s[ci, hi, wi]) for s in members]
                    mean = sum(vals) / group
                    stds.append(math.sqrt(sum((v - mean) ** 2 for v in vals) / group + eps))
        stats.append(sum(stds) / len(stds))
    return [stats[i % m] for i in range(n)]


@pytest.mark.parametrize(("n", "group_size", "group"), [(6, 3, 3), (6, 4, 3), (8, 4, 4), (2, 4, 2)])
def test_minibatch_stddev_matches_a_loop(n, group_size, group):
    torch.manual_seed(1)
    x = torch.randn(n, 2, 3, 3, dtype=torch.float64)
    layer = MinibatchStdDev(group_size)
    assert layer.group(n) == group
    out = layer(x)
    assert out.shape == (n, 3, 3, 3)
    assert_close(out[:, :2], x, **EXACT)
    expected = torch.tensor(loop_mbstd(x, group), dtype=torch.float64)
    assert_close(out[:, 2], expected[:, None, None].expand(n, 3, 3))


def test_minibatch_stddev_is_zero_for_identical_samples():
    x = torch.randn(1, 2, 3, 3).expand(8, 2, 3, 3)
    stat = MinibatchStdDev(4)(x)[:, 2]
    assert_close(stat, torch.full_like(stat, math.sqrt(1e-8)))  # 0 up to the √ε guard
    assert_close(MinibatchStdDev(4)(x[:1])[:, 2], torch.full((1, 3, 3), math.sqrt(1e-8)))


def groups(net, prefixes):
    """Parameters by name, kept if the name starts with one of ``prefixes``."""
    return {n: p for n, p in net.named_parameters() if n.startswith(prefixes)}


# 32 px at phase 2 (16×16) fading: active are blocks 0-2 and both rgb layers 1 and 2.
G_ACTIVE = ("blocks.0.", "blocks.1.", "blocks.2.", "to_rgb.1.", "to_rgb.2.")
G_IDLE = ("blocks.3.", "to_rgb.0.", "to_rgb.3.")
D_ACTIVE = ("blocks.0.", "blocks.1.", "blocks.2.", "from_rgb.1.", "from_rgb.2.", "head.")
D_IDLE = ("blocks.3.", "from_rgb.0.", "from_rgb.3.")


def test_groups_cover_every_parameter():
    g, d = tiny_pair((3, 32, 32))
    assert len(groups(g, G_ACTIVE)) + len(groups(g, G_IDLE)) == len(list(g.parameters()))
    assert len(groups(d, D_ACTIVE)) + len(groups(d, D_IDLE)) == len(list(d.parameters()))


def test_an_optimiser_step_moves_only_active_layers():
    g, d = tiny_pair((3, 32, 32))
    for net in (g, d):
        net.set_phase(2, 0.5)
    g_before = {n: p.detach().clone() for n, p in g.named_parameters()}
    d_before = {n: p.detach().clone() for n, p in d.named_parameters()}
    g_opt, d_opt = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    real, z = downsample_to(torch.rand(6, 3, 32, 32) * 2 - 1, 16), torch.randn(6, Z)

    d_loss = F.softplus(-d(real)).mean() + F.softplus(d(g(z).detach())).mean()
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    g_loss = F.softplus(-d(g(z))).mean()  # non-saturating
    g_opt.zero_grad()
    g_loss.backward()
    g_opt.step()

    for net, before, active, idle in ((g, g_before, G_ACTIVE, G_IDLE), (d, d_before, D_ACTIVE, D_IDLE)):
        for name, p in groups(net, active).items():
            assert not torch.equal(p, before[name]), name
        for name, p in groups(net, idle).items():
            assert torch.equal(p, before[name]), name


@pytest.mark.parametrize(("alpha", "g_idle", "d_idle"), [
    (0.5, G_IDLE, D_IDLE),
    (1.0, (*G_IDLE, "to_rgb.1."), (*D_IDLE, "from_rgb.1."))])  # faded in: the old rgb layer drops out
def test_gradients_reach_only_active_layers(alpha, g_idle, d_idle):
    g, d = tiny_pair((3, 32, 32))
    for net in (g, d):
        net.set_phase(2, alpha)
    d(g(torch.randn(4, Z))).sum().backward()
    for net, idle in ((g, g_idle), (d, d_idle)):
        for name, p in net.named_parameters():
            assert (p.grad is None) == name.startswith(idle), name


def test_phase_travels_in_the_state_dict():
    g, d = tiny_pair((1, 28, 28))
    g.set_phase(2, 0.25)
    d.set_phase(1, 0.75)
    g2, d2 = tiny_pair((1, 28, 28), seed=1)
    g2.load_state_dict(g.state_dict())
    d2.load_state_dict(d.state_dict())
    assert (g2.phase, g2.alpha, d2.phase, d2.alpha) == (2, 0.25, 1, 0.75)
    with pytest.raises(ValueError):
        g.set_phase(3)
    with pytest.raises(ValueError):
        g.set_phase(1, 1.5)


def test_downsample_to_halves_step_by_step():
    x = torch.rand(2, 3, 28, 28)
    assert_close(downsample_to(x, 7), F.avg_pool2d(F.avg_pool2d(x, 2), 2), **EXACT)
    assert_close(downsample_to(x, 7), F.avg_pool2d(x, 4))  # the same means, up to rounding
    assert downsample_to(x, 28) is x
    with pytest.raises(ValueError):
        downsample_to(x, 3)


def test_reals_fade_in_as_the_fakes_do(monkeypatch):
    """During a fade-in D sees α·x + (1−α)·up(down(x)): at α = 0 the previous phase's real image upsampled
    (as G's output is then), at α = 1 the real image itself."""
    from gan_lab.losses import NonSaturating
    from gan_lab.regularizers.none import NoRegularizer
    from gan_lab.systems import gan as gan_mod
    from gan_lab.systems.progressive import ProgressiveGAN

    g, d = tiny_pair((1, 8, 8))  # phases at 4 and 8 px
    system = ProgressiveGAN(g, d, NonSaturating(), NoRegularizer(), torch.optim.Adam, torch.optim.Adam, z_dim=Z,
                            phase_iterations=4, fade_fraction=0.5)  # phase 1: α = 0, 0.5, 1 at iterations 4, 5, 6
    seen = []
    monkeypatch.setattr(gan_mod.GAN, "training_step", lambda self, batch, batch_idx: seen.append(batch))
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    old = x.reshape(6, 1, 4, 2, 4, 2).mean(dim=(3, 5)).repeat_interleave(2, 2).repeat_interleave(2, 3)  # up(down(x))
    for iteration in (4, 5, 6):
        system.iteration = iteration
        system.training_step(x, 0)
    assert (g.alpha, d.alpha) == (1.0, 1.0)
    assert_close(seen[0], old, rtol=0, atol=1e-6)
    assert_close(seen[1], 0.5 * x + 0.5 * old, rtol=0, atol=1e-6)
    assert_close(seen[2], x, **EXACT)
