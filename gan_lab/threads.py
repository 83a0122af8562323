"""How many CPU threads each process of a run uses (``trainer.threads``; null: decided here).

torch gives every process as many threads as the machine has cores. Two sweep jobs side by side (the joblib
launcher's ``n_jobs``), or two CPU ranks of one run, then run twice as many threads as there are cores, and
each thread waits for the others at every parallel region: oversubscription. The lab gives each process the
cores it may use (its CPU affinity: what ``taskset`` or a SLURM allocation grants) divided among the processes
that share them: the sweep's parallel jobs on this machine times the run's ranks on this node.

A model too small to gain from threads (a few thousand weights: the toy MLPs on points) gets one: each
parallel region costs more to start and join than it saves. ``SMALL_MODEL`` is where that changes, measured by
``python -m benchmarks.bench --threads`` (docs/design.md, "CPU threads").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

SMALL_MODEL = 100_000  # weights of G and D together below which one thread is as fast as more (benchmarks/bench.py)


@dataclass(frozen=True)
class ThreadBudget:
    threads: int
    reason: str

    def line(self) -> str:
        return f"{self.threads} CPU thread{'s' if self.threads != 1 else ''} per process ({self.reason})"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parallel_jobs(cores: int) -> int:
    """Sweep jobs running side by side on this machine: the joblib launcher's ``n_jobs`` in a multirun, else 1."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return 1
    if not HydraConfig.initialized():
        return 1
    hc = HydraConfig.get()
    launcher = hc.get("launcher") or {}
    if hc.mode != RunMode.MULTIRUN or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n = int(launcher.get("n_jobs") or -1)
    return max(1, n if n > 0 else cores + 1 + n)  # joblib: -1 is every core, -2 all but one, …


def choose(setting: int | None, ranks_per_node: int, weights: int, cores: int | None = None,
           jobs: int | None = None) -> ThreadBudget:
    """The threads for one process of a run: ``setting`` (trainer.threads) when given, else the cores shared out
    (:mod:`gan_lab.threads`), and 1 for a model of fewer than :data:`SMALL_MODEL` weights."""
    if setting is not None:
        return ThreadBudget(int(setting), "trainer.threads")
    cores = usable_cores() if cores is None else cores
    jobs = parallel_jobs(cores) if jobs is None else jobs
    sharing = jobs * max(1, ranks_per_node)
    share = max(1, cores // sharing)
    if weights < SMALL_MODEL and share > 1:
        return ThreadBudget(1, f"a model of {weights:,} weights gains nothing from more; trainer.threads sets it")
    if sharing == 1:
        return ThreadBudget(share, f"the {cores} usable cores")
    who = " × ".join(f"{n} {what}" for n, what in ((jobs, "parallel jobs"), (ranks_per_node, "ranks")) if n > 1)
    return ThreadBudget(share, f"{cores} usable cores shared by {who}")


@contextmanager
def applied(budget: ThreadBudget) -> Iterator[ThreadBudget]:
    """This process (and the ranks it launches, through OMP_NUM_THREADS) on ``budget`` threads; the previous
    setting comes back afterwards (a sweep job runs in a process that outlives it)."""
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(budget.threads)
    os.environ["OMP_NUM_THREADS"] = str(budget.threads)  # Lightning's launcher then leaves the count alone
    try:
        yield budget
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env
