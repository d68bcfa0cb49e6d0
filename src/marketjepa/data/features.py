"""Causal per-minute features (DESIGN §2.1) behind a small registry.

Every feature is one function ``f(x: FeatureInputs) -> np.ndarray`` (float64, one value
per bar, NaN where undefined) registered with :func:`feature`; ``cfg.features.names``
picks which are computed and in what order. Adding a feature is writing one decorated
function in this module (or any module imported before :func:`compute_features`)::

    @feature("ret_60")
    def ret_60(x: FeatureInputs) -> np.ndarray:
        return x.ret(60)

**Causality.** The value at bar ``t`` uses bars ``<= t`` only; ``tests/data/test_causality``
perturbs everything after ``t`` and checks nothing at or before ``t`` moves. All rolling
windows are trailing windows over *rows* (consecutive regular-session minutes), so near
the open they reach into the previous session: ``ret_5/15/30``, ``rv_10/30``, ``rsi_14``,
``bb_pos``, ``iv_change_5``, ``put_call_volume`` do (their first bars of a day span the
overnight step; ``ret_*``, ``rsi_14`` and ``bb_pos`` include the overnight gap in price).
The 1-minute returns behind realized vol (``rv_*``, ``iv_rv_spread``, and ``sigma_h`` in
labels) are *intraday*: the first bar of a session contributes its own open→close return
rather than the overnight gap, so a gap does not inflate vol for the next hour.
Session-based features reset at each open: ``vwap_dev``, ``ret_open``, ``gap`` (constant
through the session). ``volume_z`` / ``option_volume_z`` compare with the same minute of
the *strictly previous* ``features.volume_z_sessions`` sessions present in the data.

**Option mask policy.** Option-summary columns are null where nothing was observed that
minute. Each is forward-filled from its last observation only while that observation is
at most ``data.max_option_staleness_minutes`` old (measured in wall-clock minutes from
``ts``, so nothing carries over the overnight break); older → masked. A feature whose
inputs are masked is NaN before normalization and 0 after (the train median, i.e. "no
information"). The ``options_valid`` column is True where the near-term ATM IV is fresh;
the volume features (``put_call_volume``, ``option_volume_z``) treat a null volume as
zero contracts traded and are masked where ``options_valid`` is False. With no option
summary at all the option features are dropped from the set (``feature_dim`` follows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from marketjepa.data.calendar import NS_PER_MINUTE, full_session_minutes
from marketjepa.data.option_summary import SUMMARY_COLUMNS
from marketjepa.errors import MarketJepaError

TRADING_DAYS_PER_YEAR = 252
OPTION_COLUMNS = tuple(SUMMARY_COLUMNS)  # the option-summary contract of ingest
_IV_COLUMNS = ("iv_atm_near", "iv_atm_far", "iv_put_25d", "iv_call_25d")


@dataclass(frozen=True)
class Feature:
    name: str
    group: str  # "stock" | "options" | "calendar"
    fn: Callable[[FeatureInputs], np.ndarray]


FEATURES: dict[str, Feature] = {}


def feature(name: str, group: str = "stock") -> Callable:
    """Register ``fn`` as feature ``name``; ``group="options"`` needs an option summary."""
    if group not in ("stock", "options", "calendar"):
        raise ValueError(f"unknown feature group {group!r}")

    def deco(fn: Callable[[FeatureInputs], np.ndarray]) -> Callable:
        FEATURES[name] = Feature(name, group, fn)
        return fn

    return deco


# ---------------------------------------------------------------- trailing-window helpers


def lag(x: np.ndarray, k: int) -> np.ndarray:
    """``x[t-k]`` (NaN for the first ``k`` rows)."""
    out = np.full_like(x, np.nan, dtype=np.float64)
    if k < x.size:
        out[k:] = x[: x.size - k]
    return out


def rolling(x: np.ndarray, k: int, how: str = "mean") -> np.ndarray:
    """Trailing ``k``-row mean/sum/std ending at each row (NaN until ``k`` rows exist).

    A strided view, not a cumulative sum, so a NaN only affects the windows holding it
    and a value never depends on rows outside its window.
    """
    out = np.full(x.shape, np.nan)
    if k > x.size:
        return out
    w = sliding_window_view(np.asarray(x, dtype=np.float64), k)
    if how == "mean":
        out[k - 1 :] = w.mean(axis=1)
    elif how == "sum":
        out[k - 1 :] = w.sum(axis=1)
    elif how == "std":
        out[k - 1 :] = w.std(axis=1)
    else:
        raise ValueError(how)
    return out


def intraday_log_returns(open_: np.ndarray, close: np.ndarray, first: np.ndarray) -> np.ndarray:
    """1-minute log returns; the first bar of a session uses its own open→close."""
    prev = np.empty_like(close)
    prev[0] = open_[0]
    prev[1:] = close[:-1]
    prev = np.where(first, open_, prev)
    return np.log(close / prev)


def same_minute_z(values: np.ndarray, day: np.ndarray, minute: np.ndarray, n: int) -> np.ndarray:
    """z of ``values`` vs the same minute-of-day over the previous ``n`` sessions.

    Needs at least 2 earlier observations at that minute and a positive spread, else NaN.
    Half days align by minutes since the open.
    """
    n_days, n_min = int(day.max()) + 1, int(minute.max()) + 1
    mat = np.full((n_days, n_min), np.nan)
    mat[day, minute] = values
    ok = np.isfinite(mat)
    v = np.where(ok, mat, 0.0)
    zero = np.zeros((1, n_min))
    # S[d] = sum over sessions < d; window [d-n, d) = S[d] - S[max(d-n, 0)]
    s1 = np.vstack([zero, np.cumsum(v, axis=0)])
    s2 = np.vstack([zero, np.cumsum(v * v, axis=0)])
    cnt = np.vstack([zero, np.cumsum(ok, axis=0)])
    d = np.arange(n_days)
    lo = np.maximum(d - n, 0)
    c = cnt[d] - cnt[lo]
    m1 = (s1[d] - s1[lo]) / np.maximum(c, 1)
    var = ((s2[d] - s2[lo]) - c * m1 * m1) / np.maximum(c - 1, 1)
    sd = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (mat - m1) / sd
    z[(c < 2) | (sd < 1e-9)] = np.nan
    return z[day, minute]


# ---------------------------------------------------------------- inputs


@dataclass
class FeatureInputs:
    """Raw per-bar arrays plus cached intermediates shared between features."""

    ts: np.ndarray  # int64 UTC ns
    day: np.ndarray  # int64 session index 0..D-1
    minute: np.ndarray  # minutes since the open
    session_minutes: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    options: dict[str, np.ndarray] | None = None  # OPTION_COLUMNS, NaN where null
    max_staleness_minutes: int = 5
    volume_z_sessions: int = 20
    # The calendar's usual session length (data.calendar; 390 for XNYS), never the data's.
    full_session_minutes: int = 390
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_frames(
        cls,
        bars: pl.DataFrame,
        option_summary: pl.DataFrame | None,
        max_staleness_minutes: int = 5,
        volume_z_sessions: int = 20,
        calendar: str = "XNYS",
    ) -> FeatureInputs:
        f64 = {c: bars[c].cast(pl.Float64).to_numpy() for c in ("open", "high", "low", "close")}
        day = bars["session"].rank("dense").cast(pl.Int64).to_numpy() - 1
        opts = None
        if option_summary is not None:
            opts = {
                c: option_summary[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
                for c in OPTION_COLUMNS
                if c in option_summary.columns
            }
        return cls(
            ts=bars["ts"].to_numpy(),
            day=day,
            minute=bars["minute"].cast(pl.Int64).to_numpy(),
            session_minutes=bars["session_minutes"].cast(pl.Int64).to_numpy(),
            volume=bars["volume"].cast(pl.Float64).to_numpy(),
            options=opts,
            max_staleness_minutes=max_staleness_minutes,
            volume_z_sessions=volume_z_sessions,
            full_session_minutes=full_session_minutes(calendar),
            **f64,
        )

    @property
    def n(self) -> int:
        return int(self.close.size)

    @cached_property
    def first(self) -> np.ndarray:
        """True on the first row of each session."""
        f = np.ones(self.n, dtype=bool)
        f[1:] = self.day[1:] != self.day[:-1]
        return f

    @cached_property
    def first_row(self) -> np.ndarray:
        """Row index of the first bar of each row's session."""
        return np.maximum.accumulate(np.where(self.first, np.arange(self.n), 0))

    @cached_property
    def log_close(self) -> np.ndarray:
        return np.log(self.close)

    @cached_property
    def r1(self) -> np.ndarray:
        """Intraday 1-minute log returns (see module docstring)."""
        return intraday_log_returns(self.open, self.close, self.first)

    def ret(self, k: int) -> np.ndarray:
        return self.log_close - lag(self.log_close, k)

    def rv(self, k: int) -> np.ndarray:
        """Per-minute realized vol: RMS of the last ``k`` intraday returns."""
        key = ("rv", k)
        if key not in self._cache:
            self._cache[key] = np.sqrt(rolling(self.r1 * self.r1, k, "mean"))
        return self._cache[key]

    def fresh(self, col: str) -> np.ndarray:
        """Option column forward-filled while at most ``max_staleness_minutes`` old."""
        key = ("fresh", col)
        if key not in self._cache:
            v = self.options[col] if self.options and col in self.options else None
            if v is None:
                raise MarketJepaError(f"option summary has no column '{col}'")
            obs = np.isfinite(v)
            last = np.maximum.accumulate(np.where(obs, np.arange(self.n), -1))
            safe = np.maximum(last, 0)
            age = (self.ts - self.ts[safe]) // NS_PER_MINUTE
            ok = (last >= 0) & (age <= self.max_staleness_minutes)
            self._cache[key] = np.where(ok, v[safe], np.nan)
        return self._cache[key]

    @cached_property
    def options_valid(self) -> np.ndarray:
        """Near-term ATM IV observed within the staleness limit."""
        if self.options is None:
            return np.zeros(self.n, dtype=bool)
        return np.isfinite(self.fresh("iv_atm_near"))

    def option_volume(self, col: str) -> np.ndarray:
        return np.nan_to_num(self.options[col], nan=0.0)


# ---------------------------------------------------------------- the 23 features


@feature("ret_1")
def ret_1(x: FeatureInputs) -> np.ndarray:
    return x.ret(1)


@feature("ret_5")
def ret_5(x: FeatureInputs) -> np.ndarray:
    return x.ret(5)


@feature("ret_15")
def ret_15(x: FeatureInputs) -> np.ndarray:
    return x.ret(15)


@feature("ret_30")
def ret_30(x: FeatureInputs) -> np.ndarray:
    return x.ret(30)


@feature("rv_10")
def rv_10(x: FeatureInputs) -> np.ndarray:
    return x.rv(10)


@feature("rv_30")
def rv_30(x: FeatureInputs) -> np.ndarray:
    return x.rv(30)


@feature("hl_range")
def hl_range(x: FeatureInputs) -> np.ndarray:
    return np.log(x.high / x.low)


@feature("vwap_dev")
def vwap_dev(x: FeatureInputs) -> np.ndarray:
    """log(close / session VWAP of typical price); 0 until the session has volume."""
    typ = (x.high + x.low + x.close) / 3.0
    pv, v = np.cumsum(typ * x.volume), np.cumsum(x.volume)
    base = x.first_row - 1  # cumulative sums up to the previous session's last bar
    pv0 = np.where(base >= 0, pv[np.maximum(base, 0)], 0.0)
    v0 = np.where(base >= 0, v[np.maximum(base, 0)], 0.0)
    sv = v - v0
    vwap = np.where(sv > 0, (pv - pv0) / np.where(sv > 0, sv, 1.0), x.close)
    return np.log(x.close / vwap)


@feature("volume_z")
def volume_z(x: FeatureInputs) -> np.ndarray:
    return same_minute_z(np.log1p(x.volume), x.day, x.minute, x.volume_z_sessions)


@feature("gap")
def gap(x: FeatureInputs) -> np.ndarray:
    """log(session's first open / previous session's last close); NaN on day one."""
    f = np.flatnonzero(x.first)
    g = np.full(f.size, np.nan)
    g[1:] = np.log(x.open[f[1:]] / x.close[f[1:] - 1])
    return g[x.day]


@feature("ret_open")
def ret_open(x: FeatureInputs) -> np.ndarray:
    return x.log_close - np.log(x.open[x.first_row])


@feature("rsi_14")
def rsi_14(x: FeatureInputs) -> np.ndarray:
    """Wilder RSI(14) mapped to [-1, 1]: (avg gain − avg loss) / (avg gain + avg loss)."""
    d = np.diff(x.close, prepend=x.close[0])
    up = pl.Series(np.maximum(d, 0.0)).ewm_mean(alpha=1 / 14, adjust=False, min_samples=15)
    dn = pl.Series(np.maximum(-d, 0.0)).ewm_mean(alpha=1 / 14, adjust=False, min_samples=15)
    g, lo = up.to_numpy(), dn.to_numpy()
    tot = g + lo
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (g - lo) / tot, np.where(np.isfinite(tot), 0.0, np.nan))


@feature("bb_pos")
def bb_pos(x: FeatureInputs) -> np.ndarray:
    """(close − SMA20) / (2·SD20): −1 at the lower band, +1 at the upper."""
    m, s = rolling(x.close, 20, "mean"), rolling(x.close, 20, "std")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, (x.close - m) / (2.0 * s), np.where(np.isfinite(s), 0.0, np.nan))


@feature("iv_atm", group="options")
def iv_atm(x: FeatureInputs) -> np.ndarray:
    return x.fresh("iv_atm_near")


@feature("iv_change_5", group="options")
def iv_change_5(x: FeatureInputs) -> np.ndarray:
    iv = x.fresh("iv_atm_near")
    return iv - lag(iv, 5)


@feature("skew_25d", group="options")
def skew_25d(x: FeatureInputs) -> np.ndarray:
    return x.fresh("iv_put_25d") - x.fresh("iv_call_25d")


@feature("term_slope", group="options")
def term_slope(x: FeatureInputs) -> np.ndarray:
    return x.fresh("iv_atm_far") - x.fresh("iv_atm_near")


@feature("iv_rv_spread", group="options")
def iv_rv_spread(x: FeatureInputs) -> np.ndarray:
    trading_minutes_per_year = TRADING_DAYS_PER_YEAR * x.full_session_minutes
    return x.fresh("iv_atm_near") - x.rv(30) * np.sqrt(trading_minutes_per_year)


@feature("put_call_volume", group="options")
def put_call_volume(x: FeatureInputs) -> np.ndarray:
    """log((Σ₃₀ put volume + 1) / (Σ₃₀ call volume + 1)) over the last 30 bars."""
    p = rolling(x.option_volume("put_volume"), 30, "sum")
    c = rolling(x.option_volume("call_volume"), 30, "sum")
    return np.where(x.options_valid, np.log((p + 1.0) / (c + 1.0)), np.nan)


@feature("option_volume_z", group="options")
def option_volume_z(x: FeatureInputs) -> np.ndarray:
    tot = x.option_volume("put_volume") + x.option_volume("call_volume")
    z = same_minute_z(np.log1p(tot), x.day, x.minute, x.volume_z_sessions)
    return np.where(x.options_valid, z, np.nan)


def _session_phase(x: FeatureInputs) -> np.ndarray:
    return 2.0 * np.pi * x.minute / x.session_minutes


@feature("tod_sin", group="calendar")
def tod_sin(x: FeatureInputs) -> np.ndarray:
    return np.sin(_session_phase(x))


@feature("tod_cos", group="calendar")
def tod_cos(x: FeatureInputs) -> np.ndarray:
    return np.cos(_session_phase(x))


@feature("minutes_to_close", group="calendar")
def minutes_to_close(x: FeatureInputs) -> np.ndarray:
    """Bars left after this one, over the calendar's full session: 1 at a full day's open,
    0 at the last bar of any session (an XNYS half day opens at 209/389)."""
    return (x.session_minutes - 1 - x.minute) / max(x.full_session_minutes - 1, 1)


# ---------------------------------------------------------------- selection and compute


def resolve_features(names: list[str], has_options: bool) -> tuple[list[str], list[str]]:
    """Configured names → (names to compute, option names dropped for lack of options)."""
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise MarketJepaError(
            f"features.names: unknown feature(s) {', '.join(unknown)}; "
            f"available: {', '.join(FEATURES)}"
        )
    if len(set(names)) != len(names):
        raise MarketJepaError("features.names lists a feature more than once")
    if has_options:
        return list(names), []
    dropped = [n for n in names if FEATURES[n].group == "options"]
    return [n for n in names if n not in dropped], dropped


def compute_features(x: FeatureInputs, names: list[str]) -> np.ndarray:
    """Raw (unnormalized) ``[N, F]`` float64 matrix, NaN where undefined or masked."""
    out = np.empty((x.n, len(names)), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, name in enumerate(names):
            spec = FEATURES[name]
            if spec.group == "options" and x.options is None:
                raise MarketJepaError(f"feature '{name}' needs an option summary")
            col = np.asarray(spec.fn(x), dtype=np.float64)
            if col.shape != (x.n,):
                raise MarketJepaError(f"feature '{name}' returned shape {col.shape}, not ({x.n},)")
            out[:, j] = np.where(np.isfinite(col), col, np.nan)
    return out
