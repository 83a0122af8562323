"""The improved techniques as parts of the training step (gan_lab/tricks/base.py says how a part works).

``tricks.*`` in the config is the union of every part's settings (conf/tricks/<name>.yaml, one file per part).
:class:`Tricks` hands each key to the part that owns it and keeps the parts that are on, in order, for the
systems to loop over; gan_lab/settings.py has checked every value against the part's declaration before.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from torch import nn

from gan_lab.tricks.base import HOOKS, Trick

__all__ = ["HOOKS", "Trick", "Tricks", "part_classes", "annotations"]


@cache
def part_classes() -> tuple[type[Trick], ...]:
    """Every Trick subclass defined in a module of this package, in ``order`` (then name)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Trick)
                  and c is not Trick and c.__module__ == module.__name__]
    return tuple(sorted(found, key=lambda c: (c.order, c.name)))


def annotations() -> dict[str, Any]:
    """{key: its Annotated type} of every trick setting: the schema of the flat ``tricks`` block."""
    return {key: kind for cls in part_classes() for key, kind in cls.annotations().items()}


class Tricks:
    """Every part, built from the flat ``tricks`` block; ``tricks.<key>`` reads a setting, ``parts`` are
    the ones that are on."""

    def __init__(self, **values: Any):
        classes = part_classes()
        self.all = [cls(**{k: values[k] for k in cls.settings if k in values}) for cls in classes]
        self.parts = [part for part in self.all if part.on]
        self._by_hook = {hook: [part for part in self.parts if hook in part.hooks()] for hook in HOOKS}

    def __getattr__(self, key: str) -> Any:
        for part in self.__dict__.get("all", ()):
            if key in part.settings:
                return getattr(part, key)
        raise AttributeError(key)

    def values(self) -> dict[str, Any]:
        """Every setting, ``{key: value}``, as the flat ``tricks`` block holds them."""
        return {key: getattr(part, key) for part in self.all for key in part.settings}

    @property
    def extra_batches(self) -> int:
        return sum(part.extra_batches for part in self.parts)

    def with_hook(self, hook: str) -> list[Trick]:
        """The parts that are on and act at ``hook``, in order."""
        return self._by_hook[hook]

    def networks(self, generator: nn.Module, discriminator: nn.Module, spec, z_dim: int, seed: int,
                 build) -> tuple[nn.Module, nn.Module]:
        for part in self.with_hook("networks"):
            generator, discriminator = part.networks(generator, discriminator, spec, z_dim, seed, build)
        return generator, discriminator

    def __repr__(self) -> str:
        return f"Tricks({', '.join(map(repr, self.parts))})"
