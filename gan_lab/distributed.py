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
import pickle
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import _sync_module_states
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


class PlayerDDP(DDPStrategy):
    """Lightning's DDP strategy (processes, process group, launch) without the ``DistributedDataParallel`` wrapper.

    Under manual optimisation each update steps one player. DDP's reducer would, at every backward, walk the graph
    for unused parameters (``find_unused_parameters=True``: the other player's are unused) and all-reduce both
    players' buckets, and its forward would broadcast rank 0's buffers. Here the runner averages only the stepped
    player's gradients, in one flat all-reduce per update (:meth:`Ranks.average_gradients`), and the weights and
    buffers are copied from rank 0 once, when training starts."""

    def configure_ddp(self) -> None:
        _sync_module_states(self.model)  # every rank starts from rank 0's weights and buffers


def resolve_strategy(strategy: str, accelerator: str, devices, num_nodes: int, timeout_minutes: float | None = None):
    """"auto"/"ddp" with more than one process -> :class:`PlayerDDP`, with every collective bounded by
    ``timeout_minutes``."""
    global _TIMEOUT_S
    n_devices = devices if isinstance(devices, int) else (len(devices) if isinstance(devices, list) else 0)
    multi = num_nodes > 1 or n_devices > 1 or n_devices == -1
    if strategy in ("auto", "ddp") and (multi or strategy == "ddp"):
        backend = "gloo" if accelerator == "cpu" else None
        kwargs = {"timeout": timedelta(minutes=timeout_minutes)} if timeout_minutes else {}
        _TIMEOUT_S = 60.0 * timeout_minutes if timeout_minutes else DEFAULT_TIMEOUT_S
        if backend is None:
            # NCCL: on a time-out abort the communicators and raise in the waiting rank instead of
            # tearing the process down (which would end a whole sweep with it).
            os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2")
        return PlayerDDP(process_group_backend=backend, **kwargs)
    return strategy


DEFAULT_TIMEOUT_S = 1800.0  # torch's default process-group time-out
_TIMEOUT_S = DEFAULT_TIMEOUT_S


class CollectiveTimeout(RuntimeError):
    """A collective the lab waits on did not complete within ``trainer.timeout_minutes``."""


def completed(work, what: str, timeout_s: float | None = None) -> None:
    """Wait for an ``async_op=True`` collective here, inside the caller's waiting phase, polling it against the
    deadline. NCCL enqueues a collective and returns at once; the real wait would otherwise happen at a later host
    sync (a ``.tolist()``), outside any waiting phase, and be blamed on the wrong rank and phase. On gloo the same
    code waits for the same thing. Raises :class:`CollectiveTimeout` (or the backend's error) when it fails."""
    limit = _TIMEOUT_S if timeout_s is None else timeout_s
    start, pause = time.monotonic(), 1e-5
    while not work.is_completed():
        if time.monotonic() - start > limit:
            raise CollectiveTimeout(f"{what}: no answer from the other ranks within {limit:.0f} s (timed out)")
        time.sleep(pause)
        pause = min(2 * pause, 0.01)
    work.wait()  # raises what the backend recorded (an aborted communicator, a closed connection)


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

    def gather(self, part: torch.Tensor, what: str = "samples") -> torch.Tensor | None:
        """Every rank's ``part`` (N_r, ...), concatenated in rank order, on rank 0 (on the CPU); None on the other
        ranks, which need only their own share."""
        if self.world == 1:
            return part.cpu()
        with watchdog.waiting(f"gathering {what}"):
            device = self._device()
            sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(self.world)]
            completed(dist.all_gather(sizes, torch.tensor([part.shape[0]], device=device), async_op=True), what)
            sizes = [int(n) for n in sizes]
            padded = torch.zeros((max(sizes), *part.shape[1:]), dtype=part.dtype, device=device)
            padded[: part.shape[0]] = part
            out = [torch.empty_like(padded) for _ in range(self.world)] if self.is_main else None
            completed(dist.gather(padded, out, dst=0, async_op=True), what)
        return torch.cat([o[:n].cpu() for o, n in zip(out, sizes)]) if self.is_main else None

    def broadcast(self, obj, what: str = "results"):
        """Rank 0's ``obj`` (any picklable value) on every rank."""
        if self.world == 1:
            return obj
        with watchdog.waiting(f"receiving {what} from rank 0"):
            device = self._device()
            payload = (torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8).to(device) if self.is_main
                       else None)
            size = torch.tensor([0 if payload is None else payload.numel()], dtype=torch.long, device=device)
            completed(dist.broadcast(size, src=0, async_op=True), what)
            if payload is None:
                payload = torch.empty(int(size), dtype=torch.uint8, device=device)
            completed(dist.broadcast(payload, src=0, async_op=True), what)
        return obj if self.is_main else pickle.loads(payload.cpu().numpy().tobytes())

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
                completed(dist.broadcast(buf, src=0, async_op=True), f"rank 0's {what}")
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
            completed(dist.all_reduce(buf, async_op=True), "averaging the logged row")
        return (buf / self.world).to(row.device, row.dtype)

    def mean_in_step(self, t: torch.Tensor, what: str) -> torch.Tensor:
        """The element-wise mean of ``t`` over ranks for state a training step uses (ADA's sign counts), ordered on
        the device's stream as the gradients' average: no host sync, unlike :meth:`mean_row`'s logged row."""
        if self.world == 1:
            return t
        buf = t.detach().to(self._device(), torch.float64)
        self._sum_in_step(buf, what)
        return (buf / self.world).to(t.device, t.dtype)

    @staticmethod
    def _sum_in_step(buf: torch.Tensor, what: str) -> None:
        with watchdog.waiting(what):
            dist.all_reduce(buf, async_op=True).wait()  # NCCL: the stream waits, not the host

    def average_gradients(self, params) -> None:
        """Replace the gradient of each of ``params`` (one player's, after its backward) by its mean over the ranks,
        as DDP's reducer would, in one flat all-reduce per dtype. Every rank runs the same code on the same config,
        so the same parameters have gradients on every rank; those without one (``grad=None``) are left out."""
        if self.world == 1:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads]).div_(self.world)
            self._sum_in_step(flat, "averaging gradients")
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()


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
