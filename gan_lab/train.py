"""compose → instantiate → fit → write the run folder. Importable: tests call ``train(cfg, run_dir)``."""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from gan_lab import filters as sample_filters
from gan_lab.callbacks import IterationCheckpoint, IterationProgressBar, ProgressLines, SampleGrids
from gan_lab.callbacks.ddp_check import WeightSyncCheck
from gan_lab.callbacks.evaluation import PeriodicEvaluation
from gan_lab.data import GANDataModule, Source
from gan_lab.distributed import distributed_job, patch_hydra_ddp_launch, processes, resolve_strategy
from gan_lab.errors import ConfigError, check_choice, check_int, check_range
from gan_lab.losses.base import GANLoss
from gan_lab.metrics.features import INCEPTION_CHOICES
from gan_lab.nets.conditional import MODES, PRIORS, build_conditional
from gan_lab.nets.layers import NORMS
from gan_lab.nets.mixture import DiscriminatorMixture, GeneratorMixture
from gan_lab.outcome import fit, inception_options
from gan_lab.regularizers.base import Regularizer
from gan_lab.regularizers.composite import build_regularizer
from gan_lab.report import write_report
from gan_lab.resume import check_same_run, finished, latest_good
from gan_lab.systems import GAN
from gan_lab.systems.gan import LR_DECAYS
from gan_lab.systems.mixture import MixtureGAN
from gan_lab.tricks import Tricks

log = logging.getLogger("gan_lab")

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


def resolve_d_norm(d_norm: str, regularizer: Regularizer) -> str:
    check_choice("model.d_norm", d_norm, (*NORMS, "auto"))
    if d_norm == "auto":
        return regularizer.preferred_d_norm
    if d_norm == "batch" and regularizer.forbids_batch_norm:
        raise ConfigError("model.d_norm", d_norm, "layer, none or auto with regularizer=" + regularizer.name,
                          "A per-sample gradient penalty is meaningless through batch norm, which mixes "
                          "the samples of a batch.")
    return d_norm


def validate_train(cfg: DictConfig) -> None:
    t = cfg.train
    check_int("train.k", t.k, 1)
    check_int("train.iterations", t.iterations, 1)
    check_int("train.batch_size", t.batch_size, 1)
    check_int("train.log_every", t.log_every, 1)
    check_int("train.sample_every", t.sample_every, 0)
    check_int("train.checkpoint_every", t.checkpoint_every, 0)
    check_int("train.num_workers", t.num_workers, 0)
    if t.get("progress_every") is not None:
        check_int("train.progress_every", t.progress_every, 1)
    if cfg.train.get("data_on_device", "auto") not in ("auto", True, False):
        raise ConfigError("train.data_on_device", cfg.train.data_on_device, "auto, true or false")
    for key in ("channels_last", "compile_generator", "simultaneous"):
        if not isinstance(cfg.train.get(key, False), bool):
            raise ConfigError(f"train.{key}", cfg.train.get(key), "true or false")
    graphs = cfg.train.get("cuda_graphs", False)
    if graphs not in (True, False, "stand_in"):
        raise ConfigError("train.cuda_graphs", graphs, "true, false or stand_in")
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    if graphs is True and accelerator not in ("gpu", "cuda"):
        raise ConfigError("train.cuda_graphs", True, f"false with trainer.accelerator={accelerator}",
                          "CUDA graphs need a CUDA device (accelerator=gpu|ddp|slurm); train.cuda_graphs=stand_in "
                          "runs the capture-ready step here without capturing.")
    if cfg.train.get("compile_generator", False) and accelerator in ("gpu", "cuda"):
        raise ConfigError("train.compile_generator", True, f"false with trainer.accelerator={accelerator}",
                          "torch.compile of G crashed on CUDA when measured (H200, torch 2.11); on a GPU use "
                          "train.cuda_graphs=true, which removes the per-kernel launch cost compile would.")
    validate_trainer(cfg.trainer)
    if cfg.train.get("simultaneous", False) and str(cfg.trainer.precision) in ("16-mixed", "16"):
        raise ConfigError("train.simultaneous", True, f"false with trainer.precision={cfg.trainer.precision}",
                          "fp16's loss scale can change at D's step while G's scaled gradient waits; use "
                          "trainer.precision=bf16-mixed, which needs no loss scale.")
    check_int("seed", cfg.seed, 0)
    if cfg.eval.get("samples") is not None:
        check_int("eval.samples", cfg.eval.samples, 2)
    if cfg.output.get("final_samples") is not None:
        check_int("output.final_samples", cfg.output.final_samples, 1)
    check_int("eval.every", cfg.eval.every, 0)
    check_int("eval.every_samples", cfg.eval.every_samples, 2)
    check_choice("eval.inception", str(cfg.eval.inception).lower(), INCEPTION_CHOICES)


# the words of torch.optim's own refusals ("Invalid learning rate: -1") and the key each names
_OPTIMIZER_WORDS = {"learning rate": "lr", "beta": "betas", "epsilon": "eps", "weight_decay": "weight_decay",
                    "momentum": "momentum", "alpha": "alpha", "dampening": "dampening"}


def check_optimizers(node: DictConfig) -> None:
    """Build D's and G's optimisers once on a dummy parameter, so that a setting torch.optim refuses (a negative
    learning rate, a beta outside [0, 1), a string) is one ConfigError naming ``optimizer.<d|g>.<key>``."""
    for player in ("d", "g"):
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


def validate_trainer(tc: DictConfig) -> None:
    devices = tc.devices
    if not (devices == -1 or devices == "auto" or (isinstance(devices, int) and devices >= 1 and
                                                    not isinstance(devices, bool)) or
            (isinstance(devices, (list, ListConfig)) and len(devices) > 0)):
        raise ConfigError("trainer.devices", devices, "an integer >= 1, -1 (every visible device), auto, "
                          "or a list of device indices")
    check_int("trainer.num_nodes", tc.num_nodes, 1)
    precisions = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "bf16", "64")
    if str(tc.precision) not in precisions:
        raise ConfigError("trainer.precision", tc.precision, "one of " + ", ".join(precisions[:6]),
                          "Lightning's precision names (32, 16, bf16 and 64 are short for their -true/-mixed forms)")
    if tc.get("timeout_minutes") is not None:
        check_range("trainer.timeout_minutes", tc.timeout_minutes, 0, None, low_open=True)


@dataclass
class Components:
    source: Source
    loss: GANLoss
    regularizer: Regularizer
    generator: nn.Module
    discriminator: nn.Module
    tricks: Tricks
    conditioning: dict | None = None  # model.conditional: mode, n_classes, prior (K,)


def build_components(cfg: DictConfig) -> Components:
    """Everything a run needs, built and validated before any training starts."""
    validate_train(cfg)
    mode = check_choice("model.conditional", cfg.model.get("conditional", "none"), MODES)
    prior = check_choice("model.label_prior", cfg.model.get("label_prior", "uniform"), PRIORS)
    loss = build(cfg.loss)  # the settings first: a typo is refused before any data is read
    if loss.aux_weight is not None and mode != "acgan":
        raise ConfigError("loss.aux_weight", loss.aux_weight, f"null with model.conditional={mode}",
                          "The class cross-entropy weight belongs to AC-GAN (model.conditional=acgan).")
    regularizer = build_regularizer(cfg.regularizer, build)
    check_optimizers(cfg.optimizer)  # a setting torch.optim refuses is named now, not mid-run
    check_choice("optimizer.lr_decay", cfg.optimizer.get("lr_decay", "none"), LR_DECAYS)
    tricks = Tricks(**OmegaConf.to_container(cfg.tricks))
    check_int("mixture.generators", cfg.mixture.generators, 1)
    check_int("mixture.discriminators", cfg.mixture.discriminators, 1)
    system, chosen_by = system_class(cfg)
    if mode != "none":
        check_conditional(mode, system, chosen_by, tricks)
    source = build(cfg.dataset)
    d_norm = resolve_d_norm(cfg.model.get("d_norm", "auto"), regularizer)
    nets = OmegaConf.masked_copy(cfg.model, [k for k in cfg.model if k not in ("system", "conditional", "label_prior")])
    factory = build(nets, _partial_=True)
    conditioning = None
    if mode == "none":
        def pair():
            return factory(spec=source.spec, d_norm=d_norm)
    else:
        conditioning = conditioning_of(source, mode, prior)

        def pair():
            return build_conditional(partial(factory, d_norm=d_norm), source.spec, cfg.model.z_dim,
                                     conditioning["n_classes"], mode)
    generator, discriminator = pair()
    if mixture_on(cfg):
        extra = max(cfg.mixture.generators, cfg.mixture.discriminators) - 1
        pairs = [(generator, discriminator)] + [pair() for _ in range(extra)]
        generator = GeneratorMixture([g for g, _ in pairs[: cfg.mixture.generators]])
        discriminator = DiscriminatorMixture([d for _, d in pairs[: cfg.mixture.discriminators]])
    tricks.check_compatible(loss, regularizer, discriminator, source.spec, system, chosen_by, cfg.train.batch_size,
                            build(cfg.optimizer.d))
    regularizer.check(source.spec)
    if regularizer.needs_one_critic and not system.one_critic:
        raise ConfigError("regularizer", regularizer.name, f"one that keeps no state about D with {chosen_by}",
                          f"regularizer={regularizer.name} tracks one D's outputs across updates; "
                          f"{system.step_summary}")
    if loss.g_needs_real and not system.passes_real_to_g:
        raise ConfigError("loss", loss.name, f"a loss whose G step reads only fake logits with {chosen_by}",
                          f"loss={loss.name} needs D's outputs on real data in G's step, which this "
                          "model's training step does not compute.")
    generator, discriminator = tricks.networks(generator, discriminator, source.spec, cfg.model.z_dim, cfg.seed,
                                               lambda spec: factory(spec=spec, d_norm=d_norm))
    return Components(source, loss, regularizer, generator, discriminator, tricks, conditioning)


# Trick hooks a class-conditional step cannot serve: they call D or G without the labels (their own networks,
# G's loss, an unrolled copy of D).
CONDITIONAL_BLOCKED_HOOKS = {"networks": "wraps G or D in a network of its own", "g_loss": "replaces G's loss",
                             "critic": "judges with a copy of D"}


def check_conditional(mode: str, system: type, chosen_by: str, tricks: Tricks) -> None:
    """Refuse what a class-conditional run cannot do, naming both keys."""
    if not system.conditions:
        raise ConfigError("model.conditional", mode, f"none with {chosen_by}",
                          f"{chosen_by}'s training step does not pass class labels; class-conditional models train "
                          "with Algorithm 1 or MIX+GAN (model=mlp|dcgan|resnet).")
    if mode == "acgan" and system.acgan_refused:
        raise ConfigError("model.conditional", mode, f"concat or projection with {chosen_by}", system.acgan_refused)
    for part in tricks.parts:
        blocked = sorted(part.hooks() & set(CONDITIONAL_BLOCKED_HOOKS))
        if blocked:
            raise ConfigError(f"tricks.{part.switch}", getattr(part, part.switch),
                              f"{part.off()} with model.conditional={mode}",
                              f"tricks.{part.switch} {CONDITIONAL_BLOCKED_HOOKS[blocked[0]]}, which would judge "
                              "or draw samples without their class labels.")


def conditioning_of(source: Source, mode: str, prior: str) -> dict:
    """The classes of ``source`` and the label prior; refuses a data set without labels."""
    name = source.spec.name
    labels = getattr(source, "labels", None)
    if labels is None or source.num_classes < 2:
        raise ConfigError("model.conditional", mode, f"none with dataset={name}",
                          f"dataset={name} carries no class labels (labelled sets: mnist5k, digits, mnist, "
                          "fashion_mnist, cifar10, stacked_mnist, a folder with one subfolder per class).")
    k = source.num_classes
    probs = (torch.bincount(labels, minlength=k).double() / len(labels) if prior == "data"
             else torch.full((k,), 1.0 / k, dtype=torch.float64))
    return {"mode": mode, "n_classes": k, "prior": probs}


def mixture_on(cfg: DictConfig) -> bool:
    return cfg.mixture.generators > 1 or cfg.mixture.discriminators > 1


def system_class(cfg: DictConfig) -> tuple[type[GAN], str]:
    """The system that trains this config and the option that chose it (for refusals): the model's own
    when its config names one (``model.system``), MIX+GAN's for a mixture, else Algorithm 1's."""
    if "system" in cfg.model:
        if mixture_on(cfg):
            raise ConfigError("mixture.generators", cfg.mixture.generators, "1 with this model",
                              f"model={cfg.model._target_.split('.')[-2]} has its own training step; "
                              "MIX+GAN mixes models trained by Algorithm 1 (mlp, dcgan).")
        return get_class(cfg.model.system._target_), f"model={cfg.model._target_.split('.')[-2]}"
    if mixture_on(cfg):
        return MixtureGAN, (f"mixture.generators={cfg.mixture.generators}, "
                            f"mixture.discriminators={cfg.mixture.discriminators}")
    return GAN, "Algorithm 1"


def build_system(cfg: DictConfig, c: Components) -> GAN:
    """The system :func:`system_class` names, built on the components."""
    if "system" in cfg.model:
        system = build(cfg.model.system, _partial_=True)
    elif mixture_on(cfg):
        system = partial(MixtureGAN, entropy_weight=cfg.mixture.entropy_weight)
    else:
        system = GAN
    system = system(c.generator, c.discriminator, c.loss, c.regularizer,
                    build(cfg.optimizer.d), build(cfg.optimizer.g),
                    k=cfg.train.k, z_dim=cfg.model.z_dim, log_every=cfg.train.log_every, seed=cfg.seed,
                    iterations=cfg.train.iterations, tricks=c.tricks,
                    run_config=OmegaConf.to_container(cfg, resolve=True))
    system.use_lr_decay(cfg.optimizer.get("lr_decay", "none"))
    system.use_simultaneous_updates(cfg.train.get("simultaneous", False))
    if c.conditioning is not None:
        cond = c.conditioning
        system.use_conditioning(cond["mode"], cond["n_classes"], cond["prior"])
    system.use_speed_options(cfg.train.get("channels_last", False), cfg.train.get("compile_generator", False),
                             cfg.train.get("cuda_graphs", False))
    return system


def progress_every(t: DictConfig) -> int:
    """Iterations between progress lines: ``train.progress_every``, or (null) about 20 lines a run, on log rows."""
    every = t.get("progress_every")
    if every is not None:
        return every
    return t.log_every * max(1, round(t.iterations / 20 / t.log_every))


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    loggers = []
    for node in (cfg.logger or {}).values():
        is_wandb = str(node.get("_target_", "")).endswith("WandbLogger")
        extra = wandb_identity(node, run_dir, _hydra_job()) if is_wandb else {}
        loggers.append(build(node, save_dir=str(run_dir / "logs"), **extra))
    return loggers


def _hydra_job() -> dict[str, str] | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return {"multirun": hc.mode == RunMode.MULTIRUN, "sweep_dir": str(hc.sweep.dir),
            "overrides": hc.job.override_dirname}


def wandb_identity(node: DictConfig, run_dir: Path, job: dict | None) -> dict[str, str]:
    """wandb run name and group when the config leaves them null: one group per sweep (its folder,
    e.g. ``multirun/2026-11-22/18-45-20``), each job named by its overrides (else by its run folder)."""
    out = {}
    if node.get("name") is None:
        out["name"] = (job or {}).get("overrides") or run_dir.name
    if node.get("group") is None and job and job["multirun"]:
        parts = Path(job["sweep_dir"]).parts
        out["group"] = "/".join(parts[-3:])
    return out


def build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list, loggers: list) -> L.Trainer:
    tc = cfg.trainer
    strategy = resolve_strategy(tc.strategy, tc.accelerator, tc.devices, tc.num_nodes, tc.get("timeout_minutes"))
    bar = bool(tc.enable_progress_bar) and sys.stdout.isatty()
    if bar:
        callbacks = [*callbacks, IterationProgressBar()]
    elif tc.enable_progress_bar:  # output to a file or a pipe: plain lines, after every other callback's work
        callbacks = [*callbacks, ProgressLines(progress_every(cfg.train))]
    return L.Trainer(accelerator=tc.accelerator, devices=tc.devices, num_nodes=tc.num_nodes,
                     strategy=strategy, precision=tc.precision, max_epochs=1, logger=loggers or False,
                     deterministic=bool(tc.get("deterministic", False)),
                     callbacks=callbacks, enable_progress_bar=bar,
                     enable_checkpointing=False, enable_model_summary=False,
                     use_distributed_sampler=False, num_sanity_val_steps=0, limit_val_batches=0,
                     log_every_n_steps=1, default_root_dir=str(run_dir))


def hydra_run_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train one run into ``run_dir`` (default: Hydra's run folder); return its metrics.json content."""
    if cfg.get("resume"):
        run_dir = Path(str(cfg.resume)).expanduser()
        if not (run_dir / "checkpoints").is_dir() and not (run_dir / "metrics.json").is_file():
            raise ConfigError("resume", str(cfg.resume), "a gan_lab run folder (with checkpoints/)",
                              f"{run_dir.resolve()} holds no run to continue")
    run_dir = Path(run_dir) if run_dir is not None else hydra_run_dir()
    if run_dir is None:
        raise ValueError("train() needs run_dir when called outside a Hydra app")
    run_dir.mkdir(parents=True, exist_ok=True)
    found = latest_good(run_dir)  # a run already in this folder: it must be this run
    if found is not None:
        check_same_run(cfg, found[0]["gan_lab"].get("config") or {}, run_dir)
    done = finished(run_dir, cfg)
    if done is not None:  # re-running a sweep (or a command) skips what already finished
        print(f"gan_lab: already finished ({done['iterations']} iterations): run folder {run_dir}")
        return done
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*`training_step` returns `None`.*")
    warnings.filterwarnings("ignore", ".*isinstance.treespec, LeafSpec.*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)  # hardware banners and tips, once per rank

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    c = build_components(cfg)
    system = build_system(cfg, c)
    sample_filters.check(system, sample_filters.Filters.of(cfg.eval), processes(cfg.trainer), cfg.trainer.precision)
    if found is not None:
        ckpt, path = found
        system.restore(ckpt)
        if rank_zero_only.rank == 0:  # child ranks restore the same checkpoint silently
            print(f"gan_lab: resuming from {path} at iteration {system.iteration}")
    data = GANDataModule(c.source, cfg.train.batch_size, system.batches_per_iteration, cfg.train.iterations,
                         cfg.seed, start_iteration=system.iteration, num_workers=cfg.train.num_workers,
                         on_device=cfg.train.get("data_on_device", "auto"), labelled=c.conditioning is not None)
    samples = SampleGrids(c.source, run_dir, cfg.train.sample_every, cfg.seed)
    checkpoint = IterationCheckpoint(run_dir, cfg.train.checkpoint_every)
    sync_check = WeightSyncCheck()
    periodic = PeriodicEvaluation(c.source, cfg.eval.every, cfg.eval.every_samples, cfg.seed, inception_options(cfg))
    extra = [build(node) for node in (cfg.get("callbacks") or {}).values()]
    loggers = build_loggers(cfg, run_dir)

    patch_hydra_ddp_launch()
    with distributed_job():
        # The checkpoint comes last, so it holds everything done at its iteration (the measurement included):
        # a run resumed from it logs the same rows as the run that was never stopped.
        trainer = build_trainer(cfg, run_dir, [samples, sync_check, periodic, checkpoint, *extra], loggers)
        if trainer.is_global_zero and (cfg.eval.every or cfg.eval.at_end):
            periodic.prepare()  # one-time work (classifier, real statistics) before any other rank exists
        summary = fit(cfg, run_dir, trainer, system, data, c.source, sync_check, extra, loggers)
    if summary.get("status") != "finished":  # a child rank ({}), or a diverged run (already reported)
        return summary
    print(f"gan_lab: report {write_report(run_dir)}")
    print(f"gan_lab: run folder {run_dir}")
    return summary
