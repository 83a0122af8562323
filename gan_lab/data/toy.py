"""Toy laws with known structure: the PacGAN ring and grid, a 1-D Gaussian, parallel lines.

Every toy source is a distribution: a minibatch is a fresh draw, seeded by its positions in the
stream, so the same (seed, iteration) gives the same points (exact resume, identical DDP shards).
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import torch

from gan_lab.checks import above, at_least
from gan_lab.data.base import DataSpec, Source

Seed = Annotated[int, at_least(0), "seeds the draws (the run's seed)"]
Std = Annotated[float, above(0.0), "standard deviation of each Gaussian"]
Samples = Annotated[Annotated[int, at_least(2)] | None, "null: a law sampled afresh; N: a training set of N points "
                                                        "drawn once (PacGAN: 100000)"]


def _position_rng(seed: int, positions: list[int]) -> np.random.Generator:
    # A batch is identified by its first position (the sampler never reuses one). NumPy's
    # SeedSequence mixes (seed, position) whole: torch's CPU generator keeps only 32 seed bits.
    return np.random.default_rng([seed, int(positions[0])])


def _rng_from(generator: torch.Generator) -> np.random.Generator:
    return np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator)))


class ToySource(Source):
    """A law sampled afresh: ``draw(n, rng)`` is the one sampling routine."""

    seed: int = 0

    def draw(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.draw(n, _rng_from(generator))

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        return self.draw(len(positions), _position_rng(self.seed, positions))


class GaussianMixture(ToySource):
    """Equal-weight isotropic Gaussians at ``centers`` (M, D) with standard deviation ``std``.

    ``samples``: None, a law sampled afresh (every minibatch new points); or N, a training set of N
    points drawn once from the law (seeded by ``seed``), then served like any finite set — PacGAN's toy
    experiments train on 100,000 samples for 400 epochs."""

    def __init__(self, name: str, centers: torch.Tensor, std: float, seed: int = 0, samples: int | None = None):
        self.centers = centers.float()
        self.std = float(std)
        self.seed = seed
        self.spec = DataSpec(name, (centers.shape[1],), "points")
        if samples is not None:
            self.data = self.draw(samples, np.random.default_rng([seed, 2**40]))  # apart from every batch seed
            self.size = samples

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.size is None:
            return super().sample(n, generator)
        return self.data[torch.randint(self.size, (n,), generator=generator)]

    def __getitems__(self, positions: list[int]) -> torch.Tensor:
        if self.size is None:
            return super().__getitems__(positions)
        return self.data[torch.as_tensor(positions, dtype=torch.long)]

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """The law's CDF (1-D mixtures only), float64: the mean of the components' normal CDFs."""
        centers = self.centers[:, 0].double()
        return torch.special.ndtr((x.double().reshape(-1, 1) - centers) / self.std).mean(dim=1)

    def support(self) -> tuple[float, float]:
        """An interval outside which the 1-D law has no mass worth a float64 (±12σ around the modes)."""
        return float(self.centers.min()) - 12 * self.std, float(self.centers.max()) + 12 * self.std

    def draw(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        modes = torch.from_numpy(rng.integers(len(self.centers), size=n))
        noise = torch.from_numpy(rng.standard_normal((n, self.centers.shape[1]), dtype=np.float32))
        return self.centers[modes] + self.std * noise


class Ring(GaussianMixture):
    """``modes`` Gaussians at equally spaced angles on a circle (PacGAN: 8 modes, r=1, std 0.01)."""

    def __init__(self, modes: Annotated[int, at_least(1), "Gaussians on the circle"] = 8,
                 radius: Annotated[float, above(0.0), "the circle's radius"] = 1.0, std: Std = 0.01, seed: Seed = 0,
                 samples: Samples = None):
        angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
        centers = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        super().__init__("ring", centers, std, seed, samples)


class Grid(GaussianMixture):
    """A size×size grid of Gaussians (PacGAN: 5×5 at {-4,-2,0,2,4}², std 0.05)."""

    def __init__(self, size: Annotated[int, at_least(1), "Gaussians per side of the grid"] = 5,
                 spacing: Annotated[float, above(0.0), "distance between neighbouring modes"] = 2.0, std: Std = 0.05,
                 seed: Seed = 0, samples: Samples = None):
        axis = (torch.arange(size, dtype=torch.float64) - (size - 1) / 2) * spacing
        centers = torch.cartesian_prod(axis, axis)
        super().__init__("grid", centers, std, seed, samples)


class Gauss1D(GaussianMixture):
    """A single 1-D Gaussian N(mean, std²)."""

    def __init__(self, mean: Annotated[float, "the Gaussian's mean"] = 0.0,
                 std: Annotated[float, above(0.0), "the Gaussian's standard deviation"] = 1.0, seed: Seed = 0):
        super().__init__("gauss1d", torch.tensor([[float(mean)]]), std, seed)
        self.mean = float(mean)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(self.mean, self.std).log_prob(x)


class Bimodal1D(GaussianMixture):
    """Two equal 1-D Gaussians at ±``separation``/2 with standard deviation ``std`` (the P of the JS_π
    picture in the Zhang lecture notes, docs/references.md)."""

    def __init__(self, separation: Annotated[float, above(0.0), "distance between the two modes"] = 4.0,
                 std: Std = 0.5, seed: Seed = 0):
        half = float(separation) / 2
        super().__init__("bimodal1d", torch.tensor([[-half], [half]]), std, seed)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        comps = torch.distributions.Normal(self.centers[:, 0], self.std).log_prob(x)  # (N, 2)
        return torch.logsumexp(comps, dim=-1, keepdim=True) - math.log(2.0)


class ParallelLines(ToySource):
    """Real data (0, Z) with Z ~ U[0, 1] (EE807 lecture notes, docs/references.md): the example where JS is
    flat and W = |θ|."""

    def __init__(self, seed: Seed = 0):
        self.seed = seed
        self.spec = DataSpec("lines", (2,), "points")

    def draw(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        z = torch.from_numpy(rng.random(n, dtype=np.float32))
        return torch.stack([torch.zeros(n), z], dim=1)
