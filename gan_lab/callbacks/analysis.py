"""End-of-run pictures for the classic experiments; each fills ``summary`` for metrics.json.

Presets add them through the ``callbacks`` config node; the run folder is the trainer's
``default_root_dir``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import torch

from gan_lab.viz import _figure_to_array, save_png


class OptimalDiscriminatorPlot(L.Callback):
    """1-D: learned σ(V(x)) against D*(x) = p/(p+q) (Goodfellow 2014, Prop. 1; ECE544 lecture notes,
    docs/references.md), with p, q.

    Needs a data source with ``log_prob`` (gauss1d) and a generator with ``log_prob`` (affine1d).
    The error is measured where p + q > ``mass`` (elsewhere D* is 0/0 and D is unconstrained).
    """

    def __init__(self, lo: float = -4.0, hi: float = 6.0, mass: float = 0.05):
        self.lo, self.hi, self.mass = lo, hi, mass
        self.summary: dict[str, float] = {}

    @torch.no_grad()
    def on_train_end(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        source = trainer.datamodule.source
        x = torch.linspace(self.lo, self.hi, 801).unsqueeze(1)
        p = source.log_prob(x).exp().squeeze(1)
        q = module.generator.log_prob(x).exp().squeeze(1)
        module.discriminator.eval()
        learned = torch.sigmoid(module.discriminator(x.to(module.device)).float().cpu())
        module.discriminator.train()
        optimal = p / (p + q).clamp_min(1e-30)
        where = (p + q) > self.mass
        err = (learned - optimal).abs()[where]
        self.summary = {"optimal_d/max_abs_error": float(err.max()), "optimal_d/mean_abs_error": float(err.mean())}

        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        ax.plot(x[:, 0], p, label="p (data)", c="tab:blue")
        ax.plot(x[:, 0], q, label="q (generator)", c="tab:green")
        ax.plot(x[:, 0], optimal, "k--", label="D* = p/(p+q)")
        ax.plot(x[:, 0], learned, c="tab:red", label="learned σ(V(x))")
        ax.set_title(f"optimal discriminator: mean |σ(V) − D*| = {self.summary['optimal_d/mean_abs_error']:.3f}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save_png(_figure_to_array(fig), Path(trainer.default_root_dir) / "optimal_d.png")


class GeneratorParameterPlot(L.Callback):
    """Curves of the generator's reported parameters (``train/g/*``), e.g. θ and ∂L/∂θ."""

    def __init__(self, filename: str = "generator_parameters.png"):
        self.filename = filename
        self.summary: dict[str, float] = {}

    def on_train_end(self, trainer, module) -> None:
        if not trainer.is_global_zero or not module.history:
            return
        names = sorted({k for row in module.history for k in row if k.startswith("train/g/")})
        if not names:
            return
        fig, axes = plt.subplots(len(names), 1, figsize=(7, 2.4 * len(names)), dpi=100, squeeze=False)
        steps = [row["iteration"] for row in module.history]
        for ax, name in zip(axes[:, 0], names):
            ax.plot(steps, [row.get(name, float("nan")) for row in module.history])
            ax.set_title(name)
            ax.axhline(0.0, c="k", lw=0.5)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("generator iteration")
        fig.tight_layout()
        save_png(_figure_to_array(fig), Path(trainer.default_root_dir) / self.filename)
        last = module.history[-1]
        self.summary = {name.replace("train/g/", "g/final_"): last[name] for name in names if name in last}


class DensityFitPlot(L.Callback):
    """1-D: the data density p against the generator's q (an affine G: q = N(loc, scale²)).

    The JS_π picture of the Zhang lecture notes (docs/references.md): which single Gaussian minimises a
    divergence to a bimodal p.
    """

    def __init__(self, lo: float = -5.0, hi: float = 5.0):
        self.lo, self.hi = lo, hi
        self.summary: dict[str, float] = {}

    @torch.no_grad()
    def on_train_end(self, trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        source, g = trainer.datamodule.source, module.generator
        x = torch.linspace(self.lo, self.hi, 801).unsqueeze(1)
        p = source.log_prob(x).exp().squeeze(1)
        q = g.log_prob(x).exp().squeeze(1)
        loc, scale = float(g.loc), abs(float(g.scale))
        self.summary = {"fit/loc": loc, "fit/scale": scale}
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        ax.fill_between(x[:, 0], p, alpha=0.3, label="p (data)")
        ax.plot(x[:, 0], q, c="tab:red", label=f"q = N({loc:.2f}, {scale:.2f}²)")
        title = getattr(module.loss, "divergence", getattr(module.loss, "name", ""))
        if title == "js_pi":
            title += f", π = {module.loss.pi}"
        ax.set_title(f"argmin_q D(p‖q) found by training: {title}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save_png(_figure_to_array(fig), Path(trainer.default_root_dir) / "density_fit.png")
