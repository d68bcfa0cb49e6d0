"""Verdict rules on small hand-made summaries: each status, and the number that triggered it."""

from __future__ import annotations

import pytest

from marketjepa.report import rules as R


def summary(**parts) -> dict:
    base = {
        "config": None,
        "model": {"embedding_dim": 256, "gap": 1, "context_horizon": 30, "target_horizon": 30},
        "training": {},
        "data": {"source": "synthetic", "signal": 1.0},
        "epochs": [],
        "final": {},
        "diagnostics": {"available": False, "note": "stage not run"},
        "probes": {"available": False, "classification": [], "regression": [], "paired": []},
        "policy": {"available": False},
        "backtest": {"available": False},
    }
    base.update(parts)
    return base


def prow(name, bacc, ci_half=0.02, kind=None, acc=None, acc_ci=None, maj=0.833, lift_ci=True):
    lift = bacc - 1 / 3 if bacc is not None else None
    return {
        "name": name,
        "kind": kind
        or (
            "encoder"
            if name.startswith("lejepa")
            else "oracle"
            if name.startswith("oracle")
            else "baseline"
        ),
        "accuracy": acc,
        "accuracy_ci": acc_ci,
        "majority_accuracy": maj,
        "balanced_accuracy": bacc,
        "balanced_accuracy_ci": [bacc - ci_half, bacc + ci_half] if bacc is not None else None,
        "lift_balanced": lift,
        "lift_balanced_ci": [lift - ci_half, lift + ci_half]
        if lift_ci and lift is not None
        else None,
    }


def probes(*rows, paired=(), regression=()):
    return {
        "available": True,
        "n_classes": 3,
        "split": "test",
        "classification": list(rows),
        "regression": list(regression),
        "latent": [],
        "paired": list(paired),
    }


def bt(metrics=None, attribution=None, **kw):
    return {
        "available": True,
        "evaluated_on": "test",
        "pricing": "bars",
        "prices_modeled": False,
        "metrics": metrics or {},
        "attribution": attribution or {},
        "baselines": [],
        "trade_pnl": [],
        "equity": {},
        **kw,
    }


# ---------------------------------------------------------------------------- collapse


def test_collapse_from_diagnostics_verdict_states_numbers():
    s = summary(
        diagnostics={
            "available": True,
            "verdict": "COLLAPSED",
            "reasons": ["RankMe 3.1 of 256"],
            "thresholds": {"collapsed_rankme_ratio": 0.05},
            "tensors": {"probe": {"rankme_ratio": 0.0121, "norm_var": 0.8}},
        }
    )
    f = R.collapse_status(s)
    assert f["status"] == "COLLAPSED" and f["severity"] == "critical"
    assert "0.0121" in f["text"] and "0.8" in f["text"] and "RankMe 3.1 of 256" in f["text"]
    assert (
        f["numbers"]["rankme_ratio"] == 0.0121 and f["threshold"]["collapsed_rankme_ratio"] == 0.05
    )


@pytest.mark.parametrize(
    ("rr", "nv", "expected"),
    [
        (0.6, 0.9, "HEALTHY"),
        (0.1, 0.9, "PARTIAL"),
        (0.6, 0.2, "PARTIAL"),
        (0.01, 0.9, "COLLAPSED"),
        (0.6, 0.01, "COLLAPSED"),
        (None, 0.9, "HEALTHY"),
    ],
)
def test_collapse_computed_from_scale_invariant_metrics(rr, nv, expected):
    f = R.collapse_status(summary(final={"rankme_ratio": rr, "norm_var": nv, "dim_var_mean": 1e-4}))
    assert f["status"] == expected
    assert R.fmt(nv) in f["text"]


def test_thresholds_come_from_config():
    cfg = {
        "eval": {
            "collapsed_rankme_ratio": 0.2,
            "healthy_rankme_ratio": 0.5,
            "healthy_normalized_variance": 0.5,
            "collapsed_normalized_variance": 0.05,
        }
    }
    f = R.collapse_status(summary(config=cfg, final={"rankme_ratio": 0.15, "norm_var": 0.9}))
    assert f["status"] == "COLLAPSED" and "< 0.2" in f["text"]


def test_seed_numbers_alone_are_inconclusive():
    # The seed: dim variance mean 0.0033 at d=256 and nothing scale-invariant.
    f = R.collapse_status(summary(final={"dim_var_mean": 0.0033}))
    assert f["status"] == "INCONCLUSIVE"
    assert "0.0033" in f["text"] and "0.845" in f["text"]  # 0.0033 × 256 = mean squared norm
    assert R.collapse_status(summary())["status"] == "INCONCLUSIVE"


def test_watchdog_and_divergence():
    s = summary(
        training={
            "status": "collapsed",
            "epochs_run": 3,
            "epochs": 20,
            "message": "RankMe/d 0.01 < 0.05 for 2 epochs",
        }
    )
    f = R.training_stop(s)
    assert f["id"] == "watchdog" and "3 of 20" in f["text"] and "0.01 < 0.05" in f["text"]
    f = R.training_stop(summary(training={"status": "diverged", "epochs_run": 5, "epochs": 20}))
    assert f["status"] == "DIVERGED" and "5 of 20" in f["text"]
    assert R.training_stop(summary(training={"status": "completed"})) is None


def test_metric_statuses_trend_and_dead_dims():
    epochs = [
        {"epoch": 1, "train_loss": 8.0, "train_sigreg": 60.0, "val_loss": 1.0},
        {"epoch": 2, "train_loss": 6.91, "train_sigreg": 60.3, "val_loss": 1.2},
    ]
    final = {
        "train_loss": 6.91,
        "dim_var_mean": 0.0033,
        "dim_var_std": 0.0024,
        "dead_dims": 200,
        "norm_var": 0.9,
        "rankme_ratio": 0.02,
    }
    rows = {r["metric"]: r for r in R.metric_statuses(summary(epochs=epochs, final=final))}
    assert (
        rows["Total train loss"]["status"] == "DECREASING"
        and "-13.6%" in rows["Total train loss"]["rule"]
    )
    assert rows["SIGReg loss"]["status"] == "FLAT"
    assert rows["Validation loss"]["status"] == "INCREASING"
    assert (
        rows["dim_variance_mean"]["status"] == "NOT A VERDICT"
        and "0.845" in rows["dim_variance_mean"]["rule"]
    )
    assert (
        rows["dim_variance_std"]["status"] == "EVEN" and "0.727" in rows["dim_variance_std"]["rule"]
    )
    assert rows["dead dims"]["status"] == "COLLAPSED" and "78.1%" in rows["dead dims"]["rule"]
    assert rows["RankMe/d"]["status"] == "COLLAPSED"
    assert rows["normalized variance"]["status"] == "HEALTHY"


# ---------------------------------------------------------------------------- probes


def test_no_lift_when_ci_covers_zero_and_lift_when_above():
    s = summary(probes=probes(prow("lejepa", 0.34, 0.02), prow("raw_window", 0.40, 0.02)))
    f = {x["id"]: x for x in R.probe_lifts(s)}
    assert f["lift_lejepa"]["status"] == "NO LIFT" and f["lift_lejepa"]["severity"] == "warning"
    assert "0.00667" in f["lift_lejepa"]["text"] and "covers 0" in f["lift_lejepa"]["text"]
    assert f["lift_raw_window"]["status"] == "LIFT" and "0.0667" in f["lift_raw_window"]["text"]
    below = R.lift_status(prow("x", 0.30, 0.01))
    assert below[0] == "BELOW"


def test_no_lift_fallback_on_accuracy_ci_vs_majority():
    r = prow("lejepa", 0.34, lift_ci=False, acc=0.833, acc_ci=[0.82, 0.845], maj=0.833)
    status, ev = R.lift_status(r)
    assert status == "NO LIFT" and "83.3%" in ev and "covers" in ev
    r = prow("lejepa", 0.34, lift_ci=False, acc=0.9, acc_ci=[0.87, 0.93], maj=0.833)
    assert R.lift_status(r)[0] == "LIFT"
    r = prow("lejepa", 0.34, lift_ci=False)
    assert R.lift_status(r)[0] == "UNCERTAIN"


def test_signal_present_and_absent():
    s = summary(probes=probes(prow("lejepa", 0.34), prow("raw_window", 0.34), prow("oracle", 0.55)))
    f = R.signal_present(s)
    assert f["id"] == "signal_present" and "oracle" in f["text"] and "0.217" in f["text"]
    s = summary(probes=probes(prow("raw_window", 0.335), prow("oracle", 0.332)))
    f = R.signal_present(s)
    assert f["id"] == "signal_absent" and "raw_window" in f["text"] and "oracle" in f["text"]
    assert R.signal_present(summary(probes=probes(prow("lejepa", 0.5)))) is None


def test_lejepa_vs_baselines_from_paired_ci():
    paired = [
        {
            "a": "lejepa",
            "b": "raw_window",
            "metric": "balanced_accuracy",
            "diff": -0.04,
            "ci": [-0.06, -0.02],
        },
        {
            "a": "random_init",
            "b": "lejepa",
            "metric": "balanced_accuracy",
            "diff": -0.03,
            "ci": [-0.05, -0.01],
        },
        {
            "a": "lejepa",
            "b": "supervised",
            "metric": "balanced_accuracy",
            "diff": 0.01,
            "ci": [-0.01, 0.03],
        },
    ]
    # the fine-tuned encoder's own test against supervised is not a LeJEPA-vs-baseline row
    paired.append(
        {
            "a": "lejepa_finetuned",
            "b": "supervised",
            "metric": "balanced_accuracy",
            "diff": 0.05,
            "ci": [0.02, 0.08],
        }
    )
    rows = [prow(n, b) for n, b in (("lejepa", 0.4), ("raw_window", 0.44), ("supervised", 0.39))]
    s = summary(probes=probes(*rows, prow("lejepa_finetuned", 0.44), paired=paired))
    f = {x["id"]: x for x in R.lejepa_vs_baselines(s)}
    assert f["vs_raw_window"]["status"] == "LOSES TO" and "-0.04" in f["vs_raw_window"]["text"]
    # Sign flipped when LeJEPA is the second member of the pair.
    assert (
        f["vs_random_init"]["status"] == "BEATS" and f["vs_random_init"]["numbers"]["diff"] == 0.03
    )
    assert f["vs_random_init"]["numbers"]["ci"] == [0.01, 0.05]
    assert f["vs_supervised"]["status"] == "TIES" and "[-0.01, 0.03]" in f["vs_supervised"]["text"]
    assert f["vs_supervised"]["numbers"]["diff"] == 0.01  # lejepa's test, not the fine-tuned's
    assert len(f) == 3  # raw_window judged by its paired test only; lejepa_finetuned is no baseline
    assert R.lejepa_name(s) == "lejepa"
    init = R.pretraining_as_init(s)
    assert init["status"] == "HELPS" and init["numbers"]["ci"] == [0.02, 0.08]
    assert "lejepa_finetuned" in init["text"] and "0.05" in init["text"]
    paired[-1] |= {"a": "supervised", "b": "lejepa_finetuned", "diff": -0.05, "ci": [-0.08, -0.02]}
    flipped = R.pretraining_as_init(s)  # the sign follows the pair's order
    assert flipped["status"] == "HELPS" and flipped["numbers"]["diff"] == 0.05
    paired[-1]["ci"] = [-0.03, 0.01]
    assert R.pretraining_as_init(s)["status"] == "NO CLEAR EFFECT"


def test_lejepa_vs_baselines_unpaired_fallback_skips_oracle():
    s = summary(
        probes=probes(
            prow("lejepa", 0.40, 0.01),
            prow("random_init", 0.35, 0.01),
            prow("raw_window", 0.405, 0.01),
            prow("oracle", 0.6),
        )
    )
    f = {x["id"]: x for x in R.lejepa_vs_baselines(s)}
    assert f["vs_random_init"]["status"] == "BEATS" and "unpaired" in f["vs_random_init"]["text"]
    assert f["vs_raw_window"]["status"] == "TIES"
    assert "vs_oracle" not in f


def test_vol_predictable_vs_har():
    reg = [
        {"name": "lejepa", "target": "fwd_rv", "r2": 0.41, "r2_ci": [0.36, 0.46]},
        {"name": "har_rv", "target": "fwd_rv", "r2": 0.30, "r2_ci": [0.25, 0.35]},
    ]
    f = R.vol_predictable(summary(probes=probes(prow("lejepa", 0.4), regression=reg)))[0]
    assert (
        f["status"] == "PREDICTABLE (ABOVE HAR-RV)" and "0.41" in f["text"] and "0.3" in f["text"]
    )
    reg[0]["r2_ci"] = [-0.01, 0.05]
    f = R.vol_predictable(summary(probes=probes(prow("lejepa", 0.4), regression=reg)))[0]
    assert f["status"].startswith("NOT PREDICTABLE") and "BELOW" in f["status"]


def test_vol_compared_with_the_strongest_har_variant():
    reg = [
        {"name": "lejepa", "target": "fwd_rv", "r2": 0.41, "r2_ci": [0.36, 0.46]},
        {"name": "har_rv", "target": "fwd_rv", "r2": 0.037, "r2_ci": [-0.02, 0.09]},
        {"name": "har_rv_intraday", "target": "fwd_rv", "r2": 0.43, "r2_ci": [0.40, 0.47]},
    ]
    f = R.vol_predictable(summary(probes=probes(prow("lejepa", 0.4), regression=reg)))[0]
    assert "COMPARABLE" in f["status"] and "har_rv_intraday" in f["text"] and "0.43" in f["text"]


def test_latent_trend_flags_training_away_from_signal():
    eps = [{"epoch": 1, "latent_acc": 0.90}, {"epoch": 2, "latent_acc": 0.78}]
    f = R.latent_trend(summary(epochs=eps))
    assert f["id"] == "latent_away" and "0.9" in f["text"] and "0.78" in f["text"]
    eps = [{"epoch": 1, "latent_acc": 0.5}, {"epoch": 2, "latent_acc": 0.6}]
    assert R.latent_trend(summary(epochs=eps))["status"] == "TOWARD SIGNAL"


# ---------------------------------------------------------------------------- policy / backtest


def test_one_side_from_trades_and_from_signals():
    s = summary(backtest=bt({"call_share": 1.0, "put_share": 0.0, "n_trades": 438}))
    f = R.policy_one_side(s)
    assert f["status"] == "ONE SIDE ONLY" and "100.0% CALL" in f["text"] and "438" in f["text"]
    assert R.policy_one_side(summary(backtest=bt({"call_share": 0.6, "put_share": 0.4}))) is None
    pol = {
        "available": True,
        "splits": {"test": {"pred_rates": {"HOLD": 0.9, "BUY_CALL": 0.0, "BUY_PUT": 0.1}}},
    }
    f = R.policy_one_side(summary(policy=pol))
    assert f is not None and "100.0% PUT" in f["text"]


def test_costs_vs_gross_edge():
    f = R.costs_vs_edge(summary(backtest=bt(attribution={"gross": 50.0, "costs": 80.0})))
    assert f["status"] == "COSTS EXCEED EDGE" and "$80.00" in f["text"] and "$50.00" in f["text"]
    f = R.costs_vs_edge(summary(backtest=bt(attribution={"gross": -10.0, "costs": 80.0})))
    assert f["status"] == "NO GROSS EDGE" and "-$10.00" in f["text"]
    # Gross above costs is only a passed check with a significant strategy behind it.
    f = R.costs_vs_edge(summary(backtest=bt(attribution={"gross": 100.0, "costs": 20.0})))
    assert f["status"] == "EDGE NOT SHOWN" and f["severity"] == "info" and "20.0%" in f["text"]
    sig = {"dsr": 0.999, "n_trades": 80, "n_trials": 4}
    f = R.costs_vs_edge(
        summary(backtest=bt(sig, attribution={"gross": 100.0, "costs": 20.0}, days=40))
    )
    assert f["status"] == "EDGE > COSTS" and f["severity"] == "ok" and "20.0%" in f["text"]
    few = {"dsr": 0.999, "n_trades": 3, "n_trials": 4}
    f = R.costs_vs_edge(
        summary(backtest=bt(few, attribution={"gross": 100.0, "costs": 20.0}, days=40))
    )
    assert f["status"] == "INSUFFICIENT EVIDENCE" and "3 trades; need ≥ 30" in f["text"]
    assert R.costs_vs_edge(summary(backtest=bt())) is None


def test_loss_attribution():
    a = {"underlying": 5.0, "theta": -30.0, "vega": -2.0, "costs": 20.0, "net": -47.0}
    f = R.loss_attribution(summary(backtest=bt(attribution=a)))
    assert f["id"] == "theta_spread" and "96.2%" in f["text"]  # (30 + 20) / 52
    a = {"underlying": -100.0, "theta": -5.0, "vega": 1.0, "costs": 5.0, "net": -109.0}
    f = R.loss_attribution(summary(backtest=bt(attribution=a)))
    assert f["id"] == "loss_driver" and "wrong direction" in f["text"] and "90.9%" in f["text"]
    a["net"] = 3.0
    assert R.loss_attribution(summary(backtest=bt(attribution=a))) is None


def test_significance_uses_dsr_then_psr():
    f = R.significance(
        summary(
            backtest=bt(
                {"dsr": 0.41, "psr": 0.97, "n_trials": 24, "sharpe": 1.1, "sharpe_ci": [-0.5, 2.7]}
            )
        )
    )
    assert f["status"] == "NOT SIGNIFICANT" and "0.41" in f["text"] and "24" in f["text"]
    assert "[-0.5, 2.7]" in f["text"]
    assert R.significance(summary(backtest=bt({"dsr": 0.97})))["status"] == "SIGNIFICANT"
    f = R.significance(summary(backtest=bt({"psr": 0.6})))
    assert f["status"] == "NOT SIGNIFICANT" and "PSR 0.6" in f["text"]


def test_split_and_pricing_warnings():
    f = R.evaluated_split(summary(backtest=bt(evaluated_on="val")))
    assert f["status"] == "NOT TEST DAYS" and "'val'" in f["text"]
    assert R.evaluated_split(summary(backtest=bt())) is None
    f = R.prices_modeled(summary(backtest=bt(pricing="surface", prices_modeled=True)))
    assert "modeled" in f["text"] and "surface" in f["text"]
    assert R.prices_modeled(summary(backtest=bt())) is None


# ---------------------------------------------------------------------------- recommendations


def _cfg(**loss):
    base = {
        "lambda_sigreg": 0.1,
        "convention": "additive",
        "ema": True,
        "ema_momentum": 0.996,
        "sigreg_on": "pooled",
        "multi_horizon": True,
    }
    base.update(loss)
    return {
        "loss": base,
        "windows": {"gap_patches": 0, "context_patches": 30, "patch_len": 30},
        "model": {"pooling": "mean"},
        "backtest": {"dte": 0, "hold_bars": 30},
        "train": {"grad_clip": 1.0},
    }


def test_recommendations_for_collapse_name_current_settings():
    s = summary(config=_cfg(), final={"rankme_ratio": 0.01, "norm_var": 0.9})
    recs = {r["id"]: r for r in R.recommendations(s, R.evaluate(s))}
    assert "0.1" in recs["raise_lambda"]["text"] and "0.01" in recs["raise_lambda"]["text"]
    assert "0.996" in recs["drop_ema"]["text"]
    assert "design_levers" not in recs
    s = summary(config=_cfg(ema=False), final={"rankme_ratio": 0.01, "norm_var": 0.9})
    assert "drop_ema" not in {r["id"] for r in R.recommendations(s, R.evaluate(s))}


def test_recommendations_healthy_but_loses_to_raw_window_are_conditional_levers():
    paired = [
        {
            "a": "lejepa",
            "b": "raw_window",
            "metric": "balanced_accuracy",
            "diff": -0.05,
            "ci": [-0.07, -0.03],
        }
    ]
    p = probes(prow("lejepa", 0.40), prow("raw_window", 0.45), prow("oracle", 0.6), paired=paired)
    s = summary(
        config=_cfg(ema=False, lambda_sigreg=1.0),
        final={"rankme_ratio": 0.6, "norm_var": 0.95},
        probes=p,
        training={"epochs_run": 20, "global_step": 3180},
    )
    recs = {r["id"]: r for r in R.recommendations(s, R.evaluate(s))}
    assert "-0.05" in recs["design_levers"]["text"]
    assert {
        "lever_gap",
        "lever_pooling",
        "lever_token_sigreg",
        "lever_hybrid",
        "lever_context",
        "lever_longer",
    } <= set(recs)
    assert "900 bars" in recs["lever_context"]["text"] and "3180" in recs["lever_longer"]["text"]
    assert "raise_lambda" not in recs
    cfg = _cfg(ema=False, sigreg_on="both")
    cfg["windows"]["gap_patches"], cfg["model"]["pooling"] = 2, "last"
    s["config"] = cfg
    recs = {r["id"] for r in R.recommendations(s, R.evaluate(s))}
    assert not {"lever_gap", "lever_pooling", "lever_token_sigreg"} & recs


def test_null_market_recommends_nothing_to_trade_and_vol():
    reg = [{"name": "lejepa", "target": "fwd_rv", "r2": 0.3, "r2_ci": [0.25, 0.35]}]
    s = summary(
        data={"source": "synthetic", "signal": 0.0},
        probes=probes(
            prow("lejepa", 0.334), prow("raw_window", 0.333), prow("oracle", 0.335), regression=reg
        ),
    )
    findings = R.evaluate(s)
    ids = {f["id"] for f in findings}
    assert {"null_market", "signal_absent"} <= ids
    recs = {r["id"]: r for r in R.recommendations(s, findings)}
    assert "nothing to trade" in recs["nothing_to_trade"]["text"]
    assert "0.3" in recs["vol_target"]["text"]


def test_every_finding_has_schema_and_states_a_number():
    s = summary(
        config=_cfg(),
        final={"rankme_ratio": 0.01, "norm_var": 0.9},
        training={"status": "collapsed", "epochs_run": 3, "epochs": 20},
        probes=probes(prow("lejepa", 0.34), prow("raw_window", 0.4), prow("oracle", 0.6)),
        backtest=bt(
            {"call_share": 1.0, "put_share": 0.0, "n_trades": 10, "dsr": 0.2, "n_trials": 5},
            {
                "underlying": -1.0,
                "theta": -9.0,
                "vega": 0.0,
                "gross": -10.0,
                "costs": 7.0,
                "net": -17.0,
            },
            evaluated_on="val",
            prices_modeled=True,
            pricing="surface",
        ),
    )
    findings = R.evaluate(s)
    assert len(findings) >= 10
    for f in findings:
        assert set(f) == {"id", "severity", "status", "text", "numbers", "threshold"}
        assert f["severity"] in {"ok", "info", "warning", "critical"}
        categorical = [v for v in f["numbers"].values() if isinstance(v, str)]
        assert any(ch.isdigit() for ch in f["text"]) or any(v in f["text"] for v in categorical), f


def test_inconclusive_recommends_diagnose_only_when_it_did_not_run():
    s = summary(final={"dim_var_mean": 0.0033})
    assert "run_diagnose" in {r["id"] for r in R.recommendations(s, R.evaluate(s))}
    s["diagnostics"] = {
        "available": True,
        "verdict": "INCONCLUSIVE",
        "reasons": ["too few windows"],
        "tensors": {},
    }
    findings = R.evaluate(s)
    assert findings[0]["status"] == "INCONCLUSIVE" and "too few windows" in findings[0]["text"]
    assert "run_diagnose" not in {r["id"] for r in R.recommendations(s, findings)}
