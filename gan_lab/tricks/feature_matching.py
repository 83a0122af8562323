"""Feature matching (Salimans et al. 2016; DATS6202 lecture notes, docs/references.md): G minimises
‖E f(x) − E f(G(z))‖² on D's feature layer.

f is D's last hidden layer (``discriminator.features``); the real mean is a constant target, taken on the
minibatch of D's last update (seen just before, or with train.simultaneous just after), through the same
``d_input`` as every D evaluation.
"""

from __future__ import annotations

import torch

from gan_lab.errors import ConfigError
from gan_lab.tricks.base import Trick


class FeatureMatching(Trick):
    name = "feature_matching"
    settings = {"feature_matching": False}

    def validate(self) -> None:
        if not isinstance(self.feature_matching, bool):
            raise ConfigError("tricks.feature_matching", self.feature_matching, "true or false")

    def check(self, tricks, loss, regularizer, discriminator, spec) -> None:
        if not hasattr(discriminator, "features"):
            raise ConfigError("tricks.feature_matching", True, "false with this model",
                              f"{type(discriminator).__name__} exposes no feature layer.")

    def g_loss(self, system, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = system.discriminator.features(system.d_input(real)).mean(0)
        return (system.discriminator.features(fake).mean(0) - target).pow(2).sum()
