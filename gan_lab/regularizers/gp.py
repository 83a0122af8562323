"""WGAN-GP (Gulrajani 2017): λ·E[(‖∇_x̂ V(x̂)‖₂ − 1)²] on x̂ = εx + (1−ε)G(z), ε ~ U[0,1] per sample."""

from typing import Annotated

import torch

from gan_lab.capabilities import RegularizerCaps
from gan_lab.checks import at_least
from gan_lab.regularizers.base import Judged, Regularizer, input_gradients


class GradientPenalty(Regularizer):
    name = "gp"
    # batch norm would mix samples inside the per-sample gradient
    caps = RegularizerCaps(preferred_d_norm="layer", forbids_batch_norm=True, input_gradients=True)

    def __init__(self, weight: Annotated[float, at_least(0.0), "λ"] = 10.0):
        self.weight = weight

    def penalty(self, judged: Judged) -> torch.Tensor:
        # on what D judged (augmented, noised), whatever the sources: the constraint is on D as a function
        real, fake = judged.real, judged.fake
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
        # conditional: x̂ judged with the real batch's labels (x̂ lies between a real image and a fake one)
        grad_norm = input_gradients(judged.critic_real, x_hat).norm(2, dim=1)
        return self.weight * (grad_norm - 1.0).pow(2).mean()
