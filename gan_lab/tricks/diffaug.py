"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training") as a trick of
the step, and ADA's adaptive probability (Karras et al. 2020).

D overfits a small training set; augmenting only the reals would teach G to produce augmented images, so
DiffAugment applies the *same* random, differentiable transform T to every input D sees, real and fake, in
both players' steps:

    L_D = f(D(T(x))) + h(D(T(G(z))))        L_G = g(D(T(G(z))))

Because T is differentiable w.r.t. its input, G's gradient flows through T(G(z)) into G. Each call draws
fresh per-sample randomness, so real and fake batches get independent draws from the same distribution
(as in the reference, where every D call augments its own input). R1 and R2 differentiate D(T(x)) with
respect to the un-augmented x, through the same draw of T that D's loss saw, as the reference's R1 does
(docs/science.md, "Lipschitz constraints and penalties"). The transforms themselves are gan_lab/augment.py's;
ADA alone (``tricks.ada_target`` without ``tricks.diffaug``) adapts the paper's own bgc pipeline,
gan_lab/augment_ada.py's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from torch import Tensor

from gan_lab.augment import ALLOWED, Transform, draw_augment, parse_policy
from gan_lab.augment_ada import ALL, BGC, draw_ada
from gan_lab.capabilities import TrickCaps
from gan_lab.checks import Validator, above, at_least, fraction, plain
from gan_lab.distributed import Ranks
from gan_lab.errors import ConfigError
from gan_lab.tricks.base import Trick


def _policy(value: Any) -> bool:
    try:
        parse_policy(value)
    except ConfigError:
        return False
    return True


def _multipliers(value: Any) -> bool:
    value = plain(value)
    return value is None or isinstance(value, dict) and set(value) <= set(ALL) and all(
        isinstance(m, (int, float)) and not isinstance(m, bool) and m >= 0 for m in value.values())


class DiffAugment(Trick):
    """DiffAugment (``tricks.diffaug``), and its adaptive probability (ADA, ``tricks.ada_target``).

    ADA (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", §3): every
    transform acts on each sample with probability p, starting at 0. Every ``ada_interval`` D updates, the
    overfitting heuristic r_t = E[sign(D(x_real))] over those updates moves p by
    sign(r_t − target)·(ada_interval·batch)/(ada_kimg·1000), clamped to [0, 1], so p can cross [0, 1] in
    ``ada_kimg`` thousand real images. p, r_t's running sum and their count are buffers of the system (exact
    resume); the update happens on the device (no host sync); under DDP r_t is averaged over ranks so every
    rank holds the same p. Logged as ``train/ada_p`` and ``train/ada_rt``.

    What p gates is ``ada_pipeline``: ``bgc``, the paper's blit + geometric + colour pipeline
    (gan_lab/augment_ada.py), or ``diffaug``, the ``tricks.diffaug`` transforms; ``auto`` is diffaug's when
    ``tricks.diffaug`` names any, else bgc. So ``tricks.ada_target=0.6`` alone runs the paper's ADA, and
    ``tricks.diffaug=… tricks.ada_target=0.6`` ADA's controller on DiffAugment's transforms. ``augment_p`` gates the
    same pipelines with a probability the run sets instead of the controller (a constant, or a schedule: R3GAN raises
    it from 0 to 0.55 over its run). The part is on when ``diffaug``, ``ada_target`` or ``augment_p`` is.
    """

    name = "diffaug"
    diffaug: Annotated[Any, Validator(_policy, ALLOWED), "DiffAugment: the same kind of random differentiable "
                                                        "transform on every D input, real and fake; \"\" = off"] = ""
    ada_target: Annotated[float, fraction(), "ADA: the target of r_t = E[sign D(x_real)], e.g. 0.6, on its own "
                                             "the paper's bgc pipeline; 0 = off (tricks.diffaug at p = 1)"] = 0.0
    ada_pipeline: Annotated[Literal["auto", "bgc", "diffaug"], "ADA's transforms: bgc = the paper's (flips, 90° "
                                                               "turns, shifts, scale, rotation, colour); diffaug "
                                                               "= tricks.diffaug's; auto = diffaug's when "
                                                               "tricks.diffaug names any, else bgc"] = "auto"
    ada_strengths: Annotated[Any, Validator(_multipliers, "null or {transform: multiplier ≥ 0}, transforms from "
                                                          + ", ".join(ALL)),
                             "the bgc pipeline's probability multipliers, over bgc's 1 for each: each transform acts "
                             "with probability p·multiplier; 0 drops one; cutout (not in bgc) is added by giving it "
                             "one (R3GAN: colour 0.5, cutout 1); null = bgc's"] = None
    augment_p: Annotated[float, fraction(), "a fixed probability p of each transform instead of ADA's controller "
                                            "(R3GAN schedules it: schedules.tricks.augment_p); 0 = off"] = 0.0
    ada_interval: Annotated[int, at_least(1), "D updates between adjustments of ADA's p"] = 4
    ada_kimg: Annotated[float, above(0.0), "thousands of real images for p to cross [0, 1]"] = 500
    order = 20

    def canonicalise(self) -> None:
        self.diffaug = ",".join(parse_policy(self.diffaug))
        given = plain(self.ada_strengths)
        self.ada_strengths = None if given is None else {name: float(m) for name, m in given.items()}
        # {transform: probability multiplier} the bgc pipeline draws with: bgc's 1s, ``ada_strengths`` over them
        self.strengths = {name: m for name, m in {**dict.fromkeys(BGC, 1.0), **(self.ada_strengths or {})}.items()
                          if m > 0}

    @property
    def on(self) -> bool:
        return bool(self.diffaug or self.ada_target or self.augment_p)

    @property
    def switch(self) -> str:
        """The setting that turned the part on, for refusals: ``ada_target`` when ADA runs on its own pipeline."""
        if self.diffaug:
            return "diffaug"
        return "ada_target" if self.ada_target else "augment_p"

    @property
    def pipeline(self) -> str:
        """What p gates: "bgc" or "diffaug" (``ada_pipeline`` with auto resolved)."""
        if self.ada_pipeline != "auto":
            return self.ada_pipeline
        return "diffaug" if self.diffaug else "bgc"

    @property
    def caps(self) -> TrickCaps:
        return TrickCaps(images_only=True,
                         capture_blocker="ADA decides on the host when to adjust p" if self.ada_target else "")

    @property
    def gated(self) -> bool:
        """Whether a probability p gates the transforms (ADA's controller, or ``augment_p``); else they always act.
        Decided by the settings the run was built with: a schedule that moves ``augment_p`` through 0 (R3GAN starts
        there) keeps the transforms gated at p = 0, never switching them to always-on."""
        if not hasattr(self, "_gated"):
            self._gated = bool(self.ada_target or self.augment_p)
        return self._gated

    def attach(self, system) -> None:
        self._gated = bool(self.ada_target or self.augment_p)
        if self.augment_p:  # p follows the setting (a schedule may change it between iterations)
            system.register_buffer("ada_p", torch.full((), float(self.augment_p)), persistent=False)
        if self.ada_target:
            system.register_buffer("ada_p", torch.zeros(()))
            # Σ mean sign(D(x_real)) and the number of D evaluations on reals since the last adjustment
            system.register_buffer("ada_signs", torch.zeros(2))

    def d_draw(self, system, x: Tensor) -> Transform:
        self.images = x.shape[0]  # images per minibatch on this rank, before any packing (tricks.pack is last)
        if self.gated and not self.ada_target:  # augment_p, as a schedule may have set it for this iteration
            system.ada_p.fill_(self.augment_p)
        if self.gated and self.pipeline == "bgc":
            return draw_ada(x, system.ada_p, transforms=self.strengths)
        return draw_augment(x, self.diffaug, probability=system.ada_p if self.gated else None)

    def d_input(self, system, x: Tensor) -> Tensor:
        return self.d_draw(system, x)(x)

    def observe_d(self, system, real_logits: Tensor, fake_logits: Tensor) -> None:
        if self.ada_target:
            self.batch = getattr(self, "images", real_logits.shape[0])  # images, not packs
            system.ada_signs.add_(torch.stack([torch.sign(real_logits.detach()).float().mean(),
                                               real_logits.new_ones((), dtype=torch.float32)]))

    def after_d_step(self, system) -> None:
        if not self.ada_target or (system.d_updates + 1) % self.ada_interval:  # d_updates counts from 0
            return
        ranks = Ranks.current()
        signs, count = ranks.mean_in_step(system.ada_signs, "averaging ADA's statistics").unbind()
        r_t = signs / count.clamp_min(1.0)
        # stylegan2-ada: p moves by (images D saw in the interval, over every rank) / (ada_kimg · 1000)
        step = self.ada_interval * self.batch * ranks.world / (self.ada_kimg * 1000)
        system.ada_p.copy_((system.ada_p + torch.sign(r_t - self.ada_target) * step).clamp(0.0, 1.0))
        system.ada_rt = r_t
        system.ada_signs.zero_()

    def log_row(self, system) -> dict[str, Tensor]:
        if not self.ada_target:  # a fixed or scheduled augment_p is the setting's (schedule/tricks.augment_p)
            return {}
        return {"ada_p": system.ada_p.clone(), **({"ada_rt": system.ada_rt} if hasattr(system, "ada_rt") else {})}
