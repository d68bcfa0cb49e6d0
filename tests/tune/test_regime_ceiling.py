"""Mechanics of benchmarks/regime_ceiling.py (issue #12, fourth round): the share of the
Bayes filter's lift on probe rows, session bookkeeping of the session-to-date GRU, and
early stopping that restores the best validation weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from marketjepa.constants import TRAIN, VAL


@pytest.fixture(scope="module")
def ceiling():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "regime_ceiling.py"
    spec = importlib.util.spec_from_file_location("regime_ceiling_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve their module through sys.modules while the class is created
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_share_is_lift_over_train_majority_relative_to_the_filter(ceiling):
    # Validation rows: regime 0,0,1,2; train majority 0 → chance 0.5; filter right on 3 of 4.
    rows = ceiling.ProbeRows(
        anchors=np.arange(8),
        sp=np.array([TRAIN, TRAIN, TRAIN, TRAIN, VAL, VAL, VAL, VAL], np.int8),
        day=np.zeros(8, np.int64),
        regime=np.array([0, 0, 0, 1, 0, 0, 1, 2]),
        filter_pred=np.array([0, 0, 0, 1, 0, 0, 1, 1]),
        majority=0,
    )
    pred_all = np.array([9, 9, 9, 9, 0, 0, 1, 2])  # perfect on validation: (1 − .5)/(.75 − .5)
    assert rows.share(pred_all, VAL) == pytest.approx(2.0)
    pred_majority = np.array([9, 9, 9, 9, 0, 0, 0, 0])
    assert rows.share(pred_majority, VAL) == pytest.approx(0.0)
    pred_half = np.array([9, 9, 9, 9, 0, 0, 1, 0])  # acc .75 = the filter's
    assert rows.share(pred_half, VAL) == pytest.approx(1.0)


def test_sessions_are_contiguous_runs(ceiling):
    first, length = ceiling._sessions(np.array([0, 0, 0, 1, 1, 2]))
    assert first.tolist() == [0, 3, 5]
    assert length.tolist() == [3, 2, 1]
    with pytest.raises(ValueError, match="not contiguous"):
        ceiling._sessions(np.array([0, 0, 1, 0]))


def test_session_gru_state_ignores_later_bars(ceiling):
    torch.manual_seed(0)
    net = ceiling.SessionGRU(n_features=3, hidden=8, n_classes=3)
    x = torch.randn(2, 20, 3)
    y = x.clone()
    y[:, 12:] += 5.0
    with torch.no_grad():
        a, b = net.states(x), net.states(y)
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_fit_restores_the_weights_of_the_best_validation_evaluation(ceiling):
    torch.manual_seed(0)
    net = nn.Linear(2, 3)
    x, y = torch.randn(64, 2), torch.randint(0, 3, (64,))
    scripted = iter([0.2, 0.9, 0.5, 0.4, 0.3, 0.1])  # best at the 2nd evaluation (step 4)
    snapshots = []

    def val_acc(m: nn.Module) -> float:
        snapshots.append(m.weight.detach().clone())
        return next(scripted)

    log = ceiling.fit(
        net,
        lambda m, idx: F.cross_entropy(m(x[idx]), y[idx]),
        64,
        val_acc,
        batch_size=16,
        max_steps=100,
        max_seconds=60,
        eval_every=2,
        patience=2,
        lr=0.1,
        seed=0,
    )
    assert log.best_step == 4 and log.best_val_acc == 0.9
    assert log.steps == 8  # two evaluations without a gain after the best one
    assert torch.equal(net.weight, snapshots[1])


def test_extra_train_days_append_train_only_and_no_window_crosses_markets(ceiling):
    from marketjepa.data.windows import WindowSpec, context_starts

    spec = WindowSpec(patch_len=2, context_patches=2, gap_patches=0, target_patches=1)

    def market(split: list[int], value: float):
        n = len(split)
        rows = ceiling.ProbeRows(
            anchors=np.array([n - 1]),
            sp=np.array([VAL], np.int8),
            day=np.zeros(1, np.int64),
            regime=np.zeros(1, np.int64),
            filter_pred=np.zeros(1, np.int64),
            majority=0,
        )
        return ceiling.Market(
            cfg=None,
            x=np.full((n, 2), value, np.float32),
            split=np.array(split, np.int8),
            session=np.arange(n) // 4,
            regime=np.arange(n) % 3,
            filt=np.full((n, 3), 1 / 3),
            feature_names=["a", "b"],
            rows=rows,
            spec=spec,
        )

    base = market([TRAIN] * 4 + [VAL] * 4 + [2] * 4, 0.0)
    extra = market([TRAIN] * 8 + [VAL] * 4, 1.0)
    m = ceiling.with_extra_train_days(base, [extra])
    assert m.x.shape[0] == 12 + 1 + 12
    assert np.array_equal(m.x[:12], base.x) and m.rows is base.rows
    assert m.split[12:].tolist() == [-1] + [TRAIN] * 8 + [-1] * 4  # extra val/test unused
    assert np.all(np.diff(m.session) >= 0) and m.session[13] > base.session.max()
    for s in context_starts(m.split, TRAIN, spec, 1):
        window = m.x[s : s + spec.context_len, 0]
        assert np.all(window == window[0])  # never mixes the two markets
    assert context_starts(m.split, TRAIN, spec, 1).size == 1 + 5
