"""Several regularizers at once (``regularizer=[sn,gp]``, ``regularizer=[r1,r2]``): each wraps D in turn,
their penalties add up, and each runs its after-step hook; the capabilities combine (any one that
forbids batch norm forbids it)."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.regularizers.base import Labels, Regularizer, Source


class Regularizers(Regularizer):
    def __init__(self, parts: list[Regularizer]):
        self.parts = list(parts)
        self.name = "[" + ",".join(p.name for p in self.parts) + "]"  # as the command line writes it
        self.forbids_batch_norm = any(p.forbids_batch_norm for p in self.parts)
        self.needs_input_gradients = any(p.needs_input_gradients for p in self.parts)
        self.needs_one_critic = any(p.needs_one_critic for p in self.parts)
        order = ("none", "layer", "batch")  # the most restrictive preference wins
        self.preferred_d_norm = min((p.preferred_d_norm for p in self.parts), key=order.index)
        clips = [p.clip_value for p in self.parts if hasattr(p, "clip_value")]
        if clips:
            self.clip_value = clips[0]

    def wrap(self, discriminator: nn.Module) -> nn.Module:
        for part in self.parts:
            discriminator = part.wrap(discriminator)
        return discriminator

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, d_step: int,
                real_logits: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None,
                sources: tuple[Source, Source] | None = None, labels: Labels | None = None) -> torch.Tensor | None:
        terms = [p.penalty(discriminator, real, fake, d_step, real_logits, fake_logits, sources, labels)
                 for p in self.parts]
        terms = [t for t in terms if t is not None]
        return torch.stack(terms).sum() if terms else None

    def capture_blocker(self) -> str | None:
        return "; ".join(b for p in self.parts if (b := p.capture_blocker())) or None

    def check(self, spec) -> None:
        for part in self.parts:
            part.check(spec)

    def attach(self, system: nn.Module) -> None:
        for part in self.parts:
            part.attach(system)

    def after_d_step(self, discriminator: nn.Module) -> None:
        for part in self.parts:
            part.after_d_step(discriminator)

    def __repr__(self) -> str:
        return f"Regularizers({self.parts!r})"


def build_regularizer(node, build) -> Regularizer:
    """The regularizer a config's ``regularizer`` node asks for: one object under each chosen file's name
    (several: :class:`Regularizers`, in the order chosen), or a flat node with ``_target_`` (a run saved
    before lists of regularizers existed). ``build`` instantiates one node."""
    if "_target_" in node:
        return build(node)
    parts = [build(child) for child in node.values() if hasattr(child, "keys") and "_target_" in child]
    return parts[0] if len(parts) == 1 else Regularizers(parts)
