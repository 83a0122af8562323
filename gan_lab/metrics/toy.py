"""Mode metrics for Gaussian mixtures, with the VEEGAN/PacGAN conventions.

A sample is *high quality* when it lies within 3σ of the centre of its nearest mode; a mode is
*captured* when at least one high-quality sample is nearest to it. The reverse KL compares the
histogram of high-quality samples over modes (Q) with the uniform law over modes (P): KL(Q‖P).
"""

from __future__ import annotations

import math

import torch

DEFINITION = ("PacGAN/VEEGAN: high quality = within 3σ of the nearest mode centre; captured = nearest "
              "mode of ≥1 high-quality sample; reverse KL = KL(histogram of high-quality samples ‖ uniform)")


def mode_metrics(samples: torch.Tensor, centers: torch.Tensor, std: float) -> dict[str, float]:
    """``samples`` (N, D), ``centers`` (M, D): modes captured, % high quality, reverse KL."""
    dist = torch.cdist(samples.double(), centers.double())  # (N, M)
    nearest_dist, nearest = dist.min(dim=1)
    good = nearest_dist <= 3.0 * std
    counts = torch.bincount(nearest[good], minlength=len(centers)).double()
    total = counts.sum().item()
    if total > 0:
        q = counts / total
        q = q[q > 0]
        reverse_kl = float((q * (q * len(centers)).log()).sum())
    else:
        reverse_kl = math.inf
    return {"modes_captured": int((counts > 0).sum()), "modes_total": len(centers),
            "high_quality_pct": 100.0 * good.double().mean().item(), "reverse_kl": reverse_kl}


def toy_metrics(fake: torch.Tensor, source) -> tuple[dict[str, float], dict[str, str]]:
    """What a toy law allows measuring exactly: mode metrics for 2-D mixtures, W1 and KS for 1-D laws."""
    from gan_lab.metrics.univariate import DEFINITION as UNIVARIATE_DEFINITION
    from gan_lab.metrics.univariate import ks_statistic, wasserstein1_to_law

    n, shape = fake.shape[0], source.spec.shape
    centers = getattr(source, "centers", None)
    if centers is not None and len(centers) > 1 and shape == (2,):
        metrics = {f"toy/{k}": v for k, v in mode_metrics(fake, centers, source.std).items()}
        return metrics, {"toy/modes_*": f"{n} samples; {DEFINITION}"}
    if shape == (1,) and hasattr(source, "cdf"):
        x = fake.reshape(-1).double()
        lo, hi = source.support()
        lo, hi = min(lo, float(x.min()) - 1.0), max(hi, float(x.max()) + 1.0)
        metrics = {"toy/w1": wasserstein1_to_law(x, source.cdf, lo, hi), "toy/ks": ks_statistic(x, source.cdf)}
        return metrics, {"toy/w1, toy/ks": f"{n} samples against the true law; {UNIVARIATE_DEFINITION}"}
    return {}, {}
