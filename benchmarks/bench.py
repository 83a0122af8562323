"""``python -m benchmarks.bench`` (``make bench``): the lab's training step against a plain PyTorch loop.

Three sides per (case, device, precision), timed in one run:

1. **plain**: a hand-written eager PyTorch loop (below);
2. **lab**: the lab eager, ``train.cuda_graphs=false`` (its default);
3. **lab graphs**: the lab with ``train.cuda_graphs=true`` (each D and G update captured once as a CUDA
   graph and replayed). On CUDA only: the lab refuses the option on a CPU, so there the side is not run
   (the table shows "—", the JSON ``null``).

Cases (each one generator iteration = k D steps + 1 G step, k = 1, ``loss=ns optimizer=adam
regularizer=none``):

* ``dcgan32``: ``model=dcgan``, batch 64, on 32×32×3 real images: the mnist5k digits zero-padded to
  32×32 with pixel value −1 and repeated to 3 channels (CIFAR-10's shape), a ``TensorSource`` with
  ``DataSpec("mnist5k_32", (3, 32, 32), "image")``.
* ``mlp_ring``: ``model=mlp dataset=ring train.batch_size=256 optimizer.d.lr=1e-3 optimizer.g.lr=1e-3``, the MLP's
  own ReLU nets (3×256) without the ring's defaults (``~dataset_model``), as this row has always measured.
* ``dcgan_mnist5k``: the default job's model and data (``python -m gan_lab`` with no override):
  ``model=dcgan dataset=mnist5k``, batch 64, 1×28×28.
* ``resnet32``: the SN-GAN ResNet (``model=resnet``, the paper's CIFAR-10 sizes, ``model.d_norm=none``)
  on the same 3×32×32 data as ``dcgan32``, batch 64 — without spectral norm (``regularizer=none``), so
  the plain loop covers it.

Default ``--cases``: ``dcgan32`` and ``mlp_ring`` on the CPU (``resnet32`` takes minutes per run on two
cores), all four on CUDA; ``--cases`` given explicitly applies on every device.

All sides start from the same composed config (the real ``conf/`` tree, as ``python -m gan_lab``
composes it) and the same networks: ``build_components(cfg)`` after seeding with ``cfg.seed``, so G
and D have identical architectures *and* identical initial weights (checked on every run:
``arch_sha256``, ``init_sha256``, parameter counts).

Lab sides: a real run, ``gan_lab.train.train(cfg, run_dir)`` — the function ``python -m gan_lab``
calls — into a temporary run folder: ``build_components``, ``build_system`` (the GAN LightningModule,
manual optimisation), ``GANDataModule`` (indices from the lab's sampler; an in-memory set is copied
to the device once and batches gathered there, ``train.data_on_device=auto``), the lab's callbacks,
the default CSV logger and ``Trainer.fit``. Statistics are accumulated on device and flushed every
``train.log_every`` (default 25) as in any run. Only these settings differ from the lab's defaults:
``trainer.enable_progress_bar=false``; ``train.sample_every=0``, ``train.checkpoint_every=0`` and
``eval.every=0``, so the sample grid, the
checkpoint and the metrics.json/report happen once, at the end of ``fit`` or after it, outside the
timed window (``eval.at_end=false`` skips the final evaluation); ``train.iterations`` = W + N;
``train.cuda_graphs=true`` on the graphs side; and one extra callback (:class:`WindowTimer`, via
``cfg.callbacks``) after the lab's own. With graphs, the first update of each kind runs eagerly and the
second is captured, both inside the warm-up when W >= 2; the timer records how many graphs the run
captured (``graphs`` in ``graphs_runs``; a warning is printed when a run stayed eager).

Plain side: a hand-written loop, no Lightning: the same data tensor moved to the device once
(for the ring, a law with no finite tensor, a pool of points drawn once from it), batches by
indexing with a fresh random permutation per epoch; per iteration: D step on G(z) made under
``no_grad`` (fake detached), NS loss inline with ``F.softplus``, then G step on fresh z with D frozen
(``requires_grad_(False)``, as the lab does, so both sides do the same arithmetic); the same
optimiser class and hyper-parameters from the config; ``loss.item()`` once every ``log_every``
iterations (one host sync per log interval, like the lab's flush); ``torch.autocast`` for
``bf16-mixed`` (what Lightning's precision plugin does); ``train.channels_last`` and
``train.compile_generator`` (off by default; the lab allows the latter on the CPU only) mirrored when an
``--override`` turns them on. ``train.cuda_graphs`` cannot be overridden: the bench sets it per side.

Timing: warm-up W iterations are run and ignored, then N iterations are timed with
``time.perf_counter()`` read at the end of iteration W and of iteration W + N (on the lab sides by a
callback at ``on_train_batch_end``, the last callback, so the lab's own hooks are inside the window;
``torch.cuda.synchronize()`` before each reading on a GPU). it/s = N / elapsed. Each case runs R times
per side, interleaved, the order rotated every repeat (plain, lab, graphs; lab, graphs, plain; graphs,
plain, lab; … — on the CPU plain, lab; lab, plain; …) to spread drift and background load evenly, in
one process with the same ``torch.get_num_threads()`` (recorded inside the window); the reported figure
per side is the median of its R runs. Ratios of medians: lab/plain (``ratio``), graphs/plain
(``graphs_ratio``) and graphs/lab (``graphs_speedup``, what capturing gains over the lab eager).
images/s = it/s × batch size (real images consumed per second; G produces k + 1 times as many).

Checks, on CPU fp32 only (the figures a GPU run adds are reported, not checked): ``dcgan32`` lab/plain
>= 0.95 and ``mlp_ring`` lab/plain >= 0.9; one ``check:`` line per checked case that ran, exit status 1
when one fails (``--no-check`` reports without failing). On a machine with CUDA the default adds the GPU
figures in ``32-true`` and ``bf16-mixed``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import hashlib
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_lab.callbacks.ddp_check import weights_digest
from gan_lab.compose import check_settings
from gan_lab.config import config_dir
from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.launch import device_math
from gan_lab.train import build_components, train
from gan_lab.tricks import Tricks

# (case, device, precision) -> the share of the plain loop's iterations/s the lab eager must reach
CHECKS = {("dcgan32", "cpu", "32-true"): 0.95, ("mlp_ring", "cpu", "32-true"): 0.9}
PRECISIONS = ("32-true", "bf16-mixed")
SIDES = ("plain", "lab", "graphs")  # the interleaving order of the first repeat; rotated every repeat


@dataclass(frozen=True)
class Case:
    name: str
    overrides: tuple[str, ...]
    warmup: int  # default W
    iterations: int  # default N
    dataset: str | None = None  # a dataset _target_ replacing the composed one


CASES = {
    "dcgan32": Case("dcgan32", ("model=dcgan", "loss=ns", "optimizer=adam", "regularizer=none",
                                "train.batch_size=64", "train.k=1"),
                    warmup=10, iterations=60, dataset="benchmarks.bench.mnist5k_32"),
    "mlp_ring": Case("mlp_ring", ("model=mlp", "dataset=ring", "~dataset_model", "loss=ns", "optimizer=adam",
                                  "regularizer=none",
                                  "train.batch_size=256", "train.k=1", "optimizer.d.lr=1e-3", "optimizer.g.lr=1e-3"),
                     warmup=30, iterations=300),
    "dcgan_mnist5k": Case("dcgan_mnist5k", ("model=dcgan", "loss=ns", "optimizer=adam", "regularizer=none",
                                            "dataset=mnist5k", "train.batch_size=64", "train.k=1"),
                          warmup=10, iterations=60),
    "resnet32": Case("resnet32", ("model=resnet", "loss=ns", "optimizer=adam", "regularizer=none",
                                  "train.batch_size=64", "train.k=1"),
                     warmup=5, iterations=20, dataset="benchmarks.bench.mnist5k_32"),
    # the modern nets on the same 3×32×32 data, unregularised so the plain loop runs the same step: StyleGAN2 at
    # -ADA's CIFAR widths (512 channels, 2-layer mapping, G 19.9M / D 21.5M) and R3GAN's CIFAR config (20.7M / 20.7M)
    "stylegan2_32": Case("stylegan2_32", ("model=stylegan2", "model.channel_base=32768", "model.mapping_layers=2",
                                          "loss=ns", "optimizer=adam", "regularizer=none", "train.batch_size=64",
                                          "train.k=1"),
                         warmup=3, iterations=10, dataset="benchmarks.bench.mnist5k_32"),
    "r3gan_32": Case("r3gan_32", ("model=r3gan", "model.widths=[768,768,768,768]", "model.group_size=16",
                                  "model.blocks=2", "loss=ns", "optimizer=adam", "regularizer=none",
                                  "train.batch_size=64", "train.k=1"),
                     warmup=3, iterations=10, dataset="benchmarks.bench.mnist5k_32"),
}
CPU_CASES = ("dcgan32", "mlp_ring")  # the default on the CPU (resnet32 takes minutes per run on two cores)


# ---------------------------------------------------------------------------- data
@functools.cache
def _padded_mnist5k(holdout: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    from gan_lab.data.images import mnist5k

    base = mnist5k(holdout)

    def to32(x: torch.Tensor) -> torch.Tensor:  # (N, 1, 28, 28) -> (N, 3, 32, 32), background -1
        return F.pad(x, (2, 2, 2, 2), value=-1.0).expand(-1, 3, -1, -1).contiguous()

    return to32(base.data), base.labels, None if base.heldout is None else to32(base.heldout)


def mnist5k_32(holdout: int = 500) -> TensorSource:
    """The mnist5k digits as 3×32×32 images (CIFAR-10's shape): zero-padded with −1, grey repeated
    to 3 channels. ``holdout`` as in ``dataset=mnist5k``."""
    data, labels, heldout = _padded_mnist5k(holdout)
    return TensorSource(data, DataSpec("mnist5k_32", (3, 32, 32), "image"), labels, heldout=heldout)


# ---------------------------------------------------------------------------- configuration
def case_config(case: Case, device: str, precision: str, total_iterations: int,
                extra_overrides: tuple[str, ...] = ()) -> DictConfig:
    """The case's config, composed from the real config tree as the command line would."""
    overrides = [*case.overrides,
                 "accelerator=gpu" if device == "cuda" else "accelerator=cpu",
                 f"trainer.precision={precision}", "trainer.enable_progress_bar=false",
                 f"train.iterations={total_iterations}", "train.sample_every=0", "train.checkpoint_every=0",
                 "eval.every=0", "eval.at_end=false", f"trainer.threads={torch.get_num_threads()}",  # the plain side's
                 *extra_overrides]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    if case.dataset is not None:
        with open_dict(cfg):
            cfg.dataset = OmegaConf.create({"_target_": case.dataset})
    return cfg


def check_plain_supported(cfg: DictConfig) -> None:
    """The plain loop writes Algorithm 1 with the NS loss by hand; refuse configs it does not cover."""
    problems = []
    if cfg.loss._target_ != "gan_lab.losses.ns.NonSaturating" or cfg.loss.get("label_smoothing", 0):
        problems.append("loss=ns without label smoothing")
    if set(cfg.regularizer) != {"none"}:
        problems.append("regularizer=none")
    if "system" in cfg.model:
        problems.append("a model trained by Algorithm 1 (mlp, dcgan, resnet)")
    if cfg.mixture.generators != 1 or cfg.mixture.discriminators != 1:
        problems.append("no MIX+GAN mixture")
    if cfg.optimizer.get("lr_decay", "none") != "none":
        problems.append("optimizer.lr_decay=none")
    problems += [f"tricks.{k}={v!r}" for k, v in Tricks().values().items() if cfg.tricks.get(k, v) != v]  # defaults
    if problems:
        raise SystemExit("bench: the plain loop needs " + ", ".join(problems))


# ---------------------------------------------------------------------------- measurement
@dataclass
class Side:
    """One timed run of one side."""

    it_s: float
    seconds: float
    warmup: int
    iterations: int
    threads: int  # torch.get_num_threads() inside the timed window
    params_g: int
    params_d: int
    init_sha256: str  # digest of G's and D's weights (names and bytes) before training
    arch_sha256: str  # digest of G's and D's module structure (their repr)
    trained: dict[str, bool]  # did G's / D's weights move?
    graphs: int | None = None  # lab sides: CUDA graphs the run captured (0: every update eager); plain: None
    objects: dict[str, Any] = field(default_factory=dict, repr=False)  # nets, for tests; not in the JSON

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("objects")
        out["it_s"] = round(self.it_s, 3)
        out["seconds"] = round(self.seconds, 4)
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _snapshot(*nets: torch.nn.Module) -> list[list[torch.Tensor]]:
    return [[p.detach().clone() for p in net.parameters()] for net in nets]


def _moved(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p.detach().to(b.device)) for b, p in zip(before, net.parameters()))


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _init_digest(generator: torch.nn.Module, discriminator: torch.nn.Module) -> str:
    return weights_digest(generator)[:16] + weights_digest(discriminator)[:16]


def _arch_digest(generator: torch.nn.Module, discriminator: torch.nn.Module) -> str:
    return hashlib.sha256(f"{generator!r}\n{discriminator!r}".encode()).hexdigest()[:32]


class WindowTimer(L.Callback):
    """The lab side's stopwatch, added to a real run as an extra callback (``cfg.callbacks``, after
    the lab's own, so their batch-end hooks fall inside the window). It reads the clock at the end
    of iteration ``warmup`` and of iteration ``warmup + iterations``, records what the run trained,
    and writes it all to ``<run folder>/bench_window.json``."""

    FILE = "bench_window.json"

    def __init__(self, warmup: int, iterations: int):
        self.warmup, self.iterations = warmup, iterations
        self.start: float | None = None
        self.stop: float | None = None
        self.threads = 0
        self._before: list[list[torch.Tensor]] = []
        self._record: dict[str, Any] = {}

    def on_train_start(self, trainer, module) -> None:
        g, d = module.generator, module.discriminator
        self._before = _snapshot(g, d)
        self._record = {"params_g": _count(g), "params_d": _count(d), "init_sha256": _init_digest(g, d),
                        "arch_sha256": _arch_digest(g, d)}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        done = batch_idx + 1
        if done == self.warmup:
            _sync(module.device)
            self.start = time.perf_counter()
            self.threads = torch.get_num_threads()
        elif done == self.warmup + self.iterations:
            _sync(module.device)
            self.stop = time.perf_counter()

    def on_train_end(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        trained = {"generator": _moved(self._before[0], module.generator),
                   "discriminator": _moved(self._before[1], module.discriminator)}
        runner = module.runner  # gan_lab/systems/runner.py: which path ran, and the graphs it captured
        graphs = len(runner.graphs) if runner.mode == "graphs" else 0
        record = {**self._record, "start": self.start, "stop": self.stop, "threads": self.threads,
                  "iteration": module.iteration, "trained": trained, "graphs": graphs}
        (Path(trainer.default_root_dir) / self.FILE).write_text(json.dumps(record))


def run_lab(cfg: DictConfig, warmup: int, iterations: int) -> Side:
    """One real run: ``gan_lab.train.train(cfg, run_dir)``, the function ``python -m gan_lab`` calls,
    into a temporary run folder, with :class:`WindowTimer` as an extra callback."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.callbacks = OmegaConf.create({"bench_window": {"_target_": f"{__name__}.WindowTimer",
                                                           "warmup": warmup, "iterations": iterations}})
    with tempfile.TemporaryDirectory(prefix="gan_lab_bench_") as tmp:
        with contextlib.redirect_stdout(io.StringIO()):  # its "report …" / "run folder …" lines
            summary = train(cfg, tmp)
        record = json.loads((Path(tmp) / WindowTimer.FILE).read_text())
    total = warmup + iterations
    if summary.get("iterations") != total or record["iteration"] != total or None in (record["start"],
                                                                                         record["stop"]):
        raise RuntimeError(f"lab run ended at iteration {summary.get('iterations')}, expected {total}")
    seconds = record["stop"] - record["start"]
    return Side(iterations / seconds, seconds, warmup, iterations, record["threads"], record["params_g"],
                record["params_d"], record["init_sha256"], record["arch_sha256"], record["trained"],
                graphs=record.get("graphs", 0))


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(node: DictConfig, params) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in OmegaConf.to_container(node).items() if not k.startswith("_")}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    return get_class(node._target_)(params, **kwargs)


def run_plain(cfg: DictConfig, warmup: int, iterations: int, device: str = "cpu",
              precision: str = "32-true") -> Side:
    """A hand-written PyTorch training loop of the same networks, data, optimisers and loss."""
    check_plain_supported(cfg)
    dev = torch.device(device)
    device_math(check_settings(cfg))  # the lab's TF32 and cuDNN autotuner settings, whichever side ran first
    _seed(cfg.seed)  # what the lab's L.seed_everything does: identical initial weights
    c = build_components(cfg)
    generator, discriminator = c.generator.to(dev).train(), c.discriminator.to(dev).train()
    init, arch = _init_digest(generator, discriminator), _arch_digest(generator, discriminator)
    before = _snapshot(generator, discriminator)
    opt_d = _optimizer(cfg.optimizer.d, discriminator.parameters())
    opt_g = _optimizer(cfg.optimizer.g, generator.parameters())
    batch, k, z_dim, log_every = cfg.train.batch_size, cfg.train.k, cfg.model.z_dim, cfg.train.log_every
    total = warmup + iterations

    if isinstance(c.source, TensorSource):
        pool = c.source.data
    else:  # a law sampled afresh (toy data): one pool of points drawn from it up front
        g = torch.Generator().manual_seed(cfg.seed)
        pool = c.source.sample(max(50_000, 4 * batch * k * total), g)
    pool = pool.to(dev)
    if cfg.train.get("channels_last", False):  # the lab's speed options, mirrored when a run turns them on
        generator.to(memory_format=torch.channels_last)
        discriminator.to(memory_format=torch.channels_last)
        if pool.dim() == 4:
            pool = pool.contiguous(memory_format=torch.channels_last)
    if cfg.train.get("compile_generator", False):
        generator.compile()
    n = pool.shape[0]
    torch.manual_seed(cfg.seed * 1009 + 1)  # the z stream, seeded as the lab's on_fit_start does
    perm, pos = torch.randperm(n, device=dev), 0

    def next_real() -> torch.Tensor:
        nonlocal perm, pos
        if pos + batch > n:
            perm, pos = torch.randperm(n, device=dev), 0
        index = perm[pos: pos + batch]
        pos += batch
        return pool[index]

    autocast = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16-mixed"
                else contextlib.nullcontext())
    losses: list[tuple[float, float]] = []
    start = stop = 0.0
    threads = 0
    for it in range(total):
        with autocast:
            for _ in range(k):
                real = next_real()
                with torch.no_grad():
                    fake = generator(torch.randn(batch, z_dim, device=dev))
                torch.clear_autocast_cache()  # no cast without autograd history reaches G's update
                d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            discriminator.requires_grad_(False)
            g_loss = F.softplus(-discriminator(generator(torch.randn(batch, z_dim, device=dev)))).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            discriminator.requires_grad_(True)
            opt_g.step()
        if (it + 1) % log_every == 0:
            losses.append((d_loss.item(), g_loss.item()))
        if it + 1 == warmup:
            _sync(dev)
            start = time.perf_counter()
            threads = torch.get_num_threads()
        elif it + 1 == total:
            _sync(dev)
            stop = time.perf_counter()
    seconds = stop - start
    return Side(iterations / seconds, seconds, warmup, iterations, threads, _count(generator),
                _count(discriminator), init, arch,
                {"generator": _moved(before[0], generator), "discriminator": _moved(before[1], discriminator)},
                objects={"generator": generator, "discriminator": discriminator, "losses": losses})


# ---------------------------------------------------------------------------- one case
def graphs_warmup(warmup: int, log_every: int) -> int:
    """The graphs side's warm-up: at least ``2 · log_every`` so that every update variant (the logging
    iteration's, which measures gradients, comes once per ``log_every``) has run eagerly once and been
    captured before the window opens, and the window times replays only, as a long run sees them."""
    return max(warmup, 2 * log_every)


def _rotation(sides: tuple[str, ...], r: int) -> tuple[str, ...]:
    """Repeat r's order: the sides rotated r places (plain, lab, graphs; lab, graphs, plain; …)."""
    r %= len(sides)
    return sides[r:] + sides[:r]


def _median(runs: list[Side]) -> float | None:
    return statistics.median(s.it_s for s in runs) if runs else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def bench_case(case: Case, device: str, precision: str, warmup: int, iterations: int, repeats: int,
               extra_overrides: tuple[str, ...] = (), progress=None) -> dict[str, Any]:
    """R interleaved runs per side (plain, lab eager, and lab with CUDA graphs on a CUDA device); medians,
    ratios and images/s. On the CPU the graphs side is not run and its fields are ``None``."""
    cfg = case_config(case, device, precision, warmup + iterations, extra_overrides)
    check_plain_supported(cfg)
    sides = SIDES if device == "cuda" else SIDES[:2]
    g_warmup = graphs_warmup(warmup, int(cfg.train.log_every))
    graphs_cfg = (case_config(case, device, precision, g_warmup + iterations,
                              (*extra_overrides, "train.cuda_graphs=true")) if "graphs" in sides else None)
    runs: dict[str, list[Side]] = {side: [] for side in SIDES}
    for r in range(repeats):
        for side in _rotation(sides, r):
            if side == "lab":
                result = run_lab(copy.deepcopy(cfg), warmup, iterations)
            elif side == "graphs":
                result = run_lab(copy.deepcopy(graphs_cfg), g_warmup, iterations)
            else:
                result = run_plain(copy.deepcopy(cfg), warmup, iterations, device, precision)
            runs[side].append(result)
            if progress is not None:
                progress(f"{case.name} {device} {precision} {side} #{r + 1}: {result.it_s:.2f} it/s")
    plain, lab, graphs = _median(runs["plain"]), _median(runs["lab"]), _median(runs["graphs"])
    batch = int(cfg.train.batch_size)
    first_l = runs["lab"][0]
    done = [s for side in runs.values() for s in side]
    return {
        "case": case.name, "device": device, "precision": precision, "batch_size": batch,
        "k": int(cfg.train.k), "log_every": int(cfg.train.log_every), "warmup": warmup,
        "iterations": iterations, "repeats": repeats, "overrides": list(extra_overrides),
        "plain_it_s": round(plain, 3), "lab_it_s": round(lab, 3), "ratio": round(lab / plain, 4),
        "graphs_it_s": _round(graphs, 3),
        "graphs_ratio": None if graphs is None else round(graphs / plain, 4),
        "graphs_speedup": None if graphs is None else round(graphs / lab, 4),
        "lab_images_s": round(lab * batch, 1), "plain_images_s": round(plain * batch, 1),
        "graphs_images_s": None if graphs is None else round(graphs * batch, 1),
        "graphs_warmup": g_warmup if graphs is not None else None,
        "graphs_captured": None if graphs is None else all(s.graphs for s in runs["graphs"]),
        "pair_ratios": [round(b.it_s / a.it_s, 4) for a, b in zip(runs["plain"], runs["lab"])],
        "graphs_pair_ratios": (None if graphs is None else
                               [round(g.it_s / b.it_s, 4) for b, g in zip(runs["lab"], runs["graphs"])]),
        "params": {"generator": first_l.params_g, "discriminator": first_l.params_d},
        "same_networks": all((s.params_g, s.params_d, s.init_sha256, s.arch_sha256)
                             == (first_l.params_g, first_l.params_d, first_l.init_sha256, first_l.arch_sha256)
                             for s in done),
        "threads": sorted({s.threads for s in done}),
        "plain_runs": [s.as_json() for s in runs["plain"]], "lab_runs": [s.as_json() for s in runs["lab"]],
        "graphs_runs": None if graphs is None else [s.as_json() for s in runs["graphs"]],
    }


# ---------------------------------------------------------------------------- command line
def settings(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(device, precision) pairs: CPU fp32, plus CUDA fp32 and bf16-mixed where CUDA is available."""
    if args.device:
        devices = [args.device]
    else:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    pairs = []
    for device in devices:
        precisions = [args.precision] if args.precision else (["32-true"] if device == "cpu" else list(PRECISIONS))
        pairs += [(device, p) for p in precisions]
    return pairs


def cases_for(args: argparse.Namespace, device: str) -> list[str]:
    """The cases run on ``device``: ``--cases`` where given, else dcgan32 and mlp_ring on the CPU and all
    of them on CUDA."""
    if args.cases:
        return list(args.cases)
    return list(CPU_CASES) if device == "cpu" else list(CASES)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench",
                                description="Time the lab's training step (Lightning; eager, and with CUDA graphs "
                                "on a GPU) against a plain PyTorch loop with the same networks, batch and data "
                                "(make bench).")
    p.add_argument("--cases", help=f"comma-separated, of {', '.join(CASES)} (default: {', '.join(CPU_CASES)} on "
                   "the CPU, all on CUDA; when given, on every device)")
    p.add_argument("--iterations", type=int, help="timed iterations N per run (default: per case, "
                   + ", ".join(f"{c.name} {c.iterations}" for c in CASES.values()) + ")")
    p.add_argument("--warmup", type=int, help="warm-up iterations W before the window (default: per case, "
                   + ", ".join(f"{c.name} {c.warmup}" for c in CASES.values())
                   + "; the graphs side at least 2 × train.log_every)")
    p.add_argument("--repeats", type=int, default=5,
                   help="runs per side, interleaved; the median is reported (default 5: with 3, one slow run on a "
                   "shared machine could decide the median)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cpu, plus cuda when available")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="default: 32-true on the CPU, 32-true and bf16-mixed on CUDA")
    p.add_argument("--threads", type=int, help="torch.set_num_threads for every side (default: torch's own)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra Hydra override for every case, e.g. model.width=32 (repeatable)")
    p.add_argument("--out", default="bench.json", help="where the JSON results go (default: ./bench.json)")
    p.add_argument("--no-check", action="store_true", help="report the CPU fp32 checks without failing ("
                   + ", ".join(f"{c} lab/plain >= {t}" for (c, _, _), t in CHECKS.items()) + ")")
    args = p.parse_args(argv)
    if args.cases is not None:
        names = [n.strip() for n in args.cases.split(",") if n.strip()]
        unknown = [n for n in names if n not in CASES]
        if unknown or not names:
            p.error(f"--cases: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CASES)}")
        args.cases = names
    for override in args.override:
        if override.lstrip("+~").split("=", 1)[0].strip() == "train.cuda_graphs":
            p.error("--override train.cuda_graphs: the bench sets it per side (lab: false, lab graphs: true)")
    for flag, low in (("iterations", 1), ("warmup", 1), ("repeats", 1), ("threads", 1)):
        value = getattr(args, flag)
        if value is not None and value < low:
            p.error(f"--{flag} must be at least {low}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    return args


def environment() -> dict[str, Any]:
    env = {"torch": torch.__version__, "lightning": L.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
    return env


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _it_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n:,}"


def print_table(rows: list[dict[str, Any]], console) -> None:
    from rich.table import Table

    table = Table(title="gan_lab bench: plain PyTorch loop vs the lab (Lightning) eager and with CUDA graphs, "
                  "median of interleaved runs")
    for name, justify in (("case", "left"), ("device", "left"), ("precision", "left"), ("batch", "right"),
                          ("plain it/s", "right"), ("lab it/s", "right"), ("lab graphs it/s", "right"),
                          ("lab/plain", "right"), ("graphs/plain", "right"), ("graphs/lab", "right"),
                          ("lab images/s", "right"), ("params G / D", "right")):
        table.add_column(name, justify=justify)
    for r in rows:
        table.add_row(r["case"], r["device"], r["precision"], str(r["batch_size"]), _it_s(r["plain_it_s"]),
                      _it_s(r["lab_it_s"]), _it_s(r.get("graphs_it_s")), _ratio(r["ratio"]),
                      _ratio(r.get("graphs_ratio")), _ratio(r.get("graphs_speedup")), f"{r['lab_images_s']:.0f}",
                      f"{_params(r['params']['generator'])} / {_params(r['params']['discriminator'])}")
    console.print(table)
    graphs_warmups = sorted({r["graphs_warmup"] for r in rows if r.get("graphs_warmup") is not None})
    console.print("it/s: generator iterations per second (k D steps + 1 G step each); images/s = it/s × batch; "
                  "lab: train.cuda_graphs=false; lab graphs: train.cuda_graphs=true, CUDA only (—: not run); "
                  "graphs/lab: its speed-up over the lab eager; "
                  f"{rows[0]['repeats'] if rows else 0} runs per side after W warm-up iterations"
                  + (f" (graphs side: {', '.join(map(str, graphs_warmups))}, every step variant captured first)"
                     if graphs_warmups else "")
                  + f"; torch threads {sorted({t for r in rows for t in r['threads']})}.", highlight=False)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=max(170, Console().width))  # the table's 12 columns, unwrapped
    progress = lambda line: print(f"bench: {line}", file=sys.stderr, flush=True)
    rows = []
    for device, precision in settings(args):
        for name in cases_for(args, device):
            case = CASES[name]
            warmup = args.warmup or case.warmup
            iterations = args.iterations or case.iterations
            rows.append(bench_case(case, device, precision, warmup, iterations, args.repeats,
                                   tuple(args.override), progress))

    checked = [(r, CHECKS[key]) for r in rows if (key := (r["case"], r["device"], r["precision"])) in CHECKS]
    failed = [(r, threshold) for r, threshold in checked if r["ratio"] < threshold]
    check = {"ran": bool(checked), "skipped": args.no_check, "passed": not failed,
             "thresholds": {"/".join(key): threshold for key, threshold in CHECKS.items()},
             "cases": [{"case": "/".join((r["case"], r["device"], r["precision"])), "threshold": threshold,
                        "ratio": r["ratio"], "passed": r["ratio"] >= threshold} for r, threshold in checked]}
    payload = {"environment": environment(), "check": check,
               "results": rows}
    print_table(rows, console)
    for r, threshold in checked:
        verdict = "ok" if r["ratio"] >= threshold else "FAIL"
        print(f"check: {r['case']}/{r['device']}/{r['precision']} lab reaches {r['ratio']:.3f} of the plain loop "
              f"(needs >= {threshold}): {verdict}{' (not enforced: --no-check)' if args.no_check else ''}")
    for r in rows:
        if not r["same_networks"]:
            print(f"warning: {r['case']}: the sides' networks differ (parameter counts or initial weights)")
        if r.get("graphs_captured") is False:
            print(f"warning: {r['case']} {r['device']} {r['precision']}: a train.cuda_graphs=true run captured "
                  "no graph (its step stayed eager; see the lab's log line for why)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps(payload, separators=(",", ":")))
    if failed and not args.no_check:
        for r, threshold in failed:
            print(f"bench: FAIL: on {r['case']} {r['device']} {r['precision']} the lab runs at {r['ratio']:.3f} of "
                  f"the plain loop's iterations/s, below the required {threshold}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
