"""The loss interface every objective implements."""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
import torch.nn.functional as F

from gan_lab.capabilities import LossCaps
from gan_lab.checks import at_least, fraction

LabelSmoothing = Annotated[float, fraction(), "one-sided label smoothing s: real target 1 − s (minimax, ns)"]
AuxWeight = Annotated[Annotated[float, at_least(0.0)] | None, "AC-GAN's class cross-entropy weight in both players' "
                                                              "losses (model.conditional=acgan; null: 1)"]


class GANLoss:
    """``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``, each a batch mean; a loss whose G
    objective also reads D's outputs on real data (the relativistic ones) declares ``caps.g_needs_real`` and is
    called ``g_loss(fake_logits, real_logits)``.

    ``label_smoothing`` s (one-sided, Salimans 2016) sets the real target to α = 1 − s; only the
    sigmoid-BCE objectives take it (``caps.label_smoothing``; the rulebook refuses s ≠ 0 for the others).
    """

    name: ClassVar[str]
    caps: ClassVar[LossCaps] = LossCaps()

    def __init__(self, label_smoothing: LabelSmoothing = 0.0, aux_weight: AuxWeight = None):
        self.aux_weight = None if aux_weight is None else float(aux_weight)
        self.label_smoothing = float(label_smoothing)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def output(self, logits: torch.Tensor) -> torch.Tensor:
        """D's mean output as logged (train/d_real, train/d_fake): a probability σ(v) for the sigmoid losses, the
        raw critic value otherwise."""
        return (torch.sigmoid(logits) if self.caps.sigmoid_output else logits).mean()

    def outputs(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"d_real": self.output(real_logits), "d_fake": self.output(fake_logits)}

    def estimates(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Divergence or distance estimates this objective yields (logged as train/<name>)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label_smoothing={self.label_smoothing})"


class SigmoidBCE(GANLoss):
    """D minimises BCE(σ(v_r), α) + BCE(σ(v_f), 0) with α = 1 − label_smoothing:
    α·softplus(−v_r) + (1−α)·softplus(v_r) + softplus(v_f)."""

    caps = LossCaps(sigmoid_output=True, label_smoothing=True)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        alpha = 1.0 - self.label_smoothing
        real_term = alpha * F.softplus(-real_logits)  # -α·log σ(v_r)
        if self.label_smoothing:
            real_term = real_term + (1.0 - alpha) * F.softplus(real_logits)  # -(1-α)·log(1-σ(v_r))
        return real_term.mean() + F.softplus(fake_logits).mean()  # -log(1 - σ(v_f))
