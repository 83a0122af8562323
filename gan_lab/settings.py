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
(``python -m gan_lab.settings``); a test keeps it in sync.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from omegaconf import DictConfig, ListConfig, OmegaConf

from gan_lab.errors import ConfigError

# ---------------------------------------------------------------- checks, carried in Annotated types


@dataclass(frozen=True)
class Range:
    """A number in [low, high] (either end open, or absent)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def ok(self, value) -> bool:
        if self.low is not None and not (value > self.low if self.low_open else value >= self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def text(self) -> str:
        lo = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{self.low}"
        hi = "inf)" if self.high is None else f"{self.high}{')' if self.high_open else ']'}"
        return f"{lo}, {hi}"


def at_least(low: float) -> Range:
    return Range(low)


def above(low: float) -> Range:
    return Range(low, low_open=True)


def fraction(low_open: bool = False, high_open: bool = True) -> Range:
    """A number in [0.0, 1.0) (or another choice of open ends)."""
    return Range(0.0, 1.0, low_open, high_open)


@dataclass(frozen=True)
class Validator:
    """A check beyond the type: ``ok(value)`` is whether the value is allowed; ``allowed`` says what is. A named
    module-level function, never a lambda: annotations are evaluated in the class's namespace."""

    ok: typing.Callable[[Any], bool]
    allowed: str
    why: str = ""


@dataclass(frozen=True)
class Doc:
    text: str


def doc_of(annotation) -> str:
    return next((m.text if isinstance(m, Doc) else m for m in getattr(annotation, "__metadata__", ())
                 if isinstance(m, (Doc, str))), "")


# ---------------------------------------------------------------- checking one value against its type


def _split(annotation) -> tuple[Any, list]:
    """(the bare type, its checks) of an annotation."""
    if typing.get_origin(annotation) is Annotated:
        bare, *meta = typing.get_args(annotation)
        return bare, [m for m in meta if isinstance(m, (Range, Validator))]
    return annotation, []


def _options(bare) -> list:
    """The alternatives of a union type (X | None, bool | Literal[...]); a single type otherwise."""
    if typing.get_origin(bare) in (Union, types.UnionType):
        return list(typing.get_args(bare))
    return [bare]


def _matches(kind, value) -> bool:
    if kind is type(None):
        return value is None
    if kind is Any:
        return True
    origin = typing.get_origin(kind)
    if origin is Literal:
        return any(value == c and type(value) is type(c) for c in typing.get_args(kind))
    if origin in (list, tuple, collections.abc.Sequence):
        inner = (typing.get_args(kind) or (Any,))[0]
        return isinstance(value, (list, tuple, ListConfig)) and all(_matches(inner, v) for v in value)
    if origin is not None:  # another generic: its container type decides
        return isinstance(value, origin)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


def _alternatives(annotation) -> list[tuple[Any, list]]:
    """[(bare type, its checks)] of each alternative of an annotation; the checks of an outer ``Annotated`` apply
    to every alternative (``Annotated[int, at_least(1)] | None``: the range is the int's)."""
    bare, outer = _split(annotation)
    return [(kind_bare, outer + kind_checks) for kind_bare, kind_checks in map(_split, _options(bare))]


def describe(annotation) -> str:
    """What an annotation allows, in words (for errors and the generated reference)."""
    words = []
    for kind, checks in _alternatives(annotation):
        if kind is type(None):
            words.append("null")
        elif typing.get_origin(kind) is Literal:
            words += [str(c).lower() if isinstance(c, bool) else str(c) for c in typing.get_args(kind)]
        elif kind is bool:
            words += ["true", "false"]
        elif kind in (int, float):
            words.append(_number_words(kind, [c for c in checks if isinstance(c, Range)]))
        elif typing.get_origin(kind) in (list, tuple, collections.abc.Sequence):
            words.append("a list")
        elif kind is not Any:
            words.append(getattr(kind, "__name__", str(kind)))
        words += [c.allowed for c in checks if isinstance(c, Validator)]
    words = list(dict.fromkeys(words))
    if all(typing.get_origin(kind) is Literal for kind, _ in _alternatives(annotation)):
        return "one of " + ", ".join(words)
    return " or ".join(words) if len(words) <= 2 else ", ".join(words[:-1]) + " or " + words[-1]


def _number_words(kind, ranges: list[Range]) -> str:
    """"an integer >= 1", "a number in [0.0, 1.0)", "a number"."""
    noun = "an integer" if kind is int else "a number"
    if not ranges:
        return noun
    r = ranges[0]
    if kind is int and r.high is None and not r.low_open:
        return f"{noun} >= {r.low}"
    return f"{noun} in {r.text()}"


def check_value(key: str, value, annotation) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` fits ``annotation`` (its type and its checks)."""
    fits = [checks for kind, checks in _alternatives(annotation) if _matches(kind, value)]
    if not fits:
        raise ConfigError(key, _plain(value), describe(annotation))
    for checks in fits[:1]:
        for check in checks:
            if isinstance(check, Range) and isinstance(value, (int, float)) and not check.ok(value):
                raise ConfigError(key, value, describe(annotation))
            if isinstance(check, Validator) and not check.ok(value):
                raise ConfigError(key, _plain(value), check.allowed, check.why)


def _plain(value):
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


# ---------------------------------------------------------------- the plain sections

Int1 = Annotated[int, at_least(1)]
Int0 = Annotated[int, at_least(0)]
Float0 = Annotated[float, at_least(0.0)]


@dataclass
class Train:
    k: Annotated[Int1, "D updates per G update (Algorithm 1); each on a fresh real minibatch and fresh z"] = 1
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
    channels_last: Annotated[bool, "NHWC layout for G, D and the images (conv nets on recent CPUs and tensor-core "
                                   "GPUs)"] = False
    compile_generator: Annotated[bool, "torch.compile G's forward (CPU only; never D: the gradient penalty's double "
                                       "backward breaks)"] = False
    cuda_graphs: Annotated[bool | Literal["stand_in"], "GPU: capture each D and G update as a CUDA graph and replay "
                                                       "it; stand_in: the same step uncaptured"] = False


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
                         "Lightning's precision (32, 16, bf16 and 64 are short for their -true/-mixed forms)"] = "32-true"
    enable_progress_bar: Annotated[bool, "the progress bar (a terminal) or progress lines (a file or a pipe)"] = True
    deterministic: Annotated[bool, "PyTorch's deterministic algorithms (GPU runs repeat bit for bit; slower)"] = False
    timeout_minutes: Annotated[float | None, above(0.0), "every collective between ranks fails after this long: no "
                                                       "hang"] = None


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
    probes: Annotated[Int1, "random latent directions per sample in the estimate of ‖J_G(z)‖²_F"] = 10
    step: Annotated[float, fraction(low_open=True, high_open=False), "the finite-difference step δ in latent "
                                                                     "space"] = 1e-3


INCEPTION = ("auto", True, False, "true", "false")


@dataclass
class Eval:
    at_end: Annotated[bool, "measure the final generator (as gan_lab.evaluate) before writing the report"] = True
    samples: Annotated[Annotated[int, at_least(2)] | None, "samples of that measurement (null: 5,000 images or "
                                                           "2,500 points)"] = None
    every: Annotated[Int0, "iterations between in-training measurements; 0 = off"] = 500
    every_samples: Annotated[Annotated[int, at_least(2)], "samples per in-training measurement"] = 1000
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


SEED = Annotated[int, Range(0, 2**32 - 1), "same seed, same config, same machine: the same run"]
SECTIONS = {"train": Train, "mixture": Mixture, "trainer": Trainer, "eval": Eval, "output": Output,
            "optimizer": Optimizer, "sweep": Sweep}
# Keys of a section that another mechanism owns: the optimisers' own settings (torch.optim's, probed in
# gan_lab/compose.py), the strategy and timeouts Lightning reads.
OPEN_KEYS = {"optimizer": {"d", "g"}}


def section_of(path: str, schema: type, node) -> Any:
    """The typed section ``schema`` of ``node`` (a config section at ``path``), every key checked."""
    node = node if node is not None else {}
    known = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema, include_extras=True)
    values = {}
    for key in node:
        _mandatory(node, key, path)
        if key in OPEN_KEYS.get(path, ()):
            continue
        if key not in known:
            raise ConfigError(f"{path}.{key}", _plain(node[key]),
                              "one of " + ", ".join(f"{path}.{k}" for k in known))
        value = node[key]
        if dataclasses.is_dataclass(hints[key]):
            values[key] = section_of(f"{path}.{key}", hints[key], value)
            continue
        check_value(source_key(node, key, f"{path}.{key}"), _plain(value), hints[key])
        values[key] = _plain(value)
    return schema(**values)


def _mandatory(node, key: str, path: str) -> None:
    """A key the config leaves ``???`` (a value with no default, e.g. ``dataset.path`` of ``dataset=folder``)."""
    if isinstance(node, DictConfig) and OmegaConf.is_missing(node, key):
        raise ConfigError(f"{path}.{key}", "???", "a value: it has no default",
                          f"set it on the command line, e.g. {path}.{key}=…")


def source_key(node, key: str, path: str) -> str:
    """The key that holds ``node[key]``'s value: ``path`` itself, or where its interpolation points
    (``regularizer.r1.weight: ${..weight}`` is set as ``regularizer.weight``)."""
    if not isinstance(node, DictConfig) or not OmegaConf.is_interpolation(node, key):
        return path
    text = str(node._get_node(key)._value())  # "${..weight}"
    inner = text[2:-1] if text.startswith("${") and text.endswith("}") and text.count("${") == 1 else None
    if inner is None or ":" in inner:  # a resolver, not a plain reference
        return path
    if not inner.startswith("."):
        return inner
    ups = len(inner) - len(inner.lstrip("."))
    parent = path.split(".")[:-1]
    return ".".join(parent[: len(parent) - (ups - 1)] + [inner.lstrip(".")])


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


def check_sections(cfg: DictConfig) -> Settings:
    """Check every plain section and the top-level seed; return them typed."""
    check_value("seed", cfg.get("seed", 0), SEED)
    sections = {name: section_of(name, schema, cfg.get(name)) for name, schema in SECTIONS.items()}
    return Settings(seed=cfg.get("seed", 0), **sections)


# ---------------------------------------------------------------- nodes naming a class or a builder


def signature_hints(target) -> dict[str, Any]:
    """{parameter: annotation} of what a ``_target_`` names (a class's ``__init__``, a function)."""
    fn = target.__init__ if inspect.isclass(target) else target
    if fn is object.__init__:
        return {}
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    params = inspect.signature(fn).parameters
    return {name: hints.get(name, Any) for name, p in params.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def check_target_node(path: str, node: DictConfig, target, skip: set[str] = frozenset(),
                      supplied: set[str] = frozenset()) -> None:
    """Every key of ``node`` (a ``_target_`` node at ``path``) is a parameter of ``target`` and fits its
    annotation. ``skip``: keys another mechanism reads (``model.conditional``); ``supplied``: parameters the lab
    passes itself (``spec``), which the config may not set."""
    hints = signature_hints(target)
    fn = target.__init__ if inspect.isclass(target) else target
    takes_more = fn is not object.__init__ and any(p.kind == p.VAR_KEYWORD
                                                  for p in inspect.signature(fn).parameters.values())
    for key in node:
        if key.startswith("_") or key in skip:
            continue
        _mandatory(node, key, path)
        if key in supplied or (key not in hints and not takes_more):
            allowed = [k for k in hints if k not in supplied and k not in skip]
            raise ConfigError(f"{path}.{key}", _plain(node[key]),
                              "one of " + ", ".join(f"{path}.{k}" for k in allowed))
        if key in hints and not (hasattr(node[key], "keys") and "_target_" in node[key]):
            check_value(source_key(node, key, f"{path}.{key}"), _plain(node[key]), hints[key])


def reference() -> str:
    """docs/configuration.md: every key of the plain sections, with its default, what it allows and what it means."""
    from gan_lab.reference import render

    return render()


if __name__ == "__main__":
    print(reference(), end="")
