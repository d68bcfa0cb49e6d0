"""Directional-return test (evaluate/signed_return.py): its arithmetic, its size under a
martingale, and the label artefact that makes the direction-accuracy lift unfit as a test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ttest_1samp

from marketjepa.evaluate import probes as pr
from marketjepa.evaluate.signed_return import day_mean_test, signed_returns


def test_signed_returns_and_day_mean_t_test_by_hand():
    pred = np.array([1, 2, 0, 1, 2, 1])
    s = signed_returns(pred, np.array([0.2, 0.1, 5.0, -0.4, -0.2, 0.6]), np.full(6, 0.1))
    assert s == pytest.approx([2.0, -1.0, 0.0, -4.0, 2.0, 6.0])
    day = np.array([0, 0, 0, 1, 1, 2])
    out = day_mean_test(s, day)
    means = [1 / 3, -1.0, 6.0]  # day means, each day weighted equally
    ref = ttest_1samp(means, 0.0)
    assert out["estimate"] == pytest.approx(np.mean(means))
    assert out["t"] == pytest.approx(ref.statistic)
    assert out["p_value"] == pytest.approx(ref.pvalue)
    assert out["df"] == 2 and out["n_days"] == 3 and out["active_days"] == 3
    lo, hi = out["ci"]
    assert (lo + hi) / 2 == pytest.approx(out["estimate"]) and lo < 0 < hi
    # no move predicted: estimate 0, no variation, no test
    flat = day_mean_test(np.zeros(6), day)
    assert flat["estimate"] == 0 and flat["active_days"] == 0 and np.isnan(flat["p_value"])
    with pytest.raises(ValueError, match="finite"):
        signed_returns(pred, np.zeros(6), np.zeros(6))


def _skewed_martingale(rng, n_days=19, per_day=60):
    """A martingale whose forward-return *skew* depends on an observable state: in state 1
    the return is +1 w.p. 2/3 and −2 w.p. 1/3 (mean 0), in state 0 it is ±1.5. Labels are
    thresholds at ±1.2 (as data/labels.py thresholds fwd_ret / sigma_h): in state 1 only
    falls cross it, in state 0 both directions do."""
    state = rng.integers(0, 2, (n_days, per_day))
    up = rng.random((n_days, per_day))
    fwd = np.where(state == 1, np.where(up < 2 / 3, 1.0, -2.0), np.where(up < 0.5, 1.5, -1.5))
    label = np.select([fwd > 1.2, fwd < -1.2], [1, 2], 0)
    # The "predictor" reads only the state: PUT in state 1, CALL in state 0.
    pred = np.where(state == 1, 2, 1)
    day = np.repeat(np.arange(n_days), per_day)
    return fwd.ravel(), label.ravel(), pred.ravel(), day


def test_direction_lift_is_biased_on_a_martingale_directional_return_is_not():
    rng = np.random.default_rng(11)
    lifts, pvals = [], []
    for _ in range(200):
        fwd, label, pred, day = _skewed_martingale(rng)
        cm = pr.confusion_matrix(label, pred, 3)
        lifts.append(pr.direction_accuracy(cm) - 0.5)
        pvals.append(day_mean_test(signed_returns(pred, fwd, np.ones_like(fwd)), day)["p_value"])
    # Knowing only the state (no information about the return's mean), the
    # direction-accuracy lift is ½·(1 + (1/3)/(1/3 + 1/2)) − ½ = 0.2 on every market ...
    assert np.mean(lifts) == pytest.approx(0.2, abs=0.01) and min(lifts) > 0.1
    # ... while the directional-return test rejects at about its nominal 5% rate.
    rate = np.mean(np.asarray(pvals) < 0.05)
    assert 0.01 <= rate <= 0.10, rate


def test_directional_return_finds_a_planted_drift():
    rng = np.random.default_rng(12)
    n_days, per_day = 19, 60
    signal = rng.choice([-1.0, 1.0], n_days * per_day)  # known at t
    fwd = 0.3 * signal + rng.normal(size=signal.size)  # its sign predicts the mean
    pred = np.where(signal > 0, 1, 2)
    out = day_mean_test(
        signed_returns(pred, fwd, np.ones_like(fwd)), np.repeat(np.arange(n_days), per_day)
    )
    assert out["p_value"] < 1e-6 and out["ci"][0] > 0.2
