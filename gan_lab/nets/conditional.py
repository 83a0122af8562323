"""Class-conditional networks (docs/science.md, "Class-conditional GANs"): any G/D pair of the lab, given the
label y of each sample.

- ``concat`` (Mirza & Osindero 2014): G reads [z, onehot(y)]; D reads its input with onehot(y) joined to it,
  as extra features (points) or as constant extra channels (images, the conditional DCGAN practice).
- ``projection`` (Miyato & Koyama 2018): G's batch norms become class-conditional (de Vries et al. 2017: a
  per-class scale γ_y and shift β_y after a normalisation without affine parameters); D's output is
  ψ(φ(x)) + ⟨embed(y), φ(x)⟩, φ its feature layer and ψ its head.
- ``acgan`` (Odena et al. 2017): G as in concat; D unchanged but for an auxiliary head, class logits
  from φ(x), trained with the class cross-entropy by both players (the system adds it, gan_lab/systems/gan.py).

The wrappers keep the inner networks' parameter names under ``net.`` and build the inner networks with the
lab's own factories (gan_lab/nets), so every architecture gains the three modes at once.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.data.base import DataSpec

MODES = ("none", "concat", "projection", "acgan")
PRIORS = ("uniform", "data")


class ClassEmbedding(nn.Embedding):
    """embed(y) of the projection D; spectral norm treats its (classes × features) table as one of D's
    linear maps (Miyato & Koyama's SNEmbedID; gan_lab/regularizers/sn.py reads ``linear_weights``)."""

    linear_weights = ("weight",)


class _Slot:
    """The labels a conditional generator's batch norms read during one forward (set by its wrapper)."""

    y: torch.Tensor | None = None


class ConditionalBatchNorm(nn.Module):
    """BN without affine parameters, then γ_y·x̂ + β_y with a learned (γ, β) per class (γ = 1, β = 0 at
    the start, i.e. the plain BN it replaces); running statistics are shared by the classes."""

    def __init__(self, norm: nn.Module, n_classes: int, slot: _Slot):
        super().__init__()
        self.norm = type(norm)(norm.num_features, eps=norm.eps, momentum=norm.momentum, affine=False)
        self.gamma = nn.Embedding(n_classes, norm.num_features)
        self.beta = nn.Embedding(n_classes, norm.num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)
        self.slot = slot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.slot.y
        if y is None:
            raise RuntimeError("a class-conditional batch norm was called without labels")
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        return self.norm(x) * self.gamma(y).view(shape) + self.beta(y).view(shape)


def _conditional_norms(module: nn.Module, n_classes: int, slot: _Slot) -> int:
    """Replace every BatchNorm1d/2d inside ``module`` by a :class:`ConditionalBatchNorm`, but those a network
    names in its ``unconditional_norms`` (the SN-GAN ResNet's last one, as the reference ``sngan_projection``
    keeps it); return how many."""
    count = 0
    kept = set(getattr(module, "unconditional_norms", ()))
    for name, child in list(module.named_children()):
        if name in kept:
            continue
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            setattr(module, name, ConditionalBatchNorm(child, n_classes, slot))
            count += 1
        else:
            count += _conditional_norms(child, n_classes, slot)
    return count


class ConditionalGenerator(nn.Module):
    """G(z, y) (N, z_dim), (N,) -> (N, *shape)."""

    def __init__(self, net: nn.Module, n_classes: int, mode: str):
        super().__init__()
        self.net, self.n_classes, self.mode = net, n_classes, mode
        self.slot = _Slot()
        # the batch norms made class-conditional (projection; 0 otherwise): the rulebook refuses projection
        # with a G that has none
        self.norms = _conditional_norms(net, n_classes, self.slot) if mode == "projection" else 0

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.mode == "projection":
            self.slot.y = y
            try:
                return self.net(z)
            finally:
                self.slot.y = None
        return self.net(torch.cat([z, F.one_hot(y, self.n_classes).to(z.dtype)], dim=1))


class ConditionalDiscriminator(nn.Module):
    """D(x, y) -> logits (N,); :meth:`judge` also gives AC-GAN's class logits (N, K) (None otherwise)."""

    def __init__(self, net: nn.Module, n_classes: int, mode: str, spec: DataSpec):
        super().__init__()
        self.net, self.n_classes, self.mode = net, n_classes, mode
        if mode in ("projection", "acgan"):
            with torch.no_grad():
                width = net.features(torch.zeros(2, *spec.shape)).shape[1]
            if mode == "projection":
                self.embed = ClassEmbedding(n_classes, width)
                nn.init.xavier_uniform_(self.embed.weight)
            else:
                self.classifier = nn.Linear(width, n_classes)

    def _input(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """concat: x with onehot(y) joined as features (points) or constant channels (images)."""
        onehot = F.one_hot(y, self.n_classes).to(x.dtype)
        if x.dim() > 2:
            onehot = onehot.view(*onehot.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        return torch.cat([x, onehot], dim=1)

    def judge(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mode == "concat":
            return self.net(self._input(x, y)), None
        features = self.net.features(x)
        logits = self.net.from_features(features)
        if self.mode == "projection":
            return logits + (self.embed(y) * features).sum(dim=1), None
        return logits, self.classifier(features)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.judge(x, y)[0]


def widened(spec: DataSpec, n_classes: int) -> DataSpec:
    """The input concat's D reads: the data with n_classes more features (points) or channels (images)."""
    return DataSpec(spec.name, (spec.shape[0] + n_classes, *spec.shape[1:]), spec.kind, spec.eval_samples)


def build_conditional(factory: Callable[..., tuple[nn.Module, nn.Module]], spec: DataSpec, z_dim: int,
                      n_classes: int, mode: str, native: tuple[str, ...] = ()) -> tuple[nn.Module, nn.Module]:
    """(G(z, y), D(x, y)) from the lab's ``factory(spec=, z_dim=)`` of an unconditional pair. Whether the pair
    suits ``mode`` (projection: ``G.norms`` > 0) is the rulebook's to judge (gan_lab/rules.py). A mode in ``native``
    (the model's ``NATIVE_CONDITIONING``) is the networks' own: ``factory(…, n_classes=)`` builds the pair."""
    if mode in native:
        return factory(spec=spec, z_dim=z_dim, n_classes=n_classes)
    if mode == "projection":
        g, d = factory(spec=spec, z_dim=z_dim)
    else:  # G reads z and onehot(y)
        g = factory(spec=spec, z_dim=z_dim + n_classes)[0]
        d = factory(spec=widened(spec, n_classes), z_dim=z_dim)[1] if mode == "concat" else factory(spec=spec,
                                                                                                   z_dim=z_dim)[1]
    return ConditionalGenerator(g, n_classes, mode), ConditionalDiscriminator(d, n_classes, mode, spec)
