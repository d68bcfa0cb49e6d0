import math

import numpy as np
import pytest
from scipy.stats import norm

from marketjepa.trading import metrics as M


def test_sharpe_and_sortino_by_hand():
    r = np.array([0.01, -0.005, 0.02, 0.0])
    # mean 0.00625; squared deviations sum to 3.6875e-4 → s = √(3.6875e-4 / 3)
    s = math.sqrt(3.6875e-4 / 3)
    assert M.sharpe_ratio(r) == pytest.approx(0.00625 / s * math.sqrt(252))
    assert M.sharpe_ratio(r, periods=1) == pytest.approx(0.563735, abs=1e-6)
    # downside deviation √(0.005² / 4) = 0.0025
    assert M.sortino_ratio(r) == pytest.approx(2.5 * math.sqrt(252))
    assert math.isnan(M.sharpe_ratio(np.zeros(5)))


def test_drawdown_and_duration():
    mdd, dur = M.max_drawdown(np.array([100, 120, 90, 95, 130, 117.0]))
    assert mdd == pytest.approx(0.25) and dur == 2
    assert M.max_drawdown(np.array([1.0, 2.0, 3.0])) == (0.0, 0)


def test_daily_returns_compound_on_equity():
    r = M.daily_returns(np.array([100.0, -55.0, 0.0]), 1000.0)
    np.testing.assert_allclose(r, [0.1, -0.05, 0.0])


def test_psr_reduces_to_normal_case_and_half_at_benchmark():
    sr, n = 0.1, 101
    expected = norm.cdf(sr * math.sqrt(100) / math.sqrt(1 + 0.5 * sr * sr))
    assert M.probabilistic_sharpe_ratio(sr, n, 0.0, 3.0) == pytest.approx(expected)
    assert M.probabilistic_sharpe_ratio(sr, n, -1.0, 8.0, sr_benchmark=sr) == pytest.approx(0.5)
    # negative skew and fat tails lower confidence in a positive SR
    assert M.probabilistic_sharpe_ratio(sr, n, -1.0, 8.0) < M.probabilistic_sharpe_ratio(
        sr, n, 0.0, 3.0
    )


def test_deflated_sharpe_matches_bailey_lopez_de_prado_2014_example():
    # Their numerical example: N = 100 trials, variance of the trials' annualized SR 0.5,
    # best annualized SR 2.5, T = 1250 daily observations, skew −3, kurtosis 10.
    # Paper: SR0 ≈ 0.1132 (per day), DSR ≈ 0.9004.
    # By hand: Φ⁻¹(0.99) = 2.3263, Φ⁻¹(1 − 1/(100e)) = 2.6801,
    # SR0 = √(0.5/250) · (0.4228·2.3263 + 0.5772·2.6801) = 0.04472 · 2.5306 = 0.11317.
    sr0 = M.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    sr = 2.5 / math.sqrt(250)
    # (0.15811 − 0.11317) · √1249 / √(1 + 3·0.15811 + 9/4·0.15811²) = 1.5883 / 1.2374 = 1.2836
    dsr = M.probabilistic_sharpe_ratio(sr, 1250, -3.0, 10.0, sr0)
    assert dsr == pytest.approx(0.9004, abs=1e-4)
    assert M.expected_max_sharpe(1, 0.3) == 0.0


def test_deflated_sharpe_from_returns_and_more_trials_deflate_more():
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.01, 500)
    psr = M.psr_from_returns(r)
    d10 = M.deflated_sharpe_ratio(r, 10, 0.002)
    d1000 = M.deflated_sharpe_ratio(r, 1000, 0.002)
    assert psr > d10 > d1000
    assert M.deflated_sharpe_ratio(r, 1, 0.002) == pytest.approx(psr)


def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    r = rng.normal(0.002, 0.01, 300)
    lo, hi = M.bootstrap_sharpe_ci(r, n_boot=300, block=5, seed=3)
    assert lo < M.sharpe_ratio(r) < hi
    assert (lo, hi) == M.bootstrap_sharpe_ci(r, n_boot=300, block=5, seed=3)
    lo2, hi2 = M.bootstrap_sharpe_ci(r, n_boot=300, block=5, level=0.5, seed=3)
    assert lo < lo2 < hi2 < hi


def test_trade_stats_by_hand():
    s = M.trade_stats(np.array([10.0, -5, 20, -15, 0]), np.array([1, 1, 0, 0, 1], bool))
    assert s["n_trades"] == 5 and s["win_rate"] == pytest.approx(0.4)
    assert s["avg_win"] == pytest.approx(15.0) and s["avg_loss"] == pytest.approx(-20 / 3)
    assert s["profit_factor"] == pytest.approx(1.5)
    assert s["call_share"] == pytest.approx(0.6) and s["put_share"] == pytest.approx(0.4)
    empty = M.trade_stats(np.zeros(0), np.zeros(0, bool))
    assert empty["n_trades"] == 0 and empty["win_rate"] is None


def test_strategy_metrics_bundle():
    out = M.strategy_metrics(
        net_pnl=np.array([50.0, -20.0]),
        is_call=np.array([True, False]),
        daily_pnl=np.array([0.0, 50.0, -20.0, 0.0]),
        initial_capital=1000.0,
        bars_in_position=30,
        n_bars=1560,
        premium_notional=500.0,
        n_trials=4,
        var_trial_sharpes=0.01,
        bootstrap_samples=50,
    )
    assert out["total_return"] == pytest.approx(0.03)
    assert out["exposure"] == pytest.approx(30 / 1560) and out["turnover"] == pytest.approx(0.5)
    assert out["max_drawdown"] == pytest.approx(20 / 1050) and out["max_drawdown_days"] == 2
    assert out["n_trials"] == 4 and out["dsr"] < out["psr"]
