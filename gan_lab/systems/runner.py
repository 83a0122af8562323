"""How each update of Algorithm 1 runs: one object for every execution path (docs/design.md, "CUDA graphs").

* ``eager``: through Lightning (``manual_backward``, ``LightningOptimizer.step``): loss scaling, DDP's hooks,
  every callback's ``on_before_backward``/``on_after_backward``/``on_before_optimizer_step``.
* ``lean``: raw ``backward()``/``step()`` where that is numerically Lightning's path (one process, no loss scaler,
  no callback listening to those hooks); it saves Lightning's per-step overhead on small models.
* ``graphs`` (``train.cuda_graphs=true``): each update captured once as a CUDA graph and replayed.
* ``stand_in`` (``train.cuda_graphs=stand_in``): the same capture-ready bookkeeping on any device, without
  capturing ("replay" calls the function again), so CPU tests check the capture-ready step.

Small GANs on a GPU are bound by kernel launches and Python, not arithmetic: one iteration of the default DCGAN
is a few hundred kernels. A CUDA graph records them once and replays them with one launch. The runner captures
the *same* code the eager path runs — ``GAN.d_step``/``g_step`` through the two update frames — so there is one
step, not two: forward, backward (the double backward of GP/R1/R2 included), the optimiser step
(``capturable=True``), the after-step hooks (clipping, EMA) and the accumulation of the logged statistics into
preallocated device buffers. What differs is only where the host's side effects happen: while ``capturing`` is
set the frames record them instead, and the runner applies them after each replay (``d_updates`` and the per-row
counts of the statistics).

Per update kind and variant — ("d", measuring gradients or not), ("g", …) — the first occurrence runs eagerly
(it initialises the optimiser state, the statistics' buffers, cuDNN's choices), the second is captured, and every
one after that copies its real minibatch into the graph's static input and replays. z, the penalties'
interpolants and the augmentations are drawn inside the graph from the CUDA generator, whose seed and offset a
replay reads when it starts: the per-iteration seeding (gan_lab/systems/clock.py) therefore still decides every
random number, and a resumed run continues exactly. Graphs share one memory pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import lightning as L
import torch

from gan_lab.distributed import Ranks
from gan_lab.systems.conditioning import Batch

log = logging.getLogger("gan_lab")
GRAPH_MODES = (False, True, "stand_in")  # train.cuda_graphs
_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


@dataclass
class _Graph:
    static: Batch  # the real minibatch the captured function reads
    replay: Callable[[], None]
    names: list[str] = field(default_factory=list)  # statistics accumulated by one replay, with repeats
    d_updates: int = 0  # D updates one replay performs


def _autocast_without_cache(device: torch.device):
    """Autocast's weight-cast cache must be off inside a capture (PyTorch's CUDA graphs notes)."""
    if device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        return torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)
    return nullcontext()


@contextmanager
def untracked():
    """``torch.no_grad()`` for a forward nobody differentiates (the fakes of a D step), leaving autocast's weight-cast
    cache clean: a weight cast to bf16/fp16 here carries no autograd history, and a later forward with gradients in
    the same autocast region (G's update, inside one ``training_step``) must not reuse it, or G's weights get no
    gradient. Whether the cache itself checks grad mode depends on the torch version; clearing it costs one
    re-cast of G's weights."""
    try:
        with torch.no_grad():
            yield
    finally:
        torch.clear_autocast_cache()


def capturable(factory: Callable, params) -> torch.optim.Optimizer:
    """``factory(params)`` with ``capturable=True`` where the optimiser has that option (Adam, AdamW, RMSprop)."""
    params = list(params)
    try:
        return factory(params, capturable=True)
    except TypeError:  # no such option (SGD keeps no step count)
        return factory(params)


class Runner:
    """``update(system, key, fn, x)`` runs one update ``fn(x)``; ``backward``/``step`` are what its frame calls.
    ``cuda_graphs``: the setting (False, True or "stand_in"); the path is chosen at train start (:meth:`choose`)."""

    def __init__(self, cuda_graphs: bool | str = False, blockers: Callable[[object], list[str]] = lambda s: []):
        """``blockers(system)``: why a system's step cannot be captured (gan_lab/rules.py asks the rulebook)."""
        self.cuda_graphs, self.blockers = cuda_graphs, blockers
        self.mode = "eager"
        self.capturing = False  # inside a captured (or stand-in) update: host effects are recorded, not applied
        self.captured_d_updates = 0
        self.graphs: dict[tuple, _Graph] = {}
        self.warmed: set[tuple] = set()
        self.pool = None
        self.ranks = Ranks()
        self.scaler = None  # fp16's loss scaler (16-mixed), set at train start

    @property
    def lean(self) -> bool:
        return self.mode != "eager"

    def capture_ready_optimizers(self, system) -> bool:
        """Whether the optimisers should keep their step counts on the device, so that a replayed step advances
        them: only when this run's updates will be captured (``capturable=True`` costs eager steps a little)."""
        return self.cuda_graphs is True and not self.blockers(system)

    def choose(self, system, trainer: L.Trainer) -> None:
        """Lean eager when that is numerically Lightning's path; CUDA graphs when asked and nothing in the run
        (:attr:`blockers`) prevents them, else eager with one line saying why."""
        listened = any(getattr(type(cb), h) is not getattr(L.Callback, h) for cb in trainer.callbacks for h in _HOOKS)
        self.scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.mode = "lean" if trainer.world_size == 1 and self.scaler is None and not listened else "eager"
        self.ranks = Ranks.current()
        self.graphs, self.warmed, self.pool = {}, set(), None
        if not self.cuda_graphs:
            return
        blockers = self.blockers(system)
        if blockers:
            log.warning("gan_lab: train.cuda_graphs: this run's step stays eager: %s", "; ".join(blockers))
            return
        self.mode = "stand_in" if self.cuda_graphs == "stand_in" else "graphs"

    # ---------------------------------------------------------------- what an update's frame calls
    def backward(self, system, loss: torch.Tensor, optimizer) -> None:
        """The gradient of ``loss`` for the player ``optimizer`` steps, averaged over the ranks of a multi-process
        run (only that player's: gan_lab/distributed.py, ``PlayerDDP``)."""
        if self.lean or self.capturing:
            loss.backward()
        else:
            system.manual_backward(loss)
        if self.ranks.world > 1:
            self.ranks.average_gradients(p for group in optimizer.param_groups for p in group["params"])

    def step(self, optimizer) -> None:
        if self.lean or self.capturing:
            optimizer.optimizer.step()
        else:
            optimizer.step()

    def unscaled(self, norms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Gradient norms as the optimiser uses them. Under fp16's loss scale (16-mixed) the gradients carry the
        scale until the step unscales them: it is divided out here. A step whose scaled gradients overflowed is one
        the scaler skips (and then halves its scale), not a divergence: it adds no norm, only ``loss_scale`` (logged
        as train/loss_scale). Two syncs, on logged iterations only."""
        if self.scaler is None or not self.scaler.is_enabled():
            return norms
        scale = self.scaler.get_scale()
        kept = {name: value / scale for name, value in norms.items()}
        finite = bool(torch.isfinite(torch.stack(list(kept.values()))).all()) if kept else True
        return {**(kept if finite else {}), "loss_scale": torch.tensor(float(scale))}

    def counted_d_update(self, system) -> None:
        """One D update done: counted now, or by the host after each replay of a captured one."""
        if self.capturing:
            self.captured_d_updates += 1
        else:
            system.d_updates += 1

    # ---------------------------------------------------------------- one update
    def update(self, system, key: tuple, fn: Callable[[Batch], None], x: Batch) -> None:
        """One update ``fn(x)`` of kind ``key``: eager; or with graphs, eager the first time, captured the second,
        replayed after."""
        if self.mode in ("eager", "lean"):
            fn(x)
            return
        if key not in self.warmed:
            self.warmed.add(key)
            fn(x)
            return
        graph = self.graphs.get(key)
        if graph is None:
            graph = self.graphs[key] = self._capture(system, fn, x)
        graph.static.copy_(x)
        graph.replay()
        if self.mode == "stand_in":  # Python ran again: what it recorded is this replay's
            graph.names, graph.d_updates = list(system.statistics.recorded), self.captured_d_updates
        system.statistics.count(graph.names)
        system.d_updates += graph.d_updates

    @contextmanager
    def _recording(self, system):
        """Host side effects of the frames are recorded instead of being applied."""
        self.capturing, self.captured_d_updates = True, 0
        system.statistics.recorded = []
        try:
            yield
        finally:
            self.capturing = False

    def _capture(self, system, fn: Callable[[Batch], None], x: Batch) -> _Graph:
        static = x.detached_copy()
        if self.mode == "stand_in":
            def replay():
                with self._recording(system):
                    fn(static)

            return _Graph(static, replay)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool), self._recording(system), _autocast_without_cache(x.x.device):
            fn(static)
        if self.pool is None:
            self.pool = graph.pool()
        torch.cuda.synchronize()
        return _Graph(static, graph.replay, list(system.statistics.recorded), self.captured_d_updates)
