"""Post-hoc samplers of the final G, each measured apart from the run's own samples (docs/science.md,
"Discriminator rejection sampling", "Jacobian-based truncation"):

* ``drs`` — Discriminator Rejection Sampling (``eval.drs``, :mod:`gan_lab.drs`);
* ``jbt`` — Jacobian-based truncation (``eval.jbt``, :mod:`gan_lab.jbt`);
* ``jbt_drs`` — with both enabled, also JBT's survivors through DRS (DRS's proposal is JBT's samples).

Each one's samples get the same metrics as the run's own, under its prefix in metrics.json (``drs/toy/…``,
``jbt/val/fid_5k_…``), with its acceptance rate, a top-level block saying how it measured (or why it did not:
``{"measured": false, "reason": …}``, and none of its earlier numbers kept), and for 2-D data a picture,
``<prefix>_scatter.png``. A failure is the measurement's alone: the run stays finished.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gan_lab import drs as rejection
from gan_lab import jbt as truncation
from gan_lab.distributed import Ranks
from gan_lab.measure import feature_metrics, merge_summary, point_metrics, shared_features
from gan_lab.settings import DRS, JBT, Eval

TITLES = {"drs": "DRS", "jbt": "JBT", "jbt_drs": "JBT then DRS"}


@dataclass(frozen=True)
class Filters:
    """``eval.drs`` and ``eval.jbt``, and which measurements they ask for."""

    drs: DRS
    jbt: JBT

    @classmethod
    def of(cls, settings: Eval) -> Filters:
        return cls(settings.drs, settings.jbt)

    @property
    def chosen(self) -> list[str]:
        on = {"drs": self.drs.enabled, "jbt": self.jbt.enabled}
        on["jbt_drs"] = on["drs"] and on["jbt"]
        return [name for name, enabled in on.items() if enabled]

    @property
    def flags(self) -> str:
        """The same measurements as ``python -m gan_lab.evaluate`` arguments."""
        return " ".join(f"{name}=true" for name in ("drs", "jbt") if name in self.chosen)


def select(name: str, system, source, filters: Filters, n: int, generator: torch.Generator,
           batch: int) -> tuple[torch.Tensor, dict, str]:
    """n samples of the filter ``name``, what it took (``drawn`` and ``acceptance_rate``, both counting G's own
    samples; ``block``: its settings) and its protocol in words."""
    if name == "jbt":
        fake, stats = truncation.truncate(system, n, filters.jbt, generator, batch)
        block = {**_jbt_block(filters.jbt), "threshold": stats["threshold"], "median_norm": stats["median_norm"]}
        return fake, {**stats, "block": block}, _jbt_protocol(filters.jbt, n, stats["drawn"])
    draw = truncation.proposal(system, filters.jbt, batch) if name == "jbt_drs" else None
    fake, stats, protocol = rejection.select(system, source, filters.drs, n, generator, batch, draw)
    if name == "jbt_drs":  # DRS drew JBT's survivors, eval.drs.batch at a time, each batch from ⌈batch / keep⌉ of G
        per_batch = math.ceil(filters.drs.batch / filters.jbt.keep)
        stats["acceptance_rate"] *= filters.drs.batch / per_batch
        stats["drawn"] = stats["drawn"] // filters.drs.batch * per_batch
        stats["block"] = {**stats["block"], **_jbt_block(filters.jbt)}
        protocol = (f"{rejection.describe(filters.drs, n, stats['drawn'])} samples of G, each batch of "
                    f"{filters.drs.batch} through {_jbt_protocol(filters.jbt)}")
    return fake, stats, protocol


def _jbt_block(jbt: JBT) -> dict:
    return {"keep": jbt.keep, "probes": jbt.probes, "step": jbt.step}


def _jbt_protocol(jbt: JBT, n: int | None = None, drawn: int | None = None) -> str:
    what = f"the {jbt.keep:g} of G's samples" if n is None else f"the {n} of {drawn} samples of G"
    return (f"Jacobian-based truncation (Tanielian 2020): {what} with the smallest ||J_G(z)||_F "
            f"(finite differences along {jbt.probes} random directions, step {jbt.step:g})")


def measure(name: str, system, source, run_dir: Path, filters: Filters, n: int, seed: int = 0,
            inception_options: dict | None = None) -> dict:
    """The filter ``name``'s samples of ``system`` measured like the run's own (the same metrics, under
    ``<name>/``, replacing any earlier ones), added to ``run_dir/metrics.json``; returns what it wrote. Raises
    (nothing written) when the filter cannot give n samples (:class:`gan_lab.drs.LowAcceptance`)."""
    from gan_lab.metrics.features import image_metric_suites
    from gan_lab.viz import points_picture, save_png

    started = time.perf_counter()
    g = torch.Generator().manual_seed(seed + 4242)  # each filter alike, whichever others run
    batch = (system.run_config or {}).get("train", {}).get("batch_size", 64)
    fake, stats, protocol = select(name, system, source, filters, n, g, batch)
    spec = source.spec
    if spec.is_image:
        suites = image_metric_suites(source, seed=seed, **(inception_options or {}))
        results, protocols = feature_metrics(suites, shared_features(suites, fake, Ranks()))
    else:
        results, protocols = point_metrics(fake, source, g)
        if spec.shape == (2,):
            save_png(points_picture(fake, source.sample(n, g), f"{spec.name}: {n} real vs {TITLES[name]}",
                                    getattr(source, "centers", None)), run_dir / f"{name}_scatter.png")
    metrics = {f"{name}/{k}": v for k, v in results.items()}
    metrics[f"{name}/acceptance_rate"] = stats["acceptance_rate"]
    protocols = {f"{name}/{k}": f"{v}; samples: {protocol}" for k, v in protocols.items()}
    protocols[f"{name}/acceptance_rate"] = protocol
    block = {"measured": True, "samples": n, "drawn": stats["drawn"],
             "seconds": round(time.perf_counter() - started, 2), **stats["block"]}
    return merge_summary(run_dir, metrics, protocols, drop_prefix=f"{name}/", **{name: block})


def not_measured(name: str, run_dir: Path, reason: str) -> dict:
    """Record in ``run_dir/metrics.json`` why the filter ``name`` measured nothing (any earlier ``<name>/``
    metrics go: they are not this measurement's); returns what it wrote."""
    return merge_summary(run_dir, {}, {}, drop_prefix=f"{name}/", **{name: {"measured": False, "reason": reason}})


def measure_all(system, source, run_dir: Path, filters: Filters, n: int, seed: int = 0,
                inception_options: dict | None = None, only: tuple[str, ...] | None = None,
                catch: type[BaseException] = Exception) -> tuple[dict | None, dict[str, str]]:
    """Every chosen filter (or those of ``only``) measured in turn: (the last summary written, or None; why each
    one that failed did). An error of one (of type ``catch``) is recorded as its reason; the others still run."""
    summary, failures = None, {}
    for name in filters.chosen if only is None else only:
        try:
            summary = measure(name, system, source, run_dir, filters, n, seed, inception_options)
        except catch as err:  # an optional measurement: it says why, and nothing else is lost
            reason = str(err) if isinstance(err, rejection.LowAcceptance) else f"{type(err).__name__}: {err}"
            failures[name] = reason
            summary = not_measured(name, run_dir, reason)
    return summary, failures
