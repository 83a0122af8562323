"""``python -m gan_lab.sample run=<run folder> n=10000 out=<dir> [interpolate=true] [seed=0]``

Writes ``samples.npy`` and a picture (grid or scatter) of n samples from the run's generator (the
EMA one when the run kept it); ``interpolate=true`` adds latent walks, linear (lerp) and spherical
(slerp), as grids (seed 004: latent walks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan_lab.runs import load_run, run_command
from gan_lab.viz import image_grid, points_picture, samples_picture, save_png

ARGS = {"run": str, "n": int, "out": str, "interpolate": bool, "seed": int, "steps": int, "rows": int}


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of z0 and z1 (N, D) at fractions t (T,) -> (N, T, D)."""
    cos = (z0 * z1).sum(1, keepdim=True) / (z0.norm(dim=1, keepdim=True) * z1.norm(dim=1, keepdim=True))
    omega = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))[:, None]  # (N, 1, 1)
    t = t[None, :, None]
    return (torch.sin((1 - t) * omega) * z0[:, None] + torch.sin(t * omega) * z1[:, None]) / torch.sin(omega)


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1 - t[None, :, None]) * z0[:, None] + t[None, :, None] * z1[:, None]


def walks(system, rows: int, steps: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """G along ``rows`` latent walks of ``steps`` points each, per interpolation: (rows·steps, *shape)."""
    z0, z1 = system.sample_z(rows, generator).cpu(), system.sample_z(rows, generator).cpu()
    t = torch.linspace(0, 1, steps)
    return {name: system.generate(fn(z0, z1, t).reshape(rows * steps, -1)) for name, fn in
            (("lerp", lerp), ("slerp", slerp))}


def sample(run: str, n: int = 10000, out: str | None = None, interpolate: bool = False, seed: int = 0,
           steps: int = 10, rows: int = 8) -> Path:
    loaded = load_run(run)
    system, spec = loaded.system, loaded.source.spec
    out_dir = Path(out) if out else loaded.run_dir / f"samples_{n}"
    out_dir.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    fake = system.generate(system.sample_z(n, g).cpu())
    np.save(out_dir / "samples.npy", fake.numpy())
    real = loaded.source.sample(min(n, 2500), g)
    save_png(samples_picture(fake, real, spec, f"{n} samples", getattr(loaded.source, "centers", None)),
             out_dir / "samples.png")
    if interpolate:
        for name, images in walks(system, rows, steps, g).items():
            if spec.is_image:
                picture = image_grid(images, nrow=steps, scale=max(1, 64 // spec.shape[-1]))
            else:
                picture = points_picture(images, real, f"{name}: {rows} walks of {steps} points")
            save_png(picture, out_dir / f"interpolation_{name}.png")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    run_command(lambda args: f"samples in {sample(**args)}", ARGS, "sample", argv)


if __name__ == "__main__":
    main()
