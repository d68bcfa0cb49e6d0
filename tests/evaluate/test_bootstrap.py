"""Block bootstrap over days: coverage, whole-day resampling, paired test."""

from __future__ import annotations

import numpy as np
import pytest

from marketjepa.evaluate.bootstrap import (
    DayBlockResampler,
    block_bootstrap,
    paired_bootstrap_test,
)


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(y == p))


def _clustered_predictions(rng, n_days, rows_per_day, acc_mean, day_spread=0.3):
    """Labels and predictions whose accuracy varies by day (day-level dependence)."""
    day_acc = np.clip(acc_mean + day_spread * rng.uniform(-1, 1, n_days), 0, 1)
    day = np.repeat(np.arange(n_days), rows_per_day)
    y = rng.integers(0, 3, day.size)
    correct = rng.random(day.size) < day_acc[day]
    pred = np.where(correct, y, (y + 1) % 3)
    return y, pred, day


def test_ci_covers_true_value_at_nominal_rate():
    # True accuracy = E[day accuracy] = 0.6; days independent, rows within a day dependent.
    rng = np.random.default_rng(1)
    covered_days, covered_rows = 0, 0
    for sim in range(100):
        y, pred, day = _clustered_predictions(rng, n_days=40, rows_per_day=15, acc_mean=0.6)
        res = block_bootstrap(_accuracy, y, pred, day, block_days=1, n_samples=150, seed=sim)
        covered_days += res.covers(0.6)
        # Row-level resampling ignores the day dependence and is too narrow.
        naive = block_bootstrap(
            _accuracy, y, pred, np.arange(day.size), block_days=1, n_samples=150, seed=sim
        )
        covered_rows += naive.covers(0.6)
    assert covered_days >= 85
    assert covered_rows < 85  # row-level resampling is too narrow on day-clustered rows


def test_resampler_draws_whole_days_in_consecutive_blocks():
    rng = np.random.default_rng(0)
    day = np.sort(rng.integers(100, 130, 600))  # 30 days, uneven row counts
    days, counts = np.unique(day, return_counts=True)
    rs = DayBlockResampler(day, block_days=3, n_samples=50, seed=0)
    draws = rs.day_draws()
    assert draws.shape == (50, days.size)
    # Each block of 3 is 3 consecutive days (circularly).
    blocks = draws.reshape(50, -1, 3)
    assert np.all((blocks[:, :, 1:] - blocks[:, :, :-1]) % days.size == 1)
    for draw, rows in zip(draws, rs.replicates(), strict=True):
        # The replicate holds every row of each drawn day, as many times as it was drawn.
        got = np.unique(day[rows], return_counts=True)
        mult = np.bincount(draw, minlength=days.size)
        expect_days = days[mult > 0]
        np.testing.assert_array_equal(got[0], expect_days)
        np.testing.assert_array_equal(got[1], (mult * counts)[mult > 0])


def test_block_shrinks_when_few_days_and_is_deterministic():
    day = np.repeat(np.arange(8), 5)
    rs = DayBlockResampler(day, block_days=5, n_samples=10, seed=3)
    assert rs.block_days == 2  # at least 4 blocks to draw from
    y = np.arange(day.size) % 3
    a = block_bootstrap(_accuracy, y, y, day, n_samples=30, seed=7)
    b = block_bootstrap(_accuracy, y, (y + day) % 3, day, n_samples=30, seed=7)
    c = block_bootstrap(_accuracy, y, (y + day) % 3, day, n_samples=30, seed=7)
    assert a.estimate == a.lo == a.hi == 1.0
    assert (b.lo, b.hi) == (c.lo, c.hi)
    assert b.lo < b.estimate < b.hi


def test_dict_metric_gives_one_result_per_key():
    rng = np.random.default_rng(2)
    y, pred, day = _clustered_predictions(rng, 30, 20, 0.7)

    def both(yt, yp):
        return {"acc": _accuracy(yt, yp), "err": 1 - _accuracy(yt, yp)}

    res = block_bootstrap(both, y, pred, day, n_samples=100, block_days=2)
    assert set(res) == {"acc", "err"}
    assert res["acc"].estimate == pytest.approx(1 - res["err"].estimate)
    assert res["acc"].lo == pytest.approx(1 - res["err"].hi)


def test_paired_test_detects_planted_difference():
    rng = np.random.default_rng(4)
    n_days, per_day = 40, 30
    day = np.repeat(np.arange(n_days), per_day)
    y = rng.integers(0, 3, day.size)
    hard_day = rng.random(n_days) < 0.5  # shared day difficulty affects both predictors
    base = np.where(hard_day[day], 0.45, 0.75)
    a = np.where(rng.random(day.size) < base + 0.12, y, (y + 1) % 3)
    b = np.where(rng.random(day.size) < base, y, (y + 2) % 3)
    t = paired_bootstrap_test(_accuracy, y, a, b, day, block_days=2, n_samples=300, seed=0)
    assert t.estimate == pytest.approx(_accuracy(y, a) - _accuracy(y, b))
    assert t.lo > 0
    assert t.p_value < 0.01

    same = paired_bootstrap_test(_accuracy, y, a, a.copy(), day, n_samples=100)
    assert same.estimate == 0 and same.lo == same.hi == 0
    assert same.p_value == 1.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same length"):
        block_bootstrap(_accuracy, np.zeros(5), np.zeros(4), np.zeros(5))
