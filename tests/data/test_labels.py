"""Labels and targets against explicit per-row reference computations (DESIGN §2.2)."""

import numpy as np
import pytest

from marketjepa.config import LabelConfig
from marketjepa.data.features import intraday_log_returns
from marketjepa.data.labels import (
    BUY_CALL,
    BUY_PUT,
    HOLD,
    NO_LABEL,
    class_rates,
    forward_valid,
    make_labels,
)
from marketjepa.errors import MarketJepaError


def _market(sessions=(120, 120, 60, 120), seed=0):
    rng = np.random.default_rng(seed)
    sm = np.asarray(sessions)
    day = np.repeat(np.arange(sm.size), sm)
    minute = np.concatenate([np.arange(m) for m in sm])
    first = np.r_[True, day[1:] != day[:-1]]
    close = 100 * np.exp(np.cumsum(rng.standard_t(4, day.size) * 1e-3))
    open_ = np.r_[100.0, close[:-1]] * np.exp(np.where(first, 0.004, 0.0))
    return close, open_, day, minute, intraday_log_returns(open_, close, first)


def test_forward_targets_stay_inside_the_session():
    close, open_, day, minute, r1 = _market()
    cfg = LabelConfig(horizon=10, vol_lookback=20)
    res = make_labels(close, r1, day, minute, cfg)
    ends = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
    for e in ends:  # the last H bars of every session have no label and NaN targets
        assert (res.label[e - 9 : e + 1] == NO_LABEL).all()
        assert (
            np.isnan(res.fwd_ret[e - 9 : e + 1]).all() and np.isnan(res.fwd_rv[e - 9 : e + 1]).all()
        )
    t = 150
    assert res.fwd_ret[t] == pytest.approx(np.log(close[t + 10] / close[t]), abs=1e-14)
    ref_rv = np.sqrt(np.sum(np.log(close[t + 1 : t + 11] / close[t : t + 10]) ** 2))
    assert res.fwd_rv[t] == pytest.approx(np.log(ref_rv))
    ref_sig = np.sqrt(np.mean(r1[t - 19 : t + 1] ** 2)) * np.sqrt(10)
    assert res.sigma_h[t] == pytest.approx(ref_sig)
    assert np.isnan(res.sigma_h[:19]).all() and (res.label[:19] == NO_LABEL).all()


def test_forward_valid_requires_h_minutes_later():
    day = np.zeros(10, dtype=np.int64)
    minute = np.array([0, 1, 2, 3, 4, 7, 8, 9, 10, 11])  # a hole of 2 minutes
    ok = forward_valid(day, minute, 3)
    assert ok.tolist() == [True, True, False, False, False, True, True, False, False, False]


def test_threshold_k_calibrated_on_train_to_target_rate():
    close, open_, day, minute, r1 = _market((390,) * 8, seed=1)
    cfg = LabelConfig(horizon=15, vol_lookback=30, target_rate_each_side=0.1)
    train = day < 6
    res = make_labels(close, r1, day, minute, cfg, train_mask=train)
    z = res.fwd_ret / res.sigma_h
    lab = res.label
    assert ((lab == BUY_CALL) == ((z > res.k) & (lab >= 0))).all()
    assert ((lab == BUY_PUT) == ((z < -res.k) & (lab >= 0))).all()
    rates = class_rates(lab[train])
    assert rates["BUY_CALL"] + rates["BUY_PUT"] == pytest.approx(0.2, abs=0.01)
    assert rates["HOLD"] == pytest.approx(0.8, abs=0.01)
    # k does not move when val rows change
    close2 = close.copy()
    close2[~train] *= np.exp(np.random.default_rng(9).normal(0, 0.01, (~train).sum()))
    r2 = intraday_log_returns(open_, close2, np.r_[True, day[1:] != day[:-1]])
    assert make_labels(close2, r2, day, minute, cfg, train_mask=train).k == res.k


def test_triple_barrier_first_touch():
    # hand-made path: sigma_h constant, a run up then down within H
    n = 200
    day, minute = np.zeros(n, dtype=np.int64), np.arange(n)
    steps = np.zeros(n)
    steps[100:103] = 0.01  # up 3% right after t=99
    steps[103:110] = -0.02  # then down 14%
    rng = np.random.default_rng(0)
    steps[:100] = rng.choice([-1e-3, 1e-3], 100)
    close = 100 * np.exp(np.cumsum(steps))
    r1 = np.r_[0.0, np.diff(np.log(close))]
    cfg = LabelConfig(kind="triple_barrier", horizon=20, vol_lookback=50)
    res = make_labels(close, r1, day, minute, cfg, k=1.0)
    assert res.label[99] == BUY_CALL  # the +k·σ barrier is touched first
    up_then_down = make_labels(close, r1, day, minute, cfg, k=10.0).label[99]
    assert up_then_down == BUY_PUT  # only the big drop crosses a wide barrier
    assert make_labels(close, r1, day, minute, cfg, k=1e6).label[99] == HOLD
    # calibration: train trade rate ≈ 2 × target
    close, open_, day, minute, r1 = _market((390,) * 6, seed=4)
    res = make_labels(close, r1, day, minute, cfg)
    rates = class_rates(res.label)
    assert rates["HOLD"] == pytest.approx(1 - 2 * cfg.target_rate_each_side, abs=0.01)


def test_no_training_rows_is_a_clear_error():
    close, open_, day, minute, r1 = _market((30,))
    with pytest.raises(MarketJepaError, match="calibrate"):
        make_labels(close, r1, day, minute, LabelConfig(horizon=30, vol_lookback=10))
