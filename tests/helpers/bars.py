"""Random bar sequences for the data tests: hand-built ingest output (bars, option summary)."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

NS_MIN = 60_000_000_000


def make_market(session_minutes, seed=0, day_steps=None, filled_p=0.02, option_obs_p=0.7):
    """Hand-built ingest output: (bars, option_summary) for sessions of the given lengths.

    ``day_steps[i]`` calendar days between session i-1 and i (weekends/holidays = gaps).
    """
    rng = np.random.default_rng(seed)
    sm = np.asarray(session_minutes, dtype=np.int64)
    steps = np.ones(sm.size, dtype=np.int64) if day_steps is None else np.asarray(day_steps)
    dates = [date(2022, 1, 3) + timedelta(days=int(d)) for d in np.cumsum(steps) - steps[0]]
    day = np.repeat(np.arange(sm.size), sm)
    minute = np.concatenate([np.arange(m) for m in sm])
    open_ns = np.array(
        [int(datetime(d.year, d.month, d.day, 14, 30, tzinfo=UTC).timestamp()) for d in dates]
    )
    ts = open_ns[day] * 1_000_000_000 + minute * NS_MIN
    n = day.size
    first = np.r_[True, day[1:] != day[:-1]]
    r = rng.standard_t(5, n) * 4e-4 + np.where(first, rng.normal(0, 3e-3, n), 0.0)
    close = 400.0 * np.exp(np.cumsum(r))
    prev = np.r_[400.0, close[:-1]]
    open_ = prev * np.exp(np.where(first, 0.0, rng.normal(0, 1e-4, n)))
    open_[first] = close[first] * np.exp(rng.normal(0, 2e-4, first.sum()))
    filled = (rng.random(n) < filled_p) & ~first
    close = np.where(filled, prev, close)
    open_ = np.where(filled, prev, open_)
    hi = np.maximum(open_, close) * np.exp(np.where(filled, 0, np.abs(rng.normal(0, 2e-4, n))))
    lo = np.minimum(open_, close) * np.exp(-np.where(filled, 0, np.abs(rng.normal(0, 2e-4, n))))
    vol = np.where(filled, 0.0, rng.lognormal(8, 1, n))
    bars = pl.DataFrame(
        {
            "ts": ts,
            "session": pl.Series([dates[i] for i in day], dtype=pl.Date),
            "minute": pl.Series(minute, dtype=pl.Int16),
            "session_minutes": pl.Series(sm[day], dtype=pl.Int16),
            "open": open_,
            "high": hi,
            "low": lo,
            "close": close,
            "volume": vol,
            "transactions": pl.Series(np.where(filled, 0, 50), dtype=pl.Int64),
            "filled": filled,
        }
    )
    obs = rng.random(n) < option_obs_p
    iv = 0.2 + 0.02 * np.sin(np.arange(n) / 200) + rng.normal(0, 0.002, n)

    def col(x, m=obs):
        return pl.Series(np.where(m, x, np.nan), dtype=pl.Float64).fill_nan(None)

    osum = pl.DataFrame(
        {
            "ts": ts,
            "iv_atm_near": col(iv),
            "iv_atm_far": col(iv + 0.01),
            "iv_put_25d": col(iv + 0.04),
            "iv_call_25d": col(iv - 0.01),
            "call_volume": col(rng.poisson(50, n).astype(float)),
            "put_volume": col(rng.poisson(60, n).astype(float)),
            "near_dte": col(np.full(n, 1.0)),
            "far_dte": col(np.full(n, 30.0)),
        }
    )
    return bars, osum
