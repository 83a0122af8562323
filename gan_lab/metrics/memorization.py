"""Memorization checks (ECE544 and LAMBDA lecture notes, docs/references.md; Arora & Zhang 2017).

- Nearest training neighbour: each generated sample next to the closest training example (L2 in
  the given space). A generator that copies its data shows pairs that are the same picture.
- Birthday paradox: among s samples, the closest pairs. If a distribution has support size N,
  s ≈ √N samples contain a duplicate with good probability, so many near-duplicates among a few
  hundred samples mean a small support. A pair counts as a near-duplicate when its distance is
  below τ, the 1st percentile of nearest-neighbour distances among s *real* samples: the rate is
  calibrated against what the data itself shows at the same s.
"""

from __future__ import annotations

import torch

DEFINITION = ("nearest neighbour: L2 in the given space to the closest training example; duplicates: a sample "
              "is a near-duplicate when another of the s samples lies closer than tau = the 1st percentile of "
              "nearest-neighbour distances among s real samples (Arora & Zhang 2017 birthday test)")


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).double()


def nearest_neighbours(queries: torch.Tensor, pool: torch.Tensor,
                       chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query (N, …) the index into ``pool`` (M, …) of its closest member and the distance."""
    q, p = _flat(queries), _flat(pool)
    dist, index = [], []
    for part in q.split(chunk):
        d = torch.cdist(part, p)
        best = d.min(dim=1)
        dist.append(best.values)
        index.append(best.indices)
    return torch.cat(index), torch.cat(dist)


def _nn_within(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance matrix of a set to itself with the diagonal excluded, and each point's NN distance."""
    d = torch.cdist(_flat(x), _flat(x))
    d.fill_diagonal_(float("inf"))
    return d, d.min(dim=1).values


def birthday_test(fake: torch.Tensor, real: torch.Tensor, pairs: int = 16) -> dict:
    """Closest pairs among the fake samples and the near-duplicate rates of fake and real sets (same s)."""
    d, nn_fake = _nn_within(fake)
    _, nn_real = _nn_within(real)
    tau = torch.quantile(nn_real, 0.01)
    above = torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)  # each pair once
    upper = torch.where(above, d, torch.full_like(d, float("inf")))
    flat = upper.flatten().argsort()[:pairs]
    closest = torch.stack([flat // d.shape[0], flat % d.shape[0]], dim=1)
    return {"closest_pairs": closest, "closest_distances": upper.flatten()[flat],
            "duplicate_rate": float((nn_fake < tau).double().mean()),
            "real_duplicate_rate": float((nn_real < tau).double().mean()), "threshold": float(tau)}
