"""Volatility: a two-factor log stochastic-volatility process with leverage and seasonality.

For regular-session bar ``t`` (minute ``m`` of session ``d``)::

    σ_t = σ_b · u(m) · exp(s_d − v_s + x_t − v_x)
    s_d = φ_s · s_{d−1} + sd_s · (ρ_s · Z_{d−1} + √(1−ρ_s²) · w_d)       (daily factor)
    x_t = φ_x · x_{t−1} + sd_x · (ρ_x · ε_{t−1} + √(1−ρ_x²) · w_t)       (minute factor)

``ε_t`` is the bar's unit-variance Student-t return shock and ``Z_d`` the session's
standardized total shock, so negative returns raise future volatility (leverage, ρ < 0).
``v_s, v_x`` are the stationary variances of ``s, x``; subtracting them keeps
``E[σ_t²] = σ_b² u(m)²`` (Taylor 1986's log-SV with a Heston-like leverage term). The
minute factor runs continuously across sessions (overnight = one step). Both AR(1)
recursions are linear, so they run in C via ``scipy.signal.lfilter``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from marketjepa.data.synthetic.params import MarketParams
from marketjepa.data.synthetic.seasonality import VOL_SHAPE


@dataclass
class VolPath:
    eps: np.ndarray  # [D, W] unit-variance t shocks of regular bars (0 where invalid)
    sigma: np.ndarray  # [D, W] per-bar σ of regular bars
    shape: np.ndarray  # [D, W] seasonal multiplier u(m)
    slow: np.ndarray  # [D] daily log-vol factor s_d
    fast: np.ndarray  # [D, W] minute log-vol factor x_t
    level: np.ndarray  # [D] exp(s_d − v_s): the day's vol level (1 on average in σ²)
    vrp: np.ndarray  # [D] implied/realized vol ratio of the day's option surface


def student_t(rng: np.random.Generator, dof: float, size) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(dof, size=size) * np.sqrt((dof - 2.0) / dof)


def _ar1(innov: np.ndarray, phi: float, start: float) -> np.ndarray:
    return lfilter([1.0], [1.0, -phi], innov, zi=np.array([phi * start]))[0]


def simulate_volatility(
    rng: np.random.Generator, valid: np.ndarray, session_minutes: np.ndarray, p: MarketParams
) -> VolPath:
    n_days, width = valid.shape
    minute = np.broadcast_to(np.arange(width), (n_days, width))
    shape = np.where(valid, VOL_SHAPE(minute, session_minutes[:, None]), 0.0)
    eps = np.where(valid, student_t(rng, p.t_dof, (n_days, width)), 0.0)

    # Daily factor, driven by the previous session's standardized shock (leverage).
    z_day = (shape * eps).sum(axis=1) / np.sqrt((shape**2).sum(axis=1))
    lev_s = np.concatenate([[0.0], z_day[:-1]])
    sd_s = p.slow_sd * np.sqrt(1.0 - p.slow_phi**2)
    w_s = rng.standard_normal(n_days)
    innov_s = sd_s * (p.slow_leverage * lev_s + np.sqrt(1.0 - p.slow_leverage**2) * w_s)
    slow = _ar1(innov_s, p.slow_phi, p.slow_sd * rng.standard_normal())

    # Minute factor over the chronological sequence of valid regular bars.
    flat_eps = eps[valid]
    sd_x = p.fast_sd * np.sqrt(1.0 - p.fast_phi**2)
    lev_x = np.concatenate([[0.0], flat_eps[:-1]])
    w_x = rng.standard_normal(flat_eps.size)
    innov_x = sd_x * (p.fast_leverage * lev_x + np.sqrt(1.0 - p.fast_leverage**2) * w_x)
    fast = np.zeros((n_days, width))
    fast[valid] = _ar1(innov_x, p.fast_phi, p.fast_sd * rng.standard_normal())

    v_s, v_x = p.slow_sd**2, p.fast_sd**2
    level = np.exp(slow - v_s)
    sigma = p.base_sigma * shape * level[:, None] * np.exp(fast - v_x)
    sigma = np.where(valid, sigma, 0.0)

    sd_v = p.vrp_sd * np.sqrt(1.0 - p.vrp_phi**2)
    log_vrp = _ar1(sd_v * rng.standard_normal(n_days), p.vrp_phi, p.vrp_sd * rng.standard_normal())
    vrp = p.vrp * np.exp(log_vrp - 0.5 * p.vrp_sd**2)
    return VolPath(eps, sigma, shape, slow, fast, level, vrp)
