"""Stock minute bars: regime-driven returns on the volatility path, pre/post-market bars,
overnight gaps, OHLC from exact Brownian-bridge extremes, and volumes.

Standardized regular-session return (``y = r/σ``), per bar::

    y_t = drift_sigma · level(s_t) + φ(s_t) · y_{t−1} + ε_t        (y_{−1} = 0 at each open)

so the regime shifts the drift and the lag-1 autocorrelation; with ``signal = 0`` both
vanish and the log price is a martingale with stochastic volatility.

The high (low) of a bar whose log price goes ``a → b`` with variance ``v`` is drawn from
the exact law of a Brownian bridge's maximum (minimum)::

    max = (a + b + sqrt((b − a)² − 2·v·ln U)) / 2,   U ~ Uniform(0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from marketjepa.data.calendar import NS_PER_MINUTE
from marketjepa.data.synthetic.params import MarketParams
from marketjepa.data.synthetic.seasonality import VOL_SHAPE, VOLUME_SHAPE
from marketjepa.data.synthetic.volatility import VolPath, student_t

PRE, REGULAR, POST = 0, 1, 2


@dataclass
class StockBars:
    """Emitted bars in time order (all sessions), plus regular-session grids for options."""

    ts: np.ndarray  # int64 ns UTC, bar start
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray  # int64
    transactions: np.ndarray  # int64
    kind: np.ndarray  # int8: PRE, REGULAR, POST
    day_offsets: np.ndarray  # [D+1] slice bounds of each session's bars
    reg_open: np.ndarray  # [D, W] regular-session prices as written (rounded)
    reg_high: np.ndarray
    reg_low: np.ndarray
    reg_close: np.ndarray


def regime_returns(
    eps: np.ndarray, regimes: np.ndarray, valid: np.ndarray, p: MarketParams
) -> np.ndarray:
    """Standardized returns ``y [D, W]``; one loop over the minute of day, vectorized over days."""
    levels = np.asarray(p.levels)[regimes]
    phi = p.autocorr()[regimes]
    drift = p.drift_sigma * levels
    y = np.empty_like(eps)
    prev = np.zeros(eps.shape[0])
    for m in range(eps.shape[1]):
        prev = drift[:, m] + phi[:, m] * prev + eps[:, m]
        y[:, m] = prev
    return np.where(valid, y, 0.0)


def _lognormal(rng: np.random.Generator, sd: float, size) -> np.ndarray:
    return np.exp(sd * rng.standard_normal(size) - 0.5 * sd * sd)


def build_stock_bars(
    rng: np.random.Generator,
    y: np.ndarray,
    vol: VolPath,
    z_vol: np.ndarray,
    gap_mult: np.ndarray,
    valid: np.ndarray,
    open_ns: np.ndarray,
    close_ns: np.ndarray,
    n_pre: int,
    n_post: int,
    p: MarketParams,
) -> StockBars:
    n_days, width = valid.shape
    cols = n_pre + width + n_post
    reg = slice(n_pre, n_pre + width)
    post = slice(n_pre + width, cols)

    # Log returns and per-bar variances on the [day, column] grid.
    ext_sigma = p.base_sigma * p.ext_vol_ratio * vol.level
    ret = np.zeros((n_days, cols))
    var = np.zeros((n_days, cols))
    ext_cols = np.r_[0:n_pre, n_pre + width : cols]
    ret[:, ext_cols] = ext_sigma[:, None] * student_t(rng, p.t_dof, (n_days, ext_cols.size))
    var[:, ext_cols] = (ext_sigma**2)[:, None]
    ret[:, reg] = vol.sigma * y
    var[:, reg] = vol.sigma**2
    # Overnight jump before the first bar of each session (not before the very first):
    # fat-tailed (Student-t), larger before scheduled events.
    gap_sd = p.base_sigma * np.sqrt(p.gap_var_units) * vol.level * gap_mult
    jump = gap_sd * student_t(rng, p.overnight_t_dof, n_days)
    jump[0] = 0.0
    jump_grid = np.zeros((n_days, cols))
    jump_grid[:, 0] = jump

    path = np.ones((n_days, cols), dtype=bool)
    path[:, reg] = valid
    r_f, v_f, j_f = ret[path], var[path], jump_grid[path]
    log_close = np.log(p.initial_price) + np.cumsum(j_f + r_f)
    log_open = log_close - r_f
    u_hi = 1.0 - rng.random(r_f.size)  # (0, 1]
    u_lo = 1.0 - rng.random(r_f.size)
    mid, d2 = log_open + log_close, (log_close - log_open) ** 2
    log_high = 0.5 * (mid + np.sqrt(d2 - 2.0 * v_f * np.log(u_hi)))
    log_low = 0.5 * (mid - np.sqrt(d2 - 2.0 * v_f * np.log(u_lo)))

    # Volumes: U-shaped, rising with the vol level and event multiplier, carrying the
    # volume evidence; bursts after large shocks (jumps, news) decay over minutes.
    minute = np.broadcast_to(np.arange(width), (n_days, width))
    sess_min = valid.sum(axis=1)
    event = vol.shape / np.maximum(
        np.where(valid, VOL_SHAPE(minute, sess_min[:, None]), 1.0), 1e-12
    )
    lvl = (vol.level[:, None] * event * np.exp(vol.fast - p.fast_sd**2)) ** p.volume_vol_elasticity
    shock = np.maximum(np.abs(vol.eps) - 2.0, 0.0)
    burst = lfilter([1.0], [1.0, -0.85], shock, axis=1)
    c, n_sd = p.volume_evidence_scale, p.volume_noise_sd
    volume = np.zeros((n_days, cols))
    volume[:, reg] = (
        p.midday_volume
        * VOLUME_SHAPE(minute, sess_min[:, None])
        * lvl
        * (1.0 + p.burst_per_jump * burst)
        * np.exp(c * z_vol - 0.5 * c * c)
        * _lognormal(rng, n_sd, (n_days, width))
    )
    ext_level = (vol.level**p.volume_vol_elasticity)[:, None]
    volume[:, ext_cols] = (
        p.midday_volume
        * p.ext_volume_ratio
        * ext_level
        * _lognormal(rng, 0.6, (n_days, ext_cols.size))
    )
    vol_f = np.maximum(np.rint(volume[path]), 1.0)
    trades = np.clip(
        np.rint(vol_f / p.shares_per_trade * _lognormal(rng, 0.25, vol_f.size)), 1, vol_f
    )

    # Timestamps and bar kinds.
    ts = np.zeros((n_days, cols), dtype=np.int64)
    ts[:, :n_pre] = open_ns[:, None] - (n_pre - np.arange(n_pre)) * NS_PER_MINUTE
    ts[:, reg] = open_ns[:, None] + np.arange(width) * NS_PER_MINUTE
    ts[:, post] = close_ns[:, None] + np.arange(n_post) * NS_PER_MINUTE
    kind = np.full((n_days, cols), REGULAR, dtype=np.int8)
    kind[:, :n_pre] = PRE
    kind[:, post] = POST
    day = np.broadcast_to(np.arange(n_days)[:, None], (n_days, cols))

    # Not every extended-hours minute trades; regular minutes always do.
    present = np.ones((n_days, cols), dtype=bool)
    present[:, ext_cols] = rng.random((n_days, ext_cols.size)) < p.ext_bar_presence
    emit = present[path]

    def cents(x: np.ndarray) -> np.ndarray:
        return np.maximum(np.round(np.exp(x), 2), 0.01)

    o, h, lo, cl = cents(log_open), cents(log_high), cents(log_low), cents(log_close)
    reg_grid = {}
    for name, arr in (("open", o), ("high", h), ("low", lo), ("close", cl)):
        grid = np.zeros((n_days, cols))
        grid[path] = arr
        reg_grid[name] = grid[:, reg]
    day_e = day[path][emit]
    return StockBars(
        ts=ts[path][emit],
        open=o[emit],
        high=h[emit],
        low=lo[emit],
        close=cl[emit],
        volume=vol_f[emit].astype(np.int64),
        transactions=trades[emit].astype(np.int64),
        kind=kind[path][emit],
        day_offsets=np.searchsorted(day_e, np.arange(n_days + 1)),
        reg_open=reg_grid["open"],
        reg_high=reg_grid["high"],
        reg_low=reg_grid["low"],
        reg_close=reg_grid["close"],
    )
