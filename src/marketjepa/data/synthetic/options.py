"""The synthetic SPY-like option chain: listed expiries, strikes, and per-day minute bars.

Per session: strikes ``$1`` apart, ``±strikes_each_side`` around the rounded first regular
open; three expiries — same day (0DTE; SPY lists daily expiries), the next weekly
(Friday, or the session before it when that Friday is a holiday) and the monthly (third
Friday) after that; calls and puts. A contract has a bar only in minutes where it
traded: the trade probability falls with distance from the money and rises at the open
and close. Prices are Black–Scholes on the surface (:mod:`.surface`) at the bar's
underlying open/high/low/close, with a small quote noise, rounded to cents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from marketjepa.black_scholes import bs_price
from marketjepa.data.calendar import NS_PER_MINUTE
from marketjepa.data.synthetic.params import MarketParams
from marketjepa.data.synthetic.surface import NS_PER_YEAR, smile_iv
from marketjepa.errors import MarketJepaError

N_EXPIRIES = 3  # 0DTE, weekly, monthly
COLUMNS = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]


def _third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def listed_expiries(days: list[date], calendar_days: list[date]) -> np.ndarray:
    """Session indices ``[D, 3]`` into ``calendar_days`` (sorted sessions, starting with
    ``days``) of each day's 0DTE, next weekly and monthly expiry."""
    cal = np.array(calendar_days, dtype="datetime64[D]")

    def session_on_or_before(day: date) -> int:
        return int(np.searchsorted(cal, np.datetime64(day), side="right")) - 1

    out = np.zeros((len(days), N_EXPIRIES), dtype=np.int64)
    for i, day in enumerate(days):
        friday = day + timedelta(days=(4 - day.weekday()) % 7 or 7)
        weekly = session_on_or_before(friday)
        if weekly <= i:  # holiday Friday right after a Thursday session: next week's
            weekly = session_on_or_before(friday + timedelta(days=7))
        ref = calendar_days[min(weekly, len(calendar_days) - 1)]
        year, month = ref.year, ref.month
        monthly = session_on_or_before(_third_friday(year, month))
        while monthly <= weekly:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            monthly = session_on_or_before(_third_friday(year, month))
        if monthly >= len(calendar_days) - 1 and _third_friday(year, month) > calendar_days[-1]:
            raise MarketJepaError(
                f"synth: the exchange calendar ends at {calendar_days[-1]}, before the monthly "
                f"option expiry listed on {day}; choose an earlier synth.end"
            )
        out[i] = (i, weekly, monthly)
    return out


@dataclass
class DayChain:
    """Everything the option bars of one session need (regular minutes ``M``)."""

    ts: np.ndarray  # [M] bar starts (ns)
    s_open: np.ndarray  # [M] underlying bars
    s_high: np.ndarray
    s_low: np.ndarray
    s_close: np.ndarray
    atm: np.ndarray  # [E, M]
    skew25: np.ndarray  # [E, M]
    expiry_close_ns: np.ndarray  # [E]
    expiry_dates: list[date]
    z_pc: np.ndarray  # [M] put/call evidence
    activity: np.ndarray  # [M] intraday volume seasonality (1 at midday)


def _contracts(root: str, chain: DayChain, n_side: int):
    k0 = float(np.round(chain.s_open[0]))
    strikes = k0 + np.arange(-n_side, n_side + 1, dtype=np.float64)
    # Order = OCC ticker order: expiry, then right (C < P), then strike.
    e, right, k = np.meshgrid(np.arange(N_EXPIRIES), [True, False], strikes, indexing="ij")
    e, is_call, k = e.ravel(), right.ravel(), k.ravel()
    names = [
        f"O:{root}{chain.expiry_dates[ei]:%y%m%d}{'C' if c else 'P'}{round(ki * 1000):08d}"
        for ei, c, ki in zip(e, is_call, k, strict=True)
    ]
    return e, is_call, k, names


def day_option_bars(
    rng: np.random.Generator, root: str, chain: DayChain, n_side: int, p: MarketParams
) -> pl.DataFrame:
    """Polygon-style option minute bars of one session, sorted by ticker then time."""
    ce, c_call, ck, names = _contracts(root, chain, n_side)
    s_ref = chain.s_close[None, :]
    dist = np.abs(ck[:, None] - s_ref) / (p.trade_width * s_ref / 460.0)
    # activity is 1 at midday, ~4× at the open: more contracts trade near the open/close.
    act = chain.activity**0.35
    prob = np.minimum(np.asarray(p.trade_prob)[ce][:, None] * np.exp(-dist) * act[None, :], 0.98)
    ci, mi = np.nonzero(rng.random(prob.shape) < prob)
    n = ci.size

    e, is_call, k = ce[ci], c_call[ci], ck[ci]
    t_close = (chain.expiry_close_ns[e] - chain.ts[mi] - NS_PER_MINUTE) / NS_PER_YEAR
    t_open = t_close + NS_PER_MINUTE / NS_PER_YEAR
    atm, skew = chain.atm[e, mi], chain.skew25[e, mi]
    # Calls are worth most at the underlying's high, puts at its low.
    s_hi = np.where(is_call, chain.s_high[mi], chain.s_low[mi])
    s_lo = np.where(is_call, chain.s_low[mi], chain.s_high[mi])
    spot = np.concatenate([chain.s_open[mi], chain.s_close[mi], s_hi, s_lo])
    tt = np.concatenate([t_open, t_close, t_close, t_close])
    kk, cc = np.tile(k, 4), np.tile(is_call, 4)
    carry = p.risk_free_rate - p.dividend_yield
    iv = smile_iv(
        kk, spot * np.exp(carry * tt), tt, np.tile(atm, 4), np.tile(skew, 4), p.smile_curvature
    )
    model = bs_price(spot, kk, tt, iv, cc, p.risk_free_rate, p.dividend_yield).reshape(4, n)
    noisy = model * np.exp(p.option_price_noise * rng.standard_normal((4, n)))
    o, c, hi, lo = np.maximum(np.round(noisy, 2), 0.01)
    hi = np.maximum(hi, np.maximum(o, c))
    lo = np.minimum(lo, np.minimum(o, c))

    # Volumes: near-the-money and short-dated trade most; puts/calls carry the evidence.
    side = np.where(is_call, -0.5, 0.5) * p.put_call_evidence_scale * chain.z_pc[mi]
    mean_vol = np.asarray(p.option_volume)[e] * np.exp(-0.5 * dist[ci, mi] + side)
    volume = mean_vol * np.sqrt(chain.activity[mi]) * np.exp(0.8 * rng.standard_normal(n) - 0.32)
    volume = np.maximum(np.rint(volume), 1.0)
    trades = np.clip(
        np.rint(volume / p.contracts_per_trade * np.exp(0.3 * rng.standard_normal(n))), 1, volume
    )
    return pl.DataFrame(
        {
            "ticker": pl.Series(names, dtype=pl.Utf8).gather(ci),
            "volume": volume.astype(np.int64),
            "open": o,
            "close": c,
            "high": hi,
            "low": lo,
            "window_start": chain.ts[mi],
            "transactions": trades.astype(np.int64),
        }
    )
