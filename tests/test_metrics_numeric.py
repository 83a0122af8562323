"""Numeric checks of the evaluation metrics: k-NN precision/recall/density/coverage, the Parzen
log-likelihood, and the 1-D W1 / KS distances to a known law."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from gan_lab.errors import ConfigError
from gan_lab.metrics.density import kde_log_likelihood, kde_log_prob
from gan_lab.metrics.neighbors import knn_sq_radii, precision_recall_density_coverage
from gan_lab.metrics.univariate import gaussian_law, ks_statistic, wasserstein1_to_law

# --------------------------------------------------------------------------------------------
# Precision / recall / density / coverage


def _pts(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)[:, None]


def _clouds(shift: float, n: int = 2000, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, d, generator=g, dtype=torch.float64)
    fake = torch.randn(n, d, generator=g, dtype=torch.float64) + shift
    return real, fake


# Worked by hand (1-D, Euclidean = |·|). X = {0, 1, 3, 5}, Y = {0.5, 2.5, 10, 11}.
# k = 1: real radii 1, 1, 2, 2; fake radii 2, 2, 1, 1.
#   0.5 lies in the balls of 0 and 1, 2.5 in the ball of 3, 10 and 11 in none → precision 2/4, density 3/(1·4);
#   real 0, 1, 3 hold a fake sample, 5 does not → coverage 3/4; 0, 1, 3 lie within 2 of 0.5 or 2.5,
#   5 lies 2.5 from 2.5 and 5 from 10 → recall 3/4.
# k = 2: real radii 3, 2, 2, 4; fake radii 9.5, 7.5, 7.5, 8.5.
#   0.5 in the balls of 0, 1; 2.5 in all four; 10, 11 in none → precision 2/4, density 6/(2·4);
#   every real ball holds 0.5 or 2.5 → coverage 1; every real lies within 9.5 of 0.5 → recall 1.
# Ties: X = {0, 2}, Y = {4, 6}, k = 1: all radii 2 and ‖4 − 2‖ = 2 sits on the sphere: the closed
#   ball counts it → every metric 1/2 (an open ball would give 0).
@pytest.mark.parametrize("real, fake, k, expected", [
    ([0, 1, 3, 5], [0.5, 2.5, 10, 11], 1, (2 / 4, 3 / 4, 3 / 4, 3 / 4)),
    ([0, 1, 3, 5], [0.5, 2.5, 10, 11], 2, (2 / 4, 1.0, 6 / 8, 1.0)),
    ([0, 2], [4, 6], 1, (0.5, 0.5, 0.5, 0.5)),
])
def test_prdc_by_hand(real, fake, k, expected):
    out = precision_recall_density_coverage(_pts(real), _pts(fake), k=k)
    assert (out["precision"], out["recall"], out["density"], out["coverage"]) == expected


def test_knn_radii_exclude_the_point_itself():
    r2 = knn_sq_radii(_pts([0, 1, 3, 5]), k=1)
    assert r2.tolist() == [1.0, 1.0, 4.0, 4.0]
    # a duplicate point is a neighbour at distance 0 (it is another sample, not the point itself)
    assert knn_sq_radii(_pts([0, 0, 3]), k=1).tolist() == [0.0, 0.0, 9.0]


def _prdc_reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Whole-matrix reference with scipy distances, written from the two papers' formulas."""
    from scipy.spatial.distance import cdist

    def radii(x):
        d = cdist(x, x)
        np.fill_diagonal(d, np.inf)
        return np.sort(d, axis=1)[:, k - 1]

    r_real, r_fake = radii(real), radii(fake)
    in_real_ball = cdist(fake, real) <= r_real[None, :]  # (M, N): Y_j ∈ B(X_i)
    in_fake_ball = cdist(real, fake) <= r_fake[None, :]  # (N, M): X_i ∈ B(Y_j)
    return {"precision": in_real_ball.any(1).mean(), "recall": in_fake_ball.any(1).mean(),
            "density": in_real_ball.sum() / (k * len(fake)), "coverage": in_real_ball.any(0).mean()}


@pytest.mark.parametrize("seed, shift, k", [(0, 0.0, 3), (1, 0.7, 5), (2, 1.5, 1)])
def test_prdc_matches_whole_matrix_reference(seed, shift, k):
    real, fake = _clouds(shift, n=300, d=5, seed=seed)
    fake = fake[:200] * 1.2
    got = precision_recall_density_coverage(real, fake, k=k)
    assert got == pytest.approx(_prdc_reference(real.numpy(), fake.numpy(), k), abs=1e-15)


def test_prdc_blocks_do_not_change_the_result():
    real, fake = _clouds(0.5, n=300, d=3, seed=1)
    whole = precision_recall_density_coverage(real, fake[:250], k=4)
    tiny_blocks = precision_recall_density_coverage(real, fake[:250], k=4, block_elements=7)
    assert tiny_blocks == whole


def test_prdc_equal_clouds_near_one():
    real, fake = _clouds(0.0)
    out = precision_recall_density_coverage(real, fake, k=5)
    assert out["precision"] > 0.9 and out["recall"] > 0.9
    assert out["density"] == pytest.approx(1.0, abs=0.15)
    assert out["coverage"] > 0.9
    assert out["precision"] <= 1.0 and out["recall"] <= 1.0 and out["coverage"] <= 1.0


def test_prdc_shifted_cloud_falls():
    real, fake = _clouds(3.0)  # 3σ in every one of the 8 dimensions
    out = precision_recall_density_coverage(real, fake, k=5)
    assert out["precision"] < 0.2 and out["recall"] < 0.2 and out["coverage"] < 0.2
    assert out["density"] < 0.2


def test_prdc_float32_input_matches_float64():
    real, fake = _clouds(0.3, n=400, d=4, seed=2)
    a = precision_recall_density_coverage(real.float(), fake.float())
    b = precision_recall_density_coverage(real.float().double(), fake.float().double())
    assert a == b


@pytest.mark.parametrize("k", [0, 4, 2.0])
def test_prdc_bad_k(k):
    with pytest.raises(ConfigError):
        precision_recall_density_coverage(_pts([0, 1, 2, 3]), _pts([0, 1, 2, 3]), k=k)


def test_prdc_shape_checks():
    with pytest.raises(ValueError, match="dimension"):
        precision_recall_density_coverage(torch.zeros(10, 2), torch.zeros(10, 3), k=2)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        precision_recall_density_coverage(torch.zeros(10), torch.zeros(10), k=2)


def test_prdc_of_images_compares_with_a_seeded_random_real_subset(monkeypatch):
    """mnist5k is stored sorted by class: the real set of n < N samples must be drawn across it, the same
    draw every time, not its first n (two classes here)."""
    import gan_lab.measure as measure

    classes, per_class, n = 10, 150, 300
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(classes).repeat_interleave(per_class)  # sorted, as the cached features are
    real = torch.eye(classes)[labels] * 10 + torch.randn(classes * per_class, classes, generator=g)

    class Suite:  # what feature_metrics reads of an ImageMetrics
        extractor, classifier_info = "stub", None

        def from_features(self, feats, logits):
            return {}

        def real_stats(self):
            return {"features": real}

        def describe(self, n_fake):
            return "stub"

    seen = []
    monkeypatch.setattr(measure, "precision_recall_density_coverage",
                        lambda r, f, k: seen.append(r) or precision_recall_density_coverage(r, f, k=k))
    fake = real[torch.randperm(len(real), generator=g)[:n]] + 0.1
    _, protocols = measure.feature_metrics([Suite()], [(fake, torch.zeros(n, classes))])
    measure.feature_metrics([Suite()], [(fake, torch.zeros(n, classes))])
    first, second = seen
    assert first.shape == (n, classes) and not torch.equal(first, real[:n])
    counts = torch.bincount(first.argmax(1), minlength=classes)  # the class each chosen row belongs to
    assert ((counts >= 15) & (counts <= 45)).all(), counts  # 30 expected per class; sorted order gives 150, 150, 0…
    assert torch.equal(first, second)  # a fixed seed: the metric repeats
    assert f"seed {measure.PRDC_SEED}" in protocols["val/*_300_stub"]
    assert measure.prdc_reals(real, len(real)) is real  # n ≥ N: every real sample


# --------------------------------------------------------------------------------------------
# Parzen-window log-likelihood


def test_kde_one_centre_is_a_gaussian():
    g = torch.Generator().manual_seed(0)
    centre = torch.randn(1, 3, generator=g, dtype=torch.float64)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64) * 2.0
    sigma = 0.7
    expected = stats.multivariate_normal(centre[0].numpy(), sigma**2 * np.eye(3)).logpdf(x.numpy())
    torch.testing.assert_close(kde_log_prob(x, centre, sigma), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_kde_log_prob_matches_direct_mixture():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(40, 2, generator=g, dtype=torch.float64)
    x = torch.randn(30, 2, generator=g, dtype=torch.float64) * 3.0
    sigma = 0.3
    comp = np.stack([stats.multivariate_normal(c, sigma**2 * np.eye(2)).logpdf(x.numpy()) for c in centres.numpy()])
    expected = special.logsumexp(comp, axis=0) - math.log(len(centres))  # far points: exp underflows, logsumexp not
    torch.testing.assert_close(kde_log_prob(x, centres, sigma), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def gaussian_kde_run():
    g = torch.Generator().manual_seed(4)
    fake = torch.randn(5_000, 2, generator=g, dtype=torch.float64)
    val = torch.randn(1_000, 2, generator=g, dtype=torch.float64)
    test = torch.randn(3_000, 2, generator=g, dtype=torch.float64)
    sigmas = torch.logspace(-1.5, 0.5, 9, dtype=torch.float64)
    return fake, test, sigmas, kde_log_likelihood(fake, val, test, sigmas)


def test_kde_recovers_negative_entropy(gaussian_kde_run):
    _, _, sigmas, out = gaussian_kde_run
    neg_entropy = -1.0 * math.log(2 * math.pi * math.e)  # N(0, I_2): −(d/2) log(2πe), d = 2
    assert out["log_likelihood"] == pytest.approx(neg_entropy, abs=0.1)
    assert sigmas[0] < out["bandwidth"] < sigmas[-1]
    assert out["bandwidth"] in sigmas.tolist()


def test_kde_sem_matches_per_point_values(gaussian_kde_run):
    fake, test, _, out = gaussian_kde_run
    per_point = kde_log_prob(test, fake, out["bandwidth"]).numpy()
    assert out["log_likelihood"] == pytest.approx(per_point.mean(), rel=1e-12)
    assert out["sem"] == pytest.approx(per_point.std(ddof=1) / math.sqrt(len(per_point)), rel=1e-10)
    assert out["sem"] == pytest.approx(stats.sem(per_point), rel=1e-10)
    # log p of a 2-D standard normal has variance d/2 = 1, so SEM ≈ 1/√3000
    assert out["sem"] == pytest.approx(1 / math.sqrt(len(per_point)), rel=0.15)


def test_kde_bandwidth_picked_on_validation_and_edge_warns():
    g = torch.Generator().manual_seed(5)
    fake = torch.randn(500, 2, generator=g, dtype=torch.float64)
    val = torch.randn(200, 2, generator=g, dtype=torch.float64)
    test = torch.randn(100, 2, generator=g, dtype=torch.float64)
    grid = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
    val_means = [kde_log_prob(val, fake, s).mean().item() for s in grid]
    out = kde_log_likelihood(fake, val, test, grid)
    assert out["bandwidth"] == grid[int(np.argmax(val_means))]
    with pytest.warns(RuntimeWarning, match="end of the grid"):
        kde_log_likelihood(fake, val, test, [0.001, 0.002])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kde_log_likelihood(fake, val, test, [0.3])  # a single σ is not an edge case
    # blocks change memory, not results
    assert kde_log_likelihood(fake, val, test, grid, block_elements=999) == pytest.approx(out, rel=1e-12)


def test_kde_flattens_images_and_checks_shapes():
    g = torch.Generator().manual_seed(6)
    fake = torch.rand(64, 1, 4, 4, generator=g)
    real = torch.rand(32, 1, 4, 4, generator=g)
    out = kde_log_likelihood(fake, real[:16], real[16:])
    flat = kde_log_likelihood(fake.reshape(64, -1), real[:16].reshape(16, -1), real[16:].reshape(16, -1))
    assert out == flat
    with pytest.raises(ValueError, match="dimension"):
        kde_log_likelihood(torch.zeros(5, 2), torch.zeros(5, 3), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="sigmas"):
        kde_log_likelihood(torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(5, 2), [0.1, -1.0])


# --------------------------------------------------------------------------------------------
# W1 and KS against a known 1-D law


def _w1_normal_closed_form(x: np.ndarray) -> float:
    """Exact W1(F_n, N(0,1)) in quantile form: Σ_i ∫_{(i−1)/n}^{i/n} |x_(i) − Φ⁻¹(u)| du, with
    ∫_a^b Φ⁻¹(u) du = φ(Φ⁻¹(a)) − φ(Φ⁻¹(b)) and the split at u* = Φ(x_(i))."""
    x = np.sort(x)
    n = len(x)
    a, b = np.arange(n) / n, np.arange(1, n + 1) / n
    u = np.clip(special.ndtr(x), a, b)

    def phi_q(p):  # φ(Φ⁻¹(p)), 0 at p = 0, 1
        return stats.norm.pdf(special.ndtri(p))

    def int_q(p, q):
        return phi_q(p) - phi_q(q)

    return float(np.sum(x * (u - a) - int_q(a, u) + int_q(u, b) - x * (b - u)))


def _w1_quad(x: np.ndarray) -> float:
    """Reference by adaptive quadrature of |F_n − Φ| piece by piece, tails to ±∞."""
    x = np.sort(x)
    n = len(x)
    total = integrate.quad(special.ndtr, -np.inf, x[0], epsabs=1e-14, epsrel=1e-13)[0]
    total += integrate.quad(lambda t: special.ndtr(-t), x[-1], np.inf, epsabs=1e-14, epsrel=1e-13)[0]
    for i in range(1, n):
        total += integrate.quad(lambda t, c=i / n: abs(c - special.ndtr(t)), x[i - 1], x[i],
                                epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    return total


def _sqrt_2_over_pi_shifted(delta: float) -> float:
    """E|X − δ| for X ~ N(0, 1) = 2φ(δ) + δ(2Φ(δ) − 1)."""
    return 2 * stats.norm.pdf(delta) + delta * (2 * stats.norm.cdf(delta) - 1)


def _uniform_cdf(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0.0, 1.0)


def _exp_cdf(x: torch.Tensor) -> torch.Tensor:
    return -torch.expm1(-x.clamp_min(0.0))


# (samples, cdf, lo, hi, expected)
HAND_W1 = [
    ([0.0], "normal", math.sqrt(2 / math.pi)),  # one sample at 0: E|X| = √(2/π)
    ([1.5], "normal", _sqrt_2_over_pi_shifted(1.5)),
    ([-0.4], "normal", _sqrt_2_over_pi_shifted(-0.4)),
    ([0.5], "uniform", 0.25),  # ∫_0^½ x dx + ∫_½^1 (1 − x) dx
    ([0.25, 0.75], "uniform", 0.125),  # 1/32 + 2·(1/32) + 1/32
    ([0.0, 1.0], "uniform", 0.25),  # ∫_0^1 |½ − x| dx
    ([1.0], "exponential", 2 / math.e),  # E|X − 1| = 2∫_0^1 F = 2/e for X ~ Exp(1)
]
LAWS = {"normal": (gaussian_law(0.0, 1.0)[0], -12.0, 12.0), "uniform": (_uniform_cdf, 0.0, 1.0),
        "exponential": (_exp_cdf, 0.0, 40.0)}


@pytest.mark.parametrize("samples, law, expected", HAND_W1)
def test_w1_by_hand(samples, law, expected):
    cdf, lo, hi = LAWS[law]
    got = wasserstein1_to_law(torch.tensor(samples, dtype=torch.float64), cdf, lo, hi)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("n", [1, 7, 100, 2001])
@pytest.mark.parametrize("with_icdf", [True, False])
def test_w1_at_quantiles_matches_closed_form(n, with_icdf):
    cdf, icdf = gaussian_law()
    x = icdf((torch.arange(n, dtype=torch.float64) + 0.5) / n)  # the samples at the law's mid-quantiles
    got = wasserstein1_to_law(x, cdf, -12.0, 12.0, icdf if with_icdf else None)
    ref = _w1_normal_closed_form(x.numpy())
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-14)
    assert n * got < 1.0 + 0.5 * math.log(n)  # the quantile sample is close to the law: n·W1 grows slowly


@pytest.mark.parametrize("seed, n", [(0, 5), (1, 40), (2, 150)])
def test_w1_random_samples_match_quadrature_and_closed_form(seed, n):
    x = np.random.default_rng(seed).normal(size=n) * 1.3 + 0.2
    cdf, icdf = gaussian_law()
    got = wasserstein1_to_law(torch.from_numpy(x), cdf, -12.0, 12.0, icdf)
    assert got == pytest.approx(_w1_normal_closed_form(x), rel=1e-11)
    assert got == pytest.approx(_w1_quad(x), rel=1e-9)


def test_w1_scaled_law_and_scipy_large_sample():
    # N(2, 3²): a sample of the law at its quantiles against scipy's W1 to a huge independent sample
    cdf, icdf = gaussian_law(2.0, 3.0)
    x = icdf((torch.arange(200, dtype=torch.float64) + 0.5) / 200)
    got = wasserstein1_to_law(x, cdf, 2.0 - 36.0, 2.0 + 36.0, icdf)
    # closed form scales: W1 under N(μ, σ²) = σ · W1 of the standardised samples under N(0, 1)
    assert got == pytest.approx(3.0 * _w1_normal_closed_form((x.numpy() - 2.0) / 3.0), rel=1e-10)
    big = stats.norm(2.0, 3.0).ppf((np.arange(200_000) + 0.5) / 200_000)
    assert got == pytest.approx(stats.wasserstein_distance(x.numpy(), big), abs=5e-4)


@pytest.mark.parametrize("delta", [0.5, -1.0, 2.0])
def test_w1_shift(delta):
    x = torch.from_numpy(np.random.default_rng(3).normal(size=20_000))
    cdf, icdf = gaussian_law()
    base = wasserstein1_to_law(x, cdf, -15.0, 15.0, icdf)
    shifted = wasserstein1_to_law(x + delta, cdf, -15.0, 15.0, icdf)
    assert base < 0.03
    # triangle inequality: |W1(μ_n + δ, N) − W1(N + δ, N)| ≤ W1(μ_n, N), and W1(N + δ, N) = |δ|
    assert abs(shifted - abs(delta)) <= base + 1e-9
    assert shifted == pytest.approx(abs(delta), abs=0.03)


def test_w1_accepts_n_by_1_and_float32():
    x = torch.tensor([[0.3], [-1.2], [0.8]])
    cdf, _ = gaussian_law()
    got = wasserstein1_to_law(x, cdf, -12.0, 12.0)
    assert got == pytest.approx(_w1_normal_closed_form(x.double().numpy()[:, 0]), rel=1e-11)


def test_w1_checks_range():
    cdf, _ = gaussian_law()
    with pytest.raises(ValueError, match="outside"):
        wasserstein1_to_law(torch.tensor([0.0, 20.0]), cdf, -12.0, 12.0)
    with pytest.raises(ValueError, match="tail"):
        wasserstein1_to_law(torch.tensor([0.0]), cdf, -3.0, 3.0)


@pytest.mark.parametrize("seed, n, loc, scale", [(0, 10, 0.0, 1.0), (1, 500, 0.0, 1.0), (2, 3000, 0.3, 1.0),
                                                 (3, 1000, 0.0, 2.0)])
def test_ks_matches_scipy(seed, n, loc, scale):
    x = np.random.default_rng(seed).normal(loc, scale, size=n)
    ref = stats.kstest(x, "norm").statistic
    got = ks_statistic(torch.from_numpy(x), gaussian_law()[0])
    assert got == pytest.approx(ref, abs=1e-12)


def test_ks_by_hand_with_ties():
    # samples {0, 0, 1} against U(0, 1): F_n jumps to 2/3 at 0 (gap 2/3) and to 1 at 1 (gap 1/3 before)
    assert ks_statistic(torch.tensor([0.0, 1.0, 0.0]), _uniform_cdf) == pytest.approx(2 / 3, abs=1e-15)
    # {0.5} against U(0, 1): |0 − ½| just before the jump, |1 − ½| after
    assert ks_statistic(torch.tensor([0.5]), _uniform_cdf) == pytest.approx(0.5, abs=1e-15)
    ties = np.array([0.1, 0.1, 0.1, -0.7, 2.0])
    assert ks_statistic(torch.from_numpy(ties), gaussian_law()[0]) == pytest.approx(
        stats.kstest(ties, "norm").statistic, abs=1e-12)
