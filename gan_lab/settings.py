"""Typed settings: every key of the config tree declared once, with its type, its allowed values and one line of
documentation, and checked once, when a run's config is composed, with one-line errors naming the full key.

Two kinds of node share one mechanism, ``Annotated`` types carrying their checks and their documentation:

* the plain sections (``train``, ``eval``, ``trainer``, ``output``, ``optimizer``, ``mixture``, ``sweep`` and the
  top-level keys): the dataclasses below;
* the nodes that name a class or builder with ``_target_`` (``loss``, ``regularizer``, ``dataset``, ``model``,
  ``model.system``): the annotated signature of what they name, so the config maps one-to-one onto typed
  constructor arguments; ``tricks``: the settings every trick class declares (gan_lab/tricks/base.py).

A value that comes from an interpolation (``regularizer.r1.weight: ${..weight}``) is reported under the key that
holds it, the one the user sets. docs/configuration.md is generated from these declarations
(``python -m gan_lab.reference``); a test keeps it in sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, ListConfig

from gan_lab.checks import Range, Validator, above, at_least, check_value, fraction, section_of

# ---------------------------------------------------------------- the plain sections

Int1 = Annotated[int, at_least(1)]
Int0 = Annotated[int, at_least(0)]
Float0 = Annotated[float, at_least(0.0)]


@dataclass
class Train:
    k: Annotated[Int1, "D updates per G update (Algorithm 1); each on a fresh real minibatch and fresh z"] = 1
    g_steps: Annotated[Int1, "G updates per iteration, each on fresh z, after the k D updates (the PacGAN/VEEGAN "
                             "DCGAN code steps G twice)"] = 1
    simultaneous: Annotated[bool, "true: G's gradient is taken against the D and G of the iteration's start, before "
                                  "D's k updates, and applied after them (simultaneous gradient descent); false: G "
                                  "steps against the D just updated"] = False
    iterations: Annotated[Int1, "run length in generator iterations, the lab's clock"] = 2000
    batch_size: Annotated[Int1, "per process, for real and fake minibatches"] = 64
    log_every: Annotated[Int1, "iterations between log rows; statistics are averaged over the interval"] = 25
    progress_every: Annotated[Int1 | None, "output not to a terminal: a progress line every N iterations and after "
                                           "each evaluation (null: about 20 a run)"] = None
    sample_every: Annotated[Int0, "iterations between sample pictures (0: only the final one)"] = 250
    checkpoint_every: Annotated[Int0, "iterations between checkpoints (0: only at the end)"] = 500
    num_workers: Annotated[Int0, "DataLoader workers decoding streamed data (image files)"] = 0
    data_on_device: Annotated[bool | Literal["auto"], "an in-memory set (<= 1 GiB) is copied to the device once "
                                                      "(auto: when it fits)"] = "auto"
    mirror: Annotated[bool, "images: the stream draws from the set and its left-right flips, 2N images "
                            "(StyleGAN2-ADA's and R3GAN's --mirror); the metrics' real images stay as stored"] = False
    channels_last: Annotated[bool, "NHWC layout for G, D and the images (conv nets on recent CPUs and tensor-core "
                                   "GPUs)"] = False
    compile_generator: Annotated[bool, "torch.compile G's forward (CPU only; never D: the gradient penalty's double "
                                       "backward breaks)"] = False
    cuda_graphs: Annotated[bool | Literal["stand_in"], "GPU: capture each D and G update as a CUDA graph and replay "
                                                       "it; stand_in: the same step uncaptured"] = False
    tf32: Annotated[bool, "GPU: TF32 tensor-core math in float32 convolutions and matmuls (faster, 10-bit "
                          "mantissa inputs); off as in stylegan2-ada. cuDNN's autotuner is on unless "
                          "trainer.deterministic"] = False


@dataclass
class Mixture:
    generators: Annotated[Int1, "MIX+GAN's T generators, sampled with learned softmax weights"] = 1
    discriminators: Annotated[Int1, "T discriminators; the payoff sums over every (G_i, D_j) pair"] = 1
    entropy_weight: Annotated[Float0, "λ of the −λ·H(weights) term in each player's loss"] = 0.1


PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "bf16", "64")


def _precision(value) -> bool:
    return str(value) in PRECISIONS


def _devices(value) -> bool:
    if value in (-1, "auto") or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return True
    return isinstance(value, (list, tuple, ListConfig)) and len(value) > 0


@dataclass
class Trainer:
    accelerator: Annotated[str, "cpu, gpu (cuda): set by accelerator=…"] = "cpu"
    devices: Annotated[Any, Validator(_devices, "an integer >= 1, -1 (every visible device), auto, or a list of "
                                                "device indices"), "processes (devices) per node; more than one runs "
                                                                   "DDP"] = 1
    strategy: Annotated[str, "Lightning's strategy (set by accelerator=…)"] = "auto"
    num_nodes: Annotated[Int1, "machines; with trainer.devices, the number of processes"] = 1
    precision: Annotated[Any, Validator(_precision, "one of " + ", ".join(PRECISIONS[:6]), "Lightning's precision "
                                        "names (32, 16, bf16 and 64 are short for their -true/-mixed forms)"),
                         "Lightning's precision: 32-true, 16-mixed or bf16-mixed (16-mixed is for losses without "
                         "gp/r1), 16-true, bf16-true, 64-true"] = "32-true"
    enable_progress_bar: Annotated[bool, "the progress bar (a terminal) or progress lines (a file or a pipe)"] = True
    deterministic: Annotated[bool, "PyTorch's deterministic algorithms (GPU runs repeat bit for bit; slower)"] = False
    timeout_minutes: Annotated[float | None, above(0.0), "every collective between ranks fails after this long: no "
                                                       "hang"] = None
    threads: Annotated[Int1 | None, "CPU threads per process; null: the cores this process may use, shared among the "
                                    "sweep's parallel jobs and this node's ranks (1 for models too small to gain from "
                                    "more)"] = None


@dataclass
class DRS:
    enabled: Annotated[bool, "Discriminator Rejection Sampling (Azadi 2019) of the final G, measured apart: drs/* "
                             "metrics"] = False
    calibration_steps: Annotated[Int0, "more D updates of a copy of D (logistic loss) against the frozen final G"] = 500
    burn_in: Annotated[Int1, "samples whose largest D logit starts D̃_M"] = 10_000
    batch: Annotated[Int1, "samples drawn and judged at a time"] = 1_000
    gamma_quantile: Annotated[float | None, fraction(low_open=True), "null: γ = 0, the exact rule; q: γ = the "
                                                                     "q-quantile of F per batch"] = None
    max_draws: Annotated[Int1 | None, "draws before giving up (null: 1,000 per sample needed for points, 50 for "
                                      "images)"] = None


@dataclass
class JBT:
    enabled: Annotated[bool, "Jacobian-based truncation (Tanielian 2020) of the final G, measured apart: jbt/* "
                             "metrics (with eval.drs.enabled too: jbt_drs/*)"] = False
    keep: Annotated[float, fraction(low_open=True, high_open=False), "fraction of G's samples kept: those with the "
                                                                     "smallest ‖J_G(z)‖_F"] = 0.9
    probes: Annotated[Int1, "random latent directions per sample in the estimate of ‖J_G(z)‖²_F; a latent of at "
                            "most this many dimensions gets the exact norm (one JVP per dimension)"] = 10
    step: Annotated[float, fraction(low_open=True, high_open=False), "the finite-difference step δ in latent "
                                                                     "space"] = 1e-3


INCEPTION = ("auto", True, False, "true", "false")


def _followable(value: Any) -> bool:
    if value is None or value == "auto":
        return True
    from gan_lab.metrics import registry

    return isinstance(value, str) and registry.followable(value)


@dataclass
class Eval:
    at_end: Annotated[bool, "measure the final generator (as gan_lab.evaluate) before writing the report"] = True
    samples: Annotated[Annotated[int, at_least(2)] | None, "samples of that measurement (null: 5,000 images or "
                                                           "2,500 points)"] = None
    every: Annotated[Int0, "iterations between in-training measurements; 0 = off"] = 500
    every_samples: Annotated[Annotated[int, at_least(2)], "samples per in-training measurement"] = 1000
    best: Annotated[str | None, Validator(_followable, "auto, null, or the name of a measured metric that is better "
                                          "lower or higher, e.g. val/fid_1k_mnist5k_classifier (eval.every_samples "
                                          "samples: the in-training measurement's)"),
                    "keep checkpoints/best.ckpt, the run at its best in-training measurement of: auto = the headline "
                    "metric (FID where there is one), or a metric's name; null = off"] = "auto"
    inception: Annotated[Literal[INCEPTION], "FID/KID/IS on the FID Inception network as well: auto = when its "
                                             "weights are on disk and the run uses a GPU"] = "auto"
    inception_weights: Annotated[str | None, "path of weights-inception-2015-12-05-6726825d.pth (null: "
                                             "$TORCH_HOME/hub/checkpoints/)"] = None
    drs: DRS = field(default_factory=DRS)
    jbt: JBT = field(default_factory=JBT)


@dataclass
class Output:
    final_samples: Annotated[Int1 | None, "size of samples.npy (null: 2,500 points, 256 images)"] = None


@dataclass
class Optimizer:
    lr_decay: Annotated[Literal["none", "linear"], "linear: both learning rates fall linearly to 0 over "
                                                   "train.iterations, lr·(1 − t/T)"] = "none"


@dataclass
class Sweep:
    objective: Annotated[str | None, "a metric's name: each sweep job returns its final value (what "
                                     "hydra/sweeper=search minimises)"] = None


@dataclass
class Model:
    """``model.*`` keys every model group has (conf/config.yaml); the rest are the model factory's own."""

    conditional: Annotated[Literal["none", "concat", "projection", "acgan"],
                           "none | concat (Mirza 2014) | projection (Miyato & Koyama 2018) | acgan "
                           "(Odena 2017)"] = "none"
    label_prior: Annotated[Literal["uniform", "data"],
                           "fake labels: uniform over the classes | data (the training set's class frequencies)"] = \
        "uniform"


SEED = Annotated[int, Range(0, 2**32 - 1), "same seed, same config, same machine: the same run"]
SECTIONS = {"train": Train, "mixture": Mixture, "trainer": Trainer, "eval": Eval, "output": Output,
            "optimizer": Optimizer, "sweep": Sweep}
# Keys of a section that another mechanism owns: the optimisers' own settings (torch.optim's, probed in
# gan_lab/compose.py), the strategy and timeouts Lightning reads.
OPEN_KEYS = {"optimizer": {"d", "g"}}


@dataclass
class Settings:
    """The typed plain sections of one run's config."""

    seed: int
    train: Train
    mixture: Mixture
    trainer: Trainer
    eval: Eval
    output: Output
    optimizer: Optimizer
    sweep: Sweep
    model: Model  # the keys every model has; the rest are checked against the model factory's signature


def check_sections(cfg: DictConfig) -> Settings:
    """Check every plain section, the top-level seed and the keys every model has; return them typed."""
    check_value("seed", cfg.get("seed", 0), SEED)
    sections = {name: section_of(name, schema, cfg.get(name), OPEN_KEYS.get(name, frozenset()))
                for name, schema in SECTIONS.items()}
    model = cfg.get("model") or {}
    common = section_of("model", Model, {k: model[k] for k in ("conditional", "label_prior") if k in model})
    return Settings(seed=cfg.get("seed", 0), **sections, model=common)
