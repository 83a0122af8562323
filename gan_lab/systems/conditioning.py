"""Conditioning as a strategy (``model.conditional``): how a system's step reads labels, draws them for fakes and
passes them to G and D. The unconditional strategy does nothing, so no step, sampler or measurement branches
on whether a run has labels.

Every minibatch is a :class:`Batch` ``(x, y)``; ``y`` is None in an unconditional run and every strategy call
accepts it as it is. The networks of a class-conditional run are gan_lab/nets/conditional.py's wrappers: G(z, y),
and D(x, y) whose ``judge`` also returns AC-GAN's class logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Batch(NamedTuple):
    """One minibatch: samples x (N, …) and their class labels y (N,), None when the run has none."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def detached_copy(self) -> Batch:
        return Batch(self.x.detach().clone(), None if self.y is None else self.y.detach().clone())

    def copy_(self, other: Batch) -> None:
        self.x.copy_(other.x)
        if self.y is not None:
            self.y.copy_(other.y)


class Unconditional:
    """No labels: G(z), D(x)."""

    mode = "none"
    n_classes = 0

    def attach(self, system: nn.Module) -> None:
        pass

    def batches(self, batch, n: int) -> list[Batch]:
        """The n minibatches of one iteration's data (n·B samples) -> n :class:`Batch` of B."""
        return [Batch(x) for x in batch.chunk(n)]

    def fake_labels(self, system: nn.Module, n: int, generator: torch.Generator | None = None) -> None:
        return None

    def eval_labels(self, system: nn.Module, n: int, generator: torch.Generator) -> None:
        return None

    def generate(self, generator: nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return generator(z)

    def chunks(self, labels: torch.Tensor | None, n: int, size: int, device: torch.device) -> list:
        """The labels of n chunks of ``size`` samples each, on ``device`` (None each, unconditional); refuses labels
        given to an unconditional generator."""
        if labels is not None:
            raise ValueError("labels are needed by, and only by, a class-conditional generator")
        return [None] * n

    def take(self, labels: torch.Tensor | None, index) -> torch.Tensor | None:
        """The labels of the samples ``index`` picks (None, unconditional)."""
        return None

    def judge(self, critic: Callable, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, None]:
        """(D's logits, AC-GAN's class logits or None) of what D sees, x, given its labels y."""
        return critic(x), None

    def given(self, critic: Callable, y: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """D as a function of its input alone, x ↦ D(x, y) with y held fixed (a penalty differentiates with
        respect to the images only)."""
        return critic

    def d_class_terms(self, real_classes, y_real, fake_classes, y_fake, weight: float | None) -> tuple[None, dict]:
        """AC-GAN's class term of D's loss, with its statistics; (None, {}) for every other mode."""
        return None, {}

    def g_class_terms(self, classes, y, weight: float | None) -> tuple[None, dict]:
        """AC-GAN's class term of G's loss, with its statistics; (None, {}) for every other mode."""
        return None, {}


class ClassConditional(Unconditional):
    """Labels y: G(z, y), D(x, y); fake labels drawn from a prior over the ``n_classes`` classes (the
    ``label_cdf`` buffer of the system, so it is checkpointed and moves with it)."""

    def __init__(self, mode: str, n_classes: int, prior: torch.Tensor):
        self.mode, self.n_classes = mode, n_classes
        self.prior = prior

    def attach(self, system: nn.Module) -> None:
        system.register_buffer("label_cdf", torch.cumsum(self.prior.double() / self.prior.sum(), 0).float())

    def batches(self, batch, n: int) -> list[Batch]:
        x, y = batch
        return [Batch(xs, ys) for xs, ys in zip(x.chunk(n), y.chunk(n))]

    def fake_labels(self, system: nn.Module, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n fake labels from the label prior, by inverting its CDF on uniforms from the iteration's stream (or
        ``generator``, on the CPU)."""
        u = torch.rand(n, generator=generator) if generator is not None else torch.rand(n, device=system.device)
        return torch.searchsorted(system.label_cdf.to(u.device), u, right=True).clamp_max(self.n_classes - 1)

    def eval_labels(self, system: nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
        """The labels samples for pictures and metrics are drawn for: every class in turn (0, 1, …, K−1, 0, …)
        under a uniform prior, so each class gets n/K; else a draw from the prior."""
        probs = torch.diff(system.label_cdf.cpu(), prepend=torch.zeros(1))
        if torch.allclose(probs, torch.full_like(probs, 1.0 / self.n_classes)):
            return torch.arange(n) % self.n_classes
        return self.fake_labels(system, n, generator)

    def generate(self, generator: nn.Module, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return generator(z, y)

    def chunks(self, labels: torch.Tensor | None, n: int, size: int, device: torch.device) -> list:
        if labels is None:
            raise ValueError("labels are needed by, and only by, a class-conditional generator")
        return [y.to(device) for y in labels.split(size)]

    def take(self, labels: torch.Tensor, index) -> torch.Tensor:
        return labels[index]

    def judge(self, critic, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return critic.judge(x, y)

    def given(self, critic, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: critic(x, y)

    @staticmethod
    def _class_loss(logits: torch.Tensor, y: torch.Tensor, weight: float | None) -> torch.Tensor:
        """AC-GAN (Odena 2017, L_C): ``weight`` (``loss.aux_weight``, null: 1) · CE(class logits, y)."""
        return (1.0 if weight is None else weight) * F.cross_entropy(logits.float(), y)

    def d_class_terms(self, real_classes, y_real, fake_classes, y_fake, weight):
        """D classifies real and generated images (AC-GAN's D has a class head; the other modes' D gives None)."""
        if real_classes is None:
            return None, {}
        aux = self._class_loss(real_classes, y_real, weight) + self._class_loss(fake_classes, y_fake, weight)
        return aux, {"d_aux": aux, "d_class_accuracy_real": (real_classes.argmax(1) == y_real).float().mean()}

    def g_class_terms(self, classes, y, weight):
        if classes is None:
            return None, {}
        aux = self._class_loss(classes, y, weight)
        return aux, {"g_aux": aux}

def conditioning(mode: str = "none", n_classes: int = 0, prior: torch.Tensor | None = None) -> Unconditional:
    return Unconditional() if mode == "none" else ClassConditional(mode, n_classes, prior)
