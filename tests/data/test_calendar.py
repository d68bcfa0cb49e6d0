from datetime import date

import numpy as np

from marketjepa.data.calendar import NS_PER_MINUTE, session_of, trading_sessions


def test_seed_date_range_has_984_sessions():
    s = trading_sessions(date(2021, 12, 1), date(2025, 11, 1))
    assert s.height == 984  # the seed report's "Total days"


def test_holiday_half_day_and_dst():
    s = trading_sessions(date(2022, 11, 23), date(2022, 11, 28)).to_dicts()
    days = [r["session"] for r in s]
    assert date(2022, 11, 24) not in days  # Thanksgiving
    half = next(r for r in s if r["session"] == date(2022, 11, 25))
    assert half["session_minutes"] == 210 and half["early_close"]
    # DST: the 09:30 ET open is 13:30 UTC in summer, 14:30 UTC in winter.
    around = trading_sessions(date(2022, 3, 11), date(2022, 3, 14)).to_dicts()
    hours = [(r["open_ns"] // NS_PER_MINUTE // 60) % 24 for r in around]
    assert hours == [14, 13]


def test_session_of_marks_outside_bars():
    s = trading_sessions(date(2022, 3, 14), date(2022, 3, 14))
    o = s["open_ns"][0]
    ts = np.array([o - NS_PER_MINUTE, o, o + 389 * NS_PER_MINUTE, o + 390 * NS_PER_MINUTE])
    idx, minute = session_of(ts, s)
    assert idx.tolist() == [-1, 0, 0, -1]
    assert minute.tolist() == [-1, 0, 389, -1]
