"""The statistics of training: accumulated on the device between log rows, flushed as one row, and the guards
that read that row (non-finite numbers stop the run; a SIGTERM on any rank stops every rank at the same row).

Each statistic is a running sum in a buffer of :class:`Statistics`, a child module of the system: it is created
on the device of the first value, moves with the system (``.to(device)``, ``.to(dtype)``, a resume that restores
pending sums before Lightning moves the module), and is never part of the state dict (weights and their digests
do not depend on what was logged). A row costs one host sync: the means, the weights' finiteness flag and the
stop flag travel together, averaged over ranks under DDP.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from gan_lab.distributed import Ranks


class Diverged(RuntimeError):
    """Training produced non-finite losses or weights; the run stops and keeps its last good checkpoint."""

    def __init__(self, iteration: int, reason: str):
        self.iteration, self.reason = iteration, reason
        super().__init__(f"diverged by iteration {iteration}: {reason}")


class StopRequested(RuntimeError):
    """SIGTERM (a scheduler's time limit or preemption, ``kill``): every rank stops at the same iteration,
    after a checkpoint of it."""


def grad_norm(module: nn.Module) -> torch.Tensor:
    """‖∇θ‖₂ over all of ``module``'s parameters (stays on device: no sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def weights_finite(module: nn.Module) -> torch.Tensor:
    """Whether every weight of ``module`` is finite, as a 0-dim tensor on its device (no sync)."""
    return torch.stack([torch.isfinite(p).all() for p in module.parameters()]).all()


class Statistics(nn.Module):
    """Running sums of named statistics (``add``), turned into one row of means every ``log_every`` iterations
    (``flush``). ``recording``: inside a captured update (gan_lab/systems/runner.py) the buffers are updated in
    place and the names recorded, so that a replay can count them on the host (``count``)."""

    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = {}
        self.recorded: list[str] = []
        self.clock = (time.perf_counter(), 0)  # (when, iteration) of the last row: the rate of the next one
        self.stop_signal: str | None = None  # set by the SIGTERM handler (GAN.on_train_start)
        self.stop_now = False  # every rank agreed to stop after this iteration

    def sums(self) -> dict[str, torch.Tensor]:
        """The running sums, by statistic name."""
        return dict(self.named_buffers())

    def add(self, stats: dict[str, torch.Tensor], device: torch.device, recording: bool = False) -> None:
        """Add each statistic into its buffer on ``device`` (the system's), in place: the buffers a captured update
        writes into. A statistic computed on the host (a schedule's value) joins the others there."""
        for name, value in stats.items():
            value = value.detach().float().to(device)
            buffer = self._buffers.get(name)
            if recording:
                if buffer is None:
                    raise RuntimeError(f"train/{name} first appeared inside a captured update")
                buffer.add_(value)
                self.recorded.append(name)
                continue
            if buffer is None:
                self.register_buffer(name, value.clone(), persistent=False)
            else:
                buffer.add_(value)
            self.counts[name] = self.counts.get(name, 0) + 1

    def count(self, names: list[str]) -> None:
        """What a replayed update does on the host: count the statistics it added."""
        for name in names:
            self.counts[name] = self.counts.get(name, 0) + 1

    def flush(self, system, extra: dict[str, float]) -> tuple[dict[str, float], bool]:
        """One row: (the mean of each statistic since the last row, averaged over ranks, with the iteration rate
        and ``extra``; whether every weight of ``system`` is finite on every rank). Sets ``stop_now`` when any
        rank was asked to stop."""
        sums = self.sums()
        names = sorted(n for n in sums if self.counts.get(n))
        device = next(iter(sums.values())).device if sums else system.device
        stop = torch.tensor(1.0 if self.stop_signal else 0.0, device=device)
        row = [sums[n] / self.counts[n] for n in names] + [weights_finite(system).float().to(device), stop]
        # Under DDP the row is averaged over ranks (the statistics of the global batch), and a NaN, a
        # non-finite weight or a SIGTERM on any rank reaches every rank, so all of them stop at the same row.
        *values, weights_ok, stop = Ranks.current().mean_row(torch.stack(row)).tolist()  # the one sync
        for buffer in sums.values():
            buffer.zero_()  # kept: a captured update holds them
        self.counts.clear()
        now, last = time.perf_counter(), self.clock[1]
        rate = (system.iteration - last) / max(now - self.clock[0], 1e-9)
        self.clock = (now, system.iteration)
        metrics = {f"train/{n}": v for n, v in zip(names, values)}
        metrics["perf/iterations_per_s"] = rate
        metrics.update(extra)
        self.stop_now = stop > 0
        return metrics, weights_ok == 1.0

    def single_process_stop(self) -> None:
        """One process needs no agreement: stop after this iteration if asked to."""
        if self.stop_signal:
            self.stop_now = True

    # ---------------------------------------------------------------- the divergence guard
    @staticmethod
    def check_finite(system, stats: dict[str, float] | None = None, weights_ok: bool | None = None) -> None:
        """Raise :class:`Diverged` if a logged statistic or any weight of ``system`` is not finite. ``weights_ok``:
        the weights' flag when the caller already has it, else it is read here (one device sync)."""
        bad = [k for k, v in (stats or {}).items() if not math.isfinite(v)]
        if bad:
            raise Diverged(system.iteration, f"non-finite {', '.join(f'{k}={stats[k]}' for k in bad)}")
        if not (bool(weights_finite(system)) if weights_ok is None else weights_ok):
            names = [n for n, p in system.named_parameters() if not bool(torch.isfinite(p).all())]
            more = " …" if len(names) > 3 else ""
            raise Diverged(system.iteration, f"non-finite weights ({', '.join(names[:3])}{more})")

    # ---------------------------------------------------------------- checkpoints
    def pending(self) -> dict[str, Any]:
        """The half-accumulated next row, for a checkpoint (a resumed run logs the rows it would have)."""
        sums = self.sums()
        return {"pending_sums": {k: v.detach().cpu() for k, v in sums.items() if self.counts.get(k)},
                "pending_counts": dict(self.counts)}

    def restore(self, state: dict[str, Any], device: torch.device) -> None:
        """Continue the row a checkpoint saved half-accumulated; the sums land on ``device`` and then move with
        the system wherever Lightning puts it."""
        for name in list(self._buffers):
            del self._buffers[name]
        for name, value in state.get("pending_sums", {}).items():
            self.register_buffer(name, value.to(device), persistent=False)
        self.counts = dict(state.get("pending_counts", {}))
