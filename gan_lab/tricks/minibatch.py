"""Minibatch discrimination (Salimans et al. 2016; DATS6202 lecture notes, docs/references.md): D sees, beside
each example's features, how close it is to the rest of its minibatch (gan_lab/nets/minibatch.py), so a collapsed
G is easy to spot."""

from __future__ import annotations

from gan_lab.errors import ConfigError, check_int
from gan_lab.tricks.base import Trick


class MinibatchDiscrimination(Trick):
    name = "minibatch_discrimination"
    settings = {"minibatch_discrimination": False,
                "minibatch_kernels": 50,  # B of T ∈ R^{A×B×C} (A = D's feature width)
                "minibatch_kernel_dim": 5}  # C
    order = 10

    def validate(self) -> None:
        if not isinstance(self.minibatch_discrimination, bool):
            raise ConfigError("tricks.minibatch_discrimination", self.minibatch_discrimination, "true or false")
        check_int("tricks.minibatch_kernels", self.minibatch_kernels, 1)
        check_int("tricks.minibatch_kernel_dim", self.minibatch_kernel_dim, 1)

    def check(self, tricks, loss, regularizer, discriminator, spec) -> None:
        if regularizer.needs_input_gradients:
            raise ConfigError("tricks.minibatch_discrimination", True, f"false with regularizer={regularizer.name}",
                              "Minibatch features make D's output depend on the whole batch, so a "
                              "per-sample gradient penalty is meaningless.")

    def networks(self, generator, discriminator, spec, z_dim, seed, build):
        from gan_lab.nets.minibatch import MinibatchDiscriminator

        return generator, MinibatchDiscriminator(discriminator, spec, self.minibatch_kernels,
                                                 self.minibatch_kernel_dim)
