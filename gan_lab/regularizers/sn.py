"""Spectral normalisation (Miyato 2018): every D layer's weight is W/σ(W), one power iteration per forward.

"Every weight of D" includes the maps D holds as raw tensors: a module names them in ``linear_weights``
(minibatch discrimination's T, the linear map f ↦ f·T; docs/science.md, "Lipschitz constraints").
"""

from typing import Annotated

from torch import nn
from torch.nn.utils import parametrizations

from gan_lab.capabilities import RegularizerCaps
from gan_lab.checks import at_least
from gan_lab.regularizers.base import Regularizer

_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Conv1d)


class SpectralNorm(Regularizer):
    name = "sn"
    caps = RegularizerCaps(preferred_d_norm="none")  # SN-GAN's discriminators carry no batch norm

    def __init__(self, n_power_iterations: Annotated[int, at_least(1), "power iterations per forward"] = 1):
        self.n_power_iterations = n_power_iterations

    def wrap(self, discriminator: nn.Module) -> nn.Module:
        for module in list(discriminator.modules()):
            names = ("weight",) if isinstance(module, _LAYERS) else getattr(module, "linear_weights", ())
            for name in names:
                parametrizations.spectral_norm(module, name, n_power_iterations=self.n_power_iterations)
        return discriminator
