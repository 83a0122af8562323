"""Lipschitz constraints and penalties on D (docs/science.md, "Lipschitz constraints and penalties").

Penalties are checked on discriminators whose input gradient is known in closed form.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_lab.compose import build_components
from gan_lab.errors import ConfigError
from gan_lab.nets.mlp import MLPDiscriminator
from gan_lab.regularizers import R1, GradientPenalty, NoRegularizer, SpectralNorm, WeightClip
from gan_lab.regularizers.base import Judged
from gan_lab.systems.conditioning import Batch
from tests.conftest import compose_cfg, refused


class LinearD(nn.Module):
    """D(x) = w·flatten(x) + b, returning (N,): ∇ₓD = w at every x."""

    def __init__(self, w: list[float], b: float = 0.3, dtype=torch.float32):
        super().__init__()
        self.lin = nn.Linear(len(w), 1).to(dtype)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([w], dtype=dtype))
            self.lin.bias.fill_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1)).squeeze(1)


class SquareD(nn.Module):
    """D(x) = Σ x² per sample: ∇ₓD = 2x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.pow(2).flatten(1).sum(dim=1)


# weights with ‖w‖ = 5, 3, 0.5 and 1 (penalty 0)
WEIGHTS = [[3.0, 4.0], [1.0, 2.0, 2.0], [0.3, -0.4], [0.6, 0.0, -0.8]]


def _norm(w):
    return math.sqrt(sum(x * x for x in w))


def _batch(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * 3, torch.randn(n, d, generator=g) - 2


# --------------------------------------------------------------------------------------------
# Gradient penalty (WGAN-GP)


@pytest.mark.parametrize("w", WEIGHTS)
@pytest.mark.parametrize("lam", [10.0, 0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_gp_on_linear_critic_is_exact(w, lam, seed):
    real, fake = _batch(8, len(w), seed)
    penalty = GradientPenalty(weight=lam).penalty(Judged.of(LinearD(w), real, fake, d_step=0))
    assert penalty.dim() == 0
    expected = lam * (_norm(w) - 1.0) ** 2
    assert penalty.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("w", [[3.0, 4.0], [1.0, 2.0, 2.0], [0.3, -0.4]])
@pytest.mark.parametrize("lam", [10.0, 2.0])
def test_gp_gradient_wrt_weights_matches_analytic(w, lam):
    """Double backward: d/dw λ(‖w‖−1)² = 2λ(‖w‖−1)·w/‖w‖; the bias does not enter."""
    # input_gradients runs D in float32 by design (fp16 double backward overflows), so D is fp32.
    d = LinearD(w)
    real, fake = _batch(6, len(w), 3)
    penalty = GradientPenalty(weight=lam).penalty(Judged.of(d, real, fake, d_step=0))
    assert penalty.requires_grad
    penalty.backward()
    n = _norm(w)
    expected = torch.tensor([[2 * lam * (n - 1.0) * x / n for x in w]])
    torch.testing.assert_close(d.lin.weight.grad, expected, rtol=1e-5, atol=1e-6)
    assert d.lin.bias.grad is None or torch.count_nonzero(d.lin.bias.grad) == 0


@pytest.mark.parametrize("shape", [(7, 3), (5, 1, 2, 2)])
@pytest.mark.parametrize("lam", [10.0, 1.0])
def test_gp_on_quadratic_critic(shape, lam):
    """real = fake = x ⇒ x̂ = x, ∇D(x̂) = 2x, penalty = λ·mean((‖2x‖ − 1)²)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 0.8
    penalty = GradientPenalty(weight=lam).penalty(Judged.of(SquareD(), x, x.clone(), d_step=0))
    flat = x.reshape(shape[0], -1).tolist()
    expected = lam * sum((2.0 * _norm(row) - 1.0) ** 2 for row in flat) / len(flat)
    assert penalty.item() == pytest.approx(expected, rel=1e-5)


def test_gp_interpolates_between_real_and_fake():
    """1-D, D(x) = x²/2 so ∇D(x̂) = x̂; real = 0, fake = 1 ⇒ ‖∇‖ = 1 − ε ∈ [0, 1] per sample,
    penalty/λ = mean(ε²) which for many uniform ε is close to E[ε²] = 1/3."""
    torch.manual_seed(0)
    n = 20_000
    real, fake = torch.zeros(n, 1), torch.ones(n, 1)
    d = lambda x: 0.5 * x.pow(2).sum(dim=1)  # noqa: E731

    class Half(nn.Module):
        def forward(self, x):
            return d(x)

    penalty = GradientPenalty(weight=1.0).penalty(Judged.of(Half(), real, fake, d_step=0)).item()
    assert penalty == pytest.approx(1.0 / 3.0, abs=0.02)


@pytest.mark.parametrize("weight", [-1.0, -1e-3, float("nan")])
def test_gp_negative_weight_refused(weight):
    assert refused("regularizer=gp", f"regularizer.weight={weight}").key == "regularizer.weight"


# --------------------------------------------------------------------------------------------
# R1


@pytest.mark.parametrize("w", WEIGHTS)
@pytest.mark.parametrize("gamma", [10.0, 0.1])
def test_r1_on_linear_critic(w, gamma):
    real, fake = _batch(5, len(w), 11)
    penalty = R1(weight=gamma).penalty(Judged.of(LinearD(w), real, fake, d_step=0))
    assert penalty.item() == pytest.approx(gamma / 2 * _norm(w) ** 2, rel=1e-5)


def test_r1_uses_real_samples_only():
    """D = Σx²: R1 = γ/2·mean ‖2x_real‖², whatever the fakes are."""
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    fake = torch.full((2, 2), 100.0)
    penalty = R1(weight=2.0).penalty(Judged.of(SquareD(), real, fake, d_step=0))
    assert penalty.item() == pytest.approx(1.0 * (4.0 + 16.0) / 2)


def test_r2_uses_fake_samples_only():
    """D = Σx²: R2 = γ/2·mean ‖2x_fake‖², whatever the reals are (R1 on the same batch reads the reals)."""
    from gan_lab.regularizers.r2 import R2

    real = torch.full((2, 2), 100.0)
    fake = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    r2 = R2(weight=2.0).penalty(Judged.of(SquareD(), real, fake, d_step=0))
    assert r2.item() == pytest.approx(1.0 * (4.0 + 16.0) / 2)
    assert R1(weight=2.0).penalty(Judged.of(SquareD(), real, fake, d_step=0)).item() == pytest.approx(4 * 100.0**2 * 2)
    assert R2.caps.input_gradients and R2.caps.forbids_batch_norm


@pytest.mark.parametrize("on_fake", [False, True], ids=["r1", "r2"])
def test_r1_r2_under_diffaugment_differentiate_through_the_same_draw(on_fake):
    """With DiffAugment T, R1 = γ/2·E‖∇ₓ D(T(x))‖² at the un-augmented x, through the draw D's loss saw (the
    reference's R1). T = cutout multiplies by a 0/1 mask m, so for D(y) = w·y the gradient is m ⊙ w: γ/2·E‖m ⊙ w‖²,
    not γ/2·‖w‖² (the gradient at the augmented image)."""
    from types import SimpleNamespace

    from gan_lab.losses import NonSaturating
    from gan_lab.regularizers.r2 import R2
    from gan_lab.systems.gan import GAN
    from gan_lab.tricks import Tricks

    torch.manual_seed(0)
    w = torch.randn(64) + 3.0  # no zero weight
    generator = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Unflatten(1, (1, 8, 8)))
    reg = (R2 if on_fake else R1)(weight=2.0)
    system = GAN(generator, LinearD(w.tolist()), NonSaturating(), reg, torch.optim.SGD, torch.optim.SGD, z_dim=4,
                 tricks=Tricks(diffaug="cutout"))
    system.runner.mode = "lean"  # raw backward/step: no trainer needed
    judged = []
    penalty = reg.penalty
    reg.penalty = lambda j: judged.append(j.fake if on_fake else j.real) or penalty(j)
    opt = SimpleNamespace(zero_grad=lambda set_to_none: None, optimizer=SimpleNamespace(step=lambda: None))
    real = torch.rand(16, 1, 8, 8) + 0.5  # no zero pixel: the cutout mask is where D's input is 0
    system.d_step(opt, Batch(real))
    mask = (judged[0] != 0).flatten(1).float()  # (N, 64)
    assert 0 < mask.mean() < 1
    expected = 1.0 * ((mask * w) ** 2).sum(1).mean()
    torch.testing.assert_close(system.statistics.sums()["d_penalty"], expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("every", [1, 2, 4, 16])
def test_r1_lazy(every):
    w, gamma = [3.0, 4.0], 2.0
    reg, d = R1(weight=gamma, every=every), LinearD(w)
    real, fake = _batch(4, 2, 5)
    for step in range(2 * every + 1):
        penalty = reg.penalty(Judged.of(d, real, fake, d_step=step))
        if step % every:
            assert penalty is None
        else:
            assert penalty is not None
            assert penalty.item() == pytest.approx(gamma / 2 * every * 25.0, rel=1e-5)


@pytest.mark.parametrize("overrides, key", [
    (["regularizer.weight=-1.0"], "regularizer.weight"),
    (["regularizer.every=0"], "regularizer.every"),
    (["regularizer.every=1.5"], "regularizer.every"),
    (["regularizer.r1.every=0"], "regularizer.r1.every"),  # set on the part itself: named there
])
def test_r1_bad_settings_refused(overrides, key):
    assert refused("model.d_norm=none", "regularizer=r1", *overrides).key == key


# --------------------------------------------------------------------------------------------
# Weight clipping


@pytest.mark.parametrize("c", [0.1, 0.5, 1.0])
def test_weight_clip_clamps_every_parameter(c):
    torch.manual_seed(0)
    d = nn.Sequential(nn.Linear(6, 16), nn.LeakyReLU(0.2), nn.Linear(16, 8), nn.LayerNorm(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in d.parameters():
            p.normal_(0.0, 1.0)
    before = [p.detach().clone() for p in d.parameters()]
    WeightClip(clip_value=c).after_d_step(d)
    for b, p in zip(before, d.parameters(), strict=True):
        p = p.detach()
        c32 = torch.tensor(c, dtype=p.dtype).item()  # c as the parameter dtype represents it
        assert p.min().item() >= -c32 and p.max().item() <= c32
        inside = b.abs() <= c
        torch.testing.assert_close(p[inside], b[inside], rtol=0, atol=0)
        torch.testing.assert_close(p[~inside], torch.sign(b[~inside]) * c, rtol=0, atol=0)
    # Some weights were outside for every c (1.0 included), so the test exercises both branches.
    assert any((b.abs() > c).any() for b in before)
    assert any((b.abs() <= c).any() for b in before)


@pytest.mark.parametrize("c", [0.0, -0.01, float("nan")])
def test_weight_clip_bad_value_refused(c):
    assert refused("regularizer=clip", f"regularizer.clip_value={c}").key == "regularizer.clip_value"


# --------------------------------------------------------------------------------------------
# Spectral normalisation


def test_spectral_norm_makes_each_layer_1_lipschitz():
    torch.manual_seed(0)
    d = SpectralNorm().wrap(MLPDiscriminator(shape=(5,), hidden=[16, 16], norm="none"))
    d.train()
    linears = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    # Before enough power iterations the layers are typically not yet normalised; run them.
    x = torch.randn(32, 5)
    with torch.no_grad():
        for _ in range(50):
            out = d(x)
    assert out.shape == (32,)
    d.eval()
    for m in linears:
        sigma = torch.linalg.matrix_norm(m.weight.detach(), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-2)
        # The effective weight is the raw weight divided by its own largest singular value.
        raw = m.parametrizations.weight.original.detach()
        raw_sigma = torch.linalg.matrix_norm(raw, ord=2).item()
        torch.testing.assert_close(m.weight.detach(), raw / raw_sigma, rtol=1e-2, atol=1e-3)


def test_spectral_norm_with_large_raw_weights():
    torch.manual_seed(1)
    d = SpectralNorm().wrap(MLPDiscriminator(shape=(5,), hidden=[16, 16], norm="none"))
    with torch.no_grad():
        for m in d.modules():
            if isinstance(m, nn.Linear):
                m.parametrizations.weight.original.mul_(25.0)
        for _ in range(50):
            d(torch.randn(8, 5))
    for m in d.modules():
        if isinstance(m, nn.Linear):
            assert torch.linalg.matrix_norm(m.weight.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-2)


def test_spectral_norm_reaches_the_minibatch_discrimination_tensor():
    """SN-GAN divides every weight of D by its spectral norm: minibatch discrimination's T (the map f ↦ f·T) too,
    and the layer computes with T/σ(T)."""
    from gan_lab.data.base import DataSpec
    from gan_lab.nets.minibatch import MinibatchDiscriminator

    torch.manual_seed(2)
    inner = MLPDiscriminator(shape=(5,), hidden=[16], norm="none")
    d = SpectralNorm().wrap(MinibatchDiscriminator(inner, DataSpec("x", (5,), "points"), kernels=4, kernel_dim=3))
    layer = d.minibatch
    with torch.no_grad():
        layer.parametrizations.T.original.mul_(25.0)  # σ(raw T) ≈ 25·0.05·(√16 + √12) ≈ 9
        for _ in range(50):
            d(torch.randn(8, 5))
    layer.eval()
    raw = layer.parametrizations.T.original.detach()
    assert torch.linalg.matrix_norm(layer.T.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-2)
    torch.testing.assert_close(layer.T.detach(), raw / torch.linalg.matrix_norm(raw, ord=2), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("n", [0, -1])
def test_spectral_norm_bad_iterations_refused(n):
    error = refused("regularizer=sn", f"regularizer.n_power_iterations={n}")
    assert error.key == "regularizer.n_power_iterations"


# --------------------------------------------------------------------------------------------
# D normalisation resolution


@pytest.mark.parametrize("reg, expected", [
    (GradientPenalty(), "layer"),
    (NoRegularizer(), "batch"),
    (SpectralNorm(), "none"),
    (R1(), "none"),
    (WeightClip(), "batch"),
])
def test_d_norm_auto_is_the_regularizers_preference(reg, expected):
    assert reg.caps.preferred_d_norm == expected


@pytest.mark.parametrize("name", ["gp", "r1"])
def test_batch_norm_refused_with_a_per_sample_penalty(name):
    error = refused("model.width=8", f"regularizer={name}", "model.d_norm=batch")
    assert error.key == "model.d_norm" and name in str(error)


@pytest.mark.parametrize("name", ["gp", "r1", "none", "sn", "clip"])
@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
def test_an_explicit_d_norm_is_built_as_asked(name, norm):
    if norm == "batch" and name in ("gp", "r1"):
        return  # refused above
    d = build_components(compose_cfg("model.width=8", f"regularizer={name}", f"model.d_norm={norm}")).discriminator
    kinds = {type(m) for m in d.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch") and (nn.LayerNorm in kinds or nn.GroupNorm in kinds) == (
        norm == "layer")


# --------------------------------------------------------------------------------------------
# Several at once: regularizer=[a,b], each under its own name; a single choice keeps the flat spelling


def _reg(*overrides):
    from gan_lab.compose import build_components
    from tests.conftest import compose_cfg

    return build_components(compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "loss=wasserstein",
                                        *overrides)).regularizer


def test_a_single_choice_keeps_the_flat_spelling():
    gp = _reg("regularizer=gp", "regularizer.weight=3")
    assert isinstance(gp, GradientPenalty) and gp.weight == 3
    r1 = _reg("regularizer=r1", "regularizer.weight=2", "regularizer.every=4")
    assert isinstance(r1, R1) and (r1.weight, r1.every) == (2, 4)


def test_sn_and_gp_together_each_with_its_own_settings():
    from gan_lab.regularizers.composite import Regularizers

    reg = _reg("regularizer=[sn,gp]", "regularizer.gp.weight=5")
    assert isinstance(reg, Regularizers) and reg.name == "[sn,gp]"
    sn, gp = reg.parts
    assert isinstance(sn, SpectralNorm) and isinstance(gp, GradientPenalty) and gp.weight == 5
    assert reg.caps.forbids_batch_norm and reg.caps.input_gradients and reg.caps.preferred_d_norm == "none"
    d = reg.wrap(MLPDiscriminator(shape=(2,), hidden=[8], norm="none")).eval()  # eval: u stays put
    assert any("parametrizations" in n for n, _ in d.named_parameters())  # spectral norm on D's layers
    real, fake = _batch(6, 2, 3)
    torch.manual_seed(0)
    both = reg.penalty(Judged.of(d, real, fake, d_step=0))
    torch.manual_seed(0)
    assert both.item() == pytest.approx(gp.penalty(Judged.of(d, real, fake, d_step=0)).item(), rel=1e-6)  # sn adds none


def test_r1_and_r2_add_up_and_share_a_flat_default():
    from gan_lab.regularizers.r2 import R2

    reg = _reg("regularizer=[r1,r2]", "regularizer.weight=4", "regularizer.r2.weight=1")
    r1, r2 = reg.parts
    assert isinstance(r1, R1) and isinstance(r2, R2) and (r1.weight, r2.weight) == (4, 1)
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # D = Σx²: ‖∇‖² = 4‖x‖²
    fake = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    expected = 4 / 2 * 4 * (1 + 4) / 2 + 1 / 2 * 4 * (9 + 1) / 2
    assert reg.penalty(Judged.of(SquareD(), real, fake, d_step=0)).item() == pytest.approx(expected)


@pytest.mark.parametrize("choice", ["[sn,gp]", "[r1,r2]"])
def test_lists_of_regularizers_train(choice, tmp_path):
    from gan_lab.train import train
    from tests.conftest import compose_cfg

    cfg = compose_cfg("debug=tiny", "model=mlp", "dataset=ring", "model.hidden=[16]", "loss=wasserstein",
                      f"regularizer={choice}", "eval.at_end=true", "eval.samples=60")
    summary = train(cfg, tmp_path)
    assert summary["status"] == "finished" and summary["metrics"]["train/d_penalty"] > 0


def test_a_list_with_batch_norm_in_d_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"model.d_norm='batch' is not allowed: .*regularizer=\[sn,gp\]"):
        _reg("regularizer=[sn,gp]", "model.d_norm=batch")


def test_runs_saved_with_a_flat_regularizer_still_resume(tmp_path):
    """A run from before lists of regularizers saved {_target_, weight}: the same settings resume,
    another regularizer is still refused."""
    from omegaconf import OmegaConf

    from gan_lab.resume import check_same_run
    from tests.conftest import compose_cfg

    cfg = compose_cfg("debug=tiny", "regularizer=gp")
    saved = OmegaConf.to_container(cfg, resolve=True)
    saved["regularizer"] = {"_target_": "gan_lab.regularizers.gp.GradientPenalty", "weight": 10.0}
    check_same_run(cfg, saved, tmp_path)
    with pytest.raises(ConfigError, match="regularizer"):
        check_same_run(compose_cfg("debug=tiny", "regularizer=sn"), saved, tmp_path)


# --------------------------------------------------------------------------------------------
# LeCam (Tseng 2021) and balanced consistency regularization (Zhao 2021)


@pytest.mark.parametrize("one_sided", [True, False])
def test_lecam_penalty_and_its_anchors_follow_their_formulas(one_sided):
    from gan_lab.regularizers.lecam import LeCam

    reg = LeCam(weight=0.5, decay=0.9, one_sided=one_sided)
    d = SquareD()  # unused: the step hands over D's outputs
    steps = [(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.5])),
             (torch.tensor([2.0, 0.0]), torch.tensor([1.5, -2.5]))]
    ema_r = ema_f = 0.0
    for t, (real, fake) in enumerate(steps, start=1):
        ema_r = 0.9 * ema_r + 0.1 * float(real.mean())
        ema_f = 0.9 * ema_f + 0.1 * float(fake.mean())
        alpha_r, alpha_f = ema_r / (1 - 0.9**t), ema_f / (1 - 0.9**t)  # zero-debiased
        if one_sided:
            expected = (sum(max(v - alpha_f, 0.0) ** 2 for v in real.tolist()) / 2
                        + sum(max(alpha_r - v, 0.0) ** 2 for v in fake.tolist()) / 2)
        else:
            expected = (sum((v - alpha_f) ** 2 for v in real.tolist()) / 2
                        + sum((v - alpha_r) ** 2 for v in fake.tolist()) / 2)
        got = reg.penalty(Judged.of(d, real[:, None], fake[:, None], t - 1, real, fake)).item()
        assert got == pytest.approx(0.5 * expected, rel=1e-6, abs=1e-9)
    assert alpha_r == pytest.approx(float(reg.anchors.sums[0]) / (1 - 0.81), rel=1e-6)
    # at step 1 the debiased anchors are exactly that step's means
    fresh = LeCam(weight=1.0, decay=0.99)
    assert [a.item() for a in fresh.update(torch.tensor([4.0]), torch.tensor([-2.0]))] == pytest.approx([4.0, -2.0])


def test_lecam_biggan_form_warms_up_with_the_current_means_then_keeps_a_plain_ema():
    """The authors' BigGAN code: no penalty for the first ``warmup`` D updates while the anchors copy the current
    means (decay 0), then a plain (not debiased) EMA and the one-sided penalty."""
    from gan_lab.regularizers.lecam import LeCam

    reg = LeCam(weight=1.0, decay=0.9, debias=False, warmup=2)
    d = SquareD()
    steps = [(torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.5])),
             (torch.tensor([2.0, 0.0]), torch.tensor([1.5, -2.5])),
             (torch.tensor([4.0, 2.0]), torch.tensor([0.0, -1.0]))]
    penalties = [reg.penalty(Judged.of(d, r[:, None], f[:, None], t, r, f)).item() for t, (r, f) in enumerate(steps)]
    assert penalties[:2] == [0.0, 0.0]
    alpha_r, alpha_f = 0.9 * 1.0 + 0.1 * 3.0, 0.9 * -0.5 + 0.1 * -0.5  # step 2's means, then one plain EMA step
    expected = (((4.0 - alpha_f) ** 2 + (2.0 - alpha_f) ** 2) / 2
                + (max(alpha_r - 0.0, 0) ** 2 + (alpha_r + 1.0) ** 2) / 2)
    assert penalties[2] == pytest.approx(expected, rel=1e-6)
    assert reg.anchors.sums.tolist() == pytest.approx([alpha_r, alpha_f])
    assert "warmup=2 decides on the host" in reg.caps.capture_blocker and not LeCam().caps.capture_blocker


def test_lecam_gradient_reaches_d_through_its_outputs():
    from gan_lab.regularizers.lecam import LeCam

    d = LinearD([1.0, -1.0], b=0.0)
    real, fake = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])  # D: 2 and −2
    penalty = LeCam(weight=1.0, decay=0.5, one_sided=False).penalty(Judged.of(d, real, fake, 0))
    # step 1: α_R = 2, α_F = −2 → (2 − (−2))² + (−2 − 2)² = 32
    assert penalty.item() == pytest.approx(32.0)
    penalty.backward()
    # ∂/∂w = 2(D(r) − α_F)·r + 2(D(f) − α_R)·f = 8·(2, 0) − 8·(0, 2)
    assert d.lin.weight.grad.tolist() == [pytest.approx([16.0, -16.0])]


class MeanD(nn.Module):
    """D(x) = mean of x per sample: brightness b moves it by b, saturation and contrast keep it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1)


def test_consistency_penalty_under_brightness_is_lambda_times_the_variance_of_b():
    from gan_lab.regularizers.cr import ConsistencyRegularization

    # D(T(x)) − D(x) = b with b ~ U(−½, ½): E b² = 1/12 on each side
    reg = ConsistencyRegularization(weight=3.0, weight_fake=6.0, policy="color")
    torch.manual_seed(0)
    real, fake = torch.rand(40000, 1, 2, 2), torch.rand(40000, 1, 2, 2)
    assert reg.penalty(Judged.of(MeanD(), real, fake, 0)).item() == pytest.approx((3.0 + 6.0) / 12, rel=0.02)
    # an invariant D pays nothing
    assert reg.penalty(Judged.of(lambda x: x.new_zeros(x.shape[0]), real, fake, 0)).item() == 0.0


def test_consistency_penalty_trains_d_through_both_terms():
    from gan_lab.regularizers.cr import ConsistencyRegularization

    d = LinearD([1.0] * 16, b=0.0)
    torch.manual_seed(1)
    real, fake = torch.rand(8, 1, 4, 4), torch.rand(8, 1, 4, 4)
    ConsistencyRegularization(weight=1.0, policy="translation").penalty(Judged.of(d, real, fake, 0)).backward()
    assert d.lin.weight.grad.abs().sum() > 0 and d.lin.bias.grad.abs().item() < 1e-6  # a shift cancels b
