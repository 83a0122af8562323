"""Virtual batch normalisation (Salimans et al. 2016; DATS6202 lecture notes, docs/references.md): G's batch
norms normalise with the statistics of a reference batch fixed at the start (gan_lab/nets/vbn.py), so one
sample's output does not depend on the rest of its minibatch."""

from __future__ import annotations

from gan_lab.errors import ConfigError, check_int
from gan_lab.tricks.base import Trick


class VirtualBatchNorm(Trick):
    name = "virtual_batchnorm"
    settings = {"virtual_batchnorm": False, "virtual_batchnorm_size": 64}
    order = 10

    def validate(self) -> None:
        if not isinstance(self.virtual_batchnorm, bool):
            raise ConfigError("tricks.virtual_batchnorm", self.virtual_batchnorm, "true or false")
        check_int("tricks.virtual_batchnorm_size", self.virtual_batchnorm_size, 1)

    def networks(self, generator, discriminator, spec, z_dim, seed, build):
        from gan_lab.nets.vbn import VirtualBatchNormGenerator

        return VirtualBatchNormGenerator(generator, z_dim, self.virtual_batchnorm_size, seed), discriminator
