"""Spectral normalisation (Miyato 2018): every D layer's weight is W/σ(W), one power iteration per forward.

"Every weight of D" includes the maps D holds as raw tensors: a module names them in ``linear_weights``
(minibatch discrimination's T, the linear map f ↦ f·T; docs/science.md, "Lipschitz constraints").

It wraps torch's layers (nn.Linear, nn.Conv1d/2d, nn.ConvTranspose2d) and those named maps only. A D built of
other layers (StyleGAN2's equalized-learning-rate FullyConnected and Conv2dLayer, which scale a raw weight at run
time) would be left as it is: the rulebook refuses sn for a D with none of them (``layers`` finds none).
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
    caps = RegularizerCaps(preferred_d_norm="none", wraps_layers=True)  # SN-GAN's discriminators carry no batch norm

    def __init__(self, n_power_iterations: Annotated[int, at_least(1), "power iterations per forward"] = 1):
        self.n_power_iterations = n_power_iterations

    def _targets(self, discriminator: nn.Module) -> list[tuple[str, nn.Module, str]]:
        """(module path, module, weight name) of every weight :meth:`wrap` normalises."""
        return [(path, module, name) for path, module in discriminator.named_modules()
                for name in (("weight",) if isinstance(module, _LAYERS) else getattr(module, "linear_weights", ()))]

    def layers(self, discriminator: nn.Module) -> list[str]:
        return [f"{path}.{name}" if path else name for path, _, name in self._targets(discriminator)]

    def wrap(self, discriminator: nn.Module) -> nn.Module:
        for _, module, name in self._targets(discriminator):
            parametrizations.spectral_norm(module, name, n_power_iterations=self.n_power_iterations)
        return discriminator
