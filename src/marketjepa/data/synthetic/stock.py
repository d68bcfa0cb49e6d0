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


def _cents(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(np.exp(x), 2), 0.01)


@dataclass(frozen=True)
class _Grid:
    """Layout of the ``[day, column]`` bar grid: pre-market, regular, post-market columns."""

    n_days: int
    width: int  # regular-session columns
    n_pre: int
    n_post: int
    valid: np.ndarray  # [D, W] regular minute exists
    path: np.ndarray  # [D, cols] bar lies on the price path (extended bars always do)

    @classmethod
    def of(cls, valid: np.ndarray, n_pre: int, n_post: int) -> _Grid:
        n_days, width = valid.shape
        path = np.ones((n_days, n_pre + width + n_post), dtype=bool)
        path[:, n_pre : n_pre + width] = valid
        return cls(n_days, width, n_pre, n_post, valid, path)

    @property
    def cols(self) -> int:
        return self.n_pre + self.width + self.n_post

    @property
    def reg(self) -> slice:
        return slice(self.n_pre, self.n_pre + self.width)

    @property
    def post(self) -> slice:
        return slice(self.n_pre + self.width, self.cols)

    @property
    def ext_cols(self) -> np.ndarray:
        return np.r_[0 : self.n_pre, self.n_pre + self.width : self.cols]

    def zeros(self, dtype: type = float) -> np.ndarray:
        return np.zeros((self.n_days, self.cols), dtype=dtype)


@dataclass
class _LogOhlc:
    """Log open/high/low/close of every bar on the path, flattened in time order."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


def _log_ohlc(
    rng: np.random.Generator,
    y: np.ndarray,
    vol: VolPath,
    gap_mult: np.ndarray,
    g: _Grid,
    p: MarketParams,
) -> _LogOhlc:
    """Log prices of every bar: returns, overnight jumps, then Brownian-bridge extremes."""
    # Log returns and per-bar variances on the [day, column] grid.
    ext_cols = g.ext_cols
    ext_sigma = p.base_sigma * p.ext_vol_ratio * vol.level
    ret, var = g.zeros(), g.zeros()
    ret[:, ext_cols] = ext_sigma[:, None] * student_t(rng, p.t_dof, (g.n_days, ext_cols.size))
    var[:, ext_cols] = (ext_sigma**2)[:, None]
    ret[:, g.reg] = vol.sigma * y
    var[:, g.reg] = vol.sigma**2
    # Overnight jump before the first bar of each session (not before the very first):
    # fat-tailed (Student-t), larger before scheduled events.
    gap_sd = p.base_sigma * np.sqrt(p.gap_var_units) * vol.level * gap_mult
    jump = gap_sd * student_t(rng, p.overnight_t_dof, g.n_days)
    jump[0] = 0.0
    jump_grid = g.zeros()
    jump_grid[:, 0] = jump

    r_f, v_f, j_f = ret[g.path], var[g.path], jump_grid[g.path]
    log_close = np.log(p.initial_price) + np.cumsum(j_f + r_f)
    log_open = log_close - r_f
    u_hi = 1.0 - rng.random(r_f.size)  # (0, 1]
    u_lo = 1.0 - rng.random(r_f.size)
    mid, d2 = log_open + log_close, (log_close - log_open) ** 2
    log_high = 0.5 * (mid + np.sqrt(d2 - 2.0 * v_f * np.log(u_hi)))
    log_low = 0.5 * (mid - np.sqrt(d2 - 2.0 * v_f * np.log(u_lo)))
    return _LogOhlc(open=log_open, high=log_high, low=log_low, close=log_close)


def _volume_grid(
    rng: np.random.Generator, vol: VolPath, z_vol: np.ndarray, g: _Grid, p: MarketParams
) -> np.ndarray:
    """Unrounded share volume of every ``[day, column]`` cell.

    U-shaped, rising with the vol level and event multiplier, carrying the volume evidence;
    bursts after large shocks (jumps, news) decay over minutes.
    """
    valid = g.valid
    minute = np.broadcast_to(np.arange(g.width), (g.n_days, g.width))
    sess_min = valid.sum(axis=1)
    event = vol.shape / np.maximum(
        np.where(valid, VOL_SHAPE(minute, sess_min[:, None]), 1.0), 1e-12
    )
    lvl = (vol.level[:, None] * event * np.exp(vol.fast - p.fast_sd**2)) ** p.volume_vol_elasticity
    shock = np.maximum(np.abs(vol.eps) - 2.0, 0.0)
    burst = lfilter([1.0], [1.0, -0.85], shock, axis=1)
    c, n_sd = p.volume_evidence_scale, p.volume_noise_sd
    volume = g.zeros()
    volume[:, g.reg] = (
        p.midday_volume
        * VOLUME_SHAPE(minute, sess_min[:, None])
        * lvl
        * (1.0 + p.burst_per_jump * burst)
        * np.exp(c * z_vol - 0.5 * c * c)
        * _lognormal(rng, n_sd, (g.n_days, g.width))
    )
    ext_cols = g.ext_cols
    ext_level = (vol.level**p.volume_vol_elasticity)[:, None]
    volume[:, ext_cols] = (
        p.midday_volume
        * p.ext_volume_ratio
        * ext_level
        * _lognormal(rng, 0.6, (g.n_days, ext_cols.size))
    )
    return volume


def _timestamps(open_ns: np.ndarray, close_ns: np.ndarray, g: _Grid) -> np.ndarray:
    """Bar start ``[D, cols]`` (int64 ns): pre-market ends at the open, post starts at the close."""
    ts = g.zeros(np.int64)
    ts[:, : g.n_pre] = open_ns[:, None] - (g.n_pre - np.arange(g.n_pre)) * NS_PER_MINUTE
    ts[:, g.reg] = open_ns[:, None] + np.arange(g.width) * NS_PER_MINUTE
    ts[:, g.post] = close_ns[:, None] + np.arange(g.n_post) * NS_PER_MINUTE
    return ts


def _kinds(g: _Grid) -> np.ndarray:
    kind = np.full((g.n_days, g.cols), REGULAR, dtype=np.int8)
    kind[:, : g.n_pre] = PRE
    kind[:, g.post] = POST
    return kind


def _regular_grid(prices: np.ndarray, g: _Grid) -> np.ndarray:
    """Scatter flattened path prices back onto the ``[D, W]`` regular-session grid."""
    grid = g.zeros()
    grid[g.path] = prices
    return grid[:, g.reg]


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
    g = _Grid.of(valid, n_pre, n_post)
    # Draw order is part of the output: returns and jumps, bridge extremes, volumes,
    # trade counts, then extended-hours presence.
    logs = _log_ohlc(rng, y, vol, gap_mult, g, p)
    vol_f = np.maximum(np.rint(_volume_grid(rng, vol, z_vol, g, p)[g.path]), 1.0)
    trades = np.clip(
        np.rint(vol_f / p.shares_per_trade * _lognormal(rng, 0.25, vol_f.size)), 1, vol_f
    )
    # Not every extended-hours minute trades; regular minutes always do.
    present = np.ones((g.n_days, g.cols), dtype=bool)
    present[:, g.ext_cols] = rng.random((g.n_days, g.ext_cols.size)) < p.ext_bar_presence
    emit = present[g.path]

    o, h, lo, cl = _cents(logs.open), _cents(logs.high), _cents(logs.low), _cents(logs.close)
    day = np.broadcast_to(np.arange(g.n_days)[:, None], (g.n_days, g.cols))
    day_e = day[g.path][emit]
    return StockBars(
        ts=_timestamps(open_ns, close_ns, g)[g.path][emit],
        open=o[emit],
        high=h[emit],
        low=lo[emit],
        close=cl[emit],
        volume=vol_f[emit].astype(np.int64),
        transactions=trades[emit].astype(np.int64),
        kind=_kinds(g)[g.path][emit],
        day_offsets=np.searchsorted(day_e, np.arange(g.n_days + 1)),
        reg_open=_regular_grid(o, g),
        reg_high=_regular_grid(h, g),
        reg_low=_regular_grid(lo, g),
        reg_close=_regular_grid(cl, g),
    )
