"""Hidden regime: a K-state Markov chain per session and its exact Bayes (forward) filter.

The chain lives on the regular-session minutes of each session and restarts from its
stationary (uniform) law at every open, so sessions are independent and both simulation
and filtering vectorize across days (one loop over the ≤ 390 minutes of a session).

Forward filter (Rabiner 1989, eq. 19–20), with transition matrix ``A`` and per-bar
observation likelihoods ``L_t(k)``::

    π_0(k)   ∝ L_0(k) · ρ(k)                           (ρ = stationary law)
    π_t(k)   ∝ L_t(k) · Σ_j π_{t−1}(j) · A[j, k]

``π_t`` uses observations up to and including bar ``t`` only (causal).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def simulate_regimes(
    rng: np.random.Generator, n_days: int, n_minutes: int, n_regimes: int, mean_minutes: float
) -> np.ndarray:
    """Regime path ``[n_days, n_minutes]`` (int8). Leaving a state (prob 1/mean per bar)
    moves uniformly to one of the other states, so the stationary law is uniform."""
    s0 = rng.integers(0, n_regimes, size=n_days)
    switch = rng.random((n_days, n_minutes)) < 1.0 / mean_minutes
    jump = rng.integers(1, n_regimes, size=(n_days, n_minutes))
    step = np.where(switch, jump, 0)
    step[:, 0] = 0
    return ((s0[:, None] + np.cumsum(step, axis=1)) % n_regimes).astype(np.int8)


def student_t_logpdf_unit(e: np.ndarray, dof: float) -> np.ndarray:
    """Log density of a Student-t with ``dof`` degrees of freedom scaled to unit variance."""
    c = gammaln((dof + 1) / 2) - gammaln(dof / 2) - 0.5 * np.log((dof - 2) * np.pi)
    return c - (dof + 1) / 2 * np.log1p(e * e / (dof - 2))


def regime_loglik(
    y: np.ndarray,
    z_skew: np.ndarray,
    z_pc: np.ndarray,
    z_vol: np.ndarray,
    levels: np.ndarray,
    drift_sigma: float,
    autocorr: np.ndarray,
    evidence: float,
    volume_mean: np.ndarray,
    dof: float,
) -> np.ndarray:
    """Per-bar log-likelihood ``[D, M, K]`` of the observables under each regime.

    Channels (all ``[D, M]``; noise terms independent across bars and channels):

    * ``z_skew``, ``z_pc`` ~ N(−a·level_k, 1) — skew and put/call evidence (down → more puts),
    * ``z_vol`` ~ N(volume_mean_k, 1) — volume evidence (trending regimes trade more),
    * ``y_t`` = drift_sigma·level_k + φ_k·y_{t−1} + ε_t, ε ~ unit-variance t(dof) —
      standardized return with regime drift and regime lag-1 autocorrelation.
    """
    lv = levels[None, None, :]
    a = evidence
    ll = -0.5 * (z_skew[..., None] + a * lv) ** 2
    ll += -0.5 * (z_pc[..., None] + a * lv) ** 2
    ll += -0.5 * (z_vol[..., None] - volume_mean[None, None, :]) ** 2
    y_prev = np.zeros_like(y)
    y_prev[:, 1:] = y[:, :-1]
    resid = y[..., None] - drift_sigma * lv - autocorr[None, None, :] * y_prev[..., None]
    ll += student_t_logpdf_unit(resid, dof)
    return ll


def forward_filter(loglik: np.ndarray, transition: np.ndarray) -> np.ndarray:
    """Filtered posteriors ``[D, M, K]`` from log-likelihoods ``[D, M, K]``; restarts from
    the uniform stationary law at minute 0 of every session."""
    n_days, n_min, k = loglik.shape
    post = np.empty((n_days, n_min, k))
    prior = np.full((n_days, k), 1.0 / k)
    for m in range(n_min):
        pred = prior if m == 0 else post[:, m - 1] @ transition
        ll = loglik[:, m]
        w = pred * np.exp(ll - ll.max(axis=1, keepdims=True))
        post[:, m] = w / w.sum(axis=1, keepdims=True)
    return post


def emit_evidence(
    rng: np.random.Generator,
    regimes: np.ndarray,
    levels: np.ndarray,
    evidence: float,
    volume_mean: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-bar evidence values ``[D, M]`` (unit-variance noise around a regime mean).

    They enter the observables linearly (skew, log put/call volume, log stock volume); with
    ``evidence = 0`` they are pure noise and carry nothing about the regime.
    """
    lv = levels[regimes]
    shape = regimes.shape
    return {
        "z_skew": -evidence * lv + rng.standard_normal(shape),
        "z_pc": -evidence * lv + rng.standard_normal(shape),
        "z_vol": volume_mean[regimes] + rng.standard_normal(shape),
    }
