"""Salimans' improved techniques, instance noise, unrolling and EMA as one validated settings block.

``tricks.*`` in the config maps one-to-one onto :class:`Tricks`. Architectural tricks (minibatch
discrimination, virtual batch norm) change the networks at build time (:func:`apply_to_networks`);
the others act inside the training step (gan_lab/systems/gan.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gan_lab.data.base import DataSpec
from gan_lab.errors import ConfigError, check_choice, check_int, check_range
from gan_lab.losses.base import GANLoss
from gan_lab.regularizers.base import Regularizer
from gan_lab.tricks.diffaug import parse_policy


@dataclass
class Tricks:
    feature_matching: bool = False  # G minimises ‖E f(x) − E f(G(z))‖² on D's feature layer
    minibatch_discrimination: bool = False  # D sees minibatch similarity features (Salimans 2016)
    minibatch_kernels: int = 50  # B: number of kernels of T ∈ R^{A×B×C} (A = D's feature width)
    minibatch_kernel_dim: int = 5  # C: dimension of each kernel
    historical_averaging: float = 0.0  # weight w of w‖θ − mean of past θ‖², both players; 0 = off
    virtual_batchnorm: bool = False  # G's batch norms use a reference batch fixed at the start
    virtual_batchnorm_size: int = 64  # size of that reference batch
    instance_noise: float = 0.0  # σ of N(0, σ²) added to every D input at iteration 0; 0 = off
    instance_noise_schedule: str = "linear"  # linear: σ → 0 over the run; constant: σ throughout
    unroll_steps: int = 0  # K: G's step sees D advanced K optimiser steps (Metz 2017); 0 = off
    unroll_second_order: bool = True  # backprop through the K steps; false: first-order shortcut
    ema: float = 0.0  # decay of an EMA of G's weights used for sampling; 0 = off (e.g. 0.999)
    diffaug: str = ""  # DiffAugment policy on every D input, real and fake (Zhao 2020): "color,translation,cutout"

    def __post_init__(self):
        check_int("tricks.minibatch_kernels", self.minibatch_kernels, 1)
        check_int("tricks.minibatch_kernel_dim", self.minibatch_kernel_dim, 1)
        check_range("tricks.historical_averaging", self.historical_averaging, 0.0)
        check_int("tricks.virtual_batchnorm_size", self.virtual_batchnorm_size, 1)
        check_range("tricks.instance_noise", self.instance_noise, 0.0)
        check_choice("tricks.instance_noise_schedule", self.instance_noise_schedule, ("linear", "constant"))
        check_int("tricks.unroll_steps", self.unroll_steps, 0)
        check_range("tricks.ema", self.ema, 0.0, 1.0, high_open=True)
        self.diffaug = ",".join(parse_policy(self.diffaug))  # canonical form; a bad name is a ConfigError
        for key in ("feature_matching", "minibatch_discrimination", "virtual_batchnorm", "unroll_second_order"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"tricks.{key}", getattr(self, key), "true or false")

    def check_compatible(self, loss: GANLoss, regularizer: Regularizer, discriminator: nn.Module) -> None:
        """Refuse combinations that make no sense, naming both options."""
        per_sample = regularizer.needs_input_gradients
        if self.minibatch_discrimination and per_sample:
            raise ConfigError("tricks.minibatch_discrimination", True, f"false with regularizer={regularizer.name}",
                              "Minibatch features make D's output depend on the whole batch, so a "
                              "per-sample gradient penalty is meaningless.")
        if self.feature_matching and not hasattr(discriminator, "features"):
            raise ConfigError("tricks.feature_matching", True, "false with this model",
                              f"{type(discriminator).__name__} exposes no feature layer.")
        if self.feature_matching and self.unroll_steps:
            raise ConfigError("tricks.feature_matching", True, f"false with tricks.unroll_steps={self.unroll_steps}",
                              "Feature matching replaces the adversarial G loss that unrolling differentiates.")
        if self.unroll_steps and per_sample:
            raise ConfigError("tricks.unroll_steps", self.unroll_steps, f"0 with regularizer={regularizer.name}",
                              "The unrolled copy of D models its optimiser step, not a gradient penalty "
                              "(through K penalty steps G's gradient would need third derivatives).")


def apply_to_networks(tricks: Tricks, spec: DataSpec, generator: nn.Module, discriminator: nn.Module,
                      z_dim: int, seed: int) -> tuple[nn.Module, nn.Module]:
    if tricks.diffaug and not spec.is_image:
        raise ConfigError("tricks.diffaug", tricks.diffaug, '"" (off) with point data',
                          f"DiffAugment transforms images; dataset={spec.name} holds points of shape {spec.shape}.")
    from gan_lab.nets.minibatch import MinibatchDiscriminator
    from gan_lab.nets.vbn import VirtualBatchNormGenerator

    if tricks.minibatch_discrimination:
        discriminator = MinibatchDiscriminator(discriminator, spec, tricks.minibatch_kernels,
                                               tricks.minibatch_kernel_dim)
    if tricks.virtual_batchnorm:
        generator = VirtualBatchNormGenerator(generator, z_dim, tricks.virtual_batchnorm_size, seed)
    return generator, discriminator
