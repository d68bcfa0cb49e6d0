"""Exchange trading calendars (holidays, early closes, DST) from exchange_calendars.

``data.calendar`` is any exchange_calendars code: XNYS (the default), XNAS, CMES (CME
futures: 23-hour sessions that open the evening before), XLON, ... A 1-minute bar belongs
to the regular session when its start ``window_start`` lies in ``[open, close)``. Session
lengths always come from the calendar (an XNYS full day has 390 bars, a half day 210; a
CMES session 1380); nothing downstream assumes a fixed length.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import polars as pl

from marketjepa.errors import MarketJepaError

NS_PER_MINUTE = 60_000_000_000
EXCHANGE_TZ = "America/New_York"  # US option expiries and ET messages


def calendar_tz(name: str) -> str:
    """IANA timezone of the calendar's exchange (local dates of bars are taken there)."""
    tz = _calendar(name).tz
    return str(getattr(tz, "key", tz))


@lru_cache(maxsize=8)
def full_session_minutes(name: str) -> int:
    """The calendar's usual (modal) session length in minutes: 390 for XNYS.

    A property of the calendar, not of the data, so features may use it without seeing
    the future."""
    sched = _calendar(name).schedule
    minutes = (sched["close"] - sched["open"]).dt.total_seconds().to_numpy() // 60
    values, counts = np.unique(minutes.astype(np.int64), return_counts=True)
    return int(values[np.argmax(counts)])


@lru_cache(maxsize=8)
def _calendar(name: str):
    try:
        return xcals.get_calendar(name, start="2000-01-01")
    except Exception as exc:  # exchange_calendars raises several types for bad names
        raise MarketJepaError(f"unknown exchange calendar '{name}': {exc}") from None


def trading_sessions(start: date, end: date, calendar: str = "XNYS") -> pl.DataFrame:
    """Sessions in ``[start, end]``: ``session`` (date), ``open_ns``/``close_ns`` (UTC ns),
    ``session_minutes`` (from the calendar: 390 or 210 on NYSE early-close days) and
    ``early_close`` (shorter than the calendar's usual session)."""
    if end < start:
        raise MarketJepaError(f"calendar range is empty: end {end} is before start {start}")
    cal = _calendar(calendar)
    sched = cal.schedule.loc[pd.Timestamp(start) : pd.Timestamp(end)]
    opens = sched["open"].astype("int64").to_numpy()
    closes = sched["close"].astype("int64").to_numpy()
    minutes = ((closes - opens) // NS_PER_MINUTE).astype(np.int16)
    return pl.DataFrame(
        {
            "session": [d.date() for d in sched.index],
            "open_ns": opens,
            "close_ns": closes,
            "session_minutes": minutes,
            "early_close": minutes < full_session_minutes(calendar),
        }
    )


def session_of(ts_ns: np.ndarray, sessions: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each bar start (UTC ns) return (session index or -1, minute since the open).

    Vectorized with ``searchsorted``; bars outside every regular session get -1.
    """
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    opens = sessions["open_ns"].to_numpy()
    closes = sessions["close_ns"].to_numpy()
    idx = np.searchsorted(opens, ts_ns, side="right") - 1
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    ok &= ts_ns < closes[safe]
    minute = np.where(ok, (ts_ns - opens[safe]) // NS_PER_MINUTE, -1)
    return np.where(ok, idx, -1), minute


@lru_cache(maxsize=8)
def _session_days(calendar: str) -> np.ndarray:
    sessions = _calendar(calendar).sessions
    return np.asarray(sessions.values.astype("datetime64[D]").astype(np.int64))


def roll_to_session(day: np.ndarray, calendar: str = "XNYS") -> np.ndarray:
    """First trading session of ``calendar`` on or after each epoch day.

    Weekends and exchange holidays (Good Friday, Thanksgiving, …) roll forward, so an
    option "expiring" on a closed day is priced to the next session. Days past the end of
    the calendar's schedule roll over weekends only.
    """
    day = np.asarray(day, dtype=np.int64)
    days = _session_days(calendar)
    idx = np.searchsorted(days, day, side="left")
    inside = idx < days.size
    rolled = days[np.minimum(idx, days.size - 1)]
    wd = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    weekend_only = day + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))
    return np.where(inside, rolled, weekend_only)
