"""Per-minute option summary on hand-built chains priced with bs_price at known IVs."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from marketjepa.black_scholes import bs_price
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.data.calendar import NS_PER_MINUTE, trading_sessions
from marketjepa.data.option_summary import SUMMARY_COLUMNS, invert_rows, option_summary

R, Q = 0.04, 0.013
DAY = date(2024, 3, 11)  # Monday; 03-15 is 4 sessions out, 03-18 is 5


def make_bars(days=(DAY,), spot=None) -> pl.DataFrame:
    s = trading_sessions(min(days), max(days)).filter(pl.col("session").is_in(list(days)))
    frames = []
    for r in s.iter_rows(named=True):
        m = np.arange(r["session_minutes"])
        S = 500.0 + 2.0 * np.sin(m / 60.0) if spot is None else np.full(len(m), spot)
        frames.append(
            pl.DataFrame(
                {"ts": r["open_ns"] + m * NS_PER_MINUTE, "session": r["session"], "close": S}
            )
        )
    return pl.concat(frames)


def chain(bars, expiries, strikes, sigma_fn, every: int = 5, rights="CP") -> pl.DataFrame:
    """Option bars priced at sigma_fn(strike, expiry) at the bar's underlying close."""
    b = bars.gather_every(every)
    out = []
    for exp in expiries:
        close_ns = trading_sessions(exp, exp)["close_ns"][0]
        T = (
            (close_ns - b["ts"].to_numpy() - NS_PER_MINUTE)
            / NS_PER_MINUTE
            / CALENDAR_MINUTES_PER_YEAR
        )
        for right in rights:
            for k in strikes:
                sig = sigma_fn(k, exp)
                px = bs_price(b["close"].to_numpy(), k, T, sig, right == "C", R, Q)
                out.append(
                    pl.DataFrame(
                        {
                            "ts": b["ts"],
                            "expiry": exp,
                            "right": right,
                            "strike": float(k),
                            "close": px,
                            "volume": 2.0 if right == "C" else 3.0,
                            "sigma": sig,
                        }
                    )
                )
    return pl.concat(out)


def test_flat_term_structure_recovered_to_1e6():
    bars = make_bars()
    near, far = date(2024, 3, 15), date(2024, 3, 22)
    opts = chain(bars, [near, far], np.arange(485, 516), lambda k, e: 0.18 if e == near else 0.22)
    summ, log = option_summary(opts, bars, R, Q)
    assert summ.columns == ["ts", *SUMMARY_COLUMNS] and summ["ts"].equals(bars["ts"])
    assert log["iv_failed"] == 0 and log["iv_inverted"] == opts.height
    got = summ.drop_nulls("iv_atm_near")
    assert got.height == 78  # every 5th minute traded; others stay null (no forward fill)
    for col, want in [
        ("iv_atm_near", 0.18),
        ("iv_atm_far", 0.22),
        ("iv_put_25d", 0.18),
        ("iv_call_25d", 0.18),
    ]:
        assert np.abs(got[col].to_numpy() - want).max() < 1e-6, col
    assert got["call_volume"].to_list() == [2.0 * 62] * 78 and got["put_volume"][0] == 3.0 * 62
    assert summ.filter(pl.col("iv_atm_near").is_null())["put_volume"].unique().to_list() == [0.0]
    # DTE in calendar days from the bar's end to 16:00 ET on the expiry date.
    assert abs(summ["near_dte"][0] - (4 * 1440 + 389) / 1440) < 1e-9
    assert abs(summ["far_dte"][0] - (11 * 1440 + 389) / 1440) < 1e-9


def test_row_level_round_trip_within_1e6():
    bars = make_bars()
    opts = chain(
        bars, [date(2024, 3, 22)], [480, 495, 500, 505, 520], lambda k, e: 0.1 + k / 2000, every=13
    )
    rows = invert_rows(opts.join(bars.select("ts", pl.col("close").alias("S")), on="ts"), R, Q)
    assert (rows["iv_status"] == 0).all()
    assert np.abs(rows["iv"].to_numpy() - rows["sigma"].to_numpy()).max() < 1e-6
    assert rows.filter(pl.col("right") == "C")["delta"].is_between(0, 1).all()
    assert rows.filter(pl.col("right") == "P")["delta"].is_between(-1, 0).all()


def test_put_skew_sign_and_atm_on_a_skewed_smile():
    bars = make_bars(spot=500.0)
    near, far = date(2024, 3, 15), date(2024, 3, 22)
    smile = lambda k, e: 0.2 - 0.8 * np.log(k / 500.0)  # noqa: E731 - higher IV for low strikes
    summ, _ = option_summary(chain(bars, [near, far], np.arange(480, 521), smile), bars, R, Q)
    got = summ.drop_nulls("iv_atm_near")
    assert (got["iv_put_25d"] > got["iv_atm_near"]).all()
    assert (got["iv_atm_near"] > got["iv_call_25d"]).all()
    # σ is linear in ln K, so interpolation at k = ln(K/F) = 0 is exact: σ(F).
    T = (
        (trading_sessions(near, near)["close_ns"][0] - got["ts"].to_numpy() - NS_PER_MINUTE)
        / NS_PER_MINUTE
        / CALENDAR_MINUTES_PER_YEAR
    )
    F = 500.0 * np.exp((R - Q) * T)
    assert np.abs(got["iv_atm_near"].to_numpy() - (0.2 - 0.8 * np.log(F / 500.0))).max() < 1e-6


def test_failed_inversions_are_masked_and_counted_by_reason():
    bars = make_bars(spot=500.0)
    ts = bars["ts"]
    exp = date(2024, 3, 22)
    opts = pl.DataFrame(
        {
            "ts": [ts[0], ts[1], ts[2], ts[3]],
            "expiry": [exp, exp, exp, date(2024, 3, 8)],  # last one already expired
            "right": ["C", "C", "P", "C"],
            "strike": [450.0, 500.0, 500.0, 500.0],
            "close": [10.0, 600.0, 5.0, 1.0],  # below intrinsic, above S, fine, expired
            "volume": [1.0, 1.0, 1.0, 1.0],
        }
    )
    summ, log = option_summary(opts, bars, R, Q)
    assert log["iv_failed_by_reason"] == {
        "below_intrinsic": 1,
        "above_upper_bound": 1,
        "no_convergence": 0,
        "expired": 1,
    }
    assert log["iv_inverted"] == 1
    # The failed minutes carry no IV (null, never 0); volume is still counted.
    assert summ["iv_atm_near"][:2].to_list() == [None, None]
    assert summ["call_volume"][:2].to_list() == [1.0, 1.0]
    assert summ["iv_atm_near"].drop_nulls().min() > 0


def test_0dte_is_near_until_30_minutes_before_close_and_far_needs_5_sessions():
    bars = make_bars(spot=500.0)
    e0, e1, e4, e5 = date(2024, 3, 11), date(2024, 3, 12), date(2024, 3, 15), date(2024, 3, 18)
    iv = {e0: 0.30, e1: 0.25, e4: 0.21, e5: 0.19}
    opts = chain(bars, [e0, e1, e4, e5], np.arange(490, 511), lambda k, e: iv[e], every=1)
    summ, _ = option_summary(opts, bars, R, Q)
    at = lambda m, c: summ[c][m]  # noqa: E731
    assert abs(at(359, "iv_atm_near") - 0.30) < 1e-6  # 15:29 bar ends 30 min before close
    assert abs(at(361, "iv_atm_near") - 0.25) < 1e-6  # 15:31: 0DTE dropped
    assert abs(at(359, "near_dte") - 30 / 1440) < 1e-9
    assert abs(at(0, "iv_atm_far") - 0.19) < 1e-6  # 03-18 is the first expiry ≥ 5 sessions out
    assert abs(at(0, "far_dte") - (7 * 1440 + 389) / 1440) < 1e-9
    # Without the 5-session expiry there is no far IV.
    summ2, _ = option_summary(opts.filter(pl.col("expiry") != e5), bars, R, Q)
    assert summ2["iv_atm_far"].null_count() == summ2.height
    assert summ2["far_dte"].null_count() == summ2.height


def test_session_without_options_has_null_volume():
    bars = make_bars(days=(DAY, date(2024, 3, 12)), spot=500.0)
    day1 = bars.filter(pl.col("session") == DAY)
    opts = chain(day1, [date(2024, 3, 22)], [499, 500, 501], lambda k, e: 0.2, every=30)
    summ, _ = option_summary(opts, bars, R, Q)
    s2 = summ.filter(pl.col("ts") >= bars["ts"][390])
    assert s2.height == 390 and s2["call_volume"].null_count() == 390
    assert summ["call_volume"][:390].null_count() == 0
