"""From a composed config to the parts of a run: every setting checked against its declaration
(gan_lab/settings.py), every combination against the rulebook (gan_lab/rules.py), then the parts built — the
data, the loss, the regularizer, the tricks, the networks — and the system that trains them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_lab import checks, rulebook, rules, settings  # noqa: F401  (rulebook: registers every rule)
from gan_lab.data import Source
from gan_lab.distributed import processes
from gan_lab.errors import ConfigError
from gan_lab.losses.base import GANLoss
from gan_lab.nets import fits_of, native_conditioning_of
from gan_lab.nets.conditional import build_conditional
from gan_lab.nets.mixture import DiscriminatorMixture, GeneratorMixture
from gan_lab.regularizers.base import Regularizer
from gan_lab.regularizers.composite import build_regularizer
from gan_lab.schedules import Schedules, schedules_of
from gan_lab.systems import GAN
from gan_lab.systems.conditioning import conditioning
from gan_lab.systems.mixture import MixtureGAN
from gan_lab.systems.runner import Runner
from gan_lab.systems.schedule import schedule
from gan_lab.tricks import Tricks
from gan_lab.tricks import annotations as trick_annotations

MODEL_KEYS = {"system", "conditional", "label_prior"}  # model.* keys the lab reads; the rest go to the builder


def build(node: DictConfig, **kwargs) -> Any:
    """Instantiate a config node into plain Python objects; a ConfigError raised inside comes out as is."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        while cause is not None and not isinstance(cause, ConfigError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


# ---------------------------------------------------------------- every setting, checked once

def check_settings(cfg: DictConfig) -> settings.Settings:
    """Every key of the config against its declaration: the plain sections, the tricks, and each node naming a class
    or builder against that signature. Returns the typed sections."""
    typed = settings.check_sections(cfg)
    for key in cfg.get("tricks") or {}:
        kinds = trick_annotations()
        if key not in kinds:
            raise ConfigError(f"tricks.{key}", cfg.tricks[key], "one of the keys " + ", ".join(sorted(kinds)))
        checks.check_value(f"tricks.{key}", checks.plain(cfg.tricks[key]), kinds[key])
    model = cfg.model
    checks.check_target_node("model", model, get_method(model._target_), skip=MODEL_KEYS, supplied={"spec"})
    if "system" in model:
        checks.check_target_node("model.system", model.system, get_class(model.system._target_),
                                   supplied=set(checks.signature_hints(GAN)))
    checks.check_target_node("loss", cfg.loss, get_class(cfg.loss._target_))
    checks.check_target_node("dataset", cfg.dataset, get_method(cfg.dataset._target_))
    regularizer = cfg.get("regularizer") or {}
    nodes = [("regularizer", regularizer)] if "_target_" in regularizer else \
        [(f"regularizer.{k}", v) for k, v in regularizer.items() if hasattr(v, "keys") and "_target_" in v]
    if not nodes:
        raise ConfigError("regularizer", checks.plain(cfg.get("regularizer")), "one of none, clip, gp, r1, r2, sn, "
                          "lecam, cr, or a list of them such as [sn,gp]")
    for path, node in nodes:
        checks.check_target_node(path, node, get_class(node._target_))
    unused_shared_keys(regularizer)
    for name, node in (cfg.get("callbacks") or {}).items():
        if not hasattr(node, "keys") or "_target_" not in node:
            raise ConfigError(f"callbacks.{name}", checks.plain(node), "a node with _target_ naming a Lightning "
                              f"callback class, e.g. +callbacks.{name}._target_=my_pkg.MyCallback")
        module, _, attribute = str(node._target_).rpartition(".")
        try:
            getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError(f"callbacks.{name}._target_", node._target_, "an importable class",
                              f"{type(err).__name__}: {err}") from None
    check_optimizers(cfg.optimizer)
    return typed


def unused_shared_keys(node: DictConfig) -> None:
    """Refuse a key beside the chosen regularizers that none of them takes (``+regularizer.weight=-1`` under
    ``regularizer=none`` would be recorded and ignored)."""
    if "_target_" in node:
        return
    parts = {k: v for k, v in node.items() if hasattr(v, "keys") and "_target_" in v}
    taken = {name for part in parts.values() for name in checks.signature_hints(get_class(part._target_))}
    for key in node:
        if key not in parts and key not in taken:
            names = ",".join(get_class(p._target_).name for p in parts.values())
            raise ConfigError(f"regularizer.{key}", checks.plain(node[key]),
                              "a setting of the chosen regularizers", f"regularizer={names} does not read {key}")


# the words of torch.optim's own refusals ("Invalid learning rate: -1") and the key each names
_OPTIMIZER_WORDS = {"learning rate": "lr", "beta": "betas", "epsilon": "eps", "weight_decay": "weight_decay",
                    "momentum": "momentum", "alpha": "alpha", "dampening": "dampening"}


def check_optimizers(node: DictConfig) -> None:
    """Build D's and G's optimisers once on a dummy parameter, so that a setting torch.optim refuses (a negative
    learning rate, a beta outside [0, 1), a string) or a number that is not finite is one ConfigError naming
    ``optimizer.<d|g>.<key>``."""
    for player in ("d", "g"):
        for key, value in node[player].items():
            numbers = value if isinstance(value, (list, tuple)) or OmegaConf.is_list(value) else [value]
            if any(isinstance(v, float) and not torch.isfinite(torch.tensor(v)) for v in numbers):
                raise ConfigError(f"optimizer.{player}.{key}", checks.plain(value), "a finite number")
        factory = build(node[player])
        try:
            factory([torch.nn.Parameter(torch.zeros(1))])
        except (ValueError, TypeError) as err:
            text = str(err)
            key = next((k for word, k in _OPTIMIZER_WORDS.items() if word in text.lower()), None)
            if key is None:  # e.g. lr=abc: torch compares a string with a number
                key = next((k for k in _OPTIMIZER_WORDS.values() if isinstance(node[player].get(k), str)), None)
                if key is None:
                    raise
                raise ConfigError(f"optimizer.{player}.{key}", node[player][key], "a number") from None
            raise ConfigError(f"optimizer.{player}.{key}", node[player].get(key), "a value torch.optim accepts",
                              text) from None


# ---------------------------------------------------------------- the parts

@dataclass
class Components:
    settings: settings.Settings
    source: Source
    loss: GANLoss
    regularizer: Regularizer
    generator: nn.Module
    discriminator: nn.Module
    tricks: Tricks
    system: type[GAN]
    conditioning: Any  # gan_lab.systems.conditioning.Unconditional or ClassConditional
    setup: rules.Setup  # what the rulebook saw (python -m gan_lab.evaluate asks it again)
    schedules: Schedules  # the settings that change over the run (gan_lab/schedules.py)


def mixture_on(cfg: DictConfig) -> bool:
    return cfg.mixture.generators > 1 or cfg.mixture.discriminators > 1


def system_class(cfg: DictConfig) -> tuple[type[GAN], str]:
    """The system that trains this config and the option that chose it (for refusals): the model's own when its
    config names one (``model.system``), MIX+GAN's for a mixture, else Algorithm 1's."""
    if "system" in cfg.model:
        return get_class(cfg.model.system._target_), f"model={model_name(cfg)}"
    if mixture_on(cfg):
        return MixtureGAN, (f"mixture.generators={cfg.mixture.generators}, "
                            f"mixture.discriminators={cfg.mixture.discriminators}")
    return GAN, "Algorithm 1"


def model_fits(nets: DictConfig, d_norm: str):
    """The model's own check of the data's shape (``fits(spec, **settings)`` beside its builder)."""
    kwargs = {k: v for k, v in OmegaConf.to_container(nets, resolve=True).items() if not k.startswith("_")}
    return partial(fits_of(nets._target_), **{**kwargs, "d_norm": d_norm})


def model_name(cfg: DictConfig) -> str:
    return cfg.model._target_.split(".")[-2]


def label_prior(source: Source, prior: str) -> torch.Tensor:
    """(K,) class probabilities fake labels are drawn from: uniform, or the data's class frequencies."""
    k = source.num_classes
    if prior == "data":
        return torch.bincount(source.labels, minlength=k).double() / len(source.labels)
    return torch.full((k,), 1.0 / k, dtype=torch.float64)


def build_components(cfg: DictConfig, typed: settings.Settings | None = None) -> Components:
    """Everything a run needs, built and checked before any training starts (``typed``: the settings, when
    :func:`check_settings` has read them already): the parts, then the rules that read them, then the networks,
    then the rules that read those."""
    typed = typed or check_settings(cfg)
    loss, regularizer = build(cfg.loss), build_regularizer(cfg.regularizer, build)
    tricks = Tricks(**OmegaConf.to_container(cfg.tricks))
    schedules = Schedules(schedules_of(cfg))
    schedules.check(SimpleNamespace(regularizer=regularizer, tricks=tricks, loss=loss))
    system, chosen_by = system_class(cfg)
    source = build(cfg.dataset)
    nets = OmegaConf.masked_copy(cfg.model, [k for k in cfg.model if k not in MODEL_KEYS])
    d_norm = cfg.model.get("d_norm", "auto")
    resolved = regularizer.caps.preferred_d_norm if d_norm == "auto" else d_norm  # model.d_norm=auto
    setup = rules.Setup(typed, system.caps, chosen_by, model_name(cfg), "system" in cfg.model, loss, regularizer,
                        tricks, source, build(cfg.optimizer.d)([torch.nn.Parameter(torch.zeros(1))]),
                        typed.model.conditional, d_norm, processes(cfg.trainer), model_fits(nets, resolved))
    rules.check(setup, "parts")
    strategy = conditioning_of(typed.model, source)
    factory = partial(build(nets, _partial_=True), d_norm=resolved)
    setup.generator, setup.discriminator = networks(cfg, factory, source, strategy)
    rules.check(setup, "networks")
    generator, discriminator = tricks.networks(setup.generator, setup.discriminator, source.spec, cfg.model.z_dim,
                                               cfg.seed, lambda spec: factory(spec=spec))
    return Components(typed, source, loss, regularizer, generator, discriminator, tricks, system, strategy, setup,
                      schedules)


def conditioning_of(model: settings.Model, source: Source):
    """The run's conditioning strategy (``model.conditional``): none, or the data's classes with the label prior."""
    if model.conditional == "none":
        return conditioning()
    return conditioning(model.conditional, source.num_classes, label_prior(source, model.label_prior))


def networks(cfg: DictConfig, factory, source: Source, strategy) -> tuple[nn.Module, nn.Module]:
    """(G, D) as the model builds them: class-conditional wrappers around them, and mixtures of several."""
    def pair():
        if strategy.mode == "none":
            return factory(spec=source.spec)
        return build_conditional(factory, source.spec, cfg.model.z_dim, source.num_classes, strategy.mode,
                                 native_conditioning_of(cfg.model._target_))

    generator, discriminator = pair()
    if mixture_on(cfg):
        extra = max(cfg.mixture.generators, cfg.mixture.discriminators) - 1
        pairs = [(generator, discriminator)] + [pair() for _ in range(extra)]
        generator = GeneratorMixture([g for g, _ in pairs[: cfg.mixture.generators]])
        discriminator = DiscriminatorMixture([d for _, d in pairs[: cfg.mixture.discriminators]])
    return generator, discriminator


def build_system(cfg: DictConfig, c: Components) -> GAN:
    """The system :func:`system_class` names, built on the components."""
    t = c.settings.train
    if "system" in cfg.model:
        system = build(cfg.model.system, _partial_=True)
    elif mixture_on(cfg):
        system = partial(MixtureGAN, entropy_weight=c.settings.mixture.entropy_weight)
    else:
        system = GAN
    system = system(c.generator, c.discriminator, c.loss, c.regularizer, build(cfg.optimizer.d),
                    build(cfg.optimizer.g), k=t.k, g_steps=t.g_steps, z_dim=cfg.model.z_dim, log_every=t.log_every,
                    seed=cfg.seed, iterations=t.iterations, tricks=c.tricks, conditioning=c.conditioning,
                    schedule=schedule(t.simultaneous), runner=Runner(t.cuda_graphs, rules.capture_blockers),
                    schedules=c.schedules, channels_last=t.channels_last,
                    run_config=OmegaConf.to_container(cfg, resolve=True))
    if t.compile_generator:
        # in place, so parameter names and checkpoints are unchanged (CPU; D is never compiled: the gradient
        # penalty's double backward fails through a compiled D, docs/design.md, "torch.compile")
        system.generator.compile()
    return system
