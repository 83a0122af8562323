"""The loss interface every objective implements."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from gan_lab.errors import ConfigError, check_range


class GANLoss:
    """``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``, each a batch mean; a loss whose G
    objective also reads D's outputs on real data (the relativistic ones) sets ``g_needs_real`` and is
    called ``g_loss(fake_logits, real_logits)``.

    ``label_smoothing`` s (one-sided, Salimans 2016) sets the real target to α = 1 − s; only the
    sigmoid-BCE objectives accept it, every other one refuses s ≠ 0 with a ConfigError.
    """

    name: ClassVar[str]
    # D's output read as a probability σ(v) (the sigmoid losses) rather than a raw critic score.
    sigmoid_output: ClassVar[bool] = False
    supports_label_smoothing: ClassVar[bool] = False
    g_needs_real: ClassVar[bool] = False  # G's loss reads real logits: the system passes them

    def __init__(self, label_smoothing: float = 0.0, aux_weight: float | None = None):
        """``aux_weight``: AC-GAN's class cross-entropy weight (``model.conditional=acgan``; None: 1 there, and
        unset for every other model)."""
        check_range("loss.label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
        self.aux_weight = None if aux_weight is None else float(check_range("loss.aux_weight", aux_weight, 0.0))
        if label_smoothing and not self.supports_label_smoothing:
            raise ConfigError("loss.label_smoothing", label_smoothing, "0 with loss=" + self.name,
                              "One-sided label smoothing applies only to the sigmoid-BCE losses "
                              "(loss=minimax, loss=ns).")
        self.label_smoothing = float(label_smoothing)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def estimates(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Divergence or distance estimates this objective yields (logged as train/<name>)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label_smoothing={self.label_smoothing})"


class SigmoidBCE(GANLoss):
    """D minimises BCE(σ(v_r), α) + BCE(σ(v_f), 0) with α = 1 − label_smoothing:
    α·softplus(−v_r) + (1−α)·softplus(v_r) + softplus(v_f)."""

    sigmoid_output = True
    supports_label_smoothing = True

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        alpha = 1.0 - self.label_smoothing
        real_term = alpha * F.softplus(-real_logits)  # -α·log σ(v_r)
        if self.label_smoothing:
            real_term = real_term + (1.0 - alpha) * F.softplus(real_logits)  # -(1-α)·log(1-σ(v_r))
        return real_term.mean() + F.softplus(fake_logits).mean()  # -log(1 - σ(v_f))
