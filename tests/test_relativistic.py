"""Relativistic losses (Jolicoeur-Martineau 2018) against their formulas in plain float math, the symmetry
between the players, and G's step receiving D's outputs on real data."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lab.compose import build_components, build_system
from gan_lab.errors import ConfigError
from gan_lab.losses.relativistic import Relativistic, RelativisticAverage
from gan_lab.systems.conditioning import Batch
from tests.conftest import compose_cfg, refused


def _softplus(y: float) -> float:
    return math.log1p(math.exp(-abs(y))) + max(y, 0.0)


F1F2 = {  # the paper's f₁, f₂ per form, on Python floats
    "sigmoid": (lambda y: _softplus(-y), _softplus),
    "lsgan": (lambda y: (y - 1.0) ** 2, lambda y: (y + 1.0) ** 2),
    "hinge": (lambda y: max(0.0, 1.0 - y), lambda y: max(0.0, 1.0 + y)),
}
REAL = [1.5, -0.25, 0.75, 3.0]
FAKE = [-1.0, 0.5, -2.0, 0.125]


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def _rgan(a, b, form) -> float:
    f1, _ = F1F2[form]
    return _mean(f1(x - y) for x, y in zip(a, b))


def _ragan(a, b, form) -> float:
    f1, f2 = F1F2[form]
    return _mean(f1(x - _mean(b)) for x in a) + _mean(f2(y - _mean(a)) for y in b)


@pytest.mark.parametrize("form", sorted(F1F2))
@pytest.mark.parametrize(("cls", "reference"), [(Relativistic, _rgan), (RelativisticAverage, _ragan)],
                         ids=["rgan", "ragan"])
def test_losses_match_the_papers_formulas(cls, reference, form):
    loss = cls(form=form)
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    d = loss.d_loss(real, fake).item()
    g = loss.g_loss(fake, real).item()
    assert d == pytest.approx(reference(REAL, FAKE, form), rel=1e-12, abs=1e-12)
    assert g == pytest.approx(reference(FAKE, REAL, form), rel=1e-12, abs=1e-12)  # the roles swapped
    assert g != pytest.approx(d)  # and not the same number on this asymmetric batch


def test_at_equal_critic_values_the_sigmoid_losses_are_log_2_per_term():
    v = torch.full((5,), 0.3)
    assert Relativistic().d_loss(v, v).item() == pytest.approx(math.log(2), abs=1e-6)
    assert RelativisticAverage().g_loss(v, v).item() == pytest.approx(2 * math.log(2), abs=1e-6)


def test_bad_form_and_unpaired_batches_are_refused():
    assert str(refused("loss=rgan", "loss.form=softmax")).startswith(
        "loss.form='softmax' is not allowed: one of sigmoid, lsgan, hinge")
    with pytest.raises(ValueError, match="pairs real and fake"):
        Relativistic().d_loss(torch.zeros(3), torch.zeros(4))


def test_the_g_step_receives_real_logits_and_updates_only_g():
    cfg = compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[16]", "loss=ragan")
    c = build_components(cfg)
    system = build_system(cfg, c)
    seen = []
    original = c.loss.g_loss

    def spy(fake_logits, real_logits=None):
        seen.append(real_logits)
        return original(fake_logits, real_logits)

    c.loss.g_loss = spy
    real = c.source.sample(16, torch.Generator().manual_seed(0))
    system.discriminator.requires_grad_(False)  # as update_generator does
    fake = system.generator(system.sample_z(16))
    g_loss, _, _ = system.generator_objective(Batch(fake), Batch(real), [])
    assert seen and seen[0] is not None and seen[0].shape == (16,)
    d_before = [p.detach().clone() for p in system.discriminator.parameters()]
    g_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in system.generator.parameters())
    assert all(p.grad is None for p in system.discriminator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(d_before, system.discriminator.parameters()))


@pytest.mark.parametrize(("overrides", "other"), [
    (["model=lapgan", "dataset=digits"], "model=lapgan"),
    (["model=mlp", "dataset=ring", "mixture.generators=2"], "mixture.generators=2"),
])
def test_systems_that_cannot_pass_real_logits_refuse_naming_both(overrides, other):
    cfg = compose_cfg("debug=tiny", *overrides, "loss=rgan")
    with pytest.raises(ConfigError, match=rf"^loss='rgan' is not allowed: .*with {other}"):
        build_system(cfg, build_components(cfg))
