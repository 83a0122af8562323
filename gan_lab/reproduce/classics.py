"""The lecture notes' experiments as one table against their closed forms (docs/science.md).

* optimal D (Goodfellow et al. 2014, Proposition 1; ``experiment=optimal_d``): for a fixed G the best D
  is p/(p+q); the run reports the mean |σ(V(x)) − p/(p+q)| where the densities have mass; closed form 0.
* parallel lines (Arjovsky et al. 2017, Example 1; ``experiment=parallel_lines``): W(P, Q_θ) = |θ|, so a
  WGAN critic moves θ to 0; JS(P, Q_θ) = log 2 for every θ ≠ 0 gives G no useful gradient: once D
  separates the lines, ∂L/∂θ = 0 and θ stalls away from 0 (measured: it sits at 0.79 for 300
  iterations with a gradient of exactly 0, jumps once, and stalls again at −0.27).
* JS_π (Huszár 2015; ``experiment=js_pi``): one Gaussian q = N(μ, σ²) fitted by f-GAN to a bimodal p;
  the closed form is the (μ, σ) minimising JS_π(p‖q) = π·KL(p‖m) + (1−π)·KL(q‖m), m = πp + (1−π)q,
  computed here by quadrature from the run's own start (μ, σ) = (1, 0.5). Small π covers both modes
  (μ ≈ 0, σ wide); π near 1 seeks one.

A closed form has no standard error, so each row also states a tolerance: it agrees when the lab's mean
is within 2 standard errors *or* within that tolerance of the value.
"""

from __future__ import annotations

import math

import torch

from gan_lab.reproduce.spec import Row

SEPARATION, STD = 4.0, 0.5  # conf/dataset/bimodal1d.yaml
START = (1.0, 0.5)  # conf/experiment/js_pi.yaml: model.loc, model.scale


def js_pi_optimum(pi: float, start: tuple[float, float] = START, lo: float = -10.0, hi: float = 10.0,
                  points: int = 8001) -> tuple[float, float]:
    """(μ, σ) of the Gaussian minimising JS_π(p‖N(μ, σ²)) for p = ½N(−2, 0.5²) + ½N(2, 0.5²), found by
    L-BFGS from ``start`` with the integrals as trapezoid sums on [lo, hi] (float64)."""
    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    half = SEPARATION / 2
    p = 0.5 * (torch.distributions.Normal(-half, STD).log_prob(x).exp()
               + torch.distributions.Normal(half, STD).log_prob(x).exp())
    loc = torch.tensor(start[0], dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor(math.log(start[1]), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([loc, log_scale], lr=1.0, max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        terms = torch.where(a > 0, a * (a.clamp_min(1e-300).log() - b.clamp_min(1e-300).log()), torch.zeros_like(a))
        return torch.trapezoid(terms, x)

    def closure():
        opt.zero_grad()
        q = torch.distributions.Normal(loc, log_scale.exp()).log_prob(x).exp()
        m = pi * p + (1 - pi) * q
        value = pi * kl(p, m) + (1 - pi) * kl(q, m)
        value.backward()
        return value

    opt.step(closure)
    return float(loc.detach()), float(log_scale.detach().exp())


def rows() -> tuple[Row, ...]:
    out = [
        Row("optimal_d", "optimal D: mean |σ(V) − p/(p+q)|", ("experiment=optimal_d",),
            {"optimal_d/mean_abs_error": (0.0, None)}, tolerance={"optimal_d/mean_abs_error": 0.05}),
        Row("lines_wgan", "parallel lines, WGAN-GP: θ → 0", ("experiment=parallel_lines",),
            {"g/final_theta": (0.0, None)}, tolerance={"g/final_theta": 0.1}),
        Row("lines_js", "parallel lines, JS GAN: no useful gradient, ∂L/∂θ = 0",
            ("experiment=parallel_lines", "loss=minimax", "regularizer=none"),
            {"g/final_theta_grad": (0.0, None)}, tolerance={"g/final_theta_grad": 0.01}),
    ]
    for pi in (0.1, 0.99):
        loc, scale = js_pi_optimum(pi)
        out.append(Row(f"js_pi_{pi}", f"JS_π fit, π = {pi}: argmin over N(μ, σ²)",
                       ("experiment=js_pi", f"loss.pi={pi}"),
                       {"fit/loc": (loc, None), "fit/scale": (scale, None)},
                       tolerance={"fit/loc": 0.15, "fit/scale": 0.15}))
    return tuple(out)
