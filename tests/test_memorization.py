"""Memorization checks against hand-built sets."""

from __future__ import annotations

import pytest
import torch

from gan_lab.metrics.memorization import birthday_test, nearest_neighbours


def test_nearest_neighbours_finds_copies_and_their_distance():
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(50, 1, 4, 4, generator=g)
    queries = torch.cat([pool[[7, 3]], pool[[12]] + 0.5])
    index, dist = nearest_neighbours(queries, pool, chunk=2)
    assert index.tolist() == [7, 3, 12]
    torch.testing.assert_close(dist, torch.tensor([0.0, 0.0, 0.5 * 4], dtype=torch.float64))  # ‖0.5·1₁₆‖ = 2


def test_birthday_test_flags_a_generator_with_small_support():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 8, generator=g)
    support = torch.randn(20, 8, generator=g)  # a "generator" that only knows 20 points
    fake = support[torch.randint(20, (300,), generator=g)] + 1e-4 * torch.randn(300, 8, generator=g)
    result = birthday_test(fake, real, pairs=5)
    assert result["duplicate_rate"] == pytest.approx(1.0)  # every sample has a twin
    assert result["real_duplicate_rate"] <= 0.02  # 1st percentile by construction
    assert (result["closest_distances"] < 1e-2).all()
    i, j = result["closest_pairs"][0].tolist()
    assert i < j and torch.dist(fake[i], fake[j]) == pytest.approx(float(result["closest_distances"][0]), rel=1e-4)
    fresh = birthday_test(torch.randn(300, 8, generator=g), real)
    assert fresh["duplicate_rate"] <= 0.05  # a sample from the data's own law looks like the data
