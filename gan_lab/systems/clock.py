"""What the lab's clock (the generator iteration) decides before each iteration: the seed of every random draw in
it and the scheduled settings (gan_lab/schedules.py: learning rates, β₂, γ, …). Both are pure functions of the
iteration, so a run resumed at any iteration, on any machine state, continues exactly as the uninterrupted run. It
also keeps the seconds spent training, over every session of a resumed run (kept in its checkpoints).
"""

from __future__ import annotations

import time

import torch

from gan_lab.schedules import Schedules


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def step_seed(seed: int, rank: int, iteration: int) -> int:
    """The RNG seed of one (run seed, rank, iteration): (seed, rank, iteration) hashed by SplitMix64, so
    the seeds of successive iterations share no arithmetic structure (torch's CPU generator keeps only
    the low 32 bits of a seed; these are as good as random)."""
    return _splitmix64(_splitmix64(_splitmix64(seed) ^ rank) ^ iteration) & 0x7FFFFFFFFFFFFFFF


class Clock:
    """``start(system)`` before each iteration t: seeds the CPU's generator and the run's GPU's with
    (seed, rank, t), and sets every scheduled setting for t (its k D steps and its G step)."""

    def __init__(self, seed: int = 0, iterations: int = 1, schedules: Schedules | None = None):
        self.seed, self.iterations = seed, iterations
        self.schedules = schedules or Schedules()
        self.seconds_before = 0.0  # training seconds of the sessions before this one (a resumed run's checkpoint)
        self._since: float | None = None  # when this session's training began

    def begin_session(self) -> None:
        self._since = time.perf_counter()

    def seconds(self) -> float:
        """Seconds spent training so far, every session of the run counted (evaluation at the end excluded)."""
        return self.seconds_before + (0.0 if self._since is None else time.perf_counter() - self._since)

    def start(self, system) -> None:
        seed = step_seed(self.seed, system.global_rank, system.iteration)
        # The generators this run draws from: the CPU's, and its own GPU's. (torch.manual_seed would also
        # queue a seed for every lazily initialised backend, formatting a stack trace each time: 1.3 ms per
        # iteration on a CPU run.)
        torch.default_generator.manual_seed(seed)
        if system.device.type == "cuda":
            torch.cuda.manual_seed(seed)
        self.schedules.apply(system, system.iteration)

    def row(self, system) -> dict[str, float]:
        """What a log row shows of the clock: the scheduled settings as the row's last iteration ran them."""
        return self.schedules.row(system)

