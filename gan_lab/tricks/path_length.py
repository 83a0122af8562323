"""Path-length regularization (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN", §3.2),
lazily, as StyleGAN2-ADA's loss applies it (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"; NVlabs/stylegan2-ada-pytorch ``training/loss.py``, phase Gpl).

A fixed-size step in W should change the image by a fixed amount, whatever the direction: for y ~ N(0, I)/√(HW)
(an image of random pixels), the Jacobian J_w = ∂g(w)/∂w should keep ‖J_wᵀ y‖ constant. Per sample of a batch of
B/``pl_batch_shrink`` latents (labels from the run's prior in a class-conditional run; with G's style mixing, as
its training calls draw them):

    ws = G.mapping(z, y)  (N, num_ws, w_dim)      img = G.synthesis(ws)  (N, C, H, W)
    g = ∂(Σ img·y)/∂ws                             length_n = √( mean_over_ws Σ_over_w_dim g² )
    a ← a + pl_decay·(mean_n length_n − a)         (``pl_mean``, a buffer of the system: in checkpoints)
    penalty = mean_n (length_n − a)² · pl_weight · pl_every

applied on every ``pl_every``-th G update only (0, N, 2N, …), its weight multiplied by N so the expected strength
is that of every step (lazy regularisation, StyleGAN2 §B). As in the reference, the penalty is taken against the
updated a, which depends on this batch's lengths (a gradient flows through pl_decay·mean length); the stored a is
detached. The double backward runs through G only (D is frozen in G's update). One departure: the reference runs
the penalty as a G phase of its own (its own optimiser step, hence the lr·c, β^c correction of lazy regularisation);
here it is a term of the G update it falls on, so that correction does not apply to G when the penalty is on.

Needs G's ``mapping``, ``styles`` and ``synthesis`` (model=stylegan2; the rulebook refuses any other G). Logged:
``train/pl_penalty`` (mean_n (length_n − a)², unweighted, averaged over the row's applications, kept in the pending
sums of a checkpoint) and ``train/pl_mean`` (a at the row's end). Under DDP each rank keeps its own a, as the
reference does.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor, nn

from gan_lab.capabilities import TrickCaps
from gan_lab.checks import at_least, fraction
from gan_lab.tricks.base import Trick, batch_size


def path_lengths(generator: nn.Module, z: Tensor, y: Tensor | None = None) -> Tensor:
    """‖J_wᵀ y‖ per sample (N,), the lengths of the module docstring, kept in the graph (create_graph) so a penalty
    on them trains G. Computed in G's own precision outside autocast (a double backward, as R1's input gradients)."""
    with torch.autocast(device_type=z.device.type, enabled=False):
        ws = generator.styles(z, y)  # (N, num_ws, w_dim), style mixing in training mode
        if not ws.requires_grad:  # a mapping with nothing to train (frozen): ws is then a leaf of its own
            ws.requires_grad_(True)
        img = generator.synthesis(ws)  # (N, C, H, W)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    return grads.square().sum(dim=2).mean(dim=1).sqrt()


class PathLength(Trick):
    name = "path_length"
    pl_weight: Annotated[float, at_least(0.0), "weight of StyleGAN2's path-length penalty on G (−ADA: 2; its "
                                                "CIFAR-10: 0); model=stylegan2 only; 0 = off"] = 0.0
    pl_every: Annotated[int, at_least(1), "G updates between applications, the penalty scaled by it (lazy "
                                          "regularisation)"] = 4
    pl_decay: Annotated[float, fraction(low_open=True, high_open=False), "the running mean a of the path lengths "
                                                                         "moves this share towards each batch's "
                                                                         "mean"] = 0.01
    pl_batch_shrink: Annotated[int, at_least(1), "the penalty's batch is train.batch_size // pl_batch_shrink "
                                                 "latents"] = 2
    order = 45  # a term of G's loss; independent of the other parts

    @property
    def caps(self) -> TrickCaps:
        if self.pl_every == 1:
            return TrickCaps()
        return TrickCaps(capture_blocker=f"tricks.pl_every={self.pl_every} decides on the host which G updates "
                                         "carry the penalty")

    def attach(self, system) -> None:
        system.register_buffer("pl_mean", torch.zeros(()))
        self._update = (-1, -1)  # (iteration, G update within it) of the last g_term

    def g_update(self, system) -> int:
        """The number of this G update in the run (0-based): iteration · train.g_steps + its place in the
        iteration; a pure function of the run's clock, so a resumed run applies the penalty where the
        uninterrupted one does."""
        iteration, within = self._update
        within = within + 1 if iteration == system.iteration else 0
        self._update = (system.iteration, within)
        return system.iteration * system.g_steps + within

    def penalty(self, system, n: int) -> Tensor:
        """(mean_n (length_n − a)², updating a) on n fresh latents (module docstring); unweighted."""
        z = system.sample_z(n)
        y = system.conditioning.fake_labels(system, n)
        lengths = path_lengths(system.generator, z, y)
        pl_mean = system.pl_mean.to(lengths.dtype).lerp(lengths.mean(), self.pl_decay)
        system.pl_mean.copy_(pl_mean.detach())
        return (lengths - pl_mean).square().mean()

    def g_term(self, system) -> Tensor | None:
        if self.g_update(system) % self.pl_every:
            return None
        penalty = self.penalty(system, max(batch_size(system) // self.pl_batch_shrink, 1))
        system.accumulate({"pl_penalty": penalty.detach()})
        return penalty * (self.pl_weight * self.pl_every)

    def log_row(self, system) -> dict[str, Tensor]:
        return {"pl_mean": system.pl_mean.clone()}
