"""Power-function EMA profiles and their post-hoc reconstruction (Karras et al. 2024, "Analyzing and Improving the
Training Dynamics of Diffusion Models" (EDM2), §3 and Appendix C). Pure functions on float64 numpy arrays.

**The profile.** An average of the weights θ_τ a run has taken up to time t, ``θ̂_t = ∫₀ᵗ p_t(τ) θ_τ dτ``, with the
power-function profile

    p_t(τ) = (γ + 1) τ^γ / t^(γ+1)        (0 ≤ τ ≤ t, γ > 0)

forgets the start the more the longer training runs: its width relative to t is a constant, the *relative
standard deviation*

    σ_rel² = (γ + 1) / ((γ + 2)² (γ + 3))                                (EDM2 Eq. 123)

σ_rel falls from 1/√12 ≈ 0.2887 (γ = 0: the plain mean of every weight) towards 0 as γ grows; its inverse is the
largest real root of the cubic γ³ + 7γ² + (16 − σ_rel⁻²)γ + (12 − σ_rel⁻²) = 0 (Eq. 126, Algorithm 2).

**Tracking it during training.** After the t-th update (t = 1, 2, … counted in generator updates; EDM2 counts
images, t_δ = the batch, which gives the same β for a constant batch),

    θ̂_t = β_t θ̂_{t−1} + (1 − β_t) θ_t,        β_t = (1 − 1/t)^(γ+1)        (Eq. 127)

β_1 = 0, and the product of the β's telescopes: θ_t's weight in θ̂_T is exactly

    w_t = (t^(γ+1) − (t − 1)^(γ+1)) / T^(γ+1) = ∫_{t−1}^{t} p_T(τ) dτ,

the profile's mass over the t-th step (≈ (γ+1) t^γ / T^(γ+1), i.e. w ∝ t^γ up to O(γ/t)). So the tracked average is
the continuous profile applied to the piecewise-constant weight path θ_⌈τ⌉, and inner products of profiles in
L²(0, ∞) are the right geometry for the discrete averages too.

**Reconstruction.** Snapshots θ̂_i of profiles p_i (a tracked γ_i at a snapshot time t_i) are combined as
Σ_i x_i θ̂_i, whose profile is Σ_i x_i p_i; x minimises ‖Σ_i x_i p_i − p_out‖² over L², the normal equations
A x = b with the closed-form inner products (Eq. 151, Algorithm 3): for t_a ≤ t_b

    ⟨p_a, p_b⟩ = (γ_a + 1)(γ_b + 1) / (γ_a + γ_b + 1) · (t_a / t_b)^γ_b / t_b,

symmetric otherwise. As in the reference, x is then scaled to sum to 1 (the average of constant weights is that
constant). :func:`profile_error` says how well a target is matched: ‖Σ x_i p_i − p_out‖ / ‖p_out‖.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SIGMA_REL_MAX", "gamma_to_sigma_rel", "sigma_rel_to_gamma", "power_beta", "power_weights",
           "profile_inner", "solve_posthoc_coefficients", "profile_error"]

SIGMA_REL_MAX = 12 ** -0.5  # γ = 0: the plain mean of every weight, the widest power-function profile with γ ≥ 0


def gamma_to_sigma_rel(gamma) -> np.ndarray:
    """σ_rel of the power-function profile with exponent γ (EDM2 Eq. 123)."""
    g = np.asarray(gamma, dtype=np.float64)
    return np.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3)))


def sigma_rel_to_gamma(sigma_rel) -> np.ndarray:
    """γ of the power-function profile with relative standard deviation σ_rel ∈ (0, 1/√12]: the largest real root
    of γ³ + 7γ² + (16 − σ_rel⁻²)γ + (12 − σ_rel⁻²) (EDM2 Eq. 126, Algorithm 2)."""
    s = np.asarray(sigma_rel, dtype=np.float64)
    if np.any(~(s > 0)) or np.any(s > SIGMA_REL_MAX * (1 + 1e-12)):
        raise ValueError(f"sigma_rel must lie in (0, {SIGMA_REL_MAX:.5f}], got {sigma_rel}")
    inv = s.reshape(-1) ** -2
    roots = [np.roots([1.0, 7.0, 16.0 - q, 12.0 - q]) for q in inv]
    gamma = np.array([r.real[np.abs(r.imag) < 1e-9 * max(1.0, np.abs(r).max())].max() for r in roots])
    return np.maximum(gamma, 0.0).reshape(s.shape)  # γ = 0 at σ_rel = 1/√12 can round to −1e-16


def power_beta(t, gamma, dt: float = 1.0) -> np.ndarray:
    """β of the update that brings the power-function average to time ``t`` from ``t − dt`` (EDM2 Eq. 127):
    β = (1 − dt/t)^(γ+1); 0 at the first update (t = dt)."""
    t = np.asarray(t, dtype=np.float64)
    return (1.0 - dt / t) ** (np.asarray(gamma, dtype=np.float64) + 1.0)


def power_weights(steps: int, gamma: float) -> np.ndarray:
    """The weight of θ_1 … θ_T in the power-function average after T = ``steps`` updates of :func:`power_beta`:
    w_t = (t^(γ+1) − (t−1)^(γ+1)) / T^(γ+1), which sum to 1 (the module docstring's telescoping product)."""
    t = np.arange(1, steps + 1, dtype=np.float64)
    e = float(gamma) + 1.0
    return (t / steps) ** e - ((t - 1) / steps) ** e


def profile_inner(t_a, gamma_a, t_b, gamma_b) -> np.ndarray:
    """⟨p_a, p_b⟩ = ∫₀^∞ p_a(τ) p_b(τ) dτ of two power-function profiles (ending at t_a, t_b > 0, exponents
    γ_a, γ_b ≥ 0), broadcast over the arguments (EDM2 Eq. 151)."""
    t_a, gamma_a, t_b, gamma_b = (np.asarray(v, dtype=np.float64) for v in (t_a, gamma_a, t_b, gamma_b))
    ratio_exp = np.where(t_a < t_b, gamma_b, -gamma_a)  # (t_a/t_b)^γ_b if t_a < t_b, else (t_b/t_a)^γ_a
    num = (gamma_a + 1) * (gamma_b + 1) * (t_a / t_b) ** ratio_exp
    return num / ((gamma_a + gamma_b + 1) * np.maximum(t_a, t_b))


def _columns(t, sigma_rel) -> tuple[np.ndarray, np.ndarray]:
    t, sigma_rel = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(sigma_rel, dtype=np.float64))
    return t.reshape(-1), sigma_rel_to_gamma(sigma_rel.reshape(-1))


def solve_posthoc_coefficients(in_t, in_sigma_rel, out_t, out_sigma_rel) -> np.ndarray:
    """The coefficients X (n_in, n_out) that combine snapshots (profile i: σ_rel ``in_sigma_rel[i]`` ending at
    ``in_t[i]``) into each wanted profile j (``out_sigma_rel[j]`` ending at ``out_t[j]``): X = A⁻¹B with
    A = ⟨p_in, p_in⟩, B = ⟨p_in, p_out⟩, each column then scaled to sum to 1 (EDM2 Algorithm 3)."""
    t_in, g_in = _columns(in_t, in_sigma_rel)
    t_out, g_out = _columns(out_t, out_sigma_rel)
    gram = profile_inner(t_in[:, None], g_in[:, None], t_in[None, :], g_in[None, :])
    target = profile_inner(t_in[:, None], g_in[:, None], t_out[None, :], g_out[None, :])
    x = np.linalg.solve(gram, target)
    return x / x.sum(axis=0, keepdims=True)


def profile_error(in_t, in_sigma_rel, out_t, out_sigma_rel, coefficients: np.ndarray) -> np.ndarray:
    """‖Σ_i X_ij p_i − p_out,j‖ / ‖p_out,j‖ for each wanted profile j: how far the combination's profile is from
    the one asked for (0: exact; a tracked σ_rel at a snapshot's time gives 0 up to rounding)."""
    t_in, g_in = _columns(in_t, in_sigma_rel)
    t_out, g_out = _columns(out_t, out_sigma_rel)
    x = np.asarray(coefficients, dtype=np.float64).reshape(len(t_in), len(t_out))
    gram = profile_inner(t_in[:, None], g_in[:, None], t_in[None, :], g_in[None, :])
    target = profile_inner(t_in[:, None], g_in[:, None], t_out[None, :], g_out[None, :])
    own = profile_inner(t_out, g_out, t_out, g_out)
    squared = np.einsum("ij,ik,kj->j", x, gram, x) - 2 * np.einsum("ij,ij->j", x, target) + own
    return np.sqrt(np.maximum(squared, 0.0) / own)
