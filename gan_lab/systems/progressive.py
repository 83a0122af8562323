"""Progressive growing (Karras 2018): Algorithm 1 at the resolution of the current phase.

Only the step differs from :class:`GAN`: before each iteration both players are set to the phase and fade-in α of
``phase_at(iteration)``, and real images are shrunk to that resolution and, during a fade-in, blended with their
previous phase's image as G's output is (``fade_reals``). Samples are returned at the data's resolution (nearest
upsampling during the early phases).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F

from gan_lab.capabilities import SystemCaps
from gan_lab.checks import at_least, fraction
from gan_lab.nets.progressive import _Phased, downsample_to, fade_reals, phase_at
from gan_lab.systems.gan import GAN


class ProgressiveGAN(GAN):
    # the phase and fade-in α change on the host: the step stays eager; its growing G draws without labels
    caps = SystemCaps(capturable=False, labels=False, mixture=False)

    def __init__(self, *args, phase_iterations: Annotated[int, at_least(1), "generator iterations per resolution; "
                                                                             "the last phase runs to the end"] = 500,
                 fade_fraction: Annotated[float, fraction(high_open=False), "share of a phase over which the new "
                                                                            "block fades in (α 0 → 1)"] = 0.5,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.phase_iterations, self.fade_fraction = phase_iterations, fade_fraction
        self.n_phases = self.generator_networks()[0].n_phases

    def generator_networks(self) -> list[_Phased]:
        return [m for m in self.modules() if isinstance(m, _Phased)]

    def set_schedule(self, iteration: int) -> tuple[int, float]:
        phase, alpha = phase_at(iteration, self.phase_iterations, self.n_phases, self.fade_fraction)
        for network in self.generator_networks():  # G, D, and the EMA copy of G if any
            network.set_phase(phase, alpha)
        return phase, alpha

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        phase, alpha = self.set_schedule(self.iteration)
        resolution = self.generator_networks()[0].resolution
        self.accumulate({"resolution": torch.tensor(float(resolution)), "alpha": torch.tensor(alpha)})
        super().training_step(fade_reals(downsample_to(batch, resolution), alpha), batch_idx)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500,
                 to: torch.device | str = "cpu") -> torch.Tensor:
        self.set_schedule(max(self.iteration - 1, 0))  # the phase the last update trained
        images = super().generate(z, labels, batch_size=batch_size, to=to)
        target = self.generator_networks()[0].resolutions[-1]
        if images.shape[-1] != target:
            images = F.interpolate(images, size=(target, target), mode="nearest")
        return images
