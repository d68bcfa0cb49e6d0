"""Option prices for the backtest: the IV surface (``surface``) or real minute bars (``bars``).

Clock. Prices are taken at the *close* of a bar. Time to expiry is in calendar minutes, as
in :data:`marketjepa.black_scholes.CALENDAR_MINUTES_PER_YEAR`; the expiry is the close of the expiry
day, so at the close of the bar with ``minute`` m of a session of ``session_minutes`` M::

    τ_min = (M − m − 1) + 1440 · (expiry_day − day),   T = τ_min / CALENDAR_MINUTES_PER_YEAR

(half-day closes on later expiry days and DST shifts are ignored). The expiry day for a
``dte`` is ``day + dte`` rolled forward to the next session of the exchange calendar
(weekends and holidays such as Good Friday roll forward); in ``bars`` mode it is the first listed expiry on or after that day.

Surface mode (observed). Per minute the prepared summary gives the near and far ATM IVs,
the near 25Δ put and call IVs, and ``near_dte``/``far_dte`` (fractional calendar days from the
bar's end to that expiry's close, as :mod:`marketjepa.data.option_summary` writes them, so
τ_near = near_dte·1440 minutes). For strike K, spot S and τ:

1. ATM term structure, linear in total variance w = σ²T between the near and far expiries,
   flat outside:  σ_atm(T) = √(w(T)/T).
2. Standardized moneyness x = ln(K/F) / (σ_atm √T), F = S·e^{(r−q)T}, clipped to ±4.
3. Smile: the parabola in x through the 25Δ put, ATM and 25Δ call IVs of the near expiry,
   placed at x = −0.674, 0, +0.674 (Φ⁻¹(0.75), where a 25Δ option sits ignoring the σ²T/2
   term): offset(x) = b·x + c·x², b = (iv_c − iv_p)/(2·0.674), c = (iv_p + iv_c − 2·iv_atm)/(2·0.674²)
   — the same family the synthetic market prices with; applied as an offset at all expiries.
4. σ = clip(σ_atm(T) + offset(x), 0.01, 5).

Surface mode (modeled proxy) — used on rows without a valid observed ATM IV, and counted:
σ = σ̂_1min · √CALENDAR_MINUTES_PER_YEAR · ``iv_rv_ratio`` + ``iv_skew_per_moneyness`` · ln(K/S), where
σ̂_1min is the trailing standard deviation of 1-minute log returns (``lookback`` bars, the
overnight return excluded). Annualizing on the same calendar-minute clock keeps σ²T equal to
the trailing variance over intraday horizons (it reads ≈2.3× a trading-day annualized vol).

Bars mode. The contract's last minute bar at or before the query bar, if its start is at
most ``max_staleness_minutes`` earlier; its close is taken as the mid. When that bar carries
a quote (``bid``, ``ask`` columns of the option files), the mid is (bid + ask)/2 and the
quoted half-spread (ask − bid)/2 replaces the cost model's assumed one, so a buy fills at
the ask and a sell at the bid (plus slippage). Otherwise the surface price is used and
counted as a fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from marketjepa.black_scholes import bs_price, implied_vol
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR, TRADING_MINUTES_PER_YEAR
from marketjepa.data.calendar import roll_to_session
from marketjepa.errors import DataValidationError

NS_PER_MINUTE = 60 * 1_000_000_000
NS_PER_DAY = 1440 * NS_PER_MINUTE
X_25D = 0.6744897501960817  # Φ⁻¹(0.75)

# Quote sources.
SRC_SURFACE = 0
SRC_PROXY = 1
SRC_BARS = 2


def _col(df: pl.DataFrame, name: str, n: int) -> np.ndarray:
    if name not in df.columns:
        return np.full(n, np.nan)
    return df[name].cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)


@dataclass
class MarketData:
    """Per-row arrays the backtest needs (one row per regular-session minute)."""

    ts: np.ndarray  # int64 UTC ns of bar start
    session: np.ndarray  # int day index, non-decreasing
    minute: np.ndarray  # minutes since the open
    session_minutes: np.ndarray  # from the calendar (XNYS: 390, or 210 on half days)
    close: np.ndarray
    split: np.ndarray
    iv_atm_near: np.ndarray | None = None
    iv_atm_far: np.ndarray | None = None
    iv_put_25d: np.ndarray | None = None
    iv_call_25d: np.ndarray | None = None
    near_dte: np.ndarray | None = None
    far_dte: np.ndarray | None = None
    options_valid: np.ndarray | None = None
    # Repaired (flat, zero-volume) bars: never a signal or an entry bar (None = none).
    filled: np.ndarray | None = None
    session_day: np.ndarray | None = None  # session date as days since 1970 (None: UTC date)
    r: float = 0.0
    q: float = 0.0
    day: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.ts = np.asarray(self.ts, dtype=np.int64)
        n = self.ts.size
        self.session = np.asarray(self.session, dtype=np.int64)
        self.minute = np.asarray(self.minute, dtype=np.int64)
        self.session_minutes = np.asarray(self.session_minutes, dtype=np.int64)
        self.close = np.asarray(self.close, dtype=np.float64)
        self.split = np.asarray(self.split, dtype=np.int8)
        for name in ("session", "minute", "session_minutes", "close", "split"):
            if getattr(self, name).shape != (n,):
                raise DataValidationError(
                    f"column '{name}' has {getattr(self, name).size} rows, ts has {n}"
                )
        if n and np.any(np.diff(self.ts) <= 0):
            bad = int(np.flatnonzero(np.diff(self.ts) <= 0)[0]) + 1
            raise DataValidationError("timestamps are not strictly increasing", where=f"row {bad}")
        if n and np.any(np.diff(self.session) < 0):
            raise DataValidationError("session index decreases", where="dataset rows")
        if n and not np.all(np.isfinite(self.close) & (self.close > 0)):
            bad = int(np.flatnonzero(~(np.isfinite(self.close) & (self.close > 0)))[0])
            raise DataValidationError("close price not positive/finite", where=f"row {bad}")
        # The calendar's session date (days since 1970) when known: a CMES session opens
        # the evening before its date. Otherwise the UTC date, which is the session date
        # for XNYS (regular minutes lie between 13:30 and 21:00 UTC).
        if self.session_day is not None:
            self.day = np.asarray(self.session_day, dtype=np.int64)
        else:
            self.day = self.ts // NS_PER_DAY
        self.filled = (
            np.zeros(n, bool) if self.filled is None else np.asarray(self.filled, dtype=bool)
        )
        if self.filled.shape != (n,):
            raise DataValidationError(f"column 'filled' has {self.filled.size} rows, ts has {n}")
        if self.options_valid is None:
            self.options_valid = (
                np.isfinite(self.iv_atm_near) if self.iv_atm_near is not None else np.zeros(n, bool)
            )

    @property
    def n(self) -> int:
        return int(self.ts.size)

    @property
    def has_surface(self) -> bool:
        return self.iv_atm_near is not None and bool(np.isfinite(self.iv_atm_near).any())

    @classmethod
    def from_frame(
        cls, df: pl.DataFrame, session: np.ndarray, split: np.ndarray, r: float, q: float
    ) -> MarketData:
        n = df.height
        for c in ("ts", "minute", "session_minutes", "close"):
            if c not in df.columns:
                raise DataValidationError(
                    f"prepared dataset lacks column '{c}'", file="dataset.parquet"
                )
        valid = (
            df["options_valid"].fill_null(False).to_numpy().astype(bool)
            if "options_valid" in df.columns
            else None
        )
        iv_near = _col(df, "iv_atm_near", n)
        if valid is not None:
            iv_near = np.where(valid, iv_near, np.nan)
        return cls(
            ts=df["ts"].to_numpy(),
            session=session,
            minute=df["minute"].to_numpy(),
            session_minutes=df["session_minutes"].to_numpy(),
            close=df["close"].to_numpy(),
            split=split,
            iv_atm_near=iv_near,
            filled=(
                df["filled"].fill_null(False).to_numpy().astype(bool)
                if "filled" in df.columns
                else None
            ),
            session_day=(
                df["session"].cast(pl.Int32).to_numpy()
                if "session" in df.columns and df["session"].dtype == pl.Date
                else None
            ),
            iv_atm_far=_col(df, "iv_atm_far", n),
            iv_put_25d=_col(df, "iv_put_25d", n),
            iv_call_25d=_col(df, "iv_call_25d", n),
            near_dte=_col(df, "near_dte", n),
            far_dte=_col(df, "far_dte", n),
            options_valid=valid,
            r=r,
            q=q,
        )

    def minutes_to_close(self, rows: np.ndarray) -> np.ndarray:
        """Minutes from the close of bar ``rows`` to the session close."""
        return (self.session_minutes[rows] - self.minute[rows] - 1).astype(np.float64)

    def session_last_row(self) -> np.ndarray:
        """Row index of the last bar of each row's session."""
        return np.searchsorted(self.session, self.session, side="right") - 1


def trailing_vol_1min(close: np.ndarray, session: np.ndarray, lookback: int) -> np.ndarray:
    """σ̂_1min at each row: std of the last ``lookback`` intraday 1-min log returns (causal)."""
    r = np.zeros(close.size)
    r[1:] = np.diff(np.log(close))
    ok = np.ones(close.size, dtype=bool)
    ok[0] = False
    ok[1:] = session[1:] == session[:-1]  # drop the overnight return
    r = np.where(ok, r, 0.0)
    c1 = np.concatenate([[0.0], np.cumsum(r)])
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    cn = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(close.size) + 1
    j = np.maximum(i - lookback, 0)
    cnt = cn[i] - cn[j]
    s1, s2 = c1[i] - c1[j], c2[i] - c2[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = (s2 - s1 * s1 / cnt) / (cnt - 1)
    var = np.where(cnt >= 2, np.maximum(var, 0.0), np.nan)
    vol = np.sqrt(var)
    # Rows with too little history borrow the first available estimate of their session
    # only from the *past*: forward fill, then a 1.0e-3 (≈16%/yr trading) floor at the start.
    idx = np.where(np.isfinite(vol), np.arange(vol.size), 0)
    np.maximum.accumulate(idx, out=idx)
    vol = np.where(np.isfinite(vol[idx]), vol[idx], 1.0e-3)
    return vol


class OptionBook:
    """Real option minute bars, indexed for vectorized as-of lookups with a staleness limit."""

    def __init__(self, bars: pl.DataFrame, market: MarketData, max_staleness_minutes: int) -> None:
        need = {"ts", "expiry", "right", "strike", "close"}
        missing = need - set(bars.columns)
        if missing:
            raise DataValidationError(
                f"option bars lack columns {sorted(missing)}", file="option_bars.parquet"
            )
        expiry = bars["expiry"]
        if expiry.dtype == pl.Date:
            exp_day = expiry.cast(pl.Int32).to_numpy().astype(np.int64)
        else:
            exp_day = expiry.cast(pl.Date, strict=False).cast(pl.Int32).to_numpy().astype(np.int64)
        right = bars["right"].cast(pl.Utf8).to_numpy()
        bad_right = ~np.isin(right, ["C", "P"])
        if bad_right.any():
            i = int(np.flatnonzero(bad_right)[0])
            raise DataValidationError(
                f"right must be 'C' or 'P', got {right[i]!r}",
                file="option_bars.parquet",
                where=f"row {i}",
            )
        ts = bars["ts"].cast(pl.Int64).to_numpy()
        close = bars["close"].cast(pl.Float64).to_numpy()
        # Optional quotes at the bar's close (NaN where absent): fills cross the spread.
        bid, ask = (_col(bars, c, bars.height) for c in ("bid", "ask"))
        quoted = np.isfinite(bid) & np.isfinite(ask) & (ask >= bid) & (bid >= 0)
        strike_c = np.rint(bars["strike"].cast(pl.Float64).to_numpy() * 100).astype(np.int64)
        self.market = market
        self.staleness_ns = int(max_staleness_minutes) * NS_PER_MINUTE
        keys = self.contract_key(exp_day, right == "C", strike_c)
        self.keys, cid = np.unique(keys, return_inverse=True)
        row = np.searchsorted(market.ts, ts, side="right") - 1
        keep = (row >= 0) & np.isfinite(close) & (close >= 0)
        self.n_rows = market.n + 1
        combined = cid[keep] * self.n_rows + row[keep]
        order = np.argsort(combined, kind="stable")
        self.combined = combined[order]
        self.bar_ts = ts[keep][order]
        self.bar_close = close[keep][order]
        self.bar_bid = np.where(quoted, bid, np.nan)[keep][order]
        self.bar_ask = np.where(quoted, ask, np.nan)[keep][order]
        self.has_quotes = bool(quoted.any())
        self.expiries = np.unique(exp_day)

    @staticmethod
    def contract_key(
        exp_day: np.ndarray, is_call: np.ndarray, strike_cents: np.ndarray
    ) -> np.ndarray:
        return (
            (np.asarray(exp_day, np.int64) << 34)
            | (np.asarray(is_call, np.int64) << 33)
            | np.asarray(strike_cents, np.int64)
        )

    def listed_expiry(self, target_day: np.ndarray) -> np.ndarray:
        """First listed expiry on or after ``target_day`` (the target itself if none)."""
        i = np.searchsorted(self.expiries, target_day, side="left")
        ok = i < self.expiries.size
        return np.where(ok, self.expiries[np.minimum(i, self.expiries.size - 1)], target_day)

    def lookup(
        self, rows: np.ndarray, exp_day: np.ndarray, is_call: np.ndarray, strike: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(close of the latest bar within the staleness limit, found mask) at each query."""
        px, found, _ = self._lookup(rows, exp_day, is_call, strike)
        return px, found

    def lookup_quotes(
        self, rows: np.ndarray, exp_day: np.ndarray, is_call: np.ndarray, strike: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(close, found, bid, ask) of the latest bar within the staleness limit; bid/ask
        NaN where that bar has no quote."""
        px, found, j = self._lookup(rows, exp_day, is_call, strike)
        if not self.combined.size:
            return px, found, px.copy(), px.copy()
        bid = np.where(found, self.bar_bid[j], np.nan)
        ask = np.where(found, self.bar_ask[j], np.nan)
        return px, found, bid, ask

    def _lookup(
        self, rows: np.ndarray, exp_day: np.ndarray, is_call: np.ndarray, strike: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.asarray(rows, np.int64)
        key = self.contract_key(
            exp_day, is_call, np.rint(np.asarray(strike) * 100).astype(np.int64)
        )
        key, rows = np.broadcast_arrays(key, rows)
        ci = np.searchsorted(self.keys, key)
        ci_c = np.minimum(ci, max(self.keys.size - 1, 0))
        known = (
            (ci < self.keys.size) & (self.keys[ci_c] == key)
            if self.keys.size
            else np.zeros(key.shape, bool)
        )
        q = ci_c * self.n_rows + rows
        j = np.searchsorted(self.combined, q, side="right") - 1
        jc = np.maximum(j, 0)
        found = (
            (
                known
                & (j >= 0)
                & (self.combined[jc] // self.n_rows == ci_c)
                & (self.market.ts[rows] - self.bar_ts[jc] <= self.staleness_ns)
            )
            if self.combined.size
            else np.zeros(key.shape, bool)
        )
        px = np.where(found, self.bar_close[jc] if self.combined.size else np.nan, np.nan)
        return px, found, jc


@dataclass
class Quotes:
    mid: np.ndarray
    iv: np.ndarray
    source: np.ndarray  # SRC_SURFACE / SRC_PROXY / SRC_BARS
    tau_min: np.ndarray
    # Quoted half-spread (ask − bid)/2 where a bar with bid/ask was found, else NaN (the
    # cost model's half-spread assumption applies).
    half_spread: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.half_spread is None:
            self.half_spread = np.full(np.shape(self.mid), np.nan)


class OptionPricer:
    """Mid prices of listed-style contracts at bar closes, from the surface or real bars."""

    def __init__(
        self,
        market: MarketData,
        mode: str = "surface",
        book: OptionBook | None = None,
        iv_rv_ratio: float = 1.2,
        iv_skew_per_moneyness: float = -1.5,
        vol_lookback: int = 60,
        calendar: str = "XNYS",
    ) -> None:
        if mode not in ("surface", "bars"):
            raise ValueError(f"unknown pricing mode {mode!r}")
        if mode == "bars" and book is None:
            raise DataValidationError(
                "backtest.pricing=bars needs option bars, but the prepared dataset has none",
                file="option_bars.parquet",
                hint="set backtest.pricing=surface or give data.option_files",
            )
        self.market, self.mode, self.book = market, mode, book
        self.calendar = calendar
        self.iv_skew = iv_skew_per_moneyness
        self.proxy_atm = (
            trailing_vol_1min(market.close, market.session, vol_lookback)
            * np.sqrt(CALENDAR_MINUTES_PER_YEAR)
            * iv_rv_ratio
        )
        n = market.n
        nan = np.full(n, np.nan)
        near = market.iv_atm_near if market.iv_atm_near is not None else nan
        self.observed = np.isfinite(near) & (near > 0) & np.asarray(market.options_valid, bool)

    def expiry_day(self, rows: np.ndarray, dte: int) -> np.ndarray:
        target = roll_to_session(self.market.day[rows] + int(dte), self.calendar)
        if self.mode == "bars" and self.book is not None:
            return self.book.listed_expiry(target)
        return target

    def tau_minutes(self, rows: np.ndarray, exp_day: np.ndarray) -> np.ndarray:
        m = self.market
        return np.maximum(m.minutes_to_close(rows) + 1440.0 * (exp_day - m.day[rows]), 0.0)

    def surface_iv(
        self, rows: np.ndarray, strike: np.ndarray, tau_min: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(σ, observed mask) for strike K at the close of ``rows`` with τ minutes to expiry."""
        m = self.market
        rows = np.asarray(rows, np.int64)
        S = m.close[rows]
        K = np.asarray(strike, np.float64)
        T = np.maximum(tau_min, 1.0) / CALENDAR_MINUTES_PER_YEAR
        obs = self.observed[rows]
        k_spot = np.log(K / S)
        sigma = self.proxy_atm[rows] + self.iv_skew * k_spot
        if obs.any():
            a_n = m.iv_atm_near[rows]
            a_f = np.where(np.isfinite(m.iv_atm_far[rows]), m.iv_atm_far[rows], a_n)
            # without a near_dte, the near IV is taken as that of the traded expiry
            t_n = np.where(np.isfinite(m.near_dte[rows]), m.near_dte[rows] * 1440.0, tau_min)
            t_f = m.far_dte[rows] * 1440.0
            t_n = np.maximum(t_n, 1.0) / CALENDAR_MINUTES_PER_YEAR
            t_f = np.where(np.isfinite(t_f), t_f / CALENDAR_MINUTES_PER_YEAR, np.nan)
            t_f = np.where(np.isfinite(t_f) & (t_f > t_n), t_f, t_n)
            w_n, w_f = a_n**2 * t_n, a_f**2 * t_f
            frac = np.clip((T - t_n) / np.maximum(t_f - t_n, 1e-12), 0.0, 1.0)
            w = np.where(
                T <= t_n, a_n**2 * T, np.where(T >= t_f, a_f**2 * T, w_n + frac * (w_f - w_n))
            )
            atm = np.sqrt(np.maximum(w, 0.0) / T)
            x = (np.log(K / S) - (m.r - m.q) * T) / (atm * np.sqrt(T))
            x = np.clip(x, -4.0, 4.0)
            iv_p = np.where(np.isfinite(m.iv_put_25d[rows]), m.iv_put_25d[rows], a_n)
            iv_c = np.where(np.isfinite(m.iv_call_25d[rows]), m.iv_call_25d[rows], a_n)
            b = (iv_c - iv_p) / (2 * X_25D)
            c = (iv_p + iv_c - 2 * a_n) / (2 * X_25D**2)
            off = b * x + c * x * x
            sigma = np.where(obs, atm + off, sigma)
        return np.clip(sigma, 0.01, 5.0), obs

    def surface_quote(self, rows, strike, exp_day, is_call) -> Quotes:
        rows = np.asarray(rows, np.int64)
        tau = self.tau_minutes(rows, exp_day)
        sigma, obs = self.surface_iv(rows, strike, tau)
        m = self.market
        mid = bs_price(
            m.close[rows], strike, tau / CALENDAR_MINUTES_PER_YEAR, sigma, is_call, m.r, m.q
        )
        src = np.where(obs, SRC_SURFACE, SRC_PROXY).astype(np.int8)
        return Quotes(mid=np.asarray(mid, np.float64), iv=sigma, source=src, tau_min=tau)

    def quote(self, rows, strike, exp_day, is_call) -> Quotes:
        """Mid prices at the close of ``rows`` (broadcast over all arguments)."""
        rows, strike, exp_day, is_call = np.broadcast_arrays(
            np.atleast_1d(np.asarray(rows, np.int64)),
            np.asarray(strike, np.float64),
            np.asarray(exp_day, np.int64),
            np.asarray(is_call, bool),
        )
        q = self.surface_quote(rows, strike, exp_day, is_call)
        if self.mode == "bars":
            px, found, bid, ask = self.book.lookup_quotes(rows, exp_day, is_call, strike)
            # With a quote the mid is the quote's midpoint and fills cross the spread.
            quoted = found & np.isfinite(bid) & np.isfinite(ask)
            px = np.where(quoted, 0.5 * (bid + ask), px)
            q.half_spread = np.where(quoted, 0.5 * (ask - bid), np.nan)
            if found.any():
                m = self.market
                iv_b, st = implied_vol(
                    px[found],
                    m.close[rows[found]],
                    strike[found],
                    q.tau_min[found] / CALENDAR_MINUTES_PER_YEAR,
                    is_call[found],
                    m.r,
                    m.q,
                )
                q.mid = np.where(found, px, q.mid)
                iv = q.iv.copy()
                iv[found] = np.where(st == 0, iv_b, q.iv[found])
                q.iv = iv
                q.source = np.where(found, SRC_BARS, q.source).astype(np.int8)
        return q


def load_option_book(
    prepared_dir: Path, market: MarketData, max_staleness_minutes: int
) -> OptionBook | None:
    path = Path(prepared_dir) / "option_bars.parquet"
    if not path.exists():
        return None
    try:
        bars = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 — any read failure is a bad input file
        raise DataValidationError(f"cannot read option bars: {exc}", file=str(path)) from None
    return OptionBook(bars, market, max_staleness_minutes)


def random_market(
    n_sessions: int,
    seed: int = 0,
    session_minutes: int = 390,
    surface: bool = True,
    annual_vol: float = 0.16,
    start_day: int = 19724,  # 2024-01-02, a Tuesday
    split: np.ndarray | None = None,
) -> MarketData:
    """A random-walk underlying with a noisy per-minute IV surface (tests and benchmarks).

    Sessions are consecutive weekdays opening 14:30 UTC; 1-min log returns are Gaussian
    with the given annualized (252 × 390 minutes) vol; IVs wander around 1.2 × that on the
    calendar-minute clock of :mod:`marketjepa.trading.pricing`.
    """
    rng = np.random.default_rng(seed)
    days = []
    d = start_day
    while len(days) < n_sessions:
        if (d + 3) % 7 < 5:
            days.append(d)
        d += 1
    days = np.asarray(days, np.int64)
    M = session_minutes
    minute = np.tile(np.arange(M), n_sessions)
    sess = np.repeat(np.arange(n_sessions), M)
    ts = (days[sess] * 1440 + 870 + minute) * NS_PER_MINUTE
    sd = annual_vol / np.sqrt(TRADING_MINUTES_PER_YEAR)
    close = 450.0 * np.exp(np.cumsum(rng.normal(0.0, sd, sess.size)))
    kw: dict = {}
    if surface:
        base = annual_vol * np.sqrt(CALENDAR_MINUTES_PER_YEAR / TRADING_MINUTES_PER_YEAR) * 1.2
        level = base * np.exp(np.cumsum(rng.normal(0.0, 0.002, sess.size)))
        n = sess.size
        kw = dict(
            iv_atm_near=level,
            iv_atm_far=level * 0.9,
            iv_put_25d=level + 0.03,
            iv_call_25d=level - 0.01,
            near_dte=(M - minute - 1) / 1440.0,
            far_dte=7.0 + (M - minute - 1) / 1440.0,
            options_valid=np.ones(n, bool),
        )
    if split is None:
        split = np.full(sess.size, 2, np.int8)
    return MarketData(
        ts=ts,
        session=sess,
        minute=minute,
        session_minutes=np.full(sess.size, M),
        close=close,
        split=split,
        r=0.04,
        q=0.013,
        **kw,
    )
