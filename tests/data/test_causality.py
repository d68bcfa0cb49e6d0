"""Causality: nothing at or before bar t may depend on data after t (DESIGN §2.1–2.2).

Property tests on random bar sequences — full and half days, calendar gaps between
sessions (weekends/holidays), repaired flat bars, option quotes with holes — perturb
everything after a random bar and check every feature, the option mask, each label kind
and the normalizer did not move at or before it.
"""

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.bars import make_market
from marketjepa.config import (
    ALL_FEATURES,
    Config,
    FeatureConfig,
    LabelConfig,
    SplitConfig,
    WindowConfig,
)
from marketjepa.data.features import FeatureInputs, compute_features
from marketjepa.data.labels import make_labels
from marketjepa.data.normalize import Normalizer
from marketjepa.data.prepare import build_prepared


def perturb_after(bars, osum, t, seed):
    """Replace every bar and option observation after row ``t`` with other valid data."""
    rng = np.random.default_rng(seed)
    n = bars.height
    late = np.arange(n) > t
    k = int(late.sum())
    f = np.ones(n)
    f[late] = np.exp(rng.normal(0, 0.02, k))
    widen = np.ones(n)
    widen[late] = np.exp(np.abs(rng.normal(0, 0.01, k)))
    vol = bars["volume"].to_numpy().copy()
    vol[late] = rng.lognormal(6, 2, k)
    bars2 = bars.with_columns(
        open=bars["open"] * f,
        high=bars["high"] * f * widen,
        low=bars["low"] * f / widen,
        close=bars["close"] * f,
        volume=vol,
    )
    cols = {}
    for c in osum.columns[1:]:
        v = osum[c].to_numpy().astype(float).copy()
        new = rng.uniform(0.05, 0.6, k) if c.startswith("iv") else rng.uniform(0, 500, k)
        v[late] = np.where(rng.random(k) < 0.5, new, np.nan)
        cols[c] = pl.Series(v).fill_nan(None)
    return bars2, osum.with_columns(**cols)


def _all_features(bars, osum):
    x = FeatureInputs.from_frames(bars, osum, max_staleness_minutes=3, volume_z_sessions=2)
    return compute_features(x, list(ALL_FEATURES)), x


markets = st.fixed_dictionaries(
    {
        "sessions": st.lists(st.sampled_from([390, 210]), min_size=2, max_size=4),
        "steps": st.lists(st.integers(1, 4), min_size=4, max_size=4),
        "seed": st.integers(0, 10_000),
        "filled_p": st.sampled_from([0.0, 0.05, 0.3]),
        "option_obs_p": st.sampled_from([0.1, 0.5, 1.0]),
        "frac": st.floats(0.0, 1.0),
    }
)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _market(m):
    sm = m["sessions"]
    bars, osum = make_market(sm, m["seed"], m["steps"][: len(sm)], m["filled_p"], m["option_obs_p"])
    t = min(int(m["frac"] * bars.height), bars.height - 1)
    return bars, osum, t


@SETTINGS
@given(markets)
def test_every_feature_ignores_the_future(m):
    bars, osum, t = _market(m)
    before, x = _all_features(bars, osum)
    after, x2 = _all_features(*perturb_after(bars, osum, t, m["seed"] + 1))
    for j, name in enumerate(ALL_FEATURES):
        np.testing.assert_array_equal(after[: t + 1, j], before[: t + 1, j], err_msg=name)
    np.testing.assert_array_equal(x2.options_valid[: t + 1], x.options_valid[: t + 1])
    # and the future really was changed (the test has teeth)
    if t < bars.height - 40:
        assert not np.array_equal(after[t + 40 :, 0], before[t + 40 :, 0])


@SETTINGS
@given(markets, st.sampled_from(["threshold", "triple_barrier"]))
def test_labels_depend_only_on_the_forward_window_and_trailing_vol(m, kind):
    bars, osum, t = _market(m)
    h, lb = 5, 10
    cfg = LabelConfig(kind=kind, horizon=h, vol_lookback=lb)

    def labels(b):
        x = FeatureInputs.from_frames(b, None)
        return make_labels(x.close, x.r1, x.day, x.minute, cfg, k=0.8)

    ref = labels(bars)
    # 1) future past t+H never matters: rows s <= t - H are unchanged
    got = labels(perturb_after(bars, osum, t, 1)[0])
    keep = slice(0, max(t - h + 1, 0))
    for a in ("label", "fwd_ret", "fwd_rv"):
        np.testing.assert_array_equal(getattr(got, a)[keep], getattr(ref, a)[keep], err_msg=a)
    np.testing.assert_array_equal(got.sigma_h[: t + 1], ref.sigma_h[: t + 1])
    # 2) only rows [t - lookback, t + H] matter for row t
    n = bars.height
    out = (np.arange(n) < t - lb) | (np.arange(n) > t + h)
    f = np.where(out, np.exp(np.random.default_rng(m["seed"]).normal(0, 0.02, n)), 1.0)
    b2 = bars.with_columns(
        open=bars["open"] * f, high=bars["high"] * f, low=bars["low"] * f, close=bars["close"] * f
    )
    got = labels(b2)
    for a in ("label", "fwd_ret", "fwd_rv", "sigma_h"):
        np.testing.assert_array_equal(getattr(got, a)[t], getattr(ref, a)[t], err_msg=a)


@SETTINGS
@given(markets, st.sampled_from(["robust", "standard"]))
def test_normalizer_fit_ignores_rows_outside_train(m, method):
    bars, osum, t = _market(m)
    raw, _ = _all_features(bars, osum)
    raw2, _ = _all_features(*perturb_after(bars, osum, t, 2))
    train = np.arange(bars.height) <= t
    a = Normalizer.fit(raw, list(ALL_FEATURES), train, method)
    b = Normalizer.fit(raw2, list(ALL_FEATURES), train, method)
    np.testing.assert_array_equal(a.center, b.center)
    np.testing.assert_array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(a.apply(raw)[: t + 1], b.apply(raw2)[: t + 1])


def test_normalization_and_k_identical_without_val_and_test_days():
    """Leakage: the full prepare's train statistics equal those computed from a dataset
    that holds only the training days."""
    cfg = Config(
        features=FeatureConfig(volume_z_sessions=2),
        labels=LabelConfig(horizon=5, vol_lookback=10),
        split=SplitConfig(train=0.6, val=0.2, test=0.2, embargo_days=1),
        windows=WindowConfig(patch_len=5, context_patches=4, gap_patches=0, target_patches=2),
    )
    bars, osum = make_market([390, 210, 390, 390, 390, 390, 390, 210, 390], seed=5)

    class Ingest:  # the ingest contract's fields
        option_bars = None
        log: dict = {}
        inputs: dict = {}

        def __init__(self, b, o):
            self.bars, self.option_summary = b, o

    full = build_prepared(cfg, Ingest(bars, osum))
    train_rows = full.frame["split"].to_numpy() == 0
    assert train_rows.any() and not train_rows.all()
    n_train = int(np.flatnonzero(train_rows)[-1]) + 1
    assert train_rows[:n_train].all()  # train days come first
    tb, to = bars.head(n_train), osum.head(n_train)
    x = FeatureInputs.from_frames(tb, to, cfg.data.max_option_staleness_minutes, 2)
    raw = compute_features(x, list(ALL_FEATURES))
    alone = Normalizer.fit(raw, list(ALL_FEATURES), np.ones(n_train, bool))
    np.testing.assert_array_equal(alone.center, full.normalizer.center)
    np.testing.assert_array_equal(alone.scale, full.normalizer.scale)
    lab = make_labels(x.close, x.r1, x.day, x.minute, cfg.labels, filled=tb["filled"].to_numpy())
    assert lab.k == full.manifest["label_k"]
    # the train rows' normalized features are the same too
    f_cols = [f"f_{n}" for n in ALL_FEATURES]
    np.testing.assert_array_equal(
        full.frame.head(n_train).select(f_cols).to_numpy(), alone.apply(raw)
    )
