"""MIX+GAN: the weighted pairwise payoff, mixture sampling and the entropy term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gan_lab.compose import build_components, build_system
from gan_lab.errors import ConfigError
from gan_lab.nets.mixture import DiscriminatorMixture, GeneratorMixture
from gan_lab.systems.conditioning import Batch
from gan_lab.train import train
from tests.conftest import compose_cfg


def _system(*overrides):
    cfg = compose_cfg("model=mlp", "dataset=ring", "model.hidden=[8]", "mixture.generators=3",
                      "mixture.discriminators=2", *overrides)
    system = build_system(cfg, build_components(cfg))
    opt_d, opt_g = system.configure_optimizers()
    system.manual_backward = lambda loss: loss.backward()
    return system, opt_d, opt_g


def test_mixtures_are_built_with_independent_members():
    system, _, _ = _system()
    g, d = system.generator, system.discriminator
    assert isinstance(g, GeneratorMixture) and len(g.members) == 3
    assert isinstance(d, DiscriminatorMixture) and len(d.members) == 2
    w0 = [m.net[0].weight for m in g.members]
    assert not torch.equal(w0[0], w0[1])  # separately initialised
    torch.testing.assert_close(g.weights, torch.full((3,), 1 / 3))


def test_d_loss_is_the_weighted_sum_over_all_pairs():
    system, opt_d, _ = _system("mixture.entropy_weight=0.0")
    with torch.no_grad():
        system.generator.logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
        system.discriminator.logits.copy_(torch.tensor([0.3, -0.2]))
    real = torch.randn(16, 2)
    torch.manual_seed(7)
    z = [system.sample_z(16) for _ in range(3)]
    u, v = system.generator.weights.detach(), system.discriminator.weights.detach()
    expected = 0.0
    with torch.no_grad():
        fakes = [g(zi) for g, zi in zip(system.generator.members, z)]
        for j, d in enumerate(system.discriminator.members):
            for i in range(3):
                phi = F.softplus(-d(real)).mean() + F.softplus(d(fakes[i])).mean()
                expected += float(u[i] * v[j] * phi)
    torch.manual_seed(7)  # the step draws the same z
    before = [p.detach().clone() for p in system.discriminator.parameters()]
    system.d_step(opt_d, Batch(real))
    d_loss = float(system.statistics.sums()["d_loss"])
    assert d_loss == pytest.approx(expected, rel=1e-5)
    after = list(system.discriminator.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after))  # members and logits all moved


def test_g_step_moves_every_generator_and_its_weights_only():
    system, _, opt_g = _system()
    g0 = [p.detach().clone() for p in system.generator.parameters()]
    d0 = [p.detach().clone() for p in system.discriminator.parameters()]
    system.g_step(opt_g, Batch(torch.randn(16, 2)))
    assert all(not torch.equal(b, a) for b, a in zip(g0, system.generator.parameters()))
    assert all(torch.equal(b, a) for b, a in zip(d0, system.discriminator.parameters()))


def test_sampling_follows_the_mixture_weights():
    system, _, _ = _system()
    g = system.generator
    with torch.no_grad():
        g.logits.copy_(torch.tensor([-30.0, 30.0, -30.0]))  # all weight on member 1
    z = torch.randn(50, g.members[0].net[0].in_features)
    with torch.no_grad():
        torch.testing.assert_close(g(z), g.members[1](z))
        g.logits.copy_(torch.log(torch.tensor([0.2, 0.5, 0.3])))
        gen = torch.Generator().manual_seed(0)
        choice = torch.multinomial(g.weights, 20000, replacement=True, generator=gen)
    freq = torch.bincount(choice, minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.015, rtol=0)


def test_entropy_term_pulls_weights_toward_uniform():
    system, _, opt_g = _system("mixture.entropy_weight=100.0")
    with torch.no_grad():
        system.generator.logits.copy_(torch.tensor([2.0, 0.0, -2.0]))
    h0 = float(system.generator.entropy().detach())
    for _ in range(5):
        system.g_step(opt_g, Batch(torch.randn(16, 2)))
    assert float(system.generator.entropy()) > h0


@pytest.mark.parametrize("extra", [["model=dcgan", "dataset=digits", "model.width=8"], ["tricks.ema=0.9"],
                                   ["tricks.historical_averaging=0.01"]])
def test_mixture_trains_end_to_end(tiny, tmp_path, extra):
    base = [] if extra[0].startswith("model=") else ["model=mlp", "dataset=ring", "model.hidden=[16]"]
    summary = train(tiny("logger=none", "mixture.generators=2", "mixture.discriminators=2", *base, *extra), tmp_path)
    assert summary["metrics"]["train/mixture/g_entropy"] == pytest.approx(0.693, abs=0.01)


@pytest.mark.parametrize(("overrides", "key"), [
    (["model=progressive"], "mixture.generators"),
    (["model=mlp", "dataset=ring", "tricks.feature_matching=true"], "tricks.feature_matching"),
    (["model=mlp", "dataset=ring", "mixture.generators=0"], "mixture.generators"),
])
def test_mixture_refuses_what_it_cannot_mix(overrides, key):
    with pytest.raises(ConfigError) as info:
        build_components(compose_cfg("mixture.generators=2", *overrides))
    assert info.value.key == key
