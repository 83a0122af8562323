"""Data sources, the iteration batch sampler, and the toy mode metrics."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lab.compose import check_settings
from gan_lab.data.module import IterationBatchSampler
from gan_lab.data.toy import Gauss1D, Grid, ParallelLines, Ring
from gan_lab.errors import ConfigError
from gan_lab.metrics.toy import mode_metrics
from tests.conftest import compose_cfg

# --------------------------------------------------------------------------------------------
# Toy laws


def test_ring_centres():
    ring = Ring()
    c = ring.centers
    assert c.shape == (8, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.ones(8))
    angles = sorted((math.atan2(y, x) % (2 * math.pi)) for x, y in c.tolist())
    assert len({round(a, 6) for a in angles}) == 8
    gaps = [b - a for a, b in zip(angles, angles[1:], strict=False)] + [angles[0] + 2 * math.pi - angles[-1]]
    assert gaps == pytest.approx([2 * math.pi / 8] * 8, abs=1e-6)
    assert ring.std == pytest.approx(0.01)
    assert ring.spec.shape == (2,) and ring.spec.kind == "points"


@pytest.mark.parametrize("modes, radius", [(3, 2.0), (12, 0.5)])
def test_ring_settable(modes, radius):
    c = Ring(modes=modes, radius=radius).centers
    assert c.shape == (modes, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.full((modes,), radius))


def test_ring_sample_lies_on_modes_with_balanced_weights():
    ring = Ring()
    x = ring.sample(20_000, torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 2)
    dist, nearest = torch.cdist(x.double(), ring.centers.double()).min(dim=1)
    assert dist.max().item() <= 5 * ring.std
    # and the spread matches std: E‖x − c‖² = 2σ² in 2-D
    assert dist.pow(2).mean().item() == pytest.approx(2 * ring.std**2, rel=0.05)
    frac = torch.bincount(nearest, minlength=8).double() / len(x)
    assert frac.min().item() >= 0.10 and frac.max().item() <= 0.15


def _as_set(centers: torch.Tensor) -> set[tuple[float, float]]:
    return {tuple(row) for row in centers.tolist()}


@pytest.mark.parametrize("kwargs, axis", [
    ({}, [-4.0, -2.0, 0.0, 2.0, 4.0]),
    ({"size": 3, "spacing": 1.0}, [-1.0, 0.0, 1.0]),
    ({"size": 2, "spacing": 3.0}, [-1.5, 1.5]),
])
def test_grid_centres(kwargs, axis):
    grid = Grid(**kwargs)
    assert grid.centers.shape == (len(axis) ** 2, 2)
    assert _as_set(grid.centers) == {(a, b) for a in axis for b in axis}


def test_grid_default_std():
    assert Grid().std == pytest.approx(0.05)
    assert Grid(std=0.2).std == pytest.approx(0.2)


def test_gauss1d_moments():
    src = Gauss1D(mean=2.0, std=3.0)
    x = src.sample(50_000, torch.Generator().manual_seed(0))
    assert x.shape == (50_000, 1)
    assert x.mean().item() == pytest.approx(2.0, abs=0.05)
    assert x.std().item() == pytest.approx(3.0, abs=0.05)


def test_gauss1d_log_prob():
    src = Gauss1D(mean=2.0, std=3.0)
    x = torch.tensor([2.0, 5.0, -4.0])
    expected = [-math.log(3.0 * math.sqrt(2 * math.pi)) - 0.5 * ((v - 2.0) / 3.0) ** 2 for v in x.tolist()]
    torch.testing.assert_close(src.log_prob(x), torch.tensor(expected))


def test_parallel_lines():
    x = ParallelLines().sample(20_000, torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 2)
    assert torch.equal(x[:, 0], torch.zeros(20_000))
    assert x[:, 1].min().item() >= 0.0 and x[:, 1].max().item() <= 1.0
    assert x[:, 1].mean().item() == pytest.approx(0.5, abs=0.01)
    assert x[:, 1].var().item() == pytest.approx(1.0 / 12.0, abs=0.005)


# --------------------------------------------------------------------------------------------
# Image sets


@pytest.fixture(scope="module")
def mnist():
    from gan_lab.data.images import mnist5k

    return mnist5k(holdout=0)


@pytest.fixture(scope="module")
def digits():
    from gan_lab.data.images import digits

    return digits(holdout=0)


def test_mnist5k(mnist):
    assert tuple(mnist.data.shape) == (5000, 1, 28, 28)
    assert mnist.spec.shape == (1, 28, 28) and mnist.spec.is_image
    assert len(mnist) == 5000
    assert mnist.data.min().item() == pytest.approx(-1.0, abs=1e-6)
    assert mnist.data.max().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(torch.bincount(mnist.labels, minlength=10), torch.full((10,), 500))
    assert mnist.labels.numel() == 5000


def test_digits(digits):
    assert tuple(digits.data.shape) == (1797, 1, 8, 8)
    assert digits.spec.shape == (1, 8, 8)
    assert digits.data.min().item() >= -1.0 and digits.data.max().item() <= 1.0
    assert digits.data.min().item() == pytest.approx(-1.0) and digits.data.max().item() == pytest.approx(1.0)
    # 17 grey levels 0..16 map onto 17 equally spaced values in [-1, 1]
    levels = torch.unique(digits.data)
    assert len(levels) == 17
    torch.testing.assert_close(levels, torch.linspace(-1, 1, 17))
    assert digits.labels.numel() == 1797 and set(digits.labels.tolist()) == set(range(10))


def test_holdout_is_a_fixed_disjoint_split(digits):
    from gan_lab.data.images import digits as load_digits

    held = load_digits(holdout=297)
    assert tuple(held.data.shape) == (1500, 1, 8, 8) and tuple(held.heldout.shape) == (297, 1, 8, 8)
    assert held.labels.numel() == 1500 and len(held) == 1500
    rows = lambda x: {tuple(r) for r in x.flatten(1).tolist()}
    assert rows(held.data) | rows(held.heldout) == rows(digits.data)  # a partition of the whole set …
    assert torch.equal(load_digits(holdout=297).heldout, held.heldout)  # … drawn the same way every time
    kept = [i for i, r in enumerate(digits.data.flatten(1).tolist()) if tuple(r) in rows(held.data)]
    assert torch.equal(torch.bincount(held.labels, minlength=10), torch.bincount(digits.labels[kept], minlength=10))
    assert digits.heldout is None
    with pytest.raises(ConfigError, match=r"dataset.holdout=1797 .*\[0, 1795\]"):
        check_settings(compose_cfg("dataset=digits", "dataset.holdout=1797"))
    with pytest.raises(ConfigError, match="dataset.holdout"):
        check_settings(compose_cfg("dataset=digits", "dataset.holdout=-1"))
    with pytest.raises(ConfigError, match=r"dataset.holdout=4999 .*\[0, 4998\]"):
        check_settings(compose_cfg("dataset=mnist5k", "dataset.holdout=4999"))


def test_tensor_source_fetches_by_position(digits):
    batch = digits.__getitems__([3, 0, 3])
    torch.testing.assert_close(batch[0], digits.data[3])
    torch.testing.assert_close(batch[1], digits.data[0])
    torch.testing.assert_close(batch[2], digits.data[3])


# --------------------------------------------------------------------------------------------
# IterationBatchSampler


def _sampler(**kw) -> IterationBatchSampler:
    args = dict(size=100, batch_size=10, k=1, seed=0, start=0, stop=20, rank=0, world_size=1)
    args.update(kw)
    return IterationBatchSampler(**args)


@pytest.mark.parametrize("size", [100, None])
@pytest.mark.parametrize("k", [1, 3])
def test_sampler_deterministic(size, k):
    a, b = _sampler(size=size, k=k, seed=4), _sampler(size=size, k=k, seed=4)
    for it in (0, 1, 5, 17):
        assert a.indices(it) == b.indices(it)
    c = _sampler(size=size, k=k, seed=5)
    if size is not None:  # a toy stream's positions are the same counter; the seed enters the draw
        assert any(a.indices(it) != c.indices(it) for it in (0, 1, 5))


@pytest.mark.parametrize("size, batch_size, k", [(100, 10, 1), (100, 10, 3), (None, 16, 5), (37, 8, 2)])
def test_sampler_item_length(size, batch_size, k):
    s = _sampler(size=size, batch_size=batch_size, k=k, stop=6)
    items = list(s)
    assert len(items) == 6
    assert all(len(item) == k * batch_size for item in items)
    if size is not None:
        assert all(0 <= i < size for item in items for i in item)


@pytest.mark.parametrize("k", [1, 2])
def test_sampler_epochs_are_permutations(k):
    s = _sampler(k=k, stop=20)
    per_epoch = 100 // (10 * k)
    epochs = [sum((s.indices(it) for it in range(e * per_epoch, (e + 1) * per_epoch)), [])
              for e in range(20 // per_epoch)]
    for idx in epochs:
        assert sorted(idx) == list(range(100))
    assert epochs[0] != epochs[1]  # a fresh permutation each epoch


def test_sampler_epoch_boundary_inside_a_batch():
    """size 95, B = 10: epoch 0 ends inside iteration 9; stream positions 0..94 and 95..189
    are each a permutation of range(95)."""
    s = _sampler(size=95, stop=19)
    stream = sum((s.indices(it) for it in range(19)), [])
    assert sorted(stream[:95]) == list(range(95))
    assert sorted(stream[95:]) == list(range(95))


@pytest.mark.parametrize("k", [1, 5])
def test_sampler_ranks_disjoint_and_covering(k):
    r0, r1 = _sampler(k=k, rank=0, world_size=2), _sampler(k=k, rank=1, world_size=2)
    iters = 100 // (2 * 10 * k)
    union = []
    for it in range(iters):
        a, b = r0.indices(it), r1.indices(it)
        assert not set(a) & set(b)
        union += a + b
    assert sorted(union) == list(range(100))


def test_sampler_toy_ranks_disjoint():
    """Also for a toy stream the two ranks get disjoint positions (hence different draws)."""
    r0, r1 = _sampler(size=None, rank=0, world_size=2), _sampler(size=None, rank=1, world_size=2)
    for it in range(5):
        assert not set(r0.indices(it)) & set(r1.indices(it))
        assert not torch.equal(Ring().__getitems__(r0.indices(it)), Ring().__getitems__(r1.indices(it)))


@pytest.mark.parametrize("size, k, world_size, rank",
                         [(100, 1, 1, 0), (37, 2, 1, 0), (100, 3, 2, 1), (None, 2, 1, 0)])
def test_sampler_resume_exact(size, k, world_size, rank):
    full = list(_sampler(size=size, k=k, world_size=world_size, rank=rank, start=0, stop=30))
    resumed = list(_sampler(size=size, k=k, world_size=world_size, rank=rank, start=7, stop=30))
    assert resumed == full[7:]
    # far-ahead iterations too (the permutation cache only keeps a few epochs)
    fresh = _sampler(size=size, k=k, world_size=world_size, rank=rank)
    long_run = _sampler(size=size, k=k, world_size=world_size, rank=rank, stop=200)
    seen = list(long_run)
    for it in (199, 150, 3):
        assert fresh.indices(it) == seen[it]


@pytest.mark.parametrize("start, stop", [(0, 20), (7, 20), (5, 5), (9, 3)])
def test_sampler_len(start, stop):
    s = _sampler(start=start, stop=stop)
    assert len(s) == max(0, stop - start)
    assert len(list(s)) == len(s)


@pytest.mark.parametrize("source", [Ring(), Grid(), Gauss1D(mean=1.0, std=2.0), ParallelLines()],
                         ids=["ring", "grid", "gauss1d", "lines"])
def test_toy_source_batches_are_reproducible(source):
    assert source.size is None
    s = _sampler(size=None, batch_size=32, k=2)
    i0, i1 = s.indices(0), s.indices(1)
    a, b = source.__getitems__(i0), source.__getitems__(list(i0))
    assert a.shape == (64, *source.spec.shape)
    assert torch.equal(a, b)
    c = source.__getitems__(i1)
    assert not torch.equal(a, c)
    # a fresh source object with the same seed draws the same points; another seed does not
    same = type(source)(**({"mean": 1.0, "std": 2.0} if isinstance(source, Gauss1D) else {}))
    assert torch.equal(same.__getitems__(i0), a)
    other = type(source)(seed=1, **({"mean": 1.0, "std": 2.0} if isinstance(source, Gauss1D) else {}))
    assert not torch.equal(other.__getitems__(i0), a)


def test_toy_source_has_no_length():
    with pytest.raises(TypeError):
        len(Ring())


# --------------------------------------------------------------------------------------------
# Mode metrics (PacGAN / VEEGAN conventions)


@pytest.fixture(scope="module")
def ring():
    return Ring()


def test_mode_metrics_single_mode(ring):
    samples = ring.centers[2].repeat(2500, 1)
    m = mode_metrics(samples, ring.centers, ring.std)
    assert m["modes_captured"] == 1 and m["modes_total"] == 8
    assert m["high_quality_pct"] == pytest.approx(100.0)
    assert m["reverse_kl"] == pytest.approx(math.log(8))


def test_mode_metrics_all_modes_equally(ring):
    samples = ring.centers.repeat_interleave(300, dim=0)
    assert samples.shape == (2400, 2)
    m = mode_metrics(samples, ring.centers, ring.std)
    assert m["modes_captured"] == 8
    assert m["high_quality_pct"] == pytest.approx(100.0)
    assert m["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_mode_metrics_two_modes_and_junk(ring):
    """Half the high-quality samples on each of two modes: KL(Q‖U) = log(8/2); junk samples
    far from every centre lower the quality but do not enter the histogram."""
    samples = torch.cat([ring.centers[0].repeat(300, 1), ring.centers[5].repeat(300, 1), torch.zeros(400, 2)])
    m = mode_metrics(samples, ring.centers, ring.std)
    assert m["modes_captured"] == 2
    assert m["high_quality_pct"] == pytest.approx(60.0)
    assert m["reverse_kl"] == pytest.approx(math.log(4))


def test_mode_metrics_nothing_captured(ring):
    m = mode_metrics(torch.zeros(2500, 2), ring.centers, ring.std)
    assert m["modes_captured"] == 0
    assert m["high_quality_pct"] == pytest.approx(0.0)
    assert m["reverse_kl"] == math.inf


@pytest.mark.parametrize("k_sigma, good", [(2.9, True), (3.1, False), (0.0, True), (1.0, True), (4.0, False)])
@pytest.mark.parametrize("mode, angle", [(0, 0.0), (3, 1.0), (6, -2.5)])
def test_mode_metrics_three_sigma_threshold(ring, k_sigma, good, mode, angle):
    sigma = ring.std
    direction = torch.tensor([math.cos(angle), math.sin(angle)], dtype=torch.float64)
    point = ring.centers[mode].double() + k_sigma * sigma * direction
    m = mode_metrics(point[None], ring.centers, sigma)
    assert m["high_quality_pct"] == pytest.approx(100.0 if good else 0.0)
    assert m["modes_captured"] == (1 if good else 0)


def test_mode_metrics_on_grid():
    grid = Grid()
    x = grid.sample(5000, torch.Generator().manual_seed(1))
    m = mode_metrics(x, grid.centers, grid.std)
    assert m["modes_captured"] == 25 and m["modes_total"] == 25
    # P(‖N(0, σ²I₂)‖ ≤ 3σ) = 1 − exp(−9/2)
    assert m["high_quality_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.5)
    assert m["reverse_kl"] == pytest.approx(0.0, abs=0.01)


def test_a_toy_law_with_samples_is_a_fixed_training_set():
    ring = Ring(samples=5000, seed=3)
    assert ring.size == 5000 and torch.equal(ring.data, Ring(samples=5000, seed=3).data)
    assert not torch.equal(ring.data, Ring(samples=5000, seed=4).data)
    assert torch.equal(ring.__getitems__([4, 0, 4]), ring.data[[4, 0, 4]])
    # drawn from the law: every point within 5σ of a centre, the 8 modes about equally often
    dist, nearest = torch.cdist(ring.data.double(), ring.centers.double()).min(dim=1)
    assert dist.max() < 5 * ring.std
    counts = torch.bincount(nearest, minlength=8).double()
    assert (counts / 5000 - 1 / 8).abs().max() < 0.02
    sampler = IterationBatchSampler(ring.size, 100, 1, seed=0, start=0, stop=60)
    assert sorted(p for it in range(50) for p in sampler.indices(it)) == list(range(5000))  # one epoch: each once
