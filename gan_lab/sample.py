"""``python -m gan_lab.sample run=<run folder> n=10000 out=<dir> [interpolate=true] [seed=0] [class=7 | classes=all]
[truncation=0.7] [checkpoint=best]``

Writes ``samples.npy`` and a picture (grid or scatter) of n samples from the run's generator (the
EMA one when the run kept it); ``interpolate=true`` adds latent walks, linear (lerp) and spherical
(slerp), as grids (latent walks: LAMBDA lecture notes, docs/references.md).

A class-conditional run (``model.conditional``) draws every class in turn (``classes=all``, the default), the
listed ones (``classes=1,3,7``) or one (``class=7``); ``samples_labels.npy`` holds each sample's class, the
picture one row per class, and each latent walk keeps its row's class fixed.

``checkpoint=best`` draws from the run at its best in-training measurement (``eval.best``'s
checkpoints/best.ckpt) instead of its newest checkpoint; ``out`` then defaults to ``best/samples_<n>``.

``truncation=ψ`` (the truncation trick of StyleGAN, Karras et al. 2019, as StyleGAN2 samples): G draws from
w' = w̄ + ψ(w − w̄), w̄ the mean intermediate latent G tracked in training; ψ = 1 is plain sampling, ψ = 0 draws
the image of w̄ for every z (different noise aside). Only a G with a ``psi`` argument has it (model=stylegan2).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.runs import count, load_run, run_command
from gan_lab.viz import class_grid, image_grid, points_picture, samples_picture, save_png

ARGS = {"run": str, "n": count, "out": str, "interpolate": bool, "seed": int, "steps": count, "rows": count,
        "class": int, "classes": str, "truncation": float, "checkpoint": str}


class Truncated(nn.Module):
    """G(z[, y]) drawn at truncation ``psi``: ``generator(z, y, psi=psi)``."""

    def __init__(self, generator: nn.Module, psi: float):
        super().__init__()
        self.generator, self.psi = generator, psi

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, y, psi=self.psi)


@contextmanager
def truncated(system, psi: float) -> Iterator[None]:
    """Within it, every sample the system draws (``system.generate``: G, or the EMA copy that draws) is truncated at
    ``psi``; refuses a ψ other than 1 for a generator without a ``psi`` argument, naming ``truncation``."""
    if not math.isfinite(psi):
        raise ConfigError("truncation", psi, "a finite number (1: none; 0.5–0.7 is usual)")
    if psi == 1:
        yield
        return
    sampler = system.sampler
    if "psi" not in inspect.signature(sampler.forward).parameters:
        raise ConfigError("truncation", psi, "1 for this run", f"its generator ({type(sampler).__name__}) has no "
                          "truncation ψ; model=stylegan2's has (w' = w̄ + ψ(w − w̄))")
    owner, name = (system.generator_ema, "module") if system.generator_ema is not None else (system, "generator")
    setattr(owner, name, Truncated(sampler, psi))
    try:
        yield
    finally:
        setattr(owner, name, sampler)


def chosen_classes(system, one: int | None, many: str | None) -> list[int] | None:
    """The classes asked for (None for an unconditional run); refuses a class the run does not have, or a class
    asked of an unconditional run, naming the key."""
    if system.conditional == "none":
        if one is not None or many is not None:
            key, value = ("class", one) if one is not None else ("classes", many)
            raise ConfigError(key, value, "nothing for this run", "its generator is unconditional "
                              "(model.conditional=none): it cannot be asked for a class")
        return None
    if one is not None and many is not None:
        raise ConfigError("classes", many, f"nothing with class={one}", "ask for one class or for a list")
    k = system.n_classes
    if many is None or many == "all":
        wanted = list(range(k)) if one is None else [one]
    else:
        try:
            wanted = [int(c) for c in many.split(",")]
        except ValueError:
            raise ConfigError("classes", many, "all, or a comma-separated list of class indices") from None
    for c in wanted:
        if not 0 <= c < k:
            raise ConfigError("class" if one is not None else "classes", c, f"a class index in [0, {k - 1}]")
    return wanted


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of z0 and z1 (N, D) at fractions t (T,) -> (N, T, D)."""
    cos = (z0 * z1).sum(1, keepdim=True) / (z0.norm(dim=1, keepdim=True) * z1.norm(dim=1, keepdim=True))
    omega = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))[:, None]  # (N, 1, 1)
    t = t[None, :, None]
    return (torch.sin((1 - t) * omega) * z0[:, None] + torch.sin(t * omega) * z1[:, None]) / torch.sin(omega)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1 - t[None, :, None]) * z0[:, None] + t[None, :, None] * z1[:, None]


def walks(system, rows: int, steps: int, generator: torch.Generator,
          classes: list[int] | None = None) -> dict[str, torch.Tensor]:
    """G along ``rows`` latent walks of ``steps`` points each, per interpolation: (rows·steps, *shape); in a
    class-conditional run walk r keeps the class ``classes[r % len(classes)]`` fixed."""
    z0, z1 = system.sample_z(rows, generator).cpu(), system.sample_z(rows, generator).cpu()
    t = torch.linspace(0, 1, steps)
    labels = None
    if classes is not None:
        labels = torch.tensor([classes[r % len(classes)] for r in range(rows)]).repeat_interleave(steps)
    return {name: system.generate(fn(z0, z1, t).reshape(rows * steps, -1), labels)
            for name, fn in (("lerp", lerp), ("slerp", slerp))}


def sample(run: str, n: int = 10000, out: str | None = None, interpolate: bool = False, seed: int = 0,
           steps: int = 10, rows: int = 8, label: int | None = None, classes: str | None = None,
           truncation: float = 1.0, checkpoint: str = "last") -> Path:
    """``label``: the command line's ``class=`` (one class); ``classes``: all, or a comma-separated list;
    ``truncation``: ψ (module docstring); ``checkpoint``: last, or best (``eval.best``'s)."""
    loaded = load_run(run, checkpoint=checkpoint)
    system = loaded.system
    wanted = chosen_classes(system, label, classes)
    with truncated(system, truncation):
        return _write(loaded, n, out, interpolate, seed, steps, rows, wanted)


def _write(loaded, n: int, out: str | None, interpolate: bool, seed: int, steps: int, rows: int,
           wanted: list[int] | None) -> Path:
    system, spec = loaded.system, loaded.source.spec
    best = loaded.checkpoint.name == "best.ckpt"
    out_dir = Path(out) if out else loaded.run_dir / ("best" if best else "") / f"samples_{n}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file of that name, a file on its path, a read-only place
        raise ConfigError("out", str(out_dir), "a folder it can write to", f"{err.strerror or err}") from None
    g = torch.Generator().manual_seed(seed)
    z = system.sample_z(n, g).cpu()
    if wanted is None:
        fake = system.generate(z)
    else:  # the classes in turn: sample i is drawn for wanted[i mod m]
        labels = torch.tensor(wanted)[torch.arange(n) % len(wanted)]
        fake = system.generate(z, labels)
        np.save(out_dir / "samples_labels.npy", labels.numpy())
    np.save(out_dir / "samples.npy", fake.numpy())
    real = loaded.source.sample(min(n, 2500), g)
    if wanted is not None and spec.is_image:  # one row per class: its first 10 samples
        per_row = min(10, n // len(wanted)) or 1
        order = torch.cat([torch.arange(i, n, len(wanted))[:per_row] for i in range(min(len(wanted), n))])
        save_png(class_grid(fake[order], spec, per_row), out_dir / "samples.png")
    else:
        save_png(samples_picture(fake, real, spec, f"{n} samples", getattr(loaded.source, "centers", None)),
                 out_dir / "samples.png")
    if interpolate:
        for name, images in walks(system, rows, steps, g, wanted).items():
            if spec.is_image:
                picture = image_grid(images, nrow=steps, scale=max(1, 64 // spec.shape[-1]))
            else:
                picture = points_picture(images, real, f"{name}: {rows} walks of {steps} points")
            save_png(picture, out_dir / f"interpolation_{name}.png")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    def body(args: dict) -> str:
        if "class" in args:
            args["label"] = args.pop("class")
        return f"samples in {sample(**args)}"

    run_command(body, ARGS, "sample", argv)


if __name__ == "__main__":
    main()
