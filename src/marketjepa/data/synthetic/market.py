"""Assemble the whole synthetic market in memory: calendar grid → regimes → volatility →
returns and stock bars → option surface → Bayes-filter truth.

Everything is simulated for all sessions at once on a ``[day, minute-of-session]`` grid
(390 columns; half days use the first 210); the only loops run over the minute of the
session (vectorized across days) or over days for small per-day bookkeeping. Random
streams are keyed by ``(seed, component)`` so each component is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from marketjepa.config import SynthConfig
from marketjepa.data.calendar import NS_PER_MINUTE, trading_sessions
from marketjepa.data.synthetic.events import event_multipliers
from marketjepa.data.synthetic.options import DayChain, listed_expiries
from marketjepa.data.synthetic.params import MAX_MINUTES, MarketParams, market_params
from marketjepa.data.synthetic.regime import (
    emit_evidence,
    forward_filter,
    regime_loglik,
    simulate_regimes,
)
from marketjepa.data.synthetic.seasonality import VOL_SHAPE, VOLUME_SHAPE
from marketjepa.data.synthetic.stock import StockBars, build_stock_bars, regime_returns
from marketjepa.data.synthetic.surface import (
    NS_PER_YEAR,
    atm_iv,
    future_variance_units,
    remaining_variance_sums,
    skew_25d,
)
from marketjepa.data.synthetic.volatility import VolPath, simulate_volatility
from marketjepa.errors import MarketJepaError

# Random stream ids (seed, id): changing one component never shifts another's draws.
STREAM_REGIME, STREAM_EVIDENCE, STREAM_VOL, STREAM_BARS, STREAM_OPTIONS = 1, 2, 3, 4, 5
# Calendar look-ahead so the last quarterly expiry of the last day is a known session.
EXPIRY_LOOKAHEAD_DAYS = 380


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


@dataclass
class SyntheticMarket:
    cfg: SynthConfig
    params: MarketParams
    days: list[date]
    early_close: np.ndarray  # [D] bool
    open_ns: np.ndarray  # [D]
    valid: np.ndarray  # [D, W] regular minute exists
    regimes: np.ndarray  # [D, W] int8
    posterior: np.ndarray  # [D, W, K] Bayes filter
    evidence: dict[str, np.ndarray]
    vol: VolPath
    y: np.ndarray  # [D, W] standardized returns
    bars: StockBars
    expiry_dates: list[list[date]]
    expiry_close_ns: np.ndarray  # [D, E]
    atm: np.ndarray  # [D, E, W]
    skew25: np.ndarray  # [D, E, W]

    reg_ts: np.ndarray  # [D, W] bar start of each regular minute (ns)

    def drift(self) -> np.ndarray:
        """Per-minute log-return drift planted by the regime ``[D, W]``."""
        levels = np.asarray(self.params.levels)[self.regimes]
        return self.params.drift_sigma * levels * self.vol.sigma

    def truth_frame(self) -> pl.DataFrame:
        """``ts, regime, filter_p0..p{K-1}, drift`` for every regular-session minute."""
        v = self.valid
        cols = {
            "ts": self.reg_ts[v].astype(np.int64),
            "regime": self.regimes[v].astype(np.int8),
        }
        for k in range(self.params.n_regimes):
            cols[f"filter_p{k}"] = self.posterior[..., k][v]
        cols["drift"] = self.drift()[v]
        return pl.DataFrame(cols)

    def day_chain(self, d: int) -> DayChain:
        n = int(self.valid[d].sum())
        b = self.bars
        minutes = np.arange(n)
        return DayChain(
            ts=self.reg_ts[d, :n],
            s_open=b.reg_open[d, :n],
            s_high=b.reg_high[d, :n],
            s_low=b.reg_low[d, :n],
            s_close=b.reg_close[d, :n],
            atm=self.atm[d, :, :n],
            skew25=self.skew25[d, :, :n],
            expiry_close_ns=self.expiry_close_ns[d],
            expiry_dates=self.expiry_dates[d],
            z_pc=self.evidence["z_pc"][d, :n],
            activity=VOLUME_SHAPE(minutes, n),
        )


@dataclass(frozen=True)
class _Sessions:
    """NYSE sessions from ``cfg.start`` through the expiry look-ahead; the first ``n_days``
    (through ``cfg.end``) are simulated, the rest only date option expiries."""

    cal_days: list[date]
    n_days: int
    session_minutes: np.ndarray  # [all] int64
    open_ns: np.ndarray  # [all]
    close_ns: np.ndarray  # [all]

    @property
    def days(self) -> list[date]:
        return self.cal_days[: self.n_days]

    @property
    def sess_min(self) -> np.ndarray:
        return self.session_minutes[: self.n_days]

    @property
    def valid(self) -> np.ndarray:
        """``[D, W]``: the regular minute exists."""
        return np.arange(MAX_MINUTES)[None, :] < self.sess_min[:, None]


def _sessions(cfg: SynthConfig) -> _Sessions:
    cal = trading_sessions(cfg.start, cfg.end + timedelta(days=EXPIRY_LOOKAHEAD_DAYS))
    cal_days: list[date] = cal["session"].to_list()
    n_days = sum(1 for d in cal_days if d <= cfg.end)
    if n_days == 0:
        raise MarketJepaError(
            f"synth: no NYSE trading sessions between {cfg.start} and {cfg.end}; "
            "widen synth.start / synth.end"
        )
    return _Sessions(
        cal_days=cal_days,
        n_days=n_days,
        session_minutes=cal["session_minutes"].to_numpy().astype(np.int64),
        open_ns=cal["open_ns"].to_numpy(),
        close_ns=cal["close_ns"].to_numpy(),
    )


def _filter_posterior(
    y: np.ndarray, evidence: dict[str, np.ndarray], p: MarketParams
) -> np.ndarray:
    """Bayes-filter posterior ``[D, W, K]`` of the regime from returns and evidence."""
    loglik = regime_loglik(
        y,
        evidence["z_skew"],
        evidence["z_pc"],
        evidence["z_vol"],
        np.asarray(p.levels),
        p.drift_sigma,
        p.autocorr(),
        p.evidence,
        p.volume_evidence_mean(),
        p.t_dof,
    )
    return forward_filter(loglik, p.transition())


@dataclass
class _Surface:
    """Option surface on the ``[day, expiry, minute]`` grid."""

    expiry_dates: list[list[date]]
    expiry_close_ns: np.ndarray  # [D, E]
    reg_ts: np.ndarray  # [D, W]
    atm: np.ndarray  # [D, E, W]
    skew25: np.ndarray  # [D, E, W]


def _option_surface(
    s: _Sessions,
    vol: VolPath,
    z_skew: np.ndarray,
    ev_vol_all: np.ndarray,
    ev_gap_all: np.ndarray,
    p: MarketParams,
) -> _Surface:
    """ATM implied vol and 25-delta skew of each listed expiry at every regular minute."""
    n_days, sess_min_all = s.n_days, s.session_minutes
    exp_idx = listed_expiries(s.days, s.cal_days)
    exp_close = s.close_ns[exp_idx]
    n_ahead = exp_idx - np.arange(n_days)[:, None]
    m_all = np.arange(MAX_MINUTES)
    # Variance units of every future session (shape × event multiplier) and overnight.
    units_all = np.where(
        m_all[None, :] < sess_min_all[:, None],
        (VOL_SHAPE(m_all, sess_min_all[:, None]) * ev_vol_all) ** 2,
        0.0,
    ).sum(axis=1)
    on_all = p.ext_var_units + p.gap_var_units * ev_gap_all**2
    future = future_variance_units(vol.slow, vol.mid, n_ahead, units_all, on_all, p)
    # Remaining variance of today, with the fast factor decaying towards its mean.
    r1, r2 = remaining_variance_sums(vol.shape, p.fast_phi)
    g = np.exp(2.0 * vol.fast - 2.0 * p.fast_sd**2)
    today = (vol.level**2)[:, None] * (r1 + (g - 1.0) * r2)
    reg_ts = s.open_ns[:n_days, None] + m_all * NS_PER_MINUTE
    t_years = (exp_close[:, :, None] - reg_ts[:, None, :] - NS_PER_MINUTE) / NS_PER_YEAR
    return _Surface(
        expiry_dates=[[s.cal_days[i] for i in row] for row in exp_idx],
        expiry_close_ns=exp_close,
        reg_ts=reg_ts,
        atm=atm_iv(today, future, t_years, vol.vrp, p.base_sigma, p.vrp_term),
        skew25=skew_25d(t_years, vol.level, z_skew, p),
    )


def simulate_market(cfg: SynthConfig) -> SyntheticMarket:
    """Simulate every array of the market for ``cfg`` (deterministic in ``cfg.seed``)."""
    s = _sessions(cfg)
    n_days, sess_min, valid = s.n_days, s.sess_min, s.valid
    p = market_params(cfg)
    seed = cfg.seed

    regimes = simulate_regimes(
        rng_for(seed, STREAM_REGIME), n_days, MAX_MINUTES, p.n_regimes, p.regime_mean_minutes
    )
    evidence = emit_evidence(
        rng_for(seed, STREAM_EVIDENCE),
        regimes,
        np.asarray(p.levels),
        p.evidence,
        p.volume_evidence_mean(),
    )
    ev_vol_all, ev_gap_all = event_multipliers(s.cal_days, s.session_minutes, MAX_MINUTES, p)
    vol = simulate_volatility(rng_for(seed, STREAM_VOL), valid, sess_min, ev_vol_all[:n_days], p)
    y = regime_returns(vol.eps, regimes, valid, p)
    bars = build_stock_bars(
        rng_for(seed, STREAM_BARS),
        y,
        vol,
        evidence["z_vol"],
        ev_gap_all[:n_days],
        valid,
        s.open_ns[:n_days],
        s.close_ns[:n_days],
        cfg.premarket_minutes,
        cfg.postmarket_minutes,
        p,
    )
    surface = _option_surface(s, vol, evidence["z_skew"], ev_vol_all, ev_gap_all, p)
    return SyntheticMarket(
        cfg=cfg,
        params=p,
        days=s.days,
        early_close=sess_min < MAX_MINUTES,
        open_ns=s.open_ns[:n_days],
        valid=valid,
        regimes=regimes,
        posterior=_filter_posterior(y, evidence, p),
        evidence=evidence,
        vol=vol,
        y=y,
        bars=bars,
        reg_ts=surface.reg_ts,
        expiry_dates=surface.expiry_dates,
        expiry_close_ns=surface.expiry_close_ns,
        atm=surface.atm,
        skew25=surface.skew25,
    )
