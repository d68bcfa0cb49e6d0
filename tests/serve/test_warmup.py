"""Warm-up bookkeeping of `marketjepa signal` (no trained run needed)."""

from __future__ import annotations

import numpy as np
import pytest

from marketjepa.errors import DataValidationError
from marketjepa.serve.signal import complete_before, expand_files, warm_rows


def _days(n_sessions: int, per: int, start_minute: int = 0):
    day = np.repeat(np.arange(n_sessions), per)
    minute = np.tile(np.arange(per), n_sessions)
    return day[start_minute:], minute[start_minute:]


def test_a_window_needs_complete_sessions_before_it():
    day, minute = _days(5, 10, 0)
    # need 2 complete sessions before a 4-bar window: its first bar in session >= 2
    rows = warm_rows(day, minute, window=4, need=2)
    assert rows[0] == 2 * 10 + 3  # window rows 20..23, the first window inside session 2
    assert np.all(day[rows - 3] >= 2)
    assert rows[-1] == day.size - 1


def test_a_partial_first_session_does_not_count():
    day, minute = _days(5, 10, start_minute=4)  # the data begins mid-session
    assert complete_before(day, minute)[0] == -1
    rows = warm_rows(day, minute, window=4, need=2)
    assert np.all(day[rows - 3] >= 3)  # one more session than with a complete first one


def test_too_short_for_a_window_has_no_warm_row():
    day, minute = _days(1, 10)
    assert warm_rows(day, minute, window=20, need=0).size == 0


def test_globs_expand_and_unmatched_globs_are_errors(tmp_path):
    for name in ("b.csv", "a.csv"):
        (tmp_path / name).write_text("x\n")
    files = expand_files([str(tmp_path / "*.csv"), str(tmp_path / "a.csv")])
    assert [f.name for f in files] == ["a.csv", "b.csv"]
    with pytest.raises(DataValidationError, match="no files matched"):
        expand_files([str(tmp_path / "*.parquet")])


def _minute_bars(sessions, keep):
    import polars as pl

    from marketjepa.data.calendar import NS_PER_MINUTE

    rows = []
    for s in sessions.iter_rows(named=True):
        for m in range(int(s["session_minutes"])):
            ts = s["open_ns"] + m * NS_PER_MINUTE
            if keep(s["session"], m):
                rows.append((ts, 100.0, 100.0, 100.0, 100.0, 10.0, 1))
    cols = ["ts", "open", "high", "low", "close", "volume", "transactions"]
    return pl.DataFrame(rows, schema=cols, orient="row")


def test_a_live_last_session_may_be_unfinished_but_not_have_gaps():
    """`signal` ingests with `live`: the last session ends at its latest bar; a gap before
    it, or an unfinished earlier session, is still an error."""
    from datetime import date

    from marketjepa.data.calendar import trading_sessions
    from marketjepa.data.validation import fill_gaps

    sessions = trading_sessions(date(2022, 6, 28), date(2022, 6, 29))
    last = sessions["session"][-1]
    bars = _minute_bars(sessions, lambda d, m: d != last or m < 90)
    until = int(bars["ts"].max())
    with pytest.raises(DataValidationError, match="300 consecutive"):
        fill_gaps(bars, sessions, 5)
    out, filled = fill_gaps(bars, sessions, 5, until_ts=until)
    assert filled == 0 and out.height == 390 + 90 and out["ts"][-1] == until
    gappy = _minute_bars(sessions, lambda d, m: (d != last or m < 90) and not 40 <= m < 50)
    with pytest.raises(DataValidationError, match="10 consecutive"):
        fill_gaps(gappy, sessions, 5, until_ts=until)
