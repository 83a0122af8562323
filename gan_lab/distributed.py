"""Multi-process runs: the strategy (with its collective time-out), the lab's own collectives, and the
Hydra child-process fix (Lightning #11300).

The lab decides when ranks meet. Outside the gradient all-reduce that DDP does inside backward, ranks
exchange data only through :class:`Ranks` (a gather of samples or features, a broadcast of computed
metrics, one all-reduce per logged row); no metric object syncs on its own. Every collective runs under
the process group's time-out (``trainer.timeout_minutes``), so a dead or stalled peer ends in an error,
never in a hang (:mod:`gan_lab.watchdog` names the rank and what it was doing).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import ListConfig

from gan_lab import watchdog


def processes(tc) -> int:
    """The run's process count: devices (an integer, a list, or -1/auto: every visible GPU on a GPU accelerator,
    one process on a CPU) times the nodes."""
    devices = tc.get("devices", 1)
    if isinstance(devices, (list, ListConfig)):
        per_node = len(devices)
    elif devices in (-1, "auto"):
        per_node = torch.cuda.device_count() if str(tc.get("accelerator", "cpu")) in ("gpu", "cuda") else 1
    else:
        per_node = devices if isinstance(devices, int) else 1
    return max(1, per_node) * max(1, int(tc.get("num_nodes", 1) or 1))


def resolve_strategy(strategy: str, accelerator: str, devices, num_nodes: int, timeout_minutes: float | None = None):
    """"auto"/"ddp" with more than one process -> DDP that tolerates unused parameters, with every
    collective bounded by ``timeout_minutes``.

    Under manual optimisation each backward touches only the player being updated, so the other
    player's parameters are unused in it: plain DDP refuses that.
    """
    n_devices = devices if isinstance(devices, int) else (len(devices) if isinstance(devices, list) else 0)
    multi = num_nodes > 1 or n_devices > 1 or n_devices == -1
    if strategy in ("auto", "ddp") and (multi or strategy == "ddp"):
        backend = "gloo" if accelerator == "cpu" else None
        kwargs = {"timeout": timedelta(minutes=timeout_minutes)} if timeout_minutes else {}
        if backend is None:
            # NCCL: on a time-out abort the communicators and raise in the waiting rank instead of
            # tearing the process down (which would end a whole sweep with it).
            os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2")
        return DDPStrategy(find_unused_parameters=True, process_group_backend=backend, **kwargs)
    return strategy


def is_collective_error(err: BaseException) -> bool:
    """An error raised by a collective whose peer died, stalled past the time-out, or closed the connection."""
    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(s in text for s in (
        "gloo", "nccl", "connection closed", "connection reset", "timed out", "timeout", "pair closure"))


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of the run, and the lab's collectives over them.

    Every method is a no-op pass-through in a single-process run, so callers are written once.
    """

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Ranks:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous share of n items: concatenating the shares in rank order gives 0..n-1."""
        return slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)

    @staticmethod
    def _device() -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def gather(self, part: torch.Tensor, what: str = "samples") -> torch.Tensor:
        """Every rank's ``part`` (N_r, ...), concatenated in rank order, on every rank (CPU)."""
        if self.world == 1:
            return part
        with watchdog.waiting(f"gathering {what}"):
            device = self._device()
            sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.world)]
            dist.all_gather(sizes, torch.tensor([part.shape[0]], device=device))
            sizes = [int(s) for s in sizes]
            padded = torch.zeros((max(sizes), *part.shape[1:]), dtype=part.dtype, device=device)
            padded[: part.shape[0]] = part
            out = [torch.empty_like(padded) for _ in range(self.world)]
            dist.all_gather(out, padded)
        return torch.cat([o[:s].cpu() for o, s in zip(out, sizes)])

    def broadcast(self, obj, what: str = "results"):
        """Rank 0's ``obj`` (any picklable value) on every rank."""
        if self.world == 1:
            return obj
        with watchdog.waiting(f"receiving {what} from rank 0"):
            box = [obj if self.is_main else None]
            dist.broadcast_object_list(box, src=0, device=self._device())
        return box[0]

    def broadcast_state(self, module: torch.nn.Module, what: str = "buffers") -> None:
        """Copy rank 0's buffers (``what="buffers"``) or parameters and buffers (``"state"``) of ``module``
        to every rank, in place: batch-norm running statistics drift apart per rank during DDP training."""
        if self.world == 1:
            return
        tensors = list(module.buffers()) if what == "buffers" else [*module.parameters(), *module.buffers()]
        with watchdog.waiting(f"receiving rank 0's {what}"), torch.no_grad():
            device = self._device()
            for t in tensors:
                if not t.is_floating_point() and t.dtype not in (torch.long, torch.int, torch.bool):
                    continue
                buf = t.detach().to(device)
                dist.broadcast(buf, src=0)
                t.copy_(buf.to(t.device))

    @contextmanager
    def alone(self) -> Iterator[None]:
        """Rank 0 works while the others wait in a collective: on CPU it may use their cores too (Lightning
        gives each of n processes 1/n of them)."""
        threads = torch.get_num_threads()
        cpu = self.world > 1 and dist.get_backend() == "gloo"
        if cpu and self.is_main:
            torch.set_num_threads(min(os.cpu_count() or threads, threads * self.world))
        try:
            yield
        finally:
            if cpu and self.is_main:
                torch.set_num_threads(threads)

    def mean_row(self, row: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of a 1-D tensor over ranks (a NaN on any rank reaches every rank)."""
        if self.world == 1:
            return row
        with watchdog.waiting("averaging the logged row"):
            device = self._device()
            buf = row.detach().to(device, torch.float64)
            dist.all_reduce(buf)
        return (buf / self.world).to(row.device, row.dtype)


def _hydra_child_command(local_rank: int):
    """Rank ≥ 1 re-runs *this job* (its overrides, its folder), never the whole sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    hc = HydraConfig.get()
    command = [sys.executable, "-m", "gan_lab", *hc.overrides.task,
               f'hydra.run.dir="{hc.runtime.output_dir}"', "hydra.mode=RUN", "hydra.output_subdir=null",
               f"hydra.job.name={hc.job.name}_rank{local_rank}"]
    return command, get_original_cwd()


def patch_hydra_ddp_launch() -> None:
    """Child ranks re-run only this job (Lightning #11300), and are watched by :mod:`gan_lab.watchdog`
    instead of Lightning's observer, which SIGKILLs the main process (a whole sweep) when a child fails."""
    from lightning.fabric.strategies.launchers import subprocess_script as fabric_launcher
    from lightning.pytorch.strategies.launchers import subprocess_script as pytorch_launcher

    fabric_launcher._hydra_subprocess_cmd = _hydra_child_command
    pytorch_launcher._hydra_subprocess_cmd = _hydra_child_command
    fabric_launcher._launch_process_observer = watchdog.watch_children
    pytorch_launcher._launch_process_observer = watchdog.watch_children


@contextmanager
def distributed_job() -> Iterator[None]:
    """Leave no process group or launcher variables behind, so the next sweep job launches afresh."""
    env = dict(os.environ)
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key in set(os.environ) - set(env):
            del os.environ[key]
        os.environ.update(env)
