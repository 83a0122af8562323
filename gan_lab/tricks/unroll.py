"""Unrolled GAN (Metz 2017; LAMBDA lecture notes, docs/references.md): G's loss is taken against D advanced
K optimiser steps.

The copy is functional: D's parameters as a dict of tensors, updated by a differentiable copy of
D's own optimiser (its hyper-parameters and current moments), so with ``second_order`` the G
gradient flows through all K updates (∂θ_D^K/∂θ_G included). ``second_order=False`` is the
first-order shortcut: the unrolled weights are constants and only G(z) → D_K carries gradient.
The real D and its optimiser state are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import torch
from torch import nn
from torch.func import functional_call

from gan_lab.capabilities import TrickCaps
from gan_lab.checks import at_least
from gan_lab.tricks.base import Trick

Params = dict[str, torch.Tensor]


def _adam(group, p, g, state, t):
    b1, b2 = group["betas"]
    m = state.get("exp_avg", torch.zeros_like(p)) * b1 + (1 - b1) * g
    v = state.get("exp_avg_sq", torch.zeros_like(p)) * b2 + (1 - b2) * g * g
    step = float(state.get("step", 0)) + t
    m_hat, v_hat = m / (1 - b1**step), v / (1 - b2**step)
    # clamp keeps d√v/dv finite where v = 0 (a parameter that never had a gradient)
    return p - group["lr"] * m_hat / (v_hat.clamp_min(1e-30).sqrt() + group["eps"]), {
        "exp_avg": m, "exp_avg_sq": v, "step": state.get("step", 0)}


def _rmsprop(group, p, g, state, t):
    a = group["alpha"]
    v = state.get("square_avg", torch.zeros_like(p)) * a + (1 - a) * g * g
    return p - group["lr"] * g / (v.clamp_min(1e-30).sqrt() + group["eps"]), {"square_avg": v}


def _sgd(group, p, g, state, t):
    mu = group["momentum"]
    if mu:
        buf = state.get("momentum_buffer")
        buf = g if buf is None else mu * buf + (1 - group["dampening"]) * g
        return p - group["lr"] * buf, {"momentum_buffer": buf}
    return p - group["lr"] * g, {}


_UPDATES = {torch.optim.Adam: _adam, torch.optim.RMSprop: _rmsprop, torch.optim.SGD: _sgd}
# The settings each update above reads. Any other one (weight decay, Nesterov, RMSprop's momentum and centring,
# AMSGrad, maximize, …) it would drop without a word, so it must be off (0 or false).
_MODELLED = {torch.optim.Adam: ("lr", "betas", "eps"), torch.optim.RMSprop: ("lr", "alpha", "eps"),
             torch.optim.SGD: ("lr", "momentum", "dampening")}
# the same step, computed otherwise; and ``initial_lr``, which earlier versions' optimizer.lr_decay kept in the groups
# (a run resumed from their checkpoints still holds it; the copy reads the scheduled ``lr`` of the moment)
_HOW_IT_RUNS = ("params", "foreach", "fused", "capturable", "differentiable", "initial_lr")
MODELLED = tuple(_UPDATES)  # the optimisers the unrolled copy can step with


def unmodelled(optimizer: torch.optim.Optimizer) -> dict:
    """``{setting: value}`` of ``optimizer``'s settings that the unrolled copy does not model and that are on."""
    reads = _MODELLED[type(optimizer)] + _HOW_IT_RUNS
    return {k: v for k, v in optimizer.param_groups[0].items() if k not in reads and v}


def models(optimizer: torch.optim.Optimizer) -> str:
    """What the unrolled copy of ``optimizer`` models, in words."""
    return ", ".join(_MODELLED[type(optimizer)])


def functional_optimizer(optimizer: torch.optim.Optimizer, named: dict[str, nn.Parameter]):
    """A differentiable ``step(params, grads, t) -> params`` mirroring ``optimizer`` from its state."""
    update = _UPDATES.get(type(optimizer))
    if update is None:
        raise TypeError(f"unrolling supports Adam, RMSprop and SGD, not {type(optimizer).__name__}")
    if unmodelled(optimizer):
        raise TypeError(f"unrolling does not model {unmodelled(optimizer)}")
    group = optimizer.param_groups[0]
    states = {n: {k: (v.detach() if torch.is_tensor(v) else v) for k, v in optimizer.state.get(p, {}).items()}
              for n, p in named.items()}

    def step(params: Params, grads: dict[str, torch.Tensor], t: int) -> Params:
        out = {}
        for n, p in params.items():
            out[n], moments = update(group, p, grads[n], states[n], t)
            states[n] = {**states[n], **moments}
        return out

    return step


def unrolled_critic(discriminator: nn.Module, optimizer: torch.optim.Optimizer,
                    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    generator: nn.Module, reals: list[torch.Tensor], zs: list[torch.Tensor],
                    second_order: bool = True, clip_value: float | None = None,
                    d_input: Callable[[torch.Tensor], torch.Tensor] = lambda x: x):
    """D after len(reals) unrolled steps, as a function x -> logits (N,).

    Each step uses its own real minibatch and z. Buffers (batch-norm statistics, spectral-norm
    vectors) are cloned, so the real D's state is unchanged.
    """
    named = dict(discriminator.named_parameters())
    params: Params = {n: p.detach().requires_grad_(True) for n, p in named.items()}
    buffers = {n: b.clone() for n, b in discriminator.named_buffers()}
    step = functional_optimizer(optimizer, named)

    def call(ps: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(discriminator, (ps, buffers), (x,))

    for t, (real, z) in enumerate(zip(reals, zs), start=1):
        fake = generator(z)
        if not second_order:
            fake = fake.detach()
        loss = d_loss(call(params, d_input(real)), call(params, d_input(fake)))
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=second_order, allow_unused=True)
        grads = {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(params, grads)}
        params = step(params, grads, t)
        if clip_value is not None:
            params = {n: p.clamp(-clip_value, clip_value) for n, p in params.items()}
        if not second_order:
            params = {n: p.detach().requires_grad_(True) for n, p in params.items()}

    final = {n: p if second_order else p.detach() for n, p in params.items()}
    return lambda x: call(final, x)


class Unroll(Trick):
    """G's loss against D advanced ``unroll_steps`` = K optimiser steps on K extra real minibatches."""

    name = "unroll"
    unroll_steps: Annotated[int, at_least(0), "K: G's loss is taken against a functional copy of D advanced K steps "
                                              "of D's own optimiser on fresh minibatches"] = 0
    unroll_second_order: Annotated[bool, "backpropagate through the K steps (false: the first-order "
                                         "shortcut)"] = True

    def canonicalise(self) -> None:
        self.extra_batches = self.unroll_steps

    @property
    def caps(self) -> TrickCaps:
        return TrickCaps(capture_blocker="the unrolled copy of D is rebuilt from the optimiser's state on the host "
                                         "each step")

    def critic(self, system, reals: list[torch.Tensor]):
        opt_d = system.optimizers()[0].optimizer
        clip = getattr(system.regularizer, "clip_value", None)  # weight clipping acts inside the unrolled steps too
        zs = [system.sample_z(r.shape[0]) for r in reals]
        return unrolled_critic(system.discriminator, opt_d, system.loss.d_loss, system.generator, reals, zs,
                               second_order=self.unroll_second_order, clip_value=clip, d_input=system.d_input)
