"""R1 (Mescheder 2018): γ/2·E_real[‖∇_x V(x)‖²], optionally lazy (every N D steps, scaled by N)."""

import torch
from torch import nn

from gan_lab.errors import check_int, check_range
from gan_lab.regularizers.base import Labels, Regularizer, Source, given, input_gradients


class R1(Regularizer):
    name = "r1"
    preferred_d_norm = "none"
    forbids_batch_norm = True
    needs_input_gradients = True
    on_fake = False  # R1 penalises D's gradient at real data, R2 at generated data

    def __init__(self, weight: float = 10.0, every: int = 1):
        self.weight = check_range("regularizer.weight", weight, 0.0)  # γ
        self.every = check_int("regularizer.every", every, 1)

    def capture_blocker(self) -> str | None:
        if self.every == 1:
            return None
        return f"regularizer={self.name} with every={self.every} decides on the host which D steps carry it"

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, d_step: int,
                real_logits: torch.Tensor | None = None, fake_logits: torch.Tensor | None = None,
                sources: tuple[Source, Source] | None = None, labels: Labels | None = None) -> torch.Tensor | None:
        if d_step % self.every:
            return None
        # ∇ₓ D(T(x)) at the batch before this step's draw T, as the DiffAugment and R3GAN reference codes take it
        x, view = sources[self.on_fake] if sources is not None else (fake if self.on_fake else real, None)
        sq_norm = input_gradients(given(discriminator, labels, int(self.on_fake)), x, view).pow(2).sum(dim=1)
        # Lazy regularisation (Karras 2020): scaling by `every` keeps the expected strength.
        return 0.5 * self.weight * self.every * sq_norm.mean()
