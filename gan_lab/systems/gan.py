"""Algorithm 1 (Goodfellow 2014; seed 002) with manual optimisation.

Per generator iteration: k D updates, each on a fresh real minibatch and fresh z, then one G
update on fresh z; separate optimisers (``train.simultaneous``: G's gradient is taken before D's updates and
applied after them, :meth:`GAN.use_simultaneous_updates`). The run's clock is ``iteration`` (generator iterations):
Lightning's ``global_step`` counts every optimiser step, k + 1 per iteration.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from gan_lab import watchdog
from gan_lab.distributed import Ranks
from gan_lab.losses.base import GANLoss
from gan_lab.regularizers.base import Regularizer
from gan_lab.reporting import report
from gan_lab.systems.graphs import StepGraphs, graph_blockers
from gan_lab.tricks import HOOKS, Tricks

log = logging.getLogger("gan_lab")
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
LR_DECAYS = ("none", "linear")  # optimizer.lr_decay (GAN.use_lr_decay)


def grad_norm(module: nn.Module) -> torch.Tensor:
    """‖∇θ‖₂ over all of ``module``'s parameters (stays on device: no sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


class Diverged(RuntimeError):
    """Training produced non-finite losses or weights; the run stops and keeps its last good checkpoint."""

    def __init__(self, iteration: int, reason: str):
        self.iteration, self.reason = iteration, reason
        super().__init__(f"diverged by iteration {iteration}: {reason}")


class StopRequested(RuntimeError):
    """SIGTERM (a scheduler's time limit or preemption, ``kill``): every rank stops at the same iteration,
    after a checkpoint of it."""


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


def _capturable(factory: OptimizerFactory, params) -> torch.optim.Optimizer:
    """``factory(params)`` with ``capturable=True`` where the optimiser has that option (Adam, AdamW, RMSprop)."""
    params = list(params)
    try:
        return factory(params, capturable=True)
    except TypeError:  # no such option (SGD keeps no step count)
        return factory(params)


class GAN(L.LightningModule):
    passes_real_to_g = True  # generator_objective gives g_loss D's outputs on real data when it asks
    honours = frozenset(HOOKS)  # the trick hooks its step runs (gan_lab/tricks/base.py): all of them
    one_critic = True  # D is one network judging each sample once per update (stateful regularizers need it)
    step_summary = ""  # why a system runs fewer hooks, for refusals
    refuses: dict[str, str] = {}  # tricks (by name) the step runs but cannot use, with the reason
    capturable_step = True  # train.cuda_graphs may capture its updates (gan_lab/systems/graphs.py)
    conditions = True  # model.conditional: its steps pass the labels (gan_lab/nets/conditional.py)
    acgan_refused = ""  # why its step cannot train AC-GAN's class head, if it cannot

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: GANLoss,
                 regularizer: Regularizer, optimizer_d: OptimizerFactory, optimizer_g: OptimizerFactory,
                 *, k: int = 1, z_dim: int = 100, log_every: int = 25, seed: int = 0,
                 iterations: int = 1, tricks: Tricks | None = None, run_config: dict | None = None):
        """``k``: D updates per G update. ``log_every``: generator iterations between log rows;
        statistics are averaged over the interval on device and synced once per row.
        ``iterations``: the run's length (instance noise anneals over it). ``tricks``: the parts that
        act inside the step, attached here (their state becomes part of the checkpoint)."""
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = regularizer.wrap(discriminator)
        self.loss, self.regularizer = loss, regularizer
        self._optimizer_d, self._optimizer_g = optimizer_d, optimizer_g
        self.k, self.z_dim, self.log_every, self.seed = k, z_dim, log_every, seed
        self.iterations, self.run_config = iterations, run_config
        self.tricks = tricks or Tricks()
        self.generator_ema: nn.Module | None = None  # set by tricks.ema
        self.conditional, self.n_classes = "none", 0  # set by use_conditioning
        regularizer.attach(self)
        for part in self.tricks.with_hook("attach"):
            part.attach(self)
        self.lr_decay = "none"  # set by use_lr_decay
        self.simultaneous = False  # set by use_simultaneous_updates
        self.pending_d_updates: Callable[[], None] | None = None  # this iteration's, run inside G's (simultaneous)
        self.channels_last = False  # set by use_speed_options
        self.cuda_graphs = False  # set by use_speed_options; the runner is chosen at train start
        self.steps: StepGraphs | None = None  # None: every update eager
        self.capturing = False  # inside a captured (or stand-in) update: host effects are recorded, not applied
        self.captured_names: list[str] = []
        self.captured_d_updates = 0
        self._lean = False  # raw backward/step (no Lightning hooks per step) where that is numerically the same
        self.resume_state: dict | None = None  # optimiser states to load at train start (resume)
        self.iteration = 0  # generator iterations completed
        self.d_updates = 0
        self.history: list[dict[str, float]] = []  # every logged row (rank 0 writes it out)
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._clock = (time.perf_counter(), 0)
        self.stop_signal: str | None = None  # set by the SIGTERM handler
        self.stop_now = False  # every rank agreed to stop after this iteration (see _flush)

    # ---------------------------------------------------------------- Algorithm 1
    def configure_optimizers(self):
        if self.cuda_graphs is True:  # the step counts stay on the device so a replayed step advances them
            return [_capturable(self._optimizer_d, self.discriminator.parameters()),
                    _capturable(self._optimizer_g, self.generator.parameters())]
        return [self._optimizer_d(self.discriminator.parameters()),
                self._optimizer_g(self.generator.parameters())]

    @property
    def batches_per_iteration(self) -> int:
        """Real minibatches one iteration consumes: k for D, more for tricks that ask (unrolling: K)."""
        return self.k + self.tricks.extra_batches

    def use_speed_options(self, channels_last: bool = False, compile_generator: bool = False,
                          cuda_graphs: bool | str = False) -> None:
        """``channels_last``: NHWC memory layout for both networks and every real batch (faster convs on
        recent CPUs and tensor cores). ``compile_generator``: ``torch.compile`` of G's forward, in place,
        so parameter names and checkpoints are unchanged (CPU; D is never compiled: the gradient penalty's
        double backward fails through a compiled D, docs/design.md, "torch.compile"). ``cuda_graphs``:
        capture each update as a CUDA graph (gan_lab/systems/graphs.py); ``"stand_in"`` runs the same
        capture-ready step without capturing."""
        if channels_last:
            self.channels_last = True
            self.to(memory_format=torch.channels_last)
        if compile_generator:
            self.generator.compile()
        self.cuda_graphs = cuda_graphs

    def use_lr_decay(self, kind: str) -> None:
        """``optimizer.lr_decay``: ``none``, or ``linear``: both players' learning rates fall linearly from the
        configured value at iteration 0 towards 0 at ``train.iterations``, lr_t = lr·(1 − t/T), set before
        every generator iteration t (its k D steps and its G step), as SN-GAN's and WGAN-GP's reference codes do.
        A pure function of the iteration: a resumed run continues the schedule exactly."""
        self.lr_decay = kind  # one of LR_DECAYS (checked with the settings, gan_lab/train.py)

    def use_simultaneous_updates(self, on: bool) -> None:
        """``train.simultaneous``: both players' gradients are taken at the same state (θ_D, θ_G) and both are
        applied, as simultaneous gradient descent and the Unrolled GAN reference code do (Metz et al. 2017;
        one ``sess.run`` of both train ops), instead of Algorithm 1's alternation, where G's gradient is taken
        against the D that has just been updated. G's gradient is computed first and held aside while D takes
        its k updates against the unchanged G (fresh real minibatches and z, as always), then G steps with it.
        With an unrolled copy of D (``tricks.unroll``) the copy starts from the same, not-yet-updated D."""
        self.simultaneous = on

    def _schedule_lr(self) -> None:
        if self.lr_decay == "none":
            return
        factor = max(0.0, 1.0 - self.iteration / self.iterations)
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                # the configured rate, kept in the group (so in the checkpoint) the first time it is scaled
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor

    def use_conditioning(self, mode: str, n_classes: int, prior: torch.Tensor) -> None:
        """Class-conditional training (``model.conditional``): minibatches are (x, y); fake labels are drawn
        from ``prior`` (K,) class probabilities."""
        self.conditional, self.n_classes = mode, n_classes
        self.register_buffer("label_cdf", torch.cumsum(prior.double() / prior.sum(), 0).float())

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """n fake labels from the label prior (None when unconditional: nothing is drawn), by inverting its
        CDF on uniforms from the iteration's stream (or ``generator``, on the CPU)."""
        if self.conditional == "none":
            return None
        u = torch.rand(n, generator=generator) if generator is not None else torch.rand(n, device=self.device)
        return torch.searchsorted(self.label_cdf.to(u.device), u, right=True).clamp_max(self.n_classes - 1)

    def eval_labels(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """The labels samples for pictures and metrics are drawn for: every class in turn (0, 1, …, K−1, 0, …)
        under a uniform prior, so each class gets n/K; else a draw from the prior."""
        if self.conditional == "none":
            return None
        probs = torch.diff(self.label_cdf.cpu(), prepend=torch.zeros(1))
        if torch.allclose(probs, torch.full_like(probs, 1.0 / self.n_classes)):
            return torch.arange(n) % self.n_classes
        return self.sample_labels(n, generator)

    @staticmethod
    def unpack(real) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images, labels) of a minibatch; labels None in an unconditional run."""
        return (real[0], real[1]) if isinstance(real, (tuple, list)) else (real, None)

    def g_forward(self, z: torch.Tensor, y: torch.Tensor | None = None, generator: nn.Module | None = None):
        g = self.generator if generator is None else generator
        return g(z) if y is None else g(z, y)

    def judge(self, x: torch.Tensor, y: torch.Tensor | None = None,
              critic: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(D's logits, AC-GAN's class logits or None) of what D sees, x, given its labels y; ``critic``: a D in
        D's place (a MIX+GAN member)."""
        critic = self.discriminator if critic is None else critic
        return (critic(x), None) if y is None else critic.judge(x, y)

    def aux_loss(self, class_logits: torch.Tensor | None, y: torch.Tensor | None) -> torch.Tensor | None:
        """AC-GAN's class term, ``loss.aux_weight`` (null: 1) · CE(class logits, y) (None for the other modes)."""
        if class_logits is None:
            return None
        weight = 1.0 if self.loss.aux_weight is None else self.loss.aux_weight
        return weight * F.cross_entropy(class_logits.float(), y)

    def training_step(self, batch, batch_idx: int) -> None:
        opt_d, opt_g = self.optimizers()
        batch, labels = self.unpack(batch)
        if self.channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        log_now = (self.iteration + 1) % self.log_every == 0
        reals = batch.chunk(self.batches_per_iteration)  # (n·B, *shape) -> n fresh real minibatches
        if labels is not None:  # each minibatch with its labels
            reals = list(zip(reals, labels.chunk(self.batches_per_iteration)))
        extra = list(reals[self.k:])

        def d_updates() -> None:
            for j, real in enumerate(reals[: self.k]):
                measure = log_now and j == self.k - 1
                self.update(("d", measure), lambda x, m=measure: self.d_step(opt_d, x, measure_grad=m), real)

        if self.simultaneous:  # G's gradient is taken first and applied after D's updates (update_generator)
            self.pending_d_updates = d_updates
        else:
            d_updates()
        try:
            self.update(("g", log_now), lambda x: self.g_step(opt_g, x, extra, measure_grad=log_now),
                        reals[self.k - 1])
        finally:
            pending, self.pending_d_updates = self.pending_d_updates, None
        if pending is not None:
            raise RuntimeError(f"{type(self).__name__}.g_step did not go through update_generator: D's updates "
                               "of this iteration never ran (train.simultaneous)")
        self.iteration += 1
        if log_now:
            for part in self.tricks.with_hook("log_row"):
                self._accumulate(part.log_row(self))
            self._flush()
        elif self.stop_signal and self.trainer.world_size == 1:
            self.stop_now = True  # one process needs no agreement: stop after this iteration

    def d_input(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees, real or fake, in both players' steps: x through every part's ``d_input`` (e.g. a
        fresh DiffAugment draw, then annealed instance noise)."""
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

    def d_step(self, opt_d, real: torch.Tensor, measure_grad: bool = False) -> None:
        def objective():
            x, y_real = self.unpack(real)
            with torch.no_grad():
                z = self.sample_z(x.shape[0])
                y_fake = self.sample_labels(x.shape[0])
                fake = self.g_forward(z, y_fake)
            (r, real_view), (f, fake_view) = self.d_view(x), self.d_view(fake)
            (real_logits, real_classes), (fake_logits, fake_classes) = self.judge(r, y_real), self.judge(f, y_fake)
            self.observe_d(real_logits, fake_logits)
            d_loss = self.loss.d_loss(real_logits, fake_logits)
            labels = None if y_real is None else (y_real, y_fake)
            penalty = self.regularizer.penalty(self.discriminator, r, f, self.d_updates, real_logits, fake_logits,
                                               ((x, real_view), (fake, fake_view)), labels=labels)
            stats = {"d_loss": d_loss, **self.loss.estimates(real_logits, fake_logits)}
            total = d_loss
            if penalty is not None:
                stats["d_penalty"] = penalty
                total = total + penalty
            aux = self.aux_loss(real_classes, y_real)
            if aux is not None:  # AC-GAN: D classifies real and generated images (Odena 2017, L_C)
                aux = aux + self.aux_loss(fake_classes, y_fake)
                stats["d_aux"] = aux
                stats["d_class_accuracy_real"] = (real_classes.argmax(1) == y_real).float().mean()
                total = total + aux
            as_output = torch.sigmoid if self.loss.sigmoid_output else (lambda v: v)
            stats["d_real"], stats["d_fake"] = as_output(real_logits).mean(), as_output(fake_logits).mean()
            return total, stats

        self.update_discriminator(opt_d, objective, measure_grad)

    def update(self, key: tuple, fn: Callable[[torch.Tensor], None], real: torch.Tensor) -> None:
        """One update ``fn(real)``: eager, or through the CUDA graphs (``train.cuda_graphs``)."""
        if self.steps is None:
            fn(real)
        else:
            self.steps.run(self, key, fn, real)

    def apply_host_effects(self, names: list[str], d_updates: int) -> None:
        """What a replayed update does on the host: count its statistics and its D updates."""
        for name in names:
            self._counts[name] = self._counts.get(name, 0) + 1
        self.d_updates += d_updates

    def _backward(self, loss: torch.Tensor) -> None:
        if self._lean or self.capturing:
            loss.backward()
        else:
            self.manual_backward(loss)

    def _step(self, optimizer) -> None:
        if self._lean or self.capturing:
            optimizer.optimizer.step()
        else:
            optimizer.step()

    def update_discriminator(self, opt_d, objective: Callable[[], tuple], measure_grad: bool = False) -> None:
        """The frame every D step shares (Algorithm 1, LAPGAN's levels, MIX+GAN's members): minimise
        ``objective()`` over D, plus the parts' terms (historical averaging), step, then the after-step
        hooks: the regularizer's (clipping), then the parts' (the historical average, ADA's p).

        ``objective()`` returns (loss, stats): ``loss`` is what D minimises (its loss and penalties),
        ``stats`` are logged, or a callable returning them that is read after the step.
        """
        total, stats = objective()
        for part in self.tricks.with_hook("d_term"):
            total = total + part.d_term(self)
        opt_d.zero_grad(set_to_none=True)
        self._backward(total)
        if measure_grad:
            self._accumulate(self.d_grad_norms())
        self._step(opt_d)
        for d in self.clipped_discriminators():
            self.regularizer.after_d_step(d)
        for part in self.tricks.with_hook("after_d_step"):
            part.after_d_step(self)
        if self.capturing:
            self.captured_d_updates += 1
        else:
            self.d_updates += 1
        self._accumulate(stats() if callable(stats) else stats)

    def d_grad_norms(self) -> dict[str, torch.Tensor]:
        """‖∇D‖ logged at each row (systems with parts add one per part)."""
        return {"grad_norm_d": grad_norm(self.discriminator)}

    def clipped_discriminators(self) -> list[nn.Module]:
        """The modules the regularizer's after-step hook acts on (weight clipping): D itself."""
        return [self.discriminator]

    def g_step(self, opt_g, real: torch.Tensor, extra_reals: list[torch.Tensor] | None = None,
               measure_grad: bool = False) -> None:
        """One G update on fresh z. ``real``: the minibatch of D's last update (feature matching's target);
        ``extra_reals``: the fresh minibatches parts asked for (the unrolled copy of D's K)."""

        def objective():
            x, y_real = self.unpack(real)
            z = self.sample_z(x.shape[0])
            y_fake = self.sample_labels(x.shape[0])
            fake = self.d_input(self.g_forward(z, y_fake))
            if y_fake is None:
                return self.generator_objective(fake, x, extra_reals or []), None, {}
            return self.conditional_objective(fake, y_fake, x, y_real)

        self.update_generator(opt_g, objective, measure_grad)

    def update_generator(self, opt_g, objective: Callable[[], tuple], measure_grad: bool = False) -> None:
        """The frame every G step shares: freeze D, minimise ``objective()`` over G plus the parts'
        terms, step, then the parts' after-step hooks (historical averaging, the EMA). With
        ``train.simultaneous`` the iteration's D updates (``self.pending_d_updates``) run between G's
        backward and G's step, with G's gradient held aside.

        ``objective()`` returns (g_loss, extra, stats): ``g_loss`` is logged as train/g_loss, ``extra``
        (or None) is added to what G minimises, ``stats`` are logged as well.
        """
        # D is frozen so G's backward computes (and DDP reduces) only G's gradients.
        self.discriminator.requires_grad_(False)
        try:
            g_loss, extra, stats = objective()
            total = g_loss if extra is None else g_loss + extra
            for part in self.tricks.with_hook("g_term"):
                total = total + part.g_term(self)
            opt_g.zero_grad(set_to_none=True)
            self._backward(total)
        finally:
            self.discriminator.requires_grad_(True)
        if measure_grad:
            self._accumulate({"grad_norm_g": grad_norm(self.generator)})
            if hasattr(self.generator, "report"):  # small generators report their parameters (θ, ∂L/∂θ)
                self._accumulate({f"g/{k}": v for k, v in self.generator.report().items()})
        if self.pending_d_updates is not None:  # train.simultaneous: D's updates run while G's gradient waits
            d_updates, self.pending_d_updates = self.pending_d_updates, None
            params = [p for group in opt_g.param_groups for p in group["params"]]
            held = [p.grad for p in params]
            for p in params:  # held aside: a D update leaving a gradient on G cannot change G's step
                p.grad = None
            d_updates()
            for p, grad in zip(params, held):
                p.grad = grad
        self._step(opt_g)
        for part in self.tricks.with_hook("after_g_step"):
            part.after_g_step(self)
        self._accumulate({"g_loss": g_loss, **stats})

    def generator_objective(self, fake: torch.Tensor, real: torch.Tensor,
                            extra_reals: list[torch.Tensor]) -> torch.Tensor:
        """G's loss on ``fake`` (what D sees of G(z)): a part's own (feature matching), else the adversarial
        loss against D or against the critic a part puts in D's place (unrolling, on ``extra_reals``)."""
        for part in self.tricks.with_hook("g_loss"):
            return part.g_loss(self, fake, real)
        critic = self.discriminator
        for part in self.tricks.with_hook("critic"):
            critic = part.critic(self, extra_reals)
        if self.loss.g_needs_real:  # relativistic: G's loss compares with D's outputs on real data
            return self.loss.g_loss(critic(fake), critic(self.d_input(real)))
        return self.loss.g_loss(critic(fake))

    def conditional_objective(self, fake: torch.Tensor, y_fake: torch.Tensor, real: torch.Tensor,
                              y_real: torch.Tensor) -> tuple:
        """G's (loss, extra, stats) on ``fake`` drawn for labels ``y_fake``: the adversarial loss of D(fake, y_fake)
        (relativistic losses also read D(real, y_real)), plus AC-GAN's class cross-entropy on the fakes."""
        logits, classes = self.judge(fake, y_fake)
        if self.loss.g_needs_real:
            g_loss = self.loss.g_loss(logits, self.judge(self.d_input(real), y_real)[0])
        else:
            g_loss = self.loss.g_loss(logits)
        aux = self.aux_loss(classes, y_fake)
        return g_loss, aux, ({} if aux is None else {"g_aux": aux})

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
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
        """G(z) (G(z, labels) in a class-conditional run) in eval mode (batch norm uses its running statistics),
        returned on the CPU in fp32. With ``tricks.ema`` on, the EMA generator draws."""
        generator = self.sampler
        if (labels is None) != (self.conditional == "none"):
            raise ValueError("labels are needed by, and only by, a class-conditional generator")
        was_training = generator.training
        generator.eval()
        chunks = z.split(batch_size)
        ys = [None] * len(chunks) if labels is None else [y.to(self.device) for y in labels.split(batch_size)]
        try:
            parts = [self.g_forward(chunk.to(self.device), y, generator).float().cpu() for chunk, y in zip(chunks, ys)]
        finally:
            generator.train(was_training)
        return torch.cat(parts)

    # ---------------------------------------------------------------- statistics
    def _accumulate(self, stats: dict[str, torch.Tensor]) -> None:
        """Add each statistic into its device buffer, in place (the buffers a captured update writes into)."""
        for name, value in stats.items():
            value = value.detach().float()
            if self.capturing:
                if name not in self._sums:
                    raise RuntimeError(f"train/{name} first appeared inside a captured update")
                self._sums[name].add_(value)
                self.captured_names.append(name)
                continue
            if name in self._sums:
                self._sums[name].add_(value)
            else:
                self._sums[name] = value.clone()
            self._counts[name] = self._counts.get(name, 0) + 1

    def _flush(self) -> None:
        names = sorted(n for n in self._sums if self._counts.get(n))
        stop = torch.tensor(1.0 if self.stop_signal else 0.0, device=self.device)
        row = [self._sums[n] / self._counts[n] for n in names] + [self._weights_finite().float(), stop]
        # Under DDP the row is averaged over ranks (the statistics of the global batch), and a NaN, a
        # non-finite weight or a SIGTERM on any rank reaches every rank, so all of them stop at the same row.
        row = Ranks.current().mean_row(torch.stack(row))
        *values, weights_ok, stop = row.tolist()  # one sync: the row, the guard's flag, the stop flag
        for buffer in self._sums.values():
            buffer.zero_()  # kept: a captured update holds them
        self._counts.clear()
        now, last_iteration = time.perf_counter(), self._clock[1]
        rate = (self.iteration - last_iteration) / max(now - self._clock[0], 1e-9)
        self._clock = (now, self.iteration)
        metrics = {f"train/{n}": v for n, v in zip(names, values)}
        metrics["perf/iterations_per_s"] = rate
        if self.lr_decay != "none":  # the schedule, as the row's last iteration ran it
            metrics["train/lr_d"], metrics["train/lr_g"] = (o.param_groups[0]["lr"] for o in self.trainer.optimizers)
        report(self, metrics)
        self.check_finite(metrics, weights_ok == 1.0)  # the divergence guard: once per logged row, never per step
        self.stop_now = stop > 0

    def _weights_finite(self) -> torch.Tensor:
        """Whether every weight is finite, as a 0-dim tensor on the device (no sync)."""
        return torch.stack([torch.isfinite(p).all() for p in self.parameters()]).all()

    def check_finite(self, stats: dict[str, float] | None = None, weights_ok: bool | None = None) -> None:
        """Raise :class:`Diverged` if a logged statistic or any weight is not finite. ``weights_ok``: the
        weights' flag when the caller already has it, else it is read here (one device sync)."""
        bad = [k for k, v in (stats or {}).items() if not math.isfinite(v)]
        if bad:
            raise Diverged(self.iteration, f"non-finite {', '.join(f'{k}={stats[k]}' for k in bad)}")
        if not (bool(self._weights_finite()) if weights_ok is None else weights_ok):
            names = [n for n, p in self.named_parameters() if not bool(torch.isfinite(p).all())]
            more = " …" if len(names) > 3 else ""
            raise Diverged(self.iteration, f"non-finite weights ({', '.join(names[:3])}{more})")

    # ---------------------------------------------------------------- randomness, checkpoints, resume
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Every iteration draws its z, penalty interpolants, noise and augmentations from a stream
        seeded by (seed, rank, iteration), as its data is: a run resumed at any iteration, on any
        machine state, continues exactly as the uninterrupted run."""
        seed = step_seed(self.seed, self.global_rank, self.iteration)
        # The generators this run draws from: the CPU's, and its own GPU's. (torch.manual_seed would also
        # queue a seed for every lazily initialised backend, formatting a stack trace each time: 1.3 ms per
        # iteration on a CPU run.)
        torch.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)
        self._schedule_lr()
        watchdog.at_iteration(self.iteration + 1)

    def on_fit_start(self) -> None:
        self._clock = (time.perf_counter(), self.iteration)

    def on_train_start(self) -> None:
        self._choose_step_path()
        if threading.current_thread() is threading.main_thread():  # after Lightning's own handler, which
            # runs a collective inside the signal handler (racy under DDP): ours only raises a flag
            signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "stop_signal", "SIGTERM"))
        if self.resume_state is not None:  # optimiser moments, step counts, learning rates
            for opt, state in zip(self.optimizers(), self.resume_state["optimizer_states"]):
                opt.optimizer.load_state_dict(state)
            self.resume_state = None

    def _choose_step_path(self) -> None:
        """Lean eager (raw ``backward``/``step``, no Lightning hook per step) when that is numerically
        Lightning's path: one process, no loss scaling, no callback listening to those hooks. CUDA graphs
        when asked and nothing in the run prevents them, else eager with one line saying why."""
        trainer = self.trainer
        hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
        listened = any(getattr(type(cb), h) is not getattr(L.Callback, h) for cb in trainer.callbacks for h in hooks)
        self._lean = (trainer.world_size == 1 and getattr(trainer.precision_plugin, "scaler", None) is None
                      and not listened)
        self.steps = None
        if not self.cuda_graphs:
            return
        blockers = graph_blockers(self)
        if blockers:
            log.warning("gan_lab: train.cuda_graphs: this run's step stays eager: %s", "; ".join(blockers))
            return
        self.steps = StepGraphs(stand_in=self.cuda_graphs == "stand_in")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_lab"] = {"iteration": self.iteration, "d_updates": self.d_updates,
                                 "config": self.run_config, "history": list(self.history),
                                 "pending_sums": {k: v.detach().cpu() for k, v in self._sums.items()
                                                  if self._counts.get(k)},
                                 "pending_counts": dict(self._counts)}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from ``checkpoint`` (a dict from :func:`gan_lab.resume.read_checkpoint`): weights,
        EMA / historical averages, counters, the rows logged so far and the half-accumulated next row;
        the optimiser states are loaded once the trainer has built the optimisers (``on_train_start``)."""
        self.load_state_dict(checkpoint["state_dict"])
        state = checkpoint["gan_lab"]
        self.iteration, self.d_updates = int(state["iteration"]), int(state.get("d_updates", 0))
        self.history = list(state.get("history", []))
        self._sums = {k: v.to(self.device) for k, v in state.get("pending_sums", {}).items()}
        self._counts = dict(state.get("pending_counts", {}))
        self.resume_state = {"optimizer_states": checkpoint.get("optimizer_states", [])}
