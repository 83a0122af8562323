"""f-GAN: variational divergence minimisation (Nowozin 2016; LAMBDA lecture notes, docs/references.md;
docs/science.md, "f-GAN").

    D_f(P‖Q) = ∫ q f(p/q) dx  ≥  sup_T  E_P[T(x)] − E_Q[f*(T(x))],      T = g_f(v),  v = V(x)

f* is the Fenchel conjugate f*(t) = sup_u (t·u − f(u)), and the output activation g_f maps the
raw logit v onto the domain of f*. The bound is tight at T*(x) = f'(p(x)/q(x)).

    D minimises   −(E_P g_f(v_r) − E_Q f*(g_f(v_f)))
    G minimises   −E_Q g_f(v_f)          generator_objective=heuristic (default; Nowozin's trick)
                  −E_Q f*(g_f(v_f))      generator_objective=saturating (the minimax objective)

Conventions of the lab (docs/science.md, "f-GAN"):

* ``pearson`` is χ² = ∫ (p − q)²/q  (f(u) = (u − 1)²; the LAMBDA lecture notes' table swaps p and q).
* ``js`` uses f(u) = u log u − (u+1) log((u+1)/2) and so estimates **2·JSD** (range [0, 2 log 2]).
* ``gan`` is the original GAN: it estimates 2·JSD − log 4, and its d_loss is exactly
  softplus(−v_r) + softplus(v_f), the minimax/ns D loss.
* ``js_pi`` is JS_π(P‖Q) = π·KL(P‖M) + (1−π)·KL(Q‖M), M = πP + (1−π)Q (Zhang lecture notes,
  docs/references.md); at π = ½
  it is JSD, half of ``js``.
* ``hellinger`` is the squared Hellinger distance ∫ (√p − √q)² (no ½), in [0, 2].

Reading D's output. ``caps.sigmoid_output`` stays False: the raw v is logged. At the optimum the
logit still tells the density ratio, so some read-outs are interpretable:

* ``gan``, ``js``: σ(v) = p/(p+q), the classic D*(x) (T* = log σ(v) + const).
* ``rkl``: v = log(p/q), so σ(v) = p/(p+q) as well.
* ``kl``: v − 1 = log(p/q);  ``hellinger``: 2v = log(p/q);  ``pearson``: v/2 + 1 = p/q.
* ``js_pi``: σ(v)^(1/π) = πp/(πp + (1−π)q), the posterior of "real" under prior π; σ(v) itself
  is not a probability of anything useful (the table's g_f has no factor π on the softplus).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal, NamedTuple

import torch
import torch.nn.functional as F

from gan_lab.checks import Range
from gan_lab.losses.base import AuxWeight, GANLoss, LabelSmoothing

Fn = Callable[[torch.Tensor], torch.Tensor]


class FDivergence(NamedTuple):
    """One row of the f-GAN table. All functions act elementwise on tensors.

    ``f``: the generator function f(u), u = p/q > 0 (documentation and tests; never trained on).
    ``activation``: g_f(v), logit -> the domain of f*.
    ``conjugate``: f*(t) on that domain.
    ``conjugate_of_activation``: f*(g_f(v)) in a form that stays finite and accurate for large |v|
        (composing the two above cancels catastrophically, e.g. hellinger at v = 30 in float32).
    ``optimal_t``: T*(p, q) = f'(p/q), the maximiser of the bound (documentation and tests).
    ``domain``: the open upper bound of dom f* (None: unbounded), for documentation and tests.
    """

    f: Fn
    activation: Fn
    conjugate: Fn
    conjugate_of_activation: Fn
    optimal_t: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    domain: float | None


LOG2 = math.log(2.0)


def _xlogx(x: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(x, x)  # x log x with 0 log 0 = 0


def _js_pi(pi: float) -> FDivergence:
    """JS_π (Zhang lecture notes, docs/references.md).
    Derivation of f* from f(u) = πu log u − (πu+1−π) log(πu+1−π):
    f'(u) = π log(u / (πu+1−π)) ∈ (−∞, −π log π). Put s = exp(t/π) = u/(πu+1−π), so
    u = (1−π)s/(1−πs) and w := πu+1−π = (1−π)/(1−πs). Then
    f*(t) = u f'(u) − f(u) = −πu log w + w log w = (1−π) log w
          = (1−π) log(1−π) − (1−π) log(1 − π·exp(t/π)),      defined for π·exp(t/π) < 1.
    """
    a = 1.0 - pi
    c = -pi * math.log(pi)  # sup of dom f* = −π log π
    return FDivergence(
        # f(u) = πu log u − (πu+1−π) log(πu+1−π)
        f=lambda u: pi * _xlogx(u) - _xlogx(pi * u + a),
        # g_f(v) = −π log π − softplus(−v)  (= −π log π + log σ(v))
        activation=lambda v: c - F.softplus(-v),
        # f*(t) = (1−π) log(1−π) − (1−π) log(1 − π e^{t/π}),  π e^{t/π} = e^{t/π + log π}
        conjugate=lambda t: a * math.log(a) - a * torch.log(-torch.expm1(t / pi + math.log(pi))),
        # π e^{g_f(v)/π} = e^{−softplus(−v)/π} = σ(v)^{1/π}
        conjugate_of_activation=lambda v: a * math.log(a) - a * torch.log(-torch.expm1(-F.softplus(-v) / pi)),
        # T* = π log(p / (πp + (1−π)q))
        optimal_t=lambda p, q: pi * torch.log(p / (pi * p + a * q)),
        domain=c,
    )


# The table (Nowozin 2016, Tables 2/6, with the lab's conventions above). js_pi depends on π and
# is built per instance by _js_pi; the entry here is π = ½ for reference.
DIVERGENCES: dict[str, FDivergence] = {
    # KL(P‖Q) = ∫ p log(p/q)
    "kl": FDivergence(
        f=lambda u: _xlogx(u),                               # u log u
        activation=lambda v: v,                              # g_f(v) = v
        conjugate=lambda t: torch.exp(t - 1.0),              # f*(t) = e^{t−1}, t ∈ R
        conjugate_of_activation=lambda v: torch.exp(v - 1.0),
        optimal_t=lambda p, q: 1.0 + torch.log(p / q),       # T* = 1 + log(p/q)
        domain=None,
    ),
    # reverse KL = KL(Q‖P) = ∫ q log(q/p)
    "rkl": FDivergence(
        f=lambda u: -torch.log(u),                           # −log u
        activation=lambda v: -torch.exp(-v),                 # g_f(v) = −e^{−v} < 0
        conjugate=lambda t: -1.0 - torch.log(-t),            # f*(t) = −1 − log(−t), t < 0
        conjugate_of_activation=lambda v: v - 1.0,           # −1 − log(e^{−v}) = v − 1
        optimal_t=lambda p, q: -q / p,                       # T* = −q/p
        domain=0.0,
    ),
    # Pearson χ² = ∫ (p − q)²/q  (the lab follows f; the seed prints p and q swapped)
    "pearson": FDivergence(
        f=lambda u: (u - 1.0) ** 2,                          # (u − 1)²
        activation=lambda v: v,                              # g_f(v) = v
        # f*(t) = t²/4 + t, t ∈ R (conjugate of (u−1)² over all real u; over u ≥ 0 it agrees
        # for t ≥ −2 and is −1 below: t²/4 + t ≥ −1, so the bound stays a valid lower bound)
        conjugate=lambda t: 0.25 * t * t + t,
        conjugate_of_activation=lambda v: 0.25 * v * v + v,
        optimal_t=lambda p, q: 2.0 * (p / q - 1.0),          # T* = 2(p/q − 1)
        domain=None,
    ),
    # squared Hellinger = ∫ (√p − √q)²  (no ½ factor: range [0, 2])
    "hellinger": FDivergence(
        f=lambda u: (torch.sqrt(u) - 1.0) ** 2,              # (√u − 1)²
        activation=lambda v: -torch.expm1(-v),               # g_f(v) = 1 − e^{−v} < 1
        conjugate=lambda t: t / (1.0 - t),                   # f*(t) = t/(1 − t), t < 1
        conjugate_of_activation=lambda v: torch.expm1(v),    # (1 − e^{−v})/e^{−v} = e^v − 1
        optimal_t=lambda p, q: (torch.sqrt(p / q) - 1.0) * torch.sqrt(q / p),  # = 1 − √(q/p)
        domain=1.0,
    ),
    # "Jensen-Shannon" row: estimates 2·JSD = KL(P‖M) + KL(Q‖M), M = (P+Q)/2; range [0, 2 log 2]
    "js": FDivergence(
        f=lambda u: _xlogx(u) - (u + 1.0) * torch.log((u + 1.0) / 2.0),  # u log u − (u+1) log((u+1)/2)
        activation=lambda v: LOG2 - F.softplus(-v),          # g_f(v) = log 2 − softplus(−v) < log 2
        # f*(t) = −log(2 − e^t) = −log 2 − log(1 − e^{t − log 2}), t < log 2
        conjugate=lambda t: -LOG2 - torch.log(-torch.expm1(t - LOG2)),
        # 2 − 2σ(v) = 2σ(−v):  f*(g_f(v)) = −log 2 + softplus(v)
        conjugate_of_activation=lambda v: F.softplus(v) - LOG2,
        optimal_t=lambda p, q: torch.log(2.0 * p / (p + q)),  # T* = log(2p/(p+q))
        domain=LOG2,
    ),
    # the original GAN: ∫ p log(p/(p+q)) + q log(q/(p+q)) = 2·JSD − log 4
    "gan": FDivergence(
        f=lambda u: _xlogx(u) - _xlogx(u + 1.0),              # u log u − (u+1) log(u+1)
        activation=lambda v: -F.softplus(-v),                 # g_f(v) = log σ(v) < 0
        conjugate=lambda t: -torch.log(-torch.expm1(t)),      # f*(t) = −log(1 − e^t), t < 0
        conjugate_of_activation=lambda v: F.softplus(v),      # −log(1 − σ(v)) = softplus(v)
        optimal_t=lambda p, q: torch.log(p / (p + q)),        # T* = log(p/(p+q))
        domain=0.0,
    ),
    # JS_π (Zhang lecture notes, docs/references.md), see _js_pi for the derivation
    "js_pi": _js_pi(0.5),
}

GENERATOR_OBJECTIVES = ("heuristic", "saturating")


class FGAN(GANLoss):
    """f-GAN objective for ``divergence`` ∈ {kl, rkl, pearson, hellinger, js, gan, js_pi}.

    ``generator_objective``: ``heuristic`` (G minimises −E_Q g_f(v_f), the default) or
    ``saturating`` (G minimises −E_Q f*(g_f(v_f)), the minimax objective).
    ``pi`` ∈ (0, 1) is the weight of JS_π and only used by ``divergence=js_pi``.
    Label smoothing is refused (only the sigmoid-BCE losses take it).
    ``estimates`` logs ``divergence_estimate`` = E_P g_f(v_r) − E_Q f*(g_f(v_f)) = −d_loss, the
    variational lower bound on D_f(P‖Q) (for ``js`` on 2·JSD, for ``gan`` on 2·JSD − log 4).
    """

    name = "fgan"

    def __init__(self, divergence: Annotated[Literal[tuple(DIVERGENCES)], "the f-divergence (docs/science.md, "
                                                                          "\"f-GAN\")"] = "gan",
                 generator_objective: Annotated[Literal[GENERATOR_OBJECTIVES], "heuristic: G minimises −E g_f(v_f); "
                                                "saturating: −E f*(g_f(v_f))"] = "heuristic",
                 pi: Annotated[float, Range(0.0, 1.0, True, True), "the weight π of JS_π (divergence=js_pi)"] = 0.5,
                 label_smoothing: LabelSmoothing = 0.0, aux_weight: AuxWeight = None):
        super().__init__(label_smoothing=label_smoothing, aux_weight=aux_weight)
        self.divergence, self.generator_objective, self.pi = divergence, generator_objective, float(pi)
        self.row = _js_pi(self.pi) if divergence == "js_pi" else DIVERGENCES[divergence]

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        # −(E_P g_f(v_r) − E_Q f*(g_f(v_f)))
        return -self.row.activation(real_logits).mean() + self.row.conjugate_of_activation(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.generator_objective == "saturating":
            return -self.row.conjugate_of_activation(fake_logits).mean()  # −E_Q f*(g_f(v_f))
        return -self.row.activation(fake_logits).mean()  # −E_Q g_f(v_f)

    def estimates(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        # E_P g_f(v_r) − E_Q f*(g_f(v_f)) ≤ D_f(P‖Q): the variational lower bound (= −d_loss)
        return {"divergence_estimate": -self.d_loss(real_logits, fake_logits)}

    def __repr__(self) -> str:
        return (f"FGAN(divergence={self.divergence!r}, generator_objective={self.generator_objective!r}, "
                f"pi={self.pi}, label_smoothing={self.label_smoothing})")
