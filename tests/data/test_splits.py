"""Chronological day splits with whole-day embargo, and walk-forward folds."""

import numpy as np
import pytest

from marketjepa.config import SplitConfig
from marketjepa.data.splits import (
    EMBARGO,
    TEST,
    TRAIN,
    VAL,
    day_splits,
    days_per_split,
    row_splits,
    walk_forward_eval_folds,
    walk_forward_folds,
)
from marketjepa.errors import MarketJepaError


def test_seed_split_787_197():
    d = day_splits(984, SplitConfig(train=0.8, val=0.2, test=0.0, embargo_days=0))
    assert days_per_split(d) == {"train": 787, "val": 197, "test": 0, "embargo": 0}
    assert (d[:787] == TRAIN).all() and (d[787:] == VAL).all()


@pytest.mark.parametrize("n_days,embargo", [(984, 1), (984, 3), (40, 2), (12, 1)])
def test_default_split_is_chronological_with_embargo(n_days, embargo):
    cfg = SplitConfig(embargo_days=embargo)
    d = day_splits(n_days, cfg)
    assert d.size == n_days
    kept = d[d != EMBARGO]
    assert (np.diff(kept) >= 0).all()  # train, then val, then test
    counts = days_per_split(d)
    assert counts["embargo"] == 2 * embargo
    for a, b in [(TRAIN, VAL), (VAL, TEST)]:  # exactly `embargo` whole days between
        assert np.flatnonzero(d == b)[0] - np.flatnonzero(d == a)[-1] - 1 == embargo
    usable = n_days - 2 * embargo
    assert counts["train"] == round(0.7 * usable)


def test_row_splits_and_too_few_days():
    d = day_splits(10, SplitConfig(embargo_days=1))
    rows = row_splits(np.repeat(np.arange(10), 3), d)
    assert rows.dtype == np.int8 and (rows == np.repeat(d, 3)).all()
    with pytest.raises(MarketJepaError, match="too few"):
        day_splits(3, SplitConfig(embargo_days=1))


def test_walk_forward_folds_expand_and_never_look_back():
    cfg = SplitConfig(embargo_days=1, walk_forward_folds=3)
    folds = walk_forward_folds(100, cfg)
    assert len(folds) == 3
    base = day_splits(100, cfg)
    prev_train = 0
    for f in folds:
        tr, va = np.flatnonzero(f == TRAIN), np.flatnonzero(f == VAL)
        assert tr[0] == 0 and va[0] - tr[-1] - 1 == 1  # embargo between
        assert (f[base == TEST] == TEST).all() and not (f[base != TEST] == TEST).any()
        assert tr.size > prev_train
        prev_train = tr.size
    assert walk_forward_folds(100, SplitConfig()) == []


@pytest.mark.parametrize("embargo", [0, 2])
def test_walk_forward_eval_folds_fit_select_score_in_time_order(embargo):
    cfg = SplitConfig(embargo_days=embargo, walk_forward_folds=3)
    folds = walk_forward_eval_folds(100, cfg)
    assert len(folds) == 3
    blocks = []
    for f in folds:
        fit, sel, score = (np.flatnonzero(f == s) for s in (TRAIN, VAL, TEST))
        assert fit[0] == 0 and fit.size and sel.size and score.size
        # fit | embargo | select | embargo | scored block, in that order
        assert sel[0] - fit[-1] - 1 == embargo and score[0] - sel[-1] - 1 == embargo
        assert sel.size == round(0.15 * (sel[-1] + 1))  # ~15% of the training days
        assert np.all(np.diff(score) == 1)
        blocks.append(score)
    # the scored blocks tile the days after the first block, in order, without overlap
    np.testing.assert_array_equal(np.concatenate(blocks), np.arange(blocks[0][0], 100))
    # the same training/scored days as the plain expanding folds over all days
    for f, g in zip(folds, walk_forward_folds(100, cfg, include_test=True), strict=True):
        np.testing.assert_array_equal(f == TEST, g == VAL)
        assert np.flatnonzero(f == VAL)[-1] == np.flatnonzero(g == TRAIN)[-1]
    with pytest.raises(MarketJepaError, match="fewer folds"):
        walk_forward_eval_folds(12, SplitConfig(embargo_days=2), n_folds=3)
