"""Minibatch discrimination (Salimans et al. 2016; DATS6202 lecture notes, docs/references.md): D sees, beside
each example's features, how close it is to the rest of its minibatch (gan_lab/nets/minibatch.py), so a collapsed
G is easy to spot."""

from __future__ import annotations

from typing import Annotated

from gan_lab.checks import at_least
from gan_lab.tricks.base import Trick


class MinibatchDiscrimination(Trick):
    name = "minibatch_discrimination"
    minibatch_discrimination: Annotated[bool, "D's features pass through T ∈ R^{A×B×C}; each sample's closeness "
                                              "to the rest of its batch joins them before a new head"] = False
    minibatch_kernels: Annotated[int, at_least(1), "B of T (A is D's feature width)"] = 50
    minibatch_kernel_dim: Annotated[int, at_least(1), "C of T"] = 5
    order = 10

    def networks(self, generator, discriminator, spec, z_dim, seed, build):
        from gan_lab.nets.minibatch import MinibatchDiscriminator

        return generator, MinibatchDiscriminator(discriminator, spec, self.minibatch_kernels,
                                                 self.minibatch_kernel_dim)
