"""The part every trick is: its settings under ``tricks.*`` and hooks around Algorithm 1's two updates.

A trick is one file in gan_lab/tricks holding one :class:`Trick` subclass, plus conf/tricks/<name>.yaml with the
same keys and defaults (the command line is ``tricks.<key>=…``), plus one line in the contract table of
tests/test_parts.py. Nothing else registers it: :func:`gan_lab.tricks.part_classes` finds it. Its settings are
its annotated class attributes, ``key: Annotated[type, checks…, "doc"] = default`` (gan_lab/settings.py checks
them), the first one switching it on (false/0 = off); what it needs of the rest of the run is its ``caps``
(gan_lab/capabilities.py), which the rulebook (gan_lab/rules.py) reads. The systems call the hooks of the parts
that are on, in ``order``:

=================  ==============================================================  ====================
hook               when                                                            e.g.
=================  ==============================================================  ====================
``networks``       once, at build: wrap or replace G and D                        minibatch features
``attach``         once, when the system is built: state kept in checkpoints       EMA copy of G
``d_input``        every input D judges, real or fake, in both players' steps      DiffAugment, noise
``observe_d``      D's logits on real and fake in each D update                    ADA's r_t
``d_term``         extra term of D's loss                                          historical averaging
``after_d_step``   after each D optimiser step                                     historical averaging
``g_loss``         replaces G's adversarial loss                                   feature matching
``critic``         the D that G's loss is taken against                            unrolling
``g_term``         extra term of G's loss                                          historical averaging
``after_g_step``   after each G optimiser step                                     EMA
``log_row``        once per logged row: statistics of the trick                    instance noise σ
=================  ==============================================================  ====================

A system that does not run a hook (LAPGAN and MIX+GAN have no single G(z) judged by a single D(x), so no
``networks``, ``g_loss`` or ``critic``) says so in its capabilities; the rulebook refuses such a trick there,
naming both options.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from gan_lab.capabilities import HOOKS, TrickCaps

if TYPE_CHECKING:  # the systems import the tricks, never the other way round at run time
    from gan_lab.data.base import DataSpec
    from gan_lab.systems.gan import GAN

__all__ = ["HOOKS", "Trick", "batch_size"]


def batch_size(system: GAN) -> int:
    """The minibatch of one update on this rank (``train.batch_size``, as the run's datamodule holds it): what a
    part that counts images reads in a hook that is given no batch."""
    return int(system.trainer.datamodule.batch_size)


class Trick:
    """One technique. Its settings are its own annotated class attributes (``settings``: their defaults, in
    declaration order); hooks default to doing nothing."""

    name: ClassVar[str]  # its conf/tricks/<name>.yaml
    settings: ClassVar[dict[str, Any]] = {}
    order: ClassVar[int] = 50  # place among the parts (what D sees: augmentation 20 before noise 30)
    extra_batches: ClassVar[int] = 0  # real minibatches per iteration beyond Algorithm 1's k

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__annotations__", {})
        cls.settings = {key: cls.__dict__[key] for key, kind in own.items() if not str(kind).startswith("ClassVar")}

    @classmethod
    def annotations(cls) -> dict[str, Any]:
        """{setting: its Annotated type} (gan_lab/settings.py checks values against them)."""
        hints = typing.get_type_hints(cls, include_extras=True)
        return {key: hints[key] for key in cls.settings}

    def __init__(self, **values: Any):
        for key, default in self.settings.items():
            setattr(self, key, values.get(key, default))
        self.canonicalise()

    def canonicalise(self) -> None:
        """Bring checked settings to one form (e.g. a DiffAugment policy to its comma-separated names)."""

    @property
    def caps(self) -> TrickCaps:
        return TrickCaps()

    @property
    def switch(self) -> str:
        return next(iter(self.settings))

    @property
    def on(self) -> bool:
        return bool(getattr(self, self.switch))

    def option(self) -> str:
        """How the command line spells this trick being on, e.g. ``tricks.unroll_steps=2``."""
        value = getattr(self, self.switch)
        return f"tricks.{self.switch}={str(value).lower() if isinstance(value, bool) else value}"

    def off(self) -> str:
        """How the command line turns it off (for refusals)."""
        default = self.settings[self.switch]
        if isinstance(default, bool):
            return str(default).lower()
        return '""' if default == "" else str(default)

    @classmethod
    def hooks(cls) -> set[str]:
        """The hooks this trick overrides."""
        return {h for h in HOOKS if getattr(cls, h) is not getattr(Trick, h)}

    # ---------------------------------------------------------------- hooks
    def networks(self, generator: nn.Module, discriminator: nn.Module, spec: DataSpec, z_dim: int, seed: int,
                 build: Callable[[DataSpec], tuple[nn.Module, nn.Module]]) -> tuple[nn.Module, nn.Module]:
        """G and D as this trick wants them; ``build(spec)`` makes the model's (G, D) for another data shape."""
        return generator, discriminator

    def attach(self, system: GAN) -> None:
        pass

    def d_input(self, system: GAN, x: torch.Tensor) -> torch.Tensor:
        return x

    def d_draw(self, system: GAN, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``d_input`` for a batch shaped like x with its randomness drawn now, as a map that applies that same
        draw to any tensor of x's shape (R1/R2 differentiate D(T(x)) with respect to x; LAPGAN augments a
        level and its condition together). A part whose ``d_input`` draws randomness overrides this as well."""
        return lambda y: self.d_input(system, y)

    def observe_d(self, system: GAN, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        pass

    def d_term(self, system: GAN) -> torch.Tensor | None:
        return None

    def after_d_step(self, system: GAN) -> None:
        pass

    def g_loss(self, system: GAN, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor | None:
        """G's loss in place of the adversarial one, given what D sees of the fakes and a real minibatch."""
        return None

    def critic(self, system: GAN, reals: list[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The function x -> logits G's loss is taken against, in place of D; ``reals``: the extra batches."""
        return None

    def g_term(self, system: GAN) -> torch.Tensor | None:
        return None

    def after_g_step(self, system: GAN) -> None:
        pass

    def log_row(self, system: GAN) -> dict[str, torch.Tensor]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.settings)})"
