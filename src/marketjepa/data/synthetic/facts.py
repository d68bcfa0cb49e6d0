"""Stylized facts of a synthetic market against bands from real data (issue 15).

Every fact is measured on what the generator emits: the regular-session stock bars as
written (cent prices, integer volumes) and, for options, the quoted surface at midday
(11:45 ET, full sessions) with the chain's bid/ask rule on the ATM call. Bands are real
values widened by 30%; their sources are in docs/synthetic_market.md.

* ``kurtosis_1m``: excess kurtosis of within-session 1-minute log returns (first bar:
  open → close, so overnight gaps are excluded).
* ``acf_abs_lag{k}``: autocorrelation of |r| at lag ``k`` minutes, pairs within a session.
* ``absr_open``/``absr_close``: mean |r| over the first/last 30 minutes ÷ midday
  (minutes 150–269); ``volume_open``/``volume_close`` the same for volume.
* ``overnight_share``: Σ overnight² ÷ (Σ overnight² + Σ open-to-close²), overnight =
  previous regular close → first regular open (extended hours included).
* ``atm_iv_21d``: median ATM IV of the expiry nearest 21 calendar days;
  ``atm_iv_155d_over_21d``: median ratio of the expiry nearest 155 days to it.
* ``skew25_21d``/``skew25_155d``: median 25Δ put − call IV, vol points.
* ``atm_bid_ask_21d``: median ATM (ask − bid) ÷ vega, vol points, ~21-day expiry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.table import Table
from scipy.stats import kurtosis

from marketjepa.black_scholes import bs_price
from marketjepa.data.synthetic.market import SyntheticMarket
from marketjepa.data.synthetic.options import quote_bid_ask, vega
from marketjepa.data.synthetic.stock import REGULAR
from marketjepa.data.synthetic.surface import NS_PER_YEAR, Z25, smile_iv

MIDDAY = slice(150, 270)
FACT_MINUTE = 135  # 11:45 ET
NEAR_DAYS, FAR_DAYS = 21.0, 155.0


@dataclass(frozen=True)
class Band:
    label: str
    lo: float
    hi: float

    def holds(self, value: float) -> bool:
        return bool(np.isfinite(value) and self.lo <= value <= self.hi)


# The "Done when" bands (real data widened by 30%).
BANDS: dict[str, Band] = {
    "kurtosis_1m": Band("1-min excess kurtosis", 3.0, 27.0),
    "acf_abs_lag1": Band("|r| autocorrelation, lag 1", 0.15, 0.38),
    "acf_abs_lag5": Band("|r| autocorrelation, lag 5", 0.13, 0.38),
    "acf_abs_lag30": Band("|r| autocorrelation, lag 30", 0.09, 0.20),
    "acf_abs_lag60": Band("|r| autocorrelation, lag 60", 0.02, 0.12),
    "absr_open": Band("|r| first 30 min / midday", 1.7, 3.8),
    "absr_close": Band("|r| last 30 min / midday", 1.0, 2.0),
    "volume_open": Band("volume first 30 min / midday", 2.7, 6.0),
    "volume_close": Band("volume last 30 min / midday", 2.1, 4.7),
    "overnight_share": Band("overnight share of daily variance", 0.31, 1.1),
    "atm_iv_21d": Band("ATM IV, ~21 days", 0.16, 0.30),
    "atm_iv_155d_over_21d": Band("ATM IV ~155 d / ~21 d", 0.9, 1.35),
    "skew25_21d": Band("25Δ put − call skew, ~21 d (vol pts)", 4.0, 8.0),
    "skew25_155d": Band("25Δ put − call skew, ~155 d (vol pts)", 5.9, 11.0),
    "atm_bid_ask_21d": Band("ATM IV bid-ask, ~21 d (vol pts)", 0.07, 0.2),
}


def _regular_grids(market: SyntheticMarket) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(open, close, volume)`` ``[D, W]`` of regular bars as written (NaN elsewhere)."""
    b = market.bars
    op = np.where(market.valid, b.reg_open, np.nan)
    cl = np.where(market.valid, b.reg_close, np.nan)
    vol = np.full(market.valid.shape, np.nan)
    vol[market.valid] = b.volume[b.kind == REGULAR]
    return op, cl, vol


def _acf(a: np.ndarray, lag: int) -> float:
    x, y = a[:, :-lag], a[:, lag:]
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.sum(x[ok] * y[ok]) / np.sqrt(np.sum(x[ok] ** 2) * np.sum(y[ok] ** 2)))


def stock_facts(market: SyntheticMarket) -> dict[str, float]:
    op, cl, vol = _regular_grids(market)
    full = ~market.early_close
    lc = np.log(cl)
    r = np.empty_like(lc)
    r[:, 0] = lc[:, 0] - np.log(op[:, 0])
    r[:, 1:] = np.diff(lc, axis=1)
    rf = r[full]
    out: dict[str, float] = {"kurtosis_1m": float(kurtosis(rf.ravel()))}
    a = np.abs(rf[:, 1:])
    a = a - np.mean(a)
    for lag in (1, 5, 30, 60):
        out[f"acf_abs_lag{lag}"] = _acf(a, lag)
    absr = np.mean(np.abs(rf), axis=0)
    v = np.mean(vol[full], axis=0)
    out["absr_open"] = float(absr[:30].mean() / absr[MIDDAY].mean())
    out["absr_close"] = float(absr[-30:].mean() / absr[MIDDAY].mean())
    out["volume_open"] = float(v[:30].mean() / v[MIDDAY].mean())
    out["volume_close"] = float(v[-30:].mean() / v[MIDDAY].mean())
    n = market.valid.sum(axis=1)
    days = np.arange(len(n))
    first_open = op[:, 0]
    last_close = cl[days, n - 1]
    gap = np.log(first_open[1:] / last_close[:-1])
    intra = np.log(last_close / first_open)
    out["overnight_share"] = float(np.sum(gap**2) / (np.sum(gap**2) + np.sum(intra[1:] ** 2)))
    daily = np.diff(np.log(last_close))
    out["daily_kurtosis"] = float(kurtosis(daily))
    out["max_abs_daily_move"] = float(np.max(np.abs(np.expm1(daily))))
    out["volume_cv"] = float(np.nanstd(vol[full]) / np.nanmean(vol[full]))
    return out


def _nearest_expiry(t_days: np.ndarray, target: float) -> np.ndarray:
    return np.argmin(np.abs(t_days - target), axis=1)


def option_facts(market: SyntheticMarket) -> dict[str, float]:
    p = market.params
    full = np.flatnonzero(~market.early_close)
    m = FACT_MINUTE
    ts = market.reg_ts[full, m]
    t_years = (market.expiry_close_ns[full] - ts[:, None]) / NS_PER_YEAR  # [F, E]
    t_days = t_years * 365.0
    rows = np.arange(full.size)
    near, far = _nearest_expiry(t_days, NEAR_DAYS), _nearest_expiry(t_days, FAR_DAYS)
    atm_n = market.atm[full, near, m]
    atm_f = market.atm[full, far, m]
    out = {
        "atm_iv_21d": float(np.median(atm_n)),
        "atm_iv_155d_over_21d": float(np.median(atm_f / atm_n)),
        "skew25_21d": float(np.median(market.skew25[full, near, m]) * 100.0),
        "skew25_155d": float(np.median(market.skew25[full, far, m]) * 100.0),
    }
    # The ATM call's quote, as the chain writes it (smile IV, BS mid, bid/ask rule).
    spot = market.bars.reg_close[full, m]
    strike = np.round(spot)
    t = t_years[rows, near]
    carry = p.risk_free_rate - p.dividend_yield
    fwd = spot * np.exp(carry * t)
    iv = smile_iv(strike, fwd, t, atm_n, market.skew25[full, near, m], p.smile_curvature)
    mid = bs_price(spot, strike, t, iv, True, p.risk_free_rate, p.dividend_yield)
    x = np.log(strike / spot) / (atm_n * np.sqrt(t))
    bid, ask = quote_bid_ask(mid, spot, strike, t, iv, x, p)
    veg = vega(spot, strike, t, iv, p.risk_free_rate, p.dividend_yield)
    out["atm_bid_ask_21d"] = float(np.median((ask - bid) / veg) * 100.0)
    return out


def stylized_facts(market: SyntheticMarket) -> dict[str, float]:
    """All facts (the banded ones of :data:`BANDS` plus a few unbanded descriptives)."""
    facts = stock_facts(market)
    facts.update(option_facts(market))
    return facts


def facts_rows(facts: dict[str, float]) -> list[tuple[str, float, str, str]]:
    """``(label, value, band, ok)`` per fact, banded ones first."""
    rows = []
    for key, band in BANDS.items():
        value = facts[key]
        rows.append(
            (band.label, value, f"{band.lo:g}–{band.hi:g}", "yes" if band.holds(value) else "NO")
        )
    for key, label in (
        ("daily_kurtosis", "daily excess kurtosis"),
        ("max_abs_daily_move", "largest |daily move|"),
        ("volume_cv", "volume per bar, coefficient of variation"),
    ):
        rows.append((label, facts[key], "", ""))
    return rows


def facts_table(market: SyntheticMarket) -> Table:
    """The stylized facts of ``market`` as a printable table."""
    cfg = market.cfg
    table = Table(
        title=(
            f"Stylized facts: {len(market.days)} sessions {market.days[0]}..{market.days[-1]}, "
            f"seed {cfg.seed}, profile {cfg.profile}"
        )
    )
    for col, just in (("fact", "left"), ("value", "right"), ("band", "right"), ("in band", "left")):
        table.add_column(col, justify=just)
    for label, value, band, ok in facts_rows(stylized_facts(market)):
        table.add_row(label, f"{value:.3f}", band, ok)
    return table


__all__ = [
    "BANDS",
    "Band",
    "Z25",
    "facts_rows",
    "facts_table",
    "option_facts",
    "stock_facts",
    "stylized_facts",
]
