"""WGAN-GP (Gulrajani 2017): λ·E[(‖∇_x̂ V(x̂)‖₂ − 1)²] on x̂ = εx + (1−ε)G(z), ε ~ U[0,1] per sample."""

import torch
from torch import nn

from gan_lab.errors import check_range
from gan_lab.regularizers.base import Labels, Regularizer, Source, given, input_gradients


class GradientPenalty(Regularizer):
    name = "gp"
    preferred_d_norm = "layer"  # batch norm would mix samples inside the per-sample gradient
    forbids_batch_norm = True
    needs_input_gradients = True

    def __init__(self, weight: float = 10.0):
        self.weight = check_range("regularizer.weight", weight, 0.0)

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, d_step: int,
                real_logits: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None,
                sources: tuple[Source, Source] | None = None, labels: Labels | None = None) -> torch.Tensor | None:
        # on what D judged (augmented, noised), whatever ``sources``: the constraint is on D as a function
        eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
        # conditional: x̂ judged with the real batch's labels (x̂ lies between a real image and a fake one)
        grad_norm = input_gradients(given(discriminator, labels, 0), x_hat).norm(2, dim=1)
        return self.weight * (grad_norm - 1.0).pow(2).mean()
