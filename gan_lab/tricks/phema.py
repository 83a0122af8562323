"""Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models" (EDM2),
§3): track power-function averages of G's weights at two relative widths, keep snapshots of them, and choose the
average's width after training (``python -m gan_lab.phema``; the math: gan_lab/phema_math.py).

With ``tricks.phema=true`` the system keeps, beside G, one copy per σ_rel of ``tricks.phema_sigma_rels`` (EDM2's
0.05 and 0.10), each updated after every G step as

    θ̂ ← β_t θ̂ + (1 − β_t) θ,        β_t = (1 − 1/t)^(γ+1),        γ = γ(σ_rel)

with t the G updates so far (EDM2 counts images; with a constant batch that is the same β). Batch-norm
statistics and other buffers are copied from G, not averaged (as the reference does when it hands out a net). The
copies are submodules of the system, their step count its extra state: checkpoints hold them and a resume
continues them bit for bit.

Every ``tricks.phema_every`` generator iterations (0: train.iterations / 32, so a run keeps 32 snapshots of each
tracked average and the final one) and at the run's last iteration, rank 0 writes each average's weights to
``<run>/phema/phema-<iteration>-<σ_rel>.pt``: plain tensors and numbers, read with ``torch.load(weights_only=True)``.
A resumed run rewrites the snapshots after its checkpoint with the same numbers. More snapshots reconstruct a σ_rel
far from the tracked ones better (at 32, the profile of any σ_rel in [0.03, 0.2] is matched to about 1 %; at 16, to
about 4 %: :func:`gan_lab.phema_math.profile_error`) and cost disk: each is one copy of G.

The averages only watch: what draws the samples is unchanged (G, or ``tricks.ema``'s copy).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any

import torch
from torch import nn

from gan_lab.capabilities import TrickCaps
from gan_lab.checks import Validator, at_least
from gan_lab.phema_math import SIGMA_REL_MAX, power_beta, sigma_rel_to_gamma
from gan_lab.tricks.base import Trick
from gan_lab.tricks.ema import copy_buffers

SNAPSHOTS = 32  # snapshots per run with tricks.phema_every=0
SNAPSHOT_FILE = re.compile(r"phema-(\d+)-([0-9.e+-]+)\.pt")


def sigma_tag(sigma_rel: float) -> str:
    """σ_rel as file names write it: 4 significant digits (0.05, 0.075, 0.1)."""
    return f"{sigma_rel:.4g}"


def sigma_rel_ok(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= SIGMA_REL_MAX


def _sigma_rels_ok(value: Any) -> bool:
    if not isinstance(value, (list, tuple)) or not value or not all(map(sigma_rel_ok, value)):
        return False
    return len({sigma_tag(s) for s in value}) == len(value)


SIGMA_RELS_ALLOWED = (f"a non-empty list of distinct numbers in (0, {SIGMA_REL_MAX:.5f}] (1/√12, the widest "
                      "power-function profile: the plain mean of every weight)")


class PowerFunctionEMA(nn.Module):
    """Power-function averages of ``module``'s parameters, one per σ_rel (``averages[i]``, a copy of the module);
    ``steps``: the updates so far (t of the last one)."""

    def __init__(self, module: nn.Module, sigma_rels: list[float]):
        super().__init__()
        self.sigma_rels = [float(s) for s in sigma_rels]
        self.gammas = [float(g) for g in sigma_rel_to_gamma(self.sigma_rels)]
        self.averages = nn.ModuleList(copy.deepcopy(module).requires_grad_(False) for _ in self.sigma_rels)
        self.steps = 0

    def get_extra_state(self) -> dict:
        return {"steps": self.steps}

    def set_extra_state(self, state: dict) -> None:
        self.steps = int(state["steps"])

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.steps += 1
        params = [p.detach() for p in module.parameters()]
        for gamma, average in zip(self.gammas, self.averages):
            weight = 1.0 - float(power_beta(self.steps, gamma))  # 1 at the first step: the average starts at θ_1
            torch._foreach_lerp_(list(average.parameters()), params, weight)
            copy_buffers(average, module)

    def state_of(self, i: int) -> dict[str, torch.Tensor]:
        """The i-th average's tensors (parameters and buffers, by name), copied to the CPU."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.averages[i].state_dict().items()
                if isinstance(v, torch.Tensor)}


def snapshot_path(folder: Path, iteration: int, sigma_rel: float) -> Path:
    return Path(folder) / f"phema-{iteration:07d}-{sigma_tag(sigma_rel)}.pt"


def save_atomically(payload: dict, path: Path) -> None:
    """``torch.save`` under a temporary name, then renamed: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def snapshot_files(folder: Path) -> list[Path]:
    """The snapshot files in ``folder`` (``phema-<iteration>-<σ_rel>.pt``), by iteration then σ_rel."""
    if not Path(folder).is_dir():
        return []
    found = [(int(m.group(1)), float(m.group(2)), p) for p in Path(folder).iterdir()
             if p.is_file() and (m := SNAPSHOT_FILE.fullmatch(p.name))]
    return [p for _, _, p in sorted(found)]


class PostHocEMA(Trick):
    name = "phema"
    phema: Annotated[bool, "post-hoc EMA (Karras 2024): track power-function averages of G's weights and keep "
                           "snapshots in the run folder's phema/, from which python -m gan_lab.phema makes the "
                           "average of any σ_rel"] = False
    phema_sigma_rels: Annotated[list[float], Validator(_sigma_rels_ok, SIGMA_RELS_ALLOWED),
                                "the relative widths σ_rel of the averages tracked (EDM2: 0.05 and 0.10)"] = [0.05, 0.1]
    phema_every: Annotated[int, at_least(0), "generator iterations between snapshots (and one at the last); 0 = "
                                             "train.iterations / 32"] = 0
    order = 65  # after the EMA's update; neither reads the other

    def canonicalise(self) -> None:
        self.phema_sigma_rels = [float(s) for s in self.phema_sigma_rels]

    @property
    def caps(self) -> TrickCaps:
        return TrickCaps(capture_blocker="the averages' β_t = (1 − 1/t)^(γ+1) changes on the host every step")

    def interval(self, iterations: int) -> int:
        return self.phema_every or max(1, iterations // SNAPSHOTS)

    def attach(self, system) -> None:  # on the system, so the averages land in its checkpoints
        system.phema = PowerFunctionEMA(system.generator, self.phema_sigma_rels)

    def after_g_step(self, system) -> None:
        averages: PowerFunctionEMA = system.phema
        averages.update(system.generator)
        if averages.steps % system.g_steps:  # train.g_steps > 1: snapshots at the iteration's last G step
            return
        iteration = system.iteration + 1  # the one this step completes
        if iteration % self.interval(system.iterations) == 0 or iteration == system.iterations:
            self.save(system, iteration)

    def save(self, system, iteration: int) -> None:
        trainer = getattr(system, "_trainer", None)
        if trainer is None or not trainer.is_global_zero:  # every rank holds the same averages; rank 0 writes
            return
        folder = Path(trainer.default_root_dir) / "phema"
        averages: PowerFunctionEMA = system.phema
        for i, (sigma_rel, gamma) in enumerate(zip(averages.sigma_rels, averages.gammas)):
            payload = {"sigma_rel": sigma_rel, "gamma": gamma, "steps": averages.steps, "iteration": iteration,
                       "state": averages.state_of(i)}
            save_atomically(payload, snapshot_path(folder, iteration, sigma_rel))
