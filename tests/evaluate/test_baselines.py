"""Baseline representations: window statistics, HAR-RV, random-init, supervised, oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marketjepa.config import ModelConfig
from marketjepa.data.windows import WindowDataset, WindowSpec, context_starts
from marketjepa.evaluate import baselines as bl
from marketjepa.evaluate.probes import fit_ridge_probe, r2_score

TINY_MODEL = ModelConfig(
    d_model=16, n_heads=2, n_layers=1, ff_dim=32, predictor_d_model=16, predictor_heads=2
)


def test_raw_window_matches_naive_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32) * 3 + 1
    patch, ctx = 5, 40
    anchors = np.array([39, 40, 111, 299])
    got = bl.raw_window_features(x, anchors, patch, ctx)
    lengths = bl.trailing_lengths(ctx)
    assert lengths == [30, 40]
    names = bl.raw_window_names([f"f{i}" for i in range(4)], patch, ctx)
    assert got.shape == (4, len(names)) == (4, patch * 4 + 2 * 4 * len(lengths))
    for i, a in enumerate(anchors):
        expect = [x[a - patch + 1 : a + 1].ravel()]
        for length in lengths:
            w = x[a - length + 1 : a + 1].astype(np.float64)
            expect += [w.mean(axis=0), w.std(axis=0)]
        np.testing.assert_allclose(got[i], np.concatenate(expect), rtol=1e-5, atol=1e-5)


def test_raw_window_is_causal_and_checks_bounds():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    anchors = np.array([60, 100])
    before = bl.raw_window_features(x, anchors, 4, 48)
    x2 = x.copy()
    x2[101:] += 100.0  # the future of the last anchor
    np.testing.assert_array_equal(before, bl.raw_window_features(x2, anchors, 4, 48))
    with pytest.raises(ValueError, match="outside"):
        bl.raw_window_features(x, np.array([10]), 4, 48)


def _clustered_vol_market(n_days=80, bars=390, seed=0):
    """Log-vol AR(1) across days plus a U-shaped intraday pattern: vol clusters by day."""
    rng = np.random.default_rng(seed)
    h = np.zeros(n_days)
    for d in range(1, n_days):
        h[d] = 0.9 * h[d - 1] + 0.35 * rng.normal()
    minute = np.tile(np.arange(bars), n_days)
    session = np.repeat(np.arange(n_days), bars)
    season = 1 + 0.8 * np.exp(-minute / 30)
    r = 0.001 * np.exp(h[session]) * season * rng.standard_normal(session.size)
    r[minute == 0] += 0.01 * rng.standard_normal(n_days)  # overnight gaps, excluded from RV
    close = 100 * np.exp(np.cumsum(r))
    return close, session, minute


def test_har_rv_beats_constant_on_clustered_vol():
    close, session, minute = _clustered_vol_market()
    horizon, bars = 30, 390
    anchors = np.flatnonzero((session >= 23) & (minute % 15 == 14) & (minute < bars - horizon))
    r = bl.intraday_log_returns(close, session)
    fwd = np.array([0.5 * np.log(np.sum(r[a + 1 : a + 1 + horizon] ** 2)) for a in anchors])
    X = bl.har_rv_features(close, session, anchors)
    assert X.shape == (anchors.size, 3) and np.all(np.isfinite(X))
    day = session[anchors]
    split = np.where(day < 58, 0, np.where(day < 69, 1, 2))
    fit = fit_ridge_probe(X, fwd, split, [0.1, 1.0, 10.0, 100.0])
    test = split == 2
    r2_har = r2_score(fwd[test], fit.predictions[test])
    r2_const = r2_score(fwd[test], np.full(test.sum(), fwd[split == 0].mean()))
    assert r2_har > 0.15
    assert r2_har > r2_const + 0.15


def test_har_rv_math_and_causality():
    close, session, _ = _clustered_vol_market(n_days=30)
    r = bl.intraday_log_returns(close, session)
    assert np.all(r[np.r_[True, session[1:] != session[:-1]]] == 0)  # no overnight return
    a = np.array([5000, 9000])
    X = bl.har_rv_features(close, session, a, days=(1, 5), bars_per_day=390)
    for i, t in enumerate(a):
        assert X[i, 0] == pytest.approx(0.5 * np.log(np.mean(r[t - 389 : t + 1] ** 2)), rel=1e-5)
        assert X[i, 1] == pytest.approx(0.5 * np.log(np.mean(r[t - 1949 : t + 1] ** 2)), rel=1e-5)
    close2 = close.copy()
    close2[9001:] *= 1.5
    np.testing.assert_array_equal(X, bl.har_rv_features(close2, session, a, days=(1, 5)))


def test_oracles():
    oh = bl.one_hot(np.array([2, 0, 1]), 3)
    np.testing.assert_array_equal(oh, np.eye(3)[[2, 0, 1]])
    with pytest.raises(ValueError):
        bl.one_hot(np.array([3]), 3)
    p = np.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    f = bl.oracle_filter_features(p)
    assert f.shape == (2, 6) and np.all(np.isfinite(f))
    np.testing.assert_allclose(f[:, :3], p)
    np.testing.assert_allclose(f[0, 3:], np.log(p[0]), rtol=1e-6)


def test_balanced_class_weights():
    w = bl.balanced_class_weights(np.array([0] * 8 + [1, 2]), 3)
    np.testing.assert_allclose(w, [10 / 24, 10 / 3, 10 / 3])
    w = bl.balanced_class_weights(np.array([0, 0, 1, 1]), 3)  # class 2 absent
    np.testing.assert_allclose(w, [1.0, 1.0, 0.0])


def _regime_problem(n=2400, seed=0):
    """Feature 0 shifts with a persistent hidden regime (the label); others are noise."""
    rng = np.random.default_rng(seed)
    regime = np.repeat(rng.integers(0, 3, n // 60 + 1), 60)[:n]
    x = rng.normal(size=(n, 3)).astype(np.float32)
    x[:, 0] += (regime - 1) * 0.6
    split = np.zeros(n, dtype=np.int8)
    split[int(0.7 * n) :] = 1
    return x, regime, split


def test_random_init_encoder_is_seeded():
    x, _, split = _regime_problem(600)
    spec = WindowSpec(4, 4, 0, 1)
    ds = WindowDataset(x, spec)
    starts = context_starts(split, 0, spec, stride=7)
    e1 = bl.encoder_embeddings(bl.build_encoder(3, spec, TINY_MODEL, 0), ds, starts, 64)
    e2 = bl.encoder_embeddings(bl.build_encoder(3, spec, TINY_MODEL, 0), ds, starts, 64)
    e3 = bl.encoder_embeddings(bl.build_encoder(3, spec, TINY_MODEL, 1), ds, starts, 64)
    assert e1.shape == (starts.size, 16)
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(e1, e3)
    mean = bl.encoder_embeddings(bl.build_encoder(3, spec, TINY_MODEL, 0), ds, starts, 64, "mean")
    assert not np.allclose(e1, mean)


def test_supervised_baseline_trains_on_tiny_problem():
    torch.set_num_threads(1)
    x, regime, split = _regime_problem()
    spec = WindowSpec(4, 4, 0, 1)
    ds = WindowDataset(x, spec)
    tr = context_starts(split, 0, spec, stride=2)
    va = context_starts(split, 1, spec, stride=4)
    res = bl.train_supervised(
        bl.build_encoder(3, spec, TINY_MODEL, 0),
        16,
        ds,
        tr,
        regime[spec.anchor(tr)],
        va,
        regime[spec.anchor(va)],
        epochs=4,
        lr=3e-3,
        batch_size=64,
        seed=0,
    )
    assert 1 <= len(res.history) <= 4
    assert res.best_val_balanced_accuracy == max(h["val_balanced_accuracy"] for h in res.history)
    # A 16-bar window mean separates the regimes well above chance (1/3).
    assert res.best_val_balanced_accuracy > 0.55
    emb = bl.encoder_embeddings(res.model.encoder, ds, va, 128)
    assert emb.shape == (va.size, 16) and np.all(np.isfinite(emb))
