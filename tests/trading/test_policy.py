import numpy as np
import pytest

from marketjepa.config import load_config
from marketjepa.errors import DataValidationError
from marketjepa.trading.backtest import CALL, HOLD, PUT
from marketjepa.trading.policy import (
    ClassifierHead,
    class_report,
    fit_policies,
    order_representations,
    rate_threshold,
    signals_from_proba,
)
from marketjepa.trading.pricing import OptionPricer, random_market

H = 15


def _world(seed=3):
    """30 sessions of 390 minutes (18 train, embargo, 5 val, 6 test) with forward labels."""
    split = np.repeat(np.array([0] * 18 + [-1] + [1] * 5 + [2] * 6, np.int8), 390)
    m = random_market(30, seed, split=split)
    logc = np.log(m.close)
    fwd = np.full(m.n, np.nan)
    fwd[:-H] = logc[H:] - logc[:-H]
    ok = np.arange(m.n) + H <= m.session_last_row()
    fwd[~ok] = np.nan
    lo, hi = np.nanquantile(fwd, [0.08, 0.92])
    lab = np.full(m.n, -1, np.int8)
    lab[ok] = 0
    lab[ok & (fwd > hi)] = CALL
    lab[ok & (fwd < lo)] = PUT
    rv = np.where(ok, np.log(np.abs(fwd) + 1e-4), np.nan)
    return m, lab, fwd, rv


def _rep(m, fwd, informative, seed):
    rng = np.random.default_rng(seed)
    sig = np.nan_to_num(fwd) * (300.0 if informative else 0.0)
    feat = np.stack([sig + rng.normal(0, 1, m.n), rng.normal(0, 1, m.n)], 1)
    out = {}
    for s, k in (("train", 0), ("val", 1), ("test", 2)):
        a = np.flatnonzero(m.split == k)[::3]
        out[s], out[f"anchors_{s}"] = feat[a], a
    return out


def test_signal_thresholds():
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.2, 0.3, 0.5], [0.1, 0.45, 0.45]])
    assert signals_from_proba(p, 0.4, 0.4).tolist() == [HOLD, CALL, PUT, CALL]
    assert signals_from_proba(p, 0.6, 0.4).tolist() == [HOLD, HOLD, PUT, HOLD]
    assert signals_from_proba(p, np.inf, np.inf).tolist() == [HOLD] * 4
    x = np.arange(100) / 100
    assert (x >= rate_threshold(x, 0.1)).mean() == pytest.approx(0.1, abs=0.011)
    assert rate_threshold(x, None) == np.inf
    assert order_representations(["supervised", "oracle_filter", "lejepa"])[0] == "lejepa"


def test_class_report_like_the_seed():
    y = np.array([0, 0, 0, 1, 2, -1])
    p = np.eye(3)[[0, 0, 1, 1, 0, 2]]
    r = class_report(y, p)
    assert r["n"] == 5 and r["accuracy"] == pytest.approx(3 / 5)
    assert r["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert r["pred_rates"]["hold"] == pytest.approx(3 / 5)


def test_fit_policies_chooses_thresholds_on_validation_only():
    m, lab, fwd, rv = _world()
    reps = {"random_init": _rep(m, fwd, False, 1), "lejepa": _rep(m, fwd, True, 2)}
    cfg = load_config("tiny")
    pricer = OptionPricer(m, "surface")
    out, sig = fit_policies(cfg, pricer, lab, fwd, rv, reps)
    assert out["order"][0] == "lejepa"
    lej, rnd = out["representations"]["lejepa"], out["representations"]["random_init"]
    assert lej["n_trials"] == 48 and out["n_trials_total"] == 96 and lej["trial_sharpe_var"] > 0
    assert (
        lej["classification"]["val"]["balanced_accuracy"]
        > rnd["classification"]["val"]["balanced_accuracy"] + 0.1
    )
    assert set(sig["split"].unique().to_list()) == {1, 2}
    assert (
        sig.filter(sig["representation"] == "lejepa").height
        == reps["lejepa"]["anchors_val"].size + reps["lejepa"]["anchors_test"].size
    )
    best = max(lej["trials"], key=lambda t: t["val_net_pnl"])
    assert (lej["tau_call"], lej["tau_put"]) == (best["tau_call"], best["tau_put"])
    # scrambling everything on test days (features, labels, returns) cannot move the thresholds
    test = m.split == 2
    rng = np.random.default_rng(9)
    reps2 = {k: dict(v) for k, v in reps.items()}
    for v in reps2.values():
        v["test"] = rng.normal(0, 5, v["test"].shape)
    lab2, fwd2 = lab.copy(), fwd.copy()
    lab2[test] = rng.integers(0, 3, test.sum())
    fwd2[test] = rng.normal(0, 0.01, test.sum())
    out2, sig2 = fit_policies(cfg, pricer, lab2, fwd2, rv, reps2)
    for k in reps:
        a, b = out["representations"][k], out2["representations"][k]
        assert (a["tau_call"], a["tau_put"]) == (b["tau_call"], b["tau_put"])
    v1, v2 = sig.filter(sig["split"] == 1), sig2.filter(sig2["split"] == 1)
    assert v1["signal"].to_list() == v2["signal"].to_list()


def test_trade_rate_objective_mlp_head_and_one_side_warning():
    m, lab, fwd, rv = _world(5)
    reps = {"lejepa": _rep(m, fwd, True, 2)}
    cfg = load_config(
        "tiny",
        overrides=[
            "policy.threshold_objective=trade_rate",
            "policy.head=mlp",
            "policy.target_trade_rate=0.1",
            "policy.mlp_hidden=8",
        ],
    )
    out, sig = fit_policies(cfg, OptionPricer(m, "surface"), lab, fwd, rv, reps)
    lej = out["representations"]["lejepa"]
    assert lej["n_trials"] == 1
    assert lej["signal_rates"]["val"]["call"] + lej["signal_rates"]["val"]["put"] == pytest.approx(
        0.1, abs=0.03
    )
    # only CALL labels in train → the policy can only ever say CALL: warned
    lab1 = np.where(lab == PUT, HOLD, lab)
    out1, _ = fit_policies(cfg, OptionPricer(m, "surface"), lab1, fwd, rv, reps)
    assert any("only one side" in w for w in out1["warnings"])


def test_regression_policy_trades_on_expected_edge():
    m, lab, fwd, rv = _world(7)
    reps = {"lejepa": _rep(m, fwd, True, 2)}
    cfg = load_config("tiny", overrides=["policy.kind=regression"])
    out, sig = fit_policies(cfg, OptionPricer(m, "surface"), lab, fwd, rv, reps)
    lej = out["representations"]["lejepa"]
    assert lej["regression"]["ic_val"] > 0.3 and lej["regression"]["var_scale"] > 0
    assert lej["n_trials"] == 7 and lej["trials"][0]["tau_call"] == 0.0
    assert sig.filter(sig["signal"] != HOLD).height > 0


def test_bad_anchors_and_head_probabilities():
    m, lab, fwd, rv = _world()
    rep = _rep(m, fwd, True, 2)
    rep["anchors_val"] = rep["anchors_val"].copy()
    rep["anchors_val"][0] = np.flatnonzero(m.split == 2)[0]
    with pytest.raises(DataValidationError, match="anchors_val"):
        fit_policies(load_config("tiny"), OptionPricer(m, "surface"), lab, fwd, rv, {"lejepa": rep})
    X = np.random.default_rng(0).normal(size=(200, 3))
    y = np.where(X[:, 0] > 1, 1, 0)  # two classes present, PUT absent
    p = ClassifierHead("logistic").fit(X, y).predict_proba(X)
    assert p.shape == (200, 3) and np.allclose(p.sum(1), 1) and np.all(p[:, 2] == 0)


def test_sweep_trials_multiply_the_lejepa_policies_trial_count():
    # configurations tried by `marketjepa sweep` are trials behind the LeJEPA policy (DSR)
    m, lab, fwd, rv = _world()
    reps = {"random_init": _rep(m, fwd, False, 1), "lejepa": _rep(m, fwd, True, 2)}
    cfg = load_config("tiny", overrides=["train.sweep_trials=30"])
    out, _ = fit_policies(cfg, OptionPricer(m, "surface"), lab, fwd, rv, reps)
    assert out["representations"]["lejepa"]["n_trials"] == 48 * 30
    assert out["representations"]["random_init"]["n_trials"] == 48
