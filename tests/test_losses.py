"""Adversarial losses against closed forms computed independently (docs/science.md, "Adversarial losses").

References are computed with plain Python float math (``math``), in double precision, so they
share no code with the implementations under test.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_lab.losses import Hinge, LeastSquares, Minimax, NonSaturating, Wasserstein
from tests.conftest import refused

# --------------------------------------------------------------------------------------------
# Reference math on Python floats.


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _log_sigmoid(v: float) -> float:
    """log σ(v) by plain math, written so neither branch overflows or cancels at |v| = 30."""
    if v >= 0:
        return -math.log1p(math.exp(-v))
    return v - math.log1p(math.exp(v))


def _log_one_minus_sigmoid(v: float) -> float:
    """log(1 − σ(v)) = log σ(−v)."""
    return _log_sigmoid(-v)


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def ref_d_bce(vr, vf) -> float:
    return -_mean(_log_sigmoid(v) for v in vr) - _mean(_log_one_minus_sigmoid(v) for v in vf)


REFERENCE = {
    # name: (D loss(v_r, v_f), G loss(v_f))
    "minimax": (ref_d_bce, lambda vf: _mean(_log_one_minus_sigmoid(v) for v in vf)),
    "ns": (ref_d_bce, lambda vf: -_mean(_log_sigmoid(v) for v in vf)),
    "wasserstein": (lambda vr, vf: _mean(vf) - _mean(vr), lambda vf: -_mean(vf)),
    "hinge": (lambda vr, vf: _mean(max(0.0, 1.0 - v) for v in vr) + _mean(max(0.0, 1.0 + v) for v in vf),
              lambda vf: -_mean(vf)),
    "lsgan": (lambda vr, vf: 0.5 * _mean((v - 1.0) ** 2 for v in vr) + 0.5 * _mean(v * v for v in vf),
              lambda vf: 0.5 * _mean((v - 1.0) ** 2 for v in vf)),
}

LOSSES = {"minimax": Minimax, "ns": NonSaturating, "wasserstein": Wasserstein, "hinge": Hinge,
          "lsgan": LeastSquares}

# (real logits, fake logits): moderate values, values straddling the hinge margins, and ±30.
LOGITS = {
    "moderate": ([-2.0, -0.5, 0.0, 0.7, 3.0], [-3.0, -1.0, 0.25, 1.5, 2.0]),
    "hinge_margins": ([0.5, 1.0, 1.5, -1.5], [-1.5, -1.0, -0.5, 0.9]),
    "confident_d": ([4.0, 6.0, 5.0], [-5.0, -7.0, -4.0]),
    "fooled_d": ([-4.0, -6.0], [5.0, 7.0]),
    "large": ([30.0, -30.0, 30.0, 0.0], [-30.0, 30.0, 12.0, -12.0]),
    # beyond where σ(v) under/overflows in float32 (|v| ≳ 104) and float64 (|v| ≳ 745)
    "extreme": ([200.0, -200.0, 1000.0], [-1000.0, 200.0, -200.0]),
}


@pytest.fixture(params=sorted(LOSSES))
def loss_name(request):
    return request.param


@pytest.mark.parametrize("case", sorted(LOGITS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_d_and_g_loss_match_closed_forms(loss_name, case, dtype):
    vr, vf = LOGITS[case]
    loss = LOSSES[loss_name]()
    real = torch.tensor(vr, dtype=dtype)
    fake = torch.tensor(vf, dtype=dtype)
    ref_d, ref_g = REFERENCE[loss_name]
    d = loss.d_loss(real, fake)
    g = loss.g_loss(fake)
    assert d.dim() == 0 and g.dim() == 0
    assert torch.isfinite(d) and torch.isfinite(g)
    tol = dict(rel=1e-6, abs=1e-6) if dtype == torch.float32 else dict(rel=1e-12, abs=1e-12)
    assert d.item() == pytest.approx(ref_d(vr, vf), **tol)
    assert g.item() == pytest.approx(ref_g(vf), **tol)


@pytest.mark.parametrize("case", sorted(LOGITS))
def test_loss_gradients_finite_at_large_logits(loss_name, case):
    vr, vf = LOGITS[case]
    real = torch.tensor(vr, requires_grad=True)
    fake = torch.tensor(vf, requires_grad=True)
    loss = LOSSES[loss_name]()
    (loss.d_loss(real, fake) + loss.g_loss(fake)).backward()
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


@pytest.mark.parametrize("name", ["minimax", "ns"])
def test_sigmoid_d_loss_matches_torch_bce_on_probabilities(name):
    """D loss = BCE(σ(v_r), 1) + BCE(σ(v_f), 0), via torch's probability-space BCE in float64."""
    vr = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0], dtype=torch.float64)
    vf = torch.tensor([-3.0, -1.0, 0.25, 1.5, 2.0], dtype=torch.float64)
    ref = (F.binary_cross_entropy(torch.sigmoid(vr), torch.ones_like(vr))
           + F.binary_cross_entropy(torch.sigmoid(vf), torch.zeros_like(vf)))
    torch.testing.assert_close(LOSSES[name]().d_loss(vr, vf), ref, rtol=1e-12, atol=1e-12)


def test_minimax_and_ns_g_losses_match_torch_bce_on_probabilities():
    vf = torch.tensor([-3.0, -1.0, 0.25, 1.5, 2.0], dtype=torch.float64)
    p = torch.sigmoid(vf)
    # minimax: log(1 − D) = −BCE(p, 0);  ns: −log D = BCE(p, 1)
    torch.testing.assert_close(Minimax().g_loss(vf), -F.binary_cross_entropy(p, torch.zeros_like(p)))
    torch.testing.assert_close(NonSaturating().g_loss(vf), F.binary_cross_entropy(p, torch.ones_like(p)))


def test_sigmoid_losses_share_the_d_loss():
    vr = torch.tensor([0.3, -1.2, 2.2])
    vf = torch.tensor([-0.4, 1.1, 0.0])
    torch.testing.assert_close(Minimax().d_loss(vr, vf), NonSaturating().d_loss(vr, vf))


# --------------------------------------------------------------------------------------------
# One-sided label smoothing.


@pytest.mark.parametrize("cls", [Minimax, NonSaturating])
@pytest.mark.parametrize("s", [0.0, 0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("case", ["moderate", "large"])
def test_label_smoothing_real_term_is_bce_with_target_alpha(cls, s, case):
    vr_list, vf_list = LOGITS[case]
    vr = torch.tensor(vr_list, dtype=torch.float64)
    vf = torch.tensor(vf_list, dtype=torch.float64)
    loss = cls(label_smoothing=s)
    real_ref = F.binary_cross_entropy_with_logits(vr, torch.full_like(vr, 1.0 - s))
    fake_ref = -_mean(_log_one_minus_sigmoid(v) for v in vf_list)  # target 0, unchanged by s
    d = loss.d_loss(vr, vf)
    assert torch.isfinite(d)
    torch.testing.assert_close(d, real_ref + fake_ref, rtol=1e-10, atol=1e-10)
    # The fake term is the same as without smoothing: the difference only involves v_r.
    unsmoothed = cls().d_loss(vr, vf)
    real_unsmoothed = -_mean(_log_sigmoid(v) for v in vr_list)
    assert (d - unsmoothed).item() == pytest.approx(real_ref.item() - real_unsmoothed, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("cls", [Minimax, NonSaturating])
def test_label_smoothing_does_not_change_g_loss(cls):
    vf = torch.tensor([-3.0, -1.0, 0.25, 1.5, 2.0])
    torch.testing.assert_close(cls(label_smoothing=0.1).g_loss(vf), cls().g_loss(vf))


def test_label_smoothing_closed_form_by_hand():
    """s = 0.1, v_r = 0: real term = −0.9 log ½ − 0.1 log ½ = log 2; v_f = 0 adds log 2."""
    loss = NonSaturating(label_smoothing=0.1)
    d = loss.d_loss(torch.zeros(3), torch.zeros(3))
    assert d.item() == pytest.approx(2 * math.log(2), rel=1e-6)
    # v_r = 2: 0.9·softplus(−2) + 0.1·softplus(2)
    d = loss.d_loss(torch.full((2,), 2.0, dtype=torch.float64), torch.full((2,), -50.0, dtype=torch.float64))
    expected = (0.9 * math.log1p(math.exp(-2.0)) + 0.1 * math.log1p(math.exp(2.0))
                + math.log1p(math.exp(-50.0)))
    assert d.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("cls", [Wasserstein, Hinge, LeastSquares])
@pytest.mark.parametrize("s", [0.1, 0.5])
def test_label_smoothing_refused_for_non_bce_losses(cls, s):
    msg = str(refused(f"loss={cls.name}", f"loss.label_smoothing={s}"))
    assert "loss.label_smoothing" in msg
    assert cls.name in msg


@pytest.mark.parametrize("cls", [Wasserstein, Hinge, LeastSquares, Minimax, NonSaturating])
def test_zero_label_smoothing_accepted_everywhere(cls):
    assert cls(label_smoothing=0.0).label_smoothing == 0.0


@pytest.mark.parametrize("cls", [NonSaturating, Minimax])
@pytest.mark.parametrize("s", [-0.1, 1.0, 1.5, float("nan")])
def test_label_smoothing_out_of_range_refused(cls, s):
    error = refused(f"loss={cls.name}", f"loss.label_smoothing={s}")
    assert error.key == "loss.label_smoothing" and "[0.0, 1.0)" in str(error)


# --------------------------------------------------------------------------------------------
# Estimates and flags.


def test_wasserstein_estimate():
    vr = torch.tensor([1.0, 2.0, 4.5])
    vf = torch.tensor([-1.0, 0.5, 0.0, 2.5])
    est = Wasserstein().estimates(vr, vf)
    assert set(est) == {"wasserstein_estimate"}
    assert est["wasserstein_estimate"].item() == pytest.approx(2.5 - 0.5)
    # The critic's loss is minus the estimate.
    assert Wasserstein().d_loss(vr, vf).item() == pytest.approx(-2.0)


@pytest.mark.parametrize("cls", [Minimax, NonSaturating, Hinge, LeastSquares])
def test_other_losses_have_no_estimates(cls):
    assert cls().estimates(torch.tensor([1.0, 2.0]), torch.tensor([0.0, -1.0])) == {}


@pytest.mark.parametrize("cls, expected", [
    (Minimax, True), (NonSaturating, True), (Wasserstein, False), (Hinge, False), (LeastSquares, False),
])
def test_sigmoid_output_flag(cls, expected):
    assert cls.caps.sigmoid_output is expected
    assert cls().caps.sigmoid_output is expected


# --------------------------------------------------------------------------------------------
# Saturation: the reason the non-saturating loss is the default.


@pytest.mark.parametrize("n", [1, 4])
def test_ns_gradient_does_not_vanish_where_minimax_saturates(n):
    v = -10.0
    grads = {}
    for name, cls in (("minimax", Minimax), ("ns", NonSaturating)):
        fake = torch.full((n,), v, dtype=torch.float64, requires_grad=True)
        cls().g_loss(fake).backward()
        grads[name] = fake.grad
    # ns: d/dv softplus(−v)/N = −σ(−v)/N = −(1 − σ(v))/N ;  minimax: d/dv(−softplus(v))/N = −σ(v)/N
    ns_expected = (1.0 - _sigmoid(v)) / n
    mm_expected = _sigmoid(v) / n
    for g in grads["ns"].tolist():
        assert abs(g) == pytest.approx(ns_expected, rel=1e-9)
        assert g < 0  # minimising pushes v_f up (fakes look more real)
    for g in grads["minimax"].tolist():
        assert abs(g) == pytest.approx(mm_expected, rel=1e-9)
        assert g < 0
    assert mm_expected == pytest.approx(4.5397868702434395e-05 / n, rel=1e-9)
    ratio = abs(grads["ns"][0].item()) / abs(grads["minimax"][0].item())
    assert ratio == pytest.approx(math.exp(10.0), rel=1e-9)  # σ(10)/σ(−10) = e¹⁰
