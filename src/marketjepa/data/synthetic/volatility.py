"""Volatility: a three-component log stochastic-volatility process (HAR-like time scales)
with leverage, rare jumps, scheduled events and seasonality.

For regular-session bar ``t`` (minute ``m`` of session ``d``)::

    σ_t = σ_b · u(m) · e(d, m) · exp(s_d − v_s + w_d − v_w + x_t − v_x)
    s_d = φ_s · s_{d−1} + sd_s · (ρ_s · Z_{d−1} + √(1−ρ_s²) · η_d)   (monthly, per session)
    w_d = φ_w · w_{d−1} + sd_w · (ρ_w · Z_{d−1} + √(1−ρ_w²) · η'_d)  (weekly, per session)
    x_t = φ_x · x_{t−1} + sd_x · (ρ_x · ε_{t−1} + √(1−ρ_x²) · η_t)   (intraday, per minute)

A sum of AR(1) log-variance components with half-lives of ~46 sessions, ~5 sessions and
~46 minutes mimics the slowly (hyperbolically) decaying |r| autocorrelation of real
data (Corsi 2009's HAR; Gatheral et al. 2018). ``ε_t`` is the bar's unit-variance
Student-t shock plus a rare capped jump (Poisson, ``jump_rate`` per minute, normal size
``jump_sd``·σ/u capped at ``jump_cap``·σ/u — sized without the U-shape), ``Z_d`` the session's standardized total shock,
so negative returns raise future volatility (leverage, ρ < 0). ``u(m)`` is the intraday
U-shape and ``e(d, m)`` the scheduled-event multiplier (:mod:`.events`). ``v_*`` are the
stationary variances; subtracting them keeps ``E[σ_t²] = σ_b² u(m)² e(d, m)²``. The minute
factor runs continuously across sessions (overnight = one step). All AR(1) recursions are
linear, so they run in C via ``scipy.signal.lfilter``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from marketjepa.data.synthetic.params import MarketParams
from marketjepa.data.synthetic.seasonality import VOL_SHAPE


@dataclass
class VolPath:
    eps: np.ndarray  # [D, W] unit-variance t shocks (+ jumps) of regular bars (0 where invalid)
    sigma: np.ndarray  # [D, W] per-bar σ of regular bars
    shape: np.ndarray  # [D, W] seasonal × event multiplier u(m)·e(d, m)
    slow: np.ndarray  # [D] monthly log-vol factor s_d
    mid: np.ndarray  # [D] weekly log-vol factor w_d
    fast: np.ndarray  # [D, W] minute log-vol factor x_t
    level: np.ndarray  # [D] exp(s_d − v_s + w_d − v_w): the day's vol level
    jump: np.ndarray  # [D, W] jump part of eps (0 on most bars)
    vrp: np.ndarray  # [D] implied/realized vol ratio of the day's option surface


def student_t(rng: np.random.Generator, dof: float, size) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(dof, size=size) * np.sqrt((dof - 2.0) / dof)


def _ar1(innov: np.ndarray, phi: float, start: float) -> np.ndarray:
    return lfilter([1.0], [1.0, -phi], innov, zi=np.array([phi * start]))[0]


def _daily_factor(
    rng: np.random.Generator, lev: np.ndarray, phi: float, sd: float, rho: float
) -> np.ndarray:
    innov = (
        sd
        * np.sqrt(1.0 - phi**2)
        * (rho * lev + np.sqrt(1.0 - rho**2) * rng.standard_normal(lev.size))
    )
    return _ar1(innov, phi, sd * rng.standard_normal())


def simulate_volatility(
    rng: np.random.Generator,
    valid: np.ndarray,
    session_minutes: np.ndarray,
    event_vol: np.ndarray,
    p: MarketParams,
) -> VolPath:
    n_days, width = valid.shape
    minute = np.broadcast_to(np.arange(width), (n_days, width))
    shape = np.where(valid, VOL_SHAPE(minute, session_minutes[:, None]) * event_vol, 0.0)
    # Truncated t: the tail beyond ±shock_cap (mass ~1e-4) is left to the jumps, whose size
    # does not compound with the open's U-shape (the filter's t likelihood ignores this).
    shock = np.clip(student_t(rng, p.t_dof, (n_days, width)), -p.shock_cap, p.shock_cap)
    eps = np.where(valid, shock, 0.0)
    hit = valid & (rng.random((n_days, width)) < p.jump_rate)
    jump = np.zeros((n_days, width))
    # Jump sizes are in units of the bar's σ without the intraday/event multiplier, so a jump
    # at the open is no larger than one at midday (eps is standardized by the full σ).
    size = np.clip(p.jump_sd * rng.standard_normal(int(hit.sum())), -p.jump_cap, p.jump_cap)
    jump[hit] = size / shape[hit]
    eps = eps + jump

    # Daily factors, driven by the previous session's standardized shock (leverage).
    z_day = (shape * eps).sum(axis=1) / np.sqrt((shape**2).sum(axis=1))
    lev_s = np.concatenate([[0.0], z_day[:-1]])
    slow = _daily_factor(rng, lev_s, p.slow_phi, p.slow_sd, p.slow_leverage)
    mid = _daily_factor(rng, lev_s, p.mid_phi, p.mid_sd, p.mid_leverage)

    # Minute factor over the chronological sequence of valid regular bars.
    flat_eps = eps[valid]
    sd_x = p.fast_sd * np.sqrt(1.0 - p.fast_phi**2)
    lev_x = np.concatenate([[0.0], flat_eps[:-1]])
    w_x = rng.standard_normal(flat_eps.size)
    innov_x = sd_x * (p.fast_leverage * lev_x + np.sqrt(1.0 - p.fast_leverage**2) * w_x)
    fast = np.zeros((n_days, width))
    fast[valid] = _ar1(innov_x, p.fast_phi, p.fast_sd * rng.standard_normal())

    v_s, v_w, v_x = p.slow_sd**2, p.mid_sd**2, p.fast_sd**2
    level = np.exp(slow - v_s + mid - v_w)
    # The cap keeps a rare pile-up of factors from making 60σ minutes (kurtosis outliers).
    sigma = p.base_sigma * shape * level[:, None] * np.minimum(np.exp(fast - v_x), p.fast_cap)
    sigma = np.where(valid, sigma, 0.0)

    sd_v = p.vrp_sd * np.sqrt(1.0 - p.vrp_phi**2)
    log_vrp = _ar1(sd_v * rng.standard_normal(n_days), p.vrp_phi, p.vrp_sd * rng.standard_normal())
    vrp = p.vrp * np.exp(log_vrp - 0.5 * p.vrp_sd**2)
    return VolPath(eps, sigma, shape, slow, mid, fast, level, jump, vrp)
