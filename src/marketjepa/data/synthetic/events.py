"""Scheduled macro events: CPI releases (monthly) and FOMC statements (8 a year).

Rules (deterministic in the date, so future sessions are known when options are priced):

* **CPI**: the first session on or after the 10th of each month (the real release is at
  8:30 ET, before the open). The overnight gap into that session has ``cpi_gap_vol`` × the
  usual sd and the first 30 minutes ``cpi_open_vol`` × the usual σ, fading linearly.
* **FOMC**: the third Wednesday of Jan, Mar, May, Jun, Jul, Sep, Nov and Dec (the session
  on or before it when it is a holiday); σ jumps ``fomc_vol``-fold at 14:00 ET (minute 330
  of a full session) and decays with a 15-minute time constant.

The multipliers enter the seasonal shape ``u(m)``, so the option surface's expected
variance includes an upcoming event and drops once it has passed (IV crush).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from marketjepa.data.synthetic.params import MarketParams

FOMC_MONTHS = (1, 3, 5, 6, 7, 9, 11, 12)
FOMC_MINUTE = 330  # 14:00 ET
CPI_FADE_MINUTES = 30
FOMC_TAU = 15.0


def _session_on_or_after(cal: np.ndarray, day: date) -> int:
    return int(np.searchsorted(cal, np.datetime64(day), side="left"))


def _session_on_or_before(cal: np.ndarray, day: date) -> int:
    return int(np.searchsorted(cal, np.datetime64(day), side="right")) - 1


def event_days(days: list[date]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(cpi, fomc)`` masks over the sorted sessions ``days``."""
    n = len(days)
    cpi, fomc = np.zeros(n, bool), np.zeros(n, bool)
    if n == 0:
        return cpi, fomc
    cal = np.array(days, dtype="datetime64[D]")
    y, m = days[0].year, days[0].month
    while date(y, m, 1) <= days[-1]:
        i = _session_on_or_after(cal, date(y, m, 10))
        if i < n and days[i].month == m:
            cpi[i] = True
        if m in FOMC_MONTHS:
            first = date(y, m, 1)
            wed = first + timedelta(days=(2 - first.weekday()) % 7 + 14)
            j = _session_on_or_before(cal, wed)
            if 0 <= j < n and days[j].month == m:
                fomc[j] = True
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return cpi, fomc


def event_multipliers(
    days: list[date], session_minutes: np.ndarray, width: int, p: MarketParams
) -> tuple[np.ndarray, np.ndarray]:
    """``(vol [D, width], gap [D])``: σ multipliers of each minute and of the overnight gap."""
    cpi, fomc = event_days(days)
    minute = np.arange(width, dtype=np.float64)
    mult = np.ones((len(days), width))
    fade = np.clip(1.0 - minute / CPI_FADE_MINUTES, 0.0, 1.0)
    mult[cpi] *= 1.0 + (p.cpi_open_vol - 1.0) * fade
    after = np.where(minute >= FOMC_MINUTE, np.exp(-(minute - FOMC_MINUTE) / FOMC_TAU), 0.0)
    full = np.asarray(session_minutes) > FOMC_MINUTE
    mult[fomc & full] *= 1.0 + (p.fomc_vol - 1.0) * after
    gap = np.where(cpi, p.cpi_gap_vol, 1.0)
    return mult, gap
