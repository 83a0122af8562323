"""``python -m benchmarks.bench`` (``make bench``): the lab's training step against a plain PyTorch loop.

Cases (each one generator iteration = k D steps + 1 G step, k = 1):

* ``dcgan32``: ``model=dcgan loss=ns optimizer=adam``, batch 64, on 32×32×3 real images: the mnist5k
  digits zero-padded to 32×32 with pixel value −1 and repeated to 3 channels (CIFAR-10's shape),
  a ``TensorSource`` with ``DataSpec("mnist5k_32", (3, 32, 32), "image")``.
* ``mlp_ring``: the README's ring command, ``model=mlp dataset=ring train.batch_size=256
  optimizer.d.lr=1e-3 optimizer.g.lr=1e-3``.

Both sides start from the same composed config (the real ``conf/`` tree, as ``python -m gan_lab``
composes it) and the same networks: ``build_components(cfg)`` after seeding with ``cfg.seed``, so G
and D have identical architectures *and* identical initial weights (checked on every run:
``arch_sha256``, ``init_sha256``, parameter counts).

Lab side: a real run, ``gan_lab.train.train(cfg, run_dir)`` — the function ``python -m gan_lab``
calls — into a temporary run folder: ``build_components``, ``build_system`` (the GAN LightningModule,
manual optimisation), ``GANDataModule`` (indices from the lab's sampler; an in-memory set is copied
to the device once and batches gathered there, ``train.data_on_device=auto``), the lab's callbacks,
the default CSV logger and ``Trainer.fit``. Statistics are accumulated on device and flushed every
``train.log_every`` (default 25) as in any run. Only these settings differ from the lab's defaults:
``trainer.enable_progress_bar=false``; ``train.sample_every=0``, ``train.checkpoint_every=0`` and
``eval.every=0``, so the sample grid, the
checkpoint and the metrics.json/report happen once, at the end of ``fit`` or after it, outside the
timed window (``eval.at_end=false`` skips the final evaluation); ``train.iterations`` = W + N; and one
extra callback (:class:`WindowTimer`, via ``cfg.callbacks``) after the lab's own.

Plain side: a hand-written loop, no Lightning: the same data tensor moved to the device once
(for the ring, a law with no finite tensor, a pool of points drawn once from it), batches by
indexing with a fresh random permutation per epoch; per iteration: D step on G(z) made under
``no_grad`` (fake detached), NS loss inline with ``F.softplus``, then G step on fresh z with D frozen
(``requires_grad_(False)``, as the lab does, so both sides do the same arithmetic); the same
optimiser class and hyper-parameters from the config; ``loss.item()`` once every ``log_every``
iterations (one host sync per log interval, like the lab's flush); ``torch.autocast`` for
``bf16-mixed`` (what Lightning's precision plugin does); ``train.channels_last`` and
``train.compile_generator`` (off by default) mirrored when an ``--override`` turns them on.

Timing: warm-up W iterations are run and ignored, then N iterations are timed with
``time.perf_counter()`` read at the end of iteration W and of iteration W + N (on the lab side by a
callback at ``on_train_batch_end``, the last callback, so the lab's own hooks are inside the window;
``torch.cuda.synchronize()`` before each reading on a GPU). it/s = N / elapsed. Each case runs R times
per side, interleaved (plain, lab, lab, plain, plain, lab, …) to spread drift and background load
evenly, in one process with the same ``torch.get_num_threads()`` (recorded inside the window); the
reported figure per side is the median of its R runs, and ratio = median lab it/s ÷ median plain
it/s. images/s = it/s × batch size (real images consumed per second; G produces k + 1 times as many).

Exit status 1 when the DCGAN CPU fp32 ratio is below 0.9 (``--no-check`` skips the check). On a
machine with CUDA the default adds the GPU figures in ``32-true`` and ``bf16-mixed``.
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
from gan_lab.config import config_dir
from gan_lab.data.base import DataSpec, TensorSource
from gan_lab.train import build_components, train
from gan_lab.tricks import Tricks

THRESHOLD = 0.9  # the lab's DCGAN CPU fp32 iterations/s must reach this share of the plain loop's
CHECKED = ("dcgan32", "cpu", "32-true")
PRECISIONS = ("32-true", "bf16-mixed")


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
    "mlp_ring": Case("mlp_ring", ("model=mlp", "dataset=ring", "loss=ns", "optimizer=adam", "regularizer=none",
                                  "train.batch_size=256", "train.k=1", "optimizer.d.lr=1e-3", "optimizer.g.lr=1e-3"),
                     warmup=30, iterations=300),
}


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
                 "eval.every=0", "eval.at_end=false", *extra_overrides]
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
        record = {**self._record, "start": self.start, "stop": self.stop, "threads": self.threads,
                  "iteration": module.iteration, "trained": trained}
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
                record["params_d"], record["init_sha256"], record["arch_sha256"], record["trained"])


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
                {"generator": generator, "discriminator": discriminator, "losses": losses})


# ---------------------------------------------------------------------------- one case
def bench_case(case: Case, device: str, precision: str, warmup: int, iterations: int, repeats: int,
               extra_overrides: tuple[str, ...] = (), progress=None) -> dict[str, Any]:
    """R interleaved runs per side; medians, ratio and images/s."""
    cfg = case_config(case, device, precision, warmup + iterations, extra_overrides)
    check_plain_supported(cfg)
    runs: dict[str, list[Side]] = {"plain": [], "lab": []}
    for r in range(repeats):
        for side in (("plain", "lab") if r % 2 == 0 else ("lab", "plain")):
            if side == "lab":
                result = run_lab(copy.deepcopy(cfg), warmup, iterations)
            else:
                result = run_plain(copy.deepcopy(cfg), warmup, iterations, device, precision)
            runs[side].append(result)
            if progress is not None:
                progress(f"{case.name} {device} {precision} {side} #{r + 1}: {result.it_s:.2f} it/s")
    plain = statistics.median(s.it_s for s in runs["plain"])
    lab = statistics.median(s.it_s for s in runs["lab"])
    batch = int(cfg.train.batch_size)
    first_l = runs["lab"][0]
    return {
        "case": case.name, "device": device, "precision": precision, "batch_size": batch,
        "k": int(cfg.train.k), "log_every": int(cfg.train.log_every), "warmup": warmup,
        "iterations": iterations, "repeats": repeats, "overrides": list(extra_overrides),
        "plain_it_s": round(plain, 3), "lab_it_s": round(lab, 3), "ratio": round(lab / plain, 4),
        "lab_images_s": round(lab * batch, 1), "plain_images_s": round(plain * batch, 1),
        "pair_ratios": [round(b.it_s / a.it_s, 4) for a, b in zip(runs["plain"], runs["lab"])],
        "params": {"generator": first_l.params_g, "discriminator": first_l.params_d},
        "same_networks": all((s.params_g, s.params_d, s.init_sha256, s.arch_sha256)
                             == (first_l.params_g, first_l.params_d, first_l.init_sha256, first_l.arch_sha256)
                             for side in runs.values() for s in side),
        "threads": sorted({s.threads for side in runs.values() for s in side}),
        "plain_runs": [s.as_json() for s in runs["plain"]], "lab_runs": [s.as_json() for s in runs["lab"]],
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench",
                                description="Time the lab's training step (Lightning) against a plain PyTorch "
                                "loop with the same networks, batch and data (make bench).")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default: all)")
    p.add_argument("--iterations", type=int, help="timed iterations N per run (default: dcgan32 60, mlp_ring 300)")
    p.add_argument("--warmup", type=int, help="warm-up iterations W before the window (default: 10, 30)")
    p.add_argument("--repeats", type=int, default=3, help="runs per side, interleaved; the median is reported")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cpu, plus cuda when available")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="default: 32-true on the CPU, 32-true and bf16-mixed on CUDA")
    p.add_argument("--threads", type=int, help="torch.set_num_threads for both sides (default: torch's own)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra Hydra override for every case, e.g. model.width=32 (repeatable)")
    p.add_argument("--out", default="bench.json", help="where the JSON results go (default: ./bench.json)")
    p.add_argument("--no-check", action="store_true", help=f"do not fail when the DCGAN CPU ratio is < {THRESHOLD}")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown or not names:
        p.error(f"--cases: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CASES)}")
    args.cases = names
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


def print_table(rows: list[dict[str, Any]], console) -> None:
    from rich.table import Table

    table = Table(title="gan_lab bench: lab (Lightning) vs plain PyTorch loop, median of interleaved runs")
    for name, justify in (("case", "left"), ("device", "left"), ("precision", "left"), ("batch", "right"),
                          ("plain it/s", "right"), ("lab it/s", "right"), ("ratio lab/plain", "right"),
                          ("lab images/s", "right"), ("params G / D", "right")):
        table.add_column(name, justify=justify)
    for r in rows:
        table.add_row(r["case"], r["device"], r["precision"], str(r["batch_size"]), f"{r['plain_it_s']:.2f}",
                      f"{r['lab_it_s']:.2f}", f"{r['ratio']:.3f}", f"{r['lab_images_s']:.0f}",
                      f"{r['params']['generator']:,} / {r['params']['discriminator']:,}")
    console.print(table)
    console.print("it/s: generator iterations per second (k D steps + 1 G step each); images/s = it/s × batch; "
                  f"{rows[0]['repeats'] if rows else 0} runs per side after W warm-up iterations; "
                  f"torch threads {sorted({t for r in rows for t in r['threads']})}.", highlight=False)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=max(120, Console().width))
    progress = lambda line: print(f"bench: {line}", file=sys.stderr, flush=True)
    rows = []
    for device, precision in settings(args):
        for name in args.cases:
            case = CASES[name]
            warmup = args.warmup or case.warmup
            iterations = args.iterations or case.iterations
            rows.append(bench_case(case, device, precision, warmup, iterations, args.repeats,
                                   tuple(args.override), progress))

    checked = [r for r in rows if (r["case"], r["device"], r["precision"]) == CHECKED]
    failed = [r for r in checked if r["ratio"] < THRESHOLD]
    check = {"threshold": THRESHOLD, "case": "/".join(CHECKED), "ran": bool(checked), "skipped": args.no_check,
             "passed": not failed}
    payload = {"environment": environment(), "check": check,
               "results": rows}
    print_table(rows, console)
    for r in checked:
        verdict = "ok" if r["ratio"] >= THRESHOLD else "FAIL"
        print(f"check: {'/'.join(CHECKED)} lab reaches {r['ratio']:.3f} of the plain loop "
              f"(needs >= {THRESHOLD}): {verdict}{' (not enforced: --no-check)' if args.no_check else ''}")
    for r in rows:
        if not r["same_networks"]:
            print(f"warning: {r['case']}: the two sides' networks differ (parameter counts or initial weights)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps(payload, separators=(",", ":")))
    if failed and not args.no_check:
        print(f"bench: FAIL: on DCGAN-32 CPU fp32 the lab runs at {failed[0]['ratio']:.3f} of the plain "
              f"loop's iterations/s, below the required {THRESHOLD}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
