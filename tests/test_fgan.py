"""f-GAN losses (docs/science.md, "f-GAN").

The chain of checks: the implementation's table equals docs/science.md's (reference formulas written
here again in plain ``math``, in their textbook form); f* is the Fenchel conjugate of f (numerical
sup over u > 0); T* = f'(p/q); g_f maps every logit into dom f*; a discriminator trained on
N(0,1) vs N(1,1) makes ``divergence_estimate`` approach the true divergence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from scipy import integrate, optimize

from gan_lab.compose import check_settings
from gan_lab.errors import ConfigError
from gan_lab.losses.fgan import DIVERGENCES, FGAN
from gan_lab.losses.minimax import Minimax
from gan_lab.losses.ns import NonSaturating
from gan_lab.nets.mlp import MLPDiscriminator
from tests.conftest import compose_cfg, refused

LOG2 = math.log(2.0)

# --------------------------------------------------------------------------------------------
# docs/science.md's table on Python floats: f(u), g_f(v), f*(t), T*(p, q), "t in dom f*".


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _xlogx(x: float) -> float:
    return 0.0 if x == 0 else x * math.log(x)


def _ref_js_pi(pi: float):
    return dict(
        f=lambda u: pi * _xlogx(u) - _xlogx(pi * u + 1 - pi),
        g=lambda v: -pi * math.log(pi) - _softplus(-v),
        fstar=lambda t: (1 - pi) * math.log(1 - pi) - (1 - pi) * math.log(1 - pi * math.exp(t / pi)),
        tstar=lambda p, q: pi * math.log(p / (pi * p + (1 - pi) * q)),
        in_domain=lambda t: pi * math.exp(t / pi) < 1,  # t/π < −log π
        sup=-pi * math.log(pi),
    )


REF = {
    "kl": dict(f=lambda u: _xlogx(u), g=lambda v: v, fstar=lambda t: math.exp(t - 1),
               tstar=lambda p, q: 1 + math.log(p / q), in_domain=lambda t: True, sup=None),
    "rkl": dict(f=lambda u: -math.log(u), g=lambda v: -math.exp(-v), fstar=lambda t: -1 - math.log(-t),
                tstar=lambda p, q: -q / p, in_domain=lambda t: t < 0, sup=0.0),
    "pearson": dict(f=lambda u: (u - 1) ** 2, g=lambda v: v, fstar=lambda t: t * t / 4 + t,
                    tstar=lambda p, q: 2 * (p / q - 1), in_domain=lambda t: True, sup=None),
    "hellinger": dict(f=lambda u: (math.sqrt(u) - 1) ** 2, g=lambda v: 1 - math.exp(-v),
                      fstar=lambda t: t / (1 - t),
                      tstar=lambda p, q: (math.sqrt(p / q) - 1) * math.sqrt(q / p),
                      in_domain=lambda t: t < 1, sup=1.0),
    "js": dict(f=lambda u: _xlogx(u) - (u + 1) * math.log((u + 1) / 2), g=lambda v: LOG2 - _softplus(-v),
               fstar=lambda t: -math.log(2 - math.exp(t)), tstar=lambda p, q: math.log(2 * p / (p + q)),
               in_domain=lambda t: t < LOG2, sup=LOG2),
    "gan": dict(f=lambda u: _xlogx(u) - _xlogx(u + 1), g=lambda v: -_softplus(-v),
                fstar=lambda t: -math.log(1 - math.exp(t)), tstar=lambda p, q: math.log(p / (p + q)),
                in_domain=lambda t: t < 0, sup=0.0),
}

# (divergence, π): js_pi at three weights; π is ignored by the other rows.
CASES = [(d, 0.5) for d in ("kl", "rkl", "pearson", "hellinger", "js", "gan")]
CASES += [("js_pi", pi) for pi in (0.1, 0.5, 0.9)]
IDS = [d if d != "js_pi" else f"js_pi-{pi}" for d, pi in CASES]


def ref(div: str, pi: float) -> dict:
    return _ref_js_pi(pi) if div == "js_pi" else REF[div]


def row(div: str, pi: float):
    return FGAN(div, pi=pi).row


def t_grid(div: str, pi: float) -> list[float]:
    """Points of dom f* where the sup over u > 0 is attained at a finite u in (1e-6, 1e6)."""
    sup = ref(div, pi)["sup"]
    if div == "kl":
        return [-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 4.0]
    if div == "pearson":  # f' = 2(u − 1) > −2 on u > 0: t²/4 + t is the conjugate only there
        return [-1.9, -1.0, -0.3, 0.0, 1.0, 3.0, 6.0]
    if div == "js_pi":  # t/π = −log π − δ
        return [pi * (-math.log(pi) - d) for d in (0.01, 0.1, 0.5, 1.0, 3.0, 8.0)]
    return [sup - d for d in (0.01, 0.05, 0.3, 1.0, 3.0, 8.0)]


def _t(xs, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(xs, dtype=dtype)


# --------------------------------------------------------------------------------------------
# The table.


def test_table_rows():
    assert set(DIVERGENCES) == {"kl", "rkl", "pearson", "hellinger", "js", "gan", "js_pi"}


@pytest.mark.parametrize(("div", "pi"), CASES, ids=IDS)
def test_table_matches_science_md(div, pi):
    r, R = row(div, pi), ref(div, pi)
    us = [1e-4, 0.05, 0.5, 1.0, 2.0, 7.5, 300.0]
    vs = [-10.0, -3.0, -0.5, 0.0, 0.4, 2.0, 10.0]
    ts = t_grid(div, pi)
    for name, fn, xs in (("f", r.f, us), ("g", r.activation, vs), ("fstar", r.conjugate, ts)):
        got = fn(_t(xs)).tolist()
        want = [R[name](x) for x in xs]
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12), name
    ps, qs = [0.1, 0.3, 1.2, 2.0], [0.7, 0.3, 0.2, 5.0]
    assert r.optimal_t(_t(ps), _t(qs)).tolist() == pytest.approx(
        [R["tstar"](p, q) for p, q in zip(ps, qs)], rel=1e-10, abs=1e-12)
    assert r.domain == (None if R["sup"] is None else pytest.approx(R["sup"], rel=1e-12))


@pytest.mark.parametrize(("div", "pi"), CASES + [("js_pi", 0.01), ("js_pi", 0.99)],
                         ids=IDS + ["js_pi-0.01", "js_pi-0.99"])
def test_activation_range_inside_conjugate_domain(div, pi):
    r, R = row(div, pi), ref(div, pi)
    v = torch.linspace(-30.0, 30.0, 1201, dtype=torch.float64)
    t = r.activation(v)
    assert torch.isfinite(t).all()
    assert all(R["in_domain"](x) for x in t.tolist())  # docs/science.md's domain, e.g. π·exp(t/π) < 1
    if r.domain is not None:
        assert (t < r.domain).all()
    # f*(g_f(v)) composed literally is finite in float64 ...
    composed = r.conjugate(t)
    assert torch.isfinite(composed).all()
    # ... and the fused, stable form the losses use agrees with it where the composition is accurate
    fused = r.conjugate_of_activation(v)
    inner = v.abs() <= 10
    torch.testing.assert_close(fused[inner], composed[inner], rtol=1e-8, atol=1e-10)
    # the fused form stays finite in float32 too (the composition does not: hellinger at v = 30)
    for dtype in (torch.float32, torch.float64):
        vv = v.to(dtype).requires_grad_(True)
        out = r.conjugate_of_activation(vv)
        assert torch.isfinite(out).all() and torch.isfinite(r.activation(vv)).all()
        out.sum().backward()
        assert torch.isfinite(vv.grad).all()
    # a conjugate over u > 0 is non-decreasing in t, so f*∘g_f is monotone in v; pearson's
    # t²/4 + t is the conjugate over all real u and decreases for t < −2 (see the table's comment)
    keep = t >= -2 if div == "pearson" else torch.ones_like(t, dtype=torch.bool)
    assert (fused[keep].diff() >= 0).all()


def _numerical_conjugate(f, t: float) -> float:
    """sup_{u>0} t·u − f(u): dense grid over log u ∈ [−40, 40], then Brent refinement."""
    s = torch.linspace(-40.0, 40.0, 80001, dtype=torch.float64)
    vals = t * s.exp() - f(s.exp())
    i = int(torch.argmax(vals))
    lo, hi = s[max(i - 1, 0)].item(), s[min(i + 1, len(s) - 1)].item()

    def neg(x: float) -> float:
        u = torch.tensor(math.exp(x), dtype=torch.float64)
        return -(t * u - f(u)).item()

    res = optimize.minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return max(-res.fun, vals[i].item())


@pytest.mark.parametrize(("div", "pi"), CASES, ids=IDS)
def test_conjugate_is_the_fenchel_conjugate_of_f(div, pi):
    r = row(div, pi)
    for t in t_grid(div, pi):
        want = _numerical_conjugate(r.f, t)
        got = r.conjugate(_t([t])).item()
        assert got == pytest.approx(want, rel=1e-6, abs=1e-9), f"t={t}"


@pytest.mark.parametrize(("div", "pi"), CASES, ids=IDS)
def test_fenchel_young_equality(div, pi):
    """f*(f'(u)) = u f'(u) − f(u), with f' by autograd."""
    r = row(div, pi)
    u = _t([0.01, 0.3, 1.0, 2.5, 10.0, 100.0]).requires_grad_(True)
    fu = r.f(u)
    (df,) = torch.autograd.grad(fu.sum(), u)
    torch.testing.assert_close(r.conjugate(df), u.detach() * df - fu.detach(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(("div", "pi"), CASES, ids=IDS)
def test_optimal_t_is_f_prime_of_density_ratio(div, pi):
    """docs/science.md's last column T*(x) equals f'(p/q) (the bound's maximiser)."""
    r, R = row(div, pi), ref(div, pi)
    ps = [0.05, 0.4, 0.4, 1.3, 0.01, 2.0]
    qs = [0.6, 0.4, 0.1, 0.2, 3.0, 2.5]
    u = _t([p / q for p, q in zip(ps, qs)]).requires_grad_(True)
    (fprime,) = torch.autograd.grad(r.f(u).sum(), u)
    science = [R["tstar"](p, q) for p, q in zip(ps, qs)]
    assert fprime.tolist() == pytest.approx(science, rel=1e-9, abs=1e-12)
    assert all(R["in_domain"](t) for t in science)


# --------------------------------------------------------------------------------------------
# Divergence estimation: P = N(0, 1), Q = N(μ, 1), μ = 1.

MU = 1.0
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _log_normal(x: float, mean: float, std: float = 1.0) -> float:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - HALF_LOG_2PI


def _js_pi_quad(pi: float, std_q: float = 1.0) -> float:
    """π·KL(P‖M) + (1−π)·KL(Q‖M), M = πP + (1−π)Q, by quadrature (log densities, no underflow)."""
    def integrand(x: float) -> float:
        lp, lq = _log_normal(x, 0.0), _log_normal(x, MU, std_q)
        lm = float(np.logaddexp(math.log(pi) + lp, math.log(1 - pi) + lq))
        return pi * math.exp(lp) * (lp - lm) + (1 - pi) * math.exp(lq) * (lq - lm)
    return integrate.quad(integrand, -30, 30 + MU, limit=200, epsabs=1e-12)[0]


def truth(div: str, pi: float) -> float:
    return {
        "kl": MU ** 2 / 2,
        "rkl": MU ** 2 / 2,
        "pearson": math.exp(MU ** 2) - 1,
        "hellinger": 2 * (1 - math.exp(-MU ** 2 / 8)),
        "js": 2 * _js_pi_quad(0.5),  # the "js" row is 2·JSD
        "gan": 2 * _js_pi_quad(0.5) - math.log(4),
        "js_pi": _js_pi_quad(pi),
    }[div]


@pytest.mark.parametrize(("div", "pi"), CASES, ids=IDS)
def test_closed_forms_match_quadrature_of_f(div, pi):
    """∫ q f(p/q) dx with the table's f equals the truths used below (and docs/science.md's closed forms)."""
    f = row(div, pi).f

    def integrand(x: float) -> float:
        lp, lq = _log_normal(x, 0.0), _log_normal(x, MU)
        return math.exp(lq) * f(torch.tensor(math.exp(lp - lq), dtype=torch.float64)).item()

    got = integrate.quad(integrand, -20, 20 + MU, limit=200, epsabs=1e-12)[0]
    assert got == pytest.approx(truth(div, pi), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("pi", [0.1, 0.3, 0.9])
def test_js_pi_f_integrates_to_js_pi_on_an_asymmetric_pair(pi):
    """Q = N(1, 1.5²): unlike N(1, 1), this pair tells π from 1 − π."""
    f = row("js_pi", pi).f

    def integrand(x: float) -> float:
        lp, lq = _log_normal(x, 0.0), _log_normal(x, MU, 1.5)
        return math.exp(lq) * f(torch.tensor(math.exp(lp - lq), dtype=torch.float64)).item()

    got = integrate.quad(integrand, -30, 30, limit=200, epsabs=1e-12)[0]
    assert got == pytest.approx(_js_pi_quad(pi, std_q=1.5), rel=1e-7)
    assert got != pytest.approx(_js_pi_quad(1 - pi, std_q=1.5), rel=1e-2)


def train_estimate(loss: FGAN, steps: int = 400, batch: int = 512, n_eval: int = 200_000,
                   seed: int = 0) -> float:
    """Train a small D alone with Adam on fresh samples to minimise loss.d_loss, then return
    ``divergence_estimate`` on large fresh samples. Seeded; leaves the global RNG untouched."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            d = MLPDiscriminator(shape=(1,), hidden=[32, 32], norm="none")
            opt = torch.optim.Adam(d.parameters(), lr=3e-3)
            gen = torch.Generator().manual_seed(seed + 1)
            for _ in range(steps):
                real = torch.randn(batch, 1, generator=gen)
                fake = torch.randn(batch, 1, generator=gen) + MU
                opt.zero_grad()
                loss.d_loss(d(real), d(fake)).backward()
                opt.step()
            with torch.no_grad():
                real = torch.randn(n_eval, 1, generator=gen)
                fake = torch.randn(n_eval, 1, generator=gen) + MU
                return loss.estimates(d(real), d(fake))["divergence_estimate"].item()
    finally:
        torch.set_num_threads(threads)


# Two-sided tolerance, relative to the divergence's scale. Over seeds 0–5 the worst relative
# errors were ≤ 2.3% (pearson 4.4%): 6% (pearson 12%) is a ~2.5× margin, while an off-by-constant
# conjugate, a swapped sign or a wrong activation range moves the estimate by ≥ 40% (checked by
# mutating a scratch copy of the loss). gan's scale is 2·JSD ≈ 0.22, not its value ≈ −1.16.
REL_TOL = {"pearson": 0.12}


@pytest.mark.parametrize(("div", "pi"), [c for c in CASES if c != ("js_pi", 0.5)],
                         ids=[i for c, i in zip(CASES, IDS) if c != ("js_pi", 0.5)])
def test_trained_discriminator_estimates_the_divergence(div, pi):
    est = train_estimate(FGAN(div, pi=pi))
    want = truth(div, pi)
    scale = want + math.log(4) if div == "gan" else want
    assert abs(est - want) <= REL_TOL.get(div, 0.06) * scale, f"estimate {est:.4f} vs truth {want:.4f}"


# --------------------------------------------------------------------------------------------
# Losses on fixed logits.

VR = [-30.0, -2.0, -0.5, 0.0, 0.7, 3.0, 30.0]
VF = [-30.0, -3.0, -1.0, 0.25, 1.5, 2.0, 30.0]
VR_MODERATE, VF_MODERATE = VR[1:-1], VF[1:-1]


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


@pytest.mark.parametrize(("div", "pi"), CASES, ids=IDS)
def test_d_loss_g_losses_and_estimate_on_fixed_logits(div, pi):
    R = ref(div, pi)
    vr, vf = _t(VR_MODERATE), _t(VF_MODERATE)
    g_fake = [R["g"](v) for v in VF_MODERATE]
    fstar_fake = [R["fstar"](t) for t in g_fake]
    bound = _mean(R["g"](v) for v in VR_MODERATE) - _mean(fstar_fake)
    heuristic = FGAN(div, "heuristic", pi=pi)
    saturating = FGAN(div, "saturating", pi=pi)
    tol = dict(rel=1e-9, abs=1e-12)
    assert heuristic.d_loss(vr, vf).item() == pytest.approx(-bound, **tol)
    assert saturating.d_loss(vr, vf).item() == pytest.approx(-bound, **tol)  # D's loss is the same
    assert heuristic.g_loss(vf).item() == pytest.approx(-_mean(g_fake), **tol)  # −E_Q g_f(v_f)
    assert saturating.g_loss(vf).item() == pytest.approx(-_mean(fstar_fake), **tol)  # −E_Q f*(g_f(v_f))
    est = heuristic.estimates(vr, vf)
    assert set(est) == {"divergence_estimate"}
    assert est["divergence_estimate"].item() == pytest.approx(bound, **tol)


@pytest.mark.parametrize(("div", "pi"), CASES, ids=IDS)
@pytest.mark.parametrize("objective", ["heuristic", "saturating"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_losses_finite_with_finite_gradients_at_large_logits(div, pi, objective, dtype):
    # kl's e^{v−1} and pearson's v²/4 + v grow without bound by design, but are finite at |v| = 30
    loss = FGAN(div, objective, pi=pi)
    real = _t(VR, dtype).requires_grad_(True)
    fake = _t(VF, dtype).requires_grad_(True)
    total = loss.d_loss(real, fake) + loss.g_loss(fake)
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


def test_gan_row_is_the_original_gan():
    vr = _t(VR)
    vf = _t(VF)
    want_d = (F.softplus(-vr) + F.softplus(vf)).mean()
    torch.testing.assert_close(FGAN("gan").d_loss(vr, vf), want_d, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(FGAN("gan").d_loss(vr, vf), Minimax().d_loss(vr, vf), rtol=1e-12, atol=1e-12)
    # saturating G = minimax's log(1 − D(G(z))); Nowozin's heuristic = the non-saturating −log D(G(z))
    torch.testing.assert_close(FGAN("gan", "saturating").g_loss(vf), Minimax().g_loss(vf))
    torch.testing.assert_close(FGAN("gan", "heuristic").g_loss(vf), NonSaturating().g_loss(vf))


def test_js_row_is_gan_row_plus_log_4():
    vr, vf = _t(VR), _t(VF)
    est_js = FGAN("js").estimates(vr, vf)["divergence_estimate"]
    est_gan = FGAN("gan").estimates(vr, vf)["divergence_estimate"]
    torch.testing.assert_close(est_js, est_gan + math.log(4), rtol=1e-12, atol=1e-12)


def test_flags_and_defaults():
    loss = FGAN()
    assert loss.name == "fgan"
    assert (loss.divergence, loss.generator_objective, loss.pi, loss.label_smoothing) == ("gan", "heuristic", 0.5, 0.0)
    assert FGAN.caps.sigmoid_output is False and loss.caps.sigmoid_output is False
    assert FGAN.caps.label_smoothing is False
    assert "divergence='gan'" in repr(loss)


# --------------------------------------------------------------------------------------------
# Bad settings.


def test_unknown_divergence_refused():
    error = refused("loss=fgan", "loss.divergence=foo")
    msg = str(error)
    assert error.key == "loss.divergence" and "loss.divergence" in msg and "'foo'" in msg
    for name in DIVERGENCES:
        assert name in msg


def test_unknown_generator_objective_refused():
    error = refused("loss=fgan", "loss.generator_objective=ns")
    assert error.key == "loss.generator_objective"
    assert "heuristic" in str(error) and "saturating" in str(error)


@pytest.mark.parametrize("pi", [0, 1, 0.0, 1.0, -0.2, 1.5, float("nan"), "0.5"])
@pytest.mark.parametrize("div", ["js_pi", "gan"])
def test_pi_outside_open_unit_interval_refused(pi, div):
    value = repr(pi) if isinstance(pi, str) else pi
    error = refused("loss=fgan", f"loss.divergence={div}", f"loss.pi={value}")
    assert error.key == "loss.pi"
    assert "(0.0, 1.0)" in str(error)


@pytest.mark.parametrize("s", [0.1, 0.5])
def test_label_smoothing_refused(s):
    error = refused("loss=fgan", f"loss.label_smoothing={s}")
    assert error.key == "loss.label_smoothing"
    assert "fgan" in str(error)


# --------------------------------------------------------------------------------------------
# The config file maps onto the constructor.


@pytest.mark.parametrize("div", sorted(DIVERGENCES))
def test_config_composes_and_instantiates(div):
    cfg = compose_cfg("loss=fgan", f"loss.divergence={div}")
    loss = instantiate(cfg.loss)
    assert isinstance(loss, FGAN)
    assert (loss.divergence, loss.generator_objective, loss.pi, loss.label_smoothing) == (div, "heuristic", 0.5, 0.0)


def test_config_overrides_reach_the_constructor():
    cfg = compose_cfg("loss=fgan", "loss.divergence=js_pi", "loss.pi=0.1", "loss.generator_objective=saturating")
    loss = instantiate(cfg.loss)
    assert (loss.divergence, loss.generator_objective, loss.pi) == ("js_pi", "saturating", 0.1)
    assert loss.row.domain == pytest.approx(-0.1 * math.log(0.1))


def test_config_defaults_match_the_constructor():
    cfg = compose_cfg("loss=fgan")
    assert cfg.loss._target_ == "gan_lab.losses.fgan.FGAN"
    assert {k: v for k, v in cfg.loss.items() if k != "_target_"} == {
        "divergence": "gan", "generator_objective": "heuristic", "pi": 0.5, "label_smoothing": 0.0,
        "aux_weight": None}


def test_bad_divergence_in_config_refused_at_composition():
    with pytest.raises(ConfigError) as info:
        check_settings(compose_cfg("loss=fgan", "loss.divergence=foo"))
    assert info.value.key == "loss.divergence"
