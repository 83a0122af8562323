"""Algorithm 1 (Goodfellow et al. 2014; the EE807 lecture notes, docs/references.md) with manual optimisation.

Per generator iteration: k D updates, each on a fresh real minibatch and fresh z, then one G update on fresh z;
separate optimisers for the two players. The run's clock is ``iteration`` (generator iterations): Lightning's
``global_step`` counts every optimiser step, k + 1 per iteration.

The step reads as the algorithm does; every other concern is a part with one interface, the same for every
system (LAPGAN, MIX+GAN and progressive growing override only the steps that differ):

=====================  ============================================  ==============================
part                   what it decides                               module
=====================  ============================================  ==============================
``conditioning``       labels: drawn, passed to G and D, or none      gan_lab/systems/conditioning.py
``schedule``           alternating or simultaneous updates            gan_lab/systems/schedule.py
``runner``             eager, lean, CUDA graphs, the CPU stand-in     gan_lab/systems/runner.py
``statistics``         logged rows, the divergence guard, SIGTERM     gan_lab/systems/statistics.py
``clock``              per-iteration seeds and learning rates         gan_lab/systems/clock.py
``tricks``             hooks around the two updates                   gan_lab/tricks
``regularizer``        D's constraints and penalties                  gan_lab/regularizers
=====================  ============================================  ==============================
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import lightning as L
import torch
from torch import nn

from gan_lab import watchdog
from gan_lab.capabilities import SystemCaps
from gan_lab.losses.base import GANLoss
from gan_lab.regularizers.base import Judged, Regularizer
from gan_lab.reporting import report
from gan_lab.schedules import Schedules
from gan_lab.systems.clock import Clock
from gan_lab.systems.conditioning import Batch, Unconditional
from gan_lab.systems.runner import Runner, capturable, untracked
from gan_lab.systems.schedule import Alternating
from gan_lab.systems.statistics import Diverged, Statistics, StopRequested, grad_norm
from gan_lab.tricks import Tricks

__all__ = ["GAN", "Batch", "Diverged", "StopRequested", "grad_norm"]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def total(*terms: torch.Tensor | None) -> torch.Tensor:
    """The sum of the terms that are there, left to right."""
    out = terms[0]
    for term in terms[1:]:
        if term is not None:
            out = out + term
    return out


class GAN(L.LightningModule):
    caps = SystemCaps()

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: GANLoss, regularizer: Regularizer,
                 optimizer_d: OptimizerFactory, optimizer_g: OptimizerFactory, *, k: int = 1, g_steps: int = 1,
                 z_dim: int = 100,
                 log_every: int = 25, seed: int = 0, iterations: int = 1, tricks: Tricks | None = None,
                 conditioning: Unconditional | None = None, schedule: Alternating | None = None,
                 runner: Runner | None = None, schedules: Schedules | None = None, channels_last: bool = False,
                 run_config: dict | None = None):
        """``k``: D updates per G update; ``g_steps``: G updates per iteration. ``log_every``: generator
        iterations between log rows. ``iterations``: the run's length (schedules run over it). ``tricks``: the parts
        acting inside the step, attached here (their state becomes part of the checkpoint). ``channels_last``: NHWC
        layout for both networks and every real batch (faster convolutions on recent CPUs and tensor cores)."""
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = regularizer.wrap(discriminator)
        self.loss, self.regularizer = loss, regularizer
        self.optimizer_factories = (optimizer_d, optimizer_g)
        self.k, self.g_steps, self.z_dim, self.log_every, self.seed = k, g_steps, z_dim, log_every, seed
        self.iterations, self.run_config = iterations, run_config
        self.tricks = tricks or Tricks()
        self.conditioning = conditioning or Unconditional()
        self.schedule = schedule or Alternating()
        self.runner = runner or Runner()
        self.clock = Clock(seed, iterations, schedules)
        self.statistics = Statistics()
        self.generator_ema: nn.Module | None = None  # set by tricks.ema
        self.conditioning.attach(self)
        regularizer.attach(self)
        for part in self.tricks.with_hook("attach"):
            part.attach(self)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.resume_state: dict | None = None  # optimiser states to load at train start (resume)
        self.iteration = 0  # generator iterations completed
        self.d_updates = 0
        self.history: list[dict[str, float]] = []  # every logged row (rank 0 writes it out)

    @property
    def conditional(self) -> str:
        return self.conditioning.mode

    @property
    def n_classes(self) -> int:
        return self.conditioning.n_classes

    @property
    def batches_per_iteration(self) -> int:
        """Real minibatches one iteration consumes: k for D, more for tricks that ask (unrolling: K)."""
        return self.k + self.tricks.extra_batches

    def configure_optimizers(self):
        factory_d, factory_g = self.optimizer_factories
        if self.runner.capture_ready_optimizers(self):  # step counts on the device: a replay advances them
            return [capturable(factory_d, self.discriminator.parameters()),
                    capturable(factory_g, self.generator.parameters())]
        return [factory_d(self.discriminator.parameters()), factory_g(self.generator.parameters())]

    # ---------------------------------------------------------------- Algorithm 1
    def training_step(self, batch, batch_idx: int) -> None:
        opt_d, opt_g = self.optimizers()
        reals = self.conditioning.batches(batch, self.batches_per_iteration)  # k for D, then the parts' extra ones
        log_now = (self.iteration + 1) % self.log_every == 0

        def d_updates() -> None:
            for j, real in enumerate(reals[: self.k]):  # k D updates, each on a fresh real minibatch and fresh z
                measure = log_now and j == self.k - 1
                self.runner.update(self, ("d", measure), partial(self.d_step, opt_d, measure_grad=measure), real)

        def g_update() -> None:  # one G update on fresh z (train.g_steps of them)
            step = partial(self.g_step, opt_g, extra_reals=reals[self.k:], measure_grad=log_now)
            for _ in range(self.g_steps):
                self.runner.update(self, ("g", log_now), step, reals[self.k - 1])

        self.schedule.iterate(d_updates, g_update)
        self.iteration += 1
        self.end_iteration(log_now)

    def fakes(self, n: int) -> Batch:
        """G(z) on fresh z (and fresh labels from the prior in a class-conditional run)."""
        z = self.sample_z(n)
        y = self.conditioning.fake_labels(self, n)
        return Batch(self.conditioning.generate(self.generator, z, y), y)

    def d_step(self, opt_d, real: Batch, measure_grad: bool = False) -> None:
        """One D update: D's loss on a real minibatch and fresh fakes, plus the regularizer's penalty."""

        def objective():
            with untracked():  # no_grad, and autocast's cache left clean for G's update
                fake = self.fakes(real.x.shape[0])
            (r, real_view), (f, fake_view) = self.d_view(real.x), self.d_view(fake.x)
            real_logits, real_classes = self.conditioning.judge(self.discriminator, r, real.y)
            fake_logits, fake_classes = self.conditioning.judge(self.discriminator, f, fake.y)
            self.observe_d(real_logits, fake_logits)
            d_loss = self.loss.d_loss(real_logits, fake_logits)
            given = self.conditioning.given
            penalty = self.regularizer.penalty(Judged(
                r, f, real_logits, fake_logits, (real.x, real_view), (fake.x, fake_view), self.d_updates,
                given(self.discriminator, real.y), given(self.discriminator, fake.y)))
            aux, aux_stats = self.conditioning.d_class_terms(real_classes, real.y, fake_classes, fake.y,
                                                             self.loss.aux_weight)
            stats = {"d_loss": d_loss, **self.loss.estimates(real_logits, fake_logits),
                     **({} if penalty is None else {"d_penalty": penalty}), **aux_stats,
                     **self.loss.outputs(real_logits, fake_logits)}
            return total(d_loss, penalty, aux), stats

        self.update_discriminator(opt_d, objective, measure_grad)

    def g_step(self, opt_g, real: Batch, extra_reals: list[Batch] = (), measure_grad: bool = False) -> None:
        """One G update on fresh z. ``real``: the minibatch of D's last update (feature matching's target, the
        relativistic losses' reference); ``extra_reals``: the fresh minibatches parts asked for (unrolling's K)."""

        def objective():
            fake = self.fakes(real.x.shape[0])
            return self.generator_objective(Batch(self.d_input(fake.x), fake.y), real, extra_reals)

        self.update_generator(opt_g, objective, measure_grad)

    def generator_objective(self, fake: Batch, real: Batch, extra_reals: list[Batch]) -> tuple:
        """G's (loss, extra term, statistics) on ``fake`` (what D sees of G(z), with its labels): a part's own loss
        (feature matching), else the adversarial loss against D or against the critic a part puts in D's place
        (unrolling, on ``extra_reals``), plus AC-GAN's class term."""
        for part in self.tricks.with_hook("g_loss"):
            return part.g_loss(self, fake.x, real.x), None, {}
        critic = self.discriminator
        for part in self.tricks.with_hook("critic"):
            critic = part.critic(self, [b.x for b in extra_reals])
        logits, classes = self.conditioning.judge(critic, fake.x, fake.y)
        if self.loss.caps.g_needs_real:  # relativistic: G's loss compares with D's outputs on real data
            g_loss = self.loss.g_loss(logits, self.conditioning.judge(critic, self.d_input(real.x), real.y)[0])
        else:
            g_loss = self.loss.g_loss(logits)
        aux, stats = self.conditioning.g_class_terms(classes, fake.y, self.loss.aux_weight)
        return g_loss, aux, stats

    # ---------------------------------------------------------------- the two update frames
    def update_discriminator(self, opt_d, objective: Callable[[], tuple], measure_grad: bool = False) -> None:
        """The frame every D step shares (Algorithm 1, LAPGAN's levels, MIX+GAN's members): minimise ``objective()``
        over D plus the parts' terms (historical averaging), step, then the after-step hooks: the regularizer's
        (clipping), then the parts' (the historical average, ADA's p). ``objective()`` returns (loss, stats):
        what D minimises, and what is logged (or a callable giving it, read after the step)."""
        loss, stats = objective()
        loss = total(loss, *(part.d_term(self) for part in self.tricks.with_hook("d_term")))
        opt_d.zero_grad(set_to_none=True)
        self.runner.backward(self, loss, opt_d)
        if measure_grad:
            self.accumulate(self.runner.unscaled(self.d_grad_norms()))
        self.runner.step(opt_d)
        for d in self.clipped_discriminators():
            self.regularizer.after_d_step(d)
        for part in self.tricks.with_hook("after_d_step"):
            part.after_d_step(self)
        self.runner.counted_d_update(self)
        self.accumulate(stats() if callable(stats) else stats)

    def update_generator(self, opt_g, objective: Callable[[], tuple], measure_grad: bool = False) -> None:
        """The frame every G step shares: freeze D, minimise ``objective()`` over G plus the parts' terms, step,
        then the parts' after-step hooks (historical averaging, the EMA). ``objective()`` returns (g_loss, extra,
        stats): ``g_loss`` is logged as train/g_loss, ``extra`` (or None) is added to what G minimises. The
        schedule may run the iteration's D updates between G's backward and G's step (simultaneous updates)."""
        self.discriminator.requires_grad_(False)  # G's backward computes (and the ranks average) only G's gradients
        try:
            g_loss, extra, stats = objective()
            loss = total(g_loss, extra, *(part.g_term(self) for part in self.tricks.with_hook("g_term")))
            opt_g.zero_grad(set_to_none=True)
            self.runner.backward(self, loss, opt_g)
        finally:
            self.discriminator.requires_grad_(True)
        if measure_grad:
            self.accumulate(self.runner.unscaled({"grad_norm_g": grad_norm(self.generator)}))
            if hasattr(self.generator, "report"):  # small generators report their parameters (θ, ∂L/∂θ)
                self.accumulate({f"g/{k}": v for k, v in self.generator.report().items()})
        self.schedule.before_g_step(opt_g)
        self.runner.step(opt_g)
        for part in self.tricks.with_hook("after_g_step"):
            part.after_g_step(self)
        self.accumulate({"g_loss": g_loss, **stats})

    def d_grad_norms(self) -> dict[str, torch.Tensor]:
        """‖∇D‖ logged at each row (systems with parts add one per part)."""
        return {"grad_norm_d": grad_norm(self.discriminator)}

    def clipped_discriminators(self) -> list[nn.Module]:
        """The modules the regularizer's after-step hook acts on (weight clipping): D itself."""
        return [self.discriminator]

    # ---------------------------------------------------------------- what D sees
    def d_input(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees, real or fake, in both players' steps: x through every part's ``d_input`` (e.g. a fresh
        DiffAugment draw, then annealed instance noise)."""
        for part in self.tricks.with_hook("d_input"):
            x = part.d_input(self, x)
        return x

    def d_view(self, x: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """(what D sees of x, as ``d_input`` gives it; the map y ↦ what D would see of y under the same random
        draws): for what must meet the same draw, R1/R2's ∇ₓ D(T(x)) (gan_lab/regularizers/r1.py)."""
        maps = []
        for part in self.tricks.with_hook("d_input"):
            maps.append(part.d_draw(self, x))
            x = maps[-1](x)

        def view(y: torch.Tensor) -> torch.Tensor:
            for t in maps:
                y = t(y)
            return y

        return x, view

    def observe_d(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        """Show the parts D's outputs of a D update (ADA's overfitting heuristic)."""
        for part in self.tricks.with_hook("observe_d"):
            part.observe_d(self, real_logits, fake_logits)

    # ---------------------------------------------------------------- sampling
    @property
    def sampler(self) -> nn.Module:
        """The generator that draws samples: the EMA copy with ``tricks.ema`` on, else G."""
        return self.generator if self.generator_ema is None else self.generator_ema.module

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is not None:
            return torch.randn(n, self.z_dim, generator=generator).to(self.device)
        return torch.randn(n, self.z_dim, device=self.device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500,
                 to: torch.device | str = "cpu") -> torch.Tensor:
        """G(z) (G(z, labels) in a class-conditional run) in eval mode (batch norm uses its running statistics),
        in fp32, returned on ``to`` (the CPU; the measurement keeps them where G made them). With ``tricks.ema``
        on, the EMA generator draws."""
        generator = self.sampler
        chunks = z.split(batch_size)
        ys = self.conditioning.chunks(labels, len(chunks), batch_size, self.device)
        was_training = generator.training
        generator.eval()
        try:
            parts = [self.conditioning.generate(generator, chunk.to(self.device), y).float().to(to)
                     for chunk, y in zip(chunks, ys)]
        finally:
            generator.train(was_training)
        return torch.cat(parts)

    def final_pictures(self) -> dict[str, Any]:
        """Pictures of the trained system beyond its samples, written at the end of a run: {file stem: (H, W, 3)
        uint8 array}. LAPGAN draws its sampling chains."""
        return {}

    # ---------------------------------------------------------------- statistics
    def accumulate(self, stats: dict[str, torch.Tensor]) -> None:
        self.statistics.add(stats, self.device, recording=self.runner.capturing)

    def end_iteration(self, log_now: bool) -> None:
        if log_now:
            for part in self.tricks.with_hook("log_row"):
                self.accumulate(part.log_row(self))
            metrics, weights_ok = self.statistics.flush(self, self.clock.row(self))
            report(self, metrics)
            Statistics.check_finite(self, metrics, weights_ok)  # the divergence guard: once per row, never per step
        elif self.trainer.world_size == 1:
            self.statistics.single_process_stop()

    def check_finite(self) -> None:
        """Raise :class:`Diverged` if any weight is not finite (one device sync)."""
        Statistics.check_finite(self)

    # ---------------------------------------------------------------- Lightning's hooks
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Every iteration draws its z, penalty interpolants, noise and augmentations from a stream seeded by
        (seed, rank, iteration), as its data is (gan_lab/systems/clock.py)."""
        self.clock.start(self)
        watchdog.at_iteration(self.iteration + 1)

    def on_fit_start(self) -> None:
        self.statistics.clock = (time.perf_counter(), self.iteration)

    def on_train_start(self) -> None:
        self.clock.begin_session()
        self.runner.choose(self, self.trainer)
        if threading.current_thread() is threading.main_thread():  # after Lightning's own handler, which
            # runs a collective inside the signal handler (racy under DDP): ours only raises a flag
            signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self.statistics, "stop_signal", "SIGTERM"))
        if self.resume_state is not None:  # optimiser moments, step counts, learning rates; fp16's loss scale
            for opt, state in zip(self.optimizers(), self.resume_state["optimizer_states"]):
                opt.optimizer.load_state_dict(state)
            restore_precision(self.trainer.precision_plugin, self.resume_state["precision"])
            self.resume_state = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_lab"] = {"iteration": self.iteration, "d_updates": self.d_updates,
                                 "config": self.run_config, "history": list(self.history),
                                 "trained_seconds": round(self.clock.seconds(), 3), **self.statistics.pending()}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint`` (a dict from :func:`gan_lab.resume.read_checkpoint`): weights, EMA /
        historical averages, counters, the rows logged so far and the half-accumulated next row; the optimiser
        states are loaded once the trainer has built the optimisers (``on_train_start``)."""
        self.load_state_dict(checkpoint["state_dict"])
        state = checkpoint["gan_lab"]
        self.iteration, self.d_updates = int(state["iteration"]), int(state.get("d_updates", 0))
        self.history = list(state.get("history", []))
        self.clock.seconds_before = float(state.get("trained_seconds", 0.0))
        self.statistics.restore(state, self.device)
        self.resume_state = {"optimizer_states": checkpoint.get("optimizer_states", []),
                             "precision": {k: v for k, v in checkpoint.items() if k.endswith("Precision")}}


def restore_precision(plugin, saved: dict[str, Any]) -> None:
    """The precision plugin's state from a checkpoint (Lightning keeps it under the plugin's class name): fp16's
    loss scale and its growth tracker, so a resumed 16-mixed run goes on at the scale it had, not at 65,536."""
    state = saved.get(type(plugin).__qualname__)
    if state:
        plugin.load_state_dict(state)
