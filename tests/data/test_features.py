"""Feature values against explicit reference computations, the registry, the option mask."""

import numpy as np
import polars as pl
import pytest

from helpers.bars import make_market
from marketjepa.config import ALL_FEATURES
from marketjepa.data.features import (
    FEATURES,
    FeatureInputs,
    compute_features,
    feature,
    resolve_features,
)
from marketjepa.errors import MarketJepaError


def _inputs(sessions=(390, 390, 210, 390), seed=0, **kw):
    bars, osum = make_market(list(sessions), seed=seed, **kw)
    return FeatureInputs.from_frames(bars, osum, max_staleness_minutes=5, volume_z_sessions=2)


def _feats(x, names=None):
    names = names or list(ALL_FEATURES)
    return dict(zip(names, compute_features(x, names).T, strict=True))


def test_registry_has_the_23_design_features():
    assert list(ALL_FEATURES) == [n for n in FEATURES if n in ALL_FEATURES]
    assert len(ALL_FEATURES) == 23 and set(ALL_FEATURES) <= set(FEATURES)
    groups = {n: FEATURES[n].group for n in ALL_FEATURES}
    assert [n for n in ALL_FEATURES if groups[n] == "options"] == ALL_FEATURES[13:20]
    used, dropped = resolve_features(list(ALL_FEATURES), has_options=False)
    assert len(used) == 16 and dropped == ALL_FEATURES[13:20]
    with pytest.raises(MarketJepaError, match="unknown feature"):
        resolve_features(["ret_1", "nope"], has_options=True)


def test_adding_a_feature_is_one_decorated_function():
    @feature("test_ret_2")
    def _ret_2(x: FeatureInputs) -> np.ndarray:
        return x.ret(2)

    try:
        x = _inputs()
        f = _feats(x, ["ret_1", "test_ret_2"])
        c = x.close
        np.testing.assert_allclose(f["test_ret_2"][2:], np.log(c[2:] / c[:-2]))
    finally:
        FEATURES.pop("test_ret_2")


def test_stock_features_match_reference():
    x = _inputs()
    f = _feats(x)
    c, o, h, lo, v = x.close, x.open, x.high, x.low, x.volume
    for k in (1, 5, 15, 30):
        np.testing.assert_allclose(f[f"ret_{k}"][k:], np.log(c[k:] / c[:-k]), atol=1e-13)
        assert np.isnan(f[f"ret_{k}"][:k]).all()
    # intraday returns: the first bar of a session uses its own open→close
    first = np.flatnonzero(x.first)
    r = np.log(c[1:] / c[:-1])
    r = np.r_[np.log(c[0] / o[0]), r]
    r[first] = np.log(c[first] / o[first])
    t = 400
    np.testing.assert_allclose(f["rv_10"][t], np.sqrt(np.mean(r[t - 9 : t + 1] ** 2)))
    np.testing.assert_allclose(f["rv_30"][t], np.sqrt(np.mean(r[t - 29 : t + 1] ** 2)))
    np.testing.assert_allclose(f["hl_range"], np.log(h / lo))
    # VWAP resets each session
    typ = (h + lo + c) / 3
    for s in first:
        t = s + 50
        vw = np.sum(typ[s : t + 1] * v[s : t + 1]) / np.sum(v[s : t + 1])
        np.testing.assert_allclose(f["vwap_dev"][t], np.log(c[t] / vw))
        np.testing.assert_allclose(f["ret_open"][t], np.log(c[t] / o[s]))
    # gap: constant through the session, NaN on day one
    assert np.isnan(f["gap"][: first[1]]).all()
    for s, e in zip(first[1:], np.r_[first[2:], x.n], strict=True):
        np.testing.assert_allclose(f["gap"][s:e], np.log(o[s] / c[s - 1]))
    # Bollinger position over 20 bars
    t = 700
    w = c[t - 19 : t + 1]
    np.testing.assert_allclose(f["bb_pos"][t], (c[t] - w.mean()) / (2 * w.std()))
    rsi = f["rsi_14"][np.isfinite(f["rsi_14"])]
    assert rsi.size > x.n - 20 and (np.abs(rsi) <= 1).all()


def test_rsi_is_wilder_and_saturates():
    up = np.linspace(100, 110, 60)
    bars, _ = make_market([60], filled_p=0)
    bars = bars.with_columns(open=up, high=up, low=up, close=up)
    x = FeatureInputs.from_frames(bars, None)
    assert np.allclose(_feats(x, ["rsi_14"])["rsi_14"][15:], 1.0)
    bars, _ = make_market([120], seed=3, filled_p=0)
    x = FeatureInputs.from_frames(bars, None)
    rsi = _feats(x, ["rsi_14"])["rsi_14"]
    d = np.diff(x.close, prepend=x.close[0])
    g = lo = 0.0
    for i in range(x.n):  # Wilder's recursion, written out
        g = d[i].clip(0) if i == 0 else g + (max(d[i], 0) - g) / 14
        lo = (-d[i]).clip(0) if i == 0 else lo + (max(-d[i], 0) - lo) / 14
    np.testing.assert_allclose(rsi[-1], (g - lo) / (g + lo), rtol=1e-10)
    assert np.isnan(rsi[:14]).all()


def test_volume_z_uses_same_minute_of_strictly_previous_sessions():
    bars, osum = make_market([390] * 5, seed=1)
    x = FeatureInputs.from_frames(bars, osum, volume_z_sessions=3)
    z = _feats(x, ["volume_z"])["volume_z"]
    lv = np.log1p(x.volume).reshape(5, 390)
    for d, m in [(4, 0), (4, 200), (3, 389), (2, 17)]:
        ref = lv[max(d - 3, 0) : d, m]
        np.testing.assert_allclose(
            z[d * 390 + m], (lv[d, m] - ref.mean()) / ref.std(ddof=1), rtol=1e-9
        )
    assert np.isnan(z[: 2 * 390]).all()  # fewer than 2 previous sessions


def test_calendar_features_handle_half_days():
    x = _inputs((390, 210))
    f = _feats(x, ["tod_sin", "tod_cos", "minutes_to_close"])
    assert f["minutes_to_close"][0] == 1.0 and f["minutes_to_close"][389] == 0.0
    assert f["minutes_to_close"][390] == pytest.approx(209 / 389)
    assert f["minutes_to_close"][-1] == 0.0
    assert (f["minutes_to_close"] >= 0).all() and (f["minutes_to_close"] <= 1).all()
    assert f["tod_cos"][0] == 1.0 and f["tod_cos"][390] == 1.0
    assert f["tod_cos"][390 + 105] == pytest.approx(-1.0)  # mid half day
    assert f["tod_cos"][195] == pytest.approx(-1.0)  # mid full day


def test_option_staleness_mask_and_option_features():
    bars, osum = make_market([390, 390], seed=2, option_obs_p=1.0)
    # observed at minutes 0 and 100 of day 0 only; the last quote of day 0 at minute 389
    keep = np.zeros(780, dtype=bool)
    keep[[0, 100, 389]] = True
    osum = osum.with_columns(
        [
            pl.when(pl.Series(keep)).then(pl.col(c)).otherwise(None).alias(c)
            for c in osum.columns[1:]
        ]
    )
    x = FeatureInputs.from_frames(bars, osum, max_staleness_minutes=5)
    f = _feats(x)
    iv = osum["iv_atm_near"].to_numpy()
    valid = x.options_valid
    assert valid[:6].all() and not valid[6:100].any() and valid[100:106].all()
    assert valid[389] and not valid[390:].any()  # nothing carries over the overnight break
    np.testing.assert_allclose(f["iv_atm"][100:106], iv[100])
    assert np.isnan(f["iv_atm"][106]) and np.isnan(f["skew_25d"][106])
    np.testing.assert_allclose(
        f["skew_25d"][103], osum["iv_put_25d"][100] - osum["iv_call_25d"][100]
    )
    np.testing.assert_allclose(f["term_slope"][103], osum["iv_atm_far"][100] - iv[100])
    rv30 = f["rv_30"][103] * np.sqrt(252 * 390)
    np.testing.assert_allclose(f["iv_rv_spread"][103], iv[100] - rv30)
    np.testing.assert_allclose(f["iv_change_5"][105], iv[100] - iv[100])
    assert np.isnan(f["iv_change_5"][103])  # t-5 = minute 98 was masked
    # put/call volume: nulls count as zero traded, window of 30 bars
    pv, cv = osum["put_volume"].fill_null(0).to_numpy(), osum["call_volume"].fill_null(0).to_numpy()
    t = 103
    ref = np.log((pv[t - 29 : t + 1].sum() + 1) / (cv[t - 29 : t + 1].sum() + 1))
    np.testing.assert_allclose(f["put_call_volume"][t], ref)
    for n in ("put_call_volume", "option_volume_z", "iv_atm", "skew_25d", "term_slope"):
        assert np.isnan(f[n][~valid]).all(), n


def test_option_features_need_an_option_summary():
    bars, _ = make_market([390])
    x = FeatureInputs.from_frames(bars, None)
    with pytest.raises(MarketJepaError, match="needs an option summary"):
        compute_features(x, ["iv_atm"])
    assert not x.options_valid.any()
