"""R1 (Mescheder 2018): γ/2·E_real[‖∇_x V(x)‖²], optionally lazy (every N D steps, scaled by N)."""

from dataclasses import replace
from typing import Annotated

import torch

from gan_lab.capabilities import RegularizerCaps
from gan_lab.checks import at_least
from gan_lab.regularizers.base import Judged, Regularizer, input_gradients


class R1(Regularizer):
    name = "r1"
    caps = RegularizerCaps(preferred_d_norm="none", forbids_batch_norm=True, input_gradients=True)
    on_fake = False  # R1 penalises D's gradient at real data, R2 at generated data

    def __init__(self, weight: Annotated[float, at_least(0.0), "γ"] = 10.0,
                 every: Annotated[int, at_least(1), "applied every N D updates, scaled by N (lazy)"] = 1):
        self.weight, self.every = weight, every
        if every > 1:  # an instance fact: which D steps carry the penalty is decided on the host
            self.caps = replace(type(self).caps, capture_blocker=f"regularizer={self.name} with every={every} "
                                "decides on the host which D steps carry it")

    def penalty(self, judged: Judged) -> torch.Tensor | None:
        if judged.d_step % self.every:
            return None
        # ∇ₓ D(T(x)) at the batch before this step's draw T, as the DiffAugment and R3GAN reference codes take it
        x, view = judged.source(self.on_fake)
        sq_norm = input_gradients(judged.critic(self.on_fake), x, view).pow(2).sum(dim=1)
        # Lazy regularisation (Karras 2020): scaling by `every` keeps the expected strength.
        return 0.5 * self.weight * self.every * sq_norm.mean()
