"""``train.cuda_graphs=true``: each update of Algorithm 1 captured once as a CUDA graph and replayed
(docs/design.md, "CUDA graphs").

Small GANs on a GPU are bound by kernel launches and Python, not arithmetic: one iteration of the default
DCGAN is a few hundred kernels. A CUDA graph records them once and replays them with one launch. The lab
captures the *same* code its eager path runs — ``GAN.d_step``/``g_step`` through the two update frames —
so there is one step, not two: forward, backward (the double backward of GP/R1/R2 included), the
optimiser step (``capturable=True``), the after-step hooks (clipping, EMA) and the accumulation of the
logged statistics into preallocated device buffers. What differs is only where the host's side effects
happen: the frames skip them while ``system.capturing`` is set, and :class:`StepGraphs` applies them
after each replay (``d_updates`` and the per-row counts of the statistics).

Per update kind and variant — ("d", measuring gradients or not), ("g", …) — the first occurrence runs
eagerly (it initialises the optimiser state, the statistics' buffers, cuDNN's choices), the second is
captured, and every one after that copies its real minibatch into the graph's static input and replays.
z, the penalties' interpolants and the augmentations are drawn inside the graph from the CUDA generator,
whose seed and offset a replay reads when it starts: the per-iteration ``torch.manual_seed`` of
``GAN.on_train_batch_start`` therefore still decides every random number, and a resumed run continues
exactly. Graphs share one memory pool.

``StepGraphs(stand_in=True)`` runs the same bookkeeping on any device without capturing: "replay" calls
the function again with ``capturing`` set. The tests use it on CPU to check that the capture-ready step
(static inputs, in-place statistics, host effects outside the captured function) trains to the same
weights as the eager step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch

log = logging.getLogger("gan_lab")


@dataclass
class _Graph:
    static: torch.Tensor  # the real minibatch the captured function reads
    replay: Callable[[], None]
    names: list[str] = field(default_factory=list)  # statistics accumulated by one replay, with repeats
    d_updates: int = 0  # D updates one replay performs


@contextmanager
def capturing(system):
    """Host side effects of the frames are recorded on ``system`` instead of being applied."""
    system.capturing, system.captured_names, system.captured_d_updates = True, [], 0
    try:
        yield
    finally:
        system.capturing = False


def _autocast_without_cache(device: torch.device):
    """Autocast's weight-cast cache must be off inside a capture (PyTorch's CUDA graphs notes)."""
    if device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)
    return nullcontext()


class StepGraphs:
    def __init__(self, stand_in: bool = False):
        self.stand_in = stand_in
        self.graphs: dict[tuple, _Graph] = {}
        self.warmed: set[tuple] = set()
        self.pool = None

    def run(self, system, key: tuple, fn: Callable[[torch.Tensor], None], x: torch.Tensor) -> None:
        """One update ``fn(x)`` of kind ``key``: eager the first time, captured the second, replayed after."""
        if key not in self.warmed:
            self.warmed.add(key)
            fn(x)
            return
        graph = self.graphs.get(key)
        if graph is None:
            graph = self.graphs[key] = self._capture(system, fn, x)
        graph.static.copy_(x)
        graph.replay()
        if self.stand_in:  # Python ran again: what it recorded is this replay's
            graph.names, graph.d_updates = system.captured_names, system.captured_d_updates
        system.apply_host_effects(graph.names, graph.d_updates)

    def _capture(self, system, fn: Callable[[torch.Tensor], None], x: torch.Tensor) -> _Graph:
        static = x.detach().clone()
        if self.stand_in:
            def replay():
                with capturing(system):
                    fn(static)

            return _Graph(static, replay)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool), capturing(system), _autocast_without_cache(x.device):
            fn(static)
        if self.pool is None:
            self.pool = graph.pool()
        torch.cuda.synchronize()
        return _Graph(static, graph.replay, list(system.captured_names), system.captured_d_updates)


def graph_blockers(system) -> list[str]:
    """Why this run's step cannot be captured (empty: it can)."""
    reasons = []
    if not system.capturable_step:
        reasons.append(f"the {type(system).__name__} system runs its own step")
    if system.trainer.world_size > 1:
        reasons.append("multi-process runs stay eager (DDP's gradient all-reduce is not captured here)")
    if system.conditional != "none":
        reasons.append(f"model.conditional={system.conditional}: the labelled step is not captured (yet)")
    if system.simultaneous:
        reasons.append("train.simultaneous=true: G's update holds its gradient across D's updates (they would "
                       "be captured inside G's graph)")
    if system.lr_decay != "none":
        reasons.append(f"optimizer.lr_decay={system.lr_decay}: the learning rate changes every iteration "
                       "(a captured update would replay the first one's)")
    blocker = system.regularizer.capture_blocker()
    if blocker:
        reasons.append(blocker)
    reasons += [f"{part.option()}: {why}" for part in system.tricks.parts if (why := part.capture_blocker())]
    return reasons
