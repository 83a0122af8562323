"""LAPGAN (Denton 2015): the pyramid, the sampling chain, per-level training steps, a full run."""

from __future__ import annotations

import copy
from functools import partial

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from gan_lab.compose import build_components, check_settings
from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError
from gan_lab.losses import Hinge, NonSaturating, Wasserstein
from gan_lab.nets import lapgan
from gan_lab.nets.lapgan import down, gaussian_pyramid, laplacian_pyramid, reconstruct, up
from gan_lab.regularizers import GradientPenalty, NoRegularizer, WeightClip
from gan_lab.systems.conditioning import Batch
from gan_lab.systems.lapgan import LAPGAN
from gan_lab.train import train
from tests.conftest import compose_cfg

TINY = {"z_dim": 12, "level_z_dim": 3, "width": 4, "hidden": 16}
EXACT = {"rtol": 0.0, "atol": 0.0}


def image_spec(shape):
    return DataSpec("x", shape, "image")


def dyadic_images(n, shape, seed=0):
    """8-bit-like pixels k/128 − 1: every pooling and residual of them is exact in fp32."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).float() / 128 - 1


# ---------------------------------------------------------------- the pyramid
@pytest.mark.parametrize(("shape", "sides"), [((1, 28, 28), [28, 14, 7]), ((3, 32, 32), [32, 16, 8, 4])])
def test_pyramid_shapes_and_exact_round_trip(shape, sides):
    levels = len(sides) - 1
    assert lapgan.default_levels(shape[1]) == levels
    x = dyadic_images(4, shape)
    images = gaussian_pyramid(x, levels)
    residuals, conditions, coarse = laplacian_pyramid(x, levels)
    assert [i.shape[-1] for i in images] == sides
    assert_close(coarse, images[-1], **EXACT)
    for k in range(levels):
        assert residuals[k].shape == conditions[k].shape == (4, shape[0], sides[k], sides[k])
        assert_close(conditions[k], up(images[k + 1]), **EXACT)
        assert_close(up(images[k + 1]) + residuals[k], images[k], **EXACT)  # I_k == up(I_{k+1}) + h_k
        # nearest up is a right inverse of 2× average pooling: residuals carry no coarse content
        assert_close(down(up(images[k + 1])), images[k + 1], **EXACT)
        assert_close(down(residuals[k]), torch.zeros_like(images[k + 1]), **EXACT)
    assert_close(reconstruct(residuals, coarse), x, **EXACT)
    y = torch.rand(4, *shape, dtype=torch.float64) * 2 - 1  # arbitrary values: equal up to rounding
    assert_close(reconstruct(*laplacian_pyramid(y, levels)[::2]), y)


@pytest.mark.parametrize(("side", "levels"), [(8, 1), (16, 2), (28, 2), (32, 3), (48, 3), (64, 3), (7, 0), (6, 0)])
def test_default_levels(side, levels):
    assert lapgan.default_levels(side) == levels


@pytest.mark.parametrize(("shape", "kwargs", "key"), [
    ((2,), {}, "model"), ((1, 28, 32), {}, "model"), ((1, 7, 7), {}, "model"), ((1, 6, 6), {}, "model"),
    ((1, 28, 28), {"levels": 3}, "model.levels"), ((1, 8, 8), {"levels": 2}, "model.levels"),
    ((1, 32, 32), {"z_dim": 9}, "model.z_dim")])
def test_fits_refuses_what_it_cannot_fit(shape, kwargs, key):
    spec = DataSpec("x", shape, "points" if len(shape) == 1 else "image")
    refusal = lapgan.fits(spec, **{**TINY, **kwargs})
    assert isinstance(refusal, ConfigError) and refusal.key == key
    if key == "model":
        assert refusal.value == "lapgan"
    assert lapgan.fits(image_spec((1, 32, 32)), **TINY) is None


@pytest.mark.parametrize(("override", "key"), [
    ("model.levels=0", "model.levels"), ("model.g_norm=layer", "model.g_norm"), ("model.d_norm=group", "model.d_norm")])
def test_config_refuses_bad_settings(override, key):
    with pytest.raises(ConfigError) as info:
        check_settings(compose_cfg("model=lapgan", "dataset=digits", override))
    assert info.value.key == key


# ---------------------------------------------------------------- the networks
@pytest.mark.parametrize(("shape", "sides"), [((1, 28, 28), [7, 14, 28]), ((3, 32, 32), [4, 8, 16, 32])])
def test_sampling_chain_shapes_at_every_level(shape, sides):
    torch.manual_seed(0)
    g, d = lapgan.build(image_spec(shape), d_norm="layer" if shape[0] == 1 else "batch", **TINY)
    assert g.levels == d.levels == len(sides) - 1
    assert len(list(g.refiners)) == len(list(d.residual)) == g.levels
    g.eval()
    z = torch.randn(5, TINY["z_dim"])
    chain = g.chain(z)
    assert [tuple(i.shape) for i in chain] == [(5, shape[0], s, s) for s in sides]  # I_K … I_0
    assert all(i.abs().max() <= 1 for i in chain)
    assert_close(g(z), chain[-1], **EXACT)
    assert_close(g(z), g(z.clone()), **EXACT)  # a pure function of z: per-level noise is sliced from it
    assert not torch.equal(g(z), g(torch.cat([z[:, :-1], z[:, -1:] + 1], 1)))  # the finest level's z_0 counts
    zs = g.split(z)
    assert [c.shape[1] for c in zs] == [3] * g.levels + [12 - 3 * g.levels]
    # the chain is the pyramid reconstruction: I_k = clamp(up(I_{k+1}) + G_k(z_k, up(I_{k+1})))
    k = g.levels - 1
    assert_close(chain[1], (up(chain[0]) + g.refiners[k](zs[k], up(chain[0]))).clamp(-1, 1), **EXACT)
    # D judges one level at a time; its forward on full images is the sum of the levels' logits
    x = torch.rand(5, *shape) * 2 - 1
    residuals, conditions, coarse = laplacian_pyramid(x, g.levels)
    parts = [d.level(j, residuals[j], conditions[j]) for j in range(g.levels)] + [d.level(g.levels, coarse)]
    assert all(p.shape == (5,) for p in parts)
    assert_close(d(x), torch.stack(parts).sum(0))


# ---------------------------------------------------------------- the system's steps
def make_system(shape=(3, 16, 16), loss=None, regularizer=None, lr=1e-2, **kwargs):
    torch.manual_seed(0)
    g, d = lapgan.build(image_spec(shape), **TINY)
    system = LAPGAN(g, d, loss or NonSaturating(), regularizer or NoRegularizer(),
                    partial(torch.optim.Adam, lr=lr), partial(torch.optim.Adam, lr=lr), z_dim=TINY["z_dim"], **kwargs)
    opt_d, opt_g = system.configure_optimizers()
    system.manual_backward = lambda loss: loss.backward()  # no Trainer attached
    return system, opt_d, opt_g


def params(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def moved(before, module, prefix):
    """Names of weights under ``prefix`` that changed, and those that did not."""
    now = dict(module.named_parameters())
    names = [n for n in before if n.startswith(prefix) and n.endswith("weight")]
    return ({n for n in names if not torch.equal(before[n], now[n])},
            {n for n in names if torch.equal(before[n], now[n])})


def level_prefixes(levels):
    return [f"residual.{k}." for k in range(levels)] + ["coarse."]


@pytest.mark.parametrize("loss", [NonSaturating, Hinge])
def test_d_step_changes_every_level_of_d_and_nothing_of_g(loss):
    system, opt_d, _ = make_system(loss=loss())
    assert system.levels == 2
    g0, d0 = params(system.generator), params(system.discriminator)
    system.d_step(opt_d, Batch(dyadic_images(8, (3, 16, 16))), measure_grad=True)
    assert params(system.generator).keys() == g0.keys()
    assert all(torch.equal(p, g0[n]) for n, p in system.generator.named_parameters())
    assert all(p.grad is None for p in system.generator.parameters())
    for prefix in level_prefixes(2):
        changed, unchanged = moved(d0, system.discriminator, prefix)
        assert changed and not unchanged, prefix
    logged = set(system.statistics.sums())
    assert {"d_loss", "d_real", "d_fake", "grad_norm_d"} <= logged
    assert {f"level{k}/{s}" for k in range(3) for s in ("d_loss", "grad_norm_d")} <= logged
    level_sum = sum(system.statistics.sums()[f"level{k}/d_loss"] for k in range(3))
    assert_close(system.statistics.sums()["d_loss"], level_sum)


@pytest.mark.parametrize("loss", [NonSaturating, Wasserstein])
def test_g_step_changes_every_level_of_g_and_nothing_of_d(loss):
    system, _, opt_g = make_system(loss=loss())
    g0, d0 = params(system.generator), params(system.discriminator)
    system.g_step(opt_g, Batch(dyadic_images(8, (3, 16, 16))), measure_grad=True)
    assert all(torch.equal(p, d0[n]) for n, p in system.discriminator.named_parameters())
    assert all(p.grad is None for p in system.discriminator.parameters())
    assert all(p.requires_grad for p in system.discriminator.parameters())  # unfrozen again
    for prefix in ["refiners.0.", "refiners.1.", "coarse."]:
        changed, unchanged = moved(g0, system.generator, prefix)
        assert changed and not unchanged, prefix
    assert {f"level{k}/g_loss" for k in range(3)} | {"g_loss", "grad_norm_g"} <= set(system.statistics.sums())


def test_levels_train_on_real_conditions_only():
    """Each level's loss depends on its own G and D alone: G_k's gradient is level k's term's."""
    system, _, _ = make_system()
    real = dyadic_images(8, (3, 16, 16))
    _, conditions = system.real_levels(real)
    torch.manual_seed(3)
    fakes = system.fake_levels(conditions, 8)
    system.discriminator.level(1, fakes[1], conditions[1]).sum().backward()
    for name, p in system.generator.named_parameters():
        assert (p.grad is not None) == name.startswith("refiners.1."), name
    for name, p in system.discriminator.named_parameters():
        assert (p.grad is not None) == name.startswith("residual.1."), name


def test_gradient_penalty_is_taken_per_level():
    system, opt_d, _ = make_system(loss=Wasserstein(), regularizer=GradientPenalty(10.0))
    system.d_step(opt_d, Batch(dyadic_images(8, (3, 16, 16))))
    per_level = [system.statistics.sums()[f"level{k}/d_penalty"] for k in range(3)]
    assert all(p > 0 for p in per_level)
    assert_close(system.statistics.sums()["d_penalty"], sum(per_level))


def test_weight_clipping_reaches_every_level():
    system, opt_d, _ = make_system(loss=Wasserstein(), regularizer=WeightClip(0.03), lr=0.05)
    for _ in range(2):
        system.d_step(opt_d, Batch(dyadic_images(8, (3, 16, 16))))
    for net in system.discriminator.level_networks():
        values = torch.cat([p.detach().flatten() for p in net.parameters()])
        assert values.abs().max() == pytest.approx(0.03)


def test_generate_and_generate_chain():
    system, _, _ = make_system()
    z = torch.randn(7, TINY["z_dim"])
    images = system.generate(z, batch_size=3)
    assert images.shape == (7, 3, 16, 16) and images.dtype == torch.float32
    assert images.abs().max() <= 1 and system.generator.training  # eval for sampling only
    chain = system.generate_chain(z)
    assert [tuple(c.shape) for c in chain] == [(7, 3, s, s) for s in (4, 8, 16)]
    assert_close(chain[-1], images)


def test_diffaugment_moves_a_level_and_its_condition_with_one_draw():
    """D_k judges T(c + h) − T(c) given T(c), one draw for the pair and for the real and the fake residual: under a
    translation the residual moves with its condition (before, the residual moved and the condition stayed)."""
    from gan_lab.augment import _translate
    from gan_lab.tricks import Tricks

    system, opt_d, _ = make_system(tricks=Tricks(diffaug="translation"))
    judged = []
    system.judge_level = lambda k, x, c: judged.append((k, x, c)) or LAPGAN.judge_level(system, k, x, c)
    real = dyadic_images(8, (3, 16, 16))  # every level, residual and shift of them exact in fp32
    system.d_step(opt_d, Batch(real))
    (k, seen_h, seen_c), (_, _, fake_c) = judged[:2]
    assert k == 0 and fake_c is seen_c  # the fake residual is judged with the same augmented condition
    residuals, conditions, _ = laplacian_pyramid(real, system.levels)
    moved = 0
    shift = lambda x, t: _translate(x, torch.tensor([t[0]]), torch.tensor([t[1]]))  # one image (1, C, H, W)
    for n in range(8):
        c, h, want = conditions[0][n:n + 1], residuals[0][n:n + 1], seen_c[n:n + 1]
        found = [t for t in np.ndindex(5, 5) if torch.equal(shift(c, np.subtract(t, 2)), want)]
        assert len(found) == 1, found  # the condition's own shift, within ±2 px (1/8 of 16)
        t = np.subtract(found[0], 2)
        assert_close(seen_h[n:n + 1], shift(h, t), rtol=0, atol=1e-6)
        moved += bool(t.any())
    assert moved > 0


@pytest.mark.parametrize(("override", "key"), [
    ("tricks.feature_matching=true", "tricks.feature_matching"),
    ("tricks.unroll_steps=2", "tricks.unroll_steps"),
    ("tricks.minibatch_discrimination=true", "tricks.minibatch_discrimination"),
    ("tricks.instance_noise=0.1", "tricks.instance_noise")])
def test_refuses_single_d_tricks(override, key):
    from gan_lab.compose import build_system

    cfg = compose_cfg("model=lapgan", "dataset=digits", "model.width=4", "model.hidden=16", override)
    with pytest.raises(ConfigError) as info:
        build_system(cfg, build_components(cfg))
    assert info.value.key == key


# ---------------------------------------------------------------- full runs through the config
def test_full_run_writes_the_chain_picture_and_samples(tiny, tmp_path):
    cfg = tiny("model=lapgan", "dataset=digits", "logger=none", "model.width=8", "model.hidden=32")
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["iterations"] == 4
    assert (tmp_path / "lapgan_chain.png").is_file() and (tmp_path / "samples" / "final.png").is_file()
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (64, 1, 8, 8) and np.abs(samples).max() <= 1
    metrics = summary["metrics"]
    assert {"train/d_loss", "train/g_loss", "train/level0/d_loss", "train/level1/g_loss"} <= set(metrics)


def test_full_run_with_weight_clipping_clips_every_level(tiny, tmp_path):
    cfg = tiny("model=lapgan", "dataset=digits", "logger=none", "model.width=8", "model.hidden=32",
               "loss=wasserstein", "regularizer=clip", "regularizer.clip_value=0.03", "train.k=2",
               "optimizer.d.lr=0.05")
    captured = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LAPGAN, "on_train_end", lambda self: captured.update(d=copy.deepcopy(self.discriminator)))
        summary = train(cfg, tmp_path)
    assert summary["d_updates"] == 8 and (tmp_path / "lapgan_chain.png").is_file()
    assert np.load(tmp_path / "samples.npy").shape == (64, 1, 8, 8)
    for net in captured["d"].level_networks():
        values = torch.cat([p.detach().flatten() for p in net.parameters()])
        assert values.abs().max() <= 0.03 + 1e-7
        assert values.abs().max() == pytest.approx(0.03)
