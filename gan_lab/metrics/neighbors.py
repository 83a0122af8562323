"""k-NN manifold metrics on feature vectors: improved precision/recall, density and coverage.

Real features X = {X_1..X_N} and fake features Y = {Y_1..Y_M}, both (N, D) / (M, D). The k-NN radius
of a point is the distance to its k-th nearest neighbour *in its own set, the point itself excluded*;
B(x, r) is the closed Euclidean ball {z : ‖z − x‖ ≤ r}.

- precision = (1/M) Σ_j 1[∃ i : Y_j ∈ B(X_i, NND_k(X_i))]     (Kynkäänniemi et al. 2019)
- recall    = (1/N) Σ_i 1[∃ j : X_i ∈ B(Y_j, NND_k(Y_j))]     (Kynkäänniemi et al. 2019)
- density   = (1/kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))]      (Naeem et al. 2020)
- coverage  = (1/N) Σ_i 1[∃ j : Y_j ∈ B(X_i, NND_k(X_i))]     (Naeem et al. 2020)

Distances are compared squared, in float64, block by block (‖x‖² + ‖y‖² − 2x·y), so no N×M
matrix is ever held whole: 10k × 10k Inception features fit in a few tens of MB.
"""

from __future__ import annotations

import torch

from gan_lab.errors import ConfigError, check_int

DEFINITION = ("Improved precision/recall (Kynkäänniemi et al. 2019, 'Improved Precision and Recall Metric for "
              "Assessing Generative Models'): precision = share of fake samples inside the union of closed k-NN "
              "balls around the real samples, recall = share of real samples inside the union of k-NN balls "
              "around the fake samples, each radius the distance to the k-th nearest neighbour in the same set "
              "excluding the point itself. Density/coverage (Naeem et al. 2020, 'Reliable Fidelity and Diversity "
              "Metrics for Generative Models'): density = (1/kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))], coverage = "
              "(1/N) Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))]; Euclidean distance on the given features, closed balls "
              "(‖·‖ ≤ r), default k = 5.")

BLOCK_ELEMENTS = 2**22  # entries of one block of the pairwise-distance matrix (32 MiB in float64)


def _as_features(name: str, x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2:
        raise ValueError(f"{name} must be feature vectors of shape (N, D), got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64)


def _rows_per_block(cols: int, block_elements: int) -> int:
    return max(1, block_elements // max(cols, 1))


def _sq_dists(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (len(a), len(b)) from precomputed squared norms."""
    return (a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)).clamp_min_(0.0)


def knn_sq_radii(x: torch.Tensor, k: int, block_elements: int = BLOCK_ELEMENTS) -> torch.Tensor:
    """Squared distance from every row of ``x`` (N, D) to its k-th nearest other row: (N,)."""
    x = _as_features("x", x)
    n = len(x)
    if not 1 <= k <= n - 1:
        raise ConfigError("k", k, f"an integer in [1, {n - 1}] (a set of {n} points has {n - 1} other points)")
    x_sq = (x * x).sum(1)
    out = torch.empty(n, dtype=torch.float64)
    step = _rows_per_block(n, block_elements)
    for start in range(0, n, step):
        stop = min(start + step, n)
        d2 = _sq_dists(x[start:stop], x_sq[start:stop], x, x_sq)
        rows = torch.arange(stop - start)
        d2[rows, rows + start] = torch.inf  # the point itself is not its own neighbour
        out[start:stop] = d2.topk(k, dim=1, largest=False).values[:, -1]
    return out


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = 5, *,
                                      block_elements: int = BLOCK_ELEMENTS) -> dict[str, float]:
    """``real`` (N, D), ``fake`` (M, D) feature vectors → precision, recall, density, coverage.

    See :data:`DEFINITION`. ``k`` must leave k other points in each set (k ≤ min(N, M) − 1).
    ``block_elements`` bounds the size of one block of pairwise distances (memory, not results).
    """
    check_int("k", k, minimum=1)
    check_int("block_elements", block_elements, minimum=1)
    x, y = _as_features("real", real), _as_features("fake", fake)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"real and fake features differ in dimension: {x.shape[1]} vs {y.shape[1]}")
    n, m = len(x), len(y)
    if k > min(n, m) - 1:
        raise ConfigError("k", k, f"an integer in [1, {min(n, m) - 1}] for {n} real and {m} fake samples")

    r2_real = knn_sq_radii(x, k, block_elements)
    r2_fake = knn_sq_radii(y, k, block_elements)
    x_sq, y_sq = (x * x).sum(1), (y * y).sum(1)

    fake_in_real = 0  # Σ_j 1[∃ i: Y_j ∈ B_i]
    ball_hits = 0  # Σ_j Σ_i 1[Y_j ∈ B_i]
    covered = torch.zeros(n, dtype=torch.bool)  # real balls holding ≥ 1 fake sample
    step = _rows_per_block(n, block_elements)
    for start in range(0, m, step):
        inside = _sq_dists(y[start:start + step], y_sq[start:start + step], x, x_sq) <= r2_real[None, :]
        fake_in_real += int(inside.any(1).sum())
        ball_hits += int(inside.sum())
        covered |= inside.any(0)

    real_in_fake = 0  # Σ_i 1[∃ j: X_i ∈ B(Y_j)]
    step = _rows_per_block(m, block_elements)
    for start in range(0, n, step):
        inside = _sq_dists(x[start:start + step], x_sq[start:start + step], y, y_sq) <= r2_fake[None, :]
        real_in_fake += int(inside.any(1).sum())

    return {"precision": fake_in_real / m, "recall": real_in_fake / n,
            "density": ball_hits / (k * m), "coverage": int(covered.sum()) / n}
