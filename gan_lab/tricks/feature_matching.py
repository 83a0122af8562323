"""Feature matching (Salimans et al. 2016; DATS6202 lecture notes, docs/references.md): G minimises
‖E f(x) − E f(G(z))‖² on D's feature layer.

f is D's last hidden layer (``discriminator.features``); the real mean is a constant target, taken on the
minibatch of D's last update (seen just before, or with train.simultaneous just after), through the same
``d_input`` as every D evaluation.
"""

from __future__ import annotations

from typing import Annotated

import torch

from gan_lab.tricks.base import Trick


class FeatureMatching(Trick):
    name = "feature_matching"
    feature_matching: Annotated[bool, "G minimises ‖E f(x) − E f(G(z))‖² over D's feature layer"] = False

    def g_loss(self, system, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = system.discriminator.features(system.d_input(real)).mean(0)
        return (system.discriminator.features(fake).mean(0) - target).pow(2).sum()
