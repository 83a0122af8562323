"""Pure nn.Modules: generator / discriminator pairs sized from a DataSpec by arithmetic.

A model factory has the signature ``build(spec, z_dim, d_norm, ...) -> (generator, discriminator)``, its
settings annotated (gan_lab/settings.py), and a ``fits(spec, **kwargs) -> ConfigError | None`` beside it in its
module that says whether the data's shape suits it (the same keyword arguments as the factory, ``d_norm``
resolved); :func:`fits_of` finds it. Every discriminator maps (N, *shape) to logits (N,) and, but LAPGAN's,
exposes ``features(x)`` -> (N, F), the layer below its head (feature matching and minibatch discrimination hook
in there).

A module whose networks condition on the class their own way (StyleGAN2-ADA's label embedding in the mapping network,
R3GAN's) lists those ``model.conditional`` modes in ``NATIVE_CONDITIONING``: for them its factory is called with
``n_classes`` and returns G(z, y) and D(x, y) (with ``judge(x, y)``) itself, instead of the lab's wrappers
(gan_lab/nets/conditional.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def fits_of(target: str) -> Callable[..., Any]:
    """The ``fits(spec, **kwargs)`` of the factory a model config names (``_target_``: gan_lab.nets.dcgan.build):
    its module's ``fits``, or, in a module of several factories, ``FITS[<factory's name>]``."""
    module_name, name = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    table = getattr(module, "FITS", None)
    return table[name] if table is not None else module.fits


def native_conditioning_of(target: str) -> tuple[str, ...]:
    """The ``model.conditional`` modes the networks of the factory ``target`` implement themselves."""
    return tuple(getattr(importlib.import_module(target.rsplit(".", 1)[0]), "NATIVE_CONDITIONING", ()))
