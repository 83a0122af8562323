"""Several regularizers at once (``regularizer=[sn,gp]``, ``regularizer=[r1,r2]``): each wraps D in turn, their
penalties add up, and each runs its after-step hook; their capabilities combine (any one that forbids batch norm
forbids it, the most restrictive preferred normalisation wins)."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.capabilities import RegularizerCaps
from gan_lab.regularizers.base import Judged, Regularizer

NORM_ORDER = ("none", "layer", "batch")  # the most restrictive preference first


def combined(caps: list[RegularizerCaps]) -> RegularizerCaps:
    return RegularizerCaps(preferred_d_norm=min((c.preferred_d_norm for c in caps), key=NORM_ORDER.index),
                           forbids_batch_norm=any(c.forbids_batch_norm for c in caps),
                           input_gradients=any(c.input_gradients for c in caps),
                           one_critic=any(c.one_critic for c in caps),
                           images_only=any(c.images_only for c in caps),
                           augments_per_sample=any(c.augments_per_sample for c in caps),
                           capture_blocker="; ".join(c.capture_blocker for c in caps if c.capture_blocker),
                           wraps_layers=any(c.wraps_layers for c in caps))


class Regularizers(Regularizer):
    def __init__(self, parts: list[Regularizer]):
        self.parts = list(parts)
        self.name = "[" + ",".join(p.name for p in self.parts) + "]"  # as the command line writes it
        self.caps = combined([p.caps for p in self.parts])
        clips = [p.clip_value for p in self.parts if hasattr(p, "clip_value")]
        if clips:
            self.clip_value = clips[0]

    def wrap(self, discriminator: nn.Module) -> nn.Module:
        for part in self.parts:
            discriminator = part.wrap(discriminator)
        return discriminator

    def layers(self, discriminator: nn.Module) -> list[str]:
        return [name for part in self.parts for name in part.layers(discriminator)]

    def penalty(self, judged: Judged) -> torch.Tensor | None:
        terms = [t for t in (p.penalty(judged) for p in self.parts) if t is not None]
        return torch.stack(terms).sum() if terms else None

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
