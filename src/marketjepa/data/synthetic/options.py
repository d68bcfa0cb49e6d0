"""The synthetic SPY-like option chain: listed expiries, strikes, and per-day minute bars.

Per session, on calls and puts:

* **expiries** (8, strictly increasing): same day (0DTE; SPY lists daily expiries), the
  next two weeklies (Friday, or the session before it when that Friday is a holiday), the
  next two monthlies (third Friday) after them and the next three quarterlies (third
  Friday of Mar/Jun/Sep/Dec) after those — the last is always ≥ 6 months out;
* **strikes**: ``$1`` apart within ``±strikes_each_side`` of the rounded first regular
  open, then ``$5`` multiples out to ``±strike_range`` (12%).

A contract has a bar only in minutes where it traded: the trade probability falls with
standardized moneyness and maturity and rises at the open and close; a few bars are
quote updates without a trade (volume 0). Prices are Black–Scholes on the surface
(:mod:`.surface`) at the bar's underlying open/high/low/close with a small trade-price
noise, rounded to cents. Each bar also carries the **bid and ask** at its close: a
half-spread of ``spread_iv`` in IV (× vega) widening with |moneyness| and at short
maturity (at least ``spread_rel`` × mid), bid rounded down and ask up to the cent (so ≥ 1 tick wide); the close trade
lies between them.
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

# 0DTE, weekly ×2, monthly ×2, quarterly ×3.
N_EXPIRIES = 8
QUARTER_MONTHS = (3, 6, 9, 12)
STOCK_COLUMNS = ["ticker", "volume", "open", "close", "high", "low", "window_start", "transactions"]
COLUMNS = [*STOCK_COLUMNS, "bid", "ask"]
WIDE_STRIKE_STEP = 5.0


def _third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def listed_expiries(days: list[date], calendar_days: list[date]) -> np.ndarray:
    """Session indices ``[D, N_EXPIRIES]`` into ``calendar_days`` (sorted sessions, starting
    with ``days``) of each day's listed expiries (see the module docstring)."""
    cal = np.array(calendar_days, dtype="datetime64[D]")

    def session_on_or_before(day: date) -> int:
        return int(np.searchsorted(cal, np.datetime64(day), side="right")) - 1

    def check(i: int, expiry: date, day: date) -> None:
        if i >= len(calendar_days) - 1 and expiry > calendar_days[-1]:
            raise MarketJepaError(
                f"synth: the exchange calendar ends at {calendar_days[-1]}, before the option "
                f"expiry {expiry} listed on {day}; choose an earlier synth.end"
            )

    def next_friday(after: int, months: tuple[int, ...] | None, day: date) -> int:
        """First session index > ``after`` that is a (monthly: third) Friday expiry."""
        ref = calendar_days[min(after, len(calendar_days) - 1)]
        if months is None:
            friday = ref + timedelta(days=(4 - ref.weekday()) % 7 or 7)
            i = session_on_or_before(friday)
            if i <= after:  # holiday Friday right after the reference session
                friday += timedelta(days=7)
                i = session_on_or_before(friday)
            check(i, friday, day)
            return i
        year, month = ref.year, ref.month
        while True:
            if month in months:
                third = _third_friday(year, month)
                i = session_on_or_before(third)
                if i > after:
                    check(i, third, day)
                    return i
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    monthly = tuple(range(1, 13))
    out = np.zeros((len(days), N_EXPIRIES), dtype=np.int64)
    for i, day in enumerate(days):
        row = [i]
        for months in (
            None,
            None,
            monthly,
            monthly,
            QUARTER_MONTHS,
            QUARTER_MONTHS,
            QUARTER_MONTHS,
        ):
            row.append(next_friday(row[-1], months, day))
        out[i] = row
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


def chain_strikes(first_open: float, n_side: int, strike_range: float) -> np.ndarray:
    """``$1`` strikes within ``±n_side`` of the rounded open, then ``$5`` multiples out to
    ``±strike_range`` of it (sorted, unique)."""
    k0 = float(np.round(first_open))
    near = k0 + np.arange(-n_side, n_side + 1, dtype=np.float64)
    lo = np.ceil(k0 * (1.0 - strike_range) / WIDE_STRIKE_STEP) * WIDE_STRIKE_STEP
    hi = np.floor(k0 * (1.0 + strike_range) / WIDE_STRIKE_STEP) * WIDE_STRIKE_STEP
    wide = np.arange(lo, hi + 0.5, WIDE_STRIKE_STEP)
    wide = wide[(wide < near[0]) | (wide > near[-1])]
    return np.unique(np.concatenate([near, wide[wide > 0]]))


def _contracts(root: str, chain: DayChain, n_side: int, strike_range: float):
    strikes = chain_strikes(chain.s_open[0], n_side, strike_range)
    # Order = OCC ticker order: expiry, then right (C < P), then strike.
    e, right, k = np.meshgrid(np.arange(N_EXPIRIES), [True, False], strikes, indexing="ij")
    e, is_call, k = e.ravel(), right.ravel(), k.ravel()
    names = [
        f"O:{root}{chain.expiry_dates[ei]:%y%m%d}{'C' if c else 'P'}{round(ki * 1000):08d}"
        for ei, c, ki in zip(e, is_call, k, strict=True)
    ]
    return e, is_call, k, names


def vega(spot, strike, t_years, iv, r: float, q: float) -> np.ndarray:
    """Black–Scholes vega per 1.00 of vol."""
    t = np.maximum(t_years, 1e-9)
    sd = iv * np.sqrt(t)
    d1 = (np.log(spot / strike) + (r - q + 0.5 * iv * iv) * t) / sd
    return spot * np.exp(-q * t) * np.exp(-0.5 * d1 * d1) / np.sqrt(2.0 * np.pi) * np.sqrt(t)


def half_spread_iv(x: np.ndarray, t_years: np.ndarray, p: MarketParams) -> np.ndarray:
    """Quoted half-spread in IV: wider away from the money and at short maturity."""
    days = np.maximum(t_years * 365.0, 0.05)
    return (
        p.spread_iv
        * (1.0 + p.spread_moneyness * np.abs(x))
        * (1.0 + p.spread_short / np.sqrt(days))
    )


def quote_bid_ask(
    mid, spot, strike, t_years, iv, x, p: MarketParams
) -> tuple[np.ndarray, np.ndarray]:
    """Bid (rounded down, ≥ 0) and ask (rounded up, ≥ bid + 1 cent) around the model mid."""
    half = half_spread_iv(x, t_years, p) * vega(
        spot, strike, t_years, iv, p.risk_free_rate, p.dividend_yield
    )
    half = np.maximum(half, np.maximum(0.005, p.spread_rel * mid))
    bid = np.maximum(np.floor((mid - half) * 100.0 + 1e-9) / 100.0, 0.0)
    ask = np.maximum(np.ceil((mid + half) * 100.0 - 1e-9) / 100.0, bid + 0.01)
    return bid, np.round(ask, 2)


def day_option_bars(
    rng: np.random.Generator, root: str, chain: DayChain, n_side: int, p: MarketParams
) -> pl.DataFrame:
    """Polygon-style option minute bars of one session (plus bid/ask at each bar's close),
    sorted by ticker then time."""
    ce, c_call, ck, names = _contracts(root, chain, n_side, p.strike_range)
    s_ref = chain.s_close[None, :]
    t_ref = np.maximum((chain.expiry_close_ns[:, None] - chain.ts[None, :]) / NS_PER_YEAR, 1e-6)
    scale = chain.atm * np.sqrt(t_ref)  # [E, M]
    x_all = np.log(ck[:, None] / s_ref) / scale[ce]
    dist = np.abs(x_all) / p.trade_width
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
    bid, ask = quote_bid_ask(model[1], spot[n : 2 * n], k, t_close, iv[n : 2 * n], x_all[ci, mi], p)
    noisy = model * np.exp(p.option_price_noise * rng.standard_normal((4, n)))
    o, c, hi, lo = np.maximum(np.round(noisy, 2), 0.01)
    c = np.clip(c, np.maximum(bid, 0.01), ask)
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
    quote_only = rng.random(n) < p.zero_volume_share
    volume[quote_only] = 0.0
    trades[quote_only] = 0.0
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
            "bid": bid,
            "ask": ask,
        }
    )
