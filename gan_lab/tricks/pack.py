"""Packing, PacGAN (Lin, Khetan, Fanti & Oh 2018, "PacGAN: The power of two samples in generative adversarial
networks"; docs/science.md, "Packing"): D judges m samples at once, all real or all fake, concatenated.

With ``tricks.pack=m``, every input D sees — real or fake, in both players' steps — is regrouped from
N samples into N/m packs: (N, d) → (N/m, m·d) for points, (N, C, H, W) → (N/m, m·C, H, W) for images,
consecutive samples together. D is the model's own network built for that packed shape (m·d inputs,
m·C channels), so nothing else about it changes. A pack of fakes drawn from a collapsed G holds m near-copies,
which D learns to tell from m independent reals: the paper shows packing penalises mode collapse
(its Theorem 3: the packed total-variation distance grows with the mass a G misses), at the price of an
m-times wider first layer. Packing happens last, after augmentation and instance noise, which act per
sample. ``train.batch_size`` counts samples and must be a multiple of m (PacGAN's batch of B packs is
``train.batch_size=B·m``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch

from gan_lab.checks import at_least
from gan_lab.tricks.base import Trick


class Pack(Trick):
    name = "pack"
    pack: Annotated[int, at_least(1), "m: D judges m samples at once, all real or all fake, concatenated; 1 = "
                                      "off"] = 1
    order = 90  # last of what D sees

    @property
    def on(self) -> bool:
        return self.pack > 1

    def networks(self, generator, discriminator, spec, z_dim, seed, build):
        packed = dataclasses.replace(spec, shape=(spec.shape[0] * self.pack, *spec.shape[1:]))
        return generator, build(packed)[1]

    def packed(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n % self.pack:
            raise ValueError(f"tricks.pack={self.pack}: a batch of {n} samples does not split into packs")
        return x.reshape(n // self.pack, self.pack * x.shape[1], *x.shape[2:])

    def d_input(self, system, x: torch.Tensor) -> torch.Tensor:
        return self.packed(x)
