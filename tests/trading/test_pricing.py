import numpy as np
import polars as pl
import pytest

from marketjepa.black_scholes import bs_price
from marketjepa.constants import CALENDAR_MINUTES_PER_YEAR
from marketjepa.data.calendar import roll_to_session
from marketjepa.errors import DataValidationError
from marketjepa.trading.backtest import Rules, run_strategy
from marketjepa.trading.costs import CostModel
from marketjepa.trading.pricing import (
    SRC_BARS,
    SRC_PROXY,
    SRC_SURFACE,
    X_25D,
    OptionBook,
    OptionPricer,
    random_market,
    trailing_vol_1min,
)


def _chain(m, pricer, rows, dtes=(0, 1, 7), width=3):
    """Option bars priced from the surface itself: every strike ±width around each bar."""
    parts = []
    for dte in dtes:
        exp = pricer.expiry_day(rows, dte)
        atm = np.rint(m.close[rows])
        for dk in range(-width, width + 1):
            for call in (True, False):
                K = atm + dk
                px = pricer.surface_quote(rows, K, exp, np.full(rows.size, call)).mid
                parts.append(
                    pl.DataFrame(
                        {
                            "ts": m.ts[rows],
                            "ticker": ["x"] * rows.size,
                            "expiry": pl.Series(exp.astype(np.int32)).cast(pl.Date),
                            "right": ["C" if call else "P"] * rows.size,
                            "strike": K,
                            "open": px,
                            "high": px,
                            "low": px,
                            "close": px,
                            "volume": np.ones(rows.size),
                        }
                    )
                )
    return pl.concat(parts).unique(subset=["ts", "expiry", "right", "strike"], keep="first")


def test_bars_and_surface_agree_on_a_chain_priced_from_the_surface():
    m = random_market(3, 4, session_minutes=90)
    surface = OptionPricer(m, "surface")
    bars = _chain(m, surface, np.arange(m.n))
    book = OptionBook(bars, m, max_staleness_minutes=5)
    real = OptionPricer(m, "bars", book)
    rng = np.random.default_rng(0)
    sig = np.where(rng.random(m.n) < 0.1, rng.integers(1, 3, m.n), 0).astype(np.int8)
    for dte in (0, 1, 7):
        rules = Rules(dte=dte, hold_bars=12, stop_loss=0.2, take_profit=0.3)
        a = run_strategy(surface, sig, np.ones(m.n, bool), rules, CostModel()).trades
        b = run_strategy(real, sig, np.ones(m.n, bool), rules, CostModel()).trades
        assert a["entry_row"].size > 5
        np.testing.assert_array_equal(a["entry_row"], b["entry_row"])
        np.testing.assert_array_equal(a["exit_row"], b["exit_row"])
        assert np.all(b["entry_source"] == SRC_BARS) and np.all(a["entry_source"] == SRC_SURFACE)
        assert np.max(np.abs(a["net_pnl"] - b["net_pnl"])) < 0.01  # within a cent per trade
        # IVs implied from the bar prices recover the surface IV (where the price has vega)
        ok = a["entry_tau_min"] > 10
        np.testing.assert_allclose(b["entry_iv"][ok], a["entry_iv"][ok], atol=1e-5)


def test_bars_staleness_limit_and_fallback():
    m = random_market(1, 1, session_minutes=60)
    surface = OptionPricer(m, "surface")
    exp = m.day[0]
    K = float(np.rint(m.close[0]))
    rows = np.array([10, 20])
    bars = pl.DataFrame(
        {
            "ts": m.ts[rows],
            "expiry": pl.Series([int(exp)] * 2).cast(pl.Int32).cast(pl.Date),
            "right": ["C", "C"],
            "strike": [K, K],
            "close": [1.11, 2.22],
        }
    )
    pr = OptionPricer(m, "bars", OptionBook(bars, m, max_staleness_minutes=3))
    q = pr.quote(np.array([9, 10, 13, 14, 20, 23]), K, exp, True)
    np.testing.assert_allclose(q.mid[[1, 2, 4, 5]], [1.11, 1.11, 2.22, 2.22])
    assert q.source.tolist() == [SRC_SURFACE, SRC_BARS, SRC_BARS, SRC_SURFACE, SRC_BARS, SRC_BARS]
    assert q.mid[3] == pytest.approx(surface.quote(14, K, exp, True).mid[0])
    # the put, another strike, or another expiry has no bars
    assert pr.quote(10, K, exp, False).source[0] == SRC_SURFACE
    assert pr.quote(10, K + 1, exp, True).source[0] == SRC_SURFACE
    with pytest.raises(DataValidationError):
        OptionPricer(m, "bars", None)
    with pytest.raises(DataValidationError):
        OptionBook(bars.with_columns(pl.lit("X").alias("right")), m, 3)


def test_surface_iv_atm_term_structure_and_smile():
    m = random_market(1, 2, session_minutes=390)
    pr = OptionPricer(m, "surface")
    row = np.array([100])
    S = m.close[100]
    a_n, a_f = m.iv_atm_near[100], m.iv_atm_far[100]
    mtc = 390 - 100 - 1
    # ATM forward strike at the near expiry → near ATM IV
    T = mtc / CALENDAR_MINUTES_PER_YEAR
    F = S * np.exp((m.r - m.q) * T)
    iv, obs = pr.surface_iv(row, np.array([F]), np.array([float(mtc)]))
    assert obs[0] and iv[0] == pytest.approx(a_n, abs=1e-12)
    # the far expiry (7 days) and total-variance interpolation halfway in time
    t_f = 7 * 1440 + mtc
    Ff = S * np.exp((m.r - m.q) * t_f / CALENDAR_MINUTES_PER_YEAR)
    assert pr.surface_iv(row, np.array([Ff]), np.array([float(t_f)]))[0][0] == pytest.approx(a_f)
    t_mid = (mtc + t_f) / 2
    Fm = S * np.exp((m.r - m.q) * t_mid / CALENDAR_MINUTES_PER_YEAR)
    w = 0.5 * (a_n**2 * mtc + a_f**2 * t_f)
    assert pr.surface_iv(row, np.array([Fm]), np.array([t_mid]))[0][0] == pytest.approx(
        np.sqrt(w / t_mid)
    )
    # the smile: the parabola in standardized moneyness through the 25Δ put, ATM, 25Δ call
    p25, c25 = m.iv_put_25d[100], m.iv_call_25d[100]
    bq = (c25 - p25) / (2 * X_25D)
    cq = (p25 + c25 - 2 * a_n) / (2 * X_25D**2)
    for x, target in (
        (-X_25D, p25),
        (X_25D, c25),
        (-3.0, a_n - 3 * bq + 9 * cq),
        (-9.0, a_n - 4 * bq + 16 * cq),
    ):
        K = F * np.exp(x * a_n * np.sqrt(T))
        assert pr.surface_iv(row, np.array([K]), np.array([float(mtc)]))[0][0] == pytest.approx(
            target
        )


def test_iv_proxy_from_trailing_rv_when_no_options():
    m = random_market(2, 3, session_minutes=120, surface=False)
    pr = OptionPricer(m, "surface", iv_rv_ratio=1.3, iv_skew_per_moneyness=-2.0, vol_lookback=30)
    t = 150  # second session: the overnight return is excluded from the window
    r = np.diff(np.log(m.close))[t - 30 : t]
    assert 120 not in range(t - 29, t + 1)
    sd = np.std(r, ddof=1)
    assert trailing_vol_1min(m.close, m.session, 30)[t] == pytest.approx(sd)
    S = m.close[t]
    K = np.array([S, S * 0.99])
    iv, obs = pr.surface_iv(np.array([t, t]), K, np.array([60.0, 60.0]))
    assert not obs.any()
    base = sd * np.sqrt(CALENDAR_MINUTES_PER_YEAR) * 1.3
    np.testing.assert_allclose(iv, [base, base - 2.0 * np.log(0.99)])
    q = pr.quote(np.array([t]), S, m.day[t], True)
    assert q.source[0] == SRC_PROXY
    # causal: changing later closes leaves the trailing vol up to t unchanged
    c2 = m.close.copy()
    c2[t + 1 :] *= 1.05
    np.testing.assert_array_equal(
        trailing_vol_1min(c2, m.session, 30)[: t + 1],
        trailing_vol_1min(m.close, m.session, 30)[: t + 1],
    )


def test_expiry_rolls_over_exchange_holidays():
    # 2024-03-29 is Good Friday (NYSE closed): a Thursday 1DTE rolls to Monday 2024-04-01;
    # 2024-11-28 is Thanksgiving: the Wednesday 1DTE rolls to Friday 2024-11-29.
    good_friday, easter_monday = _epoch_day("2024-03-29"), _epoch_day("2024-04-01")
    thanksgiving = _epoch_day("2024-11-28")
    rolled = roll_to_session(np.array([good_friday, good_friday + 1, thanksgiving]))
    assert rolled.tolist() == [easter_monday, easter_monday, thanksgiving + 1]
    # a calendar with a different holiday set keeps its own sessions (LSE trades 2024-11-28)
    assert roll_to_session(np.array([thanksgiving]), "XLON").tolist() == [thanksgiving]
    # a pricer given the calendar prices the Thursday-before-Good-Friday 1DTE to Monday
    m = random_market(1, 0, session_minutes=30, start_day=_epoch_day("2024-03-28"))
    pr = OptionPricer(m, "surface", calendar="XNYS")
    assert pr.expiry_day(np.array([5]), 1)[0] == easter_monday


def _epoch_day(iso: str) -> int:
    return int(np.datetime64(iso, "D").astype(np.int64))


def test_expiry_calendar_and_time_to_expiry():
    # 2024-01-05 is a Friday (epoch day 19727): 1DTE rolls to Monday, 7DTE is next Friday
    assert roll_to_session(np.array([19728, 19729, 19730])).tolist() == [19730, 19730, 19730]
    m = random_market(4, 0, session_minutes=30)  # Tue 2 Jan .. Fri 5 Jan 2024
    pr = OptionPricer(m, "surface")
    fri = np.array([3 * 30 + 5])
    assert pr.expiry_day(fri, 1)[0] == 19730 and pr.expiry_day(fri, 7)[0] == 19734
    assert pr.tau_minutes(fri, pr.expiry_day(fri, 0))[0] == 30 - 5 - 1
    assert pr.tau_minutes(fri, pr.expiry_day(fri, 1))[0] == 24 + 3 * 1440
    last = np.array([29])
    q = pr.quote(last, 440.0, m.day[29], True)
    assert q.tau_min[0] == 0 and q.mid[0] == pytest.approx(max(m.close[29] - 440.0, 0.0))
    T = 24 / CALENDAR_MINUTES_PER_YEAR
    iv = pr.surface_iv(fri, np.array([450.0]), np.array([24.0]))[0]
    expect = bs_price(m.close[fri], 450.0, T, iv, False, m.r, m.q)
    assert pr.quote(fri, 450.0, pr.expiry_day(fri, 0), False).mid[0] == pytest.approx(expect[0])


def test_bars_with_quotes_cross_the_spread():
    """With bid/ask on the bars, the mid is the quote midpoint and fills are at the ask (buy)
    and the bid (sell); rows without a quote keep the assumed half-spread."""
    m = random_market(1, 2, session_minutes=60)
    exp = m.day[0]
    K = float(np.rint(m.close[0]))
    rows = np.array([5, 20, 35])
    bars = pl.DataFrame(
        {
            "ts": m.ts[rows],
            "expiry": pl.Series([int(exp)] * 3).cast(pl.Int32).cast(pl.Date),
            "right": ["C"] * 3,
            "strike": [K] * 3,
            "close": [1.00, 1.50, 1.20],
            "bid": [0.90, 1.40, None],
            "ask": [1.10, 1.70, None],
        }
    )
    pr = OptionPricer(m, "bars", OptionBook(bars, m, max_staleness_minutes=3))
    q = pr.quote(rows, K, exp, True)
    np.testing.assert_allclose(q.mid, [1.00, 1.55, 1.20])
    np.testing.assert_allclose(q.half_spread[:2], [0.10, 0.15])
    assert np.isnan(q.half_spread[2])
    costs = CostModel(
        half_spread_abs=0.02, slippage_abs=0.01, commission_per_contract=0.0, fees_per_contract=0.0
    )
    sig = np.zeros(m.n, np.int8)
    sig[4] = 1  # CALL signal at bar 4 → entry at the close of bar 5
    res = run_strategy(pr, sig, np.ones(m.n, bool), Rules(dte=0, hold_bars=15), costs).trades
    assert res["entry_row"].tolist() == [5] and res["exit_row"].tolist() == [20]
    assert res["entry_fill"][0] == pytest.approx(1.10 + 0.01)  # the ask + slippage
    assert res["exit_fill"][0] == pytest.approx(1.40 - 0.01)  # the bid − slippage
    assert res["cost_spread"][0] == pytest.approx((0.10 + 0.15) * 100)
    # The same bars without quotes: the old half-spread assumption around the close.
    plain = OptionPricer(m, "bars", OptionBook(bars.drop("bid", "ask"), m, 3))
    res2 = run_strategy(plain, sig, np.ones(m.n, bool), Rules(dte=0, hold_bars=15), costs).trades
    assert res2["entry_fill"][0] == pytest.approx(1.00 + 0.02 + 0.01)
    assert res2["exit_fill"][0] == pytest.approx(1.50 - 0.02 - 0.01)
