"""Virtual batch normalisation (Salimans et al. 2016; DATS6202 lecture notes, docs/references.md): G's batch
norms normalise with the statistics of a reference batch fixed at the start (gan_lab/nets/vbn.py), so one
sample's output does not depend on the rest of its minibatch."""

from __future__ import annotations

from typing import Annotated

from gan_lab.checks import at_least
from gan_lab.tricks.base import Trick


class VirtualBatchNorm(Trick):
    name = "virtual_batchnorm"
    virtual_batchnorm: Annotated[bool, "G's batch norms normalise each example with a reference batch fixed at "
                                       "the start plus itself (MLP: add model.g_norm=batch)"] = False
    virtual_batchnorm_size: Annotated[int, at_least(1), "the reference batch's size"] = 64
    order = 10

    def networks(self, generator, discriminator, spec, z_dim, seed, build):
        from gan_lab.nets.vbn import VirtualBatchNormGenerator

        return VirtualBatchNormGenerator(generator, z_dim, self.virtual_batchnorm_size, seed), discriminator
