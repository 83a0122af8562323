"""Parzen-window (Gaussian kernel density) log-likelihood of held-out real data under generated samples.

The protocol of Goodfellow et al. 2014 (Generative Adversarial Nets, Table 1; after Breuleux et al. 2011)
that the f-GAN paper (Nowozin et al. 2016, Table 4) reuses: place an isotropic Gaussian of width σ on each
of the M generated samples y_m,

    log p̂_σ(x) = log (1/M) Σ_m N(x; y_m, σ² I_D)
               = logsumexp_m(−‖x − y_m‖² / 2σ²) − log M − D log σ − (D/2) log 2π,

pick σ on a grid by maximising the mean log p̂_σ over a validation split of real data, and report the
mean log p̂_σ over a separate test split of real data with its standard error of the mean. Values are in
nats per sample (the sum over all D coordinates, not per dimension).
"""

from __future__ import annotations

import math
import warnings

import torch

DEFINITION = ("Parzen-window log-likelihood (Goodfellow et al. 2014 Table 1; f-GAN, Nowozin et al. 2016 Table 4): "
              "isotropic Gaussian KDE on the generated samples, log p(x) = log (1/M) Σ_m N(x; y_m, σ²I); σ picked on "
              "a grid by the mean log-likelihood of a real validation split; reported: mean log-likelihood of the real "
              "test split in nats ± SEM = std(ddof=1)/√n.")

BLOCK_ELEMENTS = 2**22  # entries of one block of test-by-generated distances (32 MiB in float64)


def default_sigmas() -> torch.Tensor:
    """The grid of Goodfellow's ``parzen_ll.py``: 10 values, logspace(−1, 0) (tuned for pixels in [0, 1])."""
    return torch.logspace(-1.0, 0.0, 10, dtype=torch.float64)


def _flat(name: str, x: torch.Tensor) -> torch.Tensor:
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"{name} must be a batch of shape (N, D) (or (N, C, H, W), flattened), got {tuple(x.shape)}")
    return x.detach().reshape(len(x), -1).to(torch.float64)


def _kde_log_prob(x: torch.Tensor, centers: torch.Tensor, sigmas: torch.Tensor,
                  block_elements: int = BLOCK_ELEMENTS) -> torch.Tensor:
    """log p̂_σ(x) for every row of ``x`` (N, D) and every σ: (N, len(sigmas)). float64 inputs."""
    m, d = centers.shape
    c_sq = (centers * centers).sum(1)
    x_sq = (x * x).sum(1)
    inv_two_var = 1.0 / (2.0 * sigmas * sigmas)  # (S,)
    const = -math.log(m) - d * sigmas.log() - 0.5 * d * math.log(2.0 * math.pi)  # (S,)
    out = torch.empty(len(x), len(sigmas), dtype=torch.float64)
    step = max(1, block_elements // m)
    for start in range(0, len(x), step):
        stop = min(start + step, len(x))
        d2 = (x_sq[start:stop, None] + c_sq[None, :] - 2.0 * (x[start:stop] @ centers.T)).clamp_min_(0.0)
        for s in range(len(sigmas)):
            out[start:stop, s] = torch.logsumexp(d2 * -inv_two_var[s], dim=1)
    return out + const


def kde_log_prob(x: torch.Tensor, centers: torch.Tensor, sigma: float) -> torch.Tensor:
    """Per-point log density (N,) of ``x`` (N, D) under the Gaussian KDE on ``centers`` (M, D) with width σ."""
    sig = torch.tensor([float(sigma)], dtype=torch.float64)
    return _kde_log_prob(_flat("x", x), _flat("centers", centers), sig)[:, 0]


def kde_log_likelihood(fake: torch.Tensor, real_validation: torch.Tensor, real_test: torch.Tensor,
                       sigmas: torch.Tensor | list[float] | None = None, *,
                       block_elements: int = BLOCK_ELEMENTS) -> dict[str, float]:
    """Parzen log-likelihood of ``real_test`` (T, D) under a KDE on ``fake`` (M, D).

    σ is the value of ``sigmas`` (default :func:`default_sigmas`) with the highest mean log-likelihood of
    ``real_validation`` (V, D); ties go to the smaller σ. Returns the test mean log-likelihood (nats per
    sample), its standard error ``sem`` = std(ddof=1)/√T, and the chosen ``bandwidth``. Warns when the
    chosen σ is an end of the grid (the optimum may lie outside it: widen the grid).
    Image batches (N, C, H, W) are flattened to (N, C·H·W).
    """
    y, xv, xt = _flat("fake", fake), _flat("real_validation", real_validation), _flat("real_test", real_test)
    if not (y.shape[1] == xv.shape[1] == xt.shape[1]):
        raise ValueError(f"dimension mismatch: fake {y.shape[1]}, validation {xv.shape[1]}, test {xt.shape[1]}")
    if len(xt) < 2:
        raise ValueError("real_test needs at least 2 points for a standard error")
    grid = default_sigmas() if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if len(grid) == 0 or not bool((grid > 0).all()) or not bool(torch.isfinite(grid).all()):
        raise ValueError(f"sigmas must be a non-empty set of finite positive widths, got {grid.tolist()}")
    grid = grid.sort().values

    val_ll = _kde_log_prob(xv, y, grid, block_elements).mean(0)  # (S,)
    best = int(torch.argmax(val_ll))  # first maximum: the smaller σ on ties
    sigma = grid[best:best + 1]
    if len(grid) > 1 and best in (0, len(grid) - 1):
        warnings.warn(f"Parzen bandwidth σ={float(sigma):.4g} is at the end of the grid "
                      f"[{float(grid[0]):.4g}, {float(grid[-1]):.4g}]; the optimum may lie outside it",
                      RuntimeWarning, stacklevel=2)
    test_ll = _kde_log_prob(xt, y, sigma, block_elements)[:, 0]
    return {"log_likelihood": float(test_ll.mean()), "sem": float(test_ll.std(correction=1) / math.sqrt(len(test_ll))),
            "bandwidth": float(sigma)}
